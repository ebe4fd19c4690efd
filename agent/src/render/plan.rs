//! The Plan: everything `init` will do to the host, as a value: files, sysctls, host actions
//! (registration, swap) and services. `render` builds it (pure); `apply` carries it out;
//! `init --dry-run` prints it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::auth::ssm::Activation;

/// Everything to write and start, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Files to write (absolute host paths; `apply` places them under its root).
    pub files: Vec<FileSpec>,
    /// Kernel parameters to set through /proc/sys.
    pub sysctls: Vec<Sysctl>,
    /// Host changes that are neither files nor sysctls (registration, swap, links), in order,
    /// after the files and sysctls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<HostAction>,
    /// Services to bring up in the `run` phase, in start order.
    pub services: Vec<ServiceSpec>,
    /// The instance-store disks (`spec.instance.localStorage`): set up first, before the
    /// files, so that files under the moved directories land on the disks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<super::local_storage::StoragePlan>,
}

/// One file the agent owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSpec {
    /// Absolute path on the host, e.g. `/etc/kubernetes/kubelet/config.json`.
    pub path: PathBuf,
    /// Permission bits, e.g. 0o644; secrets are 0o600.
    pub mode: u32,
    /// The full contents.
    #[serde(skip)]
    pub contents: Vec<u8>,
    /// systemd units that must restart when this file changes (e.g. `kubelet.service`).
    pub affects: Vec<String>,
    /// Contents are secret: dry-run shows no diff, only that it changes.
    pub secret: bool,
}

impl FileSpec {
    /// A 0644 file affecting the given units.
    pub fn new(path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>, affects: &[&str]) -> Self {
        FileSpec {
            path: path.into(),
            mode: 0o644,
            contents: contents.into(),
            affects: affects.iter().map(|s| (*s).to_owned()).collect(),
            secret: false,
        }
    }

    /// The same file with another mode.
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// The same file marked secret (0600, no diff shown).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self.mode = 0o600;
        self
    }

    /// Whether this is a systemd unit file or drop-in (a change needs daemon-reload).
    pub fn is_systemd_unit(&self) -> bool {
        self.path.starts_with("/etc/systemd/system")
            || self.path.starts_with("/usr/lib/systemd/system")
    }
}

/// A kernel parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    /// Dotted key, e.g. `net.ipv4.ip_forward`.
    pub key: String,
    /// The value as written to /proc/sys.
    pub value: String,
}

impl Sysctl {
    /// The /proc/sys path of this key.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from("/proc/sys").join(self.key.replace('.', "/"))
    }
}

/// A service the `run` phase starts (or restarts when a file it depends on changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// The unit name, e.g. `containerd.service`.
    pub unit: String,
    /// A unix socket that must accept connections before the next service starts.
    pub wait_for_socket: Option<PathBuf>,
}

/// A change to the host that is neither a file nor a sysctl nor a service. `apply` carries it
/// out (only on the host's own root), `init --dry-run` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum HostAction {
    /// Register the host with its SSM hybrid activation (`amazon-ssm-agent -register`, no
    /// shell); the node is then named after the managed instance ID SSM assigns.
    RegisterSsm {
        /// The activation (its code is secret: never serialized, printed or logged).
        #[serde(skip)]
        activation: Activation,
        /// The activation ID (not secret).
        activation_id: String,
        /// The activation's region.
        region: String,
    },
    /// Turn off an active swap file (`swapoff PATH`, no shell); the plan's /etc/fstab comments
    /// its line out so it stays off after a reboot.
    SwapOff {
        /// The swap file, as /proc/swaps names it.
        path: String,
    },
    /// Point a symbolic link at a target, replacing what is there (an older link, or an empty
    /// directory).
    Symlink {
        /// The link.
        link: String,
        /// What it points to.
        target: String,
    },
}

impl HostAction {
    /// The action as one line of the dry run and the report.
    pub fn describe(&self) -> String {
        match self {
            HostAction::RegisterSsm {
                activation_id,
                region,
                ..
            } => format!(
                "register with SSM: activation {activation_id} in {region} (amazon-ssm-agent -register); the node is named after the managed instance ID it gets"
            ),
            HostAction::SwapOff { path } => {
                format!("swapoff {path} (kubelet refuses to run with swap on)")
            }
            HostAction::Symlink { link, target } => format!("link {link} -> {target}"),
        }
    }
}
