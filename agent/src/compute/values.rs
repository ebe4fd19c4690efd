//! Resolution: (NodeConfig, what discovery found) -> [`NodeValues`], the input of render.
//! Pure: discovery (IMDS, EC2, EKS, the host) fills [`Discovered`]; this decides.
//!
//! A value the user set is never replaced by a derived one: `kubelet.config.maxPods`,
//! `--node-ip` in `kubelet.flags`, `clusterDNS` in `kubelet.config`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    MaxPodsExpression, MaxPodsOptions, MaxPodsSource, cluster_dns_ip, effective_max_pods,
    kube_reserved,
};
use crate::config::types::HybridOptions;
use crate::config::{FeatureGate, NodeConfig};
use crate::model::node::PAUSE_VERSION;
use crate::model::paths::{HYBRID_AWS_CONFIG, SSM_CREDENTIALS_FILE};
use crate::model::version::NEWEST_KNOWN_KUBELET;
use crate::model::{
    ClusterName, Discovered, NodeKind, NodeName, NodeValues, ProviderId, Region, SwapArea,
    SwapKind, embedded_limits,
};

/// kubelet's default max pods, used where no instance type applies (hybrid nodes).
pub const DEFAULT_MAX_PODS: u32 = 110;
/// The pause image for hosts outside AWS regions' ECR (hybrid and kubeadm nodes).
pub const PUBLIC_PAUSE_IMAGE: &str = "public.ecr.aws/eks-distro/kubernetes/pause:3.10";
/// kubeadm's default service subnet (also EKS Anywhere's), used when `spec.cluster.cidr` is unset
/// on a kubeadm join.
pub const KUBEADM_DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// Why the node's values cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A fact needed for this node is missing.
    #[error("{what} is unknown: {fix}")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// How to provide it.
        fix: String,
    },
    /// A node name that Kubernetes would refuse.
    #[error("{what} cannot be the node's name")]
    NodeName {
        /// Where the name came from.
        what: &'static str,
        /// Why not.
        #[source]
        source: crate::model::Invalid,
    },
    /// A configured value is malformed.
    #[error("{what}: {reason}")]
    Invalid {
        /// Which value.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The node IP is outside every remote node network of the hybrid cluster.
    #[error(
        "the node IP {ip} ({origin}) is outside the cluster's remote node networks ({networks}): the control plane could not reach this kubelet. Fix: run the node on an address inside one of them, set --node-ip=<address> in spec.kubelet.flags, or add this network to the cluster's remoteNetworkConfig"
    )]
    NodeIpOutsideRemoteNetworks {
        /// The node IP.
        ip: IpAddr,
        /// Where the IP came from.
        origin: &'static str,
        /// The networks, comma-separated.
        networks: String,
    },
    /// The host has a swap partition that cannot be turned off for good by the agent.
    #[error(
        "swap partition {path} is active (/proc/swaps) and kubelet refuses to run with swap (failSwapOn). Fix: `swapoff {path}` and remove its line from /etc/fstab, or allow swap with `failSwapOn: false` in spec.kubelet.config"
    )]
    SwapPartition {
        /// The device.
        path: String,
    },
    /// A derivation failed.
    #[error(transparent)]
    Compute(#[from] super::Error),
    /// The instance-store disks cannot be laid out as configured.
    #[error(transparent)]
    LocalStorage(#[from] super::local_storage::Error),
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            Error::Compute(e) => e.exit_code(),
            Error::LocalStorage(e) => e.exit_code(),
            Error::Missing { .. }
            | Error::Invalid { .. }
            | Error::NodeName { .. }
            | Error::NodeIpOutsideRemoteNetworks { .. } => crate::exit::Code::BadInput,
            // The host, not the input, is what must change.
            Error::SwapPartition { .. } => crate::exit::Code::Failure,
        }
    }
}

