//! SAML single sign-on administration: connections to the tenant's IdPs (from metadata XML,
//! a metadata URL or manual fields), their login-flow logs, the tenant's SP keys, and the email
//! domains that route sign-ins to a connection. Every operation needs `sso.manage` (verifying
//! a domain: the operator permission `tenants.manage`).

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::security::{Auth, caller_actor, target_tenant};
use super::types::Text;
use super::users::NoContent;
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::model::rfc3339;
use crate::sso::connections::{self, ConnectionInput};
use crate::sso::{keys, sp_urls};
use crate::store::saml::{AttributeMapping, LoginLogEntry, SamlConnection, SamlDomain};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

/// Where each user field comes from: `nameid` or a SAML attribute name. Unset fields fall
/// back to well-known attribute names (email, givenName, sn, displayName, groups, and their
/// Entra ID / OID forms); userName falls back to the NameID.
#[derive(Object, Clone, Default)]
#[oai(deny_unknown_fields)]
pub struct AttributeMappingBody {
    pub user_name: Option<Text>,
    pub email: Option<Text>,
    pub given_name: Option<Text>,
    pub family_name: Option<Text>,
    pub display_name: Option<Text>,
    pub groups: Option<Text>,
    pub external_id: Option<Text>,
}

impl From<&AttributeMappingBody> for AttributeMapping {
    fn from(b: &AttributeMappingBody) -> Self {
        let f = |t: &Option<Text>| {
            t.as_ref()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        Self {
            user_name: f(&b.user_name),
            email: f(&b.email),
            given_name: f(&b.given_name),
            family_name: f(&b.family_name),
            display_name: f(&b.display_name),
            groups: f(&b.groups),
            external_id: f(&b.external_id),
        }
    }
}

impl From<&AttributeMapping> for AttributeMappingBody {
    fn from(m: &AttributeMapping) -> Self {
        let t = |s: &Option<String>| s.clone().map(Text);
        Self {
            user_name: t(&m.user_name),
            email: t(&m.email),
            given_name: t(&m.given_name),
            family_name: t(&m.family_name),
            display_name: t(&m.display_name),
            groups: t(&m.groups),
            external_id: t(&m.external_id),
        }
    }
}

/// Create a connection from exactly one of: `metadata_xml`, `metadata_url`, or the manual
/// fields `idp_entity_id` + `sso_url` + `certificates` (+ `slo_url`).
#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct ConnectionBody {
    #[oai(validator(max_length = 200))]
    pub name: Option<Text>,
    /// The IdP's SAML metadata document (at most 1 MiB).
    pub metadata_xml: Option<Text>,
    /// An https URL the server fetches the metadata from now and on a schedule.
    #[oai(validator(max_length = 2048))]
    pub metadata_url: Option<Text>,
    #[oai(validator(max_length = 1024))]
    pub idp_entity_id: Option<Text>,
    /// The IdP's SingleSignOnService URL for the HTTP-Redirect binding.
    #[oai(validator(max_length = 2048))]
    pub sso_url: Option<Text>,
    /// The IdP's SingleLogoutService URL (empty string clears it).
    #[oai(validator(max_length = 2048))]
    pub slo_url: Option<Text>,
    /// IdP signing certificates (PEM or base64 DER); several during a rollover.
    #[oai(validator(max_items = 10))]
    pub certificates: Option<Vec<Text>>,
    /// Accept logins the IdP starts (default false).
    pub allow_idp_initiated: Option<bool>,
    /// Allowed clock difference with the IdP, 0–600 s (default 60).
    pub clock_skew_secs: Option<i64>,
    /// What must be signed: `response`, `assertion` or `either` (default). Never nothing.
    pub required_signing: Option<Text>,
    /// Refuse assertions that are not encrypted to our SP key.
    pub want_encrypted: Option<bool>,
    /// NameID format to ask for (empty string clears it).
    #[oai(validator(max_length = 200))]
    pub name_id_format: Option<Text>,
    pub attribute_mapping: Option<AttributeMappingBody>,
    /// Create and update users (and join their groups) at sign-in (default true).
    pub jit: Option<bool>,
    /// How an existing user is found: any order of `externalId`, `userName`, `email`.
    #[oai(validator(max_items = 3))]
    pub link_order: Option<Vec<Text>>,
    /// Accept RSA-SHA1 signatures (legacy IdPs only; default false).
    pub allow_sha1: Option<bool>,
    pub active: Option<bool>,
}

