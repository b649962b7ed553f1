//! SAML single sign-on records: SP keys, IdP connections, email domains, pending
//! AuthnRequests, the replay cache, linked IdP identities and the login-flow log.
//!
//! Pending requests and the replay cache are rows, not per-node memory, so every node of a
//! cluster agrees on them (and they survive a restart): consuming a request is one conditional
//! UPDATE, recording an assertion ID one INSERT that only the first caller wins.

use super::write::{Invalidate, WriteTx};
use super::{Store, StoreError, StoreResult, TenantStore, new_id};
use crate::model::{Actor, Micros, TenantId, now_micros};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

/// Login-flow log entries kept per connection.
pub const LOGIN_LOG_KEEP: i64 = 200;

/// Where each user field comes from in an assertion: `"nameid"` or an attribute name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// A tenant's connection to one SAML IdP, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SamlConnection {
    pub id: String,
    pub name: String,
    pub idp_entity_id: String,
    pub sso_url: String,
    pub slo_url: Option<String>,
    /// IdP signing certificates, base64 DER (several during a rollover).
    pub certificates: Vec<String>,
    pub metadata_url: Option<String>,
    pub metadata_status: Option<String>,
    pub metadata_error: Option<String>,
    pub metadata_fetched_at: Option<Micros>,
    pub metadata_next_at: Option<Micros>,
    pub allow_idp_initiated: bool,
    pub clock_skew_secs: i64,
    /// `response`, `assertion` or `either`.
    pub required_signing: String,
    pub want_encrypted: bool,
    pub name_id_format: Option<String>,
    pub attribute_mapping: AttributeMapping,
    pub jit: bool,
    /// The order in which an existing user is looked up: `externalId`, `userName`, `email`.
    pub link_order: Vec<String>,
    pub allow_sha1: bool,
    pub active: bool,
    /// Certificate fingerprint → the expiry notices (days before) already emitted.
    pub cert_notified: std::collections::BTreeMap<String, Vec<i64>>,
    pub version: i64,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// An SP key pair of a tenant (the private key sealed).
#[derive(Clone, Debug)]
pub struct SpKeyRow {
    pub id: String,
    /// `current` or `previous`.
    pub status: String,
    pub sealed_private_key: String,
    /// Base64 DER.
    pub certificate: String,
    pub not_after: Micros,
    pub created_at: Micros,
}

/// An email domain routed to a connection.
#[derive(Clone, Debug)]
pub struct SamlDomain {
    pub domain: String,
    pub connection_id: String,
    pub verified_at: Option<Micros>,
    pub created_at: Micros,
}

/// An AuthnRequest waiting for its response.
#[derive(Clone, Debug)]
pub struct PendingRequest {
    pub id: String,
    pub connection_id: String,
    pub relay_state: Option<String>,
    pub return_to: Option<String>,
    pub oauth_request: Option<String>,
    pub created_at: Micros,
    pub expires_at: Micros,
}

/// Why a pending request could not be consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeRefusal {
    /// No request with this ID was sent for this connection (or it expired and was purged).
    Unknown,
    /// It was answered already.
    Reused,
    /// It expired unanswered.
    Expired,
}

/// One attempt in a connection's login-flow log.
#[derive(Clone, Debug, Default)]
pub struct LoginLogEntry {
    pub id: String,
    pub connection_id: String,
    pub at: Micros,
    /// `sp_initiated`, `idp_initiated`, `logout`.
    pub kind: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub name_id: Option<String>,
    pub user_id: Option<String>,
    pub in_response_to: Option<String>,
    pub assertion_id: Option<String>,
    pub ip: Option<String>,
}

const CONN_COLS: &str = "id, name, idp_entity_id, sso_url, slo_url, certificates, metadata_url, metadata_status, metadata_error, metadata_fetched_at, metadata_next_at, allow_idp_initiated, clock_skew_secs, required_signing, want_encrypted, name_id_format, attribute_mapping, jit, link_order, allow_sha1, active, cert_notified, version, created_at, updated_at";
const LOG_COLS: &str = "id, connection_id, at, kind, outcome, reason, detail, name_id, user_id, in_response_to, assertion_id, ip";
const REQ_COLS: &str =
    "id, connection_id, relay_state, return_to, oauth_request, created_at, expires_at";

