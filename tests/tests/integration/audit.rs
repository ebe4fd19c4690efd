//! The field audit: every field of the NodeConfig API, as its JSON Schema (generated from the
//! types by schemars) lists it, with every value of its enumerations, and every feature gate
//! the agent knows, either changes what `init` does (the plan, the registration before
//! discovery, or the discovery request) or is named in [`NO_EFFECT`] with the reason. A field
//! added to the types without a sample here fails the test; a sample that changes nothing fails
//! it too. "A field we accept is a field we act on."

use std::collections::BTreeMap;

use eks_node_agent::config::{self, FeatureGate, NoUserData, NodeConfig};
use eks_node_agent::render::{self, Plan};
use eks_node_agent_tests::repo_root;
use serde_json::{Value, json};

/// Fields that change nothing on the host, each with the reason.
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "apiVersion",
        "the document's type (node.eks.aws/v1alpha1): checked when read, it says nothing about the node",
    ),
    (
        "kind",
        "the document's type (NodeConfig): checked when read, it says nothing about the node",
    ),
    (
        "metadata",
        "Kubernetes object metadata: carried, not interpreted (nodeadm ignores it too)",
    ),
    (
        "spec.kubeadm.unsafeSkipCAVerification",
        "only false is accepted, which is what the agent does anyway; true is refused (the agent never trusts an API server it cannot pin)",
    ),
    (
        "spec.featureGates.OSManagedNoManageENIs",
        "only false (nodeadm's default) is accepted; true is refused: it needs the AL2023 AMI's own udev network manager",
    ),
];

/// How to show a field's effect: in the golden scenario `base`, the field set to `a` against
/// the field set to `b` (`None`: not set).
struct Sample {
    base: &'static str,
    a: Value,
    b: Option<Value>,
}

fn sample(base: &'static str, a: Value, b: Option<Value>) -> Sample {
    Sample { base, a, b }
}

