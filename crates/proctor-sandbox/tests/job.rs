//! The job loop and the engine around it: the compile cache, concurrency without threads,
//! cancellation, and policies the engine was not sized for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use proctor_core::{
    Completion, CompletionRequest, Dataset, FinishReason, Model, ModelDescriptor, ModelError,
    Outcome, Policy,
};
use proctor_evals::examples;
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, Progress, Sandbox, SandboxError,
};

fn settings() -> EngineSettings {
    EngineSettings {
        max_concurrent_samples: 64,
        max_memory_mib: 64,
        max_table_elements: 100_000,
    }
}

/// One small-pool engine per test binary.
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            Arc::new(Sandbox::new(settings(), CompileCache::disabled()).expect("engine"))
        })
        .clone()
}

fn policy() -> Policy {
    Policy::from_toml(
        "name = \"test\"\n[limits]\nfuel_per_sample = 10_000_000\nmemory_mib = 16\nmax_concurrency = 64\n\
         sample_timeout_s = 5\n[queries]\nmax_tokens = 64\n[release]\nmin_samples = 1\n",
    )
    .expect("policy")
}

/// Sums `A + B` after a delay, and records the most calls it ever had in flight.
struct SlowAdder {
    delay: Duration,
    in_flight: AtomicU64,
    peak: AtomicU64,
}

