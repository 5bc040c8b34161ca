//! Grants, approval, revocation, metering (issue 5) and the ledger per (evaluator, model) with
//! its model-wide caps (issue 11).

use std::time::Duration;

use proctor_store::{
    AccountId, Approval, ApprovalMode, Budget, Budgets, Grant, Grantee, Hold, JobDemand, JobStatus,
    ModelCaps, ModelId, NewGrant, NewModel, Refusal, Role, Store, StoreError, Tier, Timestamp,
    WorstCase,
};

use crate::common::{Fixture, one_by_one, sign, sign_under};
use crate::on_every_backend;

const LEASE: Duration = Duration::from_secs(60);

fn new_grant(fx: &Fixture, grantee: Grantee) -> NewGrant {
    NewGrant {
        vendor: fx.vendor,
        model: fx.model,
        grantee,
        policy_name: "standard".into(),
        policy_overrides: "{}".into(),
        budgets: Budgets::default(),
        approval: ApprovalMode::Auto,
        expires_at: None,
    }
}

/// A tier grant of the fixture's model to academics, with `budgets`.
pub async fn grant(store: &Store, fx: &Fixture, budgets: Budgets) -> anyhow::Result<Grant> {
    let mut new = new_grant(fx, Grantee::Tier(Tier::Academic));
    new.budgets = budgets;
    Ok(store.create_grant(&new).await?)
}

async fn evaluator(store: &Store, name: &str, tier: Tier) -> anyhow::Result<AccountId> {
    Ok(store
        .create_account(name, Role::Evaluator, Some(tier))
        .await?
        .id)
}

/// The refusal inside a `NoGrant` error, or a failure naming what came instead.
fn refusal<T: std::fmt::Debug>(result: Result<T, StoreError>) -> anyhow::Result<Refusal> {
    match result {
        Err(StoreError::NoGrant(reason)) => Ok(reason),
        other => anyhow::bail!("expected NoGrant, got {other:?}"),
    }
}

fn exhausted<T: std::fmt::Debug>(result: Result<T, StoreError>) -> anyhow::Result<Budget> {
    match result {
        Err(StoreError::BudgetExhausted(budget)) => Ok(budget),
        other => anyhow::bail!("expected BudgetExhausted, got {other:?}"),
    }
}

fn dp(epsilon: f64) -> JobDemand {
    JobDemand {
        epsilon: Some(epsilon),
        ..JobDemand::default()
    }
}

/// A job without DP whose leakage bound is `bits`.
fn leaking(bits: f64) -> JobDemand {
    JobDemand {
        bits,
        ..JobDemand::default()
    }
}

async fn log_size(store: &Store) -> anyhow::Result<u64> {
    Ok(store.tree_head().await?.size)
}

#[tokio::test]
async fn a_tier_grant_covers_every_evaluator_of_that_tier_and_no_other() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let made = grant(&store, &fx, Budgets::default()).await?;
        assert_eq!(store.grant_for(fx.evaluator, fx.model).await?.id, made.id);
        let second_lab = evaluator(&store, "lab-2", Tier::Academic).await?;
        assert_eq!(store.grant_for(second_lab, fx.model).await?.id, made.id);

        let auditor = evaluator(&store, "audit", Tier::Auditor).await?;
        assert_eq!(
            refusal(store.grant_for(auditor, fx.model).await)?,
            Refusal::NotGranted
        );
        let other_model = store
            .register_model(&NewModel {
                owner: fx.vendor,
                name: "other".into(),
                version: "1".into(),
                adapter: "builtin".into(),
                config: "{}".into(),
                credential: None,
            })
            .await?;
        assert_eq!(
            refusal(store.grant_for(fx.evaluator, other_model.id).await)?,
            Refusal::NotGranted
        );
        // A vendor is no evaluator.
        assert_eq!(
            refusal(store.grant_for(fx.vendor, fx.model).await)?,
            Refusal::NotAnEvaluator
        );
        // An auditor's job under the academic grant is refused at acceptance, writing nothing.
        let mut job = fx.job();
        job.evaluator = auditor;
        assert_eq!(
            refusal(
                store
                    .submit_job_under(made.id, &JobDemand::default(), &job, sign_under("accepted"))
                    .await
            )?,
            Refusal::NotGranted
        );
        assert_eq!(store.jobs_of(auditor, 10).await?.len(), 0);
        assert_eq!(log_size(&store).await?, 0);
        assert_eq!(store.grants_for_evaluator(second_lab).await?, vec![made]);
        assert!(store.grants_for_evaluator(auditor).await?.is_empty());
    })
}

#[tokio::test]
async fn an_account_grant_covers_only_that_account_and_comes_before_its_tier_grant()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let tier = grant(&store, &fx, Budgets::default()).await?;
        let named = store
            .create_grant(&new_grant(&fx, Grantee::Account(fx.evaluator)))
            .await?;
        assert_eq!(named.grantee, Grantee::Account(fx.evaluator));
        assert_eq!(store.grant_for(fx.evaluator, fx.model).await?.id, named.id);
        let second_lab = evaluator(&store, "lab-2", Tier::Academic).await?;
        assert_eq!(store.grant_for(second_lab, fx.model).await?.id, tier.id);
        let vendor_grants = store.grants_of_vendor(fx.vendor).await?;
        assert_eq!(vendor_grants.len(), 2);

        // Revoking the account's grant leaves the tier's: revocation ends a grant, not a tier.
        store
            .revoke_grant(fx.vendor, named.id, sign("result"))
            .await?;
        assert_eq!(store.grant_for(fx.evaluator, fx.model).await?.id, tier.id);

        // An account grantee must exist and be an evaluator.
        let missing = store
            .create_grant(&new_grant(&fx, Grantee::Account(AccountId::new())))
            .await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
        let not_evaluator = store
            .create_grant(&new_grant(&fx, Grantee::Account(fx.vendor)))
            .await;
        assert!(
            matches!(not_evaluator, Err(StoreError::Invalid(_))),
            "{not_evaluator:?}"
        );
    })
}

