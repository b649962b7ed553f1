//! Several nodes on one PostgreSQL. Every committed write that touches a cached entry is
//! announced with NOTIFY on `idhub_cache` right after its commit, in this node's next batch
//! of notifications (`store::write`, `store::notifier`); every node
//! LISTENs, drops what the others changed and acknowledges it, and a write is answered only
//! when every live node has acknowledged (`store::peers`). So once a client has its answer,
//! no node serves the old state: the staleness bound is zero for everything cached, which
//! includes the security-relevant state (tokens, sessions, users' `active`, roles, tenants).
//!
//! A node caches only while it is sure to hear every other node: its caches are off (every
//! read goes to the database) until it has joined — announced itself with `hello` and been
//! acknowledged by every node listed as listening in `pg_stat_activity` — and they are
//! switched off and emptied the moment its listening connection fails, until it has joined
//! again. A dropped notification connection therefore never leaves a stale entry behind; it
//! only costs cache misses while it reconnects.

use crate::app::AppState;
use crate::store::dialect::Backend;
use crate::store::peers::{self, ACK_CHANNEL, APP_NAME_PREFIX, Message, NODE_CHANNEL};
use crate::store::write::CHANNEL;
use crate::store::write::Invalidate;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::watch;

/// The listener task and a flag that turns true once this node has first joined.
pub struct Node {
    pub task: tokio::task::JoinHandle<()>,
    pub joined: watch::Receiver<bool>,
}

