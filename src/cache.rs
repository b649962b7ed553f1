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
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The caches' key hasher (also the [`Doorkeeper`]'s): std's SipHash with a per-process
/// random seed, which resists keys crafted to collide (resource ids come from requests).
/// foldhash was measured instead twice (ninth and eleventh sessions, BENCHMARKS.md) and made
/// no measurable difference.
type Hasher = std::hash::RandomState;

/// Admission for a full cache, TinyLFU's "doorkeeper" (Einziger, Friedman and Manes,
/// *TinyLFU: A Highly Efficient Cache Admission Policy*, 2017): once a cache is nearly full, a
/// value loaded on a miss is kept only if its key has missed before since the last reset.
///
/// Without it, reads spread over far more resources than fit (a uniform walk over 100,000
/// users against a budget of a few thousand) insert every loaded value, only for moka to
/// evict it or refuse it at its next maintenance — an insert, a removal and table upkeep per
/// read, for a value nobody reads again. A key read twice is kept on its second load, which
/// is when moka's own admission (its frequency sketch counts misses too) would keep it.
///
/// One bit per key hash; after `BITS / 4` keys have been marked all bits are cleared, so at
/// most a quarter of the bits are set and a first miss is mistaken for a second one at most
/// a quarter of the time (it is then kept, as before this filter existed).
struct Doorkeeper {
    words: Box<[AtomicU64]>,
    marked: AtomicUsize,
}

impl Doorkeeper {
    /// 2^18 bits: 32 KiB per cache that fills up.
    const BITS: usize = 1 << 18;

    fn new() -> Self {
        Self {
            words: (0..Self::BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            marked: AtomicUsize::new(0),
        }
    }

    /// Whether `hash` was marked since the last reset; marks it.
    fn seen_before(&self, hash: u64) -> bool {
        let bit = (hash as usize) % Self::BITS;
        let mask = 1u64 << (bit % 64);
        let Some(word) = self.words.get(bit / 64) else {
            return true;
        };
        if word.fetch_or(mask, Ordering::Relaxed) & mask != 0 {
            return true;
        }
        if self.marked.fetch_add(1, Ordering::Relaxed) + 1 >= Self::BITS / 4 {
            self.marked.store(0, Ordering::Relaxed);
            for w in self.words.iter() {
                w.store(0, Ordering::Relaxed);
            }
        }
        false
    }
}

/// One bounded cache with hit/miss counters and an invalidation epoch.
pub struct Slot<K, V> {
    cache: Cache<K, V, Hasher>,
    hasher: Hasher,
    /// moka's capacity (entries, or estimated bytes for a weighted cache).
    capacity: u64,
    /// Created when the cache first fills up (see [`Doorkeeper`]).
    doorkeeper: OnceLock<Doorkeeper>,
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
        let hasher = Hasher::default();
        Self {
            enabled: enabled.clone(),
            cache: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build_with_hasher(hasher.clone()),
            hasher,
            capacity: max_entries,
            doorkeeper: OnceLock::new(),
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
        let hasher = Hasher::default();
        Self {
            enabled: enabled.clone(),
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |_k: &K, v: &V| weigh(v))
                .time_to_live(ttl)
                .build_with_hasher(hasher.clone()),
            hasher,
            capacity: max_bytes,
            doorkeeper: OnceLock::new(),
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

    /// Caches a value loaded at `epoch`, unless an invalidation has happened since — or the
    /// cache is nearly full and `key` is not known to be read again (see [`Doorkeeper`]).
    pub async fn insert_if_fresh(&self, key: K, value: V, epoch: u64)
    where
        K: Clone,
    {
        if self.nearly_full()
            && !self
                .doorkeeper
                .get_or_init(Doorkeeper::new)
                .seen_before(self.hasher.hash_one(&key))
        {
            return;
        }
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

    /// At least 7/8 of the capacity in use (moka's figure as of its last maintenance).
    fn nearly_full(&self) -> bool {
        self.cache.weighted_size() >= self.capacity - self.capacity / 8
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
    async fn a_nearly_full_cache_keeps_a_key_on_its_second_load_not_its_first() {
        let s = slot();
        // Below 7/8 of the 100 entries every load is kept.
        for i in 0..90 {
            s.insert_if_fresh(format!("k{i}"), i, s.epoch()).await;
        }
        s.cache.run_pending_tasks().await;
        assert_eq!(s.cache.entry_count(), 90, "all kept while there was room");
        assert!(s.nearly_full());
        let key = "late".to_string();
        s.insert_if_fresh(key.clone(), 1, s.epoch()).await;
        assert_eq!(s.get(&key).await, None, "a first load is not kept");
        s.insert_if_fresh(key.clone(), 2, s.epoch()).await;
        assert_eq!(s.get(&key).await, Some(2), "the second load of the key is");
    }

    #[test]
    fn the_doorkeeper_forgets_after_a_quarter_of_its_bits() {
        let d = Doorkeeper::new();
        assert!(!d.seen_before(7));
        assert!(d.seen_before(7));
        // Mark BITS/4 - 1 more distinct bits: the last one clears the filter.
        for h in 0..(Doorkeeper::BITS / 4 - 1) as u64 {
            d.seen_before(1000 + h);
        }
        assert!(!d.seen_before(7), "forgotten after the reset");
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
