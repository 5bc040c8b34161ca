//! `proctor eval new`: the project it writes builds with its language's toolchain and runs
//! through `proctor run` right away; bad names and existing directories are refused with one
//! line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A build cache that outlives the test, so later runs are incremental.
fn cache(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/proctor-templates").join(name)
}

fn new_project(into: &Path, name: &str, lang: &str) -> PathBuf {
    let out = proctor(&[
        "eval",
        "new",
        name,
        "--lang",
        lang,
        "--into",
        &into.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "eval new failed: {}",
        text(&out.stderr)
    );
    let dir = PathBuf::from(text(&out.stdout).trim());
    assert_eq!(dir, into.join(name));
    dir
}

/// `proctor run` on a built project's component and its own dataset; the report.
fn run_built(wasm: &Path, dataset: &Path) -> Value {
    let out = proctor(&[
        "run",
        &wasm.to_string_lossy(),
        "--dataset",
        &dataset.to_string_lossy(),
        "--model",
        "builtin:arith",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "proctor run failed: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[test]
fn a_new_rust_eval_builds_and_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = new_project(dir.path(), "my-sums", "rust");
    no_placeholders_left(&project, &["Cargo.toml", "src/lib.rs", "README.md"]);
    let target = cache("rust");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The outer cargo's settings are for the host build, not for this guest's.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CARGO_") || key == "RUSTFLAGS" {
            cargo.env_remove(key);
        }
    }
    let out = cargo
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&project)
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo build failed: {}",
        text(&out.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/my_sums.wasm");
    let report = run_built(&wasm, &project.join("items.jsonl"));
    assert_eq!(report["eval"]["name"], "my-sums");
    assert_eq!(report["samples"]["total"], 20);
    assert_eq!(report["samples"]["ok"], 20);
    assert_eq!(report["metrics"]["accuracy"]["mean"], 1.0);
}

/// Runs one of the SDKs' test build scripts, which install the SDK and its pinned toolchain into
/// `~/.cache/proctor-toolchains` (cached by input digest).
fn sdk_toolchain(script: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("bash")
        .arg(repo.join(script))
        .status()
        .expect("running an SDK build script");
    assert!(status.success(), "{script} failed");
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/proctor-toolchains")
}

fn no_placeholders_left(project: &Path, files: &[&str]) {
    for file in files {
        let body = std::fs::read_to_string(project.join(file)).expect(file);
        assert!(!body.contains("{{"), "{file} keeps a placeholder");
    }
}

#[test]
fn a_new_python_eval_builds_and_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = new_project(dir.path(), "py-sums", "python");
    no_placeholders_left(&project, &["app.py", "requirements.txt", "README.md"]);
    let requirements = std::fs::read_to_string(project.join("requirements.txt")).expect("read");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python");
    let sdk = sdk.canonicalize().expect("the SDK");
    assert!(
        requirements.contains(&format!("file://{}", sdk.display())),
        "{requirements}"
    );
    // The SDK as requirements.txt installs it, in the venv the SDK's own tests keep.
    let venv = sdk_toolchain("sdk/python/tests/build.sh").join("pysdk-venv");
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "-r"])
        .arg(project.join("requirements.txt"))
        .output()
        .expect("running pip");
    assert!(out.status.success(), "pip failed: {}", text(&out.stderr));
    let wasm = project.join("py-sums.wasm");
    let out = Command::new(venv.join("bin/proctor-eval"))
        .args(["build", "app.py", "-o"])
        .arg(&wasm)
        .current_dir(&project)
        .output()
        .expect("running proctor-eval");
    assert!(
        out.status.success(),
        "proctor-eval build failed: {}",
        text(&out.stderr)
    );
    let report = run_built(&wasm, &project.join("arith.jsonl"));
    assert_eq!(report["eval"]["name"], "py-sums");
    assert_eq!(report["samples"]["ok"], report["samples"]["total"]);
    assert_eq!(report["metrics"]["accuracy"]["mean"], 1.0);
}

#[test]
fn a_new_js_eval_builds_and_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = new_project(dir.path(), "js-sums", "js");
    no_placeholders_left(&project, &["eval.js", "package.json", "README.md"]);
    // As the project's README says: the SDK's pinned toolchain once, then the project.
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/js");
    let sdk = sdk
        .canonicalize()
        .expect("the SDK")
        .to_string_lossy()
        .into_owned();
    let package = std::fs::read_to_string(project.join("package.json")).expect("read");
    assert!(package.contains(&format!("file:{sdk}")), "{package}");
    let steps: [&[&str]; 3] = [
        &[
            "ci",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefix",
            &sdk,
        ],
        &["install", "--silent", "--no-audit", "--no-fund"],
        &["run", "--silent", "build"],
    ];
    for args in steps {
        let out = Command::new("npm")
            .args(args)
            .current_dir(&project)
            .output()
            .expect("running npm");
        assert!(
            out.status.success(),
            "npm {args:?} failed: {}",
            text(&out.stderr)
        );
    }
    let report = run_built(&project.join("eval.wasm"), &project.join("arith.jsonl"));
    assert_eq!(report["eval"]["name"], "js-sums");
    assert_eq!(report["samples"]["ok"], report["samples"]["total"]);
    assert_eq!(report["metrics"]["accuracy"]["mean"], 1.0);
}

#[test]
fn bad_names_and_existing_directories_are_refused_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let into = dir.path().to_string_lossy().into_owned();
    for name in ["Upper", "1st", "has space", "dots.dots", ""] {
        let out = proctor(&["eval", "new", name, "--lang", "rust", "--into", &into]);
        assert_eq!(out.status.code(), Some(2), "{name:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("not a valid eval name"), "{err}");
    }
    new_project(dir.path(), "taken", "rust");
    let out = proctor(&["eval", "new", "taken", "--lang", "rust", "--into", &into]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("exists already"), "{err}");
    // The one project and nothing else: no staging directory left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert_eq!(left.len(), 1);
}
