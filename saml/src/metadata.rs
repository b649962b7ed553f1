//! SAML metadata (SAML metadata spec, saml-metadata-2.0-os): reading an IdP's
//! `EntityDescriptor` and writing ours.
//!
//! Metadata signatures are not verified here: metadata reaches idhub from a tenant administrator
//! (upload or a URL fetched over TLS), and the certificates it carries are then pinned for
//! response validation (the SAML V2.0 Metadata Interoperability profile's trust model).

use crate::cert::Certificate;
use crate::reason::{Reason, Rejection, reject};
use crate::xml::{self, Element, NS_DS, NS_MD, esc};

/// Metadata documents larger than this are refused.
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;

const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const PROTOCOL_SAML2: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

/// What idhub needs from an IdP's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_redirect_url: Option<String>,
    pub sso_post_url: Option<String>,
    pub slo_redirect_url: Option<String>,
    pub slo_post_url: Option<String>,
    /// Certificates of `KeyDescriptor`s with `use="signing"` or no `use` (metadata §2.4.1.1).
    pub signing_certs: Vec<Certificate>,
    pub name_id_formats: Vec<String>,
    pub want_authn_requests_signed: bool,
}

impl IdpMetadata {
    /// Parses an `EntityDescriptor`, or an `EntitiesDescriptor` holding exactly one IdP.
    /// Refuses DTDs and documents over 1 MiB; comments are tolerated (metadata is often
    /// hand-edited). Requires at least one SSO endpoint and one signing certificate.
    pub fn parse(xml_text: &str) -> Result<Self, Rejection> {
        if xml_text.len() > MAX_METADATA_BYTES {
            return reject(Reason::TooLarge, "metadata over 1 MiB");
        }
        let root = xml::parse(xml_text, xml::LENIENT)?;
        let entity = if root.is(NS_MD, "EntityDescriptor") {
            if idp_descriptor(&root).is_none() {
                return reject(Reason::Malformed, "metadata has no IDPSSODescriptor");
            }
            &root
        } else if root.is(NS_MD, "EntitiesDescriptor") {
            let mut idps = Vec::new();
            collect_idp_entities(&root, &mut idps);
            match idps.as_slice() {
                [one] => *one,
                [] => return reject(Reason::Malformed, "metadata has no IDPSSODescriptor"),
                _ => {
                    return reject(
                        Reason::Malformed,
                        format!(
                            "EntitiesDescriptor holds {} identity providers; upload the one to use",
                            idps.len()
                        ),
                    );
                }
            }
        } else {
            return reject(
                Reason::Malformed,
                "root element is not md:EntityDescriptor or md:EntitiesDescriptor",
            );
        };
        let entity_id = entity
            .attr("entityID")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Rejection::new(Reason::Malformed, "EntityDescriptor has no entityID"))?
            .to_string();
        let idp = idp_descriptor(entity)
            .ok_or_else(|| Rejection::new(Reason::Malformed, "metadata has no IDPSSODescriptor"))?;

        let endpoint = |local: &str, binding: &str| {
            idp.children_named(NS_MD, local)
                .find(|e| e.attr("Binding") == Some(binding))
                .and_then(|e| e.attr("Location"))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let sso_redirect_url = endpoint("SingleSignOnService", BINDING_REDIRECT);
        let sso_post_url = endpoint("SingleSignOnService", BINDING_POST);
        let slo_redirect_url = endpoint("SingleLogoutService", BINDING_REDIRECT);
        let slo_post_url = endpoint("SingleLogoutService", BINDING_POST);
        if sso_redirect_url.is_none() && sso_post_url.is_none() {
            return reject(
                Reason::Malformed,
                "IDPSSODescriptor has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding",
            );
        }

        let mut signing_certs = Vec::new();
        for kd in idp.children_named(NS_MD, "KeyDescriptor") {
            if !matches!(kd.attr("use"), None | Some("signing")) {
                continue;
            }
            let Some(ki) = kd.child(NS_DS, "KeyInfo") else {
                continue;
            };
            for data in ki.children_named(NS_DS, "X509Data") {
                for c in data.children_named(NS_DS, "X509Certificate") {
                    let cert = Certificate::parse(&c.text()).map_err(|e| {
                        Rejection::new(Reason::Malformed, format!("signing certificate: {e}"))
                    })?;
                    if !signing_certs.contains(&cert) {
                        signing_certs.push(cert);
                    }
                }
            }
        }
        if signing_certs.is_empty() {
            return reject(
                Reason::Malformed,
                "IDPSSODescriptor has no signing certificate (KeyDescriptor use=\"signing\" with ds:X509Certificate)",
            );
        }
        let name_id_formats = idp
            .children_named(NS_MD, "NameIDFormat")
            .map(|e| e.trimmed_text())
            .filter(|s| !s.is_empty())
            .collect();
        let want_authn_requests_signed = matches!(
            idp.attr("WantAuthnRequestsSigned").map(str::trim),
            Some("true") | Some("1")
        );
        Ok(Self {
            entity_id,
            sso_redirect_url,
            sso_post_url,
            slo_redirect_url,
            slo_post_url,
            signing_certs,
            name_id_formats,
            want_authn_requests_signed,
        })
    }
}

