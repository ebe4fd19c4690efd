//! Where AWS credentials come from, in the standard AWS order, through aws-config:
//!
//! 1. environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`);
//! 2. the shared config and credentials files for `AWS_PROFILE` (or `--profile`), including
//!    `credential_process` (e.g. `eks-node-agent credentials` for IAM Roles Anywhere) and
//!    `role_arn` + `source_profile`. On SSM hybrid nodes this is the credentials file the SSM
//!    agent maintains (see [`super::ssm`]);
//! 3. web identity and container credentials;
//! 4. the EC2 instance role through IMDSv2 (`AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides the
//!    endpoint).
//!
//! Then, when asked, a role is assumed with STS `AssumeRole` using those credentials.
//! When plain environment credentials are present the chain is skipped entirely: the token
//! path then does no file reads and builds no HTTP client.

use std::path::PathBuf;
use std::time::Duration;

use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use super::Error;
use crate::model::Region;

/// Connect timeout for every credential or STS call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one attempt of a credential or STS call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of a whole credential or STS call, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts per call (the SDK's standard retry mode, exponential backoff with jitter).
pub const MAX_ATTEMPTS: u32 = 3;
/// Session name used for `--role-arn` when none is given.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "eks-node-agent";

/// Which credentials to use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// The standard chain (environment, profile, web identity, container, IMDS), with an
    /// optional profile name instead of `AWS_PROFILE`.
    #[default]
    Chain,
    /// The named profile of the shared config/credentials files.
    Profile(String),
    /// The EC2 instance role through IMDSv2; `Some(url)` overrides the endpoint (otherwise
    /// aws-config reads `AWS_EC2_METADATA_SERVICE_ENDPOINT`, then the link-local address).
    Imds(Option<String>),
    /// The credentials file an SSM hybrid activation keeps (profile `default` of that file).
    SsmFile(PathBuf),
    /// IAM Roles Anywhere with a hybrid node's certificate.
    RolesAnywhere(Box<super::rolesanywhere::NodeIdentity>),
}

impl Source {
    /// A short, secret-free name of the source (for logs and the token cache key).
    pub fn name(&self) -> String {
        match self {
            Source::Chain => "default-chain".into(),
            Source::Profile(p) => format!("profile:{p}"),
            Source::Imds(_) => "imds".into(),
            Source::SsmFile(p) => format!("ssm:{}", p.display()),
            Source::RolesAnywhere(n) => format!("rolesanywhere:{}", n.certificate.display()),
        }
    }
}

/// The process environment, read once, so that tests can pass their own.
pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Reads the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The region for STS: `--region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the
/// profile's `region`. IMDS is not asked: the kubeconfig `init` writes always passes `--region`.
pub async fn resolve_region(
    flag: Option<&str>,
    profile: Option<&str>,
    env: &Env,
) -> Result<Region, Error> {
    if let Some(r) = flag {
        return Ok(Region::parse(r, "--region")?);
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(r) = env(var) {
            return Ok(Region::parse(&r, var)?);
        }
    }
    let mut builder = aws_config::profile::ProfileFileRegionProvider::builder();
    if let Some(p) = profile {
        builder = builder.profile_name(p);
    }
    let region = aws_config::meta::region::ProvideRegion::region(&builder.build()).await;
    match region {
        Some(r) => Ok(Region::parse(
            r.as_ref(),
            "the AWS config profile's `region`",
        )?),
        None => Err(Error::NoRegion),
    }
}

fn provider_config(region: &Region) -> ProviderConfig {
    ProviderConfig::default()
        .with_region(Some(aws_config::Region::new(region.as_str().to_owned())))
        .with_timeout_config(timeouts())
        .with_retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// True when `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are both set.
pub fn env_has_static_keys(env: &Env) -> bool {
    env("AWS_ACCESS_KEY_ID").is_some() && env("AWS_SECRET_ACCESS_KEY").is_some()
}

