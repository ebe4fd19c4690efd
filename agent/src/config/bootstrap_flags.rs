//! The legacy `/etc/eks/bootstrap.sh CLUSTER [flags]` interface, translated into a
//! NodeConfig so that old launch templates keep working unchanged.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::{Map, Value};

use super::Error;
use super::types::{API_VERSION, KIND, LocalStorageStrategy, NodeConfig};

/// The flags bootstrap.sh accepted (values as bootstrap.sh took them: `--flag value`).
#[derive(Debug, Clone, Default, Args)]
pub struct LegacyFlags {
    /// The EKS cluster name.
    pub cluster_name: String,
    /// Set maxPods from the instance type (default true); false leaves kubelet's default of 110.
    #[arg(long, value_name = "true|false")]
    pub use_max_pods: Option<bool>,
    /// The cluster CA bundle, base64 (skips DescribeCluster with --apiserver-endpoint).
    #[arg(long, value_name = "BASE64")]
    pub b64_cluster_ca: Option<String>,
    /// The API server endpoint URL.
    #[arg(long, value_name = "URL")]
    pub apiserver_endpoint: Option<String>,
    /// Extra kubelet arguments, split like a shell would.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub kubelet_extra_args: Option<String>,
    /// The cluster DNS IP for kubelet's clusterDNS.
    #[arg(long, value_name = "IP")]
    pub dns_cluster_ip: Option<String>,
    /// Only `containerd` is supported.
    #[arg(long, value_name = "RUNTIME")]
    pub container_runtime: Option<String>,
    /// Join a local cluster on AWS Outposts.
    #[arg(long, value_name = "true|false")]
    pub enable_local_outpost: Option<bool>,
    /// The cluster ID (Outposts local clusters).
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
    /// ipv4 or ipv6.
    #[arg(long, value_name = "ipv4|ipv6")]
    pub ip_family: Option<String>,
    /// The IPv4 service CIDR.
    #[arg(long, value_name = "CIDR")]
    pub service_ipv4_cidr: Option<String>,
    /// The IPv6 service CIDR.
    #[arg(long, value_name = "CIDR")]
    pub service_ipv6_cidr: Option<String>,
    /// The ECR account that hosts the pause image.
    #[arg(long, value_name = "ACCOUNT")]
    pub pause_container_account: Option<String>,
    /// The pause image tag.
    #[arg(long, value_name = "VERSION")]
    pub pause_container_version: Option<String>,
    /// Instance-store disks: raid0, raid10 or mount.
    #[arg(long, value_name = "raid0|raid10|mount")]
    pub local_disks: Option<String>,
    /// A containerd config.toml to merge over the agent's.
    #[arg(long, value_name = "PATH")]
    pub containerd_config_file: Option<std::path::PathBuf>,
    /// Attempts for AWS API calls (sets AWS_MAX_ATTEMPTS for the node's services).
    #[arg(long, value_name = "N")]
    pub aws_api_retry_attempts: Option<u32>,
    /// Accepted for compatibility: systemd mounts bpffs on every supported OS.
    #[arg(long, value_name = "true|false")]
    pub mount_bpf_fs: Option<bool>,
    /// Removed with dockershim (Kubernetes 1.24); rejected with an explanation.
    #[arg(long, hide = true, value_name = "true|false")]
    pub enable_docker_bridge: Option<String>,
    /// Removed with dockershim (Kubernetes 1.24); rejected with an explanation.
    #[arg(long, hide = true, value_name = "JSON")]
    pub docker_config_json: Option<String>,
}

/// What else the translation needs from the host.
#[derive(Debug, Clone, Default)]
pub struct TranslationContext {
    /// The region, for the pause image's ECR host.
    pub region: Option<String>,
    /// The contents of `--containerd-config-file`, read by the caller.
    pub containerd_config: Option<String>,
}

/// The NodeConfig plus notes for flags that have no NodeConfig equivalent.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The translated document.
    pub config: NodeConfig,
    /// Human-readable notes (logged as warnings).
    pub notes: Vec<String>,
}

fn flag_err(flag: &str, msg: &str) -> Error {
    Error::BootstrapFlag(format!("--{flag}: {msg}"))
}

