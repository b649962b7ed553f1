//! One test (at least) per refusal [`Reason`], driven by the test IdP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::tests::{NOW, b64, check, check_with, fx, reason_of, spec};
use super::*;
use crate::algorithms::SignatureAlgorithm;
use crate::testidp::{STATUS_REQUESTER, attacks};

#[test]
fn malformed() {
    assert_eq!(reason_of(check("not base64!")), Reason::Malformed);
    assert_eq!(reason_of(check(&b64("not xml"))), Reason::Malformed);
    assert_eq!(
        reason_of(check(&STANDARD.encode([0xff, 0xfe, 0x00]))),
        Reason::Malformed
    );
    assert_eq!(
        reason_of(check(&b64(
            "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"
        ))),
        Reason::Malformed
    );
    let no_status = "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\" Version=\"2.0\"/>";
    assert_eq!(reason_of(check(&b64(no_status))), Reason::Malformed);
    let mut s = spec();
    s.edit_assertion = Some(|x: &str| {
        x.replacen(
            "IssueInstant=\"2023-11-14T22:13:20Z\"",
            "IssueInstant=\"soon\"",
            1,
        )
    });
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::Malformed
    );
}

#[test]
fn too_large() {
    let r = check_with(&attacks::oversized(20_000), NOW, |p| p.max_bytes = 10_000);
    assert_eq!(reason_of(r), Reason::TooLarge);
    let r = check_with(&"A".repeat(30_000), NOW, |p| p.max_bytes = 10_000);
    assert_eq!(reason_of(r), Reason::TooLarge);
}

#[test]
fn dtd_forbidden() {
    assert_eq!(
        reason_of(check(&attacks::dtd_entity_expansion())),
        Reason::DtdForbidden
    );
}

#[test]
fn xml_comment() {
    let b = attacks::comment_in_name_id(&fx().idp, &spec(), "admin@example.com", ".evil.test");
    assert_eq!(reason_of(check(&b)), Reason::XmlComment);
}

#[test]
fn status_not_success() {
    let mut s = spec();
    s.status = Some(STATUS_REQUESTER.into());
    let e = check(&fx().idp.response_b64(&s)).unwrap_err();
    assert_eq!(e.reason, Reason::StatusNotSuccess);
    assert!(e.detail.contains("Requester") && e.detail.contains("sign-in refused"));
}

#[test]
fn signature_missing() {
    let f = fx();
    assert_eq!(
        reason_of(check(&attacks::unsigned(&f.idp, &spec()))),
        Reason::SignatureMissing
    );
    let mut s = spec();
    s.encrypt_for = Some(f.sp_key.certificate().clone());
    s.sign_response = false;
    s.sign_assertion = false;
    assert_eq!(
        reason_of(check(&f.idp.response_b64(&s))),
        Reason::SignatureMissing
    );
}

#[test]
fn signature_invalid() {
    let f = fx();
    assert_eq!(
        reason_of(check(&attacks::signed_by_untrusted(&spec()))),
        Reason::SignatureInvalid
    );
    let tampered = f
        .idp
        .response_xml(&spec())
        .replace("alice@example.com", "admin@example.com");
    assert_eq!(reason_of(check(&b64(&tampered))), Reason::SignatureInvalid);
    let r = check_with(&f.idp.response_b64(&spec()), NOW, |p| p.idp_certs = &[]);
    assert_eq!(reason_of(r), Reason::SignatureInvalid);
}

#[test]
fn algorithm_not_allowed() {
    let mut s = spec();
    s.algorithm = SignatureAlgorithm::RsaSha1;
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::AlgorithmNotAllowed
    );
}

#[test]
fn signature_wrapping() {
    let f = fx();
    let evil = "admin@example.com";
    for b in [
        attacks::wrapping_assertion_moved(&f.idp, &spec(), evil),
        attacks::wrapping_reference_to_other_element(&f.idp, &spec(), evil),
        attacks::wrapping_response_in_extensions(&f.idp, &spec(), evil),
    ] {
        assert_eq!(reason_of(check(&b)), Reason::SignatureWrapping);
    }
    // Duplicate IDs.
    let mut s = spec();
    s.sign_response = false;
    s.assertion_id = Some("_dup".into());
    s.response_id = Some("_dup".into());
    assert_eq!(
        reason_of(check(&f.idp.response_b64(&s))),
        Reason::SignatureWrapping
    );
}

