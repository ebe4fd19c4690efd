//! Validation of the merged NodeConfig. Every problem names the document that set the field
//! (from the merge provenance), the field path, the bad value (never a secret) and the
//! expected form. All problems are reported together.

use std::net::IpAddr;

use base64::Engine;

use super::merge::Provenance;
use super::types::NodeConfig;
use crate::model::text::echo;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The document that set the field (or `merged configuration`).
    pub at: String,
    /// The field path, e.g. `spec.cluster.cidr`.
    pub path: String,
    /// What is wrong, with the expected form.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.path, self.message)
    }
}

pub(super) struct Checker<'a> {
    provenance: &'a Provenance,
    sources: &'a [String],
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Checker<'_> {
    /// The document that set `path`; else one that set a field inside it; else the nearest
    /// enclosing field's document; else the list of documents read.
    fn source_of(&self, path: &str) -> String {
        let mut candidate = path;
        loop {
            if let Some(label) = self.provenance.get(candidate) {
                return label.clone();
            }
            // Fields under `candidate` are contiguous in the map's order: one range lookup.
            for prefix in [format!("{candidate}."), format!("{candidate}[")] {
                if let Some((_, label)) = self
                    .provenance
                    .range(prefix.clone()..)
                    .next()
                    .filter(|(k, _)| k.starts_with(&prefix))
                {
                    return label.clone();
                }
            }
            match candidate.rfind(['.', '[']) {
                Some(i) => candidate = &candidate[..i],
                None => break,
            }
        }
        match self.sources {
            [] => "no config source was found".to_owned(),
            sources => format!("not set by any source ({})", sources.join(", ")),
        }
    }

    pub(super) fn fail(&mut self, path: &str, message: impl Into<String>) {
        let at = self.source_of(path);
        self.problems.push(Problem {
            at,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Something suspicious but not wrong: reported, not refused.
    pub(super) fn warn(&mut self, path: &str, message: impl Into<String>) {
        let at = self.source_of(path);
        self.warnings.push(Problem {
            at,
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

/// Maximum length of an EKS cluster name.
const CLUSTER_NAME_MAX: usize = 100;
/// Maximum length of a hybrid node name (IAM role session names are limited to 64).
const NODE_NAME_MAX: usize = 64;

/// Validates a merged configuration at `now` (certificate validity): `Ok` with the warnings,
/// or every problem found.
pub fn validate(
    config: &NodeConfig,
    provenance: &Provenance,
    sources: &[String],
    now: std::time::SystemTime,
) -> Result<Vec<Problem>, Vec<Problem>> {
    let mut c = Checker {
        provenance,
        sources,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    if let Some(ecs) = &config.spec.ecs {
        check_ecs(&mut c, config, ecs);
        check_known_names(&mut c, config);
        return if c.problems.is_empty() {
            Ok(c.warnings)
        } else {
            Err(c.problems)
        };
    }
    let cluster = &config.spec.cluster;
    match cluster.name.as_deref() {
        None => c.fail(
            "spec.cluster.name",
            "is required; add `spec.cluster.name: <your cluster>` to a NodeConfig",
        ),
        Some(name) if !valid_cluster_name(name) => c.fail(
            "spec.cluster.name",
            format!("{} is not a valid EKS cluster name; expected 1-{CLUSTER_NAME_MAX} characters, letters, digits, '-' and '_', starting with a letter or digit", echo(name)),
        ),
        Some(_) => {}
    }
    if let Some(region) = cluster.region.as_deref()
        && !valid_region(region)
    {
        c.fail(
            "spec.cluster.region",
            format!(
                "{} is not an AWS region; expected e.g. us-west-2",
                echo(region)
            ),
        );
    }
    if let Some(endpoint) = cluster.api_server_endpoint.as_deref() {
        check_endpoint(&mut c, endpoint);
    }
    if let Some(ca) = cluster.certificate_authority.as_deref()
        && let Err(why) = ca_pem(ca)
    {
        c.fail("spec.cluster.certificateAuthority", format!("{why}; expected base64 of the PEM CA bundle (as in DescribeCluster's certificateAuthority.data)"));
    }
    if let Some(cidr) = cluster.cidr.as_deref()
        && cidr.parse::<ipnet::IpNet>().is_err()
    {
        c.fail("spec.cluster.cidr", format!("{} is not a CIDR; expected the service CIDR, e.g. 10.100.0.0/16 or fd00:10:96::/108", echo(cidr)));
    }
    if config.is_outpost() && cluster.id.as_deref().is_none_or(str::is_empty) {
        c.fail("spec.cluster.enableOutpost", "is true but spec.cluster.id is not set; a local Outposts cluster is joined by its cluster ID: add `spec.cluster.id`");
    }
    check_kubelet(&mut c, config);
    check_instance(&mut c, config);
    if config.spec.hybrid.is_some() {
        check_hybrid(&mut c, config);
    }
    if config.spec.kubeadm.is_some() {
        check_kubeadm(&mut c, config);
    }
    check_nodeadm_parity(&mut c, config);
    check_known_names(&mut c, config);
    super::offline::check(&mut c, config, now);
    if c.problems.is_empty() {
        Ok(c.warnings)
    } else {
        Err(c.problems)
    }
}

/// EKS cluster names: 1-100 characters, `[0-9A-Za-z][A-Za-z0-9_-]*`.
pub fn valid_cluster_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= CLUSTER_NAME_MAX
        && chars.next().is_some_and(|ch| ch.is_ascii_alphanumeric())
        && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}

/// AWS region names: lowercase words joined by '-', ending with a number (us-gov-west-1).
pub fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|ch| ch.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

fn check_endpoint(c: &mut Checker<'_>, endpoint: &str) {
    let path = "spec.cluster.apiServerEndpoint";
    let shown = echo(endpoint);
    if crate::model::text::has_userinfo(endpoint) {
        c.fail(path, format!("{shown} carries credentials (user:password@); the API server endpoint is the bare https:// URL (the node authenticates with IAM or a bootstrap token, never a password in a URL): remove them"));
        return;
    }
    match url::Url::parse(endpoint) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {}
        Ok(u) => c.fail(path, format!("{shown} uses scheme {}; the API server endpoint must be an https:// URL", crate::model::text::shorten(u.scheme()))),
        Err(e) => c.fail(path, format!("{shown} is not a URL ({e}); expected e.g. https://ABCD.gr7.us-west-2.eks.amazonaws.com")),
    }
}

/// Decodes `ca`, base64 of one or more PEM certificates that parse as X.509, to the PEM bytes.
pub fn ca_pem(ca: &str) -> Result<Vec<u8>, String> {
    let compact: String = ca.chars().filter(|ch| !ch.is_ascii_whitespace()).collect();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("is not valid base64 ({e})"))?;
    check_pem_certificates(&pem)?;
    Ok(pem)
}

/// Checks that `pem` holds one or more X.509 certificates in PEM form.
pub fn check_pem_certificates(pem: &[u8]) -> Result<(), String> {
    pem_certificates(pem).map(drop)
}

/// The most certificates a CA bundle may hold.
pub const MAX_CA_CERTIFICATES: usize = 256;

/// The X.509 certificates in `pem` (one or more, at most [`MAX_CA_CERTIFICATES`]).
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<x509_cert::Certificate>, String> {
    use x509_cert::der::DecodePem;
    let text =
        std::str::from_utf8(pem).map_err(|_| "decodes to binary data, not PEM text".to_owned())?;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = text;
    let mut certificates = Vec::new();
    while let Some(start) = rest.find(BEGIN) {
        let count = certificates.len();
        if count == MAX_CA_CERTIFICATES {
            return Err(format!(
                "holds more than {MAX_CA_CERTIFICATES} certificates (the limit of a CA bundle)"
            ));
        }
        let Some(end) = rest[start..].find(END) else {
            return Err(format!(
                "certificate {} has no END CERTIFICATE line",
                count + 1
            ));
        };
        let block = &rest[start..start + end + END.len()];
        let certificate = x509_cert::Certificate::from_pem(block.as_bytes()).map_err(|e| {
            format!(
                "certificate {} is not a valid X.509 certificate ({e})",
                count + 1
            )
        })?;
        certificates.push(certificate);
        rest = &rest[start + end + END.len()..];
    }
    if certificates.is_empty() {
        return Err("decodes to text with no PEM CERTIFICATE block".into());
    }
    Ok(certificates)
}

fn check_kubelet(c: &mut Checker<'_>, config: &NodeConfig) {
    for (i, flag) in config.spec.kubelet.flags.iter().enumerate() {
        let path = format!("spec.kubelet.flags[{i}]");
        if !flag.starts_with("--") || flag.len() < 3 {
            c.fail(
                &path,
                format!(
                    "{} is not a kubelet flag; expected --name=value",
                    echo(flag)
                ),
            );
        } else if config.is_hybrid() && flag_name(flag) == "hostname-override" {
            c.fail(&path, "--hostname-override is not allowed on hybrid nodes: the node name comes from spec.hybrid (iamRolesAnywhere.nodeName or the SSM managed instance ID); remove the flag");
        }
    }
    if let Some(v) = config.spec.kubelet.config.get("maxPods")
        && !v
            .as_u64()
            .is_some_and(|n| (1..=u64::from(u16::MAX)).contains(&n))
    {
        c.fail(
            "spec.kubelet.config.maxPods",
            format!(
                "{} is not a pod count; expected a positive integer",
                crate::model::text::shorten(&v.to_string())
            ),
        );
    }
}

/// `--name=value` -> `name`.
fn flag_name(flag: &str) -> &str {
    let body = flag.trim_start_matches('-');
    body.split_once('=').map_or(body, |(n, _)| n)
}

/// Kernel and runtime filesystems the instance-store disks must not be mounted under.
const VIRTUAL_FS_ROOTS: [&str; 4] = ["/proc", "/sys", "/dev", "/run"];

/// `spec.instance.localStorage.mountPath`: an absolute, plain path (it becomes systemd unit
/// names and `Where=` lines), outside the kernel's filesystems and outside the directories the
/// array is bind-mounted onto.
fn mount_path(p: &str) -> Result<(), String> {
    use std::path::{Component, Path};
    if !p.starts_with('/') {
        return Err(format!("{} is not an absolute path", echo(p)));
    }
    if let Some(bad) = p.chars().find(|ch| {
        !(ch.is_ascii_alphanumeric() || matches!(ch, '/' | '.' | '_' | '-' | '+' | '@' | ':' | ','))
    }) {
        return Err(format!(
            "{} contains {bad:?}; use letters, digits and / . _ - + @ : , only",
            echo(p)
        ));
    }
    let path = Path::new(p);
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!("{} contains . or .. components", echo(p)));
    }
    if path.components().count() < 2 {
        return Err(format!(
            "{} is the root directory; use a directory such as /mnt/k8s-disks",
            echo(p)
        ));
    }
    if let Some(fs) = VIRTUAL_FS_ROOTS.iter().find(|r| path.starts_with(r)) {
        return Err(format!(
            "{} is under {fs}, a kernel filesystem; use a directory such as /mnt/k8s-disks",
            echo(p)
        ));
    }
    if let Some(d) = crate::model::disks::STATE_DIRS
        .iter()
        .find(|d| path.starts_with(d.path))
    {
        return Err(format!(
            "{} is under {}, which is bind-mounted from the array; use a directory such as /mnt/k8s-disks",
            echo(p),
            d.path
        ));
    }
    Ok(())
}

fn check_instance(c: &mut Checker<'_>, config: &NodeConfig) {
    let instance = &config.spec.instance;
    if let Some(p) = instance.local_storage.mount_path.as_deref()
        && let Err(reason) = mount_path(p)
    {
        c.fail("spec.instance.localStorage.mountPath", reason);
    }
    for (unit, vars) in &instance.environment {
        if unit.is_empty() || unit.contains('/') || unit.chars().any(char::is_whitespace) {
            c.fail(
                &format!(
                    "spec.instance.environment.{}",
                    crate::model::text::shorten(unit)
                ),
                "is not a systemd unit name (or `default`)",
            );
        }
        for name in vars.keys() {
            let ok = name
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !ok {
                c.fail(
                    &format!(
                        "spec.instance.environment.{}.{}",
                        crate::model::text::shorten(unit),
                        crate::model::text::shorten(name)
                    ),
                    "is not a valid environment variable name; expected [A-Za-z_][A-Za-z0-9_]*",
                );
            }
        }
    }
    for (i, ns) in instance.network.nameservers.iter().enumerate() {
        if ns.parse::<IpAddr>().is_err() {
            c.fail(
                &format!("spec.instance.network.nameservers[{i}]"),
                format!("{} is not an IP address", echo(ns)),
            );
        }
    }
    for (i, d) in instance.network.domains.iter().enumerate() {
        if !valid_dns_name(d.trim_end_matches('.')) {
            c.fail(
                &format!("spec.instance.network.domains[{i}]"),
                format!("{} is not a DNS domain", echo(d)),
            );
        }
    }
}

/// RFC 1123 DNS name (labels of letters, digits and '-', up to 253 characters).
pub fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        })
}

