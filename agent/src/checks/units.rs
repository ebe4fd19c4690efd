//! systemd unit state over D-Bus (`org.freedesktop.systemd1`), read only: `LoadUnit` for the
//! unit's object path, then the `Unit` interface's `LoadState`, `ActiveState`, `SubState`
//! and the `Service` interface's `NRestarts`. Nothing is started, stopped or reloaded here
//! (apply's [`crate::apply`] owns that). The connection is opened on first use, kept, and
//! dropped on any error so the next run reconnects.

use std::time::Duration;

use zbus::proxy::CacheProperties;

use super::{Outcome, UnitFacts};
use crate::apply::systemd::{ManagerProxy, UnitProxy};

/// Bound on connecting and authenticating to the bus.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on each D-Bus call.
pub const METHOD_TIMEOUT: Duration = Duration::from_secs(2);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait Service {
    /// Automatic restarts of the service (systemd 235 and later).
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
}

/// Where the bus is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (production).
    System,
    /// A bus address, e.g. `unix:path=/run/user/0/bus` (tests: a `systemd --user`).
    Address(String),
    /// Do not read unit state.
    Disabled,
}

impl Bus {
    /// Parses `--systemd-bus`: `system`, `none`, or an address.
    pub fn parse(s: &str) -> Self {
        match s {
            "system" => Bus::System,
            "none" => Bus::Disabled,
            other => Bus::Address(other.to_string()),
        }
    }
}

/// What systemd says about one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `LoadState`.
    pub load_state: String,
    /// `ActiveState`.
    pub active_state: String,
    /// `SubState`.
    pub sub_state: String,
    /// `NRestarts` (`None` when systemd does not have the property).
    pub restarts: Option<u32>,
}

impl UnitState {
    /// Active (or reloading, which is active with a reload job running).
    pub fn is_active(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }
}

/// Errors reading unit state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus did not accept a connection.
    #[error("cannot connect to systemd's bus {address}")]
    Connect {
        /// The bus.
        address: String,
        /// Why.
        #[source]
        source: Box<zbus::Error>,
    },
    /// Connecting took too long.
    #[error("connecting to systemd's bus {address} took longer than {CONNECT_TIMEOUT:?}")]
    ConnectTimeout {
        /// The bus.
        address: String,
    },
    /// A call failed.
    #[error("reading {unit} from systemd failed")]
    Read {
        /// The unit.
        unit: String,
        /// Why.
        #[source]
        source: Box<zbus::Error>,
    },
}

/// Reads unit state, keeping one connection.
#[derive(Debug)]
pub struct Reader {
    bus: Bus,
    connection: tokio::sync::Mutex<Option<zbus::Connection>>,
}

impl Reader {
    /// A reader for `bus`; nothing is connected yet.
    pub fn new(bus: Bus) -> Self {
        Self {
            bus,
            connection: tokio::sync::Mutex::new(None),
        }
    }

    fn label(&self) -> String {
        match &self.bus {
            Bus::System => "the system bus".to_string(),
            Bus::Address(a) => a.clone(),
            Bus::Disabled => "none".to_string(),
        }
    }

    async fn connect(&self) -> Result<zbus::Connection, Error> {
        let label = self.label();
        let connect_err = |e: zbus::Error| Error::Connect {
            address: label.clone(),
            source: Box::new(e),
        };
        let address: zbus::Address = match &self.bus {
            Bus::Address(a) => a.parse().map_err(connect_err)?,
            _ => zbus::Address::system().map_err(connect_err)?,
        };
        // A unix socket path is connected here with tokio's non-blocking connect: zbus
        // would connect on tokio's blocking pool, a thread (and malloc arena) that stays
        // resident for a call that does not block.
        let builder = match address.transport() {
            zbus::address::Transport::Unix(unix) => match unix.path() {
                zbus::address::transport::UnixSocket::File(path) => {
                    let stream = tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        tokio::net::UnixStream::connect(path),
                    )
                    .await
                    .map_err(|_| Error::ConnectTimeout {
                        address: label.clone(),
                    })?
                    .map_err(|e| connect_err(zbus::Error::InputOutput(e.into())))?;
                    zbus::connection::Builder::unix_stream(stream)
                }
                _ => zbus::connection::Builder::address(address).map_err(connect_err)?,
            },
            _ => zbus::connection::Builder::address(address).map_err(connect_err)?,
        }
        .method_timeout(METHOD_TIMEOUT);
        tokio::time::timeout(CONNECT_TIMEOUT, builder.build())
            .await
            .map_err(|_| Error::ConnectTimeout {
                address: label.clone(),
            })?
            .map_err(connect_err)
    }

    /// Reads `unit`'s state; `Ok(None)` when reading is disabled.
    pub async fn read(&self, unit: &str) -> Result<Option<UnitState>, Error> {
        if self.bus == Bus::Disabled {
            return Ok(None);
        }
        let mut slot = self.connection.lock().await;
        let conn = match slot.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = self.connect().await?;
                *slot = Some(c.clone());
                c
            }
        };
        let result = read_with(&conn, unit).await;
        if result.is_err() {
            // Reconnect next time: the bus or systemd may have restarted.
            *slot = None;
        }
        result.map(Some).map_err(|source| Error::Read {
            unit: unit.to_string(),
            source: Box::new(source),
        })
    }
}

