//! `eks-node-agent credentials`: IAM Roles Anywhere credentials in the `credential_process`
//! format, for the token path and for other tools on the host (e.g. the ECR credential
//! provider): `credential_process = eks-node-agent credentials --certificate ... ...`.
//!
//! With `--update-file PATH` it keeps an AWS shared credentials file fresh instead, as
//! `aws_signing_helper update` does for nodeadm's `enableCredentialsFile`: new credentials a
//! while before the old ones expire, each written atomically with mode 0600, until stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Keep this AWS shared credentials file (profile `default`) fresh instead of printing:
    /// runs until stopped, renewing the credentials before they expire.
    #[arg(long, value_name = "PATH")]
    pub update_file: Option<PathBuf>,
    /// With --update-file: how many seconds before expiry the credentials are renewed.
    #[arg(long, value_name = "SECS", default_value_t = rolesanywhere::REFRESH_BEFORE_EXPIRY.as_secs(), requires = "update_file")]
    pub refresh_before: u64,
}

/// Pauses after a failed renewal: from this...
const RENEW_RETRY_START: Duration = Duration::from_secs(1);
/// ...doubling to this.
const RENEW_RETRY_MAX: Duration = Duration::from_secs(60);
/// The shortest wait between two renewals.
const MIN_RENEW_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) fn run(args: CredentialsArgs) -> anyhow::Result<exit::Code> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Some(path) = args.update_file.clone() {
        rt.block_on(keep_file_fresh(args, &path, Arc::new(SystemClock)))?;
        return Ok(exit::Code::Success);
    }
    let out = rt.block_on(credentials(args, Arc::new(SystemClock)))?;
    println!("{out}");
    Ok(exit::Code::Success)
}

/// The shared credentials file of one session (profile `default`).
fn credentials_file(creds: &rolesanywhere::SessionCredentials) -> String {
    format!(
        "# Written by eks-node-agent: IAM Roles Anywhere credentials, renewed before they expire ({}).\n[default]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
        crate::model::text::rfc3339(creds.expiration),
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token
    )
}

/// Renews the credentials in `path` until SIGTERM or SIGINT: each session written atomically
/// (mode 0600), the next asked for `--refresh-before` seconds before it expires; a failed
/// renewal is retried with backoff (the file keeps the last good credentials meanwhile).
async fn keep_file_fresh(
    args: CredentialsArgs,
    path: &Path,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let refresh_before = Duration::from_secs(args.refresh_before);
    let ra = client(&args, clock.clone())?;
    let backoff = crate::net::RetryPolicy::until(Duration::MAX, RENEW_RETRY_START, RENEW_RETRY_MAX);
    let mut failures = 0u32;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    loop {
        let wait = match ra.create_session().await {
            Ok(creds) => {
                failures = 0;
                crate::apply::file::write_secret(path, credentials_file(&creds).as_bytes())?;
                tracing::info!(path = %path.display(), access_key_id = %creds.access_key_id,
                    expiration = %crate::model::text::rfc3339(creds.expiration), "credentials file renewed");
                creds
                    .expiration
                    .duration_since(clock.now())
                    .unwrap_or_default()
                    .saturating_sub(refresh_before)
                    .max(MIN_RENEW_INTERVAL)
            }
            Err(e) => {
                failures += 1;
                let wait = backoff.jittered_backoff(failures);
                tracing::error!(error = %crate::model::text::error_chain(&e), retry_in_ms = wait.as_millis() as u64,
                    "cannot renew the credentials file; it keeps the last credentials");
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The region of the trust anchor ARN (`arn:aws:rolesanywhere:REGION:...`).
fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// The Roles Anywhere client the arguments describe.
fn client(args: &CredentialsArgs, clock: Arc<dyn Clock>) -> anyhow::Result<RolesAnywhere> {
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
    Ok(RolesAnywhere::new(
        identity,
        params,
        region,
        args.endpoint.as_deref(),
        client,
        clock,
    )?)
}

/// Produces what `credentials` prints.
pub async fn credentials(args: CredentialsArgs, clock: Arc<dyn Clock>) -> anyhow::Result<String> {
    let ra = client(&args, clock)?;
    let creds = ra.create_session().await?;
    tracing::debug!(access_key_id = %creds.access_key_id, expiration = %crate::model::text::rfc3339(creds.expiration), "got IAM Roles Anywhere credentials");
    serde_json::to_string(&CredentialProcessOutput::from(&creds))
        .context("cannot encode the credentials")
}
