//! The kernel's clock discipline, read with `adjtimex(2)` in read-only mode (`modes = 0`).
//!
//! This is the one module of the crate that uses `unsafe`: the C call needs a pointer to a
//! `struct timex`. The audit: the struct is zero-initialised by value (every field is an
//! integer, so all-zero is a valid value), `modes` stays 0 so the kernel only reads the
//! clock and changes nothing, the pointer is to a local that lives across the call, and the
//! kernel writes only within the struct's size. Everything after the call is safe code over
//! plain integers ([`Timex::from_raw`], [`Timex::synchronized`]).

use std::io;

/// `STA_UNSYNC`: the kernel considers the clock unsynchronised.
const STA_UNSYNC: i64 = 0x0040;
/// `STA_NANO`: `offset` is in nanoseconds rather than microseconds.
const STA_NANO: i64 = 0x2000;
/// `TIME_ERROR`: the return value of adjtimex when the clock is not synchronised.
const TIME_ERROR: i32 = 5;
/// Scale of `freq` and `tolerance`: parts per million with a 16-bit fraction.
const PPM_SCALE: f64 = 65_536.0 * 1_000_000.0;
/// Microseconds per second (`maxerror`, `esterror`, `tick` and non-nano `offset` units).
const MICROS_PER_SECOND: f64 = 1_000_000.0;

/// The clock state as node_exporter's timex collector reports it (seconds and ratios).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timex {
    /// The return value of adjtimex: the clock state (`TIME_OK` 0 ... `TIME_ERROR` 5).
    pub state: i32,
    /// Time offset, seconds.
    pub offset_seconds: f64,
    /// Frequency adjustment, ratio (parts per one).
    pub frequency_adjustment_ratio: f64,
    /// Maximum error, seconds.
    pub maxerror_seconds: f64,
    /// Estimated error, seconds.
    pub estimated_error_seconds: f64,
    /// The status bits (`STA_*`).
    pub status: i64,
    /// Phase-locked loop time constant.
    pub loop_time_constant: i64,
    /// Clock precision, seconds.
    pub tick_seconds: f64,
    /// Frequency tolerance, ratio.
    pub tolerance_ratio: f64,
    /// International Atomic Time offset, seconds.
    pub tai_offset_seconds: i64,
}

impl Timex {
    /// Converts the kernel's raw fields (pure, unit-tested).
    #[allow(clippy::too_many_arguments)]
    pub fn from_raw(
        state: i32,
        offset: i64,
        freq: i64,
        maxerror: i64,
        esterror: i64,
        status: i64,
        constant: i64,
        tick: i64,
        tolerance: i64,
        tai: i64,
    ) -> Self {
        let offset_divisor = if status & STA_NANO != 0 {
            1_000_000_000.0
        } else {
            MICROS_PER_SECOND
        };
        Timex {
            state,
            offset_seconds: offset as f64 / offset_divisor,
            frequency_adjustment_ratio: 1.0 + freq as f64 / PPM_SCALE,
            maxerror_seconds: maxerror as f64 / MICROS_PER_SECOND,
            estimated_error_seconds: esterror as f64 / MICROS_PER_SECOND,
            status,
            loop_time_constant: constant,
            tick_seconds: tick as f64 / MICROS_PER_SECOND,
            tolerance_ratio: tolerance as f64 / PPM_SCALE,
            tai_offset_seconds: tai,
        }
    }

    /// True when the kernel says the clock is synchronised (what `timedatectl` shows as
    /// "System clock synchronized": not `TIME_ERROR` and `STA_UNSYNC` clear).
    pub fn synchronized(&self) -> bool {
        self.state != TIME_ERROR && self.status & STA_UNSYNC == 0
    }
}

/// Reads the clock state. Never changes it.
pub fn read() -> io::Result<Timex> {
    // SAFETY: see the module documentation. `timex` is plain integers, zero is valid, and
    // `modes == 0` makes the call read-only.
    #[allow(unsafe_code)]
    let (state, tx) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut tx);
        (state, tx)
    };
    if state < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Timex::from_raw(
        state,
        tx.offset,
        tx.freq,
        tx.maxerror,
        tx.esterror,
        i64::from(tx.status),
        tx.constant,
        tx.tick,
        tx.tolerance,
        i64::from(tx.tai),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_units_like_the_kernel_documents() {
        // offset in microseconds (no STA_NANO), freq 1 ppm, 16 ms max error.
        let t = Timex::from_raw(
            0, 1500, 65_536, 16_000, 500, 0x0001, 7, 10_000, 32_768_000, 37,
        );
        assert!((t.offset_seconds - 0.0015).abs() < 1e-12);
        assert!((t.frequency_adjustment_ratio - 1.000_001).abs() < 1e-12);
        assert!((t.maxerror_seconds - 0.016).abs() < 1e-12);
        assert!((t.estimated_error_seconds - 0.0005).abs() < 1e-12);
        assert!((t.tick_seconds - 0.01).abs() < 1e-12);
        assert!((t.tolerance_ratio - 0.0005).abs() < 1e-12);
        assert_eq!(t.tai_offset_seconds, 37);
        assert!(t.synchronized());
        // STA_NANO: offset in nanoseconds.
        let t = Timex::from_raw(0, 1500, 0, 0, 0, STA_NANO, 0, 0, 0, 0);
        assert!((t.offset_seconds - 0.0000015).abs() < 1e-15);
    }

    #[test]
    fn unsynchronised_by_state_or_by_status_bit() {
        assert!(!Timex::from_raw(TIME_ERROR, 0, 0, 0, 0, 0, 0, 0, 0, 0).synchronized());
        assert!(!Timex::from_raw(0, 0, 0, 0, 0, STA_UNSYNC, 0, 0, 0, 0).synchronized());
    }

    #[test]
    fn reads_this_hosts_clock() {
        let t = read().expect("adjtimex(2) with modes = 0 needs no privilege");
        assert!((0..=5).contains(&t.state), "state {}", t.state);
        assert!(t.tick_seconds > 0.0, "the kernel tick is never zero");
    }
}
