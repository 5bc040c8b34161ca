//! Hostile and broken guests, each a real component built from `crates/evals/test-guests`.
//! Every test guest misbehaves on even sample indexes only and reports `ok = 1` on odd ones,
//! so each test also shows that the other samples of the job complete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use proctor_core::{
    Completion, CompletionRequest, Dataset, FinishReason, Model, ModelDescriptor, ModelError,
    Outcome, Policy,
};
use proctor_evals::{examples, test_guests};
use proctor_sandbox::{
    CancellationToken, CompileCache, ComponentError, EngineSettings, JobSpec, JobTotals, Progress,
    Sandbox, SandboxError,
};

/// One small-pool engine per test binary: each pooling engine reserves a lot of address space.
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let settings = EngineSettings {
                max_concurrent_samples: 32,
                max_memory_mib: 64,
                max_table_elements: 100_000,
            };
            Arc::new(Sandbox::new(settings, CompileCache::disabled()).expect("engine"))
        })
        .clone()
}

/// A small policy: fuel 1e7, 16 MiB, 2 s per sample.
fn test_policy() -> Policy {
    Policy::from_toml(
        r#"
        name = "test"
        [limits]
        fuel_per_sample = 10_000_000
        memory_mib = 16
        table_elements = 10_000
        sample_timeout_s = 2
        max_concurrency = 8
        [queries]
        max_per_sample = 16
        max_prompt_bytes = 65_536
        max_tokens = 64
        [release]
        min_samples = 1
        "#,
    )
    .expect("test policy")
}

/// Answers every prompt with "2" and counts the calls that reached it.
#[derive(Default)]
struct Two {
    calls: AtomicU64,
}

#[async_trait]
impl Model for Two {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:two".into(),
            name: "two".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Completion {
            text: "2".into(),
            finish: FinishReason::Stop,
            input_tokens: request.messages.len() as u32,
            output_tokens: 1,
        })
    }
}

fn dataset(items: usize) -> Arc<Dataset> {
    let text = "{\"a\": 1, \"b\": 1}\n".repeat(items);
    Arc::new(Dataset::parse(text.as_bytes(), 1000).expect("dataset"))
}

async fn run_with(
    guest: &[u8],
    policy: Policy,
    model: Arc<dyn Model>,
    items: usize,
) -> (JobTotals, Vec<String>) {
    let sandbox = sandbox();
    let eval = sandbox.prepare(guest).await.expect("the guest prepares");
    let metrics = eval.info.metrics.iter().map(|m| m.name.clone()).collect();
    let spec = JobSpec {
        eval,
        dataset: dataset(items),
        model,
        policy: Arc::new(policy),
        concurrency: 8,
        seed: 7,
        samples: None,
    };
    let totals = proctor_sandbox::run_job(
        &sandbox,
        &spec,
        &|_: Progress| {},
        &CancellationToken::new(),
    )
    .await
    .expect("the job runs");
    (totals, metrics)
}

async fn run(guest: &[u8]) -> (JobTotals, Vec<String>) {
    run_with(guest, test_policy(), Arc::new(Two::default()), 8).await
}

/// The even half of 8 samples ended in `outcome`; the odd half completed ok.
fn assert_half(totals: &JobTotals, outcome: Outcome) {
    assert_eq!(totals.tally.get(outcome), 4, "{:?}", totals.tally.counts());
    assert_eq!(
        totals.tally.get(Outcome::Ok),
        4,
        "{:?}",
        totals.tally.counts()
    );
    assert_eq!(totals.tally.total(), 8);
    // Trapped and failed samples contribute no scores: `ok` counts only the odd half.
    assert_eq!(totals.accumulators[0].n, 4);
}

/// A metric's mean over the ok samples, as a share of its range (the guests here declare
/// `[0, 1]`, where the two agree).
fn mean(totals: &JobTotals, metrics: &[String], name: &str) -> f64 {
    let i = metrics
        .iter()
        .position(|m| m == name)
        .expect("declared metric");
    let a = &totals.accumulators[i];
    a.sum as f64 / (a.n as f64 * a.steps as f64)
}

#[tokio::test]
async fn a_guest_that_loops_forever_ends_out_of_fuel() {
    let (totals, _) = run(test_guests::LOOP_FOREVER).await;
    assert_half(&totals, Outcome::OutOfFuel);
}

#[tokio::test]
async fn a_guest_that_loops_forever_with_fuel_to_spare_hits_the_deadline() {
    let mut policy = test_policy();
    policy.limits.fuel_per_sample = 1_000_000_000_000;
    policy.limits.sample_timeout_s = 0.3;
    let (totals, _) = run_with(
        test_guests::LOOP_FOREVER,
        policy,
        Arc::new(Two::default()),
        8,
    )
    .await;
    assert_half(&totals, Outcome::Deadline);
}

