//! The isolation capability of proctor:eval@0.2.0, with hostile code: the `isolation-commands`
//! guest runs each item's commands through `isolation.run` and reports how many runs ended in
//! each verdict. Whatever the isolated code does, the sample itself ends `ok`, and only the
//! verdict comes back. Also: 0.1.0 components run as before, and components that get the
//! 0.2.0 world wrong are refused with names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use proctor_core::{
    Completion, CompletionRequest, Dataset, FinishReason, Model, ModelDescriptor, ModelError,
    Outcome, Policy, WasiMode,
};
use proctor_evals::{examples, test_guests};
use proctor_sandbox::{
    CancellationToken, CompileCache, ComponentError, EngineSettings, JobSpec, JobTotals, Progress,
    Sandbox, SandboxError, World,
};

/// One small-pool engine per test binary: each pooling engine reserves a lot of address space.
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let settings = EngineSettings {
                max_concurrent_samples: 8,
                max_memory_mib: 64,
                max_table_elements: 100_000,
            };
            Arc::new(Sandbox::new(settings, CompileCache::disabled()).expect("engine"))
        })
        .clone()
}

/// Fuel 1e9 per sample (and as much again for its isolated runs), 16 MiB, 30 s.
fn test_policy() -> Policy {
    Policy::from_toml(
        r#"
        name = "test"
        [limits]
        fuel_per_sample = 1_000_000_000
        memory_mib = 16
        table_elements = 10_000
        sample_timeout_s = 30
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

/// Counts the calls that reached it: an isolated run must never reach the model.
#[derive(Default)]
struct Counting {
    calls: AtomicU64,
}

#[async_trait]
impl Model for Counting {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:counting".into(),
            name: "counting".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, _request: CompletionRequest) -> Result<Completion, ModelError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Completion {
            text: "leaked".into(),
            finish: FinishReason::Stop,
            input_tokens: 1,
            output_tokens: 1,
        })
    }
}

/// Runs `items` (JSONL lines) with `guest` under `policy` on `sandbox`.
async fn run_items(
    sandbox: &Arc<Sandbox>,
    guest: &[u8],
    policy: Policy,
    model: Arc<dyn Model>,
    items: &[String],
) -> (JobTotals, Vec<String>) {
    let eval = sandbox.prepare(guest).await.expect("the guest prepares");
    eval.check_policy(&policy)
        .expect("the guest fits the policy");
    let metrics = eval.info.metrics.iter().map(|m| m.name.clone()).collect();
    let text: String = items.iter().map(|item| format!("{item}\n")).collect();
    let spec = JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(text.as_bytes(), 10_000).expect("dataset")),
        model,
        concurrency: policy.limits.max_concurrency as usize,
        policy: Arc::new(policy),
        seed: 7,
        samples: None,
    };
    let totals =
        proctor_sandbox::run_job(sandbox, &spec, &|_: Progress| {}, &CancellationToken::new())
            .await
            .expect("the job runs");
    (totals, metrics)
}

/// One item: these commands, each with the fuel it asks for.
fn item(runs: &[(&str, u64)]) -> String {
    let runs: Vec<String> = runs
        .iter()
        .map(|(code, fuel)| format!("[\"{code}\", {fuel}]"))
        .collect();
    format!("{{\"runs\": [{}]}}", runs.join(", "))
}

/// How many isolated runs, over all ok samples, ended in `verdict` (the guest's metrics are
/// counts in `[0, 100]`).
fn count(totals: &JobTotals, metrics: &[String], verdict: &str) -> f64 {
    let i = metrics
        .iter()
        .position(|m| m == verdict)
        .expect("declared metric");
    let a = &totals.accumulators[i];
    a.sum as f64 * 100.0 / a.steps as f64
}

/// Every verdict's count, in the guest's metric order.
fn verdicts(totals: &JobTotals, metrics: &[String]) -> Vec<(String, f64)> {
    metrics
        .iter()
        .map(|m| (m.clone(), count(totals, metrics, m)))
        .collect()
}

fn assert_all_ok(totals: &JobTotals, samples: u64) {
    assert_eq!(
        totals.tally.get(Outcome::Ok),
        samples,
        "{:?}",
        totals.tally.counts()
    );
    assert_eq!(totals.tally.total(), samples);
}

