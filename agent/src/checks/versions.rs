//! The `kubelet-version` and `containerd-version` checks of `status`: each binary is on the
//! search path and `--version` names a version in the supported range (the kubelet within
//! the Kubernetes skew policy of the API server's version).

use std::time::Duration;

use super::Outcome;
use super::status::{fail, ok, truncate, warn};
pub use crate::model::Version;

/// How long `kubelet --version` / `containerd --version` may run.
pub const VERSION_EXEC_TIMEOUT: Duration = Duration::from_secs(5);
/// How many minors the kubelet may be behind the API server (the skew policy, in the model).
pub use crate::model::version::MAX_KUBELET_MINORS_BEHIND;
/// Oldest supported containerd.
pub const MIN_CONTAINERD: Version = Version {
    major: 1,
    minor: 7,
    patch: 0,
};
/// Newest containerd major this agent renders configuration for (config version 2 and 3).
pub const MAX_CONTAINERD_MAJOR: u32 = 2;
/// `kubelet --version` prints `Kubernetes v1.33.5-eks-3025e55`.
pub fn parse_kubelet_version(stdout: &str) -> Option<Version> {
    Version::find_in(stdout)
}

/// `containerd --version` prints `containerd github.com/containerd/containerd/v2 v2.1.4 <commit>`
/// (or the distro's `containerd containerd.io 1.7.27 <commit>`).
pub fn parse_containerd_version(stdout: &str) -> Option<Version> {
    Version::find_in(stdout)
}

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

/// Where `program` is and the version `parse` finds in what its `--version` printed; else the
/// reason (`<prefix>NotInstalled`, `<prefix>VersionFailed`, `<prefix>VersionUnknown`) and the
/// evidence of the failure.
fn installed<'a>(
    program: &str,
    prefix: &str,
    exec: &'a Exec,
    parse: fn(&str) -> Option<Version>,
) -> Result<(&'a str, Version), (String, String)> {
    let (path, out) = match exec {
        Exec::NotFound { searched } => {
            return Err((
                format!("{prefix}NotInstalled"),
                format!("{program} is not installed (searched {searched})"),
            ));
        }
        Exec::Ran { path, output } => (path.as_str(), output),
    };
    let out = out.as_ref().map_err(|e| {
        (
            format!("{prefix}VersionFailed"),
            format!("{path} --version failed: {e}"),
        )
    })?;
    let v = parse(out).ok_or_else(|| {
        (
            format!("{prefix}VersionUnknown"),
            format!(
                "{path} --version printed no version: {}",
                truncate(out, 120)
            ),
        )
    })?;
    Ok((path, v))
}

/// The `kubelet-version` check against the API server's version (when known).
pub fn kubelet(exec: &Exec, server: Option<&Version>) -> Outcome {
    const INSTALL: &str = "install the kubelet for the cluster's Kubernetes minor version into /usr/bin (the EKS AMI ships it; on other hosts the EKS Distro or Kubernetes release binaries, or the distro's kubelet package)";
    let (path, v) = match installed("kubelet", "Kubelet", exec, parse_kubelet_version) {
        Ok(found) => found,
        Err((reason, evidence)) => return fail(&reason, evidence, INSTALL),
    };
    let Some(server) = server else {
        return warn(
            "ServerVersionUnknown",
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
    match crate::model::version::kubelet_skew(&v, server) {
        crate::model::version::KubeletSkew::NewerThanServer => fail(
            "KubeletNewerThanServer",
            format!("{evidence}: the kubelet is newer than the API server"),
            format!(
                "install a kubelet of minor {}.{} (never newer than the control plane), or upgrade the cluster first",
                server.major, server.minor
            ),
        ),
        crate::model::version::KubeletSkew::TooOld => fail(
            "KubeletTooOld",
            format!(
                "{evidence}: the kubelet is {} minor versions behind (at most {MAX_KUBELET_MINORS_BEHIND})",
                server.minor - v.minor
            ),
            format!(
                "upgrade the kubelet to a minor in {range} (preferably {}.{})",
                server.major, server.minor
            ),
        ),
        crate::model::version::KubeletSkew::Supported => ok(evidence),
    }
}

/// The `containerd-version` check: supported from [`MIN_CONTAINERD`] through major
/// [`MAX_CONTAINERD_MAJOR`].
pub fn containerd(exec: &Exec) -> Outcome {
    const INSTALL: &str = "install containerd 1.7 or 2.x (the distro's `containerd` package, or containerd.io from Docker's repository) and runc";
    let (path, v) = match installed("containerd", "Containerd", exec, parse_containerd_version) {
        Ok(found) => found,
        Err((reason, evidence)) => return fail(&reason, evidence, INSTALL),
    };
    let evidence = format!("{path}: {v}; supported {MIN_CONTAINERD} to {MAX_CONTAINERD_MAJOR}.x");
    if v < MIN_CONTAINERD {
        fail(
            "ContainerdTooOld",
            format!("{evidence}: too old"),
            "upgrade containerd to 1.7 or 2.x",
        )
    } else if v.major > MAX_CONTAINERD_MAJOR {
        warn(
            "ContainerdNewerThanKnown",
            format!("{evidence}: newer than this agent knows"),
            "use containerd 2.x, or check that the rendered /etc/containerd/config.toml is accepted",
        )
    } else {
        ok(evidence)
    }
}

/// The first executable file `program` in the directories of `search_path`.
pub fn find_program(program: &str, search_path: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(search_path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Finds `program` on `search_path` and runs `program --version` (fixed arguments, no shell).
pub async fn exec_version(program: &str, search_path: &str) -> Exec {
    let Some(path) = find_program(program, search_path) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

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
        let (git, version) = crate::checks::api_server::parse_server_version(
            br#"{"major":"1","minor":"32+","gitVersion":"v1.32.9-eks-113cf36","platform":"linux/amd64"}"#,
        )
        .unwrap();
        assert_eq!(git, "v1.32.9-eks-113cf36");
        assert_eq!(version, v(1, 32, 9));
        assert!(crate::checks::api_server::parse_server_version(b"{}").is_err());
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
