//! Pods stuck terminating (`PodStuckTerminating`): a pod bound to this node, deleted, past its
//! deletion time (the API server sets `deletionTimestamp` to the deletion plus the grace
//! period) by more than [`STUCK_AFTER`], that the node still runs: the container runtime
//! still holds its sandbox (the CRI's `ListPodSandbox`), or its status still reports a running
//! container. A pod that only a finalizer keeps in the API, with nothing left on the node, is
//! not the node's problem and not reported.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Outcome;
use super::cri::PodSandbox;
use crate::report::kube::PodView;

/// How long past its deletion time a pod still on the node is stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(5 * 60);
/// Default time between two runs of the pod check (it lists the node's pods from the API
/// server: not every 30 s on every node).
pub const DEFAULT_INTERVAL_SECS: u64 = 120;

/// The verdict at `now` (seconds since the epoch).
pub fn evaluate(pods: &[PodView], sandboxes: Option<&[PodSandbox]>, now: i64) -> Outcome {
    let held: BTreeSet<&str> = sandboxes
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.metadata.as_ref().map(|m| m.uid.as_str()))
        .collect();
    let stuck: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            let late = now - p.deletion_unix?;
            if late < STUCK_AFTER.as_secs() as i64 {
                return None;
            }
            let why = if held.contains(p.uid.as_str()) {
                "the runtime still holds its sandbox".to_string()
            } else if p.running_containers > 0 {
                format!("{} container(s) still running", p.running_containers)
            } else {
                return None;
            };
            Some(format!("{} ({late}s past its deletion: {why})", p.name))
        })
        .collect();
    if stuck.is_empty() {
        return Outcome::ok(format!("{} pods, none stuck terminating", pods.len()));
    }
    Outcome::fail(
        "PodStuckTerminating",
        format!(
            "{} pod(s) stuck terminating: {}; restarting the kubelet cleans up pods it lost track of",
            stuck.len(),
            stuck.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::cri::PodSandboxMetadata;

    fn pod(uid: &str, deletion: Option<i64>, running: usize) -> PodView {
        PodView {
            uid: uid.into(),
            name: format!("default/{uid}"),
            deletion_unix: deletion,
            running_containers: running,
        }
    }

    fn sandbox(uid: &str) -> PodSandbox {
        PodSandbox {
            id: format!("sb-{uid}"),
            metadata: Some(PodSandboxMetadata {
                name: uid.into(),
                uid: uid.into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            state: 1,
        }
    }

    #[test]
    fn stuck_only_when_late_and_still_on_the_node() {
        let now = 1_000_000;
        let late = now - 600;
        let pods = [
            pod("running", None, 1),
            pod("just-deleted", Some(now - 10), 1),
            pod("finalizer-only", Some(late), 0),
            pod("sandbox-held", Some(late), 0),
            pod("containers-up", Some(late), 2),
        ];
        let out = evaluate(&pods, Some(&[sandbox("sandbox-held")]), now);
        assert_eq!(out.reason, "PodStuckTerminating");
        assert!(out.message.starts_with("2 pod(s)"), "{}", out.message);
        assert!(
            out.message.contains("default/sandbox-held")
                && out.message.contains("default/containers-up")
        );
        assert!(!out.message.contains("finalizer-only"));
        assert!(evaluate(&pods[..3], None, now).problems().is_empty());
    }
}