/// The ECR account that hosts the EKS pause image in a region.
pub fn pause_account(region: &str) -> &'static str {
    match region {
        "af-south-1" => "877085696533",
        "ap-east-1" => "800184023465",
        "ap-south-2" => "900889452093",
        "ap-southeast-3" => "296578399912",
        "ap-southeast-4" => "491585149902",
        "ap-southeast-5" => "151610086707",
        "ap-southeast-7" => "121268973566",
        "ca-west-1" => "761377655185",
        "cn-north-1" => "918309763551",
        "cn-northwest-1" => "961992271922",
        "eu-central-2" => "900612956339",
        "eu-south-1" => "590381155156",
        "eu-south-2" => "455263428931",
        "il-central-1" => "066635153087",
        "me-central-1" => "759879836304",
        "me-south-1" => "558608220178",
        "mx-central-1" => "730335286997",
        "us-gov-east-1" => "151742754352",
        "us-gov-west-1" => "013241004608",
        _ => "602401143452",
    }
}

/// The node IP the user set with `--node-ip` in `spec.kubelet.flags` (its first address).
fn user_node_ip(config: &NodeConfig) -> Result<Option<IpAddr>, Error> {
    config
        .spec
        .kubelet
        .node_ip()
        .map_err(|reason| Error::Invalid {
            what: "spec.kubelet.flags".into(),
            reason,
        })
}

/// The service CIDR: the config's, else what discovery found, else `default`; with where it
/// came from.
fn service_cidr(
    config: &NodeConfig,
    found: &Discovered,
    default: Option<IpNet>,
) -> Result<(Option<IpNet>, &'static str), Error> {
    match config.spec.cluster.cidr.as_deref() {
        Some(text) => text
            .parse()
            .map(|c| (Some(c), "spec.cluster.cidr"))
            .map_err(|_| Error::Invalid {
                what: "spec.cluster.cidr".into(),
                reason: format!("\"{text}\" is not a CIDR"),
            }),
        None => Ok(match (found.cluster.service_cidr, default) {
            (Some(c), _) => (Some(c), "the cluster (DescribeCluster or cluster-info)"),
            (None, Some(c)) => (Some(c), "kubeadm's default service subnet"),
            (None, None) => (None, "unknown"),
        }),
    }
}

/// `spec.cluster.name`, required on every node.
fn cluster_name(config: &NodeConfig) -> Result<ClusterName, Error> {
    let text = config.spec.cluster.name.as_deref().ok_or(Error::Missing {
        what: "spec.cluster.name",
        fix: "set it in a NodeConfig".into(),
    })?;
    Ok(ClusterName::parse(text).map_err(super::Error::from)?)
}

/// A node name from a fact or a setting.
fn node_name(what: &'static str, text: &str) -> Result<NodeName, Error> {
    NodeName::parse(text).map_err(|source| Error::NodeName { what, source })
}

/// What every kind of node resolves the same way.
struct Common<'a> {
    config: &'a NodeConfig,
    found: &'a Discovered,
    cluster_name: ClusterName,
    endpoint: String,
    ca_pem: Vec<u8>,
    service_cidr: Option<IpNet>,
    service_cidr_source: &'static str,
}

/// What depends on the kind of node.
struct Identity {
    kind: NodeKind,
    /// The AWS region (empty on kubeadm nodes without one).
    region: String,
    node_ip: IpAddr,
    node_name: NodeName,
    provider_id: Option<ProviderId>,
    max_pods: u32,
    cores: u32,
    /// The VPC's first IPv4 CIDR (EC2), for the legacy cluster DNS rule.
    vpc: Option<ipnet::Ipv4Net>,
    sandbox_image: String,
    /// How the node name, max pods and node IP came about (`config show --explain`).
    why_name: String,
    why_max_pods: String,
    why_node_ip: String,
}

impl<'a> Common<'a> {
    /// The cluster name, the service CIDR (the config's, else discovery's, else
    /// `default_cidr`) and the API server and CA each kind found its own way.
    fn new(
        config: &'a NodeConfig,
        found: &'a Discovered,
        endpoint: String,
        ca_pem: Vec<u8>,
        default_cidr: Option<IpNet>,
    ) -> Result<Self, Error> {
        let (service_cidr, service_cidr_source) = service_cidr(config, found, default_cidr)?;
        Ok(Common {
            config,
            found,
            cluster_name: cluster_name(config)?,
            endpoint,
            ca_pem,
            service_cidr,
            service_cidr_source,
        })
    }

