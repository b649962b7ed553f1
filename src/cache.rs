//! The moka caches in front of hot reads.
//!
//! Every key carries the tenant (or is a globally unique secret hash), every cache is bounded
//! in entries and time-to-live, and every store write that touches an entry invalidates it
//! after commit.
//!
//! Stale reads on one node are prevented by an invalidation epoch per cache and a gate: a
//! loader notes the epoch before it reads the database and inserts what it read only if no
//! invalidation happened meanwhile, checking and inserting under the gate's shared side; an
//! invalidation bumps the epoch and removes the entry under the gate's exclusive side. So an
//! invalidation either comes before the check (the stale value is never inserted) or after the
//! insert (and removes it) — a value read before a commit is gone by the time the writer
//! returns, never merely "soon" (an earlier version re-checked the epoch after inserting,
//! which left a window in which a reader could see the stale value).

use crate::metrics::Metrics;
use crate::model::{Group, Membership, StoredSchema, Tenant, TenantId, User};
use crate::store::TokenAuth;
use moka::future::Cache;
use prometheus::IntCounter;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One bounded cache with hit/miss counters and an invalidation epoch.
pub struct Slot<K, V> {
    cache: Cache<K, V>,
    /// Shared by every slot of one [`Caches`]: while false nothing is served or kept.
    enabled: Arc<AtomicBool>,
    epoch: AtomicU64,
    gate: tokio::sync::RwLock<()>,
    hits: IntCounter,
    misses: IntCounter,
}

impl<K, V> Slot<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(
        name: &str,
        max_entries: u64,
        ttl: Duration,
        enabled: &Arc<AtomicBool>,
        metrics: &Metrics,
    ) -> Self {
        Self {
            enabled: enabled.clone(),
            cache: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
            epoch: AtomicU64::new(0),
            gate: tokio::sync::RwLock::new(()),
            hits: metrics.cache_lookups.with_label_values(&[name, "hit"]),
            misses: metrics.cache_lookups.with_label_values(&[name, "miss"]),
        }
    }

    /// A cache bounded by the estimated bytes of its values rather than their count.
    fn weighted(
        name: &str,
        max_bytes: u64,
        ttl: Duration,
        weigh: fn(&V) -> u32,
        enabled: &Arc<AtomicBool>,
        metrics: &Metrics,
    ) -> Self {
        Self {
            enabled: enabled.clone(),
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |_k: &K, v: &V| weigh(v))
                .time_to_live(ttl)
                .build(),
            epoch: AtomicU64::new(0),
            gate: tokio::sync::RwLock::new(()),
            hits: metrics.cache_lookups.with_label_values(&[name, "hit"]),
            misses: metrics.cache_lookups.with_label_values(&[name, "miss"]),
        }
    }

    /// The cached value, counting a hit or a miss.
    pub async fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.enabled.load(Ordering::SeqCst) {
            self.misses.inc();
            return None;
        }
        let v = self.cache.get(key).await;
        if v.is_some() {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
        v
    }

    /// The epoch to pass to [`Slot::insert_if_fresh`]; read it *before* loading from the store.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches a value loaded at `epoch`, unless an invalidation has happened since.
    pub async fn insert_if_fresh(&self, key: K, value: V, epoch: u64)
    where
        K: Clone,
    {
        let _shared = self.gate.read().await;
        if self.epoch.load(Ordering::SeqCst) != epoch || !self.enabled.load(Ordering::SeqCst) {
            return;
        }
        self.cache.insert(key, value).await;
    }

    pub async fn invalidate<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let _exclusive = self.gate.write().await;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(key).await;
    }

    pub async fn invalidate_all(&self) {
        let _exclusive = self.gate.write().await;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// Sizing of the caches (from configuration).
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    pub max_entries: u64,
    pub ttl: Duration,
    /// Memory budget of the user and group caches, in bytes (estimated from document size).
    pub budget_bytes: u64,
}

/// Estimated resident size of a cached membership list: the entry (key strings, moka's
/// per-entry bookkeeping, the vector), and per group its strings. Most lists are empty, so
/// the fixed part decides how many fit: it is counted in full, or the budget would hold
/// several times its size in entries.
fn membership_weight(m: &Arc<Vec<Membership>>) -> u32 {
    let per: usize = m
        .iter()
        .map(|(id, name, _)| id.len() + name.len() + 64)
        .sum();
    u32::try_from(per + 400).unwrap_or(u32::MAX)
}

/// Estimated resident size of a cached document: its JSON text, times the overhead of a
/// parsed `serde_json::Value`, plus the row's fixed fields.
fn doc_weight(v: &serde_json::Value) -> u32 {
    let text = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(1024);
    u32::try_from(text.saturating_mul(4).saturating_add(512)).unwrap_or(u32::MAX)
}

/// A user's effective roles and the permissions they grant.
pub type Held = (Vec<String>, crate::auth::rbac::PermSet);

