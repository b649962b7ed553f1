//! Webhooks and their deliveries.
//!
//! Enqueueing (change log → deliveries) advances the webhook's cursor in the same transaction
//! that inserts its deliveries, under a lock on the webhook row, so each event becomes exactly
//! one delivery even with several nodes. Sending claims a delivery for a lease; the outcome of
//! each attempt is recorded and a failed delivery is rescheduled with exponential backoff.

use super::audit::EventCursor;
use super::dialect::Backend;
use super::write::WriteTx;
use super::{Store, StoreError, StoreResult, TenantStore, new_id};
use crate::model::{Actor, Micros, PageRequest, Paged, TenantId, now_micros};
use sqlx::{AssertSqlSafe, Row};

/// A webhook as stored (the secret stays sealed).
#[derive(Clone, Debug)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub sealed_secret: String,
    pub active: bool,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// One delivery and its attempts.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Micros,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub history: Vec<Attempt>,
}

#[derive(Clone, Debug)]
pub struct Attempt {
    pub attempted_at: Micros,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A claimed delivery, with what sending it needs.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: String,
    pub tenant_id: TenantId,
    pub webhook_id: String,
    pub url: String,
    pub sealed_secret: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub attempts: i64,
    pub created_at: Micros,
    /// The end of this node's claim; settling the delivery requires that it still holds.
    pub claimed_until: Micros,
}

/// What one attempt did.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub succeeded: bool,
}

/// Fields of a webhook update; `None` keeps the value.
#[derive(Clone, Debug, Default)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub active: Option<bool>,
}

const HOOK_COLS: &str = "id, url, description, event_types, secret, active, created_at, updated_at";
const DELIVERY_COLS: &str = "id, webhook_id, event_id, event_type, payload, status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at";

/// Retries stop once a delivery is this old (the issue asks for at least 24 hours).
pub const RETRY_FOR_MICROS: i64 = 25 * 3600 * 1_000_000;

/// The wait before attempt `n + 1` after `n` failed attempts: 30 s doubling, at most 6 h.
pub fn backoff_micros(failed_attempts: i64) -> i64 {
    let exp = u32::try_from(failed_attempts.clamp(1, 20) - 1).unwrap_or(0);
    let secs = 30i64.saturating_mul(1i64 << exp.min(15));
    secs.min(6 * 3600) * 1_000_000
}

fn hook_row(r: &sqlx::any::AnyRow) -> StoreResult<Webhook> {
    Ok(Webhook {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        event_types: serde_json::from_str(&r.try_get::<String, _>("event_types")?)
            .map_err(|e| StoreError::Corrupt(format!("webhook event types: {e}")))?,
        sealed_secret: r.try_get("secret")?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn delivery_row(r: &sqlx::any::AnyRow) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: r.try_get("id")?,
        webhook_id: r.try_get("webhook_id")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        payload: r.try_get("payload")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_status_code: r.try_get("last_status_code")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        history: Vec::new(),
    })
}

