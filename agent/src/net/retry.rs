//! The one retry policy of the agent's own network calls (the AWS SDK has its own): bounded
//! attempts, each with a timeout, capped exponential backoff with jitter, and a total deadline.
//! Callers say which outcomes are worth another attempt; [`is_retryable_status`] and
//! [`is_retryable_error`] are the common answer for HTTP.

use std::future::Future;
use std::time::{Duration, Instant};

/// Attempts, timeouts and backoff of one logical call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call (at least 1).
    pub max_attempts: u32,
    /// Backoff after the first failure; doubled per failure.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
    /// Total time of one call, attempts and backoffs included.
    pub total_deadline: Duration,
}

/// A policy for calls that give up quickly: 3 attempts, 200 ms doubling to 2 s, 5 s per
/// attempt, 20 s in all.
pub const QUICK: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    initial_backoff: Duration::from_millis(200),
    max_backoff: Duration::from_secs(2),
    attempt_timeout: Duration::from_secs(5),
    total_deadline: Duration::from_secs(20),
};

impl Default for RetryPolicy {
    fn default() -> Self {
        QUICK
    }
}

impl RetryPolicy {
    /// The backoff ceiling after the `failures`-th failure (1-based): initial * 2^(failures-1),
    /// capped at `max_backoff`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }

    /// The wait after the `failures`-th failure: a random point in the upper half of
    /// [`RetryPolicy::backoff`] ("equal jitter"), so that nodes booted together do not retry
    /// in step, and never shorter than half the ceiling.
    pub fn jittered_backoff(&self, failures: u32) -> Duration {
        let ceiling = self.backoff(failures);
        let half = ceiling / 2;
        half + half.mul_f64(jitter_fraction())
    }

    /// Runs `attempt` until it succeeds, fails for good, the attempts run out or the deadline
    /// passes. Each attempt is bounded by `attempt_timeout` (a timeout counts as a retryable
    /// failure, reported through `on_timeout`). Returns the last outcome and how many attempts
    /// were made.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut attempt: F,
        on_timeout: impl Fn(Duration) -> E,
    ) -> (Result<T, E>, u32)
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Attempt<T, E>>,
    {
        let started = Instant::now();
        let deadline = started + self.total_deadline;
        let mut failures = 0;
        loop {
            let n = failures + 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let bound = self.attempt_timeout.min(left);
            let outcome = match tokio::time::timeout(bound, attempt(n)).await {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Retry(on_timeout(bound)),
            };
            let err = match outcome {
                Attempt::Done(v) => return (Ok(v), n),
                Attempt::Fail(e) => return (Err(e), n),
                Attempt::Retry(e) => e,
            };
            failures = n;
            let wait = self.jittered_backoff(failures);
            if failures >= self.max_attempts.max(1) || Instant::now() + wait >= deadline {
                return (Err(err), n);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// Success.
    Done(T),
    /// A failure worth another attempt.
    Retry(E),
    /// A failure no retry will fix.
    Fail(E),
}

/// HTTP statuses worth another attempt: request timeout, throttling, and server errors
/// other than "not implemented".
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status) && status != 501
}

/// Transport errors worth another attempt: timeouts, refused or reset connections, and
/// failures while sending or reading. A TLS verification failure or a malformed URL is not.
pub fn is_retryable_error(err: &reqwest::Error) -> bool {
    if err.is_builder() || err.is_redirect() || err.is_status() {
        return false;
    }
    if tls_rejection(err).is_some() {
        return false;
    }
    err.is_timeout() || err.is_connect() || err.is_request() || err.is_body() || err.is_decode()
}

/// The certificate-verification error somewhere in `err`'s causes, as text. An `io::Error`
/// shows the error it wraps only through `get_ref` (its `source()` skips that error and goes to
/// the wrapped error's own cause), and reqwest's connector wraps the TLS stream's `io::Error`
/// in another one; so each cause is also looked into through every `io::Error` layer.
pub fn tls_rejection(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        let mut layer = Some(e);
        while let Some(candidate) = layer {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>()
                && matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                )
            {
                return Some(tls.to_string());
            }
            layer = candidate
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn std::error::Error + 'static));
        }
        cause = e.source();
    }
    None
}

/// A number in [0, 1) that differs between calls and between processes (the standard
/// library's randomly keyed hasher over a counter: no crate needed for jitter).
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(4),
            max_backoff: Duration::from_millis(10),
            attempt_timeout: Duration::from_millis(200),
            total_deadline: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_in_the_upper_half() {
        let p = fast();
        assert_eq!(p.backoff(1), Duration::from_millis(4));
        assert_eq!(p.backoff(2), Duration::from_millis(8));
        assert_eq!(p.backoff(3), Duration::from_millis(10));
        assert_eq!(p.backoff(40), Duration::from_millis(10));
        for n in 1..50 {
            let j = p.jittered_backoff(n);
            assert!(j >= p.backoff(n) / 2 && j <= p.backoff(n), "{j:?}");
        }
    }

    #[tokio::test]
    async fn attempts_stop_at_success_at_a_final_failure_or_at_the_limit() {
        let p = fast();
        let (r, n) = p
            .run(
                |n| async move {
                    if n < 3 {
                        Attempt::Retry("busy")
                    } else {
                        Attempt::Done(n)
                    }
                },
                |_| "timeout",
            )
            .await;
        assert_eq!((r, n), (Ok(3), 3));
        let (r, n) = p
            .run(|_| async { Attempt::<(), _>::Fail("no") }, |_| "timeout")
            .await;
        assert_eq!((r, n), (Err("no"), 1));
        let (r, n) = p
            .run(|_| async { Attempt::<(), _>::Retry("busy") }, |_| "timeout")
            .await;
        assert_eq!((r, n), (Err("busy"), 4));
    }

    #[tokio::test]
    async fn a_slow_attempt_times_out_and_is_retried() {
        let p = RetryPolicy {
            attempt_timeout: Duration::from_millis(20),
            ..fast()
        };
        let (r, n) = p
            .run(
                |n| async move {
                    if n == 1 {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Attempt::<u32, String>::Done(n)
                },
                |d| format!("timed out after {d:?}"),
            )
            .await;
        assert_eq!((r, n), (Ok(2), 2));
    }

    #[test]
    fn a_certificate_error_is_found_through_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(inner);
        assert_eq!(
            tls_rejection(&outer).as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_rejection(&std::io::Error::other(plain)), None);
    }

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}
