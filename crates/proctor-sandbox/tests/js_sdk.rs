//! The JavaScript SDK (`sdk/js`) against the real host: its arith example scores as the Rust
//! one does on the same items, its TypeScript and `--wasi` builds run where they should, its
//! project template builds and runs, hostile guests written on it end in their named
//! outcomes, and its `--isolation` build runs code confined. `sdk/js/tests/build.sh` builds the components with the SDK's own `proctor-eval
//! build` (npm's packages, cached by input digest under `~/.cache/proctor-toolchains/js-sdk`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use proctor_core::{
    Completion, CompletionRequest, Dataset, FinishReason, Model, ModelDescriptor, ModelError,
    Outcome, Policy, SampleCounts, WasiMode,
};
use proctor_sandbox::{
    CancellationToken, CompileCache, ComponentError, EngineSettings, JobSpec, JobTotals,
    PreparedEval, Progress, Sandbox, SandboxError,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `~/.cache/proctor-toolchains/js-sdk` after `sdk/js/tests/build.sh` ran (once per process).
fn js_sdk() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("bash")
            .arg(repo().join("sdk/js/tests/build.sh"))
            .status()
            .expect("running sdk/js/tests/build.sh");
        assert!(status.success(), "sdk/js/tests/build.sh failed");
        let cache = std::env::var_os("PROCTOR_TOOLCHAIN_CACHE").map_or_else(
            || {
                PathBuf::from(std::env::var("HOME").expect("HOME"))
                    .join(".cache/proctor-toolchains")
            },
            PathBuf::from,
        );
        cache.join("js-sdk")
    })
}

fn built(name: &str) -> Vec<u8> {
    std::fs::read(js_sdk().join("out").join(name)).expect("a built component")
}

/// One engine per test binary, its compiled components cached on disk (cranelift takes
/// seconds for a 12 MB JS guest).
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let settings = EngineSettings {
                max_concurrent_samples: 8,
                max_memory_mib: 64,
                max_table_elements: 100_000,
            };
            let cache = std::env::var_os("HOME").map_or_else(CompileCache::disabled, |h| {
                CompileCache::in_dir(PathBuf::from(h).join(".cache/proctor-toolchains/compiled"))
            });
            Arc::new(Sandbox::new(settings, cache).expect("engine"))
        })
        .clone()
}

/// Prepares `name` once for all tests of this binary: tests run in parallel, and two first
/// compiles of one 12 MB component would each take seconds of the machine's two cores.
async fn prepared(name: &str) -> Arc<PreparedEval> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let bytes = built(name);
    let _turn = ONE_AT_A_TIME.lock().await;
    sandbox().prepare(&bytes).await.expect("prepares")
}

/// Standard, with the engine's smaller pool and memory.
fn policy() -> Policy {
    let mut p = Policy::standard();
    p.limits.max_concurrency = 8;
    p.limits.memory_mib = 64;
    p
}

async fn run(
    eval: Arc<PreparedEval>,
    dataset: &str,
    model: Arc<dyn Model>,
    policy: Policy,
) -> JobTotals {
    eval.check_policy(&policy).expect("fits the policy");
    let spec = JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(dataset.as_bytes(), 1000).expect("dataset")),
        model,
        policy: Arc::new(policy),
        concurrency: 8,
        seed: 11,
        samples: None,
    };
    proctor_sandbox::run_job(
        &sandbox(),
        &spec,
        &|_: Progress| {},
        &CancellationToken::new(),
    )
    .await
    .expect("the job runs")
}

/// Answers `What is A + B?` in one of four ways, chosen by the sum, so that an eval's score
/// depends on how it reads a reply: the bare sum, a sentence holding it, the sum plus one, or
/// no number at all. Any other prompt: "2", except that "unavailable" fails like a dead
/// endpoint.
struct Sloppy;

#[async_trait]
impl Model for Sloppy {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:sloppy".into(),
            name: "sloppy".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        let prompt = &request.messages.last().expect("a message").content;
        if prompt == "unavailable" {
            return Err(ModelError::Unavailable("test endpoint down".into()));
        }
        let terms: Vec<i128> = prompt
            .strip_prefix("What is ")
            .and_then(|p| p.strip_suffix('?'))
            .map(|p| p.split(" + ").filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        let text = match terms[..] {
            [a, b] => match (a + b).rem_euclid(4) {
                0 => format!("{}", a + b),
                1 => format!("The answer is {}.", a + b),
                2 => format!("{}", a + b + 1),
                _ => "I don't know".into(),
            },
            _ => "2".into(),
        };
        Ok(Completion {
            text,
            finish: FinishReason::Stop,
            input_tokens: 4,
            output_tokens: 1,
        })
    }
}

