//! Credentials → principal.
//!
//! Foundation scope: SCIM bearer tokens (resolved by the store, cached by token hash) and
//! operator administrators signing in with HTTP Basic over a password (argon2id). JWT
//! sessions, API keys and RBAC build on these principals.

pub mod password;

use crate::app::AppState;
use crate::model::{Principal, PrincipalKind, TenantId};
use crate::store::StoreError;

/// The operator role: may manage every tenant.
pub const ROLE_SUPERADMIN: &str = "superadmin";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
}

/// Checks an administrator's user name and password in `tenant`. Unknown users cost the same
/// hashing time as known ones.
pub async fn admin_password_login(
    state: &AppState,
    tenant: &TenantId,
    user_name: &str,
    password_given: &str,
) -> Result<Principal, AuthError> {
    let store = state.store.tenant(tenant.clone());
    let user = store.find_user_by_user_name(user_name).await?;
    let stored = match &user {
        Some(u) => store.password_hash(&u.id).await?,
        None => None,
    };
    let ok = password::verify(password_given.to_owned(), stored).await?;
    let Some(user) = user.filter(|u| ok && u.active) else {
        return Err(AuthError::InvalidCredentials);
    };
    let roles = store.user_roles(&user.id).await?;
    Ok(Principal {
        tenant_id: tenant.clone(),
        kind: PrincipalKind::Admin {
            user_id: user.id,
            user_name: user.user_name,
            roles,
        },
    })
}

/// Whether a principal is an operator (superadmin of the default tenant).
pub fn is_operator(state: &AppState, p: &Principal) -> bool {
    match &p.kind {
        PrincipalKind::Admin { roles, .. } => {
            p.tenant_id == state.default_tenant && roles.iter().any(|r| r == ROLE_SUPERADMIN)
        }
        PrincipalKind::ScimToken { .. } => false,
    }
}
