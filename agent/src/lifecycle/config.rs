//! `[lifecycle]` in daemon.toml: the file's shape, its validation, and the settings the
//! watchers and the drain run with. Defaults follow aws-node-termination-handler's IMDS mode
//! where it has one (docs/lifecycle.md puts them side by side).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::EventKind;

/// Default poll interval of `spot/instance-action` and the target lifecycle state.
pub const FAST_POLL: Duration = Duration::from_secs(1);
/// Default poll interval of the rebalance recommendation.
pub const REBALANCE_POLL: Duration = Duration::from_secs(5);
/// Default poll interval of scheduled events (announced days ahead).
pub const SCHEDULED_POLL: Duration = Duration::from_secs(60);
/// Default window before a scheduled event's NotBefore in which the node is tainted.
pub const SCHEDULED_WINDOW: Duration = Duration::from_secs(2 * 3600);
/// Default: PDB-blocked pods are deleted this long before the deadline.
pub const DELETE_BEFORE_DEADLINE: Duration = Duration::from_secs(30);
/// Default: every pod should be gone this long before the deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);
/// Default deadline of a drain whose event has no time (a rebalance recommendation): NTH's
/// `nodeTerminationGracePeriod` (120 s).
pub const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(120);
/// First pause before retrying an eviction a PodDisruptionBudget refused; doubled up to
/// [`EVICTION_RETRY_MAX`].
pub const EVICTION_RETRY: Duration = Duration::from_millis(500);
/// Longest pause between eviction retries (kubectl drain's fixed interval).
pub const EVICTION_RETRY_MAX: Duration = Duration::from_secs(5);
/// The lifecycle hook heartbeat timeout when neither the config nor DescribeLifecycleHooks
/// gives one: Auto Scaling's default (one hour).
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Auto Scaling's bounds on a hook's heartbeat timeout.
pub const HEARTBEAT_TIMEOUT_RANGE: (u64, u64) = (30, 7200);
/// Auto Scaling keeps an instance in a wait state at most 48 hours.
pub const MAX_LIFECYCLE_WAIT: Duration = Duration::from_secs(48 * 3600);
/// Poll intervals the file may set, in seconds.
const POLL_RANGE: (f64, f64) = (0.05, 3600.0);
/// Longest scheduled-event window (events are announced at most weeks ahead).
const MAX_WINDOW_SECS: f64 = 30.0 * 86_400.0;
/// Longest drain timing the file may set (Auto Scaling's 48 hours).
const MAX_DRAIN_SECS: f64 = 172_800.0;

/// One action the watchers can take for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// The event's `eks-node-agent/<kind>:NoSchedule` taint.
    Taint,
    /// `spec.unschedulable: true`.
    Cordon,
    /// The `node.kubernetes.io/exclude-from-external-load-balancers` label.
    ExcludeFromLoadBalancers,
    /// The deadline-aware drain.
    Drain,
    /// `node.kubernetes.io/out-of-service=nodeshutdown:NoExecute` after the drain.
    OutOfServiceTaint,
    /// Auto Scaling `CompleteLifecycleAction` (CONTINUE) after the drain.
    CompleteLifecycleAction,
}

impl Action {
    /// Every action, in the order they are taken.
    pub const ALL: [Action; 6] = [
        Action::Taint,
        Action::Cordon,
        Action::ExcludeFromLoadBalancers,
        Action::Drain,
        Action::OutOfServiceTaint,
        Action::CompleteLifecycleAction,
    ];

    /// The name in daemon.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Taint => "taint",
            Action::Cordon => "cordon",
            Action::ExcludeFromLoadBalancers => "exclude-from-load-balancers",
            Action::Drain => "drain",
            Action::OutOfServiceTaint => "out-of-service-taint",
            Action::CompleteLifecycleAction => "complete-lifecycle-action",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// `enabled = "auto" | true | false`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum EnabledFile {
    Bool(bool),
    Text(String),
}

/// Whether the watchers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enabled {
    /// On when the host is EC2 (firmware says so and IMDS is not turned off), off on hybrid
    /// and kubeadm nodes.
    #[default]
    Auto,
    /// Always on.
    On,
    /// Never.
    Off,
}

/// Settings of one event kind in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindFile {
    /// Action names.
    pub actions: Option<Vec<String>>,
    /// Seconds between two reads of the IMDS path.
    pub poll_interval_secs: Option<f64>,
}