/// One sample per field (and per enumeration value and gate), keyed by path (`=VALUE` for an
/// enumeration value).
fn samples() -> BTreeMap<String, Sample> {
    let other_ca = eks_node_agent_tests::test_ca_b64();
    let ra = "arn:aws:rolesanywhere:us-west-2:123456789012";
    let mut s: BTreeMap<String, Sample> = BTreeMap::new();
    let mut add = |path: &str, sample: Sample| {
        s.insert(path.to_owned(), sample);
    };
    add(
        "spec.cluster.name",
        sample(
            "ec2-basic",
            json!("other-cluster"),
            Some(json!("my-cluster")),
        ),
    );
    add(
        "spec.cluster.region",
        sample(
            "hybrid-iam-roles-anywhere",
            json!("us-east-2"),
            Some(json!("us-west-2")),
        ),
    );
    // Without endpoint and CA the node takes DescribeCluster's.
    add(
        "spec.cluster.apiServerEndpoint",
        sample(
            "hybrid-ssm-from-describe-cluster",
            json!("https://other.example.com"),
            None,
        ),
    );
    add(
        "spec.cluster.certificateAuthority",
        sample("hybrid-ssm-from-describe-cluster", json!(other_ca), None),
    );
    add(
        "spec.cluster.cidr",
        sample("ec2-basic", json!("10.200.0.0/16"), None),
    );
    add(
        "spec.cluster.enableOutpost",
        sample("outposts-local-cluster", json!(true), None),
    );
    add(
        "spec.cluster.id",
        sample(
            "outposts-local-cluster",
            json!("fedcba98-7654-3210-fedc-ba9876543210"),
            Some(json!("0123abcd-4567-89ef-0123-456789abcdef")),
        ),
    );
    add(
        "spec.kubelet.config",
        sample("ec2-basic", json!({ "maxPods": 17 }), None),
    );
    add(
        "spec.kubelet.flags",
        sample("ec2-basic", json!(["--v=4"]), None),
    );
    add(
        "spec.kubelet.maxPodsExpression",
        sample("ec2-basic", json!("max_pods - 2"), None),
    );
    add(
        "spec.containerd.config",
        sample(
            "ec2-basic",
            json!("[grpc]\nmax_recv_message_size = 1\n"),
            None,
        ),
    );
    add(
        "spec.containerd.baseRuntimeSpec",
        sample(
            "ec2-basic",
            json!({ "process": { "noNewPrivileges": false } }),
            None,
        ),
    );
    // Local storage acts through the plan's storage steps (mdadm, mkfs.xfs, mount) and its
    // mount units and drop-ins, on the four instance-store disks of the RAID0 scenario.
    for strategy in ["RAID0", "RAID10", "Mount"] {
        add(
            &format!("spec.instance.localStorage.strategy={strategy}"),
            sample("ec2-local-storage-raid0-defaults", json!(strategy), None),
        );
    }
    add(
        "spec.instance.localStorage.mountPath",
        sample(
            "ec2-local-storage-raid0-defaults",
            json!("/mnt/other"),
            None,
        ),
    );
    for name in ["Containerd", "PodLogs", "SOCI"] {
        add(
            &format!("spec.instance.localStorage.disabledMounts={name}"),
            sample("ec2-local-storage-raid0-defaults", json!([name]), None),
        );
    }
    add(
        "spec.instance.environment",
        sample(
            "ec2-basic",
            json!({ "default": { "HTTPS_PROXY": "http://proxy.example.com:3128" } }),
            None,
        ),
    );
    add(
        "spec.instance.network.nameservers",
        sample("ec2-basic", json!(["10.0.0.2"]), None),
    );
    add(
        "spec.instance.network.domains",
        sample("ec2-basic", json!(["corp.example.com"]), None),
    );
    for gate in [
        "InstanceIdNodeName",
        "VpcCniPrefixDelegation",
        "VpcCniCustomNetworking",
    ] {
        add(
            &format!("spec.featureGates.{gate}"),
            sample("ec2-basic", json!(true), None),
        );
    }
    add(
        "spec.featureGates.FastImagePull",
        sample("fast-image-pull", json!(true), Some(json!(false))),
    );
    add(
        "spec.hybrid.enableCredentialsFile",
        sample("hybrid-iam-roles-anywhere", json!(true), None),
    );
    add(
        "spec.hybrid.ssm.activationCode",
        sample(
            "hybrid-ssm-unregistered-swap",
            json!("OTHERcode+9876543210"),
            Some(json!("EXAMPLEcode+0123456789")),
        ),
    );
    add(
        "spec.hybrid.ssm.activationId",
        sample(
            "hybrid-ssm-unregistered-swap",
            json!("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
            Some(json!("3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b")),
        ),
    );
    let ira = |field: &str, a: Value| {
        (
            format!("spec.hybrid.iamRolesAnywhere.{field}"),
            sample("hybrid-iam-roles-anywhere", a, None),
        )
    };
    for (path, sample) in [
        ira("nodeName", json!("rack9-node1")),
        ira(
            "trustAnchorArn",
            json!(format!(
                "{ra}:trust-anchor/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
            )),
        ),
        ira(
            "profileArn",
            json!(format!("{ra}:profile/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")),
        ),
        ira("roleArn", json!("arn:aws:iam::123456789012:role/OtherRole")),
        ira("awsConfigPath", json!("/etc/aws/other/config")),
        ira("certificatePath", json!("/etc/pki/node.pem")),
        ira("privateKeyPath", json!("/etc/pki/node.key")),
    ] {
        add(&path, sample);
    }
    // nodeName, the three ARNs are required: set against their scenario values.
    for (field, original) in [
        ("nodeName", json!("rack4-node17")),
        (
            "trustAnchorArn",
            json!(format!(
                "{ra}:trust-anchor/3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
            )),
        ),
        (
            "profileArn",
            json!(format!("{ra}:profile/8a9b0c1d-2e3f-4a5b-9c6d-7e8f9a0b1c2d")),
        ),
        (
            "roleArn",
            json!("arn:aws:iam::123456789012:role/EKSHybridNodeRole"),
        ),
    ] {
        if let Some(s) = s.get_mut(&format!("spec.hybrid.iamRolesAnywhere.{field}")) {
            s.b = Some(original);
        }
    }
    let mut add = |path: &str, sample: Sample| {
        s.insert(path.to_owned(), sample);
    };
    add(
        "spec.kubeadm.bootstrapToken",
        sample(
            "eks-anywhere-bootstrap-token",
            json!("abcdef.0123456789abcdef"),
            Some(json!("07401b.f395accd246ae52d")),
        ),
    );
    add(
        "spec.kubeadm.caCertHashes",
        sample(
            "eks-anywhere-bootstrap-token",
            json!(["sha256:0000000000000000000000000000000000000000000000000000000000000001"]),
            Some(json!([
                "sha256:04e58bf21ceff0a3df962ae3651ed69177457769f22858dcf1b0988a66dedfa2"
            ])),
        ),
    );
    add(
        "spec.kubeadm.discoveryTimeoutSeconds",
        sample("eks-anywhere-bootstrap-token", json!(60), None),
    );
    add(
        "spec.instanceTagLabels.prefix",
        sample("ec2-instance-tags", json!("other:"), None),
    );
    ecs_samples(&mut s);
    s
}

/// The samples of `spec.ecs` (scenarios of tests/golden/ecs, named `ecs/<scenario>`).
fn ecs_samples(s: &mut BTreeMap<String, Sample>) {
    const SSM: &str = "ecs/anywhere-ssm";
    const IRA: &str = "ecs/anywhere-iam-roles-anywhere";
    const EC2: &str = "ecs/ec2-nodeconfig-mime";
    const AUTH: &str = "ecs/ec2-ecs-config-user-data";
    let ra = "arn:aws:rolesanywhere:us-west-2:123456789012";
    let mut add = |path: &str, sample: Sample| {
        s.insert(format!("spec.ecs.{path}"), sample);
    };
    add("cluster", sample(SSM, json!("other"), Some(json!("edge"))));
    add(
        "region",
        sample(SSM, json!("us-west-2"), Some(json!("us-east-2"))),
    );
    add(
        "external.ssm.activationCode",
        sample(
            SSM,
            json!("OTHERcode+9876543210"),
            Some(json!("EXAMPLEcode+0123456789")),
        ),
    );
    add(
        "external.ssm.activationId",
        sample(
            SSM,
            json!("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
            Some(json!("3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b")),
        ),
    );
    let ira = |field: &str, a: Value, b: Option<Value>| {
        (
            format!("external.iamRolesAnywhere.{field}"),
            sample(IRA, a, b),
        )
    };
    for (path, sample) in [
        ira(
            "trustAnchorArn",
            json!(format!(
                "{ra}:trust-anchor/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
            )),
            Some(json!(format!(
                "{ra}:trust-anchor/3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
            ))),
        ),
        ira(
            "profileArn",
            json!(format!("{ra}:profile/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")),
            Some(json!(format!(
                "{ra}:profile/8a9b0c1d-2e3f-4a5b-9c6d-7e8f9a0b1c2d"
            ))),
        ),
        ira(
            "roleArn",
            json!("arn:aws:iam::123456789012:role/OtherRole"),
            Some(json!("arn:aws:iam::123456789012:role/ECSAnywhereRole")),
        ),
        ira("certificatePath", json!("/etc/pki/node.pem"), None),
        ira("privateKeyPath", json!("/etc/pki/node.key"), None),
        ira("roleSessionName", json!("rack9"), None),
    ] {
        add(&path, sample);
    }
    add("taskIamRole", sample(EC2, json!(false), Some(json!(true))));
    add("taskIamRoleNetworkHost", sample(EC2, json!(true), None));
    add(
        "awsvpcTrunking",
        sample(EC2, json!(false), Some(json!(true))),
    );
    add("loggingDrivers", sample(EC2, json!(["json-file"]), None));
    add("reservedMemoryMiB", sample(EC2, json!(128), None));
    add("imageCleanup.enabled", sample(EC2, json!(false), None));
    add("imageCleanup.interval", sample(EC2, json!("1h"), None));
    add("imageCleanup.minimumAge", sample(EC2, json!("2h"), None));
    add("imageCleanup.imagesPerCycle", sample(EC2, json!(3), None));
    add("spotDraining", sample(EC2, json!(false), Some(json!(true))));
    add(
        "instanceAttributes",
        sample(EC2, json!({ "stack": "dev" }), None),
    );
    add("instanceTags", sample(EC2, json!({ "Owner": "ops" }), None));
    add(
        "config",
        sample(EC2, json!({ "ECS_LOGLEVEL": "debug" }), None),
    );
    add(
        "registryAuth.type=docker",
        sample(AUTH, json!("docker"), Some(json!("dockercfg"))),
    );
    add(
        "registryAuth.type=dockercfg",
        sample(AUTH, json!("dockercfg"), Some(json!("docker"))),
    );
    add(
        "registryAuth.data",
        sample(
            AUTH,
            json!({ "https://other.example.com": { "username": "u", "password": "p", "email": "e@example.com" } }),
            Some(
                json!({ "https://registry.example.com": { "username": "ci", "password": "EXAMPLEpassword", "email": "ci@example.com" } }),
            ),
        ),
    );
}

/// A scenario's directory: `ecs/<name>` under tests/golden/ecs, else tests/golden/init.
fn scenario_dir(base: &str) -> std::path::PathBuf {
    match base.strip_prefix("ecs/") {
        Some(name) => repo_root().join("tests/golden/ecs").join(name),
        None => repo_root().join("tests/golden/init").join(base),
    }
}

/// The leaves of a JSON Schema: every field path, and `path=VALUE` for each value of a string
/// enumeration (or of an array of one).
fn leaves(
    schema: &Value,
    defs: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    let resolved = resolve(schema, defs);
    if let Some(props) = resolved.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            leaves(v, defs, &child, out);
        }
        return;
    }
    let items = resolved
        .get("items")
        .map(|i| resolve(i, defs))
        .unwrap_or(resolved);
    match enum_values(items) {
        Some(values) => out.extend(values.into_iter().map(|v| format!("{path}={v}"))),
        None => out.push(path.to_owned()),
    }
}

