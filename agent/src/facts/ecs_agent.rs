//! The ECS container agent's introspection API on the host's loopback (127.0.0.1:51678):
//! `GET /v1/metadata` (`{"Cluster", "ContainerInstanceArn", "Version"}`; the ARN is null or
//! absent until the agent has registered) and `GET /v1/tasks` (`{"Tasks": [{"Arn",
//! "DesiredStatus", "KnownStatus", "Family", "Version", "Containers"}]}`). Plain HTTP, no
//! proxy, bounded answers; every call a bounded retry (net/).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::net::{Attempt, ClientBuilder, Proxy, RetryPolicy, Trust};

/// Largest answer read from the introspection API (a host with many tasks is a few hundred
/// KiB).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// One request's timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The default bound of [`Introspection::wait_for_registration`].
pub const DEFAULT_REGISTRATION_WAIT: Duration = Duration::from_secs(300);

/// Errors reading the introspection API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is not a URL.
    #[error("ECS agent introspection endpoint {endpoint:?} is not an http URL")]
    Endpoint {
        /// What was given.
        endpoint: String,
    },
    /// The client could not be built.
    #[error("cannot set up the HTTP client for the ECS agent's introspection API")]
    Client(#[source] crate::net::client::Error),
    /// No answer, or an HTTP error, after the retries.
    #[error("ECS agent introspection {url}: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What happened (connection refused, HTTP status...).
        reason: String,
    },
    /// An answer that is not the published JSON.
    #[error("ECS agent introspection {url}: the answer is not the agent's JSON: {reason}")]
    Malformed {
        /// The URL.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The agent did not report a container instance ARN in time.
    #[error(
        "the ECS agent did not register a container instance within {waited_secs}s ({endpoint}/v1/metadata: {last}); check `journalctl -u ecs` and /var/log/ecs/ecs-agent.log: the cluster name and region in /etc/ecs/ecs.config, the host's credentials, and that it reaches the ECS endpoints"
    )]
    NotRegistered {
        /// The endpoint.
        endpoint: String,
        /// How long `init` waited.
        waited_secs: u64,
        /// The last thing the API said (or why it did not answer).
        last: String,
    },
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            Error::Endpoint { .. } => crate::exit::Code::BadInput,
            _ => crate::exit::Code::Failure,
        }
    }
}

/// `GET /v1/metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentMetadata {
    /// The cluster the agent registered with (or is configured for).
    #[serde(rename = "Cluster", default)]
    pub cluster: String,
    /// The container instance ARN; none until registered.
    #[serde(rename = "ContainerInstanceArn", default)]
    pub container_instance_arn: Option<String>,
    /// e.g. `Amazon ECS Agent - v1.82.0 (a1b2c3d4)`.
    #[serde(rename = "Version", default)]
    pub version: String,
}

impl AgentMetadata {
    /// The semantic version in `Version` (`1.82.0`), when there is one.
    pub fn version_number(&self) -> Option<&str> {
        self.version
            .split_whitespace()
            .find_map(|w| w.strip_prefix('v'))
            .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
    }
}

/// One task of `GET /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentTask {
    /// The task ARN.
    #[serde(rename = "Arn", default)]
    pub arn: String,
    /// What ECS wants (`RUNNING`, `STOPPED`).
    #[serde(rename = "DesiredStatus", default)]
    pub desired_status: String,
    /// What the agent last saw (`PENDING`, `RUNNING`, `STOPPED`...).
    #[serde(rename = "KnownStatus", default)]
    pub known_status: String,
    /// The task definition family.
    #[serde(rename = "Family", default)]
    pub family: String,
}

#[derive(Debug, Deserialize)]
struct TasksAnswer {
    #[serde(rename = "Tasks", default)]
    tasks: Vec<AgentTask>,
}

/// The tasks by known status (`RUNNING` -> 3).
pub fn tasks_by_state(tasks: &[AgentTask]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for t in tasks {
        *out.entry(t.known_status.clone()).or_insert(0) += 1;
    }
    out
}

/// Parses a `GET /v1/metadata` answer.
pub fn parse_metadata(body: &[u8]) -> Result<AgentMetadata, serde_json::Error> {
    serde_json::from_slice(body)
}

/// Parses a `GET /v1/tasks` answer.
pub fn parse_tasks(body: &[u8]) -> Result<Vec<AgentTask>, serde_json::Error> {
    Ok(serde_json::from_slice::<TasksAnswer>(body)?.tasks)
}

