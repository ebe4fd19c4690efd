//! EC2 DescribeInstances for the instance's private DNS name (the node name on EC2), waiting
//! with backoff while EC2 has not assigned it yet.

use std::time::{Duration, Instant};

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::net::RetryPolicy;

/// How long to wait for EC2 to report a private DNS name.
pub const PRIVATE_DNS_WAIT: Duration = Duration::from_secs(180);
/// First pause while the private DNS name is empty; doubled each time.
pub const PRIVATE_DNS_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause while the private DNS name is empty.
pub const PRIVATE_DNS_MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Errors from EC2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The call failed (after the SDK's own retries).
    #[error("EC2 DescribeInstances for {instance_id} failed: {message}")]
    Call {
        /// The instance asked about.
        instance_id: String,
        /// The SDK error with its causes.
        message: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// EC2 does not know the instance.
    #[error(
        "EC2 DescribeInstances did not return instance {instance_id} (region {region}); check the region and that the credentials belong to the instance's account"
    )]
    NotFound {
        /// The instance asked about.
        instance_id: String,
        /// The region asked.
        region: String,
    },
    /// The private DNS name stayed empty.
    #[error(
        "EC2 reported no PrivateDnsName for {instance_id} after waiting {waited:.0?}; check that the VPC has DNS hostnames turned on"
    )]
    NoPrivateDnsName {
        /// The instance asked about.
        instance_id: String,
        /// How long it waited.
        waited: Duration,
    },
}

/// How long to wait while the private DNS name is empty (a parameter so tests can shorten it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsWait {
    /// Total wait.
    pub total: Duration,
    /// First pause, doubled each time.
    pub initial_backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
}

impl Default for DnsWait {
    fn default() -> Self {
        DnsWait {
            total: PRIVATE_DNS_WAIT,
            initial_backoff: PRIVATE_DNS_INITIAL_BACKOFF,
            max_backoff: PRIVATE_DNS_MAX_BACKOFF,
        }
    }
}

/// An EC2 client bound to the instance's region.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    region: String,
}

impl Ec2 {
    /// An EC2 client from a shared SDK config; `endpoint` overrides the service endpoint
    /// (otherwise the SDK's resolution applies, including `AWS_ENDPOINT_URL_EC2`).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> Ec2 {
        let mut b = aws_sdk_ec2::config::Builder::from(sdk);
        if let Some(url) = endpoint {
            b = b.endpoint_url(url);
        }
        Ec2 {
            client: aws_sdk_ec2::Client::from_conf(b.build()),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }

    /// The instance's `PrivateDnsName`, waiting while it is empty.
    pub async fn private_dns_name(
        &self,
        instance_id: &str,
        wait: DnsWait,
    ) -> Result<String, Error> {
        wait_for_private_dns_name(instance_id, wait, || {
            self.describe_private_dns_name(instance_id)
        })
        .await
    }

    async fn describe_private_dns_name(&self, instance_id: &str) -> Result<String, Error> {
        let out = self
            .client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| Error::Call {
                instance_id: instance_id.to_string(),
                message: sdk_message(&e),
                source: Box::new(e),
            })?;
        let instance = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .ok_or_else(|| Error::NotFound {
                instance_id: instance_id.to_string(),
                region: self.region.clone(),
            })?;
        Ok(instance
            .private_dns_name()
            .unwrap_or_default()
            .trim()
            .to_string())
    }
}

/// Polls `describe` until it returns a non-empty name, with backoff, for at most `wait.total`.
/// Generic over the call so the loop is tested without a network.
pub async fn wait_for_private_dns_name<F, Fut>(
    instance_id: &str,
    wait: DnsWait,
    mut describe: F,
) -> Result<String, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, Error>>,
{
    let started = Instant::now();
    // The pauses are the retry policy's: capped doubling with jitter, so that nodes booted
    // together do not poll in step.
    let policy = RetryPolicy::until(wait.total, wait.initial_backoff, wait.max_backoff);
    let mut tries = 0u32;
    loop {
        tries += 1;
        let name = describe().await?;
        if !name.is_empty() {
            tracing::debug!(instance_id, private_dns_name = %name, tries, "EC2 private DNS name");
            return Ok(name);
        }
        let waited = started.elapsed();
        let pause = policy.jittered_backoff(tries);
        if waited + pause > wait.total {
            return Err(Error::NoPrivateDnsName {
                instance_id: instance_id.to_string(),
                waited,
            });
        }
        tracing::info!(
            instance_id,
            tries,
            waited_secs = waited.as_secs(),
            "EC2 has no private DNS name for the instance yet; waiting"
        );
        tokio::time::sleep(pause).await;
    }
}

/// The service's error code and message, or the whole chain for transport errors.
pub(crate) fn sdk_message<E, R>(e: &aws_sdk_ec2::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: DnsWait = DnsWait {
        total: Duration::from_millis(200),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(8),
    };

    #[tokio::test]
    async fn waits_while_the_name_is_empty() {
        let calls = AtomicU32::new(0);
        let name = wait_for_private_dns_name("i-1", FAST, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(if n < 2 {
                    String::new()
                } else {
                    "ip-10-0-0-1.ec2.internal".to_string()
                })
            }
        })
        .await
        .expect("name");
        assert_eq!(name, "ip-10-0-0-1.ec2.internal");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_with_a_hint_when_the_name_stays_empty() {
        let err = wait_for_private_dns_name("i-1", FAST, || async { Ok(String::new()) })
            .await
            .expect_err("stays empty");
        let msg = err.to_string();
        assert!(
            msg.contains("i-1") && msg.contains("DNS hostnames"),
            "{msg}"
        );
    }
}
