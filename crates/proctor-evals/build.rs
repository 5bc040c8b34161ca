//! Builds the guest crates under `crates/evals` to WebAssembly components.
//!
//! The guests are a workspace of their own, built by a nested cargo with its own target
//! directory and a cleared environment (the outer build's `CARGO_*` and `RUSTFLAGS` describe a
//! host build and would leak into it). Zero-WASI guests are built for `wasm32-unknown-unknown`
//! and wrapped into components with `wit-component`; the guests that test WASI are built for
//! `wasm32-wasip2`, whose linker emits components itself. A guest directory that no list below
//! claims fails the build, so no fixture is silently left out.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Examples: shipped in the binary.
const EXAMPLES: &[&str] = &["arith", "knowledge"];
/// Test guests with no WASI imports.
const ZERO_WASI_GUESTS: &[&str] = &[
    "answer-channels",
    "bad-metric-name",
    "bad-scores",
    "big-prompt",
    "deep-recursion",
    "describe-calls-model",
    "describe-reads-dataset",
    "distil",
    "huge-range",
    "inverted-metric",
    "isolation-commands",
    "isolation-unknown-import",
    "isolation-without-export",
    "isolation-wrong-type",
    "item-out-of-range",
    "leak-scores",
    "loop-forever",
    "memory-bomb",
    "other-world",
    "out-of-range-score",
    "panics",
    "pool-hog",
    "query-storm",
    "scattered-writes",
    "stateful",
    "undeclared-metric",
    "unknown-import",
    "wide-range",
];
/// Test guests that use Rust's std on WASI.
const WASIP2_GUESTS: &[&str] = &["exit", "sleeper", "sockets", "wasi-std"];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let evals = manifest_dir.join("../evals");
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let test_guests = std::env::var_os("CARGO_FEATURE_TEST_GUESTS").is_some();

    for path in [
        "../evals",
        "../proctor-guest",
        "../proctor-sandbox/wit",
        "../proctor-sandbox/wit-0.2.0",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    check_every_guest_is_claimed(&evals.join("test-guests"));

    let target_dir = out_dir.join("guests");
    let mut zero_wasi: Vec<&str> = EXAMPLES.to_vec();
    if test_guests {
        zero_wasi.extend(ZERO_WASI_GUESTS);
    }
    cargo_build(&evals, &target_dir, "wasm32-unknown-unknown", &zero_wasi);
    if test_guests {
        cargo_build(&evals, &target_dir, "wasm32-wasip2", WASIP2_GUESTS);
    }

    let mut examples = String::new();
    for name in EXAMPLES {
        let component = componentize(&target_dir, name, &out_dir);
        embed(&mut examples, name, "_WASM", &component);
    }
    std::fs::write(out_dir.join("examples.rs"), examples).expect("writing examples.rs");

    let mut guests = String::new();
    if test_guests {
        for name in ZERO_WASI_GUESTS {
            let component = componentize(&target_dir, name, &out_dir);
            embed(&mut guests, name, "", &component);
        }
        for name in WASIP2_GUESTS {
            let component = artifact(&target_dir, "wasm32-wasip2", name);
            embed(&mut guests, name, "", &component);
        }
    }
    std::fs::write(out_dir.join("test_guests.rs"), guests).expect("writing test_guests.rs");
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("cargo sets {key} for build scripts"))
}

fn check_every_guest_is_claimed(dir: &Path) {
    let claimed: BTreeSet<&str> = ZERO_WASI_GUESTS
        .iter()
        .chain(WASIP2_GUESTS)
        .copied()
        .collect();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("reading a directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !claimed.contains(name.as_str()) {
            panic!("test guest {name} is in crates/evals/test-guests but not listed in build.rs");
        }
    }
}

/// The rustc beside the cargo that runs this build: the pinned toolchain's.
fn toolchain_rustc() -> Option<PathBuf> {
    PathBuf::from(env("CARGO"))
        .parent()
        .map(|bin| bin.join("rustc"))
        .filter(|p| p.exists())
}

