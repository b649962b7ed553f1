//! Validating a `samlp:Response` received at the ACS over HTTP-POST (SAML profiles §4.1.4.3,
//! bindings §3.5), with the configuration, clock and algorithm allow-list passed in.
//!
//! Order of checks (each failure has its own [`Reason`]):
//! 1. size, base64, UTF-8; DTD and comments refused before any libxml2 parse (comments are
//!    refused outright: exclusive c14n drops them, so a comment inside a signed `NameID`
//!    would not break the signature while splitting the value for naive readers);
//! 2. pre-scan of the unverified document (`prescan`): root, version, status, algorithms,
//!    signature placement and references, duplicate IDs, assertion count;
//! 3. samael/xmlsec verifies every signature and returns only signed content; from here on
//!    only that content is read;
//! 4. decryption (`decrypt`), with the decrypted assertion verified separately when the
//!    response around it is not signed;
//! 5. signing requirement; 6. destination, issuer, times, audience, subject, bearer
//!    confirmation, `InResponseTo` (`conditions`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::algorithms::AlgorithmPolicy;
use crate::cert::Certificate;
use crate::clock::{Clock, SkewWindow};
use crate::conditions::{self, AssertionFacts};
use crate::keys::SpKeyPair;
use crate::prescan;
use crate::reason::{Reason, Rejection, reject};
use crate::verify::{reduce_to_signed, verify_first_signature};
use crate::xml::{self, Element, NS_DS, NS_SAML, NS_SAMLP, NS_XENC, NS_XS, NS_XSI, STRICT};

pub(crate) const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// Which signatures a connection demands (SAML profiles §4.1.3.5 allows either the response or
/// the assertion to carry it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningRequirement {
    Response,
    Assertion,
    Either,
}

/// Everything validation is allowed to trust, passed explicitly.
#[derive(Clone, Copy, Debug)]
pub struct AcsPolicy<'a> {
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub idp_entity_id: &'a str,
    pub idp_certs: &'a [Certificate],
    pub signing: SigningRequirement,
    pub skew: SkewWindow,
    pub algorithms: &'a AlgorithmPolicy,
    pub require_encrypted: bool,
    pub decryption_keys: &'a [&'a SpKeyPair],
    /// Cap on the decoded XML; the base64 form may be at most twice this (whitespace slack).
    pub max_bytes: usize,
}

/// A login that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedLogin {
    pub response_id: String,
    pub assertion_id: String,
    pub in_response_to: Option<String>,
    pub issuer: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    /// Keyed by `Name`; also by `FriendlyName` when present and different.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Keep the assertion ID in the replay cache until this Unix time: the latest
    /// `NotOnOrAfter` among `Conditions`/`SubjectConfirmationData` plus skew (or issue instant
    /// + 10 min if none).
    pub replay_expires_at: i64,
    pub response_signed: bool,
    pub assertion_signed: bool,
    pub encrypted: bool,
}

/// Best-effort, UNVERIFIED peek used only to route a response to a connection and to log:
/// Issuer, InResponseTo, ID. Never trust for access decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peek {
    pub issuer: Option<String>,
    pub in_response_to: Option<String>,
    pub response_id: Option<String>,
}

/// Decodes base64 (whitespace ignored) into at most `max` bytes.
pub(crate) fn decode_base64(b64: &str, max: usize) -> Result<Vec<u8>, Rejection> {
    if b64.len() > max.saturating_mul(2).saturating_add(1024) {
        return reject(
            Reason::TooLarge,
            format!("encoded message over {} bytes", max.saturating_mul(2)),
        );
    }
    // Most IdPs send one unbroken line; only wrapped base64 needs a compacted copy.
    let compacted;
    let input: &[u8] = if b64.bytes().any(|b| b.is_ascii_whitespace()) {
        compacted = b64
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>();
        &compacted
    } else {
        b64.as_bytes()
    };
    let bytes = STANDARD
        .decode(input)
        .map_err(|_| Rejection::new(Reason::Malformed, "message is not valid base64"))?;
    if bytes.len() > max {
        return reject(Reason::TooLarge, format!("message over {max} bytes"));
    }
    Ok(bytes)
}

/// base64 → UTF-8 XML text, refusing DTDs before anything parses it.
pub(crate) fn decode_document(b64: &str, max: usize) -> Result<String, Rejection> {
    let bytes = decode_base64(b64, max)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Rejection::new(Reason::Malformed, "message is not UTF-8"))?;
    if xml::contains_doctype(&text) {
        return reject(
            Reason::DtdForbidden,
            "document type declarations are refused",
        );
    }
    Ok(text)
}

