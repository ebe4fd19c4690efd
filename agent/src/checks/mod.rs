//! One check framework for `status` and `run`.
//!
//! A check looks at one thing the node needs (its credentials, the API server, the container
//! runtime, the kernel's tables, ...) and returns one [`Outcome`]:
//!
//! | field | what it holds |
//! |---|---|
//! | `status` | [`Status::Ok`]; [`Status::Warn`]: worth a look, the node still works; [`Status::Fail`]: it does not work as it should |
//! | `severity` | what a problem means for the node, in the terms of the EKS node monitoring agent: [`Severity::Fatal`] or [`Severity::Warning`]; not read while the status is ok |
//! | `reason` | CamelCase, e.g. `ContainerdUnreachable`; empty when ok |
//! | `message` | the verdict in one line, for people: what is wrong, or what is fine |
//! | `evidence` | what was observed, in one line and never a secret (usually the message itself; a warning states its observation apart from its verdict) |
//! | `fix` | what to do; `status`'s checks say "nothing to do" when ok, `run`'s put their advice in the message (a condition has no other field) and leave it empty |
//! | `facts` | what the check measured on the way, for the metrics ([`Facts`]) |
//!
//! Each decision is a pure function over what a few lines of IO observed (file text, a
//! command's output, an HTTP answer, or the error that stood in the way), next to that IO in
//! the check's own file. Nothing is latched: the next run decides afresh.
//!
//! Two sets of checks share the type:
//!
//! - [`status`] runs the pre-flight and post-join checks of `eks-node-agent status` once and
//!   prints, per check, its name, `status`, `evidence` and `fix`, as text or JSON.
//! - [`daemon`] holds the checks `eks-node-agent run` keeps running, each on its own schedule.
//!   The daemon turns their outcomes into Node conditions, events and metrics: a `Fail` with
//!   [`Severity::Fatal`] sets the condition its kind owns ([`daemon::CheckKind::condition`])
//!   False with the outcome's reason and message; any other `Fail` (a kind that owns no
//!   condition, or a [`Severity::Warning`]) is a Warning event when it starts or changes
//!   reason; a `Warn` is a Warning event when its reason appears while the condition stays
//!   True, with the evidence as its message; `facts` become `eksnode_*` metrics.
//!
//! The files, one per check or family:
//!
//! - `status`'s: [`credentials`], [`sts`], [`api_server`], [`node_ip`], [`clock`], [`swap`],
//!   [`versions`], [`proxy`], [`ports`], [`local_storage`];
//! - `run`'s: [`units`] and [`probes`] (kubelet, VPC CNI, storage, kubelet certificate),
//!   [`cri`] (containerd), [`kernel`], [`clock`], [`iam`] (with the kubelet certificate, the
//!   credentials check).

pub mod api_server;
pub mod clock;
pub mod credentials;
pub mod cri;
pub mod daemon;
pub mod iam;
pub mod kernel;
pub mod local_storage;
pub mod node_ip;
pub mod ports;
pub mod probes;
pub mod proxy;
pub mod status;
pub mod sts;
pub mod swap;
pub mod units;
pub mod versions;

use serde::Serialize;

pub use daemon::{CheckKind, Schedule, Targets};

/// The verdict of one run of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing wrong.
    Ok,
    /// Something to look at; the node can still work.
    Warn,
    /// The node will not join or work as it should until this is fixed.
    Fail,
}

impl Status {
    /// `ok`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// What a problem means for the node (the EKS node monitoring agent's severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The node cannot do its job until this is fixed: `run` sets the condition the check
    /// owns False.
    Fatal,
    /// Degraded, or a problem in the making; the node still works: `run` raises a Warning
    /// event and leaves the condition alone.
    Warning,
}

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
    /// What a problem means for the node; not read while [`Status::Ok`].
    pub severity: Severity,
    /// CamelCase reason, e.g. `ContainerdUnreachable`; empty when ok.
    pub reason: String,
    /// The verdict in one line, for people.
    pub message: String,
    /// What was observed, in one line (never a secret).
    pub evidence: String,
    /// What to do (see the module documentation).
    pub fix: String,
    /// What the check measured, for the metrics.
    pub facts: Facts,
}

