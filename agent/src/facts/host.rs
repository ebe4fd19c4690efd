//! What is true about the local host: CPU count and memory, the default-route address, the
//! address that routes to a given destination, the installed kubelet, containerd, NVIDIA
//! runtime, SOCI snapshotter and SSM agent, accelerators on the PCI bus, instance-store disks,
//! /etc/hosts, active swap areas and /etc/fstab. Small readers around the pure parsers of
//! [`crate::model::procfs`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::auth::ssm::SSM_AGENT_PROGRAM;
use crate::model::paths::SSM_REGISTRATION;
use crate::model::{HostFacts, NodeName, Version, procfs};

/// The local address of the interface that routes to the server of `endpoint` (a URL; its
/// host is resolved and the first address used).
pub async fn route_to_endpoint(endpoint: &str) -> Result<IpAddr, String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("{endpoint:?}: {e}"))?;
    let host = url.host_str().ok_or("the endpoint has no host")?;
    let bare = host.trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(443);
    let dest = match bare.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?
            .ip(),
    };
    source_address_for(dest).ok_or_else(|| format!("no route to {dest}"))
}

/// The local address the kernel would use to reach `dest` (the interface that routes to it).
/// Connecting a UDP socket only consults the routing table: no packet is sent.
pub fn source_address_for(dest: IpAddr) -> Option<IpAddr> {
    let bind: std::net::SocketAddr = if dest.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect((dest, 443)).ok()?;
    let local = socket.local_addr().ok()?.ip();
    (!local.is_unspecified()).then_some(local)
}

/// Where the NVIDIA container runtime is installed by its packages.
const NVIDIA_RUNTIME: &str = "/usr/bin/nvidia-container-runtime";
/// Where the kubelet is installed (the EKS AMI's and `eks-node-agent install`'s path).
pub const KUBELET_BINARY: &str = "/usr/bin/kubelet";
/// Where the SOCI snapshotter is installed (the AMI's path first, then a manual install's).
const SOCI_SNAPSHOTTER: [&str; 2] = [
    "/usr/bin/soci-snapshotter-grpc",
    "/usr/local/bin/soci-snapshotter-grpc",
];
/// Parallel gzip, which the SOCI snapshotter uses to decompress layers when installed.
const UNPIGZ: &str = "/usr/bin/unpigz";
/// How long `kubelet --version` or `containerd --version` may run.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the host (files under `root`, normally `/`). The kubelet's version is a fact of its
/// own ([`kubelet_version`]): `init` reads it, with the binary's path as a parameter.
pub fn read(root: &Path) -> HostFacts {
    let read = |p: &str| std::fs::read_to_string(root.join(p.trim_start_matches('/'))).ok();
    let cpu_cores = read("/proc/cpuinfo")
        .map(|t| procfs::count_processors(&t))
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(1))
                .unwrap_or(1)
        });
    let iface = read("/proc/net/route").and_then(|t| procfs::default_route_interface(&t));
    let (default_ipv4, default_ipv6) = iface
        .as_deref()
        .map(interface_addresses)
        .unwrap_or((None, None));
    HostFacts {
        cpu_cores,
        default_ipv4,
        default_ipv6,
        containerd_version: containerd_version(),
        nvidia_runtime: installed(root, &[NVIDIA_RUNTIME]),
        kubelet_version: None,
        accelerators: super::pci::accelerators(&root.join("sys")),
        memory_bytes: read("/proc/meminfo")
            .and_then(|t| {
                crate::report::host::meminfo::parse_meminfo(&t)
                    .into_iter()
                    .find_map(|(k, v)| (k == "MemTotal_bytes").then_some(v))
            })
            .map_or(0, |v| v as u64),
        soci_snapshotter: installed(root, &SOCI_SNAPSHOTTER),
        unpigz: installed(root, &[UNPIGZ]),
        hostname: read("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        hosts_file: read("/etc/hosts"),
        swaps: read("/proc/swaps")
            .map(|t| procfs::parse_swaps(&t))
            .unwrap_or_default(),
        fstab: read("/etc/fstab"),
    }
}

/// The first of `candidates` (host paths) that is a file under `root`.
fn installed(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| root.join(p.strip_prefix("/").unwrap_or(p)).is_file())
}

