//! How a job ends: [`end_job`] writes one job's [`JobEnd`] (its worker's finish, its
//! evaluator's or the operator's cancellation, its vendor's rejection), and [`revoke_grant`] ends a revoked
//! grant's jobs that had not started and stops its running ones.
//!
//! Either way the result statement restates the job's signed pre-registration, read back from
//! its log entry ([`PreRegistration::of`], one store read), so an ending reads no eval,
//! dataset, model or account row: what the result says the job ran is what was pre-registered,
//! whatever changed since. The status, reason and report the job's row stores and the result
//! statement says all come from the one `JobEnd` ([`Outcome::of`]).

use std::collections::HashMap;

use proctor_core::release::noised_usage;
use proctor_core::{JobEnd, Usage, job_end::Cancellation};
use proctor_store::{
    AccountId, Cancelled, GrantId, GrantStop, Job, JobStatus, LogSlot, Outcome, Revocation,
    SignError, StoreError, Timestamp,
};
use tracing::{info, warn};

use crate::attest::{PreRegistration, sign_result, stored_policy};
use crate::error::{ApiError, ApiResult};
use crate::state::App;

/// Who writes a job's end, which decides how the store checks it may.
#[derive(Debug, Clone, Copy)]
pub enum Closer<'a> {
    /// The worker holding the job's lease, at the (padded) end it waited for on the server's
    /// clock: the store writes the end only while that lease holds.
    Worker {
        /// The worker's id, as it claimed the job.
        id: &'a str,
        /// The end on the server's clock.
        at: Timestamp,
    },
    /// Its evaluator, cancelling it: a queued job ends now, a running one is flagged for its
    /// worker to end. The end must be [`Cancellation::ByEvaluator`].
    Evaluator,
    /// The service's operator (an admin), cancelling any job as an evaluator would its own.
    /// The end must be [`Cancellation::ByOperator`].
    Operator,
    /// Its vendor, rejecting it while it waits for approval. The end must be
    /// [`Cancellation::Rejected`].
    Vendor(AccountId),
}

/// What [`end_job`] did.
#[derive(Debug, Clone)]
pub enum Ended {
    /// The job has ended, with its result entry.
    Now(Job),
    /// The job runs: its worker sees the request at its next renewal and ends it.
    Requested(Job),
}

impl Ended {
    /// The job, ended or flagged.
    pub fn into_job(self) -> Job {
        match self {
            Ended::Now(job) | Ended::Requested(job) => job,
        }
    }
}

/// Ends `job` (as claimed or as read by the caller) as `end`, written by `closer`: in one
/// store transaction, the final status with the signed result entry; then the job's hold goes
/// back to its grant (when the store did not already in that transaction) and the ending is
/// counted.
///
/// Under a private policy the usage a worker attests for a job that released nothing is
/// noised like a release's: the exact figures are the vendor's (`GET /v1/usage`).
///
/// # Errors
///
/// A store error (the lease was lost, the job ended meanwhile, it is not waiting for this
/// vendor); 503 `log_fork` when the database's log does not extend the head this service
/// vouched for (nothing is written); a 500 when the pre-registration does not read back or
/// `end` is not one `closer` can write.
pub async fn end_job(app: &App, job: &Job, end: JobEnd, closer: Closer<'_>) -> ApiResult<Ended> {
    let registered = PreRegistration::of(app, job).await?;
    // Nothing is signed into a log that does not extend the head this service vouched for;
    // the job stays as it was, for a later attempt.
    app.log_guard.vouch(&app.store, &app.key).await?;
    let sign = |end| signer(app, &registered, end);
    match closer {
        Closer::Worker { id, at } => {
            let end = attested(job, end)?;
            let outcome = Outcome::of(&end)?;
            let (ended, entry) = app
                .store
                .finish_at(job.id, id, &outcome, Some(at), sign(&end))
                .await?;
            app.log_guard.advance(&app.store, &app.key).await;
            info!(status = %ended.status, log_index = entry.index, "job ended");
            counted(app, &ended);
            give_back_hold(app, &ended).await;
            Ok(Ended::Now(ended))
        }
        Closer::Evaluator | Closer::Operator => {
            let fits = matches!(
                (closer, &end),
                (
                    Closer::Evaluator,
                    JobEnd::Cancelled(Cancellation::ByEvaluator { .. })
                ) | (
                    Closer::Operator,
                    JobEnd::Cancelled(Cancellation::ByOperator { .. })
                )
            );
            if !fits {
                return Err(ApiError::internal("a cancellation", &end.status()));
            }
            // A running job is flagged with this text; its worker reads it back to end the
            // job as cancelled by whoever asked.
            let reason = end.reason_text().unwrap_or_default();
            // A queued job never ran, so its end needs no padding: now, on the grid if it has
            // one.
            let cancelled = app
                .store
                .cancel_at(job.id, &reason, Some(app.config.clock.now()), sign(&end))
                .await?;
            app.log_guard.advance(&app.store, &app.key).await;
            Ok(match cancelled {
                Cancelled::Now(ended, _) => {
                    counted(app, &ended);
                    give_back_hold(app, &ended).await;
                    Ended::Now(ended)
                }
                Cancelled::Requested(flagged) => Ended::Requested(flagged),
            })
        }
        Closer::Vendor(vendor) => {
            let JobEnd::Cancelled(Cancellation::Rejected { reason }) = &end else {
                return Err(ApiError::internal("a vendor's ending", &end.status()));
            };
            // The store gives the hold back in the same transaction.
            let (ended, _entry) = app
                .store
                .reject_job(vendor, job.id, reason, sign(&end))
                .await?;
            app.log_guard.advance(&app.store, &app.key).await;
            counted(app, &ended);
            Ok(Ended::Now(ended))
        }
    }
}

