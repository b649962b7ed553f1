//! The checks on a verified assertion (SAML core §2.3-§2.7, profiles §4.1.4.2-§4.1.4.3).

use std::collections::BTreeMap;

use crate::instant::parse_instant;
use crate::reason::{Reason, Rejection, reject};
use crate::response::AcsPolicy;
use crate::xml::{Element, NS_SAML, NS_XSI};

const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// How old an assertion's IssueInstant may be (plus skew). Profiles §4.1.4.3 leaves the
/// freshness window to the SP; ten minutes tolerates slow users on the IdP's POST page.
pub(crate) const MAX_ASSERTION_AGE: i64 = 600;

/// What the server needs from a checked assertion.
pub(crate) struct AssertionFacts {
    pub assertion_id: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    pub attributes: BTreeMap<String, Vec<String>>,
    pub in_response_to: Option<String>,
    pub replay_expires_at: i64,
}

/// `Issuer` must name the IdP and, if it has a `Format`, be an entity name (core §2.2.5,
/// profiles §4.1.4.2).
pub(crate) fn check_issuer(issuer: &Element, expected: &str, what: &str) -> Result<(), Rejection> {
    if let Some(f) = issuer.attr("Format")
        && f != ENTITY_FORMAT
    {
        return reject(Reason::IssuerMismatch, format!("{what} Issuer Format {f}"));
    }
    let value = issuer.trimmed_text();
    if value != expected {
        return reject(
            Reason::IssuerMismatch,
            format!("{what} Issuer {value:?}, expected {expected:?}"),
        );
    }
    Ok(())
}

fn instant(e: &Element, attr: &str) -> Result<Option<i64>, Rejection> {
    match e.attr(attr) {
        None => Ok(None),
        Some(v) => parse_instant(v).map(Some).ok_or_else(|| {
            Rejection::new(
                Reason::Malformed,
                format!("{}@{attr} is not a dateTime: {v}", e.local),
            )
        }),
    }
}

pub(crate) fn check_assertion(
    a: &Element,
    policy: &AcsPolicy,
    now: i64,
) -> Result<AssertionFacts, Rejection> {
    let skew = policy.skew;
    if a.attr("Version") != Some("2.0") {
        return reject(
            Reason::VersionUnsupported,
            format!("Assertion Version {:?}", a.attr("Version").unwrap_or("")),
        );
    }
    let assertion_id = a
        .attr("ID")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejection::new(Reason::Malformed, "Assertion without ID"))?
        .to_string();
    let issuer = a
        .child(NS_SAML, "Issuer")
        .ok_or_else(|| Rejection::new(Reason::IssuerMismatch, "Assertion without Issuer"))?;
    check_issuer(issuer, policy.idp_entity_id, "Assertion")?;

    let issued = instant(a, "IssueInstant")?
        .ok_or_else(|| Rejection::new(Reason::Malformed, "Assertion without IssueInstant"))?;
    if issued > now + skew.secs() {
        return reject(
            Reason::NotYetValid,
            "Assertion IssueInstant is in the future",
        );
    }
    if now >= issued + MAX_ASSERTION_AGE + skew.secs() {
        return reject(
            Reason::Expired,
            "Assertion IssueInstant is more than 10 minutes old",
        );
    }

    // Conditions (core §2.5.1): time window, then audience.
    let conditions = a.child(NS_SAML, "Conditions");
    let mut latest_end: Option<i64> = None;
    if let Some(c) = conditions {
        let nb = instant(c, "NotBefore")?;
        let noa = instant(c, "NotOnOrAfter")?;
        if !skew.within(now, nb, None) {
            return reject(Reason::NotYetValid, "Conditions NotBefore is in the future");
        }
        if !skew.within(now, None, noa) {
            return reject(Reason::Expired, "Conditions NotOnOrAfter has passed");
        }
        latest_end = noa;
    }
    // Core §2.5.1.4: each AudienceRestriction must list us (a conjunction of restrictions);
    // profiles §4.1.4.2 requires at least one naming the SP.
    let restrictions: Vec<&Element> = conditions
        .map(|c| c.children_named(NS_SAML, "AudienceRestriction").collect())
        .unwrap_or_default();
    if restrictions.is_empty() {
        return reject(
            Reason::AudienceMismatch,
            "Assertion has no AudienceRestriction",
        );
    }
    for r in &restrictions {
        if !r
            .children_named(NS_SAML, "Audience")
            .any(|au| au.trimmed_text() == policy.sp_entity_id)
        {
            return reject(
                Reason::AudienceMismatch,
                format!(
                    "AudienceRestriction does not include {}",
                    policy.sp_entity_id
                ),
            );
        }
    }

    let subject = a
        .child(NS_SAML, "Subject")
        .ok_or_else(|| Rejection::new(Reason::NoSubject, "Assertion without Subject"))?;
    let name_id_el = subject.child(NS_SAML, "NameID").ok_or_else(|| {
        let what = if subject.child(NS_SAML, "EncryptedID").is_some() {
            "EncryptedID is not supported"
        } else {
            "Subject without NameID"
        };
        Rejection::new(Reason::NoSubject, what)
    })?;
    let name_id = name_id_el.trimmed_text();
    if name_id.is_empty() {
        return reject(Reason::NoSubject, "empty NameID");
    }

    // Profiles §4.1.4.2: at least one bearer SubjectConfirmation whose data has a future
    // NotOnOrAfter, our ACS as Recipient, and no NotBefore.
    let (scd_end, in_response_to) = bearer_confirmation(subject, policy, now)?;
    latest_end = Some(latest_end.map_or(scd_end, |e| e.max(scd_end)));

    let session_index = a
        .child(NS_SAML, "AuthnStatement")
        .and_then(|s| s.attr("SessionIndex"))
        .map(str::to_string);

    Ok(AssertionFacts {
        assertion_id,
        name_id,
        name_id_format: name_id_el.attr("Format").map(str::to_string),
        session_index,
        attributes: attributes(a),
        in_response_to,
        replay_expires_at: latest_end.map_or(issued + MAX_ASSERTION_AGE, |e| e) + skew.secs(),
    })
}

