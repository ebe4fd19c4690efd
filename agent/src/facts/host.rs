//! What is true about the local host: CPU count, the default-route address, the address that
//! routes to a given destination, the installed containerd and NVIDIA runtime, /etc/hosts,
//! active swap areas and /etc/fstab. Small readers around pure parsers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Facts read from the local host.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostFacts {
    /// Online CPU cores.
    pub cpu_cores: u32,
    /// The IPv4 address of the interface that holds the default route.
    pub default_ipv4: Option<IpAddr>,
    /// The first global IPv6 address of the default-route interface.
    pub default_ipv6: Option<IpAddr>,
    /// `containerd --version` as (major, minor, patch), when containerd is installed.
    pub containerd_version: Option<(u32, u32, u32)>,
    /// The NVIDIA container runtime, when installed.
    pub nvidia_runtime: Option<PathBuf>,
    /// The host name.
    pub hostname: String,
    /// The current /etc/hosts.
    pub hosts_file: Option<String>,
    /// Active swap areas (/proc/swaps).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swaps: Vec<SwapArea>,
    /// The current /etc/fstab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fstab: Option<String>,
}

/// One active swap area from /proc/swaps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwapArea {
    /// The swap file or device (octal escapes of /proc decoded).
    pub path: String,
    /// `file` or `partition`.
    pub kind: SwapKind,
}

/// What backs a swap area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SwapKind {
    /// A swap file: `swapoff` works and removing its fstab line keeps it off.
    File,
    /// A partition (or any other block device).
    Partition,
}

/// Parses /proc/swaps (`Filename Type Size Used Priority`, one header line).
pub fn parse_swaps(text: &str) -> Vec<SwapArea> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let path = f.next()?;
            let kind = match f.next()? {
                "file" => SwapKind::File,
                _ => SwapKind::Partition,
            };
            Some(SwapArea {
                path: unescape_proc(path),
                kind,
            })
        })
        .collect()
}

/// Decodes the `\040`-style octal escapes the kernel uses for spaces and tabs in /proc files.
pub fn unescape_proc(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\' && i + 3 < b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                u8::try_from(d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'))).ok()
            });
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

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

impl HostFacts {
    /// Reads the host (files under `root`, normally `/`).
    pub fn read(root: &Path) -> HostFacts {
        let read = |p: &str| std::fs::read_to_string(root.join(p.trim_start_matches('/'))).ok();
        let cpu_cores = read("/proc/cpuinfo")
            .map(|t| count_processors(&t))
            .filter(|n| *n > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| u32::try_from(n.get()).unwrap_or(1))
                    .unwrap_or(1)
            });
        let iface = read("/proc/net/route").and_then(|t| default_route_interface(&t));
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
                .map(|t| parse_swaps(&t))
                .unwrap_or_default(),
            fstab: read("/etc/fstab"),
        }
    }
}

/// Counts `processor` lines in /proc/cpuinfo.
pub fn count_processors(cpuinfo: &str) -> u32 {
    let n = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The interface of the IPv4 default route (destination 0.0.0.0/0) in /proc/net/route,
/// preferring the lowest metric.
pub fn default_route_interface(route: &str) -> Option<String> {
    route
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[1] == "00000000" && f[7] == "00000000")
                .then(|| (f[6].parse::<u32>().unwrap_or(u32::MAX), f[0].to_owned()))
        })
        .min()
        .map(|(_, iface)| iface)
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
fn containerd_version() -> Option<(u32, u32, u32)> {
    let out = Command::new("containerd").arg("--version").output().ok()?;
    parse_containerd_version(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `containerd github.com/containerd/containerd v1.7.24 <commit>` or
/// `containerd containerd.io 2.0.0 <commit>`: the first word that looks like a version.
pub fn parse_containerd_version(text: &str) -> Option<(u32, u32, u32)> {
    text.split_whitespace().find_map(|w| {
        let w = w.trim_start_matches('v');
        let mut parts = w.split(['.', '-', '~', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some((major, minor, patch))
    })
}

/// The SSM agent's registration file (written by `amazon-ssm-agent -register`).
pub const SSM_REGISTRATION: &str = "/var/lib/amazon/ssm/registration";

/// The managed instance ID (`mi-...`) from the SSM registration file under `root`.
pub fn ssm_managed_instance_id(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join(SSM_REGISTRATION.trim_start_matches('/'))).ok()?;
    parse_ssm_registration(&text)
}

/// Parses `{"ManagedInstanceID":"mi-...","Region":"..."}`.
pub fn parse_ssm_registration(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value
        .get("ManagedInstanceID")?
        .as_str()
        .filter(|id| id.starts_with("mi-"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_swaps() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /swap\\040file                              file\t\t1048572\t\t0\t\t-2\n\
                    /dev/dm-1                               partition\t2097148\t\t0\t\t-3\n";
        assert_eq!(
            parse_swaps(text),
            vec![
                SwapArea {
                    path: "/swap file".into(),
                    kind: SwapKind::File
                },
                SwapArea {
                    path: "/dev/dm-1".into(),
                    kind: SwapKind::Partition
                },
            ]
        );
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
    }

    #[test]
    fn loopback_routes_through_loopback() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(source_address_for(lo), Some(lo));
    }

    #[test]
    fn parses_containerd_versions() {
        assert_eq!(
            parse_containerd_version(
                "containerd github.com/containerd/containerd v1.7.24 88bf19b\n"
            ),
            Some((1, 7, 24))
        );
        assert_eq!(
            parse_containerd_version("containerd containerd.io 2.0.0 207ad71\n"),
            Some((2, 0, 0))
        );
        assert_eq!(
            parse_containerd_version(
                "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n"
            ),
            Some((1, 6, 20))
        );
        assert_eq!(parse_containerd_version(""), None);
    }

    #[test]
    fn finds_the_default_route() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
            eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        assert_eq!(
            count_processors("processor\t: 0\nfoo: 1\nprocessor\t: 1\n"),
            2
        );
    }
}
