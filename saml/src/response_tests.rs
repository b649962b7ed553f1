#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use super::*;
use crate::algorithms::SignatureAlgorithm;
use crate::clock::FixedClock;
use crate::testidp::{
    ContentEncryption, KeyTransport, LoginSpec, SIG_PLACEHOLDER, TestIdp, attacks,
    encrypt_assertion, sign_document,
};

pub(super) const SP: &str = "https://sp.test/saml/t1";
pub(super) const ACS: &str = "https://sp.test/saml/t1/acs";
pub(super) const IDP: &str = "https://idp.test";
pub(super) const NOW: i64 = 1_700_000_000;

pub(super) struct Fx {
    pub(super) idp: TestIdp,
    pub(super) sp_key: &'static SpKeyPair,
    pub(super) other_key: SpKeyPair,
    pub(super) certs: Vec<Certificate>,
    pub(super) algs: AlgorithmPolicy,
    pub(super) keys: Vec<&'static SpKeyPair>,
}

pub(super) fn fx() -> &'static Fx {
    static FX: OnceLock<Fx> = OnceLock::new();
    FX.get_or_init(|| {
        let idp = TestIdp::new(IDP);
        let sp_key: &'static SpKeyPair = Box::leak(Box::new(
            SpKeyPair::generate_at("sp.test", 1_577_836_800, 36_500).unwrap(),
        ));
        Fx {
            certs: vec![idp.certificate().clone()],
            idp,
            sp_key,
            other_key: SpKeyPair::generate_at("other.test", 1_577_836_800, 36_500).unwrap(),
            algs: AlgorithmPolicy::default(),
            keys: vec![sp_key],
        }
    })
}

pub(super) fn spec() -> LoginSpec {
    LoginSpec::new("alice@example.com", SP, ACS, NOW)
}

/// Validates with the default policy, optionally adjusted.
pub(super) fn check_with<'a>(
    b64: &str,
    now: i64,
    adjust: impl FnOnce(&mut AcsPolicy<'a>),
) -> Result<ValidatedLogin, Rejection> {
    let f = fx();
    let mut p = AcsPolicy {
        sp_entity_id: SP,
        acs_url: ACS,
        idp_entity_id: IDP,
        idp_certs: &f.certs,
        signing: SigningRequirement::Either,
        skew: SkewWindow::default(),
        algorithms: &f.algs,
        require_encrypted: false,
        decryption_keys: &f.keys,
        max_bytes: 256 * 1024,
    };
    adjust(&mut p);
    validate_response(b64, &p, &FixedClock(now))
}

pub(super) fn check(b64: &str) -> Result<ValidatedLogin, Rejection> {
    check_with(b64, NOW, |_| {})
}

pub(super) fn reason_of(r: Result<ValidatedLogin, Rejection>) -> Reason {
    match r {
        Ok(v) => panic!("expected a rejection, got {v:?}"),
        Err(e) => e.reason,
    }
}

pub(super) fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

// ---------------------------------------------------------------- happy paths

#[test]
fn accepts_each_signing_shape() {
    for (r, a) in [(true, false), (false, true), (true, true)] {
        let mut s = spec().attribute("groups", &["admins", "staff"]);
        s.sign_response = r;
        s.sign_assertion = a;
        s.in_response_to = Some("_req1".into());
        let login = check(&fx().idp.response_b64(&s)).unwrap_or_else(|e| panic!("{r} {a}: {e}"));
        assert_eq!(login.name_id, "alice@example.com");
        assert_eq!(
            login.name_id_format.as_deref(),
            Some(crate::testidp::NAMEID_EMAIL)
        );
        assert_eq!(login.issuer, IDP);
        assert_eq!(login.in_response_to.as_deref(), Some("_req1"));
        assert_eq!(login.session_index, s.session_index);
        assert_eq!(login.attributes["groups"], vec!["admins", "staff"]);
        assert_eq!(login.replay_expires_at, NOW + 300 + 60);
        assert_eq!((login.response_signed, login.assertion_signed), (r, a));
        assert!(!login.encrypted);
        assert!(login.response_id.starts_with('_'));
        assert!(login.assertion_id.starts_with('_'));
    }
}

