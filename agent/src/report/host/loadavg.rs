//! The loadavg collector: the 1, 5 and 15 minute load averages from /proc/loadavg.

use super::{Families, HostPaths, read};
use crate::model::procfs::parse_loadavg;

/// Adds `node_load1`, `node_load5` and `node_load15`.
pub(super) fn collect(paths: &HostPaths, out: &mut Families) -> Option<()> {
    let (loads, _) = parse_loadavg(&read(&paths.proc.join("loadavg"))?)?;
    for (value, (name, help)) in loads.iter().zip([
        ("node_load1", "1m load average."),
        ("node_load5", "5m load average."),
        ("node_load15", "15m load average."),
    ]) {
        out.gauge(name, help, &[], *value);
    }
    Some(())
}
