//! SP-initiated login: the `AuthnRequest` (SAML core §3.4.1) sent over the HTTP-Redirect binding
//! with a query-string signature (bindings §3.4.4.1).

use crate::instant::format_instant;
use crate::keys::{KeyError, SpKeyPair};
use crate::redirect::{new_id, signed_redirect_url};
use crate::xml::{NS_SAML, NS_SAMLP, esc};

pub(crate) const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// Inputs of [`authn_request_redirect`].
#[derive(Clone, Copy, Debug)]
pub struct AuthnRequestParams<'a> {
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub idp_sso_url: &'a str,
    pub name_id_format: Option<&'a str>,
    pub force_authn: bool,
    pub relay_state: Option<&'a str>,
    pub now_unix: i64,
}

/// A signed redirect message ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectRequest {
    /// `_` + 32 random hex digits; store it to match the response's `InResponseTo`.
    pub id: String,
    /// The IdP endpoint with `SAMLRequest`, `RelayState`, `SigAlg` (rsa-sha256) and `Signature`
    /// appended; query parameters already on the endpoint are kept.
    pub url: String,
    /// The unsigned XML (for logs and debugging).
    pub xml: String,
}

/// Builds and signs an `AuthnRequest` asking for a response over HTTP-POST at `acs_url`
/// (profiles §4.1.4.1: the SP names its ACS, and the response must come by POST).
pub fn authn_request_redirect(
    p: &AuthnRequestParams,
    key: &SpKeyPair,
) -> Result<RedirectRequest, KeyError> {
    let id = new_id();
    let force = if p.force_authn {
        " ForceAuthn=\"true\""
    } else {
        ""
    };
    let policy = match p.name_id_format {
        Some(f) => format!(
            "<samlp:NameIDPolicy Format=\"{}\" AllowCreate=\"true\"/>",
            esc(f)
        ),
        None => "<samlp:NameIDPolicy AllowCreate=\"true\"/>".to_string(),
    };
    let xml = format!(
        concat!(
            "<samlp:AuthnRequest xmlns:samlp=\"{samlp}\" xmlns:saml=\"{saml}\" ID=\"{id}\" Version=\"2.0\" ",
            "IssueInstant=\"{instant}\" Destination=\"{dest}\" AssertionConsumerServiceURL=\"{acs}\" ",
            "ProtocolBinding=\"{binding}\"{force}>",
            "<saml:Issuer>{issuer}</saml:Issuer>{policy}</samlp:AuthnRequest>"
        ),
        samlp = NS_SAMLP,
        saml = NS_SAML,
        id = id,
        instant = format_instant(p.now_unix),
        dest = esc(p.idp_sso_url),
        acs = esc(p.acs_url),
        binding = BINDING_POST,
        force = force,
        issuer = esc(p.sp_entity_id),
        policy = policy,
    );
    let url = signed_redirect_url(p.idp_sso_url, "SAMLRequest", &xml, p.relay_state, key)?;
    Ok(RedirectRequest { id, url, xml })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::algorithms::AlgorithmPolicy;
    use crate::redirect::{parse_redirect_query, verify_query_signature};
    use crate::xml::{self, STRICT};

    #[test]
    fn builds_a_signed_parsable_request() {
        let key = SpKeyPair::generate("sp.test", 1).unwrap();
        let r = authn_request_redirect(
            &AuthnRequestParams {
                sp_entity_id: "https://sp.test/saml/t1",
                acs_url: "https://sp.test/saml/t1/acs?x=1&y=2",
                idp_sso_url: "https://idp.test/sso?app=7",
                name_id_format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
                force_authn: true,
                relay_state: Some("abc"),
                now_unix: 1_700_000_000,
            },
            &key,
        )
        .unwrap();
        assert!(r.url.starts_with("https://idp.test/sso?app=7&SAMLRequest="));
        let q = parse_redirect_query(r.url.split_once('?').unwrap().1, "SAMLRequest").unwrap();
        assert_eq!(q.message_xml, r.xml);
        let (signed, alg, sig) = q.signature.unwrap();
        verify_query_signature(
            &signed,
            &alg,
            &sig,
            &[key.certificate().clone()],
            &AlgorithmPolicy::default(),
        )
        .unwrap();
        let root = xml::parse(&r.xml, STRICT).unwrap();
        assert!(root.is(NS_SAMLP, "AuthnRequest"));
        assert_eq!(root.attr("ID"), Some(r.id.as_str()));
        assert_eq!(root.attr("IssueInstant"), Some("2023-11-14T22:13:20Z"));
        assert_eq!(
            root.attr("AssertionConsumerServiceURL"),
            Some("https://sp.test/saml/t1/acs?x=1&y=2")
        );
        assert_eq!(root.attr("ForceAuthn"), Some("true"));
        assert_eq!(
            root.child(NS_SAML, "Issuer").unwrap().text(),
            "https://sp.test/saml/t1"
        );
    }
}
