//! kubelet's kubeconfig: the API server, the cluster CA file, and an exec user that runs this
//! binary's `token` subcommand (kubelet calls it for every fresh credential).

use serde::Serialize;

use super::node::{NodeKind, NodeValues};
use super::paths;

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: Vec<Named<ClusterEntry>>,
    contexts: Vec<Named<ContextEntry>>,
    current_context: &'static str,
    users: Vec<Named<UserEntry>>,
}

#[derive(Serialize)]
struct Named<T> {
    name: &'static str,
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
    certificate_authority: &'static str,
    server: String,
}

#[derive(Serialize)]
struct ContextEntry {
    context: Context,
}

#[derive(Serialize)]
struct Context {
    cluster: &'static str,
    user: &'static str,
}

#[derive(Serialize)]
struct UserEntry {
    user: User,
}

#[derive(Serialize)]
struct User {
    exec: Exec,
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
            .unwrap_or_else(|| node.cluster_name.clone()),
        _ => node.cluster_name.clone(),
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
            name: "kubernetes",
            value: ClusterEntry {
                cluster: Cluster {
                    certificate_authority: paths::CLUSTER_CA,
                    server: node.api_server_endpoint.clone(),
                },
            },
        }],
        contexts: vec![Named {
            name: "kubelet",
            value: ContextEntry {
                context: Context {
                    cluster: "kubernetes",
                    user: "kubelet",
                },
            },
        }],
        current_context: "kubelet",
        users: vec![Named {
            name: "kubelet",
            value: UserEntry {
                user: User { exec },
            },
        }],
    };
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}
