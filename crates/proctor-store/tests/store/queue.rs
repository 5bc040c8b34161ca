//! The job queue: claims, leases, attempts, exactly-once finish, cancellation.

use std::collections::HashSet;
use std::time::Duration;

use proctor_core::release::Usage;
use proctor_store::{
    Cancelled, Disposition, EntryKind, JobId, JobStatus, Outcome, Store, StoreError,
};

use crate::common::{Fixture, sign};
use crate::on_every_backend;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);
const PAST_SHORT: Duration = Duration::from_millis(450);

fn succeeded() -> Outcome {
    Outcome {
        status: JobStatus::Succeeded,
        reason: None,
        report: Some(r#"{"metrics":{}}"#.into()),
        identity: None,
    }
}

async fn submit(store: &Store, fx: &Fixture) -> anyhow::Result<JobId> {
    let (job, entry) = store.submit_job(&fx.job(), sign("accepted")).await?;
    assert_eq!(entry.kind, EntryKind::Accepted);
    Ok(job.id)
}

#[tokio::test]
async fn a_submitted_job_is_queued_with_its_pre_registration_entry() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let (job, entry) = store.submit_job(&fx.job(), sign("accepted")).await?;
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.seed, u64::MAX - 7);
        assert_eq!((job.done, job.total, job.attempts), (0, 10, 0));
        assert_eq!(entry.index, 0);
        assert_eq!(
            entry.envelope,
            format!("accepted {} 0", job.id).into_bytes()
        );
        assert_eq!(
            store.job_entry(job.id, EntryKind::Accepted).await?,
            Some(entry.clone())
        );
        assert_eq!(store.log_entry(0).await?, entry);
        assert_eq!(
            store.jobs_of(fx.evaluator, 10).await?,
            vec![store.job(job.id).await?]
        );
    })
}

#[tokio::test]
async fn a_job_for_an_unknown_model_is_refused_and_nothing_is_written() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let mut new = fx.job();
        new.model = proctor_store::ModelId::new();
        let refused = store.submit_job(&new, sign("accepted")).await;
        assert!(
            matches!(refused, Err(StoreError::NotFound(_))),
            "{refused:?}"
        );
        assert!(store.jobs_of(fx.evaluator, 10).await?.is_empty());
        assert_eq!(store.tree_head().await?.size, 0);
    })
}

#[tokio::test]
async fn a_claimed_job_is_not_claimed_again_while_its_lease_runs() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        let claimed = store
            .claim("worker-a", LONG, 3)
            .await?
            .ok_or_else(|| anyhow::anyhow!("nothing claimed"))?;
        assert_eq!(claimed.job.id, id);
        assert_eq!(claimed.disposition, Disposition::Run);
        assert_eq!(claimed.job.status, JobStatus::Running);
        assert_eq!(claimed.job.attempts, 1);
        assert_eq!(
            claimed.job.lease.as_ref().map(|l| l.owner.as_str()),
            Some("worker-a")
        );
        assert!(claimed.job.started_at.is_some());
        assert!(store.claim("worker-b", LONG, 3).await?.is_none());
    })
}

#[tokio::test]
async fn renewing_extends_the_lease_and_a_lost_lease_cannot_be_renewed() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        store.claim("worker-a", SHORT, 3).await?;
        // Renewing before the lease runs out keeps the job past its first expiry.
        for _ in 0..3 {
            tokio::time::sleep(SHORT / 3).await;
            let renewed = store.renew(id, "worker-a", SHORT).await?;
            assert!(!renewed.cancel_requested);
        }
        assert!(store.claim("worker-b", SHORT, 3).await?.is_none());
        let wrong = store.renew(id, "worker-b", SHORT).await;
        assert!(matches!(wrong, Err(StoreError::LeaseLost(_))), "{wrong:?}");
        tokio::time::sleep(PAST_SHORT).await;
        let late = store.renew(id, "worker-a", SHORT).await;
        assert!(matches!(late, Err(StoreError::LeaseLost(_))), "{late:?}");
    })
}

#[tokio::test]
async fn a_job_whose_lease_expired_is_claimed_again_and_attempts_are_counted() -> anyhow::Result<()>
{
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        store.claim("worker-a", SHORT, 3).await?;
        tokio::time::sleep(PAST_SHORT).await;
        let again = store
            .claim("worker-b", LONG, 3)
            .await?
            .ok_or_else(|| anyhow::anyhow!("not reclaimed"))?;
        assert_eq!(again.job.id, id);
        assert_eq!(again.job.attempts, 2);
        assert_eq!(again.disposition, Disposition::Run);
        // The first worker woke up: it may neither renew nor finish.
        let renew = store.renew(id, "worker-a", LONG).await;
        assert!(matches!(renew, Err(StoreError::LeaseLost(_))), "{renew:?}");
        let finish = store
            .finish(id, "worker-a", &succeeded(), sign("result"))
            .await;
        assert!(
            matches!(finish, Err(StoreError::LeaseLost(_))),
            "{finish:?}"
        );
        let (done, entry) = store
            .finish(id, "worker-b", &succeeded(), sign("result"))
            .await?;
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(entry.envelope, format!("result {id} 1").into_bytes());
    })
}

