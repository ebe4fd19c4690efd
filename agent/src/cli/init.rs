//! `eks-node-agent init`: sources -> NodeConfig -> facts -> values -> plan -> apply.
//!
//! Two phases as in nodeadm: `config` writes files and kernel settings, `run` brings up
//! containerd then kubelet. `--skip` leaves one out so boot can be split around cloud-init.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::config::SourceArgs;
use crate::apply::{Applier, Root};
use crate::compute::values::{self, Cluster, Discovered, Instance};
use crate::config::{Loaded, NodeConfig, Source, UserDataFetch};
use crate::exit;
use crate::facts::{self, host::HostFacts, imds::Imds};
use crate::render;

/// Render the node's configuration and bring up containerd and kubelet.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    eks-node-agent init                                  # user data, then /etc/eks-node-agent/config.d/\n  \
    eks-node-agent init --dry-run -c file://examples/hybrid-iam-roles-anywhere.yaml\n  \
    eks-node-agent init --root ./node-root -c file:///tmp/nodeconfig.yaml\n  \
    eks-node-agent init --skip run                       # files only (before cloud-init)")]
pub struct InitArgs {
    #[command(flatten)]
    sources: SourceArgs,
    /// Print the plan (files with a diff against disk, sysctls, service actions); write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Apply under this directory instead of `/` (skips sysctls and services).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Leave out a phase: `config` (files, sysctls) or `run` (services). Repeatable.
    #[arg(long, value_enum, value_name = "PHASE")]
    skip: Vec<Phase>,
}

/// The phases of `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Write files and kernel settings.
    Config,
    /// Start containerd and kubelet.
    Run,
}

/// Fetches user data from IMDS (for `config check/show`), on a runtime of its own.
#[derive(Debug)]
pub(crate) struct ImdsUserData;

impl UserDataFetch for ImdsUserData {
    fn fetch_user_data(&self) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async { Ok(Imds::new()?.user_data().await?) })
    }
}

/// User data fetched before the config is loaded, on the runtime `init` uses throughout.
struct Prefetched(Result<Option<Vec<u8>>, String>);