#[tokio::test]
async fn a_memory_bomb_ends_at_the_memory_limit() {
    let (totals, _) = run(test_guests::MEMORY_BOMB).await;
    assert_half(&totals, Outcome::Memory);
}

#[tokio::test]
async fn unbounded_recursion_ends_in_stack_overflow() {
    let mut policy = test_policy();
    policy.limits.fuel_per_sample = 1_000_000_000;
    let (totals, _) = run_with(
        test_guests::DEEP_RECURSION,
        policy,
        Arc::new(Two::default()),
        8,
    )
    .await;
    assert_half(&totals, Outcome::StackOverflow);
}

#[tokio::test]
async fn a_query_storm_is_cut_off_at_the_per_sample_limit() {
    let model = Arc::new(Two::default());
    let (totals, _) = run_with(test_guests::QUERY_STORM, test_policy(), model.clone(), 8).await;
    assert_half(&totals, Outcome::BudgetExhausted);
    // Four storming samples, 16 queries each, reached the model; nothing more.
    assert_eq!(model.calls.load(Ordering::Relaxed), 4 * 16);
    assert_eq!(totals.usage.queries, 4 * 16);
}

#[tokio::test]
async fn an_oversized_prompt_is_rejected_before_it_reaches_the_model() {
    let model = Arc::new(Two::default());
    let (totals, metrics) =
        run_with(test_guests::BIG_PROMPT, test_policy(), model.clone(), 8).await;
    assert_eq!(totals.tally.get(Outcome::Ok), 8);
    assert_eq!(mean(&totals, &metrics, "rejected"), 1.0);
    assert_eq!(model.calls.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_undeclared_metric_is_a_policy_violation() {
    let (totals, _) = run(test_guests::UNDECLARED_METRIC).await;
    assert_half(&totals, Outcome::PolicyViolation);
}

#[tokio::test]
async fn nan_and_infinite_scores_are_policy_violations() {
    let (totals, _) = run(test_guests::BAD_SCORES).await;
    assert_half(&totals, Outcome::PolicyViolation);
}

#[tokio::test]
async fn scores_are_clipped_to_the_declared_range_and_the_last_value_wins() {
    let (totals, metrics) = run(test_guests::OUT_OF_RANGE_SCORE).await;
    assert_eq!(totals.tally.get(Outcome::Ok), 8);
    // Even samples: 5.0 then -3.0, the last clipped to 0; odd samples: 1.0.
    assert_eq!(mean(&totals, &metrics, "ok"), 0.5);
}

#[tokio::test]
async fn state_carried_across_samples_is_not_observable() {
    let (totals, metrics) = run(test_guests::STATEFUL).await;
    assert_eq!(totals.tally.get(Outcome::Ok), 8);
    assert_eq!(
        mean(&totals, &metrics, "seen"),
        1.0,
        "every sample saw a fresh instance"
    );
}

#[tokio::test]
async fn reading_an_item_out_of_range_is_a_policy_violation() {
    let (totals, _) = run(test_guests::ITEM_OUT_OF_RANGE).await;
    assert_half(&totals, Outcome::PolicyViolation);
}

#[tokio::test]
async fn a_panic_ends_its_sample_as_other() {
    let (totals, _) = run(test_guests::PANICS).await;
    assert_half(&totals, Outcome::Other);
}

#[tokio::test]
async fn a_guest_exit_ends_its_sample_as_other() {
    let (totals, _) = run(test_guests::EXIT).await;
    assert_half(&totals, Outcome::Other);
}

#[tokio::test]
async fn a_guest_asleep_in_a_host_call_times_out() {
    let mut policy = test_policy();
    policy.limits.sample_timeout_s = 0.3;
    let (totals, _) = run_with(test_guests::SLEEPER, policy, Arc::new(Two::default()), 8).await;
    assert_half(&totals, Outcome::Timeout);
}

#[tokio::test]
async fn inert_wasi_shows_no_environment_and_discards_output() {
    let (totals, metrics) = run(test_guests::WASI_STD).await;
    assert_eq!(
        totals.tally.get(Outcome::Ok),
        8,
        "{:?}",
        totals.tally.counts()
    );
    assert_eq!(mean(&totals, &metrics, "env_vars"), 0.0);
}

#[tokio::test]
async fn under_inert_wasi_a_socket_call_fails_inside_the_guest() {
    let (totals, metrics) = run(test_guests::SOCKETS).await;
    assert_eq!(
        totals.tally.get(Outcome::Ok),
        8,
        "{:?}",
        totals.tally.counts()
    );
    assert_eq!(mean(&totals, &metrics, "ok"), 1.0, "every connect failed");
}

#[tokio::test]
async fn under_wasi_none_a_sockets_import_is_refused_naming_it() {
    let sandbox = sandbox();
    let eval = sandbox
        .prepare(test_guests::SOCKETS)
        .await
        .expect("prepares");
    let mut policy = test_policy();
    policy.wasi = proctor_core::WasiMode::None;
    let err = eval.check_policy(&policy).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(
        err,
        SandboxError::Component(ComponentError::ForbiddenImports(_))
    ));
    assert!(
        msg.contains("wasi:sockets/tcp@") && msg.contains("wasi:cli/"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_import_outside_the_eval_world_is_refused_naming_it() {
    let err = sandbox()
        .prepare(test_guests::UNKNOWN_IMPORT)
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            SandboxError::Component(ComponentError::ForbiddenImports(_))
        ),
        "{msg}"
    );
    assert!(msg.contains("evil:exfil/leak@0.1.0"), "{msg}");
}

/// Refused from its names alone: neither the forbidden import nor the missing export costs a
/// compile (seconds of CPU for a large component). The compile cache sees every compile, and
/// holds one only for the component that was compiled.
#[tokio::test]
async fn refused_components_are_not_compiled() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let settings = EngineSettings {
        max_concurrent_samples: 4,
        max_memory_mib: 64,
        max_table_elements: 100_000,
    };
    let sandbox = Sandbox::new(settings, CompileCache::in_dir(dir.path())).expect("engine");
    for refused in [test_guests::UNKNOWN_IMPORT, test_guests::OTHER_WORLD] {
        sandbox.prepare(refused).await.err().expect("refused");
    }
    assert_eq!(
        files_under(dir.path()),
        0,
        "nothing compiled for the refused components"
    );
    sandbox
        .prepare(examples::ARITH_WASM)
        .await
        .expect("arith prepares");
    assert_eq!(
        files_under(dir.path()),
        1,
        "the accepted one compiled, and cached"
    );
}

/// Files under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() { files_under(&path) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let err = sandbox()
        .prepare(test_guests::OTHER_WORLD)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, SandboxError::Component(ComponentError::WrongWorld(_))),
        "{err}"
    );
    assert!(err.to_string().contains("describe"), "{err}");
}

