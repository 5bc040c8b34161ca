//! `proctor verify --policy` (a tlog-policy and a tlog-proof receipt), split views in
//! `proctor verify-consistency`, and `proctor keys show` of a service data directory: the real
//! binary, real files, no service.

use std::path::Path;
use std::process::{Command, Output};

use proctor_attest::cosignature;
use proctor_attest::note::SignedNote;
use proctor_attest::statement::PAYLOAD_TYPE;
use proctor_attest::tlog_policy::simple_policy;
use proctor_attest::tlog_proof::TlogProof;
use proctor_attest::{Checkpoint, Envelope, MemoryStore, SignatureType, SigningKey, Vkey, log};

const ORIGIN: &str = "proctor.example.org/log";

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

/// A log of five signed entries; entry 3's envelope and receipt (cosigned by the witnesses at
/// `cosigners` of three) in `dir`, and the 2-of-3 policy in `dir/policy.txt`.
fn receipt_dir(dir: &Path, cosigners: &[usize]) -> (SigningKey, MemoryStore) {
    let key = SigningKey::from_seed(&[7; 32]);
    let mut store = MemoryStore::new();
    let mut attestation = Vec::new();
    for i in 0..5u64 {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [],
            "predicateType": "https://proctor.dev/attestation/eval-result/v2",
            "predicate": {"log_index": i},
        });
        let envelope =
            Envelope::sign(PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), &key).unwrap();
        block_on(log::append_at(&mut store, i, envelope.as_bytes())).unwrap();
        if i == 3 {
            attestation = envelope.into_bytes();
        }
    }
    let head = block_on(log::tree_head(&mut store)).unwrap();
    let mut note = SignedNote::parse(&Checkpoint::new(ORIGIN, head).sign(&key).unwrap()).unwrap();
    let witnesses: Vec<(String, SigningKey)> = (0..3u8)
        .map(|i| {
            (
                format!("w{i}.example"),
                SigningKey::from_seed(&[30 + i; 32]),
            )
        })
        .collect();
    for &i in cosigners {
        let (name, wkey) = &witnesses[i];
        let line = cosignature::sign(&note.text, name, wkey, 1_800_000_000).unwrap();
        note.signatures.push(line.to_note_signature());
    }
    let receipt = TlogProof {
        extra: None,
        index: 3,
        hashes: block_on(log::inclusion_proof(&mut store, 3, head.size)).unwrap(),
        checkpoint: note.encode(),
    };
    let log_vkey = Vkey::new(ORIGIN, SignatureType::Ed25519, key.verifying_key()).unwrap();
    let vkeys: Vec<(String, Vkey)> = witnesses
        .iter()
        .enumerate()
        .map(|(i, (name, wkey))| {
            (
                format!("w{i}"),
                cosignature::vkey(name, &wkey.verifying_key()).unwrap(),
            )
        })
        .collect();
    std::fs::write(dir.join("attestation.json"), &attestation).unwrap();
    std::fs::write(dir.join("attestation.tlog-proof"), receipt.encode()).unwrap();
    std::fs::write(dir.join("policy.txt"), simple_policy(&log_vkey, &vkeys, 2)).unwrap();
    (key, store)
}

