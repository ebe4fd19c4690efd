//! A REAL systemd-journald (Debian's `systemd` package) for the tests, in a private mount
//! namespace (`unshare -m`): tmpfs on /run/log and /run/systemd, the test's own journald.conf
//! bound over /etc/systemd/journald.conf, so the host's journal and configuration are never
//! touched. The test's script runs inside the namespace once journald listens: it writes
//! lines with `systemd-cat` and runs the agent, whose journalctl then reads this journal.
//! Needs root (mount namespaces).
//!
//! The kernel's ring is never read or written: a FIFO is bound over /dev/kmsg in the
//! namespace, which journald reads as it reads the kernel's (one `PRIO,SEQ,USEC,FLAGS;TEXT`
//! record per read), so a test plants kernel lines with [`kmsg`] without touching the host.

use std::path::Path;
use std::process::{Command, Output};

/// The configuration of the test journald: volatile (in the tmpfs), no rate limit.
pub const BASE_CONF: &str =
    "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\nRateLimitBurst=0\nRuntimeKeepFree=0\n";

/// Why the journald tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !nix_is_root() {
        return Some("not root: a private mount namespace needs root".into());
    }
    for tool in ["unshare", "systemd-cat", "journalctl"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!("{tool} is not installed"));
        }
    }
    if !Path::new(JOURNALD).exists() {
        return Some(format!("{JOURNALD} is not installed"));
    }
    None
}

const JOURNALD: &str = "/lib/systemd/systemd-journald";

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// A script line that puts one kernel record (syslog priority `prio`, sequence number `seq`
/// counted from 0) into the test journald as if the kernel had logged `text`: journald reads
/// it from the FIFO on /dev/kmsg, and `journalctl --dmesg` shows it.
pub fn kmsg(prio: u8, seq: u64, text: &str) -> String {
    let record = format!("{prio},{seq},{},-;{text}\n", (seq + 1) * 1000);
    format!(
        "printf '%s' '{}' >&9; sleep 0.1\n",
        record.replace('\'', "'\\''")
    )
}

/// Runs `script` (sh) in a private mount namespace with its own journald configured by
/// `conf`; `tmp` holds the configuration file. `envs` are set for the script.
pub fn run(tmp: &Path, conf: &str, script: &str, envs: &[(&str, String)]) -> Output {
    let conf_path = tmp.join("journald.conf");
    std::fs::write(&conf_path, conf).expect("write the test journald.conf");
    let full = format!(
        "set -e\n\
         mount -t tmpfs -o size=4G tmpfs /run/log 2>/dev/null || {{ mkdir -p /run/log; mount -t tmpfs -o size=4G tmpfs /run/log; }}\n\
         mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/journal\n\
         mount --bind {conf} /etc/systemd/journald.conf\n\
         mkfifo {kmsg} && mount --bind {kmsg} /dev/kmsg && exec 9<>/dev/kmsg\n\
         {JOURNALD} 9>&- & JPID=$!\n\
         trap 'kill $JPID 2>/dev/null || true' EXIT\n\
         for i in $(seq 100); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.1; done\n\
         {script}\n",
        conf = conf_path.display(),
        kmsg = tmp.join("kmsg.fifo").display(),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &full]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("unshare (util-linux) runs")
}
