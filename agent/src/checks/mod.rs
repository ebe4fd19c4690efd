//! One check framework for `status` and `run`.
//!
//! A check looks at one thing the node needs (its credentials, the API server, the container
//! runtime, the kernel's tables, ...) and returns one [`Outcome`]:
//!
//! | field | what it holds |
//! |---|---|
//! | `status` | [`Status::Ok`]; [`Status::Warn`]: worth a look, the node still works; [`Status::Fail`]: it does not work as it should |
//! | `reason` | CamelCase, e.g. `ContainerdUnreachable`; empty when ok |
//! | `message` | the verdict in one line, for people: what is wrong, or what is fine |
//! | `evidence` | what was observed, in one line and never a secret (usually the message itself; a warning states its observation apart from its verdict) |
//! | `fix` | what to do; `status`'s checks say "nothing to do" when ok, `run`'s put their advice in the message (a condition has no other field) and leave it empty |
//! | `facts` | what the check measured on the way, for the metrics ([`Facts`]) |
//! | `more` | `run`'s further problems of the same run ([`Problem`]) |
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
//!   Every problem a run finds (the headline and [`Outcome::more`]) has a reason of the
//!   [`reasons`] catalog, which says which condition it belongs to and how severe it is; the
//!   daemon applies the operator's overrides ([`reasons::Policy`]): a [`Severity::Fatal`]
//!   problem sets its condition False, a [`Severity::Warning`] one is a Warning event when it
//!   appears; both count in `eksnode_problems_total` and show in `eksnode_problem_active`;
//!   `facts` become `eksnode_*` metrics.
//!
//! The files, one per check or family:
//!
//! - `status`'s: [`credentials`], [`sts`], [`api_server`], [`node_ip`], [`clock`], [`swap`],
//!   [`versions`], [`proxy`], [`ports`], [`firewall`], [`local_storage`], [`ulimits`],
//!   [`serving_cert`], [`node_object`];
//! - `run`'s: [`units`] and [`probes`] (kubelet, VPC CNI, storage, kubelet certificate),
//!   [`network`] (the CNI the node runs, its interfaces), [`cri`] (containerd), [`pods`]
//!   (pods stuck terminating), [`kernel`]
//!   (the kernel log and tables), [`accelerators`] (GPUs and Neuron devices, with [`nvml`]),
//!   [`clock`], [`iam`] (with the kubelet certificate, the credentials check).

pub mod accelerators;
pub mod api_server;
pub mod clock;
pub mod credentials;
pub mod cri;
pub mod daemon;
pub mod ecs;
pub mod firewall;
pub mod iam;
pub mod kernel;
pub mod local_storage;
pub mod network;
pub mod node_ip;
pub mod node_object;
pub mod nvml;
pub mod pods;
pub mod ports;
pub mod probes;
pub mod proxy;
pub mod reasons;
pub mod serving_cert;
pub mod status;
pub mod sts;
pub mod swap;
pub mod ulimits;
pub mod units;
pub mod versions;

use serde::Serialize;

pub use daemon::{CheckKind, Schedule, Targets};
pub use reasons::Severity;

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

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
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
    /// Further problems found in the same run, after the headline one (`run` reports every
    /// problem: a Warning headline must not hide a Fatal one behind it).
    pub more: Vec<Problem>,
    /// The headline problem's events come from elsewhere (see [`Problem::evented`]).
    pub evented: bool,
}

/// One problem a check found: its reason and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason, in the catalog ([`reasons`]).
    pub reason: String,
    /// What is wrong, in one line.
    pub message: String,
    /// Its events come from elsewhere (the kernel log follower sends one per sighting); the
    /// daemon uses it only for conditions and metrics.
    pub evented: bool,
}

