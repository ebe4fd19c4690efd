//! `status`: pre-flight and post-join checks of a node, in the spirit of `nodeadm debug`.
//!
//! [`run`] gathers what the checks need concurrently, each stage bounded by
//! [`Inputs::timeout`]: credentials and the binaries' versions first (the local checks
//! alongside), then STS and DescribeCluster, then the API server. Each check's decision and
//! its IO live in the check's own file; this runner only orders the stages and hands each
//! check what an earlier stage found. Every path, endpoint and clock the checks read is a
//! field of [`Inputs`] with a production default.
//!
//! The report has one [`Checked`] per check, in [`ALL`] order, and prints the name, status,
//! evidence and fix of each (see the [module documentation](super)).

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use ipnet::IpNet;
use serde::Serialize;

use super::api_server::{self, ApiProbe};
pub use super::clock::ClockSource;
use super::{
    Outcome, Status, clock, credentials, firewall, local_storage, network, node_ip, node_object,
    ports, proxy, serving_cert, sts, swap, ulimits, versions,
};
use crate::auth::Clock;
use crate::auth::credentials::Env;
use crate::config::NodeConfig;
use crate::facts::eks::ClusterDetails;
use crate::model::Region;
use crate::model::text::error_chain;
use crate::net::RetryPolicy;

/// How long one check (or one stage of a check that depends on another) may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// Where the kernel's process and socket tables are.
pub const DEFAULT_PROC_ROOT: &str = "/proc";
/// The host root (systemd drop-ins are read under `etc/systemd/system`).
pub const DEFAULT_HOST_ROOT: &str = "/";
/// The HTTP calls of the checks (STS, the API server): 3 attempts, 200 ms backoff doubling,
/// 5 s per attempt; transport errors, throttling and server errors are retried. The stage's
/// own bound ([`Inputs::timeout`]) ends them sooner when it is shorter.
pub const HTTP_RETRY: RetryPolicy = crate::net::retry::QUICK;

/// Check names, in the order they are printed. The configuration sources load, merge and
/// validate (when they do not, the report has only this check, with every problem).
pub const CONFIG: &str = "config";
/// Credentials resolve through the node's chain.
pub const CREDENTIALS: &str = "credentials";
/// STS GetCallerIdentity through the node's token.
pub const STS_IDENTITY: &str = "sts-identity";
/// The API server: reachable, its certificate trusted by the configured CA, `/version`.
pub const API_SERVER: &str = "api-server";
/// The node IP inside the cluster's remote node networks (hybrid nodes).
pub const NODE_IP: &str = "node-ip";
/// The kernel clock is synchronised.
pub const CLOCK: &str = "clock";
/// No active swap.
pub const SWAP: &str = "swap";
/// kubelet installed, within the supported skew of the API server.
pub const KUBELET: &str = "kubelet-version";
/// containerd installed, in the supported range.
pub const CONTAINERD: &str = "containerd-version";
/// Proxy settings cover what must not be proxied and agree across the units.
pub const PROXY: &str = "proxy";
/// The kubelet and kube-proxy ports are free (or held by their owners).
pub const PORTS: &str = "ports";
/// The running kubelet's and containerd's resource limits.
pub const ULIMITS: &str = "ulimits";
/// The kubelet's serving certificate: signed by the cluster CA for the node's names, valid.
pub const SERVING_CERT: &str = "kubelet-serving-cert";
/// An active host firewall lets in what the kubelet and the CNI need.
pub const CNI_FIREWALL: &str = "cni-firewall";
/// Once joined: the Node object exists and is Ready.
pub const NODE: &str = "node";

/// ECS hosts: DescribeClusters finds the cluster ACTIVE.
pub const ECS_CLUSTER: &str = "ecs-cluster";
/// ECS hosts: the ECS agent is registered (introspection API).
pub const ECS_AGENT: &str = "ecs-agent";
/// ECS hosts: Docker answers `/_ping`.
pub const ECS_DOCKER: &str = "docker";

/// The instance-store disks are set up as spec.instance.localStorage asks.
pub const LOCAL_STORAGE: &str = "local-storage";