fn idp_descriptor(entity: &Element) -> Option<&Element> {
    entity.children_named(NS_MD, "IDPSSODescriptor").find(|d| {
        d.attr("protocolSupportEnumeration")
            .is_some_and(|p| p.split_whitespace().any(|x| x == PROTOCOL_SAML2))
    })
}

fn collect_idp_entities<'a>(e: &'a Element, out: &mut Vec<&'a Element>) {
    for c in e.elements() {
        if c.is(NS_MD, "EntityDescriptor") && idp_descriptor(c).is_some() {
            out.push(c);
        } else if c.is(NS_MD, "EntitiesDescriptor") {
            collect_idp_entities(c, out);
        }
    }
}

/// Inputs of [`sp_metadata`].
#[derive(Clone, Copy, Debug)]
pub struct SpMetadataParams<'a> {
    pub entity_id: &'a str,
    pub acs_url: &'a str,
    pub slo_url: &'a str,
    /// Current first, then next/previous during rollover; each published for `use="signing"`
    /// AND `use="encryption"`.
    pub certificates: &'a [Certificate],
    pub name_id_format: Option<&'a str>,
    pub want_assertions_signed: bool,
}

/// Our `EntityDescriptor`: `SPSSODescriptor` with `AuthnRequestsSigned="true"`, the ACS at index
/// 0 with the HTTP-POST binding (the only response binding idhub accepts, profiles §4.1.4.5
/// forbids Redirect for responses) and SLO over Redirect and POST.
pub fn sp_metadata(p: &SpMetadataParams) -> String {
    let mut keys = String::new();
    for c in p.certificates {
        for usage in ["signing", "encryption"] {
            keys.push_str(&format!(
                "<md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                c.base64()
            ));
        }
    }
    let name_id = p
        .name_id_format
        .map(|f| format!("<md:NameIDFormat>{}</md:NameIDFormat>", esc(f)))
        .unwrap_or_default();
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<md:EntityDescriptor xmlns:md=\"{md}\" xmlns:ds=\"{ds}\" entityID=\"{entity}\">",
            "<md:SPSSODescriptor AuthnRequestsSigned=\"true\" WantAssertionsSigned=\"{was}\" protocolSupportEnumeration=\"{proto}\">",
            "{keys}",
            "<md:SingleLogoutService Binding=\"{redirect}\" Location=\"{slo}\"/>",
            "<md:SingleLogoutService Binding=\"{post}\" Location=\"{slo}\"/>",
            "{name_id}",
            "<md:AssertionConsumerService Binding=\"{post}\" Location=\"{acs}\" index=\"0\" isDefault=\"true\"/>",
            "</md:SPSSODescriptor></md:EntityDescriptor>"
        ),
        md = NS_MD,
        ds = NS_DS,
        entity = esc(p.entity_id),
        was = p.want_assertions_signed,
        proto = PROTOCOL_SAML2,
        keys = keys,
        redirect = BINDING_REDIRECT,
        post = BINDING_POST,
        slo = esc(p.slo_url),
        acs = esc(p.acs_url),
        name_id = name_id,
    )
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