    fn ipv6(&self) -> bool {
        matches!(self.service_cidr, Some(IpNet::V6(_)))
    }

    fn values(&self, id: Identity) -> Result<NodeValues, Error> {
        let (config, found) = (self.config, self.found);
        let mut explain = BTreeMap::new();
        let cluster_dns = match user_cluster_dns(config)? {
            Some(ip) => {
                explain.insert(
                    "cluster DNS".to_owned(),
                    format!("{ip}: spec.kubelet.config.clusterDNS"),
                );
                ip
            }
            None => {
                let ip = cluster_dns_ip(self.service_cidr, id.vpc)?;
                let why = match self.service_cidr {
                    Some(cidr) => format!(
                        "{ip}: the 10th address of the service CIDR {cidr} (from {})",
                        self.service_cidr_source
                    ),
                    None => format!(
                        "{ip}: no service CIDR is known, so the legacy rule of bootstrap.sh (172.20.0.10 when the VPC's CIDR {} is in 10.0.0.0/8, else 10.100.0.10)",
                        id.vpc
                            .map_or_else(|| "(unknown)".to_owned(), |v| v.to_string())
                    ),
                };
                explain.insert("cluster DNS".to_owned(), why);
                ip
            }
        };
        explain.insert(
            "node name".to_owned(),
            format!("{}: {}", id.node_name, id.why_name),
        );
        explain.insert(
            "max pods".to_owned(),
            format!("{}: {}", id.max_pods, id.why_max_pods),
        );
        explain.insert(
            "node IP".to_owned(),
            format!("{}: {}", id.node_ip, id.why_node_ip),
        );
        let on_prem = id.kind.is_hybrid() || id.kind == NodeKind::Kubeadm;
        let swap_off = on_prem && config.spec.kubelet.fail_swap_on();
        let containerd_major = found.host.containerd_version.map_or(1, |v| v.major);
        let kubelet_version = found.host.kubelet_version.unwrap_or(NEWEST_KNOWN_KUBELET);
        let (default_runtime, why) = super::containerd::default_runtime(&found.host);
        explain.insert("containerd default runtime".to_owned(), why);
        let (fast_image_pull, why) = super::containerd::fast_image_pull(config, &found.host);
        explain.insert("FastImagePull".to_owned(), why);
        let containerd_user_config = super::containerd::user_config(
            config.spec.containerd.config.as_deref(),
            containerd_major,
        )?;
        let labels = super::labels::accelerator_labels(&found.host);
        for key in labels.keys() {
            explain.insert(
                format!("label {key}"),
                "an NVIDIA GPU on the PCI bus (vendor 0x10de), as nodeadm labels it".to_owned(),
            );
        }
        Ok(NodeValues {
            kind: id.kind,
            cluster_name: self.cluster_name.clone(),
            cluster_id: config
                .spec
                .cluster
                .id
                .clone()
                .or_else(|| found.cluster.id.clone())
                .filter(|_| id.kind != NodeKind::Kubeadm),
            dns_suffix: crate::model::partition_of(&id.region).dns_suffix.to_owned(),
            region: id.region,
            api_server_endpoint: self.endpoint.clone(),
            ca_pem: self.ca_pem.clone(),
            cluster_dns,
            node_ip: id.node_ip,
            node_name: id.node_name,
            provider_id: id.provider_id,
            max_pods: id.max_pods,
            kube_reserved: kube_reserved(id.cores, id.max_pods),
            containerd_major,
            sandbox_image: id.sandbox_image,
            nvidia_runtime: found.host.nvidia_runtime.clone(),
            agent_binary: found.agent_binary.clone(),
            labels,
            exec_env: BTreeMap::new(),
            api_server_addresses: Vec::new(),
            current_hosts: None,
            current_fstab: if swap_off {
                found.host.fstab.clone()
            } else {
                None
            },
            swap_off: if swap_off {
                swap_files(&found.host.swaps)
            } else {
                Vec::new()
            },
            warm_pool_hold: found
                .instance
                .as_ref()
                .and_then(|i| i.target_lifecycle_state.as_ref())
                .filter(|s| s.is_warmed())
                .map(crate::model::TargetLifecycleState::as_text),
            kubelet_version,
            default_runtime,
            containerd_user_config,
            fast_image_pull,
            local_storage: None,
            explain,
        })
    }
}

