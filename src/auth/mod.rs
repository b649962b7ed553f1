//! Credentials → caller.
//!
//! SCIM bearer tokens resolve to a tenant-wide provisioning principal (see `http::scim`). The
//! REST API resolves every credential (a JWT access token, an `idh_api_` API key, or HTTP Basic
//! with a password) to a [`Caller`]: a user of one tenant with the permissions of their roles
//! (RBAC, see [`rbac`]). Operators are the default tenant's users holding `superadmin`.

pub mod jwt;
pub mod password;
pub mod ratelimit;
pub mod rbac;
pub mod sealing;
pub mod totp;

pub use rbac::ROLE_SUPERADMIN;

use crate::app::AppState;
use crate::model::{Actor, Micros, PrincipalKind, TenantId, User, now_micros};
use crate::store::StoreError;
use rbac::{PermSet, Permission};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account locked")]
    Locked { until: Micros },
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("this account uses multi-factor authentication")]
    MfaRequired,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    #[error(transparent)]
    Jwt(jwt::JwtError),
}

impl From<jwt::JwtError> for AuthError {
    fn from(e: jwt::JwtError) -> Self {
        match e {
            jwt::JwtError::Invalid => Self::InvalidToken("invalid access token"),
            jwt::JwtError::Expired => Self::InvalidToken("access token expired"),
            other => Self::Jwt(other),
        }
    }
}

/// How the caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A JWT access token from `POST /api/v1/auth/login`.
    Jwt,
    /// An API key (personal access token).
    ApiKey,
    /// HTTP Basic with a password.
    Basic,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::ApiKey => "api_key",
            Self::Basic => "basic",
        }
    }
}

/// An authenticated user of the REST API.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant_id: TenantId,
    pub user_id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub method: AuthMethod,
    /// The session of a JWT.
    pub session_id: Option<String>,
    /// The API key used.
    pub token_id: Option<String>,
    /// Roles held directly or through groups.
    pub roles: Vec<String>,
    /// Effective permissions (for an API key: those of the key that the user still holds).
    pub permissions: PermSet,
    /// A superadmin of the default tenant: may act on every tenant.
    pub operator: bool,
}

impl Caller {
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// The one permission check every endpoint makes.
    pub fn require(&self, p: Permission) -> Result<(), AuthError> {
        if self.has(p) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!("requires permission {p}")))
        }
    }

    pub fn is_administrator(&self) -> bool {
        self.operator || self.roles.iter().any(|r| r == rbac::ROLE_ADMIN)
    }
}

/// Finds the account a sign-in names: by userName, else by a unique email.
async fn find_account(
    state: &AppState,
    tenant: &TenantId,
    identifier: &str,
) -> Result<Option<User>, AuthError> {
    let store = state.store.tenant(tenant.clone());
    if let Some(u) = store.find_user_by_user_name(identifier).await? {
        return Ok(Some(u));
    }
    if identifier.contains('@') {
        return Ok(store.find_user_by_email(identifier).await?);
    }
    Ok(None)
}

/// A password check that passed.
#[derive(Debug)]
pub struct PasswordOk {
    pub user: User,
    /// The account has TOTP enabled: a second factor must follow.
    pub mfa: bool,
}

/// Checks a user name (or email) and password in `tenant`, with lockout: `lockout_threshold`
/// failures lock the account for `lockout_duration`. Unknown users cost the same hashing
/// time as known ones. Failures are audited here; the caller audits the success (with the
/// session it opens). A hash made with older parameters is replaced on success.
pub async fn password_login(
    state: &AppState,
    tenant: &TenantId,
    identifier: &str,
    password_given: &str,
    actor: &Actor,
) -> Result<PasswordOk, AuthError> {
    let store = state.store.tenant(tenant.clone());
    let user = find_account(state, tenant, identifier).await?;
    let fail = |reason: &'static str, user_id: Option<String>| {
        let store = store.clone();
        let mut actor = actor.clone();
        actor.actor_type = "user".into();
        actor.actor_id = user_id.clone();
        async move {
            let target = user_id.as_deref().map(|id| ("User", id));
            if let Err(e) = store
                .audit_outcome(
                    &actor,
                    "auth.login",
                    "failure",
                    target,
                    &serde_json::json!({ "reason": reason }),
                )
                .await
            {
                tracing::warn!(error = %e, "cannot audit a failed login");
            }
        }
    };
    // Hash, lockout state and MFA in one round trip.
    let facts = match &user {
        Some(u) => store.login_facts(&u.id).await?,
        None => crate::store::LoginFacts::default(),
    };
    if let (Some(u), Some(Some(until))) = (&user, facts.failures) {
        fail("locked", Some(u.id.clone())).await;
        return Err(AuthError::Locked { until });
    }
    let stored = facts.password_hash.clone();
    let ok = password::verify(password_given.to_owned(), stored.clone()).await?;
    let Some(user) = user else {
        fail("unknown_user", None).await;
        return Err(AuthError::InvalidCredentials);
    };
    if !ok {
        let cfg = &state.config;
        let locked = store
            .record_login_failure(
                &user.id,
                cfg.lockout_threshold,
                i64::try_from(cfg.lockout_duration.as_micros()).unwrap_or(i64::MAX),
            )
            .await?;
        fail(
            if locked.is_some() {
                "bad_password_locked"
            } else {
                "bad_password"
            },
            Some(user.id.clone()),
        )
        .await;
        return Err(AuthError::InvalidCredentials);
    }
    if !user.active {
        fail("disabled", Some(user.id.clone())).await;
        return Err(AuthError::InvalidCredentials);
    }
    if facts.failures.is_some() {
        store.clear_login_failures(&user.id).await?;
    }
    if stored.as_deref().is_some_and(password::needs_rehash) {
        let hash = password::hash(password_given.to_owned()).await?;
        store
            .set_password_hash(&Actor::system(), &user.id, &hash)
            .await?;
    }
    Ok(PasswordOk {
        user,
        mfa: facts.mfa,
    })
}

