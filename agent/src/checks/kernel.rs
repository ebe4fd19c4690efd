//! The kernel check: kernel log patterns from /dev/kmsg (rate-limited per reason) and the
//! fill level of kernel tables (pids, open files, conntrack).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Outcome;

/// A deadlock-like kernel problem keeps KernelReady False this long after its last sighting,
/// then the condition recovers by itself.
pub const PROBLEM_HOLD: Duration = Duration::from_secs(10 * 60);
/// At most one event per reason in this window; further matches are only counted.
pub const EVENT_RATE_WINDOW: Duration = Duration::from_secs(60);
/// A kernel table used above this fraction of its maximum is a problem.
pub const TABLE_FULL_RATIO: f64 = 0.9;
/// Stack of the kernel log thread: it reads one record into a reused buffer and matches
/// substrings (the default 2 MiB is address space it never needs).
const KMSG_THREAD_STACK: usize = 256 * 1024;
/// How often a regular file standing in for /dev/kmsg is polled for new lines.
const KMSG_POLL: Duration = Duration::from_millis(200);

/// What a kernel log line means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KmsgReason {
    /// The OOM killer killed a process (transient: an event).
    OomKilling,
    /// A task was blocked for too long (sets KernelReady False).
    TaskHung,
    /// A CPU soft lockup (sets KernelReady False).
    SoftLockup,
    /// A kernel BUG or oops (sets KernelReady False).
    KernelOops,
    /// A block device I/O error (transient: an event).
    IoError,
    /// The conntrack table dropped packets (transient: an event).
    ConntrackFull,
}

impl KmsgReason {
    /// The CamelCase reason used in conditions, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OomKilling => "OOMKilling",
            Self::TaskHung => "TaskHung",
            Self::SoftLockup => "SoftLockup",
            Self::KernelOops => "KernelOops",
            Self::IoError => "IOError",
            Self::ConntrackFull => "ConntrackFull",
        }
    }

    /// True for problems that set KernelReady False; the others only produce events.
    pub fn is_condition(self) -> bool {
        matches!(self, Self::TaskHung | Self::SoftLockup | Self::KernelOops)
    }
}

/// Classifies one kernel log message (the text after the `;` of a /dev/kmsg record).
pub fn classify(message: &str) -> Option<KmsgReason> {
    let m = message;
    if m.contains("Out of memory: Kill") || m.contains("out of memory: Killed process") {
        Some(KmsgReason::OomKilling)
    } else if m.starts_with("INFO: task ") && m.contains("blocked for more than") {
        Some(KmsgReason::TaskHung)
    } else if m.contains("BUG: soft lockup") {
        Some(KmsgReason::SoftLockup)
    } else if m.contains("BUG: unable to handle")
        || m.starts_with("Oops:")
        || m.contains("kernel BUG at")
    {
        Some(KmsgReason::KernelOops)
    } else if m.contains("Buffer I/O error") || m.contains("I/O error, dev") {
        Some(KmsgReason::IoError)
    } else if m.contains("nf_conntrack: table full") {
        Some(KmsgReason::ConntrackFull)
    } else {
        None
    }
}

/// Splits a /dev/kmsg record `prio,seq,usec,flags;message`; continuation lines (starting
/// with a space) and malformed records give `None`.
pub fn kmsg_message(record: &str) -> Option<&str> {
    if record.starts_with(' ') {
        return None;
    }
    let (_, message) = record.split_once(';')?;
    Some(message.trim_end())
}

/// Per reason: how often it was seen and when last.
#[derive(Debug, Default)]
pub struct KmsgState {
    seen: BTreeMap<KmsgReason, Seen>,
}

#[derive(Debug, Clone)]
struct Seen {
    count: u64,
    last: Instant,
    last_message: String,
    last_event: Option<Instant>,
}

/// An event the kernel log asks for, already rate-limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEvent {
    /// Why.
    pub reason: KmsgReason,
    /// The kernel message.
    pub message: String,
}

