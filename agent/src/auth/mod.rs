//! IAM authentication for the node: the kubelet's `k8s-aws-v1.` token and the AWS credentials
//! behind it.
//!
//! - [`token`]: the presigned STS `GetCallerIdentity` URL the API server's authenticator checks,
//!   wrapped in a Kubernetes `ExecCredential`, with an on-disk cache.
//! - [`credentials`]: where credentials come from, in the standard AWS order (environment,
//!   shared config/credentials files, IMDSv2 instance role), plus an optional role to assume.
//! - [`rolesanywhere`]: IAM Roles Anywhere `CreateSession`, signed with an X.509 private key.
//! - [`ssm`]: SSM hybrid activations: the credentials file the SSM agent maintains and the
//!   `amazon-ssm-agent -register` call.
//!
//! Secrets (secret keys, session tokens, activation codes) never reach logs or error messages:
//! errors name the source and the field, never the value.

pub mod credentials;
pub mod rolesanywhere;
pub mod ssm;
pub mod token;

use std::path::PathBuf;
use std::time::SystemTime;

use crate::exit;

/// The clock used for signing and expiry decisions; production uses [`SystemClock`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that always returns the same instant (tests, reproducible vectors).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// Everything that can go wrong while getting credentials or a token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value given on the command line or in the environment is not valid.
    #[error("{source_name}: invalid {field}: {reason}")]
    InvalidInput {
        /// Where the value came from (flag or variable name).
        source_name: String,
        /// Which value.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A value that does not parse into its type (a region, say).
    #[error(transparent)]
    Invalid(#[from] crate::model::Invalid),
    /// No region could be found for the STS endpoint.
    #[error(
        "no AWS region: pass --region, or set AWS_REGION (or AWS_DEFAULT_REGION), or `region` in the AWS config profile"
    )]
    NoRegion,
    /// A file could not be read.
    #[error("cannot read {what} {}", path.display())]
    Read {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {what} {}", path.display())]
    Write {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key file does not hold what it should.
    #[error("{what} {}: {reason}", path.display())]
    BadPem {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The credential provider chain found no credentials or failed.
    #[error("no AWS credentials from {source_name}")]
    Credentials {
        /// Which provider (or chain) was asked.
        source_name: String,
        /// The provider's error.
        #[source]
        source: aws_credential_types::provider::error::CredentialsError,
    },
    /// Signing the STS request failed.
    #[error("cannot presign the STS GetCallerIdentity request for {host}")]
    Sign {
        /// The STS host.
        host: String,
        /// The signer's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A service answered with an error.
    #[error("{service} at {endpoint} answered HTTP {status} {code}: {message}")]
    Service {
        /// The service.
        service: &'static str,
        /// The endpoint URL.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The AWS error code (`AccessDeniedException`, ...).
        code: String,
        /// The service's message.
        message: String,
    },
    /// The request did not reach the service or no answer came back in time.
    #[error("{service} at {endpoint}: request failed after {attempts} attempt(s)")]
    Transport {
        /// The service.
        service: &'static str,
        /// The endpoint URL.
        endpoint: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The HTTPS client for a service could not be set up (an unusable `AWS_CA_BUNDLE`, a
    /// proxy setting that is not a URL).
    #[error("cannot set up the HTTPS client for {service}")]
    HttpClient {
        /// The service.
        service: &'static str,
        /// What was wrong.
        #[source]
        source: crate::net::client::Error,
    },
    /// A service's answer could not be understood.
    #[error("{service} at {endpoint}: unexpected response: {reason}")]
    BadResponse {
        /// The service.
        service: &'static str,
        /// The endpoint URL.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// `amazon-ssm-agent -register` failed.
    #[error("SSM hybrid activation failed: {reason}")]
    SsmRegistration {
        /// What happened and what to do.
        reason: String,
        /// Whether the activation itself (code, id, region) is at fault.
        bad_activation: bool,
    },
}

impl exit::Classify for Error {
    fn exit_code(&self) -> exit::Code {
        match self {
            Error::InvalidInput { .. }
            | Error::Invalid(_)
            | Error::NoRegion
            | Error::BadPem { .. } => exit::Code::BadInput,
            Error::Read { source, .. } => exit::io_code(source),
            Error::SsmRegistration {
                bad_activation: true,
                ..
            } => exit::Code::BadInput,
            Error::HttpClient { source, .. } => exit::Classify::exit_code(source),
            _ => exit::Code::Failure,
        }
    }
}
