//! Acknowledged invalidations between the nodes on one PostgreSQL database.
//!
//! Every write that invalidates cached entries NOTIFYs them on [`CHANNEL`](super::write::CHANNEL)
//! right after its commit (batched, see `notifier`), tagged `node:nonce`. Every other node
//! drops the entries and answers on [`ACK_CHANNEL`] with `origin:nonce:acker`. The writer
//! answers its client only once every live peer has acknowledged, so a response to a write
//! means that no node serves the old state any more: a revoked token, a revoked session or a
//! deactivated user is refused by every node on the very next request, not "soon".
//!
//! Who is a peer: a node LISTENs on a connection whose `application_name` is
//! [`APP_NAME_PREFIX`]`<node id>`, so `pg_stat_activity` lists exactly the nodes that receive
//! notifications. A (re)connecting node reads that list, announces itself with `hello` on
//! [`NODE_CHANNEL`], and enables its caches only when every listed node has acknowledged the
//! hello (from then on, their writes wait for it); until then it serves everything from the
//! database. A peer that does not acknowledge within [`RECHECK`] is looked up again in
//! `pg_stat_activity`: one that is gone (killed, disconnected: it no longer caches anything
//! that could be stale, see `cluster`) stops being waited for; one still listed is waited for
//! up to [`GIVE_UP`], after which the write returns and the lag is logged (its notification is
//! still queued for it).

use sqlx::AnyPool;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Acknowledgements: `origin:nonce:acker`.
pub const ACK_CHANNEL: &str = "idhub_ack";
/// Membership: `hello:node:nonce` (acknowledged like an invalidation), `bye:node`.
pub const NODE_CHANNEL: &str = "idhub_node";
/// `application_name` prefix of every node's listening connection.
pub const APP_NAME_PREFIX: &str = "idhub-node:";
/// How long a missing acknowledgement is awaited before the peer's liveness is re-checked.
pub const RECHECK: Duration = Duration::from_millis(250);
/// How long a live but silent peer is awaited at most.
pub const GIVE_UP: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    /// Peer node id → the join count when it was added.
    peers: HashMap<String, u64>,
    /// Peers added so far (orders additions against waiters).
    joins: u64,
    waiters: HashMap<u64, Arc<Waiter>>,
    /// Bumped whenever this node's listening connection is lost.
    generation: u64,
    /// Whether this node's listening connection is up.
    connected: bool,
    /// Peers found gone without a `bye` so far (see [`Peers::departures`]).
    departures: u64,
}

struct Waiter {
    acked: Mutex<HashSet<String>>,
    /// Set once the write committed (see [`Peers::add`]).
    committed: std::sync::atomic::AtomicBool,
    wake: Notify,
    /// `State::joins` at registration: peers added later joined while the write committed.
    joins: u64,
    generation: u64,
}

/// This node's view of its peers and of the acknowledgements it awaits.
pub struct Peers {
    node_id: String,
    state: Mutex<State>,
    nonce: AtomicU64,
}

/// One awaited notification (registered before it is sent, so that no
/// acknowledgement can arrive unseen). Dropping it forgets the waiter.
pub struct Ticket {
    peers: Arc<Peers>,
    pub nonce: u64,
    waiter: Arc<Waiter>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.peers.lock().waiters.remove(&self.nonce);
    }
}

/// What a notification on one of the cluster channels means.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Ack {
        origin: &'a str,
        nonce: u64,
        from: &'a str,
    },
    Hello {
        node: &'a str,
        nonce: u64,
    },
    Bye {
        node: &'a str,
    },
}

