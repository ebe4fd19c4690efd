//! `eks-node-agent credentials`: IAM Roles Anywhere credentials in the `credential_process`
//! format, for the token path and for other tools on the host (e.g. the ECR credential
//! provider): `credential_process = eks-node-agent credentials --certificate ... ...`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::auth::rolesanywhere::{
    self, CredentialProcessOutput, RolesAnywhere, SessionParams, X509Identity,
};
use crate::auth::{Clock, Error, SystemClock};
use crate::exit;
use crate::model::Region;

/// Get temporary credentials from IAM Roles Anywhere and print them as credential_process JSON.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    eks-node-agent credentials --certificate /etc/iam/pki/server.pem --private-key /etc/iam/pki/server.key \\\n    \
    --trust-anchor-arn arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/TA \\\n    \
    --profile-arn arn:aws:rolesanywhere:us-west-2:123456789012:profile/P \\\n    \
    --role-arn arn:aws:iam::123456789012:role/eks-hybrid-node\n\n\
    In ~/.aws/config:\n  \
    [profile node]\n  \
    credential_process = /usr/bin/eks-node-agent credentials --certificate ... --role-arn ...")]
pub struct CredentialsArgs {
    /// The node's X.509 certificate (PEM; intermediates may follow it in the same file).
    #[arg(long)]
    pub certificate: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; unencrypted).
    #[arg(long)]
    pub private_key: PathBuf,
    /// More intermediate CA certificates (PEM), sent in X-Amz-X509-Chain.
    #[arg(long)]
    pub intermediates: Option<PathBuf>,
    /// The Roles Anywhere trust anchor ARN.
    #[arg(long)]
    pub trust_anchor_arn: String,
    /// The Roles Anywhere profile ARN.
    #[arg(long)]
    pub profile_arn: String,
    /// The IAM role to get credentials for.
    #[arg(long)]
    pub role_arn: String,
    /// The role session name [default: the certificate's serial number].
    #[arg(long)]
    pub role_session_name: Option<String>,
    /// Session length in seconds (900 to 43200).
    #[arg(long, default_value_t = rolesanywhere::DEFAULT_DURATION_SECS)]
    pub session_duration: u32,
    /// Region of the Roles Anywhere endpoint [default: the trust anchor ARN's region].
    #[arg(long)]
    pub region: Option<String>,
    /// Roles Anywhere endpoint URL [default: https://rolesanywhere.REGION.amazonaws.com].
    #[arg(long, env = "AWS_ENDPOINT_URL_ROLESANYWHERE")]
    pub endpoint: Option<String>,
}

pub(crate) fn run(args: CredentialsArgs) -> anyhow::Result<exit::Code> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let out = rt.block_on(credentials(args, Arc::new(SystemClock)))?;
    println!("{out}");
    Ok(exit::Code::Success)
}

/// The region of the trust anchor ARN (`arn:aws:rolesanywhere:REGION:...`).
fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Produces what `credentials` prints.
pub async fn credentials(args: CredentialsArgs, clock: Arc<dyn Clock>) -> anyhow::Result<String> {
    let params = SessionParams {
        trust_anchor_arn: args.trust_anchor_arn.clone(),
        profile_arn: args.profile_arn.clone(),
        role_arn: args.role_arn.clone(),
        role_session_name: args.role_session_name.clone(),
        duration_secs: args.session_duration,
    };
    params.validate()?;
    let region = match (&args.region, region_of(&args.trust_anchor_arn)) {
        (Some(r), _) => Region::parse(r, "--region")?,
        (None, Some(r)) => Region::parse(r, "--trust-anchor-arn")?,
        (None, None) => return Err(Error::NoRegion.into()),
    };
    let identity = X509Identity::load(
        &args.certificate,
        &args.private_key,
        args.intermediates.as_deref(),
    )?;
    let ca_bundle = std::env::var_os("AWS_CA_BUNDLE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let client = rolesanywhere::https_client(ca_bundle.as_deref())?;
    let ra = RolesAnywhere::new(
        identity,
        params,
        region,
        args.endpoint.as_deref(),
        client,
        clock,
    )?;
    let creds = ra.create_session().await?;
    tracing::debug!(access_key_id = %creds.access_key_id, expiration = %crate::model::text::rfc3339(creds.expiration), "got IAM Roles Anywhere credentials");
    serde_json::to_string(&CredentialProcessOutput::from(&creds))
        .context("cannot encode the credentials")
}
