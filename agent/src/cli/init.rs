//! `eks-node-agent init`: sources -> NodeConfig -> facts -> plan -> apply.

use crate::config::{Loaded, UserDataFetch};
use crate::exit;

/// Fetches user data from IMDS.
#[derive(Debug)]
pub(crate) struct ImdsUserData;

impl UserDataFetch for ImdsUserData {
    fn fetch_user_data(&self) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        Err("the IMDS client is not wired in yet".into())
    }
}

pub(crate) fn run_loaded(_loaded: Loaded) -> anyhow::Result<exit::Code> {
    Err(exit::BadInput("init is not available yet; use --print-config".into()).into())
}
