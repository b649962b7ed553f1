//! Sign-in and the caller's own account: login, refresh, logout, JWKS, `/me`, API keys,
//! sessions, userinfo and the permission check.

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::security::{Auth, anonymous_actor, caller_actor, client_ip};
use super::types::Text;
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::auth::{self, AuthError, AuthMethod, Caller};
use crate::model::{TokenInfo, now_micros, rfc3339};
use crate::store::{Refreshed, Session};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name or email address.
    #[oai(validator(min_length = 1, max_length = 256))]
    pub username: Text,
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub password: Text,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh. Each one works once.
    #[oai(validator(min_length = 1, max_length = 256))]
    pub refresh_token: Text,
}

/// The result of a sign-in step: tokens, or (`mfa_required`) an MFA token to complete the
/// sign-in at `POST /api/v1/auth/mfa/verify`.
#[derive(Object, Default)]
pub struct TokenResponse {
    /// JWT access token (EdDSA), for `Authorization: Bearer`.
    #[oai(skip_serializing_if_is_none)]
    pub access_token: Option<String>,
    /// Always `Bearer`.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    /// Seconds until the access token expires.
    #[oai(skip_serializing_if_is_none)]
    pub expires_in: Option<u64>,
    /// Opaque refresh token; rotated on every use. Presenting a spent one ends the session.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub session_id: Option<String>,
    /// The password was right and the account has MFA: send a code with `mfa_token`.
    pub mfa_required: bool,
    /// Valid for 5 minutes, only at `POST /api/v1/auth/mfa/verify`.
    #[oai(skip_serializing_if_is_none)]
    pub mfa_token: Option<String>,
}

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Signed in.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        #[oai(header = "X-RateLimit-Limit")] u32,
        #[oai(header = "X-RateLimit-Remaining")] u32,
        #[oai(header = "X-RateLimit-Reset")] u64,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[derive(Object)]
