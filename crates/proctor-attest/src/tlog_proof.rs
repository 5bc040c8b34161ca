//! Offline receipts: C2SP tlog-proof (<https://c2sp.org/tlog-proof>), one text file that proves
//! an entry is in the log and that witnesses saw the tree it is in.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index 3
//! <base64 hash>            the inclusion proof, leaf's sibling first, one hash a line
//! <base64 hash>
//!
//! proctor.example.org/log  the checkpoint, verbatim, with its cosignatures
//! 4
//! <base64 root>
//!
//! — proctor.example.org/log <base64>
//! — witness.example/w1 <base64>
//! ```
//!
//! Proctor writes no `extra` line (the entry itself, the DSSE envelope, is the file beside the
//! receipt) and reads one but never trusts it, as the spec requires. [`TlogProof::verify`]
//! checks it against the entry's exact bytes and a [`Policy`]: the checkpoint's log signature
//! and witness quorum, then the entry's inclusion at the index.

use crate::b64;
use crate::merkle::{Hash, leaf_hash};
use crate::proof::{ProofError, verify_inclusion};
use crate::tlog_policy::{Policy, PolicyFailure, Satisfied};

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Why a proof could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    /// The text breaks the format; the message says where.
    #[error("malformed tlog-proof: {0}")]
    Malformed(&'static str),
    /// The checkpoint does not satisfy the policy.
    #[error(transparent)]
    Policy(#[from] PolicyFailure),
    /// The index is not below the checkpoint's size.
    #[error("the proof is for entry {index} of a tree of {size}")]
    IndexBeyondTree {
        /// The proof's index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The entry is not at the index in the checkpoint's tree.
    #[error("inclusion: {0}")]
    Inclusion(ProofError),
}

/// A parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// The opaque `extra` data, if any (unauthenticated).
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint, with its cosignature lines, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// The proof's text.
    pub fn encode(&self) -> String {
        let mut text = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            text.push_str(&format!("extra {}\n", b64::encode(extra)));
        }
        text.push_str(&format!("index {}\n", self.index));
        for hash in &self.hashes {
            text.push_str(&b64::encode(hash));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// Reads a proof (the checkpoint is read when it is verified).
    ///
    /// # Errors
    ///
    /// [`TlogProofError::Malformed`].
    pub fn parse(bytes: &[u8]) -> Result<TlogProof, TlogProofError> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| TlogProofError::Malformed("not UTF-8"))?;
        let (head, checkpoint) = text.split_once("\n\n").ok_or(TlogProofError::Malformed(
            "no blank line before the checkpoint",
        ))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(TlogProofError::Malformed(
                "the first line is not c2sp.org/tlog-proof@v1",
            ));
        }
        let mut line = lines.next();
        let mut extra = None;
        if let Some(rest) = line.and_then(|l| l.strip_prefix("extra ")) {
            extra = Some(
                b64::decode(rest)
                    .map_err(|_| TlogProofError::Malformed("the extra data is not base64"))?,
            );
            line = lines.next();
        }
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .and_then(canonical_decimal)
            .ok_or(TlogProofError::Malformed(
                "no `index N` line (N decimal, no leading zeros)",
            ))?;
        let hashes = lines
            .map(|l| {
                b64::decode_hash(l).ok_or(TlogProofError::Malformed(
                    "a proof line is not one base64 SHA-256 hash",
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TlogProof {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Checks the proof for `entry` (the leaf's exact bytes) against `policy`: the checkpoint
    /// is signed by a log of the policy and cosigned to its quorum, and the entry is leaf
    /// `index` of its tree.
    ///
    /// # Errors
    ///
    /// [`TlogProofError`] saying which part failed.
    pub fn verify(&self, entry: &[u8], policy: &Policy) -> Result<Satisfied, TlogProofError> {
        let satisfied = policy.verify_checkpoint(self.checkpoint.as_bytes())?;
        self.verify_inclusion(&leaf_hash(entry), &satisfied)?;
        Ok(satisfied)
    }

    /// Checks only the inclusion of `leaf` in the tree of an already checked checkpoint.
    ///
    /// # Errors
    ///
    /// [`TlogProofError::IndexBeyondTree`], [`TlogProofError::Inclusion`].
    pub fn verify_inclusion(&self, leaf: &Hash, checked: &Satisfied) -> Result<(), TlogProofError> {
        let size = checked.checkpoint.size;
        if self.index >= size {
            return Err(TlogProofError::IndexBeyondTree {
                index: self.index,
                size,
            });
        }
        verify_inclusion(
            self.index,
            size,
            leaf,
            &self.hashes,
            &checked.checkpoint.root,
        )
        .map_err(TlogProofError::Inclusion)
    }
}

fn canonical_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::cosignature;
    use crate::keys::SigningKey;
    use crate::merkle::root_of_leaves;
    use crate::note::SignedNote;
    use crate::tlog_policy::simple_policy;
    use crate::vkey::{SignatureType, Vkey};

    const ORIGIN: &str = "proctor.example.org/log";

    /// Five entries, a receipt for entry 3 cosigned by two of three witnesses, and the policy.
    fn fixture() -> (Vec<Vec<u8>>, TlogProof, Policy) {
        let entries: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'e', i]).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let root = root_of_leaves(&leaves);
        // The inclusion proof of leaf 3 in a tree of 5: leaf 2, then the root of leaves 0-1,
        // then leaf 4.
        let hashes = vec![leaves[2], root_of_leaves(&leaves[0..2]), leaves[4]];
        let log = SigningKey::from_seed(&[1; 32]);
        let head = crate::log::TreeHead { size: 5, root };
        let mut note =
            SignedNote::parse(&Checkpoint::new(ORIGIN, head).sign(&log).unwrap()).unwrap();
        let witnesses: Vec<(String, SigningKey)> = (0..3u8)
            .map(|i| {
                (
                    format!("w{i}.example"),
                    SigningKey::from_seed(&[20 + i; 32]),
                )
            })
            .collect();
        for (name, key) in &witnesses[..2] {
            let cosig = cosignature::sign(&note.text, name, key, 1_800_000_000).unwrap();
            note.signatures.push(cosig.to_note_signature());
        }
        let vkeys: Vec<(String, Vkey)> = witnesses
            .iter()
            .map(|(name, key)| {
                (
                    name.clone(),
                    cosignature::vkey(name, &key.verifying_key()).unwrap(),
                )
            })
            .collect();
        let log_vkey = Vkey::new(ORIGIN, SignatureType::Ed25519, log.verifying_key()).unwrap();
        let policy = Policy::parse(simple_policy(&log_vkey, &vkeys, 2).as_bytes()).unwrap();
        let proof = TlogProof {
            extra: None,
            index: 3,
            hashes,
            checkpoint: note.encode(),
        };
        (entries, proof, policy)
    }

    #[test]
    fn a_receipt_round_trips_and_verifies_offline() {
        let (entries, proof, policy) = fixture();
        let text = proof.encode();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 3\n"));
        assert!(text.contains(&format!("\n\n{ORIGIN}\n5\n")));
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, proof);
        let ok = parsed.verify(&entries[3], &policy).unwrap();
        assert_eq!(ok.cosigned.len(), 2);
        assert!(matches!(
            parsed.verify(&entries[2], &policy),
            Err(TlogProofError::Inclusion(_))
        ));
    }

    #[test]
    fn a_tampered_byte_anywhere_fails() {
        let (entries, proof, policy) = fixture();
        let text = proof.encode().into_bytes();
        for i in 0..text.len() {
            for flip in [0x01u8, 0x20] {
                let mut bad = text.clone();
                bad[i] ^= flip;
                let verdict = TlogProof::parse(&bad).and_then(|p| p.verify(&entries[3], &policy));
                assert!(verdict.is_err(), "byte {i} ^ {flip:#x} still verifies");
            }
        }
        let entry = &entries[3];
        for i in 0..entry.len() {
            let mut bad = entry.clone();
            bad[i] ^= 1;
            assert!(proof.verify(&bad, &policy).is_err());
        }
    }

    #[test]
    fn the_extra_line_is_read_and_bad_headers_are_refused() {
        let (entries, mut proof, policy) = fixture();
        proof.extra = Some(b"context".to_vec());
        let text = proof.encode();
        assert!(text.contains("\nextra Y29udGV4dA==\nindex 3\n"));
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.extra.as_deref(), Some(&b"context"[..]));
        parsed.verify(&entries[3], &policy).unwrap();
        for bad in [
            text.replace("tlog-proof@v1", "tlog-proof@v2"),
            text.replace("index 3", "index 03"),
            text.replace("index 3", "index3"),
            text.replace("\n\n", "\n"),
            text.replace("extra Y29udGV4dA==", "extra !!"),
        ] {
            assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let beyond = TlogProof { index: 5, ..proof };
        assert!(matches!(
            beyond.verify(&entries[3], &policy),
            Err(TlogProofError::IndexBeyondTree { .. })
        ));
    }
}