fn check_hybrid(c: &mut Checker<'_>, config: &NodeConfig) {
    let Some(hybrid) = config.spec.hybrid.as_ref() else {
        return;
    };
    if config.spec.cluster.region.is_none() {
        c.fail(
            "spec.cluster.region",
            "is required on hybrid nodes (there is no IMDS to ask); add `spec.cluster.region`",
        );
    }
    if config.is_outpost() {
        c.fail(
            "spec.cluster.enableOutpost",
            "cannot be combined with spec.hybrid: a host is either on an Outpost or on-prem",
        );
    }
    match (&hybrid.ssm, &hybrid.iam_roles_anywhere) {
        (Some(_), Some(_)) => c.fail(
            "spec.hybrid",
            "sets both ssm and iamRolesAnywhere; choose exactly one credential provider",
        ),
        (None, None) => c.fail(
            "spec.hybrid",
            "sets neither ssm nor iamRolesAnywhere; choose exactly one credential provider",
        ),
        (Some(ssm), None) => {
            if ssm.activation_code.as_deref().is_none_or(str::is_empty) {
                c.fail(
                    "spec.hybrid.ssm.activationCode",
                    "is required; use the code returned by `aws ssm create-activation`",
                );
            }
            match ssm.activation_id.as_deref() {
                None => c.fail("spec.hybrid.ssm.activationId", "is required; use the ID returned by `aws ssm create-activation`"),
                Some(id) if !is_uuid(id) => c.fail("spec.hybrid.ssm.activationId", format!("{} is not an activation ID; expected a UUID like 3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b", echo(id))),
                Some(_) => {}
            }
        }
        (None, Some(ira)) => check_roles_anywhere(c, ira, config.spec.cluster.region.as_deref()),
    }
}

