//! The one retry policy of the agent's own network calls (the AWS SDK has its own): bounded
//! attempts, each with a timeout, capped exponential backoff with jitter, and a total deadline.
//! Callers say which outcomes are worth another attempt; [`is_retryable_status`] and
//! [`is_retryable_error`] are the common answer for HTTP. Polling loops that wait for a state
//! rather than retry a failure use [`RetryPolicy::jittered_backoff`] for their pauses.

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

/// An `attempt_timeout` or `total_deadline` that never passes: for downloads, which bound
/// themselves by progress (an idle timeout between chunks) rather than by their total time.
pub const UNBOUNDED: Duration = Duration::MAX;

impl Default for RetryPolicy {
    fn default() -> Self {
        QUICK
    }
}

impl RetryPolicy {
    /// A policy for waiting until something is there (a resource being created, a service
    /// starting): attempts until `total` has passed, pauses from `initial_backoff` doubling to
    /// `max_backoff`, each attempt bounded by `total` too (set `attempt_timeout` for less).
    pub const fn until(
        total: Duration,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> RetryPolicy {
        RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff,
            max_backoff,
            attempt_timeout: total,
            total_deadline: total,
        }
    }

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
    /// passes. `attempt` gets the attempt number (1-based). Each attempt is bounded by
    /// `attempt_timeout` and by what is left of `total_deadline`; a timeout counts as a
    /// retryable failure, made by `on_timeout(attempt number, bound)`. Returns the last outcome
    /// and how many attempts were made.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut attempt: F,
        on_timeout: impl Fn(u32, Duration) -> E,
    ) -> (Result<T, E>, u32)
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Attempt<T, E>>,
    {
        // `None`: no deadline (UNBOUNDED, or too far away to represent).
        let deadline = Instant::now().checked_add(self.total_deadline);
        let mut backoffs = 0;
        let mut n = 0;
        loop {
            n += 1;
            let bound = match deadline {
                Some(d) => self
                    .attempt_timeout
                    .min(d.saturating_duration_since(Instant::now())),
                None => self.attempt_timeout,
            };
            let outcome = match tokio::time::timeout(bound, attempt(n)).await {
                Ok(outcome) => outcome,
                Err(_) => Attempt::Retry(on_timeout(n, bound)),
            };
            let (err, wait) = match outcome {
                Attempt::Done(v) => return (Ok(v), n),
                Attempt::Fail(e) => return (Err(e), n),
                Attempt::RetryNow(e) => (e, Duration::ZERO),
                Attempt::Retry(e) => {
                    backoffs += 1;
                    (e, self.jittered_backoff(backoffs))
                }
            };
            let out_of_time = deadline.is_some_and(|d| Instant::now() + wait >= d);
            if n >= self.max_attempts.max(1) || out_of_time {
                return (Err(err), n);
            }
            tracing::trace!(attempt = n, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// Success.
    Done(T),
    /// A failure worth another attempt, after a backoff.
    Retry(E),
    /// A failure the next attempt fixes by itself (a refused session token, fetched afresh):
    /// retried at once, without a backoff, but still counted as an attempt.
    RetryNow(E),
    /// A failure no retry will fix.
    Fail(E),
}

impl<T, E> Attempt<T, E> {
    /// A success passed on to `next` (a check of the answer, which may still fail or ask for
    /// another attempt); failures as they are.
    pub fn and_then<U>(self, next: impl FnOnce(T) -> Attempt<U, E>) -> Attempt<U, E> {
        match self {
            Attempt::Done(v) => next(v),
            Attempt::Retry(e) => Attempt::Retry(e),
            Attempt::RetryNow(e) => Attempt::RetryNow(e),
            Attempt::Fail(e) => Attempt::Fail(e),
        }
    }
}

/// Why an HTTP attempt got no answer: the transport's error, or the attempt's time ran out.
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// Connecting, sending or reading failed.
    #[error(transparent)]
    Http(reqwest::Error),
    /// The attempt took longer than the policy allows.
    #[error("no answer within {0:.1?}")]
    TimedOut(Duration),
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
/// hides its inner error from `source()`, and TLS streams nest them, so each layer of
/// `io::Error` is looked into too.
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
                |_, _| "timeout",
            )
            .await;
        assert_eq!((r, n), (Ok(3), 3));
        let (r, n) = p
            .run(|_| async { Attempt::<(), _>::Fail("no") }, |_, _| "timeout")
            .await;
        assert_eq!((r, n), (Err("no"), 1));
        let (r, n) = p
            .run(
                |_| async { Attempt::<(), _>::Retry("busy") },
                |_, _| "timeout",
            )
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
                |_, d| format!("timed out after {d:?}"),
            )
            .await;
        assert_eq!((r, n), (Ok(2), 2));
    }

    #[tokio::test]
    async fn an_immediate_retry_counts_as_an_attempt_but_waits_for_nothing() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
            ..fast()
        };
        let started = Instant::now();
        let (r, n) = p
            .run(
                |n| async move {
                    if n < 3 {
                        Attempt::RetryNow("token refused")
                    } else {
                        Attempt::Done(n)
                    }
                },
                |_, _| "timeout",
            )
            .await;
        assert_eq!((r, n), (Ok(3), 3));
        assert!(started.elapsed() < Duration::from_secs(5));
        let (r, n) = p
            .run(
                |_| async { Attempt::<(), _>::RetryNow("token refused") },
                |_, _| "timeout",
            )
            .await;
        assert_eq!((r, n), (Err("token refused"), 4));
    }

    #[tokio::test]
    async fn the_deadline_ends_the_attempts_and_unbounded_means_no_deadline() {
        let p = RetryPolicy::until(
            Duration::from_millis(60),
            Duration::from_millis(4),
            Duration::from_millis(10),
        );
        let started = Instant::now();
        let (r, n) = p
            .run(
                |_| async { Attempt::<(), _>::Retry("busy") },
                |_, _| "timeout",
            )
            .await;
        assert_eq!(r, Err("busy"));
        assert!(n > 1, "{n}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let p = RetryPolicy {
            attempt_timeout: UNBOUNDED,
            total_deadline: UNBOUNDED,
            ..fast()
        };
        let (r, n) = p
            .run(
                |n| async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    if n < 2 {
                        Attempt::Retry("busy")
                    } else {
                        Attempt::Done(n)
                    }
                },
                |_, _| "timeout",
            )
            .await;
        assert_eq!((r, n), (Ok(2), 2));
    }

    #[test]
    fn a_check_of_the_answer_can_turn_it_into_a_failure() {
        let wanted = |v: u32| {
            if v == 2 {
                Attempt::Done("two")
            } else {
                Attempt::Retry("not yet")
            }
        };
        assert!(matches!(
            Attempt::<u32, &str>::Done(2).and_then(wanted),
            Attempt::Done("two")
        ));
        assert!(matches!(
            Attempt::<u32, &str>::Done(1).and_then(wanted),
            Attempt::Retry("not yet")
        ));
        assert!(matches!(
            Attempt::<u32, &str>::Fail("no").and_then(wanted),
            Attempt::Fail("no")
        ));
    }

    #[test]
    fn a_certificate_rejection_is_found_inside_nested_io_errors() {
        let rejected = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = std::io::Error::other(std::io::Error::other(rejected));
        let found = tls_rejection(&nested).expect("found");
        assert!(found.contains("UnknownIssuer"), "{found}");
        let other = std::io::Error::other(rustls::Error::HandshakeNotComplete);
        assert_eq!(tls_rejection(&other), None);
        assert_eq!(tls_rejection(&std::io::Error::other("reset")), None);
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
