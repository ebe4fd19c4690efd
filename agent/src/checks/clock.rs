//! The kernel clock, as `adjtimex(2)` reports its discipline ([`timex::read`], which
//! node_exporter's timex series read too): synchronised, and by how much it may be off.
//! `status` judges it once with its evidence and fix ([`check`]); `run` keeps judging it
//! ([`evaluate`]), as a warning and `node_timex_sync_status` rather than a condition.

use std::path::PathBuf;

use super::Outcome;
use super::status::{fail, ok, warn};
use crate::report::host::timex::{self, RawTimex, Timex};

/// Clock maximum error above which a synchronised clock is still a warning, in seconds.
pub const CLOCK_MAXERROR_WARN_SECS: f64 = 1.0;

/// Where `status` reads the clock state from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockSource {
    /// The kernel, through `adjtimex(2)` read-only ([`timex::read`]).
    Kernel,
    /// A JSON file with the raw `struct timex` fields ([`RawTimex`]; tests, offline diagnosis).
    File(PathBuf),
}

/// The clock state from `source`.
pub fn read(source: &ClockSource) -> Result<Timex, String> {
    match source {
        ClockSource::Kernel => timex::read().map_err(|e| format!("adjtimex: {e}")),
        ClockSource::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str::<RawTimex>(&text)
                .map(Timex::from)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

/// The `clock` check.
pub fn check(state: &Result<Timex, String>) -> Outcome {
    const FIX: &str = "run an NTP client: `timedatectl set-ntp true` (systemd-timesyncd) or enable chronyd; on EC2 point it at the Amazon Time Sync Service (169.254.169.123). Tokens and TLS fail with a wrong clock";
    match state {
        Err(e) => warn(
            "ClockUnreadable",
            format!("cannot read the clock state: {e}"),
            FIX,
        ),
        Ok(t) => {
            let evidence = format!(
                "offset {:.3} ms, maxerror {:.3} ms, estimated error {:.3} ms, status 0x{:04x}",
                t.offset_seconds * 1e3,
                t.maxerror_seconds * 1e3,
                t.estimated_error_seconds * 1e3,
                t.status
            );
            if !t.synchronized() {
                fail(
                    "ClockUnsynchronized",
                    format!("not synchronized: {evidence}"),
                    FIX,
                )
            } else if t.maxerror_seconds > CLOCK_MAXERROR_WARN_SECS {
                warn(
                    "ClockMaxErrorHigh",
                    format!(
                        "synchronized, but the maximum error exceeds {CLOCK_MAXERROR_WARN_SECS} s: {evidence}"
                    ),
                    "check that the NTP client reaches its servers (`chronyc sources` or `timedatectl timesync-status`)",
                )
            } else {
                ok(format!("synchronized: {evidence}"))
            }
        }
    }
}

/// The daemon's clock check over the kernel's clock discipline (from [`timex::read`]). Its
/// problems are Warnings in the catalog: a clock still settling after boot, or one a container
/// cannot see disciplined, must not mark the node unhealthy.
pub fn evaluate(timex: &std::io::Result<Timex>) -> Outcome {
    match timex {
        Ok(t) if t.synchronized() => Outcome::ok(format!(
            "clock synchronised, offset {:.6}s, estimated error {:.6}s",
            t.offset_seconds, t.estimated_error_seconds
        )),
        Ok(t) => Outcome::fail(
            "ClockUnsynchronized",
            format!(
                "the kernel reports the clock unsynchronised (maximum error {:.3}s): check chronyd or the NTP source; TLS and AWS request signing fail past a few minutes of skew",
                t.maxerror_seconds
            ),
        ),
        Err(e) => Outcome::fail("ClockUnreadable", format!("adjtimex(2): {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn clock_states() {
        let synced = Timex::from_raw(0, 150, 0, 12_000, 400, 0x2001, 7, 10_000, 0, 37);
        assert_eq!(check(&Ok(synced)).status, Status::Ok);
        let unsynced = Timex::from_raw(5, 0, 0, 16_000_000, 0, 0x0040, 0, 10_000, 0, 0);
        let r = check(&Ok(unsynced));
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("timedatectl set-ntp true"));
        let loose = Timex::from_raw(0, 0, 0, 2_000_000, 0, 0x0001, 0, 10_000, 0, 0);
        assert_eq!(check(&Ok(loose)).status, Status::Warn);
    }

    #[test]
    fn clock_verdicts() {
        let synced = Timex::from_raw(0, 0, 0, 1000, 100, 0x2001, 7, 10_000, 0, 37);
        assert!(evaluate(&Ok(synced)).is_healthy());
        let unsynced = Timex::from_raw(5, 0, 0, 16_000_000, 16_000_000, 0x0040, 2, 10_000, 0, 0);
        let out = evaluate(&Ok(unsynced));
        assert_eq!(out.reason, "ClockUnsynchronized");
        assert!(out.message.contains("16.000s"), "{}", out.message);
        let err = evaluate(&Err(std::io::Error::from_raw_os_error(1)));
        assert_eq!(err.reason, "ClockUnreadable");
    }
}
