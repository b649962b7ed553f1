//! The audit trail, the change log (read side: writes happen in `write.rs`) and the
//! dashboard counts.

use super::dialect::Backend;
use super::rows;
use super::write::insert_audit;
use super::{StoreResult, TenantStore};
use crate::model::{Actor, AuditEvent, Change, Micros, PageRequest, Paged, now_micros};
use sqlx::{AssertSqlSafe, Row};

const AUDIT_COLS: &str = "id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details";

/// Narrowing of an audit query; every field optional.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub actor_id: Option<String>,
    /// An exact action, or a prefix when it ends with `*` (`auth.*`).
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<Micros>,
    pub to: Option<Micros>,
}

/// A position in the change log: (transaction id, seq). See the events API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCursor {
    pub txid: i64,
    pub seq: i64,
}

impl EventCursor {
    pub fn encode(self) -> String {
        format!("{}.{}", self.txid, self.seq)
    }
    pub fn decode(s: &str) -> Option<Self> {
        let (t, q) = s.split_once('.')?;
        Some(Self {
            txid: t.parse().ok().filter(|v: &i64| *v >= 0)?,
            seq: q.parse().ok().filter(|v: &i64| *v >= 0)?,
        })
    }
}

/// Counts for the tenant dashboard.
#[derive(Clone, Debug, Default)]
pub struct Dashboard {
    pub users: i64,
    pub active_users: i64,
    pub groups: i64,
    pub scim_writes_24h: i64,
    pub scim_writes_7d: i64,
    pub failed_logins_24h: i64,
    pub successful_logins_24h: i64,
}

impl TenantStore {
    /// A page of this tenant's audit events, newest first.
    pub async fn list_audit(&self, page: PageRequest) -> StoreResult<Paged<AuditEvent>> {
        self.query_audit(&AuditQuery::default(), page).await
    }

    /// A page of this tenant's audit events matching `q`, newest first.
    pub async fn query_audit(
        &self,
        q: &AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Paged<AuditEvent>> {
        let (action_exact, action_prefix) = match q.action.as_deref() {
            Some(a) if a.ends_with('*') => (
                None,
                Some(format!(
                    "{}%",
                    super::dialect::escape_like(a.trim_end_matches('*'))
                )),
            ),
            Some(a) => (Some(a.to_owned()), None),
            None => (None, None),
        };
        let filter = "tenant_id = $1 AND ($2 IS NULL OR actor_id = $2) AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR action LIKE $4 ESCAPE '\\') AND ($5 IS NULL OR target_id = $5) AND ($6 IS NULL OR outcome = $6) AND ($7 IS NULL OR occurred_at >= $7) AND ($8 IS NULL OR occurred_at < $8)";
        macro_rules! binds {
            ($query:expr) => {
                $query
                    .bind(self.tid())
                    .bind(q.actor_id.clone())
                    .bind(action_exact.clone())
                    .bind(action_prefix.clone())
                    .bind(q.target_id.clone())
                    .bind(q.outcome.clone())
                    .bind(q.from)
                    .bind(q.to)
            };
        }
        let total: i64 = binds!(sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM audit_events WHERE {filter}"
        ))))
        .fetch_one(self.pool())
        .await?;
        let items = binds!(sqlx::query(AssertSqlSafe(format!(
            "SELECT {AUDIT_COLS} FROM audit_events WHERE {filter} ORDER BY occurred_at DESC, id DESC LIMIT $9 OFFSET $10"
        ))))
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
        let _turn = self.store.write_turn().await;
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

    /// Change-log entries after `after`, in a total order that a reader can follow without
    /// ever missing an entry: SQLite commits in seq order; PostgreSQL entries are ordered by
    /// (transaction id, seq) and only those of transactions older than every transaction still
    /// running are returned (anything committed later sorts after them). `kinds` narrows to
    /// (resource type, operation) pairs.
    pub async fn events_after(
        &self,
        after: EventCursor,
        kinds: &[(&str, &str)],
        limit: u32,
    ) -> StoreResult<Vec<(EventCursor, Change)>> {
        let mut kind_sql = String::new();
        for i in 0..kinds.len() {
            let a = 5 + 2 * i;
            kind_sql.push_str(if i == 0 { " AND (" } else { " OR " });
            kind_sql.push_str(&format!(
                "(resource_type = ${a} AND operation = ${})",
                a + 1
            ));
        }
        if !kinds.is_empty() {
            kind_sql.push(')');
        }
        let sql = match self.store.backend() {
            Backend::Postgres => format!(
                "SELECT seq, occurred_at, resource_type, resource_id, operation, resource_version, txid FROM change_log WHERE tenant_id = $1 AND (txid > $2 OR (txid = $2 AND seq > $3)) AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint{kind_sql} ORDER BY txid, seq LIMIT $4"
            ),
            Backend::Sqlite => format!(
                "SELECT seq, occurred_at, resource_type, resource_id, operation, resource_version, 0 AS txid FROM change_log WHERE tenant_id = $1 AND $2 >= 0 AND seq > $3{kind_sql} ORDER BY seq LIMIT $4"
            ),
        };
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(self.tid())
            .bind(after.txid)
            .bind(after.seq)
            .bind(i64::from(limit));
        for (t, o) in kinds {
            q = q.bind(*t).bind(*o);
        }
        q.fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                let c = rows::change(r)?;
                let txid: i64 = r.try_get("txid")?;
                Ok((EventCursor { txid, seq: c.seq }, c))
            })
            .collect()
    }

    /// Counts for the dashboard.
    pub async fn dashboard(&self) -> StoreResult<Dashboard> {
        let now = now_micros();
        let day = now - 86_400 * 1_000_000;
        let week = now - 7 * 86_400 * 1_000_000;
        let count = |sql: &'static str, since: Option<i64>| {
            let store = self.clone();
            async move {
                let mut q = sqlx::query_scalar::<_, i64>(sql).bind(store.tid());
                if let Some(s) = since {
                    q = q.bind(s);
                }
                q.fetch_one(store.pool()).await
            }
        };
        Ok(Dashboard {
            users: count(
                "SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND deleted_at IS NULL",
                None,
            )
            .await?,
            active_users: count(
                "SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND deleted_at IS NULL AND active = 1",
                None,
            )
            .await?,
            groups: count(
                "SELECT COUNT(*) FROM groups WHERE tenant_id = $1 AND deleted_at IS NULL",
                None,
            )
            .await?,
            scim_writes_24h: count(
                "SELECT COUNT(*) FROM audit_events WHERE tenant_id = $1 AND actor_type = 'scim_token' AND occurred_at >= $2",
                Some(day),
            )
            .await?,
            scim_writes_7d: count(
                "SELECT COUNT(*) FROM audit_events WHERE tenant_id = $1 AND actor_type = 'scim_token' AND occurred_at >= $2",
                Some(week),
            )
            .await?,
            failed_logins_24h: count(
                "SELECT COUNT(*) FROM audit_events WHERE tenant_id = $1 AND action = 'auth.login' AND outcome = 'failure' AND occurred_at >= $2",
                Some(day),
            )
            .await?,
            successful_logins_24h: count(
                "SELECT COUNT(*) FROM audit_events WHERE tenant_id = $1 AND action = 'auth.login' AND outcome = 'success' AND occurred_at >= $2",
                Some(day),
            )
            .await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = EventCursor { txid: 42, seq: 7 };
        assert_eq!(EventCursor::decode(&c.encode()), Some(c));
        assert_eq!(EventCursor::decode("x.1"), None);
        assert_eq!(EventCursor::decode("1"), None);
        assert_eq!(EventCursor::decode("-1.2"), None);
    }
}
