//! Single Logout (SAML core §3.7, profiles §4.4): receiving an IdP's `LogoutRequest` over
//! HTTP-Redirect or HTTP-POST, and sending our own `LogoutRequest`/`LogoutResponse` over
//! HTTP-Redirect. Profiles §4.4.4.1 requires logout messages to be signed; unsigned ones are
//! refused.

use crate::algorithms::AlgorithmPolicy;
use crate::cert::Certificate;
use crate::clock::{Clock, SkewWindow};
use crate::conditions::{MAX_ASSERTION_AGE, check_issuer};
use crate::instant::{format_instant, parse_instant};
use crate::keys::{KeyError, SpKeyPair};
use crate::prescan;
use crate::reason::{Reason, Rejection, reject};
use crate::redirect::{new_id, parse_redirect_query, signed_redirect_url, verify_query_signature};
use crate::request::RedirectRequest;
use crate::response::{STATUS_SUCCESS, decode_document};
use crate::verify::reduce_to_signed;
use crate::xml::{self, Element, NS_SAML, NS_SAMLP, STRICT, esc};

/// Largest POSTed logout message accepted (decoded).
pub const MAX_LOGOUT_BYTES: usize = 256 * 1024;
/// Validity we give our own logout requests (`NotOnOrAfter`, core §3.7.1).
const OUR_LOGOUT_VALIDITY: i64 = 300;

/// A verified IdP-initiated `LogoutRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutRequestIn {
    pub id: String,
    pub issuer: String,
    pub name_id: String,
    pub session_indexes: Vec<String>,
    /// From the redirect query (POST carries RelayState as a separate form field).
    pub relay_state: Option<String>,
}

/// HTTP-Redirect: `query` is the raw query string (SAMLRequest, RelayState, SigAlg,
/// Signature); the signature is REQUIRED and verified against one of `idp_certs` over the raw
/// encoded parameters (bindings §3.4.4.1); SigAlg must be allowed by `algorithms`;
/// IssueInstant/NotOnOrAfter checked with skew; Destination must equal `slo_url` when present.
pub fn logout_request_from_redirect(
    query: &str,
    slo_url: &str,
    idp_entity_id: &str,
    idp_certs: &[Certificate],
    algorithms: &AlgorithmPolicy,
    skew: SkewWindow,
    clock: &dyn Clock,
) -> Result<LogoutRequestIn, Rejection> {
    let q = parse_redirect_query(query, "SAMLRequest")?;
    let Some((signed, alg, sig)) = &q.signature else {
        return reject(
            Reason::SignatureMissing,
            "redirect LogoutRequest without Signature",
        );
    };
    verify_query_signature(signed, alg, sig, idp_certs, algorithms)?;
    let root = xml::parse(&q.message_xml, STRICT)?;
    let mut out = check_logout_request(&root, slo_url, idp_entity_id, skew, clock.now_unix())?;
    out.relay_state = q.relay_state;
    Ok(out)
}

/// HTTP-POST: the XML signature is required and verified (samael reduce-to-signed, only the
/// signed content is read); same checks as the redirect form.
pub fn logout_request_from_post(
    saml_request_b64: &str,
    slo_url: &str,
    idp_entity_id: &str,
    idp_certs: &[Certificate],
    algorithms: &AlgorithmPolicy,
    skew: SkewWindow,
    clock: &dyn Clock,
) -> Result<LogoutRequestIn, Rejection> {
    let text = decode_document(saml_request_b64, MAX_LOGOUT_BYTES)?;
    let root = xml::parse(&text, STRICT)?;
    if !root.is(NS_SAMLP, "LogoutRequest") {
        return reject(
            Reason::Malformed,
            format!("root element is <{}>, not samlp:LogoutRequest", root.local),
        );
    }
    let sigs = prescan::signatures(&root);
    if sigs.is_empty() {
        return reject(
            Reason::SignatureMissing,
            "POSTed LogoutRequest is not signed",
        );
    }
    prescan::check_algorithms(&sigs, algorithms)?;
    prescan::check_unique_ids(&root)?;
    prescan::check_signature_sites(&sigs, &[&root])?;
    let reduced = xml::parse(&reduce_to_signed(&text, idp_certs, algorithms)?, STRICT)?;
    if !reduced.is(NS_SAMLP, "LogoutRequest") || reduced.attr("ID") != root.attr("ID") {
        return reject(
            Reason::SignatureWrapping,
            "signed content is not this LogoutRequest",
        );
    }
    check_logout_request(&reduced, slo_url, idp_entity_id, skew, clock.now_unix())
}

