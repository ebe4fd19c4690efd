//! `status`'s `kubelet-serving-cert` check: the certificate the kubelet serves on 10250 (what
//! the API server meets for `kubectl logs/exec/port-forward` and metrics-server scrapes),
//! verified against the cluster CA as `nodeadm debug` does, and more:
//!
//! - which certificate: the kubelet's `tlsCertFile` (its config, then its drop-ins, the last
//!   wins), else [`ROTATED_CERT`] when `serverTLSBootstrap` is on (the kubelet asks the cluster
//!   for it with a `kubernetes.io/kubelet-serving` CSR and rotates it), else the self-signed
//!   [`SELF_SIGNED_CERT`] the kubelet makes for itself;
//! - the chain verifies to the cluster CA (`spec.cluster.certificateAuthority`, else
//!   DescribeCluster's, else the CA file `init` writes), with rustls-webpki;
//! - not expired and already valid (fail); less than [`EXPIRY_WARNING_PERCENT`] of its
//!   lifetime left is a warning: the kubelet renews a rotated certificate when 70-90% of its
//!   lifetime has passed, so a certificate past 90% is one whose renewal is stuck (its CSR not
//!   approved), and for a one-year certificate that is still five weeks to act;
//! - the node IP among its IP SANs (fail: the API server reaches the kubelet by address) and
//!   the node name or host name among its DNS SANs (warn);
//! - a self-signed certificate is a warning: clients can only skip verifying it.
//!
//! Before the join no certificate is expected: a missing one is skipped, as the `node` check
//! is. A certificate left from an earlier join is checked all the same (nodeadm's case of a
//! host moved to another cluster).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::Value;
use x509_cert::Certificate;
use x509_cert::der::Encode as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::Outcome;
use super::status::{fail, ok, warn};
use crate::model::bounded::{MAX_PEM_BYTES, read_capped, read_to_string_capped};
use crate::model::paths;

/// The serving certificate the kubelet gets through `serverTLSBootstrap` and rotates.
pub const ROTATED_CERT: &str = "/var/lib/kubelet/pki/kubelet-server-current.pem";
/// The certificate the kubelet signs itself when it has neither `tlsCertFile` nor
/// `serverTLSBootstrap`.
pub const SELF_SIGNED_CERT: &str = "/var/lib/kubelet/pki/kubelet.crt";
/// Less than this share (percent) of the certificate's lifetime left is a warning.
pub const EXPIRY_WARNING_PERCENT: u64 = 10;
/// The most bytes read of the kubelet's config and of each drop-in.
const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// The most kubelet drop-ins read.
const MAX_DROPINS: usize = 64;

/// Which certificate the kubelet serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `tlsCertFile`, set in the named file.
    Configured(String),
    /// Issued through `serverTLSBootstrap` (set in the named file).
    Rotated(String),
    /// The kubelet's own.
    SelfSigned,
}

/// The serving certificate as found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path on the host (as the kubelet names it).
    pub path: PathBuf,
    /// Why the kubelet serves that one.
    pub kind: Kind,
    /// Its PEM text (`None`: the file does not exist); only CERTIFICATE blocks are ever
    /// decoded, the private key a rotated file also holds is never looked at.
    pub pem: Option<Result<Vec<u8>, String>>,
}

/// What the certificate is checked against.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The cluster CA (PEM) and where it came from.
    pub ca: Option<(Vec<u8>, String)>,
    /// Why the CA is unknown, when it is.
    pub ca_missing: String,
    /// The node IP, when known.
    pub node_ip: Option<IpAddr>,
    /// Names the node goes by (node name, host name).
    pub names: Vec<String>,
    /// The kubelet's kubeconfig exists.
    pub joined: bool,
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The kubelet's TLS settings: `(tlsCertFile and where it is set, serverTLSBootstrap and
/// where)`, from its config and drop-ins under `host_root` (the last setting wins, as the
/// kubelet merges them). A relative `tlsCertFile` is relative to the file that sets it.
type TlsSettings = (Option<(PathBuf, String)>, Option<(bool, String)>);

