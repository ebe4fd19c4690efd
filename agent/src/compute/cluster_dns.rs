//! The cluster DNS IP (kube-dns service address) the kubelet hands to pods.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use super::Error;

/// The offset of the DNS service address from the service CIDR's network address (`.10`, `::a`).
const DNS_OFFSET: u128 = 10;
/// Legacy default when the VPC's CIDR is inside 10.0.0.0/8.
pub const LEGACY_DNS_IP_IN_TEN_RANGE: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 10);
/// Legacy default otherwise.
pub const LEGACY_DNS_IP_OTHERWISE: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 10);
/// 10.0.0.0/8.
const TEN_RANGE: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8) {
    Ok(net) => net,
    Err(_) => panic!("10.0.0.0/8 is a valid network"),
};

/// The cluster DNS IP: the 10th address after the service CIDR's network address (v4 `x.y.z.10`
/// for the usual /16 or /12, v6 `<prefix>::a`). Without a known service CIDR, the legacy
/// bootstrap rule: 172.20.0.10 when the VPC's (first) IPv4 CIDR is inside 10.0.0.0/8, else
/// 10.100.0.10.
pub fn cluster_dns_ip(
    service_cidr: Option<IpNet>,
    vpc_cidr: Option<Ipv4Net>,
) -> Result<IpAddr, Error> {
    let Some(cidr) = service_cidr else {
        let in_ten = vpc_cidr.is_some_and(|v| TEN_RANGE.contains(&v));
        let ip = if in_ten {
            LEGACY_DNS_IP_IN_TEN_RANGE
        } else {
            LEGACY_DNS_IP_OTHERWISE
        };
        return Ok(IpAddr::V4(ip));
    };
    let ip = match cidr.network() {
        IpAddr::V4(net) => {
            let n = u128::from(u32::from(net)) + DNS_OFFSET;
            IpAddr::V4(Ipv4Addr::from(
                u32::try_from(n).map_err(|_| Error::ServiceCidrTooSmall { cidr })?,
            ))
        }
        IpAddr::V6(net) => {
            let n = u128::from(net)
                .checked_add(DNS_OFFSET)
                .ok_or(Error::ServiceCidrTooSmall { cidr })?;
            IpAddr::V6(n.into())
        }
    };
    if cidr.contains(&ip) {
        Ok(ip)
    } else {
        Err(Error::ServiceCidrTooSmall { cidr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(cidr: Option<&str>, vpc: Option<&str>) -> Result<IpAddr, Error> {
        cluster_dns_ip(
            cidr.map(|c| c.parse().unwrap()),
            vpc.map(|c| c.parse().unwrap()),
        )
    }

    #[test]
    fn from_the_service_cidr() {
        assert_eq!(
            dns(Some("10.100.0.0/16"), None).unwrap().to_string(),
            "10.100.0.10"
        );
        assert_eq!(
            dns(Some("172.20.0.0/16"), None).unwrap().to_string(),
            "172.20.0.10"
        );
        assert_eq!(
            dns(Some("172.16.0.0/12"), None).unwrap().to_string(),
            "172.16.0.10"
        );
        // A CIDR written with host bits set still means its network.
        assert_eq!(
            dns(Some("10.100.3.7/16"), None).unwrap().to_string(),
            "10.100.0.10"
        );
        assert_eq!(
            dns(Some("192.168.1.16/28"), None).unwrap().to_string(),
            "192.168.1.26"
        );
        assert_eq!(
            dns(Some("fd30:1c53:5f8a::/108"), None).unwrap().to_string(),
            "fd30:1c53:5f8a::a"
        );
        // The service CIDR wins over the VPC rule.
        assert_eq!(
            dns(Some("10.100.0.0/16"), Some("10.0.0.0/16"))
                .unwrap()
                .to_string(),
            "10.100.0.10"
        );
    }

    #[test]
    fn too_small_cidrs_are_rejected() {
        let err = dns(Some("10.0.0.0/29"), None).unwrap_err().to_string();
        assert!(
            err.contains("10.0.0.0/29") && err.contains("too small"),
            "{err}"
        );
        assert!(dns(Some("fd00::/125"), None).is_err());
    }

    #[test]
    fn legacy_fallback_by_vpc_cidr() {
        assert_eq!(
            dns(None, Some("10.0.0.0/16")).unwrap().to_string(),
            "172.20.0.10"
        );
        assert_eq!(
            dns(None, Some("10.200.0.0/16")).unwrap().to_string(),
            "172.20.0.10"
        );
        assert_eq!(
            dns(None, Some("192.168.0.0/16")).unwrap().to_string(),
            "10.100.0.10"
        );
        assert_eq!(
            dns(None, Some("172.31.0.0/16")).unwrap().to_string(),
            "10.100.0.10"
        );
        assert_eq!(dns(None, None).unwrap().to_string(), "10.100.0.10");
    }
}