/// Follows `$ref`, and the non-null branch of an `Option`'s `anyOf`/`oneOf`.
fn resolve<'a>(schema: &'a Value, defs: &'a serde_json::Map<String, Value>) -> &'a Value {
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
    {
        return resolve(&defs[name], defs);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let real: Vec<&Value> = branches
                .iter()
                .filter(|b| b.get("type") != Some(&json!("null")))
                .collect();
            if real.len() == 1 && enum_values(schema).is_none() {
                return resolve(real[0], defs);
            }
        }
    }
    schema
}

/// The values of a string enumeration (`enum`, or `oneOf` of `const`s).
fn enum_values(schema: &Value) -> Option<Vec<String>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        );
    }
    let branches = schema.get("oneOf")?.as_array()?;
    let consts: Vec<String> = branches
        .iter()
        .filter_map(|b| b.get("const").and_then(Value::as_str).map(str::to_owned))
        .collect();
    (consts.len() == branches.len() && !consts.is_empty()).then_some(consts)
}

/// Every item the audit covers: the schema's leaves (the gate map replaced by the gates the
/// agent knows) and `FeatureGate::ALL`.
fn audit_items() -> Vec<String> {
    let schema = serde_json::to_value(schemars::schema_for!(NodeConfig)).unwrap();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    leaves(&schema, &defs, "", &mut out);
    out.retain(|p| p != "spec.featureGates");
    out.extend(
        FeatureGate::ALL
            .iter()
            .map(|g| format!("spec.featureGates.{}", g.name())),
    );
    out
}

