//! Bootstrap phase durations: `init` records how long each of its phases took in a small
//! JSON file (written atomically: temp file, then rename), and `run` exports them as
//! `eksnode_bootstrap_phase_duration_seconds{phase}`. The file lives in /run, so it
//! describes this boot's `init` only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `init` records its phase durations.
pub const DEFAULT_PATH: &str = "/run/eks-node-agent/init-phases.json";

/// The file's content: seconds per phase name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseFile {
    /// Phase name (`sources`, `discover`, `render`, `config`, `run`) to seconds.
    pub phases: BTreeMap<String, f64>,
}

/// Errors writing the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file or its directory could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the file; `None` when it is missing or not ours.
pub fn read(path: &Path) -> Option<PhaseFile> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Adds (or replaces) one phase's duration, atomically.
pub fn record(path: &Path, phase: &str, took: Duration) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = read(path).unwrap_or_default();
    file.phases.insert(phase.to_string(), took.as_secs_f64());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string(&file).map_err(|e| err(e.into()))?;
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// `init`'s hook: records a phase in [`DEFAULT_PATH`] when `enabled` (a real run on the
/// host, not a dry run or a `--root` run); a failure is logged, never fatal.
pub fn record_default(enabled: bool, phase: &str, took: Duration) {
    if !enabled {
        return;
    }
    if let Err(e) = record(Path::new(DEFAULT_PATH), phase, took) {
        tracing::warn!(phase, error = %super::error_chain(&e), "phase duration not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_accumulate_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/eks-node-agent/init-phases.json");
        assert_eq!(read(&path), None);
        record(&path, "discover", Duration::from_millis(1500)).unwrap();
        record(&path, "config", Duration::from_millis(20)).unwrap();
        record(&path, "discover", Duration::from_millis(250)).unwrap();
        let f = read(&path).unwrap();
        assert_eq!(f.phases.len(), 2);
        assert!((f.phases["discover"] - 0.25).abs() < 1e-9);
        assert!(
            !path.with_extension("json.tmp").exists(),
            "temp file renamed"
        );
    }
}
