//! Sandbox throughput, as CONTRACTS.md defines the figures:
//! - samples/s/core: the job loop on a current-thread runtime, `builtin:arith` at zero
//!   latency, 20,000 samples cycling the dataset, compile cache warm;
//! - share of ideal: `builtin:arith?latency_ms=50` at concurrency C on the multi-thread
//!   runtime, N = 8·C samples; ideal = C / 0.05 s.
//!
//! Run with `cargo bench -p proctor-sandbox`. Prints figures; asserts nothing (timing belongs
//! here, not in tests).

use std::sync::Arc;
use std::time::Instant;

use proctor_core::{Dataset, Outcome, Policy};
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, Progress, Sandbox,
};

fn main() {
    let policy = Policy::standard();
    let settings = EngineSettings {
        max_concurrent_samples: 256,
        ..EngineSettings::for_policy(&policy)
    };
    let cache_dir = tempfile::tempdir().expect("temp dir");
    let sandbox =
        Arc::new(Sandbox::new(settings, CompileCache::in_dir(cache_dir.path())).expect("engine"));
    let dataset = Arc::new(
        Dataset::parse(proctor_evals::examples::ARITH_JSONL.as_bytes(), 100_000).expect("dataset"),
    );

    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let eval = current
        .block_on(sandbox.prepare(proctor_evals::examples::ARITH_WASM))
        .expect("arith prepares");
    let job = |model: &str, concurrency: usize, samples: u64| JobSpec {
        eval: eval.clone(),
        dataset: dataset.clone(),
        model: proctor_models::parse_model_ref(model, None).expect("builtin model"),
        policy: Arc::new(policy.clone()),
        concurrency,
        seed: 0,
        samples: Some(samples),
    };
    let none = |_: Progress| {};

    // Warm-up, then the measured run, on one thread.
    let warm = job("builtin:arith", 64, 2_000);
    current
        .block_on(proctor_sandbox::run_job(
            &sandbox,
            &warm,
            &none,
            &CancellationToken::new(),
        ))
        .expect("warm-up");
    let n = 20_000;
    let spec = job("builtin:arith", 64, n);
    let start = Instant::now();
    let totals = current
        .block_on(proctor_sandbox::run_job(
            &sandbox,
            &spec,
            &none,
            &CancellationToken::new(),
        ))
        .expect("run");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(totals.tally.get(Outcome::Ok), n, "every sample ran ok");
    println!(
        "zero latency, current-thread runtime: {n} samples in {secs:.3} s = {:.0} samples/s/core ({:.1} µs/sample)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );

    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for c in [64usize, 256] {
        let samples = 8 * c as u64;
        let spec = job("builtin:arith?latency_ms=50", c, samples);
        let start = Instant::now();
        let totals = multi
            .block_on(proctor_sandbox::run_job(
                &sandbox,
                &spec,
                &none,
                &CancellationToken::new(),
            ))
            .expect("run");
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(totals.tally.get(Outcome::Ok), samples);
        let achieved = samples as f64 / secs;
        let ideal = c as f64 / 0.05;
        println!(
            "50 ms latency, concurrency {c}: {achieved:.0} samples/s, ideal {ideal:.0}: {:.1}% of ideal",
            100.0 * achieved / ideal
        );
    }
}
