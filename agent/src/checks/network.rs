//! Pod networking as any CNI needs it, whichever CNI the node runs (the VPC CNI's own checks
//! are in [`super::probes::vpc_cni`] and apply only where it is installed): a CNI config in
//! the runtime's CNI config directory, the loopback interface, and the interface of the
//! default route administratively up and running. The container runtime's CRI
//! `NetworkReady` (from the containerd check) completes the picture.

use std::path::Path;

use super::Outcome;

/// `IFF_UP` in `/sys/class/net/<if>/flags`: administratively up. (That file holds the device's
/// own flags, which never include `IFF_RUNNING`: whether the link runs is its `carrier`.)
const IFF_UP: u32 = 0x1;
/// The most entries read from the CNI config directory.
const MAX_CONF_ENTRIES: usize = 1024;

/// What was seen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    /// CNI config files in the runtime's directory (`*.conf`, `*.conflist`, `*.json`).
    pub cni_configs: Vec<String>,
    /// The runtime's CNI config directory exists.
    pub conf_dir_exists: bool,
    /// `lo` exists.
    pub loopback: bool,
    /// The default route's interface, its flags and its carrier, when there is a default
    /// route.
    pub primary: Option<Primary>,
}

/// The default route's interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Primary {
    /// Its name.
    pub name: String,
    /// `/sys/class/net/<if>/flags`.
    pub flags: Option<u32>,
    /// `/sys/class/net/<if>/carrier` (unreadable while the interface is down).
    pub carrier: Option<bool>,
}

/// The most bytes read of a CNI config file.
const MAX_CONF_BYTES: usize = 1024 * 1024;

/// The CNI plugin a node runs, as its CNI config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cni {
    /// Cilium (`cilium-cni`).
    Cilium,
    /// Calico (`calico`).
    Calico,
    /// The Amazon VPC CNI (`aws-cni`).
    VpcCni,
    /// Another plugin (its type).
    Other(String),
}

impl std::fmt::Display for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cni::Cilium => f.write_str("Cilium"),
            Cni::Calico => f.write_str("Calico"),
            Cni::VpcCni => f.write_str("the VPC CNI"),
            Cni::Other(t) => write!(f, "CNI plugin {t}"),
        }
    }
}

/// The plugin types a CNI config names: each of a conflist's `plugins`, or a single
/// config's `type` (empty when the text is not a CNI config).
pub fn plugin_types(text: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let plugins = match v.get("plugins").and_then(|p| p.as_array()) {
        Some(list) => list.iter().collect(),
        None => vec![&v],
    };
    plugins
        .iter()
        .filter_map(|p| p.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .collect()
}

/// The CNI the runtime uses: the first of `configs` (sorted, as the runtime picks it) in
/// `conf_dir`, by its main (first) plugin's type; `None` without a config.
pub fn detect(conf_dir: &Path, configs: &[String]) -> Option<(Cni, String)> {
    let first = configs.first()?;
    let text = crate::model::bounded::read_to_string_capped(&conf_dir.join(first), MAX_CONF_BYTES)
        .unwrap_or_default();
    let main = plugin_types(&text).into_iter().next().unwrap_or_default();
    let cni = match main.as_str() {
        "cilium-cni" => Cni::Cilium,
        "calico" => Cni::Calico,
        "aws-cni" => Cni::VpcCni,
        "" => Cni::Other(format!("unknown (unreadable {first})")),
        other => Cni::Other(other.to_owned()),
    };
    Some((cni, first.clone()))
}

/// Reads what the verdict needs: the CNI config directory, `<sys>/class/net`, and
/// `<proc>/net/route` for the default route's interface.
pub fn read(conf_dir: &Path, sys: &Path, proc: &Path) -> Seen {
    let (conf_dir_exists, mut cni_configs) = match std::fs::read_dir(conf_dir) {
        Ok(entries) => (
            true,
            entries
                .flatten()
                .take(MAX_CONF_ENTRIES)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    [".conf", ".conflist", ".json"]
                        .iter()
                        .any(|x| n.ends_with(x))
                })
                .collect(),
        ),
        Err(_) => (false, Vec::new()),
    };
    cni_configs.sort();
    let net = sys.join("class/net");
    let primary = std::fs::read_to_string(proc.join("net/route"))
        .ok()
        .and_then(|t| crate::model::procfs::default_route_interface(&t))
        .map(|name| {
            let read = |f: &str| std::fs::read_to_string(net.join(&name).join(f)).ok();
            Primary {
                flags: read("flags")
                    .and_then(|t| u32::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok()),
                carrier: read("carrier").map(|t| t.trim() == "1"),
                name,
            }
        });
    Seen {
        cni_configs,
        conf_dir_exists,
        loopback: net.join("lo").exists(),
        primary,
    }
}

