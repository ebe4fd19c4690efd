//! Node conditions, pure: what we want on the Node, what we last wrote (or read back at
//! startup), and when a write is due. Writes are coalesced: a status or reason change is
//! written at most once per [`MIN_WRITE_INTERVAL`]; message-only changes ride along with the
//! heartbeat every [`HEARTBEAT_INTERVAL`]. Only our own condition types are ever written.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::ConditionType;
use crate::model::text::rfc3339;

/// At most one condition write per this interval.
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(5);
/// Conditions are rewritten (lastHeartbeatTime) at least this often.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// One condition as it appears in `status.conditions` (the fields we write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// CamelCase reason.
    #[serde(default)]
    pub reason: String,
    /// Detail.
    #[serde(default)]
    pub message: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// What a condition should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// True = healthy.
    pub healthy: bool,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    healthy: bool,
    reason: String,
    message: String,
    transition: OffsetDateTime,
}

impl Written {
    /// What a condition on the Node says, as of `transition`.
    fn of(c: &NodeCondition, transition: OffsetDateTime) -> Written {
        Written {
            healthy: c.status == "True",
            reason: c.reason.clone(),
            message: c.message.clone(),
            transition,
        }
    }
}

/// The condition state machine for one Node.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    desired: BTreeMap<ConditionType, Desired>,
    written: BTreeMap<ConditionType, Written>,
    last_write: Option<OffsetDateTime>,
    last_heartbeat: Option<OffsetDateTime>,
}

