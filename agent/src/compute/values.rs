//! Resolution: (NodeConfig, what discovery found) -> [`NodeValues`], the input of render.
//! Pure: discovery (IMDS, EC2, EKS, the host) fills [`Discovered`]; this decides.
//!
//! A value the user set is never replaced by a derived one: `kubelet.config.maxPods`,
//! `--node-ip` in `kubelet.flags`, `clusterDNS` in `kubelet.config`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{MaxPodsExpression, MaxPodsOptions, cluster_dns_ip, effective_max_pods, kube_reserved};
use crate::config::NodeConfig;
use crate::config::types::HybridOptions;
use crate::model::node::PAUSE_VERSION;
use crate::model::paths::{HYBRID_AWS_CONFIG, SSM_CREDENTIALS_FILE};
use crate::model::{
    ClusterName, Discovered, NodeKind, NodeName, NodeValues, ProviderId, Region, SwapArea,
    SwapKind, embedded_limits,
};

/// kubelet's default max pods, used where no instance type applies (hybrid nodes).
pub const DEFAULT_MAX_PODS: u32 = 110;
/// The pause image for hosts outside AWS regions' ECR (hybrid and kubeadm nodes).
pub const PUBLIC_PAUSE_IMAGE: &str = "public.ecr.aws/eks-distro/kubernetes/pause:3.10";
/// Feature gate (ours): the VPC CNI runs with ENABLE_PREFIX_DELEGATION=true.
pub const GATE_PREFIX_DELEGATION: &str = "VpcCniPrefixDelegation";
/// Feature gate (ours): the VPC CNI runs with custom networking (ENIConfig).
pub const GATE_CUSTOM_NETWORKING: &str = "VpcCniCustomNetworking";
/// Feature gate (nodeadm's): name the node after its instance ID.
pub const GATE_INSTANCE_ID_NODE_NAME: &str = "InstanceIdNodeName";
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

/// The service CIDR: the config's, else what discovery found, else `default`.
fn service_cidr(
    config: &NodeConfig,
    found: &Discovered,
    default: Option<IpNet>,
) -> Result<Option<IpNet>, Error> {
    match config.spec.cluster.cidr.as_deref() {
        Some(text) => text.parse().map(Some).map_err(|_| Error::Invalid {
            what: "spec.cluster.cidr".into(),
            reason: format!("\"{text}\" is not a CIDR"),
        }),
        None => Ok(found.cluster.service_cidr.or(default)),
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
        Ok(Common {
            config,
            found,
            cluster_name: cluster_name(config)?,
            endpoint,
            ca_pem,
            service_cidr: service_cidr(config, found, default_cidr)?,
        })
    }

    fn ipv6(&self) -> bool {
        matches!(self.service_cidr, Some(IpNet::V6(_)))
    }

    fn values(&self, id: Identity) -> Result<NodeValues, Error> {
        let (config, found) = (self.config, self.found);
        let cluster_dns = match user_cluster_dns(config)? {
            Some(ip) => ip,
            None => cluster_dns_ip(self.service_cidr, id.vpc)?,
        };
        let on_prem = id.kind.is_hybrid() || id.kind == NodeKind::Kubeadm;
        let swap_off = on_prem && config.spec.kubelet.fail_swap_on();
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
            containerd_major: found.host.containerd_version.map_or(1, |v| v.major),
            sandbox_image: id.sandbox_image,
            nvidia_runtime: found.host.nvidia_runtime.clone(),
            agent_binary: found.agent_binary.clone(),
            labels: BTreeMap::new(),
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
            local_storage: None,
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
        values.local_storage = Some(super::local_storage::layout(&settings, facts)?);
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
    let (kind, node_name, provider, mut exec_env) = if let Some(ira) = &hybrid.iam_roles_anywhere {
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
            "iam-ra",
            env,
        )
    } else {
        // Registered with SSM: named after the managed instance ID; not (yet) registered:
        // after the host, as kubelet would name it.
        let name = match &found.ssm_managed_instance_id {
            Some(id) => id.clone(),
            None if found.host.hostname.trim().is_empty() => {
                return Err(Error::Missing {
                    what: "the node name",
                    fix: "register the host with SSM (spec.hybrid.ssm) or give it a hostname"
                        .into(),
                });
            }
            None => node_name(
                "the host name",
                &found.host.hostname.trim().to_ascii_lowercase(),
            )?,
        };
        let env = BTreeMap::from([(
            "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
            SSM_CREDENTIALS_FILE.to_owned(),
        )]);
        (NodeKind::HybridSsm, name, "ssm", env)
    };
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
        max_pods: config.spec.kubelet.max_pods().unwrap_or(DEFAULT_MAX_PODS),
        cores: found.host.cpu_cores.max(1),
        vpc: None,
        sandbox_image: PUBLIC_PAUSE_IMAGE.into(),
    })?;
    values.labels = BTreeMap::from([
        (
            "eks.amazonaws.com/compute-type".to_owned(),
            "hybrid".to_owned(),
        ),
        (
            "eks.amazonaws.com/hybrid-credential-provider".to_owned(),
            provider.to_owned(),
        ),
    ]);
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
        prefix_delegation: config.feature(GATE_PREFIX_DELEGATION),
        custom_networking: config.feature(GATE_CUSTOM_NETWORKING),
        ..MaxPodsOptions::default()
    };
    let expression = config
        .spec
        .kubelet
        .max_pods_expression
        .as_deref()
        .map(MaxPodsExpression::parse)
        .transpose()?;
    let max_pods = effective_max_pods(
        config.spec.kubelet.max_pods(),
        expression.as_ref(),
        &limits,
        &options,
    )?
    .value;
    let ipv6 = common.ipv6();
    let instance_ip = if ipv6 {
        instance.ipv6
    } else {
        instance.private_ipv4
    };
    let node_ip = user_node_ip(config)?
        .or(instance_ip)
        .ok_or(Error::Missing {
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
            config.feature(GATE_INSTANCE_ID_NODE_NAME),
        )?,
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
    common.values(Identity {
        kind: NodeKind::Kubeadm,
        region: config.spec.cluster.region.clone().unwrap_or_default(),
        node_ip,
        node_name: node_name(what, &name)?,
        provider_id: None,
        max_pods: config.spec.kubelet.max_pods().unwrap_or(DEFAULT_MAX_PODS),
        cores: found.host.cpu_cores.max(1),
        vpc: None,
        sandbox_image: PUBLIC_PAUSE_IMAGE.into(),
    })
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
