//! The legacy `/etc/eks/bootstrap.sh CLUSTER [flags]` interface, translated into a
//! NodeConfig so that old launch templates keep working unchanged.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::Value;

use super::Error;
use super::parse::Document;
use super::types::{API_VERSION, KIND, LocalStorageStrategy, NodeConfig, NodeConfigSpec};
use crate::model::text::echo;

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

/// The NodeConfig, as one document per flag (so that a problem names the flag that set the
/// field), plus notes for flags that have no NodeConfig equivalent.
#[derive(Debug, Clone)]
pub struct Translation {
    /// One document per flag given, labelled with the flag, in merge order.
    pub documents: Vec<Document>,
    /// Human-readable notes (logged as warnings).
    pub notes: Vec<String>,
}

impl Translation {
    /// Merges and validates the documents as any NodeConfig is: every flag's value is checked
    /// like the field it maps to, and a problem names the flag.
    pub fn load(self) -> Result<super::Loaded, Error> {
        super::finish(self.documents, &["bootstrap flags".to_owned()])
    }
}

/// The label of the cluster name's document.
const CLUSTER_ARGUMENT: &str = "bootstrap CLUSTER argument";

fn flag_err(flag: &str, msg: &str) -> Error {
    Error::BootstrapFlag(format!("--{flag}: {msg}"))
}

/// A document holding what one flag sets.
fn document(label: &str, set: impl FnOnce(&mut NodeConfigSpec)) -> Document {
    let mut config = NodeConfig {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        ..Default::default()
    };
    set(&mut config.spec);
    Document {
        label: label.to_owned(),
        config,
    }
}

/// A service CIDR flag's value must be a CIDR of its flag's family, even when the other
/// family is chosen (a flag we accept is a flag we check).
fn check_service_cidr(flag: &str, value: Option<&str>, want_v6: bool) -> Result<(), Error> {
    let Some(value) = value else {
        return Ok(());
    };
    match value.parse::<ipnet::IpNet>() {
        Ok(net) if matches!(net, ipnet::IpNet::V6(_)) == want_v6 => Ok(()),
        Ok(_) => Err(flag_err(
            flag,
            &format!(
                "{} is not an {} CIDR",
                echo(value),
                if want_v6 { "IPv6" } else { "IPv4" }
            ),
        )),
        Err(_) => Err(flag_err(
            flag,
            &format!("{} is not a CIDR, e.g. 10.100.0.0/16", echo(value)),
        )),
    }
}