/// Everything `init` would do with a config on a scenario's host: the plan, the registration
/// before discovery, and the discovery request.
#[derive(Debug, PartialEq)]
struct Effects {
    plan: Plan,
    registration: Plan,
    discovery: String,
}

fn effects(base: &str, config: &NodeConfig) -> Result<Effects, String> {
    let dir = scenario_dir(base);
    let found = crate::init::scenario_facts(&dir);
    config::validate::validate(
        config,
        &config::Provenance::new(),
        &[],
        std::time::SystemTime::now(),
    )
    .map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let registration = render::registration(config, found.ssm_managed_instance_id.is_some(), true)
        .map_err(|e| e.to_string())?;
    let discovery = config
        .discovery(&|_| None)
        .map(|p| format!("{p:?}"))
        .map_err(|e| e.to_string())?;
    let plan = if config.is_ecs() {
        let values =
            eks_node_agent::compute::ecs::resolve(config, &found).map_err(|e| e.to_string())?;
        render::ecs::render(config, &values)
    } else {
        let node =
            eks_node_agent::compute::values::resolve(config, &found).map_err(|e| e.to_string())?;
        render::render(config, &node)
    };
    Ok(Effects {
        plan,
        registration,
        discovery,
    })
}

/// The base scenario's config with the field at `path` set to `value` (`None`: removed).
fn with_field(base: &str, path: &str, value: Option<&Value>) -> NodeConfig {
    let dir = scenario_dir(base);
    let source = crate::init::scenario_source(&dir).unwrap();
    let loaded = config::load(&[format!("file://{}", source.display())], &NoUserData).unwrap();
    let mut doc = serde_json::to_value(&loaded.config).unwrap();
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().unwrap();
    let mut at = &mut doc;
    for p in parents {
        at = at
            .as_object_mut()
            .unwrap()
            .entry((*p).to_owned())
            .or_insert_with(|| json!({}));
    }
    let map = at.as_object_mut().unwrap();
    match value {
        Some(v) => {
            map.insert((*last).to_owned(), v.clone());
        }
        None => {
            map.remove(*last);
        }
    }
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{base}: {path}: {e}"))
}

