//! The IO side of the checks: kubelet healthz, the VPC CNI, storage and
//! the kubelet client certificate. Each is a few lines around a pure verdict function.

use std::path::Path;
use std::time::Duration;

use super::{Facts, Outcome};

/// Free space or inodes under this fraction of the filesystem is a problem.
pub const STORAGE_FREE_MIN_RATIO: f64 = 0.05;
/// A kubelet client certificate expiring within this window is a problem.
pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(24 * 60 * 60);

/// GET kubelet's healthz; healthy when it answers 200 `ok`.
pub async fn kubelet(http: &reqwest::Client, url: &str) -> Outcome {
    match http.get(url).send().await {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            if status.is_success() && body.trim() == "ok" {
                Outcome::ok("kubelet healthz ok")
            } else {
                let body: String = body.chars().take(200).collect();
                Outcome::fail(
                    "KubeletUnhealthy",
                    format!("{url} answered {status}: {body}"),
                )
            }
        }
        Err(e) => Outcome::fail("KubeletUnreachable", format!("{url}: {e}")),
    }
}

/// ipamd's `/v1/enis` answer, the fields we use.
#[derive(Debug, serde::Deserialize)]
pub struct EniInfos {
    /// IPs on attached ENIs available to pods.
    #[serde(rename = "TotalIPs")]
    pub total_ips: u64,
    /// IPs assigned to pods.
    #[serde(rename = "AssignedIPs")]
    pub assigned_ips: u64,
}

/// Pod IPs assigned at or above this fraction of ipamd's pool is a warning (an event), not
/// a condition: ipamd may still attach another ENI, and pods are still being placed.
pub const CNI_IPS_WARN_RATIO: f64 = 0.9;

/// The verdict on ipamd's numbers: no free IP left is `IPAMDNoIPs` (ipamd may still attach an
/// ENI, so the catalog makes it a Warning, as the monitoring agent does);
/// [`CNI_IPS_WARN_RATIO`] or more assigned is a `PodIPsNearlyExhausted` warning, whose
/// evidence (the condition's message) is the count and whose message (the event's note) adds
/// how many are free.
pub fn evaluate_ips(infos: &EniInfos) -> Outcome {
    let facts = Facts {
        cni_total_ips: Some(infos.total_ips),
        cni_assigned_ips: Some(infos.assigned_ips),
        ..Facts::default()
    };
    let msg = format!(
        "{} of {} pod IPs assigned",
        infos.assigned_ips, infos.total_ips
    );
    if infos.total_ips == 0 || infos.assigned_ips >= infos.total_ips {
        Outcome::fail("IPAMDNoIPs", msg).with_facts(facts)
    } else if infos.assigned_ips as f64 >= infos.total_ips as f64 * CNI_IPS_WARN_RATIO {
        Outcome::warn(
            "PodIPsNearlyExhausted",
            format!(
                "{} of {} pod IPs assigned ({} free)",
                infos.assigned_ips,
                infos.total_ips,
                infos.total_ips - infos.assigned_ips
            ),
        )
        .with_evidence(msg)
        .with_facts(facts)
    } else {
        Outcome::ok(msg).with_facts(facts)
    }
}

/// True when a CNI conflist names the `aws-cni` plugin.
pub fn conflist_has_aws_cni(text: &str) -> bool {
    super::network::plugin_types(text)
        .iter()
        .any(|t| t == "aws-cni")
}

/// Whether the VPC CNI is installed on this node: its conflist, or a file the aws-node pod
/// leaves on the host (the `aws-cni` plugin binary, ipamd's state directory).
pub fn vpc_cni_installed(conflist: &Path, markers: &[std::path::PathBuf]) -> bool {
    conflist.exists() || markers.iter().any(|m| m.exists())
}

/// The VPC CNI: its conflist, ipamd introspection and ipamd metrics; nothing to check on a
/// node that does not run it (another CNI: the network check judges it).
pub async fn vpc_cni(
    http: &reqwest::Client,
    conflist: &Path,
    markers: &[std::path::PathBuf],
    introspection: &str,
    metrics: &str,
) -> Outcome {
    if !vpc_cni_installed(conflist, markers) {
        return Outcome::ok("the VPC CNI is not installed: its checks do not apply");
    }
    // A small local file: read inline (tokio::fs would use a blocking-pool thread).
    let config = match std::fs::read_to_string(conflist) {
        Ok(text) if conflist_has_aws_cni(&text) => None,
        Ok(_) => Some(Outcome::fail(
            "VpcCniConfigInvalid",
            format!("{} does not name the aws-cni plugin", conflist.display()),
        )),
        Err(e) => {
            return Outcome::fail(
                "VpcCniConfigMissing",
                format!(
                    "the VPC CNI is installed but {} is missing ({e}): ipamd has not written it",
                    conflist.display()
                ),
            );
        }
    };
    let ipamd = ipamd(http, introspection, metrics).await;
    match config {
        Some(c) => Outcome::combine(vec![c, ipamd]),
        None => ipamd,
    }
}

