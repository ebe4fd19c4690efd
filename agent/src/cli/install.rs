//! `eks-node-agent install --from DIR|URL`: verify every artifact, then install them.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::apply::Root;
use crate::exit;
use crate::install::{self, ContainerdChoice, Options};

/// Install kubelet, containerd, runc, the CNI plugins and the ECR credential provider (EKS), or
/// Docker, ecs-init and the ECS agent image (ECS), from a directory or mirror with a
/// manifest.json of SHA-256 sums.
#[derive(Debug, Args)]
#[command(
    after_help = "manifest.json must be signed (manifest.json.minisig, minisign) by a key pinned \
in /etc/eks-node-agent/mirror.pub or given with --trusted-key; then every artifact is verified \
(size and SHA-256 from the manifest) before anything is written. An unsigned or wrongly signed \
mirror, or a mismatch, installs nothing and exits 2. Installed files are recorded so that \
`eks-node-agent uninstall` removes them. Manifest format and signing: docs/install.md.\n\n\
Examples:\n  \
    eks-node-agent install --from /mnt/eks-artifacts\n  \
    eks-node-agent install --from /mnt/eks-artifacts --trusted-key /etc/pki/eks-mirror.pub\n  \
    eks-node-agent install --from https://mirror.example.internal/eks/1.33/ --ca-bundle /etc/pki/mirror-ca.pem\n  \
    eks-node-agent install --from /mnt/eks-artifacts --containerd distro   # keep the distribution's containerd\n  \
    eks-node-agent install --from ./artifacts --root ./node-root --dry-run"
)]
pub struct InstallArgs {
    /// The directory (or file:// URL) or http(s):// mirror holding manifest.json.
    #[arg(long, value_name = "DIR|URL")]
    from: String,
    /// Install under this directory instead of `/`.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Which containerd: `auto` installs the mirror's unless another containerd is present.
    #[arg(long, value_enum, default_value_t = ContainerdArg::Auto)]
    containerd: ContainerdArg,
    /// Extra PEM CA certificates for an HTTPS mirror with a private CA.
    #[arg(long, value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    /// A minisign public key the manifest's signature must verify with (repeatable); default
    /// /etc/eks-node-agent/mirror.pub (under --root).
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
    /// Install from a mirror whose manifest is not signed (or with no key pinned): the SHA-256
    /// sums are then only as trustworthy as the mirror. Warns.
    #[arg(long)]
    allow_unsigned: bool,
    /// Verify everything and print what would be installed; write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    lock: super::LockArgs,
}

/// `--containerd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ContainerdArg {
    /// The mirror's, unless a containerd the agent did not install is present.
    Auto,
    /// The mirror's, replacing (and backing up) any other.
    Mirror,
    /// The distribution's: skip containerd and runc from the mirror.
    Distro,
}

/// The mirror options `install` and `upgrade` share: the source, the keys its manifest must
/// verify with (a warning when unsigned mirrors are allowed), the containerd choice.
pub(crate) fn mirror_options(
    from: &str,
    root: Root,
    containerd: ContainerdChoice,
    ca_bundle: Option<PathBuf>,
    trusted_key: &[PathBuf],
    allow_unsigned: bool,
) -> anyhow::Result<Options> {
    let default_key = root.path(std::path::Path::new(
        install::signature::DEFAULT_TRUSTED_KEY,
    ))?;
    let trust = install::signature::Trust::load(trusted_key, &default_key, allow_unsigned)?;
    if allow_unsigned {
        eprintln!(
            "warning: --allow-unsigned: an unsigned mirror is accepted; its SHA-256 sums are only as trustworthy as the mirror"
        );
    }
    Ok(Options {
        from: from.to_owned(),
        root,
        containerd,
        policy: install::fetch::Policy::default(),
        ca_bundle,
        trust,
    })
}

pub(crate) fn run(args: InstallArgs) -> anyhow::Result<exit::Code> {
    let root = args.root.as_ref().map_or_else(Root::host, Root::at);
    let containerd = match args.containerd {
        ContainerdArg::Auto => ContainerdChoice::Auto,
        ContainerdArg::Mirror => ContainerdChoice::Mirror,
        ContainerdArg::Distro => ContainerdChoice::Distro,
    };
    let opts = mirror_options(
        &args.from,
        root,
        containerd,
        args.ca_bundle.clone(),
        &args.trusted_key,
        args.allow_unsigned,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let verified = rt.block_on(install::verify(&opts))?;
    for (c, why) in &verified.skipped {
        eprintln!("skipped  {c}: {why}");
    }
    if args.dry_run {
        for f in &verified.files {
            println!("{:04o} {} sha256={}", f.mode, f.path.display(), f.sha256);
        }
        return Ok(exit::Code::Success);
    }
    // One command changes the host at a time. Taken once everything is verified (in a
    // staging directory outside the root), so that a refused mirror leaves no trace.
    let _lock = args.lock.acquire(&opts.root, "install")?;
    let report = install::install(&opts.root, &verified)?;
    eprint!("{report}");
    Ok(exit::Code::Success)
}