fn tls_settings(host_root: &Path) -> Result<TlsSettings, String> {
    let config = Path::new(paths::KUBELET_CONFIG);
    let mut files = vec![config.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(under(
        host_root,
        Path::new(paths::KUBELET_CONFIG_DROPIN_DIR),
    )) {
        let mut dropins: Vec<PathBuf> = entries
            .flatten()
            .take(MAX_DROPINS)
            .map(|e| Path::new(paths::KUBELET_CONFIG_DROPIN_DIR).join(e.file_name()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        dropins.sort();
        files.extend(dropins);
    }
    let (mut cert_file, mut bootstrap) = (None, None);
    for file in files {
        let text = match read_to_string_capped(&under(host_root, &file), MAX_CONFIG_BYTES) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        // The kubelet reads JSON or YAML (its drop-ins may be either); YAML covers both.
        let doc: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("{}: not a KubeletConfiguration: {e}", file.display()))?;
        let shown = file.display().to_string();
        match doc.get("tlsCertFile") {
            Some(Value::String(p)) if !p.is_empty() => {
                let dir = file.parent().unwrap_or(Path::new("/"));
                cert_file = Some((dir.join(p), shown.clone()));
            }
            Some(Value::String(_) | Value::Null) | None => {}
            Some(other) => return Err(format!("{shown}: tlsCertFile is {other}, not a path")),
        }
        match doc.get("serverTLSBootstrap") {
            Some(Value::Bool(b)) => bootstrap = Some((*b, shown)),
            Some(Value::Null) | None => {}
            Some(other) => {
                return Err(format!(
                    "{shown}: serverTLSBootstrap is {other}, not true or false"
                ));
            }
        }
    }
    Ok((cert_file, bootstrap))
}

/// Finds the serving certificate under `host_root` and reads it (at most
/// [`MAX_PEM_BYTES`]); `Err` when the kubelet's config cannot be read.
pub fn read(host_root: &Path) -> Result<Found, String> {
    let (cert_file, bootstrap) = tls_settings(host_root)?;
    let (path, kind) = match (cert_file, bootstrap) {
        (Some((path, from)), _) => (path, Kind::Configured(from)),
        (None, Some((true, from))) => (PathBuf::from(ROTATED_CERT), Kind::Rotated(from)),
        (None, _) => (PathBuf::from(SELF_SIGNED_CERT), Kind::SelfSigned),
    };
    let pem = match read_capped(&under(host_root, &path), MAX_PEM_BYTES) {
        Ok(bytes) => Some(Ok(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
    };
    Ok(Found { path, kind, pem })
}

/// The CA file `init` writes, read under `host_root` (for when neither the configuration nor
/// DescribeCluster gave the CA).
pub fn ca_file(host_root: &Path) -> Result<(Vec<u8>, String), String> {
    read_capped(
        &under(host_root, Path::new(paths::CLUSTER_CA)),
        MAX_PEM_BYTES,
    )
    .map(|pem| (pem, paths::CLUSTER_CA.to_owned()))
    .map_err(|e| format!("{}: {e}", paths::CLUSTER_CA))
}

fn unix(t: x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn rfc3339(secs: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    crate::model::text::rfc3339(t)
}

/// The certificate's DNS and IP subject alternative names.
fn sans(cert: &Certificate) -> (Vec<String>, Vec<IpAddr>) {
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some((_, SubjectAltName(names)))) = cert.tbs_certificate.get::<SubjectAltName>() {
        for n in names {
            match n {
                GeneralName::DnsName(d) => dns.push(d.to_string()),
                GeneralName::IpAddress(b) => match b.as_bytes().len() {
                    4 => ips.push(IpAddr::from(
                        <[u8; 4]>::try_from(b.as_bytes()).unwrap_or_default(),
                    )),
                    16 => ips.push(IpAddr::from(
                        <[u8; 16]>::try_from(b.as_bytes()).unwrap_or_default(),
                    )),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    (dns, ips)
}

/// Verifies `chain[0]` (with the rest as intermediates) to a server certificate of `ca`.
fn verify(chain: &[Certificate], ca: &[Certificate], now: i64) -> Result<(), String> {
    let der = |c: &Certificate| {
        c.to_der()
            .map(CertificateDer::from)
            .map_err(|e| e.to_string())
    };
    let leaf = der(&chain[0])?;
    let intermediates = chain[1..].iter().map(der).collect::<Result<Vec<_>, _>>()?;
    let roots = ca.iter().map(der).collect::<Result<Vec<_>, _>>()?;
    let anchors = roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map_err(|e| format!("the cluster CA: {e:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| format!("{e:?}"))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now).unwrap_or(0),
        )),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map(drop)
    .map_err(|e| match e {
        webpki::Error::UnknownIssuer => "not signed by it".to_owned(),
        other => format!("{other:?}"),
    })
}

/// The chain ends in a certificate that signs itself (the kubelet's own: its leaf and the
/// throwaway CA that signed it, or a lone self-signed certificate).
fn self_issued(chain: &[Certificate]) -> bool {
    chain
        .last()
        .is_some_and(|c| c.tbs_certificate.issuer == c.tbs_certificate.subject)
}

const SERVER_TLS_BOOTSTRAP_FIX: &str = "enable serverTLSBootstrap: set spec.kubelet.config.serverTLSBootstrap: true in the NodeConfig and run init again (the kubelet then asks the cluster for a serving certificate with a kubernetes.io/kubelet-serving CSR, which must be approved: `kubectl get csr`, `kubectl certificate approve NAME`)";

/// The check over what [`read`] found, at `now`.
pub fn check(found: &Result<Found, String>, expected: &Expected, now: SystemTime) -> Outcome {
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            return fail(
                "KubeletConfigUnreadable",
                format!("cannot tell which serving certificate the kubelet uses: {e}"),
                format!(
                    "correct the kubelet configuration ({} and its drop-ins); `eks-node-agent init` renders it from the NodeConfig",
                    paths::KUBELET_CONFIG
                ),
            );
        }
    };
    let path = found.path.display();
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let which = match &found.kind {
        Kind::Configured(from) => format!("{path} (tlsCertFile in {from})"),
        Kind::Rotated(from) => format!("{path} (serverTLSBootstrap in {from})"),
        Kind::SelfSigned => format!("{path} (no tlsCertFile, no serverTLSBootstrap)"),
    };
    let pem = match &found.pem {
        None if !expected.joined => {
            return ok(format!("skipped: not joined yet: {which} does not exist"));
        }
        None => {
            return match found.kind {
                Kind::Rotated(_) => warn(
                    "KubeletServingCertPending",
                    format!(
                        "{which} does not exist: the cluster has not issued the kubelet's serving certificate yet, so kubectl logs/exec and metrics-server cannot reach this node"
                    ),
                    "approve the node's kubernetes.io/kubelet-serving CSR (`kubectl get csr`, `kubectl certificate approve NAME`; EKS approves it when its names and addresses are the node's), then check journalctl -u kubelet",
                ),
                Kind::Configured(_) => fail(
                    "KubeletServingCertMissing",
                    format!("{which} does not exist: the kubelet cannot serve"),
                    "put the certificate (and its key, tlsPrivateKeyFile) there, or remove tlsCertFile from spec.kubelet.config",
                ),
                Kind::SelfSigned => warn(
                    "KubeletServingCertMissing",
                    format!("{which} does not exist: the kubelet has not started since it joined"),
                    "start the kubelet (systemctl start kubelet; journalctl -u kubelet); better, enable serverTLSBootstrap so the cluster CA signs its certificate",
                ),
            };
        }
        Some(Err(e)) => {
            return fail(
                "KubeletServingCertUnreadable",
                format!("{which}: {e}"),
                format!("remove {path} and restart the kubelet (systemctl restart kubelet)"),
            );
        }
        Some(Ok(pem)) => pem,
    };
    let chain = match crate::config::validate::pem_certificates(pem) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                "KubeletServingCertInvalid",
                format!("{which} {e}"),
                format!(
                    "remove {path} and restart the kubelet (systemctl restart kubelet) so it gets a new one"
                ),
            );
        }
    };
    let leaf = &chain[0];
    let subject = leaf.tbs_certificate.subject.to_string();
    let issuer = leaf.tbs_certificate.issuer.to_string();
    let validity = &leaf.tbs_certificate.validity;
    let (not_before, not_after) = (unix(validity.not_before), unix(validity.not_after));
    let renew = match found.kind {
        Kind::Configured(_) => format!(
            "replace {path} (tlsCertFile) with a certificate the cluster CA signs for this node, and restart the kubelet"
        ),
        Kind::Rotated(_) => format!(
            "remove {path} and restart the kubelet: it asks for a new one (approve its CSR if the cluster does not)"
        ),
        Kind::SelfSigned => {
            format!("remove {path} and restart the kubelet; better, {SERVER_TLS_BOOTSTRAP_FIX}")
        }
    };
    if now < not_before {
        return fail(
            "KubeletServingCertNotYetValid",
            format!(
                "{which}, subject {subject}: not valid before {}",
                rfc3339(not_before)
            ),
            "correct the clock (see the clock check: chronyd or systemd-timesyncd), then restart the kubelet",
        );
    }
    if now >= not_after {
        return fail(
            "KubeletServingCertExpired",
            format!("{which}, subject {subject}: expired {}", rfc3339(not_after)),
            renew,
        );
    }
    let ca = match &expected.ca {
        Some((pem, from)) => crate::config::validate::pem_certificates(pem)
            .map(|c| (c, from.clone()))
            .map_err(|e| format!("the cluster CA from {from} {e}")),
        None => Err(format!(
            "the cluster CA is unknown ({})",
            expected.ca_missing
        )),
    };
    let verified = ca
        .as_ref()
        .map(|(ca, from)| (verify(&chain, ca, now), ca, from));
    if let Ok((Err(why), ca, from)) = &verified {
        if found.kind == Kind::SelfSigned && self_issued(&chain) {
            return self_signed(&which, &subject, &issuer);
        }
        let ca_subjects: Vec<String> = ca
            .iter()
            .map(|c| c.tbs_certificate.subject.to_string())
            .collect();
        return fail(
            "KubeletServingCertUntrusted",
            format!(
                "{which}, subject {subject}, issuer {issuer}: {why} — the cluster CA ({from}) is {}",
                ca_subjects.join(" + ")
            ),
            format!("the certificate is from another cluster or CA: {renew}"),
        );
    }
    if found.kind == Kind::SelfSigned && self_issued(&chain) && verified.is_err() {
        return self_signed(&which, &subject, &issuer);
    }

    // Signed by the cluster CA (or the CA is unknown): the names it serves, its lifetime.
    let (dns, ips) = sans(leaf);
    let expires = format!("expires {}", rfc3339(not_after));
    let mut problems = Vec::new();
    if let Some(ip) = expected.node_ip.filter(|ip| !ips.contains(ip)) {
        let listed: Vec<String> = ips.iter().map(ToString::to_string).collect();
        return fail(
            "KubeletServingCertWrongNames",
            format!(
                "{which}, subject {subject}: the node IP {ip} is not among its IP SANs [{}]: the API server reaches the kubelet by that address and cannot verify it",
                listed.join(", ")
            ),
            renew,
        );
    }
    let names: Vec<&String> = expected.names.iter().filter(|n| !n.is_empty()).collect();
    if !names.is_empty() && !names.iter().any(|n| dns.contains(n)) {
        problems.push(format!(
            "none of {} among its DNS SANs [{}]",
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            dns.join(", ")
        ));
    }
    let lifetime = u64::try_from(not_after - not_before).unwrap_or(0);
    let left = u64::try_from(not_after - now).unwrap_or(0);
    let expiring = left.saturating_mul(100) < lifetime.saturating_mul(EXPIRY_WARNING_PERCENT);
    let trust = match &ca {
        Ok((_, from)) => format!("signed by the cluster CA ({from})"),
        Err(e) => format!("chain not verified: {e}"),
    };
    let evidence = format!("{which}, subject {subject}, {trust}, {expires}");
    if expiring {
        return warn(
            "KubeletServingCertExpiring",
            format!("{evidence}: less than {EXPIRY_WARNING_PERCENT}% of its lifetime left ({}h)", left / 3600),
            match found.kind {
                Kind::Rotated(_) => "the kubelet should have renewed it by now: look for its pending kubernetes.io/kubelet-serving CSR (`kubectl get csr`) and approve it; journalctl -u kubelet".to_owned(),
                _ => renew,
            },
        );
    }
    if !problems.is_empty() {
        return warn(
            "KubeletServingCertWrongNames",
            format!("{evidence}; {}", problems.join("; ")),
            renew,
        );
    }
    if let Err(e) = &ca {
        return warn(
            "KubeletServingCertUnverified",
            format!("{which}, subject {subject}, {expires}: {e}"),
            "give the check the cluster CA: spec.cluster.certificateAuthority, or credentials allowed to call eks:DescribeCluster",
        );
    }
    ok(evidence)
}

fn self_signed(which: &str, subject: &str, issuer: &str) -> Outcome {
    warn(
        "KubeletServingCertSelfSigned",
        format!(
            "{which}, subject {subject}, issuer {issuer}: self-signed, so kubectl logs/exec/port-forward and metrics-server work only while they skip verifying the kubelet (no --kubelet-certificate-authority on the API server, --kubelet-insecure-tls on metrics-server)"
        ),
        SERVER_TLS_BOOTSTRAP_FIX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        SanType,
    };
    use time::{Duration, OffsetDateTime};

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca(name: &str) -> Ca {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A kubelet serving certificate as the kubelet-serving signer issues it (or self-signed
    /// when `by` is None), valid from `from` to `to` days from now.
    fn serving(by: Option<&Ca>, from: i64, to: i64, ip: &str) -> String {
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, "system:node:node-a");
        p.subject_alt_names = vec![
            SanType::DnsName("node-a".try_into().unwrap()),
            SanType::IpAddress(ip.parse().unwrap()),
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.not_before = OffsetDateTime::now_utc() + Duration::days(from);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(to);
        let key = KeyPair::generate().unwrap();
        let cert = match by {
            Some(ca) => p.signed_by(&key, &ca.cert, &ca.key).unwrap(),
            None => p.self_signed(&key).unwrap(),
        };
        // The rotated file holds the key after the certificate; it must never be read.
        format!("{}{}", cert.pem(), key.serialize_pem())
    }

    fn expected(ca: &Ca) -> Expected {
        Expected {
            ca: Some((
                ca.cert.pem().into_bytes(),
                "spec.cluster.certificateAuthority".into(),
            )),
            ca_missing: String::new(),
            node_ip: Some("10.0.0.5".parse().unwrap()),
            names: vec!["node-a".into()],
            joined: true,
        }
    }

    fn host(config: &str, cert: Option<(&str, &str)>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let conf = under(d.path(), Path::new(paths::KUBELET_CONFIG));
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        std::fs::write(&conf, config).unwrap();
        if let Some((path, pem)) = cert {
            let p = under(d.path(), Path::new(path));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, pem).unwrap();
        }
        d
    }

    const BOOTSTRAP: &str = r#"{"kind":"KubeletConfiguration","serverTLSBootstrap":true}"#;

    fn run(d: &tempfile::TempDir, e: &Expected) -> Outcome {
        check(&read(d.path()), e, SystemTime::now())
    }

    #[test]
    fn signed_by_the_cluster_ca_passes_and_another_ca_fails_naming_both() {
        let cluster = ca("kubernetes");
        let d = host(
            BOOTSTRAP,
            Some((ROTATED_CERT, &serving(Some(&cluster), -1, 365, "10.0.0.5"))),
        );
        let o = run(&d, &expected(&cluster));
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(o.evidence.contains("signed by the cluster CA"), "{o:?}");
        assert!(!o.evidence.contains("PRIVATE KEY"), "{o:?}");

        let other = ca("other-cluster-ca");
        let d = host(
            BOOTSTRAP,
            Some((ROTATED_CERT, &serving(Some(&other), -1, 365, "10.0.0.5"))),
        );
        let o = run(&d, &expected(&cluster));
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert_eq!(o.reason, "KubeletServingCertUntrusted");
        for name in [
            "CN=system:node:node-a",
            "issuer CN=other-cluster-ca",
            "CN=kubernetes",
        ] {
            assert!(o.evidence.contains(name), "{name}: {o:?}");
        }
    }

    #[test]
    fn dates_and_names() {
        let cluster = ca("kubernetes");
        let e = expected(&cluster);
        let at = |pem: String| run(&host(BOOTSTRAP, Some((ROTATED_CERT, &pem))), &e);
        let o = at(serving(Some(&cluster), -400, -1, "10.0.0.5"));
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Fail, "KubeletServingCertExpired"),
            "{o:?}"
        );
        let o = at(serving(Some(&cluster), 2, 365, "10.0.0.5"));
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Fail, "KubeletServingCertNotYetValid"),
            "{o:?}"
        );
        // 5 days of 365 left: past the kubelet's renewal point.
        let o = at(serving(Some(&cluster), -360, 5, "10.0.0.5"));
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Warn, "KubeletServingCertExpiring"),
            "{o:?}"
        );
        let o = at(serving(Some(&cluster), -1, 365, "10.9.9.9"));
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Fail, "KubeletServingCertWrongNames"),
            "{o:?}"
        );
        assert!(
            o.evidence.contains("10.0.0.5") && o.evidence.contains("10.9.9.9"),
            "{o:?}"
        );
        let mut other_name = e.clone();
        other_name.names = vec!["ip-10-0-0-5.ec2.internal".into()];
        let o = check(
            &read(
                host(
                    BOOTSTRAP,
                    Some((ROTATED_CERT, &serving(Some(&cluster), -1, 365, "10.0.0.5"))),
                )
                .path(),
            ),
            &other_name,
            SystemTime::now(),
        );
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Warn, "KubeletServingCertWrongNames"),
            "{o:?}"
        );
    }

    #[test]
    fn self_signed_warns_and_none_is_skipped_before_the_join() {
        let cluster = ca("kubernetes");
        let d = host(
            r#"{"kind":"KubeletConfiguration"}"#,
            Some((SELF_SIGNED_CERT, &serving(None, -1, 365, "10.0.0.5"))),
        );
        let o = run(&d, &expected(&cluster));
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Warn, "KubeletServingCertSelfSigned"),
            "{o:?}"
        );
        assert!(o.fix.contains("serverTLSBootstrap"), "{o:?}");

        let d = host(BOOTSTRAP, None);
        let mut e = expected(&cluster);
        e.joined = false;
        let o = run(&d, &e);
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(o.evidence.starts_with("skipped: not joined yet"), "{o:?}");
        e.joined = true;
        let o = run(&d, &e);
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Warn, "KubeletServingCertPending"),
            "{o:?}"
        );
    }

    #[test]
    fn tls_cert_file_wins_and_drop_ins_merge_over_the_config() {
        let cluster = ca("kubernetes");
        let d = host(
            BOOTSTRAP,
            Some((
                "/etc/kubelet-tls/serving.pem",
                &serving(Some(&cluster), -1, 365, "10.0.0.5"),
            )),
        );
        let dropin = under(d.path(), Path::new(paths::KUBELET_USER_DROPIN));
        std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
        std::fs::write(&dropin, "tlsCertFile: ../../../kubelet-tls/serving.pem\n").unwrap();
        let found = read(d.path()).unwrap();
        assert_eq!(
            found.path,
            Path::new("/etc/kubernetes/kubelet/config.json.d/../../../kubelet-tls/serving.pem")
        );
        assert_eq!(
            found.kind,
            Kind::Configured(paths::KUBELET_USER_DROPIN.into())
        );
        let o = check(&Ok(found), &expected(&cluster), SystemTime::now());
        assert_eq!(o.status, Status::Ok, "{o:?}");
        std::fs::write(&dropin, "serverTLSBootstrap: yes please\n").unwrap();
        let o = run(&d, &expected(&cluster));
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Fail, "KubeletConfigUnreadable"),
            "{o:?}"
        );
    }
}
