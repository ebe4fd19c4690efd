//! The IO shell of `status`: credentials, STS, DescribeCluster, the API server, the route to
//! it, `--version` of the binaries, and the files under the proc and host roots. Each
//! function observes and returns; [`super::checks`] decides.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use ipnet::IpNet;

use super::checks::{self, ApiProbe, CallerIdentity, CredentialsFound, Exec, Holder, Listener};
use super::{CheckResult, ClockSource, Inputs};
use crate::auth::credentials;
use crate::auth::rolesanywhere;
use crate::auth::token::{self, ClusterId};
use crate::facts::eks::ClusterDetails;
use crate::model::Region;
use crate::report::host::timex::{RawTimex, Timex};

/// TCP connect timeout of the STS and API server probes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one HTTP attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per HTTP probe (transport errors, 5xx and 429 are retried).
pub const MAX_ATTEMPTS: u32 = 3;
/// First pause between attempts; doubled each time.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// How long `kubelet --version` / `containerd --version` may run.
pub const VERSION_EXEC_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer body read from the API server.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// nodeadm's default Roles Anywhere certificate and key.
pub use crate::model::paths::ROLES_ANYWHERE_CERTIFICATE as DEFAULT_RA_CERTIFICATE;
/// See [`DEFAULT_RA_CERTIFICATE`].
pub use crate::model::paths::ROLES_ANYWHERE_PRIVATE_KEY as DEFAULT_RA_PRIVATE_KEY;

/// An error and its causes on one line (secret-free: the agent's errors never carry secrets).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: no answer within {limit:?}")))
}

