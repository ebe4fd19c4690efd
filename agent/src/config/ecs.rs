//! `spec.ecs` (an eks-node-agent extension): the host is an Amazon ECS container instance.
//! Typed fields for the common agent settings, a passthrough map for the rest, and the agent's
//! own `ecs.config` (`KEY=value` lines) accepted as a source: [`parse_ecs_config`] reads one
//! into the same typed section, so an existing file validates and renders the same keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::types::Ssm;
use crate::model::ecs as keys;

/// Most lines an `ecs.config` source may have (the file ecs-init reads is a few dozen).
pub const MAX_ECS_CONFIG_LINES: usize = 4096;

/// `spec.ecs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EcsOptions {
    /// The ECS cluster the container instance joins (`ECS_CLUSTER`). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The AWS region (`AWS_DEFAULT_REGION`): required on ECS Anywhere; on EC2 the instance's
    /// region from IMDS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ECS Anywhere (`ECS_EXTERNAL=true`): an on-prem host, registered through an SSM
    /// activation or credentialed by IAM Roles Anywhere. Empty (`external: {}`): the host is
    /// registered with SSM already (what an `ecs.config` with `ECS_EXTERNAL=true` says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<EcsExternal>,
    /// IAM roles for tasks (`ECS_ENABLE_TASK_IAM_ROLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_iam_role: Option<bool>,
    /// IAM roles for tasks in `host` network mode (`ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_iam_role_network_host: Option<bool>,
    /// awsvpc ENI trunking: `true` sets `ECS_ENABLE_TASK_ENI=true` and
    /// `ECS_ENABLE_HIGH_DENSITY_ENI=true`; `false` sets `ECS_ENABLE_HIGH_DENSITY_ENI=false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awsvpc_trunking: Option<bool>,
    /// Logging drivers tasks may use (`ECS_AVAILABLE_LOGGING_DRIVERS`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logging_drivers: Vec<String>,
    /// Memory, in MiB, not offered to tasks (`ECS_RESERVED_MEMORY`).
    #[serde(
        default,
        rename = "reservedMemoryMiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub reserved_memory_mib: Option<u32>,
    /// Automated image cleanup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_cleanup: Option<ImageCleanup>,
    /// Set the instance to DRAINING on a spot interruption notice
    /// (`ECS_ENABLE_SPOT_INSTANCE_DRAINING`, done by the ECS agent itself). The agent's own
    /// lifecycle watchers drain on spot notices and Auto Scaling terminations either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_draining: Option<bool>,
    /// Custom attributes registered with the container instance (`ECS_INSTANCE_ATTRIBUTES`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_attributes: BTreeMap<String, String>,
    /// Tags of the container instance (`ECS_CONTAINER_INSTANCE_TAGS`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_tags: BTreeMap<String, String>,
    /// Private registry authentication (`ECS_ENGINE_AUTH_TYPE`/`ECS_ENGINE_AUTH_DATA`): a
    /// secret, written to a 0600 file, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_auth: Option<RegistryAuth>,
    /// Any other `ecs.config` key, written as given. A key the ECS agent does not document is
    /// a warning naming the nearest known key (an error under `--strict`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// `spec.ecs.external`: how an ECS Anywhere host gets its AWS credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EcsExternal {
    /// An SSM hybrid activation: the host registers with it (`amazon-ssm-agent -register`) and
    /// the SSM agent keeps `/root/.aws/credentials` fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm: Option<Ssm>,
    /// IAM Roles Anywhere: the agent keeps `/root/.aws/credentials` fresh itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_roles_anywhere: Option<EcsRolesAnywhere>,
}

/// `spec.ecs.external.iamRolesAnywhere`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EcsRolesAnywhere {
    /// The trust anchor ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_anchor_arn: Option<String>,
    /// The profile ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_arn: Option<String>,
    /// The role the container instance uses (the ECS Anywhere instance role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The host's X.509 certificate (PEM) [default: /etc/iam/pki/server.pem].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_path: Option<String>,
    /// The certificate's private key (PEM) [default: /etc/iam/pki/server.key].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<String>,
    /// The role session name [default: the certificate's serial number].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_session_name: Option<String>,
}

