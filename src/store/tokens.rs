//! Bearer tokens (SCIM tokens now; API keys and others share the table by `kind`).
//!
//! A token is 32 random bytes, shown once as `idh_<kind>_<base64url>` and stored only as its
//! SHA-256. Lookup is by hash; the stored hash is compared again in constant time.

use super::rows::{self, TOKEN_COLS};
use super::write::{Invalidate, WriteTx};
use super::{Store, StoreError, StoreResult, TenantStore, new_id};
use crate::model::{Actor, Micros, Principal, PrincipalKind, TenantId, TokenInfo, now_micros};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use subtle::ConstantTimeEq;

/// How often (at most) a token's `last_used_at` is written back.
const LAST_USED_RESOLUTION_MICROS: i64 = 60 * 1_000_000;

/// A freshly issued token: the secret is returned to the caller once and never stored.
pub struct IssuedToken {
    pub secret: String,
    pub info: TokenInfo,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("secret", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

/// What an authenticated token resolves to (cached by token hash).
#[derive(Debug)]
pub struct TokenAuth {
    pub principal: Principal,
    pub token_id: String,
    pub expires_at: Option<Micros>,
    last_used_written: AtomicI64,
}

/// SHA-256 of a token secret, hex-encoded: the only form in which tokens are stored.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn generate_secret(kind: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "idh_{kind}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Store {
    /// The principal a bearer token authenticates, or `None` for an unknown, revoked or
    /// expired token. Served from the cache after the first use; revocation invalidates it.
    pub async fn authenticate_token(&self, secret: &str) -> StoreResult<Option<Arc<TokenAuth>>> {
        let hash = hash_token(secret);
        let now = now_micros();
        let cache = &self.caches().tokens;
        let auth = match cache.get(&hash).await {
            Some(a) => a,
            None => {
                let epoch = cache.epoch();
                let row = sqlx::query(
                    "SELECT id, tenant_id, kind, token_hash, expires_at, last_used_at, user_id, permissions FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(&hash)
                .fetch_optional(self.pool())
                .await?;
                let Some(row) = row else { return Ok(None) };
                let stored: String = row.try_get("token_hash")?;
                if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
                    return Ok(None);
                }
                let kind: String = row.try_get("kind")?;
                let token_id: String = row.try_get("id")?;
                let principal_kind = match kind.as_str() {
                    "scim" => PrincipalKind::ScimToken {
                        token_id: token_id.clone(),
                    },
                    "api" => PrincipalKind::ApiKey {
                        token_id: token_id.clone(),
                        user_id: row
                            .try_get::<Option<String>, _>("user_id")?
                            .ok_or_else(|| StoreError::Corrupt("api key without user".into()))?,
                        permissions: match row.try_get::<Option<String>, _>("permissions")? {
                            Some(t) => serde_json::from_str(&t).map_err(|e| {
                                StoreError::Corrupt(format!("token permissions: {e}"))
                            })?,
                            None => Vec::new(),
                        },
                    },
                    other => return Err(StoreError::Corrupt(format!("token kind {other}"))),
                };
                let last_used: Option<i64> = row.try_get("last_used_at")?;
                let auth = Arc::new(TokenAuth {
                    principal: Principal {
                        tenant_id: TenantId(row.try_get("tenant_id")?),
                        kind: principal_kind,
                    },
                    token_id,
                    expires_at: row.try_get("expires_at")?,
                    last_used_written: AtomicI64::new(last_used.unwrap_or(0)),
                });
                cache.insert_if_fresh(hash, auth.clone(), epoch).await;
                auth
            }
        };
        if auth.expires_at.is_some_and(|exp| exp <= now) {
            return Ok(None);
        }
        let last = auth.last_used_written.load(Ordering::Relaxed);
        if now - last >= LAST_USED_RESOLUTION_MICROS
            && auth
                .last_used_written
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // At most once a minute per token per node: cheap, and visible to operators.
            let _turn = self.write_turn().await;
            let r = sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&auth.token_id)
                .execute(self.pool())
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, token_id = %auth.token_id, "cannot record token use");
            }
        }
        self.count_use(&auth, now);
        Ok(Some(auth))
    }

    fn count_use(&self, auth: &TokenAuth, now: Micros) {
        let actor_type = match &auth.principal.kind {
            PrincipalKind::ScimToken { .. } => "scim_token",
            PrincipalKind::ApiKey { .. } => "api_key",
            PrincipalKind::Admin { .. } => "user",
        };
        if let Ok(mut m) = self.token_usage().lock() {
            let e = m
                .entry(auth.token_id.clone())
                .or_insert_with(|| TokenUsage {
                    tenant_id: auth.principal.tenant_id.clone(),
                    actor_type,
                    uses: 0,
                    first: now,
                    last: now,
                });
            e.uses += 1;
            e.last = now;
        }
    }

    /// Writes one `token.use` audit record per token used since the last call (how many
    /// requests, first and last use), so the audit trail summarises token use without a row
    /// per request. Called periodically and at shutdown.
    pub async fn flush_token_usage(&self) -> StoreResult<usize> {
        let taken: Vec<(String, TokenUsage)> = match self.token_usage().lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => return Ok(0),
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        let mut conn = self.pool().acquire().await?;
        for (token_id, u) in &taken {
            let actor = crate::model::Actor {
                actor_type: u.actor_type.into(),
                actor_id: Some(token_id.clone()),
                ..crate::model::Actor::default()
            };
            let r = super::write::insert_audit(
                &mut conn,
                u.tenant_id.as_str(),
                &actor,
                "token.use",
                "success",
                Some(("Token", token_id)),
                &serde_json::json!({
                    "uses": u.uses,
                    "first": crate::model::rfc3339(u.first),
                    "last": crate::model::rfc3339(u.last),
                }),
                now_micros(),
            )
            .await;
            // A token (or tenant) deleted meanwhile has nothing to summarise.
            if let Err(e) = r {
                tracing::debug!(error = %e, token = %token_id, "token use summary dropped");
            }
        }
        Ok(taken.len())
    }
}

