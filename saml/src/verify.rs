//! Signature verification through samael/xmlsec, reduced to the signed content.

use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};

use crate::algorithms::AlgorithmPolicy;
use crate::cert::Certificate;
use crate::reason::{Reason, Rejection, reject};

/// Verifies EVERY `ds:Signature` in `xml` against `certs` and returns a new document holding
/// only what the signatures cover (`ReduceMode::ValidateAndMarkNoAncestors`): rooted at the
/// signed `Response` when the response is signed, else at the signed `Assertion`. Enveloped
/// signatures themselves are not part of what they sign, so the root's own `ds:Signature` is
/// absent from the output.
///
/// The allow-list is passed to samael too (defence in depth); when the policy explicitly
/// allows RSA-SHA1, which samael's list cannot express, samael gets no list and the pre-scan
/// (`prescan::check_algorithms`) is the only gate.
pub(crate) fn reduce_to_signed(
    xml: &str,
    certs: &[Certificate],
    algorithms: &AlgorithmPolicy,
) -> Result<String, Rejection> {
    if certs.is_empty() {
        return reject(Reason::SignatureInvalid, "no IdP certificate configured");
    }
    let ders: Vec<CertificateDer> = certs
        .iter()
        .map(|c| CertificateDer::from(c.der.clone()))
        .collect();
    let allowed: Option<Vec<_>> = algorithms.allowed().iter().map(|a| a.to_samael()).collect();
    Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &ders,
        ReduceMode::ValidateAndMarkNoAncestors,
        allowed.as_deref(),
    )
    .map_err(|e| {
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        Rejection::new(Reason::SignatureInvalid, detail)
    })
}
