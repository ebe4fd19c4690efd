//! Pure parsers of the kernel's text tables that several layers read: /proc/swaps, the octal
//! escapes of /proc paths, /proc/loadavg, /proc/cpuinfo and /proc/net/route.

use serde::{Deserialize, Serialize};

/// One active swap area from /proc/swaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwapArea {
    /// The swap file or device (octal escapes of /proc decoded).
    pub path: String,
    /// `file` or `partition`.
    pub kind: SwapKind,
    /// Size, KiB.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size_kib: u64,
    /// Used, KiB.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub used_kib: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What backs a swap area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SwapKind {
    /// A swap file: `swapoff` works and removing its fstab line keeps it off.
    File,
    /// A partition (or any other block device).
    Partition,
}

impl SwapKind {
    /// The word /proc/swaps uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SwapKind::File => "file",
            SwapKind::Partition => "partition",
        }
    }
}

/// Parses /proc/swaps (`Filename Type Size Used Priority`, one header line). Sizes the line
/// lacks or that do not parse read as 0.
pub fn parse_swaps(text: &str) -> Vec<SwapArea> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let path = f.next()?;
            let kind = match f.next()? {
                "file" => SwapKind::File,
                _ => SwapKind::Partition,
            };
            let mut size = || f.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let size_kib = size();
            let used_kib = size();
            Some(SwapArea {
                path: unescape(path),
                kind,
                size_kib,
                used_kib,
            })
        })
        .collect()
}

/// Decodes the `\040`-style octal escapes the kernel writes for space, tab, newline and
/// backslash in /proc paths. A backslash not followed by three octal digits of a byte value
/// (`\400` and above are not bytes) is kept as it is.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\' && i + 3 < b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                u8::try_from(d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'))).ok()
            });
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/loadavg: the 1, 5 and 15 minute load averages and the number of threads.
pub fn parse_loadavg(text: &str) -> Option<([f64; 3], u64)> {
    let mut parts = text.split_whitespace();
    let mut loads = [0.0; 3];
    for slot in &mut loads {
        *slot = parts.next()?.parse().ok()?;
    }
    let threads = parts.next()?.split_once('/')?.1.parse().ok()?;
    Some((loads, threads))
}

/// Counts `processor` lines in /proc/cpuinfo.
pub fn count_processors(cpuinfo: &str) -> u32 {
    let n = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The interface of the IPv4 default route (destination 0.0.0.0/0) in /proc/net/route,
/// preferring the lowest metric.
pub fn default_route_interface(route: &str) -> Option<String> {
    route
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[1] == "00000000" && f[7] == "00000000")
                .then(|| (f[6].parse::<u32>().unwrap_or(u32::MAX), f[0].to_owned()))
        })
        .min()
        .map(|(_, iface)| iface)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_swaps() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /swap\\040file                              file\t\t1048572\t\t0\t\t-2\n\
                    /dev/dm-1                               partition\t2097148\t\t1024\t\t-3\n";
        assert_eq!(
            parse_swaps(text),
            vec![
                SwapArea {
                    path: "/swap file".into(),
                    kind: SwapKind::File,
                    size_kib: 1_048_572,
                    used_kib: 0,
                },
                SwapArea {
                    path: "/dev/dm-1".into(),
                    kind: SwapKind::Partition,
                    size_kib: 2_097_148,
                    used_kib: 1024,
                },
            ]
        );
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
    }

    #[test]
    fn octal_escapes_decode_only_byte_values() {
        assert_eq!(unescape(r"/mnt/a\040b\011c\134d"), "/mnt/a b\tc\\d");
        // \4xx is above 255: not an escape the kernel writes, kept as it is (no overflow).
        assert_eq!(unescape(r"/x\400y"), r"/x\400y");
        assert_eq!(unescape(r"/x\777"), r"/x\777");
        assert_eq!(unescape(r"/x\04"), r"/x\04");
        assert_eq!(unescape(r"\"), r"\");
    }

    #[test]
    fn loadavg_cpuinfo_and_the_default_route() {
        assert_eq!(
            parse_loadavg("0.50 0.25 0.10 2/345 6789\n"),
            Some(([0.5, 0.25, 0.1], 345))
        );
        assert_eq!(
            parse_loadavg("0.50 1.00 2.00 3/1234 999\n"),
            Some(([0.5, 1.0, 2.0], 1234))
        );
        assert_eq!(parse_loadavg("garbage"), None);
        assert_eq!(
            count_processors("processor\t: 0\nfoo: 1\nprocessor\t: 1\n"),
            2
        );
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
            eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
    }
}
