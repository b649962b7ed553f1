//! Time as validation sees it: injected, never read from the system inside a check.

/// Seconds since the Unix epoch, as the validator's notion of "now".
pub trait Clock: Send + Sync {
    fn now_unix(&self) -> i64;
}

/// A clock that always answers the same instant (tests, replays).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_unix(&self) -> i64 {
        self.0
    }
}

/// Allowed clock skew between the IdP and us, bounded to [0, 10 min]; default 60 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkewWindow(i64);

impl SkewWindow {
    pub const DEFAULT_SECS: i64 = 60;
    pub const MAX_SECS: i64 = 600;

    /// `None` for a negative skew or one over ten minutes.
    pub fn new(secs: i64) -> Option<Self> {
        (0..=Self::MAX_SECS).contains(&secs).then_some(Self(secs))
    }

    pub fn secs(self) -> i64 {
        self.0
    }

    /// Whether `now` lies in `[not_before - skew, not_on_or_after + skew)` (SAML core §2.5.1.2:
    /// NotOnOrAfter is exclusive).
    pub fn within(self, now: i64, not_before: Option<i64>, not_on_or_after: Option<i64>) -> bool {
        let after_start = not_before.is_none_or(|nb| now >= nb - self.0);
        let before_end = not_on_or_after.is_none_or(|end| now < end + self.0);
        after_start && before_end
    }
}

impl Default for SkewWindow {
    fn default() -> Self {
        Self(Self::DEFAULT_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_bounds() {
        assert!(SkewWindow::new(-1).is_none());
        assert!(SkewWindow::new(601).is_none());
        assert_eq!(SkewWindow::default().secs(), 60);
    }

    #[test]
    fn window_edges() {
        let w = SkewWindow::new(60).unwrap();
        assert!(w.within(1000, Some(1050), Some(2000)));
        assert!(!w.within(1000, Some(1061), None));
        assert!(w.within(2059, None, Some(2000)));
        assert!(!w.within(2060, None, Some(2000)));
        assert_eq!(FixedClock(5).now_unix(), 5);
    }
}