/// `[lifecycle.scheduled_maintenance]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFile {
    /// Action names.
    pub actions: Option<Vec<String>>,
    /// Seconds between two reads of the IMDS path.
    pub poll_interval_secs: Option<f64>,
    /// Act once the event's NotBefore is at most this many seconds away.
    pub window_secs: Option<f64>,
}

/// `[lifecycle.asg_termination]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsgFile {
    /// Action names.
    pub actions: Option<Vec<String>>,
    /// Seconds between two reads of the IMDS path.
    pub poll_interval_secs: Option<f64>,
    /// The termination lifecycle hook to complete (default: every
    /// `autoscaling:EC2_INSTANCE_TERMINATING` hook of the group, from DescribeLifecycleHooks).
    pub hook_name: Option<String>,
    /// The Auto Scaling group (default: from DescribeAutoScalingInstances).
    pub group_name: Option<String>,
    /// The hook's heartbeat timeout (default: from DescribeLifecycleHooks).
    pub heartbeat_timeout_secs: Option<u64>,
    /// How long the drain may take (default: the heartbeat timeout); longer than the
    /// heartbeat timeout means heartbeats while it runs.
    pub drain_timeout_secs: Option<f64>,
}

/// `[lifecycle.drain]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainFile {
    /// The grace period given to evicted pods (default: each pod's own), always capped by
    /// the time left.
    pub pod_grace_period_secs: Option<i64>,
    /// How long before the deadline pods still blocked by a PodDisruptionBudget are deleted.
    pub delete_before_deadline_secs: Option<f64>,
    /// How long before the deadline every pod should be gone.
    pub deadline_margin_secs: Option<f64>,
    /// The deadline of a drain for an event without a time (rebalance recommendation).
    pub default_deadline_secs: Option<f64>,
}

/// `[lifecycle]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    enabled: Option<EnabledFile>,
    /// A kubeconfig whose identity may taint, cordon and evict (default: `run --kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
    /// `[lifecycle.spot_interruption]`.
    pub spot_interruption: Option<KindFile>,
    /// `[lifecycle.rebalance_recommendation]`.
    pub rebalance_recommendation: Option<KindFile>,
    /// `[lifecycle.scheduled_maintenance]`.
    pub scheduled_maintenance: Option<ScheduledFile>,
    /// `[lifecycle.asg_termination]`.
    pub asg_termination: Option<AsgFile>,
    /// `[lifecycle.drain]`.
    pub drain: Option<DrainFile>,
}

/// One event kind's validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSettings {
    /// What to do.
    pub actions: BTreeSet<Action>,
    /// Time between two reads of its IMDS path.
    pub poll_interval: Duration,
}

impl KindSettings {
    /// Whether `a` is configured.
    pub fn has(&self, a: Action) -> bool {
        self.actions.contains(&a)
    }
}

/// The Auto Scaling settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsgSettings {
    /// Hook to complete; `None`: every termination hook of the group.
    pub hook_name: Option<String>,
    /// Group; `None`: DescribeAutoScalingInstances.
    pub group_name: Option<String>,
    /// Heartbeat timeout; `None`: DescribeLifecycleHooks.
    pub heartbeat_timeout: Option<Duration>,
    /// Drain time budget; `None`: the heartbeat timeout.
    pub drain_timeout: Option<Duration>,
}

/// The drain's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainSettings {
    /// Grace period of evictions (`None`: the pod's own).
    pub pod_grace_period_secs: Option<i64>,
    /// Cut-off before the deadline for deleting PDB-blocked pods.
    pub delete_before_deadline: Duration,
    /// Every pod should be gone this long before the deadline.
    pub deadline_margin: Duration,
    /// Deadline of a drain whose event has no time.
    pub default_deadline: Duration,
    /// First eviction retry pause.
    pub retry: Duration,
    /// Longest eviction retry pause.
    pub retry_max: Duration,
}

impl Default for DrainSettings {
    fn default() -> Self {
        DrainSettings {
            pod_grace_period_secs: None,
            delete_before_deadline: DELETE_BEFORE_DEADLINE,
            deadline_margin: DEADLINE_MARGIN,
            default_deadline: DEFAULT_DRAIN_DEADLINE,
            retry: EVICTION_RETRY,
            retry_max: EVICTION_RETRY_MAX,
        }
    }
}

