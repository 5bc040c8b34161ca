//! The arithmetic example written on the Python SDK (`sdk/python/examples/arith`), built by
//! `proctor-eval build`, through the real `proctor run` and through the service: the same
//! released aggregates as the Rust example on the same dataset and model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use proctor_evals::examples::ARITH_WASM;
use serde_json::Value;

// Shared with the client tests; this test starts a server and uses part of what it offers.
#[allow(dead_code)]
#[path = "client/serve_child.rs"]
mod serve_child;

use serve_child::ServeChild;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The SDK-built arith component (`sdk/python/tests/build.sh`, cached by input digest).
fn python_arith() -> PathBuf {
    let out =
        PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/proctor-toolchains/pysdk");
    let status = Command::new("bash")
        .arg(repo().join("sdk/python/tests/build.sh"))
        .arg(&out)
        .status()
        .expect("running sdk/python/tests/build.sh");
    assert!(status.success(), "sdk/python/tests/build.sh failed");
    out.join("arith.wasm")
}

fn dataset() -> String {
    repo()
        .join("crates/evals/arith/arith.jsonl")
        .to_string_lossy()
        .into_owned()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What a release says about the samples and the scores, apart from which eval ran.
fn aggregates(report: &Value) -> Value {
    serde_json::json!({
        "dataset": report["dataset"],
        "samples": report["samples"],
        "usage": report["usage"],
        "metrics": report["metrics"],
        "release": report["release"],
    })
}

fn run_local(eval: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(["run", eval, "--dataset", &dataset()])
        .args(["--model", "builtin:arith?error_rate=0.2", "--seed", "5"])
        .args(["--json", "--concurrency", "8"])
        .env(
            "PROCTOR_CACHE_DIR",
            std::env::temp_dir().join("proctor-cli-test-cache"),
        )
        .output()
        .expect("running proctor");
    serde_json::from_str(&ok(&out)).expect("one JSON object")
}

#[test]
fn proctor_run_gives_the_python_arith_example_the_rust_examples_aggregates() {
    let python = python_arith();
    let dir = tempfile::tempdir().expect("temp dir");
    let rust = dir.path().join("arith.wasm");
    std::fs::write(&rust, ARITH_WASM).expect("write");

    let py = run_local(&python.to_string_lossy());
    let rs = run_local(&rust.to_string_lossy());
    assert_eq!(py["eval"]["name"], "arith-py");
    assert_eq!(py["samples"]["ok"], 500, "{py}");
    assert_eq!(py["release"]["status"], "released", "{py}");
    let mean = py["metrics"]["accuracy"]["mean"].as_f64().expect("a mean");
    assert!(mean < 1.0, "some answers are wrong: {py}");
    assert_eq!(aggregates(&py), aggregates(&rs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_gives_the_python_arith_example_the_rust_examples_aggregates() {
    let python = python_arith();
    let server = ServeChild::start();
    let vendor = server.account("acme", "vendor", None).await;
    let evaluator = server.account("lab", "evaluator", Some("academic")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Always right: the service seeds a built-in's wrong answers per job, so an error rate
    // would differ between the two jobs (`proctor run --seed` pins it for the local test).
    let config = dir.path().join("model.toml");
    std::fs::write(&config, "adapter = \"builtin\"\nmodel = \"arith\"\n").expect("write");
    let model = ok(&server.proctor(
        &vendor,
        &[
            "model",
            "register",
            "--name",
            "arith",
            "--version",
            "1",
            "--config",
            &config.to_string_lossy(),
        ],
    ))
    .trim()
    .to_owned();
    ok(&server.proctor(
        &vendor,
        &[
            "grant",
            "create",
            "--model",
            &model,
            "--tier",
            "academic",
            "--queries-total",
            "1000",
            "--bits-per-job",
            "100000",
            "--bits-total",
            "1000000",
        ],
    ));
    let dataset = ok(&server.proctor(&evaluator, &["dataset", "upload", &dataset()]))
        .trim()
        .to_owned();
    let rust = dir.path().join("arith.wasm");
    std::fs::write(&rust, ARITH_WASM).expect("write");

    let mut reports = Vec::new();
    for eval in [python, rust] {
        let id = ok(&server.proctor(&evaluator, &["eval", "upload", &eval.to_string_lossy()]))
            .trim()
            .to_owned();
        let result = ok(&server.proctor(
            &evaluator,
            &[
                "job",
                "submit",
                "--eval",
                &id,
                "--dataset",
                &dataset,
                "--model",
                &model,
                "--wait",
                "--json",
                "--timeout",
                "300s",
            ],
        ));
        let result: Value = serde_json::from_str(&result).expect("one JSON object");
        assert_eq!(result["status"], "succeeded", "{result}");
        reports.push(result["report"].clone());
    }
    let (py, rs) = (&reports[0], &reports[1]);
    assert_eq!(py["eval"]["name"], "arith-py", "{py}");
    assert_eq!(py["samples"]["ok"], 500, "{py}");
    assert_eq!(aggregates(py), aggregates(rs));
}
