//! The diskstats collector: block device I/O from /proc/diskstats, with node_exporter's
//! default device exclusions.

use super::{Families, HostPaths, read};

/// /proc/diskstats counts 512-byte sectors whatever the device's block size.
const SECTOR_BYTES: f64 = 512.0;
/// Milliseconds per second, for the time fields.
const MS_PER_SEC: f64 = 1000.0;

/// One line of /proc/diskstats: device name, major, minor and the numeric fields in order.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskStats {
    /// Device name (`nvme0n1`).
    pub device: String,
    /// Major device number.
    pub major: String,
    /// Minor device number.
    pub minor: String,
    /// The statistics fields, 11 to 17 of them depending on the kernel.
    pub fields: Vec<f64>,
}

/// Partitions and pseudo devices node_exporter leaves out by default:
/// `^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`.
pub fn disk_excluded(name: &str) -> bool {
    let trailing_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    for prefix in ["ram", "loop", "fd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return trailing_digits(rest);
        }
    }
    for prefix in ["hd", "sd", "vd", "xvd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let mut chars = rest.chars();
            if chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && trailing_digits(chars.as_str())
            {
                return true;
            }
        }
    }
    if let Some(rest) = name.strip_prefix("nvme") {
        // nvme<digits>n<digits>p<digits>
        let Some((ctrl, rest)) = rest.split_once('n') else {
            return false;
        };
        let Some((ns, part)) = rest.split_once('p') else {
            return false;
        };
        return trailing_digits(ctrl) && trailing_digits(ns) && trailing_digits(part);
    }
    false
}

/// Parses /proc/diskstats.
pub fn parse_diskstats(text: &str) -> Vec<DiskStats> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let major = parts.next()?.to_string();
            let minor = parts.next()?.to_string();
            let device = parts.next()?.to_string();
            let fields: Vec<f64> = parts.filter_map(|p| p.parse().ok()).collect();
            (fields.len() >= 11).then_some(DiskStats {
                device,
                major,
                minor,
                fields,
            })
        })
        .collect()
}

/// (field index, name, help, scale, is counter) for each diskstats field node_exporter exports.
const DISK_FIELDS: &[(usize, &str, &str, f64, bool)] = &[
    (
        0,
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        1.0,
        true,
    ),
    (
        1,
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        1.0,
        true,
    ),
    (
        2,
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        SECTOR_BYTES,
        true,
    ),
    (
        3,
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        1.0 / MS_PER_SEC,
        true,
    ),
    (
        4,
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        1.0,
        true,
    ),
    (
        5,
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        1.0,
        true,
    ),
    (
        6,
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        SECTOR_BYTES,
        true,
    ),
    (
        7,
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        1.0 / MS_PER_SEC,
        true,
    ),
    (
        8,
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        1.0,
        false,
    ),
    (
        9,
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        1.0 / MS_PER_SEC,
        true,
    ),
    (
        10,
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        1.0 / MS_PER_SEC,
        true,
    ),
    (
        11,
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        1.0,
        true,
    ),
    (
        12,
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        1.0,
        true,
    ),
    (
        13,
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        1.0,
        true,
    ),
    (
        14,
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        1.0 / MS_PER_SEC,
        true,
    ),
    (
        15,
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        1.0,
        true,
    ),
    (
        16,
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        1.0 / MS_PER_SEC,
        true,
    ),
];

/// Adds `node_disk_info` and the `node_disk_*` counters of every device not left out.
pub(super) fn collect(paths: &HostPaths, out: &mut Families) -> Option<()> {
    for disk in parse_diskstats(&read(&paths.proc.join("diskstats"))?) {
        if disk_excluded(&disk.device) {
            continue;
        }
        let dev = [("device", disk.device.as_str())];
        // No udev database is read: model, serial and the rest stay empty, as node_exporter
        // leaves them when /run/udev/data is absent.
        out.gauge(
            "node_disk_info",
            "Info of /sys/block/<block_device>.",
            &[
                ("device", &disk.device),
                ("major", &disk.major),
                ("minor", &disk.minor),
                ("model", ""),
                ("path", ""),
                ("revision", ""),
                ("serial", ""),
                ("wwn", ""),
            ],
            1.0,
        );
        for (i, name, help, scale, counter) in DISK_FIELDS {
            let Some(v) = disk.fields.get(*i) else {
                continue;
            };
            if *counter {
                out.counter(name, help, &dev, v * scale);
            } else {
                out.gauge(name, help, &dev, v * scale);
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_exclusions_match_node_exporter_defaults() {
        for excluded in [
            "ram0",
            "loop12",
            "sda1",
            "vda3",
            "xvda1",
            "nvme0n1p2",
            "fd0",
        ] {
            assert!(disk_excluded(excluded), "{excluded}");
        }
        for kept in ["sda", "vda", "nvme0n1", "zram0", "dm-0", "md0"] {
            assert!(!disk_excluded(kept), "{kept}");
        }
    }

    #[test]
    fn diskstats_need_eleven_fields() {
        let text = " 254 0 vda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n 1 0 ram0 1 2\n";
        let d = parse_diskstats(text);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].fields.len(), 17);
    }
}
