//! Several nodes on one PostgreSQL: every committed write that touches a cached entry is
//! announced with NOTIFY on `idhub_cache` in its own transaction (`store::write`), and every
//! node LISTENs and drops what the others changed. A node whose listening connection drops
//! cannot know what it missed, so after every (re)connection it flushes all its caches before
//! it trusts them again: a dropped notification never leaves a stale entry behind, it only
//! costs cache misses.
//!
//! Staleness bound: the time from a commit to its notification's arrival (milliseconds on one
//! network), and at most the connection-loss detection time while the listener is down;
//! the SSO caches also expire after `sso::CACHE_TTL` regardless.

use crate::app::AppState;
use crate::store::dialect::Backend;
use crate::store::write::{CHANNEL, Invalidate};
use sqlx::postgres::PgListener;
use std::time::Duration;

/// Starts the listener of this node (PostgreSQL only; SQLite is single-node). It stops when
/// the store closes.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    if state.store.backend() != Backend::Postgres {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            if state.store.is_closed() {
                return;
            }
            let url = state.config.database_url.expose().to_owned();
            let mut listener = match PgListener::connect(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: cannot connect the cache listener; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "cluster: LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Whatever was committed while this node was not listening is unknown: start clean.
            flush(&state).await;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => apply(&state, n.payload()).await,
                    Ok(None) => {
                        // The connection dropped (it reconnects on the next call): anything
                        // may have been missed meanwhile.
                        tracing::warn!("cluster: cache listener reconnecting; flushing caches");
                        flush(&state).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster: cache listener failed; reconnecting");
                        flush(&state).await;
                        break;
                    }
                }
            }
        }
    }))
}

async fn flush(state: &AppState) {
    state.store.caches().flush().await;
    state.sso.runtimes.invalidate_all();
    state.sso.keys.invalidate_all();
}

async fn apply(state: &AppState, payload: &str) {
    let Some((tenant, items)) = state.store.apply_remote_invalidation(payload).await else {
        return;
    };
    for i in items {
        match i {
            Invalidate::SamlConnection(id) => state.sso.runtimes.invalidate(&id).await,
            Invalidate::SpKeys => state.sso.keys.invalidate(tenant.as_str()).await,
            Invalidate::All => {
                state.sso.runtimes.invalidate_all();
                state.sso.keys.invalidate_all();
            }
            _ => {}
        }
    }
}
