//! Secrets encrypted at rest (TOTP secrets): AES-256-GCM under the configured `secret_key`,
//! a fresh random nonce per value, stored as `v1:` + base64(nonce ‖ ciphertext ‖ tag). The
//! purpose string is bound as associated data, so a sealed value cannot be moved to another
//! use or user.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use rand::RngCore;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the secret key must be 32 bytes (base64)")]
    BadKey,
    #[error("sealed value is corrupt or was sealed under another key")]
    Open,
}

/// The sealing key. Never printed.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &[u8]) -> Result<Self, SealError> {
        if key.len() != 32 {
            return Err(SealError::BadKey);
        }
        let k = UnboundKey::new(&AES_256_GCM, key).map_err(|_| SealError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(k),
        })
    }

    /// A new random key, base64 (for a key file or `IDHUB_SECRET_KEY`).
    pub fn generate_key() -> String {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        base64::engine::general_purpose::STANDARD.encode(k)
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = sealed
            .strip_prefix("v1:")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or(SealError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_purpose() {
        let s = Sealer::new(&[7u8; 32]).unwrap();
        let sealed = s.seal("totp:u1", b"secret").unwrap();
        assert!(!sealed.contains("secret"));
        assert_ne!(sealed, s.seal("totp:u1", b"secret").unwrap(), "fresh nonce");
        assert_eq!(s.open("totp:u1", &sealed).unwrap(), b"secret");
        assert_eq!(s.open("totp:u2", &sealed), Err(SealError::Open));
        let other = Sealer::new(&[8u8; 32]).unwrap();
        assert_eq!(other.open("totp:u1", &sealed), Err(SealError::Open));
        assert_eq!(s.open("totp:u1", "v1:AAAA"), Err(SealError::Open));
        assert!(Sealer::new(&[1u8; 16]).is_err());
    }
}