/// Resolves the node's values from its config and what discovery found, the instance-store
/// layout included.
pub fn resolve(config: &NodeConfig, found: &Discovered) -> Result<NodeValues, Error> {
    let mut values = resolve_node(config, found)?;
    // The disks are read only when they are set up (init's config phase, dry runs).
    if let (Some(settings), Some(facts)) = (
        config.spec.instance.local_storage.settings(),
        found.local_storage.as_ref(),
    ) {
        let layout = super::local_storage::layout(&settings, facts)?;
        values
            .explain
            .insert("local storage".to_owned(), layout.summary());
        values.local_storage = Some(layout);
    }
    Ok(values)
}

fn resolve_node(config: &NodeConfig, found: &Discovered) -> Result<NodeValues, Error> {
    if config.is_kubeadm() {
        return resolve_kubeadm(config, found);
    }
    let cluster_cfg = &config.spec.cluster;
    let endpoint = cluster_cfg
        .api_server_endpoint
        .clone()
        .or_else(|| found.cluster.endpoint.clone())
        .ok_or(Error::Missing {
            what: "the API server endpoint",
            fix: "set spec.cluster.apiServerEndpoint, or let the agent call DescribeCluster".into(),
        })?;
    let ca_pem = match (
        &cluster_cfg.certificate_authority,
        &found.cluster.certificate_authority_pem,
    ) {
        (Some(b64), _) => {
            crate::config::validate::ca_pem(b64).map_err(|reason| Error::Invalid {
                what: "spec.cluster.certificateAuthority".into(),
                reason,
            })?
        }
        (None, Some(pem)) => pem.clone().into_bytes(),
        (None, None) => {
            return Err(Error::Missing {
                what: "the cluster CA",
                fix: "set spec.cluster.certificateAuthority, or let the agent call DescribeCluster"
                    .into(),
            });
        }
    };
    let common = Common::new(config, found, endpoint, ca_pem, None)?;
    match &config.spec.hybrid {
        Some(hybrid) => resolve_hybrid(&common, hybrid),
        None => resolve_ec2(&common),
    }
}

