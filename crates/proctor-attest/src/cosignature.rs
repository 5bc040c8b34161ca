//! Witness cosignatures: C2SP `cosignature/v1` (<https://c2sp.org/tlog-cosignature>), Ed25519.
//!
//! A cosignature is one more signature line on a checkpoint's signed note:
//!
//! ```text
//! — <witness name> base64(key id || u64 big-endian timestamp || Ed25519 signature)
//! ```
//!
//! The key id is that of signature type `0x04` ([`SignatureType::CosignatureV1`]), so the
//! same Ed25519 key as a plain note signer has another id. The signed message is
//!
//! ```text
//! cosignature/v1
//! time <timestamp, decimal, no leading zeros>
//! <the checkpoint's whole note text, extension lines included, final newline included>
//! ```
//!
//! and says: as of that time (POSIX seconds), this is the largest consistent tree the witness
//! has seen for the log of that origin. Timestamps above `2^63 - 1` are refused both ways, as
//! the spec requires.

use crate::keys::{SigningKey, VerifyingKey};
use crate::note::{NoteSignature, SignedNote};
use crate::vkey::{self, SignatureType, Vkey};

/// The header line of the signed message, for domain separation.
const HEADER: &str = "cosignature/v1\n";

/// The largest timestamp a cosignature may carry.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Why a cosignature could not be made, read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// A cosigner name a signed note cannot carry.
    #[error("invalid cosigner name {0:?}: it must be non-empty, with no spaces and no '+'")]
    BadName(String),
    /// A timestamp above 2^63 - 1.
    #[error("cosignature timestamp {0} is above 2^63 - 1")]
    BadTimestamp(u64),
    /// A verifier key of another type than a cosignature key was given.
    #[error("the verifier key {0} is not a cosignature/v1 (type 0x04) key")]
    NotCosignatureKey(String),
    /// A signature line whose payload is not 8 + 64 bytes.
    #[error("a cosignature is 72 bytes after its key id; this one is {0}")]
    WrongLength(usize),
    /// The note carries no line by the witness's name and key id.
    #[error("no cosignature by {name}+{key_id:08x}")]
    Missing {
        /// The witness's name.
        name: String,
        /// Its cosignature key id.
        key_id: u32,
    },
    /// The witness's line does not verify over this checkpoint.
    #[error("the cosignature by {name}+{key_id:08x} does not verify")]
    BadSignature {
        /// The witness's name.
        name: String,
        /// Its cosignature key id.
        key_id: u32,
    },
}

/// One parsed cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub name: String,
    /// The witness's cosignature key id.
    pub key_id: u32,
    /// When it was made, POSIX seconds.
    pub timestamp: u64,
    /// The Ed25519 signature over [`message`].
    pub signature: [u8; 64],
}

/// The exact bytes a witness signs for the checkpoint note text `body` at `timestamp`.
pub fn message(body: &str, timestamp: u64) -> Vec<u8> {
    format!("{HEADER}time {timestamp}\n{body}").into_bytes()
}

/// The cosigner vkey of `key` under `name` (type 0x04), as witnesses publish it.
///
/// # Errors
///
/// [`CosignatureError::BadName`].
pub fn vkey(name: &str, key: &VerifyingKey) -> Result<Vkey, CosignatureError> {
    Vkey::new(name, SignatureType::CosignatureV1, *key)
        .map_err(|_| CosignatureError::BadName(name.to_owned()))
}

/// Cosigns the checkpoint note text `body` as `name` at `timestamp`.
///
/// # Errors
///
/// [`CosignatureError::BadName`] or [`CosignatureError::BadTimestamp`].
pub fn sign(
    body: &str,
    name: &str,
    key: &SigningKey,
    timestamp: u64,
) -> Result<Cosignature, CosignatureError> {
    vkey::check_key_name(name).map_err(|_| CosignatureError::BadName(name.to_owned()))?;
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::BadTimestamp(timestamp));
    }
    Ok(Cosignature {
        name: name.to_owned(),
        key_id: vkey::key_id(name, SignatureType::CosignatureV1, &key.verifying_key()),
        timestamp,
        signature: key.sign(&message(body, timestamp)),
    })
}

