//! `eks-node-agent config check|show`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::config::{self, Loaded};
use crate::exit;
use crate::model::version::NEWEST_KNOWN_KUBELET;
use crate::model::{Discovered, Version};

/// Read, merge and validate NodeConfig sources.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the sources: exit 0, or print every problem and exit 2.
    #[command(after_help = "Examples:\n  \
        eks-node-agent config check -c file:///etc/eks-node-agent/config.d/\n  \
        eks-node-agent config check --strict -c file://user-data.mime -c file://override.yaml")]
    Check(CheckArgs),
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

/// `config check` options.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    sources: SourceArgs,
    /// Warnings (unknown feature gates or disabledMounts names, which nodeadm ignores) are
    /// errors: exit 2.
    #[arg(long)]
    strict: bool,
}

/// `config show` options.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    sources: SourceArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
    /// Also print which document set each field, and how the derived values (max pods, node
    /// name, cluster DNS, each kubelet setting...) came about: from the state `init` left this
    /// boot, or from `--facts`.
    #[arg(long)]
    explain: bool,
    /// Explain the derived values for these facts instead of this node's (a YAML file of what
    /// discovery finds, as the golden scenarios of the tests write it).
    #[arg(long, value_name = "FILE", requires = "explain")]
    facts: Option<PathBuf>,
    /// With `--facts`: the kubelet's version (else the facts' `kubeletVersion`, else the newest
    /// the agent knows).
    #[arg(long, value_name = "VERSION", requires = "facts", value_parser = parse_version)]
    kubelet_version: Option<Version>,
}

fn parse_version(text: &str) -> Result<Version, String> {
    Version::parse_word(text).ok_or_else(|| {
        format!("\"{text}\" is not a Kubernetes version; expected MAJOR.MINOR[.PATCH], e.g. 1.33")
    })
}

/// The most bytes of a `--facts` file read.
const MAX_FACTS_BYTES: u64 = 1024 * 1024;

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
            let loaded = args.sources.load()?;
            if args.strict {
                loaded.check_warnings(true)?;
            }
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!(
                "ok: {} document(s) merged into cluster {}{}",
                loaded.documents.len(),
                loaded.config.spec.cluster.name.as_deref().unwrap_or("?"),
                match loaded.warnings.len() {
                    0 => String::new(),
                    n => format!(" with {n} warning(s)"),
                }
            );
            Ok(exit::Code::Success)
        }
        ConfigCommand::Show(args) => {
            let loaded = args.sources.load()?;
            let derived = if args.explain {
                Some(derived(
                    &loaded,
                    args.facts.as_deref(),
                    args.kubelet_version,
                )?)
            } else {
                None
            };
            print!("{}", show(&loaded, args.output, derived.as_ref())?);
            Ok(exit::Code::Success)
        }
    }
}

/// How the derived values came about, or why that is not known.
#[derive(Debug)]
enum Derived {
    /// Value name -> how it came about, and kubelet setting -> its source.
    Known {
        values: BTreeMap<String, String>,
        kubelet: BTreeMap<String, String>,
        from: String,
    },
    /// Why there is nothing to show.
    Unknown(String),
}

/// The derived values from `--facts`, else from the state `init` left this boot.
fn derived(
    loaded: &Loaded,
    facts: Option<&std::path::Path>,
    kubelet_version: Option<Version>,
) -> anyhow::Result<Derived> {
    use crate::apply::state::{self, InitState};
    if let Some(path) = facts {
        use std::io::Read as _;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FACTS_BYTES).read_to_string(&mut text))
            .map_err(|e| crate::exit::BadInput(format!("--facts {}: {e}", path.display())))?;
        let found: Discovered = serde_yaml_ng::from_str(&text)
            .map_err(|e| crate::exit::BadInput(format!("--facts {}: {e}", path.display())))?;
        let kubelet = match kubelet_version.or(found.host.kubelet_version) {
            Some(v) => (
                v,
                format!("{v}: --kubelet-version or the facts' kubeletVersion"),
            ),
            None => (
                NEWEST_KNOWN_KUBELET,
                format!(
                    "{NEWEST_KNOWN_KUBELET}: assumed (the facts name no kubeletVersion; the newest version the agent knows)"
                ),
            ),
        };
        let node = super::init::resolve(loaded, found, kubelet)?;
        return Ok(Derived::Known {
            kubelet: super::init::kubelet_sources(loaded, &node),
            values: node.explain,
            from: format!("the facts in {}", path.display()),
        });
    }
    let root = crate::apply::Root::host();
    let found = InitState::load(&root).and_then(|s| {
        s.check(
            &root,
            &state::config_sha256(&loaded.config),
            &state::boot_id(),
        )
        .map(|()| s)
    });
    Ok(match found {
        Ok(s) => Derived::Known {
            values: s.explain,
            kubelet: s.kubelet_settings,
            from: format!(
                "what init resolved this boot ({})",
                crate::model::paths::INIT_STATE
            ),
        },
        Err(why) => Derived::Unknown(format!(
            "{why}; run `eks-node-agent init` on this node, or pass --facts FILE"
        )),
    })
}

fn show(loaded: &Loaded, format: Format, derived: Option<&Derived>) -> anyhow::Result<String> {
    let value = config::redacted(&loaded.config);
    let provenance: std::collections::BTreeMap<String, &String> = loaded
        .provenance
        .iter()
        .map(|(path, source)| (config::secrets::shown_path(path), source))
        .collect();
    Ok(match (format, derived) {
        (Format::Json, None) => serde_json::to_string_pretty(&value)? + "\n",
        (Format::Json, Some(derived)) => {
            let mut out = serde_json::json!({ "config": value, "sources": provenance });
            match derived {
                Derived::Known {
                    values,
                    kubelet,
                    from,
                } => {
                    out["derived"] = serde_json::json!(values);
                    out["kubeletSettings"] = serde_json::json!(kubelet);
                    out["derivedFrom"] = serde_json::json!(from);
                }
                Derived::Unknown(why) => out["derivedUnknown"] = serde_json::json!(why),
            }
            serde_json::to_string_pretty(&out)? + "\n"
        }
        (Format::Yaml, None) => serde_yaml_ng::to_string(&value)?,
        (Format::Yaml, Some(derived)) => {
            let mut out = serde_yaml_ng::to_string(&value)?;
            out.push_str("# Where each field was set:\n");
            for (path, source) in &provenance {
                out.push_str(&format!("#   {path} <- {source}\n"));
            }
            match derived {
                Derived::Known {
                    values,
                    kubelet,
                    from,
                } => {
                    out.push_str(&format!(
                        "# How the derived values came about (from {from}):\n"
                    ));
                    for (name, why) in values {
                        out.push_str(&format!("#   {name}: {why}\n"));
                    }
                    out.push_str("# Where each kubelet setting comes from:\n");
                    for (key, why) in kubelet {
                        out.push_str(&format!("#   {key}: {why}\n"));
                    }
                }
                Derived::Unknown(why) => {
                    out.push_str(&format!("# Derived values: not known: {why}\n"));
                }
            }
            out
        }
    })
}
