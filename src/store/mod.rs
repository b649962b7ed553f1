//! The tenant-scoped data layer: the only module that speaks SQL.
//!
//! [`Store`] holds the pool, the backend and the caches, and answers the few questions that
//! come before a tenant is known (resolve a hostname, authenticate a token, manage tenants).
//! Everything else goes through a [`TenantStore`], a handle bound to one tenant: every query it
//! runs binds that tenant, and none of its methods takes a tenant argument a caller could get
//! wrong.

mod audit;
mod auth_data;
pub mod dialect;
mod error;
mod groups;
mod mfa;
pub mod notifier;
pub mod oauth;
pub mod peers;
mod readers;
mod rows;
pub mod saml;
mod scim_data;
pub mod scim_sql;
mod sqlite_reads;
mod tenants;
mod tokens;
mod users;
mod webhooks;
pub mod write;

pub use audit::{AuditQuery, Dashboard, EventCursor};
pub use auth_data::{LoginFacts, Refreshed, Role, Session, SigningKeyRow};
pub use error::{StoreError, StoreResult};
pub use mfa::TotpRecord;
pub use scim_data::{Found, Search};
pub use tenants::TenantUpdate;
pub use tokens::{IssuedToken, TokenAuth, hash_token};
pub use webhooks::{
    Attempt, AttemptOutcome, Delivery, DueDelivery, RETRY_FOR_MICROS, Webhook, WebhookUpdate,
    backoff_micros,
};

use crate::cache::{CacheConfig, Caches};
use crate::metrics::Metrics;
use crate::model::TenantId;
use dialect::Backend;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use std::sync::Arc;
use std::time::Duration;

/// How long a pooled connection may sit idle before it is pinged when next handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// How to open the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub cache: CacheConfig,
    /// Fault injection (tests; zero otherwise): how long this node holds each batch of
    /// cross-node notifications before sending it (see `notifier`).
    pub notify_hold: Duration,
}

/// The shared store of one idhub node. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    /// Connections for the one-statement reads of the request path (see `readers`).
    readers: readers::Readers,
    /// SQLite: point reads on the request thread (see `sqlite_reads`).
    sqlite_reads: Option<sqlite_reads::SqliteReads>,
    backend: Backend,
    caches: Caches,
    max_connections: u32,
    /// SQLite has one writer at a time. Write transactions of this process queue here instead
    /// of in SQLite's busy handler, which sleeps in steps of up to 100 ms between retries.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// The default tenant (operators live there), set once at start.
    default_tenant: std::sync::OnceLock<TenantId>,
    /// Token uses since the last summary (see `Store::flush_token_usage`).
    token_usage: std::sync::Mutex<std::collections::HashMap<String, tokens::TokenUsage>>,
    /// This process's identity in cache-invalidation notifications.
    node_id: String,
    /// The other nodes on this database and the acknowledgements awaited from them.
    peers: Arc<peers::Peers>,
    /// Outgoing cross-node notifications (PostgreSQL).
    notifier: Option<notifier::Notifier>,
}

