//! Groups of a tenant and their memberships.
//!
//! Membership changes touch only the rows of the members changed, in batches (one existence
//! check and one multi-row insert or delete per 500 members) plus one version bump of the
//! group, so their cost grows with the members changed, not with the group's size. The group
//! row is locked first, so concurrent membership changes of one group serialise instead of
//! losing each other's rows.

use super::dialect::Backend;
use super::rows::{self, GROUP_COLS};
use super::write::{Invalidate, WriteTx};
use super::{StoreError, StoreResult, TenantStore, dialect, new_id};
use crate::model::{
    Actor, Group, Member, MemberDelta, MemberSpec, MemberType, MemberView, Membership, NewGroup,
    PageRequest, Paged, User,
};
use sqlx::{AssertSqlSafe, Row};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Members per statement in batched membership changes.
const BATCH: usize = 500;

impl TenantStore {
    /// A group by id, through the cache. Soft-deleted groups are not found.
    #[tracing::instrument(skip(self), fields(tenant = %self.tenant_id))]
    pub async fn get_group(&self, id: &str) -> StoreResult<Option<Arc<Group>>> {
        let key = (self.tenant_id.clone(), id.to_owned());
        let cache = &self.caches().groups;
        if let Some(g) = cache.get(&key).await {
            return Ok(Some(g));
        }
        let epoch = cache.epoch();
        let row = self
            .row_by_id(
                format!(
                    "SELECT {GROUP_COLS} FROM groups WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
                ),
                id,
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let group = Arc::new(rows::group(&row)?);
        cache.insert_if_fresh(key, group.clone(), epoch).await;
        Ok(Some(group))
    }

    /// A group by id from the database (not the cache), refreshing the cache.
    pub async fn get_group_fresh(&self, id: &str) -> StoreResult<Option<Arc<Group>>> {
        self.caches()
            .groups
            .invalidate(&(self.tenant_id.clone(), id.to_owned()))
            .await;
        self.get_group(id).await
    }

    /// A page of groups, optionally narrowed by a case-insensitive substring of the display
    /// name or externalId.
    pub async fn list_groups(
        &self,
        page: PageRequest,
        search: Option<&str>,
    ) -> StoreResult<Paged<Group>> {
        let pattern = search.map(|s| dialect::contains_pattern(&s.to_lowercase()));
        let filter = "tenant_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR display_name_norm LIKE $2 ESCAPE '\\' OR lower(coalesce(external_id, '')) LIKE $2 ESCAPE '\\')";
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM groups WHERE {filter}"
        )))
        .bind(self.tid())
        .bind(pattern.clone())
        .fetch_one(self.pool())
        .await?;
        let items = sqlx::query(AssertSqlSafe(format!(
            "SELECT {GROUP_COLS} FROM groups WHERE {filter} ORDER BY id LIMIT $3 OFFSET $4"
        )))
        .bind(self.tid())
        .bind(pattern)
        .bind(i64::from(page.limit))
        .bind(page.offset())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(rows::group)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Paged { items, total })
    }

    /// Creates a group with its initial members, atomically: an unknown member rolls the
    /// whole creation back (`InvalidReference`).
    #[tracing::instrument(skip(self, actor, new, members), fields(tenant = %self.tenant_id))]
    pub async fn create_group(
        &self,
        actor: &Actor,
        new: NewGroup,
        members: &[Member],
    ) -> StoreResult<Group> {
        let specs: Vec<MemberSpec> = members.iter().map(MemberSpec::from).collect();
        self.create_group_with(actor, new, &specs).await
    }

    /// [`TenantStore::create_group`] with members whose type may be unknown.
    pub async fn create_group_with(
        &self,
        actor: &Actor,
        new: NewGroup,
        members: &[MemberSpec],
    ) -> StoreResult<Group> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let id = new_id();
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO groups (id, tenant_id, display_name, display_name_norm, external_id, attributes, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) RETURNING {GROUP_COLS}"
        )))
        .bind(&id)
        .bind(w.tid())
        .bind(&new.display_name)
        .bind(new.display_name.to_lowercase())
        .bind(&new.external_id)
        .bind(super::users::attributes_text(&new.attributes))
        .bind(w.now)
        .fetch_one(&mut *w.tx)
        .await?;
        let group = rows::group(&row)?;
        let added = insert_members(&mut w, &id, members).await?;
        w.changed("Group", &id, "create", group.version, "group.create");
        membership_changes(&mut w, &id, group.version, &added, &[]);
        // The new id names nothing cached (see `create_user`); the members' memberships
        // were invalidated as they were added.
        w.commit().await?;
        Ok(group)
    }

    /// Changes a group in one transaction: its stored fields (when `new` is given, guarded by
    /// `base_version` when given) and its members. `if_version` is the client's `If-Match`.
    /// Returns the group as stored afterwards.
    #[tracing::instrument(skip(self, actor, new, delta), fields(tenant = %self.tenant_id))]
    pub async fn update_group(
        &self,
        actor: &Actor,
        id: &str,
        new: Option<NewGroup>,
        delta: &MemberDelta,
        if_version: Option<i64>,
        base_version: Option<i64>,
    ) -> StoreResult<Group> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let (current, current_name) = lock_group_named(&mut w, id).await?;
        if if_version.is_some_and(|v| v != current) {
            return Err(StoreError::VersionMismatch);
        }
        if let Some(new) = &new {
            if base_version.is_some_and(|v| v != current) {
                return Err(StoreError::VersionMismatch);
            }
            sqlx::query(
                "UPDATE groups SET display_name = $3, display_name_norm = $4, external_id = $5, attributes = $6 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(w.tid())
            .bind(id)
            .bind(&new.display_name)
            .bind(new.display_name.to_lowercase())
            .bind(&new.external_id)
            .bind(super::users::attributes_text(&new.attributes))
            .execute(&mut *w.tx)
            .await?;
        }
        let mut changed = new.is_some();
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        if let Some(all) = &delta.replace {
            let gone = sqlx::query(
                "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 RETURNING member_id, member_type",
            )
            .bind(w.tid())
            .bind(id)
            .fetch_all(&mut *w.tx)
            .await?;
            let old = members_removed(&mut w, &gone)?;
            let before: HashSet<&str> = old.iter().map(String::as_str).collect();
            let after: HashSet<&str> = all.iter().map(|m| m.id.as_str()).collect();
            changed |= before != after;
            let now_in = insert_members(&mut w, id, all).await?;
            let now_set: HashSet<&str> = now_in.iter().map(String::as_str).collect();
            added.extend(
                now_in
                    .iter()
                    .filter(|m| !before.contains(m.as_str()))
                    .cloned(),
            );
            removed.extend(
                old.iter()
                    .filter(|m| !now_set.contains(m.as_str()))
                    .cloned(),
            );
        }
        if new.as_ref().is_some_and(|n| n.display_name != current_name) {
            w.invalidate(Invalidate::AllMemberships);
        }
        let more = insert_members(&mut w, id, &delta.add).await?;
        changed |= !more.is_empty();
        added.extend(more);
        let fewer = delete_members(&mut w, id, &delta.remove).await?;
        changed |= !fewer.is_empty();
        removed.extend(fewer);
        if !changed {
            // Re-adding members or removing non-members changes nothing: same version, no
            // change-log entry (identity providers holding the ETag see no spurious change).
            drop(w);
            return self
                .get_group_fresh(id)
                .await?
                .map(|g| (*g).clone())
                .ok_or(StoreError::NotFound);
        }
        let group = bump_group(&mut w, id).await?;
        w.changed("Group", id, "update", group.version, "group.update");
        membership_changes(&mut w, id, group.version, &added, &removed);
        w.commit().await?;
        Ok(group)
    }

    /// Deletes a group (or, with `soft`, hides it), removing its memberships and its
    /// membership in other groups.
    #[tracing::instrument(skip(self, actor), fields(tenant = %self.tenant_id))]
    pub async fn delete_group_as(
        &self,
        actor: &Actor,
        id: &str,
        if_version: Option<i64>,
        soft: bool,
    ) -> StoreResult<()> {
        let mut w = WriteTx::begin(&self.store, &self.tenant_id, actor).await?;
        let version = lock_group(&mut w, id).await?;
        if if_version.is_some_and(|v| v != version) {
            return Err(StoreError::VersionMismatch);
        }
        lock_parent_groups(&mut w, id).await?;
        if soft {
            sqlx::query("UPDATE groups SET deleted_at = $3, version = version + 1, updated_at = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(w.tid())
                .bind(id)
                .bind(w.now)
                .execute(&mut *w.tx)
                .await?;
        } else {
            sqlx::query("DELETE FROM groups WHERE tenant_id = $1 AND id = $2")
                .bind(w.tid())
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
        }
        let parents: Vec<String> = sqlx::query_scalar(
            "DELETE FROM group_members WHERE tenant_id = $1 AND member_id = $2 RETURNING group_id",
        )
        .bind(w.tid())
        .bind(id)
        .fetch_all(&mut *w.tx)
        .await?;
        bump_groups(&mut w, &parents, id).await?;
        w.invalidate(Invalidate::AllMemberships);
        w.changed("Group", id, "delete", version + 1, "group.delete");
        w.invalidate(Invalidate::Group(id.to_owned()));
        w.commit().await
    }

    /// Deletes a group (hard).
    pub async fn delete_group(&self, actor: &Actor, id: &str) -> StoreResult<()> {
        self.delete_group_as(actor, id, None, false).await
    }

    /// Adds members to a group; members already present are left as they are (identity
    /// providers re-send them). Returns the group with its new version.
    pub async fn add_members(
        &self,
        actor: &Actor,
        group_id: &str,
        members: &[Member],
    ) -> StoreResult<Group> {
        let delta = MemberDelta {
            add: members.iter().map(MemberSpec::from).collect(),
            ..MemberDelta::default()
        };
        self.update_group(actor, group_id, None, &delta, None, None)
            .await
    }

    /// Removes members from a group; ids that are not members are ignored.
    pub async fn remove_members(
        &self,
        actor: &Actor,
        group_id: &str,
        member_ids: &[String],
    ) -> StoreResult<Group> {
        let delta = MemberDelta {
            remove: member_ids.to_vec(),
            ..MemberDelta::default()
        };
        self.update_group(actor, group_id, None, &delta, None, None)
            .await
    }

    /// A page of a group's members, in member-id order.
    pub async fn list_members(
        &self,
        group_id: &str,
        page: PageRequest,
    ) -> StoreResult<Paged<Member>> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM group_members WHERE tenant_id = $1 AND group_id = $2",
        )
        .bind(self.tid())
        .bind(group_id)
        .fetch_one(self.pool())
        .await?;
        let items = sqlx::query(
            "SELECT member_id, member_type FROM group_members WHERE tenant_id = $1 AND group_id = $2 ORDER BY member_id LIMIT $3 OFFSET $4",
        )
        .bind(self.tid())
        .bind(group_id)
        .bind(i64::from(page.limit))
        .bind(page.offset())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(rows::member)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Paged { items, total })
    }

    /// Every member of a group with display names (users: display name, else userName).
    pub async fn member_views(&self, group_id: &str) -> StoreResult<Vec<MemberView>> {
        let found = sqlx::query(
            "SELECT m.member_id, m.member_type, coalesce(u.display_name, u.user_name, g.display_name) AS display FROM group_members m LEFT JOIN users u ON u.id = m.member_id AND m.member_type = 'User' LEFT JOIN groups g ON g.id = m.member_id AND m.member_type = 'Group' WHERE m.tenant_id = $1 AND m.group_id = $2 ORDER BY m.member_id",
        )
        .bind(self.tid())
        .bind(group_id)
        .fetch_all(self.pool())
        .await?;
        found
            .iter()
            .map(|r| {
                let m = rows::member(r)?;
                Ok(MemberView {
                    id: m.member_id,
                    ty: m.member_type,
                    display: r.try_get("display")?,
                })
            })
            .collect()
    }

    /// Ids of the groups a user or group is a direct member of.
    pub async fn groups_of(&self, member_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_id = $2 ORDER BY group_id",
        )
        .bind(self.tid())
        .bind(member_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Whether any group of this tenant has a group as a member (one probe of a partial
    /// index, cached per tenant; dropped with every change of nesting, which is announced as
    /// [`Invalidate::AllMemberships`]). Read it after the memberships cache's epoch: a
    /// nesting change after that point also bumps the epoch, so memberships read with a
    /// stale answer are never cached.
    pub(super) async fn nests_groups(&self) -> StoreResult<bool> {
        let cache = &self.caches().nested;
        if let Some(n) = cache.get(&self.tenant_id).await {
            return Ok(n);
        }
        let epoch = cache.epoch();
        let row = self
            .store
            .readers()
            .fetch_optional(
                sqlx::query(
                    "SELECT 1 AS nested FROM group_members WHERE tenant_id = $1 AND member_type = 'Group' LIMIT 1",
                )
                .bind(self.tid()),
            )
            .await?;
        let nested = row.is_some();
        cache
            .insert_if_fresh(self.tenant_id.clone(), nested, epoch)
            .await;
        Ok(nested)
    }

    /// The groups a user belongs to, directly or through nested groups (RFC 7643 §4.1.2
    /// `groups`, with `type` "direct" or "indirect"): (group id, display name, direct).
    pub async fn group_memberships(&self, member_id: &str) -> StoreResult<Arc<Vec<Membership>>> {
        let key = (self.tenant_id.clone(), member_id.to_owned());
        let cache = &self.caches().memberships;
        if let Some(m) = cache.get(&key).await {
            return Ok(m);
        }
        let epoch = cache.epoch();
        let found = Arc::new(self.load_memberships(member_id).await?);
        cache.insert_if_fresh(key, found.clone(), epoch).await;
        Ok(found)
    }

    /// A user and the groups it belongs to, through the caches. When neither is cached (a
    /// cold read), one statement reads both: the row, and its memberships aggregated as JSON
    /// by a scalar subquery — one round trip instead of two.
    pub async fn get_user_with_memberships(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Arc<User>, Arc<Vec<Membership>>)>> {
        let key = (self.tenant_id.clone(), id.to_owned());
        let caches = self.caches();
        match (
            caches.users.get(&key).await,
            caches.memberships.get(&key).await,
        ) {
            (Some(u), Some(m)) => return Ok(Some((u, m))),
            (Some(u), None) => return Ok(Some((u, self.group_memberships(id).await?))),
            (None, Some(m)) => return Ok(self.get_user(id).await?.map(|u| (u, m))),
            (None, None) => {}
        }
        let (user_epoch, memberships_epoch) = (caches.users.epoch(), caches.memberships.epoch());
        // After the epochs: a nesting change from here on also refuses what is read below.
        let nested = self.nests_groups().await?;
        let sql = format!(
            "SELECT {cols}, {m} AS memberships FROM users WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            cols = rows::USER_COLS,
            m = memberships_column(self.store.backend(), "$2", nested),
        );
        let Some(row) = self.row_by_id(sql, id).await? else {
            return Ok(None);
        };
        let user = Arc::new(rows::user(&row)?);
        let memberships = Arc::new(memberships_from(&row)?);
        caches
            .users
            .insert_if_fresh(key.clone(), user.clone(), user_epoch)
            .await;
        caches
            .memberships
            .insert_if_fresh(key, memberships.clone(), memberships_epoch)
            .await;
        Ok(Some((user, memberships)))
    }

    async fn load_memberships(&self, member_id: &str) -> StoreResult<Vec<Membership>> {
        let sql = format!(
            "{} ORDER BY g.id",
            memberships_sql(self.nests_groups().await?)
        );
        let found = self
            .store
            .readers()
            .fetch_all(
                sqlx::query(AssertSqlSafe(sql))
                    .bind(self.tid())
                    .bind(member_id.to_owned()),
            )
            .await?;
        found
            .iter()
            .map(|r| {
                let depth: i64 = r.try_get("depth")?;
                Ok((r.try_get("id")?, r.try_get("display_name")?, depth == 0))
            })
            .collect()
    }
}

/// A scalar subquery: the groups `member` (a bind or a column) belongs to in tenant `$1`,
/// as one JSON array of `[id, display_name, depth]` — read back by [`memberships_from`].
/// `nested`: whether the tenant nests groups (see [`TenantStore::nests_groups`]).
pub(super) fn memberships_column(backend: Backend, member: &str, nested: bool) -> String {
    let agg = match backend {
        Backend::Postgres => "json_agg(json_build_array(ms.id, ms.display_name, ms.depth))::text",
        Backend::Sqlite => "json_group_array(json_array(ms.id, ms.display_name, ms.depth))",
    };
    format!(
        "(SELECT {agg} FROM ({}) ms)",
        memberships_sql(nested).replace("$2", member)
    )
}

/// The memberships a [`memberships_column`] named `memberships` holds, in the order
/// [`TenantStore::group_memberships`] gives (group id).
pub(super) fn memberships_from(row: &impl rows::Columns) -> StoreResult<Vec<Membership>> {
    // PostgreSQL's json_agg of no rows is NULL, SQLite's json_group_array is `[]`.
    let json = row.opt_text("memberships")?;
    let mut found: Vec<(String, String, i64)> = match json {
        Some(j) => serde_json::from_str(&j)
            .map_err(|e| StoreError::Corrupt(format!("memberships: {e}")))?,
        None => Vec::new(),
    };
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(found
        .into_iter()
        .map(|(g, name, depth)| (g, name, depth == 0))
        .collect())
}

/// The groups `$2` belongs to in tenant `$1` (RFC 7643 §4.1.2 `groups`): `id`,
/// `display_name`, `depth` (0: direct). In a tenant that nests no groups they are the direct
/// memberships, one join; otherwise a recursive walk up the nesting, which costs PostgreSQL
/// about a third more per read (`pgbench`, GET by id with the groups: 20-22k vs 14-17k/s).
fn memberships_sql(nested: bool) -> &'static str {
    if nested {
        MEMBERSHIPS_SQL
    } else {
        DIRECT_MEMBERSHIPS_SQL
    }
}

