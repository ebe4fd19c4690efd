//! The lifecycle metrics, registered on the daemon's registry: events by kind, drain
//! durations, pods evicted, deleted and failed, IMDS read errors by path.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};

use super::state::Counts;

/// Buckets of `eksnode_drain_duration_seconds`: a spot drain fits in two minutes, an Auto
/// Scaling drain in an hour or two.
const DRAIN_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 7200.0,
];

/// The lifecycle metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `eksnode_lifecycle_events_total{kind}`.
    pub events: IntCounterVec,
    /// `eksnode_drain_duration_seconds`.
    pub drain_duration: Histogram,
    /// `eksnode_drain_pods_total{result}`: evicted, deleted, failed.
    pub drain_pods: IntCounterVec,
    /// `eksnode_lifecycle_imds_errors_total{path}`.
    pub imds_errors: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them on the daemon's registry.
    pub fn register(on: &crate::report::metrics::Metrics) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            events: IntCounterVec::new(
                Opts::new(
                    "eksnode_lifecycle_events_total",
                    "EC2 lifecycle events acted on, by kind (spot-interruption, rebalance-recommendation, scheduled-maintenance, asg-termination).",
                ),
                &["kind"],
            )?,
            drain_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "eksnode_drain_duration_seconds",
                    "Duration of the node drains for lifecycle events, in seconds.",
                )
                .buckets(DRAIN_BUCKETS.to_vec()),
            )?,
            drain_pods: IntCounterVec::new(
                Opts::new(
                    "eksnode_drain_pods_total",
                    "Pods removed by lifecycle drains, by result: evicted (Eviction API), deleted (blocked by a PodDisruptionBudget until the cut-off), failed (left at the deadline).",
                ),
                &["result"],
            )?,
            imds_errors: IntCounterVec::new(
                Opts::new(
                    "eksnode_lifecycle_imds_errors_total",
                    "Failed reads of the IMDS paths the lifecycle watchers poll, by path.",
                ),
                &["path"],
            )?,
        };
        on.register(Box::new(m.events.clone()))?;
        on.register(Box::new(m.drain_duration.clone()))?;
        on.register(Box::new(m.drain_pods.clone()))?;
        on.register(Box::new(m.imds_errors.clone()))?;
        Ok(m)
    }

    /// Starts the counters at the persisted totals (a restart does not reset or double them).
    pub fn restore(&self, counts: &Counts) {
        for (kind, n) in &counts.events {
            self.events.with_label_values(&[kind]).inc_by(*n);
        }
        for (result, n) in [
            ("evicted", counts.evicted),
            ("deleted", counts.deleted),
            ("failed", counts.failed),
        ] {
            self.drain_pods.with_label_values(&[result]).inc_by(n);
        }
    }
}
