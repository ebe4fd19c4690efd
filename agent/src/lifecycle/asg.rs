//! Auto Scaling from the node, with the instance role's credentials (IMDSv2, the daemon's IMDS
//! endpoint): the instance's group (DescribeAutoScalingInstances), its termination hooks
//! (DescribeLifecycleHooks), RecordLifecycleActionHeartbeat while a drain needs more time than
//! a hook's heartbeat timeout, and CompleteLifecycleAction (CONTINUE) once it is done. The
//! lifecycle action is named by the instance ID (the API's alternative to the token, which
//! only the hook's notification target receives). The endpoint follows the SDK's settings
//! (`AWS_ENDPOINT_URL_AUTO_SCALING`); every call has the agent's SDK timeouts and retries.

use std::time::Duration;

use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::facts::imds::Imds;

/// The transition of termination hooks.
pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

/// Errors of the Auto Scaling calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The instance's identity could not be read from IMDS.
    #[error("cannot read the instance identity from IMDS for Auto Scaling")]
    Identity(#[source] crate::facts::imds::Error),
    /// The region is not valid.
    #[error("the instance identity's region is not valid")]
    Region(#[source] crate::model::Invalid),
    /// The instance role's credentials provider could not be built.
    #[error("cannot use the instance role's credentials")]
    Credentials(#[source] crate::auth::Error),
    /// A call failed.
    #[error("Auto Scaling {call} failed: {message}")]
    Call {
        /// The operation.
        call: &'static str,
        /// The SDK's error with its code and causes.
        message: String,
    },
    /// The instance is not in an Auto Scaling group.
    #[error(
        "instance {instance_id} is in no Auto Scaling group (DescribeAutoScalingInstances); set [lifecycle.asg_termination] group_name or check the instance role"
    )]
    NoGroup {
        /// The instance.
        instance_id: String,
    },
}

/// A termination lifecycle hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Its name.
    pub name: String,
    /// Its heartbeat timeout.
    pub heartbeat_timeout: Option<Duration>,
}

/// The Auto Scaling client for this instance.
#[derive(Debug, Clone)]
pub struct Asg {
    client: aws_sdk_autoscaling::Client,
    instance_id: String,
}

fn call_error<E>(
    call: &'static str,
) -> impl FnOnce(aws_sdk_autoscaling::error::SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| {
        let message = match e.code() {
            Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
            None => DisplayErrorContext(&e).to_string(),
        };
        Error::Call { call, message }
    }
}

impl Asg {
    /// The client: region and instance ID from the identity document, the instance role's
    /// credentials through the same IMDS endpoint.
    pub async fn connect(imds: &Imds) -> Result<Asg, Error> {
        let doc = imds.identity_document().await.map_err(Error::Identity)?;
        let region = crate::model::Region::parse(&doc.region, "IMDS instance identity document")
            .map_err(Error::Region)?;
        let source = crate::auth::credentials::Source::Imds(imds.endpoint().map(str::to_owned));
        let provider = crate::auth::credentials::provider(
            &source,
            &region,
            &crate::auth::credentials::process_env,
        )
        .await
        .map_err(Error::Credentials)?;
        let sdk = crate::facts::sdk_config(region.as_str(), Some(provider)).await;
        Ok(Asg {
            client: aws_sdk_autoscaling::Client::new(&sdk),
            instance_id: doc.instance_id,
        })
    }

    /// The instance ID.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The instance's group.
    pub async fn group(&self) -> Result<String, Error> {
        let out = self
            .client
            .describe_auto_scaling_instances()
            .instance_ids(&self.instance_id)
            .send()
            .await
            .map_err(call_error("DescribeAutoScalingInstances"))?;
        out.auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(self.instance_id.as_str()))
            .and_then(|i| i.auto_scaling_group_name())
            .map(str::to_owned)
            .ok_or_else(|| Error::NoGroup {
                instance_id: self.instance_id.clone(),
            })
    }

    /// The group's termination hooks (or the one named).
    pub async fn termination_hooks(
        &self,
        group: &str,
        name: Option<&str>,
    ) -> Result<Vec<Hook>, Error> {
        let mut req = self
            .client
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group);
        if let Some(n) = name {
            req = req.lifecycle_hook_names(n);
        }
        let out = req
            .send()
            .await
            .map_err(call_error("DescribeLifecycleHooks"))?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .filter(|h| h.lifecycle_transition() == Some(TERMINATING))
            .filter_map(|h| {
                Some(Hook {
                    name: h.lifecycle_hook_name()?.to_owned(),
                    heartbeat_timeout: h
                        .heartbeat_timeout()
                        .and_then(|s| u64::try_from(s).ok())
                        .map(Duration::from_secs),
                })
            })
            .collect())
    }

    /// RecordLifecycleActionHeartbeat for this instance.
    pub async fn heartbeat(&self, group: &str, hook: &str) -> Result<(), Error> {
        self.client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(hook)
            .instance_id(&self.instance_id)
            .send()
            .await
            .map_err(call_error("RecordLifecycleActionHeartbeat"))?;
        Ok(())
    }

    /// CompleteLifecycleAction with CONTINUE for this instance.
    pub async fn complete(&self, group: &str, hook: &str) -> Result<(), Error> {
        self.client
            .complete_lifecycle_action()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(hook)
            .instance_id(&self.instance_id)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await
            .map_err(call_error("CompleteLifecycleAction"))?;
        Ok(())
    }
}
