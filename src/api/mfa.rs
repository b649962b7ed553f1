//! TOTP multi-factor authentication (RFC 6238): enrolment, confirmation, the second sign-in
//! step, backup codes, and an administrator's reset.

use super::Tag;
use super::auth::{LoginResponse, limit_ip, micros, tokens};
use super::error::{ApiError, ApiResult};
use super::security::{Auth, anonymous_actor, caller_actor, target_tenant};
use super::types::Text;
use super::users::NoContent;
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::auth::{self, AuthError, AuthMethod, totp};
use crate::model::{Actor, now_micros};
use crate::store::{StoreError, TenantStore};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

#[derive(Object)]
pub struct TotpEnrolment {
    /// The shared secret, base32 (for manual entry).
    pub secret: String,
    /// `otpauth://` URI for a QR code.
    pub otpauth_uri: String,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CodeBody {
    /// A 6-digit code from the authenticator app.
    #[oai(validator(min_length = 1, max_length = 32))]
    pub code: Text,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct PasswordBody {
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub password: Text,
}

#[derive(Object)]
pub struct BackupCodes {
    /// Ten single-use codes. Shown this once; only their hashes are stored.
    pub backup_codes: Vec<String>,
}

#[derive(Object)]
pub struct MfaStatus {
    pub totp_enabled: bool,
    /// A started enrolment waits for its first code.
    pub totp_pending: bool,
    pub backup_codes_remaining: i64,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct MfaVerify {
    /// The `mfa_token` of the login answer.
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub mfa_token: Text,
    /// A TOTP code, or one of the backup codes.
    #[oai(validator(min_length = 1, max_length = 32))]
    pub code: Text,
}

fn unix_now() -> u64 {
    u64::try_from(now_micros() / 1_000_000).unwrap_or(0)
}

fn totp_secret(state: &AppState, user_id: &str, sealed: &str) -> ApiResult<Vec<u8>> {
    state
        .sealer
        .open(&format!("totp:{user_id}"), sealed)
        .map_err(|e| ApiError::from(AuthError::Forbidden(format!("MFA secret unreadable: {e}"))))
}

/// Checks a TOTP code (once per time step) or spends a backup code. Returns the method used.
async fn check_code(
    state: &AppState,
    ts: &TenantStore,
    user_id: &str,
    code: &str,
) -> ApiResult<Option<&'static str>> {
    let Some(rec) = ts.totp(user_id).await?.filter(|t| t.enabled) else {
        return Ok(None);
    };
    let secret = totp_secret(state, user_id, &rec.sealed_secret)?;
    let last = rec.last_step.and_then(|s| u64::try_from(s).ok());
    if let Some(step) = totp::verify(&secret, code, unix_now(), last) {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        return Ok(ts.use_totp_step(user_id, step).await?.then_some("totp"));
    }
    if code.trim().len() == 11
        && ts
            .use_backup_code(user_id, &totp::hash_backup_code(code))
            .await?
    {
        return Ok(Some("backup_code"));
    }
    Ok(None)
}

pub struct MfaApi;

#[OpenApi(tag = "Tag::Auth")]
impl MfaApi {
    /// Complete a sign-in that answered `mfa_required`, with a TOTP or backup code. Failed
    /// codes count towards the account lockout.
    #[oai(path = "/api/v1/auth/mfa/verify", method = "post")]
    async fn verify(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<MfaVerify>,
    ) -> ApiResult<LoginResponse> {
        let d = limit_ip(&state, req)?;
        let claims = state
            .keys
            .verify_mfa(&body.mfa_token)
            .await
            .map_err(AuthError::from)?;
        let tenant = state
            .store
            .tenant_by_id(&crate::model::TenantId(claims.tid.clone()))
            .await?
            .ok_or(AuthError::InvalidToken("invalid MFA token"))?;
        let ts = state.store.tenant(tenant.id.clone());
        let user = ts
            .get_user(&claims.sub)
            .await?
            .filter(|u| u.active)
            .ok_or(AuthError::InvalidToken("user disabled or deleted"))?;
        let account = state.limiter.check(
            &format!("mfa:{}", user.id),
            state.config.auth_rate_per_account,
        );
        if !account.allowed {
            return Err(ApiError::too_many(account));
        }
        let mut actor = anonymous_actor(req);
        actor.actor_type = "user".into();
        actor.actor_id = Some(user.id.clone());
        if let Some(Some(until)) = ts.login_failures(&user.id).await? {
            return Err(AuthError::Locked { until }.into());
        }
        let Some(method) = check_code(&state, &ts, &user.id, &body.code).await? else {
            let cfg = &state.config;
            let locked = ts
                .record_login_failure(
                    &user.id,
                    cfg.lockout_threshold,
                    micros(cfg.lockout_duration),
                )
                .await?;
            ts.audit_outcome(
                &actor,
                "auth.login",
                "failure",
                Some(("User", &user.id)),
                &serde_json::json!({ "reason": if locked.is_some() { "bad_mfa_code_locked" } else { "bad_mfa_code" } }),
            )
            .await?;
            return Err(ApiError::from(AuthError::InvalidCredentials));
        };
        ts.clear_login_failures(&user.id).await?;
        let (session, refresh) = ts
            .create_session(
                &actor,
                &user.id,
                "mfa",
                micros(state.config.session_ttl),
                Some(serde_json::json!({ "mfa": method })),
            )
            .await?;
        let t = tokens(
            &state,
            tenant.id.as_str(),
            &user.id,
            &session.id,
            refresh,
            &["pwd", "otp"],
        )?;
        Ok(LoginResponse::Ok(
            Json(t),
            d.limit,
            d.remaining,
            d.reset_secs,
            "no-store".into(),
        ))
    }

    /// The signed-in user's MFA status.
    #[oai(path = "/api/v1/me/mfa", method = "get")]
    async fn status(&self, state: Data<&AppState>, auth: Auth) -> ApiResult<Json<MfaStatus>> {
        let c = auth.caller();
        let ts = state.store.tenant(c.tenant_id.clone());
        let rec = ts.totp(&c.user_id).await?;
        Ok(Json(MfaStatus {
            totp_enabled: rec.as_ref().is_some_and(|r| r.enabled),
            totp_pending: rec.as_ref().is_some_and(|r| !r.enabled),
            backup_codes_remaining: ts.backup_codes_left(&c.user_id).await?,
        }))
    }

    /// Start TOTP enrolment: returns the secret and its `otpauth://` URI. Nothing changes at
    /// sign-in until a first code confirms it.
    #[oai(path = "/api/v1/me/mfa/totp", method = "post")]
    async fn enrol(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
    ) -> ApiResult<Json<TotpEnrolment>> {
        let c = auth.caller();
        if c.method == AuthMethod::ApiKey {
            return Err(ApiError::forbidden("an API key cannot change MFA"));
        }
        let ts = state.store.tenant(c.tenant_id.clone());
        let secret = totp::new_secret();
        let sealed = state
            .sealer
            .seal(&format!("totp:{}", c.user_id), &secret)
            .map_err(|e| ApiError::from(AuthError::Forbidden(e.to_string())))?;
        ts.put_pending_totp(&caller_actor(c, req), &c.user_id, &sealed)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => {
                    ApiError::conflict("mfa_enabled", "TOTP is already enabled; disable it first")
                }
                other => other.into(),
            })?;
        let tenant = state
            .store
            .tenant_by_id(&c.tenant_id)
            .await?
            .map(|t| t.display_name.clone())
            .unwrap_or_default();
        Ok(Json(TotpEnrolment {
            secret: totp::base32(&secret),
            otpauth_uri: totp::otpauth_uri(&format!("idhub {tenant}"), &c.user_name, &secret),
        }))
    }

