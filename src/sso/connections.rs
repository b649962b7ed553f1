//! Connections to tenants' IdPs: created from metadata XML, from a metadata URL (fetched with
//! an SSRF guard, a timeout and a size cap, then refreshed on a schedule) or from manual
//! fields; validated here so that nothing unusable is stored.

use super::{Runtime, SsoError};
use crate::app::AppState;
use crate::model::{Actor, Micros, now_micros};
use crate::store::TenantStore;
use crate::store::saml::{AttributeMapping, SamlConnection};
use saml::{Certificate, IdpMetadata};
use std::sync::Arc;
use std::time::Duration;

/// Largest metadata document accepted (upload or fetch).
pub const METADATA_MAX_BYTES: usize = 1024 * 1024;
/// Time limit of one metadata fetch.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry delay after a failed scheduled fetch.
const RETRY_AFTER_FAILURE: Micros = 3600 * 1_000_000;

/// The lookup keys JIT and linking understand, in their default order.
pub const LINK_KEYS: [&str; 3] = ["externalId", "userName", "email"];

/// Settings of a connection as given by an administrator; `None` keeps (or defaults) a value.
#[derive(Clone, Debug, Default)]
pub struct ConnectionInput {
    pub name: Option<String>,
    pub metadata_xml: Option<String>,
    pub metadata_url: Option<String>,
    pub idp_entity_id: Option<String>,
    pub sso_url: Option<String>,
    /// `Some("")` clears it.
    pub slo_url: Option<String>,
    pub certificates: Option<Vec<String>>,
    pub allow_idp_initiated: Option<bool>,
    pub clock_skew_secs: Option<i64>,
    pub required_signing: Option<String>,
    pub want_encrypted: Option<bool>,
    /// `Some("")` clears it.
    pub name_id_format: Option<String>,
    pub attribute_mapping: Option<AttributeMapping>,
    pub jit: Option<bool>,
    pub link_order: Option<Vec<String>>,
    pub allow_sha1: Option<bool>,
    pub active: Option<bool>,
}

impl ConnectionInput {
    fn has_manual_idp_fields(&self) -> bool {
        self.idp_entity_id.is_some() || self.sso_url.is_some() || self.certificates.is_some()
    }
}

