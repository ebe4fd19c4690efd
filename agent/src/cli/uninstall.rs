//! `eks-node-agent uninstall [--deregister]`: check that the node is cordoned and drained,
//! stop the agent's daemon, kubelet and containerd, undo every file the agent wrote, and
//! optionally deregister the node from SSM. Holds the host lock throughout.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::apply::{Root, manifest};
use crate::auth::credentials::{self, Source};
use crate::exit;
use crate::install::ssm;

/// Remove every file the agent wrote (restoring files it replaced) and the directories it
/// created; with --deregister, deregister this SSM hybrid node first.
#[derive(Debug, Args)]
#[command(
    after_help = "Uninstall works from the agent's record /var/lib/eks-node-agent/files.json: \
files the agent created are removed, files it replaced are restored byte for byte with their mode \
and owner, directories it created are removed when empty. Everything is checked first: if a \
file was changed by someone else after the agent wrote it, nothing is done unless --force.\n\n\
Preflight: when the kubelet's kubeconfig exists (the node joined), the Node (--node-name, default \
the host name) must be cordoned and drained (only DaemonSet, mirror and finished pods left) or \
gone from the cluster; a node that is not, or an API server that cannot be asked, refuses with \
exit 2 unless --force. Then eks-node-agent.service, kubelet.service and containerd.service are \
stopped (those running; on the host, or over --systemd-bus) before any file is removed. The host \
lock (/run/eks-node-agent/host.lock) keeps a concurrent init, install or upgrade out.\n\n\
--deregister calls SSM DeregisterManagedInstance for the managed instance in \
/var/lib/amazon/ssm/registration (credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else the SSM \
agent's credentials file, else the standard chain; AWS_ENDPOINT_URL_SSM overrides the endpoint), \
then removes that registration; if the call fails nothing is removed.\n\n\
Examples:\n  \
    eks-node-agent uninstall\n  \
    eks-node-agent uninstall --deregister           # SSM hybrid node\n  \
    eks-node-agent uninstall --root ./node-root --dry-run"
)]
pub struct UninstallArgs {
    /// Uninstall under this directory instead of `/`.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Also deregister this SSM hybrid node (SSM DeregisterManagedInstance) and remove its registration.
    #[arg(long)]
    deregister: bool,
    /// Remove or restore files even if they were changed after the agent wrote them, and skip
    /// the check that the node is cordoned and drained.
    #[arg(long)]
    force: bool,
    /// Print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The Node whose drain is checked [default: the host name].
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// The kubeconfig to ask the API server with (under --root).
    #[arg(long, value_name = "PATH", default_value = KUBELET_KUBECONFIG)]
    kubeconfig: PathBuf,
    /// Talk to systemd on this D-Bus address instead of the system bus (services are then
    /// stopped even with --root; `none` stops none).
    #[arg(long, value_name = "ADDRESS")]
    systemd_bus: Option<String>,
    #[command(flatten)]
    lock: super::LockArgs,
}

/// The kubelet's kubeconfig, which exists once the node has joined.
pub(crate) const KUBELET_KUBECONFIG: &str = "/var/lib/kubelet/kubeconfig";
/// The units stopped before files are removed, in order: the daemon first (it would report
/// the node going away), then the kubelet, then the runtime under it.
pub(crate) const SERVICES: [&str; 3] = [
    "eks-node-agent.service",
    "kubelet.service",
    "containerd.service",
];
/// How long the preflight may take to ask the API server.
const PREFLIGHT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the preflight found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Preflight {
    /// Nothing runs on the node: it never joined, or its Node object is gone.
    NotJoined(String),
    /// Cordoned and drained.
    Drained,
    /// Not ready to lose its services: why.
    Refused(String),
}

/// Asks the API server (with `kubeconfig`, when it exists under `root`) whether `node` is
/// cordoned and drained.
pub(crate) async fn preflight(
    root: &Root,
    kubeconfig: &Path,
    node: &str,
) -> anyhow::Result<Preflight> {
    let path = root.path(kubeconfig)?;
    if !path.exists() {
        return Ok(Preflight::NotJoined(format!(
            "{} does not exist: the node has not joined",
            path.display()
        )));
    }
    let ask = async {
        let client = crate::report::kube::client(&path, true)
            .await
            .map_err(|e| crate::model::text::error_chain(&e))?;
        let ops = crate::report::node_ops::NodeOps::new(client, node);
        let state = match ops.read().await {
            Ok(s) => s,
            Err(e) if e.status() == Some(404) => {
                return Ok(Preflight::NotJoined(format!(
                    "Node {node} does not exist in the cluster"
                )));
            }
            Err(e) => return Err(crate::model::text::error_chain(&e)),
        };
        let pods = ops
            .pods()
            .await
            .map_err(|e| crate::model::text::error_chain(&e))?;
        Ok(match crate::lifecycle::drain::not_drained(&state, &pods) {
            None => Preflight::Drained,
            Some(why) => Preflight::Refused(format!("Node {node}: {why}")),
        })
    };
    Ok(match tokio::time::timeout(PREFLIGHT_TIMEOUT, ask).await {
        Ok(Ok(found)) => found,
        Ok(Err(why)) => {
            Preflight::Refused(format!("cannot tell whether Node {node} is drained: {why}"))
        }
        Err(_) => Preflight::Refused(format!(
            "cannot tell whether Node {node} is drained: the API server did not answer within {PREFLIGHT_TIMEOUT:?}"
        )),
    })
}

