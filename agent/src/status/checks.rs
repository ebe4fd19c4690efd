//! The decision of every `status` check, as pure functions: each takes what the IO shell
//! observed (file text, command output, an HTTP answer, or the error that stood in the way)
//! and returns one [`CheckResult`] with its status, the evidence and the fix.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{CheckResult, Status};
use crate::report::host::timex::Timex;

/// Check names, in the order they are printed.
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

/// Every check, in output order.
pub const ALL: [&str; 10] = [
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
];

/// What a passing check prints as its fix.
pub const NOTHING_TO_DO: &str = "nothing to do";

/// Oldest kubelet minor accepted behind the API server (Kubernetes version skew policy
/// since 1.28: the kubelet may be up to three minor versions older, never newer).
pub const MAX_KUBELET_MINORS_BEHIND: u32 = 3;
/// Oldest supported containerd.
pub const MIN_CONTAINERD: Version = Version {
    major: 1,
    minor: 7,
    patch: 0,
};
/// Newest containerd major this agent renders configuration for (config version 2 and 3).
pub const MAX_CONTAINERD_MAJOR: u32 = 2;
/// Clock maximum error above which a synchronised clock is still a warning, in seconds.
pub const CLOCK_MAXERROR_WARN_SECS: f64 = 1.0;
/// Ports the node needs: (port, what listens there, the process names allowed to hold it).
pub const REQUIRED_PORTS: [(u16, &str, &[&str]); 3] = [
    (10250, "kubelet API", &["kubelet"]),
    (10248, "kubelet healthz", &["kubelet"]),
    (10256, "kube-proxy healthz", &["kube-proxy"]),
];
/// The EC2 instance metadata address, which must never go through a proxy.
pub const IMDS_ADDRESS: &str = "169.254.169.254";

fn ok(name: &'static str, evidence: impl Into<String>) -> CheckResult {
    CheckResult::new(name, Status::Ok, evidence, NOTHING_TO_DO)
}

fn warn(name: &'static str, evidence: impl Into<String>, fix: impl Into<String>) -> CheckResult {
    CheckResult::new(name, Status::Warn, evidence, fix)
}

fn fail(name: &'static str, evidence: impl Into<String>, fix: impl Into<String>) -> CheckResult {
    CheckResult::new(name, Status::Fail, evidence, fix)
}

pub use crate::model::Version;

/// `kubelet --version` prints `Kubernetes v1.33.5-eks-3025e55`.
pub fn parse_kubelet_version(stdout: &str) -> Option<Version> {
    Version::find_in(stdout)
}

/// `containerd --version` prints `containerd github.com/containerd/containerd/v2 v2.1.4 <commit>`
/// (or the distro's `containerd containerd.io 1.7.27 <commit>`).
pub fn parse_containerd_version(stdout: &str) -> Option<Version> {
    Version::find_in(stdout)
}

/// The API server's `/version` answer: `gitVersion` and its parsed form.
pub fn parse_server_version(body: &[u8]) -> Result<(String, Version), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("/version is not JSON ({e})"))?;
    let git = value
        .get("gitVersion")
        .and_then(|v| v.as_str())
        .ok_or("/version has no gitVersion")?;
    let version =
        Version::parse_word(git).ok_or_else(|| format!("gitVersion {git:?} is not a version"))?;
    Ok((git.to_owned(), version))
}

// ---------------------------------------------------------------------------------------------
// credentials and STS

/// Where the credentials came from and until when they are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsFound {
    /// A secret-free name of the source (`IAM Roles Anywhere ...`, `SSM credentials file ...`).
    pub source: String,
    /// Expiration, RFC 3339, when temporary.
    pub expires: Option<String>,
}

/// The `credentials` check. `fix` is the node-kind-specific advice for a failure.
pub fn credentials(found: &Result<CredentialsFound, String>, fix: &str) -> CheckResult {
    match found {
        Ok(c) => ok(
            CREDENTIALS,
            match &c.expires {
                Some(t) => format!("resolved from {} (temporary, expire {t})", c.source),
                None => format!("resolved from {} (long-term keys)", c.source),
            },
        ),
        Err(e) => fail(CREDENTIALS, e.clone(), fix),
    }
}

/// What STS said about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `Arn`.
    pub arn: String,
    /// `Account`.
    pub account: String,
    /// `UserId`.
    pub user_id: String,
}

/// Parses STS's answer to GetCallerIdentity: a `GetCallerIdentityResponse` on 200, an
/// `ErrorResponse` (`Code`, `Message`) otherwise.
pub fn parse_caller_identity(status: u16, body: &str) -> Result<CallerIdentity, String> {
    let fields = xml_leaves(body, &["Arn", "Account", "UserId", "Code", "Message"]);
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    if status == 200 {
        let arn = get("Arn");
        if arn.is_empty() {
            return Err(format!(
                "STS answered HTTP 200 without an Arn: {}",
                truncate(body, 200)
            ));
        }
        return Ok(CallerIdentity {
            arn,
            account: get("Account"),
            user_id: get("UserId"),
        });
    }
    let code = get("Code");
    if code.is_empty() {
        Err(format!(
            "STS answered HTTP {status}: {}",
            truncate(body, 200)
        ))
    } else {
        Err(format!(
            "STS answered HTTP {status} {code}: {}",
            get("Message")
        ))
    }
}

