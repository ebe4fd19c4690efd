//! eks-node-agent: the node side of Amazon EKS in one binary.
//!
//! Data flow: sources -> [`config::NodeConfig`] -> facts -> derived values -> render a plan ->
//! apply it under a root. Everything before `apply` is pure and printable.

pub mod apply;
#[cfg(test)]
mod architecture;
pub mod auth;
pub mod checks;
pub mod cli;
pub mod compute;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod facts;
pub mod install;
pub mod lifecycle;
pub mod model;
pub mod net;
pub mod render;
pub mod report;