/// Runs every check: credentials and the binaries' versions first (with the local checks
/// alongside), then STS and DescribeCluster, then the API server; each stage bounded.
pub async fn run_all(inputs: &Inputs) -> Vec<CheckResult> {
    let config = &inputs.config;
    let hybrid = config.is_hybrid();
    let limit = inputs.timeout;

    let local = {
        let inputs = inputs.clone();
        tokio::task::spawn_blocking(move || local_checks(&inputs))
    };
    let creds = bounded(limit, "resolving credentials", resolve_credentials(inputs));
    let kubelet = exec_version("kubelet", &inputs.search_path);
    let containerd = exec_version("containerd", &inputs.search_path);
    let (creds, kubelet, containerd) = tokio::join!(creds, kubelet, containerd);

    let cluster = &config.spec.cluster;
    let config_ca = cluster
        .certificate_authority
        .as_deref()
        .map(crate::config::validate::ca_pem);
    let needs_describe = cluster.api_server_endpoint.is_none()
        || config_ca.is_none()
        || (hybrid && inputs.remote_node_networks.is_empty());
    let sts = async {
        match &creds {
            Ok((c, _, region)) => {
                bounded(
                    limit,
                    "STS GetCallerIdentity",
                    caller_identity(inputs, c, region),
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
            Ok((c, _, region)) => bounded(
                limit,
                "EKS DescribeCluster",
                describe_cluster(inputs, c, region, config_ca.is_none()),
            )
            .await
            .map(Some),
            Err(_) => Err("no credentials to call eks:DescribeCluster".to_owned()),
        }
    };
    let (sts, described) = tokio::join!(sts, described);

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
            Ok(probe_api(url, pem).await)
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
    let server_version = match &api_probe {
        ApiProbe::Version { version, .. } => Some(*version),
        _ => None,
    };

    let node_ip = match (inputs.node_ip, super::kubelet_node_ip(config), &endpoint) {
        (Some(ip), _, _) => Ok((ip, "--node-ip".to_owned())),
        (None, Some(ip), _) => Ok((ip, "--node-ip in spec.kubelet.flags".to_owned())),
        (None, None, Some(url)) => bounded(limit, "routing lookup", route_to(url)).await,
        (None, None, None) => Err("no --node-ip and no API server endpoint to route to".into()),
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

    let credentials_fix = credentials_fix(config);
    let expected_role = config
        .spec
        .hybrid
        .as_ref()
        .and_then(|h| h.iam_roles_anywhere.as_ref())
        .and_then(|r| r.role_arn.as_deref());
    let mut results = vec![
        checks::credentials(
            &creds
                .as_ref()
                .map(|(_, found, _)| found.clone())
                .map_err(Clone::clone),
            credentials_fix,
        ),
        checks::sts_identity(&sts, expected_role),
        checks::api_server(endpoint.as_deref(), &api_probe),
        checks::node_ip(hybrid, &node_ip, &networks),
        checks::kubelet(&kubelet, server_version.as_ref()),
        checks::containerd(&containerd),
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
            results.push(checks::proxy(&local.proxy));
        }
        Err(e) => tracing::error!(error = %e, "the local checks did not finish"),
    }
    results.sort_by_key(|r| checks::ALL.iter().position(|n| *n == r.name));
    results
}

/// The checks that read only local files, and the inputs of the proxy check that still
/// need the API server's host and the service CIDR.
struct Local {
    results: Vec<CheckResult>,
    proxy: checks::ProxyInputs,
}

fn local_checks(inputs: &Inputs) -> Local {
    let clock = read_clock(&inputs.clock_source);
    let swaps = match std::fs::read_to_string(inputs.proc_root.join("swaps")) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", inputs.proc_root.join("swaps").display())),
    };
    let listeners = read_listeners(&inputs.proc_root);
    let wanted: Vec<u64> = listeners
        .as_ref()
        .map(|l| {
            l.iter()
                .filter(|l| checks::REQUIRED_PORTS.iter().any(|(p, _, _)| *p == l.port))
                .map(|l| l.inode)
                .collect()
        })
        .unwrap_or_default();
    let holders = socket_holders(&inputs.proc_root, &wanted);
    let configured = super::configured_environment(&inputs.config);
    let mut units: Vec<String> = super::DEFAULT_ENV_UNITS
        .iter()
        .map(|u| (*u).to_owned())
        .collect();
    units.extend(configured.keys().cloned());
    units.sort();
    units.dedup();
    let on_disk = units
        .into_iter()
        .filter_map(|u| unit_environment(&inputs.host_root, &u).map(|env| (u, env)))
        .collect();
    let mut process = BTreeMap::new();
    for name in checks::PROXY_VARS {
        for n in [name.to_owned(), name.to_ascii_lowercase()] {
            if let Some(v) = (inputs.env)(&n) {
                process.insert(n, v);
            }
        }
    }
    Local {
        results: vec![
            checks::clock(&clock),
            checks::swap(&swaps, super::fail_swap_on(&inputs.config)),
            checks::ports(&listeners, &holders),
        ],
        proxy: checks::ProxyInputs {
            ec2: !inputs.config.is_hybrid(),
            configured,
            process,
            on_disk,
            ..Default::default()
        },
    }
}

fn credentials_fix(config: &crate::config::NodeConfig) -> &'static str {
    let hybrid = config.spec.hybrid.as_ref();
    if hybrid.is_some_and(|h| h.iam_roles_anywhere.is_some()) {
        "check spec.hybrid.iamRolesAnywhere: the certificate and key exist and match, the certificate chains to the trust anchor, the profile lists the role and the role trusts rolesanywhere.amazonaws.com; try `eks-node-agent credentials --certificate ... --role-arn ...` by hand"
    } else if hybrid.is_some() {
        "register the host with its SSM hybrid activation (`eks-node-agent init` runs `amazon-ssm-agent -register`) and check that amazon-ssm-agent is running: it keeps /root/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE) fresh"
    } else {
        "attach an instance profile with the node role to the instance and keep IMDSv2 reachable (hop limit 2 when pods use it), or provide credentials through AWS_PROFILE / the environment; set spec.cluster.region or AWS_REGION when no region is found"
    }
}