impl Outcome {
    /// Nothing wrong; `message` says what was found (and is the evidence).
    pub fn ok(message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Ok, "", message.into())
    }

    /// Worth a look, the node still works.
    pub fn warn(reason: &str, message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Warn, reason, message.into())
    }

    /// A failure with its reason (what it means for the node is the catalog's severity).
    pub fn fail(reason: &str, message: impl Into<String>) -> Outcome {
        Outcome::new(Status::Fail, reason, message.into())
    }

    fn new(status: Status, reason: &str, message: String) -> Outcome {
        Outcome {
            status,
            reason: reason.to_owned(),
            evidence: message.clone(),
            message,
            fix: String::new(),
            facts: Facts::default(),
            more: Vec::new(),
            evented: false,
        }
    }

    /// The outcomes of several probes of one check as one: the first problem is the headline,
    /// the other problems follow in [`Outcome::more`]; every probe's facts are kept (the
    /// first probe's where two measured the same thing). All healthy: the first outcome, with
    /// the messages joined.
    pub fn combine(outcomes: Vec<Outcome>) -> Outcome {
        let mut facts = Facts::default();
        let mut heads: Vec<Outcome> = Vec::new();
        let mut healthy: Vec<Outcome> = Vec::new();
        let mut extra: Vec<Problem> = Vec::new();
        for mut o in outcomes {
            facts.absorb(std::mem::take(&mut o.facts));
            extra.append(&mut o.more);
            if o.status == Status::Ok {
                healthy.push(o);
            } else {
                heads.push(o);
            }
        }
        // A failure heads a warning (the sort is stable).
        heads.sort_by_key(|o| std::cmp::Reverse(o.status));
        let mut heads = heads.into_iter();
        let mut out = match heads.next() {
            Some(head) => head,
            None => {
                let message = healthy
                    .iter()
                    .map(|o| o.message.as_str())
                    .filter(|m| !m.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut first = healthy
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Outcome::ok(""));
                first.evidence = message.clone();
                first.message = message;
                first
            }
        };
        out.more = heads
            .map(|o| Problem {
                reason: o.reason,
                message: o.message,
                evented: o.evented,
            })
            .chain(extra)
            .collect();
        out.facts = facts;
        out
    }

    /// Every problem of this run: the headline (unless ok), then [`Outcome::more`].
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::with_capacity(1 + self.more.len());
        if self.status != Status::Ok {
            out.push(Problem {
                reason: self.reason.clone(),
                message: self.message.clone(),
                evented: self.evented,
            });
        }
        out.extend(self.more.iter().cloned());
        out
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
    /// What the accelerator check counted.
    pub accelerators: Option<accelerators::Counts>,
    /// Docker answers `/_ping` (ECS hosts).
    pub docker_up: Option<bool>,
    /// What the ECS agent's introspection API said (ECS hosts).
    pub ecs: Option<EcsFacts>,
}

impl Facts {
    /// Fills what this run did not measure from `other`.
    pub fn absorb(&mut self, other: Facts) {
        let Facts {
            cni_total_ips,
            cni_assigned_ips,
            cert_not_after_unix,
            iam_expiry,
            runtime_ready,
            network,
            unit,
            accelerators,
            docker_up,
            ecs,
        } = other;
        self.cni_total_ips = self.cni_total_ips.or(cni_total_ips);
        self.cni_assigned_ips = self.cni_assigned_ips.or(cni_assigned_ips);
        self.cert_not_after_unix = self.cert_not_after_unix.or(cert_not_after_unix);
        self.iam_expiry = self.iam_expiry.take().or(iam_expiry);
        self.runtime_ready = self.runtime_ready.or(runtime_ready);
        self.network = self.network.take().or(network);
        self.unit = self.unit.take().or(unit);
        self.accelerators = self.accelerators.take().or(accelerators);
        self.docker_up = self.docker_up.or(docker_up);
        self.ecs = self.ecs.take().or(ecs);
    }
}

/// The ECS agent as its introspection API describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsFacts {
    /// It reports a container instance ARN.
    pub connected: bool,
    /// The cluster it names.
    pub cluster: String,
    /// Its version (`1.82.0`).
    pub version: String,
    /// Its tasks by known status.
    pub tasks: std::collections::BTreeMap<String, u64>,
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
        assert_eq!(warn.status, Status::Warn);
        assert_eq!(warn.message, "27 of 29 (2 free)");
        assert_eq!(warn.evidence, "27 of 29");
        assert!(warn.is_healthy());
        let fail = Outcome::fail("Broken", "it broke").with_fix("mend it");
        assert_eq!(fail.status, Status::Fail);
        assert_eq!(
            (fail.evidence.as_str(), fail.fix.as_str()),
            ("it broke", "mend it")
        );
        assert!(!fail.is_healthy());
        assert_eq!(fail.problems().len(), 1);
        assert!(ok.problems().is_empty());
    }

    #[test]
    fn combine_keeps_every_problem_and_every_fact() {
        let a = Outcome::warn("W", "w").with_facts(Facts {
            cni_total_ips: Some(3),
            ..Facts::default()
        });
        let b = Outcome::ok("fine");
        let c = Outcome::fail("F", "f").with_facts(Facts {
            cni_total_ips: Some(9),
            runtime_ready: Some(true),
            ..Facts::default()
        });
        let out = Outcome::combine(vec![a, b, c]);
        assert_eq!(out.reason, "F", "a failure heads a warning");
        let reasons: Vec<String> = out.problems().into_iter().map(|p| p.reason).collect();
        assert_eq!(reasons, ["F", "W"]);
        assert_eq!(out.facts.cni_total_ips, Some(3), "the first probe's fact");
        assert_eq!(out.facts.runtime_ready, Some(true));
        let healthy = Outcome::combine(vec![Outcome::ok("a"), Outcome::ok("b")]);
        assert!(healthy.problems().is_empty());
        assert_eq!(healthy.message, "a; b");
    }
}