/// Longest `spec.kubeadm.discoveryTimeoutSeconds` accepted.
const KUBEADM_DISCOVERY_TIMEOUT_MAX_SECS: u64 = 3600;

/// `spec.kubeadm` (eks-node-agent extension): token discovery needs the endpoint, a
/// well-formed token and at least one CA pin; it takes the CA from cluster-info, so a
/// configured CA, hybrid and Outposts settings do not combine with it.
fn check_kubeadm(c: &mut Checker<'_>, config: &NodeConfig) {
    use crate::model::{BootstrapToken, CaPin};
    const P: &str = "spec.kubeadm";
    let Some(kubeadm) = config.spec.kubeadm.as_ref() else {
        return;
    };
    match kubeadm.bootstrap_token.as_deref() {
        None | Some("") => c.fail(
            &format!("{P}.bootstrapToken"),
            "is required; create one with `kubeadm token create` on a control-plane node",
        ),
        Some(token) => {
            if let Err(e) = BootstrapToken::parse(token) {
                c.fail(&format!("{P}.bootstrapToken"), e.to_string());
            }
        }
    }
    if kubeadm.ca_cert_hashes.is_empty() {
        c.fail(
            &format!("{P}.caCertHashes"),
            "is required: without a pinned CA the agent would trust whichever server answers (trust on first use), which it never does; add `sha256:<hex>` of the cluster CA's public key, as `kubeadm token create --print-join-command` prints it",
        );
    }
    for (i, hash) in kubeadm.ca_cert_hashes.iter().enumerate() {
        if let Err(e) = CaPin::parse(hash) {
            c.fail(&format!("{P}.caCertHashes[{i}]"), e.to_string());
        }
    }
    if kubeadm.unsafe_skip_ca_verification == Some(true) {
        c.fail(
            &format!("{P}.unsafeSkipCAVerification"),
            "is not supported: the agent never joins a cluster whose CA it cannot pin; remove it and set spec.kubeadm.caCertHashes",
        );
    }
    if let Some(secs) = kubeadm.discovery_timeout_seconds
        && !(1..=KUBEADM_DISCOVERY_TIMEOUT_MAX_SECS).contains(&secs)
    {
        c.fail(
            &format!("{P}.discoveryTimeoutSeconds"),
            format!("{secs} is out of range; expected 1 to {KUBEADM_DISCOVERY_TIMEOUT_MAX_SECS} seconds (default 300)"),
        );
    }
    let cluster = &config.spec.cluster;
    if cluster.api_server_endpoint.is_none() {
        c.fail(
            "spec.cluster.apiServerEndpoint",
            "is required with spec.kubeadm: it is where cluster-info is read, e.g. https://10.0.0.10:6443 (the control plane endpoint)",
        );
    }
    if cluster.certificate_authority.is_some() {
        c.fail(
            "spec.cluster.certificateAuthority",
            "cannot be combined with spec.kubeadm: the CA comes from cluster-info, pinned by spec.kubeadm.caCertHashes; remove it",
        );
    }
    if config.spec.hybrid.is_some() {
        c.fail(
            P,
            "cannot be combined with spec.hybrid: a node joins either with IAM credentials (EKS Hybrid Nodes) or with a bootstrap token (kubeadm); remove one",
        );
    }
    if config.is_outpost() {
        c.fail(
            "spec.cluster.enableOutpost",
            "cannot be combined with spec.kubeadm: Outposts local clusters join with IAM credentials",
        );
    }
}

