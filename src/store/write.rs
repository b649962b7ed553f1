//! One write = one transaction that also appends to the tenant's change log and audit trail.
//!
//! A [`WriteTx`] collects the change-log entries, audit records and cache invalidations of a
//! write while the caller runs its statements, then on [`WriteTx::commit`] numbers the changes,
//! appends the rows, commits, and only then invalidates the caches (so nothing is announced or
//! evicted for a write that did not commit). Numbering: SQLite bumps the tenant's counter (one
//! writer at a time, so numbers are gap-free and commit in order); PostgreSQL takes numbers from
//! a sequence, so writers of a tenant never queue on its row (numbers increase but may have gaps
//! and commit out of order; see `migrations/postgres/20261123000003_change_seq.sql`).

use super::{Store, StoreError, StoreResult, new_id};
use crate::model::{Actor, TenantId, now_micros};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Executor, Transaction};

/// Rows per multi-row INSERT of change-log and audit entries.
const ROWS_PER_INSERT: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidate {
    User(String),
    Group(String),
    Token(String),
    Tenant,
    Hosts,
    Schemas,
    /// The cached group memberships of these members.
    Memberships(Vec<String>),
    /// Every cached group membership of the tenant (nested groups or a group's name changed).
    AllMemberships,
    /// The tenant's cached role holders and every cached permission set.
    Roles,
    /// A session (revoked).
    Session(String),
    /// Every cache of every tenant (a tenant deleted; a node that may have missed
    /// notifications).
    All,
    /// A SAML connection (its settings, certificates) — cached by the SSO layer.
    SamlConnection(String),
    /// The tenant's SP keys — cached by the SSO layer.
    SpKeys,
    /// The JWT signing keys (global) — held by every node's key ring.
    SigningKeys,
}

/// The PostgreSQL channel on which committed invalidations reach the other nodes.
pub const CHANNEL: &str = "idhub_cache";
/// NOTIFY payloads must stay under 8000 bytes; longer lists become "everything".
const MAX_PAYLOAD: usize = 7900;

/// `node:nonce|tenant|item;item;…` (items: `u:ID`, `g:ID`, `t:HASH`, `T`, `H`, `S`,
/// `m:ID,ID`, `M`, `R`, `s:ID`, `*`, `c:ID`, `k`, `J`); the nonce is what the other nodes
/// acknowledge (see `peers`).
pub(super) fn encode(node: &str, nonce: u64, tenant: &TenantId, items: &[Invalidate]) -> String {
    let node = format!("{node}:{nonce}");
    let parts: Vec<String> = items
        .iter()
        .map(|i| match i {
            Invalidate::User(id) => format!("u:{id}"),
            Invalidate::Group(id) => format!("g:{id}"),
            Invalidate::Token(h) => format!("t:{h}"),
            Invalidate::Tenant => "T".into(),
            Invalidate::Hosts => "H".into(),
            Invalidate::Schemas => "S".into(),
            Invalidate::Memberships(ids) => format!("m:{}", ids.join(",")),
            Invalidate::AllMemberships => "M".into(),
            Invalidate::Roles => "R".into(),
            Invalidate::Session(id) => format!("s:{id}"),
            Invalidate::All => "*".into(),
            Invalidate::SamlConnection(id) => format!("c:{id}"),
            Invalidate::SpKeys => "k".into(),
            Invalidate::SigningKeys => "J".into(),
        })
        .collect();
    let payload = format!("{node}|{}|{}", tenant.as_str(), parts.join(";"));
    if payload.len() > MAX_PAYLOAD {
        format!("{node}|{}|*", tenant.as_str())
    } else {
        payload
    }
}

/// A decoded invalidation notification.
#[derive(Debug, PartialEq, Eq)]
pub struct Remote {
    pub node: String,
    pub nonce: u64,
    pub tenant: TenantId,
    pub items: Vec<Invalidate>,
}