impl From<&ConnectionBody> for ConnectionInput {
    fn from(b: &ConnectionBody) -> Self {
        let s = |t: &Option<Text>| t.as_ref().map(|t| t.0.clone());
        Self {
            name: s(&b.name).map(|n| n.trim().to_owned()),
            metadata_xml: s(&b.metadata_xml),
            metadata_url: s(&b.metadata_url).map(|u| u.trim().to_owned()),
            idp_entity_id: s(&b.idp_entity_id),
            sso_url: s(&b.sso_url),
            slo_url: s(&b.slo_url),
            certificates: b
                .certificates
                .as_ref()
                .map(|v| v.iter().map(|t| t.0.clone()).collect()),
            allow_idp_initiated: b.allow_idp_initiated,
            clock_skew_secs: b.clock_skew_secs,
            required_signing: s(&b.required_signing),
            want_encrypted: b.want_encrypted,
            name_id_format: s(&b.name_id_format),
            attribute_mapping: b.attribute_mapping.as_ref().map(AttributeMapping::from),
            jit: b.jit,
            link_order: b
                .link_order
                .as_ref()
                .map(|v| v.iter().map(|t| t.0.clone()).collect()),
            allow_sha1: b.allow_sha1,
            active: b.active,
        }
    }
}

#[derive(Object)]
pub struct CertificateView {
    /// SHA-256 fingerprint (hex, colon-separated).
    pub fingerprint_sha256: String,
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
    /// Whole days until expiry (negative once expired).
    pub expires_in_days: i64,
    pub pem: String,
}

fn cert_view(c: &saml::Certificate) -> CertificateView {
    let now = crate::model::now_micros() / 1_000_000;
    CertificateView {
        fingerprint_sha256: c.sha256_fingerprint.clone(),
        subject: c.subject.clone(),
        not_before: rfc3339(c.not_before_unix.saturating_mul(1_000_000)),
        not_after: rfc3339(c.not_after_unix.saturating_mul(1_000_000)),
        expires_in_days: (c.not_after_unix - now).div_euclid(86_400),
        pem: c.to_pem(),
    }
}

/// What to configure at the IdP for this connection.
#[derive(Object)]
pub struct SpInfo {
    pub entity_id: String,
    pub metadata_url: String,
    pub acs_url: String,
    pub slo_url: String,
    /// Starts an SP-initiated sign-in (optional `return_to` path).
    pub login_url: String,
}

#[derive(Object)]
pub struct ConnectionView {
    pub id: String,
    pub name: String,
    pub idp_entity_id: String,
    pub sso_url: String,
    pub slo_url: Option<String>,
    pub certificates: Vec<CertificateView>,
    pub metadata_url: Option<String>,
    /// `ok` or `error` after a fetch of `metadata_url`.
    pub metadata_status: Option<String>,
    pub metadata_error: Option<String>,
    pub metadata_fetched_at: Option<String>,
    pub metadata_next_fetch_at: Option<String>,
    pub allow_idp_initiated: bool,
    pub clock_skew_secs: i64,
    pub required_signing: String,
    pub want_encrypted: bool,
    pub name_id_format: Option<String>,
    pub attribute_mapping: AttributeMappingBody,
    pub jit: bool,
    pub link_order: Vec<String>,
    pub allow_sha1: bool,
    pub active: bool,
    /// Changes on every update; send it back as `If-Match` to avoid lost updates.
    pub version: i64,
    pub sp: SpInfo,
    pub created_at: String,
    pub updated_at: String,
}

