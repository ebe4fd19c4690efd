//! The deadline-aware drain. Every pod bound to the Node except DaemonSet-owned and mirror
//! pods is evicted through the policy/v1 Eviction API with a grace period that fits the time
//! left; a PodDisruptionBudget's refusal (429) is retried with backoff. Three times matter:
//!
//! - the **deadline**: when the instance goes away (the spot notice's `time`, the scheduled
//!   event's NotBefore, the Auto Scaling drain budget);
//! - the **cut-off**, `delete_before_deadline` before it: pods still blocked by a budget are
//!   deleted, lowest `spec.priority` first (then by namespace and name), each with the grace
//!   period that still fits, so that the least important work goes first and every pod gets
//!   some time to stop;
//! - the **finish**, `deadline_margin` before the deadline: any pod still there is deleted
//!   with a zero grace period, so that none is running when the instance stops.
//!
//! Every decision is logged with the pod, the grace period and why. The drain is idempotent:
//! a pod already terminating is waited for, not evicted again, so a restarted daemon resumes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use super::config::DrainSettings;
use crate::report::node_ops::{Eviction, NodeOps, NodeState, PodInfo};

/// How often the pods are listed while the drain waits.
pub const POLL: Duration = Duration::from_millis(250);

/// What the drain reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A pod was evicted (`namespace/name`).
    Evicted(String),
    /// A pod was deleted at or after the cut-off.
    Deleted(String),
}

/// How a drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Pods still there at the deadline (`namespace/name`).
    pub left: Vec<String>,
    /// How long it took.
    pub took: Duration,
}

/// The pods the drain must remove.
pub fn targets(pods: &[PodInfo]) -> Vec<&PodInfo> {
    pods.iter().filter(|p| !p.daemonset && !p.mirror).collect()
}

/// The most pods a refusal names; the rest are counted.
const MAX_PODS_NAMED: usize = 5;

/// Why the Node may not lose its services yet (`uninstall`, `upgrade` after its drain): it is
/// not cordoned, or pods the drain removes (not DaemonSet, not mirror, not finished) are still
/// bound to it. `None` when it is cordoned and drained.
pub fn not_drained(node: &NodeState, pods: &[PodInfo]) -> Option<String> {
    if !node.unschedulable {
        return Some("the Node is not cordoned (spec.unschedulable is false)".to_owned());
    }
    let left: Vec<String> = targets(pods)
        .into_iter()
        .filter(|p| !p.finished)
        .map(PodInfo::id)
        .collect();
    if left.is_empty() {
        return None;
    }
    let mut named = left
        .iter()
        .take(MAX_PODS_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if left.len() > MAX_PODS_NAMED {
        named.push_str(&format!(" and {} more", left.len() - MAX_PODS_NAMED));
    }
    Some(format!(
        "the Node is cordoned but {} pod(s) still run on it: {named}",
        left.len()
    ))
}

/// Seconds from `now` until `t`, floored, never negative.
fn secs_until(now: OffsetDateTime, t: OffsetDateTime) -> i64 {
    (t - now).whole_seconds().max(0)
}

/// The grace period of an eviction or deletion at `now`: the configured one or the pod's own,
/// capped by the seconds left until the finish, at least 1 (0 is reserved for the finish).
pub fn grace_period(
    pod: &PodInfo,
    settings: &DrainSettings,
    now: OffsetDateTime,
    finish: OffsetDateTime,
) -> i64 {
    let wanted = settings
        .pod_grace_period_secs
        .unwrap_or(pod.grace_period_secs);
    wanted.min(secs_until(now, finish)).max(1)
}

/// The order in which blocked pods are deleted at the cut-off: lowest priority first, then by
/// namespace and name.
pub fn deletion_order(mut pods: Vec<&PodInfo>) -> Vec<&PodInfo> {
    pods.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| a.namespace.cmp(&b.namespace))
            .then_with(|| a.name.cmp(&b.name))
    });
    pods
}

struct Retry {
    at: tokio::time::Instant,
    pause: Duration,
}