#[tokio::test]
async fn commercial_evaluators_get_access_only_from_a_grant_that_names_them() -> anyhow::Result<()>
{
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let shop = evaluator(&store, "shop", Tier::Commercial).await?;
        assert_eq!(
            refusal(store.grant_for(shop, fx.model).await)?,
            Refusal::CommercialTier
        );
        // Tier grants to academics do not reach commercial evaluators...
        grant(&store, &fx, Budgets::default()).await?;
        assert_eq!(
            refusal(store.grant_for(shop, fx.model).await)?,
            Refusal::CommercialTier
        );
        // ...and a commercial tier grant cannot be made.
        let refused = store
            .create_grant(&new_grant(&fx, Grantee::Tier(Tier::Commercial)))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{refused:?}"
        );
        // Named, it is covered.
        let named = store
            .create_grant(&new_grant(&fx, Grantee::Account(shop)))
            .await?;
        assert_eq!(store.grant_for(shop, fx.model).await?.id, named.id);
    })
}

#[tokio::test]
async fn only_the_vendor_that_owns_a_model_can_grant_it() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let rival = store.create_account("rival", Role::Vendor, None).await?;
        let mut new = new_grant(&fx, Grantee::Tier(Tier::Academic));
        new.vendor = rival.id;
        let refused = store.create_grant(&new).await;
        assert!(
            matches!(refused, Err(StoreError::NotFound("model"))),
            "{refused:?}"
        );
        new.model = ModelId::new();
        let unknown = store.create_grant(&new).await;
        assert!(
            matches!(unknown, Err(StoreError::NotFound("model"))),
            "{unknown:?}"
        );
        assert!(store.grants_of_vendor(rival.id).await?.is_empty());
    })
}

#[tokio::test]
async fn an_expired_grant_covers_no_new_job_and_no_further_query() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let now = store.now().await?;
        let mut past = new_grant(&fx, Grantee::Tier(Tier::Academic));
        past.expires_at = Some(Timestamp(now.0 - 1));
        let past = store.create_grant(&past).await?;
        assert_eq!(
            refusal(store.grant_for(fx.evaluator, fx.model).await)?,
            Refusal::Expired
        );
        assert_eq!(
            refusal(
                store
                    .submit_job_under(
                        past.id,
                        &JobDemand::default(),
                        &fx.job(),
                        sign_under("accepted")
                    )
                    .await
            )?,
            Refusal::Expired
        );
        assert_eq!(log_size(&store).await?, 0);

        // A grant that expires while its job runs stops covering the job's queries.
        let mut soon = new_grant(&fx, Grantee::Account(fx.evaluator));
        soon.expires_at = Some(Timestamp(store.now().await?.0 + 1_500));
        let soon = store.create_grant(&soon).await?;
        let (job, _, _) = store
            .submit_job_under(
                soon.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        one_by_one(&store, soon.id, job.id).reserve(10).await?;
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        assert_eq!(
            refusal(one_by_one(&store, soon.id, job.id).reserve(10).await)?,
            Refusal::Expired
        );
        assert_eq!(
            refusal(store.grant_for(fx.evaluator, fx.model).await)?,
            Refusal::Expired
        );
    })
}

#[tokio::test]
async fn revoking_a_grant_ends_its_queued_jobs_flags_its_running_ones_and_refuses_new_work()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(&store, &fx, Budgets::default()).await?;
        let (first, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let (second, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let claimed = store
            .claim("w1", LEASE, 3)
            .await?
            .ok_or_else(|| anyhow::anyhow!("nothing to claim"))?;
        // Both jobs may share a millisecond, so either may be the one claimed.
        let (running, queued) = if claimed.job.id == first.id {
            (first, second)
        } else {
            (second, first)
        };

        let rival = store.create_account("rival", Role::Vendor, None).await?;
        let foreign = store.revoke_grant(rival.id, g.id, sign("result")).await;
        assert!(
            matches!(foreign, Err(StoreError::NotFound("grant"))),
            "{foreign:?}"
        );

        let revocation = store.revoke_grant(fx.vendor, g.id, sign("result")).await?;
        assert!(revocation.grant.revoked_at.is_some());
        assert_eq!(revocation.ended.len(), 1);
        let (ended, entry) = &revocation.ended[0];
        assert_eq!(ended.id, queued.id);
        assert_eq!(store.job(queued.id).await?.status, JobStatus::Revoked);
        assert_eq!(
            entry.envelope,
            format!("result {} 2", queued.id).into_bytes()
        );
        assert_eq!(revocation.running.len(), 1);
        assert_eq!(revocation.running[0].id, running.id);
        assert!(store.renew(running.id, "w1", LEASE).await?.cancel_requested);

        assert_eq!(
            refusal(store.grant_for(fx.evaluator, fx.model).await)?,
            Refusal::Revoked
        );
        assert_eq!(
            refusal(one_by_one(&store, g.id, running.id).reserve(10).await)?,
            Refusal::Revoked
        );
        let size = log_size(&store).await?;
        assert_eq!(
            refusal(
                store
                    .submit_job_under(
                        g.id,
                        &JobDemand::default(),
                        &fx.job(),
                        sign_under("accepted")
                    )
                    .await
            )?,
            Refusal::Revoked
        );
        assert_eq!(log_size(&store).await?, size);
        assert_eq!(store.jobs_of(fx.evaluator, 10).await?.len(), 2);
        assert!(store.claim("w2", LEASE, 3).await?.is_none());

        // Revoking again keeps the first time and finds nothing left to end.
        let again = store.revoke_grant(fx.vendor, g.id, sign("result")).await?;
        assert_eq!(again.grant.revoked_at, revocation.grant.revoked_at);
        assert!(again.ended.is_empty());
    })
}

