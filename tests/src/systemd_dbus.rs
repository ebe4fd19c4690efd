//! systemd's D-Bus Manager API (`org.freedesktop.systemd1`) for the tests, two ways:
//!
//! - [`SystemdUser`]: a REAL systemd (`systemd --user`, same Manager interface as PID 1) in a
//!   private mount namespace; used for the end-to-end checks (real reload, real jobs, real
//!   job results). Needs root.
//! - [`SystemdEmulator`]: an EMULATOR served on a private `dbus-daemon` that the test starts,
//!   which records every call, so tests can assert the exact calls made (or that none was),
//!   and inject job results and durations that a real unit cannot produce on demand.
//!
//! The emulator follows the published interface (systemd's `org.freedesktop.systemd1(5)`) for the part
//! the agent uses, with the same names, signatures and errors:
//! - `org.freedesktop.systemd1.Manager` at `/org/freedesktop/systemd1`: `Subscribe`
//!   (`AlreadySubscribed` on a second call from the same client), `Reload`, `GetUnit`
//!   (`NoSuchUnit` when not loaded), `LoadUnit` (a not-found unit loads with
//!   `LoadState=not-found`), `StartUnit`/`StopUnit`/`RestartUnit`/`TryRestartUnit` (`NoSuchUnit` for a
//!   unit without a unit file, `InvalidArgs` for a bad job mode) returning a job path
//!   `/org/freedesktop/systemd1/job/N`, and the `JobRemoved(u id, o job, s unit, s result)`
//!   signal, sent only while some client is subscribed (a client that disconnects is
//!   unsubscribed), as systemd does.
//! - `org.freedesktop.systemd1.Unit` at `/org/freedesktop/systemd1/unit/<escaped name>`:
//!   `Id`, `LoadState`, `ActiveState`, `SubState` properties.
//!
//! Every call is recorded with its arguments and the time it arrived. Each unit's job result
//! (`done`, `failed`, `timeout`, `dependency`...) and the job duration are configurable.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

/// Object path of the Manager.
pub const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
/// The bus name systemd owns.
pub const BUS_NAME: &str = "org.freedesktop.systemd1";

/// How long the emulator takes to finish a job unless told otherwise.
pub const DEFAULT_JOB_DURATION: Duration = Duration::from_millis(20);

/// Job modes systemd accepts for StartUnit and friends.
const JOB_MODES: &[&str] = &[
    "replace",
    "fail",
    "isolate",
    "ignore-dependencies",
    "ignore-requirements",
    "replace-irreversibly",
    "flush",
    "triggering",
    "restart-dependencies",
];

/// A private dbus-daemon on a unix socket in a temp dir; killed on drop.
#[derive(Debug)]
pub struct DbusDaemon {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl DbusDaemon {
    /// Starts `dbus-daemon --nofork --print-address` with a session-type config listening on a
    /// socket in a fresh temp dir.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for dbus-daemon");
        let config = dir.path().join("bus.conf");
        let socket = dir.path().join("bus");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("write dbus-daemon config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect(
                "start dbus-daemon: install Debian package `dbus-daemon` (scripts/test.sh does)",
            );
        let stdout = child.stdout.take().expect("dbus-daemon stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the bus address from dbus-daemon");
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed no address: {line:?}"
        );
        DbusDaemon {
            child,
            address,
            _dir: dir,
        }
    }

    /// The bus address, e.g. `unix:path=/tmp/.tmpX/bus,guid=...`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for SystemdEmulator {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Drop for DbusDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One recorded method call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The D-Bus member, e.g. `RestartUnit`.
    pub method: String,
    /// Its string arguments (unit name, mode).
    pub args: Vec<String>,
    /// When it arrived.
    pub at: Instant,
}

/// One unit the emulator knows.
#[derive(Debug, Clone)]
struct UnitState {
    /// `loaded` or `not-found`.
    load_state: String,
    active_state: String,
    /// The result its next jobs finish with.
    job_result: String,
}

#[derive(Debug)]
struct State {
    units: BTreeMap<String, UnitState>,
    calls: Vec<Call>,
    subscribers: BTreeSet<String>,
    next_job: u32,
    job_duration: Duration,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// systemd's errors, with their real names.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
enum SystemdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSuchUnit(String),
    AlreadySubscribed(String),
}

fn invalid_args(msg: String) -> SystemdError {
    SystemdError::ZBus(zbus::Error::FDO(Box::new(zbus::fdo::Error::InvalidArgs(
        msg,
    ))))
}

