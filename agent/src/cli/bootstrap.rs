//! `eks-node-agent bootstrap CLUSTER [flags]`: the legacy bootstrap.sh flags.

use clap::Args;

use crate::exit;

/// Translate legacy bootstrap.sh flags into a NodeConfig.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The EKS cluster name.
    pub cluster: String,
}

pub(crate) fn run(_args: BootstrapArgs) -> anyhow::Result<exit::Code> {
    Ok(exit::Code::Success)
}
