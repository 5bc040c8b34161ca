//! Pool slots keep written memory resident between samples (`linear_memory_keep_resident`),
//! reset in place by wasmtime instead of being given back to the kernel. A sample must still
//! never see what the one before it wrote, even in the very slot it used.

use std::sync::Arc;

use proctor_core::{Dataset, Outcome, Policy};
use proctor_evals::{examples, test_guests};
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, Progress, Sandbox,
};

#[tokio::test]
async fn a_slot_reused_sample_after_sample_shows_nothing_of_the_last() {
    // Sized as `proctor run` sizes it for `standard`: the most resident memory per slot.
    let mut policy = Policy::standard();
    let sandbox = Arc::new(
        Sandbox::new(
            EngineSettings::for_policy(&policy),
            CompileCache::disabled(),
        )
        .expect("engine"),
    );
    // One sample at a time: each instance takes the slot the last one left, warm.
    policy.limits.max_concurrency = 1;
    let eval = sandbox
        .prepare(test_guests::STATEFUL)
        .await
        .expect("the guest prepares");
    let seen = eval
        .info
        .metrics
        .iter()
        .position(|m| m.name == "seen")
        .expect("declared metric");
    let spec = JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(examples::ARITH_JSONL.as_bytes(), 1000).expect("dataset")),
        model: proctor_models::parse_model_ref("builtin:arith", Some(0)).expect("model"),
        policy: Arc::new(policy),
        concurrency: 1,
        seed: 0,
        samples: Some(64),
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
        64,
        "{:?}",
        totals.tally.counts()
    );
    let a = &totals.accumulators[seen];
    assert_eq!(a.n, 64);
    assert_eq!(
        a.sum,
        u128::from(a.n * a.steps),
        "every sample saw a fresh instance's memory"
    );
}
