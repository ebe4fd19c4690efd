//! EC2 and Outposts nodes: IMDS, then EC2 DescribeInstances and (when the config lacks the
//! endpoint, the CA or the service CIDR) EKS DescribeCluster; DescribeInstanceTypes when the
//! embedded table lacks the instance type; on Outposts, the API server's addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::facts::{DiscoverInput, Error, eks, instance_types};
use crate::model::{Cluster, Discovered, Instance, InstanceType, Region, embedded_limits};
use crate::net::{Attempt, RetryPolicy};

/// What EC2 discovery needs from the config.
pub type Ec2Request = DiscoverInput;

/// How resolving an Outposts API server's name is retried: like nodeadm, six tries about
/// 200 ms apart (a local cluster's endpoint may not resolve for the first moments after the
/// instance boots). The pause is the retry policy's equal jitter over a 400 ms ceiling, so it
/// is never shorter than nodeadm's 200 ms; each lookup is bounded by the resolver's own
/// timeout and 5 s.
pub const RESOLVE_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 6,
    initial_backoff: Duration::from_millis(400),
    max_backoff: Duration::from_millis(400),
    attempt_timeout: Duration::from_secs(5),
    total_deadline: Duration::from_secs(30),
};
/// Instance metadata's list of the instance's tag keys (404 when the instance does not show
/// its tags there).
const TAGS_PATH: &str = "/latest/meta-data/tags/instance";
/// EC2 allows 50 tags per resource; more keys than this are not read.
const MAX_TAGS: usize = 50;

/// Discovers an EC2 or Outposts instance.
pub(super) async fn discover(
    req: &Ec2Request,
    ctx: &super::Context,
    outpost: bool,
) -> Result<Discovered, Error> {
    let (facts, lifecycle) = tokio::join!(
        crate::facts::discover(&ctx.imds, req),
        ctx.imds.target_lifecycle_state()
    );
    let facts = facts?;
    let md = &facts.instance;
    let id = &md.identity;
    let instance_type = InstanceType::parse(&id.instance_type)?;
    let region = Region::parse(&id.region, "IMDS instance identity document")?;
    let instance = Instance {
        instance_id: id.instance_id.parse()?,
        instance_type: instance_type.clone(),
        availability_zone: id.availability_zone.parse()?,
        region: region.clone(),
        domain: md.domain.clone(),
        private_ipv4: md.local_ipv4.or(id.private_ip).map(Into::into),
        ipv6: md.interface.ipv6s.first().copied().map(Into::into),
        private_dns_name: Some(facts.private_dns_name.clone()).filter(|s| !s.is_empty()),
        vpc_ipv4_cidrs: md.interface.vpc_ipv4_cidr_blocks.clone(),
        target_lifecycle_state: lifecycle?,
        tags: match &req.tag_label_prefix {
            Some(prefix) => instance_tags(&ctx.imds, prefix).await?,
            None => None,
        },
    };
    let mut found = Discovered {
        instance: Some(instance),
        ..Discovered::default()
    };
    if let Some(c) = &facts.cluster {
        let cidr = if c.ip_family == Some(eks::IpFamily::Ipv6) {
            c.service_ipv6_cidr
        } else {
            c.service_ipv4_cidr.or(c.service_ipv6_cidr)
        };
        found.cluster = Cluster {
            endpoint: c.endpoint.clone(),
            certificate_authority_pem: c.certificate_authority_pem.clone(),
            service_cidr: cidr,
            id: c.id.clone(),
            outpost: c.local_outpost,
            ..Cluster::default()
        };
    }
    if embedded_limits(&instance_type).is_none() {
        let settings = instance_types::Ec2Settings {
            region: Some(region.to_string()),
            ..Default::default()
        };
        let (limits, _) = instance_types::resolve(
            &instance_type,
            instance_types::Lookup::TableThenApi,
            &settings,
        )
        .await?;
        found.limits = Some(limits);
    }
    if outpost || found.cluster.outpost {
        let endpoint = req
            .api_server_endpoint
            .clone()
            .or_else(|| found.cluster.endpoint.clone());
        if let Some(endpoint) = endpoint {
            found.cluster.api_server_addresses = api_server_addresses(&endpoint).await?;
        }
    }
    Ok(found)
}

