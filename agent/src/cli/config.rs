//! `eks-node-agent config check|show`.

use clap::{Args, Subcommand, ValueEnum};

use crate::config::{self, Loaded};
use crate::exit;

/// Read, merge and validate NodeConfig sources.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the sources: exit 0, or print every problem and exit 2.
    #[command(after_help = "Examples:\n  \
        eks-node-agent config check -c file:///etc/eks-node-agent/config.d/\n  \
        eks-node-agent config check -c file://user-data.mime -c file://override.yaml")]
    Check(SourceArgs),
    /// Print the merged configuration (secrets redacted).
    #[command(after_help = "Examples:\n  \
        eks-node-agent config show -c file://examples/ec2.yaml\n  \
        eks-node-agent config show -c file://a.yaml -c file://b.yaml --explain -o json")]
    Show(ShowArgs),
}

/// The config sources, shared by every command that reads NodeConfig.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// A config source, repeatable, evaluated in order: imds://user-data or file:///path (a file
    /// or a directory of *.yaml/*.yml/*.json). Default: imds://user-data then
    /// file:///etc/eks-node-agent/config.d/
    #[arg(short = 'c', long = "config-source", value_name = "URI")]
    pub sources: Vec<String>,
}

/// `config show` options.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    sources: SourceArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
    /// Also print which document set each field.
    #[arg(long)]
    explain: bool,
}

/// Output formats for `config show`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

impl SourceArgs {
    /// Loads, merges and validates the sources. IMDS user data is fetched only when the
    /// chain names it.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let user_data = super::user_data_fetcher();
        Ok(config::load(&self.sources, user_data.as_ref())?)
    }
}

pub(crate) fn run(cmd: ConfigCommand) -> anyhow::Result<exit::Code> {
    match cmd {
        ConfigCommand::Check(args) => {
            let loaded = args.load()?;
            let warnings = match loaded.warnings.len() {
                0 => String::new(),
                1 => " (1 warning above)".to_owned(),
                n => format!(" ({n} warnings above)"),
            };
            eprintln!(
                "ok: {} document(s) merged into cluster {}{warnings}",
                loaded.documents.len(),
                loaded.config.spec.cluster.name.as_deref().unwrap_or("?")
            );
            Ok(exit::Code::Success)
        }
        ConfigCommand::Show(args) => {
            let loaded = args.sources.load()?;
            print!("{}", show(&loaded, args.output, args.explain)?);
            Ok(exit::Code::Success)
        }
    }
}

fn show(loaded: &Loaded, format: Format, explain: bool) -> anyhow::Result<String> {
    let value = config::redacted(&loaded.config);
    let provenance: std::collections::BTreeMap<String, &String> = loaded
        .provenance
        .iter()
        .map(|(path, source)| (config::secrets::shown_path(path), source))
        .collect();
    Ok(match (format, explain) {
        (Format::Json, false) => serde_json::to_string_pretty(&value)? + "\n",
        (Format::Json, true) => {
            let out = serde_json::json!({ "config": value, "sources": provenance });
            serde_json::to_string_pretty(&out)? + "\n"
        }
        (Format::Yaml, false) => serde_yaml_ng::to_string(&value)?,
        (Format::Yaml, true) => {
            let mut out = serde_yaml_ng::to_string(&value)?;
            out.push_str("# Where each field was set:\n");
            for (path, source) in &provenance {
                out.push_str(&format!("#   {path} <- {source}\n"));
            }
            out
        }
    })
}