/// Returns the accepted confirmation's `NotOnOrAfter` and `InResponseTo`. When none is
/// acceptable, the reason is that of the first bearer confirmation's first failed check.
fn bearer_confirmation(
    subject: &Element,
    policy: &AcsPolicy,
    now: i64,
) -> Result<(i64, Option<String>), Rejection> {
    let mut first_failure: Option<Rejection> = None;
    for sc in subject.children_named(NS_SAML, "SubjectConfirmation") {
        if sc.attr("Method") != Some(BEARER) {
            continue;
        }
        match check_bearer(sc, policy, now) {
            Ok(ok) => return Ok(ok),
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    Err(first_failure.unwrap_or_else(|| {
        Rejection::new(
            Reason::BearerConfirmationMissing,
            "no bearer SubjectConfirmation",
        )
    }))
}

fn check_bearer(
    sc: &Element,
    policy: &AcsPolicy,
    now: i64,
) -> Result<(i64, Option<String>), Rejection> {
    let data = sc
        .child(NS_SAML, "SubjectConfirmationData")
        .ok_or_else(|| {
            Rejection::new(
                Reason::BearerConfirmationMissing,
                "bearer confirmation without data",
            )
        })?;
    let noa = instant(data, "NotOnOrAfter")?.ok_or_else(|| {
        Rejection::new(
            Reason::BearerConfirmationMissing,
            "SubjectConfirmationData without NotOnOrAfter",
        )
    })?;
    if !policy.skew.within(now, None, Some(noa)) {
        return reject(
            Reason::Expired,
            "SubjectConfirmationData NotOnOrAfter has passed",
        );
    }
    if !policy.skew.within(now, instant(data, "NotBefore")?, None) {
        return reject(
            Reason::NotYetValid,
            "SubjectConfirmationData NotBefore is in the future",
        );
    }
    match data.attr("Recipient") {
        Some(r) if r == policy.acs_url => {}
        Some(r) => return reject(Reason::RecipientMismatch, format!("Recipient {r}")),
        None => {
            return reject(
                Reason::RecipientMismatch,
                "SubjectConfirmationData without Recipient",
            );
        }
    }
    Ok((noa, data.attr("InResponseTo").map(str::to_string)))
}

/// All `AttributeStatement` values as strings, keyed by `Name` and also by `FriendlyName`.
/// `xsi:nil` values are skipped; element content is flattened to its text.
fn attributes(a: &Element) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for st in a.children_named(NS_SAML, "AttributeStatement") {
        for at in st.children_named(NS_SAML, "Attribute") {
            let Some(name) = at.attr("Name") else {
                continue;
            };
            let values: Vec<String> = at
                .children_named(NS_SAML, "AttributeValue")
                .filter(|v| !matches!(v.attr_ns(NS_XSI, "nil"), Some("true") | Some("1")))
                .map(deep_text)
                .collect();
            out.entry(name.to_string())
                .or_default()
                .extend(values.iter().cloned());
            if let Some(friendly) = at.attr("FriendlyName")
                && friendly != name
            {
                out.entry(friendly.to_string()).or_default().extend(values);
            }
        }
    }
    out
}

fn deep_text(e: &Element) -> String {
    let mut s = String::new();
    fn go(e: &Element, s: &mut String) {
        for n in &e.children {
            match n {
                crate::xml::Node::Text(t) => s.push_str(t),
                crate::xml::Node::Element(c) => go(c, s),
            }
        }
    }
    go(e, &mut s);
    s
}
