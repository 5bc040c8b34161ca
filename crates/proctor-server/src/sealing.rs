//! Vendor credentials at rest: AES-256-GCM (`ring::aead`) with a key the database never holds.
//!
//! Sealed bytes are `nonce (12) || ciphertext || tag (16)`. The nonce is random per seal (96
//! bits from the OS; the number of credentials is tiny, far from the birthday bound), and the
//! model's owner and name are the associated data, so a sealed credential copied to another
//! model's row does not open.

use std::fmt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Why sealing or opening failed. Carries no key or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The OS random source failed.
    #[error("the random source failed")]
    Random,
    /// The bytes were not sealed with this key for this model (or were changed).
    #[error("the sealed credential does not open with this server's key")]
    Open,
}

/// Seals and opens credentials.
pub struct CredentialSealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl fmt::Debug for CredentialSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialSealer(<redacted>)")
    }
}

impl CredentialSealer {
    /// A sealer with a 32-byte key.
    pub fn new(key: &[u8; 32]) -> CredentialSealer {
        // A 32-byte key is always valid for AES-256-GCM.
        let unbound = UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!());
        CredentialSealer {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// Seals `plaintext` for the model `context` names.
    ///
    /// # Errors
    ///
    /// [`SealError::Random`].
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut out,
            )
            .map_err(|_| SealError::Random)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        Ok(sealed)
    }

    /// Opens what [`seal`](Self::seal) made for the same `context`.
    ///
    /// # Errors
    ///
    /// [`SealError::Open`].
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

/// The associated data that binds a sealed credential to its model.
pub fn model_context(owner: &proctor_store::AccountId, name: &str) -> String {
    format!("proctor model credential v1\n{owner}\n{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_credential_opens_only_for_its_model() {
        let sealer = CredentialSealer::new(&[7; 32]);
        let sealed = sealer.seal("a", b"sk-secret").expect("sealed");
        assert!(!sealed.windows(9).any(|w| w == b"sk-secret"));
        assert_eq!(sealer.open("a", &sealed).expect("opens"), b"sk-secret");
        assert!(sealer.open("b", &sealed).is_err());
        assert!(CredentialSealer::new(&[8; 32]).open("a", &sealed).is_err());
    }
}
