//! The daemon's verdict, pure: from the latest outcome of each check, the severity policy and
//! whether the boot grace is still on, the conditions to write and the problems active now.

use std::collections::BTreeMap;

use crate::checks::reasons::{self, Policy, Severity};
use crate::checks::{CheckKind, Outcome};
use crate::model::ConditionType;
use crate::report::conditions::Desired;

/// A problem found by the last run of its check, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The check that found it.
    pub kind: CheckKind,
    /// Its reason.
    pub reason: String,
    /// What was seen.
    pub message: String,
    /// Its severity after the overrides.
    pub severity: Severity,
    /// The condition it belongs to.
    pub condition: Option<ConditionType>,
    /// Its events are sent elsewhere (kernel log sightings).
    pub evented: bool,
}

/// What to write and what is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The conditions, healthy or not.
    pub conditions: BTreeMap<ConditionType, Desired>,
    /// Every active problem (in the grace period, boot-time problems are not problems).
    pub active: Vec<Active>,
}

/// The verdict. Each check's condition ([`CheckKind::condition`]) is True with the check's
/// evidence as message until a Fatal problem of that condition sets it False with the
/// problem's reason and message; the first such problem wins, a check's own condition's
/// problems before problems it found for another condition (so the VPC CNI's reason comes
/// before the runtime's NetworkReady). Problems of the catalog's boot-grace class are left
/// out while `in_grace`, and said in the condition's message instead.
pub fn verdict(latest: &BTreeMap<CheckKind, Outcome>, policy: &Policy, in_grace: bool) -> Verdict {
    let mut conditions: BTreeMap<ConditionType, Desired> = BTreeMap::new();
    let healthy = |ct: ConditionType, message: String| Desired {
        healthy: true,
        reason: ct.healthy_reason().to_string(),
        message,
    };
    for (kind, outcome) in latest {
        if let Some(ct) = kind.condition() {
            conditions
                .entry(ct)
                .or_insert_with(|| healthy(ct, outcome.evidence.clone()));
        }
        // The runtime's CRI NetworkReady feeds NetworkingReady, whatever the CNI (hybrid
        // nodes have no VPC CNI check).
        if let Some(n) = &outcome.facts.network {
            let ct = ConditionType::NetworkingReady;
            conditions
                .entry(ct)
                .or_insert_with(|| healthy(ct, n.message.clone()));
        }
    }
    let mut active = Vec::new();
    for own_pass in [true, false] {
        for (kind, outcome) in latest {
            for p in outcome.problems() {
                let entry = reasons::lookup(&p.reason);
                let condition = entry.and_then(|e| e.condition);
                if (condition.is_some() && condition == kind.condition()) != own_pass {
                    continue;
                }
                if in_grace && entry.is_some_and(|e| e.boot_grace) {
                    if let Some(ct) = condition
                        && let Some(d) = conditions.get_mut(&ct)
                        && d.healthy
                    {
                        d.message = format!("waiting for the network at boot: {}", p.message);
                    }
                    continue;
                }
                let severity = policy.severity(&p.reason);
                if severity == Severity::Fatal
                    && let Some(ct) = condition
                {
                    let d = conditions
                        .entry(ct)
                        .or_insert_with(|| healthy(ct, String::new()));
                    if d.healthy {
                        *d = Desired {
                            healthy: false,
                            reason: p.reason.clone(),
                            message: p.message.clone(),
                        };
                    }
                }
                active.push(Active {
                    kind: *kind,
                    reason: p.reason,
                    message: p.message,
                    severity,
                    condition,
                    evented: p.evented,
                });
            }
        }
    }
    Verdict { conditions, active }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Facts, NetworkVerdict, Problem};

    fn latest(entries: Vec<(CheckKind, Outcome)>) -> BTreeMap<CheckKind, Outcome> {
        entries.into_iter().collect()
    }

    #[test]
    fn fatal_sets_its_condition_false_and_a_warning_does_not() {
        let l = latest(vec![
            (CheckKind::Kernel, Outcome::fail("ForkFailedOutOfPIDs", "x")),
            (CheckKind::Storage, Outcome::ok("fine")),
            (CheckKind::Kubelet, Outcome::fail("KubeletUnreachable", "y")),
        ]);
        let v = verdict(&l, &Policy::default(), false);
        assert_eq!(
            v.conditions.len(),
            2,
            "kubelet writes no condition of its own"
        );
        assert!(!v.conditions[&ConditionType::KernelReady].healthy);
        assert_eq!(
            v.conditions[&ConditionType::KernelReady].reason,
            "ForkFailedOutOfPIDs"
        );
        assert_eq!(
            v.conditions[&ConditionType::StorageReady].reason,
            "StorageIsReady"
        );
        assert_eq!(v.active.len(), 2);
        let warn = latest(vec![(CheckKind::Kernel, Outcome::fail("SoftLockup", "s"))]);
        let v = verdict(&warn, &Policy::default(), false);
        assert!(
            v.conditions[&ConditionType::KernelReady].healthy,
            "SoftLockup is a Warning"
        );
        assert_eq!(v.active[0].severity, Severity::Warning);
        let mut promoted = Policy::default();
        promoted.set("SoftLockup", Severity::Fatal).unwrap();
        let v = verdict(&warn, &promoted, false);
        assert_eq!(
            v.conditions[&ConditionType::KernelReady].reason,
            "SoftLockup"
        );
        // A promoted kubelet problem creates the condition it belongs to.
        promoted.set("KubeletUnreachable", Severity::Fatal).unwrap();
        let k = latest(vec![(
            CheckKind::Kubelet,
            Outcome::fail("KubeletUnreachable", "y"),
        )]);
        let v = verdict(&k, &promoted, false);
        assert!(!v.conditions[&ConditionType::ContainerRuntimeReady].healthy);
    }

    #[test]
    fn a_warning_headline_does_not_hide_a_fatal_problem() {
        let out = Outcome::combine(vec![
            Outcome::warn("ApproachingMaxOpenFiles", "w"),
            Outcome::warn("ConntrackNearFull", "c"),
        ]);
        let mut out = out;
        out.more.push(Problem {
            reason: "ForkFailedOutOfPIDs".into(),
            message: "f".into(),
            evented: false,
        });
        let v = verdict(
            &latest(vec![(CheckKind::Kernel, out)]),
            &Policy::default(),
            false,
        );
        assert_eq!(
            v.conditions[&ConditionType::KernelReady].reason,
            "ForkFailedOutOfPIDs"
        );
        assert_eq!(v.active.len(), 3);
    }

    #[test]
    fn cri_network_and_vpc_cni_order_and_the_boot_grace() {
        let cri = crate::checks::cri::evaluate(&[
            crate::checks::cri::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                reason: String::new(),
                message: String::new(),
            },
            crate::checks::cri::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: "cni plugin not initialized".into(),
            },
        ]);
        assert!(matches!(
            cri.facts.network,
            Some(NetworkVerdict { ready: false, .. })
        ));
        let mut l = latest(vec![(CheckKind::Containerd, cri)]);
        let v = verdict(&l, &Policy::default(), false);
        assert!(v.conditions[&ConditionType::ContainerRuntimeReady].healthy);
        assert_eq!(
            v.conditions[&ConditionType::NetworkingReady].reason,
            "NetworkPluginNotReady"
        );
        let v = verdict(&l, &Policy::default(), true);
        assert!(
            !v.conditions.contains_key(&ConditionType::NetworkingReady)
                || v.conditions[&ConditionType::NetworkingReady].healthy
        );
        assert!(
            v.active.is_empty(),
            "in the grace period no CNI yet is no problem"
        );
        l.insert(CheckKind::VpcCni, Outcome::fail("IPAMDNotRunning", "x"));
        let v = verdict(&l, &Policy::default(), false);
        assert_eq!(
            v.conditions[&ConditionType::NetworkingReady].reason,
            "IPAMDNotRunning"
        );
        l.insert(
            CheckKind::Network,
            Outcome::ok("CNI config 10-calico.conflist").with_facts(Facts::default()),
        );
        l.insert(CheckKind::VpcCni, Outcome::ok("not installed"));
        l.remove(&CheckKind::Containerd);
        let v = verdict(&l, &Policy::default(), false);
        assert!(v.conditions[&ConditionType::NetworkingReady].healthy);
    }
}
