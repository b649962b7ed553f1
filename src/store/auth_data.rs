//! Authentication state: JWT signing keys (instance-wide), sessions and their rotating refresh
//! tokens, failed-login counters, custom roles and role assignments.

use super::write::{self, Invalidate, WriteTx, insert_audit};
use super::{Store, StoreError, StoreResult, TenantStore, hash_token, new_id};
use crate::auth::rbac::{self, PermSet, Permission};
use crate::model::{Actor, Micros, TenantId, now_micros};
use base64::Engine;
use rand::RngCore;
use sqlx::Row;
use std::sync::Arc;

/// A stored JWT signing key.
#[derive(Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 DER, base64.
    pub private_key: String,
    /// Raw public key, base64url (the JWK `x`).
    pub public_key: String,
    pub created_at: Micros,
    pub retired_at: Option<Micros>,
    pub expires_at: Option<Micros>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A session (one sign-in), as checked on every request made with its access tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub tenant_id: TenantId,
    pub user_id: String,
    pub auth_method: String,
    pub created_at: Micros,
    pub last_used_at: Micros,
    pub expires_at: Micros,
    pub revoked_at: Option<Micros>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Session {
    pub fn is_live(&self, now: Micros) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum Refreshed {
    /// The token was current: it is now spent and `secret` replaces it.
    Rotated { session: Session, secret: String },
    /// The token had already been rotated: the whole session is revoked (RFC 9700 §4.14.2).
    Reused { session_id: String },
    /// Unknown token, or its session is revoked or expired.
    Invalid,
}

/// See [`TenantStore::login_facts`].
#[derive(Clone, Debug, Default)]
pub struct LoginFacts {
    pub password_hash: Option<String>,
    pub failures: Option<Option<Micros>>,
    pub mfa: bool,
}

/// A custom role.
#[derive(Clone, Debug)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: PermSet,
    pub builtin: bool,
    pub version: i64,
    pub created_at: Micros,
    pub updated_at: Micros,
}

fn refresh_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "idh_rt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

const SESSION_COLS: &str = "id, tenant_id, user_id, auth_method, created_at, last_used_at, expires_at, revoked_at, ip, user_agent";

fn session_row(r: &sqlx::any::AnyRow) -> StoreResult<Session> {
    Ok(Session {
        id: r.try_get("id")?,
        tenant_id: TenantId(r.try_get("tenant_id")?),
        user_id: r.try_get("user_id")?,
        auth_method: r.try_get("auth_method")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
    })
}

pub(super) fn parse_permissions(text: &str) -> StoreResult<PermSet> {
    let names: Vec<String> =
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("permissions: {e}")))?;
    Ok(names.iter().filter_map(|n| Permission::parse(n)).collect())
}

