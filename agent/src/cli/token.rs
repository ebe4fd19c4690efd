//! `eks-node-agent token`: the kubelet's exec credential plugin.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::auth::credentials::{self, Source};
use crate::auth::token::{self, CacheKey, ClusterId, ExecCredential, TokenCache};
use crate::auth::{Clock, SystemClock, ssm};
use crate::exit;
use crate::model::Region;

/// Print a `k8s-aws-v1.` token for the cluster as a Kubernetes ExecCredential.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    eks-node-agent token --cluster-id my-cluster --region us-west-2\n  \
    eks-node-agent token -i my-cluster --region us-west-2 --cache\n  \
    eks-node-agent token -i my-cluster --role-arn arn:aws:iam::123456789012:role/node --token-only\n  \
    eks-node-agent token -i my-cluster --credentials-source ssm   # SSM hybrid node")]
pub struct TokenArgs {
    /// The cluster's name (or its id, for local clusters on Outposts).
    #[arg(long, short = 'i')]
    pub cluster_id: String,
    /// Region of the STS endpoint [default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region].
    #[arg(long)]
    pub region: Option<String>,
    /// Assume this IAM role (STS AssumeRole) before signing.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Session name for --role-arn.
    #[arg(long, requires = "role_arn")]
    pub role_session_name: Option<String>,
    /// Profile of the shared AWS config/credentials files [default: AWS_PROFILE].
    #[arg(long)]
    pub profile: Option<String>,
    /// Where the credentials come from.
    #[arg(long, value_enum, default_value_t = CredentialsSource::Chain)]
    pub credentials_source: CredentialsSource,
    /// Keep the token in the state directory (0600) and reuse it until a minute before it expires.
    #[arg(long)]
    pub cache: bool,
    /// The agent's state directory; the cache is its `token-cache/` subdirectory.
    #[arg(long, env = "EKS_NODE_AGENT_STATE_DIR", default_value = token::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print only the token, not the ExecCredential.
    #[arg(long)]
    pub token_only: bool,
}

/// Credential sources for `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialsSource {
    /// Standard AWS order: environment, profile files, web identity, container, IMDSv2.
    Chain,
    /// The EC2 instance role through IMDSv2 only (AWS_EC2_METADATA_SERVICE_ENDPOINT overrides).
    Imds,
    /// The credentials file of an SSM hybrid activation (AWS_SHARED_CREDENTIALS_FILE or /root/.aws/credentials).
    Ssm,
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<exit::Code> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let out = rt.block_on(token(args, &SystemClock))?;
    println!("{out}");
    Ok(exit::Code::Success)
}

/// Produces what `token` prints.
pub async fn token(args: TokenArgs, clock: &dyn Clock) -> anyhow::Result<String> {
    let env = credentials::process_env;
    let api_version = if args.token_only {
        String::new()
    } else {
        token::exec_api_version(std::env::var("KUBERNETES_EXEC_INFO").ok().as_deref())?
    };
    let cluster = ClusterId::parse(&args.cluster_id, "--cluster-id")?;
    if let Some(arn) = &args.role_arn {
        credentials::validate_role_arn(arn, "--role-arn")?;
    }
    let profile = args.profile.clone().or_else(|| env("AWS_PROFILE"));
    let region: Region =
        credentials::resolve_region(args.region.as_deref(), profile.as_deref(), &env).await?;
    let source = match (args.credentials_source, &args.profile) {
        (CredentialsSource::Chain, Some(p)) => Source::Profile(p.clone()),
        (CredentialsSource::Chain, None) => Source::Chain,
        (CredentialsSource::Imds, _) => Source::Imds(None),
        (CredentialsSource::Ssm, _) => Source::SsmFile(ssm::credentials_file(&env)),
    };

    let cache = args
        .cache
        .then(|| TokenCache::at(args.state_dir.join(token::CACHE_SUBDIR)));
    let key = CacheKey {
        cluster: cluster.clone(),
        region: region.clone(),
        role_arn: args.role_arn.clone(),
        source: match (&source, &profile) {
            (Source::Chain, Some(p)) => format!("profile:{p}"),
            _ => source.name(),
        },
    };
    let cached = cache.as_ref().and_then(|c| c.load(&key, clock.now()));
    let signed = match cached {
        Some(t) => {
            tracing::debug!(cluster = %cluster.as_str(), "reusing the cached token");
            t
        }
        None => {
            let mut provider = credentials::provider(&source, &region, &env).await?;
            let mut source_name = source.name();
            if let Some(arn) = &args.role_arn {
                provider = credentials::assume_role(
                    provider,
                    arn,
                    args.role_session_name.as_deref(),
                    &region,
                )
                .await?;
                source_name = format!("AssumeRole {arn} with {source_name}");
            }
            let creds = credentials::fetch(&provider, &source_name).await?;
            tracing::debug!(cluster = %cluster.as_str(), region = %region, access_key_id = %creds.access_key_id(), "signing a token");
            let t = token::sign_token(&creds, &region, &cluster, clock.now())?;
            if let Some(c) = &cache {
                let (path, bytes) = c.entry(&key, &t);
                if let Err(e) = crate::apply::file::write_secret(&path, &bytes) {
                    // A cache that cannot be written costs a signature next time, nothing more.
                    tracing::warn!(error = %crate::model::text::error_chain(&e), "cannot write the token cache");
                }
            }
            t
        }
    };
    if args.token_only {
        return Ok(signed.token);
    }
    let cred = ExecCredential::new(&api_version, &signed);
    serde_json::to_string(&cred).context("cannot encode the ExecCredential")
}
