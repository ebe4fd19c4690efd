//! The meminfo collector: every /proc/meminfo field as `node_memory_*`.

use super::{Families, HostPaths, read};

/// Parses /proc/meminfo into node_exporter's metric names and byte values: `Active(anon)`
/// becomes `Active_anon`, and fields in kB get a `_bytes` suffix.
pub fn parse_meminfo(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let value: f64 = parts.next()?.parse().ok()?;
            let key = key.replace('(', "_").replace(')', "");
            Some(match parts.next() {
                Some("kB") => (format!("{key}_bytes"), value * 1024.0),
                _ => (key, value),
            })
        })
        .collect()
}

/// Adds one `node_memory_*` gauge per field.
pub(super) fn collect(paths: &HostPaths, out: &mut Families) -> Option<()> {
    for (key, value) in parse_meminfo(&read(&paths.proc.join("meminfo"))?) {
        out.gauge(
            &format!("node_memory_{key}"),
            &format!("Memory information field {key}."),
            &[],
            value,
        );
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_names_follow_node_exporter() {
        let got = parse_meminfo("MemTotal:  2 kB\nActive(anon):  1 kB\nHugePages_Total:  3\n");
        assert_eq!(
            got,
            vec![
                ("MemTotal_bytes".to_string(), 2048.0),
                ("Active_anon_bytes".to_string(), 1024.0),
                ("HugePages_Total".to_string(), 3.0)
            ]
        );
    }
}