/// Installs `target` into the pinned toolchain when it lacks it. `rust-toolchain.toml` names
/// the wasm targets, but rustup adds a toolchain file's targets only when it installs the
/// toolchain itself, not to one that is already there (a fresh machine often has 1.95.0
/// without them), so the README's first command would otherwise fail after building
/// everything else.
fn ensure_target(workspace: &Path, target: &str) {
    let rustc = toolchain_rustc().unwrap_or_else(|| PathBuf::from("rustc"));
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|root| root.join("lib/rustlib").join(target).is_dir());
    if installed {
        return;
    }
    println!(
        "cargo:warning=installing the {target} target with `rustup target add {target}` (rust-toolchain.toml names it; rustup does not add targets to a toolchain that is already installed)"
    );
    let status = Command::new("rustup")
        .current_dir(workspace)
        .args(["target", "add", target])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            panic!("`rustup target add {target}` failed ({s}); run it yourself, then build again")
        }
        Err(e) => panic!(
            "the {target} target is not installed and rustup could not be run ({e}): install the target for this toolchain, then build again"
        ),
    }
}

fn cargo_build(workspace: &Path, target_dir: &Path, target: &str, packages: &[&str]) {
    ensure_target(workspace, target);
    // The toolchain's own cargo and rustc, as the outer build runs them.
    let cargo = PathBuf::from(env("CARGO"));
    let mut cmd = Command::new(&cargo);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME"
            || [
                "RUSTFLAGS",
                "RUSTC",
                "RUSTC_WRAPPER",
                "RUSTC_WORKSPACE_WRAPPER",
                "RUSTDOC",
            ]
            .contains(&key.as_ref())
        {
            cmd.env_remove(key.as_ref());
        }
    }
    if let Some(rustc) = toolchain_rustc() {
        cmd.env("RUSTC", rustc);
    }
    cmd.current_dir(workspace)
        .args(["build", "--release", "--locked", "--target", target])
        .arg("--target-dir")
        .arg(target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", cargo.display()));
    assert!(
        status.success(),
        "building the guests for {target} failed; is the target installed? (rustup target add {target})"
    );
}

fn artifact(target_dir: &Path, target: &str, name: &str) -> PathBuf {
    target_dir
        .join(target)
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// Wraps a core module built with wit-bindgen into a component.
fn componentize(target_dir: &Path, name: &str, out_dir: &Path) -> PathBuf {
    let module_path = artifact(target_dir, "wasm32-unknown-unknown", name);
    let module = std::fs::read(&module_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", module_path.display()));
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("making a component of {name}: {e:#}"));
    // Its own memory and 15 more: the most memories a component may have.
    let component = if name == "pool-hog" {
        add_wide_instances(&component, 15)
    } else {
        component
    };
    let path = out_dir.join(format!("{name}.component.wasm"));
    std::fs::write(&path, component).expect("writing a component");
    path
}

/// Appends to a component a core module defining one memory and one table, instantiated
/// `count` times: the pool-hog guest, which Rust cannot make wider (wasmtime's pool allows one
/// memory and one table per core instance, 16 and 32 per component).
fn add_wide_instances(component: &[u8], count: u32) -> Vec<u8> {
    const CORE_MODULE_SECTION: u8 = 1;
    const CORE_INSTANCE_SECTION: u8 = 2;
    // `(module (table 0 funcref) (memory 1))`
    const WIDE_MODULE: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x04, 0x04, 0x01, 0x70, 0x00, 0x00, 0x05,
        0x03, 0x01, 0x00, 0x01,
    ];
    // The module's index: one per core module section at the top level.
    let mut modules = 0;
    let mut rest = &component[8..];
    while let [id, after @ ..] = rest {
        let (size, n) = read_leb(after);
        rest = &after[n + size as usize..];
        if *id == CORE_MODULE_SECTION {
            modules += 1;
        }
    }
    let mut out = component.to_vec();
    out.push(CORE_MODULE_SECTION);
    write_leb(&mut out, WIDE_MODULE.len() as u32);
    out.extend_from_slice(WIDE_MODULE);
    let mut instances = Vec::new();
    write_leb(&mut instances, count);
    for _ in 0..count {
        // `instantiate`, the module, no arguments.
        instances.push(0x00);
        write_leb(&mut instances, modules);
        instances.push(0x00);
    }
    out.push(CORE_INSTANCE_SECTION);
    write_leb(&mut out, instances.len() as u32);
    out.extend_from_slice(&instances);
    out
}

/// An unsigned LEB128 and its length in bytes.
fn read_leb(bytes: &[u8]) -> (u32, usize) {
    let mut value = 0u32;
    for (i, byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("a malformed LEB128 in a guest module");
}

fn write_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn embed(code: &mut String, name: &str, suffix: &str, path: &Path) {
    let constant = format!("{}{suffix}", name.replace('-', "_").to_uppercase());
    writeln!(
        code,
        "/// The `{name}` component.\npub const {constant}: &[u8] = include_bytes!({:?});",
        path.display().to_string()
    )
    .expect("writing to a string");
}
