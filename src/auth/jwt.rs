//! idhub's access tokens: EdDSA (Ed25519) JWTs signed with keys kept in the database, published
//! at `/.well-known/jwks.json` (RFC 7517; OKP keys per RFC 8037).
//!
//! Rotation stores a new key and retires the others: a retired key no longer signs, but stays
//! published and keeps verifying until every token it signed has expired. Every node reloads
//! the key ring from the database periodically and whenever a token names a key it does not
//! know, so a rotation on one node reaches the others.
//!
//! Verification is cached: a token's first use costs one signature check; repeats are a hash
//! lookup (keyed by the token's SHA-256, never by the token itself, and never served past the
//! token's `exp`). Revocation is enforced on the session, which is checked on every request.

use crate::model::{Micros, now_micros};
use crate::store::{SigningKeyRow, Store, StoreError};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The audience of idhub's own REST API tokens.
pub const AUDIENCE: &str = "idhub-api";
/// The audience of the short-lived token that carries a password sign-in to its second factor.
pub const MFA_AUDIENCE: &str = "idhub-mfa";
/// Lifetime of an MFA token.
pub const MFA_TTL_SECS: u64 = 300;

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The tenant id.
    pub tid: String,
    /// The session id.
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
    /// How the user authenticated (RFC 8176): `pwd`, `otp`, `mfa`.
    pub amr: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("no signing key")]
    NoKey,
    #[error("key material is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Ring {
    /// EdDSA: idhub's own API tokens.
    signing: Option<(String, EncodingKey)>,
    /// RS256: what the OIDC bridge signs (every OpenID Connect library verifies RS256;
    /// OpenID Connect Core §15.1 makes it the one algorithm a provider must support).
    signing_rs256: Option<(String, EncodingKey)>,
    /// Each key verifies only tokens whose header names its own algorithm.
    verifying: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: serde_json::Value,
}

/// The algorithms idhub keeps a live key for.
const ALGORITHMS: [&str; 2] = ["EdDSA", "RS256"];

/// The node's view of the signing keys, with the verified-token cache.
pub struct KeyRing {
    store: Store,
    issuer: String,
    access_ttl: Duration,
    ring: RwLock<Arc<Ring>>,
    verified: moka::sync::Cache<[u8; 32], Arc<Claims>>,
    /// When the ring was last reloaded because of an unknown `kid` (micros).
    last_miss_reload: std::sync::atomic::AtomicI64,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh Ed25519 key as stored.
fn generate() -> Result<SigningKeyRow, JwtError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| JwtError::Corrupt("cannot generate an Ed25519 key".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| JwtError::Corrupt("generated key does not parse".into()))?;
    let public = pair.public_key().as_ref().to_vec();
    let kid = hex::encode(&Sha256::digest(&public)[..12]);
    Ok(SigningKeyRow {
        kid,
        alg: "EdDSA".into(),
        private_key: base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref()),
        public_key: b64url(&public),
        created_at: now_micros(),
        retired_at: None,
        expires_at: None,
    })
}

/// A fresh RSA-2048 key as stored: PKCS#1 DER (base64) and `n.e` (base64url).
fn generate_rs256() -> Result<SigningKeyRow, JwtError> {
    let rsa = openssl::rsa::Rsa::generate(2048)
        .map_err(|_| JwtError::Corrupt("cannot generate an RSA key".into()))?;
    let der = rsa
        .private_key_to_der()
        .map_err(|_| JwtError::Corrupt("cannot export the RSA key".into()))?;
    let (n, e) = (rsa.n().to_vec(), rsa.e().to_vec());
    let kid = hex::encode(&Sha256::digest(&n)[..12]);
    Ok(SigningKeyRow {
        kid,
        alg: "RS256".into(),
        private_key: base64::engine::general_purpose::STANDARD.encode(der),
        public_key: format!("{}.{}", b64url(&n), b64url(&e)),
        created_at: now_micros(),
        retired_at: None,
        expires_at: None,
    })
}

fn generate_for(alg: &str) -> Result<SigningKeyRow, JwtError> {
    match alg {
        "RS256" => generate_rs256(),
        _ => generate(),
    }
}

