//! When the node's IAM credentials stop working: the credentials the kubelet's exec plugin
//! (`eks-node-agent token`) presents to the API server. Past that time the node can no longer
//! authenticate, so the daemon exports it and warns before it passes.
//!
//! Where the time comes from depends on how the node gets credentials:
//!
//! - **EC2 instance role**: the `Expiration` IMDS serves with the role's credentials. EC2 makes
//!   new credentials available at least five minutes before the old ones expire, so less than
//!   five minutes left means rotation has stopped.
//! - **SSM hybrid activation**: the SSM agent rewrites its credentials file at each rotation and
//!   writes no expiry into it; SSM's credentials are valid for one hour, so the file's last
//!   modification plus one hour is when the credentials in it expire at the latest.
//! - **IAM Roles Anywhere**: every `credentials` call creates a new session from the node's
//!   certificate, so the credentials last as long as the certificate: its notAfter.
//!
//! The daemon never keeps or logs the secrets: IMDS's answer is parsed for its `Code` and
//! `Expiration` only, and the SSM file is only `stat`ed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Facts, Outcome};
use crate::facts::imds::{Imds, RetryPolicy};

/// SSM hybrid activations' credentials are valid for one hour (EKS Hybrid Nodes best
/// practices, "Host credentials through network disconnections").
pub const SSM_CREDENTIALS_LIFETIME: Duration = Duration::from_secs(3600);
/// EC2 offers new instance-role credentials at least this long before the old ones expire.
pub const INSTANCE_ROLE_ROTATION_MARGIN: Duration = Duration::from_secs(5 * 60);
/// A Roles Anywhere certificate is replaced by hand or by the site's PKI: warn a week ahead.
pub const CERTIFICATE_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);
/// IMDS reads by the check: a few quick attempts inside the check's own timeout.
const IMDS_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_millis(500),
    attempt_timeout: Duration::from_secs(1),
    total_deadline: Duration::from_secs(4),
};
const ROLE_LIST: &str = "/latest/meta-data/iam/security-credentials/";

/// Where the node's IAM credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Not watched (not EC2 and not a hybrid node, or turned off).
    None,
    /// The EC2 instance role, through IMDSv2.
    InstanceRole,
    /// The credentials file the SSM agent rotates.
    SsmFile(PathBuf),
    /// The IAM Roles Anywhere certificate.
    RolesAnywhereCertificate(PathBuf),
}

impl Source {
    /// The `source` label of `eksnode_iam_credentials_expiry_timestamp_seconds`.
    pub fn label(&self) -> &'static str {
        match self {
            Source::None => "none",
            Source::InstanceRole => "instance-role",
            Source::SsmFile(_) => "ssm-credentials-file",
            Source::RolesAnywhereCertificate(_) => "roles-anywhere-certificate",
        }
    }

    /// Parses `--iam-credentials`: `auto` gives `Ok(None)` (decided by [`detect`]), else
    /// `none`, `instance-role`, `ssm[=PATH]`, `roles-anywhere[=CERT]`. A missing path is the
    /// default one (the SSM agent's file; the certificate named by the hybrid AWS config, else
    /// nodeadm's default).
    pub fn parse(
        value: &str,
        env: &crate::auth::credentials::Env,
    ) -> Result<Option<Source>, String> {
        let (kind, path) = match value.split_once('=') {
            Some((k, p)) if !p.is_empty() => (k, Some(PathBuf::from(p))),
            Some((k, _)) => return Err(format!("{k}= needs a path after '='")),
            None => (value, None),
        };
        match (kind, path) {
            ("auto", None) => Ok(None),
            ("none", None) => Ok(Some(Source::None)),
            ("instance-role", None) => Ok(Some(Source::InstanceRole)),
            ("ssm", p) => {
                Ok(Some(Source::SsmFile(p.unwrap_or_else(|| {
                    crate::auth::ssm::credentials_file(env)
                }))))
            }
            ("roles-anywhere", p) => Ok(Some(Source::RolesAnywhereCertificate(
                p.unwrap_or_else(|| roles_anywhere_certificate(env)),
            ))),
            (k @ ("auto" | "none" | "instance-role"), Some(_)) => Err(format!("{k} takes no path")),
            (other, _) => Err(format!(
                "unknown source {other:?}; use auto, none, instance-role, ssm[=PATH] or roles-anywhere[=CERT]"
            )),
        }
    }
}

