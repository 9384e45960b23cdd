//! When to try a target again, and when to give up.

use std::time::Duration;

/// The retry policy shared by every target of one wait phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Overall deadline of the wait phase; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Delay after the first failed attempt.
    pub interval: Duration,
    /// Cap of the doubling delay; equal to `interval` means no backoff.
    pub max_interval: Duration,
    /// Retries after the first failed attempt; `None` is unlimited.
    pub retries: Option<u32>,
    /// Bound on one attempt (further bounded by the deadline).
    pub attempt_timeout: Duration,
}

impl Policy {
    /// The delay after `failed` consecutive failed attempts (1 = the first failure).
    pub fn delay(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(32);
        self.interval
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_interval)
    }

    /// Whether a target that has made `attempts` attempts may make another.
    pub fn may_retry(&self, attempts: u32) -> bool {
        self.retries.is_none_or(|r| attempts <= r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(interval: u64, max: u64, retries: Option<u32>) -> Policy {
        Policy {
            timeout: None,
            interval: Duration::from_millis(interval),
            max_interval: Duration::from_millis(max),
            retries,
            attempt_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn constant_without_backoff() {
        let p = policy(100, 100, None);
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(50), Duration::from_millis(100));
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let p = policy(100, 1000, None);
        let got: Vec<u128> = (1..=6).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn retries_count_after_the_first_attempt() {
        let p = policy(100, 100, Some(2));
        assert!(p.may_retry(1) && p.may_retry(2));
        assert!(!p.may_retry(3));
        assert!(!policy(100, 100, Some(0)).may_retry(1));
    }
}
