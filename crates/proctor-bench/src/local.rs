//! The same job as a service row, through `proctor run`: the job loop the CLI's `evaluate`
//! calls (`proctor_sandbox::run_and_release`), in this process, set up as `evaluate` sets it
//! up (an engine sized for the policy, a warm compile cache, the policy's `max_concurrency`
//! samples in flight, the built-in model parsed from its reference).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use proctor_core::{Dataset, Policy};
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, Progress, Sandbox,
};

/// A local run's figures.
pub struct LocalRun {
    /// From preparing the eval (compile cache warm) to the released report.
    pub elapsed: Duration,
    /// Samples that ran ok.
    pub ok: u64,
}

/// Runs the arithmetic example over `dataset` against `builtin:arith?latency_ms=L` under
/// `standard` with `max_concurrency = concurrency`.
pub async fn run(dataset: &[u8], latency_ms: u64, concurrency: u64) -> anyhow::Result<LocalRun> {
    let mut policy = Policy::standard();
    policy.limits.max_concurrency = concurrency;
    let dataset = Dataset::parse(dataset, usize::MAX).context("the generated dataset")?;
    let model = proctor_models::parse_model_ref(
        &format!("builtin:arith?latency_ms={latency_ms}"),
        Some(0),
    )?;
    let cache_dir = tempfile::tempdir()?;
    let sandbox = Arc::new(Sandbox::new(
        EngineSettings::for_policy(&policy),
        CompileCache::in_dir(cache_dir.path()),
    )?);
    let eval = proctor_evals::examples::ARITH_WASM;
    // `proctor run` finds the compiled eval in its cache after the first run.
    sandbox.prepare(eval).await?;

    let started = Instant::now();
    let prepared = sandbox.prepare(eval).await?;
    prepared.check_policy(&policy)?;
    let spec = JobSpec {
        eval: prepared,
        dataset: Arc::new(dataset),
        model,
        policy: Arc::new(policy),
        concurrency: concurrency as usize,
        seed: 0,
        samples: None,
    };
    let report = proctor_sandbox::run_and_release(
        &sandbox,
        &spec,
        "standard",
        &|_: Progress| {},
        &CancellationToken::new(),
        None,
    )
    .await?
    .context("the local run was cancelled")?;
    Ok(LocalRun {
        elapsed: started.elapsed(),
        ok: report.samples.ok,
    })
}