/// Everything `[lifecycle]` decides, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// On, off or by host.
    pub enabled: Enabled,
    /// The kubeconfig of the actions (`None`: the daemon's).
    pub kubeconfig: Option<PathBuf>,
    /// Spot interruption notices.
    pub spot: KindSettings,
    /// Rebalance recommendations.
    pub rebalance: KindSettings,
    /// Scheduled maintenance.
    pub scheduled: KindSettings,
    /// The scheduled-event window.
    pub scheduled_window: Duration,
    /// Auto Scaling termination.
    pub asg: KindSettings,
    /// Auto Scaling hook and group.
    pub asg_hook: AsgSettings,
    /// The drain's timing.
    pub drain: DrainSettings,
}

impl Default for Settings {
    fn default() -> Self {
        validate(&File::default()).unwrap_or_else(|_| unreachable_defaults())
    }
}

/// The defaults never fail validation (a unit test proves it); this keeps `Default`
/// infallible without a panic path.
fn unreachable_defaults() -> Settings {
    let kind = |a: &[Action], p| KindSettings {
        actions: a.iter().copied().collect(),
        poll_interval: p,
    };
    Settings {
        enabled: Enabled::Auto,
        kubeconfig: None,
        spot: kind(&default_actions(EventKind::SpotInterruption), FAST_POLL),
        rebalance: kind(
            &default_actions(EventKind::RebalanceRecommendation),
            REBALANCE_POLL,
        ),
        scheduled: kind(
            &default_actions(EventKind::ScheduledMaintenance),
            SCHEDULED_POLL,
        ),
        scheduled_window: SCHEDULED_WINDOW,
        asg: kind(&default_actions(EventKind::AsgTermination), FAST_POLL),
        asg_hook: AsgSettings::default(),
        drain: DrainSettings::default(),
    }
}

/// The default actions of an event kind.
pub fn default_actions(kind: EventKind) -> Vec<Action> {
    match kind {
        // NTH: cordon + drain (enableSpotInterruptionDraining=true); we add the taint.
        EventKind::SpotInterruption => vec![Action::Taint, Action::Cordon, Action::Drain],
        // NTH: nothing unless enableRebalanceMonitoring (cordon); the taint alone keeps new
        // pods off a node that will likely be interrupted, without evicting anything.
        EventKind::RebalanceRecommendation => vec![Action::Taint],
        // NTH: cordon + drain at once (enableScheduledEventDraining=true); events come days
        // ahead, so we taint inside the window and drain only when asked to.
        EventKind::ScheduledMaintenance => vec![Action::Taint],
        // NTH: cordon + drain (enableASGLifecycleDraining=true), no hook completion in IMDS
        // mode; we complete the hook from the node.
        EventKind::AsgTermination => vec![
            Action::Taint,
            Action::Cordon,
            Action::Drain,
            Action::CompleteLifecycleAction,
        ],
    }
}

/// An invalid `[lifecycle]` setting: the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    /// The key, e.g. `[lifecycle.spot_interruption] actions`.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        message: message.into(),
    }
}

fn secs(
    key: &str,
    v: Option<f64>,
    range: (f64, f64),
    default: Duration,
) -> Result<Duration, Invalid> {
    match v {
        None => Ok(default),
        Some(v) if v.is_finite() && (range.0..=range.1).contains(&v) => {
            Ok(Duration::from_secs_f64(v))
        }
        Some(v) => Err(invalid(
            key,
            format!(
                "{v} is out of range; use {} to {} seconds",
                range.0, range.1
            ),
        )),
    }
}

fn kind_settings(
    kind: EventKind,
    actions: Option<&Vec<String>>,
    poll: Option<f64>,
    default_poll: Duration,
) -> Result<KindSettings, Invalid> {
    let table = format!("[lifecycle.{}]", kind.table());
    let mut set = BTreeSet::new();
    match actions {
        None => set.extend(default_actions(kind)),
        Some(names) => {
            for name in names {
                let Some(a) = Action::parse(name) else {
                    let known: Vec<&str> = Action::ALL
                        .iter()
                        .filter(|a| {
                            kind == EventKind::AsgTermination
                                || **a != Action::CompleteLifecycleAction
                        })
                        .map(|a| a.as_str())
                        .collect();
                    return Err(invalid(
                        format!("{table} actions"),
                        format!("unknown action {name:?}; known: {}", known.join(", ")),
                    ));
                };
                if a == Action::CompleteLifecycleAction && kind != EventKind::AsgTermination {
                    return Err(invalid(
                        format!("{table} actions"),
                        "complete-lifecycle-action applies to asg_termination only",
                    ));
                }
                set.insert(a);
            }
        }
    }
    if set.contains(&Action::OutOfServiceTaint) && !set.contains(&Action::Drain) {
        return Err(invalid(
            format!("{table} actions"),
            "out-of-service-taint is set after the drain; add \"drain\" too",
        ));
    }
    Ok(KindSettings {
        actions: set,
        poll_interval: secs(
            &format!("{table} poll_interval_secs"),
            poll,
            POLL_RANGE,
            default_poll,
        )?,
    })
}