/// The verdict: every problem found.
pub fn evaluate(seen: &Seen, conf_dir: &Path) -> Outcome {
    let mut found = Vec::new();
    if seen.cni_configs.is_empty() {
        found.push(Outcome::fail(
            "CNIConfigMissing",
            format!(
                "no CNI config in {}{}: no CNI plugin is installed yet, so pods get no network",
                conf_dir.display(),
                if seen.conf_dir_exists {
                    ""
                } else {
                    " (the directory does not exist)"
                }
            ),
        ));
    }
    if !seen.loopback {
        found.push(Outcome::fail(
            "MissingLoopbackInterface",
            "the loopback interface lo is missing",
        ));
    }
    if let Some(Primary {
        name,
        flags: Some(flags),
        carrier,
    }) = &seen.primary
    {
        if flags & IFF_UP == 0 {
            found.push(Outcome::fail(
                "InterfaceNotUp",
                format!("{name}, the default route's interface, is administratively down (flags 0x{flags:x})"),
            ));
        } else if *carrier == Some(false) {
            found.push(Outcome::fail(
                "InterfaceNotRunning",
                format!("{name}, the default route's interface, is up without a carrier"),
            ));
        }
    }
    if found.is_empty() {
        let primary = seen
            .primary
            .as_ref()
            .map(|p| format!(", {} up", p.name))
            .unwrap_or_default();
        return Outcome::ok(format!(
            "CNI config {}{primary}",
            seen.cni_configs.join(", ")
        ));
    }
    Outcome::combine(found)
}

/// Reads and judges.
pub fn check(conf_dir: &Path, sys: &Path, proc: &Path) -> Outcome {
    evaluate(&read(conf_dir, sys, proc), conf_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path, conf: &[&str], lo: bool, eth0: Option<(&str, &str)>) {
        let net = root.join("sys/class/net");
        std::fs::create_dir_all(&net).unwrap();
        if lo {
            std::fs::create_dir_all(net.join("lo")).unwrap();
        }
        std::fs::create_dir_all(root.join("proc/net")).unwrap();
        std::fs::write(
            root.join("proc/net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\n",
        )
        .unwrap();
        if let Some((flags, carrier)) = eth0 {
            std::fs::create_dir_all(net.join("eth0")).unwrap();
            std::fs::write(net.join("eth0/flags"), format!("{flags}\n")).unwrap();
            std::fs::write(net.join("eth0/carrier"), format!("{carrier}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("net.d")).unwrap();
        for c in conf {
            std::fs::write(root.join("net.d").join(c), "{}").unwrap();
        }
    }

    fn reasons(root: &Path) -> Vec<String> {
        check(&root.join("net.d"), &root.join("sys"), &root.join("proc"))
            .problems()
            .into_iter()
            .map(|p| p.reason)
            .collect()
    }

    #[test]
    fn any_cni_with_lo_and_an_up_interface_is_healthy() {
        let d = tempfile::tempdir().unwrap();
        // A virtio NIC as this kernel shows it: flags without IFF_RUNNING, carrier 1.
        tree(
            d.path(),
            &["10-calico.conflist"],
            true,
            Some(("0x1003", "1")),
        );
        assert!(reasons(d.path()).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        let d = tempfile::tempdir().unwrap();
        tree(d.path(), &["README"], false, Some(("0x1002", "0")));
        assert_eq!(
            reasons(d.path()),
            [
                "CNIConfigMissing",
                "MissingLoopbackInterface",
                "InterfaceNotUp"
            ]
        );
        let d = tempfile::tempdir().unwrap();
        tree(d.path(), &["05-cilium.conf"], true, Some(("0x1003", "0")));
        assert_eq!(reasons(d.path()), ["InterfaceNotRunning"]);
    }
}
