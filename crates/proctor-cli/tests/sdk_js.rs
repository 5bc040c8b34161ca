//! The arith example written on the JavaScript SDK (`sdk/js/examples/arith`), built from
//! source with `proctor-eval build` (npm's packages; `sdk/js/tests/build.sh`, cached by input
//! digest), through the real `proctor run` binary and through a real `proctor serve`: the same
//! released aggregates as the Rust arith example on the same dataset and model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

// Shared with the client tests; this one needs only part of it.
#[allow(dead_code)]
#[path = "client/serve_child.rs"]
mod serve_child;

use serve_child::ServeChild;

/// `sdk/js/examples/arith/arith.js` built as a pure component.
fn js_arith() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("bash")
        .arg(repo.join("sdk/js/tests/build.sh"))
        .status()
        .expect("running sdk/js/tests/build.sh");
    assert!(status.success(), "sdk/js/tests/build.sh failed");
    let cache = std::env::var_os("PROCTOR_TOOLCHAIN_CACHE").map_or_else(
        || PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/proctor-toolchains"),
        PathBuf::from,
    );
    cache.join("js-sdk/out/arith.wasm")
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

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The Rust examples (`arith.wasm`, `arith.jsonl`) written into `dir`.
fn rust_examples(dir: &Path) {
    ok(&Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(["examples", "--out", path(dir)])
        .output()
        .expect("running proctor"));
}

/// The parts of a report that depend on what the samples did, not on which eval ran.
fn aggregates(report: &Value) -> Value {
    serde_json::json!({
        "samples": report["samples"],
        "usage": report["usage"],
        "metrics": report["metrics"],
        "release": report["release"],
    })
}

#[test]
fn through_proctor_run_the_js_arith_example_reports_what_the_rust_one_does() {
    let js = js_arith();
    let dir = tempfile::tempdir().expect("temp dir");
    rust_examples(dir.path());
    let dataset = dir.path().join("arith.jsonl");
    let run = |wasm: &Path| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_proctor"))
            .args(["run", path(wasm), "--dataset", path(&dataset)])
            // Wrong answers (chosen from the seed and the prompt) make the comparison bite.
            .args([
                "--model",
                "builtin:arith?error_rate=0.2",
                "--seed",
                "5",
                "--json",
            ])
            .env(
                "PROCTOR_CACHE_DIR",
                std::env::temp_dir().join("proctor-cli-test-cache"),
            )
            .output()
            .expect("running proctor");
        serde_json::from_str(&ok(&out)).expect("one JSON object")
    };
    let rust = run(&dir.path().join("arith.wasm"));
    let report = run(&js);
    assert_eq!(report["eval"]["name"], "arith-js", "{report}");
    assert_eq!(report["dataset"], rust["dataset"]);
    assert_eq!(report["samples"]["ok"], 500, "{report}");
    let mean = report["metrics"]["accuracy"]["mean"]
        .as_f64()
        .expect("a mean");
    assert!((0.7..0.9).contains(&mean), "about 20% wrong: {mean}");
    assert_eq!(aggregates(&report), aggregates(&rust));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_service_the_js_arith_example_reports_what_the_rust_one_does() {
    let js = js_arith();
    let files = tempfile::tempdir().expect("temp dir");
    let dir = files.path();
    rust_examples(dir);
    let server = ServeChild::start();
    let vendor = server.account("acme", "vendor", None).await;
    let evaluator = server.account("lab", "evaluator", Some("academic")).await;

    let config = dir.join("model.toml");
    std::fs::write(&config, "adapter = \"builtin\"\nmodel = \"arith\"\n").expect("write");
    let register = ["model", "register", "--name", "arith", "--version", "1"];
    let model = ok(&server.proctor(
        &vendor,
        &[&register[..], &["--config", path(&config)]].concat(),
    ))
    .trim()
    .to_owned();
    ok(&server.proctor(
        &vendor,
        &["grant", "create", "--model", &model, "--tier", "academic"],
    ));
    let dataset = ok(&server.proctor(
        &evaluator,
        &["dataset", "upload", path(&dir.join("arith.jsonl"))],
    ))
    .trim()
    .to_owned();

    let report = |wasm: &Path| -> Value {
        let eval = ok(&server.proctor(&evaluator, &["eval", "upload", path(wasm)]))
            .trim()
            .to_owned();
        let submit = [
            "job",
            "submit",
            "--eval",
            &eval,
            "--dataset",
            &dataset,
            "--model",
            &model,
        ];
        let result: Value = serde_json::from_str(&ok(&server.proctor(
            &evaluator,
            &[&submit[..], &["--wait", "--json", "--timeout", "300s"]].concat(),
        )))
        .expect("one JSON object");
        assert_eq!(result["status"], "succeeded", "{result}");
        result["report"].clone()
    };
    let rust = report(&dir.join("arith.wasm"));
    let js_report = report(&js);
    assert_eq!(js_report["eval"]["name"], "arith-js", "{js_report}");
    assert_eq!(js_report["samples"]["ok"], 500, "{js_report}");
    assert_eq!(js_report["metrics"]["accuracy"]["mean"], 1.0, "{js_report}");
    assert_eq!(aggregates(&js_report), aggregates(&rust));
}
