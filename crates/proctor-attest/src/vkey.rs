//! C2SP signed-note verifier keys ("vkeys"): the one-line text form in which a log's or a
//! witness's public key is published and configured.
//!
//! ```text
//! <key name>+<hex key id>+<base64(signature type || public key)>
//! PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW
//! ```
//!
//! The key id is eight lowercase hex digits, the first four bytes of
//! `SHA-256(key name || 0x0A || signature type || public key)`. Proctor knows two signature
//! types, both Ed25519: `0x01`, a plain note signature (the log's checkpoint signature), and
//! `0x04`, a timestamped tlog-cosignature (a witness). Parsing is as strict as the Go
//! reference (`golang.org/x/mod/sumdb/note`): the name must be a valid key name, the id must
//! be the one the key material hashes to, the base64 canonical, the key 32 bytes.

use std::fmt;
use std::str::FromStr;

use crate::b64;
use crate::keys::VerifyingKey;

/// The signature types of [`c2sp.org/signed-note`](https://c2sp.org/signed-note) Proctor
/// uses, both Ed25519.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureType {
    /// `0x01`: an Ed25519 signature over the note text (a log's checkpoint signature).
    Ed25519,
    /// `0x04`: a timestamped Ed25519 cosignature (`cosignature/v1`, c2sp.org/tlog-cosignature).
    CosignatureV1,
}

impl SignatureType {
    /// The type's identifier byte.
    pub fn byte(self) -> u8 {
        match self {
            SignatureType::Ed25519 => 0x01,
            SignatureType::CosignatureV1 => 0x04,
        }
    }

    fn from_byte(byte: u8) -> Option<SignatureType> {
        match byte {
            0x01 => Some(SignatureType::Ed25519),
            0x04 => Some(SignatureType::CosignatureV1),
            _ => None,
        }
    }
}

/// Why a verifier key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VkeyError {
    /// Not three `+`-separated parts with a valid name, an 8-digit hex id and base64.
    #[error("malformed verifier key: {0}")]
    Malformed(&'static str),
    /// A key name that is empty or holds a space or `+`.
    #[error("invalid key name {0:?}: it must be non-empty, with no spaces and no '+'")]
    BadKeyName(String),
    /// A signature type other than Ed25519 (0x01) or an Ed25519 cosignature (0x04).
    #[error("verifier key of signature type 0x{0:02x}; Proctor reads 0x01 and 0x04 (Ed25519)")]
    UnsupportedType(u8),
    /// The key id does not match the name and key material.
    #[error("the verifier key's id {stated:08x} is not its key's id {actual:08x}")]
    WrongKeyId {
        /// The id the text states.
        stated: u32,
        /// The id its name, type and key hash to.
        actual: u32,
    },
}

/// A verifier key: a name, a signature type and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vkey {
    name: String,
    signature_type: SignatureType,
    key: VerifyingKey,
}

/// The C2SP key id of `key` under `name` for signatures of type `signature_type`.
pub fn key_id(name: &str, signature_type: SignatureType, key: &VerifyingKey) -> u32 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(&[b'\n', signature_type.byte()]);
    ctx.update(key.as_bytes());
    let digest = ctx.finish();
    let d = digest.as_ref();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Checks a signed-note key name: non-empty, no Unicode space, no `+`.
///
/// # Errors
///
/// [`VkeyError::BadKeyName`].
pub fn check_key_name(name: &str) -> Result<(), VkeyError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < ' ')
    {
        return Err(VkeyError::BadKeyName(name.to_owned()));
    }
    Ok(())
}

impl Vkey {
    /// The verifier key of `key` under `name`.
    ///
    /// # Errors
    ///
    /// [`VkeyError::BadKeyName`] for a name a signed note cannot carry.
    pub fn new(
        name: &str,
        signature_type: SignatureType,
        key: VerifyingKey,
    ) -> Result<Vkey, VkeyError> {
        check_key_name(name)?;
        Ok(Vkey {
            name: name.to_owned(),
            signature_type,
            key,
        })
    }

