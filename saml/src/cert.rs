//! X.509 certificates as SAML metadata and `ds:KeyInfo` carry them (base64 DER), and the
//! facts an operator needs about them (validity, subject, fingerprint).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::x509::X509;
use sha2::{Digest, Sha256};

/// Certificates larger than this are refused before decoding.
const MAX_CERT_TEXT: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate text is empty")]
    Empty,
    #[error("certificate text is too large")]
    TooLarge,
    #[error("certificate is not valid base64")]
    Base64,
    #[error("certificate is not a valid X.509 DER/PEM certificate")]
    Invalid,
}

/// A parsed X.509 certificate. Equality is by content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub der: Vec<u8>,
    pub not_after_unix: i64,
    pub not_before_unix: i64,
    /// Subject as `CN=…, O=…` (short names, in certificate order).
    pub subject: String,
    /// SHA-256 of the DER, upper-case hex with colons (as most IdP consoles display it).
    pub sha256_fingerprint: String,
}

impl Certificate {
    /// Accepts PEM (`-----BEGIN CERTIFICATE-----`) or bare base64 DER as found in metadata
    /// `ds:X509Certificate`; whitespace anywhere is ignored.
    pub fn parse(text_or_pem: &str) -> Result<Self, CertError> {
        if text_or_pem.len() > MAX_CERT_TEXT {
            return Err(CertError::TooLarge);
        }
        let body: String = if text_or_pem.contains("-----BEGIN") {
            text_or_pem
                .lines()
                .filter(|l| !l.trim_start().starts_with("-----"))
                .collect()
        } else {
            text_or_pem.to_string()
        };
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Err(CertError::Empty);
        }
        let der = STANDARD.decode(compact).map_err(|_| CertError::Base64)?;
        Self::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        if der.is_empty() {
            return Err(CertError::Empty);
        }
        let x509 = X509::from_der(der).map_err(|_| CertError::Invalid)?;
        Self::from_x509(&x509)
    }

    pub(crate) fn from_x509(x509: &X509) -> Result<Self, CertError> {
        let der = x509.to_der().map_err(|_| CertError::Invalid)?;
        let not_after_unix = asn1_to_unix(x509.not_after()).ok_or(CertError::Invalid)?;
        let not_before_unix = asn1_to_unix(x509.not_before()).ok_or(CertError::Invalid)?;
        let subject = x509
            .subject_name()
            .entries()
            .map(|e| {
                let key = e.object().nid().short_name().unwrap_or("?");
                let val = e.data().to_string().unwrap_or_default();
                format!("{key}={val}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let digest = Sha256::digest(&der);
        let sha256_fingerprint = digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        Ok(Self {
            der,
            not_after_unix,
            not_before_unix,
            subject,
            sha256_fingerprint,
        })
    }

    pub(crate) fn x509(&self) -> Result<X509, CertError> {
        X509::from_der(&self.der).map_err(|_| CertError::Invalid)
    }

    /// PEM with 64-column lines.
    pub fn to_pem(&self) -> String {
        let b64 = self.base64();
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    /// Bare base64 of the DER, for metadata `ds:X509Certificate`.
    pub fn base64(&self) -> String {
        STANDARD.encode(&self.der)
    }

    /// Whether `now` lies in the certificate's validity period. SAML does not require this
    /// (metadata pins keys, SAML metadata interop profile §2.5.1), so validation does not call it;
    /// the server uses it to warn about expiring certificates.
    pub fn is_current(&self, now_unix: i64) -> bool {
        self.not_before_unix <= now_unix && now_unix < self.not_after_unix
    }
}

fn asn1_to_unix(t: &Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::SpKeyPair;

    #[test]
    fn pem_and_base64_round_trip() {
        let kp = SpKeyPair::generate_at("sp.test", 1_700_000_000, 365).unwrap();
        let c = kp.certificate();
        assert_eq!(c.not_before_unix, 1_700_000_000);
        assert_eq!(c.not_after_unix, 1_700_000_000 + 365 * 86_400);
        assert_eq!(c.subject, "CN=sp.test");
        assert_eq!(c.sha256_fingerprint.len(), 32 * 3 - 1);
        assert_eq!(&Certificate::parse(&c.to_pem()).unwrap(), c);
        let spaced: String = c
            .base64()
            .as_bytes()
            .chunks(10)
            .map(|ch| String::from_utf8_lossy(ch).into_owned() + "\n  ")
            .collect();
        assert_eq!(&Certificate::parse(&spaced).unwrap(), c);
        assert!(c.is_current(1_700_000_001));
        assert!(!c.is_current(1_600_000_000));
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(Certificate::parse("  "), Err(CertError::Empty));
        assert_eq!(Certificate::parse("***"), Err(CertError::Base64));
        assert_eq!(Certificate::parse("AAAA"), Err(CertError::Invalid));
        assert_eq!(Certificate::from_der(&[]), Err(CertError::Empty));
        assert_eq!(
            Certificate::parse(&"A".repeat(MAX_CERT_TEXT + 1)),
            Err(CertError::TooLarge)
        );
    }
}