impl Outcome {
    /// Nothing wrong; `message` says what was found (and is the evidence).
    pub fn ok(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Ok, Severity::Warning, "", message.into())
    }

    /// Worth a look, the node still works: a [`Severity::Warning`] with its reason.
    pub fn warn(reason: &str, message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Warn, Severity::Warning, reason, message.into())
    }

    /// A failure with its reason, [`Severity::Fatal`] unless [`Outcome::with_severity`] says
    /// otherwise.
    pub fn fail(reason: &str, message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Fail, Severity::Fatal, reason, message.into())
    }

    fn new(status: Status, severity: Severity, reason: &str, message: String) -> Outcome {
        Outcome {
            status,
            severity,
            reason: reason.to_owned(),
            evidence: message.clone(),
            message,
            fix: String::new(),
            facts: Facts::default(),
        }
    }

    /// The same outcome with what to do about it.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Outcome {
        self.fix = fix.into();
        self
    }

    /// The same outcome with an observation that differs from its message.
    pub fn with_evidence(mut self, evidence: impl Into<String>) -> Outcome {
        self.evidence = evidence.into();
        self
    }

    /// The same outcome with another severity.
    pub fn with_severity(mut self, severity: Severity) -> Outcome {
        self.severity = severity;
        self
    }

    /// The same outcome carrying measured numbers.
    pub fn with_facts(mut self, facts: Facts) -> Outcome {
        self.facts = facts;
        self
    }

    /// True unless the check failed (a warning is healthy).
    pub fn is_healthy(&self) -> bool {
        self.status != Status::Fail
    }
}

/// Numbers a check measured on the way, exported as `eksnode_*` metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// IPs ipamd holds in its warm pool and attached ENIs.
    pub cni_total_ips: Option<u64>,
    /// IPs ipamd has handed to pods.
    pub cni_assigned_ips: Option<u64>,
    /// The kubelet client certificate's notAfter, seconds since the epoch.
    pub cert_not_after_unix: Option<i64>,
    /// When the node's IAM credentials expire.
    pub iam_expiry: Option<iam::Expiry>,
    /// The container runtime's CRI `RuntimeReady`.
    pub runtime_ready: Option<bool>,
    /// The container runtime's CRI `NetworkReady`, which feeds NetworkingReady.
    pub network: Option<NetworkVerdict>,
    /// The systemd unit the check depends on, as systemd reported it.
    pub unit: Option<UnitFacts>,
}

/// A systemd unit's state, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFacts {
    /// The unit name, e.g. `kubelet.service`.
    pub unit: String,
    /// `ActiveState` is active (or reloading).
    pub active: bool,
    /// `NRestarts`.
    pub restarts: Option<u32>,
}

/// Whether pod networking is ready, as a check other than the VPC CNI check saw it (the
/// container runtime's CRI `NetworkReady`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkVerdict {
    /// True when ready.
    pub ready: bool,
    /// CamelCase reason when not ready.
    pub reason: String,
    /// Detail.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_fill_every_field_consistently() {
        let ok = Outcome::ok("fine");
        assert_eq!((ok.status, ok.reason.as_str()), (Status::Ok, ""));
        assert_eq!(ok.evidence, "fine");
        assert!(ok.fix.is_empty() && ok.is_healthy());
        let warn = Outcome::warn("Nearly", "27 of 29 (2 free)").with_evidence("27 of 29");
        assert_eq!(
            (warn.status, warn.severity),
            (Status::Warn, Severity::Warning)
        );
        assert_eq!(warn.message, "27 of 29 (2 free)");
        assert_eq!(warn.evidence, "27 of 29");
        assert!(warn.is_healthy());
        let fail = Outcome::fail("Broken", "it broke").with_fix("mend it");
        assert_eq!(
            (fail.status, fail.severity),
            (Status::Fail, Severity::Fatal)
        );
        assert_eq!(
            (fail.evidence.as_str(), fail.fix.as_str()),
            ("it broke", "mend it")
        );
        assert!(!fail.is_healthy());
        let soft = Outcome::fail("Drift", "x").with_severity(Severity::Warning);
        assert_eq!(soft.severity, Severity::Warning);
    }
}
