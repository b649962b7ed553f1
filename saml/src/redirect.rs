//! The HTTP-Redirect binding (SAML bindings §3.4): DEFLATE + base64 + URL-encoding, and the
//! query-string signature of §3.4.4.1 computed over the *encoded* parameters
//! `SAMLRequest=…&RelayState=…&SigAlg=…` in that order.

use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::sign::{Signer, Verifier};
use rand::RngCore;
use url::form_urlencoded::byte_serialize;

use crate::algorithms::{AlgorithmPolicy, SignatureAlgorithm};
use crate::cert::Certificate;
use crate::keys::{KeyError, SpKeyPair};
use crate::reason::{Reason, Rejection, reject};

pub(crate) const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// Inflated redirect messages larger than this are refused (DEFLATE bomb defence).
pub(crate) const MAX_INFLATED: usize = 256 * 1024;
/// Raw query strings larger than this are refused.
pub(crate) const MAX_QUERY: usize = 64 * 1024;

/// `_` followed by 32 random hex digits: an `xs:ID` (must not start with a digit, SAML core
/// §1.3.4) with 128 bits of randomness.
pub(crate) fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let mut s = String::with_capacity(33);
    s.push('_');
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn enc(s: &str) -> String {
    byte_serialize(s.as_bytes()).collect()
}

/// Builds the signed redirect URL: `base` (its own query parameters kept) +
/// `{param}=…[&RelayState=…]&SigAlg=rsa-sha256&Signature=…`.
pub(crate) fn signed_redirect_url(
    base: &str,
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: &SpKeyPair,
) -> Result<String, KeyError> {
    let parsed = url::Url::parse(base).map_err(|_| KeyError::InvalidParameter("endpoint URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") || base.contains('#') {
        return Err(KeyError::InvalidParameter("endpoint URL"));
    }
    if relay_state.is_some_and(|r| r.len() > 80) {
        // Bindings §3.4.3: RelayState MUST NOT exceed 80 bytes.
        return Err(KeyError::InvalidParameter(
            "RelayState longer than 80 bytes",
        ));
    }
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(xml.as_bytes()).map_err(|_| KeyError::Crypto)?;
    let deflated = e.finish().map_err(|_| KeyError::Crypto)?;
    let mut signed = format!("{param}={}", enc(&STANDARD.encode(deflated)));
    if let Some(rs) = relay_state {
        signed.push_str(&format!("&RelayState={}", enc(rs)));
    }
    signed.push_str(&format!("&SigAlg={}", enc(RSA_SHA256)));
    let mut signer = Signer::new(MessageDigest::sha256(), key.pkey())?;
    signer.update(signed.as_bytes())?;
    let sig = signer.sign_to_vec()?;
    let sep = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    Ok(format!(
        "{base}{sep}{signed}&Signature={}",
        enc(&STANDARD.encode(sig))
    ))
}

/// The SAML parameters of a received redirect query, raw (as received, for the signature) and
/// decoded.
pub(crate) struct RedirectQuery {
    pub message_xml: String,
    pub relay_state: Option<String>,
    /// `(raw signed string, SigAlg URI, signature bytes)` when signed.
    pub signature: Option<(String, String, Vec<u8>)>,
}

fn decode_component(raw: &str) -> Result<String, Rejection> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes).map_err(|_| Rejection::new(Reason::Malformed, "query is not UTF-8"))
}

/// Splits a raw query string, keeping raw values for signature verification (bindings
/// §3.4.4.1: the signature covers the octets as received). `param` is `SAMLRequest` or
/// `SAMLResponse`. Duplicated SAML parameters are refused.
pub(crate) fn parse_redirect_query(query: &str, param: &str) -> Result<RedirectQuery, Rejection> {
    if query.len() > MAX_QUERY {
        return reject(Reason::TooLarge, "query string too large");
    }
    let query = query.strip_prefix('?').unwrap_or(query);
    let (mut msg, mut relay, mut alg, mut sig) = (None, None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            k if k == param => &mut msg,
            "RelayState" => &mut relay,
            "SigAlg" => &mut alg,
            "Signature" => &mut sig,
            _ => continue,
        };
        if slot.is_some() {
            return reject(Reason::Malformed, format!("duplicate query parameter {k}"));
        }
        *slot = Some(v);
    }
    let raw_msg = msg.ok_or_else(|| Rejection::new(Reason::Malformed, format!("no {param}")))?;
    let b64 = decode_component(raw_msg)?;
    let compressed = crate::response::decode_base64(&b64, MAX_QUERY)?;
    let mut out = Vec::new();
    DeflateDecoder::new(compressed.as_slice())
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| Rejection::new(Reason::Malformed, "message is not DEFLATE-compressed"))?;
    if out.len() > MAX_INFLATED {
        return reject(Reason::TooLarge, "inflated message too large");
    }
    let message_xml = String::from_utf8(out)
        .map_err(|_| Rejection::new(Reason::Malformed, "message is not UTF-8"))?;
    let relay_state = relay.map(decode_component).transpose()?;
    let signature = match (alg, sig) {
        (Some(a), Some(s)) => {
            let mut signed = format!("{param}={raw_msg}");
            if let Some(r) = relay {
                signed.push_str(&format!("&RelayState={r}"));
            }
            signed.push_str(&format!("&SigAlg={a}"));
            let sig_bytes = crate::response::decode_base64(&decode_component(s)?, 4096)
                .map_err(|_| Rejection::new(Reason::SignatureInvalid, "Signature is not base64"))?;
            Some((signed, decode_component(a)?, sig_bytes))
        }
        (None, None) => None,
        _ => {
            return reject(
                Reason::SignatureMissing,
                "SigAlg and Signature must both be present",
            );
        }
    };
    Ok(RedirectQuery {
        message_xml,
        relay_state,
        signature,
    })
}

