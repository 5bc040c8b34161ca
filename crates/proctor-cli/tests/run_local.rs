//! `proctor run` and `proctor examples` as a user calls them: the real binary, real files.

use std::path::Path;
use std::process::{Command, Output};

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

fn examples(dir: &Path) {
    let out = proctor(&["examples", "--out", dir.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "arith.wasm",
        "arith.jsonl",
        "knowledge.wasm",
        "knowledge.jsonl",
    ] {
        assert!(dir.join(name).is_file(), "{name} written");
    }
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn the_arithmetic_example_against_builtin_arith_prints_one_json_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    examples(dir.path());
    let out = proctor(&[
        "run",
        &path(dir.path(), "arith.wasm"),
        "--dataset",
        &path(dir.path(), "arith.jsonl"),
        "--model",
        "builtin:arith?error_rate=0.1",
        "--json",
        "--concurrency",
        "16",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["eval"]["name"], "arith");
    assert_eq!(report["dataset"]["items"], 500);
    assert_eq!(report["model"]["ref"], "builtin:arith?error_rate=0.1");
    assert_eq!(report["policy"]["name"], "standard");
    assert_eq!(report["samples"]["total"], 500);
    assert_eq!(report["samples"]["ok"], 500);
    assert_eq!(report["usage"]["queries"], 500);
    assert_eq!(report["release"]["status"], "released");
    let accuracy = &report["metrics"]["accuracy"];
    assert_eq!(accuracy["n"], 500);
    let mean = accuracy["mean"].as_f64().expect("a mean");
    assert!(
        (0.85..0.95).contains(&mean),
        "about 10% wrong answers: {mean}"
    );
    let [lo, hi] = [0, 1].map(|i| accuracy["ci95"][i].as_f64().expect("interval"));
    assert!(lo < mean && mean < hi);
    // Under `standard` the bound names the channels the policy leaves open.
    assert_eq!(
        report["leakage"]["excluded"],
        serde_json::json!(["time", "progress", "attempts", "budget"])
    );
    assert!(report["leakage"]["bits_max"].as_f64().expect("a bound") > 0.0);
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    examples(dir.path());
    let run = |seed: &str| {
        proctor(&[
            "run",
            &path(dir.path(), "arith.wasm"),
            "--dataset",
            &path(dir.path(), "arith.jsonl"),
            "--model",
            "builtin:arith?error_rate=0.3",
            "--json",
            "--seed",
            seed,
        ])
        .stdout
    };
    assert_eq!(run("5"), run("5"));
    assert_ne!(run("5"), run("6"), "the seed steers the built-in's errors");
}

#[test]
fn refusals_exit_2_with_one_line_and_nothing_on_stdout() {
    let dir = tempfile::tempdir().expect("temp dir");
    examples(dir.path());
    let wasm = path(dir.path(), "arith.wasm");
    let jsonl = path(dir.path(), "arith.jsonl");
    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"a\": 1, \"b\": 2}\nnot json\n",
    )
    .expect("write");
    let bad = path(dir.path(), "bad.jsonl");
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "run",
                &jsonl,
                "--dataset",
                &jsonl,
                "--model",
                "builtin:arith",
            ],
            "not a WebAssembly component",
        ),
        (
            &["run", &wasm, "--dataset", &bad, "--model", "builtin:arith"],
            "line 2",
        ),
        (
            &[
                "run",
                &wasm,
                "--dataset",
                &jsonl,
                "--model",
                "builtin:oracle",
            ],
            "oracle",
        ),
        (
            &[
                "run",
                &wasm,
                "--dataset",
                &jsonl,
                "--model",
                "builtin:arith",
                "--policy",
                "lenient",
            ],
            "lenient",
        ),
        (
            &[
                "run",
                &wasm,
                "--dataset",
                &path(dir.path(), "missing.jsonl"),
                "--model",
                "builtin:arith",
            ],
            "missing.jsonl",
        ),
    ];
    for (args, needle) in cases {
        let out = proctor(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn concurrency_above_the_policy_is_clamped_with_a_note() {
    let dir = tempfile::tempdir().expect("temp dir");
    examples(dir.path());
    let out = proctor(&[
        "run",
        &path(dir.path(), "knowledge.wasm"),
        "--dataset",
        &path(dir.path(), "knowledge.jsonl"),
        "--model",
        "builtin:echo",
        "--policy",
        "strict",
        "--concurrency",
        "100000",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("using 64"), "{stderr}");
    // 40 items is below strict's min_samples: the job ran, the release is withheld.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("withheld"), "{stdout}");
}

#[test]
fn under_strict_two_runs_over_the_same_outputs_release_different_noised_figures() {
    let dir = tempfile::tempdir().expect("temp dir");
    examples(dir.path());
    let run = || {
        let out = proctor(&[
            "run",
            &path(dir.path(), "arith.wasm"),
            "--dataset",
            &path(dir.path(), "arith.jsonl"),
            "--model",
            "builtin:arith?error_rate=0.2",
            "--policy",
            "strict",
            "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("one JSON object")
    };
    let (first, second) = (run(), run());
    assert_eq!(first["release"]["mechanism"], "laplace");
    assert_eq!(first["release"]["epsilon"], 1.0);
    assert!(
        first["release"]["noise"]["metrics.accuracy.sum"]
            .as_f64()
            .is_some()
    );
    // The model's answers are the same both times (seed 0); only the noise differs.
    assert_ne!(
        (&first["metrics"], &first["samples"]),
        (&second["metrics"], &second["samples"]),
        "two DP releases of the same outputs differ"
    );
    // The leakage bound is fixed before the job runs: the same in both, and as computed by
    // hand in proctor-core's leakage tests (12·log2 501 + log2 501 + 4·log2 101 + the three
    // usage caps + log2 10 endings + log2 10).
    assert_eq!(first["leakage"], second["leakage"]);
    let bits = first["leakage"]["bits_max"].as_f64().expect("a bound");
    assert!((bits - 204.9386).abs() < 1e-3, "{bits}");
    assert_eq!(first["leakage"]["excluded"], serde_json::json!([]));
    for report in [&first, &second] {
        let mean = report["metrics"]["accuracy"]["mean"]
            .as_f64()
            .expect("a mean");
        assert!((0.6..=1.0).contains(&mean), "{mean}");
        assert!(report["samples"]["ok"].as_u64().expect("count") <= 500);
    }
}