/// Whether `name` is a valid lifecycle hook name: 1 to 255 of `A-Za-z0-9-_/` (Auto Scaling's
/// `[A-Za-z0-9\-_\/]+`).
pub fn valid_hook_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
}

/// Validates `[lifecycle]`.
pub fn validate(f: &File) -> Result<Settings, Invalid> {
    let enabled = match &f.enabled {
        None => Enabled::Auto,
        Some(EnabledFile::Bool(true)) => Enabled::On,
        Some(EnabledFile::Bool(false)) => Enabled::Off,
        Some(EnabledFile::Text(t)) if t == "auto" => Enabled::Auto,
        Some(EnabledFile::Text(t)) => {
            return Err(invalid(
                "[lifecycle] enabled",
                format!("{t:?} is not a setting; use \"auto\", true or false"),
            ));
        }
    };
    let empty = KindFile::default();
    let spot = f.spot_interruption.as_ref().unwrap_or(&empty);
    let rebalance = f.rebalance_recommendation.as_ref().unwrap_or(&empty);
    let sched = f.scheduled_maintenance.clone().unwrap_or_default();
    let asg = f.asg_termination.clone().unwrap_or_default();
    let drain = f.drain.clone().unwrap_or_default();
    if let Some(h) = &asg.hook_name
        && !valid_hook_name(h)
    {
        return Err(invalid(
            "[lifecycle.asg_termination] hook_name",
            format!(
                "{h:?} is not a lifecycle hook name: 1 to 255 letters, digits, '-', '_' or '/'"
            ),
        ));
    }
    if let Some(g) = &asg.group_name
        && (g.is_empty() || g.len() > 255 || g.chars().any(char::is_control))
    {
        return Err(invalid(
            "[lifecycle.asg_termination] group_name",
            format!("{g:?} is not an Auto Scaling group name: 1 to 255 printable characters"),
        ));
    }
    let heartbeat_timeout = match asg.heartbeat_timeout_secs {
        None => None,
        Some(s) if (HEARTBEAT_TIMEOUT_RANGE.0..=HEARTBEAT_TIMEOUT_RANGE.1).contains(&s) => {
            Some(Duration::from_secs(s))
        }
        Some(s) => {
            return Err(invalid(
                "[lifecycle.asg_termination] heartbeat_timeout_secs",
                format!(
                    "{s} is outside Auto Scaling's range of {} to {} seconds",
                    HEARTBEAT_TIMEOUT_RANGE.0, HEARTBEAT_TIMEOUT_RANGE.1
                ),
            ));
        }
    };
    let drain_timeout = match asg.drain_timeout_secs {
        None => None,
        Some(v) => Some(secs(
            "[lifecycle.asg_termination] drain_timeout_secs",
            Some(v),
            (1.0, MAX_DRAIN_SECS),
            Duration::ZERO,
        )?),
    };
    if let Some(g) = drain.pod_grace_period_secs
        && g < 0
    {
        return Err(invalid(
            "[lifecycle.drain] pod_grace_period_secs",
            format!("{g} is negative; leave it out to give each pod its own grace period"),
        ));
    }
    let d = DrainSettings::default();
    Ok(Settings {
        enabled,
        kubeconfig: f.kubeconfig.clone(),
        spot: kind_settings(
            EventKind::SpotInterruption,
            spot.actions.as_ref(),
            spot.poll_interval_secs,
            FAST_POLL,
        )?,
        rebalance: kind_settings(
            EventKind::RebalanceRecommendation,
            rebalance.actions.as_ref(),
            rebalance.poll_interval_secs,
            REBALANCE_POLL,
        )?,
        scheduled: kind_settings(
            EventKind::ScheduledMaintenance,
            sched.actions.as_ref(),
            sched.poll_interval_secs,
            SCHEDULED_POLL,
        )?,
        scheduled_window: secs(
            "[lifecycle.scheduled_maintenance] window_secs",
            sched.window_secs,
            (0.0, MAX_WINDOW_SECS),
            SCHEDULED_WINDOW,
        )?,
        asg: kind_settings(
            EventKind::AsgTermination,
            asg.actions.as_ref(),
            asg.poll_interval_secs,
            FAST_POLL,
        )?,
        asg_hook: AsgSettings {
            hook_name: asg.hook_name.clone(),
            group_name: asg.group_name.clone(),
            heartbeat_timeout,
            drain_timeout,
        },
        drain: DrainSettings {
            pod_grace_period_secs: drain.pod_grace_period_secs,
            delete_before_deadline: secs(
                "[lifecycle.drain] delete_before_deadline_secs",
                drain.delete_before_deadline_secs,
                (0.0, MAX_DRAIN_SECS),
                d.delete_before_deadline,
            )?,
            deadline_margin: secs(
                "[lifecycle.drain] deadline_margin_secs",
                drain.deadline_margin_secs,
                (0.0, MAX_DRAIN_SECS),
                d.deadline_margin,
            )?,
            default_deadline: secs(
                "[lifecycle.drain] default_deadline_secs",
                drain.default_deadline_secs,
                (1.0, MAX_DRAIN_SECS),
                d.default_deadline,
            )?,
            ..d
        },
    })
}

