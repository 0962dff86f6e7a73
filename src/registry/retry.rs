//! When to try a registry request again, and how long to wait first.
//!
//! Connection errors, 408, 429 and 5xx but 501/505 are worth another try; the wait is
//! exponential with full jitter (so a burst of clients does not retry in lockstep), and a
//! `Retry-After` from the registry is honoured, within a cap.
//!
//! One [`RetryBudget`] covers one operation (a manifest read, a blob copy): the request retries
//! inside it and the restarts of a whole blob transfer draw on the same attempts, so retries
//! never multiply.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

/// How many times and how long to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait ceiling before the first retry; doubled for each later one.
    pub base: Duration,
    /// No wait is longer than this, whatever `Retry-After` says.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 6, base: Duration::from_millis(200), max_delay: Duration::from_secs(30) }
    }
}

/// Whether an HTTP status is worth another try.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry), or None when the attempts
    /// are used up. `jitter` is a uniform draw in [0, 1); `retry_after` is the registry's ask.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
        if retry + 1 >= self.max_attempts {
            return None;
        }
        let ceiling = self.base.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX)).min(self.max_delay);
        let backoff = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
        Some(match retry_after {
            Some(asked) => asked.min(self.max_delay).max(backoff),
            None => backoff,
        })
    }
}

/// The retries left to one operation, shared by every request it makes.
#[derive(Debug)]
pub struct RetryBudget {
    policy: RetryPolicy,
    retries: AtomicU32,
}

impl RetryBudget {
    /// A fresh budget of `policy.max_attempts` attempts.
    pub fn new(policy: RetryPolicy) -> Self {
        Self { policy, retries: AtomicU32::new(0) }
    }

    /// Takes one retry: the wait before it, or None when the attempts are used up.
    pub fn next_wait(&self, retry_after: Option<Duration>) -> Option<Duration> {
        let retry = self.retries.fetch_add(1, Ordering::SeqCst);
        let wait = self.policy.delay(retry, retry_after, jitter());
        if wait.is_none() {
            // Stay exhausted however often it is asked.
            self.retries.store(retry, Ordering::SeqCst);
        }
        wait
    }
}

/// A draw in [0, 1) for the backoff's jitter: the clock's nanoseconds are random enough to
/// keep clients out of lockstep, and need no generator.
fn jitter() -> f64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

/// A `Retry-After` value: delta-seconds or an HTTP-date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statuses_are_retried() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 201, 202, 400, 401, 403, 404, 412, 501, 505] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn exponential_with_full_jitter_capped() {
        let policy =
            RetryPolicy { max_attempts: 5, base: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        assert_eq!(policy.delay(0, None, 0.999_999).unwrap().as_millis(), 99);
        assert_eq!(policy.delay(2, None, 0.5).unwrap(), Duration::from_millis(200));
        assert_eq!(policy.delay(3, None, 1.0).unwrap(), Duration::from_millis(800));
        assert_eq!(policy.delay(0, None, 0.0).unwrap(), Duration::ZERO);
        assert_eq!(policy.delay(4, None, 0.5), None, "five attempts: four retries");
        let huge = RetryPolicy { max_attempts: 100, ..policy };
        assert_eq!(huge.delay(60, None, 1.0).unwrap(), Duration::from_secs(1), "no overflow, capped");
    }

    #[test]
    fn one_budget_holds_every_retry_of_an_operation() {
        let policy = RetryPolicy { max_attempts: 4, base: Duration::ZERO, max_delay: Duration::ZERO };
        let budget = RetryBudget::new(policy);
        let granted = (0..10).filter(|_| budget.next_wait(None).is_some()).count();
        assert_eq!(granted, 3, "four attempts: three retries, whoever asks");
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, Some(Duration::from_secs(3)), 0.1).unwrap(), Duration::from_secs(3));
        assert_eq!(policy.delay(0, Some(Duration::from_secs(3600)), 0.1).unwrap(), Duration::from_secs(30));
        let now = httpdate::parse_http_date("Sun, 22 Nov 2026 05:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 22 Nov 2026 05:00:10 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 22 Nov 2026 04:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
