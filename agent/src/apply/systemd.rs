//! systemd through its D-Bus API (org.freedesktop.systemd1), with zbus.
//!
//! Order of work: `Subscribe`; `Reload` when a unit file changed; `TryRestartUnit` for units
//! affected by a changed file that are not planned services (restarted only if running);
//! then each planned service in order: `RestartUnit` when its inputs changed, else
//! `StartUnit` when its `ActiveState` is not active, else nothing. Every job is awaited through
//! the `JobRemoved` signal (bounded), then the service's socket (bounded, with backoff) before
//! the next service is touched: containerd answers before kubelet starts.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{Instant, timeout};
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

use super::{Error, Report, Result, Root, ServiceActions};
use crate::net::{Attempt, RetryPolicy};
use crate::render::ServiceSpec;

/// Bound on one start/restart job: systemd's own default `TimeoutStartSec` is 90 s.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on waiting for a service's socket after its job finished.
pub const SOCKET_WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on connecting and authenticating to the bus.
pub const DBUS_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First pause between bus connection attempts; doubled up to the maximum.
const DBUS_CONNECT_BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest pause between bus connection attempts.
const DBUS_CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Bound on each D-Bus method call (a daemon-reload on a busy host can take seconds).
pub const DBUS_METHOD_TIMEOUT: Duration = Duration::from_secs(60);
/// First pause between socket connection attempts; doubled up to the maximum.
const SOCKET_BACKOFF_START: Duration = Duration::from_millis(10);
/// Longest pause between socket connection attempts.
const SOCKET_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Bound on one socket connection attempt.
const SOCKET_CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// The job mode for start and restart: replace conflicting queued jobs.
const JOB_MODE: &str = "replace";

// The systemd D-Bus interfaces the agent uses: `apply` starts and restarts units through them,
// the daemon's unit check (crate::checks::units) reads unit state.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub(crate) trait Manager {
    /// Asks systemd to send job and unit signals to this client.
    fn subscribe(&self) -> zbus::Result<()>;
    /// daemon-reload.
    fn reload(&self) -> zbus::Result<()>;
    /// Loads a unit (if needed) and returns its object path.
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// Queues a start job.
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Queues a restart job.
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Queues a restart job only if the unit is running.
    fn try_restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// Queues a stop job.
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    /// A job finished: id, job path, unit name, result (done, canceled, timeout, failed,
    /// dependency, skipped).
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
pub(crate) trait Unit {
    /// loaded, not-found, bad-setting, error, masked.
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    /// active, reloading, inactive, failed, activating, deactivating, maintenance.
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    /// The unit type's own state, e.g. running, auto-restart, dead.
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
}

/// Bounds for job and socket waits.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Per job.
    pub job: Duration,
    /// Per socket.
    pub socket: Duration,
}

/// A job-queuing Manager method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobMethod {
    Start,
    Restart,
    TryRestart,
    Stop,
}

impl JobMethod {
    fn name(self) -> &'static str {
        match self {
            JobMethod::Start => "StartUnit",
            JobMethod::Restart => "RestartUnit",
            JobMethod::TryRestart => "TryRestartUnit",
            JobMethod::Stop => "StopUnit",
        }
    }
}

/// A connection to systemd's Manager.
#[derive(Debug)]
pub struct Systemd {
    connection: zbus::Connection,
    manager: ManagerProxy<'static>,
}

fn dbus_err(method: &'static str, unit: &str) -> impl FnOnce(zbus::Error) -> Error {
    let unit = unit.to_owned();
    move |source| Error::Dbus {
        method,
        unit,
        source: Box::new(source),
    }
}

impl Systemd {
    /// Connects to the system bus, or to `address` (e.g. `unix:path=/tmp/bus`).
    pub async fn connect(address: Option<&str>) -> Result<Self> {
        Self::connect_within(address, DBUS_CONNECT_TIMEOUT).await
    }

