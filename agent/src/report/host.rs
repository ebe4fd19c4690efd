//! Host metrics with node_exporter's names, labels, types and help texts, so dashboards built
//! for node_exporter keep working: cpu, meminfo, loadavg, filesystem, diskstats, netdev,
//! pressure, conntrack. Each collector is a pure parser over the text of a /proc or /sys file
//! plus a few lines that read it; everything is read at scrape time, nothing is cached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// Linux reports /proc/stat times in USER_HZ ticks, which is 100 on every architecture.
const USER_HZ: f64 = 100.0;
/// /proc/diskstats counts 512-byte sectors whatever the device's block size.
const SECTOR_BYTES: f64 = 512.0;
/// Milliseconds per second, for the diskstats time fields.
const MS_PER_SEC: f64 = 1000.0;
/// Microseconds per second, for the pressure totals.
const US_PER_SEC: f64 = 1_000_000.0;

/// Where the kernel's files are: `/proc` and `/sys` in production, a temp dir in tests.
#[derive(Debug, Clone)]
pub struct HostPaths {
    /// The procfs mount.
    pub proc: PathBuf,
    /// The sysfs mount.
    pub sys: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
        }
    }
}

/// The collectors this module implements, in node_exporter's names.
pub const COLLECTORS: &[&str] = &[
    "conntrack",
    "cpu",
    "diskstats",
    "filesystem",
    "loadavg",
    "meminfo",
    "netdev",
    "pressure",
    "timex",
];

/// Accumulates metric families by name while collectors run.
#[derive(Debug, Default)]
pub struct Families {
    by_name: BTreeMap<String, MetricFamily>,
}

impl Families {
    fn push(&mut self, name: &str, help: &str, kind: MetricType, labels: &[(&str, &str)], v: f64) {
        let family = self.by_name.entry(name.to_string()).or_insert_with(|| {
            let mut f = MetricFamily::default();
            f.set_name(name.to_string());
            f.set_help(help.to_string());
            f.set_field_type(kind);
            f
        });
        let mut metric = Metric::default();
        let mut pairs: Vec<LabelPair> = labels
            .iter()
            .map(|(k, val)| {
                let mut p = LabelPair::default();
                p.set_name((*k).to_string());
                p.set_value((*val).to_string());
                p
            })
            .collect();
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        metric.set_label(pairs);
        match kind {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(v);
                metric.set_counter(c);
            }
            _ => {
                let mut g = Gauge::default();
                g.set_value(v);
                metric.set_gauge(g);
            }
        }
        family.mut_metric().push(metric);
    }

    fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.push(name, help, MetricType::GAUGE, labels, v);
    }

    fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.push(name, help, MetricType::COUNTER, labels, v);
    }

    /// The families collected, sorted by name.
    pub fn into_vec(self) -> Vec<MetricFamily> {
        self.by_name.into_values().collect()
    }
}

