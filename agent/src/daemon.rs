//! The `run` loop: checks on their own schedules, conditions and events to Kubernetes,
//! `/metrics` and `/healthz`, and systemd's notify protocol (READY once the first round of
//! checks ran, WATCHDOG at half of WatchdogSec, STOPPING on SIGTERM, RELOADING on SIGHUP).

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
use crate::checks::{CheckKind, Outcome, Schedule, Severity, Status, Targets, cri};
use crate::model::ConditionType;
use crate::report::conditions::{Conditions, Desired};
use crate::report::host::HostPaths;
use crate::report::http;
use crate::report::kube::{EventDedup, NodeApi};
use crate::report::metrics::Metrics;

/// How often pending condition writes are looked at.
const WRITER_TICK: Duration = Duration::from_secs(1);
/// Backoff after a failed Kubernetes write, doubled up to [`WRITE_BACKOFF_MAX`].
const WRITE_BACKOFF_MIN: Duration = Duration::from_secs(2);
/// Longest backoff after failed writes.
const WRITE_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Shortest check interval or timeout the config file may set, in seconds.
const MIN_SCHEDULE_SECS: f64 = 0.001;
/// Longest check interval or timeout the config file may set (a day), in seconds.
const MAX_SCHEDULE_SECS: f64 = 86_400.0;
/// Retry interval for the start-up read of the Node.
const READ_BACK_RETRY: Duration = Duration::from_secs(5);

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

/// Per-check settings from the config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Seconds between runs (fractions allowed).
    pub interval_secs: Option<f64>,
    /// Seconds one run may take (fractions allowed).
    pub timeout_secs: Option<f64>,
    /// Run this check at all.
    pub enabled: Option<bool>,
}

/// The daemon's own config file (TOML), reloaded on SIGHUP.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Per check, by name (`kubelet`, `containerd`, `vpc_cni`, `kernel`, `storage`,
    /// `credentials`, `clock`).
    #[serde(default)]
    pub checks: BTreeMap<String, CheckFile>,
    /// `[lifecycle]`: the EC2 lifecycle event watchers (read at start).
    #[serde(default)]
    pub lifecycle: crate::lifecycle::config::File,
}

/// The checks to run and when.
pub fn schedules(
    file: &ConfigFile,
    path: &std::path::Path,
) -> Result<BTreeMap<CheckKind, Schedule>, Error> {
    let mut out = BTreeMap::new();
    for (name, c) in &file.checks {
        if CheckKind::parse(name).is_none() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "unknown check [checks.{name}]; known: kubelet, containerd, vpc_cni, kernel, storage, credentials, clock"
                ),
            });
        }
        let bad = |v: Option<f64>| {
            v.is_some_and(|v| !(MIN_SCHEDULE_SECS..=MAX_SCHEDULE_SECS).contains(&v))
        };
        if bad(c.interval_secs) || bad(c.timeout_secs) {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "[checks.{name}] interval_secs and timeout_secs must be between {MIN_SCHEDULE_SECS} and {MAX_SCHEDULE_SECS}"
                ),
            });
        }
    }
    for kind in CheckKind::ALL {
        let c = file.checks.get(kind.as_str()).cloned().unwrap_or_default();
        if c.enabled == Some(false) {
            continue;
        }
        let d = Schedule::default();
        out.insert(
            kind,
            Schedule {
                interval: c.interval_secs.map_or(d.interval, Duration::from_secs_f64),
                timeout: c.timeout_secs.map_or(d.timeout, Duration::from_secs_f64),
            },
        );
    }
    Ok(out)
}

