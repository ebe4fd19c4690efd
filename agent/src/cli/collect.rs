//! `eks-node-agent collect [--output FILE] [--since DURATION]`: a support bundle (tar.gz) of
//! the node's state, in the spirit of the AMI's eks-log-collector.sh: journals, rendered
//! configs, `status -o json`, the /metrics scrape, kernel and network state, ipamd's logs and
//! introspection, the IMDS identity document, versions. Every file is redacted
//! ([`crate::model::redact`]); every source is bounded in time and size
//! ([`bundle`]); a source that fails is recorded in `manifest.json` and the bundle goes on.

mod bundle;
mod sources;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use self::bundle::{Item, Source};
use super::config::SourceArgs;
use crate::exit;

/// Default `--since`.
const DEFAULT_SINCE: &str = "1d";
/// The longest `--since`.
const MAX_SINCE: Duration = Duration::from_secs(366 * 86_400);
/// Where the bundle goes by default (the AMI's collector writes there too).
const DEFAULT_DIR: &str = "/var/log";
/// Each HTTP source (metrics, ipamd, IMDS) answers within this.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Collect a support bundle of this node.
#[derive(Debug, Args)]
#[command(
    after_help = "The bundle (mode 0600) holds: the journals of kubelet, containerd, the \
agent's units, Docker, the ECS and SSM agents and the kernel; the rendered configs (kubelet, containerd, \
CNI, the agent's NodeConfig merged, with secrets redacted); `status -o json`; the agent's /metrics; \
sysctls, mounts, disks, md arrays, interfaces, routes, rules, iptables/nftables, conntrack counts; \
ipamd's logs and introspection answers; on ECS hosts the agents' logs and the ECS agent's \
introspection answers; the IMDS identity document (never credentials); versions. \
manifest.json lists every source, its file, size, cut and error. AWS keys, session tokens, \
k8s-aws-v1 tokens, bootstrap tokens, activation codes, private keys and Authorization values are \
redacted in every file. Caps: 32 MiB per source (logs keep their newest part), 256 MiB in all \
before compression, 30 s per source, 5 min in all.\n\n\
Examples:\n  \
    eks-node-agent collect\n  \
    eks-node-agent collect --since 2h --output /tmp/node.tar.gz"
)]
pub struct CollectArgs {
    /// The bundle to write [default: /var/log/eks-node-agent-bundle-HOST-TIME.tar.gz].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Journal entries from this long ago: a number and a unit (s, m, h, d), e.g. 30m, 2h,
    /// 1d, 1h30m.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_SINCE)]
    since: String,
    #[command(flatten)]
    sources: SourceArgs,
    /// Read configuration and log files under this directory instead of `/` (commands and
    /// /proc are always the running host's).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The agent's metrics endpoint.
    #[arg(long, value_name = "URL", default_value = concat!("http://", "127.0.0.1:9256", "/metrics"))]
    metrics_url: String,
    /// ipamd's introspection endpoint.
    #[arg(long, value_name = "URL", default_value = sources::IPAMD_INTROSPECTION)]
    ipamd_url: String,
    /// The ECS agent's introspection endpoint, asked when given or when /etc/ecs/ecs.config
    /// exists under --root [default: http://127.0.0.1:51678].
    #[arg(long, value_name = "URL", env = "ECS_AGENT_INTROSPECTION_ENDPOINT")]
    ecs_introspection: Option<String>,
}

/// Parses `--since`: one or more `<number><unit>` with units s, m, h, d.
pub(crate) fn parse_since(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "--since {text:?} is not a duration; write a number and a unit (s, m, h, d), e.g. 30m, 2h, 1d or 1h30m"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    let d = Duration::from_secs(total);
    if d > MAX_SINCE {
        return Err(format!(
            "--since {text:?} is longer than {} days; journals that old are not collected",
            MAX_SINCE.as_secs() / 86_400
        ));
    }
    Ok(d)
}

/// The output file, checked: its directory exists and it is not a directory itself.
fn output_path(given: Option<&PathBuf>) -> Result<PathBuf, exit::BadInput> {
    let path = match given {
        Some(p) => p.clone(),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "node".into());
            let now = time::OffsetDateTime::now_utc();
            let stamp = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            );
            PathBuf::from(DEFAULT_DIR).join(format!("eks-node-agent-bundle-{host}-{stamp}.tar.gz"))
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(exit::BadInput(format!(
            "--output {}: the directory {} does not exist; create it or write the bundle elsewhere",
            path.display(),
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(exit::BadInput(format!(
            "--output {} is a directory; name a file, e.g. {}/node.tar.gz",
            path.display(),
            path.display()
        )));
    }
    Ok(path)
}

/// GET `url` within [`HTTP_TIMEOUT`] and the source cap: the body, or why not.
async fn http_get(url: &str) -> Result<String, String> {
    let client = crate::net::ClientBuilder::new()
        .proxy(crate::net::Proxy::Never)
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| crate::model::text::error_chain(&e))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", crate::model::text::error_chain(&e)))?;
    let status = response.status();
    let body = crate::net::body::read_capped(response, bundle::MAX_SOURCE_BYTES)
        .await
        .map_err(|e| format!("GET {url}: {}", crate::model::text::error_chain(&e)))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("GET {url}: HTTP {status}: {}", text.trim()))
    }
}