/// Translates bootstrap.sh flags into a NodeConfig document.
pub fn translate(flags: &LegacyFlags, ctx: &TranslationContext) -> Result<Translation, Error> {
    let mut notes = Vec::new();
    if flags.enable_docker_bridge.is_some() {
        return Err(flag_err(
            "enable-docker-bridge",
            "is not supported: Docker was removed as a Kubernetes runtime in 1.24 and containerd needs no bridge flag; remove it",
        ));
    }
    if flags.docker_config_json.is_some() {
        return Err(flag_err(
            "docker-config-json",
            "is not supported: Docker was removed as a Kubernetes runtime in 1.24; configure registries with spec.containerd.config instead",
        ));
    }
    let mut config = NodeConfig {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        ..Default::default()
    };
    let spec = &mut config.spec;
    spec.cluster.name = Some(flags.cluster_name.clone());
    spec.cluster.api_server_endpoint = flags.apiserver_endpoint.clone();
    spec.cluster.certificate_authority = flags.b64_cluster_ca.clone();
    if flags.enable_local_outpost == Some(true) {
        spec.cluster.enable_outpost = Some(true);
    }
    spec.cluster.id = flags.cluster_id.clone();

    let ipv6 = match flags.ip_family.as_deref() {
        None | Some("ipv4") => false,
        Some("ipv6") => true,
        Some(other) => {
            return Err(flag_err(
                "ip-family",
                &format!("\"{other}\" is not ipv4 or ipv6"),
            ));
        }
    };
    spec.cluster.cidr = if ipv6 {
        flags.service_ipv6_cidr.clone()
    } else {
        flags.service_ipv4_cidr.clone()
    };
    if ipv6 && flags.service_ipv4_cidr.is_some() {
        notes.push("--service-ipv4-cidr is ignored with --ip-family ipv6 (the service CIDR is --service-ipv6-cidr)".into());
    }

    match flags.container_runtime.as_deref() {
        None | Some("containerd") => {}
        Some(other) => {
            return Err(flag_err(
                "container-runtime",
                &format!("\"{other}\" is not supported; containerd is the only runtime"),
            ));
        }
    }

    let mut kubelet_config = Map::new();
    if let Some(ip) = &flags.dns_cluster_ip {
        kubelet_config.insert(
            "clusterDNS".into(),
            Value::Array(vec![Value::String(ip.clone())]),
        );
    }
    if flags.use_max_pods == Some(false) {
        kubelet_config.insert("maxPods".into(), Value::from(KUBELET_DEFAULT_MAX_PODS));
    }
    spec.kubelet.config = kubelet_config;
    if let Some(args) = &flags.kubelet_extra_args {
        spec.kubelet.flags = shell_words::split(args).map_err(|e| {
            flag_err(
                "kubelet-extra-args",
                &format!("cannot be split into arguments ({e}); check the quoting"),
            )
        })?;
    }

    let mut containerd_toml = ctx.containerd_config.clone();
    if flags.pause_container_account.is_some() || flags.pause_container_version.is_some() {
        let image = pause_image(flags, ctx)?;
        let overlay =
            format!("[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"{image}\"\n");
        containerd_toml = Some(match containerd_toml {
            Some(base) => super::merge::merge_toml(&base, &overlay, "--containerd-config-file")?,
            None => overlay,
        });
    }
    spec.containerd.config = containerd_toml;

    if let Some(disks) = &flags.local_disks {
        spec.instance.local_storage.strategy = Some(match disks.as_str() {
            "raid0" => LocalStorageStrategy::Raid0,
            "raid10" => LocalStorageStrategy::Raid10,
            "mount" => LocalStorageStrategy::Mount,
            other => {
                return Err(flag_err(
                    "local-disks",
                    &format!("\"{other}\" is not raid0, raid10 or mount"),
                ));
            }
        });
    }
    if let Some(n) = flags.aws_api_retry_attempts {
        let env = BTreeMap::from([("AWS_MAX_ATTEMPTS".to_owned(), n.to_string())]);
        spec.instance.environment.insert("default".into(), env);
    }
    if flags.mount_bpf_fs.is_some() {
        notes.push("--mount-bpf-fs has no NodeConfig equivalent: systemd mounts /sys/fs/bpf on every supported OS".into());
    }
    Ok(Translation { config, notes })
}

/// kubelet's own default when maxPods is not set.
const KUBELET_DEFAULT_MAX_PODS: u64 = 110;

fn pause_image(flags: &LegacyFlags, ctx: &TranslationContext) -> Result<String, Error> {
    let Some(account) = flags.pause_container_account.as_deref() else {
        return Err(flag_err(
            "pause-container-version",
            "needs --pause-container-account (the ECR account that hosts the pause image in your region)",
        ));
    };
    if account.len() != 12 || !account.chars().all(|ch| ch.is_ascii_digit()) {
        return Err(flag_err(
            "pause-container-account",
            &format!("\"{account}\" is not a 12-digit AWS account ID"),
        ));
    }
    let Some(region) = ctx.region.as_deref() else {
        return Err(flag_err(
            "pause-container-account",
            "needs the region to name the ECR registry: pass --region or set AWS_REGION",
        ));
    };
    let version = flags
        .pause_container_version
        .as_deref()
        .unwrap_or(crate::model::node::PAUSE_VERSION);
    let suffix = crate::model::partition_of(region).dns_suffix;
    Ok(format!(
        "{account}.dkr.ecr.{region}.{suffix}/eks/pause:{version}"
    ))
}