impl SlowAdder {
    fn new(delay: Duration) -> SlowAdder {
        SlowAdder {
            delay,
            in_flight: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Model for SlowAdder {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:slow".into(),
            name: "slow".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let prompt = &request.messages.last().expect("a message").content;
        let nums: Vec<i64> = prompt
            .trim_start_matches("What is ")
            .trim_end_matches('?')
            .split(" + ")
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        Ok(Completion {
            text: nums.iter().sum::<i64>().to_string(),
            finish: FinishReason::Stop,
            input_tokens: 4,
            output_tokens: 1,
        })
    }
}

fn arith_dataset() -> Arc<Dataset> {
    Arc::new(Dataset::parse(examples::ARITH_JSONL.as_bytes(), 100_000).expect("dataset"))
}

fn spec(
    eval: Arc<proctor_sandbox::PreparedEval>,
    model: Arc<dyn Model>,
    concurrency: usize,
    samples: u64,
) -> JobSpec {
    JobSpec {
        eval,
        dataset: arith_dataset(),
        model,
        policy: Arc::new(policy()),
        concurrency,
        seed: 1,
        samples: Some(samples),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn samples_waiting_on_the_model_hold_no_thread() {
    let sandbox = sandbox();
    let eval = sandbox.prepare(examples::ARITH_WASM).await.expect("arith");
    let model = Arc::new(SlowAdder::new(Duration::from_millis(100)));
    let start = Instant::now();
    let totals = proctor_sandbox::run_job(
        &sandbox,
        &spec(eval, model.clone(), 32, 64),
        &|_: Progress| {},
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert_eq!(totals.tally.get(Outcome::Ok), 64);
    // On one thread, 32 samples were waiting on the model at once.
    assert_eq!(model.peak.load(Ordering::SeqCst), 32);
    // Two waves of 100 ms, not 64 of them.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn concurrency_is_clamped_to_the_policy() {
    let sandbox = sandbox();
    let eval = sandbox.prepare(examples::ARITH_WASM).await.expect("arith");
    let model = Arc::new(SlowAdder::new(Duration::from_millis(20)));
    let mut job = spec(eval, model.clone(), 1000, 40);
    let mut p = policy();
    p.limits.max_concurrency = 4;
    job.policy = Arc::new(p);
    let totals =
        proctor_sandbox::run_job(&sandbox, &job, &|_: Progress| {}, &CancellationToken::new())
            .await
            .expect("runs");
    assert_eq!(totals.tally.get(Outcome::Ok), 40);
    assert!(model.peak.load(Ordering::SeqCst) <= 4);
}

#[tokio::test]
async fn progress_counts_every_sample_and_usage_adds_up() {
    let sandbox = sandbox();
    let eval = sandbox.prepare(examples::ARITH_WASM).await.expect("arith");
    let seen = Arc::new(AtomicU64::new(0));
    let progress = {
        let seen = seen.clone();
        move |p: Progress| {
            seen.fetch_max(p.done, Ordering::SeqCst);
            assert_eq!(p.total, 30);
        }
    };
    let totals = proctor_sandbox::run_job(
        &sandbox,
        &spec(eval, Arc::new(SlowAdder::new(Duration::ZERO)), 8, 30),
        &progress,
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert_eq!(seen.load(Ordering::SeqCst), 30);
    assert_eq!(totals.usage.queries, 30);
    assert_eq!(
        (totals.usage.input_tokens, totals.usage.output_tokens),
        (120, 30)
    );
    assert_eq!(totals.accumulators[0].n, 30);
    // Every sample scores the top of the range: 10^4 grid points under `standard`.
    assert_eq!(
        totals.accumulators[0].sum, 300_000,
        "the adder is always right"
    );
}

#[tokio::test]
async fn a_cancelled_job_stops_promptly_and_reports_nothing() {
    let sandbox = sandbox();
    let eval = sandbox.prepare(examples::ARITH_WASM).await.expect("arith");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let start = Instant::now();
    let job = spec(
        eval,
        Arc::new(SlowAdder::new(Duration::from_secs(30))),
        8,
        100,
    );
    let totals = proctor_sandbox::run_job(&sandbox, &job, &|_: Progress| {}, &cancel)
        .await
        .expect("runs");
    assert!(totals.cancelled);
    assert!(start.elapsed() < Duration::from_secs(5));
    let report =
        proctor_sandbox::run_and_release(&sandbox, &job, "test", &|_: Progress| {}, &cancel, None)
            .await
            .expect("runs");
    assert!(report.is_none(), "nothing is released from a cancelled job");
}

#[tokio::test]
async fn a_policy_beyond_the_engine_is_refused_naming_the_key() {
    let sandbox = sandbox();
    let eval = sandbox.prepare(examples::ARITH_WASM).await.expect("arith");
    let mut job = spec(eval, Arc::new(SlowAdder::new(Duration::ZERO)), 8, 8);
    let mut p = policy();
    p.limits.memory_mib = 1024;
    job.policy = Arc::new(p);
    let err =
        proctor_sandbox::run_job(&sandbox, &job, &|_: Progress| {}, &CancellationToken::new())
            .await
            .unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::PolicyBeyondEngine {
                key: "limits.memory_mib",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn more_metrics_than_the_policy_allows_are_refused() {
    let eval = sandbox()
        .prepare(examples::KNOWLEDGE_WASM)
        .await
        .expect("knowledge");
    let mut p = policy();
    assert_eq!(eval.info.metrics.len(), 2, "accuracy and answered");
    p.release.max_metrics = 1;
    assert!(matches!(
        eval.check_policy(&p),
        Err(SandboxError::TooManyMetrics { .. })
    ));
    p.release.max_metrics = 2;
    eval.check_policy(&p).expect("fits exactly");
}

#[tokio::test]
async fn the_compile_cache_is_reused_and_a_corrupt_entry_is_recompiled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Sandbox::new(settings(), CompileCache::in_dir(dir.path())).expect("engine");
    first.prepare(examples::ARITH_WASM).await.expect("compiles");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&proctor_core::Sha256Digest::of(examples::ARITH_WASM).to_hex()),
        "{name}"
    );
    drop(first);

    // Flip one byte of the artifact: the header digest no longer matches.
    let mut bytes = std::fs::read(&files[0]).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&files[0], &bytes).expect("write");
    let second = Sandbox::new(settings(), CompileCache::in_dir(dir.path())).expect("engine");
    let eval = second
        .prepare(examples::ARITH_WASM)
        .await
        .expect("recompiled, not trusted");
    assert_eq!(eval.info.name, "arith");
    let rewritten = std::fs::read(&files[0]).expect("read");
    assert_ne!(rewritten, bytes, "the corrupt entry was replaced");
}

/// Sums like the adder, but panics on every third call, as a faulty adapter on the host would.
#[derive(Default)]
struct PanicsEveryThird {
    calls: AtomicU64,
}

#[async_trait]
impl Model for PanicsEveryThird {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:panics".into(),
            name: "panics".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        if self.calls.fetch_add(1, Ordering::SeqCst).is_multiple_of(3) {
            panic!("the adapter broke");
        }
        SlowAdder::new(Duration::ZERO).complete(request).await
    }
}

#[tokio::test]
async fn a_model_that_panics_ends_that_sample_as_other_and_the_job_goes_on() {
    let sandbox = sandbox();
    let eval = sandbox.prepare(examples::ARITH_WASM).await.expect("arith");
    let totals = proctor_sandbox::run_job(
        &sandbox,
        &spec(eval, Arc::new(PanicsEveryThird::default()), 8, 30),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .expect("the job runs to its end");
    // Each arith sample makes one query: calls 0, 3, ..., 27 panicked.
    assert_eq!(totals.tally.get(Outcome::Other), 10);
    assert_eq!(totals.tally.get(Outcome::Ok), 20);
    assert_eq!(totals.tally.total(), 30);
    assert!(!totals.cancelled);
}

/// Sums like the adder, but every third query fails the way the service's metering does when
/// its database fails.
#[derive(Default)]
struct MeteringFailsEveryThird {
    calls: AtomicU64,
}

#[async_trait]
impl Model for MeteringFailsEveryThird {
    fn descriptor(&self) -> ModelDescriptor {
        SlowAdder::new(Duration::ZERO).descriptor()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        if self.calls.fetch_add(1, Ordering::SeqCst).is_multiple_of(3) {
            return Err(ModelError::ServiceFault("the database failed".into()));
        }
        SlowAdder::new(Duration::ZERO).complete(request).await
    }
}

/// A service fault under a query ends that sample as `other`, never as the model being
/// unavailable (which is what the guest would report if it were told `unavailable`).
#[tokio::test]
async fn a_service_fault_while_metering_ends_that_sample_as_other_not_as_the_models() {
    let sandbox = sandbox();
    let eval = sandbox.prepare(examples::ARITH_WASM).await.expect("arith");
    let totals = proctor_sandbox::run_job(
        &sandbox,
        &spec(eval, Arc::new(MeteringFailsEveryThird::default()), 8, 30),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .expect("the job runs to its end");
    assert_eq!(totals.tally.get(Outcome::Other), 10);
    assert_eq!(totals.tally.get(Outcome::ModelUnavailable), 0);
    assert_eq!(totals.tally.get(Outcome::Ok), 20);
}

/// Answers right, but reports far more tokens than any query could be billed, and records
/// each query's worst case.
#[derive(Default)]
struct Overreports {
    worst_input: AtomicU64,
    worst_output: AtomicU64,
}

#[async_trait]
impl Model for Overreports {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:overreports".into(),
            name: "overreports".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        let max_output = u64::from(request.params.max_tokens);
        self.worst_input
            .fetch_add(request.worst_case_tokens() - max_output, Ordering::SeqCst);
        self.worst_output.fetch_add(max_output, Ordering::SeqCst);
        let right = SlowAdder::new(Duration::ZERO).complete(request).await?;
        Ok(Completion {
            input_tokens: u32::MAX,
            output_tokens: u32::MAX,
            ..right
        })
    }
}

#[tokio::test]
async fn reported_tokens_are_clamped_to_each_querys_worst_case_before_they_are_tallied() {
    let sandbox = sandbox();
    let eval = sandbox.prepare(examples::ARITH_WASM).await.expect("arith");
    let model = Arc::new(Overreports::default());
    let totals = proctor_sandbox::run_job(
        &sandbox,
        &spec(eval, model.clone(), 8, 30),
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .expect("runs");
    assert_eq!(totals.tally.get(Outcome::Ok), 30);
    assert_eq!(totals.usage.queries, 30);
    assert_eq!(
        (totals.usage.input_tokens, totals.usage.output_tokens),
        (
            model.worst_input.load(Ordering::SeqCst),
            model.worst_output.load(Ordering::SeqCst)
        )
    );
}