impl UserDataFetch for Prefetched {
    fn fetch_user_data(&self) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        self.0.clone().map_err(Into::into)
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub(crate) fn run(args: InitArgs) -> anyhow::Result<exit::Code> {
    let rt = runtime()?;
    rt.block_on(async {
        let started = Instant::now();
        let wants_imds = args.sources.sources.is_empty()
            || args
                .sources
                .sources
                .iter()
                .any(|s| matches!(Source::parse(s), Ok(Source::ImdsUserData)));
        let imds = Imds::new()?;
        let user_data = if wants_imds {
            Prefetched(imds.user_data().await.map_err(|e| e.to_string()))
        } else {
            Prefetched(Ok(None))
        };
        let loaded = crate::config::load(&args.sources.sources, &user_data)?;
        tracing::info!(
            phase = "sources",
            duration_ms = started.elapsed().as_millis() as u64,
            documents = loaded.documents.len(),
            "config loaded"
        );
        let on_host = args.root.is_none() && !args.dry_run;
        crate::report::phases::record_default(on_host, "sources", started.elapsed());
        execute(&args, loaded, &imds).await
    })
}

/// `bootstrap` (legacy flags) ends here with its translated config.
pub(crate) fn run_loaded(loaded: Loaded) -> anyhow::Result<exit::Code> {
    let args = InitArgs {
        sources: SourceArgs {
            sources: Vec::new(),
        },
        dry_run: false,
        root: None,
        skip: Vec::new(),
    };
    let rt = runtime()?;
    rt.block_on(async { execute(&args, loaded, &Imds::new()?).await })
}

async fn execute(args: &InitArgs, loaded: Loaded, imds: &Imds) -> anyhow::Result<exit::Code> {
    let config = &loaded.config;
    let root = match &args.root {
        Some(dir) => Root::at(dir),
        None => Root::host(),
    };
    let on_host = args.root.is_none() && !args.dry_run;
    let t = Instant::now();
    let found = discover(config, imds, &root, args.dry_run).await?;
    tracing::info!(
        phase = "discover",
        duration_ms = t.elapsed().as_millis() as u64,
        "facts gathered"
    );
    crate::report::phases::record_default(on_host, "discover", t.elapsed());

    let t = Instant::now();
    let node = values::resolve(config, &found)?;
    let plan = render::render(config, &node);
    tracing::info!(phase = "render", duration_us = t.elapsed().as_micros() as u64, files = plan.files.len(), node_name = %node.node_name, max_pods = node.max_pods, "plan rendered");
    crate::report::phases::record_default(on_host, "render", t.elapsed());

    let applier = Applier::new(root.clone());
    if args.dry_run {
        print!("{}", applier.dry_run(&plan)?);
        return Ok(exit::Code::Success);
    }
    let mut report = crate::apply::Report::default();
    if !args.skip.contains(&Phase::Config) {
        let t = Instant::now();
        report.merge(applier.apply_files(&plan)?);
        report.merge(applier.apply_sysctls(&plan)?);
        let on_prem = config.is_hybrid() || config.spec.kubeadm.is_some();
        if on_prem && root.is_host() && !values::swap_allowed(config) {
            swap_off(&found.host.swaps).await?;
        }
        tracing::info!(
            phase = "config",
            duration_ms = t.elapsed().as_millis() as u64,
            changed = report.files_changed().count(),
            "files written"
        );
        crate::report::phases::record_default(on_host, "config", t.elapsed());
    }
    if !args.skip.contains(&Phase::Run) {
        let t = Instant::now();
        let files = report.clone();
        report.merge(applier.run_services(&plan, &files).await?);
        tracing::info!(
            phase = "run",
            duration_ms = t.elapsed().as_millis() as u64,
            "services up"
        );
        crate::report::phases::record_default(on_host, "run", t.elapsed());
    }
    eprint!("{report}");
    Ok(exit::Code::Success)
}

/// Gathers the facts this node needs: the local host always; IMDS, EC2 and (when the config
/// lacks the endpoint, CA or service CIDR) EKS on EC2.
async fn discover(
    config: &NodeConfig,
    imds: &Imds,
    root: &Root,
    dry_run: bool,
) -> anyhow::Result<Discovered> {
    // The host's own facts (a few files and `containerd --version`, a process start that
    // costs tens of milliseconds) are read while the network calls are in flight.
    let host_task = tokio::task::spawn_blocking(|| HostFacts::read(std::path::Path::new("/")));
    let mut found = discover_remote(config, imds, root, dry_run).await?;
    let mut host = host_task
        .await
        .context("reading the host's facts did not finish")?;
    host.hosts_file = std::fs::read_to_string(root.dir().join("etc/hosts")).ok();
    host.fstab = std::fs::read_to_string(root.dir().join("etc/fstab")).ok();
    host.swaps = std::fs::read_to_string(root.dir().join("proc/swaps"))
        .map(|t| facts::host::parse_swaps(&t))
        .unwrap_or_default();
    found.host = host;
    Ok(found)
}

/// What `discover` learns from the network: IMDS and EC2/EKS, the hybrid node's cluster, or
/// kubeadm's cluster-info.
async fn discover_remote(
    config: &NodeConfig,
    imds: &Imds,
    root: &Root,
    dry_run: bool,
) -> anyhow::Result<Discovered> {
    let agent_binary =
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/eks-node-agent"));
    let mut found = Discovered {
        agent_binary,
        ..Discovered::default()
    };
    if config.is_kubeadm() {
        found.cluster = discover_cluster_info(config).await?;
        return Ok(found);
    }
    if config.is_hybrid() {
        found.ssm_managed_instance_id = facts::host::ssm_managed_instance_id(root.dir());
        if found.ssm_managed_instance_id.is_none() && root.is_host() && !dry_run {
            found.ssm_managed_instance_id = register_with_ssm(config).await?;
        }
        found.cluster = describe_hybrid_cluster(config).await?;
        let endpoint = config
            .spec
            .cluster
            .api_server_endpoint
            .clone()
            .or_else(|| found.cluster.endpoint.clone());
        let node_ip_set = config
            .spec
            .kubelet
            .flags
            .iter()
            .any(|f| f.trim_start_matches('-').starts_with("node-ip"));
        if let Some(endpoint) = endpoint.filter(|_| !node_ip_set) {
            found.api_route_ip = route_to(&endpoint).await;
        }
        return Ok(found);
    }
    let cluster = &config.spec.cluster;
    let ca = cluster
        .certificate_authority
        .as_deref()
        .and_then(|b64| crate::config::validate::ca_pem(b64).ok());
    let input = facts::DiscoverInput {
        cluster_name: cluster.name.clone().unwrap_or_default(),
        api_server_endpoint: cluster.api_server_endpoint.clone(),
        certificate_authority: ca,
        service_cidr: cluster.cidr.clone(),
        proxy: Some(agent_proxy(config)),
        ..facts::DiscoverInput::default()
    };
    let facts = facts::discover(imds, &input).await?;
    let md = &facts.instance;
    found.instance = Some(Instance {
        instance_id: md.identity.instance_id.clone(),
        instance_type: md.identity.instance_type.clone(),
        availability_zone: md.identity.availability_zone.clone(),
        region: md.identity.region.clone(),
        domain: md.domain.clone(),
        private_ipv4: md.local_ipv4.or(md.identity.private_ip).map(Into::into),
        ipv6: md.interface.ipv6s.first().copied().map(Into::into),
        private_dns_name: Some(facts.private_dns_name.clone()).filter(|s| !s.is_empty()),
        vpc_ipv4_cidrs: md
            .interface
            .vpc_ipv4_cidr_blocks
            .iter()
            .map(ToString::to_string)
            .collect(),
    });
    if let Some(c) = &facts.cluster {
        let v6 = c.ip_family == Some(facts::eks::IpFamily::Ipv6);
        let cidr = if v6 {
            c.service_ipv6_cidr
        } else {
            c.service_ipv4_cidr.or(c.service_ipv6_cidr)
        };
        found.cluster = Cluster {
            endpoint: c.endpoint.clone(),
            certificate_authority_pem: c.certificate_authority_pem.clone(),
            service_cidr: cidr.map(|c| c.to_string()),
            id: c.id.clone(),
            outpost: c.local_outpost,
            api_server_addresses: Vec::new(),
            remote_node_networks: Vec::new(),
        };
    }
    if let Some(it) = crate::compute::InstanceType::parse(&md.identity.instance_type).ok()
        && crate::compute::embedded_limits(&it).is_none()
    {
        let settings = crate::facts::instance_types::Ec2Settings {
            region: Some(md.identity.region.clone()),
            ..Default::default()
        };
        let (limits, _) = crate::facts::instance_types::resolve(
            &it,
            crate::facts::instance_types::Lookup::TableThenApi,
            &settings,
        )
        .await?;
        found.limits = Some(limits);
    }
    Ok(found)
}

/// kubeadm token discovery (`spec.kubeadm`): the API server and CA from the verified
/// cluster-info ConfigMap. Reads only; nothing is written before it succeeds.
async fn discover_cluster_info(config: &NodeConfig) -> anyhow::Result<Cluster> {
    use crate::facts::cluster_info::{self, BootstrapToken, CaPin};
    let Some(kubeadm) = config.spec.kubeadm.as_ref() else {
        return Ok(Cluster::default());
    };
    // Validated when the config was loaded; parsed again into their types here.
    let token = BootstrapToken::parse(kubeadm.bootstrap_token.as_deref().unwrap_or_default())
        .map_err(|e| exit::BadInput(format!("spec.kubeadm.bootstrapToken: {e}")))?;
    let pins = kubeadm
        .ca_cert_hashes
        .iter()
        .map(|h| CaPin::parse(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| exit::BadInput(format!("spec.kubeadm.caCertHashes: {e}")))?;
    let endpoint = config
        .spec
        .cluster
        .api_server_endpoint
        .clone()
        .ok_or_else(|| {
            exit::BadInput("spec.cluster.apiServerEndpoint: is required with spec.kubeadm".into())
        })?;
    let limits = cluster_info::Limits {
        timeout: kubeadm.discovery_timeout_seconds.map_or(
            cluster_info::DEFAULT_DISCOVERY_TIMEOUT,
            std::time::Duration::from_secs,
        ),
        ..cluster_info::Limits::default()
    };
    let verified = cluster_info::discover(&endpoint, &token, &pins, &limits).await?;
    Ok(Cluster {
        endpoint: Some(verified.server),
        certificate_authority_pem: Some(String::from_utf8_lossy(&verified.ca_pem).into_owned()),
        service_cidr: None,
        id: None,
        outpost: false,
        api_server_addresses: Vec::new(),
        remote_node_networks: Vec::new(),
    })
}

/// How long `amazon-ssm-agent -register` may take.
const SSM_REGISTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Registers an SSM hybrid node with its activation when the SSM agent is installed; returns
/// the managed instance ID (the node's name). Not an SSM node, or no agent: `None`.
async fn register_with_ssm(config: &NodeConfig) -> anyhow::Result<Option<String>> {
    use crate::auth::ssm::{Activation, ActivationCode, RegisterCommand, SSM_AGENT_PROGRAM};
    let Some(ssm) = config.spec.hybrid.as_ref().and_then(|h| h.ssm.as_ref()) else {
        return Ok(None);
    };
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(SSM_AGENT_PROGRAM).is_file()));
    if !on_path {
        tracing::warn!(
            "amazon-ssm-agent is not installed; the node cannot register its SSM activation and is named after the host"
        );
        return Ok(None);
    }
    let source = "spec.hybrid.ssm";
    let activation = Activation {
        id: ssm.activation_id.clone().unwrap_or_default(),
        code: ActivationCode::parse(ssm.activation_code.as_deref().unwrap_or_default(), source)?,
        region: crate::auth::partition::Region::parse(
            config.spec.cluster.region.as_deref().unwrap_or_default(),
            "spec.cluster.region",
        )?,
    };
    let id = RegisterCommand::new(activation)
        .run(SSM_REGISTER_TIMEOUT)
        .await?;
    tracing::info!(managed_instance_id = %id, "registered with SSM");
    Ok(Some(id))
}

