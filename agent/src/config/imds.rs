//! User data from IMDS, the `imds://user-data` source: fetched on the caller's runtime by
//! `init` (only when a source asks for it), or on a runtime of its own by `config check/show`.

use super::{Error, Loaded, Source, UserDataFetch};
use crate::facts::imds::Imds;

/// Fetches user data from IMDS on a runtime of its own (for commands that have none).
#[derive(Debug)]
pub struct ImdsUserData;

impl UserDataFetch for ImdsUserData {
    fn fetch_user_data(&self) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async { Ok(Imds::new()?.user_data().await?) })
    }
}

/// User data fetched before the sources are read.
struct Prefetched(Result<Option<Vec<u8>>, String>);

impl UserDataFetch for Prefetched {
    fn fetch_user_data(&self) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        self.0.clone().map_err(Into::into)
    }
}

/// [`super::load`] with user data from `imds`, fetched on the caller's runtime and only when
/// a source needs it (no sources means the default chain, which starts with IMDS).
pub async fn load_with_imds(uris: &[String], imds: &Imds) -> Result<Loaded, Error> {
    let wants_imds = uris.is_empty()
        || uris
            .iter()
            .any(|s| matches!(Source::parse(s), Ok(Source::ImdsUserData)));
    let user_data = if wants_imds {
        Prefetched(imds.user_data().await.map_err(|e| e.to_string()))
    } else {
        Prefetched(Ok(None))
    };
    super::load(uris, &user_data)
}
