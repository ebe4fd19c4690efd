//! The `proxy` check of `status`: every environment that sets a proxy (the NodeConfig's
//! `spec.instance.environment` per unit, the drop-ins on disk, this process) exempts what must
//! not be proxied (loopback, the API server, IMDS on EC2, the service CIDR) in `NO_PROXY`, and
//! the drop-ins on disk say what the NodeConfig says (as `init` renders them).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::Outcome;
use super::status::{fail, ok, warn};
use crate::auth::credentials::Env;
use crate::config::NodeConfig;
use crate::render::system::{DEFAULT_ENV_UNITS, environment_by_unit};

/// The EC2 instance metadata address, which must never go through a proxy.
pub const IMDS_ADDRESS: &str = "169.254.169.254";

/// The proxy variables, by their upper-case name.
pub const PROXY_VARS: [&str; 3] = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"];

/// The proxy variables of an environment, names upper-cased (the upper-case spelling wins
/// when both are set, as Go's net/http does).
pub fn proxy_env(vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in PROXY_VARS {
        let value = vars
            .get(name)
            .or_else(|| vars.get(&name.to_ascii_lowercase()))
            .filter(|v| !v.trim().is_empty());
        if let Some(v) = value {
            out.insert(name.to_owned(), v.trim().to_owned());
        }
    }
    out
}

/// A proxy URL with any user:password replaced, for evidence.
pub fn redact_proxy(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => match url.split_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        },
    }
}

/// Whether `NO_PROXY` (Go's net/http rules, which containerd and the kubelet use) exempts
/// `host`: `*`; an IP or a CIDR containing it; a name matching exactly or as a parent domain
/// (`example.com`, `.example.com`, `*.example.com`). Ports on entries are ignored.
pub fn no_proxy_covers(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    no_proxy.split(',').map(str::trim).any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" {
            return true;
        }
        if let Ok(net) = entry.parse::<IpNet>() {
            return ip.is_some_and(|ip| net.contains(&ip));
        }
        let entry = strip_port(&entry);
        if let Ok(e) = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return ip == Some(e);
        }
        if entry.is_empty() || ip.is_some() {
            return false;
        }
        let suffix = entry.trim_start_matches("*.").trim_start_matches('.');
        let exact_allowed = !entry.starts_with('.') || entry.starts_with("*.");
        (exact_allowed && host == suffix) || host.ends_with(&format!(".{suffix}"))
    })
}

/// Whether `NO_PROXY` exempts every address of `net` (a CIDR entry that contains it).
pub fn no_proxy_covers_net(no_proxy: &str, net: &IpNet) -> bool {
    no_proxy
        .split(',')
        .map(str::trim)
        .any(|entry| entry == "*" || entry.parse::<IpNet>().is_ok_and(|e| e.contains(net)))
}

fn strip_port(entry: &str) -> &str {
    if entry.starts_with('[') {
        return entry.find(']').map_or(entry, |i| &entry[..=i]);
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => entry,
    }
}

/// What the proxy check looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyInputs {
    /// True on EC2 (IMDS must bypass the proxy).
    pub ec2: bool,
    /// The API server's host name or IP, when known.
    pub api_host: Option<String>,
    /// The service CIDR, when known.
    pub service_cidr: Option<IpNet>,
    /// Environment by unit from the NodeConfig (`default` spread over containerd and kubelet).
    pub configured: BTreeMap<String, BTreeMap<String, String>>,
    /// This process's environment (only the proxy variables are looked at).
    pub process: BTreeMap<String, String>,
    /// What the systemd drop-ins on disk set, by unit; units without drop-ins are absent.
    pub on_disk: BTreeMap<String, BTreeMap<String, String>>,
}