/// `CROSS JOIN` keeps `group_members` the outer table on SQLite, whose planner (no
/// statistics) would otherwise walk every group of the tenant and probe each for the member;
/// PostgreSQL plans it as the inner join it is.
const DIRECT_MEMBERSHIPS_SQL: &str = "SELECT g.id, g.display_name, 0 AS depth FROM group_members m CROSS JOIN groups g WHERE g.id = m.group_id AND m.tenant_id = $1 AND m.member_id = $2 AND g.tenant_id = $1 AND g.deleted_at IS NULL";

/// The groups `$2` belongs to in tenant `$1`, directly (depth 0) or through nested groups.
const MEMBERSHIPS_SQL: &str = "WITH RECURSIVE up(group_id, depth) AS (SELECT group_id, 0 FROM group_members WHERE tenant_id = $1 AND member_id = $2 UNION SELECT m.group_id, up.depth + 1 FROM group_members m JOIN up ON m.member_id = up.group_id WHERE m.tenant_id = $1 AND up.depth < 32) SELECT g.id, g.display_name, MIN(up.depth) AS depth FROM up JOIN groups g ON g.id = up.group_id WHERE g.tenant_id = $1 AND g.deleted_at IS NULL GROUP BY g.id, g.display_name";

/// [`lock_group`], also returning the group's display name.
async fn lock_group_named(w: &mut WriteTx, group_id: &str) -> StoreResult<(i64, String)> {
    let found = sqlx::query(
        "UPDATE groups SET updated_at = updated_at WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING version, display_name",
    )
    .bind(w.tid())
    .bind(group_id)
    .fetch_optional(&mut *w.tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok((found.try_get("version")?, found.try_get("display_name")?))
}

/// Takes the group's row lock (PostgreSQL; SQLite holds the write lock already) and returns
/// its version; `NotFound` for a group of another tenant, a hidden one, or none at all.
async fn lock_group(w: &mut WriteTx, group_id: &str) -> StoreResult<i64> {
    let found: Option<i64> = sqlx::query_scalar(
        "UPDATE groups SET updated_at = updated_at WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING version",
    )
    .bind(w.tid())
    .bind(group_id)
    .fetch_optional(&mut *w.tx)
    .await?;
    found.ok_or(StoreError::NotFound)
}

fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of `ids` exist (not hidden) in `table` of this tenant.
async fn existing(w: &mut WriteTx, table: &str, ids: &[&str]) -> StoreResult<HashSet<String>> {
    let sql = match table {
        "users" => "users",
        _ => "groups",
    };
    let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
        "SELECT id FROM {sql} WHERE tenant_id = $1 AND deleted_at IS NULL AND id IN ({})",
        placeholders(2, ids.len())
    )))
    .bind(w.tid());
    for id in ids {
        q = q.bind((*id).to_owned());
    }
    Ok(q.fetch_all(&mut *w.tx).await?.into_iter().collect())
}

