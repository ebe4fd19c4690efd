//! Host actions: registering an SSM hybrid activation and turning off swap files. Each runs a
//! fixed program with fixed arguments (no shell), bounded in time.

use std::time::Duration;

use super::{Error, Result};
use crate::auth::ssm::RegisterCommand;
use crate::render::HostAction;

/// How long `amazon-ssm-agent -register` may take.
pub const SSM_REGISTER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long turning off one swap file may take (it pages everything back in).
pub const SWAPOFF_TIMEOUT: Duration = Duration::from_secs(300);

/// Carries out one action; returns what was done, for the report.
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
    }
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
