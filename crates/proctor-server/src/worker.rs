//! Workers: tokio tasks that claim jobs from the queue and drive each to its one result.
//!
//! A worker claims a job with a lease, and while the job runs a heartbeat renews the lease
//! every third of its length and writes progress. If a renewal reports a cancellation
//! request, or the lease was lost (this worker stalled and another may have the job), the
//! job's [`CancellationToken`] stops the sandbox. The job then ends through
//! [`Store::finish`](proctor_store::Store::finish) with a signed result, which the store
//! accepts only while this worker holds the lease: a job ends once, with one result entry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use proctor_core::release::ReleaseStatus;
use proctor_core::{Dataset, Policy, RunReport, Usage};
use proctor_models::{Credential, ModelConfig};
use proctor_sandbox::{CancellationToken, JobSpec, Progress};
use proctor_store::{Claimed, Disposition, Job, JobStatus, Outcome, REVOKED_REASON, StoreError};
use tracing::{Instrument, info, info_span, warn};

use crate::attest::{Ending, JobContext, accepted_index, sign_result};
use crate::metered::{GrantRefusals, Metered, UsageCounter};
use crate::sealing::model_context;
use crate::state::App;

/// Runs one worker until `shutdown` fires.
pub async fn run_worker(app: Arc<App>, worker_id: String, shutdown: CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let claimed = app
            .store
            .claim(&worker_id, app.config.lease, app.config.max_attempts)
            .await;
        match claimed {
            Ok(Some(claimed)) => {
                let span = info_span!("job", job = %claimed.job.id, worker = %worker_id);
                drive(&app, &worker_id, claimed).instrument(span).await;
            }
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(app.config.poll_interval) => {}
                    () = shutdown.cancelled() => return,
                }
            }
            Err(err) => {
                warn!(%err, "claiming a job failed");
                tokio::time::sleep(app.config.poll_interval).await;
            }
        }
    }
}

/// Drives one claimed job to its end (or gives it up when the lease is lost).
async fn drive(app: &Arc<App>, worker: &str, claimed: Claimed) {
    let job = claimed.job;
    let ending = match claimed.disposition {
        Disposition::Cancel => Some(stopped(app, &job, usage_of(app, &job).await).await),
        Disposition::GiveUp { reason } => Some(Ending::Other {
            status: JobStatus::Failed,
            reason,
            usage: usage_of(app, &job).await,
        }),
        Disposition::Run => run(app, worker, &job).await,
    };
    let Some(ending) = ending else {
        info!("not finishing the job here; once its lease expires, another attempt takes it");
        return;
    };
    // No query of the job is in flight any more: what is still reserved was left by a dead
    // attempt (or by a request this one stopped), and counts at its worst case before the end
    // is written, so the vendor's usage is whole once the job reads as ended.
    if let Err(err) = app.store.settle_abandoned(job.id).await {
        warn!(%err, "settling the job's abandoned queries failed; the next start settles them");
    }
    if let Err(err) = finish(app, worker, &job, ending).await {
        warn!(%err, "finishing the job failed; it will be retried when its lease expires");
        return;
    }
    // What the job still holds of its grant goes back; a crash before this is caught at the
    // next start.
    if let Err(err) = app.store.release_job_hold(job.id).await {
        warn!(%err, "giving back the job's hold failed");
    }
}

/// The canceller's reason, which the store keeps on the job.
async fn cancel_reason(app: &App, job: &Job) -> String {
    match app.store.job(job.id).await {
        Ok(current) => current.reason,
        Err(_) => None,
    }
    .unwrap_or_else(|| "cancelled".into())
}

/// How a job that was asked to stop ends: `revoked` when its grant was revoked (nothing of it
/// is released), else `cancelled` with the canceller's reason.
async fn stopped(app: &App, job: &Job, usage: Usage) -> Ending {
    let revoked = match app.store.job_grant(job.id).await {
        Ok(Some(under)) => app
            .store
            .grant(under.grant)
            .await
            .is_ok_and(|g| g.revoked_at.is_some()),
        _ => false,
    };
    if revoked {
        return Ending::Other {
            status: JobStatus::Revoked,
            reason: REVOKED_REASON.to_owned(),
            usage,
        };
    }
    Ending::Other {
        status: JobStatus::Cancelled,
        reason: cancel_reason(app, job).await,
        usage,
    }
}