/// Whether a NO_PROXY value exempts one required destination.
type Covers<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// The `proxy` check.
pub fn check(input: &ProxyInputs) -> Outcome {
    // Every environment that sets a proxy must exempt the same destinations.
    let mut envs: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for (unit, vars) in &input.configured {
        envs.push((
            format!("spec.instance.environment for {unit}"),
            proxy_env(vars),
        ));
    }
    for (unit, vars) in &input.on_disk {
        envs.push((format!("{unit} drop-ins on disk"), proxy_env(vars)));
    }
    envs.push((
        "this process's environment".into(),
        proxy_env(&input.process),
    ));
    envs.retain(|(_, p)| p.contains_key("HTTP_PROXY") || p.contains_key("HTTPS_PROXY"));

    let mut required: Vec<(String, Covers<'_>)> = vec![
        (
            "localhost".into(),
            Box::new(|np| no_proxy_covers(np, "localhost")),
        ),
        (
            "127.0.0.1".into(),
            Box::new(|np| no_proxy_covers(np, "127.0.0.1")),
        ),
    ];
    if let Some(host) = input
        .api_host
        .as_ref()
        .filter(|h| !["localhost", "127.0.0.1"].contains(&h.as_str()))
    {
        required.push((host.clone(), Box::new(move |np| no_proxy_covers(np, host))));
    }
    if input.ec2 {
        required.push((
            IMDS_ADDRESS.into(),
            Box::new(|np| no_proxy_covers(np, IMDS_ADDRESS)),
        ));
    }
    if let Some(net) = &input.service_cidr {
        required.push((
            net.to_string(),
            Box::new(move |np| no_proxy_covers_net(np, net)),
        ));
    }

    let mut problems = Vec::new();
    let mut missing_all: Vec<String> = Vec::new();
    for (label, vars) in &envs {
        let np = vars.get("NO_PROXY").map(String::as_str).unwrap_or("");
        let missing: Vec<String> = required
            .iter()
            .filter(|(_, covers)| !covers(np))
            .map(|(what, _)| what.clone())
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{label}: NO_PROXY does not cover {}",
                missing.join(", ")
            ));
            for m in missing {
                if !missing_all.contains(&m) {
                    missing_all.push(m);
                }
            }
        }
    }
    // Drop-ins on disk must carry what the configuration says.
    let mut drift = Vec::new();
    let mut foreign = Vec::new();
    for (unit, disk) in &input.on_disk {
        let disk = proxy_env(disk);
        let want = input
            .configured
            .get(unit)
            .map(proxy_env)
            .unwrap_or_default();
        if want.is_empty() && !disk.is_empty() {
            foreign.push(format!("{unit} drop-ins set {}", describe(&disk)));
        } else if !want.is_empty() && want != disk {
            drift.push(format!(
                "{unit}: drop-ins on disk set {} but the NodeConfig says {}",
                describe(&disk),
                describe(&want)
            ));
        }
    }
    let seen = if envs.is_empty() {
        "no HTTP(S)_PROXY set (NodeConfig, drop-ins, process)".to_owned()
    } else {
        let p = &envs[0].1;
        format!(
            "proxy {} set in {} place(s)",
            redact_proxy(
                p.get("HTTPS_PROXY")
                    .or(p.get("HTTP_PROXY"))
                    .map_or("", |s| s)
            ),
            envs.len()
        )
    };
    if !problems.is_empty() || !drift.is_empty() {
        let mut evidence = problems.clone();
        evidence.extend(drift.iter().cloned());
        let mut fix = Vec::new();
        if !missing_all.is_empty() {
            fix.push(format!(
                "add {} to NO_PROXY (and no_proxy) in spec.instance.environment and every unit that sets a proxy",
                missing_all.join(",")
            ));
        }
        if !drift.is_empty() {
            fix.push("run `eks-node-agent init` to rewrite the drop-ins from the NodeConfig, or make spec.instance.environment match them".to_owned());
        }
        let reason = if problems.is_empty() {
            "ProxyDropInsDiffer"
        } else {
            "NoProxyIncomplete"
        };
        return fail(
            reason,
            format!("{seen}; {}", evidence.join("; ")),
            fix.join("; "),
        );
    }
    if !foreign.is_empty() {
        return warn(
            "ProxyNotFromNodeConfig",
            format!("{seen}; not from the NodeConfig: {}", foreign.join("; ")),
            "put the proxy settings in spec.instance.environment so every unit gets the same values",
        );
    }
    ok(seen)
}