fn check_roles_anywhere(
    c: &mut Checker<'_>,
    ira: &super::types::IamRolesAnywhere,
    cluster_region: Option<&str>,
) {
    const P: &str = "spec.hybrid.iamRolesAnywhere";
    match ira.node_name.as_deref() {
        None => c.fail(&format!("{P}.nodeName"), "is required; it becomes the Kubernetes node name and must match the certificate's CN if your trust policy checks it"),
        Some(n) if n.len() > NODE_NAME_MAX || !valid_dns_name(n) || n.chars().any(|ch| ch.is_ascii_uppercase()) => c.fail(
            &format!("{P}.nodeName"),
            format!("{} is not a valid node name; expected a lowercase DNS subdomain of at most {NODE_NAME_MAX} characters", echo(n)),
        ),
        Some(_) => {}
    }
    let anchor = arn_field(
        c,
        &format!("{P}.trustAnchorArn"),
        ira.trust_anchor_arn.as_deref(),
        "rolesanywhere",
        "trust-anchor/",
        cluster_region,
    );
    let profile = arn_field(
        c,
        &format!("{P}.profileArn"),
        ira.profile_arn.as_deref(),
        "rolesanywhere",
        "profile/",
        cluster_region,
    );
    arn_field(
        c,
        &format!("{P}.roleArn"),
        ira.role_arn.as_deref(),
        "iam",
        "role/",
        cluster_region,
    );
    if let (Some(a), Some(p)) = (anchor, profile)
        && a.region != p.region
    {
        c.fail(&format!("{P}.profileArn"), format!("is in region {} but the trust anchor is in {}; a Roles Anywhere profile and trust anchor must share a region", p.region, a.region));
    }
    for (field, value) in [
        ("certificatePath", &ira.certificate_path),
        ("privateKeyPath", &ira.private_key_path),
        ("awsConfigPath", &ira.aws_config_path),
    ] {
        if let Some(v) = value.as_deref()
            && !v.starts_with('/')
        {
            c.fail(
                &format!("{P}.{field}"),
                format!("{} is not an absolute path", echo(v)),
            );
        }
    }
}