fn view(state: &AppState, c: &SamlConnection) -> ConnectionView {
    let urls = sp_urls(&state.config.public_url, &c.id);
    let certificates = connections::parse_certificates(&c.certificates)
        .map(|cs| cs.iter().map(cert_view).collect())
        .unwrap_or_default();
    ConnectionView {
        id: c.id.clone(),
        name: c.name.clone(),
        idp_entity_id: c.idp_entity_id.clone(),
        sso_url: c.sso_url.clone(),
        slo_url: c.slo_url.clone(),
        certificates,
        metadata_url: c.metadata_url.clone(),
        metadata_status: c.metadata_status.clone(),
        metadata_error: c.metadata_error.clone(),
        metadata_fetched_at: c.metadata_fetched_at.map(rfc3339),
        metadata_next_fetch_at: c.metadata_url.as_ref().and(c.metadata_next_at).map(rfc3339),
        allow_idp_initiated: c.allow_idp_initiated,
        clock_skew_secs: c.clock_skew_secs,
        required_signing: c.required_signing.clone(),
        want_encrypted: c.want_encrypted,
        name_id_format: c.name_id_format.clone(),
        attribute_mapping: AttributeMappingBody::from(&c.attribute_mapping),
        jit: c.jit,
        link_order: c.link_order.clone(),
        allow_sha1: c.allow_sha1,
        active: c.active,
        version: c.version,
        sp: SpInfo {
            entity_id: urls.entity_id,
            metadata_url: urls.metadata,
            acs_url: urls.acs,
            slo_url: urls.slo,
            login_url: urls.login,
        },
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    }
}

#[derive(Object)]
pub struct ConnectionList {
    pub data: Vec<ConnectionView>,
    pub total: i64,
}

#[derive(ApiResponse)]
pub enum ConnectionCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<ConnectionView>, #[oai(header = "Location")] String),
}

#[derive(Object)]
pub struct LoginAttemptView {
    pub id: String,
    pub at: String,
    /// `sp_initiated`, `idp_initiated` or `logout`.
    pub kind: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Why it failed (e.g. `audience_mismatch`, `signature_invalid`, `replayed`).
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub name_id: Option<String>,
    pub user_id: Option<String>,
    pub in_response_to: Option<String>,
    pub assertion_id: Option<String>,
    pub ip: Option<String>,
}

impl From<&LoginLogEntry> for LoginAttemptView {
    fn from(e: &LoginLogEntry) -> Self {
        Self {
            id: e.id.clone(),
            at: rfc3339(e.at),
            kind: e.kind.clone(),
            outcome: e.outcome.clone(),
            reason: e.reason.clone(),
            detail: e.detail.clone(),
            name_id: e.name_id.clone(),
            user_id: e.user_id.clone(),
            in_response_to: e.in_response_to.clone(),
            assertion_id: e.assertion_id.clone(),
            ip: e.ip.clone(),
        }
    }
}

#[derive(Object)]
pub struct LoginAttemptList {
    pub data: Vec<LoginAttemptView>,
}

#[derive(Object)]
pub struct SpKeyView {
    pub id: String,
    /// `current` (signs, published first) or `previous` (still published and decrypting
    /// until retired).
    pub status: String,
    pub certificate: CertificateView,
    pub created_at: String,
}

#[derive(Object)]
pub struct SpKeyList {
    pub data: Vec<SpKeyView>,
}

#[derive(Object)]
pub struct DomainView {
    pub domain: String,
    pub connection_id: String,
    /// Only verified domains route sign-ins (an operator verifies them).
    pub verified: bool,
    pub verified_at: Option<String>,
    pub created_at: String,
}

impl From<&SamlDomain> for DomainView {
    fn from(d: &SamlDomain) -> Self {
        Self {
            domain: d.domain.clone(),
            connection_id: d.connection_id.clone(),
            verified: d.verified_at.is_some(),
            verified_at: d.verified_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
        }
    }
}