/// The per-node caches. Cross-node invalidation builds on the change log (see README).
pub struct Caches {
    /// SHA-256 of a bearer token → the principal it authenticates.
    pub tokens: Slot<String, Arc<TokenAuth>>,
    /// Hostname → tenant (negative answers cached too; any hostname change clears it).
    pub hosts: Slot<String, Option<TenantId>>,
    /// Tenant id → tenant.
    pub tenants: Slot<TenantId, Arc<Tenant>>,
    /// (tenant, user id) → user.
    pub users: Slot<(TenantId, String), Arc<User>>,
    /// (tenant, group id) → group.
    pub groups: Slot<(TenantId, String), Arc<Group>>,
    /// (tenant, user or group id) → the groups it belongs to: (group id, display name, direct).
    pub memberships: Slot<(TenantId, String), Arc<Vec<Membership>>>,
    /// Tenant → ids of its users holding the superadmin role (hidden from SCIM).
    pub operators: Slot<TenantId, Arc<std::collections::HashSet<String>>>,
    /// Tenant → whether any group of it has a group as a member (see
    /// `TenantStore::nests_groups`).
    pub nested: Slot<TenantId, bool>,
    /// Tenant → its SCIM extension schemas (resource type, required, definition).
    pub scim_schemas: Slot<TenantId, Arc<Vec<StoredSchema>>>,
    /// Session id → session (revocation invalidates).
    pub sessions: Slot<String, Arc<crate::store::Session>>,
    /// (tenant, user id) → (effective roles, permissions).
    pub permissions: Slot<(TenantId, String), Arc<Held>>,
    /// Whether the caches may be used (see [`Caches::set_enabled`]).
    enabled: Arc<AtomicBool>,
}

impl Caches {
    /// Drops everything (a node that may have missed invalidations, a deleted tenant).
    pub async fn flush(&self) {
        self.tokens.invalidate_all().await;
        self.hosts.invalidate_all().await;
        self.tenants.invalidate_all().await;
        self.users.invalidate_all().await;
        self.groups.invalidate_all().await;
        self.memberships.invalidate_all().await;
        self.operators.invalidate_all().await;
        self.nested.invalidate_all().await;
        self.scim_schemas.invalidate_all().await;
        self.sessions.invalidate_all().await;
        self.permissions.invalidate_all().await;
    }

    /// The switch shared by these caches' slots, for caches kept elsewhere (SSO) that must
    /// follow it.
    pub(crate) fn switch(&self) -> &Arc<AtomicBool> {
        &self.enabled
    }

    /// Whether this node may serve from and fill its caches.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Turns the caches off (every lookup misses, nothing is kept, and what was kept is
    /// dropped) or back on. A PostgreSQL node that is not sure to hear every other node's
    /// invalidations — before it has joined the cluster, while its listening connection is
    /// down — reads everything from the database instead (see `cluster`).
    pub async fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
        if !on {
            // After the store: a loader that checks `enabled` before this flush inserts only
            // what the flush then removes; one that checks after it inserts nothing.
            self.flush().await;
        }
    }

    pub fn new(cfg: CacheConfig, metrics: &Metrics) -> Self {
        let small = (cfg.max_entries / 10).max(100);
        let enabled = Arc::new(AtomicBool::new(true));
        let on = &enabled;
        Self {
            tokens: Slot::new("tokens", small, cfg.ttl, on, metrics),
            hosts: Slot::new("hosts", small, cfg.ttl, on, metrics),
            tenants: Slot::new("tenants", small, cfg.ttl, on, metrics),
            users: Slot::weighted(
                "users",
                cfg.budget_bytes / 5 * 3,
                cfg.ttl,
                |u: &Arc<User>| doc_weight(&u.attributes),
                on,
                metrics,
            ),
            groups: Slot::weighted(
                "groups",
                cfg.budget_bytes / 5,
                cfg.ttl,
                |g: &Arc<Group>| doc_weight(&g.attributes),
                on,
                metrics,
            ),
            scim_schemas: Slot::new("scim_schemas", small, cfg.ttl, on, metrics),
            memberships: Slot::weighted(
                "memberships",
                cfg.budget_bytes / 5,
                cfg.ttl,
                membership_weight,
                on,
                metrics,
            ),
            operators: Slot::new("operators", small, cfg.ttl, on, metrics),
            nested: Slot::new("nested", small, cfg.ttl, on, metrics),
            sessions: Slot::new("sessions", cfg.max_entries, cfg.ttl, on, metrics),
            permissions: Slot::new("permissions", cfg.max_entries, cfg.ttl, on, metrics),
            enabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot<String, u32> {
        let m = Metrics::new().unwrap();
        Slot::new(
            "t",
            100,
            Duration::from_secs(60),
            &Arc::new(AtomicBool::new(true)),
            &m,
        )
    }

    #[tokio::test]
    async fn insert_after_invalidation_is_dropped() {
        let s = slot();
        let e = s.epoch();
        s.invalidate(&"k".to_string()).await;
        s.insert_if_fresh("k".into(), 1, e).await;
        assert_eq!(s.get(&"k".to_string()).await, None);
    }

    #[tokio::test]
    async fn disabled_caches_serve_and_keep_nothing() {
        let m = Metrics::new().unwrap();
        let c = Caches::new(
            CacheConfig {
                max_entries: 100,
                ttl: Duration::from_secs(60),
                budget_bytes: 1 << 20,
            },
            &m,
        );
        let k = "h".to_string();
        let e = c.hosts.epoch();
        c.hosts.insert_if_fresh(k.clone(), None, e).await;
        assert_eq!(c.hosts.get(&k).await, Some(None));
        c.set_enabled(false).await;
        assert!(!c.enabled());
        assert_eq!(c.hosts.get(&k).await, None, "off: nothing served");
        let e = c.hosts.epoch();
        c.hosts.insert_if_fresh(k.clone(), None, e).await;
        c.set_enabled(true).await;
        assert_eq!(
            c.hosts.get(&k).await,
            None,
            "dropped when switched off, none kept while off"
        );
    }

    #[tokio::test]
    async fn fresh_insert_is_kept_and_counted() {
        let s = slot();
        assert_eq!(s.get(&"k".to_string()).await, None);
        let e = s.epoch();
        s.insert_if_fresh("k".into(), 7, e).await;
        assert_eq!(s.get(&"k".to_string()).await, Some(7));
        assert_eq!(s.hits.get(), 1);
        assert_eq!(s.misses.get(), 1);
    }
}