pub struct MeView {
    pub id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub tenant: String,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub auth_method: String,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct MePatch {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub display_name: Option<Text>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct PasswordChange {
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub current_password: Text,
    /// 12 to 1024 characters.
    #[oai(validator(min_length = 12, max_length = 1024))]
    pub new_password: Text,
}

#[derive(Object)]
pub struct UserInfo {
    pub authorised: bool,
    #[oai(rename = "isAdministrator")]
    pub is_administrator: bool,
    pub name: String,
    #[oai(rename = "authMethod")]
    pub auth_method: String,
    pub roles: Vec<String>,
    pub tenant: String,
}

#[derive(Object)]
pub struct PermissionCheck {
    pub permission: String,
    pub allowed: bool,
}

#[derive(Object)]
pub struct PermissionInfo {
    pub name: String,
    pub description: String,
    /// Only operators can hold it.
    pub operator_only: bool,
}

#[derive(Object)]
pub struct SessionView {
    pub id: String,
    pub auth_method: String,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session of this request.
    pub current: bool,
}

pub(super) fn session_view(s: &Session, current: Option<&str>) -> SessionView {
    SessionView {
        id: s.id.clone(),
        auth_method: s.auth_method.clone(),
        created_at: rfc3339(s.created_at),
        last_used_at: rfc3339(s.last_used_at),
        expires_at: rfc3339(s.expires_at),
        ip: s.ip.clone(),
        user_agent: s.user_agent.clone(),
        current: current == Some(s.id.as_str()),
    }
}

#[derive(Object)]
pub struct SessionList {
    pub data: Vec<SessionView>,
    pub total: i64,
}

#[derive(Object)]
pub struct RevokedCount {
    pub revoked: u64,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CreateApiKey {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
    /// Permissions the key is limited to (each must be one the caller holds).
    #[oai(validator(min_items = 1, max_items = 20))]
    pub permissions: Vec<Text>,
    /// Days until the key expires (none: never).
    #[oai(validator(minimum(value = "1"), maximum(value = "3650")))]
    pub expires_in_days: Option<u32>,
}

#[derive(Object)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub permissions: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&TokenInfo> for ApiKeyView {
    fn from(t: &TokenInfo) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            permissions: t.permissions.clone(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Object)]
pub struct IssuedApiKey {
    #[oai(flatten)]
    pub info: ApiKeyView,
    /// The key (`idh_api_…`). Shown this once; only its hash is stored.
    pub key: String,
}

#[derive(Object)]
pub struct ApiKeyList {
    pub data: Vec<ApiKeyView>,
    pub total: i64,
}

#[derive(ApiResponse)]
pub enum ApiKeyCreated {
    /// Issued; the response carries the key once.
    #[oai(status = 201)]
    Created(Json<IssuedApiKey>),
}

#[derive(Object)]
pub struct RotatedKey {
    /// The key id (`kid`) that signs from now on.
    pub kid: String,
}

/// Per-IP limit on every auth endpoint.
pub(super) fn limit_ip(
    state: &AppState,
    req: &Request,
) -> ApiResult<crate::auth::ratelimit::Decision> {
    let ip = client_ip(req).unwrap_or_default();
    let d = state
        .limiter
        .check(&format!("ip:{ip}"), state.config.auth_rate_per_ip);
    if d.allowed {
        Ok(d)
    } else {
        Err(ApiError::too_many(d))
    }
}

pub(super) fn tokens(
    state: &AppState,
    caller_tenant: &str,
    user_id: &str,
    session_id: &str,
    refresh: String,
    amr: &[&str],
) -> ApiResult<TokenResponse> {
    let (access, claims) = state
        .keys
        .issue(caller_tenant, user_id, session_id, amr)
        .map_err(AuthError::from)?;
    Ok(TokenResponse {
        access_token: Some(access),
        token_type: Some("Bearer".into()),
        expires_in: Some(claims.exp.saturating_sub(claims.iat)),
        refresh_token: Some(refresh),
        session_id: Some(session_id.to_owned()),
        mfa_required: false,
        mfa_token: None,
    })
}

pub(super) fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn me_view(c: &Caller, email: Option<String>, tenant: String) -> MeView {
    MeView {
        id: c.user_id.clone(),
        user_name: c.user_name.clone(),
        display_name: c.display_name.clone(),
        email,
        tenant,
        roles: c.roles.clone(),
        permissions: c
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        auth_method: c.method.as_str().into(),
    }
}

async fn tenant_slug(state: &AppState, c: &Caller) -> ApiResult<String> {
    Ok(state
        .store
        .tenant_by_id(&c.tenant_id)
        .await?
        .map(|t| t.slug.to_string())
        .unwrap_or_default())
}

pub struct AuthApi;

#[OpenApi(tag = "Tag::Auth")]
impl AuthApi {
    /// Sign in with a user name (or email) and password in the tenant this host serves.
    /// Returns a JWT access token and a refresh token. Rate-limited per IP address and per
    /// account; repeated failures lock the account.
    #[oai(path = "/api/v1/auth/login", method = "post")]
    async fn login(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> ApiResult<LoginResponse> {
        limit_ip(&state, req)?;
        let account = state.limiter.check(
            &format!("login:{}", body.username.to_lowercase()),
            state.config.auth_rate_per_account,
        );
        if !account.allowed {
            return Err(ApiError::too_many(account));
        }
        let tenant = crate::http::tenancy::resolve(&state, req).await?;
        let actor = anonymous_actor(req);
        let ok =
            auth::password_login(&state, &tenant, &body.username, &body.password, &actor).await?;
        let user = ok.user;
        let ts = state.store.tenant(tenant.clone());
        if ok.mfa {
            let mfa = state
                .keys
                .issue_mfa(tenant.as_str(), &user.id)
                .map_err(AuthError::from)?;
            return Ok(LoginResponse::Ok(
                Json(TokenResponse {
                    mfa_required: true,
                    mfa_token: Some(mfa),
                    ..TokenResponse::default()
                }),
                account.limit,
                account.remaining,
                account.reset_secs,
                "no-store".into(),
            ));
        }
        let mut actor = actor;
        actor.actor_type = "user".into();
        actor.actor_id = Some(user.id.clone());
        let (session, refresh) = ts
            .create_session(
                &actor,
                &user.id,
                "pwd",
                micros(state.config.session_ttl),
                Some(serde_json::Value::Null),
            )
            .await?;
        let t = tokens(
            &state,
            tenant.as_str(),
            &user.id,
            &session.id,
            refresh,
            &["pwd"],
        )?;
        Ok(LoginResponse::Ok(
            Json(t),
            account.limit,
            account.remaining,
            account.reset_secs,
            "no-store".into(),
        ))
    }

    /// Exchange a refresh token for a new access token and a new refresh token. Each refresh
    /// token works once: presenting a spent one revokes the whole session (all its tokens).
    #[oai(path = "/api/v1/auth/refresh", method = "post")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> ApiResult<LoginResponse> {
        let d = limit_ip(&state, req)?;
        match state
            .store
            .refresh(&body.refresh_token, micros(state.config.session_ttl))
            .await?
        {
            Refreshed::Rotated { session, secret } => {
                let user = state
                    .store
                    .tenant(session.tenant_id.clone())
                    .get_user(&session.user_id)
                    .await?
                    .filter(|u| u.active)
                    .ok_or(AuthError::InvalidToken("user disabled or deleted"))?;
                let t = tokens(
                    &state,
                    session.tenant_id.as_str(),
                    &user.id,
                    &session.id,
                    secret,
                    if session.auth_method == "mfa" {
                        &["pwd", "otp"]
                    } else {
                        &["pwd"]
                    },
                )?;
                Ok(LoginResponse::Ok(
                    Json(t),
                    d.limit,
                    d.remaining,
                    d.reset_secs,
                    "no-store".into(),
                ))
            }
            Refreshed::Reused { .. } => {
                Err(AuthError::InvalidToken("refresh token reused: the session is revoked").into())
            }
            Refreshed::Invalid => Err(AuthError::InvalidToken("invalid refresh token").into()),
        }
    }

    /// End the session of this access token (its refresh token stops working too).
    #[oai(path = "/api/v1/auth/logout", method = "post")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        let Some(sid) = &c.session_id else {
            return Err(ApiError::bad_request(
                "Authorization",
                "logout ends a session: sign in with a JWT access token",
            ));
        };
        state
            .store
            .tenant(c.tenant_id.clone())
            .revoke_session(&caller_actor(c, req), sid, Some(&c.user_id), "logout")
            .await?;
        Ok(NoContent::Done)
    }