/// Creates a connection from exactly one source of IdP facts: `metadata_xml`, `metadata_url`
/// or the manual fields (`idp_entity_id`, `sso_url`, `certificates`).
pub async fn create(
    state: &AppState,
    ts: &TenantStore,
    actor: &Actor,
    input: ConnectionInput,
) -> Result<SamlConnection, SsoError> {
    let sources = [
        input.metadata_xml.is_some(),
        input.metadata_url.is_some(),
        input.has_manual_idp_fields(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources != 1 {
        return Err(SsoError::invalid(
            "metadata_xml",
            "give exactly one of: metadata_xml, metadata_url, or the manual fields (idp_entity_id, sso_url, certificates)",
        ));
    }
    let now = now_micros();
    let mut c = SamlConnection {
        id: crate::store::new_public_id(),
        name: String::new(),
        idp_entity_id: String::new(),
        sso_url: String::new(),
        slo_url: None,
        certificates: Vec::new(),
        metadata_url: None,
        metadata_status: None,
        metadata_error: None,
        metadata_fetched_at: None,
        metadata_next_at: None,
        allow_idp_initiated: false,
        clock_skew_secs: saml::SkewWindow::DEFAULT_SECS,
        required_signing: "either".into(),
        want_encrypted: false,
        name_id_format: None,
        attribute_mapping: AttributeMapping::default(),
        jit: true,
        link_order: LINK_KEYS.iter().map(|s| (*s).to_owned()).collect(),
        allow_sha1: false,
        active: true,
        cert_notified: Default::default(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    if let Some(xml) = &input.metadata_xml {
        let md = parse_metadata(xml).map_err(|m| SsoError::invalid("metadata_xml", m))?;
        apply_metadata(&mut c, &md).map_err(|m| SsoError::invalid("metadata_xml", m))?;
    } else if let Some(url) = &input.metadata_url {
        let md = fetch_metadata(state, url)
            .await
            .map_err(|m| SsoError::invalid("metadata_url", m))?;
        apply_metadata(&mut c, &md).map_err(|m| SsoError::invalid("metadata_url", m))?;
        c.metadata_url = Some(url.clone());
        mark_fetched(state, &mut c, now);
    }
    if c.name.is_empty() {
        c.name = input
            .name
            .clone()
            .unwrap_or_else(|| format!("SAML ({})", host_of(&c.idp_entity_id)));
    }
    apply_settings(&mut c, &input)?;
    validate(&c)?;
    Ok(ts.create_saml_connection(actor, &c).await?)
}

/// Changes settings (and IdP facts) of a connection; `expected_version` guards against lost
/// updates when given (`If-Match`).
pub async fn update(
    state: &AppState,
    ts: &TenantStore,
    actor: &Actor,
    id: &str,
    input: ConnectionInput,
    expected_version: Option<i64>,
) -> Result<SamlConnection, SsoError> {
    let current = ts
        .saml_connection(id)
        .await?
        .ok_or(SsoError::NotFound("connection"))?;
    if let Some(v) = expected_version
        && v != current.version
    {
        return Err(SsoError::Conflict(
            "the connection changed since it was read (version mismatch)".into(),
        ));
    }
    let mut c = current.clone();
    if input.metadata_xml.is_some() && input.metadata_url.is_some() {
        return Err(SsoError::invalid(
            "metadata_xml",
            "give metadata_xml or metadata_url, not both",
        ));
    }
    if let Some(xml) = &input.metadata_xml {
        let md = parse_metadata(xml).map_err(|m| SsoError::invalid("metadata_xml", m))?;
        apply_metadata(&mut c, &md).map_err(|m| SsoError::invalid("metadata_xml", m))?;
        c.metadata_url = None;
        c.metadata_next_at = None;
    } else if let Some(url) = &input.metadata_url {
        if url.is_empty() {
            c.metadata_url = None;
            c.metadata_next_at = None;
        } else {
            let md = fetch_metadata(state, url)
                .await
                .map_err(|m| SsoError::invalid("metadata_url", m))?;
            apply_metadata(&mut c, &md).map_err(|m| SsoError::invalid("metadata_url", m))?;
            c.metadata_url = Some(url.clone());
            mark_fetched(state, &mut c, now_micros());
        }
    }
    if let Some(n) = &input.name {
        c.name = n.clone();
    }
    apply_settings(&mut c, &input)?;
    validate(&c)?;
    let stored = ts
        .update_saml_connection(actor, &c, current.version, "sso.connection.update")
        .await
        .map_err(conflict)?;
    state.sso.runtimes.invalidate(&stored.id).await;
    Ok(stored)
}

pub async fn delete(
    state: &AppState,
    ts: &TenantStore,
    actor: &Actor,
    id: &str,
) -> Result<(), SsoError> {
    ts.delete_saml_connection(actor, id)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => SsoError::NotFound("connection"),
            e => e.into(),
        })?;
    state.sso.runtimes.invalidate(id).await;
    Ok(())
}

/// Fetches a connection's metadata URL now and records the outcome (the IdP facts change only
/// when the fetch and parse succeed; a failure is visible in `metadata_status`/`_error`).
pub async fn refresh_metadata(
    state: &AppState,
    ts: &TenantStore,
    actor: &Actor,
    id: &str,
) -> Result<SamlConnection, SsoError> {
    let current = ts
        .saml_connection(id)
        .await?
        .ok_or(SsoError::NotFound("connection"))?;
    let Some(url) = current.metadata_url.clone() else {
        return Err(SsoError::invalid(
            "metadata_url",
            "this connection has no metadata URL",
        ));
    };
    let mut c = current.clone();
    let now = now_micros();
    match fetch_metadata(state, &url).await {
        Ok(md) => match apply_metadata(&mut c, &md) {
            Ok(()) => mark_fetched(state, &mut c, now),
            Err(m) => mark_failed(&mut c, now, m),
        },
        Err(m) => mark_failed(&mut c, now, m),
    }
    let stored = ts
        .update_saml_connection(
            actor,
            &c,
            current.version,
            "sso.connection.metadata_refresh",
        )
        .await
        .map_err(conflict)?;
    state.sso.runtimes.invalidate(&stored.id).await;
    Ok(stored)
}

/// The connection with its certificates parsed, from this node's cache.
pub async fn runtime(
    state: &AppState,
    ts: &TenantStore,
    id: &str,
) -> Result<Arc<Runtime>, SsoError> {
    if let Some(r) = state.sso.runtimes.get(id).await {
        // Keyed by connection id alone: the tenant check keeps the cache tenant-scoped.
        return if &r.tenant_id == ts.tenant_id() {
            Ok(r)
        } else {
            Err(SsoError::NotFound("connection"))
        };
    }
    let epoch = state.sso.runtimes.epoch();
    let connection = ts
        .saml_connection(id)
        .await?
        .ok_or(SsoError::NotFound("connection"))?;
    let certificates = parse_certificates(&connection.certificates)
        .map_err(|m| SsoError::Internal(format!("stored certificate: {m}")))?;
    let r = Arc::new(Runtime {
        tenant_id: ts.tenant_id().clone(),
        connection,
        certificates,
    });
    state
        .sso
        .runtimes
        .insert_if_fresh(id.to_owned(), r.clone(), epoch)
        .await;
    Ok(r)
}

fn conflict(e: crate::store::StoreError) -> SsoError {
    match e {
        crate::store::StoreError::Conflict { .. } => {
            SsoError::Conflict("the connection changed meanwhile; read it again and retry".into())
        }
        crate::store::StoreError::NotFound => SsoError::NotFound("connection"),
        e => e.into(),
    }
}

fn mark_fetched(state: &AppState, c: &mut SamlConnection, now: Micros) {
    c.metadata_status = Some("ok".into());
    c.metadata_error = None;
    c.metadata_fetched_at = Some(now);
    let every = i64::try_from(state.config.saml_metadata_refresh.as_micros()).unwrap_or(i64::MAX);
    c.metadata_next_at = Some(now.saturating_add(every));
}

fn mark_failed(c: &mut SamlConnection, now: Micros, message: String) {
    c.metadata_status = Some("error".into());
    c.metadata_error = Some(message);
    c.metadata_fetched_at = Some(now);
    c.metadata_next_at = Some(now.saturating_add(RETRY_AFTER_FAILURE));
}

fn parse_metadata(xml: &str) -> Result<IdpMetadata, String> {
    if xml.len() > METADATA_MAX_BYTES {
        return Err(format!(
            "metadata is larger than {} KiB",
            METADATA_MAX_BYTES / 1024
        ));
    }
    IdpMetadata::parse(xml).map_err(|r| format!("{} ({})", r.detail, r.reason.code()))
}

/// Takes the IdP facts from metadata: entity ID, the HTTP-Redirect SSO endpoint (idhub sends
/// AuthnRequests over that binding), SLO endpoint and signing certificates.
fn apply_metadata(c: &mut SamlConnection, md: &IdpMetadata) -> Result<(), String> {
    let sso = md.sso_redirect_url.clone().ok_or_else(|| {
        "the IdP metadata has no SingleSignOnService with the HTTP-Redirect binding".to_owned()
    })?;
    if md.signing_certs.is_empty() {
        return Err("the IdP metadata has no signing certificate".into());
    }
    c.idp_entity_id = md.entity_id.clone();
    c.sso_url = sso;
    c.slo_url = md
        .slo_redirect_url
        .clone()
        .or_else(|| md.slo_post_url.clone());
    c.certificates = md.signing_certs.iter().map(Certificate::base64).collect();
    Ok(())
}

fn apply_settings(c: &mut SamlConnection, i: &ConnectionInput) -> Result<(), SsoError> {
    if let Some(v) = &i.idp_entity_id {
        c.idp_entity_id = v.trim().to_owned();
    }
    if let Some(v) = &i.sso_url {
        c.sso_url = v.trim().to_owned();
    }
    if let Some(v) = &i.slo_url {
        c.slo_url = Some(v.trim().to_owned()).filter(|s| !s.is_empty());
    }
    if let Some(certs) = &i.certificates {
        let parsed = parse_certificates(certs).map_err(|m| SsoError::invalid("certificates", m))?;
        c.certificates = parsed.iter().map(Certificate::base64).collect();
    }
    if let Some(v) = i.allow_idp_initiated {
        c.allow_idp_initiated = v;
    }
    if let Some(v) = i.clock_skew_secs {
        if saml::SkewWindow::new(v).is_none() {
            return Err(SsoError::invalid(
                "clock_skew_secs",
                "must be between 0 and 600 seconds",
            ));
        }
        c.clock_skew_secs = v;
    }
    if let Some(v) = &i.required_signing {
        if !matches!(v.as_str(), "response" | "assertion" | "either") {
            return Err(SsoError::invalid(
                "required_signing",
                "must be response, assertion or either (a signature is always required)",
            ));
        }
        c.required_signing = v.clone();
    }
    if let Some(v) = i.want_encrypted {
        c.want_encrypted = v;
    }
    if let Some(v) = &i.name_id_format {
        c.name_id_format = Some(v.trim().to_owned()).filter(|s| !s.is_empty());
    }
    if let Some(m) = &i.attribute_mapping {
        c.attribute_mapping = m.clone();
    }
    if let Some(v) = i.jit {
        c.jit = v;
    }
    if let Some(order) = &i.link_order {
        let mut seen = std::collections::HashSet::new();
        if order.is_empty()
            || order
                .iter()
                .any(|k| !LINK_KEYS.contains(&k.as_str()) || !seen.insert(k.as_str()))
        {
            return Err(SsoError::invalid(
                "link_order",
                "a non-empty list of distinct values among externalId, userName, email",
            ));
        }
        c.link_order = order.clone();
    }
    if let Some(v) = i.allow_sha1 {
        c.allow_sha1 = v;
    }
    if let Some(v) = i.active {
        c.active = v;
    }
    Ok(())
}

fn validate(c: &SamlConnection) -> Result<(), SsoError> {
    if c.name.trim().is_empty() || c.name.len() > 200 {
        return Err(SsoError::invalid("name", "1 to 200 characters"));
    }
    if c.idp_entity_id.is_empty() || c.idp_entity_id.len() > 1024 {
        return Err(SsoError::invalid("idp_entity_id", "1 to 1024 characters"));
    }
    check_url("sso_url", &c.sso_url)?;
    if let Some(u) = &c.slo_url {
        check_url("slo_url", u)?;
    }
    if c.certificates.is_empty() {
        return Err(SsoError::invalid(
            "certificates",
            "at least one IdP signing certificate is required",
        ));
    }
    if c.certificates.len() > 10 {
        return Err(SsoError::invalid("certificates", "at most 10 certificates"));
    }
    Ok(())
}

fn check_url(field: &str, u: &str) -> Result<(), SsoError> {
    let parsed = reqwest::Url::parse(u).map_err(|_| SsoError::invalid(field, "not a valid URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(SsoError::invalid(
            field,
            "must be an http(s) URL with a host",
        ));
    }
    Ok(())
}

pub fn parse_certificates(certs: &[String]) -> Result<Vec<Certificate>, String> {
    certs
        .iter()
        .enumerate()
        .map(|(i, c)| Certificate::parse(c).map_err(|e| format!("certificate {}: {e}", i + 1)))
        .collect()
}

fn host_of(entity_id: &str) -> String {
    reqwest::Url::parse(entity_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| entity_id.chars().take(60).collect())
}

/// Fetches IdP metadata: http(s) only, no redirects (a redirect could lead past the address
/// check), private/loopback targets refused unless `saml_allow_private_metadata`, at most
/// [`METADATA_MAX_BYTES`], within [`METADATA_TIMEOUT`].
pub async fn fetch_metadata(state: &AppState, url: &str) -> Result<IdpMetadata, String> {
    let allow_private = state.config.saml_allow_private_metadata;
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a valid URL".to_owned())?;
    if parsed.scheme() != "https" && !allow_private {
        return Err("the metadata URL must use https".into());
    }
    crate::webhooks::check_target(url, allow_private)
        .await
        .map_err(|m| m.replace("webhook_allow_private", "saml_allow_private_metadata"))?;
    let client = reqwest::Client::builder()
        .timeout(METADATA_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut resp = client
        .get(parsed)
        .header(
            "accept",
            "application/samlmetadata+xml, application/xml, text/xml",
        )
        .send()
        .await
        .map_err(|e| format!("fetch failed: {}", without_url(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("the server answered {}", resp.status().as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > METADATA_MAX_BYTES as u64)
    {
        return Err(format!(
            "metadata is larger than {} KiB",
            METADATA_MAX_BYTES / 1024
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the metadata failed: {}", without_url(&e)))?
    {
        if body.len() + chunk.len() > METADATA_MAX_BYTES {
            return Err(format!(
                "metadata is larger than {} KiB",
                METADATA_MAX_BYTES / 1024
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| "metadata is not UTF-8".to_owned())?;
    parse_metadata(&text)
}

fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "transport error".into()
    }
}