#[test]
fn a_receipt_with_the_quorum_verifies_line_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    receipt_dir(tmp.path(), &[0, 2]);
    let policy = tmp.path().join("policy.txt");
    let out = proctor(&["verify", path(tmp.path()), "--policy", path(&policy)]);
    assert_eq!(
        stdout(&out),
        "signature: ok\ncheckpoint: ok\n\
         witnesses: ok (cosigned by 2 of 3: w0, w2; quorum `witnesses`)\ninclusion: ok\n",
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn too_few_cosignatures_or_a_changed_byte_fail_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    receipt_dir(tmp.path(), &[1]);
    let policy = tmp.path().join("policy.txt");
    let out = proctor(&["verify", path(tmp.path()), "--policy", path(&policy)]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(
            "witnesses: FAILED (the quorum is not met: cosigned by 1 of the policy's witnesses (w1)"
        ),
        "{text}"
    );
    assert!(text.contains("inclusion: FAILED (not checked"), "{text}");

    receipt_dir(tmp.path(), &[0, 1]);
    let receipt = tmp.path().join("attestation.tlog-proof");
    let good = std::fs::read(&receipt).unwrap();
    // A sample of positions (the library's test flips every byte): the header, the index, a
    // hash, the checkpoint's size, each signature line.
    let step = good.len() / 23;
    for i in (0..good.len()).step_by(step.max(1)) {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        std::fs::write(&receipt, &bad).unwrap();
        let out = proctor(&["verify", path(tmp.path()), "--policy", path(&policy)]);
        assert_eq!(out.status.code(), Some(1), "byte {i}: {}", stdout(&out));
    }
}

#[test]
fn a_missing_receipt_or_a_malformed_policy_is_unreadable_input() {
    let tmp = tempfile::tempdir().unwrap();
    receipt_dir(tmp.path(), &[0, 1]);
    let policy = tmp.path().join("policy.txt");
    let bad = tmp.path().join("bad-policy.txt");
    std::fs::write(&bad, "log nonsense\nquorum none\n").unwrap();
    let out = proctor(&["verify", path(tmp.path()), "--policy", path(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy line 1"));
    std::fs::remove_file(tmp.path().join("attestation.tlog-proof")).unwrap();
    let out = proctor(&["verify", path(tmp.path()), "--policy", path(&policy)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--receipt"));
}

#[test]
fn two_checkpoints_of_one_size_with_different_roots_are_a_split_view() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, mut store) = receipt_dir(tmp.path(), &[]);
    let head = block_on(log::tree_head(&mut store)).unwrap();
    let mut fork = MemoryStore::new();
    for i in 0..5u8 {
        block_on(log::append(&mut fork, &[b'f', i])).unwrap();
    }
    let forked = block_on(log::tree_head(&mut fork)).unwrap();
    let (a, b) = (tmp.path().join("a.txt"), tmp.path().join("b.txt"));
    std::fs::write(&a, Checkpoint::new(ORIGIN, head).sign(&key).unwrap()).unwrap();
    std::fs::write(&b, Checkpoint::new(ORIGIN, forked).sign(&key).unwrap()).unwrap();
    let policy = tmp.path().join("policy.txt");
    let out = proctor(&[
        "verify-consistency",
        path(&a),
        path(&b),
        "--policy",
        path(&policy),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.starts_with("old-checkpoint: ok\nnew-checkpoint: ok\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "consistency: FAILED (SPLIT VIEW: the log \"{ORIGIN}\" signed two different trees of size 5"
        )),
        "{text}"
    );
    // The same checkpoint twice needs no proof.
    let out = proctor(&[
        "verify-consistency",
        path(&a),
        path(&a),
        "--policy",
        path(&policy),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn keys_show_of_a_data_directory_names_its_logs_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed(&[9; 32]);
    std::fs::write(tmp.path().join("service-key.pem"), key.to_pkcs8_pem()).unwrap();
    let head = log::TreeHead {
        size: 0,
        root: proctor_attest::merkle::empty_root(),
    };
    std::fs::write(
        tmp.path().join("log-head.checkpoint"),
        Checkpoint::new(ORIGIN, head).sign(&key).unwrap(),
    )
    .unwrap();
    let out = proctor(&["keys", "show", path(tmp.path())]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let vkey = Vkey::new(ORIGIN, SignatureType::Ed25519, key.verifying_key()).unwrap();
    assert!(
        stdout(&out).ends_with(&format!(
            "vkey: {vkey} (the origin of the data directory's log)\n"
        )),
        "{}",
        stdout(&out)
    );
}
