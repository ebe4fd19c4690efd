//! The pressure collector: pressure stall totals from /proc/pressure/{cpu,io,memory}.

use super::{Families, HostPaths, read};

/// Microseconds per second, for the totals.
const US_PER_SEC: f64 = 1_000_000.0;

/// The `total=` values (microseconds) of the `some` and `full` lines of a pressure file.
pub fn parse_pressure(text: &str) -> (Option<f64>, Option<f64>) {
    let total = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")))
            .and_then(|v| v.parse::<f64>().ok())
    };
    (total("some "), total("full "))
}

/// Adds the `node_pressure_*_seconds_total` counters.
pub(super) fn collect(paths: &HostPaths, out: &mut Families) -> Option<()> {
    let dir = paths.proc.join("pressure");
    let (cpu_some, _) = parse_pressure(&read(&dir.join("cpu"))?);
    let (io_some, io_full) = parse_pressure(&read(&dir.join("io"))?);
    let (mem_some, mem_full) = parse_pressure(&read(&dir.join("memory"))?);
    let series = [
        (
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
            cpu_some,
        ),
        (
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
            io_some,
        ),
        (
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
            io_full,
        ),
        (
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
            mem_some,
        ),
        (
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
            mem_full,
        ),
    ];
    for (name, help, value) in series {
        if let Some(us) = value {
            out.counter(name, help, &[], us / US_PER_SEC);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_totals() {
        let text = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=20\n";
        assert_eq!(parse_pressure(text), (Some(1_500_000.0), Some(20.0)));
    }
}