/// How long resolving the API server's name may take (for the node IP's route).
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The local address of the interface that routes to the API server at `endpoint`; `None`
/// when it cannot be resolved in time.
async fn route_to(endpoint: &str) -> Option<std::net::IpAddr> {
    let ip = tokio::time::timeout(RESOLVE_TIMEOUT, facts::host::route_to_endpoint(endpoint))
        .await
        .ok()
        .and_then(Result::ok);
    tracing::debug!(endpoint, local = ?ip, "route to the API server");
    ip
}

/// The AWS credentials of a hybrid node: IAM Roles Anywhere with the node's certificate, or
/// the credentials file the SSM agent keeps for the activation.
async fn hybrid_credentials(
    config: &NodeConfig,
) -> anyhow::Result<aws_credential_types::provider::SharedCredentialsProvider> {
    use crate::auth::credentials::{self, Source};
    use crate::auth::partition::Region;
    use crate::auth::rolesanywhere::{RolesAnywhere, RolesAnywhereProvider};
    use aws_credential_types::provider::SharedCredentialsProvider;
    let hybrid = config
        .spec
        .hybrid
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("not a hybrid node"))?;
    let region = config.spec.cluster.region.as_deref().unwrap_or_default();
    if let Some(ira) = &hybrid.iam_roles_anywhere {
        let anchor = ira.trust_anchor_arn.clone().unwrap_or_default();
        let ra_region = anchor
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .unwrap_or(region);
        let ca_bundle = std::env::var_os("AWS_CA_BUNDLE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let endpoint = std::env::var(ROLES_ANYWHERE_ENDPOINT_ENV)
            .ok()
            .filter(|v| !v.is_empty());
        let client = RolesAnywhere::for_node(
            ira,
            Region::parse(ra_region, "spec.hybrid.iamRolesAnywhere.trustAnchorArn")?,
            endpoint.as_deref(),
            ca_bundle.as_deref(),
            std::sync::Arc::new(crate::auth::SystemClock),
        )?;
        return Ok(SharedCredentialsProvider::new(RolesAnywhereProvider::new(
            client,
        )));
    }
    let env = credentials::process_env;
    let path = crate::auth::ssm::credentials_file(&env);
    Ok(credentials::provider(
        &Source::SsmFile(path),
        &Region::parse(region, "spec.cluster.region")?,
        &env,
    )
    .await?)
}

