//! Workers: tokio tasks that claim jobs from the queue and drive each to its one result.
//!
//! A worker claims a job with a lease, and from then until the job's end is written a heartbeat
//! renews the lease every third of its length and writes progress. If a renewal reports a
//! cancellation request, or the lease was lost (this worker stalled and another may have the
//! job), the job's [`CancellationToken`] stops the sandbox. Driving a job concludes in a typed
//! [`Verdict`]: end it as a [`JobEnd`], through [`end_job`] with a signed result, which the
//! store accepts only while this worker holds the lease (a job ends once, with one result
//! entry); or leave it to a later attempt.
//!
//! Under a policy with a time grid the end is padded: once the job is over, the worker waits
//! (the heartbeat still renewing) until the first grid point after that on the server's clock,
//! and only then writes the end, so its status, its result entry in the log and its attested
//! end appear at a grid point that does not depend on how long its samples took.
//!
//! A job is driven in a task of its own: a panic anywhere in it ends the job `failed` with a
//! fixed reason ([`Reason::Internal`](proctor_core::job_end::Reason::Internal)), and the worker
//! goes on to the next job.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use proctor_core::job_end::Reason;
use proctor_core::{Dataset, JobEnd, Policy, Usage};
use proctor_models::{Credential, ModelConfig};
use proctor_sandbox::{CancellationToken, CpuBudget, JobSpec, Progress, SandboxError};
use proctor_store::{Claimed, Disposition, Job, JobId, StoreError};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use crate::attest::stored_policy;
use crate::clock::TimeGrid;
use crate::ending::{Closer, end_job};
use crate::log_guard::GuardError;
use crate::meter::{Meter, MeterTask};
use crate::metered::{GrantRefusals, JobMetering, Metered, UsageCounter};
use crate::sealing::model_context;
use crate::state::App;