/// Reads Issuer, InResponseTo and ID without verifying anything (routing and logging only).
pub fn peek_response(saml_response_b64: &str, max_bytes: usize) -> Result<Peek, Rejection> {
    let text = decode_document(saml_response_b64, max_bytes)?;
    let root = xml::parse(&text, xml::LENIENT)?;
    if !root.is(NS_SAMLP, "Response") {
        return reject(
            Reason::Malformed,
            format!("root element is <{}>, not samlp:Response", root.local),
        );
    }
    Ok(Peek {
        issuer: root.child(NS_SAML, "Issuer").map(|i| i.trimmed_text()),
        in_response_to: root.attr("InResponseTo").map(str::to_string),
        response_id: root.attr("ID").map(str::to_string),
    })
}

/// What the pre-scan learned about the original document.
struct Scan {
    response_signed: bool,
    assertion_signed: bool,
    encrypted: bool,
    assertion_id: Option<String>,
    /// How many `ds:Signature` elements the document holds.
    signatures: usize,
    /// The Response's own signature precedes its assertion (schema order, SAML core §3.2.2):
    /// it is then the first signature in document order.
    response_signature_first: bool,
}

fn scan_response(root: &Element, algorithms: &AlgorithmPolicy) -> Result<Scan, Rejection> {
    if !root.is(NS_SAMLP, "Response") {
        return reject(
            Reason::Malformed,
            format!("root element is <{}>, not samlp:Response", root.local),
        );
    }
    if root.attr("Version") != Some("2.0") {
        return reject(
            Reason::VersionUnsupported,
            format!("Version {:?}", root.attr("Version").unwrap_or("")),
        );
    }
    let status = root
        .child(NS_SAMLP, "Status")
        .ok_or_else(|| Rejection::new(Reason::Malformed, "Response without samlp:Status"))?;
    let code = status.child(NS_SAMLP, "StatusCode");
    let value = code.and_then(|c| c.attr("Value")).unwrap_or("");
    let assertions = root.children_named(NS_SAML, "Assertion").count()
        + root.children_named(NS_SAML, "EncryptedAssertion").count();
    if value != STATUS_SUCCESS {
        let sub = code
            .and_then(|c| c.child(NS_SAMLP, "StatusCode"))
            .and_then(|c| c.attr("Value"));
        let msg = status
            .child(NS_SAMLP, "StatusMessage")
            .map(|m| m.trimmed_text());
        let mut detail = value.to_string();
        if let Some(s) = sub {
            detail.push_str(&format!(" / {s}"));
        }
        if let Some(m) = msg {
            detail.push_str(&format!(": {m}"));
        }
        return reject(Reason::StatusNotSuccess, detail);
    }

    let sigs = prescan::signatures(root);
    prescan::check_algorithms(&sigs, algorithms)?;
    prescan::check_unique_ids(root)?;
    let plain: Vec<&Element> = root.children_named(NS_SAML, "Assertion").collect();
    let mut allowed = vec![root];
    allowed.extend(plain.iter().copied());
    let signed = prescan::check_signature_sites(&sigs, &allowed)?;

    let mut total = 0;
    root.walk(&mut |e, _| {
        if e.is(NS_SAML, "Assertion") || e.is(NS_SAML, "EncryptedAssertion") {
            total += 1;
        }
    });
    if total != assertions {
        return reject(
            Reason::SignatureWrapping,
            "an assertion is nested somewhere other than directly in the Response",
        );
    }
    if assertions > 1 {
        return reject(
            Reason::MultipleAssertions,
            format!("{assertions} assertions"),
        );
    }
    if assertions == 0 {
        return reject(Reason::NoSubject, "Response carries no assertion");
    }
    let position = |f: &dyn Fn(&Element) -> bool| root.elements().position(f);
    let response_signature_first = match (
        position(&|e| e.is(NS_DS, "Signature")),
        position(&|e| e.is(NS_SAML, "Assertion") || e.is(NS_SAML, "EncryptedAssertion")),
    ) {
        (Some(s), Some(a)) => s < a,
        _ => false,
    };
    Ok(Scan {
        response_signed: signed.iter().any(|p| std::ptr::eq(*p, root)),
        assertion_signed: signed.iter().any(|p| p.is(NS_SAML, "Assertion")),
        encrypted: plain.is_empty(),
        assertion_id: plain.first().and_then(|a| a.attr("ID")).map(str::to_string),
        signatures: sigs.len(),
        response_signature_first,
    })
}