/// Drains the Node until every target pod is gone or the deadline (which `deadline` may move)
/// passes. `progress` hears every eviction and deletion as it happens.
pub async fn run(
    ops: &NodeOps,
    settings: DrainSettings,
    mut deadline: watch::Receiver<OffsetDateTime>,
    progress: mpsc::UnboundedSender<Progress>,
) -> Outcome {
    let started = tokio::time::Instant::now();
    let mut retries: BTreeMap<String, Retry> = BTreeMap::new();
    // Pods this drain evicted or deleted (by uid), and those it deleted with a zero grace.
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut forced: BTreeSet<String> = BTreeSet::new();
    let mut blocked_logged: BTreeSet<String> = BTreeSet::new();
    let node = ops.node().to_owned();
    loop {
        let dl = *deadline.borrow_and_update();
        let finish = dl - settings.deadline_margin;
        let cutoff = dl - settings.delete_before_deadline;
        let now = OffsetDateTime::now_utc();
        let pods = match ops.pods().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(node = %node, error = %crate::model::text::error_chain(&e), "drain: cannot list the pods; retrying");
                if now >= dl {
                    return Outcome {
                        left: vec!["(pods could not be listed)".into()],
                        took: started.elapsed(),
                    };
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let targets = targets(&pods);
        if targets.is_empty() {
            tracing::info!(node = %node, took_secs = started.elapsed().as_secs_f64(), "drain: every pod is gone");
            return Outcome {
                left: Vec::new(),
                took: started.elapsed(),
            };
        }
        if now >= dl {
            let left: Vec<String> = targets.iter().map(|p| p.id()).collect();
            tracing::warn!(node = %node, left = ?left, "drain: the deadline passed with pods left");
            return Outcome {
                left,
                took: started.elapsed(),
            };
        }
        if now >= finish {
            let pending: Vec<&PodInfo> = targets
                .iter()
                .copied()
                .filter(|p| !forced.contains(&p.uid))
                .collect();
            for p in pending {
                tracing::warn!(node = %node, pod = %p.id(), deadline = %crate::model::text::rfc3339(dl),
                    "drain: still running at the finish; deleting with grace period 0");
                match ops.delete(p, 0).await {
                    Ok(_) => {
                        forced.insert(p.uid.clone());
                        if removed.insert(p.uid.clone()) && !p.terminating {
                            let _ = progress.send(Progress::Deleted(p.id()));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pod = %p.id(), error = %crate::model::text::error_chain(&e), "drain: delete failed")
                    }
                }
            }
        } else if now >= cutoff {
            let waiting: Vec<&PodInfo> = targets
                .iter()
                .copied()
                .filter(|p| !p.terminating && !removed.contains(&p.uid))
                .collect();
            for p in deletion_order(waiting) {
                let grace = grace_period(p, &settings, now, finish);
                tracing::warn!(node = %node, pod = %p.id(), priority = p.priority, grace_secs = grace,
                    seconds_to_deadline = secs_until(now, dl),
                    "drain: past the cut-off and not evicted (blocked by a PodDisruptionBudget); deleting");
                match ops.delete(p, grace).await {
                    Ok(_) => {
                        removed.insert(p.uid.clone());
                        let _ = progress.send(Progress::Deleted(p.id()));
                    }
                    Err(e) => {
                        tracing::warn!(pod = %p.id(), error = %crate::model::text::error_chain(&e), "drain: delete failed; retrying")
                    }
                }
            }
        } else {
            let tnow = tokio::time::Instant::now();
            let pending: Vec<&PodInfo> = targets
                .iter()
                .copied()
                .filter(|p| !p.terminating && !removed.contains(&p.uid))
                .collect();
            for p in pending {
                if retries.get(&p.uid).is_some_and(|r| r.at > tnow) {
                    continue;
                }
                let grace = grace_period(p, &settings, now, finish);
                match ops.evict(p, grace).await {
                    Ok(Eviction::Accepted) => {
                        tracing::info!(node = %node, pod = %p.id(), grace_secs = grace, "drain: evicted");
                        retries.remove(&p.uid);
                        removed.insert(p.uid.clone());
                        let _ = progress.send(Progress::Evicted(p.id()));
                    }
                    Ok(Eviction::Gone) => {
                        retries.remove(&p.uid);
                    }
                    Ok(Eviction::Blocked(why)) => {
                        let pause = retries
                            .get(&p.uid)
                            .map_or(settings.retry, |r| (r.pause * 2).min(settings.retry_max));
                        if blocked_logged.insert(p.uid.clone()) {
                            tracing::info!(node = %node, pod = %p.id(), reason = %why,
                                cutoff = %crate::model::text::rfc3339(cutoff),
                                "drain: eviction refused by a PodDisruptionBudget; retrying until the cut-off");
                        }
                        retries.insert(
                            p.uid.clone(),
                            Retry {
                                at: tnow + pause,
                                pause,
                            },
                        );
                    }
                    Err(e) => {
                        let pause = retries
                            .get(&p.uid)
                            .map_or(settings.retry, |r| (r.pause * 2).min(settings.retry_max));
                        tracing::warn!(node = %node, pod = %p.id(), error = %crate::model::text::error_chain(&e), "drain: eviction failed; retrying");
                        retries.insert(
                            p.uid.clone(),
                            Retry {
                                at: tnow + pause,
                                pause,
                            },
                        );
                    }
                }
            }
        }
        // Wait for pods to go, the next retry, the cut-off or the finish, whichever is first.
        let now = OffsetDateTime::now_utc();
        let mut wait = POLL;
        for t in [cutoff, finish, dl] {
            if t > now {
                let d = Duration::try_from(t - now).unwrap_or(POLL);
                wait = wait.min(d);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = deadline.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, priority: i32, grace: i64) -> PodInfo {
        PodInfo {
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            daemonset: false,
            mirror: false,
            priority,
            grace_period_secs: grace,
            terminating: false,
            finished: false,
        }
    }

    #[test]
    fn drained_means_cordoned_with_only_daemonsets_mirrors_and_finished_pods_left() {
        let mut node = NodeState {
            resource_version: "1".into(),
            taints: Vec::new(),
            unschedulable: false,
            labels: BTreeMap::new(),
        };
        let why = not_drained(&node, &[]).unwrap();
        assert!(why.contains("not cordoned"), "{why}");
        node.unschedulable = true;
        let mut ds = pod("ds", 0, 30);
        ds.daemonset = true;
        let mut mirror = pod("m", 0, 30);
        mirror.mirror = true;
        let mut done = pod("done", 0, 30);
        done.finished = true;
        assert_eq!(not_drained(&node, &[ds.clone(), mirror, done]), None);
        let many: Vec<PodInfo> = (0..7).map(|i| pod(&format!("p{i}"), 0, 30)).collect();
        let why = not_drained(&node, &many).unwrap();
        assert!(
            why.contains("7 pod(s)") && why.contains("ns/p0") && why.contains("2 more"),
            "{why}"
        );
        assert!(!why.contains("ns/p6"), "{why}");
    }

    #[test]
    fn grace_fits_the_time_left() {
        let s = DrainSettings::default();
        let now = OffsetDateTime::from_unix_timestamp(1_000).expect("t");
        let finish = now + Duration::from_secs(20);
        assert_eq!(grace_period(&pod("a", 0, 30), &s, now, finish), 20);
        assert_eq!(grace_period(&pod("a", 0, 10), &s, now, finish), 10);
        assert_eq!(grace_period(&pod("a", 0, 30), &s, finish, finish), 1);
        let fixed = DrainSettings {
            pod_grace_period_secs: Some(5),
            ..s
        };
        assert_eq!(grace_period(&pod("a", 0, 30), &fixed, now, finish), 5);
    }

    #[test]
    fn lowest_priority_goes_first_and_daemonsets_and_mirrors_stay() {
        let (a, b, c) = (pod("a", 100, 30), pod("b", -5, 30), pod("c", 100, 30));
        let order: Vec<&str> = deletion_order(vec![&a, &b, &c])
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(order, ["b", "a", "c"]);
        let mut ds = pod("ds", 0, 30);
        ds.daemonset = true;
        let mut mirror = pod("m", 0, 30);
        mirror.mirror = true;
        let all = [ds, mirror, a.clone()];
        assert_eq!(targets(&all), vec![&a]);
    }
}
