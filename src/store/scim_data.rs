//! SCIM queries (RFC 7644 §3.4.2): filtered, sorted, paged by index or cursor, evaluated in
//! the database. Tenant extension schemas (RFC 7643 §3.3) are stored here too.

use super::groups::{memberships_column, memberships_from};
use super::rows::{self, GROUP_COLS, USER_COLS};
use super::scim_sql::{Bind, Compiler, Table, sort_expr};
use super::write::{Invalidate, WriteTx};
use super::{StoreError, StoreResult, TenantStore};
use crate::model::{Actor, Group, Membership, User};
use scim::filter::{AttrRef, Expr};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};
use std::sync::Arc;

/// One page request against users or groups.
#[derive(Clone, Debug, Default)]
pub struct Search<'a> {
    pub filter: Option<&'a Expr>,
    /// The sort attribute and whether descending.
    pub sort: Option<(&'a AttrRef, bool)>,
    /// Rows to skip (startIndex − 1).
    pub offset: i64,
    /// Rows to return; 0 returns only the total.
    pub count: i64,
    /// Cursor pagination (RFC 9865): return rows with an id after this one, in id order.
    pub after_id: Option<String>,
    /// Users: also read each user's groups (RFC 7643 §4.1.2), see [`Found::groups`].
    pub with_groups: bool,
}

/// A page of results and the total number of matches.
#[derive(Clone, Debug)]
pub struct Found<T> {
    pub items: Vec<T>,
    pub total: i64,
    /// The groups of each item, in item order, when the search read them with the page
    /// (users, `with_groups`, on SQLite); `None`: read them separately (and cached).
    pub groups: Option<Vec<Arc<Vec<Membership>>>>,
}

fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments>,
    binds: &[Bind],
) -> Query<'q, Any, AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
            Bind::Float(f) => q.bind(*f),
        };
    }
    q
}

fn bind_scalar<'q>(
    mut q: sqlx::query::QueryScalar<'q, Any, i64, AnyArguments>,
    binds: &[Bind],
) -> sqlx::query::QueryScalar<'q, Any, i64, AnyArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
            Bind::Float(f) => q.bind(*f),
        };
    }
    q
}

impl TenantStore {
    pub async fn search_users(&self, s: &Search<'_>) -> StoreResult<Found<User>> {
        // Each user's groups come with the page, by a scalar subquery per row: one statement
        // instead of one more per user (on SQLite each statement is a hop to the
        // connection's thread, on PostgreSQL a round trip; either costs more than the
        // subquery). On PostgreSQL this once ran the filter at half its rate (BENCHMARKS.md,
        // sessions 6-7): with `OFFSET $n` bound, the generic plan's estimate counts the
        // skipped rows' subquery cost, so PostgreSQL judged it dearer than a custom plan and
        // re-planned the statement on every execution (184 µs of PostgreSQL CPU per filter
        // against 61 µs with the plan reused, ninth session). The first page therefore
        // carries no OFFSET at all (see `search_with`).
        let fold = s.with_groups;
        let epoch = self.caches().memberships.epoch();
        // After the epoch, as in `get_user_with_memberships`.
        let nested = fold && self.nests_groups().await?;
        let (rows, total) = self
            .search_with(Table::Users, s, fold.then_some(nested))
            .await?;
        let items: Vec<User> = rows.iter().map(rows::user).collect::<StoreResult<_>>()?;
        let groups = if fold {
            let mut all = Vec::with_capacity(rows.len());
            for (row, user) in rows.iter().zip(&items) {
                let m = Arc::new(memberships_from(row)?);
                self.caches()
                    .memberships
                    .insert_if_fresh((self.tenant_id.clone(), user.id.clone()), m.clone(), epoch)
                    .await;
                all.push(m);
            }
            Some(all)
        } else {
            None
        };
        Ok(Found {
            items,
            total,
            groups,
        })
    }

    pub async fn search_groups(&self, s: &Search<'_>) -> StoreResult<Found<Group>> {
        let (rows, total) = self.search_with(Table::Groups, s, None).await?;
        Ok(Found {
            items: rows.iter().map(rows::group).collect::<StoreResult<_>>()?,
            total,
            groups: None,
        })
    }

