//! `proctor demo`: the README's main command, from the real binary.

use std::process::Command;

fn proctor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(args)
        .env(
            "PROCTOR_CACHE_DIR",
            std::env::temp_dir().join("proctor-cli-test-cache"),
        )
        .output()
        .expect("running proctor")
}

#[test]
fn the_demo_ends_with_a_verified_attestation_that_proctor_verify_accepts_later() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().join("kept");
    let out = out_dir.to_str().expect("utf-8 path");
    let demo = proctor(&["demo", "--out", out]);
    let stdout = String::from_utf8_lossy(&demo.stdout);
    assert_eq!(
        demo.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for check in [
        "signature: ok",
        "subjects: ok",
        "checkpoint: ok",
        "inclusion: ok",
    ] {
        assert!(stdout.contains(check), "{check} in {stdout}");
    }
    assert!(stdout.contains("accuracy"), "{stdout}");
    for file in [
        "attestation.json",
        "public-key.pem",
        "checkpoint.txt",
        "inclusion-proof.json",
        "eval.wasm",
        "dataset.jsonl",
    ] {
        assert!(out_dir.join(file).is_file(), "{file} kept");
    }
    let attestation = std::fs::read(out_dir.join("attestation.json")).expect("read");
    assert_ne!(
        attestation.last(),
        Some(&b'\n'),
        "the envelope's bytes, nothing added"
    );

    let verify = proctor(&["verify", out]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // An attestation is never overwritten.
    let again = proctor(&["demo", "--out", out]);
    assert_eq!(again.status.code(), Some(2));
    assert!(again.stdout.is_empty());
    assert_eq!(
        std::fs::read(out_dir.join("attestation.json")).expect("read"),
        attestation
    );
}