/// ipamd's introspection and metrics endpoints.
async fn ipamd(http: &reqwest::Client, introspection: &str, metrics: &str) -> Outcome {
    let url = format!("{}/v1/enis", introspection.trim_end_matches('/'));
    let infos = match http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        Ok(resp) => match resp.json::<EniInfos>().await {
            Ok(i) => i,
            Err(e) => return Outcome::fail("IpamdBadAnswer", format!("{url}: {e}")),
        },
        Err(e) => return Outcome::fail("IPAMDNotRunning", format!("{url}: {e}")),
    };
    let ips = evaluate_ips(&infos);
    match http
        .get(metrics)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        Ok(_) => ips,
        Err(e) => Outcome::combine(vec![
            Outcome::fail("IpamdMetricsUnreachable", format!("{metrics}: {e}")),
            ips,
        ]),
    }
}

/// One directory's filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirFs {
    /// Mounted read-only.
    pub readonly: bool,
    /// Fraction of space available to unprivileged users.
    pub avail_ratio: f64,
    /// Fraction of inodes free (1.0 when the filesystem has no inode limit).
    pub inodes_free_ratio: f64,
}

/// The verdict over each directory's filesystem: every problem of every directory.
pub fn evaluate_storage(dirs: &[(String, DirFs)]) -> Outcome {
    let mut found = Vec::new();
    for (dir, fs) in dirs {
        if fs.readonly {
            found.push(Outcome::fail(
                "FilesystemReadOnly",
                format!("{dir} is on a read-only filesystem"),
            ));
        }
        if fs.avail_ratio < STORAGE_FREE_MIN_RATIO {
            found.push(Outcome::fail(
                "DiskSpaceLow",
                format!("{dir}: {:.1}% space available", fs.avail_ratio * 100.0),
            ));
        }
        if fs.inodes_free_ratio < STORAGE_FREE_MIN_RATIO {
            found.push(Outcome::fail(
                "InodesLow",
                format!("{dir}: {:.1}% inodes free", fs.inodes_free_ratio * 100.0),
            ));
        }
    }
    if found.is_empty() {
        return Outcome::ok(format!(
            "{} directories writable with space left",
            dirs.len()
        ));
    }
    Outcome::combine(found)
}

/// statfs each directory that exists (a directory not created yet is not a problem).
pub fn storage(dirs: &[std::path::PathBuf]) -> Outcome {
    let mut seen = Vec::new();
    for dir in dirs.iter().filter(|d| d.exists()) {
        match nix::sys::statfs::statfs(dir.as_path()) {
            Ok(st) => {
                let ratio = |part: u64, whole: u64| {
                    if whole == 0 {
                        1.0
                    } else {
                        part as f64 / whole as f64
                    }
                };
                seen.push((
                    dir.display().to_string(),
                    DirFs {
                        readonly: st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
                        avail_ratio: ratio(st.blocks_available(), st.blocks()),
                        inodes_free_ratio: ratio(st.files_free(), st.files()),
                    },
                ));
            }
            Err(e) => {
                return Outcome::combine(vec![
                    Outcome::fail("FilesystemError", format!("statfs {}: {e}", dir.display())),
                    evaluate_storage(&seen),
                ]);
            }
        }
    }
    evaluate_storage(&seen)
}

/// notAfter (seconds since the epoch) of the first certificate in a PEM bundle; the private
/// key that the kubelet keeps in the same file is skipped and never read into a message.
pub fn cert_not_after(pem: &str) -> Option<i64> {
    use x509_cert::der::DecodePem as _;
    let begin = pem.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = pem[begin..].find(end_marker)? + begin + end_marker.len();
    let cert = x509_cert::Certificate::from_pem(&pem[begin..end]).ok()?;
    let not_after = cert.tbs_certificate.validity.not_after.to_unix_duration();
    i64::try_from(not_after.as_secs()).ok()
}

