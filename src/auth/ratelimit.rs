//! Fixed-window rate limits for the authentication endpoints (per IP address and per
//! account), kept in memory on each node.
//!
//! A window is one minute. The answer carries what the `X-RateLimit-Limit`, `-Remaining` and
//! `-Reset` headers and a 429's `Retry-After` need.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WINDOW_SECS: u64 = 60;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

/// Counters keyed by (scope, key, window).
pub struct RateLimiter {
    counters: moka::sync::Cache<(String, u64), Arc<AtomicU32>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        Self {
            counters: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(2 * WINDOW_SECS))
                .build(),
        }
    }

    /// Counts one request under `key` against `limit` per minute.
    pub fn check(&self, key: &str, limit: u32) -> Decision {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.check_at(key, limit, now)
    }

    fn check_at(&self, key: &str, limit: u32, now_secs: u64) -> Decision {
        let window = now_secs / WINDOW_SECS;
        let counter = self
            .counters
            .get_with((key.to_owned(), window), || Arc::new(AtomicU32::new(0)));
        let used = counter.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        Decision {
            allowed: used <= limit,
            limit,
            remaining: limit.saturating_sub(used),
            reset_secs: (window + 1) * WINDOW_SECS - now_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_window() {
        let rl = RateLimiter::new();
        let t = 120 * 1000 + 10;
        for i in 0..3 {
            let d = rl.check_at("ip:1", 3, t);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
            assert_eq!(d.reset_secs, 50);
        }
        assert!(!rl.check_at("ip:1", 3, t).allowed);
        assert!(rl.check_at("ip:2", 3, t).allowed, "other keys are separate");
        assert!(
            rl.check_at("ip:1", 3, t + 60).allowed,
            "next window starts over"
        );
    }
}
