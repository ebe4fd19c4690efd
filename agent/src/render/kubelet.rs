//! kubelet: `config.json` (KubeletConfiguration with the AMI's defaults), the user's
//! `spec.kubelet.config` as a drop-in, and the arguments file.

use serde_json::{Map, Value, json};

use crate::config::NodeConfig;
use crate::model::paths;
use crate::model::{NodeKind, NodeValues};

/// TLS cipher suites kubelet's server accepts (the AMI's list: AEAD suites only).
const TLS_CIPHER_SUITES: [&str; 8] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
];

/// Renders `/etc/kubernetes/kubelet/config.json`.
pub fn config_json(node: &NodeValues) -> String {
    let reserved = node.kube_reserved;
    let mut config = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "0.0.0.0",
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "cacheTTL": "2m0s", "enabled": true },
            "x509": { "clientCAFile": paths::CLUSTER_CA }
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": { "cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s" }
        },
        "cgroupDriver": "systemd",
        "cgroupRoot": "/",
        "clusterDNS": [ node.cluster_dns.to_string() ],
        "clusterDomain": "cluster.local",
        "containerRuntimeEndpoint": format!("unix://{}", paths::CONTAINERD_SOCKET),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "10%",
            "nodefs.inodesFree": "5%"
        },
        "featureGates": { "RotateKubeletServerCertificate": true },
        "hairpinMode": "hairpin-veth",
        "kubeReserved": reserved.to_kubelet_map(),
        "logging": { "verbosity": 2 },
        "maxPods": node.max_pods,
        "protectKernelDefaults": true,
        "providerID": node.provider_id,
        "readOnlyPort": 0,
        "serializeImagePulls": false,
        "serverTLSBootstrap": true,
        "tlsCipherSuites": TLS_CIPHER_SUITES
    });
    if node.kind == NodeKind::Kubeadm
        && let Value::Object(map) = &mut config
    {
        // No cloud provider names the node; kubeadm clusters approve no serving-certificate
        // CSRs (kubelet keeps its self-signed serving certificate, as kubeadm configures it);
        // the client certificate from TLS bootstrapping is rotated.
        map.shift_remove("providerID");
        map.shift_remove("serverTLSBootstrap");
        map.insert("rotateCertificates".into(), Value::Bool(true));
    }
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

/// Renders the user's `spec.kubelet.config` as a kubelet drop-in (None when empty).
pub fn user_dropin(config: &NodeConfig) -> Option<String> {
    let user = &config.spec.kubelet.config;
    if user.is_empty() {
        return None;
    }
    let mut doc = Map::new();
    doc.insert(
        "apiVersion".into(),
        Value::from("kubelet.config.k8s.io/v1beta1"),
    );
    doc.insert("kind".into(), Value::from("KubeletConfiguration"));
    for (k, v) in user {
        doc.insert(k.clone(), v.clone());
    }
    Some(serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default() + "\n")
}

/// kubelet's command-line arguments: the agent's, then the user's flags last.
pub fn args(config: &NodeConfig, node: &NodeValues) -> Vec<String> {
    let mut args = vec![
        format!("--config={}", paths::KUBELET_CONFIG),
        format!("--config-dir={}", paths::KUBELET_CONFIG_DROPIN_DIR),
        format!("--kubeconfig={}", paths::KUBECONFIG),
        format!("--node-ip={}", node.node_ip),
    ];
    if node.kind != NodeKind::Kubeadm {
        // kubeadm clusters have no ECR credential provider binary; kubelet refuses to start
        // when a configured provider is missing.
        args.push(format!(
            "--image-credential-provider-config={}",
            paths::IMAGE_CREDENTIAL_PROVIDER_CONFIG
        ));
        args.push(format!(
            "--image-credential-provider-bin-dir={}",
            paths::IMAGE_CREDENTIAL_PROVIDER_BIN_DIR
        ));
    }
    if node.kind.is_hybrid() || node.kind == NodeKind::Kubeadm {
        // No AWS cloud provider; the node name is the host's own (kubelet lowercases it).
    } else {
        args.push("--cloud-provider=external".into());
        args.push(format!("--hostname-override={}", node.node_name));
    }
    if node.kind.tls_bootstraps() {
        args.push(format!(
            "--bootstrap-kubeconfig={}",
            paths::BOOTSTRAP_KUBECONFIG
        ));
    }
    if !node.labels.is_empty() {
        let labels: Vec<String> = node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        args.push(format!("--node-labels={}", labels.join(",")));
    }
    args.extend(config.spec.kubelet.flags.iter().cloned());
    args
}

/// Renders `/etc/eks/kubelet/environment`: one variable with the arguments, quoted for
/// systemd's EnvironmentFile parser.
pub fn environment_file(args: &[String]) -> String {
    format!(
        "{}={}\n",
        paths::KUBELET_ARGS_VAR,
        super::systemd_quote(&args.join(" "))
    )
}
