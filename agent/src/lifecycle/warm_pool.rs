//! The warm-pool hold. An instance launched into an Auto Scaling warm pool boots (its
//! `target-lifecycle-state` is `Warmed:Stopped`, `Warmed:Running` or `Warmed:Hibernated`),
//! runs `init`'s config phase (files, kernel settings, images can be pulled), and must not
//! join the cluster: it may be stopped or hibernated right after, and sit in the pool for
//! days. So `init` starts `eks-node-agent-warm-pool.service` instead of the kubelet, and that
//! unit (`eks-node-agent warm-pool-wait`) polls IMDS until the target state is `InService`,
//! then starts the kubelet. A stopped pool instance boots again when it leaves the pool, with
//! `InService` already set, and `init` starts the kubelet directly; a running or hibernated one
//! resumes with the waiting unit still there.

use std::time::Duration;

use crate::facts::imds::Imds;
use crate::model::TargetLifecycleState;

/// Default time between two reads of the target lifecycle state while held.
pub const POLL: Duration = Duration::from_secs(5);
/// Longest pause after failed reads.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Waits until IMDS says `InService` (or the instance is in no Auto Scaling group any more).
/// Failed reads back off and are retried for ever: only Auto Scaling ends the hold.
pub async fn wait_in_service(imds: &Imds, poll: Duration) -> Option<TargetLifecycleState> {
    let mut last: Option<Option<TargetLifecycleState>> = None;
    let mut pause = poll;
    loop {
        match imds.target_lifecycle_state().await {
            Ok(state) => {
                pause = poll;
                if last.as_ref() != Some(&state) {
                    tracing::info!(state = %state.as_ref().map_or("(none)".into(), TargetLifecycleState::as_text),
                        "warm pool: target lifecycle state");
                    last = Some(state.clone());
                }
                match state {
                    Some(TargetLifecycleState::InService) => return state,
                    None => {
                        tracing::warn!(
                            "warm pool: the instance has no target lifecycle state (not in an Auto Scaling group); releasing the hold"
                        );
                        return None;
                    }
                    Some(_) => {}
                }
            }
            Err(e) => {
                pause = (pause * 2).min(MAX_BACKOFF.max(poll));
                tracing::warn!(error = %crate::model::text::error_chain(&e), retry_in = ?pause, "warm pool: cannot read the target lifecycle state");
            }
        }
        tokio::time::sleep(pause).await;
    }
}
