//! What is true about the local host: CPU count, the default-route address, the address that
//! routes to a given destination, the installed containerd, NVIDIA runtime and SSM agent,
//! /etc/hosts, active swap areas and /etc/fstab. Small readers around the pure parsers of
//! [`crate::model::procfs`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Reads the host (files under `root`, normally `/`).
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
        nvidia_runtime: Some(PathBuf::from(NVIDIA_RUNTIME))
            .filter(|p| root.join(p.strip_prefix("/").unwrap_or(p)).exists()),
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

/// Runs `containerd --version` (fixed arguments) and parses it.
fn containerd_version() -> Option<Version> {
    let out = Command::new("containerd").arg("--version").output().ok()?;
    Version::find_in(&String::from_utf8_lossy(&out.stdout))
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
    fn loopback_routes_through_loopback() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(source_address_for(lo), Some(lo));
    }
}
