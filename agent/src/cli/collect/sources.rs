//! What goes into the bundle: one [`Item`] per log, config, command and endpoint, in the
//! order the bundle holds them. Files are read under the root; commands run on the host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::bundle::{Item, Source};

/// The units whose journal is collected, with the syslog identifier their lines carry when
/// they run outside the unit.
pub const JOURNAL_UNITS: [(&str, &str); 10] = [
    ("kubelet.service", "kubelet"),
    ("containerd.service", "containerd"),
    ("eks-node-agent.service", "eks-node-agent"),
    ("eks-node-agent-init.service", "eks-node-agent-init"),
    (
        "eks-node-agent-init-config.service",
        "eks-node-agent-init-config",
    ),
    (
        "eks-node-agent-warm-pool.service",
        "eks-node-agent-warm-pool",
    ),
    ("ecs.service", "ecs-init"),
    ("docker.service", "dockerd"),
    ("amazon-ssm-agent.service", "amazon-ssm-agent"),
    (
        "snap.amazon-ssm-agent.amazon-ssm-agent.service",
        "amazon-ssm-agent",
    ),
];

/// Rendered configuration files (under the root).
const CONFIG_FILES: [(&str, &str); 11] = [
    (
        "config/kubelet/config.json",
        "/etc/kubernetes/kubelet/config.json",
    ),
    ("config/kubelet/environment", "/etc/eks/kubelet/environment"),
    ("config/kubelet/kubeconfig", "/var/lib/kubelet/kubeconfig"),
    (
        "config/kubelet/bootstrap-kubeconfig",
        "/var/lib/kubelet/bootstrap-kubeconfig",
    ),
    (
        "config/kubelet/image-credential-provider.json",
        "/etc/eks/image-credential-provider/config.json",
    ),
    (
        "config/containerd/config.toml",
        "/etc/containerd/config.toml",
    ),
    (
        "config/eks-node-agent/daemon.toml",
        "/etc/eks-node-agent/daemon.toml",
    ),
    (
        "config/eks-node-agent/files.json",
        "/var/lib/eks-node-agent/files.json",
    ),
    ("config/ecs/ecs.config", "/etc/ecs/ecs.config"),
    // The second environment file of ecs.service: registry auth and other secrets, redacted.
    ("config/ecs/var-lib-ecs.config", "/var/lib/ecs/ecs.config"),
    ("system/os-release", "/etc/os-release"),
];

/// Directories whose files are collected (bundle directory, host directory).
const CONFIG_DIRS: [(&str, &str); 10] = [
    (
        "config/kubelet/config.json.d",
        "/etc/kubernetes/kubelet/config.json.d",
    ),
    (
        "config/eks-node-agent/config.d",
        "/etc/eks-node-agent/config.d",
    ),
    ("config/cni", "/etc/cni/net.d"),
    (
        "config/systemd/kubelet.service.d",
        "/etc/systemd/system/kubelet.service.d",
    ),
    (
        "config/systemd/containerd.service.d",
        "/etc/systemd/system/containerd.service.d",
    ),
    (
        "config/systemd/ecs.service.d",
        "/etc/systemd/system/ecs.service.d",
    ),
    (
        "config/systemd/docker.service.d",
        "/etc/systemd/system/docker.service.d",
    ),
    ("logs/aws-routed-eni", "/var/log/aws-routed-eni"),
    // ecs-init's and the ECS agent's own logs.
    ("logs/ecs", "/var/log/ecs"),
    ("logs/amazon-ssm-agent", "/var/log/amazon/ssm"),
];

/// Kernel state read from /proc (not under the root: always the running kernel's).
const PROC_FILES: [(&str, &str); 8] = [
    ("system/mounts", "/proc/self/mountinfo"),
    ("system/mdstat", "/proc/mdstat"),
    ("system/uptime", "/proc/uptime"),
    ("system/meminfo", "/proc/meminfo"),
    ("system/cmdline", "/proc/cmdline"),
    (
        "network/conntrack-count",
        "/proc/sys/net/netfilter/nf_conntrack_count",
    ),
    (
        "network/conntrack-max",
        "/proc/sys/net/netfilter/nf_conntrack_max",
    ),
    ("network/conntrack-stats", "/proc/net/stat/nf_conntrack"),
];

/// Commands run on the host (bundle path, argv).
const COMMANDS: &[(&str, &[&str])] = &[
    ("system/sysctl.txt", &["sysctl", "-a"]),
    ("system/lsblk.json", &["lsblk", "--json", "--output-all"]),
    ("system/df.txt", &["df", "-h"]),
    ("system/findmnt.txt", &["findmnt", "--list"]),
    (
        "system/mdadm.txt",
        &["mdadm", "--detail", "--scan", "--verbose"],
    ),
    (
        "system/ps.txt",
        &["ps", "-eo", "pid,ppid,user,stat,start,rss,args"],
    ),
    (
        "system/systemctl-failed.txt",
        &["systemctl", "--failed", "--no-pager"],
    ),
    ("system/uname.txt", &["uname", "-a"]),
    ("network/interfaces.txt", &["ip", "-d", "address", "show"]),
    ("network/links.txt", &["ip", "-s", "-d", "link", "show"]),
    (
        "network/routes.txt",
        &["ip", "route", "show", "table", "all"],
    ),
    (
        "network/routes6.txt",
        &["ip", "-6", "route", "show", "table", "all"],
    ),
    ("network/rules.txt", &["ip", "rule", "show"]),
    ("network/rules6.txt", &["ip", "-6", "rule", "show"]),
    ("network/neighbours.txt", &["ip", "neigh", "show"]),
    ("network/iptables.txt", &["iptables-save"]),
    ("network/ip6tables.txt", &["ip6tables-save"]),
    ("network/nftables.txt", &["nft", "list", "ruleset"]),
    ("network/sockets.txt", &["ss", "-tulpn"]),
    ("network/conntrack-stats.txt", &["conntrack", "-S"]),
    ("versions/kubelet.txt", &["kubelet", "--version"]),
    ("versions/containerd.txt", &["containerd", "--version"]),
    ("versions/runc.txt", &["runc", "--version"]),
    ("versions/docker.txt", &["docker", "version"]),
    (
        "versions/amazon-ssm-agent.txt",
        &["amazon-ssm-agent", "-version"],
    ),
    ("versions/systemd.txt", &["systemctl", "--version"]),
];

