//! The offline checks as `proctor verify` runs them, from a log built the service's way.

use futures::executor::block_on;
use proctor_attest::proof::{ConsistencyProof, InclusionProof};
use proctor_attest::verify::{
    AttestationInputs, Check, Failure, verify_attestation, verify_consistency,
};
use proctor_attest::{Checkpoint, MemoryStore, SigningKey, Statement, VerifyingKey, log};
use proctor_core::Sha256Digest;
use serde_json::json;

const EVAL: &[u8] = b"\0asm component bytes";
const DATASET: &[u8] = b"{\"a\": 1, \"b\": 2}\n";

/// A payload shaped like Proctor's result predicate, with the fields the checks read.
fn payload(log_index: u64) -> serde_json::Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "eval.wasm", "digest": {"sha256": Sha256Digest::of(EVAL).to_hex()}},
            {"name": "dataset.jsonl", "digest": {"sha256": Sha256Digest::of(DATASET).to_hex()}},
        ],
        "predicateType": "https://proctor.dev/attestation/eval-result/v2",
        "predicate": {
            "eval": {"name": "arith", "version": "1", "sha256": Sha256Digest::of(EVAL).to_hex()},
            "dataset": {"sha256": Sha256Digest::of(DATASET).to_hex(), "items": 1},
            "log_index": log_index,
        },
    })
}

struct World {
    key: SigningKey,
    store: MemoryStore,
    envelope: Vec<u8>,
    index: u64,
}

/// A log of 6 entries whose entry 4 is the envelope under test.
fn world() -> World {
    let key = SigningKey::from_seed(&[7; 32]);
    let mut store = MemoryStore::new();
    let mut envelope = Vec::new();
    for i in 0..6u64 {
        let bytes = serde_json::to_vec(&payload(i)).unwrap();
        let entry =
            proctor_attest::Envelope::sign(proctor_attest::statement::PAYLOAD_TYPE, &bytes, &key)
                .unwrap()
                .into_bytes();
        block_on(log::append_at(&mut store, i, &entry)).unwrap();
        if i == 4 {
            envelope = entry;
        }
    }
    World {
        key,
        store,
        envelope,
        index: 4,
    }
}

impl World {
    fn checkpoint(&mut self, size: u64) -> String {
        let root = block_on(log::root_at(&mut self.store, size)).unwrap();
        Checkpoint::new("proctor.example/log", log::TreeHead { size, root })
            .sign(&self.key)
            .unwrap()
    }

    fn inclusion(&mut self, size: u64) -> String {
        InclusionProof {
            log_index: self.index,
            tree_size: size,
            root_hash: block_on(log::root_at(&mut self.store, size)).unwrap(),
            hashes: block_on(log::inclusion_proof(&mut self.store, self.index, size)).unwrap(),
        }
        .to_json()
    }

    fn keys(&self) -> Vec<VerifyingKey> {
        vec![self.key.verifying_key()]
    }
}

fn lines(report: &proctor_attest::verify::Report) -> Vec<String> {
    report.checks.iter().map(ToString::to_string).collect()
}

#[test]
fn a_complete_attestation_passes_every_check() {
    let mut w = world();
    let checkpoint = w.checkpoint(6);
    let proof = w.inclusion(6);
    let keys = w.keys();
    let report = verify_attestation(&AttestationInputs {
        envelope: &w.envelope,
        keys: &keys,
        eval: Some(Sha256Digest::of(EVAL)),
        dataset: Some(Sha256Digest::of(DATASET)),
        checkpoint: Some(checkpoint.as_bytes()),
        inclusion_proof: Some(proof.as_bytes()),
    });
    assert_eq!(
        lines(&report),
        [
            "signature: ok",
            "subjects: ok",
            "checkpoint: ok",
            "inclusion: ok"
        ]
    );
    assert!(report.all_passed());
    assert_eq!(report.to_string().lines().count(), 4);
}

#[test]
fn only_the_signature_is_checked_when_nothing_else_is_given() {
    let w = world();
    let keys = w.keys();
    let report = verify_attestation(&AttestationInputs {
        envelope: &w.envelope,
        keys: &keys,
        eval: None,
        dataset: None,
        checkpoint: None,
        inclusion_proof: None,
    });
    assert_eq!(lines(&report), ["signature: ok"]);
}

