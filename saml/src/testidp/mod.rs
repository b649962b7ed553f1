//! An in-process SAML identity provider for tests (feature `test-idp`): it signs, encrypts
//! and — in [`attacks`] — forges responses, so every validation path can be driven end to end
//! without a real IdP. Never compiled into production builds.
//!
//! The inputs are chosen by test code, so failures here panic (`expect`) instead of returning
//! errors.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod attacks;
mod encrypt;
mod sign;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub use encrypt::{ContentEncryption, KeyTransport, encrypt_assertion};
pub use sign::{SIG_PLACEHOLDER, sign_document, signature_template};

use crate::algorithms::SignatureAlgorithm;
use crate::cert::Certificate;
use crate::instant::format_instant;
use crate::keys::SpKeyPair;
use crate::redirect::signed_redirect_url;
use crate::xml::{NS_DS, NS_MD, NS_SAML, NS_SAMLP, esc};

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// A test identity provider: an entity ID and an RSA-2048 signing key with its certificate.
#[derive(Clone, Debug)]
pub struct TestIdp {
    pub entity_id: String,
    pub key: SpKeyPair,
}

/// Everything a test may want to vary in a login response.
#[derive(Clone, Debug)]
pub struct LoginSpec {
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub attributes: Vec<(String, Vec<String>)>,
    pub audience: String,
    pub destination: Option<String>,
    pub recipient: String,
    pub in_response_to: Option<String>,
    /// Default: the IdP's entity ID. Used for both Response and Assertion Issuer.
    pub issuer: Option<String>,
    pub now_unix: i64,
    /// Conditions NotBefore relative to `now_unix` (default -5).
    pub not_before_offset: i64,
    /// Conditions and SubjectConfirmationData NotOnOrAfter relative to `now_unix` (default 300).
    pub not_on_or_after_offset: i64,
    pub session_index: Option<String>,
    pub sign_response: bool,
    pub sign_assertion: bool,
    /// Encrypt the (signed) assertion for this SP certificate.
    pub encrypt_for: Option<Certificate>,
    pub content_encryption: ContentEncryption,
    pub key_transport: KeyTransport,
    /// RsaSha256 by default; RsaSha1 (with a SHA-1 digest) for the negative test.
    pub algorithm: SignatureAlgorithm,
    /// A non-Success top-level StatusCode (the response then carries no assertion).
    pub status: Option<String>,
    pub assertion_id: Option<String>,
    pub response_id: Option<String>,
    /// Edits applied to the unsigned assertion / response XML just before signing, for
    /// tests that need a shape the fields do not express.
    pub edit_assertion: Option<fn(&str) -> String>,
    pub edit_response: Option<fn(&str) -> String>,
}

impl LoginSpec {
    /// A valid login for `sp_entity_id` at `acs_url`, issued at `now_unix`: signed response
    /// and signed assertion, RSA-SHA256, 5 s NotBefore slack, 5 min validity.
    pub fn new(name_id: &str, sp_entity_id: &str, acs_url: &str, now_unix: i64) -> Self {
        Self {
            name_id: name_id.to_string(),
            name_id_format: Some(NAMEID_EMAIL.to_string()),
            attributes: Vec::new(),
            audience: sp_entity_id.to_string(),
            destination: Some(acs_url.to_string()),
            recipient: acs_url.to_string(),
            in_response_to: None,
            issuer: None,
            now_unix,
            not_before_offset: -5,
            not_on_or_after_offset: 300,
            session_index: Some(format!("_s{}", uuid::Uuid::new_v4().simple())),
            sign_response: true,
            sign_assertion: true,
            encrypt_for: None,
            content_encryption: ContentEncryption::Aes256Cbc,
            key_transport: KeyTransport::RsaOaepMgf1p,
            algorithm: SignatureAlgorithm::RsaSha256,
            status: None,
            assertion_id: None,
            response_id: None,
            edit_assertion: None,
            edit_response: None,
        }
    }

    pub fn attribute(mut self, name: &str, values: &[&str]) -> Self {
        self.attributes.push((
            name.to_string(),
            values.iter().map(|v| v.to_string()).collect(),
        ));
        self
    }
}

fn random_id() -> String {
    format!("_{}", uuid::Uuid::new_v4().simple())
}

impl TestIdp {
    /// A fresh RSA-2048 key and self-signed certificate (valid from 2020 for 100 years, so
    /// fixed-time vectors stay valid).
    pub fn new(entity_id: &str) -> Self {
        let key =
            SpKeyPair::generate_at("test-idp", 1_577_836_800, 36_500).expect("key generation");
        Self::with_key(entity_id, key)
    }

    pub fn with_key(entity_id: &str, key: SpKeyPair) -> Self {
        Self {
            entity_id: entity_id.to_string(),
            key,
        }
    }

    pub fn certificate(&self) -> &Certificate {
        self.key.certificate()
    }

