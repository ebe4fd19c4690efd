//! The netdev collector: network device counters from /proc/net/dev (loopback left out).

use super::{Families, HostPaths, read, read_number};

/// The field names of /proc/net/dev, in order, as node_exporter names them.
const NETDEV_FIELDS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// Parses /proc/net/dev into (device, 16 counters).
pub fn parse_netdev(text: &str) -> Vec<(String, [f64; 16])> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (dev, rest) = line.split_once(':')?;
            let mut fields = [0.0; 16];
            let mut parts = rest.split_whitespace();
            for slot in &mut fields {
                *slot = parts.next()?.parse().ok()?;
            }
            Some((dev.trim().to_string(), fields))
        })
        .collect()
}

/// Adds the `node_network_*_total` counters of every device but `lo`.
pub(super) fn collect(paths: &HostPaths, out: &mut Families) -> Option<()> {
    for (dev, fields) in parse_netdev(&read(&paths.proc.join("net/dev"))?) {
        if dev == "lo" {
            continue;
        }
        let labels = [("device", dev.as_str())];
        for (name, v) in NETDEV_FIELDS.iter().zip(fields) {
            out.counter(
                &format!("node_network_{name}_total"),
                &format!("Network device statistic {name}."),
                &labels,
                v,
            );
        }
        let nohandler = paths
            .sys
            .join("class/net")
            .join(&dev)
            .join("statistics/rx_nohandler");
        if let Some(v) = read_number(&nohandler) {
            out.counter(
                "node_network_receive_nohandler_total",
                "Network device statistic receive_nohandler.",
                &labels,
                v,
            );
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netdev_skips_headers() {
        let text =
            "Inter-|   Receive\n face |bytes\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let d = parse_netdev(text);
        assert_eq!(d[0].0, "eth0");
        assert_eq!(d[0].1[15], 16.0);
    }
}
