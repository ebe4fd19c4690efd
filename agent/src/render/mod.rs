//! Pure rendering: (NodeConfig, [`NodeValues`]) -> [`Plan`]. No IO here; golden-tested.

pub mod containerd;
pub mod hybrid;
pub mod kubeconfig;
pub mod kubelet;
pub mod node;
pub mod paths;
pub mod plan;
pub mod system;

pub use node::{NodeKind, NodeValues};
pub use plan::{FileSpec, Plan, ServiceSpec, Sysctl};

use crate::config::NodeConfig;

const CONTAINERD: &str = "containerd.service";
const KUBELET: &str = "kubelet.service";

/// Renders the whole plan for a node.
pub fn render(config: &NodeConfig, node: &NodeValues) -> Plan {
    let mut files = vec![
        FileSpec::new(
            paths::CONTAINERD_CONFIG,
            containerd::config_toml(config, node),
            &[CONTAINERD],
        ),
        FileSpec::new(
            paths::CONTAINERD_BASE_RUNTIME_SPEC,
            containerd::base_runtime_spec(config),
            &[CONTAINERD],
        ),
        FileSpec::new(paths::CLUSTER_CA, node.ca_pem.clone(), &[KUBELET]),
        FileSpec::new(
            paths::KUBELET_CONFIG,
            kubelet::config_json(node),
            &[KUBELET],
        ),
    ];
    if let Some(dropin) = kubelet::user_dropin(config) {
        files.push(FileSpec::new(
            paths::KUBELET_USER_DROPIN,
            dropin,
            &[KUBELET],
        ));
    }
    let args = kubelet::args(config, node);
    files.push(FileSpec::new(
        paths::KUBELET_ENVIRONMENT,
        kubelet::environment_file(&args),
        &[KUBELET],
    ));
    if let Some(token) = config
        .spec
        .kubeadm
        .as_ref()
        .and_then(|k| k.bootstrap_token.as_deref())
        .filter(|_| node.kind == NodeKind::Kubeadm)
    {
        // The bootstrap token is a secret: 0600 and no diff in dry runs. kubelet writes
        // /var/lib/kubelet/kubeconfig itself once its client certificate is signed.
        files.push(
            FileSpec::new(
                paths::BOOTSTRAP_KUBECONFIG,
                kubeconfig::render_bootstrap_token(node, token),
                &[KUBELET],
            )
            .secret(),
        );
    } else {
        let kubeconfig_path = if node.kind == NodeKind::Outpost {
            paths::BOOTSTRAP_KUBECONFIG
        } else {
            paths::KUBECONFIG
        };
        files.push(
            FileSpec::new(kubeconfig_path, kubeconfig::render(node), &[KUBELET]).with_mode(0o600),
        );
        files.push(FileSpec::new(
            paths::IMAGE_CREDENTIAL_PROVIDER_CONFIG,
            system::image_credential_provider(),
            &[KUBELET],
        ));
    }
    files.extend(hybrid::aws_config(config, node));
    files.push(system::modules_load());
    files.extend(system::environment_dropins(config));
    files.extend(system::resolved_dropin(config));
    if node.kind == NodeKind::Outpost
        && let Some(current) = &node.current_hosts
        && let Some(host) = url::Url::parse(&node.api_server_endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
    {
        let hosts = system::hosts_with_block(current, &host, &node.api_server_addresses);
        files.push(FileSpec::new(paths::HOSTS, hosts, &[]));
    }
    if let Some(current) = &node.current_fstab
        && let Some(fstab) = system::fstab_without_swap(current)
    {
        files.push(FileSpec::new(paths::FSTAB, fstab, &[]));
    }
    let services = vec![
        ServiceSpec {
            unit: "systemd-modules-load.service".into(),
            wait_for_socket: None,
        },
        ServiceSpec {
            unit: CONTAINERD.into(),
            wait_for_socket: Some(paths::CONTAINERD_SOCKET.into()),
        },
        ServiceSpec {
            unit: KUBELET.into(),
            wait_for_socket: None,
        },
    ];
    Plan {
        files,
        sysctls: system::sysctls(node),
        services,
    }
}

/// Quotes a value for systemd (`Environment=` lines and EnvironmentFile): double quotes,
/// with backslash, double quote and `$` escaped.
pub fn systemd_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        match ch {
            '\\' | '"' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(ch),
        }
    }
    out.push('"');
    out
}