impl Store {
    /// Opens a pool on `url` (`sqlite://path` or `postgres://…`), creating an SQLite file and
    /// its directory when missing. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, opts: &StoreOptions, metrics: &Metrics) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or_else(|| {
            StoreError::Db(sqlx::Error::Configuration(
                "database_url must start with sqlite:// or postgres://".into(),
            ))
        })?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(opts.acquire_timeout)
            // sqlx pings every connection it hands out by default: a second round trip per
            // statement. A connection busy a moment ago is alive; only one that sat idle
            // for a while (a restarted server, a dropped NAT entry) is checked first. A
            // connection that died in between fails its statement, which is answered as a
            // transient error (503, `StoreError::is_transient`).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    for stmt in backend.connection_setup() {
                        conn.execute(*stmt).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(StoreError::Db)?;
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        let notifier = match backend {
            Backend::Postgres => {
                let pg = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&url)
                    .map_err(StoreError::Db)?
                    .application_name("idhub-notify");
                Some(notifier::Notifier::spawn(pg, opts.notify_hold))
            }
            Backend::Sqlite => None,
        };
        let sqlite_reads = match backend {
            Backend::Sqlite => {
                let o = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
                    .map_err(StoreError::Db)?;
                let outcome = |name: &str| metrics.sqlite_reads.with_label_values(&[name]);
                Some(sqlite_reads::SqliteReads::new(
                    o.get_filename().to_path_buf(),
                    sqlite_reads::Outcomes {
                        served: outcome("served"),
                        over_budget: outcome("over_budget"),
                        failed: outcome("failed"),
                    },
                ))
            }
            Backend::Postgres => None,
        };
        let caches = Caches::new(opts.cache, metrics);
        if backend == Backend::Postgres {
            // Other nodes may write to this database: caches stay off until `cluster` has
            // joined, i.e. until every write elsewhere waits for this node's acknowledgement.
            caches.set_enabled(false).await;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                // PostgreSQL: as many as the pool. The one-row user writes run here too, and
                // with half as many, 32 concurrent `POST /Users` queued for 8 connections —
                // PostgreSQL committed fewer at a time, and creates ran at 45-49% of the raw
                // insert against 53-54% with 16 (BENCHMARKS.md, ninth session). SQLite: half
                // the pool. Its writes take turns anyway, and each connection holds its own
                // page cache: 16 put the server's RSS after the 100,000-user run at 204 MiB,
                // against 179 MiB with 8.
                readers: readers::Readers::new(
                    pool.clone(),
                    backend.connection_setup(),
                    usize::try_from(match backend {
                        Backend::Postgres => opts.max_connections,
                        Backend::Sqlite => opts.max_connections / 2,
                    })
                    .unwrap_or(1),
                ),
                pool,
                sqlite_reads,
                backend,
                caches,
                max_connections: opts.max_connections,
                writer: Arc::new(tokio::sync::Mutex::new(())),
                default_tenant: std::sync::OnceLock::new(),
                token_usage: std::sync::Mutex::new(std::collections::HashMap::new()),
                peers: peers::Peers::new(&node_id),
                node_id,
                notifier,
            }),
        })
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        self.inner
            .backend
            .migrator()
            .run(&self.inner.pool)
            .await
            .map_err(StoreError::from)
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::Db)
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// (open connections, idle connections, maximum).
    pub fn pool_state(&self) -> (u32, usize, u32) {
        (
            self.inner.pool.size(),
            self.inner.pool.num_idle(),
            self.inner.max_connections,
        )
    }

    pub fn caches(&self) -> &Caches {
        &self.inner.caches
    }

    /// This process's identity among the nodes sharing the database.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Tells the other nodes (PostgreSQL) to drop what `items` names and waits until they
    /// have, like a write's own invalidations; for state that is not written through a
    /// tenant's [`write::WriteTx`] (the global signing keys). Call after the commit.
    pub async fn announce(&self, items: &[write::Invalidate]) -> StoreResult<()> {
        let tenant = self
            .inner
            .default_tenant
            .get()
            .cloned()
            .unwrap_or_else(|| TenantId(String::new()));
        if let Some(t) = write::announce_committed(self, &tenant, items) {
            self.peers().wait(&t, self.pool()).await;
        }
        Ok(())
    }

    /// Queues a cross-node notification (PostgreSQL; nothing on SQLite), sent after
    /// everything queued before it (see `notifier`).
    pub(crate) fn notify(&self, channel: &'static str, payload: String) {
        if let Some(n) = &self.inner.notifier {
            n.send(channel, payload);
        }
    }

    /// Waits (at most `within`) until every notification queued so far has been sent.
    pub async fn flush_notifications(&self, within: Duration) -> bool {
        match &self.inner.notifier {
            Some(n) => n.flush(within).await,
            None => true,
        }
    }

    /// The other nodes on this database (PostgreSQL; see `peers`).
    pub fn peers(&self) -> &Arc<peers::Peers> {
        &self.inner.peers
    }

    /// Applies invalidations another node committed (a NOTIFY payload); returns them so the
    /// caller can drop what it caches itself (SSO) and acknowledge them, or `None` for this
    /// node's own payloads and unreadable ones.
    pub async fn apply_remote_invalidation(&self, payload: &str) -> Option<write::Remote> {
        let remote = write::decode(payload)?;
        if remote.node == self.inner.node_id {
            return None;
        }
        write::invalidate_caches(self, &remote.tenant, remote.items.clone()).await;
        Some(remote)
    }

    /// Records which tenant is the default one (once; later calls are ignored).
    pub fn set_default_tenant(&self, id: TenantId) {
        let _ = self.inner.default_tenant.set(id);
    }

    /// Whether `id` is the default tenant, where operators live.
    pub fn is_default_tenant(&self, id: &TenantId) -> bool {
        self.inner.default_tenant.get() == Some(id)
    }

    pub(crate) fn token_usage(
        &self,
    ) -> &std::sync::Mutex<std::collections::HashMap<String, tokens::TokenUsage>> {
        &self.inner.token_usage
    }

    pub(crate) fn writer(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.writer.clone()
    }

    /// This node's turn to write (SQLite: one writer at a time, queued here rather than in
    /// SQLite's sleeping busy handler; PostgreSQL: no turn needed). Hold it until the write
    /// commits.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend() {
            dialect::Backend::Sqlite => Some(self.writer().lock_owned().await),
            dialect::Backend::Postgres => None,
        }
    }

    /// A handle bound to one tenant. Tenant ids only come from the store itself (host
    /// resolution, token authentication, tenant lookup), never from a request parameter.
    pub fn tenant(&self, tenant_id: TenantId) -> TenantStore {
        TenantStore {
            store: self.clone(),
            tenant_id,
        }
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// Connections for one-statement reads (see `readers`).
    pub(crate) fn readers(&self) -> &readers::Readers {
        &self.inner.readers
    }

    /// Whether [`Store::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.pool.is_closed()
    }

    /// Sends what is still queued for the other nodes, then closes the pool, waiting for
    /// connections to be returned.
    pub async fn close(&self) {
        if !self.flush_notifications(Duration::from_secs(5)).await {
            tracing::warn!("cluster: notifications still queued at close were not sent");
        }
        if let Some(r) = &self.inner.sqlite_reads {
            r.close();
        }
        self.inner.readers.close().await;
        self.inner.pool.close().await;
    }
}

