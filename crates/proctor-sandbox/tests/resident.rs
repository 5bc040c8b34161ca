//! Pool slots keep written memory resident between samples (`linear_memory_keep_resident`),
//! reset in place by wasmtime instead of being given back to the kernel. A sample must still
//! never see what the one before it wrote, even in the very slot it used.

use std::sync::Arc;

use proctor_core::{Dataset, Outcome, Policy};
use proctor_evals::{examples, test_guests};
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, Progress, Sandbox,
};

/// Runs `samples` samples of `guest` one at a time on an engine sized as `proctor run` sizes it
/// for `standard` (the most resident memory per slot), so each instance takes the slot the last
/// one left, warm; returns each metric's name, its sum of grid points and that sum were every
/// score 1.
async fn one_at_a_time(guest: &[u8], samples: u64) -> Vec<(String, u128, u128)> {
    let mut policy = Policy::standard();
    let sandbox = Arc::new(
        Sandbox::new(
            EngineSettings::for_policy(&policy),
            CompileCache::disabled(),
        )
        .expect("engine"),
    );
    policy.limits.max_concurrency = 1;
    let eval = sandbox.prepare(guest).await.expect("the guest prepares");
    let names: Vec<String> = eval.info.metrics.iter().map(|m| m.name.clone()).collect();
    let spec = JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(examples::ARITH_JSONL.as_bytes(), 1000).expect("dataset")),
        model: proctor_models::parse_model_ref("builtin:arith", Some(0)).expect("model"),
        policy: Arc::new(policy),
        concurrency: 1,
        seed: 0,
        samples: Some(samples),
    };
    let totals = proctor_sandbox::run_job(
        &sandbox,
        &spec,
        &|_: Progress| {},
        &CancellationToken::new(),
    )
    .await
    .expect("the job runs");
    assert_eq!(
        totals.tally.get(Outcome::Ok),
        samples,
        "{:?}",
        totals.tally.counts()
    );
    names
        .into_iter()
        .zip(&totals.accumulators)
        .map(|(name, a)| {
            assert_eq!(a.n, samples, "{name}: one score per sample");
            (name, a.sum, u128::from(a.n * a.steps))
        })
        .collect()
}

#[tokio::test]
async fn a_slot_reused_sample_after_sample_shows_nothing_of_the_last() {
    for (name, sum, all) in one_at_a_time(test_guests::STATEFUL, 64).await {
        assert_eq!(
            sum, all,
            "{name}: every sample saw a fresh instance's memory"
        );
    }
}

/// The reset scans for written pages and copies the image back over them. The guest writes more
/// separate runs of pages than one scan reports (256) in the image, in zeroed statics and in
/// grown memory, and then more than a slot keeps resident: every byte must be reset all the
/// same, copied back or given to the kernel.
#[tokio::test]
async fn thousands_of_scattered_written_pages_are_all_reset_for_the_next_sample() {
    let metrics = one_at_a_time(test_guests::SCATTERED_WRITES, 12).await;
    assert_eq!(metrics.len(), 3);
    for (name, sum, all) in metrics {
        assert_eq!(sum, all, "{name}: a sample saw an earlier sample's writes");
    }
}