/// The sources the collector makes itself: the merged NodeConfig (redacted by field), the
/// IMDS identity document, the agent's metrics, ipamd's introspection.
async fn made_items(args: &CollectArgs) -> Vec<Item> {
    let made = |path: &str, what: String, result: Result<String, String>| Item {
        path: path.to_owned(),
        source: Source::Made(what, result),
        keep_tail: false,
    };
    let mut out = Vec::new();
    let config_sources = args.sources.clone();
    let config = tokio::task::spawn_blocking(move || {
        config_sources
            .load()
            .map(|loaded| {
                serde_json::to_string_pretty(&crate::config::redacted(&loaded.config))
                    .unwrap_or_default()
            })
            .map_err(|e| crate::model::text::error_chain(e.as_ref()))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    out.push(made(
        "config/eks-node-agent/nodeconfig.json",
        "the merged NodeConfig (config show, secrets redacted)".into(),
        config,
    ));
    let identity = async {
        let imds =
            crate::facts::imds::Imds::new().map_err(|e| crate::model::text::error_chain(&e))?;
        let doc = imds
            .identity_document()
            .await
            .map_err(|e| crate::model::text::error_chain(&e))?;
        serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())
    };
    let identity = tokio::time::timeout(HTTP_TIMEOUT * 2, identity)
        .await
        .unwrap_or_else(|_| Err(format!("IMDS did not answer within {:?}", HTTP_TIMEOUT * 2)));
    out.push(made(
        "imds/instance-identity.json",
        "IMDSv2 /latest/dynamic/instance-identity/document".into(),
        identity,
    ));
    out.push(made(
        "metrics.txt",
        format!("GET {}", args.metrics_url),
        http_get(&args.metrics_url).await,
    ));
    for (path, url_path) in sources::IPAMD_PATHS {
        let url = format!("{}{url_path}", args.ipamd_url.trim_end_matches('/'));
        let result = http_get(&url).await;
        out.push(made(path, format!("GET {url}"), result));
    }
    let ecs_endpoint = match &args.ecs_introspection {
        Some(url) => Some(url.as_str()),
        None if sources::is_ecs_host(&args.root) => Some(crate::model::ecs::INTROSPECTION_ENDPOINT),
        None => None,
    };
    if let Some(endpoint) = ecs_endpoint {
        for (path, url_path) in sources::ECS_AGENT_PATHS {
            let url = format!("{}{url_path}", endpoint.trim_end_matches('/'));
            let result = http_get(&url).await;
            out.push(made(path, format!("GET {url}"), result));
        }
    }
    out
}

pub(crate) fn run(args: CollectArgs) -> anyhow::Result<exit::Code> {
    let since = parse_since(&args.since).map_err(exit::BadInput)?;
    let output = output_path(args.output.as_ref())?;
    let agent = std::env::current_exe().context("cannot find this program's path")?;
    let plan = sources::Plan {
        root: args.root.clone(),
        since,
        agent,
        sources: args.sources.sources.clone(),
    };
    // Progress on a terminal; quiet under systemd and in pipes.
    let show = std::io::stderr().is_terminal() && std::env::var_os("JOURNAL_STREAM").is_none();
    let progress = |i: usize, n: usize, path: &str| {
        if show {
            eprint!("\r\x1b[K[{i:>3}/{n}] {path}");
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let entries = rt.block_on(async {
        let mut items = sources::items(&plan);
        items.extend(made_items(&args).await);
        let header = serde_json::json!({
            "agent_version": env!("CARGO_PKG_VERSION"),
            "created": crate::model::text::rfc3339(std::time::SystemTime::now()),
            "since_secs": since.as_secs(),
            "root": plan.root,
        });
        bundle::write(&output, items, header, &progress).await
    });
    if show {
        eprintln!();
    }
    let entries =
        entries.with_context(|| format!("cannot write the bundle {}", output.display()))?;
    let failed = entries.iter().filter(|e| e.error.is_some()).count();
    let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({size} bytes): {} sources, {failed} with an error (see manifest.json)",
        output.display(),
        entries.len()
    );
    Ok(exit::Code::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_units_and_refuses_anything_else() {
        assert_eq!(parse_since("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_since("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_since("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "30",
            "1w",
            "abc",
            "-1h",
            "0s",
            "1.5h",
            "99999999999999999999d",
        ] {
            let e = parse_since(bad).unwrap_err();
            assert!(e.contains("--since"), "{bad}: {e}");
        }
        assert!(parse_since("400d").unwrap_err().contains("366 days"));
    }
}