impl Settings {
    /// The settings of one event kind.
    pub fn of(&self, kind: EventKind) -> &KindSettings {
        match kind {
            EventKind::SpotInterruption => &self.spot,
            EventKind::RebalanceRecommendation => &self.rebalance,
            EventKind::ScheduledMaintenance => &self.scheduled,
            EventKind::AsgTermination => &self.asg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, Invalid> {
        #[derive(Deserialize)]
        struct Top {
            lifecycle: File,
        }
        let top: Top = toml::from_str(text).expect("toml");
        validate(&top.lifecycle)
    }

    #[test]
    fn defaults_validate_and_match_the_documented_table() {
        let s = validate(&File::default()).expect("defaults are valid");
        assert_eq!(s, unreachable_defaults());
        assert_eq!(s.enabled, Enabled::Auto);
        assert!(s.spot.has(Action::Drain) && s.spot.has(Action::Taint));
        assert_eq!(s.rebalance.actions, BTreeSet::from([Action::Taint]));
        assert_eq!(s.spot.poll_interval, FAST_POLL);
        assert!(s.asg.has(Action::CompleteLifecycleAction));
    }

    #[test]
    fn bad_input_names_the_key() {
        let e =
            parse("[lifecycle.spot_interruption]\nactions = [\"taint\", \"drian\"]\n").unwrap_err();
        assert_eq!(e.key, "[lifecycle.spot_interruption] actions");
        assert!(e.message.contains("\"drian\""), "{e}");
        let e = parse("[lifecycle.scheduled_maintenance]\nwindow_secs = -5\n").unwrap_err();
        assert_eq!(e.key, "[lifecycle.scheduled_maintenance] window_secs");
        let e = parse("[lifecycle.asg_termination]\nhook_name = \"my hook!\"\n").unwrap_err();
        assert_eq!(e.key, "[lifecycle.asg_termination] hook_name");
        let e = parse("[lifecycle]\nenabled = \"yes\"\n").unwrap_err();
        assert_eq!(e.key, "[lifecycle] enabled");
        let e = parse(
            "[lifecycle.rebalance_recommendation]\nactions = [\"complete-lifecycle-action\"]\n",
        )
        .unwrap_err();
        assert!(e.message.contains("asg_termination"), "{e}");
        let e = parse("[lifecycle.spot_interruption]\nactions = [\"out-of-service-taint\"]\n")
            .unwrap_err();
        assert!(e.message.contains("drain"), "{e}");
        let e = parse("[lifecycle.asg_termination]\nheartbeat_timeout_secs = 10\n").unwrap_err();
        assert!(e.message.contains("30"), "{e}");
    }

    #[test]
    fn explicit_settings_win() {
        let s = parse(
            "[lifecycle]\nenabled = true\n[lifecycle.rebalance_recommendation]\nactions = [\"taint\", \"cordon\", \"drain\"]\npoll_interval_secs = 0.5\n[lifecycle.asg_termination]\nhook_name = \"drain/hook_1\"\nheartbeat_timeout_secs = 300\n",
        )
        .expect("valid");
        assert_eq!(s.enabled, Enabled::On);
        assert!(s.rebalance.has(Action::Drain));
        assert_eq!(s.rebalance.poll_interval, Duration::from_millis(500));
        assert_eq!(s.asg_hook.hook_name.as_deref(), Some("drain/hook_1"));
        assert_eq!(s.asg_hook.heartbeat_timeout, Some(Duration::from_secs(300)));
        assert_eq!(
            parse("[lifecycle]\nenabled = false\n")
                .expect("valid")
                .enabled,
            Enabled::Off
        );
    }
}