    /// IdP metadata: SSO over Redirect and POST at `sso_url`, optional SLO, one signing key.
    pub fn metadata_xml(&self, sso_url: &str, slo_url: Option<&str>) -> String {
        let slo = slo_url
            .map(|u| {
                format!(
                    "<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{0}\"/><md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{0}\"/>",
                    esc(u)
                )
            })
            .unwrap_or_default();
        format!(
            concat!(
                "<md:EntityDescriptor xmlns:md=\"{md}\" xmlns:ds=\"{ds}\" entityID=\"{entity}\">",
                "<md:IDPSSODescriptor WantAuthnRequestsSigned=\"true\" protocolSupportEnumeration=\"{samlp}\">",
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}",
                "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                "{slo}<md:NameIDFormat>{email}</md:NameIDFormat>",
                "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{sso}\"/>",
                "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{sso}\"/>",
                "</md:IDPSSODescriptor></md:EntityDescriptor>"
            ),
            md = NS_MD,
            ds = NS_DS,
            entity = esc(&self.entity_id),
            samlp = NS_SAMLP,
            cert = self.certificate().base64(),
            slo = slo,
            email = NAMEID_EMAIL,
            sso = esc(sso_url),
        )
    }

    /// The assertion alone (signed if `spec.sign_assertion`), declaring its own namespaces.
    pub fn assertion_xml(&self, spec: &LoginSpec) -> String {
        let id = spec.assertion_id.clone().unwrap_or_else(random_id);
        let issuer = spec.issuer.as_deref().unwrap_or(&self.entity_id);
        let now = spec.now_unix;
        let until = format_instant(now + spec.not_on_or_after_offset);
        let format = spec
            .name_id_format
            .as_deref()
            .map(|f| format!(" Format=\"{}\"", esc(f)))
            .unwrap_or_default();
        let irt = spec
            .in_response_to
            .as_deref()
            .map(|v| format!(" InResponseTo=\"{}\"", esc(v)))
            .unwrap_or_default();
        let session = spec
            .session_index
            .as_deref()
            .map(|s| format!(" SessionIndex=\"{}\"", esc(s)))
            .unwrap_or_default();
        let attrs = if spec.attributes.is_empty() {
            String::new()
        } else {
            let mut s = String::from("<saml:AttributeStatement>");
            for (name, values) in &spec.attributes {
                s.push_str(&format!(
                    "<saml:Attribute Name=\"{}\" NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:basic\">",
                    esc(name)
                ));
                for v in values {
                    s.push_str(&format!(
                        "<saml:AttributeValue xsi:type=\"xs:string\">{}</saml:AttributeValue>",
                        esc(v)
                    ));
                }
                s.push_str("</saml:Attribute>");
            }
            s.push_str("</saml:AttributeStatement>");
            s
        };
        let xml = format!(
            concat!(
                "<saml:Assertion xmlns:saml=\"{saml}\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" ",
                "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\">",
                "<saml:Issuer>{issuer}</saml:Issuer>{sig}",
                "<saml:Subject><saml:NameID{format}>{name_id}</saml:NameID>",
                "<saml:SubjectConfirmation Method=\"{bearer}\">",
                "<saml:SubjectConfirmationData NotOnOrAfter=\"{until}\" Recipient=\"{recipient}\"{irt}/>",
                "</saml:SubjectConfirmation></saml:Subject>",
                "<saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{until}\">",
                "<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>",
                "</saml:Conditions>",
                "<saml:AuthnStatement AuthnInstant=\"{now}\"{session}><saml:AuthnContext>",
                "<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>",
                "</saml:AuthnContext></saml:AuthnStatement>{attrs}</saml:Assertion>"
            ),
            saml = NS_SAML,
            id = esc(&id),
            now = format_instant(now),
            issuer = esc(issuer),
            sig = if spec.sign_assertion {
                SIG_PLACEHOLDER
            } else {
                ""
            },
            format = format,
            name_id = esc(&spec.name_id),
            bearer = BEARER,
            until = until,
            recipient = esc(&spec.recipient),
            irt = irt,
            nb = format_instant(now + spec.not_before_offset),
            audience = esc(&spec.audience),
            session = session,
            attrs = attrs,
        );
        let xml = match spec.edit_assertion {
            Some(f) => f(&xml),
            None => xml,
        };
        if spec.sign_assertion {
            sign_document(&xml, &id, &self.key, spec.algorithm)
        } else {
            xml
        }
    }

    /// A complete `samlp:Response` as the IdP would POST it.
    pub fn response_xml(&self, spec: &LoginSpec) -> String {
        let body = match &spec.status {
            Some(code) => format!(
                "<samlp:Status><samlp:StatusCode Value=\"{}\"/><samlp:StatusMessage>sign-in refused</samlp:StatusMessage></samlp:Status>",
                esc(code)
            ),
            None => {
                let assertion = self.assertion_xml(spec);
                let assertion = match &spec.encrypt_for {
                    Some(cert) => encrypt_assertion(
                        &assertion,
                        cert,
                        spec.content_encryption,
                        spec.key_transport,
                    ),
                    None => assertion,
                };
                format!(
                    "<samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Status>{assertion}"
                )
            }
        };
        self.wrap_response(spec, &body)
    }

    /// Wraps `body` (Status + assertion, or anything an attack needs) in a Response with the
    /// spec's ID, Destination, InResponseTo and Issuer, signed if `spec.sign_response`.
    pub fn wrap_response(&self, spec: &LoginSpec, body: &str) -> String {
        let id = spec.response_id.clone().unwrap_or_else(random_id);
        let issuer = spec.issuer.as_deref().unwrap_or(&self.entity_id);
        let dest = spec
            .destination
            .as_deref()
            .map(|d| format!(" Destination=\"{}\"", esc(d)))
            .unwrap_or_default();
        let irt = spec
            .in_response_to
            .as_deref()
            .map(|v| format!(" InResponseTo=\"{}\"", esc(v)))
            .unwrap_or_default();
        let xml = format!(
            concat!(
                "<samlp:Response xmlns:samlp=\"{samlp}\" xmlns:saml=\"{saml}\" ID=\"{id}\" Version=\"2.0\" ",
                "IssueInstant=\"{now}\"{dest}{irt}><saml:Issuer>{issuer}</saml:Issuer>{sig}{body}</samlp:Response>"
            ),
            samlp = NS_SAMLP,
            saml = NS_SAML,
            id = esc(&id),
            now = format_instant(spec.now_unix),
            dest = dest,
            irt = irt,
            issuer = esc(issuer),
            sig = if spec.sign_response {
                SIG_PLACEHOLDER
            } else {
                ""
            },
            body = body,
        );
        let xml = match spec.edit_response {
            Some(f) => f(&xml),
            None => xml,
        };
        if spec.sign_response {
            sign_document(&xml, &id, &self.key, spec.algorithm)
        } else {
            xml
        }
    }

    /// [`TestIdp::response_xml`], base64-encoded as the `SAMLResponse` form field.
    pub fn response_b64(&self, spec: &LoginSpec) -> String {
        STANDARD.encode(self.response_xml(spec))
    }

    /// An unsigned IdP-initiated `LogoutRequest` to `sp_slo_url`.
    pub fn logout_request_xml(
        &self,
        sp_slo_url: &str,
        name_id: &str,
        session_index: Option<&str>,
        now_unix: i64,
    ) -> (String, String) {
        let id = random_id();
        let session = session_index
            .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", esc(s)))
            .unwrap_or_default();
        let xml = format!(
            concat!(
                "<samlp:LogoutRequest xmlns:samlp=\"{samlp}\" xmlns:saml=\"{saml}\" ID=\"{id}\" Version=\"2.0\" ",
                "IssueInstant=\"{now}\" NotOnOrAfter=\"{until}\" Destination=\"{dest}\">",
                "<saml:Issuer>{issuer}</saml:Issuer>{sig}<saml:NameID Format=\"{fmt}\">{name_id}</saml:NameID>{session}",
                "</samlp:LogoutRequest>"
            ),
            samlp = NS_SAMLP,
            saml = NS_SAML,
            id = id,
            now = format_instant(now_unix),
            until = format_instant(now_unix + 300),
            dest = esc(sp_slo_url),
            issuer = esc(&self.entity_id),
            sig = SIG_PLACEHOLDER,
            fmt = NAMEID_EMAIL,
            name_id = esc(name_id),
            session = session,
        );
        (id, xml)
    }

    /// A signed HTTP-Redirect `LogoutRequest`: the raw query string (no leading `?`).
    pub fn logout_request_redirect_query(
        &self,
        sp_slo_url: &str,
        name_id: &str,
        session_index: Option<&str>,
        now_unix: i64,
    ) -> String {
        let (_, xml) = self.logout_request_xml(sp_slo_url, name_id, session_index, now_unix);
        let xml = xml.replace(SIG_PLACEHOLDER, "");
        let url = signed_redirect_url(
            "https://idp.invalid/slo",
            "SAMLRequest",
            &xml,
            Some("rs-1"),
            &self.key,
        )
        .expect("sign redirect");
        url.split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default()
    }

    /// A signed HTTP-POST `LogoutRequest`: the base64 `SAMLRequest` form field.
    pub fn logout_request_post_b64(
        &self,
        sp_slo_url: &str,
        name_id: &str,
        session_index: Option<&str>,
        now_unix: i64,
    ) -> String {
        let (id, xml) = self.logout_request_xml(sp_slo_url, name_id, session_index, now_unix);
        STANDARD.encode(sign_document(
            &xml,
            &id,
            &self.key,
            SignatureAlgorithm::RsaSha256,
        ))
    }
}
