//! The `run` loop: checks on their own schedules, conditions, events and taints to Kubernetes,
//! `/metrics` and `/healthz`, and systemd's notify protocol (READY once the first round of
//! checks ran, WATCHDOG at half of WatchdogSec, STOPPING on SIGTERM, RELOADING on SIGHUP).
//!
//! Each check's outcome goes through the [`verdict`]: every problem it found gets its
//! severity from the catalog and the config's overrides; Fatal problems set their condition
//! False, Warning problems become events when they appear; all show in the metrics. The
//! writer task owns the Kubernetes side: coalesced condition patches (or none, while the EKS
//! node monitoring agent writes them, [`coexist`]), deduplicated events, and the opt-in
//! taints of False conditions.

pub mod coexist;
pub mod config;
pub mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use time::OffsetDateTime;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::checks::daemon::Context;
use crate::checks::kernel::{self, KernelEvent, KmsgState, SharedKmsg};
use crate::checks::reasons::{self, Severity};
use crate::checks::{CheckKind, Outcome, Schedule, Targets, cri};
use crate::model::ConditionType;
use crate::report::conditions::Conditions;
use crate::report::host::HostPaths;
use crate::report::http;
use crate::report::kube::{EventDedup, NodeApi};
use crate::report::metrics::Metrics;
use crate::report::taints;

pub use config::{Coexistence, Config, ConfigFile};

/// How often pending condition writes are looked at.
const WRITER_TICK: Duration = Duration::from_secs(1);
/// Backoff after a failed Kubernetes write, doubled up to [`WRITE_BACKOFF_MAX`].
const WRITE_BACKOFF_MIN: Duration = Duration::from_secs(2);
/// Longest backoff after failed writes.
const WRITE_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Retry interval for the start-up read of the Node.
const READ_BACK_RETRY: Duration = Duration::from_secs(5);
/// Taints are re-checked on the Node this often even when nothing changed (someone may have
/// removed ours).
const TAINT_RESYNC: Duration = Duration::from_secs(5 * 60);

/// Errors of the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file is wrong.
    #[error("{path}: {message}; fix the file or remove it to use the defaults")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The config file cannot be read.
    #[error("cannot read {path}; fix its permissions or remove it to use the defaults")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not TOML of the daemon's shape.
    #[error("{path} is not a valid daemon config; fix the file or remove it to use the defaults")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: toml::de::Error,
    },
    /// The metrics registry refused a metric (a bug).
    #[error("cannot register metrics")]
    Metrics(#[source] prometheus::Error),
    /// The endpoint could not start.
    #[error(transparent)]
    Http(#[from] http::Error),
    /// The checks' loopback HTTP client could not be built.
    #[error("cannot build the checks' HTTP client")]
    HttpClient(#[source] crate::net::client::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            Self::Config { .. }
            | Self::ConfigRead { .. }
            | Self::ConfigParse { .. }
            | Self::Http(_) => crate::exit::Code::BadInput,
            _ => crate::exit::Code::Failure,
        }
    }
}

/// Reads and validates the config file; a missing file means the defaults.
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, Error> {
    config::load(path)
}

enum WriterMsg {
    Event {
        warning: bool,
        reason: String,
        note: String,
    },
}

/// What the writer task needs from the config (reloaded on SIGHUP).
#[derive(Debug, Clone)]
struct WriterConfig {
    taints: BTreeMap<ConditionType, taints::TaintSpec>,
    coexistence: Coexistence,
    probe: Duration,
}

impl WriterConfig {
    fn of(c: &Config) -> Self {
        Self {
            taints: c.taints.clone(),
            coexistence: c.coexistence,
            probe: c.coexistence_probe,
        }
    }
}

