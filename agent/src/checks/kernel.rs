//! The kernel log (/dev/kmsg) and the kernel's tables (pids, open files, conntrack, zombie
//! processes).
//!
//! One follower thread reads the kernel log, classifies each record into a reason of the
//! catalog ([`classify`]) and keeps, per reason, when it was last seen. A sighting stays an
//! active problem for [`PROBLEM_HOLD`]; a hardware fault (a Fatal NVIDIA XID, a Neuron
//! uncorrectable error) stays active for the rest of the boot: only a reset or a new instance
//! clears it. The checks read the active problems of their condition ([`KmsgState::active`]):
//! the kernel check KernelReady's, the storage check StorageReady's, the accelerator check
//! AcceleratedHardwareReady's.
//!
//! At start the follower reads the kernel's ring buffer from its beginning (a restart must not
//! forget a GPU that fell off the bus an hour ago): those records only restore the state,
//! hardware faults whatever their age and other problems seen within the hold; they send no
//! event. Records that arrive afterwards send one rate-limited event per reason.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Outcome, Problem, reasons};
use crate::model::ConditionType;

/// A kernel log problem stays active this long after its last sighting (`[kernel]
/// problem_hold_secs` in daemon.toml sets another).
pub const PROBLEM_HOLD: Duration = Duration::from_secs(10 * 60);
/// At most one event per reason in this window; further matches are only counted.
pub const EVENT_RATE_WINDOW: Duration = Duration::from_secs(60);
/// Threads or open files at this fraction of their limit are `Approaching...` (the monitoring
/// agent's threshold).
pub const TABLE_APPROACHING_RATIO: f64 = 0.7;
/// Conntrack entries at this fraction of `nf_conntrack_max` are `ConntrackNearFull`.
pub const CONNTRACK_NEAR_FULL_RATIO: f64 = 0.9;
/// This many zombie processes or more are `ExcessiveZombieProcesses` (the monitoring agent's
/// threshold).
pub const ZOMBIE_THRESHOLD: usize = 20;
/// The most /proc entries read when counting zombies.
const MAX_PROC_ENTRIES: usize = 1 << 20;
/// The longest kernel log record looked at (the kernel's own limit is 1 KiB of text plus
/// its dictionary).
const MAX_RECORD: usize = 8 * 1024;
/// Stack of the kernel log thread: it reads one record into a reused buffer and matches
/// substrings (the default 2 MiB is address space it never needs).
const KMSG_THREAD_STACK: usize = 256 * 1024;
/// How often a regular file standing in for /dev/kmsg is polled for new lines.
const KMSG_POLL: Duration = Duration::from_millis(200);

/// What a kernel log line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The reason, from the catalog.
    pub reason: String,
    /// A hardware fault: active for the rest of the boot.
    pub hardware: bool,
}

fn plain(reason: &str) -> Option<Match> {
    Some(Match {
        reason: reason.to_string(),
        hardware: false,
    })
}

fn hardware(reason: &str) -> Option<Match> {
    Some(Match {
        reason: reason.to_string(),
        hardware: true,
    })
}

