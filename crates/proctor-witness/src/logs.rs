//! The logs a witness accepts checkpoints from: each origin with the log key(s) it trusts for
//! it. A checkpoint of any other origin is answered 404.

use std::collections::HashMap;

use proctor_attest::note::{NoteError, SignedNote};
use proctor_attest::{SignatureType, VerifyingKey, Vkey};

/// A key a log signs its checkpoints with: the signed-note key name and the Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    /// The key name in the log's signature lines (usually the origin).
    pub name: String,
    /// The public key.
    pub key: VerifyingKey,
}

impl LogKey {
    /// The log key of a signed-note verifier key of type Ed25519 (0x01), as `proctor keys
    /// show` prints it.
    ///
    /// # Errors
    ///
    /// [`LogKeyError`].
    pub fn parse(vkey: &str) -> Result<LogKey, LogKeyError> {
        let vkey = Vkey::parse(vkey).map_err(|e| LogKeyError::Vkey(e.to_string()))?;
        if vkey.signature_type() != SignatureType::Ed25519 {
            return Err(LogKeyError::NotALogKey);
        }
        Ok(LogKey {
            name: vkey.name().to_owned(),
            key: *vkey.key(),
        })
    }
}

/// Why a log's vkey is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogKeyError {
    /// Not a verifier key.
    #[error("{0}")]
    Vkey(String),
    /// A cosigner (0x04) key, not a log's signing key (0x01).
    #[error("a cosignature (witness) key, not a log's checkpoint key")]
    NotALogKey,
}

/// Why a note's log signature is not accepted (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature line is by a trusted key of the origin.
    #[error("no signature by a trusted key of this log")]
    Unsigned,
    /// A line names a trusted key but its signature does not verify.
    #[error("a signature by a trusted key of this log does not verify")]
    Bad,
}

/// Origins and their trusted keys.
#[derive(Debug, Clone, Default)]
pub struct KnownLogs(HashMap<String, Vec<LogKey>>);

impl KnownLogs {
    /// No logs.
    pub fn new() -> KnownLogs {
        KnownLogs::default()
    }

    /// Trusts `key` for `origin` (a second key for one origin: a rotation in progress).
    pub fn add(&mut self, origin: impl Into<String>, key: LogKey) {
        let keys = self.0.entry(origin.into()).or_default();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    /// The trusted keys of `origin`, if it is known.
    pub fn keys(&self, origin: &str) -> Option<&[LogKey]> {
        self.0.get(origin).map(Vec::as_slice)
    }

    /// The origins, sorted.
    pub fn origins(&self) -> Vec<&str> {
        let mut origins: Vec<&str> = self.0.keys().map(String::as_str).collect();
        origins.sort_unstable();
        origins
    }

    /// Checks `note` against the keys of `origin`: signatures by other keys are ignored, one
    /// by a trusted key must verify, and none by a trusted key may fail.
    ///
    /// # Errors
    ///
    /// [`SignatureError`].
    pub fn verify(keys: &[LogKey], note: &SignedNote) -> Result<(), SignatureError> {
        let mut verified = false;
        for key in keys {
            match note.verify(&key.name, &key.key) {
                Ok(()) => verified = true,
                Err(NoteError::NoKnownSignature { .. }) => {}
                Err(_) => return Err(SignatureError::Bad),
            }
        }
        if verified {
            Ok(())
        } else {
            Err(SignatureError::Unsigned)
        }
    }
}
