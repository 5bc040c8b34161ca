//! Ed25519 keys: the service's signing key and the public key anyone verifies it with.
//!
//! # Files
//!
//! - The private key is PKCS#8 (RFC 5958) in a PEM block labelled `PRIVATE KEY`. Proctor writes
//!   version 2, which carries the public key too (what ring generates); version 1, what
//!   `openssl genpkey -algorithm ed25519` writes, is read as well.
//! - The public key is a SubjectPublicKeyInfo (RFC 8410) in a PEM block labelled `PUBLIC KEY`:
//!   the 12-byte Ed25519 SPKI prefix and the 32-byte key, the same file `openssl pkey -pubout`
//!   writes, so any X.509 tooling reads it.
//!
//! # Key id
//!
//! A key's id is the lowercase hex SHA-256 of its SubjectPublicKeyInfo DER (the bytes inside
//! `public-key.pem`). It names the key in a DSSE signature's `keyid`; it is a name, not a
//! secret, and a verifier still checks the signature with the key it holds.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::pem::{self, PemError};

/// The PEM label of a PKCS#8 private key.
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// The PEM label of a SubjectPublicKeyInfo.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// SEQUENCE { SEQUENCE { OID 1.3.101.112 (id-Ed25519) }, BIT STRING (33 bytes, 0 unused bits) }:
/// every Ed25519 SubjectPublicKeyInfo starts with exactly these bytes (RFC 8410 §4).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// PKCS#8 v1 around a 32-byte seed: SEQUENCE { INTEGER 0, SEQUENCE { id-Ed25519 },
/// OCTET STRING { OCTET STRING (32 bytes) } } (RFC 8410 §7).
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Why a key could not be made, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The file is not the expected PEM block.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The PKCS#8 document is not an Ed25519 private key (another algorithm, a malformed or
    /// truncated document, or a v2 document whose public key does not match).
    #[error("not an Ed25519 private key in PKCS#8 form ({0})")]
    NotEd25519PrivateKey(String),
    /// The SubjectPublicKeyInfo is not an Ed25519 public key.
    #[error(
        "not an Ed25519 public key: expected a 44-byte SubjectPublicKeyInfo with algorithm 1.3.101.112"
    )]
    NotEd25519PublicKey,
    /// The operating system's random source failed.
    #[error("the system random source failed")]
    Random,
}

/// A signature that does not verify with the key it was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Ed25519 signature does not verify")]
pub struct BadSignature;

/// The service's Ed25519 signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    /// The PKCS#8 document it was made from, written back out as is.
    pkcs8: Vec<u8>,
}

impl SigningKey {
    /// A new random key, from the operating system's CSPRNG.
    ///
    /// # Errors
    ///
    /// [`KeyError::Random`] when the random source fails.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let doc =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
        SigningKey::from_pkcs8_der(doc.as_ref())
    }

    /// The key with this 32-byte RFC 8032 seed (the private key proper).
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        let mut der = PKCS8_V1_PREFIX.to_vec();
        der.extend_from_slice(seed);
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .unwrap_or_else(|_| unreachable!("every 32-byte string is an Ed25519 seed"));
        SigningKey { pair, pkcs8: der }
    }

    /// Reads a PKCS#8 document, v2 (with the public key, which is checked) or v1.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotEd25519PrivateKey`] for anything but an Ed25519 PKCS#8 document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        // v2 first: ring then checks that the embedded public key belongs to the private key.
        // v1 (OpenSSL's) has no public key to check, hence ring's "maybe unchecked".
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
            .map_err(|e| KeyError::NotEd25519PrivateKey(e.to_string()))?;
        Ok(SigningKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// Reads a `PRIVATE KEY` PEM file.
    ///
    /// # Errors
    ///
    /// [`KeyError::Pem`] for a file that is not one PEM block labelled `PRIVATE KEY` (an RSA or
    /// EC key in its own format, an encrypted key, a truncated file);
    /// [`KeyError::NotEd25519PrivateKey`] for a PKCS#8 key of another algorithm.
    pub fn from_pkcs8_pem(text: &str) -> Result<SigningKey, KeyError> {
        SigningKey::from_pkcs8_der(&pem::decode(text, PRIVATE_KEY_LABEL)?)
    }

    /// The key as a `PRIVATE KEY` PEM file.
    pub fn to_pkcs8_pem(&self) -> String {
        pem::encode(PRIVATE_KEY_LABEL, &self.pkcs8)
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey(key)
    }

    /// The key id (see the module docs).
    pub fn key_id(&self) -> String {
        self.verifying_key().key_id()
    }

    /// Signs `message` (Ed25519 is deterministic: the same message gives the same signature).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.pair.sign(message).as_ref());
        sig
    }
}