#[test]
fn accepts_every_encryption_combination() {
    let f = fx();
    for content in [
        ContentEncryption::Aes128Cbc,
        ContentEncryption::Aes256Cbc,
        ContentEncryption::Aes128Gcm,
        ContentEncryption::Aes256Gcm,
    ] {
        for transport in [KeyTransport::RsaOaepMgf1p, KeyTransport::Rsa15] {
            let mut s = spec();
            s.encrypt_for = Some(f.sp_key.certificate().clone());
            s.content_encryption = content;
            s.key_transport = transport;
            let login = check(&f.idp.response_b64(&s))
                .unwrap_or_else(|e| panic!("{content:?} {transport:?}: {e}"));
            assert!(login.encrypted && login.response_signed && login.assertion_signed);
            assert_eq!(login.name_id, "alice@example.com");
        }
    }
}

#[test]
fn encrypted_signing_variants() {
    let f = fx();
    // Unsigned response, signed encrypted assertion.
    let mut s = spec();
    s.encrypt_for = Some(f.sp_key.certificate().clone());
    s.sign_response = false;
    let login = check(&f.idp.response_b64(&s)).unwrap();
    assert!(login.encrypted && !login.response_signed && login.assertion_signed);
    // Signed response around an unsigned encrypted assertion.
    s.sign_response = true;
    s.sign_assertion = false;
    let login = check(&f.idp.response_b64(&s)).unwrap();
    assert!(login.encrypted && login.response_signed && !login.assertion_signed);
    // ...which does not meet an Assertion signing requirement.
    let r = check_with(&f.idp.response_b64(&s), NOW, |p| {
        p.signing = SigningRequirement::Assertion
    });
    assert_eq!(reason_of(r), Reason::SigningRequirementUnmet);
    // Required encryption is met.
    let login = check_with(&f.idp.response_b64(&s), NOW, |p| p.require_encrypted = true).unwrap();
    assert!(login.encrypted);
}

#[test]
fn decrypts_with_any_configured_key_and_verifies_with_any_cert() {
    let f = fx();
    let mut s = spec();
    s.encrypt_for = Some(f.sp_key.certificate().clone());
    let b = f.idp.response_b64(&s);
    let old_idp = TestIdp::new(IDP);
    let certs = [old_idp.certificate().clone(), f.idp.certificate().clone()];
    let keys = [&f.other_key, f.sp_key];
    let login = check_with(&b, NOW, |p| {
        p.idp_certs = &certs;
        p.decryption_keys = &keys;
    })
    .unwrap();
    assert!(login.encrypted);
}

#[test]
fn decrypted_assertion_may_rely_on_enclosing_prefixes() {
    let f = fx();
    let mut s = spec();
    s.sign_assertion = false;
    s.assertion_id = Some("_a1".into());
    let plain = f.idp.assertion_xml(&s);
    let bare = plain
        .replacen(
            " xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
            "",
            1,
        )
        .replacen(
            "</saml:Issuer>",
            &format!("</saml:Issuer>{SIG_PLACEHOLDER}"),
            1,
        );
    let doc = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r0\">{bare}</samlp:Response>"
    );
    let signed = sign_document(&doc, "_a1", &f.idp.key, SignatureAlgorithm::RsaSha256);
    let start = signed.find("<saml:Assertion").unwrap();
    let end = signed.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    let assertion = &signed[start..end];
    assert!(!assertion.contains("xmlns:saml="));
    let enc = encrypt_assertion(
        assertion,
        f.sp_key.certificate(),
        ContentEncryption::Aes256Gcm,
        KeyTransport::RsaOaepMgf1p,
    );
    let mut outer = spec();
    outer.sign_response = false;
    let success = "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>";
    let resp = f.idp.wrap_response(&outer, &format!("{success}{enc}"));
    let login = check(&b64(&resp)).unwrap();
    assert!(login.assertion_signed && login.encrypted);
    assert_eq!(login.assertion_id, "_a1");
}

