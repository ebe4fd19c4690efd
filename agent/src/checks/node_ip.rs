//! The `node-ip` check of `status`: on a hybrid node, the node's IP lies in one of the
//! cluster's remote node networks (else the control plane cannot reach the kubelet). The IP is
//! `--node-ip`, else the kubelet's `--node-ip` in the config, else the address that routes to
//! the API server; the networks are `--remote-node-network`, else DescribeCluster's.

use std::net::IpAddr;

use ipnet::IpNet;

use super::Outcome;
use super::status::{fail, ok, warn};
use crate::config::NodeConfig;

/// The node IP given rather than looked up, and where it came from: `flag` (the command's
/// `--node-ip`), else the kubelet's `--node-ip` in `spec.kubelet.flags` as `init` reads it
/// (the last one wins, the first address of a dual-stack pair). `None`: look it up.
pub fn configured(
    flag: Option<IpAddr>,
    config: &NodeConfig,
) -> Option<Result<(IpAddr, String), String>> {
    if let Some(ip) = flag {
        return Some(Ok((ip, "--node-ip".to_owned())));
    }
    match config.spec.kubelet.node_ip() {
        Ok(Some(ip)) => Some(Ok((ip, "--node-ip in spec.kubelet.flags".to_owned()))),
        Ok(None) => None,
        Err(e) => Some(Err(format!("spec.kubelet.flags: {e}"))),
    }
}

/// The `node-ip` check. `hybrid`: only hybrid nodes have remote node networks; on EC2 the check
/// is skipped (reported ok, evidence says skipped). `ip` and `networks` carry where they came
/// from.
pub fn check(
    hybrid: bool,
    ip: &Result<(IpAddr, String), String>,
    networks: &Result<(Vec<IpNet>, String), String>,
) -> Outcome {
    if !hybrid {
        return ok(
            "skipped: an EC2 node takes its IP from its VPC subnet; remote node networks apply to hybrid nodes only",
        );
    }
    let (ip, ip_from) = match ip {
        Ok(v) => v,
        Err(e) => {
            return fail(
                "NodeIpUnknown",
                format!("cannot tell the node IP: {e}"),
                "pass --node-ip (and set the same --node-ip in spec.kubelet.flags), or fix the route to the API server",
            );
        }
    };
    let (nets, nets_from) = match networks {
        Ok(v) => v,
        Err(e) => {
            return warn(
                "RemoteNodeNetworksUnknown",
                format!("node IP {ip} ({ip_from}); remote node networks unknown: {e}"),
                "give the node credentials allowed to call eks:DescribeCluster, or pass --remote-node-network CIDR (repeatable) to check against",
            );
        }
    };
    let list = nets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if nets.is_empty() {
        return fail(
            "NoRemoteNodeNetworks",
            format!(
                "node IP {ip} ({ip_from}); the cluster has no remote node networks ({nets_from})"
            ),
            "add the node's network: `aws eks update-cluster-config --name CLUSTER --remote-network-config remoteNodeNetworks=[{cidrs=[CIDR]}]`",
        );
    }
    match nets.iter().find(|n| n.contains(ip)) {
        Some(net) => ok(format!(
            "node IP {ip} ({ip_from}) is in remote node network {net} ({nets_from})"
        )),
        None => fail(
            "NodeIpOutsideRemoteNodeNetworks",
            format!(
                "node IP {ip} ({ip_from}) is outside the remote node networks [{list}] ({nets_from})"
            ),
            format!(
                "the control plane routes to nodes only in [{list}]: set the kubelet's --node-ip (spec.kubelet.flags) to an address in them, or add this network to the cluster's remoteNetworkConfig.remoteNodeNetworks"
            ),
        ),
    }
}

/// The local address the kernel picks to reach the API server (a connected UDP socket sends
/// nothing).
pub async fn route_to(endpoint: &str) -> Result<(IpAddr, String), String> {
    let ip = crate::facts::host::route_to_endpoint(endpoint).await?;
    let host = url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    Ok((
        ip,
        format!("the address that routes to the API server {host}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn node_ip_flag_forms() {
        let mut c = NodeConfig::default();
        c.spec.kubelet.flags = vec!["--v=2".into(), "--node-ip=10.1.2.3,fd00::1".into()];
        let ip = |c: &NodeConfig| configured(None, c).map(|r| r.map(|(ip, _)| ip));
        assert_eq!(ip(&c), Some(Ok("10.1.2.3".parse().unwrap())));
        c.spec.kubelet.flags.push("--node-ip=10.9.9.9".into());
        assert_eq!(
            ip(&c),
            Some(Ok("10.9.9.9".parse().unwrap())),
            "the last flag wins"
        );
        let given: IpAddr = "10.7.7.7".parse().unwrap();
        assert_eq!(configured(Some(given), &c).unwrap().unwrap().0, given);
        c.spec.kubelet.flags = vec!["--node-ips=1.1.1.1".into()];
        assert_eq!(ip(&c), None);
    }

    #[test]
    fn node_ip_in_remote_networks() {
        let ip: Result<(IpAddr, String), String> =
            Ok(("10.80.1.5".parse().unwrap(), "--node-ip".into()));
        let nets = |c: &[&str]| -> Result<(Vec<IpNet>, String), String> {
            Ok((
                c.iter().map(|s| s.parse().unwrap()).collect(),
                "DescribeCluster".into(),
            ))
        };
        assert_eq!(
            check(true, &ip, &nets(&["10.80.0.0/16"])).status,
            Status::Ok
        );
        let r = check(true, &ip, &nets(&["192.168.0.0/16"]));
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("--node-ip"));
        assert_eq!(check(true, &ip, &nets(&[])).status, Status::Fail);
        assert_eq!(
            check(true, &ip, &Err("no credentials".into())).status,
            Status::Warn
        );
        let skipped = check(false, &ip, &nets(&[]));
        assert_eq!(skipped.status, Status::Ok);
        assert!(skipped.evidence.starts_with("skipped"));
    }
}