/// Translates bootstrap.sh flags into NodeConfig documents.
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
    let mut docs = vec![document(CLUSTER_ARGUMENT, |s| {
        s.cluster.name = Some(flags.cluster_name.clone());
    })];
    let mut add = |label: &str, set: &dyn Fn(&mut NodeConfigSpec)| {
        docs.push(document(label, set));
    };
    if let Some(v) = &flags.apiserver_endpoint {
        add("--apiserver-endpoint", &|s| {
            s.cluster.api_server_endpoint = Some(v.clone());
        });
    }
    if let Some(v) = &flags.b64_cluster_ca {
        add("--b64-cluster-ca", &|s| {
            s.cluster.certificate_authority = Some(v.clone());
        });
    }
    if flags.enable_local_outpost == Some(true) {
        add("--enable-local-outpost", &|s| {
            s.cluster.enable_outpost = Some(true)
        });
    }
    if let Some(v) = &flags.cluster_id {
        add("--cluster-id", &|s| s.cluster.id = Some(v.clone()));
    }

    let ipv6 = match flags.ip_family.as_deref() {
        None | Some("ipv4") => false,
        Some("ipv6") => true,
        Some(other) => {
            return Err(flag_err(
                "ip-family",
                &format!("{} is not ipv4 or ipv6", echo(other)),
            ));
        }
    };
    check_service_cidr(
        "service-ipv4-cidr",
        flags.service_ipv4_cidr.as_deref(),
        false,
    )?;
    check_service_cidr(
        "service-ipv6-cidr",
        flags.service_ipv6_cidr.as_deref(),
        true,
    )?;
    let (cidr_flag, cidr) = if ipv6 {
        ("--service-ipv6-cidr", &flags.service_ipv6_cidr)
    } else {
        ("--service-ipv4-cidr", &flags.service_ipv4_cidr)
    };
    if let Some(v) = cidr {
        add(cidr_flag, &|s| s.cluster.cidr = Some(v.clone()));
    }
    if ipv6 && flags.service_ipv4_cidr.is_some() {
        notes.push("--service-ipv4-cidr is ignored with --ip-family ipv6 (the service CIDR is --service-ipv6-cidr)".into());
    }

    match flags.container_runtime.as_deref() {
        None | Some("containerd") => {}
        Some(other) => {
            return Err(flag_err(
                "container-runtime",
                &format!(
                    "{} is not supported; containerd is the only runtime",
                    echo(other)
                ),
            ));
        }
    }

    if let Some(ip) = &flags.dns_cluster_ip {
        add("--dns-cluster-ip", &|s| {
            s.kubelet.config.insert(
                "clusterDNS".into(),
                Value::Array(vec![Value::String(ip.clone())]),
            );
        });
    }
    if flags.use_max_pods == Some(false) {
        add("--use-max-pods", &|s| {
            s.kubelet
                .config
                .insert("maxPods".into(), Value::from(KUBELET_DEFAULT_MAX_PODS));
        });
    }
    if let Some(args) = &flags.kubelet_extra_args {
        let split = shell_words::split(args).map_err(|e| {
            flag_err(
                "kubelet-extra-args",
                &format!("cannot be split into arguments ({e}); check the quoting"),
            )
        })?;
        add("--kubelet-extra-args", &|s| s.kubelet.flags = split.clone());
    }

    if let Some(base) = &ctx.containerd_config {
        add("--containerd-config-file", &|s| {
            s.containerd.config = Some(base.clone());
        });
    }
    if flags.pause_container_account.is_some() || flags.pause_container_version.is_some() {
        let image = pause_image(flags, ctx)?;
        let label = if flags.pause_container_account.is_some() {
            "--pause-container-account"
        } else {
            "--pause-container-version"
        };
        // Built as a table, so that no value can break out of its TOML string.
        let mut cri = toml::Table::new();
        cri.insert("sandbox_image".into(), toml::Value::String(image));
        let mut plugins = toml::Table::new();
        plugins.insert("io.containerd.grpc.v1.cri".into(), toml::Value::Table(cri));
        let mut root = toml::Table::new();
        root.insert("plugins".into(), toml::Value::Table(plugins));
        let overlay = toml::to_string(&root)
            .map_err(|e| flag_err("pause-container-version", &e.to_string()))?;
        add(label, &|s| s.containerd.config = Some(overlay.clone()));
    }

    if let Some(disks) = &flags.local_disks {
        let strategy = match disks.as_str() {
            "raid0" => LocalStorageStrategy::Raid0,
            "raid10" => LocalStorageStrategy::Raid10,
            "mount" => LocalStorageStrategy::Mount,
            other => {
                return Err(flag_err(
                    "local-disks",
                    &format!("{} is not raid0, raid10 or mount", echo(other)),
                ));
            }
        };
        add("--local-disks", &|s| {
            s.instance.local_storage.strategy = Some(strategy);
        });
    }
    if let Some(n) = flags.aws_api_retry_attempts {
        if n == 0 {
            return Err(flag_err(
                "aws-api-retry-attempts",
                "0 attempts would make no AWS call; use 1 or more (the SDK default is 3)",
            ));
        }
        add("--aws-api-retry-attempts", &|s| {
            let env = BTreeMap::from([("AWS_MAX_ATTEMPTS".to_owned(), n.to_string())]);
            s.instance.environment.insert("default".into(), env);
        });
    }
    if flags.mount_bpf_fs.is_some() {
        notes.push("--mount-bpf-fs has no NodeConfig equivalent: systemd mounts /sys/fs/bpf on every supported OS".into());
    }
    Ok(Translation {
        documents: docs,
        notes,
    })
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
            &format!("{} is not a 12-digit AWS account ID", echo(account)),
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
    if !valid_image_tag(version) {
        return Err(flag_err(
            "pause-container-version",
            &format!(
                "{} is not an image tag; expected letters, digits, '_', '.' and '-', at most 128 characters, e.g. 3.10",
                echo(version)
            ),
        ));
    }
    if !super::validate::valid_region(region) {
        return Err(flag_err(
            "pause-container-account",
            &format!(
                "the region {} (from --region, AWS_REGION or AWS_DEFAULT_REGION) is not an AWS region",
                echo(region)
            ),
        ));
    }
    let suffix = crate::model::partition_of(region).dns_suffix;
    Ok(format!(
        "{account}.dkr.ecr.{region}.{suffix}/eks/pause:{version}"
    ))
}

/// An OCI image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_image_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars
            .next()
            .is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && chars.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
}