fn inputs<'a>(
    envelope: &'a [u8],
    keys: &'a [VerifyingKey],
    checkpoint: &'a str,
    proof: &'a str,
) -> AttestationInputs<'a> {
    AttestationInputs {
        envelope,
        keys,
        eval: Some(Sha256Digest::of(EVAL)),
        dataset: Some(Sha256Digest::of(DATASET)),
        checkpoint: Some(checkpoint.as_bytes()),
        inclusion_proof: Some(proof.as_bytes()),
    }
}

#[test]
fn a_different_local_file_fails_the_subjects_check_only() {
    let mut w = world();
    let (checkpoint, proof, keys) = (w.checkpoint(6), w.inclusion(6), w.keys());
    let mut asked = inputs(&w.envelope, &keys, &checkpoint, &proof);
    asked.dataset = Some(Sha256Digest::of(b"{\"a\": 1, \"b\": 3}\n"));
    let report = verify_attestation(&asked);
    let failed: Vec<Check> = report
        .checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.check)
        .collect();
    assert_eq!(failed, [Check::Subjects]);
    assert!(
        lines(&report)[1].starts_with("subjects: FAILED (dataset.jsonl: the file's sha256 is ")
    );
}

#[test]
fn an_envelope_with_a_newline_added_keeps_its_signature_but_fails_inclusion() {
    let mut w = world();
    let (checkpoint, proof, keys) = (w.checkpoint(6), w.inclusion(6), w.keys());
    let mut envelope = w.envelope.clone();
    envelope.push(b'\n');
    let report = verify_attestation(&inputs(&envelope, &keys, &checkpoint, &proof));
    assert!(report.checks[0].passed());
    assert!(!report.all_passed());
    assert!(lines(&report)[3].contains("ends in a newline"), "{report}");
}

#[test]
fn another_entry_of_the_log_is_not_the_one_the_proof_is_for() {
    let mut w = world();
    let (checkpoint, keys) = (w.checkpoint(6), w.keys());
    w.index = 3;
    let proof = w.inclusion(6);
    let report = verify_attestation(&inputs(&w.envelope, &keys, &checkpoint, &proof));
    assert_eq!(report.checks[3].check, Check::Inclusion);
    assert!(!report.checks[3].passed());
}

#[test]
fn a_proof_for_another_tree_than_the_checkpoint_fails() {
    let mut w = world();
    let (checkpoint, proof, keys) = (w.checkpoint(6), w.inclusion(5), w.keys());
    let report = verify_attestation(&inputs(&w.envelope, &keys, &checkpoint, &proof));
    assert!(matches!(
        report.checks[3].outcome,
        Err(Failure::ProofForAnotherTree { .. })
    ));
}

#[test]
fn with_another_key_every_check_that_rests_on_a_signature_fails() {
    let mut w = world();
    let (checkpoint, proof) = (w.checkpoint(6), w.inclusion(6));
    let keys = [SigningKey::from_seed(&[8; 32]).verifying_key()];
    let report = verify_attestation(&inputs(&w.envelope, &keys, &checkpoint, &proof));
    assert!(report.checks.iter().all(|c| !c.passed()), "{report}");
    assert_eq!(
        lines(&report)[1],
        "subjects: FAILED (not checked: the signature did not verify)"
    );
}

#[test]
fn a_tampered_checkpoint_fails_checkpoint_and_inclusion() {
    let mut w = world();
    let (checkpoint, proof, keys) = (w.checkpoint(6), w.inclusion(6), w.keys());
    let tampered = checkpoint.replacen("\n6\n", "\n7\n", 1);
    let report = verify_attestation(&inputs(&w.envelope, &keys, &tampered, &proof));
    assert!(report.checks[0].passed() && report.checks[1].passed());
    assert!(!report.checks[2].passed() && !report.checks[3].passed());
}

#[test]
fn garbage_in_place_of_each_file_is_a_failed_check_not_a_panic() {
    let mut w = world();
    let (checkpoint, proof, keys) = (w.checkpoint(6), w.inclusion(6), w.keys());
    let report = verify_attestation(&inputs(b"not json", &keys, &checkpoint, &proof));
    assert!(lines(&report)[0].starts_with("signature: FAILED (not a DSSE envelope"));
    let report = verify_attestation(&inputs(&w.envelope, &keys, "x", &proof));
    assert!(lines(&report)[2].starts_with("checkpoint: FAILED (malformed"));
    let report = verify_attestation(&inputs(&w.envelope, &keys, &checkpoint, "{}"));
    assert!(lines(&report)[3].starts_with("inclusion: FAILED (malformed proof file"));
}

