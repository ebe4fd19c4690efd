//! `eks-node-agent bootstrap CLUSTER [flags]`: the legacy bootstrap.sh interface.

use clap::Args;

use crate::config::bootstrap_flags::{self, LegacyFlags, TranslationContext};
use crate::config::{self, parse::Document};
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
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            config::Error::BootstrapFlag(format!(
                "--containerd-config-file: cannot read {}: {e}",
                path.display()
            ))
        })?),
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
    let doc = Document {
        label: "bootstrap flags".into(),
        config: translation.config,
    };
    let loaded = config::finish(vec![doc], &["bootstrap flags".to_owned()])?;
    if args.print_config {
        print!(
            "{}",
            serde_yaml_ng::to_string(&config::redacted(&loaded.config))?
        );
        return Ok(exit::Code::Success);
    }
    super::init::run_loaded(loaded)
}