fn build_ring(rows: &[SigningKeyRow]) -> Result<Ring, JwtError> {
    let mut verifying = HashMap::new();
    let mut keys = Vec::new();
    let mut signing = None;
    let mut signing_rs256 = None;
    for r in rows {
        if r.alg == "RS256" {
            let (n, e) = r
                .public_key
                .split_once('.')
                .ok_or_else(|| JwtError::Corrupt(format!("key {}: no modulus", r.kid)))?;
            let dk = DecodingKey::from_rsa_components(n, e)
                .map_err(|e| JwtError::Corrupt(format!("key {}: {e}", r.kid)))?;
            verifying.insert(r.kid.clone(), (Algorithm::RS256, dk));
            keys.push(serde_json::json!({
                "kty": "RSA", "n": n, "e": e,
                "kid": r.kid, "alg": "RS256", "use": "sig",
            }));
            if r.retired_at.is_none() && signing_rs256.is_none() {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&r.private_key)
                    .map_err(|e| JwtError::Corrupt(format!("key {}: {e}", r.kid)))?;
                signing_rs256 = Some((r.kid.clone(), EncodingKey::from_rsa_der(&der)));
            }
            continue;
        }
        if r.alg != "EdDSA" {
            continue;
        }
        let dk = DecodingKey::from_ed_components(&r.public_key)
            .map_err(|e| JwtError::Corrupt(format!("key {}: {e}", r.kid)))?;
        verifying.insert(r.kid.clone(), (Algorithm::EdDSA, dk));
        keys.push(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": r.public_key,
            "kid": r.kid, "alg": "EdDSA", "use": "sig",
        }));
        if r.retired_at.is_none() && signing.is_none() {
            let der = base64::engine::general_purpose::STANDARD
                .decode(&r.private_key)
                .map_err(|e| JwtError::Corrupt(format!("key {}: {e}", r.kid)))?;
            signing = Some((r.kid.clone(), EncodingKey::from_ed_der(&der)));
        }
    }
    Ok(Ring {
        signing,
        signing_rs256,
        verifying,
        jwks: serde_json::json!({ "keys": keys }),
    })
}

impl KeyRing {
    /// Loads the key ring, creating the first key when the database has none.
    pub async fn load(
        store: Store,
        issuer: String,
        access_ttl: Duration,
    ) -> Result<Arc<Self>, JwtError> {
        let mut rows = store.signing_keys().await?;
        for alg in ALGORITHMS {
            if !rows.iter().any(|r| r.retired_at.is_none() && r.alg == alg) {
                let key = generate_for(alg)?;
                store.insert_first_signing_key(&key).await?;
                rows = store.signing_keys().await?;
            }
        }
        let ring = build_ring(&rows)?;
        Ok(Arc::new(Self {
            store,
            issuer,
            access_ttl,
            ring: RwLock::new(Arc::new(ring)),
            verified: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(access_ttl)
                .build(),
            last_miss_reload: std::sync::atomic::AtomicI64::new(0),
        }))
    }