fn describe(vars: &BTreeMap<String, String>) -> String {
    if vars.is_empty() {
        return "no proxy".to_owned();
    }
    vars.iter()
        .map(|(k, v)| {
            if k == "NO_PROXY" {
                format!("{k}={v}")
            } else {
                format!("{k}={}", redact_proxy(v))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the `Environment=` assignments of systemd unit files (later files and lines win).
pub fn parse_unit_environment(files: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for text in files {
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("Environment=") else {
                continue;
            };
            let words = shell_words::split(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(str::to_owned).collect());
            for w in words {
                if let Some((k, v)) = w.split_once('=') {
                    out.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    out
}

/// What the proxy check reads locally: the environment the NodeConfig gives each unit, what
/// their drop-ins under `host_root` set, and the proxy variables of `env` (this process). The
/// API server's host and the service CIDR are filled in once known.
pub fn gather(config: &NodeConfig, host_root: &Path, env: &Env) -> ProxyInputs {
    let configured = environment_by_unit(config);
    let mut units: Vec<String> = DEFAULT_ENV_UNITS.iter().map(|u| (*u).to_owned()).collect();
    units.extend(configured.keys().cloned());
    units.sort();
    units.dedup();
    let on_disk = units
        .into_iter()
        .filter_map(|u| environment_on_disk(host_root, &u).map(|env| (u, env)))
        .collect();
    let mut process = BTreeMap::new();
    for name in PROXY_VARS {
        for n in [name.to_owned(), name.to_ascii_lowercase()] {
            if let Some(v) = env(&n) {
                process.insert(n, v);
            }
        }
    }
    ProxyInputs {
        ec2: !config.is_hybrid(),
        configured,
        process,
        on_disk,
        ..Default::default()
    }
}

/// The environment the drop-ins of `unit` set under `<root>/etc/systemd/system/<unit>.d/`
/// (`*.conf` in name order); None when there are none.
pub fn environment_on_disk(root: &Path, unit: &str) -> Option<BTreeMap<String, String>> {
    let dir = root
        .join(crate::model::paths::SYSTEMD_UNIT_DIR.trim_start_matches('/'))
        .join(format!("{unit}.d"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    if files.is_empty() {
        return None;
    }
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    Some(parse_unit_environment(&texts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn no_proxy_matching_follows_go() {
        let np =
            "localhost,127.0.0.1,10.100.0.0/16,.eks.amazonaws.com,example.org:8080,169.254.169.254";
        assert!(no_proxy_covers(np, "ABC.gr7.us-west-2.eks.amazonaws.com"));
        assert!(!no_proxy_covers(np, "eks.amazonaws.com.evil"));
        assert!(no_proxy_covers(np, "example.org"));
        assert!(no_proxy_covers(np, "a.example.org"));
        assert!(no_proxy_covers(np, "10.100.3.4"));
        assert!(!no_proxy_covers(np, "10.101.0.1"));
        assert!(no_proxy_covers(np, "169.254.169.254"));
        assert!(!no_proxy_covers("", "localhost"));
        assert!(no_proxy_covers("*", "anything"));
        assert!(no_proxy_covers("[fd00::1]:443", "fd00::1"));
        assert!(!no_proxy_covers("[fd00::1", "localhost"));
        assert!(no_proxy_covers_net(np, &"10.100.0.0/16".parse().unwrap()));
        assert!(!no_proxy_covers_net(np, &"172.20.0.0/16".parse().unwrap()));
        assert_eq!(
            redact_proxy("http://u:secret@proxy:3128"),
            "http://***@proxy:3128"
        );
    }

    #[test]
    fn proxy_coverage_and_drift() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let good = env(&[
            ("HTTPS_PROXY", "http://user:pw@proxy:3128"),
            (
                "NO_PROXY",
                "localhost,127.0.0.1,169.254.169.254,10.100.0.0/16,.eks.amazonaws.com",
            ),
        ]);
        let mut input = ProxyInputs {
            ec2: true,
            api_host: Some("x.gr7.us-west-2.eks.amazonaws.com".into()),
            service_cidr: Some("10.100.0.0/16".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(check(&input).status, Status::Ok);
        input
            .configured
            .insert("kubelet.service".into(), good.clone());
        input.on_disk.insert("kubelet.service".into(), good.clone());
        let r = check(&input);
        assert_eq!(r.status, Status::Ok, "{}", r.evidence);
        assert!(!r.evidence.contains("pw"));
        // A drop-in that differs from the config.
        input.on_disk.insert(
            "kubelet.service".into(),
            env(&[
                ("HTTPS_PROXY", "http://other:3128"),
                ("NO_PROXY", good["NO_PROXY"].as_str()),
            ]),
        );
        let r = check(&input);
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("eks-node-agent init"), "{}", r.fix);
        // NO_PROXY without the service CIDR and IMDS.
        input.on_disk.clear();
        input.configured.insert(
            "kubelet.service".into(),
            env(&[
                ("https_proxy", "http://proxy:3128"),
                ("no_proxy", "localhost,127.0.0.1,.eks.amazonaws.com"),
            ]),
        );
        let r = check(&input);
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("169.254.169.254,10.100.0.0/16"), "{}", r.fix);
    }

    #[test]
    fn unit_environment_parses_systemd_quoting() {
        let files = vec![
            "[Service]\nEnvironment=\"HTTPS_PROXY=http://p:3128\" \"NO_PROXY=a,b\"\n".to_owned(),
            "[Service]\nEnvironment=NO_PROXY=c\n".to_owned(),
        ];
        let env = parse_unit_environment(&files);
        assert_eq!(env["HTTPS_PROXY"], "http://p:3128");
        assert_eq!(env["NO_PROXY"], "c");
    }

    #[test]
    fn dropins_from_a_fake_root() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("etc/systemd/system/kubelet.service.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("10-a.conf"),
            "[Service]\nEnvironment=\"NO_PROXY=a\"\n",
        )
        .unwrap();
        std::fs::write(d.join("20-b.conf"), "[Service]\nEnvironment=NO_PROXY=b\n").unwrap();
        assert_eq!(
            environment_on_disk(dir.path(), "kubelet.service").unwrap()["NO_PROXY"],
            "b"
        );
        assert!(environment_on_disk(dir.path(), "containerd.service").is_none());
    }
}
