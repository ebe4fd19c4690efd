//! `eks-node-agent bootstrap CLUSTER [flags]`: the legacy bootstrap.sh interface.

use clap::Args;

use crate::config;
use crate::config::bootstrap_flags::{self, LegacyFlags, TranslationContext};
use crate::exit;

/// Translate legacy bootstrap.sh flags into a NodeConfig.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    eks-node-agent bootstrap my-cluster --print-config\n  \
    eks-node-agent bootstrap my-cluster --b64-cluster-ca LS0t... --apiserver-endpoint https://X.eks.amazonaws.com \\\n      \
    --kubelet-extra-args '--node-labels=team=a --register-with-taints=dedicated=a:NoSchedule'")]
pub struct BootstrapArgs {
    #[command(flatten)]
    flags: LegacyFlags,
    /// Print the translated NodeConfig and exit.
    #[arg(long)]
    print_config: bool,
    /// Region for the pause image registry (default: AWS_REGION, then AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
}

pub(crate) fn run(args: BootstrapArgs) -> anyhow::Result<exit::Code> {
    let containerd_config = match &args.flags.containerd_config_file {
        Some(path) => Some(read_containerd_config(path)?),
        None => None,
    };
    let region = args
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok());
    let ctx = TranslationContext {
        region,
        containerd_config,
    };
    let translation = bootstrap_flags::translate(&args.flags, &ctx)?;
    for note in &translation.notes {
        tracing::warn!("{note}");
    }
    let loaded = translation.load()?;
    if args.print_config {
        print!(
            "{}",
            serde_yaml_ng::to_string(&config::redacted(&loaded.config))?
        );
        return Ok(exit::Code::Success);
    }
    super::init::run_loaded(loaded)
}

/// `--containerd-config-file`: UTF-8 text of at most a config source's size.
fn read_containerd_config(path: &std::path::Path) -> Result<String, config::Error> {
    crate::model::bounded::read_to_string_capped(path, config::limits::MAX_SOURCE_BYTES).map_err(
        |source| config::Error::Read {
            source_uri: format!("--containerd-config-file {}", path.display()),
            source,
        },
    )
}