#[tokio::test]
async fn a_job_under_a_manual_grant_is_never_claimed_until_its_vendor_approves_it()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let mut new = new_grant(&fx, Grantee::Tier(Tier::Academic));
        new.approval = ApprovalMode::Manual;
        let g = store.create_grant(&new).await?;
        let (job, accepted, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        assert_eq!(accepted.approval, Approval::Pending);
        assert_eq!(store.job(job.id).await?.status, JobStatus::Queued);
        assert!(store.claim("w1", LEASE, 3).await?.is_none());
        assert_eq!(
            refusal(one_by_one(&store, g.id, job.id).reserve(10).await)?,
            Refusal::NotApproved
        );
        let waiting = store.awaiting_approval(fx.vendor).await?;
        assert_eq!(
            waiting.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![job.id]
        );

        let rival = store.create_account("rival", Role::Vendor, None).await?;
        assert!(store.awaiting_approval(rival.id).await?.is_empty());
        let foreign = store.approve_job(rival.id, job.id).await;
        assert!(
            matches!(foreign, Err(StoreError::NotFound("job"))),
            "{foreign:?}"
        );
        assert!(store.claim("w1", LEASE, 3).await?.is_none());

        store.approve_job(fx.vendor, job.id).await?;
        assert_eq!(
            store.job_grant(job.id).await?.map(|j| j.approval),
            Some(Approval::Approved)
        );
        assert!(store.awaiting_approval(fx.vendor).await?.is_empty());
        let again = store.approve_job(fx.vendor, job.id).await;
        assert!(
            matches!(again, Err(StoreError::InvalidState { .. })),
            "{again:?}"
        );
        let claimed = store
            .claim("w1", LEASE, 3)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the approved job was not claimable"))?;
        assert_eq!(claimed.job.id, job.id);
        one_by_one(&store, g.id, job.id).reserve(10).await?;
    })
}

#[tokio::test]
async fn a_rejected_job_ends_cancelled_with_its_result_entry_and_never_runs() -> anyhow::Result<()>
{
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let mut new = new_grant(&fx, Grantee::Tier(Tier::Academic));
        new.approval = ApprovalMode::Manual;
        let g = store.create_grant(&new).await?;
        let (job, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let (ended, entry) = store
            .reject_job(fx.vendor, job.id, "not this eval", sign("result"))
            .await?;
        assert_eq!(ended.status, JobStatus::Cancelled);
        assert_eq!(
            ended.reason.as_deref(),
            Some("the vendor rejected the job: not this eval")
        );
        assert_eq!(entry.index, 1);
        assert_eq!(
            store.job_grant(job.id).await?.map(|j| j.approval),
            Some(Approval::Rejected)
        );
        assert!(store.claim("w1", LEASE, 3).await?.is_none());
        let again = store
            .reject_job(fx.vendor, job.id, "again", sign("result"))
            .await;
        assert!(
            matches!(again, Err(StoreError::InvalidState { .. })),
            "{again:?}"
        );
        let approve = store.approve_job(fx.vendor, job.id).await;
        assert!(
            matches!(approve, Err(StoreError::InvalidState { .. })),
            "{approve:?}"
        );
        assert_eq!(log_size(&store).await?, 2);
    })
}

#[tokio::test]
async fn each_budget_refuses_exactly_the_unit_that_would_exceed_it() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let cases = [
            (
                Budgets {
                    queries_per_day: Some(3),
                    ..Budgets::default()
                },
                Budget::QueriesPerDay,
            ),
            (
                Budgets {
                    queries_total: Some(3),
                    ..Budgets::default()
                },
                Budget::QueriesTotal,
            ),
            (
                Budgets {
                    tokens_per_day: Some(30),
                    ..Budgets::default()
                },
                Budget::TokensPerDay,
            ),
            (
                Budgets {
                    tokens_total: Some(30),
                    ..Budgets::default()
                },
                Budget::TokensTotal,
            ),
        ];
        for (budgets, budget) in cases {
            let g = grant(&store, &fx, budgets).await?;
            let (job, _, _) = store
                .submit_job_under(
                    g.id,
                    &JobDemand::default(),
                    &fx.job(),
                    sign_under("accepted"),
                )
                .await?;
            // Three queries of 10 tokens fit either kind of budget; the fourth does not.
            for _ in 0..3 {
                one_by_one(&store, g.id, job.id).reserve(10).await?;
            }
            assert_eq!(
                exhausted(one_by_one(&store, g.id, job.id).reserve(10).await)?,
                budget
            );
            if matches!(budget, Budget::TokensPerDay | Budget::TokensTotal) {
                // A query that needs no tokens still fits a token budget that is exactly spent.
                one_by_one(&store, g.id, job.id).reserve(0).await?;
            }
        }

        let g = grant(
            &store,
            &fx,
            Budgets {
                jobs_per_day: Some(2),
                ..Budgets::default()
            },
        )
        .await?;
        for _ in 0..2 {
            store
                .submit_job_under(
                    g.id,
                    &JobDemand::default(),
                    &fx.job(),
                    sign_under("accepted"),
                )
                .await?;
        }
        let jobs = store.jobs_of(fx.evaluator, 100).await?.len();
        let size = log_size(&store).await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(
                        g.id,
                        &JobDemand::default(),
                        &fx.job(),
                        sign_under("accepted")
                    )
                    .await
            )?,
            Budget::JobsPerDay
        );
        assert_eq!(store.jobs_of(fx.evaluator, 100).await?.len(), jobs);
        assert_eq!(log_size(&store).await?, size);
        assert_eq!(
            store.remaining_budget(g.id).await?.jobs_today.remaining(),
            Some(0)
        );
    })
}