/// The taints the conditions ask for: the conditions as written on the Node, so a taint never
/// outruns its condition (writes are coalesced); while the agent writes no condition (stepped
/// back for the monitoring agent), its own verdict.
fn desired_taints(
    c: &Conditions,
    specs: &BTreeMap<ConditionType, taints::TaintSpec>,
    stepped_back: bool,
) -> Vec<taints::Taint> {
    specs
        .iter()
        .filter_map(|(ct, spec)| {
            let (healthy, reason) = if stepped_back {
                c.desired(*ct).map(|d| (d.healthy, d.reason.as_str()))?
            } else {
                c.written(*ct).map(|(h, r, _)| (h, r))?
            };
            (!healthy).then(|| taints::wanted(spec, reason))
        })
        .collect()
}

/// Brings the Node's taints to `desired` (ours only); the result label for the metric.
async fn apply_taints(api: &NodeApi, desired: &[taints::Taint]) -> &'static str {
    let current = match api.taints().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %crate::model::text::error_chain(&e), "cannot read the Node's taints");
            return if NodeApi::is_forbidden(&e) {
                "forbidden"
            } else {
                "error"
            };
        }
    };
    let owned = taints::parse_owned(current.owned.as_deref());
    let Some(change) = taints::reconcile(&current.taints, &owned, desired) else {
        return "unchanged";
    };
    match api
        .set_taints(
            &current.resource_version,
            &change.taints,
            change.owned.as_deref(),
        )
        .await
    {
        Ok(()) => {
            tracing::info!(taints = ?desired.iter().map(|t| format!("{}={}:{}", t.key, t.value.as_deref().unwrap_or(""), t.effect)).collect::<Vec<_>>(), "node taints updated");
            "ok"
        }
        Err(e) if NodeApi::is_conflict(&e) => "conflict",
        Err(e) if NodeApi::is_forbidden(&e) => {
            tracing::error!(error = %crate::model::text::error_chain(&e), "the identity may not change the Node's taints: the NodeRestriction admission plugin forbids a node to, so set [kubernetes] taint_kubeconfig in daemon.toml to an identity that may patch nodes");
            "forbidden"
        }
        Err(e) => {
            tracing::warn!(error = %crate::model::text::error_chain(&e), "taint write failed");
            "error"
        }
    }
}