impl Cosignature {
    /// Reads a note signature line as a cosignature (without checking it).
    ///
    /// # Errors
    ///
    /// [`CosignatureError::WrongLength`] or [`CosignatureError::BadTimestamp`].
    pub fn from_note_signature(line: &NoteSignature) -> Result<Cosignature, CosignatureError> {
        let payload: &[u8; 72] = line
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| CosignatureError::WrongLength(line.signature.len()))?;
        let mut time = [0u8; 8];
        time.copy_from_slice(&payload[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&payload[8..]);
        let timestamp = u64::from_be_bytes(time);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::BadTimestamp(timestamp));
        }
        Ok(Cosignature {
            name: line.name.clone(),
            key_id: line.key_id,
            timestamp,
            signature,
        })
    }

    /// As a note signature (name, key id, timestamp || signature).
    pub fn to_note_signature(&self) -> NoteSignature {
        let mut payload = self.timestamp.to_be_bytes().to_vec();
        payload.extend_from_slice(&self.signature);
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: payload,
        }
    }

    /// The signature line, ending in a newline: what a witness returns from `add-checkpoint`
    /// and what the log appends to its checkpoint.
    pub fn line(&self) -> String {
        self.to_note_signature().line()
    }

    /// Checks this cosignature over the checkpoint note text `body` with the witness's vkey
    /// (its name and key id must match too).
    ///
    /// # Errors
    ///
    /// [`CosignatureError::NotCosignatureKey`], [`CosignatureError::Missing`] when the line is
    /// by another name or key id, [`CosignatureError::BadSignature`].
    pub fn verify(&self, body: &str, witness: &Vkey) -> Result<(), CosignatureError> {
        check_type(witness)?;
        let (name, key_id) = (witness.name().to_owned(), witness.key_id());
        if self.name != name || self.key_id != key_id {
            return Err(CosignatureError::Missing { name, key_id });
        }
        witness
            .key()
            .verify(&message(body, self.timestamp), &self.signature)
            .map_err(|_| CosignatureError::BadSignature { name, key_id })
    }
}

fn check_type(witness: &Vkey) -> Result<(), CosignatureError> {
    if witness.signature_type() != SignatureType::CosignatureV1 {
        return Err(CosignatureError::NotCosignatureKey(witness.to_string()));
    }
    Ok(())
}