    /// The page's rows and the total; with a `memberships` column when `memberships` says
    /// whether the tenant nests groups.
    async fn search_with(
        &self,
        table: Table,
        s: &Search<'_>,
        memberships: Option<bool>,
    ) -> StoreResult<(Vec<rows::DbRow>, i64)> {
        let backend = self.store.backend();
        let (name, cols) = match table {
            Table::Users => ("users", USER_COLS),
            Table::Groups => ("groups", GROUP_COLS),
        };
        let mut compiler = Compiler::new(backend, table, 2);
        let mut cond = String::from("r.tenant_id = $1 AND r.deleted_at IS NULL");
        if let Some(f) = s.filter {
            let c = Compiler::new(backend, table, 2)
                .compile(f)
                .map_err(|e| StoreError::InvalidQuery(e.0))?;
            cond.push_str(" AND ");
            cond.push_str(&c.sql);
            for b in c.binds {
                compiler.bind(b);
            }
        }
        if table == Table::Users {
            // Operators are not visible to provisioning (see provisioning::users): their ids
            // (the tenant's cached set, usually one or none) are left out by value, which
            // costs the database a comparison per row instead of a probe of user_roles per
            // row (a fifth of the `userName eq` statement's cost in `pgbench`).
            let mut operators: Vec<String> = self.operator_ids().await?.iter().cloned().collect();
            operators.sort_unstable();
            for id in operators {
                let p = compiler.bind(Bind::Text(id));
                cond.push_str(&format!(" AND r.id <> {p}"));
            }
        }
        let count_binds = compiler_binds(&compiler);
        let count_sql = format!("SELECT COUNT(*) FROM {name} r WHERE {cond}");
        if s.count <= 0 {
            let total: i64 = bind_scalar(
                sqlx::query_scalar(AssertSqlSafe(count_sql)).bind(self.tid()),
                &count_binds,
            )
            .fetch_one(self.pool())
            .await?;
            return Ok((Vec::new(), total));
        }
        let mut page_cond = cond.clone();
        if let Some(after) = &s.after_id {
            let p = compiler.bind(Bind::Text(after.clone()));
            page_cond.push_str(&format!(" AND r.id > {p}"));
        }
        let order = match s.sort {
            Some((attr, desc)) if s.after_id.is_none() => {
                let expr =
                    sort_expr(backend, table, attr).map_err(|e| StoreError::InvalidQuery(e.0))?;
                let dir = if desc { "DESC" } else { "ASC" };
                format!("{expr} {dir} NULLS LAST, r.id {dir}")
            }
            _ => "r.id ASC".to_owned(),
        };
        let offset_value = if s.after_id.is_some() {
            0
        } else {
            s.offset.max(0)
        };
        // LIMIT is written as a literal, not bound: SQLite (3.51) re-plans a statement whose
        // LIMIT is a bound parameter on every execution — a full re-parse per query. `count`
        // is ours (an i64 capped at `filter.maxResults`), so only a bounded number of
        // distinct statements reach the statement cache. OFFSET stays bound, and is left out
        // for the first page (every identity provider's `userName eq` lookup): PostgreSQL
        // costs a generic plan's unknown OFFSET as skipping rows, which can make it re-plan
        // such a statement on every execution (see `search_users`).
        let limit = s.count;
        let offset = if offset_value > 0 {
            format!(" OFFSET {}", compiler.bind(Bind::Int(offset_value)))
        } else {
            String::new()
        };
        let binds = compiler.into_binds();
        let extra = match memberships {
            Some(nested) => format!(
                ", {} AS memberships",
                memberships_column(backend, "r.id", nested)
            ),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {cols}{extra} FROM {name} r WHERE {page_cond} ORDER BY {order} LIMIT {limit}{offset}"
        );
        let native = self.sqlite_reads().and_then(|r| {
            let mut params = Vec::with_capacity(binds.len() + 1);
            params.push(rusqlite::types::Value::Text(self.tid()));
            params.extend(binds.iter().map(|b| match b {
                Bind::Text(s) => rusqlite::types::Value::Text(s.clone()),
                Bind::Int(i) => rusqlite::types::Value::Integer(*i),
                Bind::Float(f) => rusqlite::types::Value::Real(*f),
            }));
            r.query(&sql, &params)
        });
        let rows: Vec<rows::DbRow> = match native {
            Some(found) => found.into_iter().map(rows::DbRow::Native).collect(),
            None => self
                .store
                .readers()
                .fetch_all(bind_all(
                    sqlx::query(AssertSqlSafe(sql)).bind(self.tid()),
                    &binds,
                ))
                .await?
                .into_iter()
                .map(rows::DbRow::Sqlx)
                .collect(),
        };
        // A page that is not full tells the total without counting (the common case of an
        // identity provider's `userName eq` lookup).
        let fetched = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let total =
            if s.after_id.is_none() && fetched < s.count && (fetched > 0 || offset_value == 0) {
                offset_value + fetched
            } else {
                bind_scalar(
                    sqlx::query_scalar(AssertSqlSafe(count_sql)).bind(self.tid()),
                    &count_binds,
                )
                .fetch_one(self.pool())
                .await?
            };
        Ok((rows, total))
    }