/// The certificate of a Roles Anywhere node: the `--certificate` of the `credential_process`
/// that `init` wrote into the hybrid AWS config (`AWS_CONFIG_FILE`, else its default path),
/// else nodeadm's default certificate path.
pub fn roles_anywhere_certificate(env: &crate::auth::credentials::Env) -> PathBuf {
    configured_certificate(env)
        .unwrap_or_else(|| PathBuf::from(crate::model::paths::ROLES_ANYWHERE_CERTIFICATE))
}

/// The certificate the hybrid AWS config's `credential_process` names, if any.
fn configured_certificate(env: &crate::auth::credentials::Env) -> Option<PathBuf> {
    let path =
        env("AWS_CONFIG_FILE").unwrap_or_else(|| crate::model::paths::HYBRID_AWS_CONFIG.to_owned());
    let text = std::fs::read_to_string(path).ok()?;
    crate::render::hybrid::certificate_of(&text)
}

/// `--iam-credentials auto`: on a hybrid node, Roles Anywhere when the hybrid AWS config runs
/// a `credential_process` with a certificate, else SSM; elsewhere the instance role when the
/// firmware says this is EC2 (`sys` is sysfs) and IMDS is not turned off; else nothing, so
/// no request ever leaves for a link-local address on a host that is not EC2.
pub fn detect(hybrid: bool, sys: &Path, env: &crate::auth::credentials::Env) -> Source {
    if hybrid {
        return match configured_certificate(env) {
            Some(cert) => Source::RolesAnywhereCertificate(cert),
            None => Source::SsmFile(crate::auth::ssm::credentials_file(env)),
        };
    }
    let imds_off =
        env(crate::facts::imds::ENV_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is_ec2(sys) && !imds_off {
        Source::InstanceRole
    } else {
        Source::None
    }
}

/// Whether the firmware identifies the host as an EC2 instance: the DMI system vendor of
/// Nitro instances, or the Xen hypervisor UUID prefix of older ones.
pub fn is_ec2(sys: &Path) -> bool {
    let read = |p: &str| std::fs::read_to_string(sys.join(p)).unwrap_or_default();
    read("class/dmi/id/sys_vendor").trim() == "Amazon EC2"
        || read("hypervisor/uuid")
            .trim()
            .to_ascii_lowercase()
            .starts_with("ec2")
}

/// The IMDS client the check uses: short retries, so a read ends inside the check's timeout.
pub fn imds_client() -> Result<Imds, crate::facts::imds::Error> {
    Ok(Imds::new()?.with_policy(IMDS_POLICY))
}

/// Expiry of the node's IAM credentials, seconds since the epoch, by source label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// [`Source::label`].
    pub source: &'static str,
    /// Seconds since the epoch.
    pub at_unix: i64,
}

/// Reads the expiry from `source` and judges it at `now` (seconds since the epoch).
/// `None` when nothing is watched.
pub async fn check(source: &Source, imds: Option<&Imds>, now: i64) -> Option<Outcome> {
    let found = match source {
        Source::None => return None,
        Source::InstanceRole => match imds {
            Some(imds) => instance_role_expiry(imds).await,
            None => Err((
                "InstanceRoleUnreadable",
                "IMDS is turned off (AWS_EC2_METADATA_DISABLED); the instance role's expiry is not watched".into(),
            )),
        },
        Source::SsmFile(path) => ssm_file_expiry(path),
        Source::RolesAnywhereCertificate(path) => certificate_expiry(path),
    };
    Some(match found {
        Ok(at) => evaluate(source, at, now),
        Err((reason, message)) => Outcome::fail(reason, message),
    })
}

/// The verdict on credentials of `source` expiring at `at` (both seconds since the epoch).
pub fn evaluate(source: &Source, at: i64, now: i64) -> Outcome {
    let facts = Facts {
        iam_expiry: Some(Expiry {
            source: source.label(),
            at_unix: at,
        }),
        ..Facts::default()
    };
    let what = match source {
        Source::InstanceRole => "instance role credentials from IMDS",
        Source::SsmFile(_) => "SSM credentials (file rotated + 1 h)",
        Source::RolesAnywhereCertificate(_) => "IAM Roles Anywhere certificate",
        Source::None => "IAM credentials",
    };
    let warn_before = match source {
        Source::InstanceRole => INSTANCE_ROLE_ROTATION_MARGIN,
        Source::RolesAnywhereCertificate(_) => CERTIFICATE_WARNING,
        // SSM does not publish when it rotates within the hour: only expiry is a problem.
        Source::SsmFile(_) | Source::None => Duration::ZERO,
    };
    let left = at - now;
    let outcome = if left <= 0 {
        Outcome::fail(
            "IamCredentialsExpired",
            format!("{what} expired {}s ago; {}", -left, fix(source)),
        )
    } else if left < warn_before.as_secs() as i64 {
        Outcome::fail(
            "IamCredentialsExpiring",
            format!("{what} expire in {left}s; {}", fix(source)),
        )
    } else {
        Outcome::ok(format!("{what} valid for {}m", left / 60))
    };
    outcome.with_facts(facts)
}

