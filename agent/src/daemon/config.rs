//! The daemon's own config file, `/etc/eks-node-agent/daemon.toml` (TOML), read at start
//! (a bad file is exit 2) and on SIGHUP (a bad file keeps the running config):
//!
//! ```toml
//! [checks.kernel]            # per check: interval_secs, timeout_secs, enabled
//! interval_secs = 30
//!
//! [severity]                 # per reason (or catalog template): "fatal" or "warning"
//! SoftLockup = "fatal"
//!
//! [taints.KernelReady]       # opt-in, per condition: tainted while the condition is False
//! key = "eks-node-agent/KernelReady"   # the default; the value is the reason
//! effect = "NoSchedule"                # NoSchedule (default), PreferNoSchedule, NoExecute
//!
//! [kubernetes]
//! taint_kubeconfig = "/etc/eks-node-agent/taint-kubeconfig"  # who may change the Node's taints
//!
//! [networking]
//! cni_grace_secs = 300       # no CNI yet is not a problem until this long after boot
//!
//! [kernel]
//! problem_hold_secs = 600    # a kernel log problem stays active this long after its last sighting
//!
//! [coexistence]
//! node_monitoring_agent = "auto"   # auto | step-back | ignore
//! probe_interval_secs = 300
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Error;
use crate::checks::reasons::{Policy, Severity};
use crate::checks::{CheckKind, Schedule};
use crate::model::ConditionType;
use crate::report::taints::{Effect, TaintSpec};

/// Shortest check interval or timeout the config file may set, in seconds.
const MIN_SCHEDULE_SECS: f64 = 0.001;
/// Longest check interval or timeout the config file may set (a day), in seconds.
const MAX_SCHEDULE_SECS: f64 = 86_400.0;
/// Default boot grace for a node without a CNI yet.
pub const DEFAULT_CNI_GRACE_SECS: u64 = 300;
/// Default interval of the look for the EKS node monitoring agent.
pub const DEFAULT_COEXISTENCE_PROBE_SECS: u64 = 300;

/// Per-check settings from the config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Seconds between runs (fractions allowed).
    pub interval_secs: Option<f64>,
    /// Seconds one run may take (fractions allowed).
    pub timeout_secs: Option<f64>,
    /// Run this check at all.
    pub enabled: Option<bool>,
}

/// One condition's taint.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaintFile {
    /// The taint key (default `eks-node-agent/<condition>`).
    pub key: Option<String>,
    /// The effect (default `NoSchedule`).
    pub effect: Option<String>,
}

/// `[kubernetes]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesFile {
    /// A kubeconfig whose identity may patch the Node's taints (the kubelet's may not: the
    /// NodeRestriction admission plugin forbids a node to change its own taints).
    pub taint_kubeconfig: Option<PathBuf>,
}

/// `[networking]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkingFile {
    /// Seconds after boot during which no CNI yet is not a problem.
    pub cni_grace_secs: Option<u64>,
}

/// `[kernel]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelFile {
    /// Seconds a kernel log problem (not a hardware fault) stays active after its last
    /// sighting.
    pub problem_hold_secs: Option<f64>,
}

/// `[coexistence]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoexistenceFile {
    /// `auto`, `step-back` or `ignore`.
    pub node_monitoring_agent: Option<String>,
    /// Seconds between two looks for the monitoring agent.
    pub probe_interval_secs: Option<f64>,
}

/// The daemon's config file (TOML), reloaded on SIGHUP.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Per check, by name.
    #[serde(default)]
    pub checks: BTreeMap<String, CheckFile>,
    /// Per reason, `fatal` or `warning`.
    #[serde(default)]
    pub severity: BTreeMap<String, String>,
    /// Per condition type, its taint.
    #[serde(default)]
    pub taints: BTreeMap<String, TaintFile>,
    /// The Kubernetes side.
    #[serde(default)]
    pub kubernetes: KubernetesFile,
    /// Networking.
    #[serde(default)]
    pub networking: NetworkingFile,
    /// The kernel log.
    #[serde(default)]
    pub kernel: KernelFile,
    /// Living with the EKS node monitoring agent.
    #[serde(default)]
    pub coexistence: CoexistenceFile,
    /// `[lifecycle]`: the EC2 lifecycle event watchers (read at start, not on SIGHUP).
    #[serde(default)]
    pub lifecycle: crate::lifecycle::config::File,
}

