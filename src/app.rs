//! The state every handler shares.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::TenantId;
use crate::store::Store;
use std::sync::Arc;
use std::time::Instant;

/// Shared, cheaply cloned application state.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Metrics,
    pub default_tenant: TenantId,
    pub started: Instant,
    /// JWT signing keys and the verified-token cache.
    pub keys: Arc<crate::auth::jwt::KeyRing>,
    /// Rate limits of the authentication endpoints.
    pub limiter: Arc<crate::auth::ratelimit::RateLimiter>,
    /// Seals secrets at rest (TOTP).
    pub sealer: Arc<crate::auth::sealing::Sealer>,
    /// This node's SSO caches (connections, SP keys).
    pub sso: Arc<crate::sso::SsoCaches>,
}
