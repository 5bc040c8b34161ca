//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 signatures.
//!
//! ```text
//! <text, ending in a newline>
//!
//! — <key name> <base64(key id || signature)>
//! ```
//!
//! The dash is U+2014 EM DASH. The key id is the first four bytes of
//! `SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)`, big-endian; the
//! signature is Ed25519 over the text (its final newline included, the blank line not).
//!
//! Parsing is strict, as the Go reference (`golang.org/x/mod/sumdb/note`) is: valid UTF-8, no
//! control characters but newline, a text ending in a newline, a blank line, then only
//! signature lines, each ending in a newline. As the spec requires, signatures by keys the
//! verifier does not know are ignored; a signature by the known key (same name and key id)
//! that does not verify rejects the note, and so does a note with no signature by it.

use std::fmt::Write as _;

use crate::b64;
use crate::keys::{SigningKey, VerifyingKey};
use crate::vkey::{self, SignatureType};

/// At most this many signature lines are read (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// Why a note could not be made, read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note breaks the format; the message says where.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// A key name that is empty or holds a space or `+`.
    #[error("invalid key name {0:?}: it must be non-empty, with no spaces and no '+'")]
    BadKeyName(String),
    /// No signature line is by the verifier's key.
    #[error("the note has no signature by key {name}+{key_id:08x}")]
    NoKnownSignature {
        /// The key's name.
        name: String,
        /// The key's id.
        key_id: u32,
    },
    /// The known key's signature does not verify.
    #[error("the signature by key {name}+{key_id:08x} does not verify")]
    BadSignature {
        /// The key's name.
        name: String,
        /// The key's id.
        key_id: u32,
    },
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key's name.
    pub name: String,
    /// The key id (first four bytes of the signature blob).
    pub key_id: u32,
    /// The signature proper (the rest of the blob).
    pub signature: Vec<u8>,
}

/// A parsed (not yet verified) signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The text, ending in a newline.
    pub text: String,
    /// Its signatures, in order.
    pub signatures: Vec<NoteSignature>,
}

/// The C2SP key id of an Ed25519 key under `name` (signature type 0x01).
pub fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    vkey::key_id(name, SignatureType::Ed25519, key)
}

/// The verifier key string of the Go `note` package and its tools: `<name>+<hex key id>+
/// <base64(0x01 || public key)>`, for operators who configure witnesses or monitors. See
/// [`crate::vkey::Vkey`] for the parsed form.
pub fn verifier_key_string(name: &str, key: &VerifyingKey) -> String {
    vkey::format(name, SignatureType::Ed25519, key)
}

fn check_key_name(name: &str) -> Result<(), NoteError> {
    vkey::check_key_name(name).map_err(|_| NoteError::BadKeyName(name.to_owned()))
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("control character"));
    }
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end in a newline"));
    }
    Ok(())
}

/// Signs `text` with `key` under `name` and returns the whole signed note.
///
/// # Errors
///
/// [`NoteError::BadKeyName`], or [`NoteError::Malformed`] for a text that is empty, does not
/// end in a newline or holds control characters.
pub fn sign(text: &str, name: &str, key: &SigningKey) -> Result<String, NoteError> {
    check_key_name(name)?;
    check_text(text)?;
    let mut blob = key_id(name, &key.verifying_key()).to_be_bytes().to_vec();
    blob.extend_from_slice(&key.sign(text.as_bytes()));
    let mut note = String::with_capacity(text.len() + name.len() + 100);
    note.push_str(text);
    note.push('\n');
    let _ = writeln!(note, "\u{2014} {name} {}", b64::encode(&blob));
    Ok(note)
}