fn fix(source: &Source) -> String {
    match source {
        Source::InstanceRole => {
            "EC2 has stopped rotating them: check the instance profile (aws ec2 describe-iam-instance-profile-associations)".into()
        }
        Source::SsmFile(p) => format!(
            "the SSM agent has not rotated {} within the hour: check `systemctl status amazon-ssm-agent` and its connection to the SSM endpoint (restarting it forces a refresh)",
            p.display()
        ),
        Source::RolesAnywhereCertificate(p) => format!(
            "issue a new certificate for the trust anchor and replace {}",
            p.display()
        ),
        Source::None => String::new(),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleDocument {
    code: String,
    #[serde(default)]
    expiration: Option<String>,
}

/// Why an expiry could not be read: a CamelCase reason and a message.
type Problem = (&'static str, String);

async fn instance_role_expiry(imds: &Imds) -> Result<i64, Problem> {
    let unreadable = |e: &dyn std::fmt::Display| {
        (
            "InstanceRoleUnreadable",
            format!("cannot read the instance role from IMDS: {e}"),
        )
    };
    let roles = match imds.get_text_optional(ROLE_LIST).await {
        Ok(Some(list)) => list,
        Ok(None) => {
            return Err((
                "InstanceRoleMissing",
                "the instance has no IAM instance profile, so the kubelet cannot authenticate: attach the node role's instance profile".into(),
            ));
        }
        Err(e) => return Err(unreadable(&crate::model::text::error_chain(&e))),
    };
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(unreadable(&"the role list is empty"));
    };
    if role.contains('/') {
        return Err(unreadable(&format!("unexpected role name {role:?}")));
    }
    let body = imds
        .get(&format!("{ROLE_LIST}{role}"))
        .await
        .map_err(|e| unreadable(&crate::model::text::error_chain(&e)))?;
    // The body holds the secret key and session token: only Code and Expiration are kept, and
    // a parse error is reported without the body.
    let doc: RoleDocument = serde_json::from_slice(&body).map_err(|_| {
        unreadable(&format!(
            "the credentials of role {role} are not the expected JSON"
        ))
    })?;
    drop(body);
    if doc.code != "Success" {
        return Err((
            "InstanceRoleCredentialsError",
            format!("IMDS reports Code {:?} for role {role}", doc.code),
        ));
    }
    doc.expiration
        .as_deref()
        .and_then(crate::model::text::parse_rfc3339)
        .and_then(unix)
        .ok_or_else(|| {
            unreadable(&format!(
                "the credentials of role {role} have no valid Expiration"
            ))
        })
}

fn ssm_file_expiry(path: &Path) -> Result<i64, Problem> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| {
            (
                "SsmCredentialsMissing",
                format!(
                    "{}: {e}; the SSM agent writes it after a hybrid activation (`eks-node-agent init` registers it)",
                    path.display()
                ),
            )
        })?;
    unix(modified + SSM_CREDENTIALS_LIFETIME).ok_or_else(|| {
        (
            "SsmCredentialsMissing",
            format!("{}: modification time out of range", path.display()),
        )
    })
}

fn certificate_expiry(path: &Path) -> Result<i64, Problem> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        (
            "RolesAnywhereCertificateMissing",
            format!("{}: {e}", path.display()),
        )
    })?;
    super::probes::cert_not_after(&pem).ok_or_else(|| {
        (
            "RolesAnywhereCertificateInvalid",
            format!("{} holds no readable certificate", path.display()),
        )
    })
}

