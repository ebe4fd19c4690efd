//! Discovery, one provider per node kind. Each gathers what its kind needs (all the IO of
//! discovery: IMDS, EC2, EKS, Roles Anywhere, SSM files, cluster-info, the local host) and
//! returns [`Discovered`], which `compute` turns into the node's values. What a provider needs
//! from the NodeConfig arrives as a request built by `config` (see
//! `config::NodeConfig::discovery`), so this layer never reads the config itself.

mod ec2;
mod ecs;
mod hybrid;
mod kubeadm;

use std::path::{Path, PathBuf};

pub use ec2::{Ec2Request, RESOLVE_POLICY, api_server_addresses, instance_tags};
pub use ecs::EcsRequest;
pub use hybrid::HybridRequest;
pub use kubeadm::KubeadmRequest;

use super::Error;
use super::imds::Imds;
use crate::model::{Discovered, HostFacts, procfs};

/// The provider of a node kind, with what it needs to know.
#[derive(Debug, Clone)]
pub enum Provider {
    /// An EC2 instance in a region: IMDS, EC2 DescribeInstances, and EKS DescribeCluster when
    /// the config lacks the endpoint, the CA or the service CIDR.
    Ec2(Ec2Request),
    /// An EC2 instance on an Outpost joining a local cluster: as [`Provider::Ec2`], plus the
    /// API server's addresses to pin in /etc/hosts.
    Outpost(Ec2Request),
    /// An on-prem host (EKS Hybrid Nodes): its SSM registration, the address that routes to
    /// the API server, and DescribeCluster with its own credentials (IAM Roles Anywhere or
    /// the SSM agent's file).
    Hybrid(HybridRequest),
    /// A kubeadm join (EKS Anywhere): the JWS-verified, CA-pinned `cluster-info`.
    Kubeadm(KubeadmRequest),
    /// An Amazon ECS container instance: the EC2 identity document, or on ECS Anywhere the SSM
    /// registration or a first IAM Roles Anywhere session.
    Ecs(EcsRequest),
}

/// What every provider reads besides its request.
#[derive(Debug)]
pub struct Context {
    /// IMDS (EC2 and Outposts nodes; user data was read through it already).
    pub imds: Imds,
    /// The directory standing for `/` for the files discovery reads (/etc/hosts, /etc/fstab,
    /// /proc/swaps, the SSM registration): `/`, or `init --root DIR`.
    pub root: PathBuf,
    /// This binary's absolute path (the kubeconfig's exec plugin).
    pub agent_binary: PathBuf,
}

impl Context {
    /// A context for `root` with IMDS from the environment and this binary's path.
    pub fn new(imds: Imds, root: impl Into<PathBuf>) -> Context {
        Context {
            imds,
            root: root.into(),
            agent_binary: std::env::current_exe()
                .unwrap_or_else(|_| PathBuf::from("/usr/bin/eks-node-agent")),
        }
    }
}

impl Provider {
    /// The provider's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Ec2(_) => "ec2",
            Provider::Outpost(_) => "outpost",
            Provider::Hybrid(_) => "hybrid",
            Provider::Kubeadm(_) => "kubeadm",
            Provider::Ecs(_) => "ecs",
        }
    }

    /// Discovers everything this node kind needs. The host's own facts (a few files and
    /// `containerd --version`, a process start that costs tens of milliseconds) are read while
    /// the network calls are in flight. Reads only: nothing on the host changes.
    pub async fn discover(&self, ctx: &Context) -> Result<Discovered, Error> {
        let host_task = tokio::task::spawn_blocking(|| super::host::read(Path::new("/")));
        let mut found = match self {
            Provider::Ec2(req) => ec2::discover(req, ctx, false).await?,
            Provider::Outpost(req) => ec2::discover(req, ctx, true).await?,
            Provider::Hybrid(req) => hybrid::discover(req, ctx).await?,
            Provider::Kubeadm(req) => kubeadm::discover(req).await?,
            Provider::Ecs(req) => ecs::discover(req, ctx).await?,
        };
        let mut host = host_task.await.map_err(Error::HostFacts)?;
        read_root_files(&mut host, &ctx.root);
        found.host = host;
        found.agent_binary = ctx.agent_binary.clone();
        Ok(found)
    }
}

/// The files `init` may rewrite are read under its root (the host's `/`, or `--root DIR`), so
/// that a plan under a root diffs against what is there.
fn read_root_files(host: &mut HostFacts, root: &Path) {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    host.hosts_file = read("etc/hosts");
    host.fstab = read("etc/fstab");
    host.swaps = read("proc/swaps")
        .map(|t| procfs::parse_swaps(&t))
        .unwrap_or_default();
}