/// The sender node, nonce, tenant and invalidations of a payload; `None` when it is not one.
pub fn decode(payload: &str) -> Option<Remote> {
    let mut it = payload.splitn(3, '|');
    let (sender, tenant, rest) = (it.next()?, it.next()?, it.next()?);
    let (node, nonce) = sender.split_once(':')?;
    let nonce: u64 = nonce.parse().ok()?;
    let mut items = Vec::new();
    for part in rest.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once(':').unwrap_or((part, ""));
        items.push(match k {
            "u" => Invalidate::User(v.to_owned()),
            "g" => Invalidate::Group(v.to_owned()),
            "t" => Invalidate::Token(v.to_owned()),
            "T" => Invalidate::Tenant,
            "H" => Invalidate::Hosts,
            "S" => Invalidate::Schemas,
            "m" => Invalidate::Memberships(v.split(',').map(str::to_owned).collect()),
            "M" => Invalidate::AllMemberships,
            "R" => Invalidate::Roles,
            "s" => Invalidate::Session(v.to_owned()),
            "c" => Invalidate::SamlConnection(v.to_owned()),
            "k" => Invalidate::SpKeys,
            "J" => Invalidate::SigningKeys,
            _ => Invalidate::All,
        });
    }
    Some(Remote {
        node: node.to_owned(),
        nonce,
        tenant: TenantId(tenant.to_owned()),
        items,
    })
}

struct Audit {
    action: &'static str,
    outcome: &'static str,
    target_type: &'static str,
    target_id: String,
    details: serde_json::Value,
}

impl Audit {
    /// Binds this record's own columns: id, action, target type, target id, details, outcome.
    fn bind_row<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
        let details = if self.details.is_null() {
            "{}".to_owned()
        } else {
            self.details.to_string()
        };
        q.bind(new_id())
            .bind(self.action)
            .bind(self.target_type)
            .bind(self.target_id.clone())
            .bind(details)
            .bind(self.outcome)
    }
}

struct ChangeEntry {
    resource_type: &'static str,
    resource_id: String,
    operation: &'static str,
    version: i64,
}

pub(super) struct WriteTx {
    pub(super) tx: Transaction<'static, Any>,
    store: Store,
    tenant_id: TenantId,
    actor: Actor,
    changes: Vec<ChangeEntry>,
    audits: Vec<Audit>,
    invalidations: Vec<Invalidate>,
    pub(super) now: i64,
    /// SQLite: this node's write turn (see `Store::writer`), held until commit or drop.
    writer: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(super) async fn begin(
        store: &Store,
        tenant_id: &TenantId,
        actor: &Actor,
    ) -> StoreResult<Self> {
        let writer = match store.backend() {
            super::dialect::Backend::Sqlite => Some(store.writer().lock_owned().await),
            super::dialect::Backend::Postgres => None,
        };
        let tx = store
            .pool()
            .begin_with(store.backend().begin_write())
            .await
            .map_err(StoreError::Db)?;
        Ok(Self {
            writer,
            tx,
            store: store.clone(),
            tenant_id: tenant_id.clone(),
            actor: actor.clone(),
            changes: Vec::new(),
            audits: Vec::new(),
            invalidations: Vec::new(),
            now: now_micros(),
        })
    }

    pub(super) fn backend(&self) -> super::dialect::Backend {
        self.store.backend()
    }

    pub(super) fn tid(&self) -> String {
        self.tenant_id.0.clone()
    }

    /// Records a change-log entry (and the matching audit record) for this write.
    pub(super) fn changed(
        &mut self,
        resource_type: &'static str,
        resource_id: &str,
        operation: &'static str,
        version: i64,
        action: &'static str,
    ) {
        self.changes.push(ChangeEntry {
            resource_type,
            resource_id: resource_id.to_owned(),
            operation,
            version,
        });
        self.audit(action, resource_type, resource_id, serde_json::Value::Null);
    }

    /// Records a change-log entry without an audit record (its cause is audited elsewhere).
    pub(super) fn changed_only(
        &mut self,
        resource_type: &'static str,
        resource_id: &str,
        operation: &'static str,
        version: i64,
    ) {
        self.changes.push(ChangeEntry {
            resource_type,
            resource_id: resource_id.to_owned(),
            operation,
            version,
        });
    }

    /// Records an audit entry without a change-log entry (e.g. a token issued).
    pub(super) fn audit(
        &mut self,
        action: &'static str,
        target_type: &'static str,
        target_id: &str,
        details: serde_json::Value,
    ) {
        self.audit_outcome(action, "success", target_type, target_id, details);
    }

    /// Records an audit entry with an explicit outcome (`success` or `failure`).
    pub(super) fn audit_outcome(
        &mut self,
        action: &'static str,
        outcome: &'static str,
        target_type: &'static str,
        target_id: &str,
        details: serde_json::Value,
    ) {
        self.audits.push(Audit {
            action,
            outcome,
            target_type,
            target_id: target_id.to_owned(),
            details,
        });
    }