fn unix(t: SystemTime) -> Option<i64> {
    i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> Box<crate::auth::credentials::Env> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Box::new(move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn flag_values() {
        let env = env_of(&[("AWS_SHARED_CREDENTIALS_FILE", "/x/creds")]);
        assert_eq!(Source::parse("auto", &env), Ok(None));
        assert_eq!(Source::parse("none", &env), Ok(Some(Source::None)));
        assert_eq!(
            Source::parse("instance-role", &env),
            Ok(Some(Source::InstanceRole))
        );
        assert_eq!(
            Source::parse("ssm", &env),
            Ok(Some(Source::SsmFile("/x/creds".into())))
        );
        assert_eq!(
            Source::parse("ssm=/y", &env),
            Ok(Some(Source::SsmFile("/y".into())))
        );
        assert_eq!(
            Source::parse("roles-anywhere=/c.pem", &env),
            Ok(Some(Source::RolesAnywhereCertificate("/c.pem".into())))
        );
        for bad in ["imds", "ssm=", "none=/x", ""] {
            assert!(Source::parse(bad, &env).is_err(), "{bad}");
        }
    }

    #[test]
    fn thresholds_per_source() {
        let now = 1_000_000;
        let role = Source::InstanceRole;
        assert!(evaluate(&role, now + 3600, now).is_healthy());
        assert_eq!(
            evaluate(&role, now + 60, now).reason,
            "IamCredentialsExpiring"
        );
        assert_eq!(
            evaluate(&role, now - 1, now).reason,
            "IamCredentialsExpired"
        );
        let ssm = Source::SsmFile("/root/.aws/credentials".into());
        // No rotation schedule is published for SSM: only expiry is a problem.
        assert!(evaluate(&ssm, now + 60, now).is_healthy());
        let out = evaluate(&ssm, now - 5, now);
        assert_eq!(out.reason, "IamCredentialsExpired");
        assert!(out.message.contains("amazon-ssm-agent"), "{}", out.message);
        let cert = Source::RolesAnywhereCertificate("/etc/iam/pki/server.pem".into());
        assert_eq!(
            evaluate(&cert, now + 3 * 24 * 3600, now).reason,
            "IamCredentialsExpiring"
        );
        assert!(evaluate(&cert, now + 30 * 24 * 3600, now).is_healthy());
        assert_eq!(
            evaluate(&cert, now, now).facts.iam_expiry,
            Some(Expiry {
                source: "roles-anywhere-certificate",
                at_unix: now
            })
        );
    }

    #[test]
    fn ec2_is_recognised_from_firmware_only() {
        let sys = tempfile::tempdir().unwrap();
        assert!(!is_ec2(sys.path()));
        std::fs::create_dir_all(sys.path().join("class/dmi/id")).unwrap();
        std::fs::write(sys.path().join("class/dmi/id/sys_vendor"), "QEMU\n").unwrap();
        assert!(!is_ec2(sys.path()));
        std::fs::write(sys.path().join("class/dmi/id/sys_vendor"), "Amazon EC2\n").unwrap();
        assert!(is_ec2(sys.path()));
        let xen = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(xen.path().join("hypervisor")).unwrap();
        std::fs::write(
            xen.path().join("hypervisor/uuid"),
            "ec2e1916-9099-7caf-fd21-012345abcdef\n",
        )
        .unwrap();
        assert!(is_ec2(xen.path()));
        let env = env_of(&[("AWS_EC2_METADATA_DISABLED", "true")]);
        assert_eq!(detect(false, xen.path(), &env), Source::None);
        assert_eq!(
            detect(false, xen.path(), &env_of(&[])),
            Source::InstanceRole
        );
        assert_eq!(
            detect(false, sys.path().join("nope").as_path(), &env_of(&[])),
            Source::None
        );
    }

    #[test]
    fn hybrid_nodes_pick_roles_anywhere_from_the_aws_config_else_ssm() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let config_s = config.display().to_string();
        let env = env_of(&[
            ("AWS_CONFIG_FILE", &config_s),
            ("AWS_SHARED_CREDENTIALS_FILE", "/var/ssm/creds"),
        ]);
        assert_eq!(
            detect(true, dir.path(), &env),
            Source::SsmFile("/var/ssm/creds".into())
        );
        std::fs::write(
            &config,
            "[default]\nregion = us-west-2\ncredential_process = /usr/bin/eks-node-agent credentials --certificate \"/etc/my pki/node.pem\" --private-key /k\n",
        )
        .unwrap();
        assert_eq!(
            detect(true, dir.path(), &env),
            Source::RolesAnywhereCertificate("/etc/my pki/node.pem".into())
        );
    }
}
