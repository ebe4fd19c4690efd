//! The IMDS pollers: one task per path, each on its own interval, reporting a reading only
//! when it changes. A 404 is "nothing announced". A failed read backs off (the interval
//! doubles up to [`MAX_BACKOFF`]) and is logged once per distinct error, then once when IMDS
//! answers again; every failure counts in `eksnode_lifecycle_imds_errors_total{path}`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::EventKind;
use super::events::{REBALANCE_PATH, SCHEDULED_PATH, SPOT_PATH};
use crate::facts::imds::{Imds, RetryPolicy, TARGET_LIFECYCLE_STATE, meta};

/// Longest pause between reads after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One read of a watcher: each fits well inside a one-second poll.
pub const WATCH_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    initial_backoff: Duration::from_millis(50),
    max_backoff: Duration::from_millis(100),
    attempt_timeout: Duration::from_secs(1),
    total_deadline: Duration::from_secs(2),
};

/// A changed reading of one path: the body (`None`: 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Whose path.
    pub kind: EventKind,
    /// The body, `None` for a 404.
    pub body: Option<Vec<u8>>,
}

/// The meta-data leaf each kind polls.
pub fn leaf(kind: EventKind) -> &'static str {
    match kind {
        EventKind::SpotInterruption => SPOT_PATH,
        EventKind::RebalanceRecommendation => REBALANCE_PATH,
        EventKind::ScheduledMaintenance => SCHEDULED_PATH,
        EventKind::AsgTermination => TARGET_LIFECYCLE_STATE,
    }
}

/// The pause after `failures` failed reads in a row.
pub fn pause(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let factor = 2u32.saturating_pow(failures.min(16));
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

/// What makes two failed reads "the same error": the cause, without the attempt count and
/// the time spent, which differ every time.
fn error_key(e: &crate::facts::imds::Error) -> String {
    match e {
        crate::facts::imds::Error::Unreachable { last_cause, .. } => last_cause.clone(),
        other => other.to_string(),
    }
}

/// Polls `kind`'s path every `interval` until `tx` closes.
pub fn spawn(
    imds: Arc<Imds>,
    kind: EventKind,
    interval: Duration,
    errors: prometheus::IntCounter,
    tx: mpsc::Sender<Reading>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let path = meta(leaf(kind));
        let mut last: Option<Option<Vec<u8>>> = None;
        let mut failures = 0u32;
        let mut last_error = String::new();
        loop {
            match imds.get_optional(&path).await {
                Ok(body) => {
                    if failures > 0 {
                        tracing::info!(path = %path, failures, "IMDS answers again");
                    }
                    failures = 0;
                    last_error.clear();
                    if last.as_ref() != Some(&body) {
                        last = Some(body.clone());
                        if tx.send(Reading { kind, body }).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    errors.inc();
                    failures = failures.saturating_add(1);
                    let key = error_key(&e);
                    if key != last_error {
                        tracing::warn!(path = %path, error = %crate::model::text::error_chain(&e), retry_in = ?pause(interval, failures),
                            "lifecycle watcher cannot read IMDS; backing off (logged again only if the error changes)");
                        last_error = key;
                    } else {
                        tracing::debug!(path = %path, failures, "IMDS read failed again");
                    }
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(pause(interval, failures)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_to_a_cap() {
        let i = Duration::from_secs(1);
        assert_eq!(pause(i, 0), i);
        assert_eq!(pause(i, 1), Duration::from_secs(2));
        assert_eq!(pause(i, 3), Duration::from_secs(8));
        assert_eq!(pause(i, 40), MAX_BACKOFF);
        let slow = Duration::from_secs(60);
        assert_eq!(pause(slow, 2), slow, "a long interval is never shortened");
    }
}