/// `spec.ecs`: an ECS container instance. The Kubernetes sections do not apply and are refused
/// (a field we accept is a field we act on); the cluster name follows ECS's rules; ECS Anywhere
/// needs the region and at most one credential provider.
fn check_ecs(c: &mut Checker<'_>, config: &NodeConfig, ecs: &super::ecs::EcsOptions) {
    use super::ecs::{LOGGING_DRIVERS, typed_field_of, valid_go_duration, valid_key};
    use crate::model::ecs::valid_cluster_name as valid_ecs_cluster;
    const P: &str = "spec.ecs";
    let spec = &config.spec;
    for (set, path) in [
        (spec.cluster != Default::default(), "spec.cluster"),
        (spec.kubelet != Default::default(), "spec.kubelet"),
        (spec.containerd != Default::default(), "spec.containerd"),
        (
            spec.instance.local_storage != Default::default(),
            "spec.instance.localStorage",
        ),
        (!spec.feature_gates.is_empty(), "spec.featureGates"),
        (spec.hybrid.is_some(), "spec.hybrid"),
        (spec.kubeadm.is_some(), "spec.kubeadm"),
        (spec.instance_tag_labels.is_some(), "spec.instanceTagLabels"),
    ] {
        if set {
            c.fail(
                path,
                "is a Kubernetes node setting and does nothing on an ECS container instance (spec.ecs); remove it, or remove spec.ecs to join an EKS cluster",
            );
        }
    }
    match ecs.cluster.as_deref() {
        None => c.fail(
            &format!("{P}.cluster"),
            "is required; add `spec.ecs.cluster: <your ECS cluster>` (ECS_CLUSTER)",
        ),
        Some(name) if !valid_ecs_cluster(name) => c.fail(
            &format!("{P}.cluster"),
            format!("{} is not a name ECS accepts; expected 1-255 letters, digits, hyphens and underscores", crate::model::text::echo(name)),
        ),
        Some(_) => {}
    }
    match ecs.region.as_deref() {
        Some(region) if !valid_region(region) => c.fail(
            &format!("{P}.region"),
            format!("{} is not an AWS region; expected e.g. us-west-2", crate::model::text::echo(region)),
        ),
        None if ecs.external.is_some() => c.fail(
            &format!("{P}.region"),
            "is required on ECS Anywhere (spec.ecs.external): there is no IMDS to ask; add `spec.ecs.region`",
        ),
        _ => {}
    }
    if let Some(external) = &ecs.external {
        match (&external.ssm, &external.iam_roles_anywhere) {
            (Some(_), Some(_)) => c.fail(
                &format!("{P}.external"),
                "sets both ssm and iamRolesAnywhere; choose exactly one credential provider for the ECS Anywhere host",
            ),
            (Some(ssm), None) => {
                if ssm.activation_code.as_deref().is_none_or(str::is_empty) {
                    c.fail(
                        &format!("{P}.external.ssm.activationCode"),
                        "is required; use the code returned by `aws ssm create-activation`",
                    );
                }
                match ssm.activation_id.as_deref() {
                    None => c.fail(&format!("{P}.external.ssm.activationId"), "is required; use the ID returned by `aws ssm create-activation`"),
                    Some(id) if !is_uuid(id) => c.fail(&format!("{P}.external.ssm.activationId"), format!("{} is not an activation ID; expected a UUID like 3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b", crate::model::text::echo(id))),
                    Some(_) => {}
                }
            }
            (None, Some(ira)) => {
                let q = format!("{P}.external.iamRolesAnywhere");
                let anchor = arn_field(
                    c,
                    &format!("{q}.trustAnchorArn"),
                    ira.trust_anchor_arn.as_deref(),
                    "rolesanywhere",
                    "trust-anchor/",
                    ecs.region.as_deref(),
                );
                let profile = arn_field(
                    c,
                    &format!("{q}.profileArn"),
                    ira.profile_arn.as_deref(),
                    "rolesanywhere",
                    "profile/",
                    ecs.region.as_deref(),
                );
                arn_field(
                    c,
                    &format!("{q}.roleArn"),
                    ira.role_arn.as_deref(),
                    "iam",
                    "role/",
                    ecs.region.as_deref(),
                );
                if let (Some(a), Some(p)) = (anchor, profile)
                    && a.region != p.region
                {
                    c.fail(&format!("{q}.profileArn"), format!("is in region {} but the trust anchor is in {}; a Roles Anywhere profile and trust anchor must share a region", p.region, a.region));
                }
                for (field, value) in [
                    ("certificatePath", &ira.certificate_path),
                    ("privateKeyPath", &ira.private_key_path),
                ] {
                    if let Some(v) = value.as_deref()
                        && !v.starts_with('/')
                    {
                        c.fail(&format!("{q}.{field}"), format!("{} is not an absolute path", crate::model::text::echo(v)));
                    }
                }
                if let Some(name) = ira.role_session_name.as_deref()
                    && (name.len() < 2
                        || name.len() > 64
                        || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "=,.@-_".contains(ch)))
                {
                    c.fail(&format!("{q}.roleSessionName"), format!("{} is not a role session name; expected 2-64 characters of letters, digits and =,.@-_", crate::model::text::echo(name)));
                }
            }
            (None, None) => {}
        }
    }
    for (i, driver) in ecs.logging_drivers.iter().enumerate() {
        if !LOGGING_DRIVERS.contains(&driver.as_str()) {
            c.fail(
                &format!("{P}.loggingDrivers[{i}]"),
                format!(
                    "{} is not a logging driver the ECS agent knows; expected one of {}",
                    crate::model::text::echo(driver),
                    LOGGING_DRIVERS.join(", ")
                ),
            );
        }
    }
    if let Some(cleanup) = &ecs.image_cleanup {
        for (field, value) in [
            ("interval", &cleanup.interval),
            ("minimumAge", &cleanup.minimum_age),
        ] {
            if let Some(v) = value.as_deref()
                && !valid_go_duration(v)
            {
                c.fail(
                    &format!("{P}.imageCleanup.{field}"),
                    format!(
                        "{} is not a duration; expected e.g. 30m, 1h or 1h30m",
                        crate::model::text::echo(v)
                    ),
                );
            }
        }
        if cleanup.images_per_cycle == Some(0) {
            c.fail(&format!("{P}.imageCleanup.imagesPerCycle"), "is 0; the ECS agent ignores values below 1: set at least 1, or imageCleanup.enabled: false");
        }
    }
    for (name, value) in &ecs.instance_attributes {
        let ok_name = (1..=128).contains(&name.len())
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_/\\.".contains(ch));
        let ok_value = value.len() <= 128
            && value
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_./\\@: ".contains(ch));
        if !ok_name || !ok_value {
            c.fail(&format!("{P}.instanceAttributes.{name}"), "is not an attribute ECS accepts; names are 1-128 letters, digits and -_/\\. and values at most 128 letters, digits, spaces and -_./\\@:");
        }
    }
    for (key, value) in &ecs.instance_tags {
        if key.is_empty()
            || key.len() > 128
            || value.len() > 256
            || key.to_ascii_lowercase().starts_with("aws:")
        {
            c.fail(&format!("{P}.instanceTags.{key}"), "is not a tag ECS accepts; keys are 1-128 characters not starting with aws:, values at most 256");
        }
    }
    if let Some(auth) = &ecs.registry_auth
        && auth.data.is_empty()
    {
        c.fail(&format!("{P}.registryAuth.data"), "is empty; give registry URL -> credentials as the ECS agent's ECS_ENGINE_AUTH_DATA reads them");
    }
    for (key, value) in &ecs.config {
        if !valid_key(key) {
            c.fail(&format!("{P}.config.{key}"), "is not an environment variable name; expected letters, digits and _ (e.g. ECS_LOGLEVEL)");
        } else if let Some(field) = typed_field_of(key) {
            c.fail(
                &format!("{P}.config.{key}"),
                format!("is set by {field}; use that field instead"),
            );
        } else if key == crate::model::ecs::KEY_TASK_ENI && ecs.awsvpc_trunking == Some(true) {
            c.fail(
                &format!("{P}.config.{key}"),
                "is set by spec.ecs.awsvpcTrunking: true; remove one",
            );
        }
        if value.contains(['\n', '\r', '\0']) {
            c.fail(
                &format!("{P}.config.{key}"),
                "has a line break or NUL; ecs.config values are one line",
            );
        }
    }
}