/// Signs the result of a job that ends as `end`, inside the store's transaction.
fn signer<'a>(
    app: &'a App,
    registered: &'a PreRegistration,
    end: &'a JobEnd,
) -> impl FnOnce(&Job, LogSlot) -> Result<Vec<u8>, SignError> + 'a {
    move |ended, slot| {
        app.log_guard.admits(slot.index)?;
        sign_result(&app.key, registered, ended, end, slot)
    }
}

/// `end` as a worker attests it: a stopped job's usage noised under a private policy.
fn attested(job: &Job, mut end: JobEnd) -> ApiResult<JobEnd> {
    let policy = stored_policy(&job.policy_json)?;
    if let Some(usage) = end.stopped_usage_mut() {
        let mut rng = rand::rng();
        *usage = noised_usage(&policy, *usage, job.total, &mut || {
            rand::Rng::next_u64(&mut rng)
        })
        .unwrap_or(*usage);
    }
    Ok(end)
}

fn counted(app: &App, ended: &Job) {
    app.metrics
        .jobs
        .with_label_values(&[ended.status.as_str()])
        .inc();
}

/// What the job still holds of its grant goes back; should this fail, the next start gives it
/// back (`release_ended_holds`).
async fn give_back_hold(app: &App, ended: &Job) {
    if let Err(err) = app.store.release_job_hold(ended.id).await {
        warn!(%err, job = %ended.id, "giving back the job's hold failed");
    }
}

/// The signing closure of a revocation met a job accepted under the grant after its jobs were
/// read: nothing was written, and the revocation reads them again.
#[derive(Debug, thiserror::Error)]
#[error("a job of the grant was accepted while it was being revoked")]
struct AcceptedMeanwhile;

/// Revokes `grant` for its `vendor`: its jobs that had not started end now, `revoked`, each
/// with its result entry, in the store's one transaction; its running jobs are flagged and
/// stopped at once when they run in this process (elsewhere at their next query or lease
/// renewal), and their workers end them `revoked` through [`end_job`].
///
/// # Errors
///
/// A store error; a 500 when a pre-registration does not read back.
pub async fn revoke_grant(app: &App, vendor: AccountId, grant: GrantId) -> ApiResult<Revocation> {
    stop_grant(app, vendor, grant, GrantStop::Revoke).await
}

/// Revokes or suspends `grant` ([`GrantStop`]); its jobs end as [`revoke_grant`] ends them.
///
/// # Errors
///
/// As [`revoke_grant`].
pub async fn stop_grant(
    app: &App,
    vendor: AccountId,
    grant: GrantId,
    how: GrantStop,
) -> ApiResult<Revocation> {
    let end = JobEnd::revoked(Usage::default());
    app.log_guard.vouch(&app.store, &app.key).await?;
    let mut attempts = 0;
    let revocation = loop {
        // Read before the transaction: signing happens under the log's lock. Only a queued
        // job is ended (and signed) by the revocation itself.
        let mut registered = HashMap::new();
        for job in app.store.unfinished_jobs_of_grant(grant).await? {
            if job.status == JobStatus::Queued {
                registered.insert(job.id, PreRegistration::of(app, &job).await?);
            }
        }
        let revoked = app
            .store
            .stop_grant(vendor, grant, how, |ended, slot| {
                let registered = registered
                    .get(&ended.id)
                    .ok_or_else(|| SignError::from(Box::new(AcceptedMeanwhile)))?;
                app.log_guard.admits(slot.index)?;
                sign_result(&app.key, registered, ended, &end, slot)
            })
            .await;
        attempts += 1;
        match revoked {
            // A job was accepted between reading the grant's jobs and locking the grant:
            // nothing was written; read again.
            Err(StoreError::Sign(err)) if attempts < 3 && err.is::<AcceptedMeanwhile>() => {}
            other => break other?,
        }
    };
    app.log_guard.advance(&app.store, &app.key).await;
    for job in &revocation.running {
        app.running.stop(job.id);
    }
    for (ended, _) in &revocation.ended {
        counted(app, ended);
    }
    Ok(revocation)
}