/// `spec.ecs.imageCleanup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageCleanup {
    /// `false` turns cleanup off (`ECS_DISABLE_IMAGE_CLEANUP=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Between cleanup cycles, a Go duration such as `30m` (`ECS_IMAGE_CLEANUP_INTERVAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// How old an image must be to go (`ECS_IMAGE_MINIMUM_CLEANUP_AGE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_age: Option<String>,
    /// Images deleted per cycle (`ECS_NUM_IMAGES_DELETE_PER_CYCLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_cycle: Option<u32>,
}

/// `spec.ecs.registryAuth.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RegistryAuthType {
    /// `{"registry": {"username": ..., "password": ..., "email": ...}}`.
    Docker,
    /// `{"registry": {"auth": ..., "email": ...}}` (a `.dockercfg`).
    Dockercfg,
}

impl RegistryAuthType {
    /// The `ECS_ENGINE_AUTH_TYPE` value.
    pub fn name(self) -> &'static str {
        match self {
            RegistryAuthType::Docker => "docker",
            RegistryAuthType::Dockercfg => "dockercfg",
        }
    }
}

/// `spec.ecs.registryAuth`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryAuth {
    /// The format of `data`.
    #[serde(rename = "type")]
    pub kind: RegistryAuthType,
    /// Registry URL -> credentials, as the ECS agent's `dockerauth` reads them: a secret.
    pub data: Map<String, Value>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("kind", &self.kind)
            .field("registries", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether `text` is in the `ecs.config` format: `KEY=value` lines (and `#` comments), at
/// least one. A YAML or JSON NodeConfig never is.
pub fn looks_like_ecs_config(text: &str) -> bool {
    let mut any = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((key, _)) if valid_key(key) => any = true,
            _ => return false,
        }
    }
    any
}

/// An environment variable name, as systemd's `EnvironmentFile=` and ecs-init accept it.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One line of an `ecs.config` that does not read: its number (1-based), the key, and what is
/// wrong (never the value of a secret key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    /// The key, or `(line)`.
    pub key: String,
    /// What is wrong and the expected form.
    pub message: String,
}