/// Runs one sample of `runs` under `policy` and returns its verdict counts.
async fn one_sample(runs: &[(&str, u64)], policy: Policy) -> (JobTotals, Vec<String>) {
    let (totals, metrics) = run_items(
        &sandbox(),
        test_guests::ISOLATION_COMMANDS,
        policy,
        Arc::new(Counting::default()),
        &[item(runs)],
    )
    .await;
    assert_all_ok(&totals, 1);
    (totals, metrics)
}

#[tokio::test]
async fn each_kind_of_code_ends_in_its_verdict_and_the_sample_ends_ok() {
    let cases = [
        ("pass", "passed"),
        ("fail", "failed"),
        ("unknown command", "failed"),
        ("loop", "out-of-fuel"),
        ("alloc", "out-of-memory"),
        ("recurse", "crashed"),
        ("panic", "crashed"),
        ("call-model", "crashed"),
        ("read-dataset", "crashed"),
        ("report", "crashed"),
        ("nest", "crashed"),
    ];
    for (code, expected) in cases {
        let model = Arc::new(Counting::default());
        let (totals, metrics) = run_items(
            &sandbox(),
            test_guests::ISOLATION_COMMANDS,
            test_policy(),
            model.clone(),
            &[item(&[(code, 1_000_000_000)])],
        )
        .await;
        assert_all_ok(&totals, 1);
        let counts = verdicts(&totals, &metrics);
        for (verdict, n) in &counts {
            let want = if verdict == expected { 1.0 } else { 0.0 };
            assert_eq!(*n, want, "`{code}`: {counts:?}");
        }
        // Nothing an isolated run did reached the model, the usage or the scores: `report`
        // tried to set `passed` to 64.
        assert_eq!(model.calls.load(Ordering::Relaxed), 0, "`{code}`");
        assert_eq!(totals.usage.queries, 0, "`{code}`");
    }
}

#[tokio::test]
async fn an_isolated_instance_is_fresh_and_sees_nothing_of_its_sample() {
    // `run-sample` sets a static before it runs anything; `see-sample` passes only if it
    // sees it.
    let (totals, metrics) = one_sample(&[("see-sample", 1_000_000)], test_policy()).await;
    assert_eq!(count(&totals, &metrics, "failed"), 1.0);
}

#[tokio::test]
async fn code_that_outlives_the_samples_deadline_is_timed_out_and_the_sample_still_ends_ok() {
    let mut policy = test_policy();
    policy.limits.fuel_per_sample = 1_000_000_000_000;
    policy.limits.sample_timeout_s = 2.0;
    let (totals, metrics) = one_sample(&[("loop", u64::MAX)], policy).await;
    assert_eq!(count(&totals, &metrics, "timed-out"), 1.0);
}

#[tokio::test]
async fn isolation_fuel_is_one_budget_shared_by_all_of_a_samples_runs() {
    // Ten endless loops that each ask for all the fuel there is: the first spends the
    // sample's isolation budget (1e9), the others get none, and so does a `pass` after them.
    let mut runs = vec![("loop", u64::MAX); 10];
    runs.push(("pass", 1_000_000));
    let started = Instant::now();
    let (totals, metrics) = one_sample(&runs, test_policy()).await;
    eprintln!(
        "ten isolated endless loops under a 1e9 isolation budget: {:?}",
        started.elapsed()
    );
    assert_eq!(count(&totals, &metrics, "out-of-fuel"), 11.0);
    assert_eq!(count(&totals, &metrics, "passed"), 0.0);
}

#[tokio::test]
async fn a_run_gets_no_more_fuel_than_it_asks_for_and_leaves_the_rest() {
    let (totals, metrics) =
        one_sample(&[("loop", 5_000_000), ("pass", 1_000_000)], test_policy()).await;
    assert_eq!(count(&totals, &metrics, "out-of-fuel"), 1.0);
    assert_eq!(count(&totals, &metrics, "passed"), 1.0);
}