/// The XID number of an NVIDIA driver line `NVRM: Xid (PCI:0000:10:1c): 79, pid=...`.
pub fn parse_xid(message: &str) -> Option<u32> {
    let rest = &message[message.find("NVRM: Xid (")? + "NVRM: Xid (".len()..];
    let rest = rest[rest.find("): ")? + 3..].trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Classifies one kernel log message (the text after the `;` of a /dev/kmsg record).
pub fn classify(message: &str) -> Option<Match> {
    let m = message;
    if let Some(xid) = parse_xid(m) {
        let reason = reasons::xid_reason(xid);
        let fatal = reasons::FATAL_XIDS.contains(&xid);
        return Some(Match {
            reason,
            hardware: fatal,
        });
    }
    if let Some(kind) = m.split("NEURON_HW_ERR=").nth(1) {
        let kind = kind.split_whitespace().next().unwrap_or("");
        return match kind {
            "SRAM_UNCORRECTABLE_ERROR" => hardware("NeuronSRAMUncorrectableError"),
            "NC_UNCORRECTABLE_ERROR" => hardware("NeuronNCUncorrectableError"),
            "HBM_UNCORRECTABLE_ERROR" => hardware("NeuronHBMUncorrectableError"),
            "DMA_ERROR" => hardware("NeuronDMAError"),
            _ => None,
        };
    }
    if m.contains("Out of memory: Kill") || m.contains("out of memory: Killed process") {
        plain("OOMKilling")
    } else if m.contains("BUG: soft lockup") {
        plain("SoftLockup")
    } else if m.starts_with("INFO: task ") && m.contains("blocked for more than") {
        plain("AppBlocked")
    } else if m.starts_with("BUG: ")
        || m.contains("BUG: unable to handle")
        || m.starts_with("Oops:")
        || m.contains("kernel BUG at")
    {
        plain("KernelBug")
    } else if m.contains(" segfault at ") || m.starts_with("traps: ") {
        plain("AppCrash")
    } else if m.contains("nf_conntrack: table full, dropping packet")
        || m.contains("ip_conntrack: table full, dropping packet")
    {
        plain("ConntrackExceededKernel")
    } else if (m.starts_with("XFS (")
        && (m.contains("Filesystem has been shut down") || m.contains("Shutting down filesystem")))
        || (m.starts_with("EXT4-fs (") && m.contains("Remounting filesystem read-only"))
    {
        plain("FilesystemShutdown")
    } else if m.starts_with("EXT4-fs error") {
        plain("Ext4Error")
    } else if m.starts_with("XFS (") && (m.contains("error") || m.contains("Corruption")) {
        plain("XFSError")
    } else if m.contains("Buffer I/O error") || m.contains("I/O error, dev") {
        plain("BlockDeviceIOError")
    } else {
        None
    }
}

/// Splits a /dev/kmsg record `prio,seq,usec,flags;message` into its timestamp (microseconds
/// since boot) and message; continuation lines (starting with a space) and malformed records
/// give `None`.
pub fn kmsg_record(record: &str) -> Option<(u64, &str)> {
    if record.starts_with(' ') {
        return None;
    }
    let (head, message) = record.split_once(';')?;
    let usec = head.split(',').nth(2)?.parse().ok()?;
    Some((usec, message.trim_end()))
}

/// The message of a /dev/kmsg record (see [`kmsg_record`]).
pub fn kmsg_message(record: &str) -> Option<&str> {
    kmsg_record(record).map(|(_, message)| message)
}

/// Per reason: how often it was seen and when last.
#[derive(Debug, Default)]
pub struct KmsgState {
    seen: BTreeMap<String, Seen>,
    /// How long a sighting stays active ([`PROBLEM_HOLD`] unless configured).
    hold: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Seen {
    count: u64,
    last: Instant,
    hardware: bool,
    last_message: String,
    last_event: Option<Instant>,
}

/// An event the kernel log asks for, already rate-limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEvent {
    /// Why.
    pub reason: String,
    /// The kernel message.
    pub message: String,
}

impl KmsgState {
    /// Records a classified message seen at `at`; returns an event (when `live`) unless one
    /// for the same reason went out within [`EVENT_RATE_WINDOW`] of `now`.
    pub fn record(
        &mut self,
        m: &Match,
        message: &str,
        at: Instant,
        live: bool,
    ) -> Option<KernelEvent> {
        let seen = self.seen.entry(m.reason.clone()).or_insert_with(|| Seen {
            count: 0,
            last: at,
            hardware: m.hardware,
            last_message: String::new(),
            last_event: None,
        });
        seen.count += 1;
        seen.last = seen.last.max(at);
        seen.last_message = message.to_string();
        if !live {
            return None;
        }
        let due = seen
            .last_event
            .is_none_or(|prev| at.duration_since(prev) >= EVENT_RATE_WINDOW);
        due.then(|| {
            seen.last_event = Some(at);
            KernelEvent {
                reason: m.reason.clone(),
                message: message.to_string(),
            }
        })
    }

    /// Sets how long a (non-hardware) sighting stays an active problem.
    pub fn set_hold(&mut self, hold: Duration) {
        self.hold = Some(hold);
    }

    /// How long a (non-hardware) sighting stays an active problem.
    pub fn hold(&self) -> Duration {
        self.hold.unwrap_or(PROBLEM_HOLD)
    }

    /// Matches per reason so far.
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.seen
            .iter()
            .map(|(r, s)| (r.clone(), s.count))
            .collect()
    }

    /// The problems of `condition` active at `now`, most recent first: hardware faults seen
    /// this boot, others seen within the hold ([`KmsgState::hold`]).
    pub fn active(&self, now: Instant, condition: ConditionType) -> Vec<Problem> {
        let hold = self.hold();
        let mut out: Vec<(&Seen, Problem)> = self
            .seen
            .iter()
            .filter(|(r, s)| {
                reasons::lookup(r).and_then(|e| e.condition) == Some(condition)
                    && (s.hardware || now.saturating_duration_since(s.last) < hold)
            })
            .map(|(r, s)| {
                (
                    s,
                    Problem {
                        reason: r.clone(),
                        message: format!("kernel reported: {}", s.last_message),
                        evented: true,
                    },
                )
            })
            .collect();
        out.sort_by_key(|(s, _)| std::cmp::Reverse(s.last));
        out.into_iter().map(|(_, p)| p).collect()
    }
}