/// What a job released-to-be depends on: outcome counts and the first metric's sums.
fn aggregates(totals: &JobTotals) -> (SampleCounts, u64, u128, u128) {
    let a = &totals.accumulators[0];
    (totals.tally.counts(), a.n, a.sum, a.sum_sq)
}

#[test]
fn the_bundled_wit_is_byte_identical_to_the_hosts() {
    for dir in ["wit", "wit-0.2.0"] {
        let host = std::fs::read(repo().join(format!("crates/proctor-sandbox/{dir}/proctor.wit")))
            .expect("read");
        let bundled =
            std::fs::read(repo().join(format!("sdk/js/{dir}/proctor.wit"))).expect("read");
        assert!(
            host == bundled,
            "sdk/js/{dir}/proctor.wit has drifted from crates/proctor-sandbox/{dir}/proctor.wit: copy it"
        );
    }
}

#[test]
fn the_sdks_own_unit_tests_and_type_checks_pass() {
    let sdk = js_sdk().join("sdk");
    for script in ["test", "typecheck"] {
        let out = Command::new("npm")
            .args(["run", "--silent", script])
            .current_dir(&sdk)
            .output()
            .expect("running npm");
        assert!(
            out.status.success(),
            "npm run {script} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_built_arith_example_scores_as_the_rust_one_on_the_same_items() {
    let items =
        std::fs::read_to_string(repo().join("crates/evals/arith/arith.jsonl")).expect("read");
    let rust = sandbox()
        .prepare(proctor_evals::examples::ARITH_WASM)
        .await
        .expect("prepares");
    let expected = aggregates(&run(rust, &items, Arc::new(Sloppy), policy()).await);
    let (counts, n, sum, _) = expected;
    assert_eq!(counts.ok, 500);
    assert!(
        0 < sum && sum < u128::from(n) * 10_000,
        "some right, some wrong: {sum}"
    );

    let js = prepared("arith.wasm").await;
    assert_eq!(js.info.name, "arith-js");
    assert_eq!(
        aggregates(&run(js.clone(), &items, Arc::new(Sloppy), policy()).await),
        expected
    );
    // A pure build imports no WASI: it runs under `wasi = "none"` too.
    let mut none = policy();
    none.wasi = WasiMode::None;
    assert_eq!(
        aggregates(&run(js, &items, Arc::new(Sloppy), none.clone()).await),
        expected
    );

    // The TypeScript variant, built with --wasi: the same scores under inert WASI, and its
    // stdio imports refused under `none`.
    let ts = prepared("arith-ts-wasi.wasm").await;
    assert_eq!(ts.info.name, "arith-ts");
    assert_eq!(
        aggregates(&run(ts.clone(), &items, Arc::new(Sloppy), policy()).await),
        expected
    );
    let Err(SandboxError::Component(ComponentError::ForbiddenImports(imports))) =
        ts.check_policy(&none)
    else {
        panic!("a --wasi build is refused under wasi = \"none\"");
    };
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:cli/stderr")),
        "{imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:http")),
        "{imports:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_template_project_builds_and_runs_on_its_sample_dataset() {
    let eval = prepared("template.wasm").await;
    assert_eq!(eval.info.name, "js-template");
    let items = std::fs::read_to_string(js_sdk().join("out/template.jsonl")).expect("read");
    let rust = sandbox()
        .prepare(proctor_evals::examples::ARITH_WASM)
        .await
        .expect("prepares");
    let expected = aggregates(&run(rust, &items, Arc::new(Sloppy), policy()).await);
    assert_eq!(
        aggregates(&run(eval, &items, Arc::new(Sloppy), policy()).await),
        expected
    );
}

/// A small policy for hostile guests: fuel 2e8 (a JS sample of the arith eval needs far less),
/// 64 MiB, 2 s per sample, 4 queries per sample, prompts up to 1 KiB.
fn hostile_policy() -> Policy {
    let mut p = policy();
    p.limits.fuel_per_sample = 200_000_000;
    p.limits.sample_timeout_s = 2.0;
    p.queries.max_per_sample = 4;
    p.queries.max_prompt_bytes = 1024;
    p.release.min_samples = 1;
    p
}

/// Runs the hostile guest on `behaviours` (the items' `do`), interleaved with `ok` items.
async fn hostile(behaviour: &str, policy: Policy) -> JobTotals {
    let eval = prepared("hostile.wasm").await;
    let items: String = (0..4)
        .map(|i| {
            format!(
                "{{\"do\": \"{}\"}}\n",
                if i % 2 == 0 { behaviour } else { "ok" }
            )
        })
        .collect();
    run(eval, &items, Arc::new(Sloppy), policy).await
}

