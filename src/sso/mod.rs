//! SAML single sign-on, the server side: connections and their settings, the tenant's SP
//! keys, SP-initiated login, the ACS, single logout, JIT provisioning and background jobs.
//!
//! Protocol checks (signatures, conditions, bindings) live in the pure `saml` crate; this module
//! adds what needs state: which connection and keys apply, pending requests, the replay cache,
//! users and sessions, the login-flow log and the audit trail.

pub mod connections;
pub mod jit;
pub mod jobs;
pub mod keys;
pub mod login;

use crate::cache::{Caches, Slot};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::saml::SamlConnection;
use saml::Certificate;
use std::sync::Arc;
use std::time::Duration;

/// What can go wrong in the SSO layer (rendered as REST errors in `api::error` and as error
/// pages in `http::saml`).
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Input that cannot be used; `field` names it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    /// A login or logout refused; `reason` is the stable code written to the logs.
    #[error("{reason}: {detail}")]
    Refused { reason: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl SsoError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn refused(reason: &str, detail: impl Into<String>) -> Self {
        Self::Refused {
            reason: reason.to_owned(),
            detail: detail.into(),
        }
    }
}

impl From<saml::Rejection> for SsoError {
    fn from(r: saml::Rejection) -> Self {
        Self::Refused {
            reason: r.reason.code().to_owned(),
            detail: r.detail,
        }
    }
}

/// The SP-side URLs of one connection. The entity ID is the metadata URL (a common
/// convention that lets an IdP fetch our metadata from our entity ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpUrls {
    pub entity_id: String,
    pub metadata: String,
    pub acs: String,
    pub slo: String,
    pub login: String,
}

pub fn sp_urls(public_url: &str, connection_id: &str) -> SpUrls {
    let base = format!("{}/saml/{connection_id}", public_url.trim_end_matches('/'));
    SpUrls {
        entity_id: format!("{base}/metadata"),
        metadata: format!("{base}/metadata"),
        acs: format!("{base}/acs"),
        slo: format!("{base}/slo"),
        login: format!("{base}/login"),
    }
}

/// A connection ready for validation: its row and its certificates parsed once.
pub struct Runtime {
    /// The tenant the connection belongs to (a cached runtime is handed out only to it).
    pub tenant_id: crate::model::TenantId,
    pub connection: SamlConnection,
    pub certificates: Vec<Certificate>,
}

/// Per-node caches of the SSO layer, with the store caches' guarantees (`cache::Slot`: no
/// stale insert after an invalidation; off while the store's caches are off). Entries are
/// dropped on every change this node makes and, through `cluster`, before another node's
/// change is answered; they also live at most [`CACHE_TTL`].
pub struct SsoCaches {
    pub runtimes: Slot<String, Arc<Runtime>>,
    pub keys: Slot<String, Arc<keys::TenantKeys>>,
}

pub const CACHE_TTL: Duration = Duration::from_secs(30);

impl SsoCaches {
    pub fn new(caches: &Caches, metrics: &Metrics) -> Self {
        Self {
            runtimes: Slot::new(
                "saml_connections",
                10_000,
                CACHE_TTL,
                caches.switch(),
                metrics,
            ),
            keys: Slot::new("sp_keys", 10_000, CACHE_TTL, caches.switch(), metrics),
        }
    }
}