/// Region, then credentials: Roles Anywhere or the SSM file on hybrid nodes, else the
/// standard chain (`AWS_PROFILE` when set).
async fn resolve_credentials(
    inputs: &Inputs,
) -> Result<(Credentials, CredentialsFound, Region), String> {
    let config = &inputs.config;
    let env = inputs.env.as_ref();
    let region = resolve_region(inputs).await?;
    let mut source = config.credential_source(env).map_err(|e| chain(&e))?;
    if let credentials::Source::RolesAnywhere(node) = &mut source
        && let Some(endpoint) = &inputs.rolesanywhere_endpoint
    {
        node.endpoint = Some(endpoint.clone());
    }
    let provider = credentials::provider(&source, &region, env)
        .await
        .map_err(|e| chain(&e))?;
    let name = match &source {
        credentials::Source::Chain if credentials::env_has_static_keys(env) => {
            "the environment (AWS_ACCESS_KEY_ID)".to_owned()
        }
        credentials::Source::Chain => "the default chain".to_owned(),
        credentials::Source::SsmFile(p) => format!("the SSM credentials file {}", p.display()),
        credentials::Source::RolesAnywhere(node) => format!(
            "IAM Roles Anywhere with certificate {}",
            node.certificate.display()
        ),
        other => other.name(),
    };
    let creds = credentials::fetch(&provider, &name)
        .await
        .map_err(|e| chain(&e))?;
    let found = CredentialsFound {
        source: name,
        expires: creds.expiry().map(crate::model::text::rfc3339),
    };
    Ok((creds, found, region))
}

/// `spec.cluster.region`, else `AWS_REGION`/`AWS_DEFAULT_REGION`/the profile's, else (EC2) the
/// instance identity document.
async fn resolve_region(inputs: &Inputs) -> Result<Region, String> {
    if let Some(r) = inputs.config.spec.cluster.region.as_deref() {
        return Region::parse(r, "spec.cluster.region").map_err(|e| chain(&e));
    }
    let env = inputs.env.as_ref();
    let profile = env("AWS_PROFILE");
    match credentials::resolve_region(None, profile.as_deref(), env).await {
        Ok(r) => Ok(r),
        Err(e) if inputs.config.is_hybrid() => Err(chain(&e)),
        Err(_) => {
            let imds = crate::facts::imds::Imds::new().map_err(|e| chain(&e))?;
            let doc = imds
                .identity_document()
                .await
                .map_err(|e| format!("no region configured and IMDS has none: {}", chain(&e)))?;
            Region::parse(&doc.region, "the instance identity document").map_err(|e| chain(&e))
        }
    }
}

/// The STS endpoint override: the flag, `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`.
fn sts_override(inputs: &Inputs) -> Option<String> {
    inputs
        .sts_endpoint
        .clone()
        .or_else(|| (inputs.env)("AWS_ENDPOINT_URL_STS"))
        .or_else(|| (inputs.env)("AWS_ENDPOINT_URL"))
}

/// What the cluster's authenticator does with the node's token: GET the presigned
/// GetCallerIdentity URL with the signed `x-k8s-aws-id` header. With an endpoint override the
/// request goes there, still naming the signed host in `Host`.
async fn caller_identity(
    inputs: &Inputs,
    creds: &Credentials,
    region: &Region,
) -> Result<CallerIdentity, String> {
    let cluster = &inputs.config.spec.cluster;
    let (id, field) = match (&cluster.id, inputs.config.is_outpost()) {
        (Some(id), true) => (id.clone(), "spec.cluster.id"),
        _ => (
            cluster.name.clone().unwrap_or_default(),
            "spec.cluster.name",
        ),
    };
    let cluster_id = ClusterId::parse(&id, field).map_err(|e| chain(&e))?;
    let url = token::presign_url(creds, region, &cluster_id, inputs.clock.now())
        .map_err(|e| chain(&e))?;
    let signed_host = region.sts_host();
    let target = match sts_override(inputs) {
        Some(base) => retarget(&url, &base)?,
        None => url,
    };
    let ca_bundle = (inputs.env)("AWS_CA_BUNDLE").map(PathBuf::from);
    let client = rolesanywhere::https_client(ca_bundle.as_deref()).map_err(|e| chain(&e))?;
    let mut backoff = INITIAL_BACKOFF;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = client
            .get(&target)
            .header(reqwest::header::HOST, &signed_host)
            .header(token::CLUSTER_ID_HEADER, cluster_id.as_str())
            .timeout(ATTEMPT_TIMEOUT)
            .send()
            .await;
        let retry_reason = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                if (status >= 500 || status == 429) && attempt < MAX_ATTEMPTS {
                    format!("HTTP {status}")
                } else {
                    return checks::parse_caller_identity(status, &body);
                }
            }
            Err(e) if attempt < MAX_ATTEMPTS => chain(&e),
            Err(e) => {
                return Err(format!(
                    "STS at {}: no answer after {attempt} attempt(s): {}",
                    strip_query(&target),
                    chain(&e)
                ));
            }
        };
        tracing::debug!(attempt, reason = %retry_reason, "retrying STS GetCallerIdentity");
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// `url` with the scheme, host and port of `base`.
fn retarget(url: &str, base: &str) -> Result<String, String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("presigned URL: {e}"))?;
    let b = url::Url::parse(base).map_err(|e| format!("STS endpoint {base:?}: {e}"))?;
    u.set_scheme(b.scheme())
        .and_then(|()| u.set_host(b.host_str()).map_err(|_| ()))
        .and_then(|()| u.set_port(b.port()))
        .map_err(|()| format!("STS endpoint {base:?} is not an http(s) URL"))?;
    Ok(u.to_string())
}

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
    let cluster = eks.describe(&name).await.map_err(|e| chain(&e))?;
    crate::facts::eks::cluster_details(&name, &cluster, need_ca).map_err(|e| chain(&e))
}

