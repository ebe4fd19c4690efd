//! The lifecycle engine: it folds the watchers' readings into the events active now
//! ([`super::events::active_events`]), records each new one (counted and announced once, even
//! across restarts), brings the Node to what the active events ask for (taints, cordon, label:
//! one guarded PATCH, and undone when an event ends: a cancelled or completed scheduled event,
//! a notice that went away), runs one drain for all events that want one, with the earliest
//! deadline, and completes the Auto Scaling hook after the drain, with heartbeats while the
//! drain needs longer than the hook's heartbeat timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use super::asg::{Asg, Hook};
use super::config::{Action, DEFAULT_HEARTBEAT_TIMEOUT, MAX_LIFECYCLE_WAIT, Settings};
use super::drain;
use super::events::{self, Active, Observed};
use super::metrics::Metrics;
use super::state::{Progress, Record, State};
use super::watch::{Reading, spawn as spawn_watcher};
use super::{
    EXCLUDE_LB_LABEL, EventKind, Notice, OUT_OF_SERVICE_KEY, OUT_OF_SERVICE_VALUE, TAINT_PREFIX,
};
use crate::facts::imds::Imds;
use crate::report::node_ops::{NodeChange, NodeOps, NodeState, Taint};

/// How often the engine looks again without a new reading (windows, drains, heartbeats).
const TICK: Duration = Duration::from_millis(250);
/// Longest pause before retrying a refused Node update or Auto Scaling call.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// First pause before retrying them.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Node updates tried at once after a 409 Conflict before backing off.
const MAX_CONFLICTS: u32 = 3;

/// What the engine needs.
#[derive(Debug)]
pub struct Inputs {
    /// `[lifecycle]`.
    pub settings: Settings,
    /// The Node's name.
    pub node: String,
    /// The Node and pod calls; `None` without Kubernetes (only the Auto Scaling hook is
    /// completed then).
    pub kube: Option<NodeOps>,
    /// IMDS (the daemon's endpoint settings).
    pub imds: Arc<Imds>,
    /// The state file.
    pub state_path: PathBuf,
    /// The lifecycle metrics.
    pub metrics: Metrics,
    /// Where the Node's Kubernetes Events go.
    pub notices: mpsc::UnboundedSender<Notice>,
}

struct RunningDrain {
    deadline: watch::Sender<OffsetDateTime>,
    task: tokio::task::JoinHandle<drain::Outcome>,
}

/// The Auto Scaling side, once resolved.
struct AsgContext {
    client: Asg,
    group: String,
    hooks: Vec<Hook>,
}

/// A retry schedule for a failing call.
#[derive(Default)]
struct Backoff {
    next: Option<tokio::time::Instant>,
    pause: Duration,
}

impl Backoff {
    fn ready(&self) -> bool {
        self.next.is_none_or(|t| tokio::time::Instant::now() >= t)
    }
    fn failed(&mut self) -> Duration {
        self.pause = if self.pause.is_zero() {
            FIRST_RETRY
        } else {
            (self.pause * 2).min(MAX_RETRY)
        };
        self.next = Some(tokio::time::Instant::now() + self.pause);
        self.pause
    }
    fn ok(&mut self) {
        *self = Backoff::default();
    }
}

struct Engine {
    inp: Inputs,
    state: State,
    seen: Observed,
    node_synced: bool,
    node_retry: Backoff,
    drain: Option<RunningDrain>,
    asg: Option<AsgContext>,
    asg_retry: Backoff,
    last_heartbeat: Option<tokio::time::Instant>,
    warned_no_kube: bool,
    /// The API server refused our taints once (NodeRestriction): do not ask again.
    taints_forbidden: bool,
}