/// The standard variable naming the Roles Anywhere endpoint (as for the AWS SDKs).
pub(crate) const ROLES_ANYWHERE_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_ROLESANYWHERE";

/// DescribeCluster for a hybrid node, with the node's own credentials: the endpoint, CA and
/// service CIDR when the config lacks them (then a failure is an error), and the remote node
/// networks the node IP must be in (when the config is complete, a failure only skips that
/// check, with a warning).
async fn describe_hybrid_cluster(config: &NodeConfig) -> anyhow::Result<Cluster> {
    let cluster = &config.spec.cluster;
    let complete = cluster.api_server_endpoint.is_some()
        && cluster.certificate_authority.is_some()
        && cluster.cidr.is_some();
    let name = cluster.name.clone().unwrap_or_default();
    let region = cluster.region.clone().unwrap_or_default();
    let described = async {
        facts::check_trust_store()?;
        let creds = hybrid_credentials(config).await?;
        let sdk = facts::sdk_config_with(&region, Some(creds), &agent_proxy(config)).await;
        let eks = facts::eks::Eks::new(&sdk, None);
        let need_ca = cluster.certificate_authority.is_none();
        anyhow::Ok(
            eks.cluster_details(&name, need_ca, facts::eks::CreatingWait::default())
                .await?,
        )
    }
    .await;
    match described {
        Ok(d) => {
            let v6 = d.ip_family == Some(facts::eks::IpFamily::Ipv6);
            let cidr = if v6 {
                d.service_ipv6_cidr
            } else {
                d.service_ipv4_cidr.or(d.service_ipv6_cidr)
            };
            tracing::info!(cluster = %name, remote_node_networks = ?d.remote_node_networks, "described the hybrid cluster");
            Ok(Cluster {
                endpoint: d.endpoint.clone(),
                certificate_authority_pem: d.certificate_authority_pem.clone(),
                service_cidr: cidr.map(|c| c.to_string()),
                id: d.id.clone(),
                outpost: false,
                api_server_addresses: Vec::new(),
                remote_node_networks: d.remote_node_networks.clone(),
            })
        }
        Err(e) if complete => {
            let causes: Vec<String> = e.chain().map(ToString::to_string).collect();
            tracing::warn!(cluster = %name, error = %causes.join(": "), "cannot describe the cluster; the node IP is not checked against its remote node networks");
            Ok(Cluster::default())
        }
        Err(e) => Err(e.context(format!(
            "describing hybrid cluster {name} in {region} (needed because spec.cluster lacks apiServerEndpoint, certificateAuthority or cidr; set them, or grant the node's role eks:DescribeCluster)"
        ))),
    }
}

