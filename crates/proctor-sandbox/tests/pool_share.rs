//! The pool is shared by every job of a process. A guest that declares the most memories a
//! component may (16: four samples' share of the pool) runs fewer samples at a time instead of running the pool dry, and a job beside it on the same engine still gets its
//! instances: every sample of both ends `ok`.

use std::sync::Arc;

use proctor_core::{Dataset, Outcome, Policy};
use proctor_evals::{examples, test_guests};
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, PreparedEval, Progress, Sandbox,
};

const SAMPLES: u64 = 48;

fn spec(eval: Arc<PreparedEval>) -> JobSpec {
    let mut policy = Policy::standard();
    policy.limits.max_concurrency = 8;
    policy.limits.memory_mib = 64;
    JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(examples::ARITH_JSONL.as_bytes(), 1000).expect("dataset")),
        // Slow enough that every sample holds its instance while the others start.
        model: proctor_models::parse_model_ref("builtin:arith?latency_ms=20", Some(0))
            .expect("model"),
        policy: Arc::new(policy),
        concurrency: 8,
        seed: 0,
        samples: Some(SAMPLES),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_with_the_most_memories_leaves_the_pool_to_the_job_beside_it() {
    // A pool for eight samples in flight: 32 + 16 memories for samples and `describe`, and as
    // many again for isolated runs. Eight instances of the hog would want 128.
    let settings = EngineSettings {
        max_concurrent_samples: 8,
        max_memory_mib: 64,
        max_table_elements: 100_000,
    };
    let sandbox = Arc::new(Sandbox::new(settings, CompileCache::disabled()).expect("engine"));
    let hog = sandbox
        .prepare(test_guests::POOL_HOG)
        .await
        .expect("the hog prepares: it is within the per-component maxima");
    let arith = sandbox
        .prepare(examples::ARITH_WASM)
        .await
        .expect("arith prepares");
    let (hog, arith) = (spec(hog), spec(arith));
    let cancel = CancellationToken::new();
    let progress = |_: Progress| {};
    let (hog, arith) = tokio::join!(
        proctor_sandbox::run_job(&sandbox, &hog, &progress, &cancel),
        proctor_sandbox::run_job(&sandbox, &arith, &progress, &cancel),
    );
    for (name, totals) in [("hog", hog), ("arith", arith)] {
        let totals = totals.expect("the job runs");
        assert_eq!(
            totals.tally.get(Outcome::Ok),
            SAMPLES,
            "{name}: {:?}",
            totals.tally.counts()
        );
    }
}
