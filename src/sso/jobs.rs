//! Scheduled SSO work, run by every node and claimed through the database so that each item
//! is done once across a cluster: metadata refresh (a conditional UPDATE claims a connection),
//! certificate-expiry notices (recorded with a compare-and-set on the connection's notice
//! list), and the purge of expired pending requests, replay entries, OAuth codes and refresh
//! tokens (idempotent).

use super::connections;
use crate::app::AppState;
use crate::model::{Actor, now_micros};
use crate::store::saml::SamlConnection;
use std::time::Duration;

/// How often a node looks for due work.
pub const TICK: Duration = Duration::from_secs(60);
/// Days before a certificate's expiry at which `connection.certificate.expiring` is emitted.
pub const EXPIRY_NOTICE_DAYS: [i64; 3] = [30, 7, 1];
/// How long a node holds a claimed metadata refresh before another may retry it.
const REFRESH_LEASE: i64 = 5 * 60 * 1_000_000;

/// Starts this node's SSO job loop; it stops when the store closes.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if state.store.is_closed() {
                return;
            }
            run_once(&state).await;
        }
    })
}

/// One pass of every job (also called by tests).
pub async fn run_once(state: &AppState) {
    if let Err(e) = state.store.purge_saml_expired().await {
        tracing::warn!(error = %e, "sso: cannot purge expired requests and replay entries");
    }
    if let Err(e) = state.store.purge_oauth_expired().await {
        tracing::warn!(error = %e, "sso: cannot purge expired OAuth codes and tokens");
    }
    refresh_due_metadata(state).await;
    if let Err(e) = certificate_notices(state).await {
        tracing::warn!(error = %e, "sso: cannot check certificate expiry");
    }
}

async fn refresh_due_metadata(state: &AppState) {
    let due = match state.store.claim_metadata_refresh(20, REFRESH_LEASE).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "sso: cannot claim metadata refreshes");
            return;
        }
    };
    for (tenant, id, _url) in due {
        let ts = state.store.tenant(tenant);
        if let Err(e) = connections::refresh_metadata(state, &ts, &Actor::system(), &id).await {
            tracing::warn!(error = %e, connection = %id, "sso: metadata refresh failed");
        }
    }
}

/// The (fingerprint, days) notices due for a connection at `now_unix`, leaving out those
/// already emitted.
pub fn due_notices(c: &SamlConnection, now_unix: i64) -> Vec<(String, i64)> {
    let Ok(certs) = connections::parse_certificates(&c.certificates) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for cert in certs {
        let left = cert.not_after_unix - now_unix;
        let done = c.cert_notified.get(&cert.sha256_fingerprint);
        for days in EXPIRY_NOTICE_DAYS {
            if left <= days * 86_400 && !done.is_some_and(|d| d.contains(&days)) {
                out.push((cert.sha256_fingerprint.clone(), days));
            }
        }
    }
    out
}

async fn certificate_notices(state: &AppState) -> Result<(), crate::store::StoreError> {
    let now = now_micros() / 1_000_000;
    for (tenant, c) in state.store.all_saml_connections().await? {
        let notices = due_notices(&c, now);
        if notices.is_empty() {
            continue;
        }
        let ts = state.store.tenant(tenant);
        if ts.record_certificate_notices(&c, &notices).await? {
            state.sso.runtimes.invalidate(&c.id).await;
        }
    }
    Ok(())
}