/// An on-prem node (EKS Hybrid Nodes): named by its Roles Anywhere setting or its SSM
/// registration; its node IP is the one the user set, else the address that routes to the
/// API server, else the default route's, and it must lie in the cluster's remote node
/// networks.
fn resolve_hybrid(common: &Common<'_>, hybrid: &HybridOptions) -> Result<NodeValues, Error> {
    let (config, found) = (common.config, common.found);
    let region_text = config
        .spec
        .cluster
        .region
        .as_deref()
        .ok_or(Error::Missing {
            what: "spec.cluster.region",
            fix: "hybrid nodes must set it".into(),
        })?;
    let region = Region::parse(region_text, "spec.cluster.region").map_err(super::Error::from)?;
    let ipv6 = common.ipv6();
    let default_ip = if ipv6 {
        found.host.default_ipv6
    } else {
        found.host.default_ipv4
    };
    let route_ip = found
        .api_route_ip
        .filter(|ip| ip.is_ipv6() == ipv6 && !ip.is_loopback());
    let (node_ip, origin) = match (user_node_ip(config)?, route_ip, default_ip) {
        (Some(ip), _, _) => (ip, "--node-ip in spec.kubelet.flags"),
        (None, Some(ip), _) => (ip, "the interface that routes to the API server"),
        (None, None, Some(ip)) => (ip, "the interface of the default route"),
        (None, None, None) => {
            return Err(Error::Missing {
                what: "the node IP",
                fix: "no interface routes to the API server or holds the default route; add --node-ip=<address> to spec.kubelet.flags".into(),
            });
        }
    };
    check_remote_node_network(node_ip, origin, &found.cluster.remote_node_networks)?;
    check_swap(config, &found.host.swaps)?;
    let (kind, node_name, why_name, provider, mut exec_env) =
        if let Some(ira) = &hybrid.iam_roles_anywhere {
            let name = ira.node_name.as_deref().ok_or(Error::Missing {
                what: "the node name",
                fix: "set spec.hybrid.iamRolesAnywhere.nodeName".into(),
            })?;
            let config_path = ira
                .aws_config_path
                .clone()
                .unwrap_or_else(|| HYBRID_AWS_CONFIG.into());
            let env = BTreeMap::from([("AWS_CONFIG_FILE".to_owned(), config_path)]);
            (
                NodeKind::HybridRolesAnywhere,
                node_name("spec.hybrid.iamRolesAnywhere.nodeName", name)?,
                "spec.hybrid.iamRolesAnywhere.nodeName".to_owned(),
                "iam-ra",
                env,
            )
        } else {
            // Registered with SSM: named after the managed instance ID; not (yet) registered:
            // after the host, as kubelet would name it.
            let (name, why) = match &found.ssm_managed_instance_id {
                Some(id) => (
                    id.clone(),
                    "the SSM managed instance ID of this registered host".to_owned(),
                ),
                None if found.host.hostname.trim().is_empty() => {
                    return Err(Error::Missing {
                        what: "the node name",
                        fix: "register the host with SSM (spec.hybrid.ssm) or give it a hostname"
                            .into(),
                    });
                }
                None => (
                    node_name(
                        "the host name",
                        &found.host.hostname.trim().to_ascii_lowercase(),
                    )?,
                    "the host name (not registered with SSM yet)".to_owned(),
                ),
            };
            let env = BTreeMap::from([(
                "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
                SSM_CREDENTIALS_FILE.to_owned(),
            )]);
            (NodeKind::HybridSsm, name, why, "ssm", env)
        };
    let user_max_pods = config.spec.kubelet.max_pods();
    exec_env.insert("AWS_REGION".into(), region.to_string());
    let mut values = common.values(Identity {
        kind,
        region: region.to_string(),
        node_ip,
        provider_id: Some(ProviderId::hybrid(
            &region,
            &common.cluster_name,
            &node_name,
        )),
        node_name,
        max_pods: user_max_pods.unwrap_or(DEFAULT_MAX_PODS),
        cores: found.host.cpu_cores.max(1),
        vpc: None,
        sandbox_image: PUBLIC_PAUSE_IMAGE.into(),
        why_name,
        why_max_pods: default_max_pods_why(user_max_pods),
        why_node_ip: origin.to_owned(),
    })?;
    for (key, value, why) in [
        (
            "eks.amazonaws.com/compute-type",
            "hybrid".to_owned(),
            "every hybrid node (as nodeadm labels it)",
        ),
        (
            "eks.amazonaws.com/hybrid-credential-provider",
            provider.to_owned(),
            "the credential provider of spec.hybrid",
        ),
    ] {
        values.labels.insert(key.to_owned(), value);
        values
            .explain
            .insert(format!("label {key}"), why.to_owned());
    }
    values.exec_env = exec_env;
    Ok(values)
}

