//! kubelet: `config.json` (KubeletConfiguration with the AMI's defaults and nodeadm's
//! version-keyed settings), the user's `spec.kubelet.config` as a drop-in (kubelet 1.29+; merged
//! into `config.json` before that, as nodeadm does), and the arguments file.
//!
//! Every setting of `config.json` is a [`Setting`] that says where it came from, so
//! `config show --explain` prints the same reasons the rendering used.

use serde_json::{Map, Value, json};

use crate::config::NodeConfig;
use crate::config::merge::deep_merge_json;
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
/// The slice containerd and the kubelet run in (the AMI's; the plan puts both units there).
pub const RUNTIME_SLICE: &str = "runtime.slice";
/// The cgroup the kubelet reports as the container runtime's (`--runtime-cgroups`).
pub const RUNTIME_CGROUP: &str = "/runtime.slice/containerd.service";
/// `kubeReservedCgroup`: the runtime slice.
const KUBE_RESERVED_CGROUP: &str = "/runtime";
/// `systemReservedCgroup`: systemd's system slice.
const SYSTEM_RESERVED_CGROUP: &str = "/system";
/// kubelet 1.34+: how long a node shutdown waits for pods, in all and for critical pods.
const SHUTDOWN_GRACE_PERIOD: &str = "2m30s";
/// See [`SHUTDOWN_GRACE_PERIOD`].
const SHUTDOWN_GRACE_PERIOD_CRITICAL_PODS: &str = "30s";
/// The variable kubelet 1.28 and 1.29 need to read a `--config-dir`.
pub const CONFIG_DROPIN_ENV: &str = "KUBELET_CONFIG_DROPIN_DIR_ALPHA";

const DEFAULT: &str = "default (the EKS AMI's)";

/// One top-level setting of `config.json` and why it has its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The KubeletConfiguration key, e.g. `maxPods`.
    pub key: &'static str,
    /// Its value.
    pub value: Value,
    /// Where the value comes from.
    pub source: String,
}

fn setting(key: &'static str, value: Value, source: impl Into<String>) -> Setting {
    Setting {
        key,
        value,
        source: source.into(),
    }
}

/// Whether the user's `spec.kubelet.config` goes to a drop-in (kubelet 1.29+, as nodeadm),
/// rather than into `config.json`.
pub fn uses_dropin(config: &NodeConfig, node: &NodeValues) -> bool {
    !config.spec.kubelet.config.is_empty() && node.kubelet_version.at_least(1, 29)
}