/// The verdict on a certificate's expiry at `now` (seconds since the epoch).
pub fn evaluate_cert(not_after: i64, now: i64) -> Outcome {
    let facts = Facts {
        cert_not_after_unix: Some(not_after),
        ..Facts::default()
    };
    let left = not_after - now;
    if left <= 0 {
        Outcome::fail(
            "KubeletCertificateExpired",
            format!("expired {}s ago", -left),
        )
        .with_facts(facts)
    } else if left < CERT_EXPIRY_WARNING.as_secs() as i64 {
        Outcome::fail("KubeletCertificateExpiring", format!("expires in {left}s")).with_facts(facts)
    } else {
        Outcome::ok(format!("valid for {}h", left / 3600)).with_facts(facts)
    }
}

/// Reads the kubelet client certificate and judges its expiry.
pub fn credentials(cert: &Path, now: i64) -> Outcome {
    match std::fs::read_to_string(cert) {
        Ok(pem) => match cert_not_after(&pem) {
            Some(not_after) => evaluate_cert(not_after, now),
            None => Outcome::fail(
                "KubeletCertificateInvalid",
                format!("{} holds no readable certificate", cert.display()),
            ),
        },
        Err(e) => Outcome::fail(
            "KubeletCertificateMissing",
            format!("{}: {e}", cert.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn ipamd_numbers() {
        assert!(
            evaluate_ips(&EniInfos {
                total_ips: 29,
                assigned_ips: 3
            })
            .is_healthy()
        );
        let full = evaluate_ips(&EniInfos {
            total_ips: 29,
            assigned_ips: 29,
        });
        assert_eq!(full.reason, "IPAMDNoIPs");
        assert_eq!(full.facts.cni_total_ips, Some(29));
        assert_eq!(
            full.status,
            Status::Fail,
            "exhausted is a problem, not a warning"
        );
        let nearly = evaluate_ips(&EniInfos {
            total_ips: 29,
            assigned_ips: 27,
        });
        assert!(nearly.is_healthy());
        assert_eq!(nearly.status, Status::Warn);
        assert_eq!(nearly.reason, "PodIPsNearlyExhausted");
        assert!(nearly.message.contains("2 free"), "{}", nearly.message);
        assert_eq!(nearly.evidence, "27 of 29 pod IPs assigned");
        let below = evaluate_ips(&EniInfos {
            total_ips: 29,
            assigned_ips: 26,
        });
        assert_eq!(below.status, Status::Ok, "26/29 is under 90%");
    }

    #[test]
    fn conflist_needs_aws_cni() {
        assert!(conflist_has_aws_cni(
            r#"{"cniVersion":"0.4.0","plugins":[{"type":"aws-cni"},{"type":"portmap"}]}"#
        ));
        assert!(!conflist_has_aws_cni(r#"{"plugins":[{"type":"bridge"}]}"#));
        assert!(!conflist_has_aws_cni("not json"));
    }

    #[test]
    fn storage_verdicts() {
        let ok = DirFs {
            readonly: false,
            avail_ratio: 0.5,
            inodes_free_ratio: 0.5,
        };
        assert!(evaluate_storage(&[("/a".into(), ok)]).is_healthy());
        let ro = DirFs {
            readonly: true,
            ..ok
        };
        assert_eq!(
            evaluate_storage(&[("/a".into(), ok), ("/b".into(), ro)]).reason,
            "FilesystemReadOnly"
        );
        let full = DirFs {
            avail_ratio: 0.01,
            ..ok
        };
        assert_eq!(
            evaluate_storage(&[("/a".into(), full)]).reason,
            "DiskSpaceLow"
        );
        let inodes = DirFs {
            inodes_free_ratio: 0.0,
            ..ok
        };
        assert_eq!(
            evaluate_storage(&[("/a".into(), inodes)]).reason,
            "InodesLow"
        );
    }

    #[test]
    fn cert_expiry_verdicts() {
        let now = 1_000_000;
        assert!(evaluate_cert(now + 48 * 3600, now).is_healthy());
        assert_eq!(
            evaluate_cert(now + 60, now).reason,
            "KubeletCertificateExpiring"
        );
        assert_eq!(
            evaluate_cert(now - 1, now).reason,
            "KubeletCertificateExpired"
        );
    }

    #[test]
    fn storage_of_a_temp_dir_is_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let out = storage(&[dir.path().to_path_buf(), dir.path().join("missing")]);
        assert!(out.is_healthy(), "{out:?}");
    }
}