/// The caller a user of `tenant` is, with `limit` narrowing the permissions (API keys).
async fn build_caller(
    state: &AppState,
    tenant: &TenantId,
    user: &User,
    method: AuthMethod,
    session_id: Option<String>,
    token_id: Option<String>,
    limit: Option<&[String]>,
) -> Result<Caller, AuthError> {
    let store = state.store.tenant(tenant.clone());
    let held = store.user_permissions(&user.id).await?;
    let (roles, mut permissions) = (held.0.clone(), held.1.clone());
    if let Some(limit) = limit {
        let allowed: PermSet = limit.iter().filter_map(|p| Permission::parse(p)).collect();
        permissions.retain(|p| allowed.contains(p));
    }
    let operator =
        state.store.is_default_tenant(tenant) && roles.iter().any(|r| r == rbac::ROLE_SUPERADMIN);
    Ok(Caller {
        tenant_id: tenant.clone(),
        user_id: user.id.clone(),
        user_name: user.user_name.clone(),
        display_name: user.display_name.clone(),
        method,
        session_id,
        token_id,
        roles,
        permissions,
        operator,
    })
}

/// A caller from a JWT access token: valid signature and claims, a live session, an active
/// user. Revoking the session or disabling the user ends access on the next request.
pub async fn caller_from_jwt(state: &AppState, token: &str) -> Result<Caller, AuthError> {
    let claims = state.keys.verify(token).await?;
    let session = state
        .store
        .session(&claims.sid)
        .await?
        .ok_or(AuthError::InvalidToken("session not found"))?;
    if session.tenant_id.as_str() != claims.tid || session.user_id != claims.sub {
        return Err(AuthError::InvalidToken("invalid access token"));
    }
    if !session.is_live(now_micros()) {
        return Err(AuthError::InvalidToken("session ended"));
    }
    let tenant = session.tenant_id.clone();
    let user = active_user(state, &tenant, &claims.sub).await?;
    build_caller(
        state,
        &tenant,
        &user,
        AuthMethod::Jwt,
        Some(session.id.clone()),
        None,
        None,
    )
    .await
}

async fn active_user(
    state: &AppState,
    tenant: &TenantId,
    user_id: &str,
) -> Result<Arc<User>, AuthError> {
    state
        .store
        .tenant(tenant.clone())
        .get_user(user_id)
        .await?
        .filter(|u| u.active)
        .ok_or(AuthError::InvalidToken("user disabled or deleted"))
}

/// A caller from an API key (`idh_api_…`).
pub async fn caller_from_api_key(state: &AppState, secret: &str) -> Result<Caller, AuthError> {
    let auth = state
        .store
        .authenticate_token(secret)
        .await?
        .ok_or(AuthError::InvalidToken("invalid API key"))?;
    let PrincipalKind::ApiKey {
        token_id,
        user_id,
        permissions,
    } = &auth.principal.kind
    else {
        return Err(AuthError::InvalidToken("not an API key"));
    };
    let tenant = auth.principal.tenant_id.clone();
    let user = active_user(state, &tenant, user_id).await?;
    build_caller(
        state,
        &tenant,
        &user,
        AuthMethod::ApiKey,
        None,
        Some(token_id.clone()),
        Some(permissions),
    )
    .await
}

/// A caller from HTTP Basic (user name and password) in the tenant the host resolves to.
pub async fn caller_from_basic(
    state: &AppState,
    tenant: &TenantId,
    user_name: &str,
    password_given: &str,
    actor: &Actor,
) -> Result<Caller, AuthError> {
    let ok = password_login(state, tenant, user_name, password_given, actor).await?;
    // HTTP Basic cannot carry a second factor.
    if ok.mfa {
        return Err(AuthError::MfaRequired);
    }
    let user = ok.user;
    build_caller(state, tenant, &user, AuthMethod::Basic, None, None, None).await
}

/// The caller a user id of a tenant is (after a sign-in, for the login response).
pub async fn caller_for_user(
    state: &AppState,
    tenant: &TenantId,
    user: &User,
    session_id: &str,
) -> Result<Caller, AuthError> {
    build_caller(
        state,
        tenant,
        user,
        AuthMethod::Jwt,
        Some(session_id.to_owned()),
        None,
        None,
    )
    .await
}
