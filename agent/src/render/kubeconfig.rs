//! kubelet's kubeconfig: the API server, the cluster CA file, and an exec user that runs this
//! binary's `token` subcommand (kubelet calls it for every fresh credential). On a kubeadm
//! join, the bootstrap kubeconfig instead: the CA embedded and the bootstrap token.

use base64::Engine as _;

use serde::Serialize;

use crate::model::paths;
use crate::model::{NodeKind, NodeValues};

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: Vec<Named<ClusterEntry>>,
    contexts: Vec<Named<ContextEntry>>,
    current_context: String,
    users: Vec<Named<UserEntry>>,
}

#[derive(Serialize)]
struct Named<T> {
    name: String,
    #[serde(flatten)]
    value: T,
}

#[derive(Serialize)]
struct ClusterEntry {
    cluster: Cluster,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_authority: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_authority_data: Option<String>,
    server: String,
}

#[derive(Serialize)]
struct ContextEntry {
    context: Context,
}

#[derive(Serialize)]
struct Context {
    cluster: String,
    user: String,
}

#[derive(Serialize)]
struct UserEntry {
    user: User,
}

#[derive(Serialize)]
struct User {
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<Exec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Exec {
    api_version: &'static str,
    command: String,
    args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<EnvVar>,
    interactive_mode: &'static str,
    provide_cluster_info: bool,
}

#[derive(Serialize)]
struct EnvVar {
    name: String,
    value: String,
}

/// The exec-credential API version the plugin speaks.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";

/// Renders the kubeconfig (the bootstrap kubeconfig on Outposts, where kubelet then writes its
/// own from the signed client certificate).
pub fn render(node: &NodeValues) -> String {
    let cluster_id = match node.kind {
        NodeKind::Outpost => node
            .cluster_id
            .clone()
            .unwrap_or_else(|| node.cluster_name.to_string()),
        _ => node.cluster_name.to_string(),
    };
    let exec = Exec {
        api_version: EXEC_API_VERSION,
        command: node.agent_binary.display().to_string(),
        args: vec![
            "token".into(),
            "--cluster-id".into(),
            cluster_id,
            "--region".into(),
            node.region.clone(),
        ],
        env: node
            .exec_env
            .iter()
            .map(|(k, v)| EnvVar {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
        interactive_mode: "Never",
        provide_cluster_info: false,
    };
    let doc = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: vec![Named {
            name: "kubernetes".into(),
            value: ClusterEntry {
                cluster: Cluster {
                    certificate_authority: Some(paths::CLUSTER_CA),
                    certificate_authority_data: None,
                    server: node.api_server_endpoint.clone(),
                },
            },
        }],
        contexts: vec![Named {
            name: "kubelet".into(),
            value: ContextEntry {
                context: Context {
                    cluster: "kubernetes".into(),
                    user: "kubelet".into(),
                },
            },
        }],
        current_context: "kubelet".into(),
        users: vec![Named {
            name: "kubelet".into(),
            value: UserEntry {
                user: User {
                    exec: Some(exec),
                    token: None,
                },
            },
        }],
    };
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

/// The user name kubeadm gives the bootstrap token in the bootstrap kubeconfig.
pub const TLS_BOOTSTRAP_USER: &str = "tls-bootstrap-token-user";

/// Renders the bootstrap kubeconfig of a kubeadm join, as `kubeadm join` writes it: the
/// verified server with the CA from cluster-info embedded, and the bootstrap token. kubelet
/// uses it once to have its client certificate signed, then writes its own kubeconfig.
pub fn render_bootstrap_token(node: &NodeValues, token: &str) -> String {
    let cluster = node.cluster_name.to_string();
    let context = format!("{TLS_BOOTSTRAP_USER}@{cluster}");
    let doc = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: vec![Named {
            name: cluster.clone(),
            value: ClusterEntry {
                cluster: Cluster {
                    certificate_authority: None,
                    certificate_authority_data: Some(
                        base64::engine::general_purpose::STANDARD.encode(&node.ca_pem),
                    ),
                    server: node.api_server_endpoint.clone(),
                },
            },
        }],
        contexts: vec![Named {
            name: context.clone(),
            value: ContextEntry {
                context: Context {
                    cluster,
                    user: TLS_BOOTSTRAP_USER.into(),
                },
            },
        }],
        current_context: context,
        users: vec![Named {
            name: TLS_BOOTSTRAP_USER.into(),
            value: UserEntry {
                user: User {
                    exec: None,
                    token: Some(token.to_owned()),
                },
            },
        }],
    };
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}
