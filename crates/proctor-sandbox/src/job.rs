//! The job loop: every sample through the sandbox, many in flight, then aggregation and
//! release. `proctor run` and the service's workers both call [`run_job`], so a local run and
//! a service job cannot drift apart.

use std::sync::Arc;

use proctor_core::{
    Accumulator, Dataset, DatasetRef, EvalRef, Model, Outcome, OutcomeTally, Policy, PolicyRef,
    RunReport, Usage,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cpu::CpuBudget;
use crate::dev::{DevOutput, DevSink};
use crate::error::SandboxError;
use crate::host::JobShared;
use crate::sample::{SampleResult, run_sample};
use crate::sandbox::{PreparedEval, Sandbox};

/// What a job runs.
#[derive(Clone)]
pub struct JobSpec {
    /// The prepared eval.
    pub eval: Arc<PreparedEval>,
    /// Its dataset.
    pub dataset: Arc<Dataset>,
    /// The model under test, possibly wrapped (metering, budgets) by the caller.
    pub model: Arc<dyn Model>,
    /// The effective policy.
    pub policy: Arc<Policy>,
    /// Samples in flight; clamped to the policy's `max_concurrency`.
    pub concurrency: usize,
    /// Seeds the guests' WASI randomness (never DP noise).
    pub seed: u64,
    /// Samples to run; sample i reads as index `i % items`. `None`: one per item.
    pub samples: Option<u64>,
}

/// Progress as the caller may show it: samples processed, never their outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Samples finished.
    pub done: u64,
    /// Samples in the job.
    pub total: u64,
}

/// Everything a finished job tallied, before release.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTotals {
    /// Outcomes.
    pub tally: OutcomeTally,
    /// One per declared metric, over ok samples.
    pub accumulators: Vec<Accumulator>,
    /// Model usage, exact.
    pub usage: Usage,
    /// The job was cancelled before all samples ran; nothing of it may be released.
    pub cancelled: bool,
}