/// The settings of `config.json` before the user's `spec.kubelet.config`, in file order.
pub fn settings(node: &NodeValues) -> Vec<Setting> {
    let v = node.kubelet_version;
    let mut gates = Map::new();
    let mut gate_sources = vec!["RotateKubeletServerCertificate: default".to_owned()];
    gates.insert("RotateKubeletServerCertificate".into(), Value::Bool(true));
    if !v.at_least(1, 28) {
        gates.insert("KubeletCredentialProviders".into(), Value::Bool(true));
        gate_sources.push("KubeletCredentialProviders: kubelet < 1.28".into());
    }
    if v.at_least(1, 33) {
        gates.insert("DynamicResourceAllocation".into(), Value::Bool(true));
        gate_sources.push("DynamicResourceAllocation: kubelet >= 1.33".into());
    }
    if v.at_least(1, 34) {
        gates.insert("MutableCSINodeAllocatableCount".into(), Value::Bool(true));
        gate_sources.push("MutableCSINodeAllocatableCount: kubelet >= 1.34".into());
    }
    let mut out = vec![
        setting("address", json!("0.0.0.0"), DEFAULT),
        setting(
            "authentication",
            json!({
                "anonymous": { "enabled": false },
                "webhook": { "cacheTTL": "2m0s", "enabled": true },
                "x509": { "clientCAFile": paths::CLUSTER_CA }
            }),
            DEFAULT,
        ),
        setting(
            "authorization",
            json!({
                "mode": "Webhook",
                "webhook": { "cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s" }
            }),
            DEFAULT,
        ),
        setting("cgroupDriver", json!("systemd"), DEFAULT),
        setting("cgroupRoot", json!("/"), DEFAULT),
        setting(
            "clusterDNS",
            json!([node.cluster_dns.to_string()]),
            node.explain
                .get("cluster DNS")
                .cloned()
                .unwrap_or_else(|| "derived: the cluster DNS IP".into()),
        ),
        setting("clusterDomain", json!("cluster.local"), DEFAULT),
        setting(
            "containerRuntimeEndpoint",
            json!(format!("unix://{}", paths::CONTAINERD_SOCKET)),
            DEFAULT,
        ),
        setting(
            "evictionHard",
            json!({
                "memory.available": "100Mi",
                "nodefs.available": "10%",
                "nodefs.inodesFree": "5%"
            }),
            DEFAULT,
        ),
        setting(
            "featureGates",
            Value::Object(gates),
            format!("kubelet {v}: {}", gate_sources.join(", ")),
        ),
        setting("hairpinMode", json!("hairpin-veth"), DEFAULT),
    ];
    if v.at_least(1, 22) && !v.at_least(1, 27) {
        out.push(setting(
            "kubeAPIBurst",
            json!(20),
            "kubelet 1.22-1.26 (API Priority and Fairness; 1.27 raised the default)",
        ));
        out.push(setting(
            "kubeAPIQPS",
            json!(10),
            "kubelet 1.22-1.26 (API Priority and Fairness; 1.27 raised the default)",
        ));
    }
    out.extend([
        setting(
            "kubeReserved",
            serde_json::to_value(node.kube_reserved.to_kubelet_map()).unwrap_or(Value::Null),
            format!(
                "derived: CPU from the CPU count, memory from max pods ({})",
                node.max_pods
            ),
        ),
        setting(
            "kubeReservedCgroup",
            json!(KUBE_RESERVED_CGROUP),
            format!("default (nodeadm's: containerd and the kubelet run in {RUNTIME_SLICE})"),
        ),
        setting("logging", json!({ "verbosity": 2 }), DEFAULT),
        setting(
            "maxPods",
            json!(node.max_pods),
            node.explain
                .get("max pods")
                .cloned()
                .unwrap_or_else(|| "derived: max pods".into()),
        ),
        setting("protectKernelDefaults", json!(true), DEFAULT),
    ]);
    if node.kind != NodeKind::Kubeadm {
        out.push(setting(
            "providerID",
            json!(node.provider_id),
            "derived: the node's provider ID",
        ));
    }
    out.extend([
        setting("readOnlyPort", json!(0), DEFAULT),
        setting(
            "serializeImagePulls",
            json!(false),
            "default (the EKS AMI's: images pull in parallel)",
        ),
    ]);
    if node.kind == NodeKind::Kubeadm {
        // kubeadm clusters approve no serving-certificate CSRs (kubelet keeps its self-signed
        // serving certificate, as kubeadm configures it); the client certificate from TLS
        // bootstrapping is rotated.
        out.push(setting(
            "rotateCertificates",
            json!(true),
            "kubeadm join: the client certificate from TLS bootstrapping is rotated",
        ));
    } else {
        out.push(setting("serverTLSBootstrap", json!(true), DEFAULT));
    }
    if v.at_least(1, 34) {
        out.push(setting(
            "shutdownGracePeriod",
            json!(SHUTDOWN_GRACE_PERIOD),
            "kubelet >= 1.34 (graceful node shutdown, as nodeadm)",
        ));
        out.push(setting(
            "shutdownGracePeriodCriticalPods",
            json!(SHUTDOWN_GRACE_PERIOD_CRITICAL_PODS),
            "kubelet >= 1.34 (graceful node shutdown, as nodeadm)",
        ));
    }
    out.extend([
        setting(
            "systemReservedCgroup",
            json!(SYSTEM_RESERVED_CGROUP),
            "default (nodeadm's: systemd's system.slice)",
        ),
        setting("tlsCipherSuites", json!(TLS_CIPHER_SUITES), DEFAULT),
    ]);
    out
}