impl<'a> Message<'a> {
    /// Parses a payload of [`ACK_CHANNEL`] or [`NODE_CHANNEL`]; `None` when it is not one.
    pub fn parse(channel: &str, payload: &'a str) -> Option<Self> {
        match channel {
            ACK_CHANNEL => {
                let mut it = payload.splitn(3, ':');
                let (origin, nonce, from) = (it.next()?, it.next()?, it.next()?);
                Some(Self::Ack {
                    origin,
                    nonce: nonce.parse().ok()?,
                    from,
                })
            }
            NODE_CHANNEL => {
                let mut it = payload.splitn(3, ':');
                match (it.next()?, it.next()?, it.next()) {
                    ("hello", node, Some(nonce)) => Some(Self::Hello {
                        node,
                        nonce: nonce.parse().ok()?,
                    }),
                    ("bye", node, None) => Some(Self::Bye { node }),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The acknowledgement payload for `origin`'s notification `nonce`.
pub fn ack_payload(origin: &str, nonce: u64, me: &str) -> String {
    format!("{origin}:{nonce}:{me}")
}

impl Peers {
    pub fn new(node_id: &str) -> Arc<Self> {
        Arc::new(Self {
            node_id: node_id.to_owned(),
            state: Mutex::new(State::default()),
            nonce: AtomicU64::new(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every step, so a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// A new ticket; its nonce goes into the notification.
    pub fn register(self: &Arc<Self>) -> Ticket {
        let nonce = self.nonce.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        let waiter = Arc::new(Waiter {
            acked: Mutex::new(HashSet::new()),
            committed: std::sync::atomic::AtomicBool::new(false),
            wake: Notify::new(),
            joins: st.joins,
            generation: st.generation,
        });
        st.waiters.insert(nonce, waiter.clone());
        Ticket {
            peers: self.clone(),
            nonce,
            waiter,
        }
    }

    /// Records `from`'s acknowledgement of this node's notification `nonce`.
    pub fn ack(&self, nonce: u64, from: &str) {
        let waiter = self.lock().waiters.get(&nonce).cloned();
        if let Some(w) = waiter {
            w.acked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(from.to_owned());
            w.wake.notify_one();
        }
    }

    /// A peer announced itself with `hello`. It has (re)connected with its caches off and
    /// empty, so it serves nothing that a committed write changed: every wait for a committed
    /// write counts it as acknowledged (a node that reconnects quickly never received the
    /// notification it would otherwise be waited for).
    pub fn add(&self, node: &str) {
        if node == self.node_id {
            return;
        }
        let mut st = self.lock();
        st.joins += 1;
        let j = st.joins;
        st.peers.insert(node.to_owned(), j);
        for w in st.waiters.values() {
            if w.committed.load(Ordering::SeqCst) {
                w.acked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(node.to_owned());
                w.wake.notify_one();
            }
        }
    }

    /// A peer said `bye`: everything it committed was sent before (see `notifier`).
    pub fn remove(&self, node: &str) {
        self.lock().peers.remove(node);
        self.wake_all();
    }

    /// A peer no longer listens, without a `bye`: it may have died between a commit and
    /// the notification of it, so this node must drop all it caches (see
    /// [`Peers::departures`]).
    fn vanished(&self, node: &str) {
        let mut st = self.lock();
        if st.peers.remove(node).is_some() {
            st.departures += 1;
        }
        drop(st);
        self.wake_all();
    }

    /// The join count, to pass to [`Peers::forget_missing`] (read before listing the nodes).
    pub fn joins(&self) -> u64 {
        self.lock().joins
    }

    /// Forgets the peers that are not in `live` (listed after `joins` was read; a peer that
    /// joined since may be missing from that list and is kept). Returns the ones forgotten.
    pub fn forget_missing(&self, live: &HashSet<String>, joins: u64) -> Vec<String> {
        let gone: Vec<String> = self
            .lock()
            .peers
            .iter()
            .filter(|(p, j)| **j <= joins && !live.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for p in &gone {
            self.vanished(p);
        }
        gone
    }

    /// How many peers have vanished without a `bye` so far: whenever this grows, whatever
    /// this node caches may be stale (see `notifier`).
    pub fn departures(&self) -> u64 {
        self.lock().departures
    }

    /// This node's listener is connected and these nodes were listening then; returns the
    /// generation to pass to [`Peers::is_current`].
    pub fn connected(&self, live: &HashSet<String>) -> u64 {
        let mut st = self.lock();
        st.connected = true;
        st.peers.retain(|p, _| live.contains(p));
        for p in live {
            if *p != self.node_id && !st.peers.contains_key(p) {
                st.joins += 1;
                let j = st.joins;
                st.peers.insert(p.clone(), j);
            }
        }
        st.generation
    }

    /// This node's listener connection is lost: acknowledgements can no longer be heard, so
    /// the waits in progress end now.
    pub fn lost(&self) {
        {
            let mut st = self.lock();
            st.generation += 1;
            st.connected = false;
        }
        self.wake_all();
    }

    /// Whether the connection of generation `g` is still the current one.
    pub fn is_current(&self, g: u64) -> bool {
        let st = self.lock();
        st.connected && st.generation == g
    }

    pub fn peer_count(&self) -> usize {
        self.lock().peers.len()
    }

    fn wake_all(&self) {
        for w in self.lock().waiters.values() {
            w.wake.notify_one();
        }
    }

    /// The peers whose acknowledgement `t` still needs: `(peer, joined after registration)`.
    /// `None` when waiting is pointless (this node's listener is down or was reconnected).
    fn missing(&self, t: &Ticket) -> Option<Vec<(String, bool)>> {
        let st = self.lock();
        if !st.connected || st.generation != t.waiter.generation {
            return None;
        }
        let acked = t.waiter.acked.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            st.peers
                .iter()
                .filter(|(p, _)| !acked.contains(*p))
                .map(|(p, j)| (p.clone(), *j > t.waiter.joins))
                .collect(),
        )
    }

    /// Waits until every live peer has acknowledged `t` (call after the commit). Peers that
    /// joined while the write committed are awaited for [`RECHECK`] only: they listened
    /// before their hello was answered, so they either received this notification and answer
    /// at once, or they joined after the commit and read its result from the database.
    pub async fn wait(&self, t: &Ticket, pool: &AnyPool) {
        t.waiter.committed.store(true, Ordering::SeqCst);
        let start = Instant::now();
        let mut rechecked = false;
        loop {
            let Some(missing) = self.missing(t) else {
                return;
            };
            if missing.is_empty() {
                return;
            }
            let elapsed = start.elapsed();
            if elapsed >= RECHECK {
                if !rechecked {
                    rechecked = true;
                    match live_nodes(pool).await {
                        Ok(live) => {
                            for (p, _) in &missing {
                                if !live.contains(p) {
                                    tracing::info!(peer = %p, "cluster: peer no longer listens; not waiting for it");
                                    self.vanished(p);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster: cannot list the listening nodes");
                        }
                    }
                    continue;
                }
                if missing.iter().all(|(_, late)| *late) {
                    return;
                }
                if elapsed >= GIVE_UP {
                    let slow: Vec<&str> = missing.iter().map(|(p, _)| p.as_str()).collect();
                    tracing::warn!(peers = ?slow, "cluster: peers did not acknowledge an invalidation in time");
                    return;
                }
            }
            let next = if elapsed < RECHECK {
                RECHECK - elapsed
            } else {
                GIVE_UP.saturating_sub(elapsed)
            };
            let _ = tokio::time::timeout(next, t.waiter.wake.notified()).await;
        }
    }
}

/// The node ids whose listening connection is open on this database.
pub async fn live_nodes(pool: &AnyPool) -> Result<HashSet<String>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name LIKE 'idhub-node:%'",
    )
    .fetch_all(pool)
    .await?;
    Ok(names
        .into_iter()
        .filter_map(|n| n.strip_prefix(APP_NAME_PREFIX).map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse() {
        assert_eq!(
            Message::parse(ACK_CHANNEL, "a:7:b"),
            Some(Message::Ack {
                origin: "a",
                nonce: 7,
                from: "b"
            })
        );
        assert_eq!(
            Message::parse(NODE_CHANNEL, "hello:n1:3"),
            Some(Message::Hello {
                node: "n1",
                nonce: 3
            })
        );
        assert_eq!(
            Message::parse(NODE_CHANNEL, "bye:n1"),
            Some(Message::Bye { node: "n1" })
        );
        assert_eq!(Message::parse(ACK_CHANNEL, "a:x:b"), None);
        assert_eq!(Message::parse(NODE_CHANNEL, "hello:n1"), None);
        assert_eq!(Message::parse("other", "a:1:b"), None);
    }

    #[test]
    fn a_ticket_waits_for_every_peer_known_at_registration() {
        let p = Peers::new("me");
        let g = p.connected(&["me".to_owned(), "a".to_owned()].into());
        assert!(p.is_current(g));
        let t = p.register();
        p.add("b"); // joined while the write committed
        let missing = p.missing(&t).unwrap();
        assert_eq!(missing.len(), 2);
        assert!(missing.contains(&("a".to_owned(), false)));
        assert!(missing.contains(&("b".to_owned(), true)));
        p.ack(t.nonce, "a");
        assert_eq!(p.missing(&t).unwrap(), vec![("b".to_owned(), true)]);
        p.remove("b");
        assert!(p.missing(&t).unwrap().is_empty());
    }

    #[test]
    fn a_peer_that_says_hello_again_counts_for_committed_writes_only() {
        let p = Peers::new("me");
        p.connected(&["a".to_owned()].into());
        let done = p.register();
        done.waiter.committed.store(true, Ordering::SeqCst);
        let pending = p.register();
        p.add("a"); // a reconnected: its caches are empty
        assert!(p.missing(&done).unwrap().is_empty());
        // Not yet committed: `a` listens now, so it will receive and acknowledge it.
        assert_eq!(p.missing(&pending).unwrap(), vec![("a".to_owned(), true)]);
    }

    #[test]
    fn a_lost_listener_ends_the_waits_and_dropped_tickets_are_forgotten() {
        let p = Peers::new("me");
        let g = p.connected(&["a".to_owned()].into());
        let t = p.register();
        p.lost();
        assert!(!p.is_current(g));
        assert!(p.missing(&t).is_none());
        let nonce = t.nonce;
        drop(t);
        assert!(!p.lock().waiters.contains_key(&nonce));
        // Acknowledgements for forgotten nonces are ignored.
        p.ack(nonce, "a");
    }
}