    pub(super) fn invalidate(&mut self, what: Invalidate) {
        self.invalidations.push(what);
    }

    pub(super) async fn commit(mut self) -> StoreResult<()> {
        let tid = self.tid();
        let pg = self.store.backend() == super::dialect::Backend::Postgres;
        if pg && self.changes.len() == 1 && self.audits.len() == 1 {
            // The common write (one change, one audit record) in one round trip: sequence,
            // change-log row and audit row through data-modifying CTEs (PostgreSQL only;
            // SQLite runs in-process, where separate statements cost next to nothing).
            self.commit_one_pg(&tid).await?;
        } else {
            self.commit_general(&tid).await?;
        }
        let WriteTx {
            tx,
            store,
            tenant_id,
            invalidations,
            writer,
            ..
        } = self;
        tx.commit().await?;
        drop(writer);
        // PostgreSQL: the other nodes learn of the invalidations after the commit (see
        // `notifier`), and the write is answered once no other node serves what it changed.
        let ticket = announce_committed(&store, &tenant_id, &invalidations);
        invalidate_caches(&store, &tenant_id, invalidations).await;
        if let Some(t) = ticket {
            store.peers().wait(&t, store.pool()).await;
        }
        Ok(())
    }

    async fn commit_one_pg(&mut self, tid: &str) -> StoreResult<()> {
        let (Some(c), Some(a)) = (self.changes.first(), self.audits.first()) else {
            return Ok(());
        };
        let details = if a.details.is_null() {
            "{}".to_owned()
        } else {
            a.details.to_string()
        };
        let sql = "WITH c AS (INSERT INTO change_log (tenant_id, seq, occurred_at, resource_type, resource_id, operation, resource_version) VALUES ($1, nextval('change_log_seq'), $2, $3, $4, $5, $6) RETURNING seq) \
             INSERT INTO audit_events (id, tenant_id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details) \
             SELECT $7, $1, $2, $8, $9, $10, $11, $12, $17, $13, $14, $15, $16 FROM c";
        let q = sqlx::query(sql)
            .bind(tid)
            .bind(self.now)
            .bind(c.resource_type)
            .bind(&c.resource_id)
            .bind(c.operation)
            .bind(c.version)
            .bind(new_id())
            .bind(&self.actor.actor_type)
            .bind(&self.actor.actor_id)
            .bind(a.action)
            .bind(a.target_type)
            .bind(&a.target_id)
            .bind(&self.actor.ip)
            .bind(&self.actor.user_agent)
            .bind(&self.actor.request_id)
            .bind(details)
            .bind(a.outcome);
        let done = q.execute(&mut *self.tx).await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// SQLite: the sequence bump, change-log rows and audit rows as one multi-statement
    /// script — one hop to the connection's thread instead of three (statements run
    /// in-process; the hops between threads are what a write pays for). Numbers as in
    /// [`WriteTx::commit_general`]: the tenant's counter, bumped under the write lock.
    async fn commit_script_sqlite(&mut self, tid: &str) -> StoreResult<()> {
        use std::fmt::Write as _;
        let n = self.changes.len();
        let mut sql = String::new();
        let mut next = 8; // $1 tenant, $2 now, $3..$7 the actor
        if n > 0 {
            let _ = write!(
                sql,
                "UPDATE tenants SET change_seq = change_seq + {n} WHERE id = $1; INSERT INTO change_log (tenant_id, seq, occurred_at, resource_type, resource_id, operation, resource_version) VALUES "
            );
            for k in 0..n {
                let back = n - 1 - k;
                let _ = write!(
                    sql,
                    "{}($1, (SELECT change_seq FROM tenants WHERE id = $1) - {back}, $2, ${}, ${}, ${}, ${})",
                    if k == 0 { "" } else { ", " },
                    next,
                    next + 1,
                    next + 2,
                    next + 3
                );
                next += 4;
            }
            sql.push_str("; ");
        }
        if !self.audits.is_empty() {
            sql.push_str("INSERT INTO audit_events (id, tenant_id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details) VALUES ");
            for k in 0..self.audits.len() {
                let _ = write!(
                    sql,
                    "{}(${}, $1, $2, $3, $4, ${}, ${}, ${}, ${}, $5, $6, $7, ${})",
                    if k == 0 { "" } else { ", " },
                    next,
                    next + 1,
                    next + 2,
                    next + 3,
                    next + 5,
                    next + 4
                );
                next += 6;
            }
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tid.to_owned())
            .bind(self.now)
            .bind(self.actor.actor_type.clone())
            .bind(self.actor.actor_id.clone())
            .bind(self.actor.ip.clone())
            .bind(self.actor.user_agent.clone())
            .bind(self.actor.request_id.clone());
        for c in &self.changes {
            q = q
                .bind(c.resource_type)
                .bind(c.resource_id.clone())
                .bind(c.operation)
                .bind(c.version);
        }
        for a in &self.audits {
            q = a.bind_row(q);
        }
        let done = q.execute(&mut *self.tx).await?;
        // The counter row, every change-log row and every audit row: fewer means the tenant
        // is gone (its counter row did not match).
        let expected = u64::from(n > 0) + (n + self.audits.len()) as u64;
        if done.rows_affected() < expected {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn commit_general(&mut self, tid: &str) -> StoreResult<()> {
        if self.store.backend() == super::dialect::Backend::Sqlite
            && self.changes.len() <= ROWS_PER_INSERT
            && self.audits.len() <= ROWS_PER_INSERT
            && !(self.changes.is_empty() && self.audits.is_empty())
        {
            return self.commit_script_sqlite(tid).await;
        }
        let tid = tid.to_owned();
        if !self.changes.is_empty() {
            let n = i64::try_from(self.changes.len()).unwrap_or(i64::MAX);
            // Sequence numbers: see migrations/*/20261123000003_change_seq.sql.
            let seqs: Vec<i64> = match self.store.backend() {
                super::dialect::Backend::Sqlite => {
                    let last: i64 = sqlx::query_scalar(
                        "UPDATE tenants SET change_seq = change_seq + $2 WHERE id = $1 RETURNING change_seq",
                    )
                    .bind(&tid)
                    .bind(n)
                    .fetch_optional(&mut *self.tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                    (last - n + 1..=last).collect()
                }
                super::dialect::Backend::Postgres => {
                    sqlx::query_scalar(
                        "SELECT nextval('change_log_seq') FROM generate_series(1, $1)",
                    )
                    .bind(n)
                    .fetch_all(&mut *self.tx)
                    .await?
                }
            };
            let rows: Vec<(&ChangeEntry, i64)> = self.changes.iter().zip(seqs).collect();
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| {
                        let b = 3 + i * 5;
                        format!(
                            "($1, ${b}, $2, ${}, ${}, ${}, ${})",
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4
                        )
                    })
                    .collect();
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO change_log (tenant_id, seq, occurred_at, resource_type, resource_id, operation, resource_version) VALUES {}",
                    values.join(", ")
                )))
                .bind(tid.clone())
                .bind(self.now);
                for (c, seq) in chunk {
                    q = q
                        .bind(*seq)
                        .bind(c.resource_type)
                        .bind(c.resource_id.clone())
                        .bind(c.operation)
                        .bind(c.version);
                }
                q.execute(&mut *self.tx).await?;
            }
        }
        for chunk in self.audits.chunks(ROWS_PER_INSERT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = 8 + i * 6;
                    format!(
                        "(${b}, $1, $2, $3, $4, ${}, ${}, ${}, ${}, $5, $6, $7, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 5,
                        b + 4
                    )
                })
                .collect();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO audit_events (id, tenant_id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details) VALUES {}",
                values.join(", ")
            )))
            .bind(tid.clone())
            .bind(self.now)
            .bind(self.actor.actor_type.clone())
            .bind(self.actor.actor_id.clone())
            .bind(self.actor.ip.clone())
            .bind(self.actor.user_agent.clone())
            .bind(self.actor.request_id.clone());
            for a in chunk {
                q = a.bind_row(q);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}