impl TenantStore {
    /// Creates a webhook that starts at the current end of the change log.
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        id: &str,
        url: &str,
        description: &str,
        event_types: &[String],
        sealed_secret: &str,
    ) -> StoreResult<Webhook> {
        let head = self.change_log_head().await?;
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO webhooks (id, tenant_id, url, description, event_types, secret, active, cursor_txid, cursor_seq, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $9) RETURNING {HOOK_COLS}"
        )))
        .bind(id)
        .bind(w.tid())
        .bind(url)
        .bind(description)
        .bind(serde_json::to_string(event_types).unwrap_or_else(|_| "[]".into()))
        .bind(sealed_secret)
        .bind(head.txid)
        .bind(head.seq)
        .bind(w.now)
        .fetch_one(&mut *w.tx)
        .await?;
        let hook = hook_row(&row)?;
        w.audit(
            "webhook.create",
            "Webhook",
            id,
            serde_json::json!({ "url": url, "event_types": event_types }),
        );
        w.commit().await?;
        Ok(hook)
    }

    /// The newest position of this tenant's change log.
    async fn change_log_head(&self) -> StoreResult<EventCursor> {
        let sql = match self.store.backend() {
            Backend::Postgres => {
                "SELECT txid, seq FROM change_log WHERE tenant_id = $1 ORDER BY txid DESC, seq DESC LIMIT 1"
            }
            Backend::Sqlite => {
                "SELECT 0 AS txid, seq FROM change_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1"
            }
        };
        let row = sqlx::query(sql)
            .bind(self.tid())
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => EventCursor {
                txid: r.try_get("txid")?,
                seq: r.try_get("seq")?,
            },
            None => EventCursor::default(),
        })
    }

    pub async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {HOOK_COLS} FROM webhooks WHERE tenant_id = $1 ORDER BY id"
        )))
        .bind(self.tid())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(hook_row)
        .collect()
    }

    pub async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {HOOK_COLS} FROM webhooks WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(self.tid())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(hook_row)
        .transpose()
    }

    pub async fn update_webhook(
        &self,
        actor: &Actor,
        id: &str,
        u: WebhookUpdate,
    ) -> StoreResult<Webhook> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE webhooks SET url = coalesce($1, url), description = coalesce($2, description), event_types = coalesce($3, event_types), active = coalesce($4, active), updated_at = $5 WHERE tenant_id = $6 AND id = $7 RETURNING {HOOK_COLS}"
        )))
        .bind(u.url.clone())
        .bind(u.description.clone())
        .bind(
            u.event_types
                .as_ref()
                .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into())),
        )
        .bind(u.active.map(i64::from))
        .bind(w.now)
        .bind(w.tid())
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await?;
        let hook = hook_row(&row.ok_or(StoreError::NotFound)?)?;
        w.audit("webhook.update", "Webhook", id, serde_json::Value::Null);
        w.commit().await?;
        Ok(hook)
    }

    pub async fn delete_webhook(&self, actor: &Actor, id: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
            .bind(w.tid())
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        w.audit("webhook.delete", "Webhook", id, serde_json::Value::Null);
        w.commit().await
    }

    /// A page of a webhook's deliveries, newest first, each with its attempts.
    pub async fn list_deliveries(
        &self,
        webhook_id: &str,
        page: PageRequest,
    ) -> StoreResult<Paged<Delivery>> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2",
        )
        .bind(self.tid())
        .bind(webhook_id)
        .fetch_one(self.pool())
        .await?;
        let mut items = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(self.tid())
        .bind(webhook_id)
        .bind(i64::from(page.limit))
        .bind(page.offset())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(delivery_row)
        .collect::<StoreResult<Vec<_>>>()?;
        for d in &mut items {
            d.history = sqlx::query(
                "SELECT attempted_at, status_code, error, duration_ms FROM webhook_attempts WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY attempted_at, id",
            )
            .bind(self.tid())
            .bind(&d.id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(Attempt {
                    attempted_at: r.try_get("attempted_at")?,
                    status_code: r.try_get("status_code")?,
                    error: r.try_get("error")?,
                    duration_ms: r.try_get("duration_ms")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        }
        Ok(Paged { items, total })
    }

    /// Sends a delivery again now (whatever its state).
    pub async fn redeliver(
        &self,
        actor: &Actor,
        webhook_id: &str,
        delivery_id: &str,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, claimed_until = NULL, updated_at = $1 WHERE tenant_id = $2 AND webhook_id = $3 AND id = $4",
        )
        .bind(w.now)
        .bind(w.tid())
        .bind(webhook_id)
        .bind(delivery_id)
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        w.audit(
            "webhook.redeliver",
            "WebhookDelivery",
            delivery_id,
            serde_json::Value::Null,
        );
        w.commit().await
    }
}

