//! Standard base64 (RFC 4648 §4, with padding), the one encoding DSSE, signed notes and the
//! proof files share. Decoding is canonical: non-zero trailing bits or missing padding are
//! errors, so no two strings decode to the same bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;

pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(crate) fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(text)
}

/// Decodes one 32-byte hash.
pub(crate) fn decode_hash(text: &str) -> Option<Hash> {
    decode(text).ok()?.try_into().ok()
}

/// Serde helpers for hashes written as base64 strings in the proof files.
pub(crate) mod hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::merkle::Hash;

    pub(crate) fn serialize<S: Serializer>(hash: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(hash))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        super::decode_hash(&text).ok_or_else(|| D::Error::custom("not a base64 sha256 hash"))
    }
}

/// Serde helpers for lists of hashes written as base64 strings.
pub(crate) mod hashes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::SerializeSeq};

    use crate::merkle::Hash;

    pub(crate) fn serialize<S: Serializer>(hashes: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            seq.serialize_element(&super::encode(hash))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|text| {
                super::decode_hash(text).ok_or_else(|| D::Error::custom("not a base64 sha256 hash"))
            })
            .collect()
    }
}
