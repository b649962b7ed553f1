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
    }
}