/// systemd's object-path label escaping: every byte that is not `[A-Za-z0-9]` becomes `_xx`.
pub fn unit_path(name: &str) -> String {
    let mut label = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            label.push(b as char);
        } else {
            label.push_str(&format!("_{b:02x}"));
        }
    }
    if label.is_empty() {
        label.push('_');
    }
    format!("{MANAGER_PATH}/unit/{label}")
}

struct Manager {
    state: Shared,
}

struct Unit {
    name: String,
    state: Shared,
}

impl Unit {
    fn with<T>(&self, f: impl FnOnce(Option<&UnitState>) -> T) -> T {
        let st = lock(&self.state);
        f(st.units.get(&self.name))
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Unit {
    #[zbus(property)]
    fn id(&self) -> String {
        self.name.clone()
    }

    #[zbus(property)]
    fn load_state(&self) -> String {
        self.with(|u| u.map_or("not-found".into(), |u| u.load_state.clone()))
    }

    #[zbus(property)]
    fn active_state(&self) -> String {
        self.with(|u| u.map_or("inactive".into(), |u| u.active_state.clone()))
    }

    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.with(|u| {
            match u.map_or("inactive", |u| u.active_state.as_str()) {
                "active" => "running",
                "failed" => "failed",
                _ => "dead",
            }
            .to_owned()
        })
    }
}

impl Manager {
    fn record(&self, method: &str, args: &[&str]) {
        lock(&self.state).calls.push(Call {
            method: method.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            at: Instant::now(),
        });
    }

    async fn export_unit(&self, server: &zbus::ObjectServer, name: &str) -> zbus::Result<()> {
        let unit = Unit {
            name: name.to_owned(),
            state: self.state.clone(),
        };
        // `false` means it is already exported: fine.
        server.at(unit_path(name), unit).await.map(|_| ())
    }

    /// Queues a job: validates like systemd, then finishes it after the job duration with the
    /// unit's configured result, emitting JobRemoved if anyone is subscribed.
    async fn queue_job(
        &self,
        kind: &'static str,
        name: &str,
        mode: &str,
        conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.record(kind, &[name, mode]);
        if !JOB_MODES.contains(&mode) {
            return Err(invalid_args(format!("Job mode {mode} invalid.")));
        }
        let (id, duration, result, was_active) = {
            let mut st = lock(&self.state);
            let unit = match st.units.get(name) {
                Some(u) if u.load_state == "loaded" => u.clone(),
                _ => return Err(SystemdError::NoSuchUnit(format!("Unit {name} not found."))),
            };
            st.next_job += 1;
            (
                st.next_job,
                st.job_duration,
                unit.job_result,
                unit.active_state == "active",
            )
        };
        let path = OwnedObjectPath::try_from(format!("{MANAGER_PATH}/job/{id}"))
            .map_err(|e| SystemdError::ZBus(e.into()))?;
        let state = self.state.clone();
        let conn = conn.clone();
        let job = path.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            let subscribed = {
                let mut st = lock(&state);
                if let Some(u) = st.units.get_mut(&name) {
                    // try-restart of a stopped unit is a no-op that succeeds.
                    if kind == "StopUnit" {
                        // A stop job leaves the unit inactive whatever its result.
                        u.active_state = "inactive".into();
                    } else if kind != "TryRestartUnit" || was_active {
                        u.active_state = if result == "done" {
                            "active".into()
                        } else {
                            "failed".into()
                        };
                    }
                }
                !st.subscribers.is_empty()
            };
            if subscribed && let Ok(emitter) = SignalEmitter::new(&conn, MANAGER_PATH) {
                let _ = Manager::job_removed(&emitter, id, job.as_ref(), &name, &result).await;
            }
        });
        Ok(path)
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    async fn subscribe(
        &self,
        #[zbus(header)] header: zbus::message::Header<'_>,
    ) -> Result<(), SystemdError> {
        self.record("Subscribe", &[]);
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        if !lock(&self.state).subscribers.insert(sender) {
            return Err(SystemdError::AlreadySubscribed(
                "Client is already subscribed.".into(),
            ));
        }
        Ok(())
    }

    async fn reload(&self) -> Result<(), SystemdError> {
        self.record("Reload", &[]);
        Ok(())
    }

    async fn get_unit(
        &self,
        name: String,
        #[zbus(object_server)] server: &zbus::ObjectServer,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.record("GetUnit", &[&name]);
        if !lock(&self.state).units.contains_key(&name) {
            return Err(SystemdError::NoSuchUnit(format!("Unit {name} not loaded.")));
        }
        self.export_unit(server, &name).await?;
        OwnedObjectPath::try_from(unit_path(&name)).map_err(|e| SystemdError::ZBus(e.into()))
    }

