//! What the watchers did, kept in a file (JSON, written atomically) so that a restarted daemon
//! resumes: an event seen before is not counted, announced or tainted again, a drain that was
//! running goes on, a hook completed stays completed, and the counters go on from their totals.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The default state file (the daemon's StateDirectory).
pub const DEFAULT_PATH: &str = "/var/lib/eks-node-agent/lifecycle.json";
/// Largest state file read.
const MAX_FILE: u64 = 1024 * 1024;
/// Most event records kept; the oldest ended ones go first.
const MAX_RECORDS: usize = 200;

/// Where a drain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Progress {
    /// Not asked for.
    #[default]
    NotNeeded,
    /// To do or running.
    Pending,
    /// Finished: every pod it had to remove is gone.
    Done,
    /// Finished at the deadline with pods left.
    Incomplete,
}

/// One event and what was done for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Record {
    /// [`super::EventKind::as_str`].
    pub kind: String,
    /// The event's identity.
    pub id: String,
    /// When it was first seen (RFC 3339).
    pub first_seen: String,
    /// The drain deadline fixed when it was first seen (seconds since the epoch).
    pub deadline_unix: Option<i64>,
    /// Our taint was put on the Node.
    pub tainted: bool,
    /// We cordoned the Node (it was schedulable before).
    pub cordoned: bool,
    /// We set the exclude-from-load-balancers label (it was not set before).
    pub labeled: bool,
    /// The drain.
    pub drain: Progress,
    /// The out-of-service taint was put on after the drain.
    pub out_of_service: bool,
    /// The lifecycle hook(s) were completed.
    pub hook_completed: bool,
    /// The event ended and what we did was undone.
    pub ended: bool,
}

/// Counters that survive restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Counts {
    /// Events seen, by kind.
    pub events: BTreeMap<String, u64>,
    /// Pods evicted.
    pub evicted: u64,
    /// Pods deleted after the cut-off.
    pub deleted: u64,
    /// Pods left at a deadline or that could not be removed.
    pub failed: u64,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct State {
    /// By `kind:id`.
    pub events: BTreeMap<String, Record>,
    /// Totals.
    pub counts: Counts,
}

impl State {
    /// Reads the file; missing means a fresh start, and an unreadable or corrupt file is logged
    /// and replaced (it is the daemon's own bookkeeping, not user input).
    pub fn load(path: &Path) -> State {
        use std::io::Read as _;
        let mut text = String::new();
        let read =
            std::fs::File::open(path).and_then(|f| f.take(MAX_FILE).read_to_string(&mut text));
        match read {
            Ok(_) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "lifecycle state file is corrupt; starting afresh");
                State::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the lifecycle state file; starting afresh");
                State::default()
            }
        }
    }

    /// Writes the file atomically (0600); a failure is logged (the next change retries).
    pub fn save(&mut self, path: &Path) {
        self.prune();
        let bytes = match serde_json::to_vec_pretty(self) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the lifecycle state");
                return;
            }
        };
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(path = %dir.display(), error = %e, "cannot create the lifecycle state directory");
            return;
        }
        if let Err(e) = crate::apply::file::write_atomic(path, &bytes, 0o600) {
            tracing::warn!(path = %path.display(), error = %crate::model::text::error_chain(&e), "cannot write the lifecycle state file");
        }
    }

    /// Drops the oldest ended records beyond [`MAX_RECORDS`].
    fn prune(&mut self) {
        while self.events.len() > MAX_RECORDS {
            let oldest = self
                .events
                .iter()
                .filter(|(_, r)| r.ended)
                .min_by(|a, b| a.1.first_seen.cmp(&b.1.first_seen))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.events.remove(&k);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_a_corrupt_file_starts_afresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/lifecycle.json");
        assert_eq!(State::load(&path), State::default());
        let mut s = State::default();
        s.counts.evicted = 3;
        s.events.insert(
            "spot-interruption:t".into(),
            Record {
                kind: "spot-interruption".into(),
                tainted: true,
                drain: Progress::Pending,
                ..Record::default()
            },
        );
        s.save(&path);
        assert_eq!(State::load(&path), s);
        std::fs::write(&path, "{not json").expect("write");
        assert_eq!(State::load(&path), State::default());
    }
}
