//! Password hashing: argon2id with the OWASP-recommended parameters (m = 19 MiB, t = 2, p = 1,
//! the `argon2` crate's defaults), always on a dedicated pool of hashing threads so a hash never
//! stalls the async workers.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString, rand_core::OsRng};
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

type Job = Box<dyn FnOnce() + Send>;

/// The hashing pool: one thread per core taking jobs from one queue, so a login flood queues
/// here instead of taking every core from provisioning. A thread that finishes a hash takes
/// the next queued one at once; with a semaphore over the blocking pool, every hand-over went
/// through the async scheduler and left a core idle meanwhile.
static POOL: LazyLock<Option<std::sync::Mutex<std::sync::mpsc::Sender<Job>>>> =
    LazyLock::new(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut started = 0;
        for i in 0..cores {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("idhub-argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else { return };
                        // A failed job drops its reply channel; the caller gets `Join`.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then(|| std::sync::Mutex::new(tx))
    });

/// Runs `f` on the hashing pool.
async fn on_pool<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(f());
    });
    let pool = POOL.as_ref().ok_or(PasswordError::Join)?;
    match pool.lock() {
        Ok(tx) => tx.send(job),
        Err(poisoned) => poisoned.into_inner().send(job),
    }
    .map_err(|_| PasswordError::Join)?;
    answer.await.map_err(|_| PasswordError::Join)
}

/// Hashes a password (PHC string).
pub async fn hash(password: String) -> Result<String, PasswordError> {
    on_pool(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await?
}

/// Verifies a password against a stored hash, or against a dummy hash when there is none.
/// Returns false for a malformed stored hash rather than failing the request.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, PasswordError> {
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
    let ok = on_pool(move || verify_blocking(password.as_bytes(), &stored)).await?;
    Ok(ok && known)
}

thread_local! {
    /// The argon2 working memory of this hashing thread, reused across
    /// verifications: allocating and zeroing 19 MiB per sign-in costs more than a tenth of
    /// the hash itself. Argon2 overwrites every block it uses, so nothing leaks between
    /// verifications.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Verifies `password` against a PHC-format argon2 hash (constant-time comparison of the
/// output). A malformed hash verifies nothing.
fn verify_blocking(password: &[u8], stored: &str) -> bool {
    let Ok(h) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(h.algorithm) else {
        return false;
    };
    let version = h
        .version
        .and_then(|v| argon2::Version::try_from(v).ok())
        .unwrap_or_default();
    let expected = expected.as_bytes();
    let Ok(params) = argon2::Params::try_from(&h).and_then(|p| {
        argon2::Params::new(p.m_cost(), p.t_cost(), p.p_cost(), Some(expected.len()))
            .map_err(argon2::password_hash::Error::from)
    }) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let need = argon.params().block_count();
    let hashed = BLOCKS.with(|b| {
        let mut blocks = b.borrow_mut();
        if blocks.len() < need {
            blocks.resize(need, argon2::Block::default());
        }
        argon
            .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..need])
            .is_ok()
    });
    hashed && bool::from(subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected))
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

    #[test]
    fn reused_memory_verification_agrees_with_the_crate() {
        use argon2::password_hash::PasswordVerifier;
        for params in [
            argon2::Params::default(),
            argon2::Params::new(8192, 1, 1, None).unwrap(),
            argon2::Params::new(4096, 3, 2, Some(64)).unwrap(),
        ] {
            for alg in [argon2::Algorithm::Argon2id, argon2::Algorithm::Argon2i] {
                let a = Argon2::new(alg, argon2::Version::V0x13, params.clone());
                let h = a
                    .hash_password(b"pw", &SaltString::generate(&mut OsRng))
                    .unwrap()
                    .to_string();
                let parsed = PasswordHash::new(&h).unwrap();
                assert!(a.verify_password(b"pw", &parsed).is_ok());
                // Twice on this thread (memory reused, larger then smaller).
                assert!(verify_blocking(b"pw", &h), "{h}");
                assert!(verify_blocking(b"pw", &h), "{h}");
                assert!(!verify_blocking(b"pX", &h), "{h}");
            }
        }
        assert!(!verify_blocking(
            b"pw",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$"
        ));
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