#[tokio::test]
async fn sixty_four_concurrent_reservers_on_two_servers_get_exactly_the_budget()
-> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        const QUERIES: u64 = 50;
        const TOKENS: u64 = 1_000;
        let fx = Fixture::new(&store).await?;
        // Two pools on one database are two servers (on SQLite they share the file).
        let second = db.store().await?;
        // Queries run out first in one grant, tokens in the other (1000 / 40 = 25).
        for (budgets, expected) in [
            (
                Budgets {
                    queries_total: Some(QUERIES),
                    ..Budgets::default()
                },
                QUERIES,
            ),
            (
                Budgets {
                    queries_per_day: Some(QUERIES),
                    tokens_total: Some(TOKENS),
                    ..Budgets::default()
                },
                TOKENS / 40,
            ),
        ] {
            let g = grant(&store, &fx, budgets).await?;
            let (job, _, _) = store
                .submit_job_under(
                    g.id,
                    &JobDemand::default(),
                    &fx.job(),
                    sign_under("accepted"),
                )
                .await?;
            let mut tasks = Vec::new();
            for task in 0..64 {
                let s: Store = if task % 2 == 0 {
                    store.clone()
                } else {
                    second.clone()
                };
                let grant = g.id;
                tasks.push(tokio::spawn(async move {
                    let mut held = Vec::new();
                    loop {
                        match one_by_one(&s, grant, job.id).reserve(40).await {
                            Ok(r) => held.push(r),
                            Err(StoreError::BudgetExhausted(_)) => break,
                            Err(e) => return Err(e),
                        }
                    }
                    Ok::<_, StoreError>(held)
                }));
            }
            let mut granted = Vec::new();
            for task in tasks {
                granted.extend(task.await??);
            }
            assert_eq!(granted.len() as u64, expected, "{budgets:?}");
            let remaining = store.remaining_budget(g.id).await?;
            assert_eq!(remaining.queries_total.reserved, expected);
            assert_eq!(remaining.tokens_total.reserved, expected * 40);
            // Settling at the worst case keeps the budget spent: still not one more.
            for r in &granted {
                assert!(one_by_one(&store, g.id, job.id).settle(r, 30, 10).await?);
            }
            assert!(one_by_one(&store, g.id, job.id).reserve(40).await.is_err());
            let remaining = store.remaining_budget(g.id).await?;
            assert_eq!(remaining.queries_total.used, expected);
            assert_eq!(remaining.queries_total.reserved, 0);
            assert_eq!(remaining.tokens_total.used, expected * 40);
            assert_eq!(store.metered_usage(job.id).await?.queries, expected);
        }
        second.close().await;
    })
}

#[tokio::test]
async fn settling_replaces_the_worst_case_by_actual_usage_once_and_releasing_gives_it_back()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                tokens_total: Some(150),
                ..Budgets::default()
            },
        )
        .await?;
        let (job, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let first = one_by_one(&store, g.id, job.id).reserve(100).await?;
        assert_eq!(
            exhausted(one_by_one(&store, g.id, job.id).reserve(100).await)?,
            Budget::TokensTotal
        );
        let before = store.remaining_budget(g.id).await?;
        assert_eq!(
            (before.tokens_total.used, before.tokens_total.reserved),
            (0, 100)
        );
        assert_eq!(before.queries_today.reserved, 1);

        let meter = one_by_one(&store, g.id, job.id);
        assert!(meter.settle(&first, 30, 20).await?);
        // Settling again (a retry) counts nothing twice: the block is done.
        assert!(!meter.settle(&first, 99, 99).await?);
        let after = store.remaining_budget(g.id).await?;
        assert_eq!(
            (after.tokens_total.used, after.tokens_total.reserved),
            (50, 0)
        );
        assert_eq!(
            (after.queries_today.used, after.queries_today.reserved),
            (1, 0)
        );
        assert_eq!(after.tokens_total.remaining(), Some(100));
        // Nor can a settled query be given back.
        assert!(!meter.give_back(&first).await?);

        // A failed request gives its reservation back, once.
        let second = meter.reserve(100).await?;
        assert_eq!(exhausted(meter.reserve(1).await)?, Budget::TokensTotal);
        assert!(meter.give_back(&second).await?);
        assert!(!meter.give_back(&second).await?);
        assert!(!meter.settle(&second, 1, 1).await?);
        let end = store.remaining_budget(g.id).await?;
        assert_eq!((end.tokens_total.used, end.tokens_total.reserved), (50, 0));
        assert_eq!(end.queries_total.used, 1);

        let usage = store.metered_usage(job.id).await?;
        assert_eq!(
            (usage.queries, usage.input_tokens, usage.output_tokens),
            (1, 30, 20)
        );
        let report = store.usage_report(fx.vendor).await?;
        assert_eq!(report.len(), 1);
        assert_eq!(
            (
                report[0].grant,
                report[0].job,
                report[0].evaluator,
                report[0].model
            ),
            (g.id, job.id, fx.evaluator, fx.model)
        );
        assert_eq!(report[0].usage, usage);
        assert_eq!(report[0].in_flight, 0);
        let rival = store.create_account("rival", Role::Vendor, None).await?;
        assert!(store.usage_report(rival.id).await?.is_empty());

        // A job not accepted under the grant cannot spend from it.
        let (stray, _) = store.submit_job(&fx.job(), sign("accepted")).await?;
        assert_eq!(
            refusal(one_by_one(&store, g.id, stray.id).reserve(1).await)?,
            Refusal::NotGranted
        );
    })
}

