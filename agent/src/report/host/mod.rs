//! Host metrics with node_exporter's names, labels, types and help texts, so dashboards built
//! for node_exporter keep working. One file per collector family, each a pure parser over the
//! text of a /proc or /sys file (or a syscall's answer) plus the few lines that read it and add
//! its series; everything is read at scrape time, nothing is cached:
//!
//! - [`conntrack`]: the connection tracking table and its per-CPU statistics;
//! - [`cpu`]: per-CPU times from /proc/stat;
//! - [`diskstats`]: block device I/O from /proc/diskstats;
//! - [`filesystem`]: space and inodes of the mounted filesystems;
//! - [`loadavg`]: the load averages;
//! - [`meminfo`]: the fields of /proc/meminfo;
//! - [`netdev`]: network device counters;
//! - [`pressure`]: pressure stall information;
//! - [`timex`]: the kernel's clock discipline, read with `adjtimex(2)` (the crate's one
//!   audited `unsafe` call).
//!
//! This module holds what they share: where the kernel's files are ([`HostPaths`]), the
//! collector registry ([`COLLECTORS`], [`collect`]) and the metric families they fill
//! ([`Families`]).

pub mod conntrack;
pub mod cpu;
pub mod diskstats;
pub mod filesystem;
pub mod loadavg;
pub mod meminfo;
pub mod netdev;
pub mod pressure;
pub mod timex;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

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
            "conntrack" => conntrack::collect(paths, out),
            "cpu" => cpu::collect(paths, out),
            "diskstats" => diskstats::collect(paths, out),
            "filesystem" => filesystem::collect(paths, out),
            "loadavg" => loadavg::collect(paths, out),
            "meminfo" => meminfo::collect(paths, out),
            "netdev" => netdev::collect(paths, out),
            "pressure" => pressure::collect(paths, out),
            "timex" => timex::collect(out),
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

/// A number alone in a file (a sysctl or a sysfs counter).
fn read_number(path: &Path) -> Option<f64> {
    read(path)?.trim().parse().ok()
}