/// Inserts memberships after checking, in batches, that every member exists in this tenant
/// with the stated type (looked up when not stated). Existing memberships are kept.
async fn insert_members(
    w: &mut WriteTx,
    group_id: &str,
    members: &[MemberSpec],
) -> StoreResult<Vec<String>> {
    let mut inserted = Vec::new();
    let mut seen = HashSet::new();
    let unique: Vec<&MemberSpec> = members
        .iter()
        .filter(|m| seen.insert(m.id.as_str()))
        .collect();
    for chunk in unique.chunks(BATCH) {
        let ids: Vec<&str> = chunk.iter().map(|m| m.id.as_str()).collect();
        if let Some(m) = chunk.iter().find(|m| m.id == group_id) {
            return Err(StoreError::InvalidReference(m.id.clone()));
        }
        let users = if chunk.iter().any(|m| m.ty != Some(MemberType::Group)) {
            existing(w, "users", &ids).await?
        } else {
            HashSet::new()
        };
        let groups = if chunk.iter().any(|m| m.ty != Some(MemberType::User)) {
            existing(w, "groups", &ids).await?
        } else {
            HashSet::new()
        };
        let mut typed: HashMap<&str, MemberType> = HashMap::new();
        for m in chunk {
            let is_user = users.contains(&m.id);
            let is_group = groups.contains(&m.id);
            let ty = match (m.ty, is_user, is_group) {
                (Some(MemberType::User), true, _) | (None, true, _) => MemberType::User,
                (Some(MemberType::Group), _, true) | (None, false, true) => MemberType::Group,
                _ => return Err(StoreError::InvalidReference(m.id.clone())),
            };
            typed.insert(m.id.as_str(), ty);
        }
        let mut values = Vec::with_capacity(chunk.len());
        for i in 0..chunk.len() {
            let base = 4 + i * 2;
            values.push(format!("($1, $2, ${base}, ${}, $3)", base + 1));
        }
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_type, created_at) VALUES {} ON CONFLICT (group_id, member_id) DO NOTHING RETURNING member_id",
            values.join(", ")
        )))
        .bind(w.tid())
        .bind(group_id)
        .bind(w.now);
        for m in chunk {
            let ty = typed
                .get(m.id.as_str())
                .copied()
                .unwrap_or(MemberType::User);
            q = q.bind(m.id.clone()).bind(ty.as_str());
        }
        for r in q.fetch_all(&mut *w.tx).await? {
            inserted.push(r.try_get::<String, _>("member_id")?);
        }
        if typed.values().any(|t| *t == MemberType::Group) {
            // A nested group's members gain indirect memberships too.
            w.invalidate(Invalidate::AllMemberships);
        } else {
            w.invalidate(Invalidate::Memberships(
                ids.iter().map(|s| (*s).to_owned()).collect(),
            ));
        }
    }
    Ok(inserted)
}