/// Why the kubelet's version could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeletVersionError {
    /// The binary is not there.
    #[error(
        "the kubelet binary {path} does not exist, and its version decides nodeadm's version-keyed kubelet settings. Fix: install the kubelet for the cluster's Kubernetes version (the EKS AMIs ship it; `eks-node-agent install --from MIRROR` installs it), or point --kubelet-binary at it; a dry run or --root may name the version with --kubelet-version instead"
    )]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// It ran but did not say.
    #[error("`{path} --version`: {reason}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl crate::exit::Classify for KubeletVersionError {
    fn exit_code(&self) -> crate::exit::Code {
        // The host, not the input, must change.
        crate::exit::Code::Failure
    }
}

/// `KUBELET --version` (`Kubernetes v1.33.5-eks-3025e55`), bounded by [`VERSION_TIMEOUT`].
/// `Ok(None)` when the binary does not exist.
pub fn kubelet_version(binary: &Path) -> Result<Option<Version>, KubeletVersionError> {
    if !binary.exists() {
        return Ok(None);
    }
    let unreadable = |reason: String| KubeletVersionError::Unreadable {
        path: binary.to_path_buf(),
        reason,
    };
    let out = version_output(binary, VERSION_TIMEOUT).map_err(unreadable)?;
    Version::find_in(&out)
        .map(Some)
        .ok_or_else(|| unreadable(format!("printed no version: {:?}", out.trim())))
}

/// Runs `PROGRAM --version` (fixed arguments, no shell) and returns what it printed (stdout,
/// else stderr); killed past `timeout`.
pub fn version_output(program: &Path, timeout: Duration) -> Result<String, String> {
    let mut child = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {timeout:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(if stdout.trim().is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        stdout
    })
}

/// Whether `program` is a file in one of `PATH`'s directories.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// What the registration plan needs to know before discovery: whether the host is registered
/// with SSM already (the registration file under `root`), and whether the SSM agent that
/// registers it is installed.
pub fn ssm_state(root: &Path) -> (bool, bool) {
    (
        ssm_managed_instance_id(root).is_some(),
        on_path(SSM_AGENT_PROGRAM),
    )
}

fn interface_addresses(iface: &str) -> (Option<IpAddr>, Option<IpAddr>) {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return (None, None);
    };
    let mut v4 = None;
    let mut v6 = None;
    for a in addrs.filter(|a| a.interface_name == iface) {
        let Some(addr) = a.address else { continue };
        if let Some(sin) = addr.as_sockaddr_in() {
            v4.get_or_insert(IpAddr::V4(sin.ip()));
        } else if let Some(sin6) = addr.as_sockaddr_in6() {
            let ip = sin6.ip();
            // Global addresses only (not fe80::/10 link-local).
            if (ip.segments()[0] & 0xffc0) != 0xfe80 {
                v6.get_or_insert(IpAddr::V6(ip));
            }
        }
    }
    (v4, v6)
}

/// Runs `containerd --version` (fixed arguments, bounded) and parses it.
fn containerd_version() -> Option<Version> {
    let path = std::env::var_os("PATH")?;
    let binary = std::env::split_paths(&path)
        .map(|d| d.join("containerd"))
        .find(|p| p.is_file())?;
    Version::find_in(&version_output(&binary, VERSION_TIMEOUT).ok()?)
}

/// The managed instance ID (`mi-...`) from the SSM registration file under `root`.
pub fn ssm_managed_instance_id(root: &Path) -> Option<NodeName> {
    let text = std::fs::read_to_string(root.join(SSM_REGISTRATION.trim_start_matches('/'))).ok()?;
    parse_ssm_registration(&text)
}

/// Parses `{"ManagedInstanceID":"mi-...","Region":"..."}`.
pub fn parse_ssm_registration(text: &str) -> Option<NodeName> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value
        .get("ManagedInstanceID")?
        .as_str()
        .filter(|id| id.starts_with("mi-"))
        .and_then(|id| NodeName::parse(id).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_version_runs_the_binary_and_a_missing_one_is_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let kubelet = dir.path().join("kubelet");
        assert_eq!(kubelet_version(&kubelet), Ok(None));
        std::fs::write(
            &kubelet,
            "#!/bin/sh\necho \"Kubernetes v1.33.5-eks-3025e55\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            kubelet_version(&kubelet).unwrap(),
            Some(Version::from((1, 33, 5)))
        );
        std::fs::write(&kubelet, "#!/bin/sh\necho nothing\n").unwrap();
        let err = kubelet_version(&kubelet).unwrap_err().to_string();
        assert!(err.contains("printed no version"), "{err}");
        std::fs::write(&kubelet, "#!/bin/sh\nexec sleep 30\n").unwrap();
        let started = Instant::now();
        let err = version_output(&kubelet, Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("no answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn loopback_routes_through_loopback() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(source_address_for(lo), Some(lo));
    }
}
