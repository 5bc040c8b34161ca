//! The WIT world is a public contract: the arithmetic eval built by componentize-py and by
//! componentize-js (not only by our Rust SDK) runs unchanged under the standard policy.
//! `tests/toolchains/build.sh` builds them from PyPI's and npm's packages (cached under
//! `~/.cache/proctor-toolchains`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use proctor_core::{
    Completion, CompletionRequest, Dataset, FinishReason, Model, ModelDescriptor, ModelError,
    Outcome, Policy,
};
use proctor_sandbox::{
    CancellationToken, CompileCache, ComponentError, EngineSettings, JobSpec, Progress, Sandbox,
    SandboxError,
};

fn built_components() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::var_os("PROCTOR_TOOLCHAIN_OUT").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/proctor-toolchains/out")
        },
        PathBuf::from,
    );
    let status = Command::new("bash")
        .arg(root.join("tests/toolchains/build.sh"))
        .arg(&out)
        .status()
        .expect("running tests/toolchains/build.sh");
    assert!(status.success(), "tests/toolchains/build.sh failed");
    out
}

/// Answers `A + B` correctly.
struct Adder;

#[async_trait]
impl Model for Adder {
    fn descriptor(&self) -> ModelDescriptor {
        ModelDescriptor {
            reference: "test:adder".into(),
            name: "adder".into(),
            version: "1".into(),
        }
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ModelError> {
        let prompt = &request.messages.last().expect("a message").content;
        let sum: i64 = prompt
            .trim_start_matches("What is ")
            .trim_end_matches('?')
            .split(" + ")
            .filter_map(|n| n.trim().parse::<i64>().ok())
            .sum();
        Ok(Completion {
            text: sum.to_string(),
            finish: FinishReason::Stop,
            input_tokens: 4,
            output_tokens: 1,
        })
    }
}

fn standard() -> Policy {
    let mut p = Policy::standard();
    p.limits.max_concurrency = 8;
    p
}

async fn accuracy(sandbox: &Arc<Sandbox>, bytes: &[u8], policy: Policy) -> (u64, f64) {
    let eval = sandbox.prepare(bytes).await.expect("prepares");
    eval.check_policy(&policy).expect("fits the policy");
    let text: String = (0..20)
        .map(|i| format!("{{\"a\": {i}, \"b\": {}}}\n", 3 * i - 7))
        .collect();
    let spec = JobSpec {
        eval,
        dataset: Arc::new(Dataset::parse(text.as_bytes(), 100).expect("dataset")),
        model: Arc::new(Adder),
        policy: Arc::new(policy),
        concurrency: 8,
        seed: 3,
        samples: None,
    };
    let totals =
        proctor_sandbox::run_job(sandbox, &spec, &|_: Progress| {}, &CancellationToken::new())
            .await
            .expect("runs");
    let acc = &totals.accumulators[0];
    (
        totals.tally.get(Outcome::Ok),
        acc.sum as f64 / (acc.n as f64 * acc.steps as f64),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_evals_run_unchanged_under_the_standard_policy() {
    let out = built_components();
    let settings = EngineSettings {
        max_concurrent_samples: 8,
        max_memory_mib: 256,
        max_table_elements: 100_000,
    };
    let cache = std::env::var_os("HOME").map_or_else(CompileCache::disabled, |h| {
        CompileCache::in_dir(PathBuf::from(h).join(".cache/proctor-toolchains/compiled"))
    });
    let sandbox = Arc::new(Sandbox::new(settings, cache).expect("engine"));
    let read = |name: &str| std::fs::read(out.join(name)).expect("built component");

    for name in [
        "arith-py.wasm",
        "arith-py-nowasi.wasm",
        "arith-js-nowasi.wasm",
    ] {
        assert_eq!(
            accuracy(&sandbox, &read(name), standard()).await,
            (20, 1.0),
            "{name}"
        );
    }

    // Zero-WASI builds also run under `wasi = "none"`.
    let mut no_wasi = standard();
    no_wasi.wasi = proctor_core::WasiMode::None;
    for name in ["arith-py-nowasi.wasm", "arith-js-nowasi.wasm"] {
        assert_eq!(
            accuracy(&sandbox, &read(name), no_wasi.clone()).await,
            (20, 1.0),
            "{name}"
        );
    }
    let py = sandbox
        .prepare(&read("arith-py.wasm"))
        .await
        .expect("prepares");
    assert!(matches!(
        py.check_policy(&no_wasi),
        Err(SandboxError::Component(ComponentError::ForbiddenImports(_)))
    ));

    // A default componentize-js build imports wasi:http, which no policy links.
    let err = sandbox
        .prepare(&read("arith-js.wasm"))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("wasi:http/"), "{err}");
}