/// The instance's tags whose key starts with `prefix`, from instance metadata; `None` when the
/// instance does not show its tags there (404: not an error, the feature is simply off).
pub async fn instance_tags(
    imds: &crate::facts::imds::Imds,
    prefix: &str,
) -> Result<Option<BTreeMap<String, String>>, Error> {
    let Some(listing) = imds.get_text_optional(TAGS_PATH).await? else {
        tracing::debug!("instance metadata shows no tags (tags in metadata are off)");
        return Ok(None);
    };
    let mut tags = BTreeMap::new();
    for key in listing.lines().map(str::trim).take(MAX_TAGS) {
        // IMDS lists only keys of these characters; anything else is not asked for.
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-=.,_:@".contains(c));
        if !plain || !key.starts_with(prefix) {
            continue;
        }
        // A tag removed between the listing and this read is simply gone.
        if let Some(value) = imds
            .get_text_optional(&format!("{TAGS_PATH}/{key}"))
            .await?
        {
            tags.insert(key.to_owned(), value);
        }
    }
    Ok(Some(tags))
}

/// Every address the API server's name resolves to (an IP endpoint is its own address), for
/// the /etc/hosts block that keeps a local cluster reachable when the Outpost loses its link
/// to the region's DNS. Retried with backoff; failing for good is an error, because the
/// block is what makes the node work disconnected.
pub async fn api_server_addresses(endpoint: &str) -> Result<Vec<IpAddr>, Error> {
    use std::io::{Error as IoError, ErrorKind};
    let failed = |attempts, source| Error::ApiServerAddress {
        endpoint: endpoint.to_owned(),
        host: url::Url::parse(endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| endpoint.to_owned()),
        attempts,
        source,
    };
    let url = url::Url::parse(endpoint)
        .map_err(|e| failed(0, IoError::new(ErrorKind::InvalidInput, e)))?;
    let host = url
        .host_str()
        .ok_or_else(|| {
            failed(
                0,
                IoError::new(ErrorKind::InvalidInput, "the URL has no host"),
            )
        })?
        .trim_matches(['[', ']'])
        .to_owned();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let (result, attempts) = RESOLVE_POLICY
        .run(
            |_| {
                let host = host.clone();
                async move {
                    match tokio::net::lookup_host((host.as_str(), port)).await {
                        Ok(addrs) => {
                            let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                            ips.sort();
                            ips.dedup();
                            if ips.is_empty() {
                                Attempt::Retry(IoError::new(
                                    ErrorKind::NotFound,
                                    format!("{host} resolves to no address"),
                                ))
                            } else {
                                Attempt::Done(ips)
                            }
                        }
                        Err(e) => Attempt::Retry(e),
                    }
                }
            },
            |_, d| IoError::new(ErrorKind::TimedOut, format!("no answer within {d:?}")),
        )
        .await;
    result.map_err(|source| failed(attempts, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn api_server_addresses_resolve_names_and_keep_literal_addresses() {
        assert_eq!(
            api_server_addresses("https://10.1.2.3:443").await.unwrap(),
            ["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            api_server_addresses("https://[fd00::1]").await.unwrap(),
            ["fd00::1".parse::<IpAddr>().unwrap()]
        );
        let local = api_server_addresses("https://localhost").await.unwrap();
        assert!(
            !local.is_empty() && local.iter().all(IpAddr::is_loopback),
            "{local:?}"
        );
        let err = api_server_addresses("not a url").await.unwrap_err();
        assert!(err.to_string().contains("not a url"), "{err}");
    }

    #[test]
    fn resolving_retries_like_nodeadm_and_a_failure_names_the_host() {
        // nodeadm: six tries, 200 ms apart. Here: six attempts, each pause jittered between
        // 200 and 400 ms, never shorter than nodeadm's.
        assert_eq!(RESOLVE_POLICY.max_attempts, 6);
        for failures in 1..6 {
            let wait = RESOLVE_POLICY.jittered_backoff(failures);
            assert!(
                (Duration::from_millis(200)..=Duration::from_millis(400)).contains(&wait),
                "{wait:?}"
            );
        }
        let err = Error::ApiServerAddress {
            endpoint: "https://abc.local-cluster.example.com".into(),
            host: "abc.local-cluster.example.com".into(),
            attempts: 6,
            source: std::io::Error::other("no such host"),
        };
        let text = err.to_string();
        assert!(
            text.contains("cannot resolve abc.local-cluster.example.com")
                && text.contains("after 6 attempt(s)"),
            "{text}"
        );
    }
}