/// The text of the named leaf elements anywhere in `xml` (first occurrence wins).
fn xml_leaves(xml: &str, names: &[&str]) -> BTreeMap<String, String> {
    use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};
    fn walk(el: &mut ScopedDecoder<'_, '_>, names: &[&str], out: &mut BTreeMap<String, String>) {
        while let Some(mut child) = el.next_tag() {
            let local = child.start_el().local().to_owned();
            if names.contains(&local.as_str()) && !out.contains_key(&local) {
                if let Ok(text) = try_data(&mut child) {
                    out.insert(local, text.trim().to_owned());
                }
            } else {
                walk(&mut child, names, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut doc = Document::new(xml);
    if let Ok(mut root) = doc.root_element() {
        walk(&mut root, names, &mut out);
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// The `sts-identity` check. `expected_role` is the IAM role ARN the configuration names
/// (Roles Anywhere); the identity must be a session of that role.
pub fn sts_identity(
    identity: &Result<CallerIdentity, String>,
    expected_role: Option<&str>,
) -> CheckResult {
    match identity {
        Ok(id) => {
            let evidence = format!(
                "STS GetCallerIdentity with the node's token: {} (account {})",
                id.arn, id.account
            );
            match expected_role.filter(|role| !assumed_role_matches(&id.arn, role)) {
                Some(role) => warn(
                    STS_IDENTITY,
                    format!("{evidence}; expected a session of {role}"),
                    "the cluster maps the node by its role: make the credentials assume the role in spec.hybrid.iamRolesAnywhere.roleArn (check the Roles Anywhere profile's roles), or correct roleArn",
                ),
                None => ok(STS_IDENTITY, evidence),
            }
        }
        Err(e) => fail(
            STS_IDENTITY,
            e.clone(),
            "the cluster authenticates the node with this call: fix the credentials check first; then allow outbound HTTPS to the regional STS endpoint (sts.REGION.amazonaws.com, or AWS_ENDPOINT_URL_STS), check that the node's clock is right (signatures expire) and that the role's trust policy allows this session",
        ),
    }
}

/// True when `arn` (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`) is a session of
/// `role_arn` (`arn:aws:iam::ACCOUNT:role/PATH/NAME`).
pub fn assumed_role_matches(arn: &str, role_arn: &str) -> bool {
    let account = |a: &str| a.split(':').nth(4).map(str::to_owned);
    let role_name = role_arn
        .split_once(":role/")
        .and_then(|(_, p)| p.rsplit('/').next());
    let session_role = arn
        .split_once(":assumed-role/")
        .and_then(|(_, p)| p.split('/').next());
    account(arn).is_some() && account(arn) == account(role_arn) && role_name == session_role
}

// ---------------------------------------------------------------------------------------------
// the API server

/// What probing the API server's `/version` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiProbe {
    /// No endpoint or CA to probe with; the reason.
    NotConfigured(String),
    /// The configured CA bundle is unusable.
    BadCa(String),
    /// TLS handshake failed verification: the CA does not match the server's certificate.
    Untrusted(String),
    /// No connection (DNS, refused, timeout).
    Unreachable(String),
    /// HTTPS worked; `/version` answered with this status (not 200).
    Refused {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// HTTPS worked and `/version` answered something that is not a version.
    BadAnswer(String),
    /// The server's version.
    Version {
        /// `gitVersion`, e.g. `v1.33.5-eks-3025e55`.
        git_version: String,
        /// Parsed.
        version: Version,
    },
}

/// The `api-server` check.
pub fn api_server(endpoint: Option<&str>, probe: &ApiProbe) -> CheckResult {
    let at = endpoint.unwrap_or("(no endpoint)");
    match probe {
        ApiProbe::Version { git_version, .. } => ok(
            API_SERVER,
            format!("{at}: TLS verified with the cluster CA; GET /version: {git_version}"),
        ),
        ApiProbe::NotConfigured(why) => fail(
            API_SERVER,
            why.clone(),
            "set spec.cluster.apiServerEndpoint and spec.cluster.certificateAuthority (from `aws eks describe-cluster --query 'cluster.[endpoint,certificateAuthority.data]'`), or give the node credentials that may call eks:DescribeCluster",
        ),
        ApiProbe::BadCa(why) => fail(
            API_SERVER,
            format!("the cluster CA is unusable: {why}"),
            "set spec.cluster.certificateAuthority to the base64 PEM from `aws eks describe-cluster --query cluster.certificateAuthority.data`",
        ),
        ApiProbe::Untrusted(why) => fail(
            API_SERVER,
            format!("{at}: TLS verification failed with the configured CA: {why}"),
            "the CA does not match this cluster: set spec.cluster.certificateAuthority to the cluster's CA (`aws eks describe-cluster --query cluster.certificateAuthority.data`) and check that apiServerEndpoint is this cluster's endpoint (no TLS-intercepting proxy in between)",
        ),
        ApiProbe::Unreachable(why) => fail(
            API_SERVER,
            format!("{at}: unreachable: {why}"),
            "allow outbound TCP 443 from the node to the API server (security groups, firewall, routes to the cluster's VPC; for a private endpoint, DNS resolution from the node's network), or correct spec.cluster.apiServerEndpoint",
        ),
        ApiProbe::Refused { status, body } => warn(
            API_SERVER,
            format!(
                "{at}: TLS verified with the cluster CA, but anonymous GET /version answered HTTP {status}: {body}"
            ),
            "the server is reachable and trusted; it refuses anonymous discovery, so the version skew check cannot run: allow system:public-info-viewer for system:unauthenticated, or check the versions by hand",
        ),
        ApiProbe::BadAnswer(why) => fail(
            API_SERVER,
            format!("{at}: TLS verified, but {why}"),
            "the endpoint is not a Kubernetes API server: correct spec.cluster.apiServerEndpoint",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// node IP

/// The `node-ip` check. `hybrid`: only hybrid nodes have remote node networks; on EC2 the check
/// is skipped (reported ok, evidence says skipped). `ip` and `networks` carry where they came
/// from.
pub fn node_ip(
    hybrid: bool,
    ip: &Result<(IpAddr, String), String>,
    networks: &Result<(Vec<IpNet>, String), String>,
) -> CheckResult {
    if !hybrid {
        return ok(
            NODE_IP,
            "skipped: an EC2 node takes its IP from its VPC subnet; remote node networks apply to hybrid nodes only",
        );
    }
    let (ip, ip_from) = match ip {
        Ok(v) => v,
        Err(e) => {
            return fail(
                NODE_IP,
                format!("cannot tell the node IP: {e}"),
                "pass --node-ip (and set the same --node-ip in spec.kubelet.flags), or fix the route to the API server",
            );
        }
    };
    let (nets, nets_from) = match networks {
        Ok(v) => v,
        Err(e) => {
            return warn(
                NODE_IP,
                format!("node IP {ip} ({ip_from}); remote node networks unknown: {e}"),
                "give the node credentials allowed to call eks:DescribeCluster, or pass --remote-node-network CIDR (repeatable) to check against",
            );
        }
    };
    let list = nets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if nets.is_empty() {
        return fail(
            NODE_IP,
            format!(
                "node IP {ip} ({ip_from}); the cluster has no remote node networks ({nets_from})"
            ),
            "add the node's network: `aws eks update-cluster-config --name CLUSTER --remote-network-config remoteNodeNetworks=[{cidrs=[CIDR]}]`",
        );
    }
    match nets.iter().find(|n| n.contains(ip)) {
        Some(net) => ok(
            NODE_IP,
            format!("node IP {ip} ({ip_from}) is in remote node network {net} ({nets_from})"),
        ),
        None => fail(
            NODE_IP,
            format!(
                "node IP {ip} ({ip_from}) is outside the remote node networks [{list}] ({nets_from})"
            ),
            format!(
                "the control plane routes to nodes only in [{list}]: set the kubelet's --node-ip (spec.kubelet.flags) to an address in them, or add this network to the cluster's remoteNetworkConfig.remoteNodeNetworks"
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// clock

/// The `clock` check.
pub fn clock(state: &Result<Timex, String>) -> CheckResult {
    const FIX: &str = "run an NTP client: `timedatectl set-ntp true` (systemd-timesyncd) or enable chronyd; on EC2 point it at the Amazon Time Sync Service (169.254.169.123). Tokens and TLS fail with a wrong clock";
    match state {
        Err(e) => warn(CLOCK, format!("cannot read the clock state: {e}"), FIX),
        Ok(t) => {
            let evidence = format!(
                "offset {:.3} ms, maxerror {:.3} ms, estimated error {:.3} ms, status 0x{:04x}",
                t.offset_seconds * 1e3,
                t.maxerror_seconds * 1e3,
                t.estimated_error_seconds * 1e3,
                t.status
            );
            if !t.synchronized() {
                fail(CLOCK, format!("not synchronized: {evidence}"), FIX)
            } else if t.maxerror_seconds > CLOCK_MAXERROR_WARN_SECS {
                warn(
                    CLOCK,
                    format!(
                        "synchronized, but the maximum error exceeds {CLOCK_MAXERROR_WARN_SECS} s: {evidence}"
                    ),
                    "check that the NTP client reaches its servers (`chronyc sources` or `timedatectl timesync-status`)",
                )
            } else {
                ok(CLOCK, format!("synchronized: {evidence}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// swap

/// One active swap area from /proc/swaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapArea {
    /// Device or file.
    pub name: String,
    /// `partition` or `file`.
    pub kind: String,
    /// Size in KiB.
    pub size_kib: u64,
    /// Used KiB.
    pub used_kib: u64,
}

/// Parses /proc/swaps (a header line, then one line per active area).
pub fn parse_swaps(text: &str) -> Vec<SwapArea> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| SwapArea {
                name: f[0].replace("\\040", " "),
                kind: f[1].to_owned(),
                size_kib: f[2].parse().unwrap_or(0),
                used_kib: f[3].parse().unwrap_or(0),
            })
        })
        .collect()
}

/// The `swap` check. `text` is /proc/swaps (None when the kernel has no swap support);
/// `fail_swap_on` is the kubelet's `failSwapOn` (true unless the config turns it off).
pub fn swap(text: &Result<Option<String>, String>, fail_swap_on: bool) -> CheckResult {
    let text = match text {
        Ok(Some(t)) => t,
        Ok(None) => return ok(SWAP, "no swap support in the kernel (/proc/swaps absent)"),
        Err(e) => {
            return warn(
                SWAP,
                format!("cannot read the swap table: {e}"),
                "check `swapon --show` by hand: kubelet refuses to start with swap on",
            );
        }
    };
    let areas = parse_swaps(text);
    if areas.is_empty() {
        return ok(SWAP, "no active swap (/proc/swaps lists none)");
    }
    let list = areas
        .iter()
        .map(|a| {
            format!(
                "{} ({}, {} KiB, {} KiB used)",
                a.name, a.kind, a.size_kib, a.used_kib
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if fail_swap_on {
        fail(
            SWAP,
            format!("swap is on: {list}"),
            "kubelet refuses to start with swap on (failSwapOn): run `swapoff -a`, remove the swap entries from /etc/fstab and disable swap units (zram, systemd .swap)",
        )
    } else {
        warn(
            SWAP,
            format!("swap is on: {list}; the configuration sets failSwapOn: false"),
            "make sure memorySwap.swapBehavior is what you want, or turn swap off (`swapoff -a` and /etc/fstab)",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// versions

/// What running `PROGRAM --version` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exec {
    /// The program is not on the search path.
    NotFound {
        /// The directories searched.
        searched: String,
    },
    /// It ran (or failed to) at this path.
    Ran {
        /// Where it was found.
        path: String,
        /// Standard output, or the failure.
        output: Result<String, String>,
    },
}

/// The `kubelet-version` check against the API server's version (when known).
pub fn kubelet(exec: &Exec, server: Option<&Version>) -> CheckResult {
    const INSTALL: &str = "install the kubelet for the cluster's Kubernetes minor version into /usr/bin (the EKS AMI ships it; on other hosts the EKS Distro or Kubernetes release binaries, or the distro's kubelet package)";
    let (path, out) = match exec {
        Exec::NotFound { searched } => {
            return fail(
                KUBELET,
                format!("kubelet is not installed (searched {searched})"),
                INSTALL,
            );
        }
        Exec::Ran { path, output } => (path, output),
    };
    let out = match out {
        Ok(o) => o,
        Err(e) => return fail(KUBELET, format!("{path} --version failed: {e}"), INSTALL),
    };
    let Some(v) = parse_kubelet_version(out) else {
        return fail(
            KUBELET,
            format!(
                "{path} --version printed no version: {}",
                truncate(out, 120)
            ),
            INSTALL,
        );
    };
    let Some(server) = server else {
        return warn(
            KUBELET,
            format!("{path}: {v}; the API server's version is unknown, so the skew is not checked"),
            "fix the api-server check, then run status again",
        );
    };
    let lo = server.minor.saturating_sub(MAX_KUBELET_MINORS_BEHIND);
    let range = format!(
        "v{}.{}-v{}.{}",
        server.major, lo, server.major, server.minor
    );
    let evidence = format!("{path}: {v}; API server {server}; supported kubelet minors {range}");
    if v.major != server.major || v.minor > server.minor {
        fail(
            KUBELET,
            format!("{evidence}: the kubelet is newer than the API server"),
            format!(
                "install a kubelet of minor {}.{} (never newer than the control plane), or upgrade the cluster first",
                server.major, server.minor
            ),
        )
    } else if v.minor < lo {
        fail(
            KUBELET,
            format!(
                "{evidence}: the kubelet is {} minor versions behind (at most {MAX_KUBELET_MINORS_BEHIND})",
                server.minor - v.minor
            ),
            format!(
                "upgrade the kubelet to a minor in {range} (preferably {}.{})",
                server.major, server.minor
            ),
        )
    } else {
        ok(KUBELET, evidence)
    }
}

/// The `containerd-version` check: supported from [`MIN_CONTAINERD`] through major
/// [`MAX_CONTAINERD_MAJOR`].
pub fn containerd(exec: &Exec) -> CheckResult {
    const INSTALL: &str = "install containerd 1.7 or 2.x (the distro's `containerd` package, or containerd.io from Docker's repository) and runc";
    let (path, out) = match exec {
        Exec::NotFound { searched } => {
            return fail(
                CONTAINERD,
                format!("containerd is not installed (searched {searched})"),
                INSTALL,
            );
        }
        Exec::Ran { path, output } => (path, output),
    };
    let out = match out {
        Ok(o) => o,
        Err(e) => return fail(CONTAINERD, format!("{path} --version failed: {e}"), INSTALL),
    };
    let Some(v) = parse_containerd_version(out) else {
        return fail(
            CONTAINERD,
            format!(
                "{path} --version printed no version: {}",
                truncate(out, 120)
            ),
            INSTALL,
        );
    };
    let evidence = format!("{path}: {v}; supported {MIN_CONTAINERD} to {MAX_CONTAINERD_MAJOR}.x");
    if v < MIN_CONTAINERD {
        fail(
            CONTAINERD,
            format!("{evidence}: too old"),
            "upgrade containerd to 1.7 or 2.x",
        )
    } else if v.major > MAX_CONTAINERD_MAJOR {
        warn(
            CONTAINERD,
            format!("{evidence}: newer than this agent knows"),
            "use containerd 2.x, or check that the rendered /etc/containerd/config.toml is accepted",
        )
    } else {
        ok(CONTAINERD, evidence)
    }
}

// ---------------------------------------------------------------------------------------------
// proxy

/// The proxy variables, by their upper-case name.
pub const PROXY_VARS: [&str; 3] = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"];

/// The proxy variables of an environment, names upper-cased (the upper-case spelling wins
/// when both are set, as Go's net/http does).
pub fn proxy_env(vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in PROXY_VARS {
        let value = vars
            .get(name)
            .or_else(|| vars.get(&name.to_ascii_lowercase()))
            .filter(|v| !v.trim().is_empty());
        if let Some(v) = value {
            out.insert(name.to_owned(), v.trim().to_owned());
        }
    }
    out
}

/// A proxy URL with any user:password replaced, for evidence.
pub fn redact_proxy(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => match url.split_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        },
    }
}

/// Whether `NO_PROXY` (Go's net/http rules, which containerd and the kubelet use) exempts
/// `host`: `*`; an IP or a CIDR containing it; a name matching exactly or as a parent domain
/// (`example.com`, `.example.com`, `*.example.com`). Ports on entries are ignored.
pub fn no_proxy_covers(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    no_proxy.split(',').map(str::trim).any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" {
            return true;
        }
        if let Ok(net) = entry.parse::<IpNet>() {
            return ip.is_some_and(|ip| net.contains(&ip));
        }
        let entry = strip_port(&entry);
        if let Ok(e) = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return ip == Some(e);
        }
        if entry.is_empty() || ip.is_some() {
            return false;
        }
        let suffix = entry.trim_start_matches("*.").trim_start_matches('.');
        let exact_allowed = !entry.starts_with('.') || entry.starts_with("*.");
        (exact_allowed && host == suffix) || host.ends_with(&format!(".{suffix}"))
    })
}

/// Whether `NO_PROXY` exempts every address of `net` (a CIDR entry that contains it).
pub fn no_proxy_covers_net(no_proxy: &str, net: &IpNet) -> bool {
    no_proxy
        .split(',')
        .map(str::trim)
        .any(|entry| entry == "*" || entry.parse::<IpNet>().is_ok_and(|e| e.contains(net)))
}

fn strip_port(entry: &str) -> &str {
    if entry.starts_with('[') {
        return entry.find(']').map_or(entry, |i| &entry[..=i]);
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => entry,
    }
}

/// What the proxy check looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyInputs {
    /// True on EC2 (IMDS must bypass the proxy).
    pub ec2: bool,
    /// The API server's host name or IP, when known.
    pub api_host: Option<String>,
    /// The service CIDR, when known.
    pub service_cidr: Option<IpNet>,
    /// Environment by unit from the NodeConfig (`default` spread over containerd and kubelet).
    pub configured: BTreeMap<String, BTreeMap<String, String>>,
    /// This process's environment (only the proxy variables are looked at).
    pub process: BTreeMap<String, String>,
    /// What the systemd drop-ins on disk set, by unit; units without drop-ins are absent.
    pub on_disk: BTreeMap<String, BTreeMap<String, String>>,
}

/// Whether a NO_PROXY value exempts one required destination.
type Covers<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// The `proxy` check.
pub fn proxy(input: &ProxyInputs) -> CheckResult {
    // Every environment that sets a proxy must exempt the same destinations.
    let mut envs: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for (unit, vars) in &input.configured {
        envs.push((
            format!("spec.instance.environment for {unit}"),
            proxy_env(vars),
        ));
    }
    for (unit, vars) in &input.on_disk {
        envs.push((format!("{unit} drop-ins on disk"), proxy_env(vars)));
    }
    envs.push((
        "this process's environment".into(),
        proxy_env(&input.process),
    ));
    envs.retain(|(_, p)| p.contains_key("HTTP_PROXY") || p.contains_key("HTTPS_PROXY"));

    let mut required: Vec<(String, Covers<'_>)> = vec![
        (
            "localhost".into(),
            Box::new(|np| no_proxy_covers(np, "localhost")),
        ),
        (
            "127.0.0.1".into(),
            Box::new(|np| no_proxy_covers(np, "127.0.0.1")),
        ),
    ];
    if let Some(host) = input
        .api_host
        .as_ref()
        .filter(|h| !["localhost", "127.0.0.1"].contains(&h.as_str()))
    {
        required.push((host.clone(), Box::new(move |np| no_proxy_covers(np, host))));
    }
    if input.ec2 {
        required.push((
            IMDS_ADDRESS.into(),
            Box::new(|np| no_proxy_covers(np, IMDS_ADDRESS)),
        ));
    }
    if let Some(net) = &input.service_cidr {
        required.push((
            net.to_string(),
            Box::new(move |np| no_proxy_covers_net(np, net)),
        ));
    }

    let mut problems = Vec::new();
    let mut missing_all: Vec<String> = Vec::new();
    for (label, vars) in &envs {
        let np = vars.get("NO_PROXY").map(String::as_str).unwrap_or("");
        let missing: Vec<String> = required
            .iter()
            .filter(|(_, covers)| !covers(np))
            .map(|(what, _)| what.clone())
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{label}: NO_PROXY does not cover {}",
                missing.join(", ")
            ));
            for m in missing {
                if !missing_all.contains(&m) {
                    missing_all.push(m);
                }
            }
        }
    }
    // Drop-ins on disk must carry what the configuration says.
    let mut drift = Vec::new();
    let mut foreign = Vec::new();
    for (unit, disk) in &input.on_disk {
        let disk = proxy_env(disk);
        let want = input
            .configured
            .get(unit)
            .map(proxy_env)
            .unwrap_or_default();
        if want.is_empty() && !disk.is_empty() {
            foreign.push(format!("{unit} drop-ins set {}", describe(&disk)));
        } else if !want.is_empty() && want != disk {
            drift.push(format!(
                "{unit}: drop-ins on disk set {} but the NodeConfig says {}",
                describe(&disk),
                describe(&want)
            ));
        }
    }
    let seen = if envs.is_empty() {
        "no HTTP(S)_PROXY set (NodeConfig, drop-ins, process)".to_owned()
    } else {
        let p = &envs[0].1;
        format!(
            "proxy {} set in {} place(s)",
            redact_proxy(
                p.get("HTTPS_PROXY")
                    .or(p.get("HTTP_PROXY"))
                    .map_or("", |s| s)
            ),
            envs.len()
        )
    };
    if !problems.is_empty() || !drift.is_empty() {
        let mut evidence = problems.clone();
        evidence.extend(drift.iter().cloned());
        let mut fix = Vec::new();
        if !missing_all.is_empty() {
            fix.push(format!(
                "add {} to NO_PROXY (and no_proxy) in spec.instance.environment and every unit that sets a proxy",
                missing_all.join(",")
            ));
        }
        if !drift.is_empty() {
            fix.push("run `eks-node-agent init` to rewrite the drop-ins from the NodeConfig, or make spec.instance.environment match them".to_owned());
        }
        return fail(
            PROXY,
            format!("{seen}; {}", evidence.join("; ")),
            fix.join("; "),
        );
    }
    if !foreign.is_empty() {
        return warn(
            PROXY,
            format!("{seen}; not from the NodeConfig: {}", foreign.join("; ")),
            "put the proxy settings in spec.instance.environment so every unit gets the same values",
        );
    }
    ok(PROXY, seen)
}

fn describe(vars: &BTreeMap<String, String>) -> String {
    if vars.is_empty() {
        return "no proxy".to_owned();
    }
    vars.iter()
        .map(|(k, v)| {
            if k == "NO_PROXY" {
                format!("{k}={v}")
            } else {
                format!("{k}={}", redact_proxy(v))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the `Environment=` assignments of systemd unit files (later files and lines win).
pub fn parse_unit_environment(files: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for text in files {
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("Environment=") else {
                continue;
            };
            let words = shell_words::split(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(str::to_owned).collect());
            for w in words {
                if let Some((k, v)) = w.split_once('=') {
                    out.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// ports

/// A listening TCP socket from /proc/net/tcp or tcp6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Local port.
    pub port: u16,
    /// Socket inode.
    pub inode: u64,
}

/// TCP state LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// Parses /proc/net/tcp or /proc/net/tcp6: the sockets in LISTEN.
pub fn parse_listeners(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[3] != TCP_LISTEN {
                return None;
            }
            let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            let inode = f[9].parse().ok()?;
            Some(Listener { port, inode })
        })
        .collect()
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process ID.
    pub pid: u32,
    /// `comm`.
    pub comm: String,
}

/// The `ports` check. `holders` maps socket inodes to processes (what could be read).
pub fn ports(
    listeners: &Result<Vec<Listener>, String>,
    holders: &BTreeMap<u64, Holder>,
) -> CheckResult {
    let listeners = match listeners {
        Ok(l) => l,
        Err(e) => {
            return warn(
                PORTS,
                format!("cannot read the TCP socket table: {e}"),
                "check by hand: `ss -ltnp '( sport = :10250 or sport = :10248 or sport = :10256 )'`",
            );
        }
    };
    let mut free = Vec::new();
    let mut owned = Vec::new();
    let mut taken = Vec::new();
    let mut unknown = Vec::new();
    for (port, what, owners) in REQUIRED_PORTS {
        let held: Vec<&Listener> = listeners.iter().filter(|l| l.port == port).collect();
        if held.is_empty() {
            free.push(port.to_string());
            continue;
        }
        let procs: Vec<&Holder> = held.iter().filter_map(|l| holders.get(&l.inode)).collect();
        if procs.is_empty() {
            unknown.push(format!("{port} ({what})"));
        } else if procs.iter().all(|h| owners.contains(&h.comm.as_str())) {
            owned.push(format!(
                "{port} held by {} (pid {})",
                procs[0].comm, procs[0].pid
            ));
        } else {
            let h = procs
                .iter()
                .find(|h| !owners.contains(&h.comm.as_str()))
                .unwrap_or(&procs[0]);
            taken.push(format!(
                "{port} ({what}) held by {} (pid {})",
                h.comm, h.pid
            ));
        }
    }
    let mut evidence = Vec::new();
    if !free.is_empty() {
        evidence.push(format!("free: {}", free.join(", ")));
    }
    evidence.extend(owned);
    if !taken.is_empty() {
        evidence.extend(taken.iter().cloned());
        return fail(
            PORTS,
            evidence.join("; "),
            "stop or reconfigure the process on each port (kubelet needs 10250 and 10248, kube-proxy 10256): `ss -ltnp` shows it",
        );
    }
    if !unknown.is_empty() {
        evidence.push(format!(
            "in use by a process this user cannot see: {}",
            unknown.join(", ")
        ));
        return warn(
            PORTS,
            evidence.join("; "),
            "run status as root to see which process holds the port; it must be the kubelet (10250, 10248) or kube-proxy (10256)",
        );
    }
    ok(PORTS, evidence.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn versions_parse_from_real_outputs() {
        assert_eq!(
            parse_kubelet_version("Kubernetes v1.33.5-eks-3025e55\n"),
            Some(v(1, 33, 5))
        );
        assert_eq!(
            parse_containerd_version(
                "containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376\n"
            ),
            Some(v(2, 1, 4))
        );
        let (git, version) = parse_server_version(
            br#"{"major":"1","minor":"32+","gitVersion":"v1.32.9-eks-113cf36","platform":"linux/amd64"}"#,
        )
        .unwrap();
        assert_eq!(git, "v1.32.9-eks-113cf36");
        assert_eq!(version, v(1, 32, 9));
        assert!(parse_server_version(b"{}").is_err());
    }

    #[test]
    fn kubelet_skew_follows_the_policy() {
        let ran = |out: &str| Exec::Ran {
            path: "/usr/bin/kubelet".into(),
            output: Ok(out.into()),
        };
        let server = v(1, 33, 2);
        for (printed, want) in [
            ("Kubernetes v1.33.5", Status::Ok),
            ("Kubernetes v1.30.0", Status::Ok),
            ("Kubernetes v1.29.9", Status::Fail),
            ("Kubernetes v1.34.0", Status::Fail),
            ("Kubernetes v2.33.0", Status::Fail),
            ("garbage", Status::Fail),
        ] {
            let r = kubelet(&ran(printed), Some(&server));
            assert_eq!(r.status, want, "{printed}: {}", r.evidence);
            assert!(!r.fix.is_empty());
        }
        assert_eq!(
            kubelet(&ran("Kubernetes v1.33.0"), None).status,
            Status::Warn
        );
        let missing = kubelet(
            &Exec::NotFound {
                searched: "/usr/bin".into(),
            },
            Some(&server),
        );
        assert_eq!(missing.status, Status::Fail);
        assert!(missing.fix.contains("install"));
    }

    #[test]
    fn containerd_range() {
        let ran = |out: &str| Exec::Ran {
            path: "/usr/bin/containerd".into(),
            output: Ok(out.into()),
        };
        assert_eq!(
            containerd(&ran("containerd containerd.io 1.7.27 05044ec")).status,
            Status::Ok
        );
        assert_eq!(
            containerd(&ran("containerd x v1.6.20 y")).status,
            Status::Fail
        );
        assert_eq!(
            containerd(&ran("containerd x v3.0.0 y")).status,
            Status::Warn
        );
    }

    #[test]
    fn sts_answers_parse() {
        let good = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><UserId>AROAEXAMPLE:node-1</UserId><Account>123456789012</Account><Arn>arn:aws:sts::123456789012:assumed-role/eks-hybrid/node-1</Arn></GetCallerIdentityResult><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#;
        let id = parse_caller_identity(200, good).unwrap();
        assert_eq!(
            id.arn,
            "arn:aws:sts::123456789012:assumed-role/eks-hybrid/node-1"
        );
        assert_eq!(id.account, "123456789012");
        assert!(assumed_role_matches(
            &id.arn,
            "arn:aws:iam::123456789012:role/path/eks-hybrid"
        ));
        assert!(!assumed_role_matches(
            &id.arn,
            "arn:aws:iam::123456789012:role/other"
        ));
        assert!(!assumed_role_matches(
            &id.arn,
            "arn:aws:iam::210987654321:role/eks-hybrid"
        ));
        let bad = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>Signature expired</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
        let err = parse_caller_identity(403, bad).unwrap_err();
        assert_eq!(
            err,
            "STS answered HTTP 403 SignatureDoesNotMatch: Signature expired"
        );
        assert!(parse_caller_identity(200, "<x/>").is_err());
    }

    #[test]
    fn swaps_and_fail_swap_on() {
        let none = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert_eq!(swap(&Ok(Some(none.into())), true).status, Status::Ok);
        let on = format!(
            "{none}/swapfile                               file\t\t2097148\t\t1024\t\t-2\n"
        );
        let r = swap(&Ok(Some(on.clone())), true);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.evidence
                .contains("/swapfile (file, 2097148 KiB, 1024 KiB used)"),
            "{}",
            r.evidence
        );
        assert!(r.fix.contains("swapoff -a"));
        assert_eq!(swap(&Ok(Some(on)), false).status, Status::Warn);
        assert_eq!(swap(&Ok(None), true).status, Status::Ok);
    }

    #[test]
    fn listeners_and_holders() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:280A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0\n\
           1: 0100007F:2818 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0\n\
           2: 0100007F:2850 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 100 0 0 10 0\n";
        let l = parse_listeners(tcp);
        assert_eq!(
            l,
            vec![
                Listener {
                    port: 10250,
                    inode: 1111
                },
                Listener {
                    port: 10264,
                    inode: 2222
                }
            ]
        );
        let mut holders = BTreeMap::new();
        holders.insert(
            1111,
            Holder {
                pid: 42,
                comm: "kubelet".into(),
            },
        );
        assert_eq!(ports(&Ok(l.clone()), &holders).status, Status::Ok);
        holders.insert(
            1111,
            Holder {
                pid: 7,
                comm: "nginx".into(),
            },
        );
        let r = ports(&Ok(l.clone()), &holders);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.evidence
                .contains("10250 (kubelet API) held by nginx (pid 7)"),
            "{}",
            r.evidence
        );
        assert_eq!(ports(&Ok(l), &BTreeMap::new()).status, Status::Warn);
    }

    #[test]
    fn no_proxy_matching_follows_go() {
        let np =
            "localhost,127.0.0.1,10.100.0.0/16,.eks.amazonaws.com,example.org:8080,169.254.169.254";
        assert!(no_proxy_covers(np, "ABC.gr7.us-west-2.eks.amazonaws.com"));
        assert!(!no_proxy_covers(np, "eks.amazonaws.com.evil"));
        assert!(no_proxy_covers(np, "example.org"));
        assert!(no_proxy_covers(np, "a.example.org"));
        assert!(no_proxy_covers(np, "10.100.3.4"));
        assert!(!no_proxy_covers(np, "10.101.0.1"));
        assert!(no_proxy_covers(np, "169.254.169.254"));
        assert!(!no_proxy_covers("", "localhost"));
        assert!(no_proxy_covers("*", "anything"));
        assert!(no_proxy_covers("[fd00::1]:443", "fd00::1"));
        assert!(!no_proxy_covers("[fd00::1", "localhost"));
        assert!(no_proxy_covers_net(np, &"10.100.0.0/16".parse().unwrap()));
        assert!(!no_proxy_covers_net(np, &"172.20.0.0/16".parse().unwrap()));
        assert_eq!(
            redact_proxy("http://u:secret@proxy:3128"),
            "http://***@proxy:3128"
        );
    }

    #[test]
    fn proxy_coverage_and_drift() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let good = env(&[
            ("HTTPS_PROXY", "http://user:pw@proxy:3128"),
            (
                "NO_PROXY",
                "localhost,127.0.0.1,169.254.169.254,10.100.0.0/16,.eks.amazonaws.com",
            ),
        ]);
        let mut input = ProxyInputs {
            ec2: true,
            api_host: Some("x.gr7.us-west-2.eks.amazonaws.com".into()),
            service_cidr: Some("10.100.0.0/16".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(proxy(&input).status, Status::Ok);
        input
            .configured
            .insert("kubelet.service".into(), good.clone());
        input.on_disk.insert("kubelet.service".into(), good.clone());
        let r = proxy(&input);
        assert_eq!(r.status, Status::Ok, "{}", r.evidence);
        assert!(!r.evidence.contains("pw"));
        // A drop-in that differs from the config.
        input.on_disk.insert(
            "kubelet.service".into(),
            env(&[
                ("HTTPS_PROXY", "http://other:3128"),
                ("NO_PROXY", good["NO_PROXY"].as_str()),
            ]),
        );
        let r = proxy(&input);
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("eks-node-agent init"), "{}", r.fix);
        // NO_PROXY without the service CIDR and IMDS.
        input.on_disk.clear();
        input.configured.insert(
            "kubelet.service".into(),
            env(&[
                ("https_proxy", "http://proxy:3128"),
                ("no_proxy", "localhost,127.0.0.1,.eks.amazonaws.com"),
            ]),
        );
        let r = proxy(&input);
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("169.254.169.254,10.100.0.0/16"), "{}", r.fix);
    }

    #[test]
    fn unit_environment_parses_systemd_quoting() {
        let files = vec![
            "[Service]\nEnvironment=\"HTTPS_PROXY=http://p:3128\" \"NO_PROXY=a,b\"\n".to_owned(),
            "[Service]\nEnvironment=NO_PROXY=c\n".to_owned(),
        ];
        let env = parse_unit_environment(&files);
        assert_eq!(env["HTTPS_PROXY"], "http://p:3128");
        assert_eq!(env["NO_PROXY"], "c");
    }

    #[test]
    fn node_ip_in_remote_networks() {
        let ip: Result<(IpAddr, String), String> =
            Ok(("10.80.1.5".parse().unwrap(), "--node-ip".into()));
        let nets = |c: &[&str]| -> Result<(Vec<IpNet>, String), String> {
            Ok((
                c.iter().map(|s| s.parse().unwrap()).collect(),
                "DescribeCluster".into(),
            ))
        };
        assert_eq!(
            node_ip(true, &ip, &nets(&["10.80.0.0/16"])).status,
            Status::Ok
        );
        let r = node_ip(true, &ip, &nets(&["192.168.0.0/16"]));
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("--node-ip"));
        assert_eq!(node_ip(true, &ip, &nets(&[])).status, Status::Fail);
        assert_eq!(
            node_ip(true, &ip, &Err("no credentials".into())).status,
            Status::Warn
        );
        let skipped = node_ip(false, &ip, &nets(&[]));
        assert_eq!(skipped.status, Status::Ok);
        assert!(skipped.evidence.starts_with("skipped"));
    }

    #[test]
    fn clock_states() {
        let synced = Timex::from_raw(0, 150, 0, 12_000, 400, 0x2001, 7, 10_000, 0, 37);
        assert_eq!(clock(&Ok(synced)).status, Status::Ok);
        let unsynced = Timex::from_raw(5, 0, 0, 16_000_000, 0, 0x0040, 0, 10_000, 0, 0);
        let r = clock(&Ok(unsynced));
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("timedatectl set-ntp true"));
        let loose = Timex::from_raw(0, 0, 0, 2_000_000, 0, 0x0001, 0, 10_000, 0, 0);
        assert_eq!(clock(&Ok(loose)).status, Status::Warn);
    }

    #[test]
    fn api_probe_outcomes() {
        let at = Some("https://x.example:443");
        let version = ApiProbe::Version {
            git_version: "v1.33.1".into(),
            version: v(1, 33, 1),
        };
        assert_eq!(api_server(at, &version).status, Status::Ok);
        let r = api_server(at, &ApiProbe::Untrusted("UnknownIssuer".into()));
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("certificateAuthority"));
        assert_eq!(
            api_server(
                at,
                &ApiProbe::Refused {
                    status: 401,
                    body: String::new()
                }
            )
            .status,
            Status::Warn
        );
        assert_eq!(
            api_server(at, &ApiProbe::Unreachable("refused".into())).status,
            Status::Fail
        );
    }
}
