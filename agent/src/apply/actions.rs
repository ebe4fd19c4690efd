//! Host actions: registering an SSM hybrid activation, turning off swap files, linking the
//! hybrid credentials file. Each runs a fixed program with fixed arguments (no shell), bounded
//! in time. (The instance-store disks are the plan's storage steps, [`super::disks`].)

use std::path::Path;
use std::time::Duration;

use super::{Error, Result};
use crate::auth::ssm::RegisterCommand;
use crate::render::HostAction;

/// How long `amazon-ssm-agent -register` may take.
pub const SSM_REGISTER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long turning off one swap file may take (it pages everything back in).
pub const SWAPOFF_TIMEOUT: Duration = Duration::from_secs(300);

/// Carries out one action on the host; returns what was done, for the report.
pub async fn run(action: &HostAction) -> Result<String> {
    match action {
        HostAction::RegisterSsm { activation, .. } => {
            let id = RegisterCommand::new(activation.clone())
                .run(SSM_REGISTER_TIMEOUT)
                .await
                .map_err(|source| Error::Register { source })?;
            tracing::info!(managed_instance_id = %id, "registered with SSM");
            Ok(format!("registered with SSM as {id}"))
        }
        HostAction::SwapOff { path } => {
            swap_off(path).await?;
            Ok(format!("swapoff {path}"))
        }
        HostAction::Symlink { link, target } => {
            symlink(Path::new(link), target)?;
            Ok(format!("linked {link} -> {target}"))
        }
    }
}

/// Points `link` at `target` atomically (a new link renamed over the old one). A directory in
/// the way is replaced only when it is empty or holds only a `credentials` file (what the
/// Roles Anywhere mode keeps there); anything else is left alone and refused.
pub fn symlink(link: &Path, target: &str) -> Result<()> {
    let refuse = |detail: String| Error::Symlink {
        link: link.to_path_buf(),
        target: target.to_owned(),
        detail,
    };
    if std::fs::read_link(link).is_ok_and(|t| t == Path::new(target)) {
        return Ok(());
    }
    let dir = link
        .parent()
        .ok_or_else(|| refuse("the link has no parent directory".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| refuse(e.to_string()))?;
    if let Ok(meta) = std::fs::symlink_metadata(link)
        && meta.is_dir()
    {
        let entries: Vec<_> = std::fs::read_dir(link)
            .map_err(|e| refuse(e.to_string()))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        if entries.iter().any(|n| n != "credentials") {
            return Err(refuse(format!(
                "{} is a directory with other files; move them away first",
                link.display()
            )));
        }
        std::fs::remove_dir_all(link).map_err(|e| refuse(e.to_string()))?;
    }
    let temp = dir.join(format!(
        ".{}.eks-node-agent-link",
        link.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp).map_err(|e| refuse(e.to_string()))?;
    std::fs::rename(&temp, link).map_err(|e| refuse(e.to_string()))?;
    Ok(())
}

/// `swapoff PATH`, bounded by [`SWAPOFF_TIMEOUT`].
async fn swap_off(path: &str) -> Result<()> {
    tracing::info!(path, "turning off swap (kubelet failSwapOn)");
    let failed = |source| Error::SwapOff {
        path: path.to_owned(),
        source,
    };
    let status = tokio::time::timeout(
        SWAPOFF_TIMEOUT,
        tokio::process::Command::new("swapoff")
            .arg(path)
            .kill_on_drop(true)
            .status(),
    )
    .await
    .map_err(|_| {
        failed(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("swapoff did not finish within {SWAPOFF_TIMEOUT:?}"),
        ))
    })?
    .map_err(failed)?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(std::io::Error::other(format!(
            "swapoff exited with {status}"
        ))))
    }
}