/// Renders `/etc/kubernetes/kubelet/config.json`; before kubelet 1.29 with the user's
/// `spec.kubelet.config` merged over it (the user wins), as nodeadm does.
pub fn config_json(config: &NodeConfig, node: &NodeValues) -> String {
    let mut doc = Map::new();
    doc.insert(
        "apiVersion".into(),
        Value::from("kubelet.config.k8s.io/v1beta1"),
    );
    doc.insert("kind".into(), Value::from("KubeletConfiguration"));
    for s in settings(node) {
        doc.insert(s.key.into(), s.value);
    }
    if !node.kubelet_version.at_least(1, 29) {
        deep_merge_json(&mut doc, &config.spec.kubelet.config);
    }
    serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default() + "\n"
}

/// Renders the user's `spec.kubelet.config` as a kubelet drop-in (None when empty, or before
/// kubelet 1.29, where it is merged into `config.json`).
pub fn user_dropin(config: &NodeConfig, node: &NodeValues) -> Option<String> {
    if !uses_dropin(config, node) {
        return None;
    }
    let mut doc = Map::new();
    doc.insert(
        "apiVersion".into(),
        Value::from("kubelet.config.k8s.io/v1beta1"),
    );
    doc.insert("kind".into(), Value::from("KubeletConfiguration"));
    for (k, v) in &config.spec.kubelet.config {
        doc.insert(k.clone(), v.clone());
    }
    Some(serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default() + "\n")
}

/// kubelet's command-line arguments: the agent's (with nodeadm's version toggles), then the
/// user's flags last.
pub fn args(config: &NodeConfig, node: &NodeValues) -> Vec<String> {
    let v = node.kubelet_version;
    let mut args = vec![
        format!("--runtime-cgroups={RUNTIME_CGROUP}"),
        format!("--config={}", paths::KUBELET_CONFIG),
    ];
    if uses_dropin(config, node) {
        args.push(format!("--config-dir={}", paths::KUBELET_CONFIG_DROPIN_DIR));
    }
    args.push(format!("--kubeconfig={}", paths::KUBECONFIG));
    args.push(format!("--node-ip={}", node.node_ip));
    if !v.at_least(1, 27) {
        // The flag went away in 1.27; the endpoint moved into the config file then.
        args.push("--container-runtime=remote".into());
        args.push(format!(
            "--container-runtime-endpoint=unix://{}",
            paths::CONTAINERD_SOCKET
        ));
    }
    if !v.at_least(1, 29) {
        // Keeps the pause image from being garbage-collected; 1.29+ pins it through the CRI.
        args.push(format!(
            "--pod-infra-container-image={}",
            node.sandbox_image
        ));
    }
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
    } else if v.at_least(1, 26) {
        args.push("--cloud-provider=external".into());
        args.push(format!("--hostname-override={}", node.node_name));
    } else {
        args.push("--cloud-provider=aws".into());
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

/// The environment of the kubelet process besides its arguments: kubelet 1.28 and 1.29 read
/// a `--config-dir` only with [`CONFIG_DROPIN_ENV`] set.
pub fn environment(config: &NodeConfig, node: &NodeValues) -> Vec<(&'static str, String)> {
    if uses_dropin(config, node) && !node.kubelet_version.at_least(1, 30) {
        vec![(CONFIG_DROPIN_ENV, "on".to_owned())]
    } else {
        Vec::new()
    }
}

/// Renders `/etc/eks/kubelet/environment`: the arguments in one variable, quoted for
/// systemd's EnvironmentFile parser, then any other variables of the kubelet's environment.
pub fn environment_file(args: &[String], env: &[(&str, String)]) -> String {
    let mut out = format!(
        "{}={}\n",
        paths::KUBELET_ARGS_VAR,
        super::systemd_quote(&args.join(" "))
    );
    for (k, v) in env {
        out.push_str(&format!("{k}={}\n", super::systemd_quote(v)));
    }
    out
}