#[test]
fn every_nodeconfig_field_acts_on_the_host_or_says_why_not() {
    let items = audit_items();
    assert!(items.len() >= 40, "the schema gave only {items:?}");
    let samples = samples();
    let mut failures = Vec::new();
    for item in &items {
        let field = item.split('=').next().unwrap_or(item);
        if let Some((_, reason)) = NO_EFFECT.iter().find(|(p, _)| p == item || *p == field) {
            assert!(!reason.is_empty());
            continue;
        }
        let Some(s) = samples.get(item) else {
            failures.push(format!(
                "{item}: a NodeConfig field with no audit sample and no NO_EFFECT entry: make it act on the host (and add a sample here that shows it), or name it in NO_EFFECT with the reason"
            ));
            continue;
        };
        let a = effects(s.base, &with_field(s.base, field, Some(&s.a)));
        let b = effects(s.base, &with_field(s.base, field, s.b.as_ref()));
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => failures.push(format!(
                "{item}: setting it to {} (against {}) in scenario {} changes neither the plan, the registration nor the discovery request: a field the agent accepts must act on the host",
                s.a,
                s.b.as_ref().map_or_else(|| "unset".to_owned(), ToString::to_string),
                s.base
            )),
            (Ok(_), Ok(_)) => {}
            (a, b) => failures.push(format!(
                "{item}: the sample does not resolve in scenario {}: {:?} / {:?}",
                s.base,
                a.err(),
                b.err()
            )),
        }
    }
    // No stale entries: every sample and NO_EFFECT entry names a field of the API.
    for key in samples.keys() {
        if !items.contains(key) {
            failures.push(format!("sample {key} is not a field of the NodeConfig API"));
        }
    }
    for (path, _) in NO_EFFECT {
        if !items
            .iter()
            .any(|i| i == path || i.starts_with(&format!("{path}=")))
        {
            failures.push(format!(
                "NO_EFFECT entry {path} is not a field of the NodeConfig API"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fields fail the audit:\n{}",
        failures.len(),
        items.len(),
        failures.join("\n")
    );
}
