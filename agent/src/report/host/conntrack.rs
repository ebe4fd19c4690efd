//! The conntrack collector: the connection tracking table's fill and its per-CPU statistics.

use std::collections::BTreeMap;

use super::{Families, HostPaths, read, read_number};

/// Sums the per-CPU rows of /proc/net/stat/nf_conntrack (hex values) by column name.
pub fn parse_conntrack_stat(text: &str) -> BTreeMap<String, f64> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let names: Vec<&str> = header.split_whitespace().collect();
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for line in lines {
        for (name, value) in names.iter().zip(line.split_whitespace()) {
            if let Ok(v) = u64::from_str_radix(value, 16) {
                *sums.entry((*name).to_string()).or_default() += v as f64;
            }
        }
    }
    sums
}

/// Adds `node_nf_conntrack_entries`, its limit and the `node_nf_conntrack_stat_*` sums.
pub(super) fn collect(paths: &HostPaths, out: &mut Families) -> Option<()> {
    let sysctl = paths.proc.join("sys/net/netfilter");
    let count = read_number(&sysctl.join("nf_conntrack_count"))?;
    let max = read_number(&sysctl.join("nf_conntrack_max"))?;
    out.gauge(
        "node_nf_conntrack_entries",
        "Number of currently allocated flow entries for connection tracking.",
        &[],
        count,
    );
    out.gauge(
        "node_nf_conntrack_entries_limit",
        "Maximum size of connection tracking table.",
        &[],
        max,
    );
    if let Some(text) = read(&paths.proc.join("net/stat/nf_conntrack")) {
        let sums = parse_conntrack_stat(&text);
        let stats = [
            ("found", "Number of searched entries which were successful."),
            (
                "invalid",
                "Number of packets seen which can not be tracked.",
            ),
            (
                "ignore",
                "Number of packets seen which are already connected to a conntrack entry.",
            ),
            ("insert", "Number of entries inserted into the list."),
            (
                "insert_failed",
                "Number of entries for which list insertion was attempted but failed.",
            ),
            (
                "drop",
                "Number of packets dropped due to conntrack failure.",
            ),
            (
                "early_drop",
                "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
            ),
            (
                "search_restart",
                "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
            ),
        ];
        for (key, help) in stats {
            if let Some(v) = sums.get(key) {
                out.gauge(&format!("node_nf_conntrack_stat_{key}"), help, &[], *v);
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_stats_are_summed_hex() {
        let text = "entries  found drop\n0000000a 00000010 00000001\n0000000a 00000001 00000001\n";
        let s = parse_conntrack_stat(text);
        assert_eq!(s["found"], 17.0);
        assert_eq!(s["drop"], 2.0);
    }
}
