//! `status`: pre-flight and post-join checks of a node, in the spirit of `nodeadm debug`.
//!
//! Each check is a pure function in [`checks`] over what the IO shell in [`probe`] observed.
//! [`run`] gathers the observations concurrently, each bounded by [`Inputs::timeout`], and
//! returns one [`CheckResult`] per check, in the order of [`checks::ALL`]. Every path,
//! endpoint and clock the checks read is a field of [`Inputs`] with a production default.

pub mod checks;
pub mod probe;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use crate::auth::Clock;
use crate::auth::credentials::Env;
use crate::config::NodeConfig;

/// How long one check (or one stage of a check that depends on another) may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// Where the kernel's process and socket tables are.
pub const DEFAULT_PROC_ROOT: &str = "/proc";
/// The host root (systemd drop-ins are read under `etc/systemd/system`).
pub const DEFAULT_HOST_ROOT: &str = "/";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing wrong.
    Ok,
    /// Something to look at; the node can still work.
    Warn,
    /// The node will not join or work until this is fixed.
    Fail,
}

impl Status {
    /// `ok`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// The check's stable name (see [`checks::ALL`]).
    pub name: &'static str,
    /// ok, warn or fail.
    pub status: Status,
    /// What was observed (never a secret).
    pub evidence: String,
    /// What to do (`nothing to do` when ok).
    pub fix: String,
}

impl CheckResult {
    /// A result.
    pub fn new(
        name: &'static str,
        status: Status,
        evidence: impl Into<String>,
        fix: impl Into<String>,
    ) -> CheckResult {
        CheckResult {
            name,
            status,
            evidence: one_line(&evidence.into()),
            fix: one_line(&fix.into()),
        }
    }
}

/// Multi-line text (some SDK errors list every provider tried) joined into one line.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

/// Where the clock state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockSource {
    /// The kernel, through `adjtimex(2)` read-only ([`crate::report::host::timex::read`]).
    Kernel,
    /// A JSON file with the raw `struct timex` fields (tests, offline diagnosis).
    File(PathBuf),
}

/// Everything the checks read, with production defaults from [`Inputs::new`].
#[derive(Clone)]
pub struct Inputs {
    /// The merged NodeConfig.
    pub config: NodeConfig,
    /// The proc filesystem (`/proc`): swaps, net/tcp, net/tcp6, PID directories.
    pub proc_root: PathBuf,
    /// The host root (`/`): systemd drop-ins of containerd and kubelet.
    pub host_root: PathBuf,
    /// Directories searched for kubelet and containerd (`PATH`).
    pub search_path: String,
    /// The node IP to check (else the kubelet's `--node-ip` flag in the config, else the
    /// address that routes to the API server).
    pub node_ip: Option<IpAddr>,
    /// Remote node networks to check against instead of asking DescribeCluster.
    pub remote_node_networks: Vec<IpNet>,
    /// STS endpoint override (else `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the regional).
    pub sts_endpoint: Option<String>,
    /// EKS endpoint override (else the SDK's resolution, including `AWS_ENDPOINT_URL_EKS`).
    pub eks_endpoint: Option<String>,
    /// IAM Roles Anywhere endpoint override (else the region's).
    pub rolesanywhere_endpoint: Option<String>,
    /// The environment (credentials chain, region, proxies).
    pub env: Arc<Env>,
    /// The clock state source.
    pub clock_source: ClockSource,
    /// The wall clock used for signing.
    pub clock: Arc<dyn Clock>,
    /// Bound on each check.
    pub timeout: Duration,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("proc_root", &self.proc_root)
            .field("host_root", &self.host_root)
            .field("node_ip", &self.node_ip)
            .field("remote_node_networks", &self.remote_node_networks)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("eks_endpoint", &self.eks_endpoint)
            .field("clock_source", &self.clock_source)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Inputs {
    /// Production defaults for `config`: `/proc`, `/`, `PATH`, the process environment, the
    /// kernel clock, [`CHECK_TIMEOUT`].
    pub fn new(config: NodeConfig) -> Inputs {
        Inputs {
            config,
            proc_root: PathBuf::from(DEFAULT_PROC_ROOT),
            host_root: PathBuf::from(DEFAULT_HOST_ROOT),
            search_path: std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/usr/sbin".into()),
            node_ip: None,
            remote_node_networks: Vec::new(),
            sts_endpoint: None,
            eks_endpoint: None,
            rolesanywhere_endpoint: None,
            env: Arc::new(crate::auth::credentials::process_env),
            clock_source: ClockSource::Kernel,
            clock: Arc::new(crate::auth::SystemClock),
            timeout: CHECK_TIMEOUT,
        }
    }
}

/// The checks' results in [`checks::ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// One per check.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// True when no check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    fn count(&self, s: Status) -> usize {
        self.checks.iter().filter(|c| c.status == s).count()
    }

    /// The human-readable report: per check a status line with the evidence and a fix line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<4} {}: {}\n",
                c.status.as_str(),
                c.name,
                c.evidence
            ));
            out.push_str(&format!("     fix: {}\n", c.fix));
        }
        out.push_str(&format!(
            "{} checks: {} ok, {} warn, {} fail\n",
            self.checks.len(),
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }

    /// The JSON report: `{"checks": [{name, status, evidence, fix}...], "summary": {...}}`.
    pub fn json(&self) -> String {
        let value = serde_json::json!({
            "checks": self.checks,
            "summary": {
                "ok": self.count(Status::Ok),
                "warn": self.count(Status::Warn),
                "fail": self.count(Status::Fail),
            }
        });
        format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )
    }
}