/// What the daemon does when the EKS node monitoring agent also runs on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coexistence {
    /// Look for it (its pod on the node, or another writer of our condition types) and step
    /// back while it is there.
    Auto,
    /// Never write the condition types: events and metrics only.
    StepBack,
    /// Write them whatever else runs.
    Ignore,
}

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The checks to run and when.
    pub schedules: BTreeMap<CheckKind, Schedule>,
    /// Severities.
    pub policy: Policy,
    /// Taints, per condition.
    pub taints: BTreeMap<ConditionType, TaintSpec>,
    /// Who writes taints (`None`: the main kubeconfig).
    pub taint_kubeconfig: Option<PathBuf>,
    /// Boot grace for a node without a CNI.
    pub cni_grace: Duration,
    /// How long a kernel log problem stays active.
    pub problem_hold: Duration,
    /// The coexistence rule.
    pub coexistence: Coexistence,
    /// How often to look for the monitoring agent.
    pub coexistence_probe: Duration,
    /// The lifecycle watchers' settings.
    pub lifecycle: crate::lifecycle::Settings,
}

impl Default for Config {
    fn default() -> Self {
        validate(&ConfigFile::default(), Path::new("-")).unwrap_or_else(|_| unreachable!())
    }
}

fn bad(path: &Path, message: String) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        message,
    }
}

fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    all.iter().map(|x| name(*x)).collect::<Vec<_>>().join(", ")
}

/// Checks every field and builds the config.
pub fn validate(file: &ConfigFile, path: &Path) -> Result<Config, Error> {
    let mut schedules = BTreeMap::new();
    for (name, c) in &file.checks {
        if CheckKind::parse(name).is_none() {
            return Err(bad(
                path,
                format!(
                    "unknown check [checks.{name}]; known: {}",
                    names(&CheckKind::ALL, CheckKind::as_str)
                ),
            ));
        }
        let out_of_range = |v: Option<f64>| {
            v.is_some_and(|v| !(MIN_SCHEDULE_SECS..=MAX_SCHEDULE_SECS).contains(&v))
        };
        if out_of_range(c.interval_secs) || out_of_range(c.timeout_secs) {
            return Err(bad(
                path,
                format!(
                    "[checks.{name}] interval_secs and timeout_secs must be between {MIN_SCHEDULE_SECS} and {MAX_SCHEDULE_SECS}"
                ),
            ));
        }
    }
    for kind in CheckKind::ALL {
        let c = file.checks.get(kind.as_str()).cloned().unwrap_or_default();
        if c.enabled == Some(false) {
            continue;
        }
        let d = kind.default_schedule();
        schedules.insert(
            kind,
            Schedule {
                interval: c.interval_secs.map_or(d.interval, Duration::from_secs_f64),
                timeout: c.timeout_secs.map_or(d.timeout, Duration::from_secs_f64),
            },
        );
    }
    let mut policy = Policy::default();
    for (reason, value) in &file.severity {
        let severity = Severity::parse(value).ok_or_else(|| {
            bad(
                path,
                format!(
                    "[severity] {reason} = {value:?}: the value must be \"fatal\" or \"warning\""
                ),
            )
        })?;
        policy.set(reason, severity).map_err(|e| {
            bad(
                path,
                format!("[severity] {e}; docs/run.md lists every reason"),
            )
        })?;
    }
    let mut taints = BTreeMap::new();
    for (condition, t) in &file.taints {
        let ct = ConditionType::parse(condition).ok_or_else(|| {
            bad(
                path,
                format!(
                    "unknown condition [taints.{condition}]; known: {}",
                    names(&ConditionType::ALL, ConditionType::as_str)
                ),
            )
        })?;
        let key = t
            .key
            .clone()
            .unwrap_or_else(|| format!("eks-node-agent/{}", ct.as_str()));
        if let Err(why) = crate::report::taints::validate_key(&key) {
            return Err(bad(
                path,
                format!("[taints.{condition}] key {key:?}: {why}"),
            ));
        }
        let effect = match t.effect.as_deref() {
            None => Effect::NoSchedule,
            Some(e) => Effect::parse(e).ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "[taints.{condition}] effect {e:?}: use NoSchedule, PreferNoSchedule or NoExecute"
                    ),
                )
            })?,
        };
        taints.insert(ct, TaintSpec { key, effect });
    }
    if let Some(dupe) = taints.values().enumerate().find_map(|(i, a)| {
        taints
            .values()
            .skip(i + 1)
            .find(|b| b.key == a.key)
            .map(|_| a.key.clone())
    }) {
        return Err(bad(
            path,
            format!("[taints] two conditions use the key {dupe:?}; give each its own key"),
        ));
    }
    let coexistence = match file.coexistence.node_monitoring_agent.as_deref() {
        None | Some("auto") => Coexistence::Auto,
        Some("step-back") => Coexistence::StepBack,
        Some("ignore") => Coexistence::Ignore,
        Some(other) => {
            return Err(bad(
                path,
                format!(
                    "[coexistence] node_monitoring_agent = {other:?}: use \"auto\", \"step-back\" or \"ignore\""
                ),
            ));
        }
    };
    let probe = file
        .coexistence
        .probe_interval_secs
        .unwrap_or(DEFAULT_COEXISTENCE_PROBE_SECS as f64);
    if !(MIN_SCHEDULE_SECS..=MAX_SCHEDULE_SECS).contains(&probe) {
        return Err(bad(
            path,
            format!(
                "[coexistence] probe_interval_secs must be between {MIN_SCHEDULE_SECS} and {MAX_SCHEDULE_SECS}"
            ),
        ));
    }
    let grace = file
        .networking
        .cni_grace_secs
        .unwrap_or(DEFAULT_CNI_GRACE_SECS);
    if grace > MAX_SCHEDULE_SECS as u64 {
        return Err(bad(
            path,
            format!("[networking] cni_grace_secs must be at most {MAX_SCHEDULE_SECS}"),
        ));
    }
    let hold = file
        .kernel
        .problem_hold_secs
        .unwrap_or(crate::checks::kernel::PROBLEM_HOLD.as_secs_f64());
    if !(MIN_SCHEDULE_SECS..=MAX_SCHEDULE_SECS).contains(&hold) {
        return Err(bad(
            path,
            format!(
                "[kernel] problem_hold_secs must be between {MIN_SCHEDULE_SECS} and {MAX_SCHEDULE_SECS}"
            ),
        ));
    }
    Ok(Config {
        problem_hold: Duration::from_secs_f64(hold),
        schedules,
        policy,
        taints,
        taint_kubeconfig: file.kubernetes.taint_kubeconfig.clone(),
        cni_grace: Duration::from_secs(grace),
        coexistence,
        coexistence_probe: Duration::from_secs_f64(probe),
        lifecycle: crate::lifecycle::config::validate(&file.lifecycle)
            .map_err(|e| bad(path, e.to_string()))?,
    })
}