    async fn load_unit(
        &self,
        name: String,
        #[zbus(object_server)] server: &zbus::ObjectServer,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.record("LoadUnit", &[&name]);
        lock(&self.state)
            .units
            .entry(name.clone())
            .or_insert_with(|| UnitState {
                load_state: "not-found".into(),
                active_state: "inactive".into(),
                job_result: "done".into(),
            });
        self.export_unit(server, &name).await?;
        OwnedObjectPath::try_from(unit_path(&name)).map_err(|e| SystemdError::ZBus(e.into()))
    }

    async fn start_unit(
        &self,
        name: String,
        mode: String,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.queue_job("StartUnit", &name, &mode, conn).await
    }

    async fn restart_unit(
        &self,
        name: String,
        mode: String,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.queue_job("RestartUnit", &name, &mode, conn).await
    }

    async fn stop_unit(
        &self,
        name: String,
        mode: String,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.queue_job("StopUnit", &name, &mode, conn).await
    }

    async fn try_restart_unit(
        &self,
        name: String,
        mode: String,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.queue_job("TryRestartUnit", &name, &mode, conn).await
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

/// The emulator: a private bus with the systemd1 Manager on it.
#[derive(Debug)]
pub struct SystemdEmulator {
    state: Shared,
    watcher: tokio::task::JoinHandle<()>,
    _connection: zbus::Connection,
    daemon: DbusDaemon,
}

impl SystemdEmulator {
    /// Starts a private dbus-daemon and serves the Manager on it as `org.freedesktop.systemd1`.
    /// Call inside a tokio runtime.
    pub async fn start() -> Self {
        let daemon = DbusDaemon::start();
        let state = Arc::new(Mutex::new(State {
            units: BTreeMap::new(),
            calls: Vec::new(),
            subscribers: BTreeSet::new(),
            next_job: 0,
            job_duration: DEFAULT_JOB_DURATION,
        }));
        let connection = zbus::connection::Builder::address(daemon.address())
            .expect("bus address")
            .name(BUS_NAME)
            .expect("bus name")
            .serve_at(
                MANAGER_PATH,
                Manager {
                    state: state.clone(),
                },
            )
            .expect("serve Manager")
            .build()
            .await
            .expect("connect the emulator to its bus");
        // Like systemd, forget subscribers whose connection closed: signals stop when none is left.
        let dbus = zbus::fdo::DBusProxy::new(&connection)
            .await
            .expect("org.freedesktop.DBus proxy");
        let mut owners = dbus
            .receive_name_owner_changed()
            .await
            .expect("watch NameOwnerChanged");
        let watched = state.clone();
        let watcher = tokio::spawn(async move {
            while let Some(signal) = owners.next().await {
                if let Ok(args) = signal.args()
                    && args.new_owner.is_none()
                {
                    lock(&watched).subscribers.remove(args.name.as_str());
                }
            }
        });
        SystemdEmulator {
            state,
            watcher,
            _connection: connection,
            daemon,
        }
    }

    /// The bus address for the client.
    pub fn address(&self) -> &str {
        self.daemon.address()
    }

    /// Adds a unit with a unit file, in the given ActiveState; its jobs finish `done`.
    pub fn add_unit(&self, name: &str, active_state: &str) {
        lock(&self.state).units.insert(
            name.to_owned(),
            UnitState {
                load_state: "loaded".into(),
                active_state: active_state.to_owned(),
                job_result: "done".into(),
            },
        );
    }

    /// Makes the unit's next jobs finish with this result (`failed`, `timeout`, ...).
    pub fn set_job_result(&self, name: &str, result: &str) {
        if let Some(u) = lock(&self.state).units.get_mut(name) {
            u.job_result = result.to_owned();
        }
    }

    /// How long each job takes.
    pub fn set_job_duration(&self, duration: Duration) {
        lock(&self.state).job_duration = duration;
    }

    /// The unit's ActiveState now.
    pub fn active_state(&self, name: &str) -> Option<String> {
        lock(&self.state)
            .units
            .get(name)
            .map(|u| u.active_state.clone())
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    /// The calls that change something (Reload and the job methods) as `Method unit` strings.
    pub fn actions(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| {
                matches!(
                    c.method.as_str(),
                    "Reload" | "StartUnit" | "StopUnit" | "RestartUnit" | "TryRestartUnit"
                )
            })
            .map(|c| match c.args.first() {
                Some(unit) => format!("{} {unit}", c.method),
                None => c.method,
            })
            .collect()
    }

    /// How many clients are subscribed now.
    pub fn subscribers(&self) -> usize {
        lock(&self.state).subscribers.len()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        lock(&self.state).calls.clear();
    }
}

/// A REAL systemd service manager: `systemd --user`, whose Manager API on its session bus is
/// the same `org.freedesktop.systemd1` interface PID 1 serves on the system bus.
///
/// systemd refuses to run a user instance on a host not booted with systemd (it checks for
/// `/run/systemd/system`), so it runs in a private mount namespace (`unshare --mount`) with a
/// tmpfs over `/run` holding that directory: the host's `/run` is not touched. Its units come
/// from `$XDG_CONFIG_HOME/systemd/user`; its runtime dir (with the bus socket its own
/// `dbus.socket` activates) is a temp dir. On drop it gets SIGTERM, stops its units and removes
/// its cgroups.
#[derive(Debug)]
pub struct SystemdUser {
    child: Child,
    runtime: tempfile::TempDir,
}

/// Bound on systemd --user coming up and owning its bus name.
pub const SYSTEMD_USER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on systemd --user shutting down after SIGTERM.
const SYSTEMD_USER_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The systemd binary.
const SYSTEMD_BIN: &str = "/lib/systemd/systemd";

impl SystemdUser {
    /// Why a real systemd cannot run here, if it cannot: not root (the mount namespace needs
    /// it), or no systemd / unshare / dbus-daemon installed.
    pub fn unavailable() -> Option<String> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Some("not root: `unshare --mount` needs CAP_SYS_ADMIN".into());
        }
        let needed = [
            SYSTEMD_BIN,
            "/usr/bin/unshare",
            "/usr/bin/dbus-daemon",
            // The user manager's own bus comes from its dbus.socket unit.
            "/usr/lib/systemd/user/dbus.socket",
            "/usr/bin/python3",
        ];
        for path in needed {
            if !std::path::Path::new(path).exists() {
                return Some(format!(
                    "{path} is missing: install Debian packages systemd, util-linux, dbus-daemon, \
                     dbus-user-session, python3 (scripts/test.sh does)"
                ));
            }
        }
        None
    }