/// Checks of the fields the agent acts on the way nodeadm does (and of its own extension that
/// goes with them): a feature gate the agent cannot honour, and the instance tag label prefix.
fn check_nodeadm_parity(c: &mut Checker<'_>, config: &NodeConfig) {
    use super::types::FeatureGate;
    if config.feature(FeatureGate::OsManagedNoManageEnis) {
        c.fail(
            &format!("spec.featureGates.{}", FeatureGate::OsManagedNoManageEnis),
            "is not supported: nodeadm hands the secondary ENIs tagged node.k8s.amazonaws.com/no_manage=true to systemd-networkd through the AL2023 AMI's own udev network manager, which eks-node-agent does not ship; remove the gate (or set it to false) and configure those interfaces with the host's network manager",
        );
    }
    if let Some(prefix) = config
        .spec
        .instance_tag_labels
        .as_ref()
        .and_then(|t| t.prefix.as_deref())
        && let Err(why) = check_tag_label_prefix(prefix)
    {
        c.fail("spec.instanceTagLabels.prefix", why);
    }
}

/// Longest EC2 tag key.
const MAX_TAG_KEY: usize = 128;

/// Checks a tag key prefix of `spec.instanceTagLabels`: the keys of tags that instance metadata
/// shows may hold only letters, digits and `+ - = . , _ : @` (no `/`, no space), and may not
/// start with `aws:`; the label key follows the prefix, so the prefix must leave room for one.
pub fn check_tag_label_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("is empty; it must select the tags meant as labels, e.g. \"node.eks.aws:label:\" (the default)".into());
    }
    if let Some(bad) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+-=.,_:@".contains(*c)))
    {
        return Err(format!(
            "\"{prefix}\" has {bad:?}, which EC2 refuses in the keys of tags shown in instance metadata (they allow letters, digits and + - = . , _ : @ only; write ':' where a label key has '/'), e.g. \"node.eks.aws:label:\""
        ));
    }
    if prefix.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!(
            "\"{prefix}\" starts with aws:, which EC2 reserves for its own tags"
        ));
    }
    if prefix.len() >= MAX_TAG_KEY {
        return Err(format!(
            "\"{prefix}\" is {} characters; a tag key has at most {MAX_TAG_KEY}, and the label key must follow the prefix",
            prefix.len()
        ));
    }
    Ok(())
}