    fn current(&self) -> Arc<Ring> {
        match self.ring.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the keys from the database (another node may have rotated).
    pub async fn reload(&self) -> Result<(), JwtError> {
        let ring = Arc::new(build_ring(&self.store.signing_keys().await?)?);
        match self.ring.write() {
            Ok(mut w) => *w = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        Ok(())
    }

    /// Creates a new signing key; the old ones verify until their tokens have expired.
    /// Returns the new key id.
    /// (Both algorithms rotate; the EdDSA key id is returned.)
    pub async fn rotate(&self) -> Result<String, JwtError> {
        let grace = i64::try_from(self.access_ttl.as_micros()).unwrap_or(i64::MAX / 2);
        let mut kid = String::new();
        // EdDSA last, so the newest key listed is the one that signs API tokens.
        for alg in ALGORITHMS.iter().rev().copied() {
            let key = generate_for(alg)?;
            self.store
                .rotate_signing_key(&key, key.created_at.saturating_add(grace) + 60_000_000)
                .await?;
            if alg == "EdDSA" {
                kid = key.kid;
            }
        }
        self.reload().await?;
        // The other nodes sign with the new keys from now on, too. The rotation has committed
        // either way: should the announcement fail, they still find the new keys on their
        // periodic reload (and on the first token naming one), so it is logged, not an error.
        if let Err(e) = self
            .store
            .announce(&[crate::store::write::Invalidate::SigningKeys])
            .await
        {
            tracing::warn!(error = %e, "cannot announce the key rotation to the other nodes");
        }
        Ok(kid)
    }

    /// The JWK Set of every key that still verifies.
    pub fn jwks(&self) -> serde_json::Value {
        self.current().jwks.clone()
    }

    /// The id of the key that signs now.
    pub fn signing_kid(&self) -> Option<String> {
        self.current().signing.as_ref().map(|(k, _)| k.clone())
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// The `iss` of every token this ring signs (the public URL).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs arbitrary claims (the OIDC bridge's ID and access tokens) with the current RS256
    /// key.
    pub fn sign_claims<T: Serialize>(&self, claims: &T) -> Result<String, JwtError> {
        let ring = self.current();
        let (kid, key) = ring.signing_rs256.as_ref().ok_or(JwtError::NoKey)?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).map_err(|e| JwtError::Corrupt(e.to_string()))
    }

    /// Verifies a token signed by this ring for `audience` (issuer, expiry, signature) and
    /// returns its claims.
    pub async fn verify_as<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, JwtError> {
        self.decode_as(token, audience).await
    }

    /// Signs an access token for a session.
    pub fn issue(
        &self,
        tenant_id: &str,
        user_id: &str,
        session_id: &str,
        amr: &[&str],
    ) -> Result<(String, Claims), JwtError> {
        self.sign(
            AUDIENCE,
            self.access_ttl.as_secs(),
            tenant_id,
            user_id,
            session_id,
            amr,
        )
    }

    /// Signs the MFA token of a password sign-in that still needs its second factor.
    pub fn issue_mfa(&self, tenant_id: &str, user_id: &str) -> Result<String, JwtError> {
        self.sign(MFA_AUDIENCE, MFA_TTL_SECS, tenant_id, user_id, "", &["pwd"])
            .map(|(t, _)| t)
    }

    /// Verifies an MFA token (never cached; never accepted as an access token, nor the
    /// reverse: the audiences differ).
    pub async fn verify_mfa(&self, token: &str) -> Result<Claims, JwtError> {
        self.decode(token, MFA_AUDIENCE).await
    }

    fn sign(
        &self,
        audience: &str,
        ttl_secs: u64,
        tenant_id: &str,
        user_id: &str,
        session_id: &str,
        amr: &[&str],
    ) -> Result<(String, Claims), JwtError> {
        let ring = self.current();
        let (kid, key) = ring.signing.as_ref().ok_or(JwtError::NoKey)?;
        let now = u64::try_from(now_micros() / 1_000_000).unwrap_or(0);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: audience.into(),
            sub: user_id.into(),
            tid: tenant_id.into(),
            sid: session_id.into(),
            iat: now,
            exp: now + ttl_secs,
            amr: amr.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| JwtError::Corrupt(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies an access token: signature by a known key, issuer, audience, expiry.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, JwtError> {
        let now = u64::try_from(now_micros() / 1_000_000).unwrap_or(0);
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(c) = self.verified.get(&digest) {
            return if c.exp > now {
                Ok(c)
            } else {
                Err(JwtError::Expired)
            };
        }
        let claims = Arc::new(self.decode(token, AUDIENCE).await?);
        self.verified.insert(digest, claims.clone());
        Ok(claims)
    }

    async fn decode(&self, token: &str, audience: &str) -> Result<Claims, JwtError> {
        self.decode_as(token, audience).await
    }

    async fn decode_as<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Invalid)?;
        if !matches!(header.alg, Algorithm::EdDSA | Algorithm::RS256) {
            return Err(JwtError::Invalid);
        }
        let kid = header.kid.ok_or(JwtError::Invalid)?;
        let mut ring = self.current();
        if !ring.verifying.contains_key(&kid) {
            // Perhaps another node rotated: reload, at most once a second.
            let now_us: Micros = now_micros();
            let last = self
                .last_miss_reload
                .load(std::sync::atomic::Ordering::Relaxed);
            if now_us - last > 1_000_000 {
                self.last_miss_reload
                    .store(now_us, std::sync::atomic::Ordering::Relaxed);
                self.reload().await?;
                ring = self.current();
            }
        }
        let (alg, key) = ring.verifying.get(&kid).ok_or(JwtError::Invalid)?;
        // The key decides the algorithm, never the token's header (no algorithm confusion).
        if header.alg != *alg {
            return Err(JwtError::Invalid);
        }
        let mut v = Validation::new(*alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 0;
        let data = jsonwebtoken::decode::<T>(token, key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
            _ => JwtError::Invalid,
        })?;
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_and_publish_okp_jwks() {
        let row = generate().unwrap();
        let ring = build_ring(std::slice::from_ref(&row)).unwrap();
        let (kid, key) = ring.signing.as_ref().unwrap();
        assert_eq!(kid, &row.kid);
        let claims = Claims {
            iss: "http://x".into(),
            aud: AUDIENCE.into(),
            sub: "u".into(),
            tid: "t".into(),
            sid: "s".into(),
            iat: 1,
            exp: u64::MAX / 2,
            amr: vec!["pwd".into()],
        };
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&h, &claims, key).unwrap();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[AUDIENCE]);
        let got = jsonwebtoken::decode::<Claims>(&token, &ring.verifying[kid].1, &v).unwrap();
        assert_eq!(got.claims, claims);
        let jwk = &ring.jwks["keys"][0];
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert!(jwk.get("d").is_none(), "no private part is published");

        // A token signed by another key does not verify with this one.
        let other = build_ring(&[generate().unwrap()]).unwrap();
        let (_, okey) = other.signing.as_ref().unwrap();
        let forged = jsonwebtoken::encode(&h, &claims, okey).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&forged, &ring.verifying[kid].1, &v).is_err());

        // RS256: signs and verifies; JWKS carries n and e, never a private part.
        let rs = generate_rs256().unwrap();
        let ring = build_ring(&[row, rs.clone()]).unwrap();
        let (rkid, rkey) = ring.signing_rs256.as_ref().unwrap();
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(rkid.clone());
        let token = jsonwebtoken::encode(&h, &claims, rkey).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[AUDIENCE]);
        let (alg, dk) = &ring.verifying[rkid];
        assert_eq!(*alg, Algorithm::RS256);
        assert_eq!(
            jsonwebtoken::decode::<Claims>(&token, dk, &v)
                .unwrap()
                .claims,
            claims
        );
        let jwk = ring.jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kty"] == "RSA")
            .unwrap();
        assert_eq!(jwk["alg"], "RS256");
        assert!(jwk.get("d").is_none() && jwk.get("p").is_none());
    }
}