/// Runs one worker until `shutdown` fires.
pub async fn run_worker(app: Arc<App>, worker_id: String, shutdown: CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // A job is claimed only when its end could be signed: while the database's log does
        // not extend the head this service vouched for, jobs stay queued, their attempts
        // unspent (the guard logs the fork once, with both sizes).
        if let Err(err) = app.log_guard.vouch(&app.store, &app.key).await {
            if !matches!(err, GuardError::Fork(_)) {
                warn!(%err, "checking the log before a claim failed");
            }
            tokio::select! {
                () = tokio::time::sleep(app.config.poll_interval) => {}
                () = shutdown.cancelled() => return,
            }
            continue;
        }
        // Armed before the claim: a job queued while the claim finds nothing still wakes this
        // worker.
        let queued = app.queue_changed.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let claiming = std::time::Instant::now();
        let claimed = app
            .store
            .claim_at(
                &worker_id,
                app.config.lease,
                app.config.max_attempts,
                Some(app.config.clock.now()),
            )
            .await;
        app.metrics
            .claim_seconds
            .observe(claiming.elapsed().as_secs_f64());
        match claimed {
            Ok(Some(claimed)) => {
                let waited = app.config.clock.now().0 - claimed.job.created_at.0;
                app.metrics
                    .queue_wait_seconds
                    .observe(waited.max(0) as f64 / 1000.0);
                let span = info_span!("job", job = %claimed.job.id, worker = %worker_id);
                drive_guarded(&app, &worker_id, claimed)
                    .instrument(span)
                    .await;
            }
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(app.config.poll_interval) => {}
                    () = &mut queued => {}
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

/// A task that is aborted when its handle is dropped: a worker stopped at shutdown takes the
/// job it drives down with it (its lease then expires, and another worker takes the job up).
struct Scoped<T>(JoinHandle<T>);

impl<T> Scoped<T> {
    fn spawn(task: impl Future<Output = T> + Send + 'static) -> Scoped<T>
    where
        T: Send + 'static,
    {
        Scoped(tokio::spawn(task.in_current_span()))
    }

    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for Scoped<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What driving a job concludes.
enum Verdict {
    /// End it so.
    End(JobEnd),
    /// This worker must not end it: once its lease expires, another attempt (up to
    /// `max_attempts`) takes it up.
    Leave(Leave),
}

/// Why a worker leaves a job to a later attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leave {
    /// The lease was lost: the job may be another worker's now.
    LeaseLost,
    /// The server drained past its deadline ([`App::hand_back`]): the job goes back to the
    /// queue at once, its attempt unspent.
    HandedBack,
    /// The service failed to load what the job runs (the database, a credential that does
    /// not open), which says nothing of the job itself.
    ServiceFailed,
}

/// Drives a claimed job in a task of its own. When that task panics, the job ends `failed`
/// ([`JobEnd::internal`]) from a second task, and this worker lives on either way.
async fn drive_guarded(app: &Arc<App>, worker: &str, claimed: Claimed) {
    let job = claimed.job.clone();
    let driven = Scoped::spawn(drive(app.clone(), worker.to_owned(), claimed))
        .join()
        .await;
    let Err(err) = driven else { return };
    if !err.is_panic() {
        // Aborted: only when the worker itself is being stopped.
        return;
    }
    // The payload is not logged: it may quote what a guest or a model said.
    warn!("driving the job panicked; it ends failed");
    let app = app.clone();
    let worker = worker.to_owned();
    let ended = Scoped::spawn(async move {
        let usage = usage_of(&app, &job).await;
        let heartbeat = Heartbeat::start(&app, &worker, job.id);
        conclude(&app, &worker, &job, JobEnd::internal(usage), heartbeat).await;
    })
    .join()
    .await;
    if ended.is_err() {
        warn!("ending the job after a panic failed too; a later attempt ends it");
    }
}

/// Drives one claimed job to its end (or gives it up when the lease is lost).
async fn drive(app: Arc<App>, worker: String, claimed: Claimed) {
    let job = claimed.job;
    // From the claim until the end is written, padding included.
    let heartbeat = Heartbeat::start(&app, &worker, job.id);
    let verdict = match claimed.disposition {
        Disposition::Cancel => Verdict::End(stopped(&app, &job, usage_of(&app, &job).await).await),
        Disposition::GiveUp { reason } => {
            warn!(%reason, "giving the job up");
            Verdict::End(JobEnd::internal(usage_of(&app, &job).await))
        }
        Disposition::Run => run(&app, &job, &heartbeat).await,
    };
    match verdict {
        Verdict::End(end) => conclude(&app, &worker, &job, end, heartbeat).await,
        Verdict::Leave(Leave::HandedBack) => {
            if heartbeat.stop().await {
                info!("the lease was lost while handing the job back");
                return;
            }
            match app.store.hand_back(job.id, &worker).await {
                Ok(()) => {
                    app.queue_changed.notify_waiters();
                    info!("handed the job back to the queue: the next claim takes it up");
                }
                Err(err) => warn!(%err, "handing the job back failed; its lease expires instead"),
            }
        }
        Verdict::Leave(why) => {
            heartbeat.stop().await;
            info!(
                ?why,
                "not ending the job here; once its lease expires, another attempt takes it"
            );
        }
    }
}

/// Ends a job that is over: settles what it left in flight, pads its end to the policy's time
/// grid, and writes the end with its signed result.
async fn conclude(app: &App, worker: &str, job: &Job, end: JobEnd, heartbeat: Heartbeat) {
    // No query of the job is in flight any more and its meter wrote its last batches: a
    // block still open was left by a dead attempt (or by a meter whose writes failed), and
    // counts at its worst case before the end is written, so the vendor's usage is whole once
    // the job reads as ended.
    if let Err(err) = app.store.abandon_blocks(job.id).await {
        warn!(%err, "counting the job's abandoned blocks failed; the next start counts them");
    }
    let policy = match stored_policy(&job.policy_json) {
        Ok(policy) => policy,
        Err(err) => {
            heartbeat.stop().await;
            warn!(%err, "the job's policy does not load; it cannot be ended here");
            return;
        }
    };
    let clock = &app.config.clock;
    let grid = TimeGrid::of(&policy);
    let at = grid.map_or_else(|| clock.now(), |grid| grid.after(clock.now()));
    let mut end = end;
    if grid.is_some() {
        tokio::select! {
            () = clock.wait_until(at) => {}
            () = heartbeat.lost.cancelled() => {}
        }
        // Asked to stop before its visible end: it ends stopped whether its samples were done
        // or not, so the ending does not tell how far they had got by then.
        if !heartbeat.lease_lost() && stop_requested(app, job).await {
            end = stopped(app, job, heartbeat.usage.snapshot()).await;
        }
    }
    let processed = heartbeat.done.load(Ordering::Relaxed);
    if heartbeat.stop().await {
        info!("the lease was lost; once it expires, another attempt takes the job");
        return;
    }
    // `/metrics` is public: a private job's samples count only when it ran them all, at its
    // padded end, since how far a stopped one got depends on its samples' timing.
    let samples = match end.report() {
        Some(report) => report.samples.total,
        None if policy.release.is_private() => 0,
        None => processed,
    };
    // Counted before the end is visible, so whoever sees the job ended sees its samples in
    // `/metrics` too. Should the ending fail, another attempt runs them again, and they count
    // again: they were processed twice.
    app.metrics.samples.inc_by(samples);
    let closer = Closer::Worker { id: worker, at };
    // The end, its result entry, and then the job's hold back to its grant (a crash before
    // that is caught at the next start).
    if let Err(err) = end_job(app, job, end, closer).await {
        warn!(%err, "ending the job failed; it will be retried when its lease expires");
    }
}

/// Whether the job was asked to stop (cancelled, or its grant revoked) while it ran.
async fn stop_requested(app: &App, job: &Job) -> bool {
    match app.store.job(job.id).await {
        Ok(current) => current.cancel_requested,
        Err(err) => {
            warn!(%err, "reading the job before its end failed");
            false
        }
    }
}

/// How a job that was asked to stop ends: `revoked` when its grant was revoked (nothing of it
/// is released), else `cancelled` by whoever asked (the reason its row was flagged with).
async fn stopped(app: &App, job: &Job, usage: Usage) -> JobEnd {
    let revoked = match app.store.job_grant(job.id).await {
        Ok(Some(under)) => app
            .store
            .grant(under.grant)
            .await
            // A suspension ends its running jobs as a revocation does.
            .is_ok_and(|g| g.revoked_at.is_some() || g.suspended_at.is_some()),
        _ => false,
    };
    if revoked {
        return JobEnd::revoked(usage);
    }
    let flagged = app.store.job(job.id).await.ok().and_then(|j| j.reason);
    match flagged.as_deref().and_then(Reason::of_text) {
        Some(Reason::Operator) => JobEnd::operator_cancelled(usage),
        _ => JobEnd::cancelled(usage),
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

/// Runs a job, to how it ends, or to [`Verdict::Leave`] when this worker must not end it.
async fn run(app: &Arc<App>, job: &Job, heartbeat: &Heartbeat) -> Verdict {
    let cancel = heartbeat.cancel.clone();
    let usage = heartbeat.usage.clone();
    let refusals = Arc::new(GrantRefusals::default());
    let _registered = app.running.register(job.id, cancel.clone());
    // The heartbeat started before the eval is prepared: compiling a large component may
    // take longer than a lease.
    let metering = JobMetering {
        usage: usage.clone(),
        refusals: refusals.clone(),
        stop_job: cancel.clone(),
    };
    let (spec, meter, cpu, adapter) = match prepare(app, job, metering).await {
        Ok(prepared) => prepared,
        Err(verdict) => {
            if heartbeat.lease_lost() {
                return Verdict::Leave(Leave::LeaseLost);
            }
            return verdict;
        }
    };
    let progress = {
        let done = heartbeat.done.clone();
        let live = app.metrics.samples_live.clone();
        move |p: Progress| {
            let before = done.swap(p.done, Ordering::Relaxed);
            live.inc_by(p.done.saturating_sub(before));
        }
    };
    // A draining server past its deadline stops the job to hand it back.
    let handing_back = {
        let (hand_back, cancel) = (app.hand_back.clone(), cancel.clone());
        Scoped::spawn(async move {
            hand_back.cancelled().await;
            cancel.cancel();
        })
    };
    // Right before the first sample, through the job's adapter but not its meter.
    let identity = crate::identity::JobChecks::before(app, job, adapter).await;
    // The grant's CPU seconds per job stop the job as a cancellation does, and say so after.
    let cpu = cpu.map(|limit| Arc::new(CpuBudget::new(limit, cancel.clone())));
    let result = proctor_sandbox::run_and_release(
        &app.sandbox,
        &spec,
        &job.policy_name,
        &progress,
        &cancel,
        cpu.as_ref(),
    )
    .await;
    drop(handing_back);
    let cpu_spent = cpu.as_ref().is_some_and(|cpu| cpu.is_spent());
    // No query is in flight any more: the block's rest goes back, the last batches are
    // written.
    drop(spec);
    meter.close().await;
    if heartbeat.lease_lost() {
        return Verdict::Leave(Leave::LeaseLost);
    }
    let asked_to_stop = heartbeat.cancel_requested() || refusals.revoked() || cpu_spent;
    if matches!(result, Ok(None)) && app.hand_back.is_cancelled() && !asked_to_stop {
        return Verdict::Leave(Leave::HandedBack);
    }
    // Cancelled by neither the heartbeat nor a lost lease nor a drain: a revocation handled by
    // this process stopped it.
    let job_stopped_here = cancel.is_cancelled();
    if let Some(refusal) = refusals.first() {
        // The details stay in the service's log; the job states a fixed reason.
        info!(%refusal, "the grant refused queries of the job");
    }
    if refusals.revoked() {
        // Stopped because its grant was revoked: nothing of it is released, whatever the
        // sandbox returned.
        return Verdict::End(JobEnd::revoked(usage.snapshot()));
    }
    if matches!(result, Ok(None)) && cpu_spent && !heartbeat.cancel_requested() {
        // How much it used stays in the service's log; the job states a fixed reason.
        if let Some(cpu) = &cpu {
            info!(
                used_s = cpu.used().as_secs_f64(),
                "the job passed its CPU seconds per job"
            );
        }
        return Verdict::End(JobEnd::cpu_budget_spent(usage.snapshot()));
    }
    Verdict::End(match result {
        Ok(Some(report)) => {
            let report = identity.finish(app, job, report).await;
            // The final usage, so the job's row agrees with its attestation.
            let processed = heartbeat.done.load(Ordering::Relaxed);
            if let Err(err) = app
                .store
                .record_progress(job.id, &heartbeat.worker, processed, &usage.snapshot())
                .await
            {
                if matches!(err, StoreError::LeaseLost(_)) {
                    return Verdict::Leave(Leave::LeaseLost);
                }
                warn!(%err, "recording the final progress failed");
            }
            JobEnd::ran(report, refusals.first().is_some())
        }
        Ok(None) if heartbeat.cancel_requested() || job_stopped_here => {
            stopped(app, job, usage.snapshot()).await
        }
        // Stopped, but neither asked to nor by this process: only a lost lease does that.
        Ok(None) => return Verdict::Leave(Leave::LeaseLost),
        Err(err) => {
            warn!(%err, "the sandbox refused to run the job");
            match err {
                SandboxError::Engine(_) | SandboxError::Cache { .. } => {
                    JobEnd::internal(usage.snapshot())
                }
                _ => JobEnd::setup_refused(usage.snapshot()),
            }
        }
    })
}

/// Loads what the job runs: the prepared eval, the dataset, the policy and the model with its
/// opened credential, metered by a meter of its own (returned with its task, to be closed once
/// the job's queries are over), its grant's CPU time per job, if it has one, and the model
/// unmetered, for the identity checks. When the job itself cannot run (the sandbox or the model configuration
/// refuses it), the verdict ends it [`JobEnd::setup_refused`]; when the service failed, it
/// leaves it to a later attempt ([`Leave::ServiceFailed`]).
async fn prepare(
    app: &App,
    job: &Job,
    metering: JobMetering,
) -> Result<
    (
        JobSpec,
        MeterTask,
        Option<Duration>,
        Arc<dyn proctor_core::Model>,
    ),
    Verdict,
> {
    let internal = |what: &str, err: &dyn std::fmt::Display| {
        warn!(%err, "loading the job's {what} failed");
        Verdict::Leave(Leave::ServiceFailed)
    };
    // The refusal's text may name what the eval declared; it goes to the log, not the job.
    let refused = |what: &str, err: &dyn std::fmt::Display| {
        warn!(%err, "the job's {what} was refused");
        Verdict::End(JobEnd::setup_refused(Usage::default()))
    };
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
        .map_err(|e| refused("eval", &e))?;
    let dataset_bytes = app
        .store
        .dataset_bytes(&job.dataset)
        .await
        .map_err(|e| internal("dataset", &e))?;
    let dataset = Dataset::parse(&dataset_bytes, usize::MAX).map_err(|e| refused("dataset", &e))?;
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
    let model = app
        .config
        .models
        .build(&config, credential, job.seed, &app.config.model_hosts)
        .map_err(|e| refused("model configuration", &e))?;
    let under = app
        .store
        .job_grant(job.id)
        .await
        .map_err(|e| internal("grant", &e))?
        .ok_or_else(|| refused("grant", &"the job is not under a grant"))?;
    // Grants never change once made: this is the budget the job was accepted under.
    let cpu = app
        .store
        .grant(under.grant)
        .await
        .map_err(|e| internal("grant", &e))?
        .budgets
        .cpu_seconds_per_job
        .map(Duration::from_secs);
    let usage = app
        .usage
        .tap(&app.store, under.grant)
        .await
        .map_err(|e| internal("alert settings", &e))?;
    let (meter, meter_task) = Meter::start(
        app.store.clone(),
        (under.grant, job.id),
        metering.stop_job.clone(),
        (app.metrics.meter(), usage),
    );
    let timing = app.metrics.model_timing(&job.model.to_string());
    let adapter = model.clone();
    let model: Arc<dyn proctor_core::Model> =
        Arc::new(Metered::new(model, meter, metering, timing));
    let spec = JobSpec {
        eval,
        dataset: Arc::new(dataset),
        model,
        policy: Arc::new(policy),
        concurrency: job.concurrency as usize,
        seed: job.seed,
        samples: None,
    };
    Ok((spec, meter_task, cpu, adapter))
}

/// A held job's heartbeat: renews the lease and writes progress from the claim until the end
/// is written, and stops the job on a cancellation request or a lost lease.
struct Heartbeat {
    worker: String,
    /// Set when the job is over: the task returns at its next sleep, never mid-write.
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    /// Stops the sandbox.
    cancel: CancellationToken,
    /// Fires when the lease was lost.
    lost: CancellationToken,
    cancel_requested: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    usage: Arc<UsageCounter>,
}

impl Heartbeat {
    fn start(app: &Arc<App>, worker: &str, job: JobId) -> Heartbeat {
        let stop = CancellationToken::new();
        let cancel = CancellationToken::new();
        let lost = CancellationToken::new();
        let cancel_requested = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let usage = Arc::new(UsageCounter::default());
        let task = tokio::spawn(
            beat(
                app.clone(),
                worker.to_owned(),
                job,
                Beat {
                    stop: stop.clone(),
                    cancel: cancel.clone(),
                    lost: lost.clone(),
                    cancel_requested: cancel_requested.clone(),
                    done: done.clone(),
                    usage: usage.clone(),
                },
            )
            .in_current_span(),
        );
        Heartbeat {
            worker: worker.to_owned(),
            stop,
            task: Some(task),
            cancel,
            lost,
            cancel_requested,
            done,
            usage,
        }
    }

    fn lease_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }

    /// Stops the task between its writes and waits for it; returns whether the lease was lost
    /// meanwhile. Aborting the task instead could cut a store transaction mid-statement, and a
    /// SQLite connection left that way holds the write lock until it is rolled back later, so
    /// the job's final writes would wait on it.
    async fn stop(mut self) -> bool {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
        {
            warn!(%err, "the heartbeat task ended abnormally");
        }
        self.lease_lost()
    }
}

impl Drop for Heartbeat {
    // Dropped unstopped (the job's task panicked or was aborted): the task still returns at
    // its next sleep, so the lease is no longer renewed and expires.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the heartbeat task shares with the job.
struct Beat {
    stop: CancellationToken,
    cancel: CancellationToken,
    lost: CancellationToken,
    cancel_requested: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    usage: Arc<UsageCounter>,
}

impl Beat {
    fn lease_lost(&self) {
        self.lost.cancel();
        self.cancel.cancel();
    }
}

/// Renews the lease every third of its length and writes progress and usage every
/// `progress_interval`; stops the job on a cancellation request or a lost lease.
async fn beat(app: Arc<App>, worker: String, job: JobId, beat: Beat) {
    let lease = app.config.lease;
    let renew_every = lease / 3;
    let tick = app.config.progress_interval.min(renew_every);
    let mut since_renewal = Duration::ZERO;
    let mut written = 0;
    loop {
        tokio::select! {
            () = beat.stop.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        since_renewal += tick;
        if since_renewal >= renew_every {
            since_renewal = Duration::ZERO;
            match app.store.renew(job, &worker, lease).await {
                Ok(renewed) if renewed.cancel_requested => {
                    beat.cancel_requested.store(true, Ordering::SeqCst);
                    beat.cancel.cancel();
                }
                Ok(_) => {}
                Err(StoreError::LeaseLost(_)) => {
                    beat.lease_lost();
                    return;
                }
                Err(err) => warn!(%err, "renewing the lease failed"),
            }
        }
        let now = beat.done.load(Ordering::Relaxed);
        if now != written {
            // The vendor's usage; an evaluator's view of a private job shows neither.
            match app
                .store
                .record_progress(job, &worker, now, &beat.usage.snapshot())
                .await
            {
                Ok(()) => written = now,
                Err(StoreError::LeaseLost(_)) => {
                    beat.lease_lost();
                    return;
                }
                Err(err) => warn!(%err, "recording progress failed"),
            }
        }
    }
}