/// Runs every host collector and adds node_exporter's per-collector scrape duration and
/// success series.
pub fn collect(paths: &HostPaths, out: &mut Families) {
    for name in COLLECTORS {
        let started = Instant::now();
        let ok = match *name {
            "conntrack" => conntrack(paths, out),
            "cpu" => cpu(paths, out),
            "diskstats" => diskstats(paths, out),
            "filesystem" => filesystem(paths, out),
            "loadavg" => loadavg(paths, out),
            "meminfo" => meminfo(paths, out),
            "netdev" => netdev(paths, out),
            "pressure" => pressure(paths, out),
            "timex" => timex(out),
            _ => None,
        }
        .is_some();
        if !ok {
            tracing::debug!(collector = name, "host collector found no data");
        }
        out.gauge(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            &[("collector", name)],
            started.elapsed().as_secs_f64(),
        );
        out.gauge(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            &[("collector", name)],
            if ok { 1.0 } else { 0.0 },
        );
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

// ---------------------------------------------------------------- cpu

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

fn cpu(paths: &HostPaths, out: &mut Families) -> Option<()> {
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

// ---------------------------------------------------------------- meminfo

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

fn meminfo(paths: &HostPaths, out: &mut Families) -> Option<()> {
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

// ---------------------------------------------------------------- loadavg

/// The 1, 5 and 15 minute load averages and the number of scheduling entities (threads).
pub fn parse_loadavg(text: &str) -> Option<([f64; 3], u64)> {
    let mut parts = text.split_whitespace();
    let mut loads = [0.0; 3];
    for slot in &mut loads {
        *slot = parts.next()?.parse().ok()?;
    }
    let threads = parts.next()?.split_once('/')?.1.parse().ok()?;
    Some((loads, threads))
}

fn loadavg(paths: &HostPaths, out: &mut Families) -> Option<()> {
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

// ---------------------------------------------------------------- diskstats

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

fn diskstats(paths: &HostPaths, out: &mut Families) -> Option<()> {
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

// ---------------------------------------------------------------- netdev

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

fn netdev(paths: &HostPaths, out: &mut Families) -> Option<()> {
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
        if let Some(v) = read(&nohandler).and_then(|s| s.trim().parse::<f64>().ok()) {
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

// ---------------------------------------------------------------- pressure

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

fn pressure(paths: &HostPaths, out: &mut Families) -> Option<()> {
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

// ---------------------------------------------------------------- conntrack

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

fn read_number(path: &Path) -> Option<f64> {
    read(path)?.trim().parse().ok()
}

fn conntrack(paths: &HostPaths, out: &mut Families) -> Option<()> {
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

// ---------------------------------------------------------------- timex

/// node_exporter's timex series from [`crate::health::clock::read`] (adjtimex, read only),
/// same names, help texts and units. The PPS series are left out: `clock::read` does not
/// return the kernel's PPS fields (they stay 0 unless the kernel disciplines the clock
/// from a PPS source, which EC2 and hybrid hosts do not).
fn timex(out: &mut Families) -> Option<()> {
    let t = crate::health::clock::read().ok()?;
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

// ---------------------------------------------------------------- filesystem

/// One mount from /proc/1/mounts.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// The mounted device.
    pub device: String,
    /// Where it is mounted (octal escapes decoded).
    pub mountpoint: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mounted read-only.
    pub readonly: bool,
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a mounts table (/proc/1/mounts format).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let device = parts.next()?.to_string();
            let mountpoint = unescape_octal(parts.next()?);
            let fstype = parts.next()?.to_string();
            let readonly = parts.next()?.split(',').any(|o| o == "ro");
            Some(Mount {
                device,
                mountpoint,
                fstype,
                readonly,
            })
        })
        .collect()
}

/// node_exporter's default exclusions: mount points under /dev, /proc, /run, /sys, /mnt,
/// /media and container storage, and pseudo filesystem types.
pub fn mount_excluded(m: &Mount) -> bool {
    const FS_TYPES: &[&str] = &[
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
    ];
    if FS_TYPES.contains(&m.fstype.as_str()) {
        return true;
    }
    for top in ["/dev", "/proc", "/run", "/sys", "/mnt", "/media"] {
        if m.mountpoint == top || m.mountpoint.starts_with(&format!("{top}/")) {
            return true;
        }
    }
    for storage in ["/var/lib/docker/", "/var/lib/containers/storage/"] {
        if m.mountpoint.len() > storage.len() && m.mountpoint.starts_with(storage) {
            return true;
        }
    }
    false
}

/// Space and inode figures of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsUsage {
    /// Total size in bytes.
    pub size: f64,
    /// Free bytes (including the root reserve).
    pub free: f64,
    /// Bytes available to unprivileged users.
    pub avail: f64,
    /// Total inodes.
    pub files: f64,
    /// Free inodes.
    pub files_free: f64,
}

/// statfs(2) of a path.
pub fn fs_usage(path: &Path) -> Option<FsUsage> {
    let st = nix::sys::statfs::statfs(path).ok()?;
    let bsize = st.block_size() as f64;
    Some(FsUsage {
        size: st.blocks() as f64 * bsize,
        free: st.blocks_free() as f64 * bsize,
        avail: st.blocks_available() as f64 * bsize,
        files: st.files() as f64,
        files_free: st.files_free() as f64,
    })
}

fn filesystem(paths: &HostPaths, out: &mut Families) -> Option<()> {
    let mounts = parse_mounts(&read(&paths.proc.join("1/mounts"))?);
    let mut seen = std::collections::BTreeSet::new();
    for m in mounts.iter().filter(|m| !mount_excluded(m)) {
        if !seen.insert((m.device.clone(), m.mountpoint.clone())) {
            continue;
        }
        let labels = [
            ("device", m.device.as_str()),
            ("fstype", m.fstype.as_str()),
            ("mountpoint", m.mountpoint.as_str()),
        ];
        let usage = fs_usage(Path::new(&m.mountpoint));
        out.gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            &labels,
            if usage.is_some() { 0.0 } else { 1.0 },
        );
        let Some(u) = usage else { continue };
        for (name, help, v) in [
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                u.size,
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                u.free,
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                u.avail,
            ),
            (
                "node_filesystem_files",
                "Filesystem total file nodes.",
                u.files,
            ),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                u.files_free,
            ),
            (
                "node_filesystem_readonly",
                "Filesystem read-only status.",
                if m.readonly { 1.0 } else { 0.0 },
            ),
        ] {
            out.gauge(name, help, &labels, v);
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

    #[test]
    fn loadavg_and_threads() {
        assert_eq!(
            parse_loadavg("0.50 1.00 2.00 3/1234 999\n"),
            Some(([0.5, 1.0, 2.0], 1234))
        );
        assert_eq!(parse_loadavg("garbage"), None);
    }

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

    #[test]
    fn netdev_skips_headers() {
        let text =
            "Inter-|   Receive\n face |bytes\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let d = parse_netdev(text);
        assert_eq!(d[0].0, "eth0");
        assert_eq!(d[0].1[15], 16.0);
    }

    #[test]
    fn pressure_totals() {
        let text = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=20\n";
        assert_eq!(parse_pressure(text), (Some(1_500_000.0), Some(20.0)));
    }

    #[test]
    fn conntrack_stats_are_summed_hex() {
        let text = "entries  found drop\n0000000a 00000010 00000001\n0000000a 00000001 00000001\n";
        let s = parse_conntrack_stat(text);
        assert_eq!(s["found"], 17.0);
        assert_eq!(s["drop"], 2.0);
    }

    #[test]
    fn mounts_and_exclusions() {
        let text = "/dev/vda / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n/dev/vdb /data\\040x xfs ro 0 0\nshm /var/lib/docker/x tmpfs rw 0 0\n";
        let m = parse_mounts(text);
        assert_eq!(m[2].mountpoint, "/data x");
        assert!(m[2].readonly);
        let kept: Vec<_> = m
            .iter()
            .filter(|m| !mount_excluded(m))
            .map(|m| m.mountpoint.as_str())
            .collect();
        assert_eq!(kept, vec!["/", "/data x"]);
    }
}
