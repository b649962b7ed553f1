//! OAuth 2.0 clients, authorization codes and refresh tokens (the OIDC bridge).
//!
//! A code is redeemed by one conditional UPDATE, so it works once across every node; a refresh
//! token likewise, and presenting a spent one revokes its whole family (RFC 6819 §5.2.2.3).

use super::tokens::hash_token;
use super::write::WriteTx;
use super::{Store, StoreError, StoreResult, TenantStore};
use crate::model::{Actor, Micros, TenantId, now_micros};
use sqlx::Row;

/// An application (OAuth client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    /// `None`: a global client, usable with every tenant's connections.
    pub tenant_id: Option<TenantId>,
    pub name: String,
    /// SHA-256 of the secret; `None` for a public client (PKCE required).
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub allowed_scopes: Vec<String>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// What an authorization code stands for.
#[derive(Clone, Debug)]
pub struct CodeGrant {
    pub tenant_id: TenantId,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
}

/// What a refresh token stands for.
#[derive(Clone, Debug)]
pub struct RefreshGrant {
    pub family_id: String,
    pub tenant_id: TenantId,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub scope: String,
    pub auth_time: i64,
}

/// Why a code or refresh token was not redeemed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedeemRefusal {
    Unknown,
    /// Spent before: for a refresh token, its family is now revoked.
    Reused,
    Expired,
}

const CLIENT_COLS: &str =
    "id, tenant_id, name, secret_hash, redirect_uris, allowed_scopes, created_at, updated_at";