impl SignedNote {
    /// Parses a signed note without verifying it.
    ///
    /// # Errors
    ///
    /// [`NoteError::Malformed`] for anything that breaks the format.
    pub fn parse(note: &str) -> Result<SignedNote, NoteError> {
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("control character"));
        }
        // The text ends at the last blank line: signatures cannot contain one.
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        if sigs.is_empty() {
            return Err(NoteError::Malformed("no signature lines"));
        }
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "the last signature line does not end in a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed("too many signatures"));
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(SignedNote {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The whole note: text, blank line, signature lines.
    pub fn encode(&self) -> String {
        let mut note = self.text.clone();
        note.push('\n');
        for signature in &self.signatures {
            note.push_str(&signature.line());
        }
        note
    }

    /// Verifies the signature by `key` under `name`, ignoring signatures by other keys.
    ///
    /// # Errors
    ///
    /// [`NoteError::NoKnownSignature`] when no line is by that key,
    /// [`NoteError::BadSignature`] when one is and does not verify.
    pub fn verify(&self, name: &str, key: &VerifyingKey) -> Result<(), NoteError> {
        let id = key_id(name, key);
        let mut known = self
            .signatures
            .iter()
            .filter(|s| s.name == name && s.key_id == id)
            .peekable();
        if known.peek().is_none() {
            return Err(NoteError::NoKnownSignature {
                name: name.to_owned(),
                key_id: id,
            });
        }
        for signature in known {
            key.verify(self.text.as_bytes(), &signature.signature)
                .map_err(|_| NoteError::BadSignature {
                    name: name.to_owned(),
                    key_id: id,
                })?;
        }
        Ok(())
    }
}

impl NoteSignature {
    /// Parses one signature line, without its final newline: `— <name> <base64>`.
    ///
    /// # Errors
    ///
    /// [`NoteError::Malformed`] for a line that is not a signature line.
    pub fn parse_line(line: &str) -> Result<NoteSignature, NoteError> {
        let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed(
            "a signature line does not start with \"\u{2014} \"",
        ))?;
        let (name, blob) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("a signature line has no signature"))?;
        check_key_name(name)
            .map_err(|_| NoteError::Malformed("a signature line has a bad key name"))?;
        let blob = b64::decode(blob)
            .map_err(|_| NoteError::Malformed("a signature is not standard base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        let (id, signature) = blob.split_at(4);
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
            signature: signature.to_vec(),
        })
    }

    /// The signature line, ending in a newline.
    pub fn line(&self) -> String {
        let mut blob = self.key_id.to_be_bytes().to_vec();
        blob.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, b64::encode(&blob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_round_trips_and_a_changed_text_fails() {
        let key = SigningKey::from_seed(&[9; 32]);
        let note = sign("hello\nworld\n", "example.com/log", &key).unwrap();
        let parsed = SignedNote::parse(&note).unwrap();
        assert_eq!(parsed.text, "hello\nworld\n");
        parsed
            .verify("example.com/log", &key.verifying_key())
            .unwrap();
        let changed = SignedNote::parse(&note.replace("world", "World")).unwrap();
        assert!(matches!(
            changed.verify("example.com/log", &key.verifying_key()),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn signatures_by_other_keys_are_ignored_but_one_is_needed() {
        let ours = SigningKey::from_seed(&[1; 32]);
        let theirs = SigningKey::from_seed(&[2; 32]);
        let text = "a\n";
        let by_them = sign(text, "witness.example", &theirs).unwrap();
        let by_us = sign(text, "log.example", &ours).unwrap();
        let both = format!("{by_us}{}", &by_them[text.len() + 1..]);
        let parsed = SignedNote::parse(&both).unwrap();
        assert_eq!(parsed.signatures.len(), 2);
        parsed.verify("log.example", &ours.verifying_key()).unwrap();
        let only_theirs = SignedNote::parse(&by_them).unwrap();
        assert!(matches!(
            only_theirs.verify("log.example", &ours.verifying_key()),
            Err(NoteError::NoKnownSignature { .. })
        ));
    }

    #[test]
    fn bad_key_names_are_refused() {
        let key = SigningKey::from_seed(&[1; 32]);
        for name in ["", "a b", "a+b", "a\tb"] {
            assert!(sign("x\n", name, &key).is_err(), "{name:?}");
        }
    }
}