async fn read_with(conn: &zbus::Connection, unit: &str) -> zbus::Result<UnitState> {
    let manager = ManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let path = manager.load_unit(unit).await?;
    let unit_proxy = UnitProxy::builder(conn)
        .path(path.clone())?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let load_state = unit_proxy.load_state().await?;
    let active_state = unit_proxy.active_state().await?;
    let sub_state = unit_proxy.sub_state().await?;
    let service = ServiceProxy::builder(conn)
        .path(path)?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    // Not a service, or a systemd older than 235: no restart count.
    let restarts = service.n_restarts().await.ok();
    Ok(UnitState {
        load_state,
        active_state,
        sub_state,
        restarts,
    })
}

/// `NRestarts` above this, and rising, is `<Prefix>RepeatedRestart` (the monitoring agent's
/// threshold).
pub const REPEATED_RESTART_MIN: u32 = 3;
/// A rise of `NRestarts` keeps `<Prefix>RepeatedRestart` active this long.
pub const REPEATED_RESTART_HOLD: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The verdict on a unit a check depends on: `failed` is `<prefix>Failed` when the catalog has
/// it (`KubeletFailed`), any other state but active is `<prefix>UnitNotActive`, e.g.
/// `ContainerdUnitNotActive`.
pub fn evaluate(unit: &str, prefix: &str, state: &UnitState) -> Option<Outcome> {
    if state.is_active() {
        return None;
    }
    let restarts = state
        .restarts
        .map(|n| format!(", restarted {n} times"))
        .unwrap_or_default();
    let failed = format!("{prefix}Failed");
    let reason = if state.active_state == "failed" && super::reasons::lookup(&failed).is_some() {
        failed
    } else {
        format!("{prefix}UnitNotActive")
    };
    Some(Outcome::fail(
        &reason,
        format!(
            "{unit} is {} ({}, {}){restarts}",
            state.active_state, state.sub_state, state.load_state
        ),
    ))
}

/// Reads `unit` and returns a problem when it is not active, plus the facts for the
/// metrics. An unreadable bus decides nothing (the check's own probe still runs); it is
/// logged at debug level, since hosts without systemd's bus are expected in containers.
pub async fn check(
    reader: &Reader,
    unit: &str,
    prefix: &str,
) -> (Option<Outcome>, Option<UnitFacts>) {
    match reader.read(unit).await {
        Ok(Some(state)) => {
            let facts = UnitFacts {
                unit: unit.to_string(),
                active: state.is_active(),
                restarts: state.restarts,
            };
            (evaluate(unit, prefix, &state), Some(facts))
        }
        Ok(None) => (None, None),
        Err(e) => {
            tracing::debug!(unit, error = %crate::model::text::error_chain(&e), "unit state not readable");
            (None, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(active: &str, sub: &str, restarts: Option<u32>) -> UnitState {
        UnitState {
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            restarts,
        }
    }

    #[test]
    fn only_active_or_reloading_is_healthy() {
        assert!(
            evaluate(
                "kubelet.service",
                "Kubelet",
                &state("active", "running", Some(0))
            )
            .is_none()
        );
        assert!(
            evaluate(
                "kubelet.service",
                "Kubelet",
                &state("reloading", "reload", None)
            )
            .is_none()
        );
        for s in [
            "inactive",
            "failed",
            "activating",
            "deactivating",
            "maintenance",
        ] {
            let out = evaluate("kubelet.service", "Kubelet", &state(s, "x", Some(3))).unwrap();
            let want = if s == "failed" {
                "KubeletFailed"
            } else {
                "KubeletUnitNotActive"
            };
            assert_eq!(out.reason, want);
            assert!(out.message.contains(s) && out.message.contains("restarted 3 times"));
        }
        let out = evaluate(
            "containerd.service",
            "Containerd",
            &state("failed", "x", None),
        );
        assert_eq!(out.unwrap().reason, "ContainerdUnitNotActive");
    }

    #[test]
    fn bus_argument() {
        assert_eq!(Bus::parse("system"), Bus::System);
        assert_eq!(Bus::parse("none"), Bus::Disabled);
        assert_eq!(
            Bus::parse("unix:path=/x"),
            Bus::Address("unix:path=/x".into())
        );
    }
}