    /// Starts `systemd --user` with units from `config_home/systemd/user` and waits until it
    /// owns `org.freedesktop.systemd1` on its bus.
    pub async fn start(config_home: &std::path::Path) -> Self {
        let runtime = tempfile::tempdir().expect("runtime dir for systemd --user");
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec {SYSTEMD_BIN} --user"
            ))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", runtime.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("XDG_CONFIG_HOME", config_home)
            .env("SYSTEMD_LOG_LEVEL", "warning")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start systemd --user");
        let this = SystemdUser { child, runtime };
        let deadline = Instant::now() + SYSTEMD_USER_START_TIMEOUT;
        loop {
            if this.owns_name().await {
                return this;
            }
            assert!(
                Instant::now() < deadline,
                "systemd --user did not own {BUS_NAME} within {} s",
                SYSTEMD_USER_START_TIMEOUT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn owns_name(&self) -> bool {
        if !self.runtime.path().join("bus").exists() {
            return false;
        }
        let Ok(builder) = zbus::connection::Builder::address(self.address().as_str()) else {
            return false;
        };
        let Ok(conn) = builder.build().await else {
            return false;
        };
        let Ok(dbus) = zbus::fdo::DBusProxy::new(&conn).await else {
            return false;
        };
        let name = zbus::names::BusName::try_from(BUS_NAME).expect("valid bus name");
        dbus.name_has_owner(name).await.unwrap_or(false)
    }

    /// The session bus address of this manager.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.runtime.path().join("bus").display())
    }

    /// Starts `unit` through the Manager's `StartUnit` (mode `replace`), as `systemctl --user
    /// start` does.
    pub async fn start_unit(&self, unit: &str) {
        let conn = zbus::connection::Builder::address(self.address().as_str())
            .expect("bus address")
            .build()
            .await
            .expect("bus connection");
        conn.call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "StartUnit",
            &(unit, "replace"),
        )
        .await
        .expect("StartUnit");
    }
}

impl Drop for SystemdUser {
    fn drop(&mut self) {
        // SIGTERM (not SIGKILL): systemd stops its units and removes its cgroups.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + SYSTEMD_USER_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