#[tokio::test]
async fn garbage_empty_files_and_core_modules_get_their_own_messages() {
    let s = sandbox();
    assert!(matches!(
        s.prepare(b"").await.err(),
        Some(SandboxError::Component(ComponentError::Empty))
    ));
    assert!(matches!(
        s.prepare(b"MZ\x90\0 not wasm at all").await.err(),
        Some(SandboxError::Component(ComponentError::NotWasm))
    ));
    assert!(matches!(
        s.prepare(b"\0asm\x01\0\0\0").await.err(),
        Some(SandboxError::Component(ComponentError::CoreModule))
    ));
    let mut truncated = examples::ARITH_WASM.to_vec();
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        s.prepare(&truncated).await.err(),
        Some(SandboxError::Component(ComponentError::Invalid(_)))
    ));
}

#[tokio::test]
async fn describe_may_not_touch_the_model_or_the_dataset() {
    for guest in [
        test_guests::DESCRIBE_CALLS_MODEL,
        test_guests::DESCRIBE_READS_DATASET,
    ] {
        let err = sandbox().prepare(guest).await.err().expect("refused");
        assert!(matches!(err, SandboxError::Describe(_)), "{err}");
        assert!(err.to_string().contains("describe may not"), "{err}");
    }
}

#[tokio::test]
async fn bad_metric_declarations_are_refused() {
    for guest in [test_guests::BAD_METRIC_NAME, test_guests::INVERTED_METRIC] {
        let err = sandbox().prepare(guest).await.err().expect("refused");
        assert!(matches!(err, SandboxError::Declaration(_)), "{err}");
    }
}

#[tokio::test]
async fn after_every_hostile_guest_the_process_still_runs_a_real_eval() {
    for guest in [
        test_guests::LOOP_FOREVER,
        test_guests::MEMORY_BOMB,
        test_guests::DEEP_RECURSION,
        test_guests::PANICS,
    ] {
        let _ = run(guest).await;
    }
    let (totals, metrics) = run_with(
        examples::ARITH_WASM,
        test_policy(),
        Arc::new(Two::default()),
        8,
    )
    .await;
    assert_eq!(totals.tally.get(Outcome::Ok), 8);
    // "2" is right for 1 + 1.
    assert_eq!(mean(&totals, &metrics, "accuracy"), 1.0);
}
