//! `eks-node-agent upgrade --from DIR|URL`: an in-place upgrade of a hybrid or kubeadm node,
//! in the order of `nodeadm upgrade`: preflight (the mirror's versions, the skew against the
//! API server), cordon, drain (the lifecycle drain, [`crate::lifecycle::drain`]), stop the
//! kubelet, install the new artifacts (verified, atomic, the previous ones kept:
//! [`crate::install::rollback`]), restart, wait for the Node to be Ready again, uncordon.
//! A failure at any step after the preflight rolls back: the previous binaries come back,
//! the kubelet runs again, the Node is uncordoned (when the upgrade cordoned it); the error
//! names the step. Holds the host lock throughout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::apply::Root;
use crate::apply::systemd::JOB_TIMEOUT;
use crate::exit;
use crate::install::{self, ContainerdChoice, Options};
use crate::model::Version;
use crate::report::node_ops::{NodeChange, NodeOps};

/// Upgrade kubelet, containerd, CNI plugins from a verified mirror, draining the node first.
#[derive(Debug, Args)]
#[command(
    after_help = "Steps: preflight, cordon, drain, stop-kubelet, install, restart, \
wait-ready, uncordon. Preflight: the mirror verifies (as install), its kubelet reports its \
version, which must be the --kubernetes-version asked for (when given), never newer than the API \
server and at most 3 minors older (exit 2 otherwise; nothing is changed). A failure at a later \
step rolls back to the previous binaries (kept in /var/lib/eks-node-agent/rollback), starts the \
kubelet and uncordons the node, and exits 1 naming the step.\n\n\
Examples:\n  \
    eks-node-agent upgrade --from /mnt/eks-artifacts-1.32 --kubernetes-version 1.32\n  \
    eks-node-agent upgrade --from https://mirror.example.internal/eks/1.32/ --dry-run"
)]
pub struct UpgradeArgs {
    /// The directory (or file:// URL) or http(s):// mirror holding the signed manifest.json.
    #[arg(long, value_name = "DIR|URL")]
    from: String,
    /// The Kubernetes version the mirror must carry (MAJOR.MINOR[.PATCH]).
    #[arg(long, value_name = "VERSION", value_parser = super::init::parse_version)]
    kubernetes_version: Option<Version>,
    /// Print the steps and the versions; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Upgrade under this directory instead of `/`.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The Node [default: the host name].
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// The kubeconfig to reach the API server with (under --root).
    #[arg(long, value_name = "PATH", default_value = super::uninstall::KUBELET_KUBECONFIG)]
    kubeconfig: PathBuf,
    /// Talk to systemd on this D-Bus address instead of the system bus.
    #[arg(long, value_name = "ADDRESS")]
    systemd_bus: Option<String>,
    /// Seconds the drain may take before the upgrade gives up (and rolls back).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    drain_timeout: u64,
    /// Seconds to wait for the Node to be Ready after the restart.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    ready_timeout: u64,
    /// A minisign public key the manifest's signature must verify with (repeatable); default
    /// /etc/eks-node-agent/mirror.pub (under --root).
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
    /// Accept a mirror whose manifest is not signed. Warns.
    #[arg(long)]
    allow_unsigned: bool,
    /// Extra PEM CA certificates for an HTTPS mirror with a private CA.
    #[arg(long, value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    #[command(flatten)]
    lock: super::LockArgs,
}

/// The steps, in order.
pub const STEPS: [&str; 8] = [
    "preflight",
    "cordon",
    "drain",
    "stop-kubelet",
    "install",
    "restart",
    "wait-ready",
    "uncordon",
];

/// How often the Node is read while waiting for Ready.
const READY_POLL: Duration = Duration::from_millis(500);
/// The kubelet's unit.
const KUBELET: &str = "kubelet.service";
/// containerd's unit.
const CONTAINERD: &str = "containerd.service";