/// An EC2 instance (in a region or on an Outpost): max pods from its instance type's limits,
/// named after its private DNS name (or instance ID), its node IP from IMDS.
fn resolve_ec2(common: &Common<'_>) -> Result<NodeValues, Error> {
    let (config, found) = (common.config, common.found);
    let instance = found.instance.as_ref().ok_or(Error::Missing {
        what: "the EC2 instance",
        fix: "IMDS did not describe this host; on a host outside EC2 configure spec.hybrid".into(),
    })?;
    let limits = found
        .limits
        .or_else(|| embedded_limits(&instance.instance_type))
        .ok_or_else(|| Error::Missing {
            what: "the instance type's network limits",
            fix: format!(
                "{} is not in the embedded table and DescribeInstanceTypes was not answered",
                instance.instance_type
            ),
        })?;
    let options = MaxPodsOptions {
        prefix_delegation: config.feature(FeatureGate::VpcCniPrefixDelegation),
        custom_networking: config.feature(FeatureGate::VpcCniCustomNetworking),
        ..MaxPodsOptions::default()
    };
    let expression = config
        .spec
        .kubelet
        .max_pods_expression
        .as_deref()
        .map(MaxPodsExpression::parse)
        .transpose()?;
    let effective = effective_max_pods(
        config.spec.kubelet.max_pods(),
        expression.as_ref(),
        &limits,
        &options,
    )?;
    let max_pods = effective.value;
    let why_max_pods = match effective.source {
        MaxPodsSource::User => "spec.kubelet.config.maxPods".to_owned(),
        MaxPodsSource::Expression => format!(
            "spec.kubelet.maxPodsExpression {:?} over {}'s limits (default_enis={}, ips_per_eni={}, max_pods={})",
            expression
                .as_ref()
                .map(MaxPodsExpression::as_str)
                .unwrap_or_default(),
            instance.instance_type,
            limits.default_card_max_enis,
            limits.ipv4_per_eni,
            super::max_pods(&limits, &MaxPodsOptions::default()).value
        ),
        MaxPodsSource::Computed => {
            let computed = super::max_pods(&limits, &options);
            format!(
                "computed from {}'s limits ({} ENIs, {} IPv4 addresses each, {} vCPUs{}): {:?} pod addressing on {} ENI(s){}",
                instance.instance_type,
                limits.default_card_max_enis,
                limits.ipv4_per_eni,
                limits.vcpus,
                if found.limits.is_some() {
                    ", from DescribeInstanceTypes"
                } else {
                    ", embedded table"
                },
                computed.mode,
                computed.enis_for_pods,
                match computed.ceiling {
                    Some(c) if computed.uncapped > c => format!(", capped at {c}"),
                    _ => String::new(),
                }
            )
        }
    };
    let ipv6 = common.ipv6();
    let instance_ip = if ipv6 {
        instance.ipv6
    } else {
        instance.private_ipv4
    };
    let user_ip = user_node_ip(config)?;
    let why_node_ip = if user_ip.is_some() {
        "--node-ip in spec.kubelet.flags"
    } else {
        "the primary interface's address from instance metadata"
    };
    let node_ip = user_ip.or(instance_ip).ok_or(Error::Missing {
        what: "the node IP",
        fix: format!(
            "IMDS reported no {} address for the primary interface",
            if ipv6 { "IPv6" } else { "IPv4" }
        ),
    })?;
    let outpost = config.is_outpost() || found.cluster.outpost;
    let mut values = common.values(Identity {
        kind: if outpost {
            NodeKind::Outpost
        } else {
            NodeKind::Ec2
        },
        region: instance.region.to_string(),
        node_ip,
        node_name: super::node_name(
            instance.private_dns_name.as_deref(),
            &instance.instance_id,
            config.feature(FeatureGate::InstanceIdNodeName),
        )?,
        why_name: if config.feature(FeatureGate::InstanceIdNodeName) {
            "the instance ID (feature gate InstanceIdNodeName)".to_owned()
        } else {
            "the instance's private DNS name (EC2 DescribeInstances)".to_owned()
        },
        why_max_pods,
        why_node_ip: why_node_ip.to_owned(),
        provider_id: Some(ProviderId::ec2(
            &instance.availability_zone,
            &instance.instance_id,
        )),
        max_pods,
        cores: limits.vcpus.max(1),
        vpc: instance.vpc_ipv4_cidrs.first().copied(),
        sandbox_image: String::new(),
    })?;
    if !instance.domain.is_empty() {
        values.dns_suffix = instance.domain.clone();
    }
    values.sandbox_image = format!(
        "{}.dkr.ecr.{}.{}/eks/pause:{PAUSE_VERSION}",
        pause_account(instance.region.as_str()),
        instance.region,
        values.dns_suffix
    );
    if outpost {
        values.api_server_addresses = found.cluster.api_server_addresses.clone();
        values.current_hosts = found.host.hosts_file.clone();
    }
    match &instance.tags {
        Some(tags) => {
            let (labels, why) = super::labels::from_tags(tags, config.tag_label_prefix());
            for (key, value) in labels {
                values.labels.entry(key).or_insert(value);
            }
            for (key, why) in why {
                values.explain.insert(format!("label {key}"), why);
            }
        }
        None => {
            values.explain.insert(
                "instance tag labels".to_owned(),
                "none: the instance does not show its tags in instance metadata".to_owned(),
            );
        }
    }
    Ok(values)
}