async fn usage_of(app: &App, job: &Job) -> Usage {
    app.store
        .job_usage(job.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Why a job could not be set up; host-written, attested as the failure reason.
fn setup_failure(reason: impl Into<String>) -> Ending {
    Ending::Other {
        status: JobStatus::Failed,
        reason: reason.into(),
        usage: Usage::default(),
    }
}

/// Runs a job; `None` when this worker must not end it: the lease was lost (the job is no
/// longer ours), or the service itself failed to load it (the lease expires and a later
/// attempt, up to `max_attempts`, tries again).
async fn run(app: &Arc<App>, worker: &str, job: &Job) -> Option<Ending> {
    let cancel = CancellationToken::new();
    let lease_lost = Arc::new(AtomicBool::new(false));
    let cancel_requested = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let usage = Arc::new(UsageCounter::default());
    let refusals = Arc::new(GrantRefusals::default());
    let _registered = app.running.register(job.id, cancel.clone());
    let stop = CancellationToken::new();
    let heartbeat = tokio::spawn(
        heartbeat(
            app.clone(),
            worker.to_owned(),
            job.id,
            Shared {
                stop: stop.clone(),
                cancel: cancel.clone(),
                lease_lost: lease_lost.clone(),
                cancel_requested: cancel_requested.clone(),
                done: done.clone(),
                usage: usage.clone(),
            },
        )
        .in_current_span(),
    );
    // The heartbeat starts before the eval is prepared: compiling a large component may take
    // longer than a lease.
    let metering = Metering {
        usage: usage.clone(),
        refusals: refusals.clone(),
        stop_job: cancel.clone(),
    };
    let spec = match prepare(app, job, metering).await {
        Ok(spec) => spec,
        Err(ending) => {
            stop_heartbeat(&stop, heartbeat).await;
            if lease_lost.load(Ordering::SeqCst) {
                return None;
            }
            return ending;
        }
    };
    let progress = {
        let done = done.clone();
        move |p: Progress| {
            done.store(p.done, Ordering::Relaxed);
        }
    };
    let result =
        proctor_sandbox::run_and_release(&app.sandbox, &spec, &job.policy_name, &progress, &cancel)
            .await;
    stop_heartbeat(&stop, heartbeat).await;
    // Cancelled by neither the heartbeat nor a lost lease: a revocation handled by this
    // process stopped it.
    let job_stopped_here = cancel.is_cancelled() && !lease_lost.load(Ordering::SeqCst);
    let processed = done.load(Ordering::Relaxed);
    app.metrics.samples.inc_by(processed);
    if lease_lost.load(Ordering::SeqCst) {
        return None;
    }
    if refusals.revoked() {
        // Stopped because its grant was revoked: nothing of it is released, whatever the
        // sandbox returned.
        return Some(Ending::Other {
            status: JobStatus::Revoked,
            reason: REVOKED_REASON.to_owned(),
            usage: usage.snapshot(),
        });
    }
    Some(match result {
        Ok(Some(report)) => {
            // The final usage, so the job's row agrees with its attestation.
            if let Err(err) = app
                .store
                .record_progress(job.id, worker, processed, &report.usage)
                .await
            {
                if matches!(err, StoreError::LeaseLost(_)) {
                    return None;
                }
                warn!(%err, "recording the final progress failed");
            }
            ran(report, refusals.first())
        }
        Ok(None) if cancel_requested.load(Ordering::SeqCst) || job_stopped_here => {
            stopped(app, job, usage.snapshot()).await
        }
        Ok(None) => return None,
        Err(err) => Ending::Other {
            status: JobStatus::Failed,
            reason: err.to_string(),
            usage: usage.snapshot(),
        },
    })
}

/// How a job that ran to its end ends: `succeeded`, or `failed` when its release was withheld
/// (fewer than `min_samples` ok samples), the report kept either way so the attestation shows
/// the counts; `reason` says when the grant's budget ran out during it.
fn ran(report: RunReport, budget: Option<String>) -> Ending {
    let (status, reason) = match (&report.release.status, &report.release.reason) {
        (ReleaseStatus::Withheld, withheld) => {
            let mut reason = format!(
                "the release was withheld: {}",
                withheld.as_deref().unwrap_or("the policy's release rules")
            );
            if let Some(budget) = budget {
                reason = format!("{reason}; {budget}");
            }
            (JobStatus::Failed, Some(reason))
        }
        (ReleaseStatus::Released, _) => (JobStatus::Succeeded, budget),
    };
    Ending::Ran {
        report: Box::new(report),
        status,
        reason,
    }
}

/// What a job's model reports to: its usage, the grant's refusals, and the token that stops
/// the job when the grant was revoked.
struct Metering {
    usage: Arc<UsageCounter>,
    refusals: Arc<GrantRefusals>,
    stop_job: CancellationToken,
}

/// Loads what the job runs: the prepared eval, the dataset, the policy and the model with its
/// opened credential. `Err(Some(ending))`: the job itself cannot run (the sandbox or the model
/// configuration refuses it), so it fails with a host-written reason. `Err(None)`: the service
/// failed (the database, a credential that does not open); the job is left to a later attempt.
async fn prepare(app: &App, job: &Job, metering: Metering) -> Result<JobSpec, Option<Ending>> {
    let internal = |what: &str, err: &dyn std::fmt::Display| {
        warn!(%err, "loading the job's {what} failed");
        None
    };
    let refused = |reason: String| Some(setup_failure(reason));
    let policy: Policy =
        serde_json::from_str(&job.policy_json).map_err(|e| internal("policy", &e))?;
    let eval_bytes = app
        .store
        .eval_bytes(&job.eval)
        .await
        .map_err(|e| internal("eval", &e))?;
    let eval = app
        .sandbox
        .prepare(&eval_bytes)
        .await
        .map_err(|e| refused(e.to_string()))?;
    let dataset_bytes = app
        .store
        .dataset_bytes(&job.dataset)
        .await
        .map_err(|e| internal("dataset", &e))?;
    let dataset = Dataset::parse(&dataset_bytes, usize::MAX).map_err(|e| refused(e.to_string()))?;
    let model = app
        .store
        .model(job.model)
        .await
        .map_err(|e| internal("model", &e))?;
    let config: ModelConfig =
        serde_json::from_str(&model.config).map_err(|e| internal("model configuration", &e))?;
    let credential = match app.store.model_credential(job.model).await {
        Ok(Some(sealed)) => {
            let plain = app
                .sealer
                .open(&model_context(&model.owner, &model.name), &sealed)
                .map_err(|e| internal("model credential", &e))?;
            let text = String::from_utf8(plain).map_err(|e| internal("model credential", &e))?;
            Some(Credential::new(text))
        }
        Ok(None) => None,
        Err(e) => return Err(internal("model credential", &e)),
    };
    let model = config
        .build(credential, Some(job.seed))
        .map_err(|e| refused(e.to_string()))?;
    let under = app
        .store
        .job_grant(job.id)
        .await
        .map_err(|e| internal("grant", &e))?
        .ok_or_else(|| refused("the job is not under a grant".into()))?;
    let model: Arc<dyn proctor_core::Model> = Arc::new(Metered::new(
        model,
        app.store.clone(),
        (under.grant, job.id),
        metering.usage,
        metering.refusals,
        metering.stop_job,
    ));
    Ok(JobSpec {
        eval,
        dataset: Arc::new(dataset),
        model,
        policy: Arc::new(policy),
        concurrency: job.concurrency as usize,
        seed: job.seed,
        samples: None,
    })
}

/// Stops the heartbeat between its writes and waits for it. Aborting the task instead could
/// cut a store transaction mid-statement, and a SQLite connection left that way holds the
/// write lock until it is rolled back later, so the job's final writes would wait on it.
async fn stop_heartbeat(stop: &CancellationToken, heartbeat: tokio::task::JoinHandle<()>) {
    stop.cancel();
    if let Err(err) = heartbeat.await {
        warn!(%err, "the heartbeat task ended abnormally");
    }
}

/// What a running job's heartbeat shares with it.
struct Shared {
    /// Set when the job is over: the heartbeat returns at its next sleep, never mid-write.
    stop: CancellationToken,
    cancel: CancellationToken,
    lease_lost: Arc<AtomicBool>,
    cancel_requested: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    usage: Arc<UsageCounter>,
}

/// Renews the lease every third of its length and writes progress and usage every
/// `progress_interval`; stops the job on a cancellation request or a lost lease.
async fn heartbeat(app: Arc<App>, worker: String, job: proctor_store::JobId, shared: Shared) {
    let Shared {
        stop,
        cancel,
        lease_lost,
        cancel_requested,
        done,
        usage,
    } = shared;
    let lease = app.config.lease;
    let renew_every = lease / 3;
    let tick = app.config.progress_interval.min(renew_every);
    let mut since_renewal = Duration::ZERO;
    let mut written = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        since_renewal += tick;
        if since_renewal >= renew_every {
            since_renewal = Duration::ZERO;
            match app.store.renew(job, &worker, lease).await {
                Ok(renewed) if renewed.cancel_requested => {
                    cancel_requested.store(true, Ordering::SeqCst);
                    cancel.cancel();
                }
                Ok(_) => {}
                Err(StoreError::LeaseLost(_)) => {
                    lease_lost.store(true, Ordering::SeqCst);
                    cancel.cancel();
                    return;
                }
                Err(err) => warn!(%err, "renewing the lease failed"),
            }
        }
        let now = done.load(Ordering::Relaxed);
        if now != written {
            // The vendor's exact usage; the evaluator's view never shows it per sample.
            match app
                .store
                .record_progress(job, &worker, now, &usage.snapshot())
                .await
            {
                Ok(()) => written = now,
                Err(StoreError::LeaseLost(_)) => {
                    lease_lost.store(true, Ordering::SeqCst);
                    cancel.cancel();
                    return;
                }
                Err(err) => warn!(%err, "recording progress failed"),
            }
        }
    }
}

/// Writes the job's end and its signed result entry.
async fn finish(app: &App, worker: &str, job: &Job, ending: Ending) -> Result<(), String> {
    let ctx = JobContext::load(app, job)
        .await
        .map_err(|e| e.to_string())?;
    let accepted = accepted_index(app, job).await.map_err(|e| e.to_string())?;
    // Under DP the attested usage of a job that released nothing is noised like a release's:
    // the exact figures are the vendor's (`GET /v1/usage`), not the public's.
    let ending = match ending {
        Ending::Other {
            status,
            reason,
            usage,
        } => {
            let policy: Policy =
                serde_json::from_str(&job.policy_json).map_err(|e| e.to_string())?;
            let mut rng = rand::rng();
            let usage = proctor_core::release::noised_usage(&policy, usage, &mut || {
                rand::Rng::next_u64(&mut rng)
            })
            .unwrap_or(usage);
            Ending::Other {
                status,
                reason,
                usage,
            }
        }
        ran => ran,
    };
    let outcome = match &ending {
        Ending::Ran {
            report,
            status,
            reason,
        } => Outcome {
            status: *status,
            reason: reason.clone(),
            report: Some(serde_json::to_string(report).map_err(|e| e.to_string())?),
        },
        Ending::Other { status, reason, .. } => Outcome {
            status: *status,
            reason: Some(reason.clone()),
            report: None,
        },
    };
    let (ended, entry) = app
        .store
        .finish(job.id, worker, &outcome, |ended, slot| {
            sign_result(&app.key, &ctx, ended, accepted, &ending, slot)
        })
        .await
        .map_err(|e| e.to_string())?;
    app.metrics
        .jobs
        .with_label_values(&[ended.status.as_str()])
        .inc();
    info!(status = %ended.status, log_index = entry.index, "job ended");
    Ok(())
}
