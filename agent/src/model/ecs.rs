//! Amazon ECS container instances: the `ecs.config` keys the agent knows (the ECS container
//! agent's and ecs-init's documented environment variables), the host paths ecs-init reads, and
//! the resolved values render needs for an ECS host.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// The ECS agent's config, read by ecs-init and by `ecs.service` as an `EnvironmentFile`.
pub const ECS_CONFIG: &str = "/etc/ecs/ecs.config";
/// The second `EnvironmentFile` of ecs-init's `ecs.service` (read before [`ECS_CONFIG`]): the
/// agent keeps the secret keys (private registry auth) here, mode 0600.
pub const ECS_SECRET_CONFIG: &str = "/var/lib/ecs/ecs.config";
/// The drop-in directory of `ecs.service`.
pub const ECS_SERVICE_DROPIN: &str = "/etc/systemd/system/ecs.service.d/10-eks-node-agent.conf";
/// The agent's own daemon unit.
pub const AGENT_UNIT: &str = "eks-node-agent.service";
/// The drop-in that makes the daemon run as an ECS host's (`run --ecs`).
pub const AGENT_SERVICE_DROPIN: &str = "/etc/systemd/system/eks-node-agent.service.d/10-ecs.conf";
/// ecs-init's unit.
pub const ECS_UNIT: &str = "ecs.service";
/// Docker's unit.
pub const DOCKER_UNIT: &str = "docker.service";
/// Docker's API socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The ECS agent's introspection API (`/v1/metadata`, `/v1/tasks`), on the host's loopback.
pub const INTROSPECTION_ENDPOINT: &str = "http://127.0.0.1:51678";
/// The credentials file an ECS Anywhere agent reads: ecs-init binds `/root/.aws` into the
/// agent's container at `/rotatingcreds`. The SSM agent keeps it fresh on SSM hosts; the
/// agent's credentials unit on IAM Roles Anywhere hosts.
pub const ECS_ANYWHERE_CREDENTIALS_FILE: &str = "/root/.aws/credentials";
/// The unit that keeps [`ECS_ANYWHERE_CREDENTIALS_FILE`] fresh from IAM Roles Anywhere.
pub const ECS_CREDENTIALS_UNIT: &str = "eks-node-agent-ecs-credentials.service";

/// `ECS_CLUSTER`.
pub const KEY_CLUSTER: &str = "ECS_CLUSTER";
/// `AWS_DEFAULT_REGION`.
pub const KEY_REGION: &str = "AWS_DEFAULT_REGION";
/// `ECS_EXTERNAL` (ECS Anywhere).
pub const KEY_EXTERNAL: &str = "ECS_EXTERNAL";
/// `ECS_ENABLE_TASK_IAM_ROLE`.
pub const KEY_TASK_IAM_ROLE: &str = "ECS_ENABLE_TASK_IAM_ROLE";
/// `ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST`.
pub const KEY_TASK_IAM_ROLE_NETWORK_HOST: &str = "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST";
/// `ECS_ENABLE_TASK_ENI` (awsvpc task networking).
pub const KEY_TASK_ENI: &str = "ECS_ENABLE_TASK_ENI";
/// `ECS_ENABLE_HIGH_DENSITY_ENI` (awsvpc trunking).
pub const KEY_HIGH_DENSITY_ENI: &str = "ECS_ENABLE_HIGH_DENSITY_ENI";
/// `ECS_AVAILABLE_LOGGING_DRIVERS`.
pub const KEY_LOGGING_DRIVERS: &str = "ECS_AVAILABLE_LOGGING_DRIVERS";
/// `ECS_RESERVED_MEMORY` (MiB).
pub const KEY_RESERVED_MEMORY: &str = "ECS_RESERVED_MEMORY";
/// `ECS_DISABLE_IMAGE_CLEANUP`.
pub const KEY_DISABLE_IMAGE_CLEANUP: &str = "ECS_DISABLE_IMAGE_CLEANUP";
/// `ECS_IMAGE_CLEANUP_INTERVAL`.
pub const KEY_IMAGE_CLEANUP_INTERVAL: &str = "ECS_IMAGE_CLEANUP_INTERVAL";
/// `ECS_IMAGE_MINIMUM_CLEANUP_AGE`.
pub const KEY_IMAGE_MINIMUM_CLEANUP_AGE: &str = "ECS_IMAGE_MINIMUM_CLEANUP_AGE";
/// `ECS_NUM_IMAGES_DELETE_PER_CYCLE`.
pub const KEY_IMAGES_PER_CYCLE: &str = "ECS_NUM_IMAGES_DELETE_PER_CYCLE";
/// `ECS_ENABLE_SPOT_INSTANCE_DRAINING`.
pub const KEY_SPOT_DRAINING: &str = "ECS_ENABLE_SPOT_INSTANCE_DRAINING";
/// `ECS_INSTANCE_ATTRIBUTES` (JSON object).
pub const KEY_INSTANCE_ATTRIBUTES: &str = "ECS_INSTANCE_ATTRIBUTES";
/// `ECS_CONTAINER_INSTANCE_TAGS` (JSON object).
pub const KEY_INSTANCE_TAGS: &str = "ECS_CONTAINER_INSTANCE_TAGS";
/// `ECS_ENGINE_AUTH_TYPE` (`docker` or `dockercfg`).
pub const KEY_AUTH_TYPE: &str = "ECS_ENGINE_AUTH_TYPE";
/// `ECS_ENGINE_AUTH_DATA` (JSON; a secret).
pub const KEY_AUTH_DATA: &str = "ECS_ENGINE_AUTH_DATA";

