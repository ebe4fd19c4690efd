//! The cpu collector: seconds per CPU and mode from /proc/stat.

use super::{Families, HostPaths, read};

/// Linux reports /proc/stat times in USER_HZ ticks, which is 100 on every architecture.
const USER_HZ: f64 = 100.0;

/// One `cpuN` line of /proc/stat, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuTimes {
    /// The CPU number.
    pub cpu: String,
    /// user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice.
    pub fields: [f64; 10],
}

/// Parses the per-CPU lines of /proc/stat (the aggregate `cpu` line is skipped).
pub fn parse_stat(text: &str) -> Vec<CpuTimes> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let cpu = parts.next()?.strip_prefix("cpu")?;
            if cpu.is_empty() {
                return None;
            }
            let mut fields = [0.0; 10];
            for (slot, value) in fields.iter_mut().zip(parts) {
                *slot = value.parse::<f64>().ok()? / USER_HZ;
            }
            Some(CpuTimes {
                cpu: cpu.to_string(),
                fields,
            })
        })
        .collect()
}

/// Adds `node_cpu_seconds_total` and `node_cpu_guest_seconds_total`.
pub(super) fn collect(paths: &HostPaths, out: &mut Families) -> Option<()> {
    let cpus = parse_stat(&read(&paths.proc.join("stat"))?);
    const MODES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    for c in &cpus {
        for (i, mode) in MODES.iter().enumerate() {
            out.counter(
                "node_cpu_seconds_total",
                "Seconds the CPUs spent in each mode.",
                &[("cpu", &c.cpu), ("mode", mode)],
                c.fields[i],
            );
        }
    }
    for c in &cpus {
        for (i, mode) in [(8, "user"), (9, "nice")] {
            out.counter(
                "node_cpu_guest_seconds_total",
                "Seconds the CPUs spent in guests (VMs) for each mode.",
                &[("cpu", &c.cpu), ("mode", mode)],
                c.fields[i],
            );
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_become_seconds_per_cpu() {
        let text = "cpu  10 0 0 0 0 0 0 0 0 0\ncpu0 150 2 30 400 5 0 1 7 3 4\nintr 1 2\n";
        let cpus = parse_stat(text);
        assert_eq!(cpus.len(), 1);
        assert_eq!(cpus[0].cpu, "0");
        assert_eq!(cpus[0].fields[0], 1.5);
        assert_eq!(cpus[0].fields[9], 0.04);
    }
}
