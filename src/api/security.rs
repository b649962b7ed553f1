//! How REST callers authenticate, and which tenant an operation acts on.
//!
//! [`Auth`] accepts, in the OpenAPI document and at run time, a JWT access token
//! (`Authorization: Bearer`), an API key (`X-Api-Key`, or `Authorization: Bearer idh_api_…`),
//! or HTTP Basic with a password. Each resolves to a [`Caller`]; every operation then states its
//! permission with `caller.require(…)` (also named in the operation's description) and picks
//! its tenant with [`target_tenant`]: the caller's own, or, for operators only, the one named
//! by the `X-Idhub-Tenant` header or the path.

use super::error::ApiError;
use crate::app::AppState;
use crate::auth::{self, AuthError, Caller};
use crate::model::{Actor, TenantId};
use crate::store::TenantStore;
use poem::{IntoResponse, Request};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Basic, Bearer};

/// The most telling authentication failure of a request. [`Auth`] tries each scheme in turn
/// and would report only the last one's error (often "no bearer token" when the caller sent,
/// say, a locked account's Basic credentials); a checker that actually examined a credential
/// records its answer here, and [`keep_auth_failure`] answers with it.
#[derive(Default)]
pub struct AuthFailure(std::sync::Mutex<Option<ApiError>>);

fn reject_in(req: &Request, e: ApiError) -> poem::Error {
    if let Some(slot) = req.extensions().get::<std::sync::Arc<AuthFailure>>()
        && let Ok(mut g) = slot.0.lock()
    {
        *g = Some(e.clone());
    }
    poem::Error::from_response(e.into_response())
}

/// Around the REST API: gives every request an [`AuthFailure`] slot and answers an
/// authentication failure with the recorded one.
pub async fn keep_auth_failure<E: poem::Endpoint>(
    ep: std::sync::Arc<E>,
    mut req: Request,
) -> poem::Result<poem::Response> {
    let slot = std::sync::Arc::new(AuthFailure::default());
    req.extensions_mut().insert(slot.clone());
    match ep.call(req).await {
        Ok(r) => Ok(r.into_response()),
        Err(e) if e.status() == poem::http::StatusCode::UNAUTHORIZED && !e.is_from_response() => {
            match slot.0.lock().ok().and_then(|mut g| g.take()) {
                Some(recorded) => Ok(recorded.into_response()),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

fn reject(e: ApiError) -> poem::Error {
    poem::Error::from_response(e.into_response())
}

fn state(req: &Request) -> Result<&AppState, poem::Error> {
    req.data::<AppState>()
        .ok_or_else(|| reject(ApiError::from(AuthError::InvalidCredentials)))
}

/// The audit identity of a request before anyone is authenticated.
pub fn anonymous_actor(req: &Request) -> Actor {
    Actor {
        actor_type: "anonymous".into(),
        actor_id: None,
        ip: client_ip(req),
        user_agent: req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        request_id: req
            .extensions()
            .get::<crate::http::middleware::RequestId>()
            .map(|r| r.0.clone()),
    }
}

/// The peer's IP address (idhub does not trust forwarding headers).
pub fn client_ip(req: &Request) -> Option<String> {
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
}

/// The audit identity of an authenticated caller.
pub fn caller_actor(c: &Caller, req: &Request) -> Actor {
    let mut a = anonymous_actor(req);
    a.actor_type = match c.method {
        auth::AuthMethod::ApiKey => "api_key".into(),
        _ => "user".into(),
    };
    a.actor_id = Some(c.user_id.clone());
    a
}

async fn bearer_checker(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = state(req)?;
    let r = if bearer.token.starts_with("idh_api_") {
        auth::caller_from_api_key(state, &bearer.token).await
    } else {
        auth::caller_from_jwt(state, &bearer.token).await
    };
    r.map_err(|e| reject_in(req, e.into()))
}

async fn api_key_checker(req: &Request, key: ApiKey) -> poem::Result<Caller> {
    let state = state(req)?;
    auth::caller_from_api_key(state, &key.key)
        .await
        .map_err(|e| reject_in(req, e.into()))
}

async fn basic_checker(req: &Request, basic: Basic) -> poem::Result<Caller> {
    let state = state(req)?;
    let tenant = crate::http::tenancy::resolve(state, req)
        .await
        .map_err(|e| reject(e.into()))?;
    let key = format!("login:{}", basic.username.to_lowercase());
    let d = state
        .limiter
        .check(&key, state.config.auth_rate_per_account);
    if !d.allowed {
        return Err(reject_in(req, ApiError::too_many(d)));
    }
    auth::caller_from_basic(
        state,
        &tenant,
        &basic.username,
        &basic.password,
        &anonymous_actor(req),
    )
    .await
    .map_err(|e| reject_in(req, e.into()))
}

/// A JWT access token from `POST /api/v1/auth/login` (or an API key).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "bearer_checker")]
pub struct BearerAuth(Caller);

/// An API key (personal access token, `idh_api_…`).
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "X-Api-Key",
    key_in = "header",
    checker = "api_key_checker"
)]
pub struct ApiKeyAuth(Caller);

/// HTTP Basic with a user name (or email) and password.
#[derive(SecurityScheme)]
#[oai(ty = "basic", checker = "basic_checker")]
pub struct BasicAuth(Caller);

/// Any of the accepted credentials.
#[derive(SecurityScheme)]
pub enum Auth {
    Basic(BasicAuth),
    ApiKey(ApiKeyAuth),
    Bearer(BearerAuth),
}

impl Auth {
    pub fn caller(&self) -> &Caller {
        match self {
            Self::Bearer(b) => &b.0,
            Self::ApiKey(k) => &k.0,
            Self::Basic(b) => &b.0,
        }
    }
}

/// The tenant an operation acts on: the caller's own; or, for an operator, the tenant named by
/// `slug` (path or `X-Idhub-Tenant`). A non-operator naming another tenant gets 404 (the other
/// tenant's existence is not revealed).
pub async fn target_tenant(
    state: &AppState,
    caller: &Caller,
    slug: Option<&str>,
) -> Result<TenantStore, ApiError> {
    let Some(slug) = slug.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(state.store.tenant(caller.tenant_id.clone()));
    };
    let t = state.store.tenant_by_slug(slug).await?;
    match t {
        Some(t) if caller.operator || t.id == caller.tenant_id => Ok(state.store.tenant(t.id)),
        _ => Err(ApiError::not_found("tenant")),
    }
}

/// Whether `tenant` is the caller's own tenant.
pub fn is_own(caller: &Caller, tenant: &TenantId) -> bool {
    &caller.tenant_id == tenant
}