    /// Connects, retrying with backoff (early in boot the bus may not be up yet), for at
    /// most `bound`.
    pub async fn connect_within(address: Option<&str>, bound: Duration) -> Result<Self> {
        let label = address.unwrap_or("the system bus").to_owned();
        let connect_err = |source| Error::Connect {
            address: label.clone(),
            source: Box::new(source),
        };
        let policy =
            RetryPolicy::until(bound, DBUS_CONNECT_BACKOFF_START, DBUS_CONNECT_BACKOFF_MAX);
        let (connection, _) = policy
            .run(
                |_| async {
                    // A malformed address is not worth retrying: fail at once.
                    let builder = match address {
                        Some(a) => zbus::connection::Builder::address(a),
                        None => zbus::connection::Builder::system(),
                    };
                    let builder = match builder {
                        Ok(b) => b.method_timeout(DBUS_METHOD_TIMEOUT),
                        Err(e) => return Attempt::Fail(connect_err(e)),
                    };
                    match builder.build().await {
                        Ok(connection) => Attempt::Done(connection),
                        Err(e) => {
                            tracing::debug!(address = %label, error = %e, "D-Bus not reachable yet");
                            Attempt::Retry(connect_err(e))
                        }
                    }
                },
                |_, _| {
                    let late = format!("no answer within {} ms", bound.as_millis());
                    connect_err(zbus::Error::Failure(late))
                },
            )
            .await;
        let connection = connection?;
        let manager = ManagerProxy::new(&connection).await.map_err(connect_err)?;
        Ok(Systemd {
            connection,
            manager,
        })
    }

    /// The unit's object (loaded if needed: a unit without a unit file loads as `not-found`).
    async fn unit(&self, unit: &str) -> Result<UnitProxy<'static>> {
        let path = self
            .manager
            .load_unit(unit)
            .await
            .map_err(dbus_err("LoadUnit", unit))?;
        UnitProxy::builder(&self.connection)
            .path(path)
            .map_err(dbus_err("LoadUnit", unit))?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(dbus_err("LoadUnit", unit))
    }

    /// The unit's `ActiveState`.
    pub async fn active_state(&self, unit: &str) -> Result<String> {
        self.unit(unit)
            .await?
            .active_state()
            .await
            .map_err(dbus_err("Get ActiveState", unit))
    }

    /// Whether the unit has no unit file (`LoadState=not-found`): an optional service that is
    /// not installed.
    async fn not_installed(&self, unit: &str) -> Result<bool> {
        let state = self
            .unit(unit)
            .await?
            .load_state()
            .await
            .map_err(dbus_err("Get LoadState", unit))?;
        Ok(state == "not-found")
    }

    /// Starts `unit` and waits for the job (bounded by [`JOB_TIMEOUT`]).
    pub async fn start(&self, unit: &str) -> Result<()> {
        self.subscribe().await?;
        self.run_job(JobMethod::Start, unit, JOB_TIMEOUT).await
    }

    /// Asks systemd for job signals (a second call from the same connection is harmless).
    async fn subscribe(&self) -> Result<()> {
        match self.manager.subscribe().await {
            Ok(()) => Ok(()),
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.systemd1.AlreadySubscribed" =>
            {
                Ok(())
            }
            Err(e) => Err(dbus_err("Subscribe", "manager")(e)),
        }
    }

    /// Queues a job and waits (bounded) for its `JobRemoved` signal; errors name the unit and
    /// the job result unless it is `done`.
    async fn run_job(&self, method: JobMethod, unit: &str, bound: Duration) -> Result<()> {
        let name = method.name();
        // Listen before queuing, so the signal cannot be missed.
        let mut removed = self
            .manager
            .receive_job_removed()
            .await
            .map_err(dbus_err(name, unit))?;
        let job = match method {
            JobMethod::Start => self.manager.start_unit(unit, JOB_MODE).await,
            JobMethod::Restart => self.manager.restart_unit(unit, JOB_MODE).await,
            JobMethod::TryRestart => self.manager.try_restart_unit(unit, JOB_MODE).await,
            JobMethod::Stop => self.manager.stop_unit(unit, JOB_MODE).await,
        }
        .map_err(dbus_err(name, unit))?;
        tracing::info!(unit, method = name, job = %job.as_str(), "systemd job queued");
        let started = Instant::now();
        let wait = async {
            while let Some(signal) = removed.next().await {
                let args = signal.args().map_err(dbus_err(name, unit))?;
                if args.job == job {
                    return Ok(args.result);
                }
            }
            Err(dbus_err(name, unit)(zbus::Error::Failure(
                "the bus closed before the job finished".into(),
            )))
        };
        let result = timeout(bound, wait).await.map_err(|_| Error::JobTimeout {
            unit: unit.to_owned(),
            method: name,
            secs: bound.as_secs(),
        })??;
        tracing::info!(unit, method = name, result = %result,
            elapsed_ms = started.elapsed().as_millis() as u64, "systemd job finished");
        if result != "done" {
            return Err(Error::JobFailed {
                unit: unit.to_owned(),
                method: name,
                result,
            });
        }
        Ok(())
    }

    /// Stops `unit` if it is active, waiting (bounded) for the job; returns whether it was.
    pub async fn stop_if_active(&self, unit: &str, bound: Duration) -> Result<bool> {
        let state = self.active_state(unit).await?;
        if !matches!(state.as_str(), "active" | "reloading" | "activating") {
            return Ok(false);
        }
        self.subscribe().await?;
        self.run_job(JobMethod::Stop, unit, bound).await?;
        Ok(true)
    }

    /// Carries out `actions` and brings up `services` in order, recording into `report`.
    pub async fn bring_up(
        &self,
        root: &Root,
        services: &[ServiceSpec],
        actions: &ServiceActions,
        bounds: Bounds,
        report: &mut Report,
    ) -> Result<()> {
        self.manager
            .subscribe()
            .await
            .map_err(dbus_err("Subscribe", "manager"))?;
        if actions.daemon_reload {
            self.manager
                .reload()
                .await
                .map_err(dbus_err("Reload", "manager"))?;
            tracing::info!("systemd daemon-reload done");
            report.daemon_reload = true;
        }
        let planned = |u: &String| services.iter().any(|s| &s.unit == u);
        for unit in actions.restart.iter().filter(|u| !planned(u)) {
            // A drop-in for an optional service that is not installed (the SOCI snapshotter's
            // local-storage drop-in): nothing runs, so nothing to restart (systemd would answer
            // TryRestartUnit with NoSuchUnit).
            if self.not_installed(unit).await? {
                tracing::info!(unit = %unit, "not installed: nothing to restart");
                continue;
            }
            self.run_job(JobMethod::TryRestart, unit, bounds.job)
                .await?;
            report.units_restarted.push(unit.clone());
        }
        for svc in services {
            if actions.restart.contains(&svc.unit) {
                self.run_job(JobMethod::Restart, &svc.unit, bounds.job)
                    .await?;
                report.units_restarted.push(svc.unit.clone());
            } else {
                let state = self.active_state(&svc.unit).await?;
                if matches!(state.as_str(), "active" | "reloading") {
                    report.units_unchanged.push(svc.unit.clone());
                } else {
                    tracing::info!(unit = %svc.unit, state = %state, "not active, starting");
                    self.run_job(JobMethod::Start, &svc.unit, bounds.job)
                        .await?;
                    report.units_started.push(svc.unit.clone());
                }
            }
            if let Some(socket) = &svc.wait_for_socket {
                wait_for_socket(&svc.unit, &root.path(socket)?, bounds.socket).await?;
            }
        }
        Ok(())
    }
}