/// Anonymous `GET /version` over TLS verified with `ca_pem` only (as the kubelet trusts it).
pub async fn probe_api(endpoint: &str, ca_pem: &[u8]) -> ApiProbe {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        match cert
            .map_err(|e| e.to_string())
            .and_then(|c| roots.add(c).map_err(|e| e.to_string()))
        {
            Ok(()) => {}
            Err(e) => return ApiProbe::BadCa(e),
        }
    }
    if roots.is_empty() {
        return ApiProbe::BadCa("no certificate in the CA bundle".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
        Err(e) => return ApiProbe::BadCa(e.to_string()),
    };
    let client = match reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => return ApiProbe::Unreachable(chain(&e)),
    };
    let url = format!("{}/version", endpoint.trim_end_matches('/'));
    let mut backoff = INITIAL_BACKOFF;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.get(&url).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.bytes().await.unwrap_or_default();
                let body = &body[..body.len().min(MAX_BODY_BYTES)];
                if status == 200 {
                    return match checks::parse_server_version(body) {
                        Ok((git_version, version)) => ApiProbe::Version {
                            git_version,
                            version,
                        },
                        Err(e) => ApiProbe::BadAnswer(e),
                    };
                }
                if !(status >= 500 && attempt < MAX_ATTEMPTS) {
                    let text = String::from_utf8_lossy(body);
                    return ApiProbe::Refused {
                        status,
                        body: text.chars().take(200).collect(),
                    };
                }
            }
            Err(e) => {
                if let Some(why) = tls_rejection(&e) {
                    return ApiProbe::Untrusted(why);
                }
                if attempt >= MAX_ATTEMPTS {
                    return ApiProbe::Unreachable(format!(
                        "{} after {attempt} attempt(s)",
                        chain(&e)
                    ));
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// The rustls verification error somewhere in `err`'s causes (io::Error hides its inner
/// error from `source()`, so it is looked into too).
fn tls_rejection(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r.to_string());
        }
        // Wrapped where neither downcast reaches it (boxed through the connector): rustls
        // words every verification failure this way.
        let text = e.to_string();
        if let Some(i) = text.find("invalid peer certificate") {
            return Some(text[i..].to_owned());
        }
        cur = e.source();
    }
    None
}

/// The local address the kernel picks to reach the API server (a connected UDP socket sends
/// nothing).
async fn route_to(endpoint: &str) -> Result<(IpAddr, String), String> {
    let ip = crate::facts::host::route_to_endpoint(endpoint).await?;
    let host = url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    Ok((
        ip,
        format!("the address that routes to the API server {host}"),
    ))
}