    /// Reads the text form (surrounding whitespace is not allowed).
    ///
    /// # Errors
    ///
    /// [`VkeyError`] for anything but a well-formed Ed25519 or cosignature vkey whose id is
    /// right.
    pub fn parse(text: &str) -> Result<Vkey, VkeyError> {
        // The name holds no '+', base64 may: split at the first two.
        let (name, rest) = text
            .split_once('+')
            .ok_or(VkeyError::Malformed("no '+' after the key name"))?;
        let (id, material) = rest
            .split_once('+')
            .ok_or(VkeyError::Malformed("no '+' after the key id"))?;
        check_key_name(name)?;
        if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(VkeyError::Malformed(
                "the key id is not eight lowercase hex digits",
            ));
        }
        let stated = u32::from_str_radix(id, 16)
            .map_err(|_| VkeyError::Malformed("the key id is not hex"))?;
        let material = b64::decode(material)
            .map_err(|_| VkeyError::Malformed("the key is not standard base64"))?;
        let (&type_byte, key) = material
            .split_first()
            .ok_or(VkeyError::Malformed("no key material"))?;
        let signature_type =
            SignatureType::from_byte(type_byte).ok_or(VkeyError::UnsupportedType(type_byte))?;
        let key = <[u8; 32]>::try_from(key)
            .map_err(|_| VkeyError::Malformed("an Ed25519 key is 32 bytes"))?;
        let vkey = Vkey::new(name, signature_type, VerifyingKey::from_bytes(key))?;
        let actual = vkey.key_id();
        if actual != stated {
            return Err(VkeyError::WrongKeyId { stated, actual });
        }
        Ok(vkey)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature type.
    pub fn signature_type(&self) -> SignatureType {
        self.signature_type
    }

    /// The Ed25519 public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The key id that signature lines by this key carry.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, self.signature_type, &self.key)
    }
}

/// The text form of a key, whether or not its name is valid (the caller checked it, or
/// signing under it fails later).
pub(crate) fn format(name: &str, signature_type: SignatureType, key: &VerifyingKey) -> String {
    let mut material = vec![signature_type.byte()];
    material.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{:08x}+{}",
        key_id(name, signature_type, key),
        b64::encode(&material)
    )
}

impl fmt::Display for Vkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(&self.name, self.signature_type, &self.key))
    }
}

impl FromStr for Vkey {
    type Err = VkeyError;

    fn from_str(text: &str) -> Result<Vkey, VkeyError> {
        Vkey::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// golang.org/x/mod/sumdb/note's test key (note_test.go), and its private seed from the
    /// matching `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALV...` signer key.
    const PETER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SEED: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    /// transparency-dev/formats note/note_cosigv1_test.go: a type-0x01 key whose base64 holds
    /// a '+', and a native type-0x04 cosignature key.
    const PLUS: &str = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6";
    const REMORA: &str = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";

    #[test]
    fn published_vkeys_parse_and_print_back_byte_for_byte() {
        for (text, name, kind) in [
            (PETER, "PeterNeumann", SignatureType::Ed25519),
            (PLUS, "TEST", SignatureType::Ed25519),
            (REMORA, "remora.n621.de", SignatureType::CosignatureV1),
        ] {
            let vkey = Vkey::parse(text).unwrap();
            assert_eq!(vkey.name(), name);
            assert_eq!(vkey.signature_type(), kind);
            assert_eq!(vkey.to_string(), text);
        }
    }

    #[test]
    fn the_go_signer_seed_gives_the_go_verifier_key() {
        let material = b64::decode(PETER_SEED).unwrap();
        assert_eq!(material[0], 0x01);
        let seed: [u8; 32] = material[1..].try_into().unwrap();
        let key = crate::keys::SigningKey::from_seed(&seed).verifying_key();
        let vkey = Vkey::new("PeterNeumann", SignatureType::Ed25519, key).unwrap();
        assert_eq!(vkey.to_string(), PETER);
        assert_eq!(
            crate::note::verifier_key_string("PeterNeumann", &key),
            PETER
        );
    }

    #[test]
    fn every_mangling_of_a_vkey_is_refused() {
        // As the Go package's TestNewVerifier: every proper substring fails.
        for start in 0..PETER.len() {
            for end in start + 1..=PETER.len() {
                if (start, end) != (0, PETER.len()) {
                    assert!(Vkey::parse(&PETER[start..end]).is_err(), "{start}..{end}");
                }
            }
        }
        assert!(matches!(
            Vkey::parse(&PETER.replace("c74f20a3", "c74f20a4")),
            Err(VkeyError::WrongKeyId { .. })
        ));
        assert!(Vkey::parse(&PETER.replace("c74f20a3", "C74F20A3")).is_err());
        assert!(Vkey::parse(&format!("Peter Neumann{}", &PETER[12..])).is_err());
        // Type 0x02 (ECDSA) is not read.
        let ecdsa = format!("x+00000000+{}", b64::encode(&[2u8; 33]));
        assert_eq!(Vkey::parse(&ecdsa), Err(VkeyError::UnsupportedType(2)));
    }

    #[test]
    fn the_same_key_has_another_id_as_a_cosigner() {
        let key = Vkey::parse(PETER).unwrap();
        let cosigner = Vkey::new(key.name(), SignatureType::CosignatureV1, *key.key()).unwrap();
        assert_ne!(cosigner.key_id(), key.key_id());
        assert_eq!(Vkey::parse(&cosigner.to_string()).unwrap(), cosigner);
    }
}