/// Every key the ECS container agent (Linux) and ecs-init document, for the nearest-key
/// suggestion of an unknown key. The typed fields of `spec.ecs` cover some; the rest pass
/// through `spec.ecs.config` as written.
pub const KNOWN_KEYS: &[&str] = &[
    "ECS_CLUSTER",
    "ECS_RESERVED_PORTS",
    "ECS_RESERVED_PORTS_UDP",
    "ECS_ENGINE_AUTH_TYPE",
    "ECS_ENGINE_AUTH_DATA",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "DOCKER_HOST",
    "ECS_LOGLEVEL",
    "ECS_LOGLEVEL_ON_INSTANCE",
    "ECS_LOGFILE",
    "ECS_CHECKPOINT",
    "ECS_DATADIR",
    "ECS_UPDATES_ENABLED",
    "ECS_DISABLE_METRICS",
    "ECS_POLL_METRICS",
    "ECS_POLLING_METRICS_WAIT_DURATION",
    "ECS_PULL_DEPENDENT_CONTAINERS_UPFRONT",
    "ECS_RESERVED_MEMORY",
    "ECS_AVAILABLE_LOGGING_DRIVERS",
    "ECS_DISABLE_PRIVILEGED",
    "ECS_SELINUX_CAPABLE",
    "ECS_APPARMOR_CAPABLE",
    "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION",
    "ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION_JITTER",
    "ECS_CONTAINER_STOP_TIMEOUT",
    "ECS_CONTAINER_START_TIMEOUT",
    "ECS_CONTAINER_CREATE_TIMEOUT",
    "ECS_ENABLE_TASK_IAM_ROLE",
    "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST",
    "ECS_DISABLE_IMAGE_CLEANUP",
    "ECS_IMAGE_CLEANUP_INTERVAL",
    "ECS_IMAGE_MINIMUM_CLEANUP_AGE",
    "NON_ECS_IMAGE_MINIMUM_CLEANUP_AGE",
    "ECS_NUM_IMAGES_DELETE_PER_CYCLE",
    "ECS_IMAGE_PULL_BEHAVIOR",
    "ECS_IMAGE_PULL_INACTIVITY_TIMEOUT",
    "ECS_IMAGE_PULL_TIMEOUT",
    "ECS_INSTANCE_ATTRIBUTES",
    "ECS_ENABLE_TASK_ENI",
    "ECS_ENABLE_HIGH_DENSITY_ENI",
    "ECS_CNI_PLUGINS_PATH",
    "ECS_AWSVPC_BLOCK_IMDS",
    "ECS_AWSVPC_ADDITIONAL_LOCAL_ROUTES",
    "ECS_ENABLE_CONTAINER_METADATA",
    "ECS_HOST_DATA_DIR",
    "ECS_ENABLE_TASK_CPU_MEM_LIMIT",
    "ECS_CGROUP_PATH",
    "ECS_CGROUP_CPU_PERIOD",
    "ECS_AGENT_HEALTHCHECK_HOST",
    "ECS_TASK_METADATA_RPS_LIMIT",
    "ECS_SHARED_VOLUME_MATCH_FULL_CONFIG",
    "ECS_CONTAINER_INSTANCE_PROPAGATE_TAGS_FROM",
    "ECS_CONTAINER_INSTANCE_TAGS",
    "ECS_ENABLE_UNTRACKED_IMAGE_CLEANUP",
    "ECS_EXCLUDE_UNTRACKED_IMAGE",
    "ECS_DISABLE_DOCKER_HEALTH_CHECK",
    "ECS_NVIDIA_RUNTIME",
    "ECS_ALTERNATE_CREDENTIAL_PROFILE",
    "ECS_ENABLE_SPOT_INSTANCE_DRAINING",
    "ECS_LOG_ROLLOVER_TYPE",
    "ECS_LOG_OUTPUT_FORMAT",
    "ECS_LOG_MAX_FILE_SIZE_MB",
    "ECS_LOG_MAX_ROLL_COUNT",
    "ECS_LOG_DRIVER",
    "ECS_LOG_OPTS",
    "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE",
    "ECS_ENABLE_RUNTIME_STATS",
    "ECS_EXCLUDE_IPV6_PORTBINDING",
    "ECS_WARM_POOLS_CHECK",
    "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER",
    "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS",
    "ECS_OFFHOST_INTROSPECTION_INTERFACE_NAME",
    "ECS_ENABLE_GPU_SUPPORT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ECS_GMSA_SUPPORTED",
    "CREDENTIALS_FETCHER_HOST",
    "CREDENTIALS_FETCHER_SECRET_NAME_FOR_DOMAINLESS_GMSA",
    "ECS_DYNAMIC_HOST_PORT_RANGE",
    "ECS_TASK_PIDS_LIMIT",
    "ECS_AGENT_LABELS",
    "ECS_EXTERNAL",
    "ECS_ENABLE_PROMETHEUS_METRICS",
];

