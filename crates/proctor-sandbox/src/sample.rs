//! One sample: a fresh instance, its limits, one `run-sample` call, its outcome and scores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proctor_core::{Outcome, Policy, Usage};
use wasmtime::{Store, StoreLimitsBuilder};

use crate::dev::{DevOutput, StderrCapture};
use crate::host::{JobShared, Phase, SampleState};
use crate::isolation::Isolation;
use crate::outcome;
use crate::sandbox::{EPOCH_TICK, PreparedEval, Sandbox, configure_store};

/// What one sample produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleResult {
    /// How it ended.
    pub outcome: Outcome,
    /// Last clipped value per declared metric; all `None` unless the outcome is `ok`.
    pub scores: Vec<Option<f64>>,
    /// What its model calls cost.
    pub usage: Usage,
}

/// Runs sample `index` in a fresh instance. A trap ends this sample only. With `dev`, the
/// guest's stderr and its trap are kept for the dev loop (`proctor run --dev`) too.
pub(crate) async fn run_sample(
    sandbox: &Sandbox,
    eval: &PreparedEval,
    job: &Arc<JobShared>,
    policy: &Policy,
    index: u32,
    dev: bool,
) -> (SampleResult, Option<DevOutput>) {
    let timeout = Duration::from_secs_f64(policy.limits.sample_timeout_s);
    let deadline = Instant::now() + timeout;
    let limits = StoreLimitsBuilder::new()
        .memory_size((policy.limits.memory_mib as usize) << 20)
        .table_elements(policy.limits.table_elements as usize)
        .trap_on_grow_failure(true)
        .build();
    let seed = sample_seed(job.seed, index);
    let capture = dev.then(StderrCapture::default);
    let mut state = SampleState::new(
        Phase::Sample,
        Some(job.clone()),
        eval.info.metrics.len(),
        limits,
        deadline,
        seed,
        capture.clone(),
    );
    state.isolation = Isolation::for_sample(sandbox, eval, policy, seed);
    let mut store = Store::new(&sandbox.engine, state);
    let failed = |outcome| SampleResult {
        outcome,
        scores: vec![None; eval.info.metrics.len()],
        usage: Usage::default(),
    };
    if configure_store(&mut store, policy.limits.fuel_per_sample).is_err() {
        return (failed(Outcome::Other), None);
    }
    let run = eval.pre.run_sample(&mut store, index);
    // The epoch callback stops wasm that runs past the deadline (`deadline`); this timeout
    // catches a guest parked in a host call, which epochs cannot reach (`timeout`). Its grace
    // lets the epoch fire first for a guest that is computing.
    let result = tokio::time::timeout(timeout + 5 * EPOCH_TICK, run).await;
    let state = store.data();
    let mut trap = None;
    let result = match result {
        Err(_) => {
            if dev {
                trap = Some(format!(
                    "no answer within the sample timeout ({timeout:?}), waiting in a host call"
                ));
            }
            SampleResult {
                usage: state.usage,
                ..failed(Outcome::Timeout)
            }
        }
        Ok(Err(error)) => {
            if dev {
                trap = Some(format!("{error:#}"));
            }
            SampleResult {
                usage: state.usage,
                ..failed(outcome::from_trap(&error, state))
            }
        }
        Ok(Ok(returned)) => {
            let outcome = outcome::from_return(returned);
            let scores = if outcome == Outcome::Ok {
                state.scores.clone()
            } else {
                failed(outcome).scores
            };
            SampleResult {
                outcome,
                scores,
                usage: state.usage,
            }
        }
    };
    let dev = capture.map(|capture| {
        let (stderr, dropped) = capture.take();
        DevOutput {
            index,
            outcome: result.outcome,
            stderr,
            dropped,
            trap,
        }
    });
    (result, dev)
}

/// Each sample's WASI randomness is seeded from the job's seed and its index, so a sample is
/// deterministic and samples differ.
pub(crate) fn sample_seed(job_seed: u64, index: u32) -> u64 {
    let mut x = job_seed ^ (u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    // splitmix64 finalizer
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