/// Validates the `SAMLResponse` form field of the HTTP-POST binding (base64, whitespace
/// allowed) and returns the login it proves.
pub fn validate_response(
    saml_response_b64: &str,
    policy: &AcsPolicy,
    clock: &dyn Clock,
) -> Result<ValidatedLogin, Rejection> {
    let now = clock.now_unix();
    let text = decode_document(saml_response_b64, policy.max_bytes)?;
    let original = xml::parse(&text, STRICT)?;
    let scan = scan_response(&original, policy.algorithms)?;
    if !scan.response_signed && !scan.assertion_signed && !scan.encrypted {
        return reject(
            Reason::SignatureMissing,
            "neither the Response nor the Assertion is signed",
        );
    }

    // Signed content only, from here on. When the signature that matters is the document's
    // first (the only one; or the Response's, which covers the assertion and its signature,
    // unless the assertion's own signature is required), xmlsec verifies exactly that one and
    // the pre-scan has pinned what it covers: the Response (the whole document) or the one
    // Assertion, each the signature's parent, its reference target and the only element with
    // that ID. The pinned element is then read from the parsed original. Otherwise every
    // signature is verified and only the pre-digest (the signed bytes) is read.
    let first_decides = scan.signatures == 1
        || (scan.response_signed
            && scan.response_signature_first
            && policy.signing != SigningRequirement::Assertion);
    let pinned = (scan.response_signed || scan.assertion_signed) && first_decides;
    let reduced = if pinned {
        verify_first_signature(&text, policy.idp_certs)?;
        None
    } else if scan.response_signed || scan.assertion_signed {
        let r = reduce_to_signed(&text, policy.idp_certs, policy.algorithms)?;
        Some(xml::parse(&r, STRICT)?)
    } else {
        None
    };
    let response: &Element = match (&reduced, scan.response_signed) {
        (Some(r), true) => {
            if !r.is(NS_SAMLP, "Response") || r.attr("ID") != original.attr("ID") {
                return reject(
                    Reason::SignatureWrapping,
                    "signed content is not this Response",
                );
            }
            r
        }
        _ => &original,
    };

    let mut assertion_signed = scan.assertion_signed;
    let decrypted_holder;
    let assertion: &Element = if scan.encrypted {
        let enc = response
            .child(NS_SAML, "EncryptedAssertion")
            .ok_or_else(|| {
                Rejection::new(
                    Reason::SignatureWrapping,
                    "EncryptedAssertion not covered by the signature",
                )
            })?;
        let plaintext = crate::decrypt::decrypt_assertion(enc, policy.decryption_keys)?;
        let (el, signed) =
            verify_decrypted(&plaintext, &original, enc, policy, scan.response_signed)?;
        assertion_signed = signed;
        decrypted_holder = el;
        &decrypted_holder
    } else if scan.response_signed || pinned {
        response.child(NS_SAML, "Assertion").ok_or_else(|| {
            Rejection::new(
                Reason::SignatureWrapping,
                "Assertion not covered by the signature",
            )
        })?
    } else {
        match &reduced {
            Some(r)
                if r.is(NS_SAML, "Assertion")
                    && r.attr("ID").map(str::to_string) == scan.assertion_id =>
            {
                r
            }
            _ => {
                return reject(
                    Reason::SignatureWrapping,
                    "signed content is not this Assertion",
                );
            }
        }
    };

    if policy.require_encrypted && !scan.encrypted {
        return reject(
            Reason::EncryptionRequired,
            "assertion was sent in the clear",
        );
    }
    let met = match policy.signing {
        SigningRequirement::Response => scan.response_signed,
        SigningRequirement::Assertion => assertion_signed,
        SigningRequirement::Either => scan.response_signed || assertion_signed,
    };
    if !met {
        return reject(
            Reason::SigningRequirementUnmet,
            format!(
                "required {:?}; response signed: {}, assertion signed: {assertion_signed}",
                policy.signing, scan.response_signed
            ),
        );
    }

    // Bindings §3.5.5.2: a signed message MUST carry Destination, and it must be us.
    match response.attr("Destination") {
        Some(d) if d == policy.acs_url => {}
        Some(d) => return reject(Reason::DestinationMismatch, format!("Destination {d}")),
        None if scan.response_signed => {
            return reject(
                Reason::DestinationMismatch,
                "signed Response without Destination",
            );
        }
        None => {}
    }
    let response_id = response
        .attr("ID")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejection::new(Reason::Malformed, "Response without ID"))?
        .to_string();
    if let Some(issuer) = response.child(NS_SAML, "Issuer") {
        conditions::check_issuer(issuer, policy.idp_entity_id, "Response")?;
    }
    let facts: AssertionFacts = conditions::check_assertion(assertion, policy, now)?;

    let response_irt = response.attr("InResponseTo").map(str::to_string);
    let in_response_to = match (&response_irt, &facts.in_response_to) {
        (Some(a), Some(b)) if a != b => {
            return reject(
                Reason::InResponseToMismatch,
                format!("Response InResponseTo {a} differs from SubjectConfirmationData {b}"),
            );
        }
        (_, Some(b)) => Some(b.clone()),
        (a, None) => a.clone(),
    };

    Ok(ValidatedLogin {
        response_id,
        assertion_id: facts.assertion_id,
        in_response_to,
        issuer: policy.idp_entity_id.to_string(),
        name_id: facts.name_id,
        name_id_format: facts.name_id_format,
        session_index: facts.session_index,
        attributes: facts.attributes,
        replay_expires_at: facts.replay_expires_at,
        response_signed: scan.response_signed,
        assertion_signed,
        encrypted: scan.encrypted,
    })
}