/// Reads the config file; a missing file (or none given) means the defaults.
pub fn read_config(path: Option<&std::path::Path>) -> Result<ConfigFile, Error> {
    let Some(path) = path else {
        return Ok(ConfigFile::default());
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(Error::ConfigRead {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    toml::from_str(&text).map_err(|source| Error::ConfigParse {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the config file's check schedules; a missing file means the defaults.
pub fn load_config(path: Option<&std::path::Path>) -> Result<BTreeMap<CheckKind, Schedule>, Error> {
    let file = read_config(path)?;
    schedules(&file, path.unwrap_or(std::path::Path::new("-")))
}

/// Reads and validates `[lifecycle]`.
pub fn load_lifecycle(path: Option<&std::path::Path>) -> Result<crate::lifecycle::Settings, Error> {
    let file = read_config(path)?;
    crate::lifecycle::config::validate(&file.lifecycle).map_err(|e| Error::Config {
        path: path.unwrap_or(std::path::Path::new("-")).to_path_buf(),
        message: e.to_string(),
    })
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

/// The condition a check's outcome sets False, if any: a failure of [`Severity::Fatal`] of a
/// kind that owns a condition. Any other failure is a Warning event instead.
fn failed_condition(kind: CheckKind, outcome: &Outcome) -> Option<ConditionType> {
    (outcome.status == Status::Fail && outcome.severity == Severity::Fatal)
        .then(|| kind.condition())
        .flatten()
}

/// Aggregates check outcomes into the desired condition states: a condition is False when
/// any check feeding it fails fatally, with the first such check's reason and message; while
/// it is True its message is the first check's evidence. The container runtime's CRI
/// NetworkReady feeds NetworkingReady too (after the VPC CNI check, so its reason comes first),
/// on hybrid nodes and EC2 alike.
pub fn desired_conditions(
    latest: &BTreeMap<CheckKind, Outcome>,
) -> BTreeMap<ConditionType, Desired> {
    let mut out = BTreeMap::new();
    for (kind, outcome) in latest {
        let Some(ct) = kind.condition() else { continue };
        let entry = out.entry(ct).or_insert_with(|| Desired {
            healthy: true,
            reason: ct.healthy_reason().to_string(),
            message: outcome.evidence.clone(),
        });
        if failed_condition(*kind, outcome).is_some() && entry.healthy {
            *entry = Desired {
                healthy: false,
                reason: outcome.reason.clone(),
                message: outcome.message.clone(),
            };
        }
    }
    for outcome in latest.values() {
        let Some(network) = &outcome.facts.network else {
            continue;
        };
        let ct = ConditionType::NetworkingReady;
        let entry = out.entry(ct).or_insert_with(|| Desired {
            healthy: true,
            reason: ct.healthy_reason().to_string(),
            message: network.message.clone(),
        });
        if !network.ready && entry.healthy {
            *entry = Desired {
                healthy: false,
                reason: network.reason.clone(),
                message: network.message.clone(),
            };
        }
    }
    out
}

enum WriterMsg {
    Event {
        warning: bool,
        reason: String,
        note: String,
    },
}

/// Owns the Kubernetes side: reads conditions back once, then writes coalesced condition
/// patches and deduplicated events, with backoff after failures.
async fn writer(
    api: NodeApi,
    node: String,
    conditions: Arc<Mutex<Option<Conditions>>>,
    metrics: Metrics,
    mut rx: mpsc::UnboundedReceiver<WriterMsg>,
) {
    // Read back before anything is written, so a restart resets nothing.
    loop {
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
                break;
            }
            Err(e) => {
                tracing::warn!(node = %node, error = %crate::model::text::error_chain(&e), "cannot read the Node yet; retrying");
                tokio::time::sleep(READ_BACK_RETRY).await;
            }
        }
    }
    let mut dedup = EventDedup::default();
    let mut backoff = WRITE_BACKOFF_MIN;
    let mut ticker = tokio::time::interval(WRITER_TICK);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
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

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(settings: Settings) -> Result<(), Error> {
    // reqwest and kube use rustls without a built-in provider choice: aws-lc-rs, as the rest
    // of the agent. An error only means a provider was installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut schedules = load_config(settings.config_file.as_deref())?;
    let lifecycle = load_lifecycle(settings.config_file.as_deref())?;
    let metrics = Metrics::with_phases_file(settings.host.clone(), settings.init_phases.clone())
        .map_err(Error::Metrics)?;
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

    let kmsg: SharedKmsg = Arc::new(Mutex::new(KmsgState::default()));
    let (kev_tx, mut kev_rx) = mpsc::unbounded_channel::<KernelEvent>();
    if schedules.contains_key(&CheckKind::Kernel)
        && let Err(e) = kernel::follow_kmsg(settings.targets.kmsg.clone(), kmsg.clone(), kev_tx)
    {
        tracing::warn!(path = %settings.targets.kmsg.display(), error = %e, "kernel log not readable; kernel log patterns are not watched");
    }

    let conditions: Arc<Mutex<Option<Conditions>>> = Arc::new(Mutex::new(None));
    let (ev_tx, ev_rx) = mpsc::unbounded_channel::<WriterMsg>();
    match &settings.kubeconfig {
        Some(path) => match NodeApi::connect(path, &settings.node_name).await {
            Ok(api) => {
                tokio::spawn(writer(
                    api,
                    settings.node_name.clone(),
                    conditions.clone(),
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

    let lifecycle_task = start_lifecycle(&settings, lifecycle, &metrics, &ev_tx).await?;

    let mut targets = settings.targets.clone();
    if targets.skip_vpc_cni {
        schedules.remove(&CheckKind::VpcCni);
    }
    targets.storage_dirs.sort();
    tracing::info!(
        source = targets.iam.label(),
        "IAM credentials watched for expiry"
    );
    let ctx = Arc::new(Context::new(targets, kmsg).map_err(Error::HttpClient)?);
    let (tx, mut rx) = mpsc::channel::<Report>(64);
    let mut tasks = spawn_checks(&ctx, &schedules, &tx);

    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let watchdog_period = watchdog.unwrap_or(Duration::from_secs(3600));
    let mut watchdog_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + watchdog_period,
        watchdog_period,
    );
    let mut latest: BTreeMap<CheckKind, Outcome> = BTreeMap::new();
    let mut ready = false;
    let mut kmsg_counted: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut restarts_seen: BTreeMap<String, u32> = BTreeMap::new();

    loop {
        tokio::select! {
            Some(report) = rx.recv() => {
                let name = report.kind.as_str();
                metrics.check_runs.with_label_values(&[name]).inc();
                metrics.check_duration.with_label_values(&[name]).set(report.took.as_secs_f64());
                let outcome = &report.outcome;
                metrics.check_up.with_label_values(&[name]).set(i64::from(outcome.is_healthy()));
                apply_facts(&metrics, report.kind, outcome, &mut restarts_seen);
                if report.kind == CheckKind::Kernel {
                    sync_kmsg_counts(&metrics, &ctx.kmsg, &mut kmsg_counted);
                }
                let previous = latest.get(&report.kind);
                if outcome.status == Status::Warn {
                    let was_warned = previous.is_some_and(|p| p.status == Status::Warn && p.reason == outcome.reason);
                    if !was_warned {
                        metrics.problems.with_label_values(&[&outcome.reason]).inc();
                        tracing::warn!(check = name, reason = %outcome.reason, message = %outcome.message, "check warning");
                        let _ = ev_tx.send(WriterMsg::Event { warning: true, reason: outcome.reason.clone(), note: outcome.message.clone() });
                    }
                }
                let was_healthy = previous.is_none_or(Outcome::is_healthy);
                if !outcome.is_healthy() && (was_healthy || previous.is_some_and(|p| p.reason != outcome.reason)) {
                    metrics.problems.with_label_values(&[&outcome.reason]).inc();
                    tracing::warn!(check = name, reason = %outcome.reason, message = %outcome.message, "check failing");
                    if failed_condition(report.kind, outcome).is_none() {
                        let _ = ev_tx.send(WriterMsg::Event { warning: true, reason: outcome.reason.clone(), note: outcome.message.clone() });
                    }
                } else if outcome.is_healthy() && !was_healthy {
                    tracing::info!(check = name, "check recovered");
                }
                latest.insert(report.kind, report.outcome);
                if let Ok(mut c) = conditions.lock() {
                    let c = c.get_or_insert_with(Conditions::default);
                    for (ct, d) in desired_conditions(&latest) {
                        c.set(ct, d);
                    }
                }
                if !ready && schedules.keys().all(|k| latest.contains_key(k)) {
                    ready = true;
                    alive.store(true, Ordering::Relaxed);
                    notify(&[NotifyState::Ready, NotifyState::Status("first round of checks done")]);
                    tracing::info!(checks = schedules.len(), "ready");
                }
            }
            Some(ev) = kev_rx.recv() => {
                sync_kmsg_counts(&metrics, &ctx.kmsg, &mut kmsg_counted);
                let _ = ev_tx.send(WriterMsg::Event { warning: true, reason: ev.reason.as_str().to_string(), note: ev.message });
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[NotifyState::Watchdog]),
            _ = sighup.recv() => {
                notify(&[NotifyState::Reloading, NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Status("reloading"))]);
                match load_config(settings.config_file.as_deref()) {
                    Ok(mut new) => {
                        if ctx.targets.skip_vpc_cni { new.remove(&CheckKind::VpcCni); }
                        for t in tasks.drain(..) { t.abort(); }
                        let keep: BTreeSet<CheckKind> = new.keys().copied().collect();
                        latest.retain(|k, _| keep.contains(k));
                        schedules = new;
                        tasks = spawn_checks(&ctx, &schedules, &tx);
                        tracing::info!(checks = schedules.len(), "config reloaded");
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
fn sync_kmsg_counts(
    metrics: &Metrics,
    kmsg: &SharedKmsg,
    counted: &mut BTreeMap<&'static str, u64>,
) {
    let Ok(state) = kmsg.lock() else { return };
    for (reason, total) in state.counts() {
        let seen = counted.entry(reason.as_str()).or_default();
        if total > *seen {
            metrics
                .problems
                .with_label_values(&[reason.as_str()])
                .inc_by(total - *seen);
            *seen = total;
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_take_the_first_failing_reason() {
        let mut latest = BTreeMap::new();
        latest.insert(CheckKind::Kernel, Outcome::fail("TaskHung", "x"));
        latest.insert(CheckKind::Storage, Outcome::ok("fine"));
        latest.insert(CheckKind::Kubelet, Outcome::fail("KubeletUnreachable", "y"));
        let d = desired_conditions(&latest);
        assert_eq!(d.len(), 2, "kubelet feeds no condition");
        assert!(!d[&ConditionType::KernelReady].healthy);
        assert_eq!(d[&ConditionType::KernelReady].reason, "TaskHung");
        assert_eq!(d[&ConditionType::StorageReady].reason, "StorageIsReady");
    }

    #[test]
    fn cri_network_not_ready_sets_networking_false_without_a_vpc_cni_check() {
        use crate::checks::{Facts, NetworkVerdict};
        let verdict = |ready: bool| Facts {
            network: Some(NetworkVerdict {
                ready,
                reason: if ready { "" } else { "NetworkPluginNotReady" }.into(),
                message: "m".into(),
            }),
            ..Facts::default()
        };
        let mut latest = BTreeMap::new();
        latest.insert(
            CheckKind::Containerd,
            Outcome::ok("rt").with_facts(verdict(false)),
        );
        let d = desired_conditions(&latest);
        assert!(d[&ConditionType::ContainerRuntimeReady].healthy);
        assert!(!d[&ConditionType::NetworkingReady].healthy);
        assert_eq!(
            d[&ConditionType::NetworkingReady].reason,
            "NetworkPluginNotReady"
        );
        // The VPC CNI's own reason comes first; a ready CRI network changes nothing.
        latest.insert(CheckKind::VpcCni, Outcome::fail("IpamdUnreachable", "x"));
        let d = desired_conditions(&latest);
        assert_eq!(
            d[&ConditionType::NetworkingReady].reason,
            "IpamdUnreachable"
        );
        latest.insert(
            CheckKind::Containerd,
            Outcome::ok("rt").with_facts(verdict(true)),
        );
        latest.insert(CheckKind::VpcCni, Outcome::ok("ips"));
        assert!(desired_conditions(&latest)[&ConditionType::NetworkingReady].healthy);
    }

    #[test]
    fn config_file_errors_name_the_check() {
        let p = std::path::Path::new("/etc/x.toml");
        let bad: ConfigFile = toml::from_str("[checks.kubelett]\ninterval_secs = 5\n").unwrap();
        assert!(
            schedules(&bad, p)
                .unwrap_err()
                .to_string()
                .contains("kubelett")
        );
        let off: ConfigFile = toml::from_str(
            "[checks.kubelet]\nenabled = false\n[checks.kernel]\ninterval_secs = 2\n",
        )
        .unwrap();
        let s = schedules(&off, p).unwrap();
        assert!(!s.contains_key(&CheckKind::Kubelet));
        assert_eq!(s[&CheckKind::Kernel].interval, Duration::from_secs(2));
    }
}
