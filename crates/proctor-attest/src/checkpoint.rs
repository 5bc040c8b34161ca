//! The log's signed head: a C2SP tlog checkpoint (<https://c2sp.org/tlog-checkpoint>) in a
//! signed note ([`crate::note`]).
//!
//! ```text
//! proctor.example/log
//! 1234
//! <base64 root hash>
//!
//! — proctor.example/log <base64(key id || Ed25519 signature)>
//! ```
//!
//! The origin names the log, the size is ASCII decimal without leading zeros, the root hash is
//! standard base64. Proctor signs with the key name equal to the origin (as the spec
//! recommends), so a verifier that holds only the public key can find its signature, and it
//! writes no extension lines; a checkpoint with any is refused.

use crate::b64;
use crate::keys::{SigningKey, VerifyingKey};
use crate::log::TreeHead;
use crate::merkle::Hash;
use crate::note::{self, NoteError, SignedNote};

/// Why a checkpoint could not be made, read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note around it is malformed or does not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The note's text is not a checkpoint body.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The file is not UTF-8.
    #[error("malformed checkpoint: not UTF-8")]
    NotUtf8,
}

/// A log's head as a checkpoint states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint of `head` for the log named `origin`.
    pub fn new(origin: &str, head: TreeHead) -> Checkpoint {
        Checkpoint {
            origin: origin.to_owned(),
            size: head.size,
            root: head.root,
        }
    }

    /// The note text: origin, size and root hash, each on its own line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            b64::encode(&self.root)
        )
    }

    /// The signed checkpoint, key name = origin.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Note`] when the origin cannot be a key name (empty, spaces, `+`,
    /// control characters).
    pub fn sign(&self, key: &SigningKey) -> Result<String, CheckpointError> {
        Ok(note::sign(&self.body(), &self.origin, key)?)
    }

    /// Parses a checkpoint body (the note text).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Malformed`] for anything but exactly three lines: a non-empty origin,
    /// a canonical decimal size, a base64 32-byte root hash.
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Malformed(
            "the text does not end in a newline",
        ))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::Malformed("fewer than three lines"));
        };
        if lines.next().is_some() {
            return Err(CheckpointError::Malformed(
                "extension lines (Proctor writes none)",
            ));
        }
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size = canonical
            .then(|| size.parse::<u64>().ok())
            .flatten()
            .ok_or(CheckpointError::Malformed(
                "the size is not a decimal number without leading zeros",
            ))?;
        let root = b64::decode_hash(root).ok_or(CheckpointError::Malformed(
            "the root hash is not a base64 sha256 hash",
        ))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Parses a signed checkpoint without verifying its signature (to show what it claims).
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] for a malformed note or body.
    pub fn parse_unverified(bytes: &[u8]) -> Result<(Checkpoint, SignedNote), CheckpointError> {
        let text = std::str::from_utf8(bytes).map_err(|_| CheckpointError::NotUtf8)?;
        let note = SignedNote::parse(text)?;
        Ok((Checkpoint::parse_body(&note.text)?, note))
    }

    /// Parses a signed checkpoint and verifies the signature by `key` under the origin's name.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] for a malformed note or body, no signature by `key`, or a signature
    /// that does not verify.
    pub fn open(bytes: &[u8], key: &VerifyingKey) -> Result<Checkpoint, CheckpointError> {
        let (checkpoint, note) = Checkpoint::parse_unverified(bytes)?;
        note.verify(&checkpoint.origin, key)?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Checkpoint {
        Checkpoint {
            origin: "proctor.example/log".into(),
            size: 20852163,
            root: [0xab; 32],
        }
    }

    #[test]
    fn a_checkpoint_round_trips_through_its_signed_note() {
        let key = SigningKey::from_seed(&[3; 32]);
        let signed = example().sign(&key).unwrap();
        assert!(signed.starts_with("proctor.example/log\n20852163\n"));
        assert!(signed.contains("\n\n\u{2014} proctor.example/log "));
        assert_eq!(
            Checkpoint::open(signed.as_bytes(), &key.verifying_key()).unwrap(),
            example()
        );
    }

    #[test]
    fn bodies_that_bend_the_format_are_refused() {
        let root = b64::encode(&[0xab; 32]);
        for body in [
            format!("o\n012\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n1 \n{root}\n"),
            format!("\n1\n{root}\n"),
            format!("o\n1\n{root}"),
            format!("o\n1\n{root}\next\n"),
            "o\n1\nAAAA\n".to_owned(),
            "o\n1\n".to_owned(),
            format!("o\n18446744073709551616\n{root}\n"),
        ] {
            assert!(Checkpoint::parse_body(&body).is_err(), "{body:?}");
        }
        assert_eq!(
            Checkpoint::parse_body(&format!("o\n0\n{root}\n"))
                .unwrap()
                .size,
            0
        );
    }
}
