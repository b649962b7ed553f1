//! TOTP enrolment state and backup codes of a user.

use super::write::WriteTx;
use super::{StoreError, StoreResult, TenantStore};
use crate::model::Actor;
use sqlx::Row;

/// A user's TOTP record.
#[derive(Clone, Debug)]
pub struct TotpRecord {
    /// Sealed secret (see `auth::sealing`).
    pub sealed_secret: String,
    pub enabled: bool,
    pub last_step: Option<i64>,
}

impl TenantStore {
    pub async fn totp(&self, user_id: &str) -> StoreResult<Option<TotpRecord>> {
        let row = sqlx::query(
            "SELECT secret, enabled, last_step FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(self.tid())
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(TotpRecord {
                sealed_secret: r.try_get("secret")?,
                enabled: r.try_get::<i64, _>("enabled")? != 0,
                last_step: r.try_get("last_step")?,
            })
        })
        .transpose()
    }

    /// Starts (or restarts) an enrolment. An enabled TOTP is a `Conflict`.
    pub async fn put_pending_totp(
        &self,
        actor: &Actor,
        user_id: &str,
        sealed: &str,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query(
            "INSERT INTO mfa_totp (tenant_id, user_id, secret, enabled, created_at) VALUES ($1, $2, $3, 0, $4) ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, last_step = NULL WHERE mfa_totp.enabled = 0",
        )
        .bind(w.tid())
        .bind(user_id)
        .bind(sealed)
        .bind(w.now)
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                constraint: "mfa_enabled",
            });
        }
        w.audit("mfa.totp.enrol", "User", user_id, serde_json::Value::Null);
        w.commit().await
    }

    /// Enables a pending TOTP at `step` with fresh backup codes (hashes).
    pub async fn enable_totp(
        &self,
        actor: &Actor,
        user_id: &str,
        step: i64,
        backup_hashes: &[String],
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query(
            "UPDATE mfa_totp SET enabled = 1, last_step = $1, confirmed_at = $2 WHERE tenant_id = $3 AND user_id = $4 AND enabled = 0",
        )
        .bind(step)
        .bind(w.now)
        .bind(w.tid())
        .bind(user_id)
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        replace_codes(&mut w, user_id, backup_hashes).await?;
        w.audit("mfa.totp.enable", "User", user_id, serde_json::Value::Null);
        w.commit().await
    }

    /// Accepts a TOTP step once: false when this or a later step was already used.
    pub async fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let _turn = self.store.write_turn().await;
        let done = sqlx::query(
            "UPDATE mfa_totp SET last_step = $1 WHERE tenant_id = $2 AND user_id = $3 AND enabled = 1 AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(self.tid())
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends a backup code (by hash): false when unknown or already used.
    pub async fn use_backup_code(&self, user_id: &str, hash: &str) -> StoreResult<bool> {
        let _turn = self.store.write_turn().await;
        let done = sqlx::query(
            "UPDATE mfa_backup_codes SET used_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND code_hash = $4 AND used_at IS NULL",
        )
        .bind(crate::model::now_micros())
        .bind(self.tid())
        .bind(user_id)
        .bind(hash)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn backup_codes_left(&self, user_id: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM mfa_backup_codes WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL",
        )
        .bind(self.tid())
        .bind(user_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// Replaces a user's backup codes.
    pub async fn replace_backup_codes(
        &self,
        actor: &Actor,
        user_id: &str,
        hashes: &[String],
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        replace_codes(&mut w, user_id, hashes).await?;
        w.audit(
            "mfa.backup_codes.replace",
            "User",
            user_id,
            serde_json::Value::Null,
        );
        w.commit().await
    }

    /// Removes TOTP and backup codes (the user turned MFA off, or an administrator reset it).
    pub async fn disable_totp(&self, actor: &Actor, user_id: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query("DELETE FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2")
            .bind(w.tid())
            .bind(user_id)
            .execute(&mut *w.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM mfa_backup_codes WHERE tenant_id = $1 AND user_id = $2")
            .bind(w.tid())
            .bind(user_id)
            .execute(&mut *w.tx)
            .await?;
        w.audit("mfa.totp.disable", "User", user_id, serde_json::Value::Null);
        w.commit().await
    }
}

async fn replace_codes(w: &mut WriteTx, user_id: &str, hashes: &[String]) -> StoreResult<()> {
    sqlx::query("DELETE FROM mfa_backup_codes WHERE tenant_id = $1 AND user_id = $2")
        .bind(w.tid())
        .bind(user_id)
        .execute(&mut *w.tx)
        .await?;
    for h in hashes {
        sqlx::query(
            "INSERT INTO mfa_backup_codes (tenant_id, user_id, code_hash) VALUES ($1, $2, $3)",
        )
        .bind(w.tid())
        .bind(user_id)
        .bind(h)
        .execute(&mut *w.tx)
        .await?;
    }
    Ok(())
}
