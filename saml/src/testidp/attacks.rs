//! Forged responses, each returned as a base64 `SAMLResponse`, for the attack corpus
//! (signature wrapping after Somorovsky et al., "On Breaking SAML", USENIX Security 2012;
//! comment injection after Duo Labs, 2018; entity expansion). The doc comment of each builder
//! names the reason validation must give.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{LoginSpec, STATUS_SUCCESS, TestIdp};

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

const SUCCESS: &str = "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>";

/// No signature anywhere → `signature_missing`.
pub fn unsigned(idp: &TestIdp, spec: &LoginSpec) -> String {
    let mut s = spec.clone();
    s.sign_response = false;
    s.sign_assertion = false;
    s.encrypt_for = None;
    idp.response_b64(&s)
}

/// Correct shape, signed by a key the SP does not trust (with that key's certificate in
/// KeyInfo, which must be ignored) → `signature_invalid`.
pub fn signed_by_untrusted(spec: &LoginSpec) -> String {
    let entity = spec
        .issuer
        .clone()
        .unwrap_or_else(|| "https://idp.test".to_string());
    TestIdp::new(&entity).response_b64(spec)
}

/// XSW: the legitimately signed assertion is moved into `samlp:Extensions`, an unsigned
/// assertion for `evil_name_id` takes its place (response unsigned) → `signature_wrapping`.
pub fn wrapping_assertion_moved(idp: &TestIdp, legit: &LoginSpec, evil_name_id: &str) -> String {
    let mut good = legit.clone();
    good.sign_assertion = true;
    let signed = idp.assertion_xml(&good);
    let evil = evil_assertion(idp, legit, evil_name_id);
    let mut outer = legit.clone();
    outer.sign_response = false;
    let body = format!("<samlp:Extensions>{signed}</samlp:Extensions>{SUCCESS}{evil}");
    b64(&idp.wrap_response(&outer, &body))
}

/// XSW: an unsigned assertion for `evil_name_id` is added before the legitimately signed one
/// (response unsigned) → `multiple_assertions`.
pub fn wrapping_second_unsigned_assertion(
    idp: &TestIdp,
    legit: &LoginSpec,
    evil_name_id: &str,
) -> String {
    let mut good = legit.clone();
    good.sign_assertion = true;
    let signed = idp.assertion_xml(&good);
    let evil = evil_assertion(idp, legit, evil_name_id);
    let mut outer = legit.clone();
    outer.sign_response = false;
    b64(&idp.wrap_response(&outer, &format!("{SUCCESS}{evil}{signed}")))
}

/// XSW: the evil assertion carries the legitimate assertion's signature, whose Reference
/// still points at the legitimate assertion (hidden in `samlp:Extensions`) →
/// `signature_wrapping`.
pub fn wrapping_reference_to_other_element(
    idp: &TestIdp,
    legit: &LoginSpec,
    evil_name_id: &str,
) -> String {
    let mut good = legit.clone();
    good.sign_assertion = true;
    let signed = idp.assertion_xml(&good);
    let start = signed.find("<ds:Signature").expect("signature start");
    let end = signed.find("</ds:Signature>").expect("signature end") + "</ds:Signature>".len();
    let signature = &signed[start..end];
    let unsigned_legit = format!("{}{}", &signed[..start], &signed[end..]);
    let evil = evil_assertion(idp, legit, evil_name_id);
    let cut = evil.find("</saml:Issuer>").expect("issuer") + "</saml:Issuer>".len();
    let evil_signed = format!("{}{}{}", &evil[..cut], signature, &evil[cut..]);
    let mut outer = legit.clone();
    outer.sign_response = false;
    let body =
        format!("<samlp:Extensions>{unsigned_legit}</samlp:Extensions>{SUCCESS}{evil_signed}");
    b64(&idp.wrap_response(&outer, &body))
}

/// XSW on the Response signature: the legitimately signed Response is tucked into the
/// `samlp:Extensions` of an unsigned Response carrying an evil assertion →
/// `signature_wrapping`.
pub fn wrapping_response_in_extensions(
    idp: &TestIdp,
    legit: &LoginSpec,
    evil_name_id: &str,
) -> String {
    let mut good = legit.clone();
    good.sign_response = true;
    let signed_response = idp.response_xml(&good);
    let evil = evil_assertion(idp, legit, evil_name_id);
    let mut outer = legit.clone();
    outer.sign_response = false;
    outer.response_id = None;
    let body = format!("<samlp:Extensions>{signed_response}</samlp:Extensions>{SUCCESS}{evil}");
    b64(&idp.wrap_response(&outer, &body))
}

fn evil_assertion(idp: &TestIdp, legit: &LoginSpec, evil_name_id: &str) -> String {
    let mut evil = legit.clone();
    evil.name_id = evil_name_id.to_string();
    evil.sign_assertion = false;
    evil.assertion_id = Some(format!("_evil{}", uuid::Uuid::new_v4().simple()));
    idp.assertion_xml(&evil)
}

/// Comment injection: the IdP signs `prefix + suffix` (an account the attacker may register),
/// then a comment is inserted between them; exclusive c14n ignores comments so the signature
/// still verifies, and a naive reader would see `prefix` → `xml_comment`.
pub fn comment_in_name_id(idp: &TestIdp, spec: &LoginSpec, prefix: &str, suffix: &str) -> String {
    let mut s = spec.clone();
    s.name_id = format!("{prefix}{suffix}");
    let xml = idp.response_xml(&s);
    let needle = format!(">{prefix}{suffix}</saml:NameID>");
    let forged = xml.replacen(
        &needle,
        &format!(">{prefix}<!---->{suffix}</saml:NameID>"),
        1,
    );
    assert_ne!(xml, forged, "NameID must be present to inject a comment");
    b64(&forged)
}

/// "Billion laughs" entity expansion in a DTD → `dtd_forbidden`.
pub fn dtd_entity_expansion() -> String {
    let mut dtd = String::from("<!DOCTYPE samlp:Response [<!ENTITY lol \"lol\">");
    let mut prev = "lol".to_string();
    for i in 1..10 {
        let name = format!("lol{i}");
        dtd.push_str(&format!(
            "<!ENTITY {name} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
        prev = name;
    }
    dtd.push(']');
    dtd.push('>');
    b64(&format!(
        "<?xml version=\"1.0\"?>{dtd}<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_x\" Version=\"2.0\" IssueInstant=\"2024-01-01T00:00:00Z\"><samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Status><samlp:Extensions>&{prev};</samlp:Extensions></samlp:Response>"
    ))
}

/// A syntactically plausible response padded to `n_bytes` of XML → `too_large` for any
/// policy whose `max_bytes` is smaller.
pub fn oversized(n_bytes: usize) -> String {
    let head = "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_x\" Version=\"2.0\" IssueInstant=\"2024-01-01T00:00:00Z\"><samlp:Extensions>";
    let tail = "</samlp:Extensions></samlp:Response>";
    let pad = n_bytes.saturating_sub(head.len() + tail.len());
    b64(&format!("{head}{}{tail}", "A".repeat(pad)))
}