/// A client of the introspection API.
#[derive(Debug, Clone)]
pub struct Introspection {
    endpoint: String,
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl Introspection {
    /// A client of the API at `endpoint` (`http://127.0.0.1:51678`).
    pub fn new(endpoint: &str) -> Result<Introspection, Error> {
        let url = url::Url::parse(endpoint).map_err(|_| Error::Endpoint {
            endpoint: endpoint.to_owned(),
        })?;
        if url.scheme() != "http" {
            return Err(Error::Endpoint {
                endpoint: endpoint.to_owned(),
            });
        }
        let client = ClientBuilder::new()
            .trust(Trust::None)
            .proxy(Proxy::Never)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(Error::Client)?;
        Ok(Introspection {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            client,
            policy: crate::net::retry::QUICK,
        })
    }

    /// The same client with another retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Introspection {
        self.policy = policy;
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn get_once(&self, url: &str) -> Attempt<Vec<u8>, Error> {
        let failed = |reason: String| Error::Request {
            url: url.to_owned(),
            reason,
        };
        let resp = match self.client.get(url).send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(failed(crate::model::text::error_chain(&e))),
        };
        let status = resp.status();
        if !status.is_success() {
            let e = failed(format!("HTTP {status}"));
            return if status.is_server_error() {
                Attempt::Retry(e)
            } else {
                Attempt::Fail(e)
            };
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Attempt::Fail(failed(format!(
                "answer larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        match resp.bytes().await {
            Ok(b) if b.len() > MAX_ANSWER_BYTES => Attempt::Fail(failed(format!(
                "answer larger than {MAX_ANSWER_BYTES} bytes"
            ))),
            Ok(b) => Attempt::Done(b.to_vec()),
            Err(e) => Attempt::Retry(failed(crate::model::text::error_chain(&e))),
        }
    }

    async fn get_json<T>(
        &self,
        path: &str,
        parse: fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, Error> {
        let url = format!("{}{path}", self.endpoint);
        let (result, _) = self
            .policy
            .run(
                |_| self.get_once(&url),
                |_, bound| Error::Request {
                    url: url.clone(),
                    reason: format!("no answer within {}ms", bound.as_millis()),
                },
            )
            .await;
        let body = result?;
        parse(&body).map_err(|e| Error::Malformed {
            url,
            reason: e.to_string(),
        })
    }

    /// `GET /v1/metadata`.
    pub async fn metadata(&self) -> Result<AgentMetadata, Error> {
        self.get_json("/v1/metadata", parse_metadata).await
    }

    /// `GET /v1/tasks`.
    pub async fn tasks(&self) -> Result<Vec<AgentTask>, Error> {
        self.get_json("/v1/tasks", parse_tasks).await
    }

    /// Polls `/v1/metadata` until the agent reports a container instance ARN, for at most
    /// `bound` (pauses from 1 s doubling to 10 s). The metadata with the ARN, or
    /// [`Error::NotRegistered`] with the last answer.
    pub async fn wait_for_registration(&self, bound: Duration) -> Result<AgentMetadata, Error> {
        let started = std::time::Instant::now();
        let poll = RetryPolicy {
            attempt_timeout: REQUEST_TIMEOUT,
            ..RetryPolicy::until(bound, Duration::from_secs(1), Duration::from_secs(10))
        };
        let once = Introspection {
            policy: RetryPolicy {
                max_attempts: 1,
                ..self.policy
            },
            ..self.clone()
        };
        let last = std::sync::Mutex::new(String::from("no answer yet"));
        let (result, _) = poll
            .run(
                |_| async {
                    match once.metadata().await {
                        Ok(m)
                            if m.container_instance_arn
                                .as_deref()
                                .is_some_and(|a| !a.is_empty()) =>
                        {
                            Attempt::Done(m)
                        }
                        Ok(m) => {
                            *last.lock().unwrap_or_else(|p| p.into_inner()) = format!(
                                "answered without a ContainerInstanceArn (cluster {:?})",
                                m.cluster
                            );
                            Attempt::Retry(())
                        }
                        Err(e) => {
                            *last.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
                            Attempt::Retry(())
                        }
                    }
                },
                |_, _| (),
            )
            .await;
        result.map_err(|()| Error::NotRegistered {
            endpoint: self.endpoint.clone(),
            waited_secs: started.elapsed().as_secs(),
            last: last.into_inner().unwrap_or_else(|p| p.into_inner()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_tasks_read_the_published_json() {
        let m: AgentMetadata = serde_json::from_str(
            r#"{"Cluster":"prod","ContainerInstanceArn":"arn:aws:ecs:us-west-2:123456789012:container-instance/prod/0123","Version":"Amazon ECS Agent - v1.82.0 (abcdef12)"}"#,
        )
        .unwrap();
        assert_eq!(m.version_number(), Some("1.82.0"));
        let unregistered: AgentMetadata =
            serde_json::from_str(r#"{"Cluster":"prod","ContainerInstanceArn":null,"Version":""}"#)
                .unwrap();
        assert_eq!(unregistered.container_instance_arn, None);
        let t: TasksAnswer = serde_json::from_str(
            r#"{"Tasks":[{"Arn":"a","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"web","Version":"3","Containers":[]},{"Arn":"b","DesiredStatus":"STOPPED","KnownStatus":"STOPPED","Family":"web","Version":"3","Containers":[]}]}"#,
        )
        .unwrap();
        let by = tasks_by_state(&t.tasks);
        assert_eq!(by["RUNNING"], 1);
        assert_eq!(by["STOPPED"], 1);
    }
}