fn parse_time(s: &Option<String>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(
        s.as_deref()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
}

impl Conditions {
    /// Starts from what the Node already says, so a restart neither resets a condition nor
    /// moves its lastTransitionTime. Conditions of other owners are ignored.
    pub fn from_node(existing: &[NodeCondition]) -> Self {
        let mut me = Self::default();
        for c in existing {
            let Some(ct) = ConditionType::parse(&c.type_) else {
                continue;
            };
            let Some(transition) = parse_time(&c.last_transition_time) else {
                continue;
            };
            me.written.insert(ct, Written::of(c, transition));
            if let Some(hb) = parse_time(&c.last_heartbeat_time) {
                me.last_heartbeat = Some(me.last_heartbeat.map_or(hb, |old| old.min(hb)));
            }
        }
        me
    }

    /// Sets what a condition should say.
    pub fn set(&mut self, ct: ConditionType, desired: Desired) {
        self.desired.insert(ct, desired);
    }

    /// Takes over the desired states set on another instance (set before the read-back).
    pub fn adopt_desired(&mut self, other: &Conditions) {
        for (ct, d) in &other.desired {
            self.desired.insert(*ct, d.clone());
        }
    }

    /// The condition as last written (or read back), for the metrics.
    pub fn written_status(&self, ct: ConditionType) -> Option<bool> {
        self.written.get(&ct).map(|w| w.healthy)
    }

    /// The condition as last written (or read back): healthy, reason, message.
    pub fn written(&self, ct: ConditionType) -> Option<(bool, &str, &str)> {
        self.written
            .get(&ct)
            .map(|w| (w.healthy, w.reason.as_str(), w.message.as_str()))
    }

    /// What the condition should say now.
    pub fn desired(&self, ct: ConditionType) -> Option<&Desired> {
        self.desired.get(&ct)
    }

    /// The conditions to write now, or `None` when no write is due.
    pub fn due(&self, now: OffsetDateTime) -> Option<Vec<NodeCondition>> {
        if self.desired.is_empty() {
            return None;
        }
        let changed = self.desired.iter().any(|(ct, d)| {
            self.written
                .get(ct)
                .is_none_or(|w| w.healthy != d.healthy || w.reason != d.reason)
        });
        let heartbeat_due = self
            .last_heartbeat
            .is_none_or(|hb| now - hb >= HEARTBEAT_INTERVAL);
        let throttled = self
            .last_write
            .is_some_and(|at| now - at < MIN_WRITE_INTERVAL);
        if !(changed || heartbeat_due) || throttled {
            return None;
        }
        Some(
            self.desired
                .iter()
                .map(|(ct, d)| {
                    let transition = match self.written.get(ct) {
                        Some(w) if w.healthy == d.healthy => w.transition,
                        _ => now,
                    };
                    NodeCondition {
                        type_: ct.as_str().to_string(),
                        status: if d.healthy { "True" } else { "False" }.to_string(),
                        reason: d.reason.clone(),
                        message: d.message.clone(),
                        last_heartbeat_time: Some(rfc3339(now)),
                        last_transition_time: Some(rfc3339(transition)),
                    }
                })
                .collect(),
        )
    }

    /// Records a successful write of `written` at `now`.
    pub fn committed(&mut self, written: &[NodeCondition], now: OffsetDateTime) {
        for c in written {
            let Some(ct) = ConditionType::parse(&c.type_) else {
                continue;
            };
            let transition = parse_time(&c.last_transition_time).unwrap_or(now);
            self.written.insert(ct, Written::of(c, transition));
        }
        self.last_write = Some(now);
        self.last_heartbeat = Some(now);
    }

    /// Records a failed write so the next attempt waits [`MIN_WRITE_INTERVAL`] too.
    pub fn failed(&mut self, now: OffsetDateTime) {
        self.last_write = Some(now);
    }
}

/// The strategic merge patch for `nodes/<name>/status` that sets only these conditions:
/// `status.conditions` merges by `type`, so other owners' conditions stay as they are.
pub fn status_patch(conditions: &[NodeCondition]) -> serde_json::Value {
    serde_json::json!({ "status": { "conditions": conditions } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    fn failing(reason: &str) -> Desired {
        Desired {
            healthy: false,
            reason: reason.into(),
            message: "m".into(),
        }
    }

    fn healthy() -> Desired {
        Desired {
            healthy: true,
            reason: "KernelHasNoProblem".into(),
            message: "ok".into(),
        }
    }

    #[test]
    fn nothing_before_the_first_round() {
        assert_eq!(Conditions::default().due(t(0)), None);
    }

    #[test]
    fn change_is_written_then_coalesced_then_heartbeat() {
        let mut c = Conditions::default();
        c.set(ConditionType::KernelReady, failing("TaskHung"));
        let w = c.due(t(0)).unwrap();
        assert_eq!(w[0].status, "False");
        assert_eq!(w[0].reason, "TaskHung");
        c.committed(&w, t(0));
        // Same state again and again: nothing due.
        for s in 0..60 {
            c.set(ConditionType::KernelReady, failing("TaskHung"));
            assert_eq!(c.due(t(s)), None);
        }
        // Recovery within the throttle window waits, then is written.
        c.set(ConditionType::KernelReady, healthy());
        assert_eq!(
            c.due(t(61)).map(|v| v[0].status.clone()),
            Some("True".into())
        );
        let mut c2 = c.clone();
        c2.committed(&c.due(t(61)).unwrap(), t(61));
        c2.set(ConditionType::KernelReady, failing("SoftLockup"));
        assert_eq!(c2.due(t(62)), None, "throttled");
        assert!(c2.due(t(66)).is_some());
        // Heartbeat.
        let mut c3 = Conditions::default();
        c3.set(ConditionType::StorageReady, healthy());
        c3.committed(&c3.due(t(0)).unwrap(), t(0));
        assert_eq!(c3.due(t(299)), None);
        assert!(c3.due(t(300)).is_some());
    }

    #[test]
    fn read_back_keeps_transition_time() {
        let existing = vec![
            NodeCondition {
                type_: "KernelReady".into(),
                status: "False".into(),
                reason: "TaskHung".into(),
                message: "x".into(),
                last_heartbeat_time: Some(rfc3339(t(100))),
                last_transition_time: Some(rfc3339(t(50))),
            },
            NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "KubeletReady".into(),
                message: String::new(),
                last_heartbeat_time: None,
                last_transition_time: None,
            },
        ];
        let mut c = Conditions::from_node(&existing);
        c.set(ConditionType::KernelReady, failing("TaskHung"));
        assert_eq!(c.due(t(200)), None, "same state, heartbeat not due");
        let w = c.due(t(400)).unwrap();
        assert_eq!(w.len(), 1, "only our own types");
        assert_eq!(w[0].last_transition_time, Some(rfc3339(t(50))));
    }
}
