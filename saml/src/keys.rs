//! The SP's own key pair: signs AuthnRequests and logout messages (SAML bindings §3.4.4.1) and
//! decrypts `EncryptedAssertion`s (SAML core §6).

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

use crate::cert::Certificate;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the private key is not a valid PKCS#8 DER key")]
    InvalidPrivateKey,
    #[error("the certificate is not valid")]
    InvalidCertificate,
    #[error("the certificate does not match the private key")]
    Mismatch,
    #[error("only RSA keys are supported")]
    UnsupportedKeyType,
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    #[error("cryptographic operation failed")]
    Crypto,
}

impl From<openssl::error::ErrorStack> for KeyError {
    fn from(_: openssl::error::ErrorStack) -> Self {
        KeyError::Crypto
    }
}

/// An SP key pair: RSA-2048 private key + self-signed X.509 certificate (used for signing
/// AuthnRequests/LogoutRequests and for decrypting assertions).
#[derive(Clone)]
pub struct SpKeyPair {
    key: PKey<Private>,
    cert: Certificate,
}

impl std::fmt::Debug for SpKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpKeyPair")
            .field("certificate", &self.cert.sha256_fingerprint)
            .finish_non_exhaustive()
    }
}

impl SpKeyPair {
    /// A fresh RSA-2048 key and a self-signed certificate valid from now for `valid_days`.
    /// (Key generation is not validation, so reading the system clock here is fine; use
    /// [`SpKeyPair::generate_at`] for reproducible certificates.)
    pub fn generate(common_name: &str, valid_days: u32) -> Result<Self, KeyError> {
        let now = Asn1Time::days_from_now(0)?;
        let epoch = Asn1Time::from_unix(0)?;
        let d = epoch.diff(&now)?;
        let now_unix = i64::from(d.days) * 86_400 + i64::from(d.secs);
        Self::generate_at(common_name, now_unix, valid_days)
    }

    /// Like [`SpKeyPair::generate`] with an explicit `notBefore`.
    pub fn generate_at(
        common_name: &str,
        not_before_unix: i64,
        valid_days: u32,
    ) -> Result<Self, KeyError> {
        if common_name.is_empty() || common_name.len() > 64 {
            return Err(KeyError::InvalidParameter("common name must be 1-64 bytes"));
        }
        if valid_days == 0 {
            return Err(KeyError::InvalidParameter(
                "validity must be at least one day",
            ));
        }
        let rsa = Rsa::generate(2048)?;
        let key = PKey::from_rsa(rsa)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", common_name)
            .map_err(|_| KeyError::InvalidParameter("common name"))?;
        let name = name.build();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
        let serial = Asn1Integer::from_bn(&serial)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let not_after = not_before_unix + i64::from(valid_days) * 86_400;
        let nb = Asn1Time::from_unix(not_before_unix)?;
        let na = Asn1Time::from_unix(not_after)?;
        b.set_not_before(&nb)?;
        b.set_not_after(&na)?;
        b.sign(&key, MessageDigest::sha256())?;
        let x509 = b.build();
        let cert = Certificate::from_x509(&x509).map_err(|_| KeyError::InvalidCertificate)?;
        Ok(Self { key, cert })
    }

    /// Loads a stored pair; refuses a certificate whose public key is not the private key's.
    pub fn from_pkcs8_der(key_der: &[u8], cert_der: &[u8]) -> Result<Self, KeyError> {
        let key = PKey::private_key_from_pkcs8(key_der).map_err(|_| KeyError::InvalidPrivateKey)?;
        if key.rsa().is_err() {
            return Err(KeyError::UnsupportedKeyType);
        }
        let cert = Certificate::from_der(cert_der).map_err(|_| KeyError::InvalidCertificate)?;
        let x509 = cert.x509().map_err(|_| KeyError::InvalidCertificate)?;
        let public = x509
            .public_key()
            .map_err(|_| KeyError::InvalidCertificate)?;
        if !public.public_eq(&key) {
            return Err(KeyError::Mismatch);
        }
        Ok(Self { key, cert })
    }

    pub fn private_key_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        Ok(self.key.private_key_to_pkcs8()?)
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub(crate) fn pkey(&self) -> &PKey<Private> {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pkcs8_round_trip_and_mismatch() {
        let a = SpKeyPair::generate("a.test", 30).unwrap();
        let b = SpKeyPair::generate("b.test", 30).unwrap();
        let der = a.private_key_pkcs8_der().unwrap();
        let again = SpKeyPair::from_pkcs8_der(&der, &a.certificate().der).unwrap();
        assert_eq!(again.certificate(), a.certificate());
        assert_eq!(
            SpKeyPair::from_pkcs8_der(&der, &b.certificate().der).unwrap_err(),
            KeyError::Mismatch
        );
        assert_eq!(
            SpKeyPair::from_pkcs8_der(b"junk", &a.certificate().der).unwrap_err(),
            KeyError::InvalidPrivateKey
        );
        assert_eq!(
            SpKeyPair::from_pkcs8_der(&der, b"junk").unwrap_err(),
            KeyError::InvalidCertificate
        );
        assert!(!format!("{a:?}").contains("PRIVATE"));
        assert!(SpKeyPair::generate("", 30).is_err());
        assert!(SpKeyPair::generate("x", 0).is_err());
    }
}