#[tokio::test]
async fn an_exhausted_epsilon_ledger_refuses_the_next_job_and_writes_nothing() -> anyhow::Result<()>
{
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                epsilon_total: Some(1.0),
                ..Budgets::default()
            },
        )
        .await?;
        for _ in 0..3 {
            let (_, accepted, _) = store
                .submit_job_under(g.id, &dp(0.3), &fx.job(), sign_under("accepted"))
                .await?;
            assert_eq!(accepted.epsilon, Some(0.3));
        }
        let jobs = store.jobs_of(fx.evaluator, 100).await?.len();
        let size = log_size(&store).await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &dp(0.2), &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::Epsilon
        );
        assert_eq!(store.jobs_of(fx.evaluator, 100).await?.len(), jobs);
        assert_eq!(log_size(&store).await?, size);
        // What is left (0.1) is spent exactly; then not even a millionth more.
        store
            .submit_job_under(g.id, &dp(0.1), &fx.job(), sign_under("accepted"))
            .await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &dp(1e-6), &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::Epsilon
        );
        let remaining = store.remaining_budget(g.id).await?;
        assert_eq!(remaining.epsilon_spent, 1.0);
        assert_eq!(remaining.epsilon_total, Some(1.0));
        let bad = store
            .submit_job_under(g.id, &dp(f64::NAN), &fx.job(), sign_under("accepted"))
            .await;
        assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    })
}