/// The skew rule for a new kubelet ([`crate::model::version::kubelet_skew`]); `Err` says
/// why not.
pub(crate) fn skew(kubelet: &Version, server: &Version) -> Result<(), String> {
    use crate::model::version::{KubeletSkew, MAX_KUBELET_MINORS_BEHIND, kubelet_skew};
    match kubelet_skew(kubelet, server) {
        KubeletSkew::Supported => Ok(()),
        KubeletSkew::NewerThanServer => Err(format!(
            "kubelet {kubelet} is newer than the API server {server}; upgrade the control plane first"
        )),
        KubeletSkew::TooOld => Err(format!(
            "kubelet {kubelet} is more than {MAX_KUBELET_MINORS_BEHIND} minors older than the API server {server}"
        )),
    }
}

/// A failed step, after the rollback.
#[derive(Debug, thiserror::Error)]
#[error("upgrade failed at step {step}: {why}; {rolled_back}")]
pub struct StepFailed {
    step: &'static str,
    why: String,
    rolled_back: String,
}

pub(crate) fn run(args: UpgradeArgs) -> anyhow::Result<exit::Code> {
    let root = args.root.as_ref().map_or_else(Root::host, Root::at);
    let opts = super::install::mirror_options(
        &args.from,
        root,
        ContainerdChoice::Auto,
        args.ca_bundle.clone(),
        &args.trusted_key,
        args.allow_unsigned,
    )?;
    let node = super::uninstall::node_name(args.node_name.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(upgrade(&args, &opts, &node))
}

async fn upgrade(args: &UpgradeArgs, opts: &Options, node: &str) -> anyhow::Result<exit::Code> {
    let root = &opts.root;
    // Preflight: nothing changes until it passes.
    let verified = install::verify(opts).await?;
    let kubelet = verified
        .files
        .iter()
        .find(|f| f.path == std::path::Path::new(crate::facts::host::KUBELET_BINARY))
        .ok_or_else(|| {
            exit::BadInput(format!(
                "the mirror {} has no kubelet to upgrade to",
                opts.from
            ))
        })?;
    let source = kubelet.source.clone();
    // The staged copy is private to this process: make it executable to ask its version.
    let new_version = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o700))?;
        crate::facts::host::kubelet_version(&source).map_err(anyhow::Error::from)
    })
    .await??
    .ok_or_else(|| anyhow::anyhow!("the mirror's kubelet printed no version"))?;
    if let Some(wanted) = &args.kubernetes_version {
        let matches = new_version.major == wanted.major
            && new_version.minor == wanted.minor
            && (wanted.patch == 0 || new_version.patch == wanted.patch);
        if !matches {
            return Err(exit::BadInput(format!(
                "the mirror {} has kubelet {new_version}, not the requested version {wanted}; point --from at a mirror of {wanted}",
                opts.from
            ))
            .into());
        }
    }
    let kubeconfig = root.path(&args.kubeconfig)?;
    let client = crate::report::kube::client(&kubeconfig, true)
        .await
        .with_context(|| {
            format!(
                "preflight: cannot reach the API server with {}",
                kubeconfig.display()
            )
        })?;
    let info = client
        .apiserver_version()
        .await
        .context("preflight: GET /version")?;
    let server = Version::parse_word(&info.git_version).ok_or_else(|| {
        anyhow::anyhow!(
            "preflight: the API server's version {:?} does not parse",
            info.git_version
        )
    })?;
    skew(&new_version, &server)
        .map_err(|why| exit::BadInput(format!("preflight: version skew: {why}")))?;
    let ops = NodeOps::new(client.clone(), node);
    let before = ops
        .read()
        .await
        .with_context(|| format!("preflight: GET node {node}"))?;
    eprintln!(
        "preflight: mirror kubelet {new_version}, API server {server}, Node {node}{}",
        if before.unschedulable {
            " (already cordoned)"
        } else {
            ""
        }
    );
    if args.dry_run {
        for step in STEPS {
            println!("{step}");
        }
        for f in &verified.files {
            println!(
                "  install {:04o} {} sha256={}",
                f.mode,
                f.path.display(),
                f.sha256
            );
        }
        return Ok(exit::Code::Success);
    }

    let _lock = tokio::task::block_in_place(|| args.lock.acquire(root, "upgrade"))?;
    let bus = args.systemd_bus.as_deref();
    let systemd = crate::apply::systemd::Systemd::connect(bus).await?;
    let containerd_changes = verified
        .files
        .iter()
        .any(|f| f.path.to_string_lossy().contains("containerd") || f.path.ends_with("runc"));

    let mut state = Progress::default();
    let result: Result<(), (&'static str, String)> = async {
        if !before.unschedulable {
            let change = NodeChange {
                unschedulable: Some(true),
                ..NodeChange::default()
            };
            ops.change(&before, &change)
                .await
                .map_err(|e| ("cordon", crate::model::text::error_chain(&e)))?;
            state.cordoned = true;
            eprintln!("cordon: Node {node} cordoned");
        }
        drain(&ops, args.drain_timeout)
            .await
            .map_err(|w| ("drain", w))?;
        eprintln!("drain: done");
        systemd
            .stop_if_active(KUBELET, JOB_TIMEOUT)
            .await
            .map(drop)
            .map_err(|e| ("stop-kubelet", crate::model::text::error_chain(&e)))?;
        state.kubelet_stopped = true;
        eprintln!("stop-kubelet: {KUBELET} stopped");
        let kept = install::rollback::keep(root, &verified.files)
            .map_err(|e| ("install", crate::model::text::error_chain(&e)))?;
        state.kept = Some(kept);
        let report = install::install(root, &verified)
            .map_err(|e| ("install", crate::model::text::error_chain(&e)))?;
        eprint!("{report}");
        if containerd_changes {
            systemd
                .stop_if_active(CONTAINERD, JOB_TIMEOUT)
                .await
                .map(drop)
                .and(systemd.start(CONTAINERD).await)
                .map_err(|e| ("restart", crate::model::text::error_chain(&e)))?;
        }
        let restarted = time::OffsetDateTime::now_utc();
        systemd
            .start(KUBELET)
            .await
            .map_err(|e| ("restart", crate::model::text::error_chain(&e)))?;
        state.kubelet_stopped = false;
        eprintln!("restart: {KUBELET} started");
        wait_ready(
            &client,
            node,
            restarted,
            Duration::from_secs(args.ready_timeout),
        )
        .await
        .map_err(|w| ("wait-ready", w))?;
        eprintln!("wait-ready: Node {node} is Ready");
        if state.cordoned {
            uncordon(&ops).await.map_err(|w| ("uncordon", w))?;
            state.cordoned = false;
            eprintln!("uncordon: Node {node} uncordoned");
        }
        Ok(())
    }
    .await;
    let Err((step, why)) = result else {
        eprintln!("upgraded Node {node} to kubelet {new_version}");
        return Ok(exit::Code::Success);
    };
    // Roll back whatever was done, in reverse.
    let mut done = Vec::new();
    if let Some(kept) = &state.kept {
        match install::rollback::restore(root, kept) {
            Ok(_) => done.push("the previous binaries restored".to_owned()),
            Err(e) => done.push(format!(
                "restoring the previous binaries FAILED ({}; they are in {})",
                crate::model::text::error_chain(&e),
                install::rollback::ROLLBACK_DIR
            )),
        }
        if containerd_changes {
            let _ = systemd
                .stop_if_active(CONTAINERD, JOB_TIMEOUT)
                .await
                .map(drop);
            if let Err(e) = systemd.start(CONTAINERD).await {
                done.push(format!(
                    "containerd did not start again ({})",
                    crate::model::text::error_chain(&e)
                ));
            }
        }
    }
    if state.kept.is_some() || state.kubelet_stopped {
        let _ = systemd.stop_if_active(KUBELET, JOB_TIMEOUT).await.map(drop);
        match systemd.start(KUBELET).await {
            Ok(()) => done.push("kubelet started".into()),
            Err(e) => done.push(format!(
                "kubelet did not start again ({})",
                crate::model::text::error_chain(&e)
            )),
        }
    }
    if state.cordoned {
        match uncordon(&ops).await {
            Ok(()) => done.push(format!("Node {node} uncordoned")),
            Err(e) => done.push(format!("uncordoning Node {node} FAILED ({e})")),
        }
    }
    let rolled_back = if done.is_empty() {
        "nothing was changed".to_owned()
    } else {
        format!("rolled back: {}", done.join(", "))
    };
    Err(StepFailed {
        step,
        why,
        rolled_back,
    }
    .into())
}