/// Waits until the unix socket at `path` accepts a connection, retrying with exponential
/// backoff, at most `bound`.
pub async fn wait_for_socket(unit: &str, path: &Path, bound: Duration) -> Result<()> {
    let started = Instant::now();
    let policy = RetryPolicy {
        attempt_timeout: SOCKET_CONNECT_ATTEMPT_TIMEOUT,
        ..RetryPolicy::until(bound, SOCKET_BACKOFF_START, SOCKET_BACKOFF_MAX)
    };
    let (result, _) = policy
        .run(
            |_| async {
                match tokio::net::UnixStream::connect(path).await {
                    Ok(_stream) => Attempt::Done(()),
                    Err(e) => Attempt::Retry(e),
                }
            },
            |_, _| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        )
        .await;
    match result {
        Ok(()) => {
            tracing::info!(unit, socket = %path.display(),
                waited_ms = started.elapsed().as_millis() as u64, "socket accepts");
            Ok(())
        }
        Err(last) => Err(Error::SocketTimeout {
            unit: unit.to_owned(),
            path: path.to_path_buf(),
            secs: bound.as_secs(),
            source: last,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn socket_wait_is_bounded_and_names_the_unit() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("containerd.sock");
        let err = wait_for_socket("containerd.service", &sock, Duration::from_millis(100))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("containerd.service"), "{msg}");
        assert!(msg.contains("containerd.sock"), "{msg}");
    }

    #[tokio::test]
    async fn bus_connect_is_bounded_and_names_the_address() {
        let tmp = tempfile::tempdir().unwrap();
        let address = format!("unix:path={}", tmp.path().join("no-bus").display());
        let t = Instant::now();
        let err = Systemd::connect_within(Some(&address), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(err.to_string().contains("no-bus"), "{err}");
        let bad = Systemd::connect_within(Some("nonsense"), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::Connect { .. }), "{bad}");
    }

    #[tokio::test]
    async fn socket_wait_returns_once_the_listener_is_up() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("containerd.sock");
        let opener = {
            let sock = sock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let listener = tokio::net::UnixListener::bind(&sock).unwrap();
                let _ = listener.accept().await;
            })
        };
        let t = Instant::now();
        wait_for_socket("containerd.service", &sock, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(150));
        opener.abort();
    }
}
