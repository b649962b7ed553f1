//! Signature verification through samael/xmlsec, reduced to the signed content.

use samael::crypto::{CertificateDer, Crypto, CryptoProvider, ReduceMode};

/// Verifies the FIRST `ds:Signature` of `xml` in document order (xmlsec's own search) against
/// any of `certs`. Only sound when the pre-scan has pinned what that signature covers (see
/// `response::validate_response`); algorithms are checked by the pre-scan.
pub(crate) fn verify_first_signature(xml: &str, certs: &[Certificate]) -> Result<(), Rejection> {
    if certs.is_empty() {
        return reject(Reason::SignatureInvalid, "no IdP certificate configured");
    }
    let mut last = String::new();
    for c in certs {
        match Crypto::verify_signed_xml(
            xml.as_bytes(),
            &CertificateDer::from(c.der.clone()),
            Some("ID"),
        ) {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    reject(Reason::SignatureInvalid, last)
}

use crate::algorithms::AlgorithmPolicy;
use crate::cert::Certificate;
use crate::reason::{Reason, Rejection, reject};

/// Verifies EVERY `ds:Signature` in `xml` against `certs` and returns exactly the bytes the
/// signature digested (`ReduceMode::PreDigest`: xmlsec's pre-digest buffer, i.e. the signed
/// element after the enveloped-signature transform and exclusive canonicalisation): rooted at
/// the signed `Response` when the response is signed, else at the signed `Assertion`. The
/// root's own enveloped `ds:Signature` is not part of what it signs and is absent.
///
/// Why the pre-digest rather than samael's pruned copy of the document: it is by definition
/// what was signed (no re-serialisation, no parser differential between what xmlsec checked
/// and what is read), canonical (no comments, no DTD, normalised attributes), and cheap — the
/// pruning modes rebuild node sets per signature and cost four to five times the verification
/// itself on a typical 8 KB response (BENCHMARKS.md).
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
        ReduceMode::PreDigest,
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