#[test]
fn tolerates_line_wrapped_base64_skew_and_explicit_sha1() {
    let f = fx();
    let b = f.idp.response_b64(&spec());
    let wrapped: String = b
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect();
    assert!(check(&wrapped).is_ok());
    // Issued 30 s "in the future" by a fast IdP clock: within the default 60 s skew.
    assert!(check_with(&b, NOW - 30, |_| {}).is_ok());
    let mut s = spec();
    s.algorithm = SignatureAlgorithm::RsaSha1;
    let sha1 = AlgorithmPolicy::new(vec![SignatureAlgorithm::RsaSha1]);
    let login = check_with(&f.idp.response_b64(&s), NOW, |p| p.algorithms = &sha1).unwrap();
    assert!(login.response_signed);
}

#[test]
fn friendly_names_and_nil_values() {
    let mut s = spec().attribute("urn:oid:0.9.2342.19200300.100.1.3", &["a@example.com"]);
    s.edit_assertion = Some(|x: &str| {
        x.replacen(
            "Name=\"urn:oid:0.9.2342.19200300.100.1.3\"",
            "Name=\"urn:oid:0.9.2342.19200300.100.1.3\" FriendlyName=\"mail\"",
            1,
        )
        .replacen(
            "</saml:Attribute>",
            "<saml:AttributeValue xsi:nil=\"true\"/></saml:Attribute>",
            1,
        )
    });
    let login = check(&fx().idp.response_b64(&s)).unwrap();
    assert_eq!(login.attributes["mail"], vec!["a@example.com"]);
    assert_eq!(
        login.attributes["urn:oid:0.9.2342.19200300.100.1.3"],
        vec!["a@example.com"]
    );
}

#[test]
fn in_response_to_from_either_place() {
    let f = fx();
    let mut s = spec();
    s.in_response_to = Some("_req9".into());
    s.edit_assertion = Some(|x: &str| x.replacen(" InResponseTo=\"_req9\"", "", 1));
    assert_eq!(
        check(&f.idp.response_b64(&s))
            .unwrap()
            .in_response_to
            .as_deref(),
        Some("_req9")
    );
    assert_eq!(
        check(&f.idp.response_b64(&spec())).unwrap().in_response_to,
        None
    );
}

#[test]
fn peek_reads_routing_fields_without_verifying() {
    let mut s = spec();
    s.in_response_to = Some("_req2".into());
    s.response_id = Some("_resp2".into());
    let p = peek_response(&attacks::unsigned(&fx().idp, &s), 1 << 20).unwrap();
    assert_eq!(p.issuer.as_deref(), Some(IDP));
    assert_eq!(p.in_response_to.as_deref(), Some("_req2"));
    assert_eq!(p.response_id.as_deref(), Some("_resp2"));
    assert_eq!(
        peek_response("!!", 100).unwrap_err().reason,
        Reason::Malformed
    );
    assert_eq!(
        peek_response(&b64("<x/>"), 100).unwrap_err().reason,
        Reason::Malformed
    );
    assert_eq!(
        peek_response(&attacks::dtd_entity_expansion(), 1 << 20)
            .unwrap_err()
            .reason,
        Reason::DtdForbidden
    );
    assert_eq!(
        peek_response(&attacks::oversized(5000), 1000)
            .unwrap_err()
            .reason,
        Reason::TooLarge
    );
}

/// Deterministic mutation fuzzing: corrupting any byte of a signed (or encrypted) response must
/// never panic and never yield a login for someone else.
#[test]
fn mutations_never_panic_or_change_the_subject() {
    let f = fx();
    let mut enc = spec();
    enc.encrypt_for = Some(f.sp_key.certificate().clone());
    enc.sign_response = false;
    for s in [spec(), enc] {
        let xml = f.idp.response_xml(&s).into_bytes();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..250 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let pos = (seed >> 33) as usize % xml.len();
            let mut m = xml.clone();
            m[pos] = match (seed >> 20) % 4 {
                0 => b'<',
                1 => b'"',
                2 => m[pos].wrapping_add(1),
                _ => b' ',
            };
            if let Ok(login) = check(&STANDARD.encode(&m)) {
                assert_eq!(login.name_id, "alice@example.com", "mutation at {pos}");
            }
        }
    }
}