/// Verifies a §3.4.4.1 query signature against any of `certs`.
pub(crate) fn verify_query_signature(
    signed: &str,
    sig_alg: &str,
    signature: &[u8],
    certs: &[Certificate],
    algorithms: &AlgorithmPolicy,
) -> Result<(), Rejection> {
    if !algorithms.allows_uri(sig_alg) {
        return reject(Reason::AlgorithmNotAllowed, format!("SigAlg {sig_alg}"));
    }
    let (md, ecdsa) = match SignatureAlgorithm::from_uri(sig_alg) {
        Some(SignatureAlgorithm::RsaSha1) => (MessageDigest::sha1(), false),
        Some(SignatureAlgorithm::RsaSha256) => (MessageDigest::sha256(), false),
        Some(SignatureAlgorithm::RsaSha384) => (MessageDigest::sha384(), false),
        Some(SignatureAlgorithm::RsaSha512) => (MessageDigest::sha512(), false),
        Some(SignatureAlgorithm::EcdsaSha256) => (MessageDigest::sha256(), true),
        Some(SignatureAlgorithm::EcdsaSha384) => (MessageDigest::sha384(), true),
        Some(SignatureAlgorithm::EcdsaSha512) => (MessageDigest::sha512(), true),
        None => return reject(Reason::AlgorithmNotAllowed, format!("SigAlg {sig_alg}")),
    };
    // ECDSA signatures may arrive DER-encoded or as raw r||s (the XML-DSig form).
    let mut candidates = vec![signature.to_vec()];
    if ecdsa && signature.len().is_multiple_of(2) && !signature.is_empty() {
        let (r, s) = signature.split_at(signature.len() / 2);
        if let (Ok(r), Ok(s)) = (
            openssl::bn::BigNum::from_slice(r),
            openssl::bn::BigNum::from_slice(s),
        ) && let Ok(der) = EcdsaSig::from_private_components(r, s).and_then(|e| e.to_der())
        {
            candidates.push(der);
        }
    }
    for cert in certs {
        let Ok(x509) = cert.x509() else { continue };
        let Ok(public) = x509.public_key() else {
            continue;
        };
        for cand in &candidates {
            let ok = Verifier::new(md, &public)
                .and_then(|mut v| {
                    v.update(signed.as_bytes())?;
                    v.verify(cand)
                })
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
        }
    }
    reject(
        Reason::SignatureInvalid,
        "query signature does not verify with any configured certificate",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_ncnames_with_128_bits() {
        let a = new_id();
        assert_eq!(a.len(), 33);
        assert!(a.starts_with('_'));
        assert_ne!(a, new_id());
    }

    #[test]
    fn sign_parse_verify_round_trip_keeps_existing_query() {
        let key = SpKeyPair::generate("sp.test", 1).unwrap();
        let url = signed_redirect_url("not a url", "SAMLRequest", "<x/>", Some("r s&t"), &key);
        // An unparsable base URL is refused before signing.
        assert!(url.is_err());
        let url = signed_redirect_url(
            "https://idp.test/sso?tenant=a",
            "SAMLRequest",
            "<x/>",
            Some("r s&t"),
            &key,
        )
        .unwrap();
        assert!(url.starts_with("https://idp.test/sso?tenant=a&SAMLRequest="));
        let query = url.split_once('?').unwrap().1;
        let q = parse_redirect_query(query, "SAMLRequest").unwrap();
        assert_eq!(q.message_xml, "<x/>");
        assert_eq!(q.relay_state.as_deref(), Some("r s&t"));
        let (signed, alg, sig) = q.signature.unwrap();
        assert!(signed.starts_with("SAMLRequest="));
        let certs = [key.certificate().clone()];
        let policy = AlgorithmPolicy::default();
        verify_query_signature(&signed, &alg, &sig, &certs, &policy).unwrap();
        let tampered = signed.replace("RelayState=r", "RelayState=q");
        assert_eq!(
            verify_query_signature(&tampered, &alg, &sig, &certs, &policy)
                .unwrap_err()
                .reason,
            Reason::SignatureInvalid
        );
        let sha1 = AlgorithmPolicy::new(vec![SignatureAlgorithm::RsaSha1]);
        assert_eq!(
            verify_query_signature(&signed, &alg, &sig, &certs, &sha1)
                .unwrap_err()
                .reason,
            Reason::AlgorithmNotAllowed
        );
    }

    #[test]
    fn refuses_bad_queries() {
        let r = |q: &str| {
            parse_redirect_query(q, "SAMLRequest")
                .err()
                .map(|e| e.reason)
        };
        assert_eq!(r("RelayState=x"), Some(Reason::Malformed));
        assert_eq!(r("SAMLRequest=a&SAMLRequest=b"), Some(Reason::Malformed));
        assert_eq!(r("SAMLRequest=%%%"), Some(Reason::Malformed));
        assert_eq!(r("SAMLRequest=AAAA"), Some(Reason::Malformed));
        assert_eq!(r(&"a".repeat(MAX_QUERY + 1)), Some(Reason::TooLarge));
        // A DEFLATE bomb: 10 MB of zeros compresses to ~10 KB.
        let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
        e.write_all(&vec![b'<'; 10_000_000]).unwrap();
        let bomb = enc(&STANDARD.encode(e.finish().unwrap()));
        assert_eq!(r(&format!("SAMLRequest={bomb}")), Some(Reason::TooLarge));
    }
}
