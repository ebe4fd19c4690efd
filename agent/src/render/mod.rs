//! Pure rendering: (NodeConfig, [`NodeValues`]) -> [`Plan`]. No IO here; golden-tested.

pub mod containerd;
pub mod ecs;
pub mod hybrid;
pub mod kubeconfig;
pub mod kubelet;
pub mod local_storage;
pub mod plan;
pub mod system;

pub use plan::{FileSpec, HostAction, Plan, ServiceSpec, Sysctl};

use crate::config::NodeConfig;
use crate::model::paths;
use crate::model::{NodeKind, NodeValues};

const CONTAINERD: &str = "containerd.service";
const KUBELET: &str = "kubelet.service";
/// The unit that waits for `InService` and then starts the kubelet (systemd/).
pub const WARM_POOL_HOLD: &str = "eks-node-agent-warm-pool.service";

/// Renders the whole plan for a node.
pub fn render(config: &NodeConfig, node: &NodeValues) -> Plan {
    let mut files = vec![
        FileSpec::new(
            paths::CONTAINERD_CONFIG,
            containerd::config_toml(node),
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
            kubelet::config_json(config, node),
            &[KUBELET],
        ),
    ];
    if let Some(fast) = &node.fast_image_pull {
        files.push(FileSpec::new(
            containerd::SOCI_CONFIG,
            containerd::soci_config(&fast.gzip_decompressor),
            &[containerd::SOCI_UNIT, CONTAINERD],
        ));
    }
    if let Some(dropin) = kubelet::user_dropin(config, node) {
        files.push(FileSpec::new(
            paths::KUBELET_USER_DROPIN,
            dropin,
            &[KUBELET],
        ));
    }
    let args = kubelet::args(config, node);
    files.push(FileSpec::new(
        paths::KUBELET_ENVIRONMENT,
        kubelet::environment_file(&args, &kubelet::environment(config, node)),
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
            system::image_credential_provider(node),
            &[KUBELET],
        ));
    }
    files.extend(hybrid::aws_config(config, node));
    let credentials_file = hybrid::credentials_file_service(config, node);
    if let Some((unit, _)) = &credentials_file {
        files.push(unit.clone());
    }
    files.push(system::modules_load());
    files.extend(system::runtime_slice_dropins());
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
    let mut services = vec![ServiceSpec {
        unit: "systemd-modules-load.service".into(),
        wait_for_socket: None,
    }];
    if node.fast_image_pull.is_some() {
        // containerd connects to its proxy snapshotter when it starts.
        services.push(ServiceSpec {
            unit: containerd::SOCI_UNIT.into(),
            wait_for_socket: Some(containerd::SOCI_SOCKET.into()),
        });
    }
    services.extend([
        ServiceSpec {
            unit: CONTAINERD.into(),
            wait_for_socket: Some(paths::CONTAINERD_SOCKET.into()),
        },
        ServiceSpec {
            // A warm-pool instance does not join yet: the hold unit starts the kubelet once
            // Auto Scaling puts the instance in service.
            unit: if node.warm_pool_hold.is_some() {
                WARM_POOL_HOLD.into()
            } else {
                KUBELET.into()
            },
            wait_for_socket: None,
        },
    ]);
    services.extend(credentials_file.map(|(_, service)| service));
    let storage = node.local_storage.as_ref().map(|layout| {
        let (storage, units) = local_storage::render(layout);
        files.extend(units);
        storage
    });
    let mut actions: Vec<HostAction> = node
        .swap_off
        .iter()
        .map(|path| HostAction::SwapOff { path: path.clone() })
        .collect();
    actions.extend(hybrid::credentials_file_link(config));
    Plan {
        files,
        sysctls: system::sysctls(node),
        actions,
        services,
        storage,
    }
}

/// The plan that runs before discovery: registering an SSM hybrid node with its activation
/// (the node's name, and the credentials discovery uses, come from it). Empty when the node is
/// not an SSM hybrid node or is registered already (`registered`); without the SSM agent
/// (`agent_installed` false) nothing can register and the node is named after its host.
pub fn registration(
    config: &NodeConfig,
    registered: bool,
    agent_installed: bool,
) -> Result<Plan, crate::auth::Error> {
    use crate::auth::ssm::{Activation, ActivationCode};
    let mut plan = Plan::default();
    // EKS Hybrid Nodes, or ECS Anywhere with an SSM activation (the same registration; the
    // region is the cluster's).
    let ecs_ssm = config.spec.ecs.as_ref().and_then(|e| {
        let ssm = e.external.as_ref()?.ssm.as_ref()?;
        Some((ssm, "spec.ecs.region", e.region.as_deref()))
    });
    let hybrid_ssm = config
        .spec
        .hybrid
        .as_ref()
        .and_then(|h| h.ssm.as_ref())
        .map(|ssm| {
            (
                ssm,
                "spec.cluster.region",
                config.spec.cluster.region.as_deref(),
            )
        });
    let Some((ssm, region_field, region)) = ecs_ssm.or(hybrid_ssm) else {
        return Ok(plan);
    };
    if registered {
        return Ok(plan);
    }
    if !agent_installed {
        tracing::warn!(
            "amazon-ssm-agent is not installed; the node cannot register its SSM activation and is named after the host"
        );
        return Ok(plan);
    }
    let region = crate::model::Region::parse(region.unwrap_or_default(), region_field)?;
    let activation = Activation {
        id: ssm.activation_id.clone().unwrap_or_default(),
        code: ActivationCode::parse(
            ssm.activation_code.as_deref().unwrap_or_default(),
            if ecs_ssm.is_some() {
                "spec.ecs.external.ssm"
            } else {
                "spec.hybrid.ssm"
            },
        )?,
        region: region.clone(),
    };
    plan.actions.push(HostAction::RegisterSsm {
        activation_id: activation.id.clone(),
        region: region.to_string(),
        activation,
    });
    Ok(plan)
}

/// Quotes a value for systemd (`Environment=` lines and EnvironmentFile): double quotes, with
/// backslash and double quote escaped and a newline written `\n` (systemd expands no `$` in
/// either; `ExecStart=` words need more, see `hybrid::exec_word`).
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
