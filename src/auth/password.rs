//! Password hashing: argon2id with the OWASP-recommended parameters (m = 19 MiB, t = 2, p = 1,
//! the `argon2` crate's defaults), always on the blocking pool so a hash never stalls the
//! async workers.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use std::sync::LazyLock;

/// A hash of a random password, verified against when the account does not exist so a
/// failed login takes the same time whether or not the user name is known.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(uuid::Uuid::new_v4().to_string().as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("hashing task failed")]
    Join,
}

/// Hashing runs on at most this many blocking threads at once (the core count), so a login
/// flood queues here instead of taking every core from provisioning.
static HASH_PERMITS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(cores)
});

async fn permit() -> Result<tokio::sync::SemaphorePermit<'static>, PasswordError> {
    HASH_PERMITS
        .acquire()
        .await
        .map_err(|_| PasswordError::Join)
}

/// Hashes a password (PHC string).
pub async fn hash(password: String) -> Result<String, PasswordError> {
    let _permit = permit().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|_| PasswordError::Join)?
}

/// Verifies a password against a stored hash, or against a dummy hash when there is none.
/// Returns false for a malformed stored hash rather than failing the request.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, PasswordError> {
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
    let _permit = permit().await?;
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|_| PasswordError::Join)?;
    Ok(ok && known)
}

/// Whether a stored hash was made with other parameters than today's (argon2id, OWASP
/// parameters), so it should be replaced after the next successful verification.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(h) = PasswordHash::new(stored) else {
        return true;
    };
    let current = argon2::Params::default();
    let get = |name: &str| {
        h.params
            .get_decimal(name)
            .is_none_or(|v| v != param_value(&current, name))
    };
    h.algorithm.as_str() != "argon2id" || get("m") || get("t") || get("p")
}

fn param_value(p: &argon2::Params, name: &str) -> u32 {
    match name {
        "m" => p.m_cost(),
        "t" => p.t_cost(),
        _ => p.p_cost(),
    }
}

/// A random password for the bootstrap administrator (24 URL-safe characters).
pub fn generate() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong".into(), Some(h)).await.unwrap());
        assert!(!verify("x".into(), None).await.unwrap());
        assert!(!verify("x".into(), Some("not a hash".into())).await.unwrap());
    }

    #[tokio::test]
    async fn old_parameters_need_a_rehash() {
        let h = hash("pw".into()).await.unwrap();
        assert!(!needs_rehash(&h));
        let weak = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert!(needs_rehash(&weak));
        assert!(needs_rehash("garbage"));
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        assert_eq!(generate().len(), 24);
        assert_ne!(generate(), generate());
    }
}
