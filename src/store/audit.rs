//! The audit trail and the change log, read side (writes happen in `write.rs`).

use super::rows;
use super::write::insert_audit;
use super::{StoreResult, TenantStore};
use crate::model::{Actor, AuditEvent, Change, PageRequest, Paged, now_micros};

impl TenantStore {
    /// A page of this tenant's audit events, newest first.
    pub async fn list_audit(&self, page: PageRequest) -> StoreResult<Paged<AuditEvent>> {
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE tenant_id = $1")
                .bind(self.tid())
                .fetch_one(self.pool())
                .await?;
        let items = sqlx::query(
            "SELECT id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, request_id FROM audit_events WHERE tenant_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(self.tid())
        .bind(i64::from(page.limit))
        .bind(page.offset())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(rows::audit)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Paged { items, total })
    }

    /// Records an outcome that changes no data (a failed login, a refused request).
    pub async fn record_event(
        &self,
        actor: &Actor,
        action: &str,
        outcome: &str,
        details: &serde_json::Value,
    ) -> StoreResult<()> {
        let mut conn = self.pool().acquire().await?;
        insert_audit(
            &mut conn,
            self.tenant_id.as_str(),
            actor,
            action,
            outcome,
            None,
            details,
            now_micros(),
        )
        .await
    }

    /// Change-log entries after `seq`, in order.
    pub async fn changes_after(&self, seq: i64, limit: u32) -> StoreResult<Vec<Change>> {
        sqlx::query(
            "SELECT seq, occurred_at, resource_type, resource_id, operation, resource_version FROM change_log WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(self.tid())
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(rows::change)
        .collect()
    }
}
