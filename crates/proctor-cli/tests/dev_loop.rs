//! The dev loop through the real binary: `proctor run --dev` shows what each sample wrote to
//! stderr and how it trapped; without `--dev` nothing of either reaches the terminal, and the
//! released figures are the same either way.

use std::path::Path;
use std::process::{Command, Output};

use proctor_evals::test_guests::{PANICS, WASI_STD};
use serde_json::Value;

fn proctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(args)
        .env(
            "PROCTOR_CACHE_DIR",
            std::env::temp_dir().join("proctor-cli-test-cache"),
        )
        .output()
        .expect("running proctor")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writing a test file");
    path.to_string_lossy().into_owned()
}

fn items(n: u32) -> String {
    (0..n)
        .map(|i| format!("{{\"a\": {i}, \"b\": 1}}\n"))
        .collect()
}

fn run(wasm: &str, jsonl: &str, dev: bool) -> (Value, String) {
    let mut args = vec![
        "run",
        wasm,
        "--dataset",
        jsonl,
        "--model",
        "builtin:arith",
        "--json",
    ];
    if dev {
        args.push("--dev");
    }
    let out = proctor(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "proctor run failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    (report, stderr)
}

#[test]
fn dev_shows_each_samples_stderr_and_nothing_without_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = write(dir.path(), "wasi-std.wasm", WASI_STD);
    let jsonl = write(dir.path(), "items.jsonl", items(4).as_bytes());

    let (quiet, stderr) = run(&wasm, &jsonl, false);
    assert!(!stderr.contains("nobody"), "{stderr}");

    let (dev, stderr) = run(&wasm, &jsonl, true);
    for i in 0..4 {
        assert!(stderr.contains(&format!("--- sample {i} (ok)")), "{stderr}");
    }
    assert_eq!(
        stderr.matches("and to nobody on stderr").count(),
        4,
        "{stderr}"
    );
    // What the guest printed to stdout stays discarded.
    assert!(!stderr.contains("hello to nobody"), "{stderr}");
    assert_eq!(quiet["metrics"], dev["metrics"]);
    assert_eq!(quiet["samples"], dev["samples"]);
}

#[test]
fn dev_shows_traps_and_says_when_a_component_has_no_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = write(dir.path(), "panics.wasm", PANICS);
    let jsonl = write(dir.path(), "items.jsonl", items(4).as_bytes());

    let (_, stderr) = run(&wasm, &jsonl, false);
    assert!(!stderr.contains("trap:"), "{stderr}");

    let (report, stderr) = run(&wasm, &jsonl, true);
    assert!(stderr.contains("imports no WASI stderr"), "{stderr}");
    for i in [0, 2] {
        assert!(
            stderr.contains(&format!("--- sample {i} (other)")),
            "{stderr}"
        );
    }
    let traps = stderr.lines().filter(|l| l.starts_with("trap: ")).count();
    assert_eq!(traps, 2, "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    // Samples that neither wrote nor trapped print nothing.
    assert!(!stderr.contains("--- sample 1"), "{stderr}");
    assert_eq!(report["samples"]["ok"], 2);
}
