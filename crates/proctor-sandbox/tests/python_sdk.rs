//! The Python SDK (`sdk/python`): evals written on it, built by its `proctor-eval build` (and
//! so by componentize-py from PyPI), score as the Rust example does and end in their named
//! outcomes when hostile. `sdk/python/tests/build.sh` builds the components (cached under
//! `~/.cache/proctor-toolchains/pysdk` by input digest); the SDK's own unit tests run here too,
//! so CI runs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use proctor_core::{Dataset, Model, Outcome, Policy, WasiMode};
use proctor_evals::examples;
use proctor_models::Builtin;
use proctor_sandbox::{
    CancellationToken, CompileCache, EngineSettings, JobSpec, JobTotals, PreparedEval, Progress,
    Sandbox, SandboxError,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory `sdk/python/tests/build.sh` built the components into, once per test binary.
fn built() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = PathBuf::from(std::env::var("HOME").expect("HOME"))
            .join(".cache/proctor-toolchains/pysdk");
        let status = Command::new("bash")
            .arg(repo().join("sdk/python/tests/build.sh"))
            .arg(&out)
            .status()
            .expect("running sdk/python/tests/build.sh");
        assert!(status.success(), "sdk/python/tests/build.sh failed");
        out
    })
}

fn component(name: &str) -> Vec<u8> {
    std::fs::read(built().join(name)).expect("a built component")
}

/// One engine per test binary: each pooling engine reserves a lot of address space.
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let settings = EngineSettings {
                max_concurrent_samples: 8,
                max_memory_mib: 256,
                max_table_elements: 100_000,
            };
            let cache = std::env::var_os("HOME").map_or_else(CompileCache::disabled, |h| {
                CompileCache::in_dir(PathBuf::from(h).join(".cache/proctor-toolchains/compiled"))
            });
            Arc::new(Sandbox::new(settings, cache).expect("engine"))
        })
        .clone()
}

/// Room for an interpreter (fuel, memory) but small enough that a hostile sample ends quickly.
fn hostile_policy() -> Policy {
    Policy::from_toml(
        r#"
        name = "python-hostile"
        wasi = "none"
        [limits]
        fuel_per_sample = 400_000_000
        memory_mib = 128
        table_elements = 100_000
        sample_timeout_s = 30
        max_concurrency = 8
        [queries]
        max_per_sample = 4
        max_prompt_bytes = 65_536
        max_tokens = 64
        [release]
        min_samples = 1
        "#,
    )
    .expect("policy")
}

async fn run(
    eval: Arc<PreparedEval>, items: &str, model: Arc<dyn Model>, policy: Policy) -> JobTotals {
    eval.check_policy(&policy).expect("fits the policy");
    let spec = JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(items.as_bytes(), 1000).expect("dataset")),
        model,
        policy: Arc::new(policy),
        concurrency: 8,
        seed: 11,
        samples: None,
    };
    proctor_sandbox::run_job(&sandbox(), &spec, &|_: Progress| {}, &CancellationToken::new())
        .await
        .expect("the job runs")
}

#[test]
fn the_sdk_bundles_the_sandbox_wit_byte_for_byte() {
    let sdk = repo().join("sdk/python/src/proctor_eval/wit");
    let wit = repo().join("crates/proctor-sandbox");
    for (bundled, original) in [
        ("eval-0.1.0.wit", "wit/proctor.wit"),
        ("eval-0.2.0.wit", "wit-0.2.0/proctor.wit"),
    ] {
        assert!(
            std::fs::read(sdk.join(bundled)).expect("bundled WIT")
                == std::fs::read(wit.join(original)).expect("WIT"),
            "sdk/python/src/proctor_eval/wit/{bundled} differs from crates/proctor-sandbox/{original}: copy it over"
        );
    }
}

#[test]
fn the_sdk_unit_tests_pass() {
    let sdk = repo().join("sdk/python");
    let status = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .env("PYTHONPATH", "src:tests")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&sdk)
        .status()
        .expect("running python3");
    assert!(status.success(), "the Python SDK's unit tests failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_arith_example_scores_as_the_rust_arith_example() {
    // A model wrong on a fifth of the prompts (chosen from the prompt), so that the score is
    // not trivially 1 and both evals must read items and replies alike.
    let model: Arc<dyn Model> =
        Arc::new(Builtin::parse("builtin:arith?error_rate=0.2", 5).expect("model"));
    let sandbox = sandbox();
    let mut totals = Vec::new();
    for bytes in [examples::ARITH_WASM.to_vec(), component("arith.wasm")] {
        let eval = sandbox.prepare(&bytes).await.expect("prepares");
        let mut policy = Policy::standard();
        policy.wasi = WasiMode::None;
        policy.limits.max_concurrency = 8;
        totals.push(run(eval, examples::ARITH_JSONL, model.clone(), policy).await);
    }
    let (rust, python) = (&totals[0], &totals[1]);
    assert_eq!(python.tally, rust.tally);
    assert_eq!(python.accumulators, rust.accumulators);
    assert_eq!(python.usage, rust.usage);
    assert_eq!(rust.tally.get(Outcome::Ok), 500);
    let acc = &rust.accumulators[0];
    assert!(acc.sum < u128::from(acc.n * acc.steps), "some answers are wrong");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_python_samples_end_in_their_named_outcomes() {
    let cases = [
        ("ok", Outcome::Ok),
        ("print", Outcome::Ok),
        ("loop", Outcome::OutOfFuel),
        ("memory", Outcome::Memory),
        ("raise", Outcome::Other),
        ("undeclared", Outcome::PolicyViolation),
        ("non-finite", Outcome::PolicyViolation),
        ("out-of-range", Outcome::PolicyViolation),
        ("invalid", Outcome::InvalidItem),
        ("rejected", Outcome::Failed),
        ("budget", Outcome::BudgetExhausted),
    ];
    let items: String = cases
        .iter()
        .map(|(what, _)| format!("{{\"do\": \"{what}\"}}\n"))
        .collect();
    let eval = sandbox()
        .prepare(&component("hostile.wasm"))
        .await
        .expect("prepares");
    let model: Arc<dyn Model> = Arc::new(Builtin::parse("builtin:echo", 0).expect("model"));
    let totals = run(eval, &items, model, hostile_policy()).await;
    let mut expected: Vec<(&str, u64)> = Outcome::ALL
        .iter()
        .map(|o| {
            let n = cases.iter().filter(|(_, want)| want == o).count();
            (o.as_str(), n as u64)
        })
        .collect();
    expected.retain(|(_, n)| *n > 0);
    let mut got: Vec<(&str, u64)> = Outcome::ALL
        .iter()
        .map(|o| (o.as_str(), totals.tally.get(*o)))
        .collect();
    got.retain(|(_, n)| *n > 0);
    assert_eq!(got, expected);
    // The ok samples' scores count; none of the others' do.
    assert_eq!(totals.accumulators[0].n, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_describe_that_calls_the_model_is_refused_at_prepare() {
    let err = sandbox()
        .prepare(&component("describe-model.wasm"))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, SandboxError::Describe(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "describe failed: describe may not call model.complete"
    );
}
