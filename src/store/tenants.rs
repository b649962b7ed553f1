//! Tenants and their hostnames: the questions asked before a tenant is known.

use super::rows::{self, TENANT_COLS};
use super::write::{Invalidate, WriteTx};
use super::{Store, StoreError, StoreResult, dialect, new_id};
use crate::model::{Actor, Hostname, PageRequest, Paged, Slug, Tenant, TenantId, TenantSettings};
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;
use std::sync::Arc;

/// A partial update of a tenant; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct TenantUpdate {
    pub display_name: Option<String>,
    /// Replaces the whole hostname list.
    pub hostnames: Option<Vec<Hostname>>,
    pub settings: Option<TenantSettings>,
}

impl Store {
    /// Creates a tenant with its hostnames. A taken slug or hostname is a `Conflict`.
    #[tracing::instrument(skip(self, actor))]
    pub async fn create_tenant(
        &self,
        actor: &Actor,
        slug: &Slug,
        display_name: &str,
        hostnames: &[Hostname],
    ) -> StoreResult<Tenant> {
        let id = TenantId(new_id());
        let mut w = WriteTx::begin(self, &id, actor).await?;
        sqlx::query(
            "INSERT INTO tenants (id, slug, display_name, settings, change_seq, version, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, 1, $5, $5)",
        )
        .bind(id.as_str())
        .bind(slug.as_str())
        .bind(display_name)
        .bind(settings_text(&TenantSettings::default()))
        .bind(w.now)
        .execute(&mut *w.tx)
        .await?;
        set_hostnames(&mut w, hostnames).await?;
        w.changed("Tenant", id.as_str(), "create", 1, "tenant.create");
        w.invalidate(Invalidate::Hosts);
        w.invalidate(Invalidate::Tenant);
        w.commit().await?;
        self.tenant_by_id(&id)
            .await?
            .map(|t| (*t).clone())
            .ok_or(StoreError::NotFound)
    }

