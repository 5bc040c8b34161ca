//! `proctor keys` and `proctor verify` as a user runs them: the real binary, real files.

use std::path::Path;
use std::process::{Command, Output};

use proctor_attest::proof::{ConsistencyProof, InclusionProof};
use proctor_attest::statement::PAYLOAD_TYPE;
use proctor_attest::{Checkpoint, Envelope, MemoryStore, SigningKey, log};
use proctor_core::Sha256Digest;

fn proctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(args)
        .output()
        .expect("the proctor binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}

#[test]
fn keys_generate_writes_a_private_key_only_its_owner_can_read_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let out = proctor(&["keys", "generate", "--out", path(&dir)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let private = std::fs::read_to_string(dir.join("private-key.pem")).unwrap();
    let public = std::fs::read_to_string(dir.join("public-key.pem")).unwrap();
    let key = SigningKey::from_pkcs8_pem(&private).unwrap();
    assert_eq!(key.verifying_key().to_pem(), public);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("private-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(stdout(&out).contains(&key.key_id()));

    let again = proctor(&["keys", "generate", "--out", path(&dir)]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    assert_eq!(
        std::fs::read_to_string(dir.join("private-key.pem")).unwrap(),
        private,
        "the key was not overwritten"
    );
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
}

#[test]
fn keys_show_prints_the_public_key_and_its_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(
        proctor(&["keys", "generate", "--out", path(dir)])
            .status
            .success()
    );
    let key = proctor_attest::VerifyingKey::from_pem(
        &std::fs::read_to_string(dir.join("public-key.pem")).unwrap(),
    )
    .unwrap();
    let out = proctor(&["keys", "show", path(dir)]);
    assert_eq!(out.status.code(), Some(0));
    let vkey = proctor_attest::note::verifier_key_string("proctor.local/log", &key);
    assert_eq!(
        stdout(&out),
        format!(
            "{}key id: {}\nvkey: {vkey} (the default origin of `proctor serve`; pass --origin for another)\n",
            key.to_pem(),
            key.key_id()
        )
    );
    let out = proctor(&[
        "keys",
        "show",
        path(dir),
        "--origin",
        "proctor.example.org/log",
    ]);
    let vkey = proctor_attest::note::verifier_key_string("proctor.example.org/log", &key);
    assert!(
        stdout(&out).ends_with(&format!("vkey: {vkey}\n")),
        "{}",
        stdout(&out)
    );
    let out = proctor(&["keys", "show", path(dir), "--origin", "a b"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keys_show_refuses_a_key_of_another_type() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rsa.pem");
    // An RSA SubjectPublicKeyInfo, as `openssl pkey -pubout` writes one.
    std::fs::write(
        &file,
        "-----BEGIN PUBLIC KEY-----\n\
         MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDLbmU3eNb+PNFhpg8vsHD5Ov98\n\
         Q9h0YHpSXVMHC7TxFPeGLtjZaDtcWIM8opujizfLzCQGGHJ6h0XZ4PaUc4RJqi1g\n\
         uAhqusZ2kH8nV03bivkvkKirBkG53nHOmrJ1QJQ9SrXfudW9TuBkIItqZITvkAUj\n\
         j/vUIhvxr+ycqgS87QIDAQAB\n\
         -----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let out = proctor(&["keys", "show", path(&file)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an Ed25519"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

const DATASET: &[u8] = b"{\"a\": 1, \"b\": 2}\n";
const EVAL: &[u8] = b"\0asm stand-in";

/// Writes an attestation directory as `proctor demo --out` does; returns the key and the
/// log, for more checkpoints.
fn attestation_dir(dir: &Path) -> (SigningKey, MemoryStore) {
    let key = SigningKey::generate().unwrap();
    let mut store = MemoryStore::new();
    let mut attestation = Vec::new();
    for i in 0..5u64 {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [
                {"name": "eval.wasm", "digest": {"sha256": Sha256Digest::of(EVAL).to_hex()}},
                {"name": "dataset.jsonl", "digest": {"sha256": Sha256Digest::of(DATASET).to_hex()}},
            ],
            "predicateType": "https://proctor.dev/attestation/eval-result/v2",
            "predicate": {"log_index": i},
        });
        let envelope =
            Envelope::sign(PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), &key).unwrap();
        block_on(log::append_at(&mut store, i, envelope.as_bytes())).unwrap();
        if i == 2 {
            attestation = envelope.into_bytes();
        }
    }
    let head = block_on(log::tree_head(&mut store)).unwrap();
    let proof = InclusionProof {
        log_index: 2,
        tree_size: head.size,
        root_hash: head.root,
        hashes: block_on(log::inclusion_proof(&mut store, 2, head.size)).unwrap(),
    };
    std::fs::write(dir.join("attestation.json"), &attestation).unwrap();
    std::fs::write(dir.join("public-key.pem"), key.verifying_key().to_pem()).unwrap();
    std::fs::write(
        dir.join("checkpoint.txt"),
        Checkpoint::new("proctor.example/log", head)
            .sign(&key)
            .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("inclusion-proof.json"), proof.to_json()).unwrap();
    std::fs::write(dir.join("eval.wasm"), EVAL).unwrap();
    std::fs::write(dir.join("dataset.jsonl"), DATASET).unwrap();
    (key, store)
}

#[test]
fn verify_passes_an_attestation_directory_line_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    attestation_dir(tmp.path());
    let out = proctor(&["verify", path(tmp.path())]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout(&out),
        "signature: ok\nsubjects: ok\ncheckpoint: ok\ninclusion: ok\n"
    );
}

#[test]
fn verify_fails_with_exit_1_when_a_file_was_changed() {
    let tmp = tempfile::tempdir().unwrap();
    attestation_dir(tmp.path());
    std::fs::write(tmp.path().join("dataset.jsonl"), b"{\"a\": 1, \"b\": 3}\n").unwrap();
    let out = proctor(&["verify", path(tmp.path())]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("signature: ok\n"));
    assert!(text.contains("subjects: FAILED (dataset.jsonl: "), "{text}");

    // A flipped byte in the envelope.
    let tmp = tempfile::tempdir().unwrap();
    attestation_dir(tmp.path());
    let file = tmp.path().join("attestation.json");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let out = proctor(&["verify", path(tmp.path())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("signature: FAILED ("));
}

#[test]
fn verify_checks_one_envelope_file_with_a_given_key() {
    let tmp = tempfile::tempdir().unwrap();
    attestation_dir(tmp.path());
    let envelope = tmp.path().join("attestation.json");
    let out = proctor(&[
        "verify",
        path(&envelope),
        "--key",
        path(&tmp.path().join("public-key.pem")),
        "--eval",
        path(&tmp.path().join("eval.wasm")),
    ]);
    assert_eq!(stdout(&out), "signature: ok\nsubjects: ok\n");
    assert_eq!(out.status.code(), Some(0));

    // Without a key it cannot run: exit 2, one line.
    let out = proctor(&["verify", path(&envelope)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());

    // With another key, the signature fails.
    let other = tempfile::tempdir().unwrap();
    assert!(
        proctor(&["keys", "generate", "--out", path(other.path())])
            .status
            .success()
    );
    let out = proctor(&[
        "verify",
        path(&envelope),
        "--key",
        path(&other.path().join("public-key.pem")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("signature: FAILED (signed by an unknown key"));
}

#[test]
fn verify_exits_2_when_the_input_cannot_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = proctor(&["verify", path(tmp.path())]);
    assert_eq!(out.status.code(), Some(2));
    let out = proctor(&[
        "verify",
        path(&tmp.path().join("missing.json")),
        "--key",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_consistency_checks_two_checkpoints_and_a_proof() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, mut store) = attestation_dir(tmp.path());
    let old = tmp.path().join("old.txt");
    let root3 = block_on(log::root_at(&mut store, 3)).unwrap();
    std::fs::write(
        &old,
        Checkpoint::new(
            "proctor.example/log",
            log::TreeHead {
                size: 3,
                root: root3,
            },
        )
        .sign(&key)
        .unwrap(),
    )
    .unwrap();
    let proof = tmp.path().join("consistency.json");
    std::fs::write(
        &proof,
        ConsistencyProof {
            old_size: 3,
            new_size: 5,
            hashes: block_on(log::consistency_proof(&mut store, 3, 5)).unwrap(),
        }
        .to_json(),
    )
    .unwrap();
    let new = tmp.path().join("checkpoint.txt");
    let out = proctor(&[
        "verify-consistency",
        path(&old),
        path(&new),
        "--proof",
        path(&proof),
    ]);
    assert_eq!(
        stdout(&out),
        "old-checkpoint: ok\nnew-checkpoint: ok\nconsistency: ok\n"
    );
    assert_eq!(out.status.code(), Some(0));

    // The other way round, it fails.
    let out = proctor(&[
        "verify-consistency",
        path(&new),
        path(&old),
        "--proof",
        path(&proof),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("consistency: FAILED ("));
}