/// Shared between the kmsg reader thread and the checks.
pub type SharedKmsg = Arc<Mutex<KmsgState>>;

/// Seconds since boot from `<proc>/uptime`.
pub fn uptime(proc: &Path) -> Option<f64> {
    std::fs::read_to_string(proc.join("uptime"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn process_line(
    line: &str,
    state: &SharedKmsg,
    live: bool,
    uptime_usec: Option<u64>,
) -> Option<KernelEvent> {
    let (usec, message) = kmsg_record(line)?;
    let m = classify(message)?;
    let now = Instant::now();
    let hold = state.lock().map(|s| s.hold()).unwrap_or(PROBLEM_HOLD);
    let at = if live {
        now
    } else {
        // A record from before the start: its age from the kernel's timestamp; without an
        // uptime it counts as old.
        let age = uptime_usec
            .and_then(|up| up.checked_sub(usec))
            .map_or(Duration::MAX, Duration::from_micros);
        if !m.hardware && age >= hold {
            return None;
        }
        now.checked_sub(age).unwrap_or(now)
    };
    state
        .lock()
        .ok()
        .and_then(|mut s| s.record(&m, message, at, live))
}

/// Follows the kernel log in a thread: first the records already in the ring buffer (state
/// only), then new ones, classifying each record and sending the rate-limited events.
/// /dev/kmsg returns one record per read; it is read non-blocking until the ring buffer is
/// drained, then blocking. A regular file (tests) is read to its end, then polled.
pub fn follow_kmsg(
    path: PathBuf,
    proc: PathBuf,
    state: SharedKmsg,
    events: tokio::sync::mpsc::UnboundedSender<KernelEvent>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)?;
    let is_device = file.metadata()?.file_type().is_char_device();
    std::thread::Builder::new()
        .name("kmsg".into())
        .stack_size(KMSG_THREAD_STACK)
        .spawn(move || {
            let uptime_usec = uptime(&proc).map(|s| (s * 1e6) as u64);
            let mut reader = BufReader::with_capacity(MAX_RECORD, file);
            let mut line = String::new();
            let mut live = false;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) => {
                        live = true;
                        std::thread::sleep(KMSG_POLL);
                    }
                    Ok(_) => {
                        if line.len() > MAX_RECORD {
                            continue;
                        }
                        if let Some(e) = process_line(&line, &state, live, uptime_usec)
                            && events.send(e).is_err()
                        {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // The ring buffer is drained: from now on, wait for records.
                        live = true;
                        if is_device && let Err(e) = set_blocking(reader.get_ref()) {
                            tracing::warn!(path = %path.display(), error = %e, "kernel log cannot block; polling it");
                            std::thread::sleep(KMSG_POLL);
                        }
                    }
                    // EPIPE: records were overwritten before we read them; go on.
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "kernel log read failed; kernel log patterns are no longer watched");
                        return;
                    }
                }
            }
        })
}

