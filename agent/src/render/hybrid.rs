//! EKS Hybrid Nodes with IAM Roles Anywhere: the AWS config that points every AWS SDK on the
//! host (kubelet's credential plugin, the ECR credential provider) at this binary's
//! `credentials` command, which signs CreateSession with the node's certificate; and, with
//! `enableCredentialsFile`, the credentials file pods mount (`/eks-hybrid/.aws/credentials`),
//! kept fresh by a service of this binary (Roles Anywhere) or linked to the SSM agent's.

use super::plan::{FileSpec, HostAction, ServiceSpec};
use crate::config::NodeConfig;
use crate::model::NodeValues;
use crate::model::paths::{
    HYBRID_AWS_CONFIG, HYBRID_CREDENTIALS_DIR, HYBRID_CREDENTIALS_FILE,
    ROLES_ANYWHERE_CERTIFICATE as DEFAULT_CERTIFICATE,
    ROLES_ANYWHERE_PRIVATE_KEY as DEFAULT_PRIVATE_KEY, SSM_CREDENTIALS_DIR, SYSTEMD_UNIT_DIR,
};

/// The unit that keeps the Roles Anywhere credentials file fresh.
pub const CREDENTIALS_FILE_UNIT: &str = "eks-node-agent-credentials-file.service";

/// A word of a systemd `ExecStart=` line: quoted as [`super::systemd_quote`] does, with `$`
/// and `%` doubled so that systemd expands neither variables nor specifiers in it.
fn exec_word(value: &str) -> String {
    super::systemd_quote(&value.replace('$', "$$").replace('%', "%%"))
}

/// `enableCredentialsFile` on a Roles Anywhere node: the unit running
/// `eks-node-agent credentials --update-file /eks-hybrid/.aws/credentials`, which refreshes the
/// file before its credentials expire (nodeadm runs `aws_signing_helper update` the same way).
pub fn credentials_file_service(
    config: &NodeConfig,
    node: &NodeValues,
) -> Option<(FileSpec, ServiceSpec)> {
    if !config.credentials_file_enabled() {
        return None;
    }
    let ira = config.spec.hybrid.as_ref()?.iam_roles_anywhere.as_ref()?;
    let args: Vec<(&str, &str)> = vec![
        (
            "--certificate",
            ira.certificate_path
                .as_deref()
                .unwrap_or(DEFAULT_CERTIFICATE),
        ),
        (
            "--private-key",
            ira.private_key_path
                .as_deref()
                .unwrap_or(DEFAULT_PRIVATE_KEY),
        ),
        (
            "--trust-anchor-arn",
            ira.trust_anchor_arn.as_deref().unwrap_or_default(),
        ),
        (
            "--profile-arn",
            ira.profile_arn.as_deref().unwrap_or_default(),
        ),
        ("--role-arn", ira.role_arn.as_deref().unwrap_or_default()),
        ("--role-session-name", node.node_name.as_str()),
        ("--region", &node.region),
        ("--update-file", HYBRID_CREDENTIALS_FILE),
    ];
    let mut exec = exec_word(&node.agent_binary.display().to_string());
    exec.push_str(" credentials");
    for (flag, value) in args {
        exec.push(' ');
        exec.push_str(flag);
        exec.push(' ');
        exec.push_str(&exec_word(value));
    }
    let unit = format!(
        "# Written by eks-node-agent (spec.hybrid.enableCredentialsFile): keeps {HYBRID_CREDENTIALS_FILE}\n\
         # fresh with IAM Roles Anywhere credentials, for pods that mount it.\n\
         [Unit]\n\
         Description=EKS node agent: the IAM Roles Anywhere credentials file for pods\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart={exec}\n\
         Restart=always\n\
         RestartSec=10s\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    );
    Some((
        FileSpec::new(
            format!("{SYSTEMD_UNIT_DIR}/{CREDENTIALS_FILE_UNIT}"),
            unit,
            &[CREDENTIALS_FILE_UNIT],
        ),
        ServiceSpec {
            unit: CREDENTIALS_FILE_UNIT.into(),
            wait_for_socket: None,
        },
    ))
}

/// `enableCredentialsFile` on an SSM node: `/eks-hybrid/.aws` links to the SSM agent's
/// `/root/.aws`, which the agent keeps fresh (as nodeadm does).
pub fn credentials_file_link(config: &NodeConfig) -> Option<HostAction> {
    let hybrid = config.spec.hybrid.as_ref()?;
    (config.credentials_file_enabled() && hybrid.ssm.is_some()).then(|| HostAction::Symlink {
        link: HYBRID_CREDENTIALS_DIR.into(),
        target: SSM_CREDENTIALS_DIR.into(),
    })
}

/// The AWS config file for a Roles Anywhere node (None for other nodes).
pub fn aws_config(config: &NodeConfig, node: &NodeValues) -> Option<FileSpec> {
    let ira = config.spec.hybrid.as_ref()?.iam_roles_anywhere.as_ref()?;
    let path = ira
        .aws_config_path
        .clone()
        .unwrap_or_else(|| HYBRID_AWS_CONFIG.into());
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
    process.push_str(&arg("--role-session-name", node.node_name.as_str()));
    process.push_str(&arg("--region", &node.region));
    let text = format!(
        "# Written by eks-node-agent: IAM Roles Anywhere credentials for this hybrid node.\n[default]\nregion = {}\ncredential_process = {process}\n",
        node.region
    );
    Some(FileSpec::new(path, text, &["kubelet.service"]))
}

/// credential_process is split like a shell command line by the SDKs; quote values that need it.
fn quote_ini(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "/:._-=@".contains(ch))
    {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The `--certificate` of the `credential_process` in an AWS config written by
/// [`aws_config`] (read back by the daemon to watch the certificate's expiry).
pub fn certificate_of(aws_config: &str) -> Option<std::path::PathBuf> {
    let process = aws_config.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        (key.trim() == "credential_process").then(|| value.trim())
    })?;
    let words = split_ini(process);
    let at = words.iter().position(|w| w == "--certificate")?;
    words.get(at + 1).map(std::path::PathBuf::from)
}

/// Splits a `credential_process` value into words: the inverse of [`quote_ini`].
fn split_ini(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars();
    let mut word: Option<String> = None;
    while let Some(ch) = chars.next() {
        match ch {
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        other => w.push(other),
                    }
                }
            }
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_process_words_round_trip() {
        for value in [
            "/etc/iam/pki/server.pem",
            "/etc/my pki/node.pem",
            "/odd\"quote\\back slash",
            "",
        ] {
            let text = format!(
                "[default]\nregion = us-west-2\ncredential_process = /usr/bin/eks-node-agent credentials --certificate {} --private-key /k\n",
                quote_ini(value)
            );
            assert_eq!(
                certificate_of(&text),
                Some(std::path::PathBuf::from(value)),
                "{text}"
            );
        }
        assert_eq!(certificate_of("[default]\nregion = x\n"), None);
    }
}
