//! Signed notes and checkpoints: the Go reference's vectors, round trips and tampering.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::executor::block_on;
use proctor_attest::checkpoint::CheckpointError;
use proctor_attest::note::{self, NoteError, SignedNote};
use proctor_attest::{Checkpoint, MemoryStore, SigningKey, VerifyingKey, log};

// From golang.org/x/mod, sumdb/note/note_test.go at commit
// 02c991387e35f9e4c0a9b7ce137717055f8d716d
// (https://github.com/golang/mod/blob/02c991387e35f9e4c0a9b7ce137717055f8d716d/sumdb/note/note_test.go):
// TestNewSigner's private key, TestNewVerifier's public key and TestSign's note. The key
// strings are `name+keyid+base64(0x01 || key)`.
const GO_SIGNER: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n\
                       \n\
                       \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
/// TestOpen's second signature, by a key the tests below do not hold.
const GO_ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn go_key() -> SigningKey {
    // The base64 material may itself hold '+': split off the four fields before it only.
    let material = GO_SIGNER.splitn(5, '+').nth(4).unwrap();
    let bytes = STANDARD.decode(material).unwrap();
    assert_eq!(bytes[0], 0x01, "Ed25519");
    SigningKey::from_seed(&bytes[1..].try_into().unwrap())
}

fn go_public() -> VerifyingKey {
    let material = GO_VERIFIER.splitn(3, '+').nth(2).unwrap();
    let bytes = STANDARD.decode(material).unwrap();
    VerifyingKey::from_bytes(bytes[1..].try_into().unwrap())
}

#[test]
fn signing_reproduces_the_go_reference_note_byte_for_byte() {
    let key = go_key();
    assert_eq!(key.verifying_key(), go_public());
    assert_eq!(note::key_id("PeterNeumann", &go_public()), 0xc74f20a3);
    assert_eq!(
        note::verifier_key_string("PeterNeumann", &go_public()),
        GO_VERIFIER
    );
    assert_eq!(note::sign(GO_TEXT, "PeterNeumann", &key).unwrap(), GO_NOTE);
}

#[test]
fn the_go_reference_note_verifies_and_unknown_signatures_are_ignored() {
    let parsed = SignedNote::parse(GO_NOTE).unwrap();
    assert_eq!(parsed.text, GO_TEXT);
    parsed.verify("PeterNeumann", &go_public()).unwrap();

    let with_enoch = SignedNote::parse(&format!("{GO_NOTE}{GO_ENOCH_SIG}")).unwrap();
    assert_eq!(with_enoch.signatures.len(), 2);
    with_enoch.verify("PeterNeumann", &go_public()).unwrap();

    let only_enoch = SignedNote::parse(&format!("{GO_TEXT}\n{GO_ENOCH_SIG}")).unwrap();
    assert!(matches!(
        only_enoch.verify("PeterNeumann", &go_public()),
        Err(NoteError::NoKnownSignature { .. })
    ));
}

#[test]
fn the_go_reference_malformed_notes_are_refused() {
    let peter_sig = &GO_NOTE[GO_TEXT.len() + 1..];
    let bad = [
        GO_TEXT.to_owned(),
        format!("{GO_TEXT}\n"),
        format!("{GO_TEXT}\n{}", &peter_sig[..peter_sig.len() - 1]),
        format!("\x01{GO_TEXT}\n{peter_sig}"),
        format!(
            "{GO_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        ),
        format!("{GO_TEXT}\n{peter_sig}Unexpected line.\n"),
        format!("{GO_TEXT}\n{}", peter_sig.repeat(101)),
    ];
    for note in bad {
        assert!(
            matches!(SignedNote::parse(&note), Err(NoteError::Malformed(_))),
            "{note:?}"
        );
    }
    // Not UTF-8 (the Go table's "\xff" case), at the byte level where files are read.
    let mut bytes = b"\xff".to_vec();
    bytes.extend_from_slice(GO_NOTE.as_bytes());
    assert_eq!(
        Checkpoint::parse_unverified(&bytes).err(),
        Some(CheckpointError::NotUtf8)
    );
}

#[test]
fn a_changed_signature_from_the_known_key_rejects_the_note() {
    // TestOpen's "invalid signature" case: four characters spliced into the signature.
    let peter_sig = &GO_NOTE[GO_TEXT.len() + 1..];
    let spliced = format!("{GO_TEXT}\n{}ABCD{}", &peter_sig[..60], &peter_sig[60..]);
    let parsed = SignedNote::parse(&spliced).unwrap();
    assert!(matches!(
        parsed.verify("PeterNeumann", &go_public()),
        Err(NoteError::BadSignature { .. })
    ));
}

fn signed_checkpoint(key: &SigningKey, entries: usize) -> (Checkpoint, String) {
    let mut store = MemoryStore::new();
    for i in 0..entries {
        block_on(log::append(&mut store, format!("entry {i}").as_bytes())).unwrap();
    }
    let head = block_on(log::tree_head(&mut store)).unwrap();
    let checkpoint = Checkpoint::new("proctor.example/log", head);
    let signed = checkpoint.sign(key).unwrap();
    (checkpoint, signed)
}

#[test]
fn a_checkpoint_round_trips_and_has_the_c2sp_layout() {
    let key = SigningKey::from_seed(&[5; 32]);
    let (checkpoint, signed) = signed_checkpoint(&key, 11);
    let lines: Vec<&str> = signed.split('\n').collect();
    assert_eq!(lines[0], "proctor.example/log");
    assert_eq!(lines[1], "11");
    assert_eq!(STANDARD.decode(lines[2]).unwrap(), checkpoint.root);
    assert_eq!(lines[3], "");
    assert!(lines[4].starts_with("\u{2014} proctor.example/log "));
    assert_eq!(lines[5], "");
    assert_eq!(lines.len(), 6);
    let blob = STANDARD
        .decode(lines[4].rsplit(' ').next().unwrap())
        .unwrap();
    assert_eq!(blob.len(), 4 + 64);
    assert_eq!(
        u32::from_be_bytes(blob[..4].try_into().unwrap()),
        note::key_id("proctor.example/log", &key.verifying_key())
    );
    assert_eq!(
        Checkpoint::open(signed.as_bytes(), &key.verifying_key()).unwrap(),
        checkpoint
    );
}

#[test]
fn a_tampered_checkpoint_fails() {
    let key = SigningKey::from_seed(&[5; 32]);
    let (_, signed) = signed_checkpoint(&key, 11);
    let public = key.verifying_key();
    // Any byte of the signed text or the signature changed.
    let bytes = signed.as_bytes();
    for i in 0..bytes.len() {
        let mut tampered = bytes.to_vec();
        tampered[i] ^= 0x01;
        assert!(
            Checkpoint::open(&tampered, &public).is_err(),
            "byte {i} ({:?}) went unnoticed",
            bytes[i] as char
        );
    }
    // Another size or root, re-signed by someone else.
    let (_, other) = signed_checkpoint(&SigningKey::from_seed(&[6; 32]), 12);
    assert!(matches!(
        Checkpoint::open(other.as_bytes(), &public),
        Err(CheckpointError::Note(NoteError::NoKnownSignature { .. }))
    ));
}
