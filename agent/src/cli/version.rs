//! `eks-node-agent version`.

use clap::Args;

use crate::exit;

/// Print the version and build information.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  eks-node-agent version\n  eks-node-agent version --json")]
pub struct VersionArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: VersionArgs) -> anyhow::Result<exit::Code> {
    let version = env!("CARGO_PKG_VERSION");
    if args.json {
        let value = serde_json::json!({
            "name": env!("CARGO_PKG_NAME"),
            "version": version,
            "arch": std::env::consts::ARCH,
            "os": std::env::consts::OS,
        });
        println!("{value}");
    } else {
        println!("eks-node-agent {version} ({})", std::env::consts::ARCH);
    }
    Ok(exit::Code::Success)
}