/// Starts the watchers and the engine; they stop when the returned task is aborted.
pub fn spawn(inp: Inputs) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let state = State::load(&inp.state_path);
        inp.metrics.restore(&state.counts);
        let (tx, rx) = mpsc::channel::<Reading>(16);
        let mut watchers = Vec::new();
        for kind in EventKind::ALL {
            let ks = inp.settings.of(kind);
            if ks.actions.is_empty() {
                continue;
            }
            let errors = inp
                .metrics
                .imds_errors
                .with_label_values(&[super::watch::leaf(kind)]);
            watchers.push(spawn_watcher(
                inp.imds.clone(),
                kind,
                ks.poll_interval,
                errors,
                tx.clone(),
            ));
        }
        drop(tx);
        tracing::info!(node = %inp.node, watchers = watchers.len(), state = %inp.state_path.display(),
            "lifecycle watchers started");
        let mut engine = Engine {
            // Records from a previous run need the Node checked and their drain resumed.
            node_synced: state.events.is_empty(),
            inp,
            state,
            seen: Observed::default(),
            node_retry: Backoff::default(),
            drain: None,
            asg: None,
            asg_retry: Backoff::default(),
            last_heartbeat: None,
            warned_no_kube: false,
            taints_forbidden: false,
        };
        engine.run(rx).await;
        for w in watchers {
            w.abort();
        }
    })
}

/// The taints, cordon and label the records ask for on `node`, and the change that gets
/// there (pure). Ended records release what they set; what another owner set is left alone.
pub fn node_change(
    records: &BTreeMap<String, Record>,
    settings: &Settings,
    node: &NodeState,
) -> NodeChange {
    let wants = |a: Action| {
        records
            .values()
            .any(|r| !r.ended && EventKind::parse(&r.kind).is_some_and(|k| settings.of(k).has(a)))
    };
    let mut desired: BTreeSet<Taint> = BTreeSet::new();
    for r in records.values().filter(|r| !r.ended) {
        let Some(kind) = EventKind::parse(&r.kind) else {
            continue;
        };
        if settings.of(kind).has(Action::Taint) {
            desired.insert(Taint {
                key: kind.taint_key(),
                value: String::new(),
                effect: "NoSchedule".into(),
            });
        }
        if r.out_of_service {
            desired.insert(out_of_service());
        }
    }
    let ours = |t: &Taint| {
        t.key.starts_with(TAINT_PREFIX) && EventKind::ALL.iter().any(|k| k.taint_key() == t.key)
            || (t.key == OUT_OF_SERVICE_KEY && records.values().any(|r| r.out_of_service))
    };
    let mut taints: Vec<Taint> = node
        .taints
        .iter()
        .filter(|t| !ours(t) || desired.iter().any(|d| d.key == t.key))
        .cloned()
        .collect();
    for d in &desired {
        if !taints.iter().any(|t| t.key == d.key) {
            taints.push(d.clone());
        }
    }
    let mut change = NodeChange::default();
    if taints != node.taints {
        change.taints = Some(taints);
    }
    let we_cordoned = records.values().any(|r| r.cordoned);
    if wants(Action::Cordon) {
        if !node.unschedulable {
            change.unschedulable = Some(true);
        }
    } else if we_cordoned && node.unschedulable {
        change.unschedulable = Some(false);
    }
    let we_labeled = records.values().any(|r| r.labeled);
    let labeled = node.labels.contains_key(EXCLUDE_LB_LABEL);
    if wants(Action::ExcludeFromLoadBalancers) {
        if !labeled {
            change
                .labels
                .insert(EXCLUDE_LB_LABEL.to_owned(), Some("true".to_owned()));
        }
    } else if we_labeled && labeled {
        change.labels.insert(EXCLUDE_LB_LABEL.to_owned(), None);
    }
    change
}

fn out_of_service() -> Taint {
    Taint {
        key: OUT_OF_SERVICE_KEY.into(),
        value: OUT_OF_SERVICE_VALUE.into(),
        effect: "NoExecute".into(),
    }
}