fn json_err(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn conn_row(r: &sqlx::any::AnyRow) -> StoreResult<SamlConnection> {
    let flag = |c: &str| -> StoreResult<bool> { Ok(r.try_get::<i64, _>(c)? != 0) };
    Ok(SamlConnection {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        idp_entity_id: r.try_get("idp_entity_id")?,
        sso_url: r.try_get("sso_url")?,
        slo_url: r.try_get("slo_url")?,
        certificates: serde_json::from_str(&r.try_get::<String, _>("certificates")?)
            .map_err(|e| json_err("connection certificates", e))?,
        metadata_url: r.try_get("metadata_url")?,
        metadata_status: r.try_get("metadata_status")?,
        metadata_error: r.try_get("metadata_error")?,
        metadata_fetched_at: r.try_get("metadata_fetched_at")?,
        metadata_next_at: r.try_get("metadata_next_at")?,
        allow_idp_initiated: flag("allow_idp_initiated")?,
        clock_skew_secs: r.try_get("clock_skew_secs")?,
        required_signing: r.try_get("required_signing")?,
        want_encrypted: flag("want_encrypted")?,
        name_id_format: r.try_get("name_id_format")?,
        attribute_mapping: serde_json::from_str(&r.try_get::<String, _>("attribute_mapping")?)
            .map_err(|e| json_err("attribute mapping", e))?,
        jit: flag("jit")?,
        link_order: serde_json::from_str(&r.try_get::<String, _>("link_order")?)
            .map_err(|e| json_err("link order", e))?,
        allow_sha1: flag("allow_sha1")?,
        active: flag("active")?,
        cert_notified: serde_json::from_str(&r.try_get::<String, _>("cert_notified")?)
            .map_err(|e| json_err("certificate notices", e))?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn log_row(r: &sqlx::any::AnyRow) -> StoreResult<LoginLogEntry> {
    Ok(LoginLogEntry {
        id: r.try_get("id")?,
        connection_id: r.try_get("connection_id")?,
        at: r.try_get("at")?,
        kind: r.try_get("kind")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        detail: r.try_get("detail")?,
        name_id: r.try_get("name_id")?,
        user_id: r.try_get("user_id")?,
        in_response_to: r.try_get("in_response_to")?,
        assertion_id: r.try_get("assertion_id")?,
        ip: r.try_get("ip")?,
    })
}

fn req_row(r: &sqlx::any::AnyRow) -> StoreResult<PendingRequest> {
    Ok(PendingRequest {
        id: r.try_get("id")?,
        connection_id: r.try_get("connection_id")?,
        relay_state: r.try_get("relay_state")?,
        return_to: r.try_get("return_to")?,
        oauth_request: r.try_get("oauth_request")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

fn key_row(r: &sqlx::any::AnyRow) -> StoreResult<SpKeyRow> {
    Ok(SpKeyRow {
        id: r.try_get("id")?,
        status: r.try_get("status")?,
        sealed_private_key: r.try_get("private_key")?,
        certificate: r.try_get("certificate")?,
        not_after: r.try_get("not_after")?,
        created_at: r.try_get("created_at")?,
    })
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl Store {
    /// The tenant a connection belongs to (SAML endpoints are addressed by connection id).
    pub async fn saml_connection_tenant(
        &self,
        connection_id: &str,
    ) -> StoreResult<Option<TenantId>> {
        let tid: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM saml_connections WHERE id = $1")
                .bind(connection_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(tid.map(TenantId))
    }

    /// Home-realm discovery: the verified domain's tenant and connection.
    pub async fn saml_domain_route(&self, domain: &str) -> StoreResult<Option<(TenantId, String)>> {
        let row = sqlx::query(
            "SELECT d.tenant_id, d.connection_id FROM saml_domains d JOIN saml_connections c ON c.id = d.connection_id WHERE d.domain = $1 AND d.verified_at IS NOT NULL AND c.active = 1",
        )
        .bind(domain.to_ascii_lowercase())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| -> StoreResult<_> {
            Ok((
                TenantId(r.try_get("tenant_id")?),
                r.try_get("connection_id")?,
            ))
        })
        .transpose()
    }

    /// Drops expired pending requests and replay entries (a replay entry is only needed while
    /// its assertion could still be accepted). Returns how many rows went.
    pub async fn purge_saml_expired(&self) -> StoreResult<u64> {
        let now = now_micros();
        let _turn = self.write_turn().await;
        let a = sqlx::query("DELETE FROM saml_replay WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected();
        // Answered or expired requests are kept an hour so a late duplicate reads as reused.
        let b = sqlx::query("DELETE FROM saml_requests WHERE expires_at < $1")
            .bind(now - 3_600_000_000)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(a + b)
    }

    /// Claims the connections whose metadata refresh is due, moving their next refresh
    /// `lease` ahead so that no other node takes them meanwhile.
    pub async fn claim_metadata_refresh(
        &self,
        limit: i64,
        lease: Micros,
    ) -> StoreResult<Vec<(TenantId, String, String)>> {
        let now = now_micros();
        let rows = sqlx::query(
            "SELECT tenant_id, id, metadata_url FROM saml_connections WHERE metadata_url IS NOT NULL AND metadata_next_at <= $1 ORDER BY metadata_next_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            let _turn = self.write_turn().await;
            let won = sqlx::query(
                "UPDATE saml_connections SET metadata_next_at = $1 WHERE id = $2 AND metadata_next_at <= $3",
            )
            .bind(now + lease)
            .bind(&id)
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected()
                == 1;
            if won {
                claimed.push((
                    TenantId(r.try_get("tenant_id")?),
                    id,
                    r.try_get("metadata_url")?,
                ));
            }
        }
        Ok(claimed)
    }

    /// Every active connection of every tenant (certificate-expiry checks).
    pub async fn all_saml_connections(&self) -> StoreResult<Vec<(TenantId, SamlConnection)>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT tenant_id, {CONN_COLS} FROM saml_connections WHERE active = 1 ORDER BY id"
        )))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((TenantId(r.try_get("tenant_id")?), conn_row(r)?)))
        .collect()
    }
}

impl TenantStore {
    pub async fn saml_connections(&self) -> StoreResult<Vec<SamlConnection>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONN_COLS} FROM saml_connections WHERE tenant_id = $1 ORDER BY created_at, id"
        )))
        .bind(self.tid())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(conn_row)
        .collect()
    }

    pub async fn saml_connection(&self, id: &str) -> StoreResult<Option<SamlConnection>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONN_COLS} FROM saml_connections WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(self.tid())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(conn_row)
        .transpose()
    }

    /// Stores a new connection (its id chosen by the caller, so the SP URLs are known first).
    pub async fn create_saml_connection(
        &self,
        actor: &Actor,
        c: &SamlConnection,
    ) -> StoreResult<SamlConnection> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO saml_connections (id, tenant_id, name, idp_entity_id, sso_url, slo_url, certificates, metadata_url, metadata_status, metadata_error, metadata_fetched_at, metadata_next_at, allow_idp_initiated, clock_skew_secs, required_signing, want_encrypted, name_id_format, attribute_mapping, jit, link_order, allow_sha1, active, cert_notified, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, '{{}}', 1, $23, $23) RETURNING {CONN_COLS}"
        )))
        .bind(&c.id)
        .bind(w.tid())
        .bind(&c.name)
        .bind(&c.idp_entity_id)
        .bind(&c.sso_url)
        .bind(&c.slo_url)
        .bind(to_json(&c.certificates))
        .bind(&c.metadata_url)
        .bind(&c.metadata_status)
        .bind(&c.metadata_error)
        .bind(c.metadata_fetched_at)
        .bind(c.metadata_next_at)
        .bind(i64::from(c.allow_idp_initiated))
        .bind(c.clock_skew_secs)
        .bind(&c.required_signing)
        .bind(i64::from(c.want_encrypted))
        .bind(&c.name_id_format)
        .bind(to_json(&c.attribute_mapping))
        .bind(i64::from(c.jit))
        .bind(to_json(&c.link_order))
        .bind(i64::from(c.allow_sha1))
        .bind(i64::from(c.active))
        .bind(w.now)
        .fetch_one(&mut *w.tx)
        .await?;
        let stored = conn_row(&row)?;
        w.changed(
            "SamlConnection",
            &c.id,
            "create",
            1,
            "sso.connection.create",
        );
        w.commit().await?;
        Ok(stored)
    }

    /// Replaces a connection's settings when its version is still `expected_version`
    /// (otherwise `Conflict`: someone else changed it meanwhile).
    pub async fn update_saml_connection(
        &self,
        actor: &Actor,
        c: &SamlConnection,
        expected_version: i64,
        audit_action: &'static str,
    ) -> StoreResult<SamlConnection> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE saml_connections SET name = $3, idp_entity_id = $4, sso_url = $5, slo_url = $6, certificates = $7, metadata_url = $8, metadata_status = $9, metadata_error = $10, metadata_fetched_at = $11, metadata_next_at = $12, allow_idp_initiated = $13, clock_skew_secs = $14, required_signing = $15, want_encrypted = $16, name_id_format = $17, attribute_mapping = $18, jit = $19, link_order = $20, allow_sha1 = $21, active = $22, cert_notified = $23, version = version + 1, updated_at = $24 \
             WHERE tenant_id = $1 AND id = $2 AND version = $25 RETURNING {CONN_COLS}"
        )))
        .bind(w.tid())
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.idp_entity_id)
        .bind(&c.sso_url)
        .bind(&c.slo_url)
        .bind(to_json(&c.certificates))
        .bind(&c.metadata_url)
        .bind(&c.metadata_status)
        .bind(&c.metadata_error)
        .bind(c.metadata_fetched_at)
        .bind(c.metadata_next_at)
        .bind(i64::from(c.allow_idp_initiated))
        .bind(c.clock_skew_secs)
        .bind(&c.required_signing)
        .bind(i64::from(c.want_encrypted))
        .bind(&c.name_id_format)
        .bind(to_json(&c.attribute_mapping))
        .bind(i64::from(c.jit))
        .bind(to_json(&c.link_order))
        .bind(i64::from(c.allow_sha1))
        .bind(i64::from(c.active))
        .bind(to_json(&c.cert_notified))
        .bind(w.now)
        .bind(expected_version)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(row) = row else {
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM saml_connections WHERE tenant_id = $1 AND id = $2",
            )
            .bind(w.tid())
            .bind(&c.id)
            .fetch_optional(&mut *w.tx)
            .await?;
            return Err(match exists {
                None => StoreError::NotFound,
                Some(_) => StoreError::Conflict {
                    constraint: "saml_connections_version",
                },
            });
        };
        let stored = conn_row(&row)?;
        w.changed(
            "SamlConnection",
            &c.id,
            "update",
            stored.version,
            audit_action,
        );
        w.invalidate(Invalidate::SamlConnection(c.id.clone()));
        w.commit().await?;
        Ok(stored)
    }

    pub async fn delete_saml_connection(&self, actor: &Actor, id: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        // Rows that reference the connection without a cascade (replay entries are keyed by
        // assertion and simply age out).
        let done = sqlx::query("DELETE FROM saml_connections WHERE tenant_id = $1 AND id = $2")
            .bind(w.tid())
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        w.changed("SamlConnection", id, "delete", 0, "sso.connection.delete");
        w.invalidate(Invalidate::SamlConnection(id.to_owned()));
        w.commit().await
    }

    /// Records that certificate expiry notices were emitted, with one change-log entry per
    /// notice (`connection.certificate.expiring`), in one transaction; skipped (false) when
    /// the connection changed meanwhile.
    pub async fn record_certificate_notices(
        &self,
        c: &SamlConnection,
        notices: &[(String, i64)],
    ) -> StoreResult<bool> {
        let mut notified = c.cert_notified.clone();
        for (fp, days) in notices {
            notified.entry(fp.clone()).or_default().push(*days);
        }
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, &Actor::system()).await?;
        let done = sqlx::query(
            "UPDATE saml_connections SET cert_notified = $1 WHERE tenant_id = $2 AND id = $3 AND version = $4 AND cert_notified = $5",
        )
        .bind(to_json(&notified))
        .bind(w.tid())
        .bind(&c.id)
        .bind(c.version)
        .bind(to_json(&c.cert_notified))
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // One event per certificate: the tightest threshold crossed now.
        let mut tightest: std::collections::BTreeMap<&str, i64> = Default::default();
        for (fp, days) in notices {
            let e = tightest.entry(fp.as_str()).or_insert(*days);
            *e = (*e).min(*days);
        }
        for (fp, days) in tightest {
            w.changed_only("Certificate", &format!("{}/{fp}", c.id), "expiring", days);
            w.audit(
                "sso.certificate.expiring",
                "SamlConnection",
                &c.id,
                serde_json::json!({ "fingerprint": fp, "days_before": days }),
            );
        }
        w.invalidate(Invalidate::SamlConnection(c.id.clone()));
        w.commit().await?;
        Ok(true)
    }

    // ---- SP keys ----

    /// The tenant's SP keys, current first.
    pub async fn sp_keys(&self) -> StoreResult<Vec<SpKeyRow>> {
        sqlx::query(
            "SELECT id, status, private_key, certificate, not_after, created_at FROM saml_sp_keys WHERE tenant_id = $1 ORDER BY CASE status WHEN 'current' THEN 0 ELSE 1 END, created_at DESC",
        )
        .bind(self.tid())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(key_row)
        .collect()
    }

    /// Stores the tenant's first SP key unless another writer did first (false then).
    pub async fn insert_first_sp_key(&self, k: &SpKeyRow) -> StoreResult<bool> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, &Actor::system()).await?;
        let existing: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM saml_sp_keys WHERE tenant_id = $1 AND status = 'current'",
        )
        .bind(w.tid())
        .fetch_one(&mut *w.tx)
        .await?;
        if existing > 0 {
            return Ok(false);
        }
        insert_key(&mut w, k, "current").await?;
        w.audit("sso.sp_key.create", "SpKey", &k.id, serde_json::Value::Null);
        w.commit().await?;
        Ok(true)
    }

    /// Makes `k` the current key; the current one becomes `previous` (still published and
    /// still decrypting) and any older previous key is retired.
    pub async fn rotate_sp_key(&self, actor: &Actor, k: &SpKeyRow) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        sqlx::query("DELETE FROM saml_sp_keys WHERE tenant_id = $1 AND status = 'previous'")
            .bind(w.tid())
            .execute(&mut *w.tx)
            .await?;
        sqlx::query(
            "UPDATE saml_sp_keys SET status = 'previous' WHERE tenant_id = $1 AND status = 'current'",
        )
        .bind(w.tid())
        .execute(&mut *w.tx)
        .await?;
        insert_key(&mut w, k, "current").await?;
        w.audit("sso.sp_key.rotate", "SpKey", &k.id, serde_json::Value::Null);
        w.invalidate(Invalidate::SpKeys);
        w.commit().await
    }

    /// Ends a rollover: the previous key is no longer published nor used.
    pub async fn retire_previous_sp_key(&self, actor: &Actor) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "DELETE FROM saml_sp_keys WHERE tenant_id = $1 AND status = 'previous' RETURNING id",
        )
        .bind(w.tid())
        .fetch_all(&mut *w.tx)
        .await?;
        let Some(id) = ids.first() else {
            return Err(StoreError::NotFound);
        };
        w.audit("sso.sp_key.retire", "SpKey", id, serde_json::Value::Null);
        w.invalidate(Invalidate::SpKeys);
        w.commit().await
    }

    // ---- domains ----

    pub async fn saml_domains(&self) -> StoreResult<Vec<SamlDomain>> {
        sqlx::query(
            "SELECT domain, connection_id, verified_at, created_at FROM saml_domains WHERE tenant_id = $1 ORDER BY domain",
        )
        .bind(self.tid())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(SamlDomain {
                domain: r.try_get("domain")?,
                connection_id: r.try_get("connection_id")?,
                verified_at: r.try_get("verified_at")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
    }

    /// Routes `domain` to a connection of this tenant (unverified until an operator verifies
    /// it; re-routing keeps the verification).
    pub async fn put_saml_domain(
        &self,
        actor: &Actor,
        domain: &str,
        connection_id: &str,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let owned: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM saml_connections WHERE tenant_id = $1 AND id = $2")
                .bind(w.tid())
                .bind(connection_id)
                .fetch_optional(&mut *w.tx)
                .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound);
        }
        let updated = sqlx::query(
            "UPDATE saml_domains SET connection_id = $3 WHERE tenant_id = $1 AND domain = $2",
        )
        .bind(w.tid())
        .bind(domain)
        .bind(connection_id)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO saml_domains (tenant_id, domain, connection_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(w.tid())
            .bind(domain)
            .bind(connection_id)
            .bind(w.now)
            .execute(&mut *w.tx)
            .await?;
        }
        w.audit(
            "sso.domain.put",
            "SamlDomain",
            domain,
            serde_json::json!({ "connection_id": connection_id }),
        );
        w.commit().await
    }

    /// Marks a domain verified (operators only: it then routes logins of every tenant's
    /// users with that domain here). `Conflict` when another tenant verified it first.
    pub async fn verify_saml_domain(&self, actor: &Actor, domain: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query(
            "UPDATE saml_domains SET verified_at = $3 WHERE tenant_id = $1 AND domain = $2",
        )
        .bind(w.tid())
        .bind(domain)
        .bind(w.now)
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        w.audit(
            "sso.domain.verify",
            "SamlDomain",
            domain,
            serde_json::Value::Null,
        );
        w.commit().await
    }

    pub async fn delete_saml_domain(&self, actor: &Actor, domain: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let done = sqlx::query("DELETE FROM saml_domains WHERE tenant_id = $1 AND domain = $2")
            .bind(w.tid())
            .bind(domain)
            .execute(&mut *w.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        w.audit(
            "sso.domain.delete",
            "SamlDomain",
            domain,
            serde_json::Value::Null,
        );
        w.commit().await
    }

    // ---- pending requests and replay ----

    pub async fn insert_saml_request(&self, r: &PendingRequest) -> StoreResult<()> {
        let _turn = self.store.write_turn().await;
        sqlx::query(
            "INSERT INTO saml_requests (id, tenant_id, connection_id, relay_state, return_to, oauth_request, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(self.tid())
        .bind(&r.connection_id)
        .bind(&r.relay_state)
        .bind(&r.return_to)
        .bind(&r.oauth_request)
        .bind(r.created_at)
        .bind(r.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Consumes the pending request `id` of `connection_id`: exactly one caller (on any node)
    /// gets it; everyone else learns whether it was unknown, already used or expired.
    pub async fn consume_saml_request(
        &self,
        connection_id: &str,
        id: &str,
    ) -> StoreResult<Result<PendingRequest, ConsumeRefusal>> {
        let now = now_micros();
        let row = {
            let _turn = self.store.write_turn().await;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE saml_requests SET consumed_at = $1 WHERE tenant_id = $2 AND connection_id = $3 AND id = $4 AND consumed_at IS NULL AND expires_at > $1 RETURNING {REQ_COLS}"
            )))
            .bind(now)
            .bind(self.tid())
            .bind(connection_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
        };
        if let Some(r) = row {
            return Ok(Ok(req_row(&r)?));
        }
        let state = sqlx::query(
            "SELECT consumed_at, expires_at FROM saml_requests WHERE tenant_id = $1 AND connection_id = $2 AND id = $3",
        )
        .bind(self.tid())
        .bind(connection_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(Err(match state {
            None => ConsumeRefusal::Unknown,
            Some(r) if r.try_get::<Option<i64>, _>("consumed_at")?.is_some() => {
                ConsumeRefusal::Reused
            }
            Some(_) => ConsumeRefusal::Expired,
        }))
    }

    /// Records a consumed assertion ID; false when it was seen before (a replay).
    pub async fn record_assertion(
        &self,
        connection_id: &str,
        assertion_id: &str,
        expires_at: Micros,
    ) -> StoreResult<bool> {
        let _turn = self.store.write_turn().await;
        let done = sqlx::query(
            "INSERT INTO saml_replay (tenant_id, assertion_id, connection_id, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, assertion_id) DO NOTHING",
        )
        .bind(self.tid())
        .bind(assertion_id)
        .bind(connection_id)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- identities ----

    /// The user an IdP subject of this connection signed in as before.
    pub async fn saml_identity_user(
        &self,
        connection_id: &str,
        name_id: &str,
    ) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM saml_identities WHERE tenant_id = $1 AND connection_id = $2 AND name_id = $3",
        )
        .bind(self.tid())
        .bind(connection_id)
        .bind(name_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The IdP subject (NameID, session index) a user last signed in as on this connection.
    pub async fn saml_identity_of_user(
        &self,
        connection_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT name_id, session_index FROM saml_identities WHERE tenant_id = $1 AND connection_id = $2 AND user_id = $3 ORDER BY last_login_at DESC LIMIT 1",
        )
        .bind(self.tid())
        .bind(connection_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| -> StoreResult<_> { Ok((r.try_get("name_id")?, r.try_get("session_index")?)) })
            .transpose()
    }

    /// The groups JIT joined for this identity at its last sign-in.
    pub async fn saml_jit_groups(
        &self,
        connection_id: &str,
        name_id: &str,
    ) -> StoreResult<Vec<String>> {
        let raw: Option<String> = sqlx::query_scalar(
            "SELECT jit_groups FROM saml_identities WHERE tenant_id = $1 AND connection_id = $2 AND name_id = $3",
        )
        .bind(self.tid())
        .bind(connection_id)
        .bind(name_id)
        .fetch_optional(self.pool())
        .await?;
        match raw {
            Some(r) => serde_json::from_str(&r).map_err(|e| json_err("jit groups", e)),
            None => Ok(Vec::new()),
        }
    }

    pub async fn set_saml_jit_groups(
        &self,
        connection_id: &str,
        name_id: &str,
        groups: &[String],
    ) -> StoreResult<()> {
        let _turn = self.store.write_turn().await;
        sqlx::query(
            "UPDATE saml_identities SET jit_groups = $4 WHERE tenant_id = $1 AND connection_id = $2 AND name_id = $3",
        )
        .bind(self.tid())
        .bind(connection_id)
        .bind(name_id)
        .bind(to_json(&groups))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn link_saml_identity(
        &self,
        connection_id: &str,
        name_id: &str,
        user_id: &str,
        session_index: Option<&str>,
    ) -> StoreResult<()> {
        let now = now_micros();
        let _turn = self.store.write_turn().await;
        sqlx::query(
            "INSERT INTO saml_identities (tenant_id, connection_id, name_id, user_id, session_index, last_login_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, connection_id, name_id) DO UPDATE SET user_id = excluded.user_id, session_index = excluded.session_index, last_login_at = excluded.last_login_at",
        )
        .bind(self.tid())
        .bind(connection_id)
        .bind(name_id)
        .bind(user_id)
        .bind(session_index)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn find_user_by_external_id(
        &self,
        external_id: &str,
    ) -> StoreResult<Option<crate::model::User>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM users WHERE tenant_id = $1 AND external_id = $2 AND deleted_at IS NULL LIMIT 2",
            super::rows::USER_COLS
        )))
        .bind(self.tid())
        .bind(external_id)
        .fetch_all(self.pool())
        .await?;
        match rows.as_slice() {
            [one] => Ok(Some(super::rows::user(one)?)),
            _ => Ok(None),
        }
    }

    pub async fn find_group_by_display_name(
        &self,
        display_name: &str,
    ) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM groups WHERE tenant_id = $1 AND display_name_norm = $2 AND deleted_at IS NULL LIMIT 1",
        )
        .bind(self.tid())
        .bind(display_name.to_lowercase())
        .fetch_optional(self.pool())
        .await?)
    }

    // ---- login-flow log ----

    /// Appends one attempt to the connection's login-flow log (pruned to the newest
    /// [`LOGIN_LOG_KEEP`]), with its `sso.login.succeeded` / `sso.login.failed` event and
    /// audit record, in one transaction.
    pub async fn record_login_attempt(&self, actor: &Actor, e: &LoginLogEntry) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO saml_login_log (tenant_id, {LOG_COLS}) VALUES ($13, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )))
        .bind(&e.id)
        .bind(&e.connection_id)
        .bind(w.now)
        .bind(&e.kind)
        .bind(&e.outcome)
        .bind(&e.reason)
        .bind(&e.detail)
        .bind(&e.name_id)
        .bind(&e.user_id)
        .bind(&e.in_response_to)
        .bind(&e.assertion_id)
        .bind(&e.ip)
        .bind(w.tid())
        .execute(&mut *w.tx)
        .await?;
        sqlx::query(
            "DELETE FROM saml_login_log WHERE tenant_id = $1 AND connection_id = $2 AND id IN (SELECT id FROM saml_login_log WHERE tenant_id = $1 AND connection_id = $2 ORDER BY at DESC, id DESC LIMIT 1000000 OFFSET $3)",
        )
        .bind(w.tid())
        .bind(&e.connection_id)
        .bind(LOGIN_LOG_KEEP)
        .execute(&mut *w.tx)
        .await?;
        let success = e.outcome == "success";
        let (op, outcome) = if success {
            ("succeed", "success")
        } else {
            ("fail", "failure")
        };
        let action = match (e.kind.as_str(), success) {
            ("logout", _) => "sso.logout",
            _ => "sso.login",
        };
        w.changed_only("SsoLogin", &e.id, op, 1);
        w.audit_outcome(
            action,
            outcome,
            "SamlConnection",
            &e.connection_id,
            serde_json::json!({
                "kind": e.kind,
                "reason": e.reason,
                "name_id": e.name_id,
                "user_id": e.user_id,
                "login_id": e.id,
            }),
        );
        if let Some(u) = &e.user_id {
            w.invalidate(Invalidate::User(u.clone()));
        }
        w.commit().await
    }

    pub async fn saml_login_log(
        &self,
        connection_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<LoginLogEntry>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {LOG_COLS} FROM saml_login_log WHERE tenant_id = $1 AND connection_id = $2 ORDER BY at DESC, id DESC LIMIT $3"
        )))
        .bind(self.tid())
        .bind(connection_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(log_row)
        .collect()
    }
}

async fn insert_key(w: &mut WriteTx, k: &SpKeyRow, status: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO saml_sp_keys (id, tenant_id, status, private_key, certificate, not_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&k.id)
    .bind(w.tid())
    .bind(status)
    .bind(&k.sealed_private_key)
    .bind(&k.certificate)
    .bind(k.not_after)
    .bind(w.now)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

/// A new id for a login-log entry.
pub fn new_log_id() -> String {
    new_id()
}