#[test]
fn signing_requirement_unmet() {
    let f = fx();
    let mut s = spec();
    s.sign_response = false;
    let r = check_with(&f.idp.response_b64(&s), NOW, |p| {
        p.signing = SigningRequirement::Response
    });
    assert_eq!(reason_of(r), Reason::SigningRequirementUnmet);
    let mut s = spec();
    s.sign_assertion = false;
    let r = check_with(&f.idp.response_b64(&s), NOW, |p| {
        p.signing = SigningRequirement::Assertion
    });
    assert_eq!(reason_of(r), Reason::SigningRequirementUnmet);
}

#[test]
fn multiple_assertions() {
    let b = attacks::wrapping_second_unsigned_assertion(&fx().idp, &spec(), "admin@example.com");
    assert_eq!(reason_of(check(&b)), Reason::MultipleAssertions);
}

#[test]
fn encryption_required() {
    let r = check_with(&fx().idp.response_b64(&spec()), NOW, |p| {
        p.require_encrypted = true
    });
    assert_eq!(reason_of(r), Reason::EncryptionRequired);
}

#[test]
fn decryption_failed() {
    let f = fx();
    let mut s = spec();
    s.encrypt_for = Some(f.other_key.certificate().clone());
    assert_eq!(
        reason_of(check(&f.idp.response_b64(&s))),
        Reason::DecryptionFailed
    );
    s.encrypt_for = Some(f.sp_key.certificate().clone());
    let r = check_with(&f.idp.response_b64(&s), NOW, |p| p.decryption_keys = &[]);
    assert_eq!(reason_of(r), Reason::DecryptionFailed);
    // Corrupted ciphertext (short, not block-aligned) must fail cleanly, not panic.
    s.edit_response = Some(|x: &str| {
        let i = x.rfind("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len();
        let j = x[i..].find('<').unwrap() + i;
        format!("{}AAAA{}", &x[..i], &x[j..])
    });
    assert_eq!(
        reason_of(check(&f.idp.response_b64(&s))),
        Reason::DecryptionFailed
    );
}

#[test]
fn issuer_mismatch() {
    let f = fx();
    let mut s = spec();
    s.issuer = Some("https://evil.test".into());
    assert_eq!(
        reason_of(check(&f.idp.response_b64(&s))),
        Reason::IssuerMismatch
    );
    let mut s = spec();
    s.edit_response = Some(|x: &str| {
        x.replacen(
            "<saml:Issuer>",
            "<saml:Issuer Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">",
            1,
        )
    });
    assert_eq!(
        reason_of(check(&f.idp.response_b64(&s))),
        Reason::IssuerMismatch
    );
}

#[test]
fn audience_mismatch() {
    let mut s = spec();
    s.audience = "https://sp.test/saml/other".into();
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::AudienceMismatch
    );
    let mut s = spec();
    s.edit_assertion = Some(|x: &str| {
        let i = x.find("<saml:AudienceRestriction>").unwrap();
        let j =
            x.find("</saml:AudienceRestriction>").unwrap() + "</saml:AudienceRestriction>".len();
        format!("{}{}", &x[..i], &x[j..])
    });
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::AudienceMismatch
    );
}

#[test]
fn destination_mismatch() {
    let mut s = spec();
    s.destination = Some("https://sp.test/saml/t2/acs".into());
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::DestinationMismatch
    );
    s.destination = None;
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::DestinationMismatch
    );
    // Unsigned response without Destination is fine when the assertion is signed.
    s.sign_response = false;
    assert!(check(&fx().idp.response_b64(&s)).is_ok());
}

#[test]
fn recipient_mismatch() {
    let mut s = spec();
    s.recipient = "https://sp.test/saml/t2/acs".into();
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::RecipientMismatch
    );
}

#[test]
fn not_yet_valid() {
    let b = fx().idp.response_b64(&spec());
    assert_eq!(
        reason_of(check_with(&b, NOW - 120, |_| {})),
        Reason::NotYetValid
    );
    let mut s = spec();
    s.not_before_offset = 120;
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::NotYetValid
    );
}

#[test]
fn expired() {
    let b = fx().idp.response_b64(&spec());
    assert_eq!(
        reason_of(check_with(&b, NOW + 360, |_| {})),
        Reason::Expired
    );
    assert!(check_with(&b, NOW + 359, |_| {}).is_ok());
    // A long-lived assertion is still refused once its IssueInstant is over 10 min old.
    let mut s = spec();
    s.not_on_or_after_offset = 3600;
    let b = fx().idp.response_b64(&s);
    assert_eq!(
        reason_of(check_with(&b, NOW + 660, |_| {})),
        Reason::Expired
    );
    assert!(check_with(&b, NOW + 659, |_| {}).is_ok());
}