#[tokio::test]
async fn concurrent_submissions_never_overspend_the_epsilon_ledger() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                epsilon_total: Some(1.0),
                ..Budgets::default()
            },
        )
        .await?;
        let second = db.store().await?;
        let mut tasks = Vec::new();
        for task in 0..16 {
            let s: Store = if task % 2 == 0 {
                store.clone()
            } else {
                second.clone()
            };
            let job = fx.job();
            let grant = g.id;
            tasks.push(tokio::spawn(async move {
                s.submit_job_under(grant, &dp(0.1), &job, sign_under("accepted"))
                    .await
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            match task.await? {
                Ok(_) => accepted += 1,
                Err(StoreError::BudgetExhausted(Budget::Epsilon)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        assert_eq!(accepted, 10);
        assert_eq!(store.jobs_of(fx.evaluator, 100).await?.len(), 10);
        assert_eq!(log_size(&store).await?, 10);
        second.close().await;
    })
}

#[tokio::test]
async fn revoking_a_manual_grant_ends_the_jobs_still_awaiting_approval() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let mut new = new_grant(&fx, Grantee::Account(fx.evaluator));
        new.approval = ApprovalMode::Manual;
        let g = store.create_grant(&new).await?;
        let (job, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let revocation = store.revoke_grant(fx.vendor, g.id, sign("result")).await?;
        assert_eq!(revocation.ended.len(), 1);
        assert!(revocation.running.is_empty());
        let ended = store.job(job.id).await?;
        assert_eq!(ended.status, JobStatus::Revoked);
        assert_eq!(ended.reason.as_deref(), Some(proctor_store::REVOKED_REASON));
        assert!(store.awaiting_approval(fx.vendor).await?.is_empty());
        let approve = store.approve_job(fx.vendor, job.id).await;
        assert!(
            matches!(approve, Err(StoreError::InvalidState { .. })),
            "{approve:?}"
        );
        assert!(store.claim("w1", LEASE, 3).await?.is_none());
        assert_eq!(log_size(&store).await?, 2);
    })
}

#[tokio::test]
async fn a_dp_job_holds_its_worst_case_from_acceptance_and_gives_back_the_rest_when_it_ends()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                queries_total: Some(10),
                tokens_total: Some(1_000),
                epsilon_total: Some(10.0),
                ..Budgets::default()
            },
        )
        .await?;
        let demand = JobDemand {
            epsilon: Some(0.5),
            bits: 12.5,
            hold: Some(Hold {
                queries: 6,
                tokens: 600,
            }),
        };
        let (held, accepted, _) = store
            .submit_job_under(g.id, &demand, &fx.job(), sign_under("accepted"))
            .await?;
        assert_eq!(accepted.hold, demand.hold);
        let remaining = store.remaining_budget(g.id).await?;
        assert_eq!(remaining.queries_total.reserved, 6);
        assert_eq!(remaining.tokens_total.reserved, 600);
        let worst = WorstCase {
            queries_today: 6,
            tokens_today: 600,
            queries_total: 6,
            tokens_total: 600,
        };
        assert_eq!(remaining.worst_case, worst);

        // A second such job does not fit beside the first, and is refused whole.
        let size = log_size(&store).await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &demand, &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::QueriesTotal
        );
        assert_eq!(log_size(&store).await?, size);
        assert_eq!(store.remaining_budget(g.id).await?.epsilon_spent, 0.5);

        // Other jobs cannot take what the DP job holds.
        let (plain, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        for _ in 0..4 {
            one_by_one(&store, g.id, plain.id).reserve(10).await?;
        }
        assert_eq!(
            exhausted(one_by_one(&store, g.id, plain.id).reserve(10).await)?,
            Budget::QueriesTotal
        );

        // The DP job draws from its hold only, and a released query goes back to the hold.
        let mut drawn = Vec::new();
        for _ in 0..4 {
            drawn.push(one_by_one(&store, g.id, held.id).reserve(100).await?);
        }
        assert!(
            one_by_one(&store, g.id, held.id)
                .give_back(&drawn[3])
                .await?
        );
        drawn[3] = one_by_one(&store, g.id, held.id).reserve(100).await?;
        assert_eq!(
            exhausted(one_by_one(&store, g.id, held.id).reserve(300).await)?,
            Budget::JobWorstCase
        );
        for r in &drawn {
            assert!(one_by_one(&store, g.id, held.id).settle(r, 60, 20).await?);
        }
        let job_grant = store
            .job_grant(held.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no job grant"))?;
        assert_eq!(
            job_grant.hold,
            Some(Hold {
                queries: 2,
                tokens: 200
            })
        );

        // The hold is kept while the job may still run, and given back once when it ends.
        let early = store.release_job_hold(held.id).await;
        assert!(
            matches!(early, Err(StoreError::InvalidState { .. })),
            "{early:?}"
        );
        store.cancel(held.id, "done early", sign("result")).await?;
        assert_eq!(
            store.release_job_hold(held.id).await?,
            Some(Hold {
                queries: 2,
                tokens: 200
            })
        );
        assert_eq!(store.release_job_hold(held.id).await?, None);
        assert_eq!(store.release_ended_holds().await?, 0);
        let remaining = store.remaining_budget(g.id).await?;
        assert_eq!(remaining.queries_total.used, 4);
        assert_eq!(remaining.tokens_total.used, 320);
        assert_eq!(remaining.queries_total.reserved, 4);
        assert_eq!(remaining.queries_total.remaining(), Some(2));
        // The worst case held at acceptance is what it was, whatever the queries did.
        assert_eq!(remaining.worst_case, worst);
        // What came back is free for others now.
        one_by_one(&store, g.id, plain.id).reserve(10).await?;
        one_by_one(&store, g.id, plain.id).reserve(10).await?;
        assert!(
            one_by_one(&store, g.id, plain.id)
                .reserve(10)
                .await
                .is_err()
        );
    })
}

#[tokio::test]
async fn under_dp_whether_a_job_fits_the_grant_does_not_depend_on_what_earlier_jobs_used()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                queries_total: Some(13),
                epsilon_total: Some(10.0),
                ..Budgets::default()
            },
        )
        .await?;
        let demand = JobDemand {
            epsilon: Some(0.5),
            bits: 1.0,
            hold: Some(Hold {
                queries: 6,
                tokens: 600,
            }),
        };
        // The first job queries once and ends: most of its hold goes back to the grant.
        let (first, _, _) = store
            .submit_job_under(g.id, &demand, &fx.job(), sign_under("accepted"))
            .await?;
        let r = one_by_one(&store, g.id, first.id).reserve(100).await?;
        assert!(one_by_one(&store, g.id, first.id).settle(&r, 10, 1).await?);
        store.cancel(first.id, "done", sign("result")).await?;
        store.release_job_hold(first.id).await?;
        assert_eq!(store.remaining_budget(g.id).await?.queries_total.used, 1);
        // A second fits beside the first's worst case (12 of 13); a third would not, although
        // the grant's live counters have room for it (1 used + 6 held + 6 = 13): acceptance
        // counts every DP job at its worst case,
        // so it tells nothing of what the first job's model outputs made it do.
        store
            .submit_job_under(g.id, &demand, &fx.job(), sign_under("accepted"))
            .await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &demand, &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::QueriesTotal
        );
    })
}

#[tokio::test]
async fn holds_left_by_a_crash_are_given_back_by_the_sweep() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                queries_total: Some(5),
                ..Budgets::default()
            },
        )
        .await?;
        let demand = JobDemand {
            hold: Some(Hold {
                queries: 5,
                tokens: 50,
            }),
            ..JobDemand::default()
        };
        let (job, _, _) = store
            .submit_job_under(g.id, &demand, &fx.job(), sign_under("accepted"))
            .await?;
        // Ended without its hold given back, as a server that died in between would leave it.
        store.cancel(job.id, "stop", sign("result")).await?;
        assert_eq!(
            store
                .remaining_budget(g.id)
                .await?
                .queries_total
                .remaining(),
            Some(0)
        );
        assert_eq!(store.release_ended_holds().await?, 1);
        assert_eq!(store.release_ended_holds().await?, 0);
        assert_eq!(
            store
                .remaining_budget(g.id)
                .await?
                .queries_total
                .remaining(),
            Some(5)
        );
    })
}