/// The provider for `source`. For [`Source::Chain`] with keys in the environment this is the
/// environment provider alone (the chain would pick it first anyway).
pub async fn provider(
    source: &Source,
    region: &Region,
    env: &Env,
) -> Result<SharedCredentialsProvider, Error> {
    let conf = provider_config(region);
    let region_cfg = aws_config::Region::new(region.as_str().to_owned());
    Ok(match source {
        Source::Chain if env_has_static_keys(env) => {
            tracing::debug!(
                source = "environment",
                "using AWS credentials from the environment"
            );
            SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            )
        }
        Source::Chain => {
            tracing::debug!(
                source = "default-chain",
                "resolving AWS credentials with the default chain"
            );
            SharedCredentialsProvider::new(
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .configure(conf)
                    .region(region_cfg)
                    .build()
                    .await,
            )
        }
        Source::Profile(name) => {
            tracing::debug!(source = "profile", profile = %name, "using AWS credentials from a profile");
            SharedCredentialsProvider::new(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .configure(&conf)
                    .profile_name(name)
                    .build(),
            )
        }
        Source::SsmFile(path) => {
            tracing::debug!(source = "ssm", path = %path.display(), "using the SSM agent's credentials file");
            let files = aws_runtime::env_config::file::EnvConfigFiles::builder()
                .with_file(
                    aws_runtime::env_config::file::EnvConfigFileKind::Credentials,
                    path,
                )
                .build();
            SharedCredentialsProvider::new(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .configure(&conf)
                    .profile_files(files)
                    .profile_name(super::ssm::SSM_PROFILE)
                    .build(),
            )
        }
        Source::RolesAnywhere(node) => {
            tracing::debug!(source = "rolesanywhere", certificate = %node.certificate.display(), "using IAM Roles Anywhere");
            let client = super::rolesanywhere::RolesAnywhere::for_node(
                node,
                std::sync::Arc::new(super::SystemClock),
            )?;
            SharedCredentialsProvider::new(super::rolesanywhere::RolesAnywhereProvider::new(client))
        }
        Source::Imds(endpoint) => {
            let mut client = aws_config::imds::Client::builder().configure(&conf);
            if let Some(url) = endpoint {
                client = client.endpoint(url).map_err(|e| Error::InvalidInput {
                    source_name: "IMDS endpoint".into(),
                    field: "URL",
                    reason: format!("{url:?}: {e}"),
                })?;
            }
            tracing::debug!(
                source = "imds",
                "using the EC2 instance role through IMDSv2"
            );
            SharedCredentialsProvider::new(
                aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                    .configure(&conf)
                    .imds_client(client.build())
                    .build(),
            )
        }
    })
}

/// A provider that assumes `role_arn` with the credentials of `base`. The STS endpoint is the
/// region's, or `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` when set.
pub async fn assume_role(
    base: SharedCredentialsProvider,
    role_arn: &str,
    session_name: Option<&str>,
    region: &Region,
) -> Result<SharedCredentialsProvider, Error> {
    validate_role_arn(role_arn, "--role-arn")?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.as_str().to_owned()))
        .credentials_provider(base)
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await;
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(session_name.unwrap_or(DEFAULT_ROLE_SESSION_NAME))
        .configure(&sdk)
        .build()
        .await;
    tracing::debug!(role_arn, "assuming a role with STS AssumeRole");
    Ok(SharedCredentialsProvider::new(provider))
}

/// Checks that `arn` looks like an IAM role ARN (`arn:<partition>:iam::<account>:role/<name>`).
pub fn validate_role_arn(arn: &str, source_name: &str) -> Result<(), Error> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            source_name: source_name.into(),
            field: "role ARN",
            reason: format!(
                "{arn:?} is not an IAM role ARN; expected arn:aws:iam::123456789012:role/NAME"
            ),
        })
    }
}

/// Asks `provider` for credentials; `source_name` names it in the error.
pub async fn fetch(
    provider: &SharedCredentialsProvider,
    source_name: &str,
) -> Result<Credentials, Error> {
    provider
        .provide_credentials()
        .await
        .map_err(|source| Error::Credentials {
            source_name: source_name.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_checked() {
        assert!(validate_role_arn("arn:aws:iam::123456789012:role/node", "t").is_ok());
        assert!(validate_role_arn("arn:aws-cn:iam::123456789012:role/path/node", "t").is_ok());
        for bad in [
            "",
            "node",
            "arn:aws:iam::12345:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:user/x",
        ] {
            let err = validate_role_arn(bad, "--role-arn").unwrap_err();
            assert!(
                err.to_string().starts_with("--role-arn: invalid role ARN"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn region_order_is_flag_then_env() {
        let env = |n: &str| match n {
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            "AWS_DEFAULT_REGION" => Some("us-east-1".to_owned()),
            _ => None,
        };
        assert_eq!(
            resolve_region(Some("us-west-2"), None, &env)
                .await
                .unwrap()
                .as_str(),
            "us-west-2"
        );
        assert_eq!(
            resolve_region(None, None, &env).await.unwrap().as_str(),
            "eu-west-1"
        );
        let only_default = |n: &str| (n == "AWS_DEFAULT_REGION").then(|| "ap-south-1".to_owned());
        assert_eq!(
            resolve_region(None, None, &only_default)
                .await
                .unwrap()
                .as_str(),
            "ap-south-1"
        );
        let bad = |n: &str| (n == "AWS_REGION").then(|| "nowhere".to_owned());
        let err = resolve_region(None, None, &bad).await.unwrap_err();
        assert!(
            err.to_string().starts_with("AWS_REGION: invalid region"),
            "{err}"
        );
    }
}
