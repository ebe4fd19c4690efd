//! Host paths, compatible with the EKS AMI's nodeadm so existing tooling keeps working.

/// containerd's config.
pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
/// The base OCI runtime spec referenced by containerd's runc runtime.
pub const CONTAINERD_BASE_RUNTIME_SPEC: &str = "/etc/containerd/base-runtime-spec.json";
/// containerd's gRPC socket.
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// CNI plugin binaries.
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
/// CNI network configs.
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// kubelet's config file.
pub const KUBELET_CONFIG: &str = "/etc/kubernetes/kubelet/config.json";
/// kubelet's drop-in directory (the user's kubelet.config lands here).
pub const KUBELET_CONFIG_DROPIN_DIR: &str = "/etc/kubernetes/kubelet/config.json.d";
/// The drop-in holding the user's `spec.kubelet.config`.
pub const KUBELET_USER_DROPIN: &str = "/etc/kubernetes/kubelet/config.json.d/40-nodeconfig.conf";
/// kubelet's kubeconfig.
pub const KUBECONFIG: &str = "/var/lib/kubelet/kubeconfig";
/// The bootstrap kubeconfig (Outposts local clusters: TLS bootstrapping).
pub const BOOTSTRAP_KUBECONFIG: &str = "/var/lib/kubelet/bootstrap-kubeconfig";
/// The cluster CA.
pub const CLUSTER_CA: &str = "/etc/kubernetes/pki/ca.crt";
/// kubelet's arguments, read by kubelet.service as an EnvironmentFile.
pub const KUBELET_ENVIRONMENT: &str = "/etc/eks/kubelet/environment";
/// The variable in [`KUBELET_ENVIRONMENT`] that holds the arguments (the AMI's name).
pub const KUBELET_ARGS_VAR: &str = "NODEADM_KUBELET_ARGS";
/// The image credential provider's config.
pub const IMAGE_CREDENTIAL_PROVIDER_CONFIG: &str = "/etc/eks/image-credential-provider/config.json";
/// Where the image credential provider binaries live.
pub const IMAGE_CREDENTIAL_PROVIDER_BIN_DIR: &str = "/etc/eks/image-credential-provider";
/// Kernel modules loaded at boot.
pub const MODULES_LOAD: &str = "/etc/modules-load.d/eks-node-agent.conf";
/// The resolver drop-in for `spec.instance.network`.
pub const RESOLVED_DROPIN: &str = "/etc/systemd/resolved.conf.d/40-eks-node-agent.conf";
/// The hosts file (Outposts pins API server addresses in a block the agent owns).
pub const HOSTS: &str = "/etc/hosts";
/// The filesystem table (hybrid nodes: swap lines are commented out).
pub const FSTAB: &str = "/etc/fstab";
/// The systemd unit directory for drop-ins.
pub const SYSTEMD_UNIT_DIR: &str = "/etc/systemd/system";