fn client_row(r: &sqlx::any::AnyRow) -> StoreResult<OAuthClient> {
    let list = |c: &str| -> StoreResult<Vec<String>> {
        serde_json::from_str(&r.try_get::<String, _>(c)?)
            .map_err(|e| StoreError::Corrupt(format!("oauth client {c}: {e}")))
    };
    Ok(OAuthClient {
        id: r.try_get("id")?,
        tenant_id: r.try_get::<Option<String>, _>("tenant_id")?.map(TenantId),
        name: r.try_get("name")?,
        secret_hash: r.try_get("secret_hash")?,
        redirect_uris: list("redirect_uris")?,
        allowed_scopes: list("allowed_scopes")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// A client by id (tenant or global), for the authorization and token endpoints.
    pub async fn oauth_client(&self, id: &str) -> StoreResult<Option<OAuthClient>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(client_row)
        .transpose()
    }

    /// Global clients (operators manage them).
    pub async fn global_oauth_clients(&self) -> StoreResult<Vec<OAuthClient>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE tenant_id IS NULL ORDER BY created_at, id"
        )))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(client_row)
        .collect()
    }

    /// Stores a new authorization code (its hash) for `lifetime`.
    pub async fn insert_oauth_code(
        &self,
        code: &str,
        g: &CodeGrant,
        lifetime: Micros,
    ) -> StoreResult<()> {
        let now = now_micros();
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, tenant_id, client_id, user_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(hash_token(code))
        .bind(&g.tenant_id.0)
        .bind(&g.client_id)
        .bind(&g.user_id)
        .bind(&g.session_id)
        .bind(&g.redirect_uri)
        .bind(&g.scope)
        .bind(&g.nonce)
        .bind(&g.code_challenge)
        .bind(g.auth_time)
        .bind(now)
        .bind(now.saturating_add(lifetime))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Redeems a code of `client_id`: exactly one caller gets its grant.
    pub async fn redeem_oauth_code(
        &self,
        code: &str,
        client_id: &str,
    ) -> StoreResult<Result<CodeGrant, RedeemRefusal>> {
        let now = now_micros();
        let hash = hash_token(code);
        let row = {
            let _turn = self.write_turn().await;
            sqlx::query(
                "UPDATE oauth_codes SET used_at = $1 WHERE code_hash = $2 AND client_id = $3 AND used_at IS NULL AND expires_at > $1 RETURNING tenant_id, client_id, user_id, session_id, redirect_uri, scope, nonce, code_challenge, auth_time",
            )
            .bind(now)
            .bind(&hash)
            .bind(client_id)
            .fetch_optional(self.pool())
            .await?
        };
        if let Some(r) = row {
            return Ok(Ok(CodeGrant {
                tenant_id: TenantId(r.try_get("tenant_id")?),
                client_id: r.try_get("client_id")?,
                user_id: r.try_get("user_id")?,
                session_id: r.try_get("session_id")?,
                redirect_uri: r.try_get("redirect_uri")?,
                scope: r.try_get("scope")?,
                nonce: r.try_get("nonce")?,
                code_challenge: r.try_get("code_challenge")?,
                auth_time: r.try_get("auth_time")?,
            }));
        }
        let state =
            sqlx::query("SELECT used_at FROM oauth_codes WHERE code_hash = $1 AND client_id = $2")
                .bind(&hash)
                .bind(client_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(Err(match state {
            None => RedeemRefusal::Unknown,
            Some(r) if r.try_get::<Option<i64>, _>("used_at")?.is_some() => RedeemRefusal::Reused,
            Some(_) => RedeemRefusal::Expired,
        }))
    }

    /// Issues a refresh token of `family` (a new family when `None`).
    pub async fn insert_oauth_refresh(
        &self,
        token: &str,
        family: &str,
        g: &RefreshGrant,
        lifetime: Micros,
    ) -> StoreResult<()> {
        let now = now_micros();
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO oauth_refresh_tokens (token_hash, family_id, tenant_id, client_id, user_id, session_id, scope, auth_time, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(hash_token(token))
        .bind(family)
        .bind(&g.tenant_id.0)
        .bind(&g.client_id)
        .bind(&g.user_id)
        .bind(&g.session_id)
        .bind(&g.scope)
        .bind(g.auth_time)
        .bind(now)
        .bind(now.saturating_add(lifetime))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Spends a refresh token of `client_id`. Presenting a spent token revokes every token of
    /// its family (a stolen token and its legitimate holder cannot both keep going).
    pub async fn redeem_oauth_refresh(
        &self,
        token: &str,
        client_id: &str,
    ) -> StoreResult<Result<RefreshGrant, RedeemRefusal>> {
        let now = now_micros();
        let hash = hash_token(token);
        let _turn = self.write_turn().await;
        let row = sqlx::query(
            "UPDATE oauth_refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND client_id = $3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 RETURNING family_id, tenant_id, client_id, user_id, session_id, scope, auth_time",
        )
        .bind(now)
        .bind(&hash)
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        if let Some(r) = row {
            return Ok(Ok(RefreshGrant {
                family_id: r.try_get("family_id")?,
                tenant_id: TenantId(r.try_get("tenant_id")?),
                client_id: r.try_get("client_id")?,
                user_id: r.try_get("user_id")?,
                session_id: r.try_get("session_id")?,
                scope: r.try_get("scope")?,
                auth_time: r.try_get("auth_time")?,
            }));
        }
        let state = sqlx::query(
            "SELECT family_id, used_at, revoked_at FROM oauth_refresh_tokens WHERE token_hash = $1 AND client_id = $2",
        )
        .bind(&hash)
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = state else {
            return Ok(Err(RedeemRefusal::Unknown));
        };
        let used: Option<i64> = r.try_get("used_at")?;
        let revoked: Option<i64> = r.try_get("revoked_at")?;
        if used.is_some() || revoked.is_some() {
            let family: String = r.try_get("family_id")?;
            sqlx::query(
                "UPDATE oauth_refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&family)
            .execute(self.pool())
            .await?;
            return Ok(Err(RedeemRefusal::Reused));
        }
        Ok(Err(RedeemRefusal::Expired))
    }

    /// Drops expired codes (kept an hour for "reused" answers) and expired refresh tokens.
    pub async fn purge_oauth_expired(&self) -> StoreResult<u64> {
        let now = now_micros();
        let _turn = self.write_turn().await;
        let a = sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
            .bind(now - 3_600_000_000)
            .execute(self.pool())
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM oauth_refresh_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(a + b)
    }
}

impl TenantStore {
    /// The tenant's own clients.
    pub async fn oauth_clients(&self) -> StoreResult<Vec<OAuthClient>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE tenant_id = $1 ORDER BY created_at, id"
        )))
        .bind(self.tid())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(client_row)
        .collect()
    }

    /// Stores a client; `global` stores it without a tenant (the audit record stays with this
    /// tenant, the operator's).
    pub async fn create_oauth_client(
        &self,
        actor: &Actor,
        c: &OAuthClient,
        global: bool,
    ) -> StoreResult<OAuthClient> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let tenant = (!global).then(|| w.tid());
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO oauth_clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {CLIENT_COLS}"
        )))
        .bind(&c.id)
        .bind(tenant)
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(json(&c.redirect_uris))
        .bind(json(&c.allowed_scopes))
        .bind(w.now)
        .fetch_one(&mut *w.tx)
        .await?;
        let stored = client_row(&row)?;
        w.audit(
            "oauth.client.create",
            "OAuthClient",
            &c.id,
            serde_json::json!({ "global": global, "redirect_uris": c.redirect_uris }),
        );
        w.commit().await?;
        Ok(stored)
    }

    /// Changes name, redirect URIs and scopes of a client this tenant may manage (its own;
    /// global ones too when `operator`).
    pub async fn update_oauth_client(
        &self,
        actor: &Actor,
        c: &OAuthClient,
        operator: bool,
    ) -> StoreResult<OAuthClient> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE oauth_clients SET name = $1, redirect_uris = $2, allowed_scopes = $3, secret_hash = $4, updated_at = $5 WHERE id = $6 AND (tenant_id = $7 OR ($8 = 1 AND tenant_id IS NULL)) RETURNING {CLIENT_COLS}"
        )))
        .bind(&c.name)
        .bind(json(&c.redirect_uris))
        .bind(json(&c.allowed_scopes))
        .bind(&c.secret_hash)
        .bind(w.now)
        .bind(&c.id)
        .bind(w.tid())
        .bind(i64::from(operator))
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let stored = client_row(&row)?;
        w.audit(
            "oauth.client.update",
            "OAuthClient",
            &c.id,
            serde_json::Value::Null,
        );
        w.commit().await?;
        Ok(stored)
    }

    pub async fn delete_oauth_client(
        &self,
        actor: &Actor,
        id: &str,
        operator: bool,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query(
            "DELETE FROM oauth_clients WHERE id = $1 AND (tenant_id = $2 OR ($3 = 1 AND tenant_id IS NULL))",
        )
        .bind(id)
        .bind(w.tid())
        .bind(i64::from(operator))
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        w.audit(
            "oauth.client.delete",
            "OAuthClient",
            id,
            serde_json::Value::Null,
        );
        w.commit().await
    }
}
