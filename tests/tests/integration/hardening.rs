//! Bad input by class, as the agent's users meet it through the CLI: secret-bearing fields
//! holding values of every YAML type, credentials in URLs, unbounded echoes, checks that must
//! run offline in `config check` (bootstrap flags included), other documents than NodeConfig,
//! and file errors mapped to exit codes by cause. The fixture corpus
//! (`tests/fixtures/bad-config`, run by `config::every_bad_config_exits_2_with_a_precise_message`)
//! holds one file per case; these tests generate their cases.

use std::process::Output;

use crate::config::run_agent as run;

fn all_output(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

const HEAD: &str = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n";
const ACTIVATION_ID: &str = "3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const PIN: &str = "sha256:04e58bf21ceff0a3df962ae3651ed69177457769f22858dcf1b0988a66dedfa2";

/// A NodeConfig with one secret-bearing field set to `value` (YAML text), for each such field
/// `config::secrets` names.
fn secret_documents(value: &str) -> Vec<(&'static str, String)> {
    let cluster = format!("{HEAD}spec:\n  cluster:\n    name: c1\n    region: us-west-2\n");
    vec![
        (
            "spec.hybrid.ssm.activationCode",
            format!(
                "{cluster}  hybrid:\n    ssm:\n      activationCode: {value}\n      activationId: {ACTIVATION_ID}\n"
            ),
        ),
        (
            "spec.kubeadm.bootstrapToken",
            format!(
                "{HEAD}spec:\n  cluster:\n    name: eksa\n    apiServerEndpoint: https://10.0.0.10:6443\n  kubeadm:\n    bootstrapToken: {value}\n    caCertHashes: [{PIN}]\n"
            ),
        ),
        (
            "spec.instance.environment (secret name)",
            format!(
                "{cluster}  instance:\n    environment:\n      default:\n        AWS_SECRET_ACCESS_KEY: {value}\n"
            ),
        ),
        (
            "spec.instance.environment (proxy)",
            format!(
                "{cluster}  instance:\n    environment:\n      kubelet:\n        HTTPS_PROXY: {value}\n"
            ),
        ),
        (
            "spec.kubelet.config.staticPodURLHeader",
            format!(
                "{cluster}  kubelet:\n    config:\n      staticPodURLHeader:\n        Authorization: {value}\n"
            ),
        ),
        (
            "spec.containerd.baseRuntimeSpec.process.env",
            format!(
                "{cluster}  containerd:\n    baseRuntimeSpec:\n      process:\n        env: [\"DB_PASSWORD={}\"]\n",
                value.replace('"', "")
            ),
        ),
    ]
}

/// containerd registry credentials: the same values, as TOML inside `spec.containerd.config`.
fn registry_documents(toml_value: &str) -> Vec<(&'static str, String)> {
    ["password", "auth", "identitytoken"]
        .into_iter()
        .map(|key| {
            (
                key,
                format!(
                    "{HEAD}spec:\n  cluster:\n    name: c1\n  containerd:\n    config: |\n      [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.example.com\".auth]\n      username = \"robot\"\n      {key} = {toml_value}\n"
                ),
            )
        })
        .collect()
}

/// For every secret-bearing field and every YAML type its value may take (int, float, bool,
/// null, list, map, tagged, long string, and a valid string), `config check`, `config show`
/// (YAML and JSON, with `--explain`) at `-vv` never print the value.
#[test]
fn secret_fields_of_every_yaml_type_never_appear_in_any_output() {
    // (YAML value, texts that would reveal it)
    let values: [(&str, &[&str]); 9] = [
        (
            "739155820466177401",
            &["739155820466177401", "7.391558204664174e17", "73915582046"],
        ),
        ("271828.1828459045235360", &["271828"]),
        ("true", &["`true`", "boolean true"]),
        ("~", &[]),
        ("[LISTSECRET9911, 42]", &["LISTSECRET9911"]),
        ("{MAPKEY9911: MAPVAL9911}", &["MAPKEY9911", "MAPVAL9911"]),
        ("!tagged 8675309123", &["8675309123"]),
        (
            &*Box::leak(format!("LONGSECRET{}", "z".repeat(5000)).into_boxed_str()),
            &["LONGSECRET"],
        ),
        (
            "\"http://robot:STRSECRET77@proxy.example.com:3128\"",
            &["STRSECRET77"],
        ),
    ];
    let toml_values: [(&str, &[&str]); 6] = [
        ("739155820466177401", &["739155820466177401"]),
        ("271828.18284", &["271828"]),
        ("[\"TOMLLIST9911\"]", &["TOMLLIST9911"]),
        ("{ k = \"TOMLMAP9911\" }", &["TOMLMAP9911"]),
        ("\"TOMLSTRING9911\"", &["TOMLSTRING9911"]),
        ("\"\"\"TOMLMULTI9911\"\"\"", &["TOMLMULTI9911"]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for (value, reveals) in values {
        for (field, doc) in secret_documents(value) {
            // A proxy URL's secret is its user information; a plain string is no secret.
            if field.ends_with("(proxy)") && value.starts_with("LONGSECRET") {
                continue;
            }
            cases.push((
                format!("{field} = {}", &value[..value.len().min(40)]),
                doc,
                reveals,
            ));
        }
    }
    for (value, reveals) in toml_values {
        for (key, doc) in registry_documents(value) {
            cases.push((format!("containerd registry {key} = {value}"), doc, reveals));
        }
    }
    let mut failures = Vec::new();
    let mut shown = 0;
    for (i, (name, doc, reveals)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.yaml"));
        std::fs::write(&path, doc).unwrap();
        let uri = format!("file://{}", path.display());
        let mut outputs = vec![run(&["-vv", "config", "check", "-c", &uri])];
        if outputs[0].status.success() {
            shown += 1;
            for format in ["yaml", "json"] {
                outputs.push(run(&[
                    "-vv",
                    "config",
                    "show",
                    "-o",
                    format,
                    "--explain",
                    "-c",
                    &uri,
                ]));
            }
        }
        for out in &outputs {
            let text = all_output(out);
            if let Some(r) = reveals.iter().find(|r| text.contains(*r)) {
                failures.push(format!("{name}: {r:?} appears in\n{text}"));
            }
            if !matches!(out.status.code(), Some(0 | 2)) {
                failures.push(format!("{name}: exit {:?}\n{text}", out.status.code()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        shown >= 10,
        "only {shown} cases were valid enough for config show"
    );
}

/// `bootstrap` validates every flag's value like the NodeConfig field it maps to, and names
/// the flag; nothing is written (exit 2 before anything else).
#[test]
fn every_bootstrap_flag_is_validated_and_named() {
    let ca = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBQUEKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
    let cases: &[(&[&str], &str)] = &[
        (
            &["--dns-cluster-ip", "10.100.0.300"],
            "--dns-cluster-ip: spec.kubelet.config.clusterDNS[0]: \"10.100.0.300\" is not an IP address",
        ),
        (
            &[
                "--apiserver-endpoint",
                "https://admin:hunter2pw@x.example.com",
            ],
            "--apiserver-endpoint: spec.cluster.apiServerEndpoint: \"https://***@x.example.com\" carries credentials",
        ),
        (
            &["--apiserver-endpoint", "http://x.example.com"],
            "--apiserver-endpoint: spec.cluster.apiServerEndpoint: \"http://x.example.com\" uses scheme http",
        ),
        (
            &["--b64-cluster-ca", ca],
            "--b64-cluster-ca: spec.cluster.certificateAuthority: certificate 1 is not a valid X.509 certificate",
        ),
        (
            &["--b64-cluster-ca", "not base64!"],
            "--b64-cluster-ca: spec.cluster.certificateAuthority: is not valid base64",
        ),
        (
            &["--service-ipv4-cidr", "fd00::/108"],
            "--service-ipv4-cidr: \"fd00::/108\" is not an IPv4 CIDR",
        ),
        (
            &["--service-ipv4-cidr", "10.100.0.0/33"],
            "--service-ipv4-cidr: \"10.100.0.0/33\" is not a CIDR",
        ),
        (
            &["--ip-family", "ipv6", "--service-ipv6-cidr", "10.0.0.0/16"],
            "--service-ipv6-cidr: \"10.0.0.0/16\" is not an IPv6 CIDR",
        ),
        (
            &["--service-ipv6-cidr", "nope"],
            "--service-ipv6-cidr: \"nope\" is not a CIDR",
        ),
        (
            &["--ip-family", "ipv5"],
            "--ip-family: \"ipv5\" is not ipv4 or ipv6",
        ),
        (
            &[
                "--pause-container-account",
                "602401143452",
                "--pause-container-version",
                "3.10\"\n[evil]",
            ],
            "--pause-container-version: \"3.10\\\"\\n[evil]\" is not an image tag",
        ),
        (
            &["--pause-container-account", "12345"],
            "--pause-container-account: \"12345\" is not a 12-digit AWS account ID",
        ),
        (
            &["--kubelet-extra-args", "node-labels=a=b"],
            "--kubelet-extra-args: spec.kubelet.flags[0]: \"node-labels=a=b\" is not a kubelet flag",
        ),
        (
            &["--kubelet-extra-args", "--node-labels='a"],
            "--kubelet-extra-args: cannot be split into arguments",
        ),
        (
            &["--local-disks", "raid5"],
            "--local-disks: \"raid5\" is not raid0, raid10 or mount",
        ),
        (
            &["--aws-api-retry-attempts", "0"],
            "--aws-api-retry-attempts: 0 attempts would make no AWS call",
        ),
        (
            &["--enable-local-outpost", "true"],
            "--enable-local-outpost: spec.cluster.enableOutpost: is true but spec.cluster.id is not set",
        ),
        (
            &["--container-runtime", "dockerd"],
            "--container-runtime: \"dockerd\" is not supported",
        ),
    ];
    let mut failures = Vec::new();
    for (flags, expected) in cases {
        let mut args = vec![
            "bootstrap",
            "my-cluster",
            "--print-config",
            "--region",
            "us-west-2",
        ];
        args.extend_from_slice(flags);
        let out = run(&args);
        let text = all_output(&out);
        if out.status.code() != Some(2) || !text.contains(expected) || text.contains("hunter2pw") {
            failures.push(format!(
                "{flags:?}: exit {:?}\n  expected: {expected}\n  got: {text}",
                out.status.code()
            ));
        }
    }
    let out = run(&["bootstrap", "bad name!", "--print-config"]);
    if out.status.code() != Some(2)
        || !all_output(&out).contains("bootstrap CLUSTER argument: spec.cluster.name")
    {
        failures.push(format!("cluster name: {}", all_output(&out)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The valid flags still translate.
    let out = run(&[
        "bootstrap",
        "my-cluster",
        "--print-config",
        "--region",
        "us-west-2",
        "--dns-cluster-ip",
        "10.100.0.10",
        "--ip-family",
        "ipv6",
        "--service-ipv4-cidr",
        "10.100.0.0/16",
        "--service-ipv6-cidr",
        "fd00:10:96::/108",
        "--pause-container-account",
        "602401143452",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        yaml.contains("- 10.100.0.10") && yaml.contains("cidr: fd00:10:96::/108"),
        "{yaml}"
    );
    assert!(
        yaml.contains("602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:"),
        "{yaml}"
    );
}

fn certificate(not_before: time::OffsetDateTime, not_after: time::OffsetDateTime) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["kubernetes".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = not_before;
    params.not_after = not_after;
    params.self_signed(&key).unwrap().pem()
}

/// A CA bundle: all certificates outside their validity window is an error (exit 2, each
/// named with its date); some is a warning (exit 0); all valid is silent.
#[test]
fn ca_bundle_validity_window_is_checked_offline() {
    use base64::Engine;
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let valid = certificate(now - day, now + 365 * day);
    let expired = certificate(now - 400 * day, now - 30 * day);
    let early = certificate(now + 30 * day, now + 400 * day);
    let dir = tempfile::tempdir().unwrap();
    let check = |bundle: &str| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bundle);
        let path = dir.path().join("ca.yaml");
        std::fs::write(
            &path,
            format!("{HEAD}spec:\n  cluster:\n    name: c1\n    certificateAuthority: {b64}\n"),
        )
        .unwrap();
        run(&[
            "config",
            "check",
            "-c",
            &format!("file://{}", path.display()),
        ])
    };
    let out = check(&valid);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(!all_output(&out).contains("WARN"), "{}", all_output(&out));

    let out = check(&format!("{expired}{valid}{early}"));
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "2 of 3 certificates in the CA bundle are not valid now (certificate 1 expired"
        ) && text.contains("certificate 3 is not valid before")
            && text.contains("1 warning"),
        "{text}"
    );

    let out = check(&format!("{expired}{early}"));
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("no certificate in the CA bundle is valid now"),
        "{text}"
    );
}

/// A source that never ends (a device) or is larger than the cap stops at the cap (exit 2,
/// the limit named); file errors are exit 2 when the path is the problem.
#[test]
fn file_sources_are_capped_and_file_errors_are_bad_input() {
    let started = std::time::Instant::now();
    let out = run(&["config", "check", "-c", "file:///dev/zero"]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("larger than 16777216 bytes (the size limit"),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let missing = format!("{d}/missing.pem");
    let arns = [
        "--trust-anchor-arn",
        "arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/ta",
        "--profile-arn",
        "arn:aws:rolesanywhere:us-west-2:123456789012:profile/p",
        "--role-arn",
        "arn:aws:iam::123456789012:role/r",
        "--region",
        "us-west-2",
    ];
    for (cert, why) in [(&d, "Is a directory"), (&missing, "No such file")] {
        let mut args = vec!["credentials", "--certificate", cert, "--private-key", cert];
        args.extend_from_slice(&arns);
        let out = run(&args);
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(2), "{cert}: {text}");
        assert!(text.contains(why), "{cert}: {text}");
    }
    // The same for bootstrap's --containerd-config-file and a config source.
    for path in [&d, &missing] {
        let out = run(&[
            "bootstrap",
            "c1",
            "--print-config",
            "--containerd-config-file",
            path,
        ]);
        assert_eq!(out.status.code(), Some(2), "{path}: {}", all_output(&out));
    }
    let out = run(&["config", "check", "-c", &format!("file://{missing}")]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    // A certificate path that never ends is read up to the PEM limit, then refused.
    let mut args = vec![
        "credentials",
        "--certificate",
        "/dev/zero",
        "--private-key",
        "/dev/zero",
    ];
    args.extend_from_slice(&arns);
    let out = run(&args);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("larger than 1048576 bytes"), "{text}");
}