#[test]
fn bearer_confirmation_missing() {
    let mut s = spec();
    s.edit_assertion = Some(|x: &str| x.replacen(":cm:bearer", ":cm:holder-of-key", 1));
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::BearerConfirmationMissing
    );
    let mut s = spec();
    s.edit_assertion = Some(|x: &str| {
        x.replacen(
            "<saml:SubjectConfirmationData NotOnOrAfter=",
            "<saml:SubjectConfirmationData X=",
            1,
        )
    });
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::BearerConfirmationMissing
    );
}

#[test]
fn in_response_to_mismatch() {
    let mut s = spec();
    s.in_response_to = Some("_req1".into());
    s.edit_response =
        Some(|x: &str| x.replacen("InResponseTo=\"_req1\"", "InResponseTo=\"_req2\"", 1));
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::InResponseToMismatch
    );
}

#[test]
fn no_subject() {
    let f = fx();
    let mut s = spec();
    s.sign_response = true;
    let success = "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>";
    assert_eq!(
        reason_of(check(&b64(&f.idp.wrap_response(&s, success)))),
        Reason::NoSubject
    );
    s.edit_assertion = Some(|x: &str| {
        let i = x.find("<saml:NameID").unwrap();
        let j = x.find("</saml:NameID>").unwrap() + "</saml:NameID>".len();
        format!("{}{}", &x[..i], &x[j..])
    });
    assert_eq!(reason_of(check(&f.idp.response_b64(&s))), Reason::NoSubject);
}

#[test]
fn version_unsupported() {
    let mut s = spec();
    s.edit_response = Some(|x: &str| x.replacen("Version=\"2.0\"", "Version=\"1.1\"", 1));
    assert_eq!(
        reason_of(check(&fx().idp.response_b64(&s))),
        Reason::VersionUnsupported
    );
}

#[test]
fn every_reason_is_exercised() {
    // Keeps this file honest: a new Reason needs a test above and an entry here.
    let tested = [
        Reason::Malformed,
        Reason::TooLarge,
        Reason::DtdForbidden,
        Reason::XmlComment,
        Reason::StatusNotSuccess,
        Reason::SignatureMissing,
        Reason::SignatureInvalid,
        Reason::AlgorithmNotAllowed,
        Reason::SignatureWrapping,
        Reason::SigningRequirementUnmet,
        Reason::MultipleAssertions,
        Reason::EncryptionRequired,
        Reason::DecryptionFailed,
        Reason::IssuerMismatch,
        Reason::AudienceMismatch,
        Reason::DestinationMismatch,
        Reason::RecipientMismatch,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::BearerConfirmationMissing,
        Reason::InResponseToMismatch,
        Reason::NoSubject,
        Reason::VersionUnsupported,
    ];
    assert_eq!(tested.len(), Reason::ALL.len());
}

#[test]
fn decryption_of_garbage_plaintext_fails_cleanly() {
    use crate::testidp::{ContentEncryption, KeyTransport, encrypt_assertion};
    let f = fx();
    let success = "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>";
    let mut outer = spec();
    outer.sign_response = false;
    for plain in [
        "not xml at all",
        "<saml:Assertion>",
        "<x:Other xmlns:x=\"urn:x\"/>",
        "",
    ] {
        let enc = encrypt_assertion(
            plain,
            f.sp_key.certificate(),
            ContentEncryption::Aes128Cbc,
            KeyTransport::RsaOaepMgf1p,
        );
        let resp = f.idp.wrap_response(&outer, &format!("{success}{enc}"));
        assert_eq!(
            reason_of(check(&b64(&resp))),
            Reason::DecryptionFailed,
            "{plain:?}"
        );
    }
    // A DTD smuggled inside the ciphertext is still refused before libxml2 sees it.
    let enc = encrypt_assertion(
        "<!DOCTYPE a [<!ENTITY x \"y\">]><a/>",
        f.sp_key.certificate(),
        ContentEncryption::Aes256Gcm,
        KeyTransport::RsaOaepMgf1p,
    );
    let resp = f.idp.wrap_response(&outer, &format!("{success}{enc}"));
    assert_eq!(reason_of(check(&b64(&resp))), Reason::DtdForbidden);
}