/// Owns the Kubernetes side: reads conditions back once, then writes coalesced condition
/// patches (unless stepped back for the monitoring agent), deduplicated events, and taints,
/// with backoff after failures.
#[allow(clippy::too_many_arguments)]
async fn writer(
    api: NodeApi,
    taint_api: NodeApi,
    node: String,
    conditions: Arc<Mutex<Option<Conditions>>>,
    wconfig: Arc<Mutex<WriterConfig>>,
    metrics: Metrics,
    mut rx: mpsc::UnboundedReceiver<WriterMsg>,
) {
    // Read back before anything is written, so a restart resets nothing.
    let existing = loop {
        match api.conditions().await {
            Ok(existing) => {
                let restored = Conditions::from_node(&existing);
                if let Ok(mut slot) = conditions.lock() {
                    let pending = slot.take();
                    let mut merged = restored;
                    if let Some(p) = pending {
                        merged.adopt_desired(&p);
                    }
                    *slot = Some(merged);
                }
                break existing;
            }
            Err(e) => {
                tracing::warn!(node = %node, error = %crate::model::text::error_chain(&e), "cannot read the Node yet; retrying");
                tokio::time::sleep(READ_BACK_RETRY).await;
            }
        }
    };
    let mut coexist = coexist::Coexist::default();
    let mut probe_due = Instant::now();
    let _ = existing;
    let mut dedup = EventDedup::default();
    let mut backoff = WRITE_BACKOFF_MIN;
    let mut ticker = tokio::time::interval(WRITER_TICK);
    let mut taints_applied: Option<Vec<taints::Taint>> = None;
    let mut taints_synced = Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let wc = wconfig.lock().map(|w| w.clone()).ok();
                let Some(wc) = wc else { continue };
                // Look for the EKS node monitoring agent.
                if wc.coexistence == Coexistence::Auto && Instant::now() >= probe_due {
                    probe_due = Instant::now() + wc.probe;
                    let pods = api.monitoring_agent_pods().await;
                    let node_conditions = api.conditions().await;
                    match (pods, node_conditions) {
                        (Ok(pods), Ok(node_conditions)) => {
                            let seen = coexist::Observation { monitoring_agent_pods: pods, conditions: node_conditions.clone() };
                            let changed = conditions.lock().ok().and_then(|c| c.as_ref().map(|c| coexist.observe(&seen, c))).unwrap_or(false);
                            if changed {
                                if coexist.stepped_back(wc.coexistence) {
                                    tracing::warn!(why = %coexist.why, "the EKS node monitoring agent writes the node's conditions: this agent steps back to events and metrics");
                                } else {
                                    tracing::info!("the EKS node monitoring agent is gone: this agent writes the node's conditions again");
                                    // Start from what the Node says now.
                                    if let Ok(mut slot) = conditions.lock() && let Some(c) = slot.as_mut() {
                                        let mut fresh = Conditions::from_node(&node_conditions);
                                        fresh.adopt_desired(c);
                                        *c = fresh;
                                    }
                                }
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => tracing::debug!(error = %crate::model::text::error_chain(&e), "cannot look for the EKS node monitoring agent"),
                    }
                }
                let stepped_back = coexist.stepped_back(wc.coexistence);
                metrics.conditions_stepped_back.set(i64::from(stepped_back));
                if !wc.taints.is_empty() || taints_applied.as_ref().is_some_and(|t| !t.is_empty()) {
                    let desired = conditions.lock().ok().and_then(|c| c.as_ref().map(|c| desired_taints(c, &wc.taints, stepped_back))).unwrap_or_default();
                    if taints_applied.as_ref() != Some(&desired) || taints_synced.elapsed() >= TAINT_RESYNC {
                        let result = apply_taints(&taint_api, &desired).await;
                        if result != "unchanged" {
                            metrics.taint_writes.with_label_values(&[result]).inc();
                        }
                        taints_synced = Instant::now();
                        if matches!(result, "ok" | "unchanged") {
                            taints_applied = Some(desired);
                        } else {
                            // Retried at the next tick (a conflict) or after the backoff.
                            if result != "conflict" {
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(WRITE_BACKOFF_MAX);
                            }
                        }
                    }
                }
                if stepped_back {
                    continue;
                }
                let now = OffsetDateTime::now_utc();
                let due = conditions.lock().ok().and_then(|c| c.as_ref().and_then(|c| c.due(now)));
                let Some(patch) = due else { continue };
                match api.patch_conditions(&patch).await {
                    Ok(()) => {
                        metrics.condition_writes.with_label_values(&["ok"]).inc();
                        backoff = WRITE_BACKOFF_MIN;
                        if let Ok(mut c) = conditions.lock() && let Some(c) = c.as_mut() {
                            c.committed(&patch, now);
                            for ct in ConditionType::ALL {
                                if let Some(h) = c.written_status(ct) {
                                    metrics.condition_status.with_label_values(&[ct.as_str()]).set(i64::from(h));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        metrics.condition_writes.with_label_values(&["error"]).inc();
                        tracing::warn!(node = %node, error = %crate::model::text::error_chain(&e), backoff_secs = backoff.as_secs(), "condition write failed");
                        if let Ok(mut c) = conditions.lock() && let Some(c) = c.as_mut() {
                            c.failed(now);
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(WRITE_BACKOFF_MAX);
                    }
                }
            }
            msg = rx.recv() => {
                let Some(WriterMsg::Event { warning, reason, note }) = msg else { return };
                let action = dedup.action(&node, &reason, &note, OffsetDateTime::now_utc());
                match api.emit(action, warning, &reason, &note).await {
                    Ok(()) => metrics.events.with_label_values(&["ok"]).inc(),
                    Err(e) => {
                        metrics.events.with_label_values(&["error"]).inc();
                        tracing::warn!(node = %node, reason = %reason, error = %crate::model::text::error_chain(&e), "event write failed");
                    }
                }
            }
        }
    }
}

/// Everything the daemon needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The /metrics and /healthz address.
    pub listen: SocketAddr,
    /// The kubelet's kubeconfig; `None` runs without writing to Kubernetes.
    pub kubeconfig: Option<PathBuf>,
    /// The Node's name.
    pub node_name: String,
    /// The daemon's own config file.
    pub config_file: Option<PathBuf>,
    /// What the checks look at.
    pub targets: Targets,
    /// Where host metrics come from.
    pub host: HostPaths,
    /// The phase durations `init` recorded.
    pub init_phases: PathBuf,
    /// The lifecycle watchers' host facts.
    pub lifecycle: LifecycleHost,
}

/// What the lifecycle watchers need from the command line.
#[derive(Debug, Clone)]
pub struct LifecycleHost {
    /// The host is EC2 (as the IAM credentials check detects it): `enabled = "auto"` is on.
    pub ec2: bool,
    /// Their state file.
    pub state_file: PathBuf,
    /// An ECS container instance (`run --ecs`): drains set it to DRAINING through ECS.
    pub ecs: Option<crate::lifecycle::ecs::EcsTarget>,
}

struct Report {
    kind: CheckKind,
    outcome: Outcome,
    took: Duration,
}

fn spawn_checks(
    ctx: &Arc<Context>,
    schedules: &BTreeMap<CheckKind, Schedule>,
    tx: &mpsc::Sender<Report>,
) -> Vec<tokio::task::JoinHandle<()>> {
    schedules
        .iter()
        .map(|(kind, schedule)| {
            let (kind, schedule, ctx, tx) = (*kind, *schedule, ctx.clone(), tx.clone());
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(schedule.interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let started = Instant::now();
                    let outcome = tokio::time::timeout(schedule.timeout, ctx.run(kind))
                        .await
                        .unwrap_or_else(|_| {
                            Outcome::fail(
                                "CheckTimedOut",
                                format!(
                                    "{} check took longer than {:?}",
                                    kind.as_str(),
                                    schedule.timeout
                                ),
                            )
                        });
                    let report = Report {
                        kind,
                        outcome,
                        took: started.elapsed(),
                    };
                    if tx.send(report).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect()
}

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Whether the node is still within the boot grace for a missing CNI.
fn in_boot_grace(proc: &std::path::Path, grace: Duration) -> bool {
    kernel::uptime(proc).is_some_and(|up| up < grace.as_secs_f64())
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(settings: Settings) -> Result<(), Error> {
    // reqwest and kube use rustls without a built-in provider choice: aws-lc-rs, as the rest
    // of the agent. An error only means a provider was installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut config = load_config(settings.config_file.as_deref())?;
    let metrics = Metrics::with_phases_file(settings.host.clone(), settings.init_phases.clone())
        .map_err(Error::Metrics)?;
    let ecs_metrics = match &settings.targets.ecs {
        Some(_) => Some(metrics.register_ecs().map_err(Error::Metrics)?),
        None => None,
    };
    let alive = Arc::new(AtomicBool::new(false));
    let bound = http::serve(
        settings.listen,
        http::State {
            metrics: metrics.clone(),
            alive: alive.clone(),
        },
    )
    .await?;
    tracing::info!(listen = %bound, node = %settings.node_name, "serving /metrics and /healthz");

    let mut sigterm = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(Error::Signals)?;

    let mut targets = settings.targets.clone();
    targets.storage_dirs.sort();
    let mut ctx = Context::new(targets, Arc::new(Mutex::new(KmsgState::default())))
        .map_err(Error::HttpClient)?;
    // The checks that apply to this node ([`Targets::applies`]: the host kind), and no
    // accelerator check (and no AcceleratedHardwareReady) without accelerators.
    let has_accelerators = ctx.has_accelerators();
    if has_accelerators {
        ctx.load_nvml();
    }
    let host_targets = ctx.targets.clone();
    let applies = move |kind: &CheckKind| {
        host_targets.applies(*kind) && (*kind != CheckKind::Accelerators || has_accelerators)
    };
    config.schedules.retain(|k, _| applies(k));

    let kmsg: SharedKmsg = ctx.kmsg.clone();
    if let Ok(mut k) = kmsg.lock() {
        k.set_hold(config.problem_hold);
    }
    let (kev_tx, mut kev_rx) = mpsc::unbounded_channel::<KernelEvent>();
    let follows_kmsg = [
        CheckKind::Kernel,
        CheckKind::Storage,
        CheckKind::Accelerators,
    ]
    .iter()
    .any(|k| config.schedules.contains_key(k));
    if follows_kmsg
        && let Err(e) = kernel::follow_kmsg(
            settings.targets.kmsg.clone(),
            settings.targets.proc.clone(),
            kmsg.clone(),
            kev_tx,
        )
    {
        tracing::warn!(path = %settings.targets.kmsg.display(), error = %e, "kernel log not readable; kernel log patterns are not watched");
    }

    let conditions: Arc<Mutex<Option<Conditions>>> = Arc::new(Mutex::new(None));
    let wconfig = Arc::new(Mutex::new(WriterConfig::of(&config)));
    let (ev_tx, ev_rx) = mpsc::unbounded_channel::<WriterMsg>();
    match &settings.kubeconfig {
        Some(path) => match NodeApi::connect(path, &settings.node_name).await {
            Ok(api) => {
                ctx.set_kube(api.clone());
                let taint_api = match &config.taint_kubeconfig {
                    Some(tk) => match NodeApi::connect(tk, &settings.node_name).await {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(error = %crate::model::text::error_chain(&e), "cannot use [kubernetes] taint_kubeconfig; taints are written with the main kubeconfig");
                            api.clone()
                        }
                    },
                    None => api.clone(),
                };
                tokio::spawn(writer(
                    api,
                    taint_api,
                    settings.node_name.clone(),
                    conditions.clone(),
                    wconfig.clone(),
                    metrics.clone(),
                    ev_rx,
                ));
            }
            Err(e) => {
                // Metrics and local health still work; conditions wait for a restart.
                tracing::error!(error = %crate::model::text::error_chain(&e), "no Kubernetes client: node conditions and events are not written");
            }
        },
        None => tracing::info!("no kubeconfig: node conditions and events are not written"),
    }

    let lifecycle_task =
        start_lifecycle(&settings, config.lifecycle.clone(), &metrics, &ev_tx).await?;

    tracing::info!(
        source = ctx.targets.iam.label(),
        accelerators = has_accelerators,
        "IAM credentials watched for expiry"
    );
    let ctx = Arc::new(ctx);
    let (tx, mut rx) = mpsc::channel::<Report>(64);
    let mut tasks = spawn_checks(&ctx, &config.schedules, &tx);

    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let watchdog_period = watchdog.unwrap_or(Duration::from_secs(3600));
    let mut watchdog_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + watchdog_period,
        watchdog_period,
    );
    let mut latest: BTreeMap<CheckKind, Outcome> = BTreeMap::new();
    let mut ready = false;
    let mut kmsg_counted: BTreeMap<String, u64> = BTreeMap::new();
    let mut restarts_seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut active_before: BTreeSet<(CheckKind, String)> = BTreeSet::new();
    // A Warning that comes and goes sends at most one event per reason per window, as kernel
    // log sightings do.
    let mut last_event: BTreeMap<String, Instant> = BTreeMap::new();

    loop {
        tokio::select! {
            Some(report) = rx.recv() => {
                let name = report.kind.as_str();
                metrics.check_runs.with_label_values(&[name]).inc();
                metrics.check_duration.with_label_values(&[name]).set(report.took.as_secs_f64());
                let outcome = &report.outcome;
                metrics.check_up.with_label_values(&[name]).set(i64::from(outcome.is_healthy()));
                apply_facts(&metrics, report.kind, outcome, &mut restarts_seen);
                if let Some(m) = &ecs_metrics {
                    apply_ecs_facts(m, &outcome.facts);
                }
                if matches!(report.kind, CheckKind::Kernel | CheckKind::Storage | CheckKind::Accelerators) {
                    sync_kmsg_counts(&metrics, &ctx.kmsg, &mut kmsg_counted);
                }
                if !outcome.is_healthy() && latest.get(&report.kind).is_none_or(|p| p.reason != outcome.reason || p.is_healthy()) {
                    tracing::warn!(check = name, reason = %outcome.reason, message = %outcome.message, "check failing");
                } else if outcome.is_healthy() && latest.get(&report.kind).is_some_and(|p| !p.is_healthy()) {
                    tracing::info!(check = name, "check recovered");
                }
                latest.insert(report.kind, report.outcome);
                let v = verdict::verdict(&latest, &config.policy, in_boot_grace(&ctx.targets.proc, config.cni_grace));
                let mut active_now = BTreeSet::new();
                metrics.problem_active.reset();
                for a in &v.active {
                    let condition = a.condition.map_or("", ConditionType::as_str);
                    metrics.problem_active.with_label_values(&[&a.reason, a.severity.as_str(), condition]).set(1);
                    let key = (a.kind, a.reason.clone());
                    if !active_before.contains(&key) && !a.evented {
                        metrics.problems.with_label_values(&[&a.reason]).inc();
                        if a.condition == Some(ConditionType::AcceleratedHardwareReady) {
                            metrics.accelerator_errors.with_label_values(&[&a.reason]).inc();
                        }
                        tracing::warn!(check = a.kind.as_str(), reason = %a.reason, severity = a.severity.as_str(), message = %a.message, "problem found");
                        let due = last_event.get(&a.reason).is_none_or(|at| at.elapsed() >= kernel::EVENT_RATE_WINDOW);
                        if a.severity == Severity::Warning && due {
                            last_event.insert(a.reason.clone(), Instant::now());
                            let _ = ev_tx.send(WriterMsg::Event { warning: true, reason: a.reason.clone(), note: a.message.clone() });
                        }
                    }
                    active_now.insert(key);
                }
                active_before = active_now;
                if let Ok(mut c) = conditions.lock() {
                    let c = c.get_or_insert_with(Conditions::default);
                    // A condition only a problem had asked for recovers with it.
                    for ct in ConditionType::ALL {
                        if !v.conditions.contains_key(&ct) && c.desired(ct).is_some_and(|d| !d.healthy) {
                            c.set(ct, crate::report::conditions::Desired {
                                healthy: true,
                                reason: ct.healthy_reason().to_string(),
                                message: "no problem found".to_string(),
                            });
                        }
                    }
                    for (ct, d) in v.conditions {
                        c.set(ct, d);
                    }
                }
                if !ready && config.schedules.keys().all(|k| latest.contains_key(k)) {
                    ready = true;
                    alive.store(true, Ordering::Relaxed);
                    notify(&[NotifyState::Ready, NotifyState::Status("first round of checks done")]);
                    tracing::info!(checks = config.schedules.len(), "ready");
                }
            }
            Some(ev) = kev_rx.recv() => {
                sync_kmsg_counts(&metrics, &ctx.kmsg, &mut kmsg_counted);
                // A Fatal kernel log problem shows as its condition; a Warning is an event.
                if config.policy.severity(&ev.reason) == Severity::Warning {
                    let _ = ev_tx.send(WriterMsg::Event { warning: true, reason: ev.reason, note: ev.message });
                }
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[NotifyState::Watchdog]),
            _ = sighup.recv() => {
                notify(&[NotifyState::Reloading, NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Status("reloading"))]);
                match load_config(settings.config_file.as_deref()) {
                    Ok(mut new) => {
                        new.schedules.retain(|k, _| applies(k));
                        for t in tasks.drain(..) { t.abort(); }
                        let keep: BTreeSet<CheckKind> = new.schedules.keys().copied().collect();
                        latest.retain(|k, _| keep.contains(k));
                        if let Ok(mut w) = wconfig.lock() {
                            *w = WriterConfig::of(&new);
                        }
                        if let Ok(mut k) = ctx.kmsg.lock() {
                            k.set_hold(new.problem_hold);
                        }
                        config = new;
                        tasks = spawn_checks(&ctx, &config.schedules, &tx);
                        tracing::info!(checks = config.schedules.len(), overrides = config.policy.overrides.len(), taints = config.taints.len(), "config reloaded");
                    }
                    Err(e) => tracing::error!(error = %crate::model::text::error_chain(&e), "config reload failed; keeping the running config"),
                }
                notify(&[NotifyState::Ready]);
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    notify(&[NotifyState::Stopping]);
    tracing::info!("stopping");
    for t in tasks {
        t.abort();
    }
    if let Some(t) = lifecycle_task {
        t.abort();
    }
    Ok(())
}

/// Starts the lifecycle watchers (when `[lifecycle] enabled` says so) and forwards their
/// Node events to the writer.
async fn start_lifecycle(
    settings: &Settings,
    lifecycle: crate::lifecycle::Settings,
    metrics: &Metrics,
    events: &mpsc::UnboundedSender<WriterMsg>,
) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
    let started = crate::lifecycle::start(crate::lifecycle::Start {
        settings: lifecycle,
        ec2: settings.lifecycle.ec2,
        node: settings.node_name.clone(),
        kubeconfig: settings.kubeconfig.clone(),
        state_file: settings.lifecycle.state_file.clone(),
        metrics,
        ecs: settings.lifecycle.ecs.clone(),
    })
    .await
    .map_err(Error::Metrics)?;
    let Some((task, mut notices)) = started else {
        return Ok(None);
    };
    let forward = events.clone();
    tokio::spawn(async move {
        while let Some(n) = notices.recv().await {
            let _ = forward.send(WriterMsg::Event {
                warning: n.warning,
                reason: n.reason,
                note: n.note,
            });
        }
    });
    Ok(Some(task))
}

/// Adds the kernel log matches counted since the last sync to `eksnode_problems_total`
/// (every match counts, though events are rate-limited).
fn sync_kmsg_counts(metrics: &Metrics, kmsg: &SharedKmsg, counted: &mut BTreeMap<String, u64>) {
    let Ok(state) = kmsg.lock() else { return };
    for (reason, total) in state.counts() {
        let seen = counted.entry(reason.clone()).or_default();
        if total > *seen {
            let more = total - *seen;
            metrics.problems.with_label_values(&[&reason]).inc_by(more);
            if reasons::lookup(&reason).and_then(|r| r.condition)
                == Some(ConditionType::AcceleratedHardwareReady)
            {
                metrics
                    .accelerator_errors
                    .with_label_values(&[&reason])
                    .inc_by(more);
            }
            *seen = total;
        }
    }
}

/// Updates the ECS host's metrics from a check's facts.
fn apply_ecs_facts(m: &crate::report::metrics::EcsMetrics, f: &crate::checks::Facts) {
    if let Some(up) = f.docker_up {
        m.docker_up.set(i64::from(up));
    }
    if let Some(e) = &f.ecs {
        m.set_agent(e.connected, &e.version, &e.cluster, &e.tasks);
    }
}

/// Updates the metrics a check's facts feed. `restarts_seen` is the last `NRestarts` per
/// unit: the restart counter grows by the difference (systemd's count at first sight,
/// then each increase), so it never goes down.
fn apply_facts(
    metrics: &Metrics,
    kind: CheckKind,
    outcome: &Outcome,
    restarts_seen: &mut BTreeMap<String, u32>,
) {
    match kind {
        CheckKind::Kubelet => metrics.kubelet_up.set(i64::from(outcome.is_healthy())),
        CheckKind::Containerd => metrics.containerd_up.set(i64::from(outcome.is_healthy())),
        _ => {}
    }
    let f = &outcome.facts;
    if let Some(v) = f.cni_total_ips {
        metrics
            .cni_ips_total
            .set(i64::try_from(v).unwrap_or(i64::MAX));
    }
    if let Some(v) = f.cni_assigned_ips {
        metrics
            .cni_ips_assigned
            .set(i64::try_from(v).unwrap_or(i64::MAX));
    }
    if let Some(v) = f.cert_not_after_unix {
        metrics.cert_expiry.set(v);
    }
    if let Some(e) = &f.iam_expiry {
        metrics
            .iam_expiry
            .with_label_values(&[e.source])
            .set(e.at_unix);
    }
    if let Some(u) = &f.unit {
        metrics
            .unit_active
            .with_label_values(&[&u.unit])
            .set(i64::from(u.active));
        if let Some(n) = u.restarts {
            let seen = restarts_seen.entry(u.unit.clone()).or_insert(0);
            let counter = metrics.unit_restarts.with_label_values(&[&u.unit]);
            counter.inc_by(u64::from(n.saturating_sub(*seen)));
            *seen = n;
        }
    }
    if let Some(ready) = f.runtime_ready {
        metrics
            .runtime_condition
            .with_label_values(&[cri::RUNTIME_READY])
            .set(i64::from(ready));
    }
    if let Some(n) = &f.network {
        metrics
            .runtime_condition
            .with_label_values(&[cri::NETWORK_READY])
            .set(i64::from(n.ready));
    }
    if let Some(a) = &f.accelerators {
        let gauge = |g: &prometheus::IntGaugeVec, kind: &str, v: u32| {
            g.with_label_values(&[kind]).set(i64::from(v));
        };
        gauge(&metrics.accelerator_devices, "nvidia", a.nvidia);
        gauge(&metrics.accelerator_devices, "neuron", a.neuron);
        if let Some(e) = a.nvidia_expected {
            gauge(&metrics.accelerator_devices_expected, "nvidia", e);
        }
        if let Some(e) = a.neuron_expected {
            gauge(&metrics.accelerator_devices_expected, "neuron", e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_taints_follow_false_conditions() {
        use crate::report::conditions::Desired;
        let mut c = Conditions::default();
        c.set(
            ConditionType::KernelReady,
            Desired {
                healthy: false,
                reason: "SoftLockup".into(),
                message: "m".into(),
            },
        );
        c.set(
            ConditionType::StorageReady,
            Desired {
                healthy: true,
                reason: "StorageIsReady".into(),
                message: "m".into(),
            },
        );
        let specs: BTreeMap<ConditionType, taints::TaintSpec> =
            [ConditionType::KernelReady, ConditionType::StorageReady]
                .into_iter()
                .map(|ct| {
                    (
                        ct,
                        taints::TaintSpec {
                            key: format!("eks-node-agent/{}", ct.as_str()),
                            effect: taints::Effect::NoSchedule,
                        },
                    )
                })
                .collect();
        let t = desired_taints(&c, &specs, true);
        assert_eq!(t.len(), 1);
        assert!(
            desired_taints(&c, &specs, false).is_empty(),
            "nothing written yet"
        );
        c.committed(
            &c.due(OffsetDateTime::now_utc()).unwrap(),
            OffsetDateTime::now_utc(),
        );
        assert_eq!(desired_taints(&c, &specs, false), t);
        assert_eq!(
            (t[0].key.as_str(), t[0].value.as_deref()),
            ("eks-node-agent/KernelReady", Some("SoftLockup"))
        );
    }

    #[test]
    fn boot_grace_from_uptime() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::write(proc.path().join("uptime"), "30.5 60.0\n").unwrap();
        assert!(in_boot_grace(proc.path(), Duration::from_secs(300)));
        std::fs::write(proc.path().join("uptime"), "301.0 60.0\n").unwrap();
        assert!(!in_boot_grace(proc.path(), Duration::from_secs(300)));
        assert!(
            !in_boot_grace(&proc.path().join("none"), Duration::from_secs(300)),
            "no uptime: no grace"
        );
    }
}
