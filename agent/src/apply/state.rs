//! The state the two boot phases of `init` share: `init --skip run` (the config phase) leaves
//! it under `/run/eks-node-agent/`, and `init --skip config` (the run phase) reads it instead of
//! discovering again, nodeadm's two phases sharing the config they resolved. It holds what the
//! run phase needs (the services in order, and which need a restart or a daemon-reload
//! because the config phase changed their files) and how the node's values came about (for
//! `config show --explain`).
//!
//! A state file is used only when it is this agent's format, from this boot, for this root and
//! for the same merged configuration; anything else is ignored with a warning and the run
//! phase discovers again. Written with the one atomic write ([`super::file`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Report, Root, file};
use crate::model::paths::INIT_STATE;
use crate::render::ServiceSpec;

/// The format of the state file this agent reads and writes.
pub const FORMAT: u32 = 1;
/// The file that names this boot.
pub const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// The most bytes of a state file read (it holds a few lists and explanations).
const MAX_STATE_BYTES: u64 = 1024 * 1024;

/// What the config phase leaves for the run phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitState {
    /// [`FORMAT`].
    pub format: u32,
    /// The agent's version that wrote it.
    pub agent_version: String,
    /// The boot it was written in.
    pub boot_id: String,
    /// The root it was applied under.
    pub root: PathBuf,
    /// SHA-256 of the merged NodeConfig it was resolved from.
    pub config_sha256: String,
    /// The services of the plan, in start order.
    pub services: Vec<ServiceSpec>,
    /// A unit file changed: the run phase reloads systemd first.
    pub daemon_reload: bool,
    /// Units whose inputs the config phase changed: the run phase restarts them.
    pub units_to_restart: Vec<String>,
    /// How each derived value came about (node name, max pods, cluster DNS, ...).
    pub explain: BTreeMap<String, String>,
    /// Each kubelet setting of config.json and where it came from.
    pub kubelet_settings: BTreeMap<String, String>,
}

/// Why a state file was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// There is none.
    Missing,
    /// It is not this agent's state file (unreadable, too large, another format).
    Foreign(String),
    /// It is from another boot, root or configuration.
    Stale(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => write!(f, "there is no state file from the config phase"),
            Unusable::Foreign(why) => write!(f, "the state file is not this agent's: {why}"),
            Unusable::Stale(why) => write!(f, "the state file is stale: {why}"),
        }
    }
}

/// SHA-256 of a merged configuration (its canonical JSON).
pub fn config_sha256(config: &crate::config::NodeConfig) -> String {
    file::sha256_hex(&serde_json::to_vec(config).unwrap_or_default())
}

/// This boot's ID.
pub fn boot_id() -> String {
    std::fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Where the state file of `root` is.
pub fn path(root: &Root) -> super::Result<PathBuf> {
    root.path(Path::new(INIT_STATE))
}

impl InitState {
    /// The state a finished config phase leaves.
    pub fn new(
        root: &Root,
        config_sha256: String,
        services: Vec<ServiceSpec>,
        files: &Report,
        explain: BTreeMap<String, String>,
        kubelet_settings: BTreeMap<String, String>,
    ) -> InitState {
        InitState {
            format: FORMAT,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            boot_id: boot_id(),
            root: root.dir().to_path_buf(),
            config_sha256,
            services,
            daemon_reload: files.daemon_reload,
            units_to_restart: files.units_to_restart.clone(),
            explain,
            kubelet_settings,
        }
    }

    /// The report of the config phase the run phase acts on (restarts and reload).
    pub fn files_report(&self) -> Report {
        Report {
            daemon_reload: self.daemon_reload,
            units_to_restart: self.units_to_restart.clone(),
            ..Report::default()
        }
    }

    /// Whether this state may stand in for discovery for `root` and `config_sha256` now:
    /// pure, given this boot's ID.
    pub fn check(&self, root: &Root, config_sha256: &str, boot_id: &str) -> Result<(), Unusable> {
        if self.format != FORMAT {
            return Err(Unusable::Foreign(format!(
                "format {} (this agent reads {FORMAT})",
                self.format
            )));
        }
        if self.agent_version != env!("CARGO_PKG_VERSION") {
            return Err(Unusable::Stale(format!(
                "written by eks-node-agent {}",
                self.agent_version
            )));
        }
        if self.boot_id != boot_id {
            return Err(Unusable::Stale("written in another boot".into()));
        }
        if self.root != root.dir() {
            return Err(Unusable::Stale(format!(
                "written for root {}",
                self.root.display()
            )));
        }
        if self.config_sha256 != config_sha256 {
            return Err(Unusable::Stale(
                "the configuration changed since the config phase".into(),
            ));
        }
        Ok(())
    }

    /// Writes the state atomically (mode 0644: nothing in it is secret).
    pub fn save(&self, root: &Root) -> super::Result<()> {
        let text = serde_json::to_vec_pretty(self).unwrap_or_default();
        file::write_atomic(&path(root)?, &text, 0o644).map(|_| ())
    }

    /// Reads the state of `root`.
    pub fn load(root: &Root) -> Result<InitState, Unusable> {
        let path = path(root).map_err(|e| Unusable::Foreign(e.to_string()))?;
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Missing),
            Err(e) => return Err(Unusable::Foreign(format!("{}: {e}", path.display()))),
        };
        if meta.len() > MAX_STATE_BYTES {
            return Err(Unusable::Foreign(format!(
                "{} is {} bytes (at most {MAX_STATE_BYTES})",
                path.display(),
                meta.len()
            )));
        }
        let text = std::fs::read(&path)
            .map_err(|e| Unusable::Foreign(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&text)
            .map_err(|e| Unusable::Foreign(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(root: &Root) -> InitState {
        let files = Report {
            daemon_reload: true,
            units_to_restart: vec!["kubelet.service".into()],
            ..Report::default()
        };
        InitState::new(
            root,
            "abc".into(),
            vec![ServiceSpec {
                unit: "kubelet.service".into(),
                wait_for_socket: None,
            }],
            &files,
            BTreeMap::from([("max pods".into(), "29: computed".into())]),
            BTreeMap::new(),
        )
    }

    #[test]
    fn a_state_is_used_only_for_its_boot_root_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::at(dir.path());
        assert_eq!(InitState::load(&root), Err(Unusable::Missing));
        let s = state(&root);
        s.save(&root).unwrap();
        let back = InitState::load(&root).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.check(&root, "abc", &s.boot_id), Ok(()));
        assert_eq!(back.files_report().units_to_restart, ["kubelet.service"]);
        assert!(matches!(
            back.check(&root, "abd", &s.boot_id),
            Err(Unusable::Stale(why)) if why.contains("configuration changed")
        ));
        assert!(matches!(
            back.check(&root, "abc", "another-boot"),
            Err(Unusable::Stale(why)) if why.contains("another boot")
        ));
        assert!(matches!(
            back.check(&Root::at("/elsewhere"), "abc", &s.boot_id),
            Err(Unusable::Stale(_))
        ));
        std::fs::write(path(&root).unwrap(), "{\"format\": 9}").unwrap();
        assert!(matches!(InitState::load(&root), Err(Unusable::Foreign(_))));
    }
}