impl Store {
    /// Turns new change-log entries into deliveries for every active webhook (all tenants).
    /// `payload` renders an event. Returns how many deliveries were created.
    pub async fn enqueue_webhook_events(
        &self,
        batch: u32,
        payload: &(dyn Fn(&TenantId, &EventCursor, &crate::model::Change) -> String + Sync),
    ) -> StoreResult<usize> {
        let hooks: Vec<(String, String, String)> =
            sqlx::query("SELECT id, tenant_id, event_types FROM webhooks WHERE active = 1")
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get("id")?,
                        r.try_get("tenant_id")?,
                        r.try_get("event_types")?,
                    ))
                })
                .collect::<StoreResult<Vec<_>>>()?;
        let mut created = 0;
        for (id, tenant, types) in hooks {
            let types: Vec<String> = serde_json::from_str(&types).unwrap_or_default();
            let mut kinds = Vec::new();
            for t in &types {
                for k in crate::events::expand(t).unwrap_or_default() {
                    if !kinds.contains(&k) {
                        kinds.push(k);
                    }
                }
            }
            let tenant_id = TenantId(tenant);
            created += self
                .enqueue_one(&id, &tenant_id, &kinds, batch, payload)
                .await?;
        }
        Ok(created)
    }

    async fn enqueue_one(
        &self,
        hook_id: &str,
        tenant_id: &TenantId,
        kinds: &[(&str, &str)],
        batch: u32,
        payload: &(dyn Fn(&TenantId, &EventCursor, &crate::model::Change) -> String + Sync),
    ) -> StoreResult<usize> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin_with(self.backend().begin_write()).await?;
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT cursor_txid, cursor_seq FROM webhooks WHERE id = $1 AND active = 1{lock}"
        )))
        .bind(hook_id)
        .fetch_optional(&mut *tx)
        .await?;
        // Gone, paused, or another node holds it right now.
        let Some(row) = row else { return Ok(0) };
        let cursor = EventCursor {
            txid: row.try_get("cursor_txid")?,
            seq: row.try_get("cursor_seq")?,
        };
        let ts = self.tenant(tenant_id.clone());
        let events = ts.events_after(cursor, &[], batch).await?;
        let Some(last) = events.last().map(|(c, _)| *c) else {
            return Ok(0);
        };
        let now = now_micros();
        let mut created = 0;
        for (c, change) in &events {
            let matches = kinds
                .iter()
                .any(|(r, o)| *r == change.resource_type && *o == change.operation);
            if !matches {
                continue;
            }
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)",
            )
            .bind(new_id())
            .bind(tenant_id.as_str())
            .bind(hook_id)
            .bind(c.encode())
            .bind(crate::events::event_type(&change.resource_type, &change.operation))
            .bind(payload(tenant_id, c, change))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            created += 1;
        }
        sqlx::query("UPDATE webhooks SET cursor_txid = $1, cursor_seq = $2 WHERE id = $3")
            .bind(last.txid)
            .bind(last.seq)
            .bind(hook_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Claims up to `limit` due deliveries for `lease` (another node skips them until then).
    pub async fn claim_deliveries(
        &self,
        limit: u32,
        lease: Micros,
    ) -> StoreResult<Vec<DueDelivery>> {
        let now = now_micros();
        let claimed_until = now.saturating_add(lease);
        let _turn = self.write_turn().await;
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET claimed_until = $1 WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY next_attempt_at LIMIT $3{lock}) RETURNING id"
        )))
        .bind(claimed_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let r = sqlx::query(
                "SELECT d.id, d.tenant_id, d.webhook_id, d.event_id, d.event_type, d.payload, d.attempts, d.created_at, w.url, w.secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1",
            )
            .bind(&id)
            .fetch_optional(self.pool())
            .await?;
            if let Some(r) = r {
                out.push(DueDelivery {
                    id: r.try_get("id")?,
                    tenant_id: TenantId(r.try_get("tenant_id")?),
                    webhook_id: r.try_get("webhook_id")?,
                    url: r.try_get("url")?,
                    sealed_secret: r.try_get("secret")?,
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    payload: r.try_get("payload")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                    claimed_until,
                });
            }
        }
        Ok(out)
    }

    /// Records one attempt and settles the delivery: succeeded, rescheduled, or failed for
    /// good once retries have run for [`RETRY_FOR_MICROS`].
    pub async fn record_attempt(&self, d: &DueDelivery, o: &AttemptOutcome) -> StoreResult<()> {
        let now = now_micros();
        let attempts = d.attempts + 1;
        let (status, next) = if o.succeeded {
            ("succeeded", now)
        } else {
            let next = now.saturating_add(backoff_micros(attempts));
            if next - d.created_at > RETRY_FOR_MICROS {
                ("failed", now)
            } else {
                ("pending", next)
            }
        };
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin_with(self.backend().begin_write()).await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (id, tenant_id, delivery_id, attempted_at, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(d.tenant_id.as_str())
        .bind(&d.id)
        .bind(now)
        .bind(o.status_code)
        .bind(o.error.clone())
        .bind(o.duration_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            // Only while the claim is this node's: a node whose lease ran out (stalled, cut
            // off) must not settle a delivery another node has claimed since; its attempt is
            // still recorded above.
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, claimed_until = NULL, last_status_code = $3, last_error = $4, updated_at = $5 WHERE id = $6 AND claimed_until = $7",
        )
        .bind(status)
        .bind(next)
        .bind(o.status_code)
        .bind(o.error.clone())
        .bind(now)
        .bind(&d.id)
        .bind(d.claimed_until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_and_retries_span_a_day() {
        assert_eq!(backoff_micros(1), 30_000_000);
        assert_eq!(backoff_micros(2), 60_000_000);
        assert_eq!(backoff_micros(30), 6 * 3600 * 1_000_000);
        let mut elapsed = 0;
        let mut n = 0;
        while elapsed <= 24 * 3600 * 1_000_000 {
            n += 1;
            elapsed += backoff_micros(n);
        }
        assert!(n < 20, "a day of retries takes {n} attempts");
    }
}