/// Runs every sample of a job. Samples that trap, fail or panic are counted, never fatal. Returns
/// early, with `cancelled` set and in-flight samples dropped, once `cancel` fires.
pub async fn run_job(
    sandbox: &Arc<Sandbox>,
    spec: &JobSpec,
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<JobTotals, SandboxError> {
    run_job_with(sandbox, spec, progress, cancel, None).await
}

/// [`run_job`], handing each sample's stderr and trap to `dev` as the sample ends: the dev
/// loop of `proctor run --dev`, on the evaluator's own machine. The service never passes one.
pub async fn run_job_with(
    sandbox: &Arc<Sandbox>,
    spec: &JobSpec,
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: &CancellationToken,
    dev: Option<&DevSink>,
) -> Result<JobTotals, SandboxError> {
    run_job_metered(sandbox, spec, progress, cancel, dev, None).await
}

/// The job loop; with `cpu`, every sample's polls are charged to it, and passing it cancels
/// the job as `cancel` does.
async fn run_job_metered(
    sandbox: &Arc<Sandbox>,
    spec: &JobSpec,
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: &CancellationToken,
    dev: Option<&DevSink>,
    cpu: Option<&Arc<CpuBudget>>,
) -> Result<JobTotals, SandboxError> {
    sandbox.check_policy(&spec.policy)?;
    spec.eval.check_policy(&spec.policy)?;
    let items = spec.dataset.len() as u64;
    let total = spec.samples.unwrap_or(items);
    let concurrency = spec
        .concurrency
        .clamp(1, spec.policy.limits.max_concurrency as usize);
    let shared = Arc::new(JobShared {
        model: spec.model.clone(),
        dataset: spec.dataset.clone(),
        info: spec.eval.info.clone(),
        max_queries: spec.policy.queries.max_per_sample,
        max_prompt_bytes: spec.policy.queries.max_prompt_bytes,
        max_tokens: spec.policy.queries.max_tokens,
        seed: spec.seed,
    });
    let metrics = &spec.eval.info.metrics;
    let mut totals = JobTotals {
        tally: OutcomeTally::default(),
        accumulators: vec![Accumulator::new(spec.policy.release.decimals); metrics.len()],
        usage: Usage::default(),
        cancelled: false,
    };
    let mut in_flight: JoinSet<(SampleResult, Option<DevOutput>)> = JoinSet::new();
    let mut next = 0u64;
    let mut done = 0u64;
    while done < total {
        while next < total && in_flight.len() < concurrency {
            let permit = tokio::select! {
                permit = sandbox.slots.clone().acquire_many_owned(spec.eval.shares) => {
                    permit.map_err(|e| SandboxError::Engine(e.to_string()))?
                }
                () = cancel.cancelled() => break,
            };
            let (sandbox, eval, shared, policy) = (
                sandbox.clone(),
                spec.eval.clone(),
                shared.clone(),
                spec.policy.clone(),
            );
            // Item indexes fit u32: datasets are bounded far below it.
            let index = (next % items) as u32;
            let capture = dev.is_some();
            let cpu = cpu.cloned();
            in_flight.spawn(async move {
                let sample = run_sample(&sandbox, &eval, &shared, &policy, index, capture);
                let result = match cpu {
                    Some(cpu) => cpu.meter(sample).await,
                    None => sample.await,
                };
                drop(permit);
                result
            });
            next += 1;
        }
        let joined = tokio::select! {
            joined = in_flight.join_next() => joined,
            () = cancel.cancelled() => None,
        };
        let Some(joined) = joined else {
            totals.cancelled = true;
            in_flight.abort_all();
            return Ok(totals);
        };
        // A sample task that panicked (a host-side fault: a model adapter, a host call) ends
        // its sample only, as `other`, and the job goes on. The panic's message is dropped: it
        // may quote what the model said.
        let (result, output) = joined.unwrap_or_else(|_| {
            tracing::warn!("a sample panicked on the host side; it counts as `other`");
            let result = SampleResult {
                outcome: Outcome::Other,
                scores: vec![None; metrics.len()],
                usage: Usage::default(),
            };
            (result, None)
        });
        if let (Some(sink), Some(output)) = (dev, output) {
            sink(output);
        }
        totals.tally.add(result.outcome);
        totals.usage.add(&result.usage);
        for ((acc, spec), score) in totals
            .accumulators
            .iter_mut()
            .zip(metrics)
            .zip(&result.scores)
        {
            if let Some(v) = score {
                acc.add(spec, *v);
            }
        }
        done += 1;
        progress(Progress { done, total });
    }
    Ok(totals)
}

/// Runs a job and releases its result under the policy's release rules; within a CPU budget
/// when `cpu` is given: the job is then cancelled (nothing released) once its samples pass it,
/// which then [says so](CpuBudget::is_spent). A `cpu` budget must stop `cancel`.
pub async fn run_and_release(
    sandbox: &Arc<Sandbox>,
    spec: &JobSpec,
    policy_name: &str,
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: &CancellationToken,
    cpu: Option<&Arc<CpuBudget>>,
) -> Result<Option<RunReport>, SandboxError> {
    let totals = run_job_metered(sandbox, spec, progress, cancel, None, cpu).await?;
    Ok(release_totals(spec, policy_name, &totals))
}

/// Releases a finished job's totals under the policy's release rules; nothing for a cancelled
/// job.
pub fn release_totals(spec: &JobSpec, policy_name: &str, totals: &JobTotals) -> Option<RunReport> {
    if totals.cancelled {
        return None;
    }
    let info = &spec.eval.info;
    // The same bound the job was pre-registered with: it depends on nothing the job did.
    let leakage = proctor_core::leakage::bound(&spec.policy, &info.metrics, totals.tally.total());
    // DP noise comes from the OS-seeded CSPRNG, never from the job's seed, and is not kept.
    let mut rng = rand::rng();
    let released = proctor_core::release(
        &spec.policy,
        &info.metrics,
        &totals.accumulators,
        &totals.tally,
        totals.usage,
        &mut || rand::Rng::next_u64(&mut rng),
    );
    Some(RunReport::new(
        EvalRef {
            name: info.name.clone(),
            version: info.version.clone(),
            sha256: spec.eval.digest,
        },
        DatasetRef {
            sha256: spec.dataset.digest(),
            items: spec.dataset.len() as u64,
        },
        spec.model.descriptor(),
        PolicyRef {
            name: policy_name.to_owned(),
            sha256: spec.policy.digest(),
        },
        released,
        leakage,
    ))
}
