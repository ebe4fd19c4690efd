//! The node's identity in Kubernetes: IP family, name and provider ID.

use ipnet::IpNet;

use super::Error;
use crate::model::{InstanceId, NodeName};

/// The IP family the kubelet registers the node with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 cluster.
    Ipv4,
    /// IPv6 cluster.
    Ipv6,
}

/// The node IP family follows the cluster's service CIDR; without one, IPv4.
pub fn node_ip_family(service_cidr: Option<IpNet>) -> IpFamily {
    match service_cidr {
        Some(IpNet::V6(_)) => IpFamily::Ipv6,
        Some(IpNet::V4(_)) | None => IpFamily::Ipv4,
    }
}

/// The node name: the instance's private DNS name (as EC2 reports it), or its instance ID when
/// the `InstanceIdNodeName` feature gate is on.
pub fn node_name(
    private_dns_name: Option<&str>,
    instance_id: &InstanceId,
    instance_id_node_name: bool,
) -> Result<NodeName, Error> {
    if instance_id_node_name {
        return Ok(NodeName::parse(instance_id.as_str())?);
    }
    match private_dns_name.map(str::trim) {
        Some(name) if !name.is_empty() => Ok(NodeName::parse(&name.to_ascii_lowercase())?),
        _ => Err(Error::NoPrivateDnsName {
            instance_id: instance_id.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AvailabilityZone, ProviderId};

    fn id() -> InstanceId {
        InstanceId::parse("i-0123456789abcdef0").unwrap()
    }

    #[test]
    fn ip_family_follows_the_service_cidr() {
        assert_eq!(
            node_ip_family(Some("10.100.0.0/16".parse().unwrap())),
            IpFamily::Ipv4
        );
        assert_eq!(
            node_ip_family(Some("fd30::/108".parse().unwrap())),
            IpFamily::Ipv6
        );
        assert_eq!(node_ip_family(None), IpFamily::Ipv4);
    }

    #[test]
    fn node_names() {
        let dns = Some("ip-10-0-1-2.us-west-2.compute.internal");
        assert_eq!(
            node_name(dns, &id(), false).unwrap().as_str(),
            "ip-10-0-1-2.us-west-2.compute.internal"
        );
        assert_eq!(
            node_name(dns, &id(), true).unwrap().as_str(),
            "i-0123456789abcdef0"
        );
        assert_eq!(
            node_name(None, &id(), true).unwrap().as_str(),
            "i-0123456789abcdef0"
        );
        let err = node_name(Some(""), &id(), false).unwrap_err().to_string();
        assert!(
            err.contains("i-0123456789abcdef0") && err.contains("InstanceIdNodeName"),
            "{err}"
        );
        assert!(node_name(None, &id(), false).is_err());
    }

    #[test]
    fn provider_ids() {
        let zone = AvailabilityZone::parse("us-west-2a").unwrap();
        assert_eq!(
            ProviderId::ec2(&zone, &id()).as_str(),
            "aws:///us-west-2a/i-0123456789abcdef0"
        );
    }
}