    /// The tenant with this slug.
    pub async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE slug = $1"
        )))
        .bind(slug)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let hostnames = self
            .hostnames_of(&[id])
            .await?
            .into_values()
            .next()
            .unwrap_or_default();
        Ok(Some(rows::tenant(&row, hostnames)?))
    }

    /// The tenant with this id, through the cache.
    pub async fn tenant_by_id(&self, id: &TenantId) -> StoreResult<Option<Arc<Tenant>>> {
        let cache = &self.caches().tenants;
        if let Some(t) = cache.get(id).await {
            return Ok(Some(t));
        }
        let epoch = cache.epoch();
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hostnames = self
            .hostnames_of(std::slice::from_ref(&id.0))
            .await?
            .into_values()
            .next()
            .unwrap_or_default();
        let tenant = Arc::new(rows::tenant(&row, hostnames)?);
        cache
            .insert_if_fresh(id.clone(), tenant.clone(), epoch)
            .await;
        Ok(Some(tenant))
    }

    /// A page of tenants by slug, optionally narrowed by a substring of slug or display name.
    pub async fn list_tenants(
        &self,
        page: PageRequest,
        search: Option<&str>,
    ) -> StoreResult<Paged<Tenant>> {
        let pattern = search.map(|s| dialect::contains_pattern(&s.to_lowercase()));
        let filter =
            "($1 IS NULL OR slug LIKE $1 ESCAPE '\\' OR lower(display_name) LIKE $1 ESCAPE '\\')";
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM tenants WHERE {filter}"
        )))
        .bind(pattern.clone())
        .fetch_one(self.pool())
        .await?;
        let found = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE {filter} ORDER BY slug LIMIT $2 OFFSET $3"
        )))
        .bind(pattern)
        .bind(i64::from(page.limit))
        .bind(page.offset())
        .fetch_all(self.pool())
        .await?;
        let ids = found
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut hosts = self.hostnames_of(&ids).await?;
        let items = found
            .iter()
            .zip(ids)
            .map(|(r, id)| rows::tenant(r, hosts.remove(&id).unwrap_or_default()))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Paged { items, total })
    }

    /// Updates a tenant. With `if_version`, refuses a stale update (`VersionMismatch`).
    #[tracing::instrument(skip(self, actor, update))]
    pub async fn update_tenant(
        &self,
        actor: &Actor,
        id: &TenantId,
        update: TenantUpdate,
        if_version: Option<i64>,
    ) -> StoreResult<Tenant> {
        let mut w = WriteTx::begin(self, id, actor).await?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE tenants SET display_name = coalesce($2, display_name), settings = coalesce($3, settings), version = version + 1, updated_at = $4 WHERE id = $1 AND ($5 IS NULL OR version = $5) RETURNING version",
        )
        .bind(id.as_str())
        .bind(&update.display_name)
        .bind(update.settings.as_ref().map(settings_text))
        .bind(w.now)
        .bind(if_version)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(version) = version else {
            let exists: Option<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *w.tx)
                .await?;
            return Err(if exists.is_some() {
                StoreError::VersionMismatch
            } else {
                StoreError::NotFound
            });
        };
        if let Some(hostnames) = &update.hostnames {
            sqlx::query("DELETE FROM tenant_hostnames WHERE tenant_id = $1")
                .bind(id.as_str())
                .execute(&mut *w.tx)
                .await?;
            set_hostnames(&mut w, hostnames).await?;
            w.invalidate(Invalidate::Hosts);
        }
        w.changed("Tenant", id.as_str(), "update", version, "tenant.update");
        w.invalidate(Invalidate::Tenant);
        w.commit().await?;
        self.tenant_by_id(id)
            .await?
            .map(|t| (*t).clone())
            .ok_or(StoreError::NotFound)
    }

    /// Deletes a tenant and everything in it (users, groups, tokens, sessions, audit trail,
    /// change log, webhooks: the tables cascade, the log tables are emptied for it here).
    /// The deletion is audited in `audit_in`
    /// (the operator's tenant), since the tenant's own trail goes with it.
    pub async fn delete_tenant(
        &self,
        actor: &Actor,
        audit_in: &TenantId,
        id: &TenantId,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(self, audit_in, actor).await?;
        let slug: Option<String> =
            sqlx::query_scalar("DELETE FROM tenants WHERE id = $1 RETURNING slug")
                .bind(id.as_str())
                .fetch_optional(&mut *w.tx)
                .await?;
        let Some(slug) = slug else {
            return Err(StoreError::NotFound);
        };
        // The log tables carry no foreign key to tenants on PostgreSQL (migration
        // 20261201000010): their rows go here, with the tenant.
        for sql in [
            "DELETE FROM change_log WHERE tenant_id = $1",
            "DELETE FROM audit_events WHERE tenant_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id.as_str())
                .execute(&mut *w.tx)
                .await?;
        }
        w.audit(
            "tenant.delete",
            "Tenant",
            id.as_str(),
            serde_json::json!({ "slug": slug }),
        );
        // Everything cached for the tenant goes (tokens are keyed by hash, not tenant), on
        // every node.
        w.invalidate(Invalidate::All);
        w.commit().await?;
        Ok(())
    }

    /// The tenant a hostname belongs to, through the cache (negative answers included).
    pub async fn resolve_host(&self, host: &Hostname) -> StoreResult<Option<TenantId>> {
        let cache = &self.caches().hosts;
        let key = host.as_str().to_owned();
        if let Some(t) = cache.get(&key).await {
            return Ok(t);
        }
        let epoch = cache.epoch();
        let found: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM tenant_hostnames WHERE hostname = $1")
                .bind(&key)
                .fetch_optional(self.pool())
                .await?;
        let found = found.map(TenantId);
        cache.insert_if_fresh(key, found.clone(), epoch).await;
        Ok(found)
    }

    async fn hostnames_of(&self, ids: &[String]) -> StoreResult<HashMap<String, Vec<String>>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let placeholders = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT tenant_id, hostname FROM tenant_hostnames WHERE tenant_id IN ({placeholders}) ORDER BY hostname"
        )));
        for id in ids {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(self.pool()).await? {
            out.entry(r.try_get("tenant_id")?)
                .or_default()
                .push(r.try_get("hostname")?);
        }
        Ok(out)
    }
}

async fn set_hostnames(w: &mut WriteTx, hostnames: &[Hostname]) -> StoreResult<()> {
    for h in hostnames {
        sqlx::query("INSERT INTO tenant_hostnames (hostname, tenant_id) VALUES ($1, $2)")
            .bind(h.as_str())
            .bind(w.tid())
            .execute(&mut *w.tx)
            .await?;
    }
    Ok(())
}

fn settings_text(s: &TenantSettings) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "{}".to_owned())
}