#[test]
fn a_statement_whose_recorded_index_differs_from_the_proof_fails_inclusion() {
    let key = SigningKey::from_seed(&[7; 32]);
    let mut store = MemoryStore::new();
    // The entry says it is entry 9 but lands at 0.
    let bytes = serde_json::to_vec(&payload(9)).unwrap();
    let entry =
        proctor_attest::Envelope::sign(proctor_attest::statement::PAYLOAD_TYPE, &bytes, &key)
            .unwrap()
            .into_bytes();
    let head = block_on(log::append(&mut store, &entry)).unwrap().head;
    let checkpoint = Checkpoint::new("o", head).sign(&key).unwrap();
    let proof = InclusionProof {
        log_index: 0,
        tree_size: 1,
        root_hash: head.root,
        hashes: vec![],
    }
    .to_json();
    let keys = [key.verifying_key()];
    let report = verify_attestation(&inputs(&entry, &keys, &checkpoint, &proof));
    assert!(matches!(
        report.checks[3].outcome,
        Err(Failure::LogIndexMismatch {
            attested: 9,
            proof: 0
        })
    ));
    // The statement still parses as a statement.
    assert!(Statement::parse_any(&bytes).is_ok());
}

#[test]
fn two_checkpoints_are_checked_for_consistency() {
    let mut w = world();
    let keys = w.keys();
    let (old, new) = (w.checkpoint(3), w.checkpoint(6));
    let proof = ConsistencyProof {
        old_size: 3,
        new_size: 6,
        hashes: block_on(log::consistency_proof(&mut w.store, 3, 6)).unwrap(),
    }
    .to_json();
    let report = verify_consistency(
        old.as_bytes(),
        new.as_bytes(),
        Some(proof.as_bytes()),
        &keys,
    );
    assert_eq!(
        lines(&report),
        [
            "old-checkpoint: ok",
            "new-checkpoint: ok",
            "consistency: ok"
        ]
    );

    // Swapped checkpoints, a forged proof, a forked log.
    let report = verify_consistency(
        new.as_bytes(),
        old.as_bytes(),
        Some(proof.as_bytes()),
        &keys,
    );
    assert!(!report.all_passed());
    let mut forged: ConsistencyProof = ConsistencyProof::from_json(proof.as_bytes()).unwrap();
    forged.hashes[0][0] ^= 1;
    let report = verify_consistency(
        old.as_bytes(),
        new.as_bytes(),
        Some(forged.to_json().as_bytes()),
        &keys,
    );
    assert_eq!(report.checks[2].check, Check::Consistency);
    assert!(!report.checks[2].passed());

    let mut fork = MemoryStore::new();
    for i in 0..6 {
        let entry = if i < 3 {
            format!("other {i}")
        } else {
            format!("fork {i}")
        };
        block_on(log::append(&mut fork, entry.as_bytes())).unwrap();
    }
    let head = block_on(log::tree_head(&mut fork)).unwrap();
    let forked = Checkpoint::new("proctor.example/log", head)
        .sign(&w.key)
        .unwrap();
    let report = verify_consistency(
        old.as_bytes(),
        forked.as_bytes(),
        Some(proof.as_bytes()),
        &keys,
    );
    assert!(report.checks[0].passed() && report.checks[1].passed());
    assert!(!report.checks[2].passed());

    // The fork at the same size as the log's checkpoint of 6: a split view, said so, with or
    // without a proof; the same checkpoint twice is consistent without one.
    for proof in [None, Some(proof.as_bytes())] {
        let report = verify_consistency(new.as_bytes(), forked.as_bytes(), proof, &keys);
        let line = report.checks[2].to_string();
        assert!(
            line.starts_with("consistency: FAILED (SPLIT VIEW: the log \"proctor.example/log\" signed two different trees of size 6"),
            "{line}"
        );
    }
    assert!(verify_consistency(new.as_bytes(), new.as_bytes(), None, &keys).all_passed());
    let report = verify_consistency(old.as_bytes(), new.as_bytes(), None, &keys);
    assert!(
        report.checks[2]
            .to_string()
            .contains("need a consistency proof")
    );
}
