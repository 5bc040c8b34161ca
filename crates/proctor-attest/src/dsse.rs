//! DSSE v1 envelopes (<https://github.com/secure-systems-lab/dsse>), signed with Ed25519.
//!
//! ```json
//! {"payload":"<base64>","payloadType":"application/vnd.in-toto+json","signatures":[{"keyid":"<hex>","sig":"<base64>"}]}
//! ```
//!
//! The signature covers the pre-authentication encoding
//! `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body` (lengths as ASCII
//! decimal, SP a space), never the JSON around it. An [`Envelope`] is serialized once, when it
//! is signed, and from then on is its bytes: they are stored, served, written to
//! `attestation.json` and hashed as the log leaf, and verification reads them without
//! re-serializing anything. Base64 is standard with padding.
//!
//! DSSE does not sign `keyid`, so a verifier must not trust it: it only picks which of the
//! verifier's own keys to check the signature with, and a key id the verifier does not hold
//! fails verification.

use serde::{Deserialize, Serialize};

use crate::b64;
use crate::keys::{KeyError, SigningKey, VerifyingKey};
use crate::merkle::{Hash, leaf_hash};

/// Why an envelope could not be made, read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// The bytes are not a DSSE envelope (not JSON, a missing or unknown field, bad base64).
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    /// The envelope carries no signature.
    #[error("the envelope has no signatures")]
    Unsigned,
    /// A signature names a key the verifier does not hold.
    #[error("signed by an unknown key (keyid {0:?})")]
    UnknownKey(String),
    /// A signature does not verify with the key its key id names.
    #[error("the signature by key {0} does not verify")]
    BadSignature(String),
    /// A key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The envelope as JSON has it. Field order is the serialization order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<WireSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignature {
    keyid: String,
    sig: String,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The key id the signer gave (unsigned: a hint, see the module docs).
    pub keyid: String,
    /// The signature bytes.
    pub sig: Vec<u8>,
}

/// A signed DSSE envelope: its bytes, and what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    bytes: Vec<u8>,
    payload_type: String,
    payload: Vec<u8>,
    signatures: Vec<Signature>,
}

/// What a verified envelope holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The payload type.
    pub payload_type: &'a str,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// The id of the key whose signature verified.
    pub key_id: &'a str,
}

/// DSSE's pre-authentication encoding of a payload and its type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` of `payload_type` with `key` and serializes the envelope, once.
    ///
    /// # Errors
    ///
    /// [`DsseError::Malformed`] only if serialization fails, which a struct of strings does not.
    pub fn sign(
        payload_type: &str,
        payload: &[u8],
        key: &SigningKey,
    ) -> Result<Envelope, DsseError> {
        let sig = key.sign(&pae(payload_type, payload)).to_vec();
        let keyid = key.key_id();
        let wire = Wire {
            payload: b64::encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![WireSignature {
                keyid: keyid.clone(),
                sig: b64::encode(&sig),
            }],
        };
        let bytes = serde_json::to_vec(&wire).map_err(|e| DsseError::Malformed(e.to_string()))?;
        Ok(Envelope {
            bytes,
            payload_type: payload_type.to_owned(),
            payload: payload.to_vec(),
            signatures: vec![Signature { keyid, sig }],
        })
    }

    /// Reads an envelope from its bytes, which it keeps as they are.
    ///
    /// # Errors
    ///
    /// [`DsseError::Malformed`] for anything but a DSSE envelope in JSON with standard base64.
    pub fn from_bytes(bytes: &[u8]) -> Result<Envelope, DsseError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(e.to_string()))?;
        let payload = b64::decode(&wire.payload)
            .map_err(|e| DsseError::Malformed(format!("payload: {e}")))?;
        let signatures = wire
            .signatures
            .into_iter()
            .map(|s| {
                let sig = b64::decode(&s.sig)
                    .map_err(|e| DsseError::Malformed(format!("signature: {e}")))?;
                Ok(Signature {
                    keyid: s.keyid,
                    sig,
                })
            })
            .collect::<Result<Vec<_>, DsseError>>()?;
        Ok(Envelope {
            bytes: bytes.to_vec(),
            payload_type: wire.payload_type,
            payload,
            signatures,
        })
    }

    /// The envelope's bytes: what was stored, served and logged.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The envelope's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Its log leaf hash: the leaf is the envelope's bytes.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.bytes)
    }

    /// The payload type, unverified.
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The payload, unverified: trust it only after [`Envelope::verify`].
    pub fn payload_unverified(&self) -> &[u8] {
        &self.payload
    }

    /// The signatures.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// Verifies every signature with the key its key id names among `keys`.
    ///
    /// An envelope verifies when it has at least one signature and every signature names a
    /// key in `keys` and verifies with it. Proctor signs with one key, so an extra signature
    /// by a key the verifier does not know is treated as tampering, not ignored.
    ///
    /// # Errors
    ///
    /// [`DsseError::Unsigned`], [`DsseError::UnknownKey`], [`DsseError::BadSignature`].
    pub fn verify(&self, keys: &[VerifyingKey]) -> Result<Verified<'_>, DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::Unsigned);
        }
        let message = pae(&self.payload_type, &self.payload);
        for signature in &self.signatures {
            let key = keys
                .iter()
                .find(|k| k.key_id() == signature.keyid)
                .ok_or_else(|| DsseError::UnknownKey(signature.keyid.clone()))?;
            key.verify(&message, &signature.sig)
                .map_err(|_| DsseError::BadSignature(signature.keyid.clone()))?;
        }
        Ok(Verified {
            payload_type: &self.payload_type,
            payload: &self.payload,
            key_id: &self.signatures[0].keyid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_follows_the_dsse_spec_example() {
        // The example in DSSE's protocol.md.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn the_envelope_is_compact_json_in_the_dsse_field_order() {
        let key = SigningKey::from_seed(&[1; 32]);
        let env = Envelope::sign("t", b"hi", &key).unwrap();
        let text = std::str::from_utf8(env.as_bytes()).unwrap();
        let prefix = format!(
            "{{\"payload\":\"aGk=\",\"payloadType\":\"t\",\"signatures\":[{{\"keyid\":\"{}\",\"sig\":\"",
            key.key_id()
        );
        assert!(text.starts_with(&prefix), "{text}");
        assert!(text.ends_with("\"}]}"));
    }
}
