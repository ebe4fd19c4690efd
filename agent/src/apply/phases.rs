//! The phase durations file `init` keeps for `run` (format in [`crate::report::phases`]),
//! written with the one atomic write of [`super::file`].

use std::path::Path;
use std::time::Duration;

use super::file::write_atomic;
use crate::report::phases::{DEFAULT_PATH, read};

/// Adds (or replaces) one phase's duration in the file at `path`, atomically.
pub fn record(path: &Path, phase: &str, took: Duration) -> super::Result<()> {
    let mut file = read(path).unwrap_or_default();
    file.phases.insert(phase.to_string(), took.as_secs_f64());
    let text = serde_json::to_vec(&file).unwrap_or_default();
    write_atomic(path, &text, 0o644).map(|_| ())
}

/// `init`'s hook: records a phase in [`DEFAULT_PATH`]; a failure is logged, never fatal.
pub fn record_default(phase: &str, took: Duration) {
    if let Err(e) = record(Path::new(DEFAULT_PATH), phase, took) {
        tracing::warn!(phase, error = %crate::model::text::error_chain(&e), "phase duration not recorded");
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
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["init-phases.json"], "no temp file is left");
    }
}