/// Deletes memberships in batches; ids that are not members are ignored.
async fn delete_members(
    w: &mut WriteTx,
    group_id: &str,
    ids: &[String],
) -> StoreResult<Vec<String>> {
    let mut deleted = Vec::new();
    for chunk in ids.chunks(BATCH) {
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_id IN ({}) RETURNING member_id, member_type",
            placeholders(3, chunk.len())
        )))
        .bind(w.tid())
        .bind(group_id);
        for id in chunk {
            q = q.bind(id.clone());
        }
        let removed = q.fetch_all(&mut *w.tx).await?;
        deleted.extend(members_removed(w, &removed)?);
    }
    Ok(deleted)
}

/// The member ids of deleted `group_members` rows (`member_id, member_type`), with their
/// cached memberships invalidated: the members' own, or every one when a group was among them
/// (its members lose indirect memberships too).
fn members_removed(w: &mut WriteTx, gone: &[sqlx::any::AnyRow]) -> StoreResult<Vec<String>> {
    let mut ids = Vec::with_capacity(gone.len());
    let mut nested = false;
    for r in gone {
        let m = rows::member(r)?;
        nested |= m.member_type == MemberType::Group;
        ids.push(m.member_id);
    }
    if nested {
        w.invalidate(Invalidate::AllMemberships);
    } else if !ids.is_empty() {
        w.invalidate(Invalidate::Memberships(ids.clone()));
    }
    Ok(ids)
}

