#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::keys::SpKeyPair;
use crate::testidp::TestIdp;
use crate::xml::{self, STRICT};

fn idp() -> TestIdp {
    TestIdp::new("https://idp.test/metadata")
}

#[test]
fn parses_test_idp_metadata() {
    let idp = idp();
    let m =
        IdpMetadata::parse(&idp.metadata_xml("https://idp.test/sso", Some("https://idp.test/slo")))
            .unwrap();
    assert_eq!(m.entity_id, "https://idp.test/metadata");
    assert_eq!(m.sso_redirect_url.as_deref(), Some("https://idp.test/sso"));
    assert_eq!(m.sso_post_url.as_deref(), Some("https://idp.test/sso"));
    assert_eq!(m.slo_redirect_url.as_deref(), Some("https://idp.test/slo"));
    assert_eq!(m.slo_post_url.as_deref(), Some("https://idp.test/slo"));
    assert_eq!(m.signing_certs, vec![idp.certificate().clone()]);
    assert_eq!(m.name_id_formats, vec![crate::testidp::NAMEID_EMAIL]);
    assert!(m.want_authn_requests_signed);
    let no_slo = IdpMetadata::parse(&idp.metadata_xml("https://idp.test/sso", None)).unwrap();
    assert_eq!(no_slo.slo_redirect_url, None);
}

/// Shape of real-world metadata (ADFS/Entra style): default namespace, comments, an
/// encryption key to ignore, a key without `use`, wrapped base64, an SP entity alongside.
#[test]
fn parses_entities_descriptor_with_one_idp() {
    let a = idp();
    let enc = SpKeyPair::generate("enc", 1).unwrap();
    let wrapped: String = a
        .certificate()
        .base64()
        .as_bytes()
        .chunks(64)
        .map(|c| format!("\n      {}", String::from_utf8_lossy(c)))
        .collect();
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<!-- exported 2024-01-01 -->
<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <EntityDescriptor entityID="https://sp.other/">
    <SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/>
  </EntityDescriptor>
  <EntityDescriptor entityID=" https://sts.example.com/adfs/services/trust ">
    <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:1.1:protocol urn:oasis:names:tc:SAML:2.0:protocol">
      <KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{enc}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor>
      <KeyDescriptor><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{wrapped}
      </ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor>
      <!-- the POST endpoint -->
      <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sts.example.com/adfs/ls/"/>
    </IDPSSODescriptor>
  </EntityDescriptor>
</EntitiesDescriptor>"#,
        enc = enc.certificate().base64(),
    );
    let m = IdpMetadata::parse(&xml).unwrap();
    assert_eq!(m.entity_id, "https://sts.example.com/adfs/services/trust");
    assert_eq!(m.sso_redirect_url, None);
    assert_eq!(
        m.sso_post_url.as_deref(),
        Some("https://sts.example.com/adfs/ls/")
    );
    assert_eq!(m.signing_certs, vec![a.certificate().clone()]);
    assert!(!m.want_authn_requests_signed);
}

#[test]
fn refuses_bad_metadata() {
    let a = idp().metadata_xml("https://idp.test/sso", None);
    let reason = |x: &str| IdpMetadata::parse(x).unwrap_err();
    let two = format!(
        "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\">{a}{a}</md:EntitiesDescriptor>"
    );
    assert_eq!(reason(&two).reason, Reason::Malformed);
    let no_cert = a.replace("use=\"signing\"", "use=\"encryption\"");
    let e = reason(&no_cert);
    assert!(e.detail.contains("signing certificate"), "{e}");
    let no_sso = a.replace("SingleSignOnService", "ArtifactResolutionService");
    assert!(reason(&no_sso).detail.contains("SingleSignOnService"));
    let bad_cert = a.replace("<ds:X509Certificate>", "<ds:X509Certificate>AAAA");
    assert_eq!(reason(&bad_cert).reason, Reason::Malformed);
    let dtd = format!("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{a}");
    assert_eq!(reason(&dtd).reason, Reason::DtdForbidden);
    let big = format!("{a}<!--{}-->", "x".repeat(MAX_METADATA_BYTES));
    assert_eq!(reason(&big).reason, Reason::TooLarge);
    assert_eq!(reason("<x/>").reason, Reason::Malformed);
    assert_eq!(reason("garbage").reason, Reason::Malformed);
    let sp_only = "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"><md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"/></md:EntityDescriptor>";
    assert_eq!(reason(sp_only).reason, Reason::Malformed);
}

#[test]
fn sp_metadata_is_valid_escaped_and_lists_every_cert_twice() {
    let k1 = SpKeyPair::generate("sp1", 1).unwrap();
    let k2 = SpKeyPair::generate("sp2", 1).unwrap();
    let certs = [k1.certificate().clone(), k2.certificate().clone()];
    let xml_text = sp_metadata(&SpMetadataParams {
        entity_id: "https://sp.test/saml/t1?a=1&b=\"2\"",
        acs_url: "https://sp.test/saml/t1/acs",
        slo_url: "https://sp.test/saml/t1/slo",
        certificates: &certs,
        name_id_format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
        want_assertions_signed: true,
    });
    let root = xml::parse(&xml_text, STRICT).unwrap();
    assert!(root.is(NS_MD, "EntityDescriptor"));
    assert_eq!(
        root.attr("entityID"),
        Some("https://sp.test/saml/t1?a=1&b=\"2\"")
    );
    let sp = root.child(NS_MD, "SPSSODescriptor").unwrap();
    assert_eq!(sp.attr("AuthnRequestsSigned"), Some("true"));
    assert_eq!(sp.attr("WantAssertionsSigned"), Some("true"));
    let kds: Vec<_> = sp.children_named(NS_MD, "KeyDescriptor").collect();
    assert_eq!(kds.len(), 4);
    assert_eq!(kds[0].attr("use"), Some("signing"));
    assert_eq!(kds[1].attr("use"), Some("encryption"));
    let acs = sp.child(NS_MD, "AssertionConsumerService").unwrap();
    assert_eq!(acs.attr("index"), Some("0"));
    assert_eq!(acs.attr("Binding"), Some(BINDING_POST));
    assert_eq!(sp.children_named(NS_MD, "SingleLogoutService").count(), 2);
    // Schema order: KeyDescriptor*, SingleLogoutService*, NameIDFormat*, ACS+.
    let order: Vec<&str> = sp.elements().map(|e| &*e.local).collect();
    assert_eq!(order.last(), Some(&"AssertionConsumerService"));
    assert_eq!(order[5], "SingleLogoutService");
    assert_eq!(order[6], "NameIDFormat");
}