/// Uses of one token since the last summary.
#[derive(Clone, Debug)]
pub(crate) struct TokenUsage {
    tenant_id: TenantId,
    actor_type: &'static str,
    uses: u64,
    first: Micros,
    last: Micros,
}

impl TenantStore {
    /// Issues a token of `kind` for this tenant. The secret is in the result and nowhere else.
    #[tracing::instrument(skip(self, actor), fields(tenant = %self.tenant_id))]
    pub async fn create_token(
        &self,
        actor: &Actor,
        kind: &'static str,
        name: &str,
        expires_at: Option<Micros>,
    ) -> StoreResult<IssuedToken> {
        self.insert_token(actor, kind, name, expires_at, None).await
    }

    /// Issues an API key acting as `user_id`, limited to `permissions` (names).
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        user_id: &str,
        name: &str,
        expires_at: Option<Micros>,
        permissions: &[String],
    ) -> StoreResult<IssuedToken> {
        self.insert_token(actor, "api", name, expires_at, Some((user_id, permissions)))
            .await
    }

    /// Revokes one of a user's API keys (404 when it is not theirs).
    pub async fn revoke_api_key(
        &self,
        actor: &Actor,
        user_id: &str,
        token_id: &str,
    ) -> StoreResult<TokenInfo> {
        let owner: Option<Option<String>> = sqlx::query_scalar(
            "SELECT user_id FROM tokens WHERE tenant_id = $1 AND id = $2 AND kind = 'api'",
        )
        .bind(self.tid())
        .bind(token_id)
        .fetch_optional(self.pool())
        .await?;
        if owner.flatten().as_deref() != Some(user_id) {
            return Err(StoreError::NotFound);
        }
        self.revoke_token(actor, token_id).await
    }

    /// A user's API keys, newest first.
    pub async fn list_api_keys(&self, user_id: &str) -> StoreResult<Vec<TokenInfo>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE tenant_id = $1 AND kind = 'api' AND user_id = $2 ORDER BY id DESC"
        )))
        .bind(self.tid())
        .bind(user_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(rows::token)
        .collect()
    }

    async fn insert_token(
        &self,
        actor: &Actor,
        kind: &'static str,
        name: &str,
        expires_at: Option<Micros>,
        owner: Option<(&str, &[String])>,
    ) -> StoreResult<IssuedToken> {
        let secret = generate_secret(kind);
        let prefix: String = secret.chars().take(14).collect();
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let id = new_id();
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO tokens (id, tenant_id, kind, name, token_hash, token_prefix, created_at, expires_at, user_id, permissions) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {TOKEN_COLS}"
        )))
        .bind(&id)
        .bind(w.tid())
        .bind(kind)
        .bind(name)
        .bind(hash_token(&secret))
        .bind(&prefix)
        .bind(w.now)
        .bind(expires_at)
        .bind(owner.map(|(u, _)| u.to_owned()))
        .bind(owner.map(|(_, p)| serde_json::to_string(p).unwrap_or_else(|_| "[]".into())))
        .fetch_one(&mut *w.tx)
        .await?;
        let info = rows::token(&row)?;
        w.audit(
            "token.create",
            "Token",
            &id,
            serde_json::json!({ "kind": kind, "name": name }),
        );
        w.commit().await?;
        Ok(IssuedToken { secret, info })
    }

    /// The tokens of `kind` in this tenant, newest first (revoked ones included, marked).
    pub async fn list_tokens(&self, kind: &str) -> StoreResult<Vec<TokenInfo>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE tenant_id = $1 AND kind = $2 ORDER BY id DESC"
        )))
        .bind(self.tid())
        .bind(kind)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(rows::token)
        .collect()
    }

    /// Revokes a token. Takes effect for the next request on this node (cache invalidated).
    #[tracing::instrument(skip(self, actor), fields(tenant = %self.tenant_id))]
    pub async fn revoke_token(&self, actor: &Actor, token_id: &str) -> StoreResult<TokenInfo> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let hash: Option<String> = sqlx::query_scalar(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, $3) WHERE tenant_id = $1 AND id = $2 RETURNING token_hash",
        )
        .bind(w.tid())
        .bind(token_id)
        .bind(w.now)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(hash) = hash else {
            return Err(StoreError::NotFound);
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(w.tid())
        .bind(token_id)
        .fetch_one(&mut *w.tx)
        .await?;
        let info = rows::token(&row)?;
        w.audit("token.revoke", "Token", token_id, serde_json::Value::Null);
        w.invalidate(Invalidate::Token(hash));
        w.commit().await?;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hash_is_hex_sha256() {
        let a = generate_secret("scim");
        let b = generate_secret("scim");
        assert!(a.starts_with("idh_scim_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), "idh_scim_".len() + 43);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