#[tokio::test]
async fn past_max_attempts_a_claim_says_give_up_and_the_job_fails_with_the_reason()
-> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        for attempt in 1..=2 {
            let c = store
                .claim("dying", SHORT, 2)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no claim"))?;
            assert_eq!((c.job.attempts, c.disposition), (attempt, Disposition::Run));
            tokio::time::sleep(PAST_SHORT).await;
        }
        let c = store
            .claim("last", LONG, 2)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no claim"))?;
        assert_eq!(c.job.attempts, 3);
        let Disposition::GiveUp { reason } = c.disposition else {
            anyhow::bail!("expected give-up, got {:?}", c.disposition);
        };
        assert!(reason.contains("2 attempts"), "{reason}");
        let outcome = Outcome {
            status: JobStatus::Failed,
            reason: Some(reason.clone()),
            report: None,
            identity: None,
        };
        let (failed, _) = store.finish(id, "last", &outcome, sign("result")).await?;
        assert_eq!(failed.status, JobStatus::Failed);
        let stored = store.job(id).await?;
        assert_eq!(
            (stored.status, stored.reason),
            (JobStatus::Failed, Some(reason))
        );
        assert!(stored.lease.is_none() && stored.finished_at.is_some());
        assert!(store.claim("another", LONG, 2).await?.is_none());
    })
}

#[tokio::test]
async fn finishing_is_exactly_once() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        store.claim("w", LONG, 3).await?;
        let not_final = Outcome {
            status: JobStatus::Running,
            reason: None,
            report: None,
            identity: None,
        };
        let refused = store.finish(id, "w", &not_final, sign("result")).await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{refused:?}"
        );
        let failing_signer = store
            .finish(id, "w", &succeeded(), |_, _| Err("no key".into()))
            .await;
        assert!(
            matches!(failing_signer, Err(StoreError::Sign(_))),
            "{failing_signer:?}"
        );
        assert_eq!(store.tree_head().await?.size, 1);

        let (job, entry) = store.finish(id, "w", &succeeded(), sign("result")).await?;
        assert_eq!(job.report.as_deref(), Some(r#"{"metrics":{}}"#));
        assert_eq!(job.finished_at, Some(entry.created_at));
        let head = store.tree_head().await?;
        let second = store.finish(id, "w", &succeeded(), sign("result")).await;
        assert!(
            matches!(second, Err(StoreError::LeaseLost(_))),
            "{second:?}"
        );
        assert_eq!(store.tree_head().await?, head);
        assert_eq!(store.job_entry(id, EntryKind::Result).await?, Some(entry));
        assert_eq!(store.log_entries(0, 100).await?.len(), 2);
        let renew = store.renew(id, "w", LONG).await;
        assert!(matches!(renew, Err(StoreError::LeaseLost(_))), "{renew:?}");
    })
}

#[tokio::test]
async fn a_finish_after_the_lease_ran_out_writes_nothing() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        store.claim("slow", SHORT, 3).await?;
        tokio::time::sleep(PAST_SHORT).await;
        // Nobody reclaimed it yet; the lease is still gone.
        let late = store.finish(id, "slow", &succeeded(), sign("result")).await;
        assert!(matches!(late, Err(StoreError::LeaseLost(_))), "{late:?}");
        assert_eq!(store.tree_head().await?.size, 1);
        assert_eq!(store.job(id).await?.status, JobStatus::Running);
        assert_eq!(store.job_entry(id, EntryKind::Result).await?, None);
    })
}

#[tokio::test]
async fn concurrent_claimers_never_get_the_same_job() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let jobs = 40;
        for _ in 0..jobs {
            submit(&store, &fx).await?;
        }
        // On PostgreSQL the claimers also come from a second pool: another server.
        let other = if db.is_postgres() {
            Some(db.store().await?)
        } else {
            None
        };
        let mut tasks = Vec::new();
        for worker in 0..8 {
            let s = match (&other, worker % 2) {
                (Some(o), 1) => o.clone(),
                _ => store.clone(),
            };
            tasks.push(tokio::spawn(async move {
                let name = format!("worker-{worker}");
                let mut got = Vec::new();
                while let Some(c) = s.claim(&name, LONG, 3).await? {
                    got.push(c.job.id);
                }
                Ok::<_, StoreError>(got)
            }));
        }
        let mut seen = HashSet::new();
        for task in tasks {
            for id in task.await?? {
                assert!(seen.insert(id), "job {id} claimed twice");
            }
        }
        assert_eq!(seen.len(), jobs);
        if let Some(o) = other {
            o.close().await;
        }
    })
}

#[tokio::test]
async fn cancelling_a_queued_job_ends_it_at_once_with_a_result_entry() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        let Cancelled::Now(job, entry) = store
            .cancel(id, "cancelled by the evaluator", sign("result"))
            .await?
        else {
            anyhow::bail!("a queued job should end at once");
        };
        assert_eq!(job.status, JobStatus::Cancelled);
        assert_eq!(job.reason.as_deref(), Some("cancelled by the evaluator"));
        assert_eq!(entry.kind, EntryKind::Result);
        assert!(store.claim("w", LONG, 3).await?.is_none());
        let again = store.cancel(id, "again", sign("result")).await;
        assert!(
            matches!(again, Err(StoreError::InvalidState { .. })),
            "{again:?}"
        );
        assert_eq!(store.tree_head().await?.size, 2);
    })
}