/// What the upgrade did so far (what a rollback undoes).
#[derive(Debug, Default)]
struct Progress {
    cordoned: bool,
    kubelet_stopped: bool,
    kept: Option<install::rollback::Kept>,
}

/// The lifecycle drain with a deadline `secs` from now; `Err` names the pods left.
async fn drain(ops: &NodeOps, secs: u64) -> Result<(), String> {
    let deadline = time::OffsetDateTime::now_utc() + Duration::from_secs(secs);
    let (_keep, rx) = tokio::sync::watch::channel(deadline);
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let settings = crate::lifecycle::config::DrainSettings {
        // No instance goes away: never delete what a budget protects, give up instead.
        delete_before_deadline: Duration::ZERO,
        deadline_margin: Duration::ZERO,
        ..crate::lifecycle::config::DrainSettings::default()
    };
    let outcome = crate::lifecycle::drain::run(ops, settings, rx, tx).await;
    while let Ok(p) = progress.try_recv() {
        tracing::info!(?p, "drain");
    }
    if outcome.left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} pod(s) still on the node after {secs} s: {}",
            outcome.left.len(),
            outcome.left.join(", ")
        ))
    }
}

/// Waits until the Node's Ready condition is True with a heartbeat after `since`.
async fn wait_ready(
    client: &kube::Client,
    node: &str,
    since: time::OffsetDateTime,
    limit: Duration,
) -> Result<(), String> {
    let api = crate::report::kube::NodeApi::with_client(client.clone(), node);
    let started = tokio::time::Instant::now();
    let mut last: String;
    loop {
        match api.conditions().await {
            Ok(conditions) => {
                let ready = conditions.iter().find(|c| c.type_ == "Ready");
                let fresh = ready
                    .and_then(|c| c.last_heartbeat_time.as_deref())
                    .and_then(|t| {
                        time::OffsetDateTime::parse(
                            t,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .is_some_and(|t| t + Duration::from_secs(1) >= since);
                match ready {
                    Some(c) if c.status == "True" && fresh => return Ok(()),
                    Some(c) => {
                        last = format!(
                            "Ready={} ({}), last heartbeat {}",
                            c.status,
                            c.reason,
                            c.last_heartbeat_time.as_deref().unwrap_or("none")
                        );
                    }
                    None => last = "no Ready condition".into(),
                }
            }
            Err(e) => last = crate::model::text::error_chain(&e),
        }
        if started.elapsed() >= limit {
            return Err(format!(
                "Node {node} was not Ready within {} s after the restart: {last}",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Uncordons the Node (read again: the drain changed nothing, but others may have).
async fn uncordon(ops: &NodeOps) -> Result<(), String> {
    let now = ops
        .read()
        .await
        .map_err(|e| crate::model::text::error_chain(&e))?;
    if !now.unschedulable {
        return Ok(());
    }
    let change = NodeChange {
        unschedulable: Some(false),
        ..NodeChange::default()
    };
    ops.change(&now, &change)
        .await
        .map_err(|e| crate::model::text::error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skew_rule_of_a_new_kubelet() {
        let v = |s| Version::parse_word(s).unwrap();
        assert!(skew(&v("1.31.2"), &v("1.31.0")).is_ok());
        assert!(skew(&v("1.28.0"), &v("1.31.0")).is_ok());
        assert!(
            skew(&v("1.32.0"), &v("1.31.9"))
                .unwrap_err()
                .contains("newer")
        );
        assert!(
            skew(&v("1.27.0"), &v("1.31.0"))
                .unwrap_err()
                .contains("3 minors")
        );
    }
}