/// Every check of an EKS node, in output order (an ECS host's are [`CONFIG`],
/// [`CREDENTIALS`], [`ECS_CLUSTER`], [`ECS_AGENT`], [`ECS_DOCKER`], [`CLOCK`]).
pub const ALL: [&str; 16] = [
    CONFIG,
    CREDENTIALS,
    STS_IDENTITY,
    API_SERVER,
    NODE_IP,
    CLOCK,
    SWAP,
    KUBELET,
    CONTAINERD,
    PROXY,
    PORTS,
    CNI_FIREWALL,
    LOCAL_STORAGE,
    ULIMITS,
    SERVING_CERT,
    NODE,
];

/// The kubelet's kubeconfig, which exists once the node has joined.
pub const KUBELET_KUBECONFIG: &str = "/var/lib/kubelet/kubeconfig";

/// The Node's name: given, else the Roles Anywhere node name, else the SSM managed instance
/// ID, else the host name (under `proc_root`).
fn node_name(inputs: &Inputs) -> String {
    if let Some(n) = &inputs.node_name {
        return n.clone();
    }
    let config = &inputs.config;
    if let Some(n) = config
        .spec
        .hybrid
        .as_ref()
        .and_then(|h| h.iam_roles_anywhere.as_ref())
        .and_then(|r| r.node_name.clone())
    {
        return n;
    }
    if let Some(id) = crate::facts::host::ssm_managed_instance_id(&inputs.host_root) {
        return id.to_string();
    }
    std::fs::read_to_string(inputs.proc_root.join("sys/kernel/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// What a check with an empty fix prints as its fix.
pub const NOTHING_TO_DO: &str = "nothing to do";

/// One line of the report: a check's name and its outcome, evidence and fix on one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The check's stable name (see [`ALL`]).
    pub name: &'static str,
    /// What it found.
    pub outcome: Outcome,
    /// Each problem behind the outcome, when there are several (the `config` check lists
    /// every problem of the configuration).
    pub problems: Vec<ConfigProblem>,
}

/// One problem of the configuration as the JSON report has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// The source and document, or `merged configuration`.
    pub at: String,
    /// The field path (empty when the problem is not one field's, e.g. a syntax error).
    pub path: String,
    /// What is wrong and the expected form.
    pub message: String,
}

impl From<&crate::config::Problem> for ConfigProblem {
    fn from(p: &crate::config::Problem) -> ConfigProblem {
        ConfigProblem {
            at: p.at.clone(),
            path: p.path.clone(),
            message: p.message.clone(),
        }
    }
}

impl Checked {
    /// The report line of check `name`.
    pub fn new(name: &'static str, mut outcome: Outcome) -> Checked {
        outcome.evidence = one_line(&outcome.evidence);
        outcome.fix = one_line(&outcome.fix);
        Checked {
            name,
            outcome,
            problems: Vec::new(),
        }
    }

    /// The fix as printed: [`NOTHING_TO_DO`] when there is none.
    pub fn fix(&self) -> &str {
        if self.outcome.fix.is_empty() {
            NOTHING_TO_DO
        } else {
            &self.outcome.fix
        }
    }
}

/// Multi-line text (some SDK errors list every provider tried) joined into one line.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

/// The start of `s` (trimmed), at most `max` characters, `...` when cut.
pub(super) fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// A check that passed: what was observed, and [`NOTHING_TO_DO`] as its fix.
pub(super) fn ok(evidence: impl Into<String>) -> Outcome {
    Outcome::ok(evidence).with_fix(NOTHING_TO_DO)
}

/// A check that found something to look at: its reason, what was observed, what to do.
pub(super) fn warn(reason: &str, evidence: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::warn(reason, evidence).with_fix(fix)
}

/// A check that failed: its reason, what was observed, what to do.
pub(super) fn fail(reason: &str, evidence: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::fail(reason, evidence).with_fix(fix)
}

/// What `config check` would tell, for the check `config`.
const CONFIG_FIX: &str = "correct the configuration sources as each problem says, then run `eks-node-agent config check`";

/// The `config` check of configuration that loaded: ok, or warn with each warning.
pub fn config_loaded(loaded: &crate::config::Loaded) -> Checked {
    let config = &loaded.config;
    let cluster = match &config.spec.ecs {
        Some(ecs) => format!(
            "ECS cluster {}{}",
            ecs.cluster.as_deref().unwrap_or("default"),
            if ecs.external.is_some() {
                " (ECS Anywhere)"
            } else {
                ""
            }
        ),
        None => format!(
            "cluster {}",
            config.spec.cluster.name.as_deref().unwrap_or("?")
        ),
    };
    let what = format!(
        "{} document(s) merged into {cluster}",
        loaded.documents.len()
    );
    if loaded.warnings.is_empty() {
        return Checked::new(CONFIG, ok(what));
    }
    let mut checked = Checked::new(
        CONFIG,
        warn(
            "ConfigWarnings",
            format!("{what}, with {} warning(s)", loaded.warnings.len()),
            CONFIG_FIX,
        ),
    );
    checked.problems = loaded.warnings.iter().map(ConfigProblem::from).collect();
    checked
}

/// The `config` check of configuration that did not load: fail, with every problem the
/// error names (validation problems one by one; a syntax or field error as one).
pub fn config_failed(err: &anyhow::Error) -> Checked {
    use crate::config::Error;
    let problems: Vec<ConfigProblem> = match err.chain().find_map(|e| e.downcast_ref::<Error>()) {
        Some(Error::Invalid { problems }) => problems.iter().map(ConfigProblem::from).collect(),
        Some(Error::Strict { warnings }) => warnings.iter().map(ConfigProblem::from).collect(),
        Some(Error::Field { at, path, message }) => vec![ConfigProblem {
            at: at.clone(),
            path: path.clone(),
            message: message.clone(),
        }],
        Some(Error::Syntax {
            at,
            line,
            column,
            message,
        }) => vec![ConfigProblem {
            at: format!("{at}: line {line}, column {column}"),
            path: String::new(),
            message: message.clone(),
        }],
        _ => Vec::new(),
    };
    let mut checked = Checked::new(
        CONFIG,
        fail("ConfigInvalid", error_chain(err.as_ref()), CONFIG_FIX),
    );
    checked.problems = problems;
    checked
}

/// Everything the checks read, with production defaults from [`Inputs::new`].
#[derive(Clone)]
pub struct Inputs {
    /// The merged NodeConfig.
    pub config: NodeConfig,
    /// The proc filesystem (`/proc`): swaps, net/tcp, net/tcp6, PID directories.
    pub proc_root: PathBuf,
    /// The host root (`/`): systemd drop-ins of containerd and kubelet.
    pub host_root: PathBuf,
    /// Directories searched for kubelet and containerd (`PATH`).
    pub search_path: String,
    /// The node IP to check (else the kubelet's `--node-ip` flag in the config, else the
    /// address that routes to the API server).
    pub node_ip: Option<IpAddr>,
    /// Remote node networks to check against instead of asking DescribeCluster.
    pub remote_node_networks: Vec<IpNet>,
    /// STS endpoint override (else `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the regional).
    pub sts_endpoint: Option<String>,
    /// EKS endpoint override (else the SDK's resolution, including `AWS_ENDPOINT_URL_EKS`).
    pub eks_endpoint: Option<String>,
    /// IAM Roles Anywhere endpoint override (else the region's).
    pub rolesanywhere_endpoint: Option<String>,
    /// ECS hosts: ECS endpoint override (else the SDK's resolution, including
    /// `AWS_ENDPOINT_URL_ECS`).
    pub ecs_endpoint: Option<String>,
    /// ECS hosts: the ECS agent's introspection API.
    pub ecs_introspection: String,
    /// ECS hosts: Docker's socket.
    pub docker_socket: PathBuf,
    /// The environment (credentials chain, region, proxies).
    pub env: Arc<Env>,
    /// The clock state source.
    pub clock_source: ClockSource,
    /// The wall clock used for signing.
    pub clock: Arc<dyn Clock>,
    /// Bound on each check.
    pub timeout: Duration,
    /// The kubelet's kubeconfig (under `host_root`): the node has joined when it exists.
    pub kubeconfig: PathBuf,
    /// The Node's name (else `spec.hybrid.iamRolesAnywhere.nodeName`, the SSM managed
    /// instance ID, the host name).
    pub node_name: Option<String>,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("proc_root", &self.proc_root)
            .field("host_root", &self.host_root)
            .field("node_ip", &self.node_ip)
            .field("remote_node_networks", &self.remote_node_networks)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("eks_endpoint", &self.eks_endpoint)
            .field("clock_source", &self.clock_source)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Inputs {
    /// Production defaults for `config`: `/proc`, `/`, `PATH`, the process environment, the
    /// kernel clock, [`CHECK_TIMEOUT`].
    pub fn new(config: NodeConfig) -> Inputs {
        Inputs {
            config,
            proc_root: PathBuf::from(DEFAULT_PROC_ROOT),
            host_root: PathBuf::from(DEFAULT_HOST_ROOT),
            search_path: std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/usr/sbin".into()),
            node_ip: None,
            remote_node_networks: Vec::new(),
            sts_endpoint: None,
            eks_endpoint: None,
            rolesanywhere_endpoint: None,
            ecs_endpoint: None,
            ecs_introspection: crate::model::ecs::INTROSPECTION_ENDPOINT.into(),
            docker_socket: PathBuf::from(crate::model::ecs::DOCKER_SOCKET),
            env: Arc::new(crate::auth::credentials::process_env),
            clock_source: ClockSource::Kernel,
            clock: Arc::new(crate::auth::SystemClock),
            timeout: CHECK_TIMEOUT,
            kubeconfig: PathBuf::from(KUBELET_KUBECONFIG),
            node_name: None,
        }
    }
}

/// The checks' results in [`ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// One per check.
    pub checks: Vec<Checked>,
}

/// One check as the JSON report has it.
#[derive(Serialize)]
struct JsonCheck<'a> {
    name: &'a str,
    status: Status,
    evidence: &'a str,
    fix: &'a str,
    #[serde(skip_serializing_if = "<[ConfigProblem]>::is_empty")]
    problems: &'a [ConfigProblem],
}

