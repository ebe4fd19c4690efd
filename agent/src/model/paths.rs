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
/// The VPC CNI's network config, written by the aws-node DaemonSet.
pub const VPC_CNI_CONFLIST: &str = "/etc/cni/net.d/10-aws.conflist";
/// kubelet's state directory.
pub const KUBELET_DIR: &str = "/var/lib/kubelet";
/// containerd's state directory.
pub const CONTAINERD_DIR: &str = "/var/lib/containerd";
/// The kubelet's current client certificate (rotated by kubelet).
pub const KUBELET_CLIENT_CERT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// Where IAM Roles Anywhere nodes get their AWS config (nodeadm's default).
pub const HYBRID_AWS_CONFIG: &str = "/etc/aws/hybrid/config";
/// nodeadm's default IAM Roles Anywhere certificate.
pub const ROLES_ANYWHERE_CERTIFICATE: &str = "/etc/iam/pki/server.pem";
/// nodeadm's default IAM Roles Anywhere private key.
pub const ROLES_ANYWHERE_PRIVATE_KEY: &str = "/etc/iam/pki/server.key";
/// The credentials file the SSM agent keeps for a hybrid activation (root's shared
/// credentials file).
pub const SSM_CREDENTIALS_FILE: &str = "/root/.aws/credentials";
/// The directory of [`SSM_CREDENTIALS_FILE`].
pub const SSM_CREDENTIALS_DIR: &str = "/root/.aws";
/// Where hybrid nodes keep the AWS credentials file for pods (`enableCredentialsFile`; the EKS
/// Pod Identity Agent's hybrid DaemonSet mounts it).
pub const HYBRID_CREDENTIALS_FILE: &str = "/eks-hybrid/.aws/credentials";
/// The directory of [`HYBRID_CREDENTIALS_FILE`].
pub const HYBRID_CREDENTIALS_DIR: &str = "/eks-hybrid/.aws";
/// The phase state `init --skip run` leaves for `init --skip config`.
pub const INIT_STATE: &str = "/run/eks-node-agent/init-state.json";
/// The SSM agent's registration file (written by `amazon-ssm-agent -register`).
pub const SSM_REGISTRATION: &str = "/var/lib/amazon/ssm/registration";
/// The SSM agent's key store.
pub const SSM_VAULT_DIR: &str = "/var/lib/amazon/ssm/Vault";
/// The agent's state: the record of its files, caches, markers.
pub const AGENT_STATE_DIR: &str = "/var/lib/eks-node-agent";
/// What `init` did with the instance-store disks at this boot (read by `status`).
pub const LOCAL_STORAGE_RECORD: &str = "/run/eks-node-agent/local-storage.json";
/// The agent's runtime state (cleared at boot).
pub const AGENT_RUN_DIR: &str = "/run/eks-node-agent";