/// Parses (and, when it carries a signature, verifies) a decrypted assertion. Returns the
/// assertion to read and whether it was itself signed.
fn verify_decrypted(
    plaintext: &str,
    original: &Element,
    encrypted: &Element,
    policy: &AcsPolicy,
    response_signed: bool,
) -> Result<(Element, bool), Rejection> {
    let as_decrypted = |r: Rejection| match r.reason {
        Reason::DtdForbidden | Reason::XmlComment => r,
        _ => Rejection::new(
            Reason::DecryptionFailed,
            format!("decrypted assertion: {}", r.detail),
        ),
    };
    let plaintext = xml::strip_xml_decl(plaintext);
    // The plaintext may use prefixes declared on the enclosing Response. Declaring them on a
    // wrapper is safe: exclusive c14n re-renders the namespaces an element actually uses, so a
    // wrong binding could only break the signature, never forge one.
    let text = if xml::parse(plaintext, STRICT).is_ok() {
        plaintext.to_string()
    } else {
        wrap_with_namespaces(plaintext, original, encrypted)
    };
    let parsed = xml::parse(&text, STRICT).map_err(as_decrypted)?;
    let assertion = if parsed.is(NS_SAML, "Assertion") {
        &parsed
    } else {
        let mut kids = parsed.elements();
        match (kids.next(), kids.next()) {
            (Some(a), None) if &*parsed.local == WRAPPER && a.is(NS_SAML, "Assertion") => a,
            _ => {
                return reject(
                    Reason::DecryptionFailed,
                    "decrypted content is not one saml:Assertion",
                );
            }
        }
    };
    let sigs = prescan::signatures(&parsed);
    prescan::check_algorithms(&sigs, policy.algorithms)?;
    prescan::check_unique_ids(&parsed)?;
    let signed = prescan::check_signature_sites(&sigs, &[assertion])?;
    let mut nested = 0;
    assertion.walk(&mut |e, _| {
        if e.is(NS_SAML, "Assertion") || e.is(NS_SAML, "EncryptedAssertion") {
            nested += 1;
        }
    });
    if nested != 1 {
        return reject(
            Reason::MultipleAssertions,
            "decrypted assertion contains assertions",
        );
    }
    if signed.is_empty() {
        if !response_signed {
            return reject(
                Reason::SignatureMissing,
                "encrypted assertion is unsigned and the Response around it is unsigned",
            );
        }
        return Ok((assertion.clone(), false));
    }
    let reduced = reduce_to_signed(&text, policy.idp_certs, policy.algorithms)?;
    let r = xml::parse(&reduced, STRICT)?;
    if !r.is(NS_SAML, "Assertion") || r.attr("ID") != assertion.attr("ID") {
        return reject(
            Reason::SignatureWrapping,
            "signed content is not the decrypted Assertion",
        );
    }
    Ok((r, true))
}

const WRAPPER: &str = "idhub-decrypted";

fn wrap_with_namespaces(plaintext: &str, original: &Element, encrypted: &Element) -> String {
    let mut decls: Vec<(String, String)> = Vec::new();
    for (p, u) in original.ns_decls.iter().chain(encrypted.ns_decls.iter()) {
        decls.retain(|(q, _)| q != p);
        decls.push((p.clone(), u.clone()));
    }
    for (p, u) in [
        ("saml", NS_SAML),
        ("saml2", NS_SAML),
        ("samlp", NS_SAMLP),
        ("ds", NS_DS),
        ("xenc", NS_XENC),
        ("xs", NS_XS),
        ("xsi", NS_XSI),
    ] {
        if !decls.iter().any(|(q, _)| q == p) {
            decls.push((p.to_string(), u.to_string()));
        }
    }
    let attrs: String = decls
        .iter()
        .map(|(p, u)| {
            if p.is_empty() {
                format!(" xmlns=\"{}\"", xml::esc(u))
            } else {
                format!(" xmlns:{p}=\"{}\"", xml::esc(u))
            }
        })
        .collect();
    format!("<{WRAPPER}{attrs}>{plaintext}</{WRAPPER}>")
}

#[cfg(test)]
#[path = "response_reason_tests.rs"]
mod reason_tests;
#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
