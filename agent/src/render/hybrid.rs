//! EKS Hybrid Nodes with IAM Roles Anywhere: the AWS config that points every AWS SDK on the
//! host (kubelet's credential plugin, the ECR credential provider) at this binary's
//! `credentials` command, which signs CreateSession with the node's certificate.

use super::node::NodeValues;
use super::plan::FileSpec;
use crate::compute::values::DEFAULT_HYBRID_AWS_CONFIG;
use crate::config::NodeConfig;

/// nodeadm's default certificate and key paths.
pub const DEFAULT_CERTIFICATE: &str = "/etc/iam/pki/server.pem";
pub const DEFAULT_PRIVATE_KEY: &str = "/etc/iam/pki/server.key";

/// The AWS config file for a Roles Anywhere node (None for other nodes).
pub fn aws_config(config: &NodeConfig, node: &NodeValues) -> Option<FileSpec> {
    let ira = config.spec.hybrid.as_ref()?.iam_roles_anywhere.as_ref()?;
    let path = ira
        .aws_config_path
        .clone()
        .unwrap_or_else(|| DEFAULT_HYBRID_AWS_CONFIG.into());
    let arg = |flag: &str, value: &str| format!(" {flag} {}", quote_ini(value));
    let mut process = node.agent_binary.display().to_string();
    process.push_str(" credentials");
    process.push_str(&arg(
        "--certificate",
        ira.certificate_path
            .as_deref()
            .unwrap_or(DEFAULT_CERTIFICATE),
    ));
    process.push_str(&arg(
        "--private-key",
        ira.private_key_path
            .as_deref()
            .unwrap_or(DEFAULT_PRIVATE_KEY),
    ));
    process.push_str(&arg(
        "--trust-anchor-arn",
        ira.trust_anchor_arn.as_deref().unwrap_or_default(),
    ));
    process.push_str(&arg(
        "--profile-arn",
        ira.profile_arn.as_deref().unwrap_or_default(),
    ));
    process.push_str(&arg(
        "--role-arn",
        ira.role_arn.as_deref().unwrap_or_default(),
    ));
    process.push_str(&arg("--role-session-name", &node.node_name));
    process.push_str(&arg("--region", &node.region));
    let text = format!(
        "# Written by eks-node-agent: IAM Roles Anywhere credentials for this hybrid node.\n[default]\nregion = {}\ncredential_process = {process}\n",
        node.region
    );
    Some(FileSpec::new(path, text, &["kubelet.service"]))
}

/// credential_process is split like a shell command line by the SDKs; quote values that need it.
fn quote_ini(value: &str) -> String {
    if value
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || "/:._-=@".contains(ch))
    {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}