/// Keys whose value is a secret: they go to [`ECS_SECRET_CONFIG`] (0600), never to
/// [`ECS_CONFIG`], a log or a dry run.
pub const SECRET_KEYS: &[&str] = &[
    KEY_AUTH_TYPE,
    KEY_AUTH_DATA,
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Whether `key` is a key the ECS agent or ecs-init documents.
pub fn is_known_key(key: &str) -> bool {
    KNOWN_KEYS.contains(&key)
}

/// Whether `key`'s value is a secret.
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// ECS cluster names: 1 to 255 letters, digits, hyphens and underscores (CreateCluster's rule).
pub fn valid_cluster_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Where an ECS host's own AWS credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EcsCredentials {
    /// The EC2 instance role, through IMDS (ECS on EC2).
    InstanceRole,
    /// The SSM agent's credentials file (ECS Anywhere with an SSM activation).
    Ssm,
    /// IAM Roles Anywhere with the host's certificate; the agent keeps the credentials file
    /// fresh (ECS Anywhere beyond the install script).
    RolesAnywhere,
}

/// Temporary credentials for the credentials file of an IAM Roles Anywhere ECS Anywhere host
/// (a secret: never serialized or printed).
#[derive(Clone, PartialEq, Eq)]
pub struct FileCredentials {
    /// The credentials file's contents (`[default]` profile).
    pub contents: String,
}

impl std::fmt::Debug for FileCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileCredentials(<redacted>)")
    }
}

/// What render needs for an ECS host, besides the NodeConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EcsValues {
    /// `ECS_CLUSTER`.
    pub cluster: String,
    /// The region (IMDS on EC2, `spec.ecs.region` on ECS Anywhere).
    pub region: String,
    /// ECS Anywhere (`ECS_EXTERNAL=true`).
    pub external: bool,
    /// Where the host's credentials come from.
    pub credentials: EcsCredentials,
    /// The EC2 instance ID, or the SSM managed instance ID of a registered ECS Anywhere host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// This binary's absolute path (the credentials unit runs it).
    pub agent_binary: PathBuf,
    /// The first credentials file of an IAM Roles Anywhere host, from discovery.
    #[serde(skip)]
    pub file_credentials: Option<FileCredentials>,
    /// How each value came about.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub explain: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_follow_ecs_rules() {
        assert!(valid_cluster_name("prod_web-1"));
        assert!(valid_cluster_name(&"a".repeat(255)));
        assert!(!valid_cluster_name(""));
        assert!(!valid_cluster_name(&"a".repeat(256)));
        assert!(!valid_cluster_name("prod web"));
        assert!(!valid_cluster_name("prod.web"));
    }

    #[test]
    fn typed_and_secret_keys_are_known() {
        for k in SECRET_KEYS {
            assert!(is_known_key(k), "{k}");
        }
        for k in [KEY_CLUSTER, KEY_REGION, KEY_EXTERNAL, KEY_SPOT_DRAINING] {
            assert!(is_known_key(k));
        }
    }
}