impl fmt::Debug for SigningKey {
    // Never the private key, only which key it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey([u8; 32]);

impl VerifyingKey {
    /// The key with these 32 bytes (RFC 8032 encoding). Whether they are a valid point is
    /// found out when a signature is verified.
    pub fn from_bytes(bytes: [u8; 32]) -> VerifyingKey {
        VerifyingKey(bytes)
    }

    /// The 32-byte RFC 8032 encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a SubjectPublicKeyInfo DER.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotEd25519PublicKey`] for anything but an Ed25519 SPKI.
    pub fn from_spki_der(der: &[u8]) -> Result<VerifyingKey, KeyError> {
        let key = der
            .strip_prefix(&SPKI_PREFIX)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(KeyError::NotEd25519PublicKey)?;
        Ok(VerifyingKey(key))
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        der
    }

    /// Reads a `PUBLIC KEY` PEM file.
    ///
    /// # Errors
    ///
    /// [`KeyError::Pem`] for a file that is not one PEM block labelled `PUBLIC KEY`;
    /// [`KeyError::NotEd25519PublicKey`] for a public key of another algorithm.
    pub fn from_pem(text: &str) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_spki_der(&pem::decode(text, PUBLIC_KEY_LABEL)?)
    }

    /// The key as a `PUBLIC KEY` PEM file.
    pub fn to_pem(&self) -> String {
        pem::encode(PUBLIC_KEY_LABEL, &self.to_spki_der())
    }

    /// The key id: lowercase hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub fn key_id(&self) -> String {
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            &self.to_spki_der(),
        ))
    }

    /// Checks an Ed25519 signature over `message`.
    ///
    /// # Errors
    ///
    /// [`BadSignature`] when it does not verify (wrong key, changed message, malformed
    /// signature, or a key that is not a valid point).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| BadSignature)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `openssl genpkey -algorithm ed25519` (OpenSSL 3.0): PKCS#8 v1, no public key.
    const OPENSSL_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIIKy9X+RfTcoN39SeDTXjfq7/FG7ZnH2x1jyE1puBo4F
-----END PRIVATE KEY-----
";
    /// `openssl pkey -in <the key above> -pubout`.
    const OPENSSL_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAYwSGbVFpy4R8PzvPyOYA/ThlzGikiYaV4JOOUKDNFbM=