/// The store as seen by one tenant. Every method binds `tenant_id`.
#[derive(Clone)]
pub struct TenantStore {
    store: Store,
    tenant_id: TenantId,
}

impl TenantStore {
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }

    fn pool(&self) -> &AnyPool {
        self.store.pool()
    }

    fn caches(&self) -> &Caches {
        self.store.caches()
    }

    fn tid(&self) -> String {
        self.tenant_id.0.clone()
    }

    /// The row `sql` selects by this tenant (`$1`) and an id (`$2`): on SQLite on this thread
    /// (see `sqlite_reads`), otherwise (or when that path cannot serve it) on a reader
    /// connection.
    async fn row_by_id(&self, sql: String, id: &str) -> StoreResult<Option<rows::DbRow>> {
        if let Some(native) = self.sqlite_reads() {
            let params = [
                rusqlite::types::Value::Text(self.tid()),
                rusqlite::types::Value::Text(id.to_owned()),
            ];
            if let Some(mut found) = native.query(&sql, &params) {
                return Ok(found.pop().map(rows::DbRow::Native));
            }
        }
        let row = self
            .store
            .readers()
            .fetch_optional(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(self.tid())
                    .bind(id.to_owned()),
            )
            .await?;
        Ok(row.map(rows::DbRow::Sqlx))
    }

    /// SQLite's request-thread reads, when this store has them.
    fn sqlite_reads(&self) -> Option<&sqlite_reads::SqliteReads> {
        self.store.inner.sqlite_reads.as_ref()
    }
}

/// Adds `mode=rwc` (create when missing) and creates the parent directory of the file.
fn prepare_sqlite_url(url: &str) -> StoreResult<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Db(sqlx::Error::Configuration(
            "sqlite database_url must name a file, e.g. sqlite://data/idhub.db".into(),
        )));
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
    }
    Ok(if rest.contains('?') {
        format!("sqlite://{rest}")
    } else {
        format!("sqlite://{rest}?mode=rwc")
    })
}

/// A new time-ordered identifier (UUIDv7): index-friendly on both backends.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new identifier for a record whose id is needed before it is stored.
pub fn new_public_id() -> String {
    new_id()
}