fn set_blocking(file: &std::fs::File) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map(|_| ())
}

/// The fill levels of kernel tables.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tables {
    /// Threads (scheduling entities) and the effective limit, min(`pid_max`, `threads-max`).
    pub pids: Option<(u64, u64)>,
    /// Allocated file handles and `file-max`.
    pub files: Option<(u64, u64)>,
    /// Conntrack entries and `nf_conntrack_max`.
    pub conntrack: Option<(u64, u64)>,
    /// Zombie processes.
    pub zombies: Option<usize>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The state letter of a /proc/<pid>/stat line (after the command's closing parenthesis).
pub fn stat_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Counts processes in state `Z` under `proc`.
pub fn count_zombies(proc: &Path) -> Option<usize> {
    let entries = std::fs::read_dir(proc).ok()?;
    Some(
        entries
            .flatten()
            .take(MAX_PROC_ENTRIES)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter(|e| {
                std::fs::read_to_string(e.path().join("stat"))
                    .ok()
                    .and_then(|s| stat_state(&s))
                    == Some('Z')
            })
            .count(),
    )
}

/// Reads the tables from procfs; missing files (no conntrack module) give `None`.
pub fn read_tables(proc: &Path) -> Tables {
    let limit = match (
        read_u64(&proc.join("sys/kernel/pid_max")),
        read_u64(&proc.join("sys/kernel/threads-max")),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let pids = std::fs::read_to_string(proc.join("loadavg"))
        .ok()
        .and_then(|t| crate::model::procfs::parse_loadavg(&t))
        .map(|(_, threads)| threads)
        .zip(limit);
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
        zombies: count_zombies(proc),
    }
}

fn at_least(used_max: Option<(u64, u64)>, ratio: f64) -> Option<(u64, u64)> {
    used_max.filter(|(used, max)| *max > 0 && *used as f64 >= *max as f64 * ratio)
}

/// The verdict over the kernel's tables.
pub fn evaluate_tables(tables: &Tables) -> Outcome {
    let mut found = Vec::new();
    if let Some((used, max)) = at_least(tables.pids, 1.0) {
        found.push(Outcome::fail(
            "ForkFailedOutOfPIDs",
            format!("{used} threads of a limit of {max} (min of kernel.pid_max and kernel.threads-max): fork fails"),
        ));
    } else if let Some((used, max)) = at_least(tables.pids, TABLE_APPROACHING_RATIO) {
        found.push(Outcome::fail(
            "ApproachingKernelPidMax",
            format!(
                "{used} threads of a limit of {max} (min of kernel.pid_max and kernel.threads-max)"
            ),
        ));
    }
    if let Some((used, max)) = at_least(tables.files, TABLE_APPROACHING_RATIO) {
        found.push(Outcome::fail(
            "ApproachingMaxOpenFiles",
            format!("{used} of fs.file-max {max} file handles allocated"),
        ));
    }
    if let Some((used, max)) = at_least(tables.conntrack, CONNTRACK_NEAR_FULL_RATIO) {
        found.push(Outcome::fail(
            "ConntrackNearFull",
            format!("{used} of nf_conntrack_max {max} entries in use"),
        ));
    }
    if let Some(n) = tables.zombies.filter(|n| *n >= ZOMBIE_THRESHOLD) {
        found.push(Outcome::fail(
            "ExcessiveZombieProcesses",
            format!("{n} zombie processes (parents not reaping them)"),
        ));
    }
    if found.is_empty() {
        return Outcome::ok("kernel has no problem");
    }
    Outcome::combine(found)
}

/// The kernel verdict: the tables, then the kernel log's active problems of KernelReady.
pub fn evaluate(tables: &Tables, log: Vec<Problem>) -> Outcome {
    with_log(evaluate_tables(tables), log)
}

/// Adds kernel log problems to an outcome: the most recent becomes the headline when the
/// outcome was healthy.
pub fn with_log(mut out: Outcome, log: Vec<Problem>) -> Outcome {
    let mut log = log.into_iter();
    if out.status == super::Status::Ok
        && let Some(first) = log.next()
    {
        let facts = std::mem::take(&mut out.facts);
        out = Outcome::fail(&first.reason, first.message).with_facts(facts);
        out.evented = first.evented;
    }
    out.more.extend(log);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &str) -> Option<String> {
        classify(line).map(|m| m.reason)
    }

    #[test]
    fn classifies_known_patterns() {
        let cases = [
            (
                "Out of memory: Killed process 1234 (java) total-vm:1kB",
                "OOMKilling",
            ),
            (
                "Memory cgroup out of memory: Killed process 99 (x)",
                "OOMKilling",
            ),
            (
                "INFO: task jbd2/vda1-8:312 blocked for more than 120 seconds.",
                "AppBlocked",
            ),
            (
                "watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [x:1]",
                "SoftLockup",
            ),
            (
                "BUG: unable to handle page fault for address: 0000",
                "KernelBug",
            ),
            ("Oops: 0002 [#1] SMP NOPTI", "KernelBug"),
            ("BUG: scheduling while atomic: x/0/0x00000002", "KernelBug"),
            (
                "blk_update_request: I/O error, dev nvme1n1, sector 2048",
                "BlockDeviceIOError",
            ),
            (
                "Buffer I/O error on dev nvme1n1, logical block 0",
                "BlockDeviceIOError",
            ),
            (
                "nf_conntrack: nf_conntrack: table full, dropping packet",
                "ConntrackExceededKernel",
            ),
            (
                "python3[4242]: segfault at 0 ip 00007f sp 00007ff error 4",
                "AppCrash",
            ),
            (
                "traps: node[77] general protection fault ip:1 sp:2 error:0",
                "AppCrash",
            ),
            (
                "EXT4-fs error (device nvme1n1): ext4_find_entry:1455: inode #2: comm ls",
                "Ext4Error",
            ),
            (
                "EXT4-fs (nvme1n1): Remounting filesystem read-only",
                "FilesystemShutdown",
            ),
            (
                "XFS (nvme2n1): Corruption detected. Unmount and run xfs_repair",
                "XFSError",
            ),
            (
                "XFS (nvme2n1): metadata I/O error in \"xfs_trans_read_buf\" at daddr 0x2",
                "XFSError",
            ),
            (
                "XFS (nvme2n1): Filesystem has been shut down due to log error (0x2).",
                "FilesystemShutdown",
            ),
            (
                "NVRM: Xid (PCI:0000:10:1c): 79, pid=1234, GPU has fallen off the bus.",
                "NvidiaXID79Error",
            ),
            (
                "NVRM: Xid (PCI:0000:10:1c): 13, pid=99, name=python, Graphics Exception",
                "NvidiaXID13Warning",
            ),
            (
                "neuron: nd0 NEURON_HW_ERR=HBM_UNCORRECTABLE_ERROR instance=x",
                "NeuronHBMUncorrectableError",
            ),
            (
                "neuron: nd3 NEURON_HW_ERR=DMA_ERROR queue=2",
                "NeuronDMAError",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(reason(line).as_deref(), Some(want), "{line}");
            assert!(reasons::lookup(want).is_some(), "{want} is in the catalog");
        }
        assert_eq!(reason("eth0: link up"), None);
        assert_eq!(reason("neuron: NEURON_HW_ERR=SOMETHING_NEW"), None);
        assert!(
            classify("NVRM: Xid (PCI:0000:10:1c): 48, DBE")
                .unwrap()
                .hardware
        );
        assert!(
            !classify("NVRM: Xid (PCI:0000:10:1c): 31, MMU")
                .unwrap()
                .hardware
        );
    }

    #[test]
    fn kmsg_records_split_and_continuations_skipped() {
        assert_eq!(
            kmsg_record("6,339,5140900,-;hello world\n"),
            Some((5_140_900, "hello world"))
        );
        assert_eq!(kmsg_record(" SUBSYSTEM=pci"), None);
        assert_eq!(kmsg_message("6,1,2,-;x"), Some("x"));
        assert_eq!(kmsg_record("garbage"), None);
    }

    fn m(reason: &str, hardware: bool) -> Match {
        Match {
            reason: reason.into(),
            hardware,
        }
    }

    #[test]
    fn events_are_rate_limited_per_reason_and_problems_expire() {
        let mut s = KmsgState::default();
        let t0 = Instant::now();
        let oom = m("OOMKilling", false);
        assert!(s.record(&oom, "a", t0, true).is_some());
        for i in 0..1000 {
            assert!(
                s.record(&oom, "a", t0 + Duration::from_millis(i), true)
                    .is_none()
            );
        }
        assert!(
            s.record(&m("AppBlocked", false), "t", t0, true).is_some(),
            "other reasons are independent"
        );
        assert!(s.record(&oom, "a", t0 + EVENT_RATE_WINDOW, true).is_some());
        assert!(
            s.record(&m("NvidiaXID79Error", true), "x", t0, false)
                .is_none(),
            "replayed: no event"
        );
        assert!(s.counts().contains(&("OOMKilling".to_string(), 1002)));
        let kernel = s.active(t0 + EVENT_RATE_WINDOW, ConditionType::KernelReady);
        assert_eq!(kernel.len(), 2);
        assert_eq!(kernel[0].reason, "OOMKilling", "most recent first");
        let later = t0 + EVENT_RATE_WINDOW + PROBLEM_HOLD;
        assert!(
            s.active(later, ConditionType::KernelReady).is_empty(),
            "recovers after the hold"
        );
        let accel = s.active(
            later + PROBLEM_HOLD,
            ConditionType::AcceleratedHardwareReady,
        );
        assert_eq!(accel.len(), 1, "a hardware fault stays for the boot");
    }

    #[test]
    fn tables_verdicts() {
        let healthy = Tables {
            pids: Some((100, 4_194_304)),
            files: Some((1000, 100_000)),
            conntrack: None,
            zombies: Some(0),
        };
        assert!(evaluate(&healthy, Vec::new()).problems().is_empty());
        let full = Tables {
            pids: Some((1000, 1000)),
            zombies: Some(25),
            ..healthy
        };
        let out = evaluate(&full, Vec::new());
        let reasons: Vec<String> = out.problems().into_iter().map(|p| p.reason).collect();
        assert_eq!(reasons, ["ForkFailedOutOfPIDs", "ExcessiveZombieProcesses"]);
        let near = Tables {
            pids: Some((700, 1000)),
            files: Some((70, 100)),
            conntrack: Some((91, 100)),
            ..healthy
        };
        let reasons: Vec<String> = evaluate(&near, Vec::new())
            .problems()
            .into_iter()
            .map(|p| p.reason)
            .collect();
        assert_eq!(
            reasons,
            [
                "ApproachingKernelPidMax",
                "ApproachingMaxOpenFiles",
                "ConntrackNearFull"
            ]
        );
        let log = vec![Problem {
            reason: "SoftLockup".into(),
            message: "x".into(),
            evented: true,
        }];
        assert_eq!(evaluate(&healthy, log).reason, "SoftLockup");
    }

    #[test]
    fn zombies_and_limits_from_a_proc_tree() {
        let proc = tempfile::tempdir().unwrap();
        for (pid, state) in [(1, 'S'), (20, 'Z'), (21, 'Z'), (22, 'R')] {
            let dir = proc.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("stat"), format!("{pid} (a (b) c) {state} 1 2 3\n")).unwrap();
        }
        std::fs::create_dir_all(proc.path().join("sys/kernel")).unwrap();
        std::fs::write(proc.path().join("sys/kernel/pid_max"), "4194304\n").unwrap();
        std::fs::write(proc.path().join("sys/kernel/threads-max"), "1000\n").unwrap();
        std::fs::write(proc.path().join("loadavg"), "0 0 0 1/700 9\n").unwrap();
        let t = read_tables(proc.path());
        assert_eq!(t.zombies, Some(2));
        assert_eq!(t.pids, Some((700, 1000)), "threads-max is the lower limit");
        assert_eq!(stat_state("5 (x) y) Z 1"), Some('Z'));
    }
}
