//! Identity alerts: a changed check raises the vendor's alert with the check, a job whose
//! result attests changed raises the vendor's and the evaluator's in the transaction that
//! ends it, and each party reads and acknowledges only its own.

use std::time::Duration;

use proctor_core::IdentityVerdict;
use proctor_core::identity::{CheckCounts, ModelIdentity};
use proctor_store::{
    CheckKind, IdentityAlertReader, IdentityAlertSubject, JobStatus, Outcome, Store, StoreError,
};

use crate::common::{Fixture, sign};
use crate::on_every_backend;

const LEASE: Duration = Duration::from_secs(60);

fn assessed(mismatches: u64) -> ModelIdentity {
    ModelIdentity::assess(CheckCounts {
        queries: 64,
        mismatches,
    })
}

/// Submits a job of `fx`'s, claims it and ends it succeeded with `identity` attested.
async fn ended_with(
    store: &Store,
    fx: &Fixture,
    identity: ModelIdentity,
) -> anyhow::Result<proctor_store::JobId> {
    let (job, _) = store.submit_job(&fx.job(), sign("accepted")).await?;
    let claimed = store.claim("w", LEASE, 3).await?;
    anyhow::ensure!(claimed.map(|c| c.job.id) == Some(job.id), "claimed");
    let outcome = Outcome {
        status: JobStatus::Succeeded,
        reason: None,
        report: Some(r#"{"metrics":{}}"#.into()),
        identity: Some(identity),
    };
    store.finish(job.id, "w", &outcome, sign("result")).await?;
    Ok(job.id)
}

#[tokio::test]
async fn a_changed_check_and_a_changed_job_raise_alerts_each_party_reads_its_own()
-> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let changed = assessed(40);
        let same = assessed(1);
        assert_eq!(changed.verdict, IdentityVerdict::Changed);
        assert_eq!(same.verdict, IdentityVerdict::Same);

        // Checks: a changed one raises the vendor's alert, a same one nothing.
        let check = store
            .record_identity_check(fx.model, None, CheckKind::Scheduled, &changed)
            .await?;
        store
            .record_identity_check(fx.model, None, CheckKind::Scheduled, &same)
            .await?;
        // Jobs: one attesting changed, one same.
        let flagged = ended_with(&store, &fx, changed).await?;
        ended_with(&store, &fx, same).await?;

        let vendor = store
            .identity_alerts(IdentityAlertReader::Vendor(fx.vendor), 100)
            .await?;
        assert_eq!(vendor.len(), 2, "{vendor:?}");
        let of_job = vendor
            .iter()
            .find(|a| matches!(a.subject, IdentityAlertSubject::Job { .. }))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no job alert: {vendor:?}"))?;
        assert_eq!(
            of_job.subject,
            IdentityAlertSubject::Job {
                job: flagged,
                evaluator: fx.evaluator
            }
        );
        assert_eq!(of_job.identity, changed);
        assert!(vendor.iter().any(|a| a.subject
            == IdentityAlertSubject::Check {
                check: check.id.clone(),
                kind: CheckKind::Scheduled,
                job: None,
            }
            && a.identity == changed));
        assert!(
            vendor
                .iter()
                .all(|a| a.model == fx.model && a.vendor == fx.vendor)
        );

        // The evaluator: its job's alert only; an admin: both; another vendor: none.
        let evaluator = store
            .identity_alerts(IdentityAlertReader::Evaluator(fx.evaluator), 100)
            .await?;
        assert_eq!(evaluator.len(), 1, "{evaluator:?}");
        assert_eq!(evaluator[0].id, of_job.id);
        assert_eq!(
            store
                .identity_alerts(IdentityAlertReader::Admin, 100)
                .await?
                .len(),
            2
        );
        let rival = store
            .create_account("rival", proctor_store::Role::Vendor, None)
            .await?;
        assert!(
            store
                .identity_alerts(IdentityAlertReader::Vendor(rival.id), 100)
                .await?
                .is_empty()
        );

        // Acknowledgements are each party's own, and only on what it reads.
        let acked = store
            .acknowledge_identity_alert(IdentityAlertReader::Evaluator(fx.evaluator), of_job.id)
            .await?;
        assert!(acked.evaluator_acknowledged_at.is_some());
        assert_eq!(acked.vendor_acknowledged_at, None);
        let again = store
            .acknowledge_identity_alert(IdentityAlertReader::Evaluator(fx.evaluator), of_job.id)
            .await?;
        assert_eq!(
            again.evaluator_acknowledged_at,
            acked.evaluator_acknowledged_at
        );
        let check_alert = vendor
            .iter()
            .find(|a| a.id != of_job.id)
            .map(|a| a.id)
            .ok_or_else(|| anyhow::anyhow!("no check alert"))?;
        for (reader, id) in [
            (IdentityAlertReader::Evaluator(fx.evaluator), check_alert),
            (IdentityAlertReader::Vendor(rival.id), of_job.id),
            (IdentityAlertReader::Admin, of_job.id),
        ] {
            let refused = store.acknowledge_identity_alert(reader, id).await;
            assert!(
                matches!(refused, Err(StoreError::NotFound(_))),
                "{reader:?}: {refused:?}"
            );
        }
        let by_vendor = store
            .acknowledge_identity_alert(IdentityAlertReader::Vendor(fx.vendor), of_job.id)
            .await?;
        assert!(by_vendor.vendor_acknowledged_at.is_some());
        assert_eq!(
            by_vendor.evaluator_acknowledged_at,
            acked.evaluator_acknowledged_at
        );
    })
}

#[tokio::test]
async fn a_job_alert_is_written_only_with_the_jobs_end() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let (job, _) = store.submit_job(&fx.job(), sign("accepted")).await?;
        store.claim("w", LEASE, 3).await?;
        let changed = Outcome {
            status: JobStatus::Succeeded,
            reason: None,
            report: Some(r#"{"metrics":{}}"#.into()),
            identity: Some(assessed(40)),
        };
        // A worker that lost its lease ends nothing, and raises nothing.
        let refused = store
            .finish(job.id, "other", &changed, sign("result"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::LeaseLost(_))),
            "{refused:?}"
        );
        // A signing failure rolls the end back, the alert with it.
        let failed = store
            .finish(job.id, "w", &changed, |_, _| Err("no key".into()))
            .await;
        assert!(failed.is_err(), "{failed:?}");
        assert!(
            store
                .identity_alerts(IdentityAlertReader::Admin, 10)
                .await?
                .is_empty()
        );
        store.finish(job.id, "w", &changed, sign("result")).await?;
        assert_eq!(
            store
                .identity_alerts(IdentityAlertReader::Evaluator(fx.evaluator), 10)
                .await?
                .len(),
            1
        );
    })
}
