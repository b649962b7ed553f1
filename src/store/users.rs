//! Users of a tenant.

use super::rows::{self, USER_COLS};
use super::write::{self, Invalidate, WriteTx};
use super::{StoreError, StoreResult, TenantStore, dialect, new_id};
use crate::model::{Actor, NewUser, PageRequest, Paged, User};
use sqlx::AssertSqlSafe;
use std::sync::Arc;

/// The case-insensitive form of a userName (RFC 7643 §4.1.1: userName is caseExact=false
/// and unique), computed in Rust so both backends compare the same bytes.
pub(crate) fn normalise(s: &str) -> String {
    s.to_lowercase()
}

impl TenantStore {
    /// A user by id, through the cache.
    #[tracing::instrument(skip(self), fields(tenant = %self.tenant_id))]
    pub async fn get_user(&self, id: &str) -> StoreResult<Option<Arc<User>>> {
        let key = (self.tenant_id.clone(), id.to_owned());
        let cache = &self.caches().users;
        if let Some(u) = cache.get(&key).await {
            return Ok(Some(u));
        }
        let epoch = cache.epoch();
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
        );
        let row = self.row_by_id(sql, id).await?;
        let Some(row) = row else { return Ok(None) };
        let user = Arc::new(rows::user(&row)?);
        cache.insert_if_fresh(key, user.clone(), epoch).await;
        Ok(Some(user))
    }

    /// A user by id from the database (not the cache), refreshing the cache.
    pub async fn get_user_fresh(&self, id: &str) -> StoreResult<Option<Arc<User>>> {
        self.caches()
            .users
            .invalidate(&(self.tenant_id.clone(), id.to_owned()))
            .await;
        self.get_user(id).await
    }

    /// A user by userName, compared case-insensitively.
    pub async fn find_user_by_user_name(&self, user_name: &str) -> StoreResult<Option<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND user_name_norm = $2 AND deleted_at IS NULL"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(self.tid())
            .bind(normalise(user_name))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::user).transpose()
    }

    /// The one live user with this email (compared case-insensitively); none when no user or
    /// several users have it.
    pub async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND email = $2 AND deleted_at IS NULL LIMIT 2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(self.tid())
            .bind(email.to_lowercase())
            .fetch_all(self.pool())
            .await?;
        match rows.as_slice() {
            [one] => Ok(Some(rows::user(one)?)),
            _ => Ok(None),
        }
    }

    /// A page of users, optionally narrowed by a case-insensitive substring of userName,
    /// email, display name or externalId. Ordered by id (creation order).
    pub async fn list_users(
        &self,
        page: PageRequest,
        search: Option<&str>,
    ) -> StoreResult<Paged<User>> {
        let pattern = search.map(|s| dialect::contains_pattern(&s.to_lowercase()));
        let filter = "tenant_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR user_name_norm LIKE $2 ESCAPE '\\' OR lower(coalesce(email, '')) LIKE $2 ESCAPE '\\' OR lower(coalesce(display_name, '')) LIKE $2 ESCAPE '\\' OR lower(coalesce(external_id, '')) LIKE $2 ESCAPE '\\')";
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM users WHERE {filter}"
        )))
        .bind(self.tid())
        .bind(pattern.clone())
        .fetch_one(self.pool())
        .await?;
        let items = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM users WHERE {filter} ORDER BY id LIMIT $3 OFFSET $4"
        )))
        .bind(self.tid())
        .bind(pattern)
        .bind(i64::from(page.limit))
        .bind(page.offset())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(rows::user)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Paged { items, total })
    }

    /// Creates a user. A userName already taken in this tenant (case-insensitively) is a
    /// `Conflict { constraint: "users_user_name_key" }`.
    #[tracing::instrument(skip(self, actor, new), fields(tenant = %self.tenant_id))]
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> StoreResult<User> {
        let id = new_id();
        let sql = format!(
            "INSERT INTO users (id, tenant_id, user_name, user_name_norm, external_id, display_name, email, active, attributes, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10) ON CONFLICT (tenant_id, user_name_norm) DO NOTHING RETURNING {USER_COLS}"
        );
        let binder = |q: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>,
                      now: i64| {
            q.bind(id.clone())
                .bind(self.tid())
                .bind(new.user_name.clone())
                .bind(normalise(&new.user_name))
                .bind(new.external_id.clone())
                .bind(new.display_name.clone())
                .bind(new.email.as_deref().map(str::to_lowercase))
                .bind(i64::from(new.active))
                .bind(attributes_text(&new.attributes))
                .bind(now)
        };
        if new.password_hash.is_none() {
            // The common case in one round trip; a taken userName falls through to the
            // transaction below, which tells a soft-deleted holder (gives way) from a live one.
            let now = crate::model::now_micros();
            let row = write::write_row(
                &self.store,
                &self.tenant_id,
                actor,
                write::RowChange {
                    main: &sql,
                    main_binds: 10,
                    now,
                    // A new id names nothing any node could have cached (a read of an id
                    // that does not exist caches nothing): a create announces nothing, so
                    // it neither waits for the other nodes nor makes them drop anything.
                    invalidations: Vec::new(),
                    resource_type: "User",
                    operation: "create",
                    action: "user.create",
                    table: "users",
                    id: &id,
                },
                |q| binder(q, now),
            )
            .await?;
            if let Some(row) = row {
                return rows::user(&row);
            }
        }
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let w_now = w.now;
        let insert = || binder(sqlx::query(AssertSqlSafe(sql.clone())), w_now);
        let mut row = insert().fetch_optional(&mut *w.tx).await?;
        if row.is_none() {
            // The userName is taken. A soft-deleted user gives way to the new one; a live one
            // is a conflict.
            let gone = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND user_name_norm = $2 AND deleted_at IS NOT NULL")
                .bind(w.tid())
                .bind(normalise(&new.user_name))
                .execute(&mut *w.tx)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(StoreError::Conflict {
                    constraint: "users_user_name_key",
                });
            }
            row = insert().fetch_optional(&mut *w.tx).await?;
        }
        let row = row.ok_or(StoreError::Conflict {
            constraint: "users_user_name_key",
        })?;
        let user = rows::user(&row)?;
        if let Some(hash) = &new.password_hash {
            store_password(&mut w, &id, hash).await?;
        }
        w.changed("User", &id, "create", user.version, "user.create");
        // Nothing to invalidate: see the one-statement path above.
        w.commit().await?;
        Ok(user)
    }

    /// Creates many users in one transaction (SCIM Bulk imports): multi-row inserts, one
    /// change-log and audit entry per user. Each user succeeds or fails on its own: a taken
    /// userName (in the tenant or earlier in the same batch) is that user's `Conflict`.
    #[tracing::instrument(skip(self, actor, batch), fields(tenant = %self.tenant_id, n = batch.len()))]
    pub async fn create_users(
        &self,
        actor: &Actor,
        batch: Vec<NewUser>,
    ) -> StoreResult<Vec<StoreResult<User>>> {
        if self.store.backend() == dialect::Backend::Postgres {
            return self.create_users_pg(actor, batch).await;
        }
        const ROWS: usize = 200;
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let mut out: Vec<StoreResult<User>> = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(ROWS) {
            // Soft-deleted users with these userNames give way, as in `create_user`.
            let names: Vec<String> = chunk.iter().map(|n| normalise(&n.user_name)).collect();
            let mut purge = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM users WHERE tenant_id = $1 AND deleted_at IS NOT NULL AND user_name_norm IN ({})",
                (2..names.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
            )))
            .bind(w.tid());
            for n in names {
                purge = purge.bind(n);
            }
            purge.execute(&mut *w.tx).await?;
            let ids: Vec<String> = chunk.iter().map(|_| new_id()).collect();
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = 3 + i * 8;
                    format!(
                        "(${b}, $1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, 1, $2, $2)",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7
                    )
                })
                .collect();
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO users (id, tenant_id, user_name, user_name_norm, external_id, display_name, email, active, attributes, version, created_at, updated_at) VALUES {} ON CONFLICT (tenant_id, user_name_norm) DO NOTHING RETURNING {USER_COLS}",
                values.join(", ")
            )))
            .bind(w.tid())
            .bind(w.now);
            for (new, id) in chunk.iter().zip(&ids) {
                q = q
                    .bind(id.clone())
                    .bind(new.user_name.clone())
                    .bind(normalise(&new.user_name))
                    .bind(new.external_id.clone())
                    .bind(new.display_name.clone())
                    .bind(new.email.as_deref().map(str::to_lowercase))
                    .bind(i64::from(new.active))
                    .bind(attributes_text(&new.attributes));
            }
            let mut created: std::collections::HashMap<String, User> =
                std::collections::HashMap::new();
            for row in q.fetch_all(&mut *w.tx).await? {
                let u = rows::user(&row)?;
                created.insert(u.id.clone(), u);
            }
            for (new, id) in chunk.iter().zip(ids) {
                match created.remove(&id) {
                    Some(user) => {
                        if let Some(hash) = &new.password_hash {
                            store_password(&mut w, &id, hash).await?;
                        }
                        // New ids: nothing cached to invalidate (see `create_user`). A
                        // thousand of them made the notification "drop everything".
                        w.changed("User", &id, "create", user.version, "user.create");
                        out.push(Ok(user));
                    }
                    None => out.push(Err(StoreError::Conflict {
                        constraint: "users_user_name_key",
                    })),
                }
            }
        }
        w.commit().await?;
        Ok(out)
    }

    /// PostgreSQL's Bulk import: each chunk of users, their change-log entries and their audit
    /// records as ONE statement (data-modifying CTEs over `json_to_recordset`), so the
    /// statement text is the same for every chunk (prepared once per connection) and the
    /// database runs one plan per chunk instead of parsing thousands of placeholders in three
    /// statements. The log rows are written from what the insert returns, so a user refused
    /// for a taken userName logs nothing. Soft-deleted holders of a name are purged only when
    /// a name was refused, and those users retried once (as in `create_user`).
    async fn create_users_pg(
        &self,
        actor: &Actor,
        batch: Vec<NewUser>,
    ) -> StoreResult<Vec<StoreResult<User>>> {
        const ROWS: usize = 1000;
        const SQL: &str = "WITH x AS (SELECT * FROM json_to_recordset($3::json) AS x(i int, id text, aid text, user_name text, user_name_norm text, external_id text, display_name text, email text, active bigint, attributes json)), \
             u AS (INSERT INTO users (id, tenant_id, user_name, user_name_norm, external_id, display_name, email, active, attributes, version, created_at, updated_at) \
                   SELECT id, $1, user_name, user_name_norm, external_id, display_name, email, active, attributes::text, 1, $2, $2 FROM x ORDER BY i \
                   ON CONFLICT (tenant_id, user_name_norm) DO NOTHING RETURNING id), \
             n AS (SELECT x.i, x.id, x.aid FROM x JOIN u ON u.id = x.id), \
             c AS (INSERT INTO change_log (tenant_id, seq, occurred_at, resource_type, resource_id, operation, resource_version) \
                   SELECT $1, nextval('change_log_seq'), $2, 'User', id, 'create', 1 FROM (SELECT id FROM n ORDER BY i) o), \
             a AS (INSERT INTO audit_events (id, tenant_id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details) \
                   SELECT aid, $1, $2, $4, $5, 'user.create', 'User', id, 'success', $6, $7, $8, '{}' FROM n) \
             SELECT i FROM n";
        const PURGE: &str = "DELETE FROM users WHERE tenant_id = $1 AND deleted_at IS NOT NULL AND user_name_norm IN (SELECT json_array_elements_text($2::json)) RETURNING user_name_norm";
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let now = w.now;
        let ids: Vec<String> = batch.iter().map(|_| new_id()).collect();
        let norms: Vec<String> = batch.iter().map(|n| normalise(&n.user_name)).collect();
        let mut created = vec![false; batch.len()];
        /// One user as `json_to_recordset` reads it.
        #[derive(serde::Serialize)]
        struct Row<'a> {
            i: usize,
            id: &'a str,
            aid: String,
            user_name: &'a str,
            user_name_norm: &'a str,
            external_id: Option<&'a str>,
            display_name: Option<&'a str>,
            email: Option<String>,
            active: i64,
            attributes: &'a serde_json::Value,
        }
        let empty = serde_json::json!({});
        let rows = |which: &mut dyn Iterator<Item = usize>| -> StoreResult<String> {
            let rows: Vec<Row<'_>> = which
                .map(|i| {
                    let n = &batch[i];
                    Row {
                        i,
                        id: &ids[i],
                        aid: new_id(),
                        user_name: &n.user_name,
                        user_name_norm: &norms[i],
                        external_id: n.external_id.as_deref(),
                        display_name: n.display_name.as_deref(),
                        email: n.email.as_deref().map(str::to_lowercase),
                        active: i64::from(n.active),
                        attributes: if n.attributes.is_null() {
                            &empty
                        } else {
                            &n.attributes
                        },
                    }
                })
                .collect();
            serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        let tid = w.tid();
        let insert = |rows: String| {
            sqlx::query_scalar::<_, i32>(SQL)
                .bind(tid.clone())
                .bind(now)
                .bind(rows)
                .bind(actor.actor_type.clone())
                .bind(actor.actor_id.clone())
                .bind(actor.ip.clone())
                .bind(actor.user_agent.clone())
                .bind(actor.request_id.clone())
        };
        let all: Vec<usize> = (0..batch.len()).collect();
        for chunk in all.chunks(ROWS) {
            let q = insert(rows(&mut chunk.iter().copied())?);
            for i in q.fetch_all(&mut *w.tx).await? {
                if let Some(c) = usize::try_from(i).ok().and_then(|i| created.get_mut(i)) {
                    *c = true;
                }
            }
            let refused: Vec<usize> = chunk.iter().copied().filter(|&i| !created[i]).collect();
            if refused.is_empty() {
                continue;
            }
            let names: Vec<&str> = refused.iter().map(|&i| norms[i].as_str()).collect();
            let gone: std::collections::HashSet<String> = sqlx::query_scalar::<_, String>(PURGE)
                .bind(tid.clone())
                .bind(serde_json::Value::from(names).to_string())
                .fetch_all(&mut *w.tx)
                .await?
                .into_iter()
                .collect();
            let mut retry = refused
                .iter()
                .copied()
                .filter(|&i| gone.contains(&norms[i]))
                .peekable();
            if retry.peek().is_none() {
                continue;
            }
            for i in insert(rows(&mut retry)?).fetch_all(&mut *w.tx).await? {
                if let Some(c) = usize::try_from(i).ok().and_then(|i| created.get_mut(i)) {
                    *c = true;
                }
            }
        }
        for (i, new) in batch.iter().enumerate() {
            if let (true, Some(hash)) = (created[i], &new.password_hash) {
                store_password(&mut w, &ids[i], hash).await?;
            }
        }
        // The log rows are in the statements above; new ids: nothing cached to invalidate.
        w.commit().await?;
        Ok(batch
            .into_iter()
            .zip(ids)
            .zip(created)
            .map(|((new, id), created)| {
                if !created {
                    return Err(StoreError::Conflict {
                        constraint: "users_user_name_key",
                    });
                }
                Ok(User {
                    id,
                    email: new.email.as_deref().map(str::to_lowercase),
                    user_name: new.user_name,
                    external_id: new.external_id,
                    display_name: new.display_name,
                    active: new.active,
                    attributes: if new.attributes.is_null() {
                        serde_json::json!({})
                    } else {
                        new.attributes
                    },
                    version: 1,
                    created_at: now,
                    updated_at: now,
                })
            })
            .collect())
    }

    /// Replaces a user's stored fields. With `if_version`, refuses (`VersionMismatch`) when
    /// the stored version differs: the basis of ETag preconditions (RFC 7644 §3.14).
    #[tracing::instrument(skip(self, actor, new), fields(tenant = %self.tenant_id))]
    pub async fn replace_user(
        &self,
        actor: &Actor,
        id: &str,
        new: NewUser,
        if_version: Option<i64>,
    ) -> StoreResult<User> {
        let sql = format!(
            "UPDATE users SET user_name = $3, user_name_norm = $4, external_id = $5, display_name = $6, email = $7, active = $8, attributes = $9, version = version + 1, updated_at = $10 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND ($11 IS NULL OR version = $11) RETURNING {USER_COLS}"
        );
        let binder = |q: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>,
                      tid: String,
                      now: i64| {
            q.bind(tid)
                .bind(id.to_owned())
                .bind(new.user_name.clone())
                .bind(normalise(&new.user_name))
                .bind(new.external_id.clone())
                .bind(new.display_name.clone())
                .bind(new.email.as_deref().map(str::to_lowercase))
                .bind(i64::from(new.active))
                .bind(attributes_text(&new.attributes))
                .bind(now)
                .bind(if_version)
        };
        if new.password_hash.is_none() {
            // One round trip (see `write_row`). No row: missing or stale — the transaction
            // below finds out which.
            let now = crate::model::now_micros();
            let row = write::write_row(
                &self.store,
                &self.tenant_id,
                actor,
                write::RowChange {
                    main: &sql,
                    main_binds: 11,
                    now,
                    invalidations: vec![Invalidate::User(id.to_owned())],
                    resource_type: "User",
                    operation: "update",
                    action: "user.update",
                    table: "users",
                    id,
                },
                |q| binder(q, self.tid(), now),
            )
            .await?;
            if let Some(row) = row {
                return rows::user(&row);
            }
        }
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let row = binder(sqlx::query(AssertSqlSafe(sql)), w.tid(), w.now)
            .fetch_optional(&mut *w.tx)
            .await?;
        let Some(row) = row else {
            return Err(self.missing_or_mismatch(&mut w, id, if_version).await);
        };
        let user = rows::user(&row)?;
        if let Some(hash) = &new.password_hash {
            store_password(&mut w, id, hash).await?;
        }
        w.changed("User", id, "update", user.version, "user.update");
        w.invalidate(Invalidate::User(id.to_owned()));
        w.commit().await?;
        Ok(user)
    }

    /// Deletes a user and its group memberships.
    pub async fn delete_user(
        &self,
        actor: &Actor,
        id: &str,
        if_version: Option<i64>,
    ) -> StoreResult<()> {
        self.delete_user_as(actor, id, if_version, false).await
    }

    /// Deletes a user and its group memberships; with `soft`, the user is kept but
    /// deactivated and hidden (the tenant's soft-delete setting).
    #[tracing::instrument(skip(self, actor), fields(tenant = %self.tenant_id))]
    pub async fn delete_user_as(
        &self,
        actor: &Actor,
        id: &str,
        if_version: Option<i64>,
        soft: bool,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        super::groups::lock_parent_groups(&mut w, id).await?;
        let sql = if soft {
            "UPDATE users SET deleted_at = $4, active = 0, version = version + 1, updated_at = $4 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND ($3 IS NULL OR version = $3) RETURNING version - 1"
        } else {
            "DELETE FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND ($3 IS NULL OR version = $3) RETURNING version"
        };
        let version: Option<i64> = sqlx::query_scalar(sql)
            .bind(w.tid())
            .bind(id)
            .bind(if_version)
            .bind(w.now)
            .fetch_optional(&mut *w.tx)
            .await?;
        let Some(version) = version else {
            return Err(self.missing_or_mismatch(&mut w, id, if_version).await);
        };
        let groups: Vec<String> = sqlx::query_scalar(
            "DELETE FROM group_members WHERE tenant_id = $1 AND member_id = $2 RETURNING group_id",
        )
        .bind(w.tid())
        .bind(id)
        .fetch_all(&mut *w.tx)
        .await?;
        super::groups::bump_groups(&mut w, &groups, id).await?;
        w.invalidate(Invalidate::Memberships(vec![id.to_owned()]));
        w.changed("User", id, "delete", version + 1, "user.delete");
        w.invalidate(Invalidate::User(id.to_owned()));
        w.commit().await?;
        Ok(())
    }

    /// Tells apart "no such user" and "the version precondition failed" after a guarded
    /// statement matched no row.
    async fn missing_or_mismatch(
        &self,
        w: &mut WriteTx,
        id: &str,
        if_version: Option<i64>,
    ) -> StoreError {
        if if_version.is_none() {
            return StoreError::NotFound;
        }
        let exists: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT version FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(w.tid())
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await;
        match exists {
            Ok(Some(_)) => StoreError::VersionMismatch,
            Ok(None) => StoreError::NotFound,
            Err(e) => StoreError::Db(e),
        }
    }

    /// Stores (or replaces) a user's password hash (argon2id PHC string, hashed by the caller).
    pub async fn set_password_hash(
        &self,
        actor: &Actor,
        user_id: &str,
        hash: &str,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(w.tid())
        .bind(user_id)
        .fetch_optional(&mut *w.tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        store_password(&mut w, user_id, hash).await?;
        w.audit(
            "user.password.set",
            "User",
            user_id,
            serde_json::Value::Null,
        );
        w.commit().await
    }

    /// The stored password hash of a user, if any.
    pub async fn password_hash(&self, user_id: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT secret FROM credentials WHERE tenant_id = $1 AND user_id = $2 AND kind = 'password'",
        )
        .bind(self.tid())
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Grants a role to a user (idempotent).
    pub async fn grant_role(&self, actor: &Actor, user_id: &str, role: &str) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(w.tid())
        .bind(user_id)
        .fetch_optional(&mut *w.tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO user_roles (tenant_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT (user_id, role) DO NOTHING",
        )
        .bind(w.tid())
        .bind(user_id)
        .bind(role)
        .execute(&mut *w.tx)
        .await?;
        w.audit(
            "user.role.grant",
            "User",
            user_id,
            serde_json::json!({ "role": role }),
        );
        w.invalidate(Invalidate::Roles);
        w.commit().await
    }

    /// Ids of this tenant's users holding `superadmin`, through the cache.
    pub async fn operator_ids(&self) -> StoreResult<Arc<std::collections::HashSet<String>>> {
        let cache = &self.caches().operators;
        if let Some(ids) = cache.get(&self.tenant_id).await {
            return Ok(ids);
        }
        let epoch = cache.epoch();
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM user_roles WHERE tenant_id = $1 AND role = 'superadmin'",
        )
        .bind(self.tid())
        .fetch_all(self.pool())
        .await?;
        let ids = Arc::new(ids.into_iter().collect::<std::collections::HashSet<_>>());
        cache
            .insert_if_fresh(self.tenant_id.clone(), ids.clone(), epoch)
            .await;
        Ok(ids)
    }

    /// The roles granted to a user directly.
    pub async fn user_roles(&self, user_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT role FROM user_roles WHERE tenant_id = $1 AND user_id = $2 ORDER BY role",
        )
        .bind(self.tid())
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many users of this tenant hold `role`.
    pub async fn count_role_holders(&self, role: &str) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM user_roles WHERE tenant_id = $1 AND role = $2",
            )
            .bind(self.tid())
            .bind(role)
            .fetch_one(self.pool())
            .await?,
        )
    }
}

async fn store_password(w: &mut WriteTx, user_id: &str, hash: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO credentials (tenant_id, user_id, kind, secret, created_at, updated_at) VALUES ($1, $2, 'password', $3, $4, $4) ON CONFLICT (user_id, kind) DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at",
    )
    .bind(w.tid())
    .bind(user_id)
    .bind(hash)
    .bind(w.now)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

pub(super) fn attributes_text(v: &serde_json::Value) -> String {
    if v.is_null() {
        "{}".to_owned()
    } else {
        v.to_string()
    }
}