fn check_logout_request(
    root: &Element,
    slo_url: &str,
    idp_entity_id: &str,
    skew: SkewWindow,
    now: i64,
) -> Result<LogoutRequestIn, Rejection> {
    if !root.is(NS_SAMLP, "LogoutRequest") {
        return reject(
            Reason::Malformed,
            format!("root element is <{}>, not samlp:LogoutRequest", root.local),
        );
    }
    if root.attr("Version") != Some("2.0") {
        return reject(
            Reason::VersionUnsupported,
            format!("Version {:?}", root.attr("Version").unwrap_or("")),
        );
    }
    let id = root
        .attr("ID")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejection::new(Reason::Malformed, "LogoutRequest without ID"))?
        .to_string();
    let issuer = root
        .child(NS_SAML, "Issuer")
        .ok_or_else(|| Rejection::new(Reason::IssuerMismatch, "LogoutRequest without Issuer"))?;
    check_issuer(issuer, idp_entity_id, "LogoutRequest")?;
    if let Some(d) = root.attr("Destination")
        && d != slo_url
    {
        return reject(Reason::DestinationMismatch, format!("Destination {d}"));
    }
    let issued = root
        .attr("IssueInstant")
        .and_then(parse_instant)
        .ok_or_else(|| {
            Rejection::new(
                Reason::Malformed,
                "LogoutRequest without valid IssueInstant",
            )
        })?;
    if issued > now + skew.secs() {
        return reject(
            Reason::NotYetValid,
            "LogoutRequest IssueInstant is in the future",
        );
    }
    if now >= issued + MAX_ASSERTION_AGE + skew.secs() {
        return reject(
            Reason::Expired,
            "LogoutRequest IssueInstant is more than 10 minutes old",
        );
    }
    if let Some(v) = root.attr("NotOnOrAfter") {
        let noa = parse_instant(v)
            .ok_or_else(|| Rejection::new(Reason::Malformed, "NotOnOrAfter is not a dateTime"))?;
        if !skew.within(now, None, Some(noa)) {
            return reject(Reason::Expired, "LogoutRequest NotOnOrAfter has passed");
        }
    }
    let name_id = root
        .child(NS_SAML, "NameID")
        .map(|n| n.trimmed_text())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejection::new(Reason::NoSubject, "LogoutRequest without NameID"))?;
    Ok(LogoutRequestIn {
        id,
        issuer: idp_entity_id.to_string(),
        name_id,
        session_indexes: root
            .children_named(NS_SAMLP, "SessionIndex")
            .map(|s| s.trimmed_text())
            .collect(),
        relay_state: None,
    })
}

/// SP-initiated logout: a signed redirect `LogoutRequest` to the IdP's SLO URL.
#[allow(clippy::too_many_arguments)]
pub fn logout_request_redirect(
    sp_entity_id: &str,
    idp_slo_url: &str,
    name_id: &str,
    name_id_format: Option<&str>,
    session_index: Option<&str>,
    relay_state: Option<&str>,
    now_unix: i64,
    key: &SpKeyPair,
) -> Result<RedirectRequest, KeyError> {
    let id = new_id();
    let format = name_id_format
        .map(|f| format!(" Format=\"{}\"", esc(f)))
        .unwrap_or_default();
    let session = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", esc(s)))
        .unwrap_or_default();
    let xml = format!(
        concat!(
            "<samlp:LogoutRequest xmlns:samlp=\"{samlp}\" xmlns:saml=\"{saml}\" ID=\"{id}\" Version=\"2.0\" ",
            "IssueInstant=\"{now}\" NotOnOrAfter=\"{until}\" Destination=\"{dest}\">",
            "<saml:Issuer>{issuer}</saml:Issuer><saml:NameID{format}>{name_id}</saml:NameID>{session}",
            "</samlp:LogoutRequest>"
        ),
        samlp = NS_SAMLP,
        saml = NS_SAML,
        id = id,
        now = format_instant(now_unix),
        until = format_instant(now_unix + OUR_LOGOUT_VALIDITY),
        dest = esc(idp_slo_url),
        issuer = esc(sp_entity_id),
        format = format,
        name_id = esc(name_id),
        session = session,
    );
    let url = signed_redirect_url(idp_slo_url, "SAMLRequest", &xml, relay_state, key)?;
    Ok(RedirectRequest { id, url, xml })
}

/// The `LogoutResponse` (Success) the SP sends back to the IdP over redirect after an
/// IdP-initiated logout, signed (profiles §4.4.3.4).
pub fn logout_response_redirect(
    sp_entity_id: &str,
    idp_slo_url: &str,
    in_response_to: &str,
    relay_state: Option<&str>,
    now_unix: i64,
    key: &SpKeyPair,
) -> Result<String, KeyError> {
    let xml = format!(
        concat!(
            "<samlp:LogoutResponse xmlns:samlp=\"{samlp}\" xmlns:saml=\"{saml}\" ID=\"{id}\" Version=\"2.0\" ",
            "IssueInstant=\"{now}\" Destination=\"{dest}\" InResponseTo=\"{irt}\">",
            "<saml:Issuer>{issuer}</saml:Issuer>",
            "<samlp:Status><samlp:StatusCode Value=\"{success}\"/></samlp:Status>",
            "</samlp:LogoutResponse>"
        ),
        samlp = NS_SAMLP,
        saml = NS_SAML,
        id = new_id(),
        now = format_instant(now_unix),
        dest = esc(idp_slo_url),
        irt = esc(in_response_to),
        issuer = esc(sp_entity_id),
        success = STATUS_SUCCESS,
    );
    signed_redirect_url(idp_slo_url, "SAMLResponse", &xml, relay_state, key)
}

#[cfg(test)]
#[path = "logout_tests.rs"]
mod tests;
