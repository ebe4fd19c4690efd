//! Reading an answer's body with a bound: every body the agent reads from a peer (IMDS, Roles
//! Anywhere, SSM, a mirror's small files) is read in chunks and refused past its cap, so a
//! peer that answers without end cannot exhaust the node's memory.

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The transfer failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The body is longer than the cap.
    #[error("the answer is larger than {cap} bytes (the limit for it)")]
    TooLarge {
        /// The cap.
        cap: usize,
    },
}

/// The body of `response`, at most `cap` bytes.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX))
    {
        return Err(BodyError::TooLarge { cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