/// ipamd's introspection endpoints (bundle path, URL path) on [`IPAMD_INTROSPECTION`].
pub const IPAMD_PATHS: [(&str, &str); 4] = [
    ("cni/ipamd-enis.json", "/v1/enis"),
    ("cni/ipamd-eni-configs.json", "/v1/eni-configs"),
    (
        "cni/ipamd-networkutils-env.json",
        "/v1/networkutils-env-settings",
    ),
    ("cni/ipamd-env.json", "/v1/ipamd-env-settings"),
];
/// ipamd's introspection listener.
pub const IPAMD_INTROSPECTION: &str = "http://127.0.0.1:61679";

/// The ECS agent's introspection endpoints (bundle path, URL path), asked on hosts with an
/// `/etc/ecs/ecs.config`.
pub const ECS_AGENT_PATHS: [(&str, &str); 2] = [
    ("ecs/agent-metadata.json", "/v1/metadata"),
    ("ecs/agent-tasks.json", "/v1/tasks"),
];

/// Whether the host under `root` is an ECS container instance (its agent's config exists).
pub fn is_ecs_host(root: &Path) -> bool {
    root.join(crate::model::ecs::ECS_CONFIG.trim_start_matches('/'))
        .is_file()
}

/// What the list depends on.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Files are read under this directory.
    pub root: PathBuf,
    /// Journal entries since this many seconds ago.
    pub since: Duration,
    /// This binary, for `status -o json` and `version`.
    pub agent: PathBuf,
    /// The NodeConfig sources given to `collect` (passed on to `status`).
    pub sources: Vec<String>,
}

/// The journal of one unit (or the kernel's), read newest first (see [`Source::Journal`]).
fn journal(since: Duration, matches: &[String]) -> Source {
    let mut argv: Vec<String> = [
        "journalctl",
        "--no-pager",
        "--all",
        "--reverse",
        "--output",
        "json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    argv.push("--since".into());
    argv.push(format!("@{}", now.saturating_sub(since.as_secs())));
    argv.extend(matches.iter().cloned());
    Source::Journal(argv)
}

/// The files of `dir` (under the root), sorted; none when it does not exist.
fn files_in(root: &Path, dir: &str) -> Vec<(String, PathBuf)> {
    let host = root.join(dir.trim_start_matches('/'));
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&host)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
        .collect();
    out.sort();
    out
}

/// Every item, in bundle order, except those the caller makes itself (NodeConfig, IMDS,
/// metrics, ipamd).
pub fn items(plan: &Plan) -> Vec<Item> {
    let mut items = Vec::new();
    let mut add = |path: String, source: Source, keep_tail: bool| {
        items.push(Item {
            path,
            source,
            keep_tail,
        })
    };
    for (unit, ident) in JOURNAL_UNITS {
        let matches = vec![
            format!("_SYSTEMD_UNIT={unit}"),
            "+".into(),
            format!("UNIT={unit}"),
            "+".into(),
            format!("SYSLOG_IDENTIFIER={ident}"),
        ];
        add(
            format!("journal/{}.log", unit.trim_end_matches(".service")),
            journal(plan.since, &matches),
            false,
        );
    }
    add(
        "journal/kernel.log".into(),
        journal(plan.since, &["--dmesg".to_owned()]),
        false,
    );
    let agent = plan.agent.display().to_string();
    let mut status = vec![agent.clone(), "status".into(), "-o".into(), "json".into()];
    status.extend(["--timeout".into(), "8".into()]);
    for s in &plan.sources {
        status.extend(["--config-source".into(), s.clone()]);
    }
    add("status.json".into(), Source::Command(status), false);
    add(
        "versions/eks-node-agent.txt".into(),
        Source::Command(vec![agent, "version".into()]),
        false,
    );
    for (path, argv) in COMMANDS {
        add(
            (*path).to_owned(),
            Source::Command(argv.iter().map(|s| (*s).to_owned()).collect()),
            false,
        );
    }
    for (path, file) in PROC_FILES {
        add(path.to_owned(), Source::File(PathBuf::from(file)), false);
    }
    for (path, file) in CONFIG_FILES {
        add(
            path.to_owned(),
            Source::File(plan.root.join(file.trim_start_matches('/'))),
            false,
        );
    }
    for (dir, host) in CONFIG_DIRS {
        let logs = dir.starts_with("logs/");
        for (name, file) in files_in(&plan.root, host) {
            add(format!("{dir}/{name}"), Source::File(file), logs);
        }
    }
    items
}