/// The node's name: given, else the host name.
pub(crate) fn node_name(given: Option<&str>) -> anyhow::Result<String> {
    match given {
        Some(n) => Ok(n.to_owned()),
        None => Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("cannot read the host name; pass --node-name")?
            .trim()
            .to_owned()),
    }
}

/// Stops each of `units` that is running, in order; says which on stderr.
pub(crate) async fn stop_services(bus: Option<&str>, units: &[&str]) -> anyhow::Result<()> {
    let systemd = crate::apply::systemd::Systemd::connect(bus).await?;
    for unit in units {
        if systemd
            .stop_if_active(unit, crate::apply::systemd::JOB_TIMEOUT)
            .await?
        {
            eprintln!("stopped  {unit}");
        }
    }
    Ok(())
}

/// The SSM credentials file: `AWS_SHARED_CREDENTIALS_FILE` as given, else the SSM agent's
/// default under the root.
fn ssm_credentials_file(root: &Root) -> anyhow::Result<PathBuf> {
    Ok(
        match credentials::process_env("AWS_SHARED_CREDENTIALS_FILE") {
            Some(p) => PathBuf::from(p),
            None => root.path(std::path::Path::new(
                crate::auth::ssm::DEFAULT_SSM_CREDENTIALS_FILE,
            ))?,
        },
    )
}

pub(crate) fn run(args: UninstallArgs) -> anyhow::Result<exit::Code> {
    let root = args.root.as_ref().map_or_else(Root::host, Root::at);
    let _lock = if args.dry_run {
        None
    } else {
        Some(args.lock.acquire(&root, "uninstall")?)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let recorded = manifest::load(&root)?;
    // Everything checked before anything is changed.
    let steps = match &recorded {
        Some(m) => manifest::plan(&root, m, args.force)?,
        None => Vec::new(),
    };
    let registration = if args.deregister {
        let reg = ssm::read_registration(&root)?;
        if reg.is_none() {
            eprintln!("not registered with SSM: no {}", ssm::REGISTRATION);
        }
        reg
    } else {
        None
    };
    if recorded.is_none() && registration.is_none() {
        eprintln!(
            "nothing to uninstall: {} does not exist under {}",
            manifest::MANIFEST,
            root.dir().display()
        );
        return Ok(exit::Code::NothingToDo);
    }
    // The node must be out of service before its services go.
    if args.force {
        eprintln!("preflight: skipped (--force)");
    } else {
        let node = node_name(args.node_name.as_deref())?;
        match rt.block_on(preflight(&root, &args.kubeconfig, &node))? {
            Preflight::NotJoined(why) => eprintln!("preflight: {why}"),
            Preflight::Drained => eprintln!("preflight: Node {node} is cordoned and drained"),
            Preflight::Refused(why) => {
                return Err(exit::BadInput(format!(
                    "uninstall refused: {why}; drain the node first (kubectl drain {node} --ignore-daemonsets --delete-emptydir-data), or pass --force"
                ))
                .into());
            }
        }
    }
    let bus = match args.systemd_bus.as_deref() {
        Some("none") => None,
        Some(address) => Some(Some(address)),
        None if root.is_host() => Some(None),
        None => None,
    };
    if args.dry_run {
        if bus.is_some() {
            println!("stop {} (those running)", SERVICES.join(", "));
        }
        if let Some(reg) = &registration {
            println!("deregister {} in {}", reg.instance_id, reg.region);
        }
        if let Some(m) = &recorded {
            print!("{}", manifest::describe(&steps, m));
        }
        return Ok(exit::Code::Success);
    }
    if let Some(address) = bus {
        rt.block_on(stop_services(address, &SERVICES))?;
    }

    if let Some(reg) = &registration {
        rt.block_on(deregister(&root, reg))?;
        for p in ssm::remove_registration(&root, reg)? {
            eprintln!("removed  {} (SSM registration)", p.display());
        }
    }
    if let Some(m) = recorded {
        let report = manifest::execute(&root, m, &steps)?;
        eprint!("{report}");
    }
    Ok(exit::Code::Success)
}

async fn deregister(root: &Root, reg: &ssm::Registration) -> anyhow::Result<()> {
    let env = credentials::process_env;
    let file = ssm_credentials_file(root)?;
    let source = if credentials::env_has_static_keys(&env) || !file.exists() {
        Source::Chain
    } else {
        Source::SsmFile(file)
    };
    let provider = credentials::provider(&source, &reg.region, &env).await?;
    let creds = credentials::fetch(&provider, &source.name()).await?;
    let endpoint = credentials::process_env("AWS_ENDPOINT_URL_SSM")
        .or_else(|| credentials::process_env("AWS_ENDPOINT_URL"));
    let api = ssm::SsmApi::new(reg.region.clone(), endpoint.as_deref())?;
    api.deregister_managed_instance(&creds, &reg.instance_id, &std::time::SystemTime::now)
        .await?;
    eprintln!(
        "deregistered {} from SSM ({})",
        reg.instance_id,
        api.endpoint()
    );
    Ok(())
}
