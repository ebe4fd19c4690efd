//! Bootstrap phase durations: `init` records how long each of its phases took in a small
//! JSON file (written by `apply::phases`), and `run` exports them as
//! `eksnode_bootstrap_phase_duration_seconds{phase}`. The file lives in /run, so it
//! describes this boot's `init` only.

use std::collections::BTreeMap;
use std::path::Path;

/// Where `init` records its phase durations.
pub const DEFAULT_PATH: &str = "/run/eks-node-agent/init-phases.json";

/// The file's content: seconds per phase name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseFile {
    /// Phase name (`sources`, `discover`, `render`, `config`, `run`) to seconds.
    pub phases: BTreeMap<String, f64>,
}

/// Reads the file; `None` when it is missing or not ours.
pub fn read(path: &Path) -> Option<PhaseFile> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}
