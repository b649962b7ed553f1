//! Signature algorithms and the allow-list every validation is given.

/// XML-DSig signature algorithms idhub knows by URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    RsaSha1,
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl SignatureAlgorithm {
    /// The XML-DSig `SignatureMethod` URI (RFC 6931 §2.3).
    pub fn uri(self) -> &'static str {
        match self {
            Self::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            Self::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            Self::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            Self::EcdsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            Self::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            Self::EcdsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        }
    }

    /// The `DigestMethod` URI paired with this algorithm (RFC 6931 §2.1).
    pub fn digest_uri(self) -> &'static str {
        match self {
            Self::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#sha1",
            Self::RsaSha256 | Self::EcdsaSha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
            Self::RsaSha384 | Self::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#sha384",
            Self::RsaSha512 | Self::EcdsaSha512 => "http://www.w3.org/2001/04/xmlenc#sha512",
        }
    }

    /// samael's allow-list entry; `None` for RSA-SHA1, which samael cannot express (idhub then
    /// relies on its own pre-scan, see `verify`).
    pub(crate) fn to_samael(self) -> Option<samael::crypto::AllowedSignatureAlgorithm> {
        use samael::crypto::AllowedSignatureAlgorithm as A;
        Some(match self {
            Self::RsaSha1 => return None,
            Self::RsaSha256 => A::RsaSha256,
            Self::RsaSha384 => A::RsaSha384,
            Self::RsaSha512 => A::RsaSha512,
            Self::EcdsaSha256 => A::EcdsaSha256,
            Self::EcdsaSha384 => A::EcdsaSha384,
            Self::EcdsaSha512 => A::EcdsaSha512,
        })
    }

    pub fn from_uri(uri: &str) -> Option<Self> {
        Some(match uri {
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => Self::RsaSha1,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => Self::RsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => Self::RsaSha384,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => Self::RsaSha512,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => Self::EcdsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => Self::EcdsaSha384,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => Self::EcdsaSha512,
            _ => return None,
        })
    }
}

/// The algorithms a validation accepts. The default is RSA or ECDSA with SHA-256 or
/// stronger; SHA-1 must be allowed explicitly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlgorithmPolicy {
    allowed: Vec<SignatureAlgorithm>,
}

impl AlgorithmPolicy {
    pub fn new(allowed: Vec<SignatureAlgorithm>) -> Self {
        Self { allowed }
    }

    /// The allowed algorithms, in the order given.
    pub fn allowed(&self) -> &[SignatureAlgorithm] {
        &self.allowed
    }

    pub fn allows(&self, algorithm: SignatureAlgorithm) -> bool {
        self.allowed.contains(&algorithm)
    }

    /// Whether a `ds:Reference` whose `DigestMethod` is `uri` may be accepted: the digest must
    /// belong to one of the allowed signature algorithms (SHA-1 digests only when RSA-SHA1 is
    /// explicitly allowed). This is the rule samael applies too, so both checks agree.
    pub fn allows_digest_uri(&self, uri: &str) -> bool {
        self.allowed.iter().any(|a| a.digest_uri() == uri)
    }

    /// Whether a signature whose `SignatureMethod` is `uri` may be accepted.
    pub fn allows_uri(&self, uri: &str) -> bool {
        SignatureAlgorithm::from_uri(uri).is_some_and(|a| self.allowed.contains(&a))
    }
}

impl Default for AlgorithmPolicy {
    fn default() -> Self {
        use SignatureAlgorithm::*;
        Self::new(vec![
            RsaSha256,
            RsaSha384,
            RsaSha512,
            EcdsaSha256,
            EcdsaSha384,
            EcdsaSha512,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_refuses_sha1_and_unknown() {
        let p = AlgorithmPolicy::default();
        assert!(p.allows_uri("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"));
        assert!(!p.allows_uri("http://www.w3.org/2000/09/xmldsig#rsa-sha1"));
        assert!(!p.allows_uri("http://example.com/none"));
        assert!(
            AlgorithmPolicy::new(vec![SignatureAlgorithm::RsaSha1])
                .allows_uri("http://www.w3.org/2000/09/xmldsig#rsa-sha1")
        );
        assert!(p.allows_digest_uri("http://www.w3.org/2001/04/xmlenc#sha256"));
        assert!(!p.allows_digest_uri("http://www.w3.org/2000/09/xmldsig#sha1"));
        for a in p.allowed() {
            assert_eq!(SignatureAlgorithm::from_uri(a.uri()), Some(*a));
            let s = a.to_samael().unwrap();
            assert_eq!(s.signature_uri(), a.uri());
            assert_eq!(s.digest_uri(), a.digest_uri());
        }
        assert!(SignatureAlgorithm::RsaSha1.to_samael().is_none());
    }
}