#[derive(Object)]
pub struct DomainList {
    pub data: Vec<DomainView>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct DomainBody {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub connection_id: Text,
}

/// A DNS name: labels of letters, digits and hyphens, at least two labels, ≤ 253 characters.
fn domain_name(raw: &str) -> ApiResult<String> {
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(ApiError::unprocessable(
            "domain",
            "not a valid DNS domain name",
        ));
    }
    Ok(d)
}

fn version_of(if_match: &Option<String>) -> ApiResult<Option<i64>> {
    match if_match.as_deref().map(str::trim) {
        None | Some("*") => Ok(None),
        Some(v) => v
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request("If-Match", "expected the connection's version")),
    }
}

pub struct SsoApi;

#[OpenApi(tag = "Tag::Sso")]
impl SsoApi {
    /// The tenant's SAML connections (permission `sso.manage`).
    #[oai(path = "/api/v1/sso/connections", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Operators: the tenant to act on (slug).
        #[oai(name = "X-Idhub-Tenant")]
        tenant: Header<Option<String>>,
    ) -> ApiResult<Json<ConnectionList>> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let all = ts.saml_connections().await?;
        Ok(Json(ConnectionList {
            total: i64::try_from(all.len()).unwrap_or(0),
            data: all.iter().map(|x| view(&state, x)).collect(),
        }))
    }

    /// Create a SAML connection (permission `sso.manage`).
    #[oai(path = "/api/v1/sso/connections", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        body: Json<ConnectionBody>,
    ) -> ApiResult<ConnectionCreated> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let created = connections::create(
            &state,
            &ts,
            &caller_actor(c, req),
            ConnectionInput::from(&body.0),
        )
        .await?;
        let id = created.id.clone();
        Ok(ConnectionCreated::Created(
            Json(view(&state, &created)),
            format!("/api/v1/sso/connections/{id}"),
        ))
    }

    /// One SAML connection (permission `sso.manage`).
    #[oai(path = "/api/v1/sso/connections/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<ConnectionView>> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let conn = ts
            .saml_connection(&id)
            .await?
            .ok_or_else(|| ApiError::not_found("connection"))?;
        Ok(Json(view(&state, &conn)))
    }

    /// Change a SAML connection (permission `sso.manage`); fields left out keep their value.
    /// `If-Match: <version>` refuses the change when someone else changed it first.
    #[oai(path = "/api/v1/sso/connections/:id", method = "patch")]
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        id: Path<String>,
        body: Json<ConnectionBody>,
    ) -> ApiResult<Json<ConnectionView>> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let expected = version_of(&if_match.0)?;
        let updated = connections::update(
            &state,
            &ts,
            &caller_actor(c, req),
            &id,
            ConnectionInput::from(&body.0),
            expected,
        )
        .await?;
        Ok(Json(view(&state, &updated)))
    }

    /// Delete a SAML connection (permission `sso.manage`).
    #[oai(path = "/api/v1/sso/connections/:id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        connections::delete(&state, &ts, &caller_actor(c, req), &id).await?;
        Ok(NoContent::Done)
    }

    /// Fetch the connection's metadata URL now (permission `sso.manage`). The outcome is in
    /// `metadata_status` / `metadata_error`; IdP facts change only on success.
    #[oai(path = "/api/v1/sso/connections/:id/refresh-metadata", method = "post")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<ConnectionView>> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let updated =
            connections::refresh_metadata(&state, &ts, &caller_actor(c, req), &id).await?;
        Ok(Json(view(&state, &updated)))
    }

    /// The connection's login-flow log: the newest attempts first, each with its outcome and
    /// reason (permission `sso.manage`). At most 200 are kept.
    #[oai(path = "/api/v1/sso/connections/:id/logins", method = "get")]
    async fn logins(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        /// At most this many (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<LoginAttemptList>> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        if ts.saml_connection(&id).await?.is_none() {
            return Err(ApiError::not_found("connection"));
        }
        let log = ts.saml_login_log(&id, limit.0.unwrap_or(50)).await?;
        Ok(Json(LoginAttemptList {
            data: log.iter().map(LoginAttemptView::from).collect(),
        }))
    }

    /// The tenant's SP key pairs (certificates only; permission `sso.manage`). The first use
    /// creates one.
    #[oai(path = "/api/v1/sso/sp-keys", method = "get")]
    async fn sp_keys(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
    ) -> ApiResult<Json<SpKeyList>> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let k = keys::tenant_keys(&state, &ts).await?;
        let data = k
            .rows
            .iter()
            .zip(k.pairs.iter())
            .map(|(row, pair)| SpKeyView {
                id: row.id.clone(),
                status: row.status.clone(),
                certificate: cert_view(pair.certificate()),
                created_at: rfc3339(row.created_at),
            })
            .collect();
        Ok(Json(SpKeyList { data }))
    }

    /// Rotate the SP key (permission `sso.manage`): a new key signs from now on; the old
    /// certificate stays in the metadata (and the old key keeps decrypting) until retired.
    #[oai(path = "/api/v1/sso/sp-keys/rotate", method = "post")]
    async fn rotate(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        keys::tenant_keys(&state, &ts).await?;
        keys::rotate(&state, &ts, &caller_actor(c, req)).await?;
        Ok(NoContent::Done)
    }

    /// End a rollover: the previous SP key is no longer published or used (permission
    /// `sso.manage`).
    #[oai(path = "/api/v1/sso/sp-keys/retire-previous", method = "post")]
    async fn retire(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        keys::retire(&state, &ts, &caller_actor(c, req)).await?;
        Ok(NoContent::Done)
    }

    /// Email domains routed to the tenant's connections (permission `sso.manage`).
    #[oai(path = "/api/v1/sso/domains", method = "get")]
    async fn domains(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
    ) -> ApiResult<Json<DomainList>> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let all = ts.saml_domains().await?;
        Ok(Json(DomainList {
            data: all.iter().map(DomainView::from).collect(),
        }))
    }

    /// Route an email domain to a connection (permission `sso.manage`). It takes effect once
    /// an operator verified the domain.
    #[oai(path = "/api/v1/sso/domains/:domain", method = "put")]
    async fn put_domain(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        domain: Path<String>,
        body: Json<DomainBody>,
    ) -> ApiResult<Json<DomainView>> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let d = domain_name(&domain)?;
        ts.put_saml_domain(&caller_actor(c, req), &d, body.connection_id.trim())
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => ApiError::not_found("connection"),
                e => e.into(),
            })?;
        let all = ts.saml_domains().await?;
        let found = all
            .iter()
            .find(|x| x.domain == d)
            .ok_or_else(|| ApiError::not_found("domain"))?;
        Ok(Json(DomainView::from(found)))
    }

    /// Stop routing an email domain (permission `sso.manage`).
    #[oai(path = "/api/v1/sso/domains/:domain", method = "delete")]
    async fn delete_domain(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        domain: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::SsoManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let d = domain_name(&domain)?;
        ts.delete_saml_domain(&caller_actor(c, req), &d)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => ApiError::not_found("domain"),
                e => e.into(),
            })?;
        Ok(NoContent::Done)
    }

    /// Mark a tenant's email domain verified (operators: permission `tenants.manage`, after
    /// checking the tenant controls the domain). A domain can be verified for one tenant only.
    #[oai(path = "/api/v1/sso/domains/:domain/verify", method = "post")]
    async fn verify_domain(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        domain: Path<String>,
    ) -> ApiResult<Json<DomainView>> {
        let c = auth.caller();
        c.require(Permission::TenantsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let d = domain_name(&domain)?;
        ts.verify_saml_domain(&caller_actor(c, req), &d)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => ApiError::not_found("domain"),
                crate::store::StoreError::Conflict { .. } => ApiError::conflict(
                    "domain_taken",
                    "another tenant verified this domain already",
                ),
                e => e.into(),
            })?;
        let all = ts.saml_domains().await?;
        let found = all
            .iter()
            .find(|x| x.domain == d)
            .ok_or_else(|| ApiError::not_found("domain"))?;
        Ok(Json(DomainView::from(found)))
    }
}