    /// Confirm TOTP enrolment with a first code; returns ten backup codes (shown once).
    #[oai(path = "/api/v1/me/mfa/totp/confirm", method = "post")]
    async fn confirm(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        body: Json<CodeBody>,
    ) -> ApiResult<Json<BackupCodes>> {
        let c = auth.caller();
        if c.method == AuthMethod::ApiKey {
            return Err(ApiError::forbidden("an API key cannot change MFA"));
        }
        let ts = state.store.tenant(c.tenant_id.clone());
        let rec = ts
            .totp(&c.user_id)
            .await?
            .filter(|r| !r.enabled)
            .ok_or_else(|| ApiError::conflict("no_enrolment", "start an enrolment first"))?;
        let secret = totp_secret(&state, &c.user_id, &rec.sealed_secret)?;
        let step = totp::verify(&secret, &body.code, unix_now(), None)
            .ok_or_else(|| ApiError::unprocessable("code", "the code does not match"))?;
        let codes = totp::backup_codes();
        let hashes: Vec<String> = codes.iter().map(|c| totp::hash_backup_code(c)).collect();
        ts.enable_totp(
            &caller_actor(c, req),
            &c.user_id,
            i64::try_from(step).unwrap_or(i64::MAX),
            &hashes,
        )
        .await?;
        Ok(Json(BackupCodes {
            backup_codes: codes,
        }))
    }

    /// Turn TOTP off (the password is required).
    #[oai(path = "/api/v1/me/mfa/totp", method = "delete")]
    async fn disable(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        body: Json<PasswordBody>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        if c.method == AuthMethod::ApiKey {
            return Err(ApiError::forbidden("an API key cannot change MFA"));
        }
        limit_ip(&state, req)?;
        let ts = state.store.tenant(c.tenant_id.clone());
        let stored = ts.password_hash(&c.user_id).await?;
        if !auth::password::verify(body.password.0.clone(), stored)
            .await
            .map_err(AuthError::from)?
        {
            return Err(ApiError::unprocessable("password", "the password is wrong"));
        }
        ts.disable_totp(&caller_actor(c, req), &c.user_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("TOTP enrolment"),
                other => other.into(),
            })?;
        Ok(NoContent::Done)
    }

    /// Replace the backup codes (a current TOTP code is required).
    #[oai(path = "/api/v1/me/mfa/backup-codes", method = "post")]
    async fn new_backup_codes(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        body: Json<CodeBody>,
    ) -> ApiResult<Json<BackupCodes>> {
        let c = auth.caller();
        if c.method == AuthMethod::ApiKey {
            return Err(ApiError::forbidden("an API key cannot change MFA"));
        }
        let ts = state.store.tenant(c.tenant_id.clone());
        if check_code(&state, &ts, &c.user_id, &body.code).await? != Some("totp") {
            return Err(ApiError::unprocessable("code", "the code does not match"));
        }
        let codes = totp::backup_codes();
        let hashes: Vec<String> = codes.iter().map(|c| totp::hash_backup_code(c)).collect();
        ts.replace_backup_codes(&caller_actor(c, req), &c.user_id, &hashes)
            .await?;
        Ok(Json(BackupCodes {
            backup_codes: codes,
        }))
    }

    /// Reset a user's MFA after a lost device (permission `users.write`).
    #[oai(path = "/api/v1/users/:id/mfa", method = "delete")]
    async fn reset(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::UsersWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let actor: Actor = caller_actor(c, req);
        ts.disable_totp(&actor, &id.0).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("TOTP enrolment"),
            other => other.into(),
        })?;
        Ok(NoContent::Done)
    }
}