/// The units that get `spec.instance.environment.default`, as `init` writes them.
const DEFAULT_ENV_UNITS: [&str; 2] = ["containerd.service", "kubelet.service"];

/// The environment the NodeConfig gives each unit (`default` to containerd and kubelet;
/// other keys name their unit; unit values win), as `init` renders the drop-ins.
pub fn configured_environment(config: &NodeConfig) -> BTreeMap<String, BTreeMap<String, String>> {
    let env = &config.spec.instance.environment;
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if let Some(defaults) = env.get("default") {
        for unit in DEFAULT_ENV_UNITS {
            out.entry(unit.to_owned())
                .or_default()
                .extend(defaults.clone());
        }
    }
    for (unit, vars) in env.iter().filter(|(u, _)| u.as_str() != "default") {
        let unit = if unit.contains('.') {
            unit.clone()
        } else {
            format!("{unit}.service")
        };
        out.entry(unit).or_default().extend(vars.clone());
    }
    out
}

/// The kubelet's `--node-ip` from `spec.kubelet.flags` (the first address when dual-stack).
pub fn kubelet_node_ip(config: &NodeConfig) -> Option<IpAddr> {
    let flags = &config.spec.kubelet.flags;
    flags.iter().enumerate().find_map(|(i, f)| {
        let rest = f.strip_prefix("--node-ip")?;
        let value = match rest.strip_prefix('=') {
            Some(v) => v.to_owned(),
            None if rest.is_empty() => flags.get(i + 1)?.clone(),
            None => return None,
        };
        value.split(',').next()?.trim().parse().ok()
    })
}

/// The kubelet's `failSwapOn` from the config (true unless set to false).
pub fn fail_swap_on(config: &NodeConfig) -> bool {
    config
        .spec
        .kubelet
        .config
        .get("failSwapOn")
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

/// Runs every check and returns the report.
pub async fn run(inputs: &Inputs) -> Report {
    Report {
        checks: probe::run_all(inputs).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ip_flag_forms() {
        let mut c = NodeConfig::default();
        c.spec.kubelet.flags = vec!["--v=2".into(), "--node-ip=10.1.2.3,fd00::1".into()];
        assert_eq!(kubelet_node_ip(&c), Some("10.1.2.3".parse().unwrap()));
        c.spec.kubelet.flags = vec!["--node-ip".into(), "10.9.9.9".into()];
        assert_eq!(kubelet_node_ip(&c), Some("10.9.9.9".parse().unwrap()));
        c.spec.kubelet.flags = vec!["--node-ips=1.1.1.1".into()];
        assert_eq!(kubelet_node_ip(&c), None);
    }

    #[test]
    fn environment_spreads_like_init() {
        let mut c = NodeConfig::default();
        let env = &mut c.spec.instance.environment;
        env.entry("default".into())
            .or_default()
            .insert("HTTPS_PROXY".into(), "http://p:1".into());
        env.entry("kubelet".into())
            .or_default()
            .insert("HTTPS_PROXY".into(), "http://k:1".into());
        let out = configured_environment(&c);
        assert_eq!(out["containerd.service"]["HTTPS_PROXY"], "http://p:1");
        assert_eq!(out["kubelet.service"]["HTTPS_PROXY"], "http://k:1");
    }

    #[test]
    fn report_renders_every_check_with_a_fix() {
        let report = Report {
            checks: vec![
                CheckResult::new("a", Status::Ok, "fine", checks::NOTHING_TO_DO),
                CheckResult::new("b", Status::Fail, "broken", "mend it"),
            ],
        };
        assert!(!report.passed());
        let text = report.text();
        assert!(
            text.contains("ok   a: fine\n     fix: nothing to do\n"),
            "{text}"
        );
        assert!(
            text.contains("fail b: broken\n     fix: mend it\n"),
            "{text}"
        );
        assert_eq!(one_line("tried:\n  a\n  b\n"), "tried: a; b");
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["checks"][1]["status"], "fail");
        assert_eq!(json["summary"]["fail"], 1);
    }
}