#[tokio::test]
async fn cancelling_a_running_job_flags_it_for_its_worker() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        store.claim("w", LONG, 3).await?;
        let Cancelled::Requested(job) = store.cancel(id, "stop", sign("result")).await? else {
            anyhow::bail!("a running job is only flagged");
        };
        assert!(job.cancel_requested);
        assert_eq!(store.tree_head().await?.size, 1);
        let renewed = store.renew(id, "w", LONG).await?;
        assert!(renewed.cancel_requested);
        let outcome = Outcome {
            status: JobStatus::Cancelled,
            reason: Some("stop".into()),
            report: None,
            identity: None,
        };
        let (ended, _) = store.finish(id, "w", &outcome, sign("result")).await?;
        assert_eq!(ended.status, JobStatus::Cancelled);
    })
}

#[tokio::test]
async fn a_dead_workers_cancelled_job_is_handed_out_to_be_cancelled() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        store.claim("dies", SHORT, 3).await?;
        store.cancel(id, "stop", sign("result")).await?;
        tokio::time::sleep(PAST_SHORT).await;
        let c = store
            .claim("next", LONG, 3)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no claim"))?;
        assert_eq!((c.job.id, c.disposition), (id, Disposition::Cancel));
        assert_eq!(c.job.reason.as_deref(), Some("stop"));
    })
}

#[tokio::test]
async fn progress_and_usage_are_recorded_while_the_lease_is_held() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let id = submit(&store, &fx).await?;
        assert_eq!(store.job_usage(id).await?, None);
        store.claim("w", LONG, 3).await?;
        let usage = Usage {
            queries: 3,
            input_tokens: 40,
            output_tokens: 5,
        };
        store.record_progress(id, "w", 3, &usage).await?;
        store.record_progress(id, "w", 3, &usage).await?;
        assert_eq!(store.job(id).await?.done, 3);
        assert_eq!(store.job_usage(id).await?, Some(usage));
        let stranger = store.record_progress(id, "x", 9, &usage).await;
        assert!(
            matches!(stranger, Err(StoreError::LeaseLost(_))),
            "{stranger:?}"
        );
        assert_eq!(store.job(id).await?.done, 3);
    })
}

/// One evaluator's long queue does not hold another's job back: the next claim after the
/// other submits is its job, and with one worker the two alternate. (One FIFO handed out all
/// sixty first.)
#[tokio::test]
async fn claims_are_fair_across_evaluators_not_one_fifo() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let mut busy = Vec::new();
        for _ in 0..60 {
            busy.push(submit(&store, &fx).await?);
        }
        let other = store
            .create_account(
                "other-lab",
                proctor_store::Role::Evaluator,
                Some(proctor_store::Tier::Academic),
            )
            .await?;
        let (eval, _) = store
            .put_eval(
                other.id,
                b"\0asm component",
                &proctor_store::EvalDescription {
                    name: "arith".into(),
                    version: "0.1.0".into(),
                    metrics: "[]".into(),
                },
            )
            .await?;
        let (dataset, _) = store
            .put_dataset(other.id, b"{\"a\":1,\"b\":2}\n", 1)
            .await?;
        let claim = async || -> anyhow::Result<JobId> {
            // Claims a few milliseconds apart, so "served least recently" never ties on the
            // database's millisecond clock.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let claimed = store
                .claim("worker", LONG, 3)
                .await?
                .ok_or_else(|| anyhow::anyhow!("nothing claimed"))?;
            Ok(claimed.job.id)
        };
        // Sixty jobs submitted in a burst share milliseconds of `created_at`, so which of the
        // busy evaluator's jobs comes first among them is not fixed: only whose it is.
        let busy_first = claim().await?;
        assert!(busy.contains(&busy_first));
        // Then the other evaluator submits one: it is the next claim.
        let mut job = fx.job();
        job.evaluator = other.id;
        job.eval = eval.digest;
        job.dataset = dataset.digest;
        let (single, _) = store.submit_job(&job, sign("accepted")).await?;
        assert_eq!(
            claim().await?,
            single.id,
            "the single job waited behind the queue"
        );
        // Both have one running: the busy one's next job.
        let busy_second = claim().await?;
        assert!(busy.contains(&busy_second) && busy_second != busy_first);
        // With one worker, served in turn: finish everything running, then the other's next
        // job (submitted after all sixty) comes before the busy one's third.
        for id in [busy_first, single.id, busy_second] {
            store
                .finish(id, "worker", &succeeded(), sign("result"))
                .await?;
        }
        let (second, _) = store.submit_job(&job, sign("accepted")).await?;
        assert_eq!(claim().await?, second.id);
        let busy_third = claim().await?;
        assert!(busy.contains(&busy_third) && ![busy_first, busy_second].contains(&busy_third));
    })
}