/// Finds and checks the cosignature by `witness` on a signed checkpoint; returns its
/// timestamp. Lines by other keys are ignored, as signed notes require.
///
/// # Errors
///
/// [`CosignatureError::Missing`] when no line has the witness's name and key id;
/// [`CosignatureError::BadSignature`] (or a malformed payload error) when one has and fails.
pub fn verify_note(note: &SignedNote, witness: &Vkey) -> Result<u64, CosignatureError> {
    check_type(witness)?;
    let (name, key_id) = (witness.name(), witness.key_id());
    let mut found = None;
    for line in note
        .signatures
        .iter()
        .filter(|s| s.name == name && s.key_id == key_id)
    {
        let cosignature = Cosignature::from_note_signature(line)?;
        cosignature.verify(&note.text, witness)?;
        found = Some(found.map_or(cosignature.timestamp, |t: u64| t.max(cosignature.timestamp)));
    }
    found.ok_or(CosignatureError::Missing {
        name: name.to_owned(),
        key_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b64;
    use crate::checkpoint::Checkpoint;

    fn checkpoint_note(log: &SigningKey) -> SignedNote {
        let checkpoint = Checkpoint {
            origin: "example.com/behind-the-sofa".into(),
            size: 20852163,
            root: b64::decode_hash("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=").unwrap(),
        };
        SignedNote::parse(&checkpoint.sign(log).unwrap()).unwrap()
    }

    #[test]
    fn the_signed_message_is_the_specs_example() {
        // c2sp.org/tlog-cosignature, "Ed25519 signed message".
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(
            message(body, 1679315147),
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn an_independent_implementation_makes_the_same_cosignature() {
        // aics-tlog 0.2.1 (PyPI, pyca/cryptography): `sign_cosignature` with the seed [2; 32]
        // as "witness.example/w1" at 1679315147 over the spec's example checkpoint, and
        // `format_vkey(cosignature_vkey(...))`. Ed25519 is deterministic: the bytes must match.
        let witness = SigningKey::from_seed(&[2; 32]);
        let wkey = vkey("witness.example/w1", &witness.verifying_key()).unwrap();
        assert_eq!(
            wkey.to_string(),
            "witness.example/w1+df1c0a35+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU"
        );
        let note = checkpoint_note(&SigningKey::from_seed(&[1; 32]));
        let ours = sign(&note.text, "witness.example/w1", &witness, 1679315147).unwrap();
        assert_eq!(
            ours.line(),
            "\u{2014} witness.example/w1 3xwKNQAAAABkGFDLUwBLV8e4tjvb6qEHiNTQjDZIX+7tvd038taw9A7W/cQ7ZhSah0uJMOI6CTPez5qwHtE49MrkWhU349mtYmi3Dw==\n"
        );
    }

    #[test]
    fn published_cosignature_lines_decode_to_their_timestamps() {
        // The spec's example line (its message above has time 1679315147), and the one of
        // transparency-dev/formats note/note_cosigv1_test.go (1727964367).
        for (line, timestamp) in [
            (
                "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==",
                1679315147,
            ),
            (
                "\u{2014} w ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==",
                1727964367,
            ),
        ] {
            let parsed = NoteSignature::parse_line(line).unwrap();
            let cosignature = Cosignature::from_note_signature(&parsed).unwrap();
            assert_eq!(cosignature.timestamp, timestamp);
            assert_eq!(cosignature.line(), format!("{line}\n"));
        }
        // A plain Ed25519 note signature (64 bytes) is not a cosignature.
        let plain = NoteSignature::parse_line("\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=").unwrap();
        assert_eq!(
            Cosignature::from_note_signature(&plain),
            Err(CosignatureError::WrongLength(64))
        );
    }

    #[test]
    fn a_cosignature_verifies_on_the_checkpoint_and_nowhere_else() {
        let log = SigningKey::from_seed(&[1; 32]);
        let witness = SigningKey::from_seed(&[2; 32]);
        let wkey = vkey("witness.example/w1", &witness.verifying_key()).unwrap();
        let mut note = checkpoint_note(&log);
        let cosignature = sign(&note.text, "witness.example/w1", &witness, 1679315147).unwrap();
        assert_eq!(cosignature.key_id, wkey.key_id());
        note.signatures.push(cosignature.to_note_signature());
        let text = note.encode();
        let reread = SignedNote::parse(&text).unwrap();
        assert_eq!(verify_note(&reread, &wkey), Ok(1679315147));
        // The log's own signature still verifies: the cosignature is just another line.
        reread
            .verify("example.com/behind-the-sofa", &log.verifying_key())
            .unwrap();
        // Another size, another time, another key: refused.
        let other = SignedNote::parse(&text.replace("20852163", "20852164")).unwrap();
        assert!(matches!(
            verify_note(&other, &wkey),
            Err(CosignatureError::BadSignature { .. })
        ));
        let mut later = cosignature.clone();
        later.timestamp += 1;
        assert!(later.verify(&note.text, &wkey).is_err());
        let stranger = vkey("witness.example/w1", &log.verifying_key()).unwrap();
        assert!(matches!(
            verify_note(&reread, &stranger),
            Err(CosignatureError::Missing { .. })
        ));
        // A type-0x01 key is no cosigner key.
        let plain = Vkey::new("w", SignatureType::Ed25519, witness.verifying_key()).unwrap();
        assert!(matches!(
            verify_note(&reread, &plain),
            Err(CosignatureError::NotCosignatureKey(_))
        ));
    }

    #[test]
    fn timestamps_above_2_63_are_refused() {
        let key = SigningKey::from_seed(&[2; 32]);
        assert!(sign("a\n", "w", &key, MAX_TIMESTAMP).is_ok());
        assert_eq!(
            sign("a\n", "w", &key, MAX_TIMESTAMP + 1),
            Err(CosignatureError::BadTimestamp(MAX_TIMESTAMP + 1))
        );
        let mut line = sign("a\n", "w", &key, 5).unwrap().to_note_signature();
        line.signature[0] = 0x80;
        assert!(matches!(
            Cosignature::from_note_signature(&line),
            Err(CosignatureError::BadTimestamp(_))
        ));
        assert!(sign("a\n", "a b", &key, 5).is_err());
    }
}
