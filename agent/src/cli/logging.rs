//! Logging: `tracing` to stderr, text or JSON. Under journald (JOURNAL_STREAM set) no ANSI
//! colours and no timestamps, since the journal adds its own.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `verbose` counts `-v` flags: 0 info, 1 debug, 2+ trace.
/// `RUST_LOG` overrides the level when set.
pub fn init(format: LogFormat, verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("EKS_NODE_AGENT_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("eks_node_agent={level},warn")));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = !under_journald && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match (format, under_journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.with_ansi(false).without_time().try_init(),
        (LogFormat::Text, false) => builder.with_ansi(ansi).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