pub(super) fn permissions_text(p: &PermSet) -> String {
    serde_json::to_string(&p.iter().map(|p| p.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

fn role_row(r: &sqlx::any::AnyRow) -> StoreResult<Role> {
    Ok(Role {
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        permissions: parse_permissions(&r.try_get::<String, _>("permissions")?)?,
        builtin: false,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Signing keys that still verify (not past `expires_at`), newest first.
    pub async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_key, public_key, created_at, retired_at, expires_at FROM signing_keys WHERE expires_at IS NULL OR expires_at > $1 ORDER BY created_at DESC, kid DESC",
        )
        .bind(now_micros())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRow {
                    kid: r.try_get("kid")?,
                    alg: r.try_get("alg")?,
                    private_key: r.try_get("private_key")?,
                    public_key: r.try_get("public_key")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Stores `key` as the new signing key and retires every other live key of its algorithm:
    /// they stop signing now and stop verifying at `old_expire_at`.
    pub async fn rotate_signing_key(
        &self,
        key: &SigningKeyRow,
        old_expire_at: Micros,
    ) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin_with(self.backend().begin_write()).await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $1, expires_at = $2 WHERE retired_at IS NULL AND alg = $3",
        )
        .bind(key.created_at)
        .bind(old_expire_at)
        .bind(&key.alg)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, public_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_key)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores the first signing key of its algorithm unless another node got there first
    /// (then nothing).
    pub async fn insert_first_signing_key(&self, key: &SigningKeyRow) -> StoreResult<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin_with(self.backend().begin_write()).await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL AND alg = $1",
        )
        .bind(&key.alg)
        .fetch_one(&mut *tx)
        .await?;
        if live > 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, public_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_key)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A session by id, through the cache (revocation on this node invalidates it).
    pub async fn session(&self, id: &str) -> StoreResult<Option<Arc<Session>>> {
        let cache = &self.caches().sessions;
        if let Some(s) = cache.get(&id.to_owned()).await {
            return Ok(Some(s));
        }
        let epoch = cache.epoch();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let s = Arc::new(session_row(&row)?);
        cache.insert_if_fresh(id.to_owned(), s.clone(), epoch).await;
        Ok(Some(s))
    }

    /// Spends a refresh token: a current one is rotated; a spent one revokes its session.
    pub async fn refresh(&self, secret: &str, ttl_extension: Micros) -> StoreResult<Refreshed> {
        let hash = hash_token(secret);
        let now = now_micros();
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin_with(self.backend().begin_write()).await?;
        let row = sqlx::query(
            "SELECT rt.tenant_id, rt.session_id, rt.used_at, s.revoked_at, s.expires_at FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id WHERE rt.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Refreshed::Invalid);
        };
        let tenant_id: String = row.try_get("tenant_id")?;
        let session_id: String = row.try_get("session_id")?;
        let revoked: Option<i64> = row.try_get("revoked_at")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if revoked.is_some() || expires_at <= now {
            return Ok(Refreshed::Invalid);
        }
        // Spend it; exactly one concurrent presenter wins, the others are reuse.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() == 0 {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoked_reason = 'refresh_token_reuse' WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&session_id)
            .execute(&mut *tx)
            .await?;
            insert_audit(
                &mut tx,
                &tenant_id,
                &Actor::system(),
                "auth.refresh.reuse",
                "failure",
                Some(("Session", &session_id)),
                &serde_json::json!({ "revoked": "session" }),
                now,
            )
            .await?;
            self.commit_session_change(tx, &tenant_id, &session_id)
                .await?;
            return Ok(Refreshed::Reused { session_id });
        }
        let secret = refresh_secret();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, tenant_id, session_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_token(&secret))
        .bind(&tenant_id)
        .bind(&session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let new_expiry = now.saturating_add(ttl_extension);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE sessions SET last_used_at = $1, expires_at = CASE WHEN expires_at < $2 THEN expires_at ELSE $2 END WHERE id = $3 RETURNING {SESSION_COLS}"
        )))
        .bind(now)
        .bind(new_expiry)
        .bind(&session_id)
        .fetch_one(&mut *tx)
        .await?;
        let session = session_row(&row)?;
        self.commit_session_change(tx, &tenant_id, &session_id)
            .await?;
        Ok(Refreshed::Rotated { session, secret })
    }

    /// Commits a transaction that changed (or revoked) a session outside a `WriteTx`, then
    /// announces the change to the other nodes; answered once every node has dropped its
    /// cached copy of the session.
    async fn commit_session_change(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
        tenant_id: &str,
        session_id: &str,
    ) -> StoreResult<()> {
        let tid = TenantId(tenant_id.to_owned());
        let items = [Invalidate::Session(session_id.to_owned())];
        tx.commit().await?;
        let ticket = write::announce_committed(self, &tid, &items);
        self.caches().sessions.invalidate(session_id).await;
        if let Some(t) = ticket {
            self.peers().wait(&t, self.pool()).await;
        }
        Ok(())
    }
}