/// The largest daemon config file read (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Reads and validates the config file (at most [`MAX_CONFIG_BYTES`]); a missing file means
/// the defaults.
pub fn load(path: Option<&Path>) -> Result<Config, Error> {
    let Some(path) = path else {
        return validate(&ConfigFile::default(), Path::new("-"));
    };
    let text = match crate::model::bounded::read_to_string_capped(path, MAX_CONFIG_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(Error::ConfigRead {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|source| Error::ConfigParse {
        path: path.to_path_buf(),
        source,
    })?;
    validate(&file, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        validate(&toml::from_str(text).unwrap(), Path::new("/etc/x.toml"))
    }

    #[test]
    fn checks_errors_name_the_check() {
        assert!(
            parse("[checks.kubelett]\ninterval_secs = 5\n")
                .unwrap_err()
                .to_string()
                .contains("kubelett")
        );
        let c = parse("[checks.kubelet]\nenabled = false\n[checks.kernel]\ninterval_secs = 2\n")
            .unwrap();
        assert!(!c.schedules.contains_key(&CheckKind::Kubelet));
        assert_eq!(
            c.schedules[&CheckKind::Kernel].interval,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn severities_taints_and_their_errors() {
        let c = parse(
            "[severity]\nSoftLockup = \"fatal\"\nIPAMDNotRunning = \"warning\"\n\
             [taints.KernelReady]\n[taints.AcceleratedHardwareReady]\nkey = \"example.com/gpu\"\neffect = \"NoExecute\"\n",
        )
        .unwrap();
        assert_eq!(c.policy.severity("SoftLockup"), Severity::Fatal);
        assert_eq!(c.policy.severity("IPAMDNotRunning"), Severity::Warning);
        assert_eq!(
            c.taints[&ConditionType::KernelReady].key,
            "eks-node-agent/KernelReady"
        );
        assert_eq!(
            c.taints[&ConditionType::KernelReady].effect,
            Effect::NoSchedule
        );
        assert_eq!(
            c.taints[&ConditionType::AcceleratedHardwareReady].effect,
            Effect::NoExecute
        );
        for (text, needle) in [
            (
                "[severity]\nSoftLockup = \"fatl\"\n",
                "must be \"fatal\" or \"warning\"",
            ),
            (
                "[severity]\nSoftLokup = \"fatal\"\n",
                "did you mean SoftLockup",
            ),
            (
                "[severity]\nKubeletCertificateExpired = \"fatal\"\n",
                "cannot be made fatal",
            ),
            ("[taints.KernelReadyy]\n", "unknown condition"),
            (
                "[taints.KernelReady]\neffect = \"NoScheduel\"\n",
                "NoSchedule, PreferNoSchedule",
            ),
            ("[taints.KernelReady]\nkey = \"bad key!\"\n", "bad key!"),
            (
                "[taints.KernelReady]\nkey = \"a/b\"\n[taints.StorageReady]\nkey = \"a/b\"\n",
                "two conditions",
            ),
            ("[coexistence]\nnode_monitoring_agent = \"maybe\"\n", "auto"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("/etc/x.toml"),
                "{text}: {e}"
            );
        }
        let d = Config::default();
        assert_eq!(d.coexistence, Coexistence::Auto);
        assert_eq!(d.cni_grace, Duration::from_secs(DEFAULT_CNI_GRACE_SECS));
    }
}