#[tokio::test]
async fn two_grants_covering_one_evaluator_on_one_model_draw_from_one_ledger() -> anyhow::Result<()>
{
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let budgets = Budgets {
            epsilon_total: Some(1.0),
            bits_total: Some(100.0),
            ..Budgets::default()
        };
        let tier = grant(&store, &fx, budgets).await?;
        let mut named = new_grant(&fx, Grantee::Account(fx.evaluator));
        named.budgets = budgets;
        let named = store.create_grant(&named).await?;
        let spend = |epsilon, bits| JobDemand {
            epsilon: Some(epsilon),
            bits,
            ..JobDemand::default()
        };

        // Spent under the account's grant...
        store
            .submit_job_under(
                named.id,
                &spend(0.6, 70.0),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        // ...is spent under the tier's grant too: neither starts a ledger of its own.
        let jobs = store.jobs_of(fx.evaluator, 100).await?.len();
        let size = log_size(&store).await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(tier.id, &spend(0.6, 1.0), &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::Epsilon
        );
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(
                        tier.id,
                        &spend(0.1, 31.0),
                        &fx.job(),
                        sign_under("accepted")
                    )
                    .await
            )?,
            Budget::BitsTotal
        );
        assert_eq!(store.jobs_of(fx.evaluator, 100).await?.len(), jobs);
        assert_eq!(log_size(&store).await?, size);
        store
            .submit_job_under(
                tier.id,
                &spend(0.4, 30.0),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let ledger = store.ledger(fx.evaluator, fx.model).await?;
        assert_eq!((ledger.epsilon_spent, ledger.bits_spent), (1.0, 100.0));
        // Each grant still records what its own jobs spent.
        assert_eq!(store.remaining_budget(named.id).await?.epsilon_spent, 0.6);
        assert_eq!(store.remaining_budget(tier.id).await?.epsilon_spent, 0.4);
        assert_eq!(store.remaining_budget(tier.id).await?.bits_spent, 30.0);

        // Another evaluator of the tier has a ledger of its own under the same tier grant.
        let second_lab = evaluator(&store, "lab-2", Tier::Academic).await?;
        let mut job = fx.job();
        job.evaluator = second_lab;
        store
            .submit_job_under(tier.id, &spend(0.6, 70.0), &job, sign_under("accepted"))
            .await?;
        assert_eq!(store.ledger(second_lab, fx.model).await?.epsilon_spent, 0.6);
        let model = store.model_ledger(fx.model).await?;
        assert_eq!((model.epsilon_spent, model.bits_spent), (1.6, 170.0));
    })
}

#[tokio::test]
async fn a_revoked_then_regranted_pair_keeps_its_spent_epsilon() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let mut new = new_grant(&fx, Grantee::Account(fx.evaluator));
        new.budgets.epsilon_total = Some(1.0);
        let first = store.create_grant(&new).await?;
        store
            .submit_job_under(first.id, &dp(0.7), &fx.job(), sign_under("accepted"))
            .await?;
        store
            .revoke_grant(fx.vendor, first.id, sign("result"))
            .await?;
        let again = store.create_grant(&new).await?;
        assert_eq!(store.grant_for(fx.evaluator, fx.model).await?.id, again.id);
        let size = log_size(&store).await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(again.id, &dp(0.5), &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::Epsilon
        );
        assert_eq!(log_size(&store).await?, size);
        store
            .submit_job_under(again.id, &dp(0.3), &fx.job(), sign_under("accepted"))
            .await?;
        assert_eq!(
            store.ledger(fx.evaluator, fx.model).await?.epsilon_spent,
            1.0
        );
    })
}

#[tokio::test]
async fn a_dp_job_under_a_grant_without_epsilon_total_is_refused() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        // The server refuses to make such a grant under a DP policy; one made before it did
        // still runs no DP job: the ledger is mandatory.
        let g = grant(&store, &fx, Budgets::default()).await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &dp(0.1), &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::Epsilon
        );
        assert_eq!(log_size(&store).await?, 0);
        assert!(store.jobs_of(fx.evaluator, 10).await?.is_empty());
        // A job without DP spends only its bits.
        let (_, accepted, _) = store
            .submit_job_under(g.id, &leaking(41.25), &fx.job(), sign_under("accepted"))
            .await?;
        assert_eq!((accepted.epsilon, accepted.bits), (None, 41.25));
    })
}