impl TenantStore {
    /// What a sign-in needs to know about an account, in one round trip: the password hash,
    /// the failed-login record (`Some(None)`: failures but no lock; `Some(Some(t))`: locked
    /// until `t`) and whether TOTP is enabled.
    pub async fn login_facts(&self, user_id: &str) -> StoreResult<LoginFacts> {
        let row = sqlx::query(
            "SELECT c.secret AS hash, f.user_id AS failed, f.locked_until, t.enabled AS mfa FROM users u LEFT JOIN credentials c ON c.user_id = u.id AND c.kind = 'password' LEFT JOIN login_failures f ON f.user_id = u.id LEFT JOIN mfa_totp t ON t.user_id = u.id WHERE u.tenant_id = $1 AND u.id = $2",
        )
        .bind(self.tid())
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            return Ok(LoginFacts::default());
        };
        let now = now_micros();
        let failed: Option<String> = r.try_get("failed")?;
        let until: Option<i64> = r.try_get("locked_until")?;
        Ok(LoginFacts {
            password_hash: r.try_get("hash")?,
            failures: failed.map(|_| until.filter(|t| *t > now)),
            mfa: r.try_get::<Option<i64>, _>("mfa")?.unwrap_or(0) != 0,
        })
    }

    /// Opens a session for `user_id` and issues its first refresh token. With `audit`, the
    /// successful sign-in is audited in the same transaction (details as given).
    pub async fn create_session(
        &self,
        actor: &Actor,
        user_id: &str,
        auth_method: &str,
        lifetime: Micros,
        audit: Option<serde_json::Value>,
    ) -> StoreResult<(Session, String)> {
        let now = now_micros();
        let id = new_id();
        let secret = refresh_secret();
        if self.store.backend() == super::dialect::Backend::Postgres {
            // One statement (atomic on its own): session, first refresh token and the audit
            // record through data-modifying CTEs — one round trip instead of five, which is
            // database CPU a sign-in flood would otherwise take from password hashing.
            let details = audit.as_ref().map(|d| {
                if d.is_null() {
                    "{}".to_owned()
                } else {
                    d.to_string()
                }
            });
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "WITH s AS (INSERT INTO sessions (id, tenant_id, user_id, auth_method, created_at, last_used_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) RETURNING {SESSION_COLS}), \
                 r AS (INSERT INTO refresh_tokens (token_hash, tenant_id, session_id, created_at) SELECT $9, $2, s.id, $5 FROM s), \
                 a AS (INSERT INTO audit_events (id, tenant_id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details) \
                       SELECT $10, $2, $5, $11, $12, 'auth.login', 'User', $3, 'success', $7, $8, $13, $14 FROM s WHERE $14 IS NOT NULL) \
                 SELECT {SESSION_COLS} FROM s"
            )))
            .bind(&id)
            .bind(self.tid())
            .bind(user_id)
            .bind(auth_method)
            .bind(now)
            .bind(now.saturating_add(lifetime))
            .bind(&actor.ip)
            .bind(&actor.user_agent)
            .bind(hash_token(&secret))
            .bind(new_id())
            .bind(&actor.actor_type)
            .bind(&actor.actor_id)
            .bind(&actor.request_id)
            .bind(details)
            .fetch_one(self.pool())
            .await?;
            return Ok((session_row(&row)?, secret));
        }
        let _turn = self.store.write_turn().await;
        let mut tx = self
            .pool()
            .begin_with(self.store.backend().begin_write())
            .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sessions (id, tenant_id, user_id, auth_method, created_at, last_used_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) RETURNING {SESSION_COLS}"
        )))
        .bind(&id)
        .bind(self.tid())
        .bind(user_id)
        .bind(auth_method)
        .bind(now)
        .bind(now.saturating_add(lifetime))
        .bind(&actor.ip)
        .bind(&actor.user_agent)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, tenant_id, session_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_token(&secret))
        .bind(self.tid())
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let session = session_row(&row)?;
        if let Some(details) = audit {
            insert_audit(
                &mut tx,
                self.tenant_id.as_str(),
                actor,
                "auth.login",
                "success",
                Some(("User", user_id)),
                &details,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok((session, secret))
    }

    /// Live and ended sessions of a user, newest first (at most 100).
    pub async fn list_sessions(&self, user_id: &str) -> StoreResult<Vec<Session>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3 ORDER BY created_at DESC LIMIT 100"
        )))
        .bind(self.tid())
        .bind(user_id)
        .bind(now_micros())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(session_row)
        .collect()
    }

    /// Revokes one session of `user_id` (or of anyone, when `user_id` is `None`).
    pub async fn revoke_session(
        &self,
        actor: &Actor,
        session_id: &str,
        user_id: Option<&str>,
        reason: &'static str,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE tenant_id = $3 AND id = $4 AND ($5 IS NULL OR user_id = $5) AND revoked_at IS NULL",
        )
        .bind(w.now)
        .bind(reason)
        .bind(w.tid())
        .bind(session_id)
        .bind(user_id)
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        w.audit(
            "session.revoke",
            "Session",
            session_id,
            serde_json::json!({ "reason": reason }),
        );
        w.invalidate(Invalidate::Session(session_id.to_owned()));
        w.commit().await
    }

    /// Revokes every live session of a user except `keep`; returns how many.
    pub async fn revoke_user_sessions(
        &self,
        actor: &Actor,
        user_id: &str,
        keep: Option<&str>,
        reason: &'static str,
    ) -> StoreResult<u64> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE tenant_id = $3 AND user_id = $4 AND revoked_at IS NULL AND ($5 IS NULL OR id <> $5) RETURNING id",
        )
        .bind(w.now)
        .bind(reason)
        .bind(w.tid())
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut *w.tx)
        .await?;
        let n = ids.len() as u64;
        w.audit(
            "session.revoke_all",
            "User",
            user_id,
            serde_json::json!({ "reason": reason, "revoked": n }),
        );
        for id in ids {
            w.invalidate(Invalidate::Session(id));
        }
        w.commit().await?;
        Ok(n)
    }

    /// Records an outcome that changes nothing else (e.g. a failed login) in the audit trail.
    pub async fn audit_outcome(
        &self,
        actor: &Actor,
        action: &str,
        outcome: &str,
        target: Option<(&str, &str)>,
        details: &serde_json::Value,
    ) -> StoreResult<()> {
        let _turn = self.store.write_turn().await;
        let mut conn = self.pool().acquire().await?;
        insert_audit(
            &mut conn,
            self.tenant_id.as_str(),
            actor,
            action,
            outcome,
            target,
            details,
            now_micros(),
        )
        .await
    }

    /// The account's failed-login record: `None` when there is none; otherwise the lock
    /// expiry when it is locked now.
    pub async fn login_failures(&self, user_id: &str) -> StoreResult<Option<Option<Micros>>> {
        let until: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT locked_until FROM login_failures WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(self.tid())
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        let now = now_micros();
        Ok(until.map(|u| u.filter(|t| *t > now)))
    }

    /// Counts a failed login; at `threshold` failures the account locks for `lock_for` and the
    /// counter restarts. Returns the lock expiry when this failure locked the account.
    pub async fn record_login_failure(
        &self,
        user_id: &str,
        threshold: u32,
        lock_for: Micros,
    ) -> StoreResult<Option<Micros>> {
        let now = now_micros();
        let _turn = self.store.write_turn().await;
        let failures: i64 = sqlx::query_scalar(
            "INSERT INTO login_failures (tenant_id, user_id, failures, updated_at) VALUES ($1, $2, 1, $3) ON CONFLICT (user_id) DO UPDATE SET failures = login_failures.failures + 1, updated_at = excluded.updated_at RETURNING failures",
        )
        .bind(self.tid())
        .bind(user_id)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        if failures >= i64::from(threshold.max(1)) {
            let until = now.saturating_add(lock_for);
            sqlx::query(
                "UPDATE login_failures SET failures = 0, locked_until = $1 WHERE tenant_id = $2 AND user_id = $3",
            )
            .bind(until)
            .bind(self.tid())
            .bind(user_id)
            .execute(self.pool())
            .await?;
            return Ok(Some(until));
        }
        Ok(None)
    }

    /// Forgets failed logins (after a success, or an administrator's unlock).
    pub async fn clear_login_failures(&self, user_id: &str) -> StoreResult<()> {
        let _turn = self.store.write_turn().await;
        sqlx::query("DELETE FROM login_failures WHERE tenant_id = $1 AND user_id = $2")
            .bind(self.tid())
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    // ---- roles ---------------------------------------------------------------------------

    /// Built-in roles followed by this tenant's custom roles, by name.
    pub async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        let default = self.store.is_default_tenant(&self.tenant_id);
        let mut out: Vec<Role> = rbac::BUILTIN_ROLES
            .iter()
            .filter(|(n, _)| default || *n != rbac::ROLE_SUPERADMIN)
            .map(|(n, d)| Role {
                name: (*n).to_owned(),
                description: (*d).to_owned(),
                permissions: rbac::builtin_permissions(n, default).unwrap_or_default(),
                builtin: true,
                version: 1,
                created_at: 0,
                updated_at: 0,
            })
            .collect();
        let rows = sqlx::query(
            "SELECT name, description, permissions, version, created_at, updated_at FROM roles WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(self.tid())
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            out.push(role_row(r)?);
        }
        Ok(out)
    }

    /// One role (built-in or custom) by name.
    pub async fn role(&self, name: &str) -> StoreResult<Option<Role>> {
        Ok(self
            .list_roles()
            .await?
            .into_iter()
            .find(|r| r.name == name))
    }

    /// Creates a custom role. A taken name is a `Conflict`.
    pub async fn create_role(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
        permissions: &PermSet,
    ) -> StoreResult<Role> {
        if rbac::is_builtin(name) {
            return Err(StoreError::Conflict {
                constraint: "roles_pkey",
            });
        }
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let row = sqlx::query(
            "INSERT INTO roles (tenant_id, name, description, permissions, version, created_at, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $5) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING name, description, permissions, version, created_at, updated_at",
        )
        .bind(w.tid())
        .bind(name)
        .bind(description)
        .bind(permissions_text(permissions))
        .bind(w.now)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::Conflict {
                constraint: "roles_pkey",
            });
        };
        let role = role_row(&row)?;
        w.changed("Role", name, "create", role.version, "role.create");
        w.invalidate(Invalidate::Roles);
        w.commit().await?;
        Ok(role)
    }

    /// Changes a custom role's description and/or permissions.
    pub async fn update_role(
        &self,
        actor: &Actor,
        name: &str,
        description: Option<&str>,
        permissions: Option<&PermSet>,
    ) -> StoreResult<Role> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let row = sqlx::query(
            "UPDATE roles SET description = coalesce($1, description), permissions = coalesce($2, permissions), version = version + 1, updated_at = $3 WHERE tenant_id = $4 AND name = $5 RETURNING name, description, permissions, version, created_at, updated_at",
        )
        .bind(description)
        .bind(permissions.map(permissions_text))
        .bind(w.now)
        .bind(w.tid())
        .bind(name)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let role = role_row(&row)?;
        w.changed("Role", name, "update", role.version, "role.update");
        w.invalidate(Invalidate::Roles);
        w.commit().await?;
        Ok(role)
    }

    /// Deletes a custom role and every assignment of it.
    pub async fn delete_role(&self, actor: &Actor, name: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let version: Option<i64> = sqlx::query_scalar(
            "DELETE FROM roles WHERE tenant_id = $1 AND name = $2 RETURNING version",
        )
        .bind(w.tid())
        .bind(name)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(version) = version else {
            return Err(StoreError::NotFound);
        };
        for table in ["user_roles", "group_roles"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND role = $2"
            )))
            .bind(w.tid())
            .bind(name)
            .execute(&mut *w.tx)
            .await?;
        }
        w.changed("Role", name, "delete", version + 1, "role.delete");
        w.invalidate(Invalidate::Roles);
        w.commit().await
    }

    /// Removes a role from a user (idempotent). Refuses to remove the last superadmin.
    pub async fn revoke_role(&self, actor: &Actor, user_id: &str, role: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        if role == rbac::ROLE_SUPERADMIN {
            let holders: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM user_roles WHERE tenant_id = $1 AND role = $2 AND user_id <> $3",
            )
            .bind(w.tid())
            .bind(role)
            .bind(user_id)
            .fetch_one(&mut *w.tx)
            .await?;
            if holders == 0 {
                return Err(StoreError::Conflict {
                    constraint: "last_superadmin",
                });
            }
        }
        sqlx::query("DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2 AND role = $3")
            .bind(w.tid())
            .bind(user_id)
            .bind(role)
            .execute(&mut *w.tx)
            .await?;
        w.audit(
            "user.role.revoke",
            "User",
            user_id,
            serde_json::json!({ "role": role }),
        );
        w.invalidate(Invalidate::Roles);
        w.commit().await
    }

    /// The roles granted to a group directly.
    pub async fn group_roles(&self, group_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT role FROM group_roles WHERE tenant_id = $1 AND group_id = $2 ORDER BY role",
        )
        .bind(self.tid())
        .bind(group_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Grants (`grant`) or removes a role of a group (idempotent).
    pub async fn set_group_role(
        &self,
        actor: &Actor,
        group_id: &str,
        role: &str,
        grant: bool,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT id FROM groups WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(w.tid())
        .bind(group_id)
        .fetch_optional(&mut *w.tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let sql = if grant {
            "INSERT INTO group_roles (tenant_id, group_id, role) VALUES ($1, $2, $3) ON CONFLICT (group_id, role) DO NOTHING"
        } else {
            "DELETE FROM group_roles WHERE tenant_id = $1 AND group_id = $2 AND role = $3"
        };
        sqlx::query(sql)
            .bind(w.tid())
            .bind(group_id)
            .bind(role)
            .execute(&mut *w.tx)
            .await?;
        w.audit(
            if grant {
                "group.role.grant"
            } else {
                "group.role.revoke"
            },
            "Group",
            group_id,
            serde_json::json!({ "role": role }),
        );
        w.invalidate(Invalidate::Roles);
        w.commit().await
    }

    /// Every role a user holds: granted directly or to any group the user belongs to
    /// (directly or through nested groups).
    pub async fn effective_roles(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let mut roles = self.user_roles(user_id).await?;
        let groups = self.group_memberships(user_id).await?;
        if !groups.is_empty() {
            let ids: Vec<&str> = groups.iter().map(|(id, _, _)| id.as_str()).collect();
            let list = super::dialect::in_list(2, ids.len());
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT DISTINCT role FROM group_roles WHERE tenant_id = $1 AND group_id IN ({list})"
            )))
            .bind(self.tid());
            for id in &ids {
                q = q.bind(*id);
            }
            roles.extend(q.fetch_all(self.pool()).await?);
        }
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    /// The permissions a user holds through their roles (cached; any role, assignment or
    /// membership change invalidates it).
    pub async fn user_permissions(
        &self,
        user_id: &str,
    ) -> StoreResult<Arc<(Vec<String>, PermSet)>> {
        let key = (self.tenant_id.clone(), user_id.to_owned());
        let cache = &self.caches().permissions;
        if let Some(p) = cache.get(&key).await {
            return Ok(p);
        }
        let epoch = cache.epoch();
        let roles = self.effective_roles(user_id).await?;
        let default = self.store.is_default_tenant(&self.tenant_id);
        let mut perms = PermSet::new();
        let mut custom = Vec::new();
        for r in &roles {
            match rbac::builtin_permissions(r, default) {
                Some(p) => perms.extend(p),
                None => custom.push(r.as_str()),
            }
        }
        if !custom.is_empty() {
            let list = super::dialect::in_list(2, custom.len());
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT permissions FROM roles WHERE tenant_id = $1 AND name IN ({list})"
            )))
            .bind(self.tid());
            for c in &custom {
                q = q.bind(*c);
            }
            for text in q.fetch_all(self.pool()).await? {
                perms.extend(parse_permissions(&text)?);
            }
        }
        let out = Arc::new((roles, perms));
        cache.insert_if_fresh(key, out.clone(), epoch).await;
        Ok(out)
    }
}
