//! The one integration-test binary. Each area is a module.

#![allow(clippy::unwrap_used)]

mod apply;
mod audit;
mod auth;
mod cli;
mod collect;
mod config;
mod daemon;
mod discovery;
mod e2e;
mod ecs;
mod faults;
mod hardening;
mod health;
mod init;
mod install;
mod kubeadm;
mod lifecycle;
mod max_pods;
mod prometheus;
mod status;
mod vm;

/// Path of the agent binary: this package's own `eks-node-agent`, which cargo builds for its
/// integration tests, or `EKS_NODE_AGENT_TEST_BIN` (scripts/order-file.sh runs the tests against the release
/// binary under callgrind).
pub fn agent_bin() -> std::path::PathBuf {
    std::env::var_os("EKS_NODE_AGENT_TEST_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_eks-node-agent")),
        std::path::PathBuf::from,
    )
}
