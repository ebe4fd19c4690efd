//! The `ports` check of `status`: the ports the kubelet and kube-proxy listen on are free, or
//! held by those very programs (read from /proc/net/tcp{,6} and the processes' open sockets).

use std::collections::BTreeMap;
use std::path::Path;

use super::Outcome;
use super::status::{fail, ok, warn};

/// Ports the node needs: (port, what listens there, the process names allowed to hold it).
pub const REQUIRED_PORTS: [(u16, &str, &[&str]); 3] = [
    (10250, "kubelet API", &["kubelet"]),
    (10248, "kubelet healthz", &["kubelet"]),
    (10256, "kube-proxy healthz", &["kube-proxy"]),
];
/// A listening TCP socket from /proc/net/tcp or tcp6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Local port.
    pub port: u16,
    /// Socket inode.
    pub inode: u64,
}

/// TCP state LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// Parses /proc/net/tcp or /proc/net/tcp6: the sockets in LISTEN.
pub fn parse_listeners(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[3] != TCP_LISTEN {
                return None;
            }
            let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            let inode = f[9].parse().ok()?;
            Some(Listener { port, inode })
        })
        .collect()
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process ID.
    pub pid: u32,
    /// `comm`.
    pub comm: String,
}

/// The `ports` check. `holders` maps socket inodes to processes (what could be read).
pub fn check(
    listeners: &Result<Vec<Listener>, String>,
    holders: &BTreeMap<u64, Holder>,
) -> Outcome {
    let listeners = match listeners {
        Ok(l) => l,
        Err(e) => {
            return warn(
                "SocketTableUnreadable",
                format!("cannot read the TCP socket table: {e}"),
                "check by hand: `ss -ltnp '( sport = :10250 or sport = :10248 or sport = :10256 )'`",
            );
        }
    };
    let mut free = Vec::new();
    let mut owned = Vec::new();
    let mut taken = Vec::new();
    let mut unknown = Vec::new();
    for (port, what, owners) in REQUIRED_PORTS {
        let held: Vec<&Listener> = listeners.iter().filter(|l| l.port == port).collect();
        if held.is_empty() {
            free.push(port.to_string());
            continue;
        }
        let procs: Vec<&Holder> = held.iter().filter_map(|l| holders.get(&l.inode)).collect();
        if procs.is_empty() {
            unknown.push(format!("{port} ({what})"));
        } else if procs.iter().all(|h| owners.contains(&h.comm.as_str())) {
            owned.push(format!(
                "{port} held by {} (pid {})",
                procs[0].comm, procs[0].pid
            ));
        } else {
            let h = procs
                .iter()
                .find(|h| !owners.contains(&h.comm.as_str()))
                .unwrap_or(&procs[0]);
            taken.push(format!(
                "{port} ({what}) held by {} (pid {})",
                h.comm, h.pid
            ));
        }
    }
    let mut evidence = Vec::new();
    if !free.is_empty() {
        evidence.push(format!("free: {}", free.join(", ")));
    }
    evidence.extend(owned);
    if !taken.is_empty() {
        evidence.extend(taken.iter().cloned());
        return fail(
            "PortsTaken",
            evidence.join("; "),
            "stop or reconfigure the process on each port (kubelet needs 10250 and 10248, kube-proxy 10256): `ss -ltnp` shows it",
        );
    }
    if !unknown.is_empty() {
        evidence.push(format!(
            "in use by a process this user cannot see: {}",
            unknown.join(", ")
        ));
        return warn(
            "PortHolderUnknown",
            evidence.join("; "),
            "run status as root to see which process holds the port; it must be the kubelet (10250, 10248) or kube-proxy (10256)",
        );
    }
    ok(evidence.join("; "))
}

/// The listening sockets of /proc/net/tcp and tcp6 under `proc_root` (no tcp6 table: an
/// IPv4-only kernel).
pub fn read_listeners(proc_root: &Path) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    let mut read_any = false;
    for table in ["net/tcp", "net/tcp6"] {
        let path = proc_root.join(table);
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                read_any = true;
                out.extend(parse_listeners(&t));
            }
            // No IPv6 in the kernel: no tcp6 table.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && table == "net/tcp6" => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    if read_any {
        Ok(out)
    } else {
        Err(format!("{}: no TCP table", proc_root.display()))
    }
}

/// Which process holds each of `inodes`, from `/proc/<pid>/fd/*` links (`socket:[N]`); the
/// processes this user may not inspect are skipped.
pub fn socket_holders(proc_root: &Path, inodes: &[u64]) -> BTreeMap<u64, Holder> {
    let mut out = BTreeMap::new();
    if inodes.is_empty() {
        return out;
    }
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                let comm = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_else(|_| "?".into());
                out.insert(inode, Holder { pid, comm });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn listeners_and_holders() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:280A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0\n\
           1: 0100007F:2818 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0\n\
           2: 0100007F:2850 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 100 0 0 10 0\n";
        let l = parse_listeners(tcp);
        assert_eq!(
            l,
            vec![
                Listener {
                    port: 10250,
                    inode: 1111
                },
                Listener {
                    port: 10264,
                    inode: 2222
                }
            ]
        );
        let mut holders = BTreeMap::new();
        holders.insert(
            1111,
            Holder {
                pid: 42,
                comm: "kubelet".into(),
            },
        );
        assert_eq!(check(&Ok(l.clone()), &holders).status, Status::Ok);
        holders.insert(
            1111,
            Holder {
                pid: 7,
                comm: "nginx".into(),
            },
        );
        let r = check(&Ok(l.clone()), &holders);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.evidence
                .contains("10250 (kubelet API) held by nginx (pid 7)"),
            "{}",
            r.evidence
        );
        assert_eq!(check(&Ok(l), &BTreeMap::new()).status, Status::Warn);
    }

    #[test]
    fn holders_from_a_fake_root() {
        let dir = tempfile::tempdir().unwrap();
        let fd = dir.path().join("4242/fd");
        std::fs::create_dir_all(&fd).unwrap();
        std::os::unix::fs::symlink("socket:[777]", fd.join("3")).unwrap();
        std::os::unix::fs::symlink("/dev/null", fd.join("0")).unwrap();
        std::fs::write(dir.path().join("4242/comm"), "kubelet\n").unwrap();
        let holders = socket_holders(dir.path(), &[777, 888]);
        assert_eq!(
            holders.get(&777),
            Some(&Holder {
                pid: 4242,
                comm: "kubelet".into()
            })
        );
        assert_eq!(holders.len(), 1);
    }
}