/// Half of the 4 samples ended in `outcome`, the other half ok with their score.
fn assert_half(totals: &JobTotals, outcome: Outcome) {
    assert_eq!(totals.tally.get(outcome), 2, "{:?}", totals.tally.counts());
    assert_eq!(
        totals.tally.get(Outcome::Ok),
        2,
        "{:?}",
        totals.tally.counts()
    );
    assert_eq!(totals.accumulators[0].n, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_guest_that_loops_forever_ends_out_of_fuel() {
    assert_half(&hostile("loop", hostile_policy()).await, Outcome::OutOfFuel);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_guest_that_loops_forever_with_fuel_to_spare_hits_the_deadline() {
    let mut policy = hostile_policy();
    policy.limits.fuel_per_sample = 1_000_000_000_000;
    policy.limits.sample_timeout_s = 0.5;
    assert_half(&hostile("loop", policy).await, Outcome::Deadline);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_memory_bomb_ends_at_the_memory_limit() {
    assert_half(&hostile("memory", hostile_policy()).await, Outcome::Memory);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uncaught_js_exception_traps_its_sample_as_other() {
    assert_half(&hostile("throw", hostile_policy()).await, Outcome::Other);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_undeclared_metric_is_a_policy_violation() {
    assert_half(
        &hostile("undeclared", hostile_policy()).await,
        Outcome::PolicyViolation,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_maps_escaping_errors_to_their_sample_errors() {
    for (behaviour, outcome) in [
        ("invalid", Outcome::InvalidItem),
        ("storm", Outcome::BudgetExhausted),
        ("unavailable", Outcome::ModelUnavailable),
        ("oversized", Outcome::Failed),
    ] {
        let totals = hostile(behaviour, hostile_policy()).await;
        assert_eq!(
            totals.tally.get(outcome),
            2,
            "{behaviour}: {:?}",
            totals.tally.counts()
        );
        assert_eq!(totals.tally.get(Outcome::Ok), 2, "{behaviour}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caught_rejection_carries_the_hosts_reason() {
    let totals = hostile("rejected-reason", hostile_policy()).await;
    assert_eq!(
        totals.tally.get(Outcome::Ok),
        4,
        "{:?}",
        totals.tally.counts()
    );
    let a = &totals.accumulators[0];
    assert_eq!(
        a.sum,
        u128::from(a.n * a.steps),
        "every sample saw the host's text"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_describe_that_calls_the_model_is_refused_at_prepare() {
    let err = sandbox()
        .prepare(&built("describe-calls-model.wasm"))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, SandboxError::Describe(_)), "{err}");
    assert!(err.to_string().contains("describe may not"), "{err}");
}

/// Each item's code (run through `isolation.run` by the isolated guest) with the verdict it
/// must get, and the fuel it is given when not the guest's default.
const ISOLATED_CASES: &[(&str, &str, Option<u64>)] = &[
    ("1 + 1", "passed", None),
    ("throw new Error('no')", "failed", None),
    ("this is not javascript", "failed", None),
    ("for (;;) {}", "out-of-fuel", Some(50_000_000)),
    (
        "const a = []; for (;;) a.push(new Float64Array(1 << 20).fill(1));",
        "out-of-memory",
        Some(1_000_000_000),
    ),
    // The eval put `scores` and `model` on globalThis; in the isolated instance they trap.
    ("scores.report('ok', 1)", "crashed", None),
    (
        "model.complete([{ role: 'user', content: 'What is 1 + 1?' }])",
        "crashed",
        None,
    ),
    // A fresh instance each run: what one run leaves on globalThis the next never sees.
    ("globalThis.leak = 1", "passed", None),
    (
        "if (globalThis.leak !== undefined) throw new Error('saw it')",
        "passed",
        None,
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn isolated_js_code_gets_its_verdict_and_reaches_neither_scores_nor_the_model() {
    let eval = prepared("isolated.wasm").await;
    assert_eq!(eval.world(), proctor_sandbox::World::V0_2);
    let items: String = ISOLATED_CASES
        .iter()
        .map(|(code, want, fuel)| {
            let mut item = serde_json::json!({ "code": code, "want": want });
            if let Some(fuel) = fuel {
                item["fuel"] = (*fuel).into();
            }
            format!("{item}\n")
        })
        .collect();
    let mut policy = policy();
    policy.release.min_samples = 1;
    let totals = run(eval, &items, Arc::new(Sloppy), policy).await;
    let n = ISOLATED_CASES.len() as u64;
    assert_eq!(
        totals.tally.get(Outcome::Ok),
        n,
        "{:?}",
        totals.tally.counts()
    );
    let a = &totals.accumulators[0];
    assert_eq!(
        a.sum,
        u128::from(n * a.steps),
        "every run got the verdict its item names"
    );
    assert_eq!(totals.usage.queries, 0, "no isolated run reached the model");
}
