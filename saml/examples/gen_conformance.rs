//! Regenerates the SAML conformance vectors in `conformance/saml/` (or the directory given as
//! the first argument). Every vector is made by the in-crate test IdP at a fixed instant, so
//! validation with `FixedClock(NOW)` gives the same answer forever; see
//! `conformance/saml/README.md` for what each file is and how it was made.
//!
//! `cargo run -p idhub-saml --example gen_conformance --features test-idp`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use saml::testidp::{
    ContentEncryption, KeyTransport, LoginSpec, STATUS_REQUESTER, TestIdp, attacks,
};
use saml::{SignatureAlgorithm, SpKeyPair};
use serde_json::{Value, json};

const SP: &str = "https://sp.test/saml/t1";
const ACS: &str = "https://sp.test/saml/t1/acs";
const IDP: &str = "https://idp.test";
/// 2023-11-14T22:13:20Z
const NOW: i64 = 1_700_000_000;

fn decode(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/saml"));
    std::fs::create_dir_all(&dir).unwrap();

    let idp = TestIdp::new(IDP);
    let sp_key = SpKeyPair::generate_at("sp.test", 1_577_836_800, 36_500).unwrap();
    let other_key = SpKeyPair::generate_at("other-sp.test", 1_577_836_800, 36_500).unwrap();
    let base = || LoginSpec::new("alice@example.com", SP, ACS, NOW).attribute("groups", &["staff"]);

    let mut vectors: Vec<Value> = Vec::new();
    let mut add = |file: &str, xml: String, expect: &str, policy: Value, note: &str| {
        std::fs::write(dir.join(file), &xml).unwrap();
        vectors.push(json!({"file": file, "expect": expect, "policy": policy, "note": note}));
    };
    let none = || json!({});

    let mut s = base();
    s.sign_assertion = false;
    add(
        "ok-response-signed.xml",
        idp.response_xml(&s),
        "ok",
        none(),
        "Valid login; only the Response is signed (RSA-SHA256, exc-c14n, SHA-256 digest).",
    );
    let mut s = base();
    s.sign_response = false;
    add(
        "ok-assertion-signed.xml",
        idp.response_xml(&s),
        "ok",
        none(),
        "Valid login; only the Assertion is signed; the Response is not.",
    );
    add(
        "ok-both-signed.xml",
        idp.response_xml(&base()),
        "ok",
        none(),
        "Valid login; Assertion signed, then Response signed around it. Submitting it twice is a replay: the server must refuse the second one using assertion_id/replay_expires_at.",
    );
    let mut s = base();
    s.encrypt_for = Some(sp_key.certificate().clone());
    add(
        "ok-encrypted-aes256cbc-oaep.xml",
        idp.response_xml(&s),
        "ok",
        none(),
        "Valid login; signed Assertion encrypted to sp-cert.pem (AES-256-CBC, RSA-OAEP-MGF1P), signed Response.",
    );
    let mut s = base();
    s.encrypt_for = Some(sp_key.certificate().clone());
    s.content_encryption = ContentEncryption::Aes128Gcm;
    s.key_transport = KeyTransport::Rsa15;
    s.sign_response = false;
    add(
        "ok-encrypted-aes128gcm-rsa15-unsigned-response.xml",
        idp.response_xml(&s),
        "ok",
        none(),
        "Valid login; signed Assertion encrypted (AES-128-GCM, RSA PKCS#1 v1.5) inside an unsigned Response.",
    );

    add(
        "unsigned.xml",
        decode(&attacks::unsigned(&idp, &base())),
        "signature_missing",
        none(),
        "No ds:Signature anywhere (attacks::unsigned).",
    );
    add(
        "signed-by-untrusted-key.xml",
        decode(&attacks::signed_by_untrusted(&base())),
        "signature_invalid",
        none(),
        "Correct shape, signed by a fresh key whose certificate is in KeyInfo; KeyInfo must be ignored (attacks::signed_by_untrusted).",
    );
    add(
        "tampered-name-id.xml",
        idp.response_xml(&base())
            .replace("alice@example.com", "admin@example.com"),
        "signature_invalid",
        none(),
        "ok-both-signed shape with the NameID edited after signing.",
    );
    let mut s = base();
    s.algorithm = SignatureAlgorithm::RsaSha1;
    add(
        "rsa-sha1.xml",
        idp.response_xml(&s),
        "algorithm_not_allowed",
        none(),
        "Signed with RSA-SHA1 and SHA-1 digests; refused by the default allow-list.",
    );
    add(
        "xsw-assertion-moved.xml",
        decode(&attacks::wrapping_assertion_moved(
            &idp,
            &base(),
            "admin@example.com",
        )),
        "signature_wrapping",
        none(),
        "XSW: signed assertion moved into samlp:Extensions, unsigned evil assertion in its place (attacks::wrapping_assertion_moved).",
    );
    add(
        "xsw-reference-to-other-element.xml",
        decode(&attacks::wrapping_reference_to_other_element(
            &idp,
            &base(),
            "admin@example.com",
        )),
        "signature_wrapping",
        none(),
        "XSW: evil assertion carries the legitimate signature whose Reference points at the hidden legitimate assertion.",
    );
    add(
        "xsw-response-in-extensions.xml",
        decode(&attacks::wrapping_response_in_extensions(
            &idp,
            &base(),
            "admin@example.com",
        )),
        "signature_wrapping",
        none(),
        "XSW on the Response signature: the signed Response is tucked into the Extensions of an unsigned one.",
    );
    add(
        "xsw-second-unsigned-assertion.xml",
        decode(&attacks::wrapping_second_unsigned_assertion(
            &idp,
            &base(),
            "admin@example.com",
        )),
        "multiple_assertions",
        none(),
        "XSW: unsigned evil assertion placed before the signed legitimate one.",
    );
    add(
        "comment-in-name-id.xml",
        decode(&attacks::comment_in_name_id(
            &idp,
            &base(),
            "admin@example.com",
            ".evil.test",
        )),
        "xml_comment",
        none(),
        "Signed NameID admin@example.com.evil.test with <!----> inserted after signing (signature still verifies under exc-c14n).",
    );
    add(
        "dtd-entity-expansion.xml",
        decode(&attacks::dtd_entity_expansion()),
        "dtd_forbidden",
        none(),
        "Billion-laughs internal DTD.",
    );
    add(
        "too-large.xml",
        decode(&attacks::oversized(20_000)),
        "too_large",
        json!({"max_bytes": 10000}),
        "20 kB response validated with max_bytes = 10000.",
    );

    let mut s = base();
    s.now_unix = NOW - 3600;
    add(
        "expired.xml",
        idp.response_xml(&s),
        "expired",
        none(),
        "Issued one hour before the vectors' instant (5 min validity).",
    );
    let mut s = base();
    s.now_unix = NOW + 3600;
    add(
        "not-yet-valid.xml",
        idp.response_xml(&s),
        "not_yet_valid",
        none(),
        "Issued one hour after the vectors' instant.",
    );
    let mut s = base();
    s.audience = "https://sp.test/saml/t2".into();
    add(
        "wrong-audience.xml",
        idp.response_xml(&s),
        "audience_mismatch",
        none(),
        "Audience is another tenant's SP.",
    );
    let mut s = base();
    s.destination = Some("https://sp.test/saml/t2/acs".into());
    add(
        "wrong-destination.xml",
        idp.response_xml(&s),
        "destination_mismatch",
        none(),
        "Signed Response addressed to another ACS.",
    );
    let mut s = base();
    s.recipient = "https://sp.test/saml/t2/acs".into();
    add(
        "wrong-recipient.xml",
        idp.response_xml(&s),
        "recipient_mismatch",
        none(),
        "SubjectConfirmationData Recipient is another ACS.",
    );
    let mut s = base();
    s.issuer = Some("https://evil.test".into());
    add(
        "wrong-issuer.xml",
        idp.response_xml(&s),
        "issuer_mismatch",
        none(),
        "Trusted key, but Issuer names another entity.",
    );
    let mut s = base();
    s.status = Some(STATUS_REQUESTER.into());
    add(
        "status-requester.xml",
        idp.response_xml(&s),
        "status_not_success",
        none(),
        "IdP refused the login (StatusCode Requester).",
    );
    let mut s = base();
    s.encrypt_for = Some(other_key.certificate().clone());
    add(
        "encrypted-for-other-key.xml",
        idp.response_xml(&s),
        "decryption_failed",
        none(),
        "Assertion encrypted to a key that is not sp-key.pem.",
    );
    add(
        "plain-when-encryption-required.xml",
        idp.response_xml(&base()),
        "encryption_required",
        json!({"require_encrypted": true}),
        "ok-both-signed shape validated with require_encrypted.",
    );
    let mut s = base();
    s.sign_assertion = false;
    add(
        "response-signed-assertion-required.xml",
        idp.response_xml(&s),
        "signing_requirement_unmet",
        json!({"signing": "assertion"}),
        "Only the Response is signed; the policy requires a signed Assertion.",
    );
    let mut s = base();
    s.in_response_to = Some("_req1".into());
    s.edit_response =
        Some(|x: &str| x.replacen("InResponseTo=\"_req1\"", "InResponseTo=\"_req2\"", 1));
    add(
        "in-response-to-mismatch.xml",
        idp.response_xml(&s),
        "in_response_to_mismatch",
        none(),
        "Response InResponseTo _req2, SubjectConfirmationData InResponseTo _req1 (both signed).",
    );
    let mut s = base();
    s.edit_assertion = Some(|x: &str| x.replacen(":cm:bearer", ":cm:holder-of-key", 1));
    add(
        "no-bearer-confirmation.xml",
        idp.response_xml(&s),
        "bearer_confirmation_missing",
        none(),
        "Only a holder-of-key SubjectConfirmation.",
    );
    let success = "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>";
    add(
        "no-assertion.xml",
        idp.wrap_response(&base(), success),
        "no_subject",
        none(),
        "Signed Success response without any assertion.",
    );
    let mut s = base();
    s.edit_response = Some(|x: &str| x.replacen("Version=\"2.0\"", "Version=\"1.1\"", 1));
    add(
        "version-1.1.xml",
        idp.response_xml(&s),
        "version_unsupported",
        none(),
        "Signed Response claiming Version 1.1.",
    );
    add(
        "malformed-not-xml.xml",
        "this is not XML\n".to_string(),
        "malformed",
        none(),
        "Plain text.",
    );

    std::fs::write(dir.join("idp-cert.pem"), idp.certificate().to_pem()).unwrap();
    std::fs::write(dir.join("sp-cert.pem"), sp_key.certificate().to_pem()).unwrap();
    std::fs::write(
        dir.join("sp-key.pem"),
        pem("PRIVATE KEY", &sp_key.private_key_pkcs8_der().unwrap()),
    )
    .unwrap();
    let doc = json!({
        "generator": "saml/examples/gen_conformance.rs (cargo run -p idhub-saml --example gen_conformance --features test-idp)",
        "sp_entity_id": SP,
        "acs_url": ACS,
        "idp_entity_id": IDP,
        "now_unix": NOW,
        "now": "2023-11-14T22:13:20Z",
        "skew_secs": 60,
        "idp_certificate": "idp-cert.pem",
        "sp_certificate": "sp-cert.pem",
        "sp_private_key": "sp-key.pem",
        "default_policy": {"signing": "either", "require_encrypted": false, "max_bytes": 262144, "algorithms": "default (RSA/ECDSA with SHA-256 or stronger)"},
        "vectors": vectors,
    });
    std::fs::write(
        dir.join("vectors.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
    println!(
        "wrote {} vectors to {}",
        doc["vectors"].as_array().map_or(0, |v| v.len()),
        dir.display()
    );
}