impl Report {
    /// True when no check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome.status != Status::Fail)
    }

    fn count(&self, s: Status) -> usize {
        self.checks.iter().filter(|c| c.outcome.status == s).count()
    }

    /// The human-readable report: per check a status line with the evidence and a fix line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<4} {}: {}\n",
                c.outcome.status.as_str(),
                c.name,
                c.outcome.evidence
            ));
            for p in &c.problems {
                out.push_str(&format!("     - {}: {}: {}\n", p.at, p.path, p.message));
            }
            out.push_str(&format!("     fix: {}\n", c.fix()));
        }
        out.push_str(&format!(
            "{} checks: {} ok, {} warn, {} fail\n",
            self.checks.len(),
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }

    /// The JSON report: `{"checks": [{name, status, evidence, fix}...], "summary": {...}}`.
    pub fn json(&self) -> String {
        let checks: Vec<JsonCheck<'_>> = self
            .checks
            .iter()
            .map(|c| JsonCheck {
                name: c.name,
                status: c.outcome.status,
                evidence: &c.outcome.evidence,
                fix: c.fix(),
                problems: &c.problems,
            })
            .collect();
        let value = serde_json::json!({
            "checks": checks,
            "summary": {
                "ok": self.count(Status::Ok),
                "warn": self.count(Status::Warn),
                "fail": self.count(Status::Fail),
            }
        });
        format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )
    }
}