impl KmsgState {
    /// Records a classified message; returns an event unless one for the same reason went
    /// out within [`EVENT_RATE_WINDOW`].
    pub fn record(
        &mut self,
        reason: KmsgReason,
        message: &str,
        now: Instant,
    ) -> Option<KernelEvent> {
        let seen = self.seen.entry(reason).or_insert_with(|| Seen {
            count: 0,
            last: now,
            last_message: String::new(),
            last_event: None,
        });
        seen.count += 1;
        seen.last = now;
        let due = seen
            .last_event
            .is_none_or(|at| now.duration_since(at) >= EVENT_RATE_WINDOW);
        if due {
            seen.last_message = message.to_string();
            seen.last_event = Some(now);
            Some(KernelEvent {
                reason,
                message: message.to_string(),
            })
        } else {
            None
        }
    }

    /// Matches per reason so far.
    pub fn counts(&self) -> Vec<(KmsgReason, u64)> {
        self.seen.iter().map(|(r, s)| (*r, s.count)).collect()
    }

    /// The condition-worthy problem seen within [`PROBLEM_HOLD`], if any.
    pub fn active_problem(&self, now: Instant) -> Option<(KmsgReason, String)> {
        self.seen
            .iter()
            .filter(|(r, s)| r.is_condition() && now.duration_since(s.last) < PROBLEM_HOLD)
            .max_by_key(|(_, s)| s.last)
            .map(|(r, s)| (*r, s.last_message.clone()))
    }
}

/// Shared between the kmsg reader thread and the checks.
pub type SharedKmsg = Arc<Mutex<KmsgState>>;

/// Follows the kernel log from its current end in a thread, classifying each record and
/// sending the rate-limited events. /dev/kmsg returns one record per read and blocks when
/// there is none; a regular file (tests) is polled.
pub fn follow_kmsg(
    path: PathBuf,
    state: SharedKmsg,
    events: tokio::sync::mpsc::UnboundedSender<KernelEvent>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let mut file = std::fs::File::open(&path)?;
    file.seek(SeekFrom::End(0))?;
    std::thread::Builder::new()
        .name("kmsg".into())
        .stack_size(KMSG_THREAD_STACK)
        .spawn(move || {
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => std::thread::sleep(KMSG_POLL),
                    Ok(_) => {
                        let Some(message) = kmsg_message(&line) else {
                            continue;
                        };
                        let Some(reason) = classify(message) else {
                            continue;
                        };
                        let event = state
                            .lock()
                            .map(|mut s| s.record(reason, message, Instant::now()))
                            .ok()
                            .flatten();
                        if let Some(e) = event
                            && events.send(e).is_err()
                        {
                            return;
                        }
                    }
                    // EPIPE: records were overwritten before we read them; go on.
                    Err(e) if e.raw_os_error() == Some(32) => continue,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "kernel log read failed; kernel log patterns are no longer watched");
                        return;
                    }
                }
            }
        })
}

/// The fill levels of kernel tables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tables {
    /// Threads (scheduling entities) and `pid_max`.
    pub pids: Option<(u64, u64)>,
    /// Allocated file handles and `file-max`.
    pub files: Option<(u64, u64)>,
    /// Conntrack entries and `nf_conntrack_max`.
    pub conntrack: Option<(u64, u64)>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads the tables from procfs; missing files (no conntrack module) give `None`.
pub fn read_tables(proc: &Path) -> Tables {
    let pids = std::fs::read_to_string(proc.join("loadavg"))
        .ok()
        .and_then(|t| crate::model::procfs::parse_loadavg(&t))
        .map(|(_, threads)| threads)
        .zip(read_u64(&proc.join("sys/kernel/pid_max")));
    // file-nr: allocated, unused (always 0 since 2.6), max.
    let files = std::fs::read_to_string(proc.join("sys/fs/file-nr"))
        .ok()
        .and_then(|t| {
            let v: Vec<u64> = t
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            Some((*v.first()?, *v.get(2)?))
        });
    let conntrack = read_u64(&proc.join("sys/net/netfilter/nf_conntrack_count"))
        .zip(read_u64(&proc.join("sys/net/netfilter/nf_conntrack_max")));
    Tables {
        pids,
        files,
        conntrack,
    }
}

