//! Which tenant a request is for, when no credential says so: its `Host`.
//!
//! A registered hostname picks its tenant. Otherwise, in single-tenant mode the default
//! tenant answers; in multi-tenant mode the request is refused (404), so a request can never
//! land in a tenant by accident.

use crate::app::AppState;
use crate::config::TenancyMode;
use crate::model::{Hostname, TenantId};
use crate::store::StoreError;
use poem::Request;

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("no tenant is served at this host")]
    UnknownHost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tenant for this request's `Host` header.
pub async fn resolve(state: &AppState, req: &Request) -> Result<TenantId, TenancyError> {
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().host().map(str::to_owned));
    let hostname = host.as_deref().and_then(Hostname::from_host_header);
    if let Some(h) = &hostname
        && let Some(t) = state.store.resolve_host(h).await?
    {
        return Ok(t);
    }
    match state.config.tenancy_mode {
        TenancyMode::Single => Ok(state.default_tenant.clone()),
        TenancyMode::Multi => Err(TenancyError::UnknownHost),
    }
}