#[tokio::test]
async fn every_run_costs_at_least_the_floor_so_the_number_of_runs_is_bounded() {
    // A budget of ten floors: `pass` uses far less fuel than the floor, yet only ten run.
    let floor = proctor_sandbox::RUN_FUEL_FLOOR;
    let mut policy = test_policy();
    policy.limits.fuel_per_sample = 10 * floor;
    let (totals, metrics) = one_sample(&[("pass", floor); 20], policy).await;
    assert_eq!(count(&totals, &metrics, "passed"), 10.0);
    assert_eq!(count(&totals, &metrics, "out-of-fuel"), 10.0);
}

#[tokio::test]
async fn samples_in_flight_at_the_pools_size_all_get_their_isolated_runs() {
    // An engine sized for 2 samples, a job of 24 at concurrency 2, three runs each: isolated
    // instances take pool slots of their own, so none fails for want of one and none waits
    // for ever.
    let small = Arc::new(
        Sandbox::new(
            EngineSettings {
                max_concurrent_samples: 2,
                max_memory_mib: 16,
                max_table_elements: 10_000,
            },
            CompileCache::disabled(),
        )
        .expect("engine"),
    );
    let mut policy = test_policy();
    policy.limits.max_concurrency = 2;
    let items = vec![item(&[("pass", 1_000_000); 3]); 24];
    let (totals, metrics) = run_items(
        &small,
        test_guests::ISOLATION_COMMANDS,
        policy,
        Arc::new(Counting::default()),
        &items,
    )
    .await;
    assert_all_ok(&totals, 24);
    assert_eq!(count(&totals, &metrics, "passed"), 72.0);
}

#[tokio::test]
async fn a_0_2_0_component_prepares_as_such_and_runs_under_wasi_none() {
    let eval = sandbox()
        .prepare(test_guests::ISOLATION_COMMANDS)
        .await
        .expect("prepares");
    assert_eq!(eval.world(), World::V0_2);
    assert!(eval.imports.wasi.is_empty(), "{:?}", eval.imports);
    let mut policy = test_policy();
    policy.wasi = WasiMode::None;
    let (totals, metrics) = one_sample(&[("pass", 1_000_000), ("fail", 1_000_000)], policy).await;
    assert_eq!(count(&totals, &metrics, "passed"), 1.0);
    assert_eq!(count(&totals, &metrics, "failed"), 1.0);
}

#[tokio::test]
async fn a_0_1_0_component_still_runs_as_before() {
    let eval = sandbox()
        .prepare(examples::ARITH_WASM)
        .await
        .expect("prepares");
    assert_eq!(eval.world(), World::V0_1);
    let items = vec!["{\"a\": 2, \"b\": 3}".to_owned(); 8];
    let (totals, metrics) = run_items(
        &sandbox(),
        examples::ARITH_WASM,
        test_policy(),
        Arc::new(Counting::default()),
        &items,
    )
    .await;
    assert_all_ok(&totals, 8);
    assert_eq!(metrics, ["accuracy"]);
    // "leaked" is no sum.
    assert_eq!(totals.accumulators[0].sum, 0);
    assert_eq!(totals.usage.queries, 8);
}

#[tokio::test]
async fn a_run_isolated_export_of_the_wrong_type_is_refused_naming_it() {
    let err = sandbox()
        .prepare(test_guests::ISOLATION_WRONG_TYPE)
        .await
        .err()
        .expect("refused");
    let msg = format!("{err}");
    assert!(
        matches!(err, SandboxError::Component(ComponentError::WrongWorld(_))),
        "{msg}"
    );
    assert!(msg.contains("run-isolated"), "{msg}");
}

#[tokio::test]
async fn a_0_2_0_component_importing_an_unknown_interface_is_refused_naming_it() {
    let err = sandbox()
        .prepare(test_guests::ISOLATION_UNKNOWN_IMPORT)
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    let SandboxError::Component(ComponentError::ForbiddenImports(names)) = &err else {
        panic!("{msg}");
    };
    assert_eq!(names, &["evil:exfil/leak@0.1.0"], "{msg}");
}

#[tokio::test]
async fn importing_isolation_without_exporting_run_isolated_is_refused_naming_both() {
    let err = sandbox()
        .prepare(test_guests::ISOLATION_WITHOUT_EXPORT)
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(
        matches!(err, SandboxError::Component(ComponentError::WrongWorld(_))),
        "{msg}"
    );
    assert!(
        msg.contains("proctor:eval/isolation@0.2.0") && msg.contains("run-isolated"),
        "{msg}"
    );
}
