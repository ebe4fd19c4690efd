//! Host settings: image credential provider, kernel parameters and modules, systemd
//! environment drop-ins, resolver settings, and the Outposts /etc/hosts block.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::json;

use super::plan::{FileSpec, Sysctl};
use crate::config::NodeConfig;
use crate::model::NodeValues;
use crate::model::paths;

/// Ports kubelet, kube-proxy and the VPC CNI listen on; reserved so ephemeral connections
/// never take them before the services start.
const RESERVED_PORTS: &str = "10249-10250,10256,61678-61679";
/// Kernel modules containerd and kube-proxy need.
const MODULES: [&str; 2] = ["overlay", "br_netfilter"];
/// Units that get `spec.instance.environment.default`.
pub const DEFAULT_ENV_UNITS: [&str; 2] = ["containerd.service", "kubelet.service"];
/// First and last line of the /etc/hosts block the agent owns.
pub const HOSTS_BEGIN: &str =
    "# BEGIN eks-node-agent: Outposts API server (managed; edits are replaced)";
/// See [`HOSTS_BEGIN`].
pub const HOSTS_END: &str = "# END eks-node-agent";

/// The registries the ECR credential provider answers for: nodeadm's list, one or two
/// patterns per partition (the dual-stack `*.dkr-ecr.*` endpoints included) and ECR Public.
pub const ECR_MATCH_IMAGES: [&str; 12] = [
    // aws
    "*.dkr.ecr.*.amazonaws.com",
    "*.dkr-ecr.*.on.aws",
    // aws-cn
    "*.dkr.ecr.*.amazonaws.com.cn",
    "*.dkr-ecr.*.on.amazonwebservices.com.cn",
    // aws-us-gov (FIPS endpoints)
    "*.dkr.ecr-fips.*.amazonaws.com",
    "*.dkr-ecr-fips.*.on.aws",
    // aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc
    "*.dkr.ecr.*.c2s.ic.gov",
    "*.dkr.ecr.*.sc2s.sgov.gov",
    "*.dkr.ecr.*.cloud.adc-e.uk",
    "*.dkr.ecr.*.csp.hci.ic.gov",
    "*.dkr.ecr.*.amazonaws.eu",
    // ECR Public
    "public.ecr.aws",
];
/// ECR Public's other registry name, which the credential provider answers for from kubelet
/// (and ecr-credential-provider) 1.32.
pub const ECR_PUBLIC_ALIAS: &str = "ecr-public.aws.com";