/// A write of one row in one round trip (see [`write_row`]): the statement and what it
/// records for the row it returns — one change-log entry and its audit record.
pub(super) struct RowChange<'a> {
    /// One data-modifying statement, binds `$1..=$main_binds`, returning the changed row.
    pub main: &'a str,
    pub main_binds: usize,
    /// The write's time (microseconds), as bound into `main`.
    pub now: i64,
    /// The cache entries the write changes.
    pub invalidations: Vec<Invalidate>,
    pub resource_type: &'static str,
    pub operation: &'static str,
    pub action: &'static str,
    /// The table `main` writes (`users`), and the id of the row it writes: where SQLite's
    /// script reads the new version back from (PostgreSQL takes both from `RETURNING`).
    pub table: &'static str,
    pub id: &'a str,
}

/// PostgreSQL: a write of one row as ONE autocommit statement — one round trip instead of
/// `BEGIN`, the statement, the change-log/audit statement and `COMMIT`.
///
/// `main` is one data-modifying statement whose binds are `$1..=$main_binds` (bound by
/// `bind`) and which returns the changed row, with its `id` and `version`. It becomes the
/// first CTE of a statement that also appends the change-log entry and audit record, each
/// *from the returned row*: a statement is atomic and all its CTEs commit together, so when
/// `main` changes nothing (a taken userName, a stale version), nothing is logged or
/// announced and `None` comes back for the caller's general path to explain. After the
/// commit: announced to the other nodes, local caches dropped, peers awaited, as
/// [`WriteTx::commit`] does.
pub(super) async fn write_row_pg(
    store: &Store,
    tenant_id: &TenantId,
    actor: &Actor,
    change: RowChange<'_>,
    bind: impl FnOnce(Query<'static, Any, AnyArguments>) -> Query<'static, Any, AnyArguments>,
) -> StoreResult<Option<sqlx::any::AnyRow>> {
    let (now, main, main_binds) = (change.now, change.main, change.main_binds);
    let p = |i: usize| format!("${}", main_binds + i);
    let sql = format!(
        "WITH r AS ({main}), \
         c AS (INSERT INTO change_log (tenant_id, seq, occurred_at, resource_type, resource_id, operation, resource_version) SELECT {t}, nextval('change_log_seq'), {now}, {rt}, r.id, {op}, r.version FROM r RETURNING seq), \
         a AS (INSERT INTO audit_events (id, tenant_id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details) SELECT {aid}, {t}, {now}, {aty}, {aact}, {action}, {rt}, r.id, 'success', {ip}, {ua}, {rid}, '{{}}' FROM r, c) \
         SELECT r.* FROM r",
        t = p(1),
        now = p(2),
        rt = p(3),
        op = p(4),
        aid = p(5),
        aty = p(6),
        aact = p(7),
        action = p(8),
        ip = p(9),
        ua = p(10),
        rid = p(11),
    );
    let q = bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .bind(tenant_id.as_str().to_owned())
        .bind(now)
        .bind(change.resource_type)
        .bind(change.operation)
        .bind(new_id())
        .bind(actor.actor_type.clone())
        .bind(actor.actor_id.clone())
        .bind(change.action)
        .bind(actor.ip.clone())
        .bind(actor.user_agent.clone())
        .bind(actor.request_id.clone());
    // On a connection lent as for reads (see `readers`: no ping when it is handed back); one
    // statement, so nothing is left open if the request is abandoned part-way.
    let Some(row) = store.readers().fetch_optional(q).await? else {
        return Ok(None);
    };
    let ticket = announce_committed(store, tenant_id, &change.invalidations);
    invalidate_caches(store, tenant_id, change.invalidations).await;
    if let Some(t) = ticket {
        store.peers().wait(&t, store.pool()).await;
    }
    Ok(Some(row))
}

/// A write of one row in one round trip on either backend: [`write_row_pg`] or
/// [`write_row_sqlite`]. `None` when `main` changed nothing (a taken userName, a stale
/// version, a missing row): the caller's general path finds out which.
pub(super) async fn write_row(
    store: &Store,
    tenant_id: &TenantId,
    actor: &Actor,
    change: RowChange<'_>,
    bind: impl FnOnce(Query<'static, Any, AnyArguments>) -> Query<'static, Any, AnyArguments>,
) -> StoreResult<Option<sqlx::any::AnyRow>> {
    match store.backend() {
        super::dialect::Backend::Postgres => {
            write_row_pg(store, tenant_id, actor, change, bind).await
        }
        super::dialect::Backend::Sqlite => {
            write_row_sqlite(store, tenant_id, actor, change, bind).await
        }
    }
}

/// SQLite: a write of one row as ONE script on one connection — `BEGIN IMMEDIATE`, `main`,
/// the tenant's change counter, the change-log row, the audit row, `COMMIT` — one hop to
/// the connection's thread instead of four. Every hop is a wake-up of that thread and of
/// the waiting task, paid while holding the database's single write lock, so hops, not
/// statements, bound how many writes a second SQLite takes.
///
/// `main` changes at most one row. Each following statement runs only when the one before
/// it changed exactly one row (`changes() = 1`, SQLite's count for the last completed
/// statement), so when `main` changes nothing, nothing is logged and `None` comes back.
/// The tenant row exists whenever `main` changed a row of it (`tenant_id` is a foreign key
/// with `ON DELETE CASCADE`, checked inside the same transaction), so the chain cannot
/// stop half-way. A statement that fails leaves the transaction open: it is rolled back on
/// the same connection before the connection is lent again, and a connection that cannot
/// roll back is closed instead. The script runs in its own task, so a client that
/// disconnects mid-request cannot cancel it between `BEGIN` and `COMMIT`.
pub(super) async fn write_row_sqlite(
    store: &Store,
    tenant_id: &TenantId,
    actor: &Actor,
    change: RowChange<'_>,
    bind: impl FnOnce(Query<'static, Any, AnyArguments>) -> Query<'static, Any, AnyArguments>,
) -> StoreResult<Option<sqlx::any::AnyRow>> {
    let (now, main, main_binds) = (change.now, change.main, change.main_binds);
    let p = |i: usize| format!("${}", main_binds + i);
    let sql = format!(
        "BEGIN IMMEDIATE; {main}; \
         UPDATE tenants SET change_seq = change_seq + 1 WHERE id = {t} AND changes() = 1; \
         INSERT INTO change_log (tenant_id, seq, occurred_at, resource_type, resource_id, operation, resource_version) SELECT {t}, change_seq, {now}, {rt}, {rid}, {op}, (SELECT version FROM {table} WHERE tenant_id = {t} AND id = {rid}) FROM tenants WHERE id = {t} AND changes() = 1; \
         INSERT INTO audit_events (id, tenant_id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details) SELECT {aid}, {t}, {now}, {aty}, {aact}, {action}, {rt}, {rid}, 'success', {ip}, {ua}, {req}, '{{}}' WHERE changes() = 1; \
         COMMIT",
        table = change.table,
        t = p(1),
        now = p(2),
        rt = p(3),
        op = p(4),
        rid = p(5),
        aid = p(6),
        aty = p(7),
        aact = p(8),
        action = p(9),
        ip = p(10),
        ua = p(11),
        req = p(12),
    );
    let q = bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .bind(tenant_id.as_str().to_owned())
        .bind(now)
        .bind(change.resource_type)
        .bind(change.operation)
        .bind(change.id.to_owned())
        .bind(new_id())
        .bind(actor.actor_type.clone())
        .bind(actor.actor_id.clone())
        .bind(change.action)
        .bind(actor.ip.clone())
        .bind(actor.user_agent.clone())
        .bind(actor.request_id.clone());
    let owned = store.clone();
    let run = tokio::spawn(async move {
        let _turn = owned.writer().lock_owned().await;
        // A connection lent as for reads (see `readers`): handed back only once the script
        // (or its rollback) has completed, without the pool's ping on return.
        let mut reader = owned.readers().get().await?;
        let conn = reader.conn()?;
        match q.fetch_all(&mut *conn).await {
            Ok(rows) => {
                reader.done();
                Ok(rows.into_iter().next())
            }
            Err(e) => {
                match conn.execute("ROLLBACK").await {
                    Ok(_) => reader.done(),
                    Err(r) if r.to_string().contains("no transaction is active") => reader.done(),
                    // Still inside the transaction: never hand it to another request (the
                    // reader closes it when dropped).
                    Err(r) => {
                        tracing::error!(error = %r, "rollback after a failed write failed; closing the connection")
                    }
                }
                Err(StoreError::from(e))
            }
        }
    });
    let row = run
        .await
        .map_err(|e| StoreError::Db(sqlx::Error::Protocol(format!("write task: {e}"))))??;
    if row.is_some() {
        invalidate_caches(store, tenant_id, change.invalidations).await;
    }
    Ok(row)
}

/// Announces `items` to the other nodes (PostgreSQL; `None` on SQLite or when there is
/// nothing to announce). Call after the commit, then drop the items locally and pass the
/// ticket to [`Peers::wait`](super::peers::Peers::wait). The notification goes out in this
/// node's next batch (see `notifier`): registered first, so no acknowledgement can arrive
/// unseen.
pub(super) fn announce_committed(
    store: &Store,
    tenant_id: &TenantId,
    items: &[Invalidate],
) -> Option<super::peers::Ticket> {
    if store.backend() != super::dialect::Backend::Postgres || items.is_empty() {
        return None;
    }
    let ticket = store.peers().register();
    store.notify(
        CHANNEL,
        encode(store.node_id(), ticket.nonce, tenant_id, items),
    );
    Some(ticket)
}

/// Drops every cache entry a committed write touched (also what another node's committed
/// write announced, see `cluster`).
pub(super) async fn invalidate_caches(
    store: &Store,
    tenant_id: &TenantId,
    invalidations: Vec<Invalidate>,
) {
    {
        let caches = store.caches();
        for inv in invalidations {
            match inv {
                Invalidate::User(id) => {
                    let key = (tenant_id.clone(), id);
                    caches.permissions.invalidate(&key).await;
                    caches.users.invalidate(&key).await;
                }
                Invalidate::Group(id) => {
                    caches.groups.invalidate(&(tenant_id.clone(), id)).await;
                }
                Invalidate::Token(hash) => caches.tokens.invalidate(&hash).await,
                Invalidate::Tenant => caches.tenants.invalidate(tenant_id).await,
                Invalidate::Hosts => caches.hosts.invalidate_all().await,
                Invalidate::Schemas => caches.scim_schemas.invalidate(tenant_id).await,
                Invalidate::Memberships(ids) => {
                    // Roles held through groups follow memberships (nested too).
                    caches.permissions.invalidate_all().await;
                    for id in ids {
                        caches
                            .memberships
                            .invalidate(&(tenant_id.clone(), id))
                            .await;
                    }
                }
                Invalidate::AllMemberships => {
                    caches.nested.invalidate(tenant_id).await;
                    caches.memberships.invalidate_all().await;
                    caches.permissions.invalidate_all().await;
                }
                Invalidate::Roles => {
                    caches.operators.invalidate(tenant_id).await;
                    caches.permissions.invalidate_all().await;
                }
                Invalidate::Session(id) => caches.sessions.invalidate(&id).await,
                Invalidate::All => caches.flush().await,
                // Cached by the SSO layer, which drops its own entries (and, for other nodes,
                // `cluster` does).
                Invalidate::SamlConnection(_) | Invalidate::SpKeys | Invalidate::SigningKeys => {}
            }
        }
    }
}

/// Appends one audit row (inside a write, or alone for outcomes that change nothing).
#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_audit(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    actor: &Actor,
    action: &str,
    outcome: &str,
    target: Option<(&str, &str)>,
    details: &serde_json::Value,
    now: i64,
) -> StoreResult<()> {
    let details = if details.is_null() {
        "{}".to_owned()
    } else {
        details.to_string()
    };
    sqlx::query(
        "INSERT INTO audit_events (id, tenant_id, occurred_at, actor_type, actor_id, action, target_type, target_id, outcome, ip, user_agent, request_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(now)
    .bind(&actor.actor_type)
    .bind(&actor.actor_id)
    .bind(action)
    .bind(target.map(|t| t.0.to_owned()))
    .bind(target.map(|t| t.1.to_owned()))
    .bind(outcome)
    .bind(&actor.ip)
    .bind(&actor.user_agent)
    .bind(&actor.request_id)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_round_trip() {
        let items = vec![
            Invalidate::User("u1".into()),
            Invalidate::Memberships(vec!["a".into(), "b".into()]),
            Invalidate::Token("ff".into()),
            Invalidate::SigningKeys,
            Invalidate::All,
        ];
        let t = TenantId("t1".into());
        let r = decode(&encode("n1", 42, &t, &items)).unwrap();
        assert_eq!(
            r,
            Remote {
                node: "n1".into(),
                nonce: 42,
                tenant: t.clone(),
                items
            }
        );
        // Oversized lists degrade to "everything", never to a lost invalidation.
        let many = vec![Invalidate::User("x".repeat(100)); 100];
        let r = decode(&encode("n1", 1, &t, &many)).unwrap();
        assert_eq!(r.items, vec![Invalidate::All]);
        assert!(decode("garbage").is_none());
        assert!(
            decode("n1|t1|u:1").is_none(),
            "a payload without a nonce is not ours"
        );
    }
}
