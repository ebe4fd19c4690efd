//! The checks `config check` makes beyond each field's own form, with no network: they would
//! otherwise fail only in `init`, after the network calls, or not at all.
//!
//! - `spec.kubelet.maxPodsExpression` compiled and type-checked ([`super::expression`]);
//! - the cluster CA's validity window at `now`: every certificate expired (or none valid yet)
//!   is an error, some expired or not yet valid a warning;
//! - `spec.kubelet.config.clusterDNS`: a list of IP addresses (what `--dns-cluster-ip` sets).

use std::time::SystemTime;

use super::types::NodeConfig;
use super::validate::Checker;
use crate::model::text::{echo, rfc3339};

/// Runs every offline check on the merged configuration.
pub(super) fn check(c: &mut Checker<'_>, config: &NodeConfig, now: SystemTime) {
    if let Some(expr) = config.spec.kubelet.max_pods_expression.as_deref()
        && let Err(e) = super::expression::MaxPodsExpression::compile(expr)
    {
        c.fail(
            "spec.kubelet.maxPodsExpression",
            format!("{}: {}", echo(&e.expression), e.reason)
                + "; it may use the int variables default_enis, ips_per_eni and max_pods and must yield an int",
        );
    }
    if let Some(ca) = config.spec.cluster.certificate_authority.as_deref()
        && let Ok(pem) = super::validate::ca_pem(ca)
        && let Ok(certificates) = super::validate::pem_certificates(&pem)
    {
        check_validity(c, &certificates, now);
    }
    check_cluster_dns(c, config);
}

fn check_validity(c: &mut Checker<'_>, certificates: &[x509_cert::Certificate], now: SystemTime) {
    const PATH: &str = "spec.cluster.certificateAuthority";
    let mut expired = Vec::new();
    let mut early = Vec::new();
    for (i, cert) in certificates.iter().enumerate() {
        let validity = &cert.tbs_certificate.validity;
        let not_before = validity.not_before.to_system_time();
        let not_after = validity.not_after.to_system_time();
        if now > not_after {
            expired.push(format!(
                "certificate {} expired {}",
                i + 1,
                rfc3339(not_after)
            ));
        } else if now < not_before {
            early.push(format!(
                "certificate {} is not valid before {}",
                i + 1,
                rfc3339(not_before)
            ));
        }
    }
    let invalid = expired.len() + early.len();
    let all: Vec<String> = expired.into_iter().chain(early).collect();
    if invalid == certificates.len() {
        c.fail(
            PATH,
            format!(
                "no certificate in the CA bundle is valid now ({}): the node could not verify the API server; use the cluster's current CA (DescribeCluster's certificateAuthority.data), and check the host's clock",
                all.join("; ")
            ),
        );
    } else if invalid > 0 {
        c.warn(
            PATH,
            format!(
                "{} of {} certificates in the CA bundle are not valid now ({}); the others are used",
                invalid,
                certificates.len(),
                all.join("; ")
            ),
        );
    }
}

fn check_cluster_dns(c: &mut Checker<'_>, config: &NodeConfig) {
    const PATH: &str = "spec.kubelet.config.clusterDNS";
    let Some(value) = config.spec.kubelet.config.get("clusterDNS") else {
        return;
    };
    let Some(list) = value.as_array() else {
        c.fail(
            PATH,
            "is not a list; expected a list of IP addresses, e.g. [10.100.0.10]",
        );
        return;
    };
    for (i, item) in list.iter().enumerate() {
        let ok = item
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok());
        if !ok {
            let shown = item.as_str().map_or_else(|| echo(&item.to_string()), echo);
            c.fail(
                &format!("{PATH}[{i}]"),
                format!("{shown} is not an IP address; expected the cluster DNS service IP, e.g. 10.100.0.10"),
            );
        }
    }
}
