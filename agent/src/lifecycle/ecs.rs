//! Draining an Amazon ECS container instance (the ECS hosts' drain, in place of the Kubernetes
//! eviction drain): UpdateContainerInstancesState to DRAINING with the instance role's
//! credentials, so that ECS stops placing tasks on it and replaces its service tasks
//! elsewhere; then, until the tasks are gone or the deadline, ListTasks (desired RUNNING) on
//! the container instance. The engine completes the Auto Scaling lifecycle action after it, as
//! after a Kubernetes drain. The container instance ARN comes from the agent's introspection
//! API, else from the cluster's container instances whose EC2 instance ID is this instance's.
//! The endpoint follows the SDK's settings (`AWS_ENDPOINT_URL_ECS`).

use std::time::Duration;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::ContainerInstanceStatus;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::drain::Outcome;
use crate::facts::ecs_agent::Introspection;
use crate::facts::imds::Imds;

/// How often the tasks are listed while the instance drains.
pub const POLL: Duration = Duration::from_secs(5);
/// First pause after a failed call (doubling to [`MAX_RETRY`]).
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest pause after a failed call.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Errors of the ECS calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The instance's identity or its role's credentials could not be had.
    #[error("cannot call ECS as the instance")]
    Connect(#[from] super::InstanceRoleError),
    /// A call failed.
    #[error("ECS {call} failed: {message}")]
    Call {
        /// The operation.
        call: &'static str,
        /// The SDK's error with its code and causes.
        message: String,
    },
    /// No container instance of the cluster is this EC2 instance.
    #[error(
        "no container instance of ECS cluster {cluster} is EC2 instance {instance_id} (and the agent's introspection API gave no ARN)"
    )]
    NotRegistered {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance_id: String,
    },
    /// UpdateContainerInstancesState answered with a failure for the instance.
    #[error("ECS refused to set {arn} to DRAINING: {reason}")]
    Refused {
        /// The container instance.
        arn: String,
        /// ECS's reason.
        reason: String,
    },
}

fn call_error<E>(call: &'static str) -> impl FnOnce(aws_sdk_ecs::error::SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| Error::Call {
        call,
        message: super::sdk_error_message(&e),
    }
}

/// What the ECS drain acts on: the cluster, and how to find this host's container instance.
#[derive(Debug, Clone)]
pub struct EcsTarget {
    /// The ECS cluster (`ECS_CLUSTER`).
    pub cluster: String,
    /// The ECS agent's introspection API.
    pub introspection: Introspection,
}

/// The ECS client for this instance.
#[derive(Debug, Clone)]
pub struct Ecs {
    client: aws_sdk_ecs::Client,
    cluster: String,
    instance_id: String,
    introspection: Introspection,
}

impl Ecs {
    /// The client: region and instance ID from the identity document, the instance role's
    /// credentials through the same IMDS endpoint.
    pub async fn connect(imds: &Imds, target: &EcsTarget) -> Result<Ecs, Error> {
        let (sdk, instance_id) = super::instance_role_sdk(imds).await?;
        Ok(Ecs {
            client: aws_sdk_ecs::Client::new(&sdk),
            cluster: target.cluster.clone(),
            instance_id,
            introspection: target.introspection.clone(),
        })
    }