    /// The public keys that verify idhub's access tokens (RFC 7517 JWK Set).
    #[oai(path = "/.well-known/jwks.json", method = "get")]
    async fn jwks(&self, state: Data<&AppState>) -> Json<serde_json::Value> {
        Json(state.keys.jwks())
    }

    /// Create a new signing key; old keys keep verifying until their tokens expire
    /// (operators; permission `tenants.manage`).
    #[oai(path = "/api/v1/signing-keys/rotate", method = "post")]
    async fn rotate_keys(&self, state: Data<&AppState>, auth: Auth) -> ApiResult<Json<RotatedKey>> {
        auth.caller().require(Permission::TenantsManage)?;
        let kid = state.keys.rotate().await.map_err(AuthError::from)?;
        Ok(Json(RotatedKey { kid }))
    }

    /// The signed-in user.
    #[oai(path = "/api/v1/me", method = "get")]
    async fn me(&self, state: Data<&AppState>, auth: Auth) -> ApiResult<Json<MeView>> {
        let c = auth.caller();
        let user = state
            .store
            .tenant(c.tenant_id.clone())
            .get_user(&c.user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(Json(me_view(
            c,
            user.email.clone(),
            tenant_slug(&state, c).await?,
        )))
    }

    /// Change the signed-in user's own profile.
    #[oai(path = "/api/v1/me", method = "patch")]
    async fn patch_me(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        body: Json<MePatch>,
    ) -> ApiResult<Json<MeView>> {
        let c = auth.caller();
        let ts = state.store.tenant(c.tenant_id.clone());
        if let Some(name) = &body.display_name {
            let ctx = super::users::scim_ctx(&state, &ts, caller_actor(c, req)).await?;
            super::users::patch_user(
                &ctx,
                &c.user_id,
                vec![serde_json::json!({ "op": "replace", "path": "displayName", "value": name.trim() })],
                None,
            )
            .await?;
        }
        let user = ts
            .get_user(&c.user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        let mut c2 = c.clone();
        c2.display_name = user.display_name.clone();
        Ok(Json(me_view(
            &c2,
            user.email.clone(),
            tenant_slug(&state, c).await?,
        )))
    }

    /// Change the signed-in user's password (the current one is required). Every other
    /// session of the user is ended.
    #[oai(path = "/api/v1/me/password", method = "post")]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        body: Json<PasswordChange>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        limit_ip(&state, req)?;
        let ts = state.store.tenant(c.tenant_id.clone());
        let stored = ts.password_hash(&c.user_id).await?;
        if !auth::password::verify(body.current_password.0.clone(), stored)
            .await
            .map_err(AuthError::from)?
        {
            return Err(ApiError::unprocessable(
                "current_password",
                "the current password is wrong",
            ));
        }
        let hash = auth::password::hash(body.new_password.0.clone())
            .await
            .map_err(AuthError::from)?;
        let actor = caller_actor(c, req);
        ts.set_password_hash(&actor, &c.user_id, &hash).await?;
        ts.revoke_user_sessions(
            &actor,
            &c.user_id,
            c.session_id.as_deref(),
            "password_changed",
        )
        .await?;
        Ok(NoContent::Done)
    }

    /// What the caller is (for applications deciding what to show).
    #[oai(path = "/api/v1/userinfo", method = "get")]
    async fn userinfo(&self, state: Data<&AppState>, auth: Auth) -> ApiResult<Json<UserInfo>> {
        let c = auth.caller();
        Ok(Json(UserInfo {
            authorised: true,
            is_administrator: c.is_administrator(),
            name: c
                .display_name
                .clone()
                .unwrap_or_else(|| c.user_name.clone()),
            auth_method: c.method.as_str().into(),
            roles: c.roles.clone(),
            tenant: tenant_slug(&state, c).await?,
        }))
    }

    /// Whether the caller holds a permission.
    #[oai(path = "/api/v1/rbac/check", method = "get")]
    async fn rbac_check(
        &self,
        auth: Auth,
        /// A permission name, e.g. `users.read`.
        permission: Query<String>,
    ) -> ApiResult<Json<PermissionCheck>> {
        let p = Permission::parse(&permission.0).ok_or_else(|| {
            ApiError::bad_request(
                "permission",
                format!("unknown permission {:?}", permission.0),
            )
        })?;
        Ok(Json(PermissionCheck {
            permission: p.as_str().into(),
            allowed: auth.caller().has(p),
        }))
    }

    /// The permission catalogue.
    #[oai(path = "/api/v1/permissions", method = "get")]
    async fn permissions(&self, _auth: Auth) -> Json<Vec<PermissionInfo>> {
        Json(
            Permission::ALL
                .iter()
                .map(|p| PermissionInfo {
                    name: p.as_str().into(),
                    description: p.description().into(),
                    operator_only: p.operator_only(),
                })
                .collect(),
        )
    }

    /// The signed-in user's live sessions.
    #[oai(path = "/api/v1/me/sessions", method = "get")]
    async fn my_sessions(
        &self,
        state: Data<&AppState>,
        auth: Auth,
    ) -> ApiResult<Json<SessionList>> {
        let c = auth.caller();
        let list = state
            .store
            .tenant(c.tenant_id.clone())
            .list_sessions(&c.user_id)
            .await?;
        Ok(Json(SessionList {
            total: i64::try_from(list.len()).unwrap_or(0),
            data: list
                .iter()
                .map(|s| session_view(s, c.session_id.as_deref()))
                .collect(),
        }))
    }

    /// End one of the signed-in user's sessions.
    #[oai(path = "/api/v1/me/sessions/:id", method = "delete")]
    async fn revoke_my_session(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        state
            .store
            .tenant(c.tenant_id.clone())
            .revoke_session(
                &caller_actor(c, req),
                &id.0,
                Some(&c.user_id),
                "revoked_by_user",
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// End every session of the signed-in user (including this one).
    #[oai(path = "/api/v1/me/sessions", method = "delete")]
    async fn revoke_my_sessions(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
    ) -> ApiResult<Json<RevokedCount>> {
        let c = auth.caller();
        let n = state
            .store
            .tenant(c.tenant_id.clone())
            .revoke_user_sessions(&caller_actor(c, req), &c.user_id, None, "revoked_by_user")
            .await?;
        Ok(Json(RevokedCount { revoked: n }))
    }

    /// The signed-in user's API keys (never the keys themselves).
    #[oai(path = "/api/v1/me/tokens", method = "get")]
    async fn my_tokens(&self, state: Data<&AppState>, auth: Auth) -> ApiResult<Json<ApiKeyList>> {
        let c = auth.caller();
        let list = state
            .store
            .tenant(c.tenant_id.clone())
            .list_api_keys(&c.user_id)
            .await?;
        Ok(Json(ApiKeyList {
            total: i64::try_from(list.len()).unwrap_or(0),
            data: list.iter().map(ApiKeyView::from).collect(),
        }))
    }

    /// Issue an API key (personal access token) acting as the signed-in user, limited to the
    /// given permissions. An API key cannot issue keys.
    #[oai(path = "/api/v1/me/tokens", method = "post")]
    async fn create_token(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        body: Json<CreateApiKey>,
    ) -> ApiResult<ApiKeyCreated> {
        let c = auth.caller();
        if c.method == AuthMethod::ApiKey {
            return Err(ApiError::forbidden("an API key cannot issue API keys"));
        }
        let mut perms = Vec::new();
        for (i, p) in body.permissions.iter().enumerate() {
            let perm = Permission::parse(p).ok_or_else(|| {
                ApiError::unprocessable(
                    &format!("permissions[{i}]"),
                    format!("unknown permission {:?}", p.0),
                )
            })?;
            if !c.has(perm) {
                return Err(ApiError::unprocessable(
                    &format!("permissions[{i}]"),
                    format!("you do not hold {perm}"),
                ));
            }
            if !perms.contains(&perm.as_str().to_owned()) {
                perms.push(perm.as_str().to_owned());
            }
        }
        let expires_at = body
            .expires_in_days
            .map(|d| now_micros() + i64::from(d) * 86_400 * 1_000_000);
        let issued = state
            .store
            .tenant(c.tenant_id.clone())
            .create_api_key(
                &caller_actor(c, req),
                &c.user_id,
                body.name.trim(),
                expires_at,
                &perms,
            )
            .await?;
        Ok(ApiKeyCreated::Created(Json(IssuedApiKey {
            info: ApiKeyView::from(&issued.info),
            key: issued.secret.clone(),
        })))
    }

    /// Revoke one of the signed-in user's API keys.
    #[oai(path = "/api/v1/me/tokens/:id", method = "delete")]
    async fn revoke_token(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        state
            .store
            .tenant(c.tenant_id.clone())
            .revoke_api_key(&caller_actor(c, req), &c.user_id, &id.0)
            .await?;
        Ok(NoContent::Done)
    }
}