/// A kubeadm join: the API server and CA come only from the verified cluster-info (never from
/// the config), the node is named after the host, and there is no provider ID, no AWS region
/// and no exec credential plugin.
fn resolve_kubeadm(config: &NodeConfig, found: &Discovered) -> Result<NodeValues, Error> {
    let endpoint = found
        .cluster
        .endpoint
        .clone()
        .or_else(|| config.spec.cluster.api_server_endpoint.clone())
        .ok_or(Error::Missing {
            what: "the API server endpoint",
            fix: "set spec.cluster.apiServerEndpoint".into(),
        })?;
    let ca_pem = found
        .cluster
        .certificate_authority_pem
        .clone()
        .ok_or(Error::Missing {
            what: "the cluster CA",
            fix: "it comes from the verified cluster-info ConfigMap; run discovery (`init`) with spec.kubeadm set".into(),
        })?
        .into_bytes();
    let default_cidr = KUBEADM_DEFAULT_SERVICE_CIDR.parse().ok();
    let common = Common::new(config, found, endpoint, ca_pem, default_cidr)?;
    let host_ip = if common.ipv6() {
        found.host.default_ipv6
    } else {
        found.host.default_ipv4
    };
    let node_ip = user_node_ip(config)?.or(host_ip).ok_or(Error::Missing {
        what: "the node IP",
        fix: "no interface holds the default route; add --node-ip=<address> to spec.kubelet.flags"
            .into(),
    })?;
    let why_node_ip = if user_node_ip(config)?.is_some() {
        "--node-ip in spec.kubelet.flags"
    } else {
        "the interface of the default route"
    };
    let (what, name) = match config.spec.kubelet.flag("hostname-override") {
        Some(name) => ("--hostname-override in spec.kubelet.flags", name.to_owned()),
        None => (
            "the host name",
            found.host.hostname.trim().to_ascii_lowercase(),
        ),
    };
    if name.is_empty() {
        return Err(Error::Missing {
            what: "the node name",
            fix: "the host has no hostname; set one, or add --hostname-override=<name> to spec.kubelet.flags".into(),
        });
    }
    check_swap(config, &found.host.swaps)?;
    let user_max_pods = config.spec.kubelet.max_pods();
    common.values(Identity {
        kind: NodeKind::Kubeadm,
        region: config.spec.cluster.region.clone().unwrap_or_default(),
        node_ip,
        node_name: node_name(what, &name)?,
        provider_id: None,
        max_pods: user_max_pods.unwrap_or(DEFAULT_MAX_PODS),
        cores: found.host.cpu_cores.max(1),
        vpc: None,
        sandbox_image: PUBLIC_PAUSE_IMAGE.into(),
        why_name: what.to_owned(),
        why_max_pods: default_max_pods_why(user_max_pods),
        why_node_ip: why_node_ip.to_owned(),
    })
}

/// How max pods came about on a node without an instance type.
fn default_max_pods_why(user: Option<u32>) -> String {
    match user {
        Some(_) => "spec.kubelet.config.maxPods".to_owned(),
        None => {
            format!("kubelet's default ({DEFAULT_MAX_PODS}): this node has no EC2 instance type")
        }
    }
}

