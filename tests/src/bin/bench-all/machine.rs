//! The machine a run was made on: CPU, cores, memory, kernel, load, toolchain, peers.

use std::path::Path;

use crate::proc::first_line;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A markdown list describing this machine and the programs compared.
pub fn describe(agent: &Path, venv_aws: &Path) -> String {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or("unknown")
        .trim_matches('"')
        .to_owned();
    let commit = first_line("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let date = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let lines = [
        format!("- date: {date}"),
        format!("- CPU: {model}, {cores} cores available to this process"),
        format!("- memory: {:.1} GiB", mem_kib / 1024.0 / 1024.0),
        format!("- kernel: {kernel}; OS: {os}"),
        format!("- load average (1, 5, 15 min) at start: {}", loadavg()),
        format!("- rustc: {}", first_line("rustc", &["-V"])),
        format!(
            "- agent: `{}` ({}), commit {commit}{}",
            agent.display(),
            first_line(agent, &["version"]),
            if dirty {
                " with uncommitted changes"
            } else {
                ""
            }
        ),
        format!("- awscli: {}", first_line(venv_aws, &["--version"])),
        format!(
            "- node_exporter: {}",
            first_line("prometheus-node-exporter", &["--version"])
        ),
    ];
    lines.join("\n")
}
