//! Living with the EKS node monitoring agent, pure. It writes the same condition types; two
//! writers with different verdicts would flip a condition back and forth, and a flip to False
//! starts EKS node auto repair's clock. The rule (`[coexistence] node_monitoring_agent`):
//!
//! - `auto` (default): the agent steps back, writing no condition (events, metrics and its own
//!   taints go on), while the monitoring agent's pod runs on the node or another writer is seen
//!   on the Node: one of our condition types that differs from what we last wrote, or, once
//!   stepped back, that keeps changing. It resumes after [`RESUME_AFTER_QUIET_PROBES`] looks
//!   with no pod and no change.
//! - `step-back`: never write the condition types.
//! - `ignore`: write them whatever else runs.

use std::collections::BTreeMap;

use super::config::Coexistence;
use crate::model::ConditionType;
use crate::report::conditions::{Conditions, NodeCondition};

/// Looks without the monitoring agent's pod and without a foreign write before the agent
/// writes conditions again.
pub const RESUME_AFTER_QUIET_PROBES: u32 = 3;

/// What one look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The monitoring agent's pods on this node.
    pub monitoring_agent_pods: usize,
    /// The Node's conditions (all owners').
    pub conditions: Vec<NodeCondition>,
}

/// The step-back state.
#[derive(Debug, Clone, Default)]
pub struct Coexist {
    stepped_back: bool,
    quiet: u32,
    last: BTreeMap<ConditionType, NodeCondition>,
    /// Why the agent stepped back, for the log.
    pub why: String,
}

impl Coexist {
    /// Whether the agent writes no condition now, under `mode`.
    pub fn stepped_back(&self, mode: Coexistence) -> bool {
        match mode {
            Coexistence::Auto => self.stepped_back,
            Coexistence::StepBack => true,
            Coexistence::Ignore => false,
        }
    }

    /// Takes one look into account; returns true when the step-back state changed.
    pub fn observe(&mut self, seen: &Observation, ours: &Conditions) -> bool {
        let mut why = None;
        if seen.monitoring_agent_pods > 0 {
            why = Some(format!(
                "{} EKS node monitoring agent pod(s) on this node",
                seen.monitoring_agent_pods
            ));
        }
        let mut now = BTreeMap::new();
        for c in &seen.conditions {
            let Some(ct) = ConditionType::parse(&c.type_) else {
                continue;
            };
            let foreign = if self.stepped_back {
                // Nothing of ours is written: any change is someone else's.
                self.last.get(&ct).is_some_and(|prev| prev != c)
            } else {
                ours.written(ct).is_some_and(|(healthy, reason, message)| {
                    (c.status == "True") != healthy || c.reason != reason || c.message != message
                })
            };
            if foreign && why.is_none() {
                why = Some(format!(
                    "another writer set {} to {} ({})",
                    c.type_, c.status, c.reason
                ));
            }
            now.insert(ct, c.clone());
        }
        self.last = now;
        let before = self.stepped_back;
        match why {
            Some(w) => {
                self.stepped_back = true;
                self.quiet = 0;
                self.why = w;
            }
            None if self.stepped_back => {
                self.quiet += 1;
                if self.quiet >= RESUME_AFTER_QUIET_PROBES {
                    self.stepped_back = false;
                    self.why.clear();
                }
            }
            None => {}
        }
        before != self.stepped_back
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::conditions::Desired;

    fn cond(status: &str, reason: &str, hb: &str) -> NodeCondition {
        NodeCondition {
            type_: "KernelReady".into(),
            status: status.into(),
            reason: reason.into(),
            message: "m".into(),
            last_heartbeat_time: Some(hb.into()),
            last_transition_time: Some("2026-01-01T00:00:00Z".into()),
        }
    }

    #[test]
    fn a_pod_or_a_foreign_write_steps_back_and_quiet_resumes() {
        let mut ours = Conditions::default();
        ours.set(
            ConditionType::KernelReady,
            Desired {
                healthy: false,
                reason: "ForkFailedOutOfPIDs".into(),
                message: "m".into(),
            },
        );
        let written = ours.due(time::OffsetDateTime::now_utc()).unwrap();
        ours.committed(&written, time::OffsetDateTime::now_utc());
        let mut c = Coexist::default();
        let same = Observation {
            monitoring_agent_pods: 0,
            conditions: written.clone(),
        };
        assert!(!c.observe(&same, &ours), "our own write is not foreign");
        let theirs = Observation {
            monitoring_agent_pods: 0,
            conditions: vec![cond("True", "KernelIsHealthy", "t1")],
        };
        assert!(c.observe(&theirs, &ours));
        assert!(c.stepped_back(Coexistence::Auto) && c.why.contains("another writer"));
        // It keeps writing its heartbeat: still there.
        let again = Observation {
            monitoring_agent_pods: 0,
            conditions: vec![cond("True", "KernelIsHealthy", "t2")],
        };
        assert!(!c.observe(&again, &ours));
        for _ in 0..RESUME_AFTER_QUIET_PROBES - 1 {
            assert!(!c.observe(&again, &ours));
        }
        assert!(c.observe(&again, &ours), "quiet long enough: resume");
        assert!(!c.stepped_back(Coexistence::Auto));
        let pod = Observation {
            monitoring_agent_pods: 1,
            conditions: Vec::new(),
        };
        assert!(c.observe(&pod, &ours));
        assert!(!c.stepped_back(Coexistence::Ignore) && c.stepped_back(Coexistence::StepBack));
    }
}