fn unquote(value: &str) -> &str {
    let v = value.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// The error of a value that does not read (a secret key's value is not repeated).
fn bad(key: &str, line: usize, value: &str, expected: &str) -> LineError {
    LineError {
        line,
        key: key.to_owned(),
        message: if keys::is_secret_key(key) || super::secrets::is_secret_name(key) {
            format!("the value does not read; expected {expected}")
        } else {
            format!(
                "{} does not read; expected {expected}",
                crate::model::text::echo(value)
            )
        },
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn string_map(value: &str) -> Option<BTreeMap<String, String>> {
    serde_json::from_str(value).ok()
}

/// Reads an `ecs.config` (`KEY=value` lines; `#` comments; values optionally quoted) into
/// `spec.ecs`: the keys with typed fields into them, the rest into `config`. A later line wins
/// over an earlier one with the same key, as in an environment file.
pub fn parse_ecs_config(text: &str) -> Result<EcsOptions, LineError> {
    let mut pairs: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if n > MAX_ECS_CONFIG_LINES {
            return Err(LineError {
                line: n,
                key: "(line)".into(),
                message: format!(
                    "more than {MAX_ECS_CONFIG_LINES} lines; an ecs.config is a few dozen keys"
                ),
            });
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|(k, _)| valid_key(k)) else {
            return Err(LineError {
                line: n,
                key: "(line)".into(),
                message: "is not KEY=value; expected e.g. ECS_CLUSTER=my-cluster".into(),
            });
        };
        pairs.insert(key.to_owned(), (n, unquote(value).to_owned()));
    }
    let mut out = EcsOptions::default();
    if let Some((_, v)) = pairs.remove(keys::KEY_CLUSTER) {
        out.cluster = Some(v);
    }
    if let Some((_, v)) = pairs.remove(keys::KEY_REGION) {
        out.region = Some(v);
    }
    let bools = |key: &str, pairs: &mut BTreeMap<String, (usize, String)>| {
        pairs.remove(key).map(|(n, v)| {
            parse_bool(&v).ok_or_else(|| LineError {
                line: n,
                key: key.to_owned(),
                message: format!(
                    "{} does not read; expected true or false",
                    crate::model::text::echo(&v)
                ),
            })
        })
    };
    if let Some(external) = bools(keys::KEY_EXTERNAL, &mut pairs).transpose()? {
        out.external = external.then(EcsExternal::default);
    }
    out.task_iam_role = bools(keys::KEY_TASK_IAM_ROLE, &mut pairs).transpose()?;
    out.task_iam_role_network_host =
        bools(keys::KEY_TASK_IAM_ROLE_NETWORK_HOST, &mut pairs).transpose()?;
    out.spot_draining = bools(keys::KEY_SPOT_DRAINING, &mut pairs).transpose()?;
    // Trunking maps to the typed field only where it renders the same keys back.
    let task_eni = pairs
        .get(keys::KEY_TASK_ENI)
        .and_then(|(_, v)| parse_bool(v));
    let high_density = pairs
        .get(keys::KEY_HIGH_DENSITY_ENI)
        .and_then(|(_, v)| parse_bool(v));
    match (task_eni, high_density) {
        (Some(true), Some(true)) => {
            pairs.remove(keys::KEY_TASK_ENI);
            pairs.remove(keys::KEY_HIGH_DENSITY_ENI);
            out.awsvpc_trunking = Some(true);
        }
        (_, Some(false)) => {
            pairs.remove(keys::KEY_HIGH_DENSITY_ENI);
            out.awsvpc_trunking = Some(false);
        }
        _ => {}
    }
    if let Some((n, v)) = pairs.get(keys::KEY_LOGGING_DRIVERS).cloned() {
        out.logging_drivers = serde_json::from_str(&v).map_err(|_| {
            bad(
                keys::KEY_LOGGING_DRIVERS,
                n,
                &v,
                "a JSON list such as [\"json-file\",\"awslogs\"]",
            )
        })?;
        pairs.remove(keys::KEY_LOGGING_DRIVERS);
    }
    if let Some((n, v)) = pairs.get(keys::KEY_RESERVED_MEMORY).cloned() {
        out.reserved_memory_mib = Some(
            v.parse()
                .map_err(|_| bad(keys::KEY_RESERVED_MEMORY, n, &v, "a number of MiB"))?,
        );
        pairs.remove(keys::KEY_RESERVED_MEMORY);
    }
    let mut cleanup = ImageCleanup::default();
    if let Some((n, v)) = pairs.get(keys::KEY_DISABLE_IMAGE_CLEANUP).cloned() {
        let disabled = parse_bool(&v)
            .ok_or_else(|| bad(keys::KEY_DISABLE_IMAGE_CLEANUP, n, &v, "true or false"))?;
        cleanup.enabled = Some(!disabled);
        pairs.remove(keys::KEY_DISABLE_IMAGE_CLEANUP);
    }
    if let Some((_, v)) = pairs.remove(keys::KEY_IMAGE_CLEANUP_INTERVAL) {
        cleanup.interval = Some(v);
    }
    if let Some((_, v)) = pairs.remove(keys::KEY_IMAGE_MINIMUM_CLEANUP_AGE) {
        cleanup.minimum_age = Some(v);
    }
    if let Some((n, v)) = pairs.get(keys::KEY_IMAGES_PER_CYCLE).cloned() {
        cleanup.images_per_cycle = Some(
            v.parse()
                .map_err(|_| bad(keys::KEY_IMAGES_PER_CYCLE, n, &v, "a number of images"))?,
        );
        pairs.remove(keys::KEY_IMAGES_PER_CYCLE);
    }
    if cleanup != ImageCleanup::default() {
        out.image_cleanup = Some(cleanup);
    }
    for (key, field) in [
        (keys::KEY_INSTANCE_ATTRIBUTES, &mut out.instance_attributes),
        (keys::KEY_INSTANCE_TAGS, &mut out.instance_tags),
    ] {
        if let Some((n, v)) = pairs.get(key).cloned() {
            *field = string_map(&v).ok_or_else(|| {
                bad(
                    key,
                    n,
                    &v,
                    "a JSON object of strings such as {\"stack\": \"prod\"}",
                )
            })?;
            pairs.remove(key);
        }
    }
    match (
        pairs.remove(keys::KEY_AUTH_TYPE),
        pairs.remove(keys::KEY_AUTH_DATA),
    ) {
        (None, None) => {}
        (Some((n, t)), Some((m, d))) => {
            let kind = match t.as_str() {
                "docker" => RegistryAuthType::Docker,
                "dockercfg" => RegistryAuthType::Dockercfg,
                _ => {
                    return Err(LineError {
                        line: n,
                        key: keys::KEY_AUTH_TYPE.into(),
                        message: "the value does not read; expected docker or dockercfg".into(),
                    });
                }
            };
            let data = serde_json::from_str::<Map<String, Value>>(&d).map_err(|_| LineError {
                line: m,
                key: keys::KEY_AUTH_DATA.into(),
                message:
                    "the value does not read; expected a JSON object of registry -> credentials"
                        .into(),
            })?;
            out.registry_auth = Some(RegistryAuth { kind, data });
        }
        (Some((n, _)), None) | (None, Some((n, _))) => {
            return Err(LineError {
                line: n,
                key: keys::KEY_AUTH_TYPE.into(),
                message:
                    "ECS_ENGINE_AUTH_TYPE and ECS_ENGINE_AUTH_DATA go together; set both or neither"
                        .into(),
            });
        }
    }
    out.config = pairs.into_iter().map(|(k, (_, v))| (k, v)).collect();
    Ok(out)
}

/// The `ecs.config` key a typed field of `spec.ecs` sets, for the error when `spec.ecs.config`
/// repeats it.
pub fn typed_field_of(key: &str) -> Option<&'static str> {
    Some(match key {
        keys::KEY_CLUSTER => "spec.ecs.cluster",
        keys::KEY_REGION => "spec.ecs.region",
        keys::KEY_EXTERNAL => "spec.ecs.external",
        keys::KEY_TASK_IAM_ROLE => "spec.ecs.taskIamRole",
        keys::KEY_TASK_IAM_ROLE_NETWORK_HOST => "spec.ecs.taskIamRoleNetworkHost",
        keys::KEY_HIGH_DENSITY_ENI => "spec.ecs.awsvpcTrunking",
        keys::KEY_LOGGING_DRIVERS => "spec.ecs.loggingDrivers",
        keys::KEY_RESERVED_MEMORY => "spec.ecs.reservedMemoryMiB",
        keys::KEY_DISABLE_IMAGE_CLEANUP => "spec.ecs.imageCleanup.enabled",
        keys::KEY_IMAGE_CLEANUP_INTERVAL => "spec.ecs.imageCleanup.interval",
        keys::KEY_IMAGE_MINIMUM_CLEANUP_AGE => "spec.ecs.imageCleanup.minimumAge",
        keys::KEY_IMAGES_PER_CYCLE => "spec.ecs.imageCleanup.imagesPerCycle",
        keys::KEY_SPOT_DRAINING => "spec.ecs.spotDraining",
        keys::KEY_INSTANCE_ATTRIBUTES => "spec.ecs.instanceAttributes",
        keys::KEY_INSTANCE_TAGS => "spec.ecs.instanceTags",
        keys::KEY_AUTH_TYPE | keys::KEY_AUTH_DATA => "spec.ecs.registryAuth",
        _ => return None,
    })
}

/// A Go duration as the ECS agent reads them (`30m`, `1h30m`, `90s`, `500ms`).
pub fn valid_go_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            .filter(|u| rest.starts_with(u))
            .max_by_key(|u| u.len())
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// The logging drivers the ECS agent accepts in `ECS_AVAILABLE_LOGGING_DRIVERS`.
pub const LOGGING_DRIVERS: &[&str] = &[
    "json-file",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "logentries",
    "awsfirelens",
    "none",
];

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# from user data\nECS_CLUSTER=prod\nECS_ENABLE_TASK_IAM_ROLE=true\n\
        ECS_AVAILABLE_LOGGING_DRIVERS=[\"json-file\",\"awslogs\"]\n\
        ECS_ENGINE_AUTH_TYPE=docker\n\
        ECS_ENGINE_AUTH_DATA={\"https://index.docker.io/v1/\":{\"username\":\"u\",\"password\":\"p\",\"email\":\"e@example.com\"}}\n\
        ECS_INSTANCE_ATTRIBUTES='{\"stack\": \"prod\"}'\n\
        ECS_LOGLEVEL=debug\nECS_RESERVED_MEMORY=256\n";

    #[test]
    fn an_ecs_config_reads_into_the_typed_section() {
        assert!(looks_like_ecs_config(FILE));
        let o = parse_ecs_config(FILE).unwrap();
        assert_eq!(o.cluster.as_deref(), Some("prod"));
        assert_eq!(o.task_iam_role, Some(true));
        assert_eq!(o.logging_drivers, ["json-file", "awslogs"]);
        assert_eq!(o.reserved_memory_mib, Some(256));
        assert_eq!(o.instance_attributes["stack"], "prod");
        let auth = o.registry_auth.as_ref().unwrap();
        assert_eq!(auth.kind, RegistryAuthType::Docker);
        assert!(!format!("{auth:?}").contains("\"p\""));
        assert_eq!(
            o.config,
            BTreeMap::from([("ECS_LOGLEVEL".into(), "debug".into())])
        );
    }

    #[test]
    fn yaml_and_json_are_not_ecs_config() {
        assert!(!looks_like_ecs_config(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n"
        ));
        assert!(!looks_like_ecs_config("{\"a\": 1}"));
        assert!(!looks_like_ecs_config("# only a comment\n"));
        assert!(!looks_like_ecs_config("ECS_CLUSTER=a\nnot a pair\n"));
    }

    #[test]
    fn bad_lines_name_the_line_and_key_but_never_a_secret() {
        let e = parse_ecs_config("ECS_CLUSTER=a\nECS_RESERVED_MEMORY=lots\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "ECS_RESERVED_MEMORY"));
        assert!(e.message.contains("lots"), "{}", e.message);
        let e = parse_ecs_config("ECS_ENGINE_AUTH_TYPE=docker\nECS_ENGINE_AUTH_DATA=hunter2\n")
            .unwrap_err();
        assert_eq!(e.key, "ECS_ENGINE_AUTH_DATA");
        assert!(!e.message.contains("hunter2"));
        let e = parse_ecs_config("ECS_ENGINE_AUTH_TYPE=docker\n").unwrap_err();
        assert!(e.message.contains("go together"));
    }

    #[test]
    fn trunking_maps_only_when_it_renders_the_same_keys() {
        let o = parse_ecs_config("ECS_ENABLE_TASK_ENI=true\nECS_ENABLE_HIGH_DENSITY_ENI=true\n")
            .unwrap();
        assert_eq!(o.awsvpc_trunking, Some(true));
        assert!(o.config.is_empty());
        let o = parse_ecs_config("ECS_ENABLE_HIGH_DENSITY_ENI=true\n").unwrap();
        assert_eq!(o.awsvpc_trunking, None);
        assert_eq!(o.config["ECS_ENABLE_HIGH_DENSITY_ENI"], "true");
    }

    #[test]
    fn go_durations() {
        for ok in ["30m", "1h30m", "90s", "500ms", "1.5h"] {
            assert!(valid_go_duration(ok), "{ok}");
        }
        for bad in ["", "30", "m", "30 minutes", "1d"] {
            assert!(!valid_go_duration(bad), "{bad}");
        }
    }
}
