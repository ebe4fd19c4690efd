//! The timex collector, and the reader of the kernel's clock discipline it exports:
//! `adjtimex(2)` in read-only mode (`modes = 0`). The clock checks of `status` and `run`
//! read the clock here too, so node_exporter's series and the checks see the same state.
//!
//! This is the one module of the crate that uses `unsafe`: the C call needs a pointer to a
//! `struct timex`. The audit: the struct is zero-initialised by value (every field is an
//! integer, so all-zero is a valid value), `modes` stays 0 so the kernel only reads the
//! clock and changes nothing, the pointer is to a local that lives across the call, and the
//! kernel writes only within the struct's size. Everything after the call is safe code over
//! plain integers ([`RawTimex`], [`Timex::from_raw`], [`Timex::synchronized`]).

use std::io;

use super::Families;

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

/// The fields of the kernel's `struct timex` the conversion reads, in the kernel's units, and
/// adjtimex's return value as `state`. `status --clock-state FILE` reads the same fields from
/// JSON (absent ones are 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RawTimex {
    /// The return value of adjtimex (`TIME_OK` 0 ... `TIME_ERROR` 5).
    pub state: i32,
    /// Time offset, microseconds (nanoseconds with `STA_NANO`).
    pub offset: i64,
    /// Frequency offset, ppm with a 16-bit fraction.
    pub freq: i64,
    /// Maximum error, microseconds.
    pub maxerror: i64,
    /// Estimated error, microseconds.
    pub esterror: i64,
    /// The status bits (`STA_*`).
    pub status: i64,
    /// Phase-locked loop time constant.
    pub constant: i64,
    /// Microseconds between clock ticks.
    pub tick: i64,
    /// Frequency tolerance, ppm with a 16-bit fraction.
    pub tolerance: i64,
    /// TAI offset, seconds.
    pub tai: i64,
}

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
    /// Converts the kernel's raw fields, in `struct timex` order (see [`RawTimex`]).
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
        Timex::from(RawTimex {
            state,
            offset,
            freq,
            maxerror,
            esterror,
            status,
            constant,
            tick,
            tolerance,
            tai,
        })
    }

    /// True when the kernel says the clock is synchronised (what `timedatectl` shows as
    /// "System clock synchronized": not `TIME_ERROR` and `STA_UNSYNC` clear).
    pub fn synchronized(&self) -> bool {
        self.state != TIME_ERROR && self.status & STA_UNSYNC == 0
    }
}

/// The conversion to seconds and ratios (pure, unit-tested).
impl From<RawTimex> for Timex {
    fn from(r: RawTimex) -> Timex {
        let offset_divisor = if r.status & STA_NANO != 0 {
            1_000_000_000.0
        } else {
            MICROS_PER_SECOND
        };
        Timex {
            state: r.state,
            offset_seconds: r.offset as f64 / offset_divisor,
            frequency_adjustment_ratio: 1.0 + r.freq as f64 / PPM_SCALE,
            maxerror_seconds: r.maxerror as f64 / MICROS_PER_SECOND,
            estimated_error_seconds: r.esterror as f64 / MICROS_PER_SECOND,
            status: r.status,
            loop_time_constant: r.constant,
            tick_seconds: r.tick as f64 / MICROS_PER_SECOND,
            tolerance_ratio: r.tolerance as f64 / PPM_SCALE,
            tai_offset_seconds: r.tai,
        }
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
    Ok(RawTimex {
        state,
        offset: tx.offset,
        freq: tx.freq,
        maxerror: tx.maxerror,
        esterror: tx.esterror,
        status: i64::from(tx.status),
        constant: tx.constant,
        tick: tx.tick,
        tolerance: tx.tolerance,
        tai: i64::from(tx.tai),
    }
    .into())
}

/// Adds node_exporter's timex series from [`read`], same names, help texts and units. The
/// PPS series are left out: [`read`] does not return the kernel's PPS fields (they stay 0
/// unless the kernel disciplines the clock from a PPS source, which EC2 and hybrid hosts do
/// not).
pub(super) fn collect(out: &mut Families) -> Option<()> {
    let t = read().ok()?;
    let series: [(&str, &str, f64); 9] = [
        (
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            t.offset_seconds,
        ),
        (
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            t.frequency_adjustment_ratio,
        ),
        (
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            t.maxerror_seconds,
        ),
        (
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            t.estimated_error_seconds,
        ),
        (
            "node_timex_status",
            "Value of the status array bits.",
            t.status as f64,
        ),
        (
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            t.loop_time_constant as f64,
        ),
        (
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            t.tick_seconds,
        ),
        (
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            t.tai_offset_seconds as f64,
        ),
        (
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            if t.synchronized() { 1.0 } else { 0.0 },
        ),
    ];
    for (name, help, v) in series {
        out.gauge(name, help, &[], v);
    }
    Some(())
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