/// Finds `program` on `search_path` and runs `program --version` (fixed arguments, no shell).
pub async fn exec_version(program: &str, search_path: &str) -> Exec {
    use std::os::unix::fs::PermissionsExt;
    let found = std::env::split_paths(search_path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    let Some(path) = found else {
        return Exec::NotFound {
            searched: search_path.to_owned(),
        };
    };
    let run = tokio::process::Command::new(&path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(VERSION_EXEC_TIMEOUT, run).await {
        Err(_) => Err(format!("no answer within {VERSION_EXEC_TIMEOUT:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) if out.status.success() => {
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            Ok(if stdout.trim().is_empty() {
                String::from_utf8_lossy(&out.stderr).into_owned()
            } else {
                stdout
            })
        }
        Ok(Ok(out)) => Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    };
    Exec::Ran {
        path: path.display().to_string(),
        output,
    }
}

fn read_clock(source: &ClockSource) -> Result<Timex, String> {
    match source {
        ClockSource::Kernel => {
            crate::report::host::timex::read().map_err(|e| format!("adjtimex: {e}"))
        }
        ClockSource::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str::<RawTimex>(&text)
                .map(Timex::from)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

fn read_listeners(proc_root: &Path) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    let mut read_any = false;
    for table in ["net/tcp", "net/tcp6"] {
        let path = proc_root.join(table);
        match std::fs::read_to_string(&path) {
            Ok(t) => {
                read_any = true;
                out.extend(checks::parse_listeners(&t));
            }
            // No IPv6 in the kernel: no tcp6 table.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && table == "net/tcp6" => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    if read_any {
        Ok(out)
    } else {
        Err(format!("{}: no TCP table", proc_root.display()))
    }
}

/// Which process holds each of `inodes`, from `/proc/<pid>/fd/*` links (`socket:[N]`); the
/// processes this user may not inspect are skipped.
fn socket_holders(proc_root: &Path, inodes: &[u64]) -> BTreeMap<u64, Holder> {
    let mut out = BTreeMap::new();
    if inodes.is_empty() {
        return out;
    }
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                let comm = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_else(|_| "?".into());
                out.insert(inode, Holder { pid, comm });
            }
        }
    }
    out
}

/// The environment the drop-ins of `unit` set under `<root>/etc/systemd/system/<unit>.d/`
/// (`*.conf` in name order); None when there are none.
fn unit_environment(root: &Path, unit: &str) -> Option<BTreeMap<String, String>> {
    let dir = root
        .join(crate::model::paths::SYSTEMD_UNIT_DIR.trim_start_matches('/'))
        .join(format!("{unit}.d"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    if files.is_empty() {
        return None;
    }
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    Some(checks::parse_unit_environment(&texts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retarget_keeps_the_signed_query() {
        let url =
            "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Signature=ab";
        assert_eq!(
            retarget(url, "http://127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000/?Action=GetCallerIdentity&X-Amz-Signature=ab"
        );
    }

    #[test]
    fn holders_and_dropins_from_a_fake_root() {
        let dir = tempfile::tempdir().unwrap();
        let fd = dir.path().join("4242/fd");
        std::fs::create_dir_all(&fd).unwrap();
        std::os::unix::fs::symlink("socket:[777]", fd.join("3")).unwrap();
        std::os::unix::fs::symlink("/dev/null", fd.join("0")).unwrap();
        std::fs::write(dir.path().join("4242/comm"), "kubelet\n").unwrap();
        let holders = socket_holders(dir.path(), &[777, 888]);
        assert_eq!(
            holders.get(&777),
            Some(&Holder {
                pid: 4242,
                comm: "kubelet".into()
            })
        );
        assert_eq!(holders.len(), 1);

        let d = dir.path().join("etc/systemd/system/kubelet.service.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("10-a.conf"),
            "[Service]\nEnvironment=\"NO_PROXY=a\"\n",
        )
        .unwrap();
        std::fs::write(d.join("20-b.conf"), "[Service]\nEnvironment=NO_PROXY=b\n").unwrap();
        assert_eq!(
            unit_environment(dir.path(), "kubelet.service").unwrap()["NO_PROXY"],
            "b"
        );
        assert!(unit_environment(dir.path(), "containerd.service").is_none());
    }

    #[tokio::test]
    async fn version_of_a_program_on_a_given_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("kubelet");
        std::fs::write(
            &prog,
            "#!/bin/sh\necho \"Kubernetes v1.33.5-eks-3025e55\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        match exec_version("kubelet", &dir.path().display().to_string()).await {
            Exec::Ran { output, .. } => {
                assert_eq!(output.unwrap().trim(), "Kubernetes v1.33.5-eks-3025e55")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            exec_version("containerd", &dir.path().display().to_string()).await,
            Exec::NotFound { .. }
        ));
    }
}