#[tokio::test]
async fn a_model_wide_cap_bounds_every_evaluator_together_and_only_its_vendor_sets_it()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                epsilon_total: Some(1.0),
                ..Budgets::default()
            },
        )
        .await?;
        let rival = store.create_account("rival", Role::Vendor, None).await?;
        let caps = ModelCaps {
            epsilon_total: Some(1.0),
            bits_total: Some(100.0),
        };
        let foreign = store.set_model_caps(rival.id, fx.model, caps).await;
        assert!(
            matches!(foreign, Err(StoreError::NotFound("model"))),
            "{foreign:?}"
        );
        let unknown = store.set_model_caps(fx.vendor, ModelId::new(), caps).await;
        assert!(
            matches!(unknown, Err(StoreError::NotFound("model"))),
            "{unknown:?}"
        );
        let bad = ModelCaps {
            epsilon_total: Some(f64::NAN),
            bits_total: None,
        };
        let refused = store.set_model_caps(fx.vendor, fx.model, bad).await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{refused:?}"
        );
        assert_eq!(
            store.model_ledger(fx.model).await?.caps,
            ModelCaps::default()
        );

        let set = store.set_model_caps(fx.vendor, fx.model, caps).await?;
        assert_eq!(set.caps, caps);
        let second_lab = evaluator(&store, "lab-2", Tier::Academic).await?;
        let mut theirs = fx.job();
        theirs.evaluator = second_lab;
        let spend = |epsilon, bits| JobDemand {
            epsilon: Some(epsilon),
            bits,
            ..JobDemand::default()
        };
        store
            .submit_job_under(g.id, &spend(0.6, 40.0), &fx.job(), sign_under("accepted"))
            .await?;
        // The second evaluator's own ledger has room; the model's does not.
        let size = log_size(&store).await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &spend(0.6, 1.0), &theirs, sign_under("accepted"))
                    .await
            )?,
            Budget::ModelEpsilon
        );
        store
            .submit_job_under(g.id, &spend(0.4, 50.0), &theirs, sign_under("accepted"))
            .await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &leaking(10.001), &theirs, sign_under("accepted"))
                    .await
            )?,
            Budget::ModelBits
        );
        assert_eq!(log_size(&store).await?, size + 1);
        assert_eq!(store.jobs_of(second_lab, 10).await?.len(), 1);
        let ledger = store.model_ledger(fx.model).await?;
        assert_eq!((ledger.epsilon_spent, ledger.bits_spent), (1.0, 90.0));
        assert_eq!(
            store.model_ledgers_of(fx.vendor).await?.get(&fx.model),
            Some(&ledger)
        );
        assert!(store.model_ledgers_of(rival.id).await?.is_empty());

        // Lifting the caps lets the next job in; what was spent stays spent.
        let lifted = store
            .set_model_caps(fx.vendor, fx.model, ModelCaps::default())
            .await?;
        assert_eq!(
            (lifted.caps, lifted.epsilon_spent),
            (ModelCaps::default(), 1.0)
        );
        store
            .submit_job_under(g.id, &leaking(10.001), &theirs, sign_under("accepted"))
            .await?;
    })
}

#[tokio::test]
async fn a_job_whose_bound_is_above_bits_per_job_is_refused_and_bits_total_accumulates()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                bits_per_job: Some(50.0),
                bits_total: Some(100.0),
                ..Budgets::default()
            },
        )
        .await?;
        assert_eq!(
            (g.budgets.bits_per_job, g.budgets.bits_total),
            (Some(50.0), Some(100.0))
        );
        let size = log_size(&store).await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &leaking(50.0001), &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::BitsPerJob
        );
        assert_eq!(log_size(&store).await?, size);
        // A bound is counted rounded up to thousandths of a bit, never less.
        let (_, first, _) = store
            .submit_job_under(g.id, &leaking(33.3331), &fx.job(), sign_under("accepted"))
            .await?;
        assert_eq!(first.bits, 33.334);
        store
            .submit_job_under(g.id, &leaking(50.0), &fx.job(), sign_under("accepted"))
            .await?;
        assert_eq!(
            exhausted(
                store
                    .submit_job_under(g.id, &leaking(16.667), &fx.job(), sign_under("accepted"))
                    .await
            )?,
            Budget::BitsTotal
        );
        store
            .submit_job_under(g.id, &leaking(16.666), &fx.job(), sign_under("accepted"))
            .await?;
        assert_eq!(
            store.ledger(fx.evaluator, fx.model).await?.bits_spent,
            100.0
        );
        assert_eq!(store.jobs_of(fx.evaluator, 10).await?.len(), 3);
        let nan = store
            .submit_job_under(g.id, &leaking(f64::NAN), &fx.job(), sign_under("accepted"))
            .await;
        assert!(matches!(nan, Err(StoreError::Invalid(_))), "{nan:?}");
        let mut bad = new_grant(&fx, Grantee::Tier(Tier::Auditor));
        bad.budgets.bits_total = Some(-1.0);
        let refused = store.create_grant(&bad).await;
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{refused:?}"
        );
    })
}

#[tokio::test]
async fn concurrent_submissions_under_two_grants_of_one_pair_never_overspend_its_ledger()
-> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let budgets = Budgets {
            epsilon_total: Some(1.0),
            ..Budgets::default()
        };
        let tier = grant(&store, &fx, budgets).await?;
        let mut named = new_grant(&fx, Grantee::Account(fx.evaluator));
        named.budgets = budgets;
        let named = store.create_grant(&named).await?;
        let second = db.store().await?;
        let mut tasks = Vec::new();
        for task in 0..16 {
            let s: Store = if task % 2 == 0 {
                store.clone()
            } else {
                second.clone()
            };
            // Half under each grant: only the pair's ledger row serializes them.
            let grant = if task % 4 < 2 { tier.id } else { named.id };
            let job = fx.job();
            tasks.push(tokio::spawn(async move {
                s.submit_job_under(grant, &dp(0.1), &job, sign_under("accepted"))
                    .await
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            match task.await? {
                Ok(_) => accepted += 1,
                Err(StoreError::BudgetExhausted(Budget::Epsilon)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        assert_eq!(accepted, 10);
        assert_eq!(
            store.ledger(fx.evaluator, fx.model).await?.epsilon_spent,
            1.0
        );
        assert_eq!(log_size(&store).await?, 10);
        second.close().await;
    })
}