/// Bumps a group's version (its membership changed) and returns the group.
async fn bump_group(w: &mut WriteTx, group_id: &str) -> StoreResult<Group> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "UPDATE groups SET version = version + 1, updated_at = $3 WHERE tenant_id = $1 AND id = $2 RETURNING {GROUP_COLS}"
    )))
    .bind(w.tid())
    .bind(group_id)
    .bind(w.now)
    .fetch_optional(&mut *w.tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    w.invalidate(Invalidate::Group(group_id.to_owned()));
    rows::group(&row)
}

/// Locks the groups `member_id` belongs to, in id order (PostgreSQL; SQLite has one writer).
/// Deleting a member touches its membership rows and then its groups, while a group PATCH
/// locks its group first and then membership rows: without this, a user deletion and a PATCH
/// of one of its groups (or two deletions of users sharing groups, locking them in different
/// orders) wait for each other until PostgreSQL breaks the deadlock with an error. Taken
/// first, in one order, the group locks make every such pair queue instead.
pub(super) async fn lock_parent_groups(w: &mut WriteTx, member_id: &str) -> StoreResult<()> {
    if w.backend() != super::dialect::Backend::Postgres {
        return Ok(());
    }
    sqlx::query(
        "SELECT id FROM groups WHERE tenant_id = $1 AND id IN (SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_id = $2) ORDER BY id FOR UPDATE",
    )
    .bind(w.tid())
    .bind(member_id)
    .fetch_all(&mut *w.tx)
    .await?;
    Ok(())
}

/// Bumps the version of every group that lost `member_id` through its deletion (in id order,
/// the order [`lock_parent_groups`] locked them in).
pub(super) async fn bump_groups(
    w: &mut WriteTx,
    group_ids: &[String],
    member_id: &str,
) -> StoreResult<()> {
    let mut group_ids = group_ids.to_vec();
    group_ids.sort_unstable();
    group_ids.dedup();
    for gid in &group_ids {
        let g = bump_group(w, gid).await?;
        w.changed("Group", gid, "update", g.version, "group.members.remove");
        membership_changes(w, gid, g.version, &[], &[member_id.to_owned()]);
    }
    Ok(())
}

/// Change-log entries (no audit rows: the group's own entry is audited) for each member
/// added to or removed from a group: resource type `Membership`, id `<group>/<member>`,
/// published as `membership.added` / `membership.removed`.
fn membership_changes(
    w: &mut WriteTx,
    group_id: &str,
    version: i64,
    added: &[String],
    removed: &[String],
) {
    for (ids, op) in [(added, "create"), (removed, "delete")] {
        for m in ids {
            w.changed_only("Membership", &format!("{group_id}/{m}"), op, version);
        }
    }
}