/// `fut`, or an error naming `what` when it takes longer than `limit`.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: no answer within {limit:?}")))
}

/// Runs every check and returns the report.
pub async fn run(inputs: &Inputs) -> Report {
    if inputs.config.is_ecs() {
        return super::ecs::status(inputs).await;
    }
    let config = &inputs.config;
    let hybrid = config.is_hybrid();
    let limit = inputs.timeout;

    let local = {
        let inputs = inputs.clone();
        tokio::task::spawn_blocking(move || local_checks(&inputs))
    };
    let creds = bounded(limit, "resolving credentials", credentials::resolve(inputs));
    let kubelet = versions::exec_version("kubelet", &inputs.search_path);
    let containerd = versions::exec_version("containerd", &inputs.search_path);
    let (creds, kubelet, containerd) = tokio::join!(creds, kubelet, containerd);

    let cluster = &config.spec.cluster;
    let config_ca = cluster
        .certificate_authority
        .as_deref()
        .map(crate::config::validate::ca_pem);
    let needs_describe = cluster.api_server_endpoint.is_none()
        || config_ca.is_none()
        || (hybrid && inputs.remote_node_networks.is_empty());
    let identity = async {
        match &creds {
            Ok(resolved) => {
                bounded(
                    limit,
                    "STS GetCallerIdentity",
                    sts::caller_identity(inputs, &resolved.credentials, &resolved.region),
                )
                .await
            }
            Err(_) => Err("not attempted: no credentials (see the credentials check)".to_owned()),
        }
    };
    let described = async {
        if !needs_describe {
            return Ok(None);
        }
        match &creds {
            Ok(resolved) => bounded(
                limit,
                "EKS DescribeCluster",
                describe_cluster(
                    inputs,
                    &resolved.credentials,
                    &resolved.region,
                    config_ca.is_none(),
                ),
            )
            .await
            .map(Some),
            Err(_) => Err("no credentials to call eks:DescribeCluster".to_owned()),
        }
    };
    let (identity, described) = tokio::join!(identity, described);

    let described_ok = described.as_ref().ok().and_then(Option::as_ref);
    let endpoint = cluster
        .api_server_endpoint
        .clone()
        .or_else(|| described_ok.and_then(|d| d.endpoint.clone()));
    let ca: Result<Vec<u8>, String> = match (config_ca, described_ok) {
        (Some(Ok(pem)), _) => Ok(pem),
        (Some(Err(e)), _) => Err(format!("spec.cluster.certificateAuthority {e}")),
        (None, Some(d)) => d
            .certificate_authority_pem
            .clone()
            .map(String::into_bytes)
            .ok_or_else(|| "DescribeCluster returned no CA".to_owned()),
        (None, None) => Err("spec.cluster.certificateAuthority is not set".to_owned()),
    };
    let api_probe = match (&endpoint, &ca, &described) {
        (Some(url), Ok(pem), _) => bounded(limit, "GET /version", async {
            Ok(api_server::probe(url, pem, inputs.env.as_ref()).await)
        })
        .await
        .unwrap_or_else(ApiProbe::Unreachable),
        (Some(_), Err(e), _) if cluster.certificate_authority.is_some() => {
            ApiProbe::BadCa(e.clone())
        }
        (_, _, Err(why)) => ApiProbe::NotConfigured(format!(
            "the endpoint or CA is not in the configuration and DescribeCluster failed: {why}"
        )),
        (None, _, _) => ApiProbe::NotConfigured(
            "spec.cluster.apiServerEndpoint is not set and DescribeCluster returned none".into(),
        ),
        (Some(_), Err(e), _) => ApiProbe::NotConfigured(e.clone()),
    };
    let node = node_name(inputs);
    let kubeconfig = inputs.host_root.join(
        inputs
            .kubeconfig
            .strip_prefix("/")
            .unwrap_or(&inputs.kubeconfig),
    );
    let node_found = bounded(limit, "GET node", async {
        Ok(node_object::read(&kubeconfig, &node).await)
    })
    .await
    .unwrap_or_else(node_object::Found::Unreachable);
    let server_version = match &api_probe {
        ApiProbe::Version { version, .. } => Some(*version),
        _ => None,
    };

    let node_ip = match (node_ip::configured(inputs.node_ip, config), &endpoint) {
        (Some(found), _) => found,
        (None, Some(url)) => bounded(limit, "routing lookup", node_ip::route_to(url)).await,
        (None, None) => Err("no --node-ip and no API server endpoint to route to".into()),
    };
    let networks: Result<(Vec<IpNet>, String), String> = if !inputs.remote_node_networks.is_empty()
    {
        Ok((
            inputs.remote_node_networks.clone(),
            "--remote-node-network".to_owned(),
        ))
    } else {
        match &described {
            Ok(Some(d)) => Ok((
                d.remote_node_networks.clone(),
                "DescribeCluster remoteNetworkConfig".to_owned(),
            )),
            Ok(None) => Err("DescribeCluster was not called".to_owned()),
            Err(e) => Err(e.clone()),
        }
    };

    let serving = serving_cert_check(inputs, &ca, &kubeconfig, &node, &node_ip);
    let ipv6 = matches!(node_ip, Ok((IpAddr::V6(_), _)));
    let firewall = bounded(limit, "reading the firewall", async {
        Ok(firewall_check(inputs, ipv6).await)
    })
    .await
    .unwrap_or_else(|e| {
        fail(
            "FirewallUnknown",
            e,
            "run status as root; see journalctl for nft",
        )
    });

    let expected_role = config
        .spec
        .hybrid
        .as_ref()
        .and_then(|h| h.iam_roles_anywhere.as_ref())
        .and_then(|r| r.role_arn.as_deref());
    let mut results = vec![
        Checked::new(
            CREDENTIALS,
            credentials::check(
                &creds
                    .as_ref()
                    .map(|c| c.found.clone())
                    .map_err(Clone::clone),
                credentials::fix_for(config),
            ),
        ),
        Checked::new(STS_IDENTITY, sts::check(&identity, expected_role)),
        Checked::new(
            API_SERVER,
            api_server::check(endpoint.as_deref(), &api_probe),
        ),
        Checked::new(NODE_IP, node_ip::check(hybrid, &node_ip, &networks)),
        Checked::new(
            KUBELET,
            versions::kubelet(&kubelet, server_version.as_ref()),
        ),
        Checked::new(CONTAINERD, versions::containerd(&containerd)),
        Checked::new(NODE, node_object::check(&node, &node_found)),
        Checked::new(SERVING_CERT, serving),
        Checked::new(CNI_FIREWALL, firewall),
    ];
    let service_cidr = cluster
        .cidr
        .as_deref()
        .and_then(|c| c.parse::<IpNet>().ok())
        .or_else(|| described_ok.and_then(|d| d.service_ipv4_cidr.or(d.service_ipv6_cidr)));
    let api_host = endpoint
        .as_deref()
        .and_then(|e| url::Url::parse(e).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    match local.await {
        Ok(mut local) => {
            local.proxy.api_host = api_host;
            local.proxy.service_cidr = service_cidr;
            results.extend(local.results);
            results.push(Checked::new(PROXY, proxy::check(&local.proxy)));
        }
        Err(e) => tracing::error!(error = %e, "the local checks did not finish"),
    }
    results.sort_by_key(|r| ALL.iter().position(|n| *n == r.name));
    Report { checks: results }
}

/// The `kubelet-serving-cert` check: the certificate against the cluster CA (`ca`: the
/// configuration's or DescribeCluster's, else the CA file under the host root), the node IP
/// and the node's names.
fn serving_cert_check(
    inputs: &Inputs,
    ca: &Result<Vec<u8>, String>,
    kubeconfig: &std::path::Path,
    node: &str,
    node_ip: &Result<(IpAddr, String), String>,
) -> Outcome {
    let from = if inputs.config.spec.cluster.certificate_authority.is_some() {
        "spec.cluster.certificateAuthority"
    } else {
        "DescribeCluster"
    };
    let (ca, ca_missing) = match ca {
        Ok(pem) => (Some((pem.clone(), from.to_owned())), String::new()),
        Err(e) => match serving_cert::ca_file(&inputs.host_root) {
            Ok(found) => (Some(found), String::new()),
            Err(file) => (None, format!("{e}; {file}")),
        },
    };
    let host_name = std::fs::read_to_string(inputs.proc_root.join("sys/kernel/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let expected = serving_cert::Expected {
        ca,
        ca_missing,
        node_ip: node_ip.as_ref().ok().map(|(ip, _)| *ip),
        names: vec![node.to_owned(), host_name],
        joined: kubeconfig.exists(),
    };
    serving_cert::check(
        &serving_cert::read(&inputs.host_root),
        &expected,
        inputs.clock.now(),
    )
}

/// The `cni-firewall` check: the CNI from the runtime's CNI config directory, the firewalls
/// under the host root and `PATH`.
async fn firewall_check(inputs: &Inputs, ipv6: bool) -> Outcome {
    let root = &inputs.host_root;
    let conf_dir = root.join(
        crate::model::paths::CNI_CONF_DIR
            .strip_prefix('/')
            .unwrap_or_default(),
    );
    let seen = network::read(&conf_dir, &root.join("sys"), &inputs.proc_root);
    let cni = network::detect(&conf_dir, &seen.cni_configs);
    let geneve = root.join("sys/class/net/cilium_geneve").exists();
    let needs = firewall::needs(cni.as_ref().map(|(c, _)| c), geneve);
    let interface = seen.primary.as_ref().map(|p| p.name.as_str());
    let found = firewall::read(
        root,
        &inputs.proc_root,
        &inputs.search_path,
        interface,
        ipv6,
    )
    .await;
    firewall::check(&found, cni.as_ref(), &needs, ipv6)
}

/// The checks that read only local files, and the inputs of the proxy check that still
/// need the API server's host and the service CIDR.
struct Local {
    results: Vec<Checked>,
    proxy: proxy::ProxyInputs,
}

fn local_checks(inputs: &Inputs) -> Local {
    let clock = clock::read(&inputs.clock_source);
    let swaps = swap::read(&inputs.proc_root);
    let listeners = ports::read_listeners(&inputs.proc_root);
    let wanted: Vec<u64> = listeners
        .as_ref()
        .map(|l| {
            l.iter()
                .filter(|l| ports::REQUIRED_PORTS.iter().any(|(p, _, _)| *p == l.port))
                .map(|l| l.inode)
                .collect()
        })
        .unwrap_or_default();
    let holders = ports::socket_holders(&inputs.proc_root, &wanted);
    let (record, mounts) = local_storage::read(&inputs.host_root, &inputs.proc_root);
    let settings = inputs.config.spec.instance.local_storage.settings();
    Local {
        results: vec![
            Checked::new(CLOCK, clock::check(&clock)),
            Checked::new(
                SWAP,
                swap::check(&swaps, inputs.config.spec.kubelet.fail_swap_on()),
            ),
            Checked::new(PORTS, ports::check(&listeners, &holders)),
            Checked::new(
                LOCAL_STORAGE,
                local_storage::check(settings.as_ref(), record.as_ref(), &mounts),
            ),
            Checked::new(ULIMITS, ulimits::check(&ulimits::read(&inputs.proc_root))),
        ],
        proxy: proxy::gather(&inputs.config, &inputs.host_root, inputs.env.as_ref()),
    }
}

/// DescribeCluster with the node's credentials: the endpoint, the CA (when `need_ca`), the
/// service CIDR and the remote node networks.
async fn describe_cluster(
    inputs: &Inputs,
    creds: &Credentials,
    region: &Region,
    need_ca: bool,
) -> Result<ClusterDetails, String> {
    let name = inputs.config.spec.cluster.name.clone().unwrap_or_default();
    let sdk = crate::facts::sdk_config(
        region.as_str(),
        Some(SharedCredentialsProvider::new(creds.clone())),
    )
    .await;
    let eks = crate::facts::eks::Eks::new(&sdk, inputs.eks_endpoint.as_deref());
    let cluster = eks.describe(&name).await.map_err(|e| error_chain(&e))?;
    crate::facts::eks::cluster_details(&name, &cluster, need_ca).map_err(|e| error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_renders_every_check_with_a_fix() {
        let report = Report {
            checks: vec![
                Checked::new("a", Outcome::ok("fine")),
                Checked::new("b", Outcome::fail("Broken", "broken").with_fix("mend it")),
            ],
        };
        assert!(!report.passed());
        let text = report.text();
        assert!(
            text.contains("ok   a: fine\n     fix: nothing to do\n"),
            "{text}"
        );
        assert!(
            text.contains("fail b: broken\n     fix: mend it\n"),
            "{text}"
        );
        assert_eq!(one_line("tried:\n  a\n  b\n"), "tried: a; b");
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["checks"][1]["status"], "fail");
        assert_eq!(json["summary"]["fail"], 1);
    }

    #[test]
    fn json_keeps_its_field_order() {
        let report = Report {
            checks: vec![Checked::new(
                "a",
                Outcome::warn("W", "look\nhere").with_fix("x"),
            )],
        };
        assert_eq!(
            report.json(),
            "{\n  \"checks\": [\n    {\n      \"name\": \"a\",\n      \"status\": \"warn\",\n      \"evidence\": \"look; here\",\n      \"fix\": \"x\"\n    }\n  ],\n  \"summary\": {\n    \"ok\": 0,\n    \"warn\": 1,\n    \"fail\": 0\n  }\n}\n"
        );
    }
}