/// `clusterDNS` the user set in `kubelet.config` (its first entry).
fn user_cluster_dns(config: &NodeConfig) -> Result<Option<IpAddr>, Error> {
    match config
        .spec
        .kubelet
        .config
        .get("clusterDNS")
        .and_then(|v| v.as_array())
        .and_then(|a| a.first())
    {
        Some(v) => {
            let s = v.as_str().unwrap_or_default();
            s.parse().map(Some).map_err(|_| Error::Invalid {
                what: "spec.kubelet.config.clusterDNS".into(),
                reason: format!("\"{s}\" is not an IP address"),
            })
        }
        None => Ok(None),
    }
}

/// Hybrid nodes: the node IP must lie in one of the cluster's remote node networks (when
/// DescribeCluster told them).
fn check_remote_node_network(
    ip: IpAddr,
    origin: &'static str,
    networks: &[IpNet],
) -> Result<(), Error> {
    if networks.is_empty() || networks.iter().any(|n| n.contains(&ip)) {
        return Ok(());
    }
    Err(Error::NodeIpOutsideRemoteNetworks {
        ip,
        origin,
        networks: networks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The active swap files (partitions are refused by [`check_swap`]).
fn swap_files(swaps: &[SwapArea]) -> Vec<String> {
    swaps
        .iter()
        .filter(|s| s.kind == SwapKind::File)
        .map(|s| s.path.clone())
        .collect()
}

/// On-prem nodes: swap must be off unless kubelet allows it. Swap files are turned off by
/// `init` (a host action of the plan; their fstab lines are commented out); a swap partition
/// is refused before anything changes, because it is the operator's disk layout to change.
fn check_swap(config: &NodeConfig, swaps: &[SwapArea]) -> Result<(), Error> {
    if !config.spec.kubelet.fail_swap_on() {
        return Ok(());
    }
    match swaps.iter().find(|s| s.kind == SwapKind::Partition) {
        Some(p) => Err(Error::SwapPartition {
            path: p.path.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cluster, HostFacts};

    fn kubeadm_config() -> NodeConfig {
        serde_yaml_ng::from_str(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: eksa\n    apiServerEndpoint: https://10.0.0.10:6443\n  kubeadm:\n    bootstrapToken: 07401b.f395accd246ae52d\n    caCertHashes: [\"sha256:04e58bf21ceff0a3df962ae3651ed69177457769f22858dcf1b0988a66dedfa2\"]\n",
        )
        .unwrap()
    }

    fn found() -> Discovered {
        Discovered {
            cluster: Cluster {
                endpoint: Some("https://cp.eksa.internal:6443".into()),
                certificate_authority_pem: Some("PEM".into()),
                ..Cluster::default()
            },
            host: HostFacts {
                cpu_cores: 2,
                default_ipv4: Some("10.0.1.5".parse().unwrap()),
                hostname: "Worker-A.Lab".into(),
                ..HostFacts::default()
            },
            ..Discovered::default()
        }
    }

    #[test]
    fn kubeadm_nodes_are_named_after_the_host_and_use_the_verified_server() {
        let values = resolve(&kubeadm_config(), &found()).unwrap();
        assert_eq!(values.kind, NodeKind::Kubeadm);
        assert_eq!(values.node_name.as_str(), "worker-a.lab");
        assert_eq!(values.provider_id, None);
        assert_eq!(values.api_server_endpoint, "https://cp.eksa.internal:6443");
        assert_eq!(values.ca_pem, b"PEM");
        assert_eq!(values.cluster_dns.to_string(), "10.96.0.10");
        assert_eq!(values.max_pods, DEFAULT_MAX_PODS);
        assert!(values.exec_env.is_empty() && values.labels.is_empty());
    }

    #[test]
    fn kubeadm_nodes_never_take_the_ca_from_anywhere_but_discovery() {
        let mut found = found();
        found.cluster.certificate_authority_pem = None;
        let err = resolve(&kubeadm_config(), &found).unwrap_err().to_string();
        assert!(err.contains("cluster-info"), "{err}");
    }
}
