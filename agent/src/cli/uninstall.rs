//! `eks-node-agent uninstall [--deregister]`: undo every file the agent wrote, and optionally
//! deregister the node from SSM.

use std::path::PathBuf;

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
file was changed by someone else after the agent wrote it, nothing is done unless --force. \
Services are not stopped: run `systemctl stop kubelet` first on a live host.\n\n\
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
    /// Remove or restore files even if they were changed after the agent wrote them.
    #[arg(long)]
    force: bool,
    /// Print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
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
    if args.dry_run {
        if let Some(reg) = &registration {
            println!("deregister {} in {}", reg.instance_id, reg.region);
        }
        if let Some(m) = &recorded {
            print!("{}", manifest::describe(&steps, m));
        }
        return Ok(exit::Code::Success);
    }
    if root.is_host() {
        tracing::warn!(
            "services are not stopped by uninstall; stop kubelet and containerd first if they run"
        );
    }

    if let Some(reg) = &registration {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
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