    /// The tenant's extension schemas, through the cache.
    pub async fn scim_schemas_cached(
        &self,
    ) -> StoreResult<Arc<Vec<(String, bool, serde_json::Value)>>> {
        let cache = &self.caches().scim_schemas;
        if let Some(s) = cache.get(&self.tenant_id).await {
            return Ok(s);
        }
        let epoch = cache.epoch();
        let found = Arc::new(self.scim_schemas().await?);
        cache
            .insert_if_fresh(self.tenant_id.clone(), found.clone(), epoch)
            .await;
        Ok(found)
    }

    /// The tenant's extension schemas: (resource type, required, definition JSON).
    pub async fn scim_schemas(&self) -> StoreResult<Vec<(String, bool, serde_json::Value)>> {
        let found = sqlx::query(
            "SELECT resource_type, required, definition FROM scim_schemas WHERE tenant_id = $1 ORDER BY urn",
        )
        .bind(self.tid())
        .fetch_all(self.pool())
        .await?;
        found
            .iter()
            .map(|r| {
                let def: String = r.try_get("definition")?;
                Ok((
                    r.try_get("resource_type")?,
                    r.try_get::<i64, _>("required")? != 0,
                    serde_json::from_str(&def).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ))
            })
            .collect()
    }

    /// Registers (or replaces) an extension schema for a resource type.
    pub async fn put_scim_schema(
        &self,
        actor: &Actor,
        urn: &str,
        resource_type: &str,
        required: bool,
        definition: &serde_json::Value,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let taken: Vec<String> =
            sqlx::query_scalar("SELECT urn FROM scim_schemas WHERE tenant_id = $1")
                .bind(w.tid())
                .fetch_all(&mut *w.tx)
                .await?;
        let existing = taken.iter().find(|u| u.eq_ignore_ascii_case(urn)).cloned();
        if let Some(old) = existing {
            sqlx::query("DELETE FROM scim_schemas WHERE tenant_id = $1 AND urn = $2")
                .bind(w.tid())
                .bind(old)
                .execute(&mut *w.tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO scim_schemas (tenant_id, urn, resource_type, required, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(w.tid())
        .bind(urn)
        .bind(resource_type)
        .bind(i64::from(required))
        .bind(definition.to_string())
        .bind(w.now)
        .execute(&mut *w.tx)
        .await?;
        w.changed("Schema", urn, "update", 1, "scim.schema.put");
        w.invalidate(Invalidate::Schemas);
        w.commit().await
    }

    /// Removes an extension schema (stored values under its URN stay in the documents but are
    /// no longer returned or filterable).
    pub async fn delete_scim_schema(&self, actor: &Actor, urn: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let taken: Vec<String> =
            sqlx::query_scalar("SELECT urn FROM scim_schemas WHERE tenant_id = $1")
                .bind(w.tid())
                .fetch_all(&mut *w.tx)
                .await?;
        let Some(found) = taken.iter().find(|u| u.eq_ignore_ascii_case(urn)).cloned() else {
            return Err(StoreError::NotFound);
        };
        sqlx::query("DELETE FROM scim_schemas WHERE tenant_id = $1 AND urn = $2")
            .bind(w.tid())
            .bind(&found)
            .execute(&mut *w.tx)
            .await?;
        w.changed("Schema", &found, "delete", 1, "scim.schema.delete");
        w.invalidate(Invalidate::Schemas);
        w.commit().await
    }
}

fn compiler_binds(c: &Compiler) -> Vec<Bind> {
    c.binds().to_vec()
}