/// The ECR credential provider's config for kubelet: nodeadm's patterns, `ecr-public.aws.com`
/// from kubelet 1.32, the v1alpha1 API before kubelet 1.27.
pub fn image_credential_provider(node: &NodeValues) -> String {
    let v = node.kubelet_version;
    let mut images: Vec<&str> = ECR_MATCH_IMAGES.to_vec();
    if v.at_least(1, 32) {
        images.push(ECR_PUBLIC_ALIAS);
    }
    let (config_api, provider_api) = if v.at_least(1, 27) {
        (
            "kubelet.config.k8s.io/v1",
            "credentialprovider.kubelet.k8s.io/v1",
        )
    } else {
        (
            "kubelet.config.k8s.io/v1alpha1",
            "credentialprovider.kubelet.k8s.io/v1alpha1",
        )
    };
    let config = json!({
        "apiVersion": config_api,
        "kind": "CredentialProviderConfig",
        "providers": [{
            "name": "ecr-credential-provider",
            "matchImages": images,
            "defaultCacheDuration": "12h0m0s",
            "apiVersion": provider_api
        }]
    });
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

/// Drop-ins that run containerd and the kubelet in `runtime.slice`, as the EKS AMI does, so
/// that the kubelet's `kubeReservedCgroup` (`/runtime`) and `--runtime-cgroups` name the
/// cgroups they really run in.
pub fn runtime_slice_dropins() -> Vec<FileSpec> {
    ["containerd.service", "kubelet.service"]
        .into_iter()
        .map(|unit| {
            FileSpec::new(
                format!(
                    "{}/{unit}.d/10-eks-node-agent-slice.conf",
                    paths::SYSTEMD_UNIT_DIR
                ),
                format!(
                    "# The EKS AMI's slice for the container runtime and the kubelet (kubeReservedCgroup).\n[Service]\nSlice={}\n",
                    super::kubelet::RUNTIME_SLICE
                ),
                &[unit],
            )
        })
        .collect()
}

/// Kernel parameters every node needs.
pub fn sysctls(node: &NodeValues) -> Vec<Sysctl> {
    let mut out = vec![
        ("net.ipv4.ip_forward", "1"),
        ("net.bridge.bridge-nf-call-iptables", "1"),
        ("net.bridge.bridge-nf-call-ip6tables", "1"),
        ("net.ipv4.ip_local_reserved_ports", RESERVED_PORTS),
    ];
    if node.node_ip.is_ipv6() {
        out.push(("net.ipv6.conf.all.forwarding", "1"));
    }
    out.into_iter()
        .map(|(k, v)| Sysctl {
            key: k.into(),
            value: v.into(),
        })
        .collect()
}

/// The prefix of fstab lines the agent comments out.
pub const FSTAB_SWAP_DISABLED: &str = "# swap disabled by eks-node-agent (kubelet failSwapOn): ";

/// /etc/fstab with every active `swap` line commented out (so the swap the agent turns off
/// stays off after a reboot); `None` when there is none. Other lines are kept byte for byte.
pub fn fstab_without_swap(current: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(current.len() + 128);
    for line in current.split_inclusive('\n') {
        let t = line.trim_start();
        let is_swap = !t.starts_with('#') && t.split_whitespace().nth(2) == Some("swap");
        if is_swap {
            changed = true;
            out.push_str(FSTAB_SWAP_DISABLED);
        }
        out.push_str(line);
    }
    changed.then_some(out)
}

/// `/etc/modules-load.d/eks-node-agent.conf`.
pub fn modules_load() -> FileSpec {
    let mut text =
        String::from("# Loaded at boot for containerd and kube-proxy (eks-node-agent).\n");
    for m in MODULES {
        text.push_str(m);
        text.push('\n');
    }
    FileSpec::new(paths::MODULES_LOAD, text, &["systemd-modules-load.service"])
}

/// A full unit name (`kubelet` -> `kubelet.service`).
fn unit_name(unit: &str) -> String {
    if unit.contains('.') {
        unit.to_owned()
    } else {
        format!("{unit}.service")
    }
}

/// The environment `spec.instance.environment` gives each systemd unit: `default` goes to
/// containerd and kubelet ([`DEFAULT_ENV_UNITS`]); any other key names its unit (`kubelet` is
/// `kubelet.service`). Unit-specific values win over `default`. `init` writes it as drop-ins
/// ([`environment_dropins`]); `status` compares the drop-ins on disk with it.
pub fn environment_by_unit(config: &NodeConfig) -> BTreeMap<String, BTreeMap<String, String>> {
    let env = &config.spec.instance.environment;
    let mut per_unit: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if let Some(defaults) = env.get("default") {
        for unit in DEFAULT_ENV_UNITS {
            per_unit
                .entry(unit.to_owned())
                .or_default()
                .extend(defaults.clone());
        }
    }
    for (unit, vars) in env.iter().filter(|(u, _)| u.as_str() != "default") {
        per_unit
            .entry(unit_name(unit))
            .or_default()
            .extend(vars.clone());
    }
    per_unit
}

/// systemd drop-ins with `spec.instance.environment`, one per unit
/// ([`environment_by_unit`]).
pub fn environment_dropins(config: &NodeConfig) -> Vec<FileSpec> {
    environment_by_unit(config)
        .into_iter()
        .map(|(unit, vars)| {
            let mut text = String::from(
                "# Environment from the NodeConfig (spec.instance.environment).\n[Service]\n",
            );
            for (k, v) in vars {
                text.push_str(&format!(
                    "Environment={}\n",
                    super::systemd_quote(&format!("{k}={v}"))
                ));
            }
            let path = format!(
                "{}/{unit}.d/40-eks-node-agent-environment.conf",
                paths::SYSTEMD_UNIT_DIR
            );
            FileSpec::new(path, text, &[unit.as_str()])
        })
        .collect()
}

/// The systemd-resolved drop-in for `spec.instance.network` (None when unset).
pub fn resolved_dropin(config: &NodeConfig) -> Option<FileSpec> {
    let net = &config.spec.instance.network;
    if net.nameservers.is_empty() && net.domains.is_empty() {
        return None;
    }
    let mut text = String::from(
        "# Resolver settings from the NodeConfig (spec.instance.network).\n[Resolve]\n",
    );
    if !net.nameservers.is_empty() {
        text.push_str(&format!("DNS={}\n", net.nameservers.join(" ")));
    }
    if !net.domains.is_empty() {
        text.push_str(&format!("Domains={}\n", net.domains.join(" ")));
    }
    Some(FileSpec::new(
        paths::RESOLVED_DROPIN,
        text,
        &["systemd-resolved.service"],
    ))
}

/// /etc/hosts with the agent's block (API server name -> addresses) replacing any earlier one;
/// everything outside the block is kept byte for byte.
pub fn hosts_with_block(current: &str, host: &str, addresses: &[IpAddr]) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in current.lines() {
        if line == HOSTS_BEGIN {
            inside = true;
            continue;
        }
        if inside {
            if line == HOSTS_END {
                inside = false;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !addresses.is_empty() {
        out.push_str(HOSTS_BEGIN);
        out.push('\n');
        for a in addresses {
            out.push_str(&format!("{a}\t{host}\n"));
        }
        out.push_str(HOSTS_END);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_swap_lines_are_commented_out_once() {
        let fstab =
            "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n# /old none swap sw 0 0\n";
        let out = fstab_without_swap(fstab).expect("one active swap line");
        assert_eq!(
            out,
            format!(
                "UUID=1 / ext4 defaults 0 1\n{FSTAB_SWAP_DISABLED}/swapfile none swap sw 0 0\n# /old none swap sw 0 0\n"
            )
        );
        assert_eq!(fstab_without_swap(&out), None, "idempotent");
    }

    #[test]
    fn environment_spreads_like_init() {
        let mut c = NodeConfig::default();
        let env = &mut c.spec.instance.environment;
        env.entry("default".into())
            .or_default()
            .insert("HTTPS_PROXY".into(), "http://p:1".into());
        env.entry("kubelet".into())
            .or_default()
            .insert("HTTPS_PROXY".into(), "http://k:1".into());
        let out = environment_by_unit(&c);
        assert_eq!(out["containerd.service"]["HTTPS_PROXY"], "http://p:1");
        assert_eq!(out["kubelet.service"]["HTTPS_PROXY"], "http://k:1");
        let files = environment_dropins(&c);
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn hosts_block_is_replaced_not_appended() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let base = "127.0.0.1 localhost\n";
        let once = hosts_with_block(base, "api.local", &[a]);
        let twice = hosts_with_block(&once, "api.local", &[b]);
        assert_eq!(
            twice,
            format!("{base}{HOSTS_BEGIN}\n10.0.0.2\tapi.local\n{HOSTS_END}\n")
        );
        assert_eq!(hosts_with_block(&twice, "api.local", &[b]), twice);
        assert_eq!(hosts_with_block(&twice, "api.local", &[]), base);
    }
}