/// Starts the listener of this node (PostgreSQL only; SQLite is single-node). It stops when
/// the store closes.
pub fn spawn(state: AppState) -> Option<Node> {
    if state.store.backend() != Backend::Postgres {
        return None;
    }
    let (joined_tx, joined) = watch::channel(false);
    let task = tokio::spawn(async move {
        while !state.store.is_closed() {
            if let Err(e) = listen(&state, &joined_tx).await {
                tracing::warn!(error = %e, "cluster: cache listener failed; reconnecting");
            }
            lost(&state).await;
            // Reconnect backoff of this background task (never on a request path); the node
            // serves from the database meanwhile.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Some(Node { task, joined })
}

/// Tells the other nodes that this one stops (they stop waiting for it at once). Sent through
/// the notification queue, after everything this node committed (see `store::notifier`).
pub async fn leave(state: &AppState) {
    if state.store.backend() != Backend::Postgres {
        return;
    }
    state
        .store
        .notify(NODE_CHANNEL, format!("bye:{}", state.store.node_id()));
    if !state
        .store
        .flush_notifications(Duration::from_secs(5))
        .await
    {
        tracing::warn!("cluster: cannot announce this node's departure");
    }
}

/// For a process that writes but does not serve (the CLI): listens for acknowledgements only,
/// so that its writes, too, are answered once every node has dropped what they changed. It
/// does not announce itself, so no node waits for it. Returns once listening (PostgreSQL;
/// `None` on SQLite or when the connection fails, in which case writes do not wait).
pub async fn observe(
    store: &crate::store::Store,
    url: &str,
) -> Option<tokio::task::JoinHandle<()>> {
    if store.backend() != Backend::Postgres {
        return None;
    }
    let start = async {
        let opts = PgConnectOptions::from_str(url)?.application_name("idhub-cli");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(ACK_CHANNEL).await?;
        let live = peers::live_nodes(store.pool()).await?;
        Ok::<_, sqlx::Error>((pool, listener, live))
    };
    let (pool, mut listener, live) = match start.await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: cannot listen for acknowledgements; writes will not wait for the nodes");
            return None;
        }
    };
    store.peers().connected(&live);
    let (store, me) = (store.clone(), store.node_id().to_owned());
    Some(tokio::spawn(async move {
        let _pool = pool;
        while let Ok(Some(n)) = listener.try_recv().await {
            if let Some(Message::Ack {
                origin,
                nonce,
                from,
            }) = Message::parse(n.channel(), n.payload())
                && origin == me
            {
                store.peers().ack(nonce, from);
            }
        }
        store.peers().lost();
    }))
}

/// One listening connection, from connect to failure.
async fn listen(state: &AppState, joined_tx: &watch::Sender<bool>) -> Result<(), sqlx::Error> {
    let me = state.store.node_id().to_owned();
    let opts = PgConnectOptions::from_str(state.config.database_url.expose())?
        .application_name(&format!("{APP_NAME_PREFIX}{me}"));
    // A pool of one, because the listener takes its connection from a pool.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.ignore_pool_close_event(true);
    listener
        .listen_all([CHANNEL, ACK_CHANNEL, NODE_CHANNEL])
        .await?;
    // Whatever was committed while this node was not listening is unknown: its caches stay
    // off and empty until every listening node has acknowledged its hello.
    let live = peers::live_nodes(state.store.pool()).await?;
    let generation = state.store.peers().connected(&live);
    let ticket = state.store.peers().register();
    notify(
        &mut listener,
        NODE_CHANNEL,
        &format!("hello:{me}:{}", ticket.nonce),
    )
    .await?;
    let join = {
        let state = state.clone();
        let joined_tx = joined_tx.clone();
        tokio::spawn(async move {
            state.store.peers().wait(&ticket, state.store.pool()).await;
            if state.store.peers().is_current(generation) {
                state.store.caches().set_enabled(true).await;
                // `lost` marks the generation stale before it disables the caches: had it run
                // since the check above, this re-check sees it and undoes the enabling.
                if !state.store.peers().is_current(generation) {
                    state.store.caches().set_enabled(false).await;
                    return;
                }
                let _ = joined_tx.send(true);
                tracing::info!(
                    peers = state.store.peers().peer_count(),
                    "cluster: joined; caches on"
                );
            }
        })
    };
    let result = tokio::select! {
        r = receive(state, &me, &mut listener) => r,
        r = watch_peers(state) => r,
    };
    join.abort();
    result
}

/// How often a node checks which of its peers still listen.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Every [`WATCH_EVERY`]: forgets the peers that no longer listen and, whenever a peer has
/// vanished without a `bye` (here or while a write waited for it), drops everything this node
/// caches — that peer may have died between a commit and its notification (see
/// `store::notifier`). So such a write is served by every node within about a second.
async fn watch_peers(state: &AppState) -> Result<(), sqlx::Error> {
    let peers = state.store.peers();
    let mut seen = peers.departures();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let joins = peers.joins();
        match peers::live_nodes(state.store.pool()).await {
            Ok(live) => {
                for p in peers.forget_missing(&live, joins) {
                    tracing::info!(peer = %p, "cluster: peer no longer listens");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster: cannot list the listening nodes"),
        }
        let now = peers.departures();
        if now != seen {
            seen = now;
            tracing::info!(
                "cluster: a peer vanished without saying bye; dropping all cached entries"
            );
            state.store.caches().flush().await;
            state.sso.runtimes.invalidate_all().await;
            state.sso.keys.invalidate_all().await;
        }
    }
}

async fn receive(state: &AppState, me: &str, listener: &mut PgListener) -> Result<(), sqlx::Error> {
    let mut acks = Vec::new();
    loop {
        // `None`: the connection dropped (anything may have been missed meanwhile).
        let Some(n) = listener.try_recv().await? else {
            return Err(sqlx::Error::Protocol("listening connection lost".into()));
        };
        handle(state, me, &n, &mut acks).await;
        // Whatever else has arrived is handled before answering: the acknowledgements go out
        // as one transaction (each notifying commit is serialised in PostgreSQL).
        while let Some(n) = listener.next_buffered() {
            handle(state, me, &n, &mut acks).await;
        }
        if !acks.is_empty() {
            sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(ACK_CHANNEL)
                .bind(&acks)
                .execute(&mut *listener)
                .await?;
            acks.clear();
        }
    }
}

/// One notification: applied, and its acknowledgement (if it needs one) added to `acks`.
async fn handle(
    state: &AppState,
    me: &str,
    n: &sqlx::postgres::PgNotification,
    acks: &mut Vec<String>,
) {
    match n.channel() {
        CHANNEL => {
            // Fault injection for tests (default 0): a slow peer, on this listener only.
            if !state.config.cluster_apply_delay.is_zero() {
                tokio::time::sleep(state.config.cluster_apply_delay).await;
            }
            if let Some(remote) = state.store.apply_remote_invalidation(n.payload()).await {
                for i in &remote.items {
                    match i {
                        Invalidate::SamlConnection(id) => state.sso.runtimes.invalidate(id).await,
                        Invalidate::SpKeys => {
                            state.sso.keys.invalidate(remote.tenant.as_str()).await
                        }
                        Invalidate::All => {
                            state.sso.runtimes.invalidate_all().await;
                            state.sso.keys.invalidate_all().await;
                        }
                        Invalidate::SigningKeys => {
                            if let Err(e) = state.keys.reload().await {
                                tracing::warn!(error = %e, "cluster: cannot reload the signing keys");
                            }
                        }
                        _ => {}
                    }
                }
                acks.push(peers::ack_payload(&remote.node, remote.nonce, me));
            }
        }
        channel => match Message::parse(channel, n.payload()) {
            Some(Message::Ack {
                origin,
                nonce,
                from,
            }) if origin == me => state.store.peers().ack(nonce, from),
            Some(Message::Hello { node, nonce }) if node != me => {
                state.store.peers().add(node);
                acks.push(peers::ack_payload(node, nonce, me));
            }
            Some(Message::Bye { node }) if node != me => state.store.peers().remove(node),
            _ => {}
        },
    }
}

async fn notify(
    listener: &mut PgListener,
    channel: &str,
    payload: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut *listener)
        .await
        .map(|_| ())
}

/// The listening connection is gone: this node can no longer hear the others, so it stops
/// serving from its caches at once.
async fn lost(state: &AppState) {
    state.store.peers().lost();
    state.store.caches().set_enabled(false).await;
    state.sso.runtimes.invalidate_all().await;
    state.sso.keys.invalidate_all().await;
}