/// The kernel verdict: a recent deadlock-like log problem first, then tables near full.
pub fn evaluate(tables: &Tables, log_problem: Option<(KmsgReason, String)>) -> Outcome {
    if let Some((reason, message)) = log_problem {
        return Outcome::fail(reason.as_str(), format!("kernel reported: {message}"));
    }
    let full = |used_max: Option<(u64, u64)>| {
        used_max.filter(|(used, max)| *max > 0 && *used as f64 >= *max as f64 * TABLE_FULL_RATIO)
    };
    if let Some((used, max)) = full(tables.pids) {
        return Outcome::fail("PIDExhaustion", format!("{used} of pid_max {max} in use"));
    }
    if let Some((used, max)) = full(tables.files) {
        return Outcome::fail(
            "FileHandleExhaustion",
            format!("{used} of file-max {max} file handles allocated"),
        );
    }
    if let Some((used, max)) = full(tables.conntrack) {
        return Outcome::fail(
            "ConntrackNearFull",
            format!("{used} of nf_conntrack_max {max} entries in use"),
        );
    }
    Outcome::ok("kernel has no problem")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_known_patterns() {
        let cases = [
            (
                "Out of memory: Killed process 1234 (java) total-vm:1kB",
                KmsgReason::OomKilling,
            ),
            (
                "Memory cgroup out of memory: Killed process 99 (x)",
                KmsgReason::OomKilling,
            ),
            (
                "INFO: task jbd2/vda1-8:312 blocked for more than 120 seconds.",
                KmsgReason::TaskHung,
            ),
            (
                "watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [x:1]",
                KmsgReason::SoftLockup,
            ),
            (
                "BUG: unable to handle page fault for address: 0000",
                KmsgReason::KernelOops,
            ),
            ("Oops: 0002 [#1] SMP NOPTI", KmsgReason::KernelOops),
            (
                "blk_update_request: I/O error, dev nvme1n1, sector 2048",
                KmsgReason::IoError,
            ),
            (
                "Buffer I/O error on dev nvme1n1, logical block 0",
                KmsgReason::IoError,
            ),
            (
                "nf_conntrack: nf_conntrack: table full, dropping packet",
                KmsgReason::ConntrackFull,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(classify(line), Some(want), "{line}");
        }
        assert_eq!(classify("eth0: link up"), None);
    }

    #[test]
    fn kmsg_records_split_and_continuations_skipped() {
        assert_eq!(
            kmsg_message("6,339,5140900,-;hello world\n"),
            Some("hello world")
        );
        assert_eq!(kmsg_message(" SUBSYSTEM=pci"), None);
        assert_eq!(kmsg_message("garbage"), None);
    }

    #[test]
    fn events_are_rate_limited_per_reason_and_problems_expire() {
        let mut s = KmsgState::default();
        let t0 = Instant::now();
        assert!(s.record(KmsgReason::OomKilling, "a", t0).is_some());
        for i in 0..1000 {
            assert!(
                s.record(KmsgReason::OomKilling, "a", t0 + Duration::from_millis(i))
                    .is_none()
            );
        }
        assert!(
            s.record(KmsgReason::TaskHung, "t", t0).is_some(),
            "other reasons are independent"
        );
        assert!(
            s.record(KmsgReason::OomKilling, "a", t0 + EVENT_RATE_WINDOW)
                .is_some()
        );
        assert_eq!(s.counts()[0], (KmsgReason::OomKilling, 1002));
        assert_eq!(
            s.active_problem(t0).map(|p| p.0),
            Some(KmsgReason::TaskHung)
        );
        assert_eq!(
            s.active_problem(t0 + PROBLEM_HOLD),
            None,
            "recovers after the hold"
        );
    }

    #[test]
    fn tables_near_full_are_problems() {
        let healthy = Tables {
            pids: Some((100, 4_194_304)),
            files: Some((1000, 100_000)),
            conntrack: None,
        };
        assert!(evaluate(&healthy, None).is_healthy());
        let pids = Tables {
            pids: Some((950, 1000)),
            ..healthy
        };
        assert_eq!(evaluate(&pids, None).reason, "PIDExhaustion");
        let ct = Tables {
            conntrack: Some((91, 100)),
            ..healthy
        };
        assert_eq!(evaluate(&ct, None).reason, "ConntrackNearFull");
        let log = evaluate(&healthy, Some((KmsgReason::SoftLockup, "x".into())));
        assert_eq!(log.reason, "SoftLockup");
    }
}