    /// This host's container instance ARN.
    pub async fn container_instance(&self) -> Result<String, Error> {
        match self.introspection.metadata().await {
            Ok(m) => {
                if let Some(arn) = m.container_instance_arn.filter(|a| !a.is_empty()) {
                    return Ok(arn);
                }
            }
            Err(e) => tracing::debug!(error = %e, "no ARN from the ECS agent; asking ECS"),
        }
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_container_instances()
                .cluster(&self.cluster)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(call_error("ListContainerInstances"))?;
            let arns = page.container_instance_arns().to_vec();
            if !arns.is_empty() {
                let described = self
                    .client
                    .describe_container_instances()
                    .cluster(&self.cluster)
                    .set_container_instances(Some(arns))
                    .send()
                    .await
                    .map_err(call_error("DescribeContainerInstances"))?;
                if let Some(arn) = described
                    .container_instances()
                    .iter()
                    .find(|c| c.ec2_instance_id() == Some(self.instance_id.as_str()))
                    .and_then(|c| c.container_instance_arn())
                {
                    return Ok(arn.to_owned());
                }
            }
            match page.next_token() {
                Some(t) => next = Some(t.to_owned()),
                None => {
                    return Err(Error::NotRegistered {
                        cluster: self.cluster.clone(),
                        instance_id: self.instance_id.clone(),
                    });
                }
            }
        }
    }

    /// UpdateContainerInstancesState DRAINING.
    pub async fn set_draining(&self, arn: &str) -> Result<(), Error> {
        let out = self
            .client
            .update_container_instances_state()
            .cluster(&self.cluster)
            .container_instances(arn)
            .status(ContainerInstanceStatus::Draining)
            .send()
            .await
            .map_err(call_error("UpdateContainerInstancesState"))?;
        if let Some(f) = out.failures().first() {
            return Err(Error::Refused {
                arn: arn.to_owned(),
                reason: format!(
                    "{} {}",
                    f.reason().unwrap_or_default(),
                    f.detail().unwrap_or_default()
                )
                .trim()
                .to_owned(),
            });
        }
        Ok(())
    }

    /// The tasks ECS still wants running on the container instance.
    pub async fn running_tasks(&self, arn: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_tasks()
                .cluster(&self.cluster)
                .container_instance(arn)
                .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(call_error("ListTasks"))?;
            out.extend(page.task_arns().iter().cloned());
            match page.next_token() {
                Some(t) => next = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
    }
}

/// Drains the container instance until its tasks are gone or the deadline (which the engine
/// may move): DRAINING first (retried with backoff until it sticks), then the tasks polled
/// every [`POLL`]. The tasks left at the deadline are the outcome's `left`.
pub async fn run(
    imds: std::sync::Arc<Imds>,
    target: EcsTarget,
    mut deadline: watch::Receiver<OffsetDateTime>,
) -> Outcome {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::ZERO;
    let mut arn: Option<(Ecs, String)> = None;
    let mut draining = false;
    let mut left: Vec<String> = vec!["(not drained yet)".to_owned()];
    loop {
        let now = OffsetDateTime::now_utc();
        let until = *deadline.borrow_and_update();
        if now >= until {
            tracing::warn!(left = left.len(), "lifecycle: ECS drain deadline reached");
            break;
        }
        let step = async {
            if arn.is_none() {
                let ecs = Ecs::connect(&imds, &target).await?;
                let a = ecs.container_instance().await?;
                tracing::info!(container_instance = %a, cluster = %target.cluster, "lifecycle: ECS container instance");
                arn = Some((ecs, a));
            }
            let Some((ecs, a)) = &arn else {
                unreachable!("set above")
            };
            if !draining {
                ecs.set_draining(a).await?;
                draining = true;
                tracing::info!(container_instance = %a, "lifecycle: ECS container instance set to DRAINING");
            }
            ecs.running_tasks(a).await
        };
        match step.await {
            Ok(tasks) if tasks.is_empty() => {
                left.clear();
                break;
            }
            Ok(tasks) => {
                tracing::info!(
                    tasks = tasks.len(),
                    "lifecycle: ECS tasks still running on the draining instance"
                );
                left = tasks;
                pause = POLL;
            }
            Err(e) => {
                pause = if pause.is_zero() || pause == POLL {
                    FIRST_RETRY
                } else {
                    (pause * 2).min(MAX_RETRY)
                };
                tracing::error!(error = %crate::model::text::error_chain(&e), retry_in_s = pause.as_secs(),
                    "lifecycle: ECS drain step failed");
            }
        }
        let remaining = (until - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(pause.min(remaining)) => {}
            _ = deadline.changed() => {}
        }
    }
    Outcome {
        left,
        took: started.elapsed(),
    }
}