impl Engine {
    async fn run(&mut self, mut rx: mpsc::Receiver<Reading>) {
        let (ptx, mut prx) = mpsc::unbounded_channel::<drain::Progress>();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                reading = rx.recv() => {
                    let Some(reading) = reading else { return };
                    self.observe(reading);
                }
                Some(p) = prx.recv() => {
                    self.progress(p);
                    continue;
                }
                _ = tick.tick() => {}
            }
            self.step(&ptx).await;
        }
    }

    fn observe(&mut self, r: Reading) {
        let body = r.body.as_deref();
        let parsed = match r.kind {
            EventKind::SpotInterruption => body
                .map(events::parse_spot)
                .transpose()
                .map(|v| self.seen.spot = Some(v)),
            EventKind::RebalanceRecommendation => body
                .map(events::parse_rebalance)
                .transpose()
                .map(|v| self.seen.rebalance = Some(v)),
            EventKind::ScheduledMaintenance => body
                .map(events::parse_scheduled)
                .transpose()
                .map(|v| self.seen.scheduled = Some(v.unwrap_or_default())),
            EventKind::AsgTermination => {
                let text = body.map(|b| String::from_utf8_lossy(b).trim().to_owned());
                match text
                    .as_deref()
                    .map(crate::model::TargetLifecycleState::parse)
                {
                    Some(None) => Err(events::BadDocument {
                        path: super::watch::leaf(r.kind),
                        reason: format!("{:?} is not a documented state", text.unwrap_or_default()),
                    }),
                    Some(Some(s)) => {
                        self.seen.target_state = Some(Some(s));
                        Ok(())
                    }
                    None => {
                        self.seen.target_state = Some(None);
                        Ok(())
                    }
                }
            }
        };
        if let Err(e) = parsed {
            tracing::warn!(error = %e, "lifecycle watcher read a document it cannot use; ignoring it");
        } else {
            tracing::debug!(
                kind = r.kind.as_str(),
                present = r.body.is_some(),
                "IMDS reading changed"
            );
        }
    }

    fn progress(&mut self, p: drain::Progress) {
        let result = match &p {
            drain::Progress::Evicted(_) => {
                self.state.counts.evicted += 1;
                "evicted"
            }
            drain::Progress::Deleted(_) => {
                self.state.counts.deleted += 1;
                "deleted"
            }
        };
        self.inp
            .metrics
            .drain_pods
            .with_label_values(&[result])
            .inc();
        self.save();
    }

    fn save(&mut self) {
        self.state.save(&self.inp.state_path);
    }

    fn notice(&self, warning: bool, reason: &str, note: String) {
        let _ = self.inp.notices.send(Notice {
            warning,
            reason: reason.to_owned(),
            note,
        });
    }

    async fn step(&mut self, ptx: &mpsc::UnboundedSender<drain::Progress>) {
        let now = OffsetDateTime::now_utc();
        let (active, ended) =
            events::active_events(&self.seen, now, self.inp.settings.scheduled_window);
        let mut changed = false;
        for a in &active {
            if self.inp.settings.of(a.kind).actions.is_empty() {
                continue;
            }
            changed |= self.start(a, now).await;
        }
        let active_keys: BTreeSet<String> = active.iter().map(Active::key).collect();
        for (key, r) in &mut self.state.events {
            if r.ended {
                continue;
            }
            let Some(kind) = EventKind::parse(&r.kind) else {
                continue;
            };
            let gone = ended.contains(key)
                || (events::path_read(&self.seen, kind) && !active_keys.contains(key));
            if gone {
                tracing::info!(event = %key, "lifecycle event ended; undoing its taint, cordon and label");
                r.ended = true;
                changed = true;
            }
        }
        if changed {
            self.node_synced = false;
            self.save();
        }
        self.sync_node().await;
        self.finish_drain().await;
        self.run_drain(ptx, now);
        self.auto_scaling().await;
    }

    /// Records a new event (or revives one that ended): counted and announced once.
    async fn start(&mut self, a: &Active, now: OffsetDateTime) -> bool {
        let key = a.key();
        if let Some(r) = self.state.events.get_mut(&key) {
            if !r.ended {
                return false;
            }
            // Back inside its window (a rescheduled event) or announced again.
            r.ended = false;
            tracing::info!(event = %key, "lifecycle event active again");
            return true;
        }
        let ks = self.inp.settings.of(a.kind).clone();
        let deadline = match (a.kind, a.deadline) {
            (_, Some(t)) => t,
            // Without network calls, so that the taint and cordon are not delayed: the hook's
            // heartbeat timeout, when DescribeLifecycleHooks gives it, fixes it up after.
            (EventKind::AsgTermination, None) => now + self.asg_drain_budget(None),
            (_, None) => now + self.inp.settings.drain.default_deadline,
        };
        let drain = if ks.has(Action::Drain) && self.inp.kube.is_some() {
            Progress::Pending
        } else {
            Progress::NotNeeded
        };
        let actions: Vec<&str> = ks.actions.iter().map(|a| a.as_str()).collect();
        tracing::warn!(event = %key, deadline = %crate::model::text::rfc3339(deadline),
            actions = %actions.join(","), "{}", a.summary);
        *self
            .state
            .counts
            .events
            .entry(a.kind.as_str().to_owned())
            .or_default() += 1;
        self.inp
            .metrics
            .events
            .with_label_values(&[a.kind.as_str()])
            .inc();
        self.notice(
            true,
            a.kind.reason(),
            format!(
                "{}; actions: {}; deadline {}",
                a.summary,
                actions.join(", "),
                crate::model::text::rfc3339(deadline)
            ),
        );
        self.state.events.insert(
            key,
            Record {
                kind: a.kind.as_str().to_owned(),
                id: a.id.clone(),
                first_seen: crate::model::text::rfc3339(now),
                deadline_unix: Some(deadline.unix_timestamp()),
                drain,
                ..Record::default()
            },
        );
        true
    }

    /// Brings the Node to what the records ask for (one guarded PATCH); retried with backoff.
    async fn sync_node(&mut self) {
        if self.node_synced || !self.node_retry.ready() {
            return;
        }
        let Some(kube) = self.inp.kube.clone() else {
            if !self.warned_no_kube {
                tracing::warn!(
                    "lifecycle: no Kubernetes client; taints, cordon and drains are skipped"
                );
                self.warned_no_kube = true;
            }
            self.node_synced = true;
            return;
        };
        let mut forbidden = self.taints_forbidden;
        let records = &self.state.events;
        let settings = &self.inp.settings;
        let result = async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let node = kube.read().await?;
                let mut change = node_change(records, settings, &node);
                if forbidden {
                    change.taints = None;
                }
                if change.is_empty() {
                    return Ok(node);
                }
                match kube.change(&node, &change).await {
                    Ok(()) => {
                        tracing::info!(node = %kube.node(), taints = ?change.taints.as_ref().map(|t| t.iter().map(|t| t.key.clone()).collect::<Vec<_>>()),
                            unschedulable = ?change.unschedulable, labels = ?change.labels, "lifecycle: Node updated");
                        return Ok(node);
                    }
                    // The Node changed since it was read (the kubelet, the condition writer):
                    // read it again at once.
                    Err(e) if e.status() == Some(409) && attempt < MAX_CONFLICTS => {}
                    // NodeRestriction: a node's own identity may cordon and label itself but
                    // not change its taints. Cordon, label and drain go on without them.
                    Err(e) if e.status() == Some(403) && change.taints.is_some() => {
                        tracing::error!(node = %kube.node(), error = %crate::model::text::error_chain(&e),
                            "lifecycle: the API server refused the taint (NodeRestriction forbids a node's own identity to change its taints); cordoning and draining without it. Give [lifecycle] kubeconfig an identity that may patch nodes: see docs/lifecycle.md");
                        forbidden = true;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        .await;
        self.taints_forbidden = forbidden;
        match result {
            Ok(node) => {
                self.node_retry.ok();
                self.node_synced = true;
                let settings = &self.inp.settings;
                let was_cordoned = node.unschedulable;
                let was_labeled = node.labels.contains_key(EXCLUDE_LB_LABEL);
                let any_cordoned = self.state.events.values().any(|r| r.cordoned);
                let any_labeled = self.state.events.values().any(|r| r.labeled);
                for r in self.state.events.values_mut() {
                    let Some(kind) = EventKind::parse(&r.kind) else {
                        continue;
                    };
                    let ks = settings.of(kind);
                    if r.ended {
                        r.tainted = false;
                        r.cordoned = false;
                        r.labeled = false;
                        r.out_of_service = false;
                        continue;
                    }
                    r.tainted = ks.has(Action::Taint) && !forbidden;
                    // Ours when we set it now, or a record of ours set it before.
                    if ks.has(Action::Cordon) {
                        r.cordoned = !was_cordoned || any_cordoned;
                    }
                    if ks.has(Action::ExcludeFromLoadBalancers) {
                        r.labeled = !was_labeled || any_labeled;
                    }
                }
                self.save();
            }
            Err(e) => {
                let retry = self.node_retry.failed();
                let fix = match e.status() {
                    Some(403) => {
                        "; the identity of [lifecycle] kubeconfig needs patch on nodes: see docs/lifecycle.md"
                    }
                    _ => "",
                };
                tracing::error!(error = %crate::model::text::error_chain(&e), retry_in = ?retry,
                    "lifecycle: cannot update the Node{fix}");
            }
        }
    }

    /// Starts the drain when an active event wants one and the Node is cordoned; moves its
    /// deadline to the earliest; stops it when no event wants it any more.
    fn run_drain(&mut self, ptx: &mpsc::UnboundedSender<drain::Progress>, now: OffsetDateTime) {
        let wanted: Vec<i64> = self
            .state
            .events
            .values()
            .filter(|r| !r.ended && r.drain == Progress::Pending)
            .map(|r| r.deadline_unix.unwrap_or_else(|| now.unix_timestamp()))
            .collect();
        let Some(kube) = self.inp.kube.clone() else {
            return;
        };
        let Some(earliest) = wanted.iter().min().copied() else {
            if let Some(d) = self.drain.take() {
                tracing::info!("lifecycle: no event needs the drain any more; stopping it");
                d.task.abort();
            }
            return;
        };
        let deadline = OffsetDateTime::from_unix_timestamp(earliest).unwrap_or(now);
        if let Some(d) = &self.drain {
            if *d.deadline.borrow() != deadline {
                tracing::info!(deadline = %crate::model::text::rfc3339(deadline), "lifecycle: drain deadline moved");
                let _ = d.deadline.send(deadline);
            }
            return;
        }
        // Cordon first: no pod may land on the Node while it is drained.
        if !self.node_synced {
            return;
        }
        tracing::info!(node = %kube.node(), deadline = %crate::model::text::rfc3339(deadline), "lifecycle: draining");
        let (tx, rx) = watch::channel(deadline);
        let settings = self.inp.settings.drain;
        let progress = ptx.clone();
        let task = tokio::spawn(async move { drain::run(&kube, settings, rx, progress).await });
        self.drain = Some(RunningDrain { deadline: tx, task });
    }

    /// Records a finished drain: Done or Incomplete, duration and pods left, the
    /// out-of-service taint when asked for, and an Event.
    async fn finish_drain(&mut self) {
        if !self.drain.as_ref().is_some_and(|d| d.task.is_finished()) {
            return;
        }
        let Some(d) = self.drain.take() else { return };
        let Ok(outcome) = d.task.await else { return };
        let progress = if outcome.left.is_empty() {
            Progress::Done
        } else {
            Progress::Incomplete
        };
        self.inp
            .metrics
            .drain_duration
            .observe(outcome.took.as_secs_f64());
        let left = u64::try_from(outcome.left.len()).unwrap_or(u64::MAX);
        if left > 0 {
            self.state.counts.failed += left;
            self.inp
                .metrics
                .drain_pods
                .with_label_values(&["failed"])
                .inc_by(left);
        }
        let settings = &self.inp.settings;
        for r in self.state.events.values_mut() {
            if r.ended || r.drain != Progress::Pending {
                continue;
            }
            r.drain = progress;
            if EventKind::parse(&r.kind)
                .is_some_and(|k| settings.of(k).has(Action::OutOfServiceTaint))
            {
                r.out_of_service = true;
                self.node_synced = false;
            }
        }
        if left == 0 {
            self.notice(
                false,
                "Drained",
                format!(
                    "every pod was removed in {:.1}s",
                    outcome.took.as_secs_f64()
                ),
            );
        } else {
            self.notice(
                true,
                "DrainIncomplete",
                format!(
                    "{left} pod(s) still running at the deadline: {}",
                    outcome.left.join(", ")
                ),
            );
        }
        self.save();
        self.sync_node().await;
    }

    /// The drain budget of an Auto Scaling termination: the configured drain timeout, else the
    /// hook's heartbeat timeout (configured, else `discovered`, else Auto Scaling's default),
    /// capped by Auto Scaling's global timeout (100 heartbeat timeouts or 48 hours).
    fn asg_drain_budget(&self, discovered: Option<Duration>) -> Duration {
        let hb = self.heartbeat_timeout(discovered);
        self.inp
            .settings
            .asg_hook
            .drain_timeout
            .unwrap_or(hb)
            .min(hb.saturating_mul(100))
            .min(MAX_LIFECYCLE_WAIT)
    }

    fn heartbeat_timeout(&self, discovered: Option<Duration>) -> Duration {
        self.inp
            .settings
            .asg_hook
            .heartbeat_timeout
            .or(discovered)
            .unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT)
    }

    /// Resolves the client, the group and the hooks (once; retried with backoff).
    async fn resolve_asg(&mut self) {
        if self.asg.is_some() || !self.asg_retry.ready() {
            return;
        }
        let hook = self.inp.settings.asg_hook.hook_name.clone();
        let group = self.inp.settings.asg_hook.group_name.clone();
        let result = async {
            let client = Asg::connect(&self.inp.imds).await?;
            let group = match group {
                Some(g) => g,
                None => client.group().await?,
            };
            let hooks = client.termination_hooks(&group, hook.as_deref()).await?;
            Ok::<_, super::asg::Error>(AsgContext {
                client,
                group,
                hooks,
            })
        }
        .await;
        match result {
            Ok(mut ctx) => {
                if ctx.hooks.is_empty()
                    && let Some(name) = hook
                {
                    // Named in the config: complete it even if DescribeLifecycleHooks is not
                    // allowed to list it.
                    ctx.hooks.push(Hook {
                        name,
                        heartbeat_timeout: None,
                    });
                }
                tracing::info!(group = %ctx.group, hooks = ?ctx.hooks.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
                    "lifecycle: Auto Scaling group and termination hooks");
                self.asg_retry.ok();
                self.asg = Some(ctx);
            }
            Err(e) => {
                let retry = self.asg_retry.failed();
                tracing::error!(error = %crate::model::text::error_chain(&e), retry_in = ?retry,
                    "lifecycle: cannot resolve the Auto Scaling group and hooks");
            }
        }
    }

    /// Completes the hooks once the drain is over; heartbeats while it runs past the hooks'
    /// heartbeat timeout.
    async fn auto_scaling(&mut self) {
        let key = self
            .state
            .events
            .iter()
            .find(|(_, r)| {
                !r.ended
                    && !r.hook_completed
                    && r.kind == EventKind::AsgTermination.as_str()
                    && self.inp.settings.asg.has(Action::CompleteLifecycleAction)
            })
            .map(|(k, _)| k.clone());
        let Some(key) = key else { return };
        self.resolve_asg().await;
        let Some(discovered) = self
            .asg
            .as_ref()
            .map(|c| c.hooks.iter().filter_map(|h| h.heartbeat_timeout).min())
        else {
            return;
        };
        let hb = self.heartbeat_timeout(discovered);
        let budget = self.asg_drain_budget(discovered);
        // The deadline was fixed without the hook's heartbeat timeout; now it is known.
        let mut moved = false;
        if let Some(record) = self.state.events.get_mut(&key)
            && record.drain == Progress::Pending
            && let Some(first) =
                crate::model::text::parse_rfc3339(&record.first_seen).map(OffsetDateTime::from)
        {
            let deadline = (first + budget).unix_timestamp();
            if record.deadline_unix != Some(deadline) {
                tracing::info!(deadline = %crate::model::text::rfc3339(first + budget), heartbeat_timeout = ?hb,
                    "lifecycle: Auto Scaling drain deadline from the hook's heartbeat timeout");
                record.deadline_unix = Some(deadline);
                moved = true;
            }
        }
        if moved {
            self.save();
        }
        let Some(ctx) = &self.asg else { return };
        let Some(record) = self.state.events.get(&key) else {
            return;
        };
        if record.drain == Progress::Pending {
            let first = self.last_heartbeat.is_none();
            let due = self.last_heartbeat.is_none_or(|t| t.elapsed() >= hb / 2);
            let started =
                crate::model::text::parse_rfc3339(&record.first_seen).map(OffsetDateTime::from);
            let outlives_hook = match (started, record.deadline_unix) {
                (Some(s), Some(d)) => d > (s + hb).unix_timestamp(),
                _ => false,
            };
            if first && !outlives_hook {
                return;
            }
            if first {
                // The first heartbeat is due half a timeout after the event.
                let since = started.map_or(Duration::ZERO, |s| {
                    Duration::try_from(OffsetDateTime::now_utc() - s).unwrap_or_default()
                });
                if since < hb / 2 {
                    return;
                }
            } else if !due {
                return;
            }
            for h in &ctx.hooks {
                match ctx.client.heartbeat(&ctx.group, &h.name).await {
                    Ok(()) => {
                        tracing::info!(hook = %h.name, group = %ctx.group, "lifecycle: heartbeat recorded (the drain needs longer than the hook's heartbeat timeout)")
                    }
                    Err(e) => {
                        tracing::warn!(hook = %h.name, error = %crate::model::text::error_chain(&e), "lifecycle: heartbeat failed")
                    }
                }
            }
            self.last_heartbeat = Some(tokio::time::Instant::now());
            return;
        }
        if !self.asg_retry.ready() {
            return;
        }
        let mut all = true;
        for h in &ctx.hooks {
            match ctx.client.complete(&ctx.group, &h.name).await {
                Ok(()) => {
                    tracing::info!(hook = %h.name, group = %ctx.group, instance = %ctx.client.instance_id(),
                        "lifecycle: CompleteLifecycleAction CONTINUE");
                }
                Err(e) => {
                    all = false;
                    tracing::error!(hook = %h.name, error = %crate::model::text::error_chain(&e), "lifecycle: CompleteLifecycleAction failed");
                }
            }
        }
        if all {
            let hooks: Vec<String> = ctx.hooks.iter().map(|h| h.name.clone()).collect();
            if let Some(r) = self.state.events.get_mut(&key) {
                r.hook_completed = true;
            }
            self.notice(
                false,
                "LifecycleActionCompleted",
                format!(
                    "Auto Scaling lifecycle action completed (CONTINUE) for hook(s) {}",
                    hooks.join(", ")
                ),
            );
            self.save();
        } else {
            self.asg_retry.failed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: EventKind) -> Record {
        Record {
            kind: kind.as_str().into(),
            id: "x".into(),
            ..Record::default()
        }
    }

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        }
    }

    #[test]
    fn an_event_taints_and_cordons_and_its_end_undoes_only_ours() {
        let settings = Settings::default();
        let mut records = BTreeMap::from([("a".to_owned(), record(EventKind::SpotInterruption))]);
        let node = NodeState {
            taints: vec![taint("other/owner")],
            ..NodeState::default()
        };
        let c = node_change(&records, &settings, &node);
        assert_eq!(
            c.taints,
            Some(vec![
                taint("other/owner"),
                taint("eks-node-agent/spot-interruption")
            ])
        );
        assert_eq!(c.unschedulable, Some(true));
        // Applied: nothing more to do.
        let applied = NodeState {
            taints: c.taints.clone().unwrap_or_default(),
            unschedulable: true,
            ..NodeState::default()
        };
        let r = records.get_mut("a").expect("record");
        r.cordoned = true;
        r.tainted = true;
        assert!(node_change(&records, &settings, &applied).is_empty());
        // Ended: our taint goes and we uncordon; the other owner's taint stays.
        records.get_mut("a").expect("record").ended = true;
        let c = node_change(&records, &settings, &applied);
        assert_eq!(c.taints, Some(vec![taint("other/owner")]));
        assert_eq!(c.unschedulable, Some(false));
        // A cordon that was not ours stays.
        records.get_mut("a").expect("record").cordoned = false;
        assert_eq!(
            node_change(&records, &settings, &applied).unschedulable,
            None
        );
    }

    #[test]
    fn rebalance_default_is_a_taint_only() {
        let settings = Settings::default();
        let records =
            BTreeMap::from([("a".to_owned(), record(EventKind::RebalanceRecommendation))]);
        let c = node_change(&records, &settings, &NodeState::default());
        assert_eq!(
            c.taints,
            Some(vec![taint("eks-node-agent/rebalance-recommendation")])
        );
        assert_eq!(c.unschedulable, None);
        assert!(c.labels.is_empty());
    }
}