/// What is accepted but probably a mistake: a feature gate or a `disabledMounts` name that
/// nodeadm does not know (nodeadm ignores both). Each names the nearest known name. `config
/// check --strict` and `init --strict` refuse a configuration with any.
fn check_known_names(c: &mut Checker<'_>, config: &NodeConfig) {
    use super::types::{DisabledMount, FeatureGate};
    let nearest = |name: &str, known: &[&str]| -> String {
        known
            .iter()
            .map(|k| {
                (
                    strsim::jaro_winkler(&name.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                    *k,
                )
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(score, _)| *score > 0.7)
            .map_or_else(String::new, |(_, k)| format!("did you mean {k}? "))
    };
    let gates: Vec<&str> = FeatureGate::ALL.iter().map(|g| g.name()).collect();
    for name in config.spec.feature_gates.keys() {
        if FeatureGate::from_name(name).is_none() {
            c.warn(
                &format!("spec.featureGates.{name}"),
                format!(
                    "is not a feature gate nodeadm or eks-node-agent knows, so it does nothing; {}known gates: {}",
                    nearest(name, &gates),
                    gates.join(", ")
                ),
            );
        }
    }
    if let Some(ecs) = &config.spec.ecs {
        for key in ecs.config.keys() {
            if super::ecs::valid_key(key) && !crate::model::ecs::is_known_key(key) {
                c.fail(
                    &format!("spec.ecs.config.{key}"),
                    format!(
                        "is not a key the ECS agent or ecs-init documents, so it probably does nothing; {}",
                        nearest(key, crate::model::ecs::KNOWN_KEYS)
                    )
                    .trim_end()
                    .to_owned(),
                );
            }
        }
    }
    let mounts: Vec<&str> = DisabledMount::KNOWN
        .iter()
        .map(DisabledMount::name)
        .collect();
    for (i, m) in config
        .spec
        .instance
        .local_storage
        .disabled_mounts
        .iter()
        .enumerate()
    {
        if let DisabledMount::Unknown(name) = m {
            c.warn(
                &format!("spec.instance.localStorage.disabledMounts[{i}]"),
                format!(
                    "\"{name}\" is not a directory nodeadm knows, so it keeps nothing on the root volume; {}known names: {}",
                    nearest(name, &mounts),
                    mounts.join(", ")
                ),
            );
        }
    }
}

/// The parts of an ARN this module checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    /// aws, aws-cn, aws-us-gov, ...
    pub partition: String,
    /// The service (iam, rolesanywhere, ...).
    pub service: String,
    /// The region (empty for IAM).
    pub region: String,
    /// The 12-digit account.
    pub account: String,
    /// The resource, e.g. `role/NodeRole`.
    pub resource: String,
}

/// Parses `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
pub fn parse_arn(s: &str) -> Option<Arn> {
    let mut it = s.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    let arn = Arn {
        partition: it.next()?.to_owned(),
        service: it.next()?.to_owned(),
        region: it.next()?.to_owned(),
        account: it.next()?.to_owned(),
        resource: it.next()?.to_owned(),
    };
    let ok = !arn.partition.is_empty()
        && !arn.service.is_empty()
        && arn.account.len() == 12
        && arn.account.chars().all(|ch| ch.is_ascii_digit())
        && !arn.resource.is_empty();
    ok.then_some(arn)
}

fn arn_field(
    c: &mut Checker<'_>,
    path: &str,
    value: Option<&str>,
    service: &str,
    resource_prefix: &str,
    cluster_region: Option<&str>,
) -> Option<Arn> {
    let Some(value) = value else {
        c.fail(
            path,
            format!("is required; expected arn:aws:{service}:...:{resource_prefix}..."),
        );
        return None;
    };
    let example = if service == "iam" {
        "arn:aws:iam::123456789012:role/NodeRole".to_owned()
    } else {
        format!("arn:aws:{service}:us-west-2:123456789012:{resource_prefix}<uuid>")
    };
    let shown = echo(value);
    let kind = resource_prefix.trim_end_matches('/');
    let Some(arn) = parse_arn(value).filter(|arn| {
        arn.service == service
            && arn.resource.starts_with(resource_prefix)
            && arn.resource.len() > resource_prefix.len()
    }) else {
        c.fail(
            path,
            format!("{shown} is not a {service} {kind} ARN; expected {example}"),
        );
        return None;
    };
    let known: Vec<&str> = crate::model::partition::PARTITIONS
        .iter()
        .map(|p| p.id)
        .collect();
    if !known.contains(&arn.partition.as_str()) {
        c.fail(
            path,
            format!(
                "{shown}: {} is not an AWS partition; expected one of {}",
                echo(&arn.partition),
                known.join(", ")
            ),
        );
        return None;
    }
    if service == "iam" {
        if !arn.region.is_empty() {
            c.fail(path, format!("{shown}: IAM ARNs have no region (IAM is global), but this one names {}; expected {example}", echo(&arn.region)));
            return None;
        }
    } else if !valid_region(&arn.region) {
        c.fail(
            path,
            format!(
                "{shown}: {} is not an AWS region; expected {example}",
                echo(&arn.region)
            ),
        );
        return None;
    } else if crate::model::partition_of(&arn.region).id != arn.partition {
        c.fail(
            path,
            format!(
                "{shown}: region {} belongs to partition {}, not {}; write arn:{}:{service}:{}:...",
                arn.region,
                crate::model::partition_of(&arn.region).id,
                arn.partition,
                crate::model::partition_of(&arn.region).id,
                arn.region
            ),
        );
        return None;
    }
    if let Some(region) = cluster_region.filter(|r| valid_region(r)) {
        let cluster_partition = crate::model::partition_of(region).id;
        if cluster_partition != arn.partition {
            c.fail(
                path,
                format!("{shown} is in partition {}, but the cluster's region {region} is in {cluster_partition}; credentials from one partition cannot join a cluster in another", arn.partition),
            );
            return None;
        }
    }
    Some(arn)
}

/// 8-4-4-4-12 hexadecimal.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|ch| ch.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_plain_absolute_and_outside_kernel_and_bind_dirs() {
        assert!(mount_path("/mnt/k8s-disks").is_ok());
        assert!(mount_path("/data/instance-store").is_ok());
        for (bad, why) in [
            ("mnt/k8s", "not an absolute path"),
            ("/", "root directory"),
            ("/proc/disks", "under /proc"),
            ("/sys", "under /sys"),
            ("/run/disks", "under /run"),
            ("/var/lib/containerd/x", "under /var/lib/containerd"),
            ("/mnt/../etc", ". or .."),
            ("/mnt/a b", "contains ' '"),
            ("/mnt/50%", "contains '%'"),
        ] {
            let err = mount_path(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn names_regions_and_uuids() {
        assert!(valid_cluster_name("my-cluster_1"));
        assert!(!valid_cluster_name("-bad"));
        assert!(!valid_cluster_name(&"a".repeat(101)));
        assert!(valid_region("us-gov-west-1"));
        assert!(valid_region("cn-north-1"));
        assert!(!valid_region("uswest2"));
        assert!(is_uuid("3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
        assert!(!is_uuid("3f1e2a4b1c2d4e5f8a9b0c1d2e3f4a5b"));
    }

    #[test]
    fn arns_parse() {
        let a = parse_arn("arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/abc").unwrap();
        assert_eq!(a.region, "us-west-2");
        assert!(parse_arn("arn:aws:iam::12345:role/x").is_none());
    }
}