-----END PUBLIC KEY-----
";
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`: PKCS#8, wrong curve.
    const P256_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrn3iLQ3BbDPbAt/m
MXqoVn5kr3GkcGMurr6I5eAChVOhRANCAATDx1QBo+hdvKY5eUzS48q8+DOoFdLO
eApuxsNgHkSxd+QMb/L9eguxAkYV75UrAQye2KtuAPJ8ALtqEeIXxodz
-----END PRIVATE KEY-----
";
    /// An RSA-1024 SubjectPublicKeyInfo from `openssl pkey -pubout`.
    const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDLbmU3eNb+PNFhpg8vsHD5Ov98
Q9h0YHpSXVMHC7TxFPeGLtjZaDtcWIM8opujizfLzCQGGHJ6h0XZ4PaUc4RJqi1g
uAhqusZ2kH8nV03bivkvkKirBkG53nHOmrJ1QJQ9SrXfudW9TuBkIItqZITvkAUj
j/vUIhvxr+ycqgS87QIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn a_generated_key_round_trips_through_its_pem_files() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(again.verifying_key(), key.verifying_key());
        let public = VerifyingKey::from_pem(&key.verifying_key().to_pem()).unwrap();
        let sig = again.sign(b"hello");
        public.verify(b"hello", &sig).unwrap();
        assert_eq!(public.verify(b"hellO", &sig), Err(BadSignature));
    }

    #[test]
    fn an_openssl_v1_private_key_is_read_and_matches_openssls_public_key() {
        let key = SigningKey::from_pkcs8_pem(OPENSSL_PRIVATE).unwrap();
        assert_eq!(
            key.verifying_key(),
            VerifyingKey::from_pem(OPENSSL_PUBLIC).unwrap()
        );
        assert_eq!(key.verifying_key().to_pem(), OPENSSL_PUBLIC);
        assert_eq!(key.to_pkcs8_pem(), OPENSSL_PRIVATE);
    }

    #[test]
    fn a_key_from_its_seed_writes_the_same_pkcs8_as_openssl() {
        let seed: [u8; 32] =
            hex::decode("82b2f57f917d3728377f527834d78dfabbfc51bb6671f6c758f2135a6e068e05")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(SigningKey::from_seed(&seed).to_pkcs8_pem(), OPENSSL_PRIVATE);
    }

    #[test]
    fn keys_of_another_type_are_refused_with_a_typed_error() {
        assert!(matches!(
            SigningKey::from_pkcs8_pem(P256_PRIVATE),
            Err(KeyError::NotEd25519PrivateKey(_))
        ));
        assert_eq!(
            VerifyingKey::from_pem(RSA_PUBLIC),
            Err(KeyError::NotEd25519PublicKey)
        );
        // A public key where a private one is wanted, and the other way round.
        assert!(matches!(
            SigningKey::from_pkcs8_pem(OPENSSL_PUBLIC),
            Err(KeyError::Pem(PemError::WrongLabel { .. }))
        ));
        assert!(matches!(
            VerifyingKey::from_pem(OPENSSL_PRIVATE),
            Err(KeyError::Pem(PemError::WrongLabel { .. }))
        ));
    }

    #[test]
    fn truncated_or_damaged_key_files_are_refused() {
        let key = SigningKey::generate().unwrap().to_pkcs8_pem();
        for cut in [0, 10, 30, key.len() - 20] {
            assert!(
                SigningKey::from_pkcs8_pem(&key[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A whole PEM block around too few bytes.
        let der = pem::decode(&key, PRIVATE_KEY_LABEL).unwrap();
        let short = pem::encode(PRIVATE_KEY_LABEL, &der[..der.len() - 5]);
        assert!(matches!(
            SigningKey::from_pkcs8_pem(&short),
            Err(KeyError::NotEd25519PrivateKey(_))
        ));
        let public = pem::encode(PUBLIC_KEY_LABEL, &[0x30, 0x2a, 0x30]);
        assert_eq!(
            VerifyingKey::from_pem(&public),
            Err(KeyError::NotEd25519PublicKey)
        );
    }

    #[test]
    fn the_key_id_is_the_sha256_of_the_spki_der() {
        let key = VerifyingKey::from_pem(OPENSSL_PUBLIC).unwrap();
        let der = pem::decode(OPENSSL_PUBLIC, PUBLIC_KEY_LABEL).unwrap();
        assert_eq!(
            key.key_id(),
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &der))
        );
        assert_eq!(key.key_id().len(), 64);
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let key = SigningKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.key_id()));
        assert!(!shown.contains(&key.to_pkcs8_pem()[30..60]));
    }
}
