//! The `eksnode_*` metrics and the scrape: our registry plus the host collectors, encoded in
//! the Prometheus text format (0.0.4) that node_exporter serves and `promtool` lints.

use prometheus::{
    Encoder as _, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::host::{self, HostPaths};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric the daemon updates.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// 1 when the last run of a check was healthy.
    pub check_up: IntGaugeVec,
    /// Duration of the last run of a check.
    pub check_duration: GaugeVec,
    /// Runs of a check.
    pub check_runs: IntCounterVec,
    /// 1 when a condition is True on the Node (as last written).
    pub condition_status: IntGaugeVec,
    /// Problems seen, by reason.
    pub problems: IntCounterVec,
    /// kubelet healthz answers ok.
    pub kubelet_up: IntGauge,
    /// containerd answers on its socket.
    pub containerd_up: IntGauge,
    /// 1 when a systemd unit the checks depend on is active.
    pub unit_active: IntGaugeVec,
    /// Automatic restarts of a systemd unit (systemd's `NRestarts`).
    pub unit_restarts: IntCounterVec,
    /// The container runtime's CRI conditions (RuntimeReady, NetworkReady).
    pub runtime_condition: IntGaugeVec,
    /// IPs ipamd holds for pods.
    pub cni_ips_total: IntGauge,
    /// IPs ipamd assigned to pods.
    pub cni_ips_assigned: IntGauge,
    /// notAfter of the kubelet client certificate.
    pub cert_expiry: IntGauge,
    /// When the node's IAM credentials expire, by source.
    pub iam_expiry: IntGaugeVec,
    /// Condition writes by result.
    pub condition_writes: IntCounterVec,
    /// Events written by result.
    pub events: IntCounterVec,
    host: HostPaths,
    phases_file: std::path::PathBuf,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Registers every metric.
    pub fn new(host: HostPaths) -> Result<Self, prometheus::Error> {
        Self::with_phases_file(host, super::phases::DEFAULT_PATH.into())
    }

    /// Registers every metric; bootstrap phase durations come from `phases_file`.
    pub fn with_phases_file(
        host: HostPaths,
        phases_file: std::path::PathBuf,
    ) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let check_up = IntGaugeVec::new(
            opts(
                "eksnode_check_up",
                "Whether the last run of a health check found the node healthy (1) or not (0).",
            ),
            &["check"],
        )?;
        let check_duration = GaugeVec::new(
            opts(
                "eksnode_check_duration_seconds",
                "Duration of the last run of a health check in seconds.",
            ),
            &["check"],
        )?;
        let check_runs = IntCounterVec::new(
            opts("eksnode_check_runs_total", "Runs of a health check."),
            &["check"],
        )?;
        let condition_status = IntGaugeVec::new(
            opts(
                "eksnode_condition_status",
                "Whether a node condition owned by the agent is True (1) or False (0) on the Node.",
            ),
            &["condition"],
        )?;
        let problems = IntCounterVec::new(
            opts("eksnode_problems_total", "Problems detected, by reason."),
            &["reason"],
        )?;
        let kubelet_up = IntGauge::with_opts(opts(
            "eksnode_kubelet_up",
            "Whether kubelet's healthz endpoint answers ok.",
        ))?;
        let containerd_up = IntGauge::with_opts(opts(
            "eksnode_containerd_up",
            "Whether containerd answers the CRI Status call and reports RuntimeReady.",
        ))?;
        let unit_active = IntGaugeVec::new(
            opts(
                "eksnode_systemd_unit_active",
                "Whether a systemd unit the checks depend on is active (1) or not (0), from systemd's ActiveState.",
            ),
            &["unit"],
        )?;
        let unit_restarts = IntCounterVec::new(
            opts(
                "eksnode_systemd_unit_restarts_total",
                "Automatic restarts of a systemd unit, from systemd's NRestarts.",
            ),
            &["unit"],
        )?;
        let runtime_condition = IntGaugeVec::new(
            opts(
                "eksnode_container_runtime_condition",
                "Whether a CRI condition of the container runtime (RuntimeReady, NetworkReady) holds (1) or not (0).",
            ),
            &["condition"],
        )?;
        let cni_ips_total = IntGauge::with_opts(opts(
            "eksnode_vpc_cni_ips",
            "Pod IPs held by the VPC CNI's ipamd.",
        ))?;
        let cni_ips_assigned = IntGauge::with_opts(opts(
            "eksnode_vpc_cni_assigned_ips",
            "Pod IPs the VPC CNI's ipamd assigned to pods.",
        ))?;
        let cert_expiry = IntGauge::with_opts(opts(
            "eksnode_kubelet_client_cert_expiry_timestamp_seconds",
            "notAfter of the kubelet client certificate, seconds since the epoch.",
        ))?;
        let iam_expiry = IntGaugeVec::new(
            opts(
                "eksnode_iam_credentials_expiry_timestamp_seconds",
                "When the node's IAM credentials stop working, seconds since the epoch. source: instance-role (IMDS Expiration), ssm-credentials-file (last rotation of the SSM agent's file plus SSM's one-hour validity), roles-anywhere-certificate (the certificate's notAfter).",
            ),
            &["source"],
        )?;
        let condition_writes = IntCounterVec::new(
            opts(
                "eksnode_condition_writes_total",
                "Node condition PATCHes, by result.",
            ),
            &["result"],
        )?;
        let events = IntCounterVec::new(
            opts(
                "eksnode_events_total",
                "Kubernetes events written, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(check_up.clone()))?;
        registry.register(Box::new(check_duration.clone()))?;
        registry.register(Box::new(check_runs.clone()))?;
        registry.register(Box::new(condition_status.clone()))?;
        registry.register(Box::new(problems.clone()))?;
        registry.register(Box::new(kubelet_up.clone()))?;
        registry.register(Box::new(containerd_up.clone()))?;
        registry.register(Box::new(unit_active.clone()))?;
        registry.register(Box::new(unit_restarts.clone()))?;
        registry.register(Box::new(runtime_condition.clone()))?;
        registry.register(Box::new(cni_ips_total.clone()))?;
        registry.register(Box::new(cni_ips_assigned.clone()))?;
        registry.register(Box::new(cert_expiry.clone()))?;
        registry.register(Box::new(iam_expiry.clone()))?;
        registry.register(Box::new(condition_writes.clone()))?;
        registry.register(Box::new(events.clone()))?;
        Ok(Self {
            registry,
            check_up,
            check_duration,
            check_runs,
            condition_status,
            problems,
            kubelet_up,
            containerd_up,
            unit_active,
            unit_restarts,
            runtime_condition,
            cni_ips_total,
            cni_ips_assigned,
            cert_expiry,
            iam_expiry,
            condition_writes,
            events,
            host,
            phases_file,
        })
    }

    /// Registers metrics that a layer above owns (the lifecycle watchers'), so one scrape
    /// serves them too.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// One scrape: host collectors read now, plus our registry, in the text format.
    pub fn scrape(&self) -> Vec<u8> {
        let mut families = host::Families::default();
        host::collect(&self.host, &mut families);
        let mut all = families.into_vec();
        all.extend(self.registry.gather());
        if let Some(f) = super::phases::read(&self.phases_file) {
            let phases = GaugeVec::new(
                opts(
                    "eksnode_bootstrap_phase_duration_seconds",
                    "Duration of each phase of this boot's `eks-node-agent init`, in seconds.",
                ),
                &["phase"],
            );
            if let Ok(phases) = phases {
                for (phase, secs) in &f.phases {
                    phases.with_label_values(&[phase]).set(*secs);
                }
                all.extend(prometheus::core::Collector::collect(&phases));
            }
        }
        all.retain(|f| !f.get_metric().is_empty());
        all.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::with_capacity(64 * 1024);
        if let Err(e) = TextEncoder::new().encode(&all, &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}