/// How long turning off one swap file may take (it pages everything back in).
const SWAPOFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Turns off active swap files (`swapoff PATH`, no shell; the path comes from /proc/swaps).
/// Partitions were refused before anything changed (see `compute::values`).
async fn swap_off(swaps: &[facts::host::SwapArea]) -> anyhow::Result<()> {
    for swap in swaps
        .iter()
        .filter(|s| s.kind == facts::host::SwapKind::File)
    {
        tracing::info!(path = %swap.path, "turning off swap (kubelet failSwapOn)");
        let status = tokio::time::timeout(
            SWAPOFF_TIMEOUT,
            tokio::process::Command::new("swapoff")
                .arg(&swap.path)
                .kill_on_drop(true)
                .status(),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "swapoff {} did not finish within {SWAPOFF_TIMEOUT:?}",
                swap.path
            )
        })?
        .map_err(|e| anyhow::anyhow!("cannot run swapoff {}: {e}", swap.path))?;
        if !status.success() {
            anyhow::bail!(
                "swapoff {} failed ({status}); turn the swap off by hand, or set failSwapOn: false in spec.kubelet.config",
                swap.path
            );
        }
    }
    Ok(())
}

/// The proxy for the agent's own AWS calls: its process environment, else the NodeConfig's
/// `spec.instance.environment` (`default`, overridden by an `eks-node-agent-init` entry).
fn agent_proxy(config: &NodeConfig) -> facts::ProxySettings {
    let env = &config.spec.instance.environment;
    let from_config = facts::ProxySettings::from_vars(|k| {
        [
            "eks-node-agent-init",
            "eks-node-agent-init.service",
            "default",
        ]
        .iter()
        .find_map(|unit| env.get(*unit).and_then(|vars| vars.get(k)).cloned())
    });
    facts::ProxySettings::from_process_env().or(from_config)
}
