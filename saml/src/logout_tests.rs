#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use super::*;
use crate::clock::FixedClock;
use crate::redirect::parse_redirect_query;
use crate::testidp::TestIdp;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const SLO: &str = "https://sp.test/saml/t1/slo";
const IDP: &str = "https://idp.test";
const NOW: i64 = 1_700_000_000;

fn idp() -> &'static TestIdp {
    static I: OnceLock<TestIdp> = OnceLock::new();
    I.get_or_init(|| TestIdp::new(IDP))
}

fn redirect(query: &str, now: i64) -> Result<LogoutRequestIn, Rejection> {
    logout_request_from_redirect(
        query,
        SLO,
        IDP,
        &[idp().certificate().clone()],
        &AlgorithmPolicy::default(),
        SkewWindow::default(),
        &FixedClock(now),
    )
}

fn post(b64: &str, now: i64) -> Result<LogoutRequestIn, Rejection> {
    logout_request_from_post(
        b64,
        SLO,
        IDP,
        &[idp().certificate().clone()],
        &AlgorithmPolicy::default(),
        SkewWindow::default(),
        &FixedClock(now),
    )
}

#[test]
fn redirect_logout_request_round_trip() {
    let q = idp().logout_request_redirect_query(SLO, "alice@example.com", Some("_s1"), NOW);
    let r = redirect(&q, NOW).unwrap();
    assert_eq!(r.name_id, "alice@example.com");
    assert_eq!(r.session_indexes, vec!["_s1"]);
    assert_eq!(r.issuer, IDP);
    assert_eq!(r.relay_state.as_deref(), Some("rs-1"));
    assert!(r.id.starts_with('_'));
    assert_eq!(redirect(&format!("?{q}"), NOW).unwrap(), r);
}

#[test]
fn redirect_refusals() {
    let q = idp().logout_request_redirect_query(SLO, "alice@example.com", None, NOW);
    let reason = |q: &str, now| redirect(q, now).unwrap_err().reason;
    let unsigned: String = q
        .split('&')
        .filter(|p| !p.starts_with("Signature=") && !p.starts_with("SigAlg="))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(reason(&unsigned, NOW), Reason::SignatureMissing);
    let tampered = q.replace("RelayState=rs-1", "RelayState=rs-2");
    assert_eq!(reason(&tampered, NOW), Reason::SignatureInvalid);
    let other =
        TestIdp::new(IDP).logout_request_redirect_query(SLO, "alice@example.com", None, NOW);
    assert_eq!(reason(&other, NOW), Reason::SignatureInvalid);
    assert_eq!(reason(&q, NOW + 400), Reason::Expired);
    assert_eq!(reason(&q, NOW - 400), Reason::NotYetValid);
    let sha1 = q.replace(
        "SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256",
        "SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1",
    );
    assert_ne!(sha1, q);
    assert_eq!(reason(&sha1, NOW), Reason::AlgorithmNotAllowed);
    let wrong_dest =
        idp().logout_request_redirect_query("https://sp.test/saml/t2/slo", "a", None, NOW);
    assert_eq!(reason(&wrong_dest, NOW), Reason::DestinationMismatch);
    let wrong_idp = logout_request_from_redirect(
        &q,
        SLO,
        "https://other.test",
        &[idp().certificate().clone()],
        &AlgorithmPolicy::default(),
        SkewWindow::default(),
        &FixedClock(NOW),
    );
    assert_eq!(wrong_idp.unwrap_err().reason, Reason::IssuerMismatch);
    assert_eq!(reason("SAMLRequest=%%", NOW), Reason::Malformed);
}

#[test]
fn post_logout_request_round_trip_and_refusals() {
    let b = idp().logout_request_post_b64(SLO, "bob@example.com", Some("_s2"), NOW);
    let r = post(&b, NOW).unwrap();
    assert_eq!(r.name_id, "bob@example.com");
    assert_eq!(r.session_indexes, vec!["_s2"]);
    assert_eq!(r.relay_state, None);
    let xml = String::from_utf8(STANDARD.decode(&b).unwrap()).unwrap();
    let tampered = STANDARD.encode(xml.replace("bob@example.com", "admin@example.com"));
    assert_eq!(
        post(&tampered, NOW).unwrap_err().reason,
        Reason::SignatureInvalid
    );
    let (_, unsigned) = idp().logout_request_xml(SLO, "bob@example.com", None, NOW);
    let unsigned = STANDARD.encode(unsigned.replace(crate::testidp::SIG_PLACEHOLDER, ""));
    assert_eq!(
        post(&unsigned, NOW).unwrap_err().reason,
        Reason::SignatureMissing
    );
    assert_eq!(post(&b, NOW + 400).unwrap_err().reason, Reason::Expired);
    let no_name = STANDARD.encode(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"
            .replace("LogoutRequest", "LogoutResponse"),
    );
    assert_eq!(post(&no_name, NOW).unwrap_err().reason, Reason::Malformed);
    let commented = STANDARD.encode(xml.replacen("bob@", "bob<!---->@", 1));
    assert_eq!(
        post(&commented, NOW).unwrap_err().reason,
        Reason::XmlComment
    );
}

#[test]
fn sp_initiated_logout_and_logout_response_are_signed() {
    let key = SpKeyPair::generate("sp.test", 1).unwrap();
    let certs = [key.certificate().clone()];
    let r = logout_request_redirect(
        "https://sp.test/saml/t1",
        "https://idp.test/slo?x=1",
        "alice@example.com",
        Some(crate::testidp::NAMEID_EMAIL),
        Some("_s1"),
        Some("back"),
        NOW,
        &key,
    )
    .unwrap();
    assert!(r.url.starts_with("https://idp.test/slo?x=1&SAMLRequest="));
    // Our own request, read back as if we were the IdP.
    let q = r.url.split_once('?').unwrap().1;
    let parsed = logout_request_from_redirect(
        q,
        "https://idp.test/slo?x=1",
        "https://sp.test/saml/t1",
        &certs,
        &AlgorithmPolicy::default(),
        SkewWindow::default(),
        &FixedClock(NOW),
    )
    .unwrap();
    assert_eq!(parsed.id, r.id);
    assert_eq!(parsed.session_indexes, vec!["_s1"]);
    assert_eq!(parsed.relay_state.as_deref(), Some("back"));

    let url = logout_response_redirect(
        "https://sp.test/saml/t1",
        "https://idp.test/slo",
        "_req<&>",
        None,
        NOW,
        &key,
    )
    .unwrap();
    let q = parse_redirect_query(url.split_once('?').unwrap().1, "SAMLResponse").unwrap();
    let (signed, alg, sig) = q.signature.unwrap();
    crate::redirect::verify_query_signature(
        &signed,
        &alg,
        &sig,
        &certs,
        &AlgorithmPolicy::default(),
    )
    .unwrap();
    let root = crate::xml::parse(&q.message_xml, crate::xml::STRICT).unwrap();
    assert_eq!(root.attr("InResponseTo"), Some("_req<&>"));
    assert!(q.message_xml.contains(STATUS_SUCCESS));
}
