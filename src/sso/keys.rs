//! The tenant's SP key pairs: generated on first use, private keys sealed at rest, rotated
//! with the previous certificate still published (and still decrypting) until retired.

use super::SsoError;
use crate::app::AppState;
use crate::model::{Actor, Micros};
use crate::store::TenantStore;
use crate::store::saml::SpKeyRow;
use base64::Engine;
use saml::SpKeyPair;
use std::sync::Arc;

/// The sealing purpose of SP private keys (binds a sealed key to its use).
const SEAL_PURPOSE: &str = "saml-sp-key";
/// Validity of a generated SP certificate. SAML peers use the key, not the X.509 validity, but
/// some IdPs warn about expired certificates, so it is long.
const CERT_DAYS: u32 = 3650;

/// A tenant's usable key pairs: `current` first, then `previous` (during a rollover).
pub struct TenantKeys {
    pub pairs: Vec<SpKeyPair>,
    pub rows: Vec<SpKeyRow>,
}

impl TenantKeys {
    /// The key that signs requests.
    pub fn current(&self) -> Result<&SpKeyPair, SsoError> {
        self.pairs
            .first()
            .ok_or_else(|| SsoError::Internal("tenant has no SP key".into()))
    }

    pub fn certificates(&self) -> Vec<saml::Certificate> {
        self.pairs.iter().map(|p| p.certificate().clone()).collect()
    }
}

/// The tenant's keys, creating the first pair when there is none.
pub async fn tenant_keys(state: &AppState, ts: &TenantStore) -> Result<Arc<TenantKeys>, SsoError> {
    let key = ts.tenant_id().0.clone();
    if let Some(k) = state.sso.keys.get(&key).await {
        return Ok(k);
    }
    let epoch = state.sso.keys.epoch();
    let mut rows = ts.sp_keys().await?;
    if rows.is_empty() {
        let row = generate(state, ts).await?;
        // Another node may have won the race; read again either way.
        ts.insert_first_sp_key(&row).await?;
        rows = ts.sp_keys().await?;
    }
    let mut pairs = Vec::with_capacity(rows.len());
    for r in &rows {
        pairs.push(open(state, r)?);
    }
    let keys = Arc::new(TenantKeys { pairs, rows });
    state
        .sso
        .keys
        .insert_if_fresh(key, keys.clone(), epoch)
        .await;
    Ok(keys)
}

/// Generates a new current key; the old current one stays published as `previous`.
pub async fn rotate(state: &AppState, ts: &TenantStore, actor: &Actor) -> Result<(), SsoError> {
    let row = generate(state, ts).await?;
    ts.rotate_sp_key(actor, &row).await?;
    state.sso.keys.invalidate(&ts.tenant_id().0).await;
    Ok(())
}

/// Stops publishing and using the previous key.
pub async fn retire(state: &AppState, ts: &TenantStore, actor: &Actor) -> Result<(), SsoError> {
    ts.retire_previous_sp_key(actor)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => SsoError::NotFound("previous SP key"),
            e => e.into(),
        })?;
    state.sso.keys.invalidate(&ts.tenant_id().0).await;
    Ok(())
}

async fn generate(state: &AppState, ts: &TenantStore) -> Result<SpKeyRow, SsoError> {
    let cn = format!("idhub SP {}", ts.tenant_id().0);
    // RSA key generation takes tens of milliseconds: keep it off the async workers.
    let pair = tokio::task::spawn_blocking(move || SpKeyPair::generate(&cn, CERT_DAYS))
        .await
        .map_err(|e| SsoError::Internal(format!("key generation task: {e}")))?
        .map_err(|e| SsoError::Internal(format!("key generation: {e}")))?;
    let der = pair
        .private_key_pkcs8_der()
        .map_err(|e| SsoError::Internal(format!("key export: {e}")))?;
    let sealed = state
        .sealer
        .seal(SEAL_PURPOSE, &der)
        .map_err(|e| SsoError::Internal(format!("sealing: {e}")))?;
    let cert = pair.certificate();
    Ok(SpKeyRow {
        id: crate::store::new_public_id(),
        status: "current".into(),
        sealed_private_key: sealed,
        certificate: cert.base64(),
        not_after: cert.not_after_unix.saturating_mul(1_000_000) as Micros,
        created_at: crate::model::now_micros(),
    })
}

fn open(state: &AppState, row: &SpKeyRow) -> Result<SpKeyPair, SsoError> {
    let der = state
        .sealer
        .open(SEAL_PURPOSE, &row.sealed_private_key)
        .map_err(|_| {
            SsoError::Internal("an SP key cannot be opened with this secret_key".into())
        })?;
    let cert = base64::engine::general_purpose::STANDARD
        .decode(row.certificate.as_bytes())
        .map_err(|_| SsoError::Internal("stored SP certificate is not base64".into()))?;
    SpKeyPair::from_pkcs8_der(&der, &cert)
        .map_err(|e| SsoError::Internal(format!("stored SP key: {e}")))
}
