//! Amazon ECS container instances: golden scenarios (ECS on EC2 from user data, ECS Anywhere
//! with SSM and with IAM Roles Anywhere), bad input refused before anything is written,
//! `init` end to end under `--root` against the Roles Anywhere and introspection emulators,
//! and on a host booted with systemd-nspawn, where the SSM registration really runs (the
//! stand-in SSM agent against the SSM emulator).

use std::path::{Path, PathBuf};
use std::process::Output;

use eks_node_agent::config::{self, NoUserData};
use eks_node_agent::model::ecs::FileCredentials;
use eks_node_agent::{compute, render};
use eks_node_agent_tests::repo_root;

use crate::init::{check_plan, scenario_facts, scenario_source};

/// Each directory of tests/golden/ecs has `nodeconfig.yaml` or `user-data`, `discovered.yaml`,
/// optionally `credentials` (the first IAM Roles Anywhere session discovery would write), and
/// the expected `expected/` files and `expected.plan`. `EKS_AGENT_UPDATE_GOLDEN=1` regenerates.
#[test]
fn golden_ecs_scenarios() {
    let root = repo_root().join("tests/golden/ecs");
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| scenario_source(p).is_some())
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 4, "found {} scenarios", scenarios.len());
    let mut failures = Vec::new();
    for dir in &scenarios {
        let uri = format!("file://{}", scenario_source(dir).unwrap().display());
        let loaded = config::load(&[uri], &NoUserData).unwrap();
        assert!(loaded.config.is_ecs(), "{}", dir.display());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let mut found = scenario_facts(dir);
        if let Ok(contents) = std::fs::read_to_string(dir.join("credentials")) {
            found.ecs_file_credentials = Some(FileCredentials { contents });
        }
        let registration = render::registration(
            &loaded.config,
            found.ssm_managed_instance_id.is_some(),
            true,
        )
        .unwrap();
        let values = compute::ecs::resolve(&loaded.config, &found).unwrap();
        let plan = render::ecs::render(&loaded.config, &values);
        failures.extend(check_plan(dir, &registration, &plan));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn agent(args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut cmd = std::process::Command::new(crate::agent_bin());
    cmd.args(args).env_remove("AWS_PROFILE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Bad input: exit 2 naming the field, and nothing under the root.
#[test]
fn bad_ecs_input_exits_2_naming_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str], &str); 4] = [
        (
            "unknown-key.config",
            "ECS_CLUSTER=prod\nECS_LOGLEVL=debug\n",
            &["--strict"],
            "spec.ecs.config.ECS_LOGLEVL: is not a key the ECS agent or ecs-init documents, so it probably does nothing; did you mean ECS_LOGLEVEL?",
        ),
        (
            "both.yaml",
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  ecs:\n    cluster: edge\n    region: us-west-2\n    external:\n      ssm:\n        activationId: 3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b\n        activationCode: EXAMPLEcode+0123456789\n      iamRolesAnywhere:\n        trustAnchorArn: arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b\n        profileArn: arn:aws:rolesanywhere:us-west-2:123456789012:profile/8a9b0c1d-2e3f-4a5b-9c6d-7e8f9a0b1c2d\n        roleArn: arn:aws:iam::123456789012:role/ECSAnywhereRole\n",
            &[],
            "spec.ecs.external: sets both ssm and iamRolesAnywhere; choose exactly one credential provider",
        ),
        (
            "bad-name.config",
            "ECS_CLUSTER=prod.web\n",
            &[],
            "spec.ecs.cluster: \"prod.web\" is not a name ECS accepts",
        ),
        (
            "typed-twice.yaml",
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  ecs:\n    cluster: prod\n    config:\n      ECS_CLUSTER: other\n",
            &[],
            "spec.ecs.config.ECS_CLUSTER: is set by spec.ecs.cluster; use that field instead",
        ),
    ];
    for (name, body, extra, expected) in cases {
        let src = dir.path().join(name);
        std::fs::write(&src, body).unwrap();
        let root = dir.path().join(format!("root-{name}"));
        std::fs::create_dir_all(&root).unwrap();
        let uri = format!("file://{}", src.display());
        let mut args = vec!["init", "-c", &uri, "--root", root.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = agent(&args, &[]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {all}");
        assert!(all.contains(expected), "{name}: {all}");
        assert!(all.contains(&uri), "{name}: names the source: {all}");
        assert!(
            !all.contains("EXAMPLEcode"),
            "{name}: leaks a secret: {all}"
        );
        assert!(
            files_in(&root).is_empty(),
            "{name}: wrote {:?}",
            files_in(&root)
        );
    }
}

/// The ecs.config a host has validates as a source, and `config show` hides its secrets.
#[test]
fn an_existing_ecs_config_validates_and_show_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("ecs.config");
    std::fs::write(
        &src,
        "ECS_CLUSTER=prod\nECS_ENGINE_AUTH_TYPE=dockercfg\nECS_ENGINE_AUTH_DATA={\"https://r.example.com\":{\"auth\":\"c2VjcmV0\",\"email\":\"a@example.com\"}}\nAWS_SECRET_ACCESS_KEY=EXAMPLEsecretkey\n",
    )
    .unwrap();
    let uri = format!("file://{}", src.display());
    let out = agent(&["config", "check", "--strict", "-c", &uri], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ECS cluster prod"), "{}", text(&out));
    let out = agent(&["config", "show", "-c", &uri], &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
    assert!(!shown.contains("EXAMPLEsecretkey"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

/// ECS Anywhere with IAM Roles Anywhere: the Roles Anywhere emulator (CreateSession signed
/// with the host's certificate) and the introspection emulator.
/// The `ecs_agent` check's reasons against the introspection emulator: no answer, an agent
/// not registered yet, one registered in another cluster, and a healthy one.
#[test]
fn agent_check_reasons_against_the_introspection_emulator() {
    use eks_node_agent::checks::ecs::agent;
    use eks_node_agent::facts::ecs_agent::Introspection;
    use eks_node_agent_tests::ecs_agent::AgentEmulator;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let arn = "arn:aws:ecs:us-west-2:123456789012:container-instance/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let emulator = AgentEmulator::start("prod");
    let api = Introspection::new(&emulator.endpoint()).unwrap();
    let reason = |cluster: Option<&str>| rt.block_on(agent(&api, cluster)).reason;
    assert_eq!(reason(Some("prod")), "EcsAgentNotRegistered");
    emulator.register(arn);
    assert_eq!(reason(Some("prod")), "");
    assert_eq!(reason(Some("batch")), "EcsAgentWrongCluster");
    let closed = format!("http://127.0.0.1:{}", eks_node_agent_tests::free_port());
    let unreachable = Introspection::new(&closed).unwrap();
    assert_eq!(
        rt.block_on(agent(&unreachable, Some("prod"))).reason,
        "EcsAgentUnreachable"
    );
}

mod anywhere {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use eks_node_agent_tests::ecs_agent::AgentEmulator;
    use eks_node_agent_tests::rolesanywhere::{Config, Emulator, KeyKind, TestPki};

    use super::{agent, text};

    struct World {
        ra: Emulator,
        config: Config,
        tmp: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
    }

    impl World {
        fn start() -> World {
            let pki = TestPki::new("ecs-anywhere", KeyKind::P256);
            let config = Config::for_pki(&pki);
            let ra = Emulator::start(config.clone());
            let leaf = pki.issue_valid("store-42-rack1", KeyKind::P256);
            let tmp = tempfile::tempdir().unwrap();
            let cert = tmp.path().join("server.pem");
            let key = tmp.path().join("server.key");
            std::fs::write(&cert, format!("{}{}", leaf.cert_pem, leaf.chain_pem)).unwrap();
            std::fs::write(&key, &leaf.key_pem).unwrap();
            World {
                ra,
                config,
                tmp,
                cert,
                key,
            }
        }

        fn envs(&self) -> Vec<(&'static str, String)> {
            vec![
                ("AWS_ENDPOINT_URL_ROLESANYWHERE", self.ra.endpoint()),
                ("AWS_CA_BUNDLE", self.ra.ca_bundle().display().to_string()),
            ]
        }

        fn nodeconfig(&self) -> String {
            let path = self.tmp.path().join("ecs-anywhere.yaml");
            std::fs::write(
                &path,
                format!(
                    "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  ecs:\n    cluster: edge\n    region: us-west-2\n    taskIamRole: true\n    external:\n      iamRolesAnywhere:\n        trustAnchorArn: {}\n        profileArn: {}\n        roleArn: {}\n        certificatePath: {}\n        privateKeyPath: {}\n",
                    self.config.trust_anchor_arn,
                    self.config.profile_arn,
                    self.config.role_arns[0],
                    self.cert.display(),
                    self.key.display()
                ),
            )
            .unwrap();
            format!("file://{}", path.display())
        }
    }

    const ARN: &str = "arn:aws:ecs:us-west-2:123456789012:container-instance/edge/0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    /// A mirror with Docker's static tarball, amazon-ecs-init and the agent image, and its
    /// manifest.json of SHA-256 sums, signed with the install tests' key; each program is
    /// `script(name)`.
    fn ecs_mirror(dir: &std::path::Path, script: fn(&str) -> Vec<u8>) {
        use crate::install::{targz, write_manifest_of};
        std::fs::create_dir_all(dir).unwrap();
        let scripts: Vec<(String, Vec<u8>)> =
            ["dockerd", "docker", "containerd", "runc", "docker-init"]
                .iter()
                .map(|n| (format!("docker/{n}"), script(n)))
                .collect();
        let entries: Vec<(&str, &[u8], u32)> = scripts
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice(), 0o755))
            .collect();
        targz(&dir.join("docker-27.5.1.tgz"), &entries);
        std::fs::write(dir.join("amazon-ecs-init"), script("amazon-ecs-init")).unwrap();
        std::fs::write(dir.join("ecs-agent-v1.82.0.tar"), b"agent image layers\n").unwrap();
        write_manifest_of(
            dir,
            &[
                ("docker", "docker-27.5.1.tgz"),
                ("ecs-init", "amazon-ecs-init"),
                ("ecs-agent-image", "ecs-agent-v1.82.0.tar"),
            ],
        );
    }

    /// `init -c URI --root ROOT --ecs-introspection ENDPOINT [--ecs-wait SECS]` with the
    /// world's endpoints.
    fn init(
        world: &World,
        uri: &str,
        root: &std::path::Path,
        endpoint: &str,
        wait: Option<&str>,
    ) -> std::process::Output {
        let mut args = vec![
            "init",
            "-c",
            uri,
            "--root",
            root.to_str().unwrap(),
            "--ecs-introspection",
            endpoint,
        ];
        if let Some(w) = wait {
            args.extend(["--ecs-wait", w]);
        }
        agent(&args, &world.envs())
    }

    #[test]
    fn init_writes_config_and_fresh_credentials_then_waits_for_the_arn() {
        let world = World::start();
        let ecs = AgentEmulator::start("edge");
        ecs.register_after(2, ARN);
        let root = world.tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        // Docker, ecs-init and the agent image from the mirror, verified against its manifest.
        let mirror = world.tmp.path().join("mirror");
        ecs_mirror(&mirror, crate::install::script);
        let out = agent(
            &[
                "install",
                "--from",
                mirror.to_str().unwrap(),
                "--root",
                root.to_str().unwrap(),
                "--trusted-key",
                crate::install::test_key().0.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        for (path, mode) in [
            ("usr/bin/dockerd", 0o755),
            ("usr/bin/containerd", 0o755),
            ("usr/libexec/amazon-ecs-init", 0o755),
            ("var/cache/ecs/ecs-agent.tar", 0o644),
            ("usr/lib/systemd/system/ecs.service", 0o644),
            ("usr/lib/systemd/system/docker.service", 0o644),
        ] {
            let meta = std::fs::metadata(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{path}");
        }
        assert_eq!(
            std::fs::read_to_string(root.join("var/cache/ecs/state")).unwrap(),
            "2\n"
        );
        let unit =
            std::fs::read_to_string(root.join("usr/lib/systemd/system/ecs.service")).unwrap();
        assert!(
            unit.contains("ExecStart=/usr/libexec/amazon-ecs-init start")
                && unit.contains("EnvironmentFile=-/etc/ecs/ecs.config"),
            "{unit}"
        );
        let uri = world.nodeconfig();
        let endpoint = ecs.endpoint();
        let out = init(&world, &uri, &root, &endpoint, Some("60"));
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        assert!(all.contains(ARN), "{all}");
        assert!(ecs.metadata_polls() >= 3, "polled {}", ecs.metadata_polls());
        let config = std::fs::read_to_string(root.join("etc/ecs/ecs.config")).unwrap();
        for line in [
            "ECS_CLUSTER=edge\n",
            "AWS_DEFAULT_REGION=us-west-2\n",
            "ECS_EXTERNAL=true\n",
            "ECS_ENABLE_TASK_IAM_ROLE=true\n",
        ] {
            assert!(config.contains(line), "{config}");
        }
        let creds_path = root.join("root/.aws/credentials");
        let creds = std::fs::read_to_string(&creds_path).unwrap();
        let mode = std::fs::metadata(&creds_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            creds.contains(&format!(
                "aws_access_key_id = {}\n",
                world.config.access_key_id
            )) && creds.contains(&world.config.session_token),
            "{creds}"
        );
        assert!(
            !all.contains(&world.config.secret_access_key),
            "the secret leaked into the output"
        );
        // The session came from CreateSession, signed with the host's certificate.
        assert!(
            world.ra.requests().iter().any(|r| r.status == 201),
            "{:?}",
            world.ra.requests()
        );
        let unit = std::fs::read_to_string(
            root.join("etc/systemd/system/eks-node-agent-ecs-credentials.service"),
        )
        .unwrap();
        assert!(
            unit.contains("--update-file \"/root/.aws/credentials\""),
            "{unit}"
        );

        // Again: the same config, fresh credentials, and a registered agent answers at once.
        let out = init(&world, &uri, &root, &endpoint, None);
        assert!(out.status.success(), "{}", text(&out));
    }

    #[test]
    fn init_fails_clearly_when_the_agent_never_registers() {
        let world = World::start();
        let ecs = AgentEmulator::start("edge");
        let root = world.tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let uri = world.nodeconfig();
        let endpoint = ecs.endpoint();
        let out = init(&world, &uri, &root, &endpoint, Some("3"));
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(
            all.contains("the ECS agent did not register a container instance within")
                && all.contains("answered without a ContainerInstanceArn")
                && all.contains("journalctl -u ecs"),
            "{all}"
        );
        assert!(ecs.metadata_polls() >= 2, "polled {}", ecs.metadata_polls());
        // The config phase is done; only the registration is missing.
        assert!(root.join("etc/ecs/ecs.config").exists());

        // Nothing listening at all: the same error, naming the connection failure.
        drop(ecs);
        let out = init(&world, &uri, &root, &endpoint, Some("2"));
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(
            all.contains("did not register a container instance"),
            "{all}"
        );
    }

    /// An SSM activation: the dry run shows the registration before discovery (amazon-ssm-agent
    /// -register, the activation code never printed) and the ecs.config with ECS_EXTERNAL.
    #[test]
    fn ssm_dry_run_shows_the_registration_and_the_config() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("ssm.yaml");
        std::fs::write(
            &src,
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  ecs:\n    cluster: edge\n    region: us-east-2\n    external:\n      ssm:\n        activationId: 3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b\n        activationCode: EXAMPLEcode+0123456789\n",
        )
        .unwrap();
        // A stand-in for the SSM agent's binary on PATH (it is only looked for, never run:
        // the registration is not carried out in a dry run; `ssm_registration_runs_on_a_booted_host`
        // runs it).
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let ssm = bin.join("amazon-ssm-agent");
        std::fs::write(&ssm, "#!/bin/sh\nexit 1\n").unwrap();
        std::fs::set_permissions(&ssm, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let uri = format!("file://{}", src.display());
        let out = agent(
            &[
                "init",
                "--dry-run",
                "-c",
                &uri,
                "--root",
                root.to_str().unwrap(),
            ],
            &[("PATH", path)],
        );
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        assert!(
            all.contains(
                "register with SSM: activation 3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b in us-east-2"
            ),
            "{all}"
        );
        assert!(
            all.contains("ECS_EXTERNAL=true") && all.contains("/etc/ecs/ecs.config"),
            "{all}"
        );
        assert!(!all.contains("EXAMPLEcode"), "{all}");
        assert!(super::files_in(&root).is_empty());
    }

    /// Ports inside the booted host's own network namespace.
    const SSM_PORT_INSIDE: u16 = 4443;
    /// The ECS agent's introspection port (the agent's default endpoint).
    const INTROSPECTION_PORT_INSIDE: u16 = 51678;
    const ACTIVATION_ID: &str = "3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    const ACTIVATION_CODE: &str = "EXAMPLEcode+0123456789";
    const WRONG_CODE: &str = "WRONGcode+0123456789ab";
    /// An id no activation has, and an expired activation's.
    const UNKNOWN_ID: &str = "00000000-1111-4222-8333-444444444444";
    const EXPIRED_ID: &str = "9e8d7c6b-5a49-4837-a625-140f3e2d1c0b";
    /// The activation role's keys, as the SSM agent's service would write them.
    const SSM_ROLE_KEY: &str = "AKIAEXAMPLESSMROLE01";
    const SSM_ROLE_SECRET: &str = "ssmRoleSecretKeyForTheE2eTest0123456789ab";
    const SSM_ARN: &str = "arn:aws:ecs:us-east-2:123456789012:container-instance/edge/5d4c3b2a1f0e49d8b7a6c5d4e3f2a1b0";

    /// Programs of the mirror for the booted host: `dockerd` tells systemd it is ready (the
    /// installed docker.service is `Type=notify`) and idles, ecs-init's `start` idles and its
    /// other subcommands succeed; the rest print a version.
    fn booted_host_script(name: &str) -> Vec<u8> {
        match name {
            "dockerd" => "#!/bin/sh\n# e2e stand-in for dockerd\nsystemd-notify --ready\nexec sleep infinity\n".into(),
            "amazon-ecs-init" => "#!/bin/sh\n# e2e stand-in for ecs-init\n[ \"$1\" = start ] && exec sleep infinity\nexit 0\n".into(),
            other => crate::install::script(other),
        }
    }

    fn ssm_nodeconfig(id: &str, code: &str) -> String {
        format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  ecs:\n    cluster: edge\n    region: us-east-2\n    external:\n      ssm:\n        activationId: {id}\n        activationCode: {code}\n"
        )
    }

    /// ECS Anywhere with an SSM activation on a booted host (systemd in `systemd-nspawn`, the
    /// e2e harness), where `init` acts on `/`: the registration really runs. The SSM agent is
    /// the tests' stand-in (`bench-all` as `amazon-ssm-agent`), which registers over the wire
    /// with the SSM emulator as the real agent does (endpoint from its app config) and writes
    /// what the real one writes; Docker and ecs-init come from the install mirror (stand-in
    /// programs), the introspection emulator answers on the agent's default port. SSM out of
    /// reach fails with exit 1; a wrong code, an unknown activation id and an expired
    /// activation with exit 2 naming which; nothing of ours written; the right
    /// code registers, `init` writes ecs.config, starts Docker and ecs.service and waits for the
    /// ARN; a second `init` does not register again; `uninstall --deregister` deregisters the
    /// managed instance SSM recorded.
    #[test]
    fn ssm_registration_runs_on_a_booted_host() {
        use eks_node_agent_tests::e2e::{self, Container, Forward, NetNs, Overlay};
        use eks_node_agent_tests::ssm_api::{Activation, Keys, SsmEmulator};
        let test = "ecs::anywhere::ssm_registration_runs_on_a_booted_host";
        let tools = [&e2e::NSPAWN_TOOLS[..], &["cargo"]].concat();
        if let Some(r) = e2e::skip_reason(true, &tools) {
            return e2e::note(&format!("SKIPPED {test}: {r}"));
        }
        let bin = crate::agent_bin();
        let target = e2e::target_dir(&bin);
        let rootfs = e2e::cached_rootfs(&target).unwrap();
        let stand_in = e2e::bench_all(&bin).unwrap();

        let ssm = SsmEmulator::start(
            "us-east-2",
            Keys {
                access_key_id: SSM_ROLE_KEY.into(),
                secret_access_key: SSM_ROLE_SECRET.into(),
                session_token: None,
            },
        );
        ssm.create_activation(Activation::new(ACTIVATION_ID, ACTIVATION_CODE));
        let ecs = AgentEmulator::start("edge");
        ecs.register_after(2, SSM_ARN);

        // The host: the cached Debian, the agent's binary, the SSM agent stand-in (its app
        // config, naming the emulator, is written below), the mirror and its key.
        let root = Overlay::mount(&rootfs, &target.join("e2e-scratch")).unwrap();
        root.write(
            "/usr/bin/eks-node-agent",
            &std::fs::read(&bin).unwrap(),
            0o755,
        )
        .unwrap();
        root.write(
            "/usr/bin/amazon-ssm-agent",
            &std::fs::read(&stand_in).unwrap(),
            0o755,
        )
        .unwrap();
        ecs_mirror(&root.path("/var/cache/e2e/mirror"), booted_host_script);
        root.write(
            "/var/cache/e2e/mirror.pub",
            &std::fs::read(&crate::install::test_key().0).unwrap(),
            0o644,
        )
        .unwrap();
        // systemd holds Docker's socket for the dockerd stand-in; the stand-in's readiness
        // comes from systemd-notify, a child of the service's shell.
        root.write(
            "/etc/systemd/system/docker.socket",
            b"[Unit]\nDescription=Docker socket (e2e)\n[Socket]\nListenStream=/run/docker.sock\nSocketMode=0660\n[Install]\nWantedBy=sockets.target\n",
            0o644,
        )
        .unwrap();
        root.write(
            "/etc/systemd/system/docker.service.d/10-e2e-notify.conf",
            b"[Service]\nNotifyAccess=all\n",
            0o644,
        )
        .unwrap();

        let netns = NetNs::new().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let _ssm_fwd = Forward::start(
            &netns,
            SSM_PORT_INSIDE,
            ssm.endpoint()
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .unwrap(),
            &scratch.path().join("ssm.sock"),
        )
        .unwrap();
        let _ecs_fwd = Forward::start(
            &netns,
            INTROSPECTION_PORT_INSIDE,
            ecs.endpoint()
                .trim_start_matches("http://")
                .parse()
                .unwrap(),
            &scratch.path().join("ecs.sock"),
        )
        .unwrap();
        let c = Container::boot(
            root.root(),
            &netns,
            &format!("ecs-e2e-{}", std::process::id()),
            &scratch.path().join("console.log"),
        )
        .unwrap();
        c.wait_booted().unwrap();
        let run = |args: &[&str]| {
            let out = c.exec(args, &[]).unwrap();
            (out.status.code(), text(&out))
        };

        // Docker, ecs-init and the agent image from the mirror, verified against its key.
        let (code, out) = run(&[
            "eks-node-agent",
            "install",
            "--from",
            "/var/cache/e2e/mirror",
            "--trusted-key",
            "/var/cache/e2e/mirror.pub",
            // The image's Debian containerd gives way to the mirror's Docker bundle.
            "--containerd",
            "mirror",
        ]);
        assert_eq!(code, Some(0), "{out}");
        let journal = |c: &Container| {
            c.sh("journalctl -b --no-pager -o short-monotonic -u docker.socket -u docker.service -u ecs.service")
                .unwrap_or_default()
        };
        if let Err(e) = c.sh("systemctl daemon-reload && systemctl start docker.socket") {
            panic!("{e}\n{}", journal(&c));
        }

        let config = |id: &str, code: &str| {
            root.write(
                "/etc/eks-node-agent/config.d/10-ecs.yaml",
                ssm_nodeconfig(id, code).as_bytes(),
                0o600,
            )
            .unwrap()
        };
        let init = [
            "eks-node-agent",
            "init",
            "-c",
            "file:///etc/eks-node-agent/config.d/",
            "--ecs-wait",
            "60",
        ];
        let nothing_of_ours = |when: &str| {
            for path in ["/etc/ecs/ecs.config", "/var/lib/amazon/ssm/registration"] {
                assert!(!root.path(path).exists(), "{path} written after {when}");
            }
        };
        // SSM out of reach first (the SSM agent's config names a port nothing listens on):
        // a runtime failure naming the connection, exit 1.
        let app_config = |port: u16| {
            root.write(
                "/etc/amazon/ssm/amazon-ssm-agent.json",
                format!("{{\"Ssm\": {{\"Endpoint\": \"http://127.0.0.1:{port}\"}}}}\n").as_bytes(),
                0o644,
            )
            .unwrap()
        };
        app_config(SSM_PORT_INSIDE + 1);
        config(ACTIVATION_ID, ACTIVATION_CODE);
        let (code, out) = run(&init);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("amazon-ssm-agent -register failed")
                && out.contains("Connection refused")
                && !out.contains(ACTIVATION_CODE),
            "{out}"
        );
        assert!(ssm.requests().is_empty());
        nothing_of_ours("an unreachable SSM");
        app_config(SSM_PORT_INSIDE);

        // SSM refuses: exit 2 naming what is wrong with the activation.
        ssm.create_activation(Activation {
            expired: true,
            ..Activation::new(EXPIRED_ID, ACTIVATION_CODE)
        });
        for (id, code, error, says) in [
            (
                ACTIVATION_ID,
                WRONG_CODE,
                "InvalidActivation",
                "the code does not match the id",
            ),
            (
                UNKNOWN_ID,
                ACTIVATION_CODE,
                "InvalidActivationId",
                "is not known to SSM in us-east-2",
            ),
            (
                EXPIRED_ID,
                ACTIVATION_CODE,
                "ActivationExpired",
                "has expired",
            ),
        ] {
            config(id, code);
            let (exit, out) = run(&init);
            assert_eq!(exit, Some(2), "{error}: {out}");
            assert!(out.contains(says) && !out.contains(code), "{error}: {out}");
            let last = ssm.requests().pop().unwrap();
            assert_eq!(
                (last.target.as_str(), last.code.as_str()),
                ("AmazonSSM.RegisterManagedInstance", error)
            );
            nothing_of_ours(error);
        }
        assert!(ssm.managed_instances().is_empty());

        // The right code: registered over the wire, then the ECS host set up.
        config(ACTIVATION_ID, ACTIVATION_CODE);
        let (code, out) = run(&init);
        assert_eq!(code, Some(0), "{out}\n{}", c.log_text());
        assert!(!out.contains(ACTIVATION_CODE), "the code leaked: {out}");
        let instances = ssm.managed_instances();
        assert_eq!(instances.len(), 1, "{instances:?}");
        let mi = &instances[0];
        assert_eq!(mi.activation_id, ACTIVATION_ID);
        assert!(ssm.is_registered(&mi.instance_id));
        assert!(
            out.contains(&format!("registered with SSM as {}", mi.instance_id))
                && out.contains(SSM_ARN),
            "{out}"
        );
        // What the SSM agent leaves: the registration file (0600) the agent then read, and the
        // key store with the instance's private key (PKCS#1) matching the public key SSM got.
        let reg_path = root.path("/var/lib/amazon/ssm/registration");
        let reg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&reg_path).unwrap()).unwrap();
        assert_eq!(reg["ManagedInstanceID"], mi.instance_id.as_str());
        assert_eq!(reg["Region"], "us-east-2");
        assert_eq!(
            std::fs::metadata(&reg_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let vault: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.path("/var/lib/amazon/ssm/Vault/Store/RegistrationKey"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(vault["instanceID"], mi.instance_id.as_str());
        {
            use aws_lc_rs::encoding::AsDer as _;
            use aws_lc_rs::signature::KeyPair as _;
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD;
            let der = b64.decode(vault["privateKey"].as_str().unwrap()).unwrap();
            let pair = aws_lc_rs::rsa::KeyPair::from_der(&der).unwrap();
            let public: aws_lc_rs::encoding::PublicKeyX509Der = pair.public_key().as_der().unwrap();
            assert_eq!(b64.encode(public.as_ref()), mi.public_key);
        }
        // ecs.config for an external instance, Docker and ecs.service running.
        let config = std::fs::read_to_string(root.path("/etc/ecs/ecs.config")).unwrap();
        for line in [
            "ECS_CLUSTER=edge\n",
            "AWS_DEFAULT_REGION=us-east-2\n",
            "ECS_EXTERNAL=true\n",
        ] {
            assert!(config.contains(line), "{config}");
        }
        for unit in ["docker.service", "ecs.service"] {
            assert_eq!(
                c.sh(&format!("systemctl is-active {unit}")).unwrap().trim(),
                "active",
                "{unit}"
            );
        }
        assert!(ecs.metadata_polls() >= 3, "polled {}", ecs.metadata_polls());

        // Again: registered already, so no second registration; the same outcome.
        let (code, out) = run(&init);
        assert_eq!(code, Some(0), "{out}");
        assert!(!out.contains("registered with SSM as"), "{out}");
        let registers = ssm
            .requests()
            .iter()
            .filter(|r| r.target == "AmazonSSM.RegisterManagedInstance")
            .count();
        assert_eq!(
            registers,
            4,
            "three refused, one accepted: {:?}",
            ssm.requests()
        );

        // The managed instance is the one SSM knows: `uninstall --deregister` deregisters it
        // (signed with the role credentials the SSM agent's service would keep in
        // /root/.aws/credentials; the stand-in does not run that service, so the test writes
        // them) and removes the registration.
        root.write(
            "/root/.aws/credentials",
            format!(
                "[default]\naws_access_key_id = {SSM_ROLE_KEY}\naws_secret_access_key = {SSM_ROLE_SECRET}\n"
            )
            .as_bytes(),
            0o600,
        )
        .unwrap();
        let endpoint = format!("http://127.0.0.1:{SSM_PORT_INSIDE}");
        let out = c
            .exec(
                &["eks-node-agent", "uninstall", "--deregister"],
                &[("AWS_ENDPOINT_URL_SSM", &endpoint)],
            )
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(!ssm.is_registered(&mi.instance_id));
        let last = ssm.requests().pop().unwrap();
        assert_eq!(last.target, "AmazonSSM.DeregisterManagedInstance");
        assert!(last.status == 200 && last.signature_verified, "{last:?}");
        assert!(!reg_path.exists());
    }
}

/// The EC2 lifecycle watchers on an ECS container instance (`run --ecs`): a spot notice sets
/// the container instance to DRAINING in moto's ECS (registered as the agent registers it),
/// with the instance role's credentials from IMDS, and nothing is asked of Kubernetes.
mod drain {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use eks_node_agent_tests::aws_world;
    use eks_node_agent_tests::ecs_agent::AgentEmulator;
    use eks_node_agent_tests::imds::{ImdsEmulator, RoleCredentials};
    use eks_node_agent_tests::kube_api::KubeApi;
    use eks_node_agent_tests::moto::Moto;

    fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    const NO_CHECKS: &str = "[checks.kubelet]\nenabled = false\n[checks.containerd]\nenabled = false\n\
[checks.vpc_cni]\nenabled = false\n[checks.kernel]\nenabled = false\n[checks.storage]\nenabled = false\n\
[checks.credentials]\nenabled = false\n[checks.clock]\nenabled = false\n";

    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// An Auto Scaling termination of an instance running a task: DRAINING at once, the
    /// lifecycle action completed only after the task stopped.
    #[test]
    fn an_asg_termination_drains_until_the_tasks_stop_then_completes_the_hook() {
        use eks_node_agent_tests::autoscaling::{AutoScalingEmulator, Hook, Keys};
        let rt = tokio::runtime::Runtime::new().unwrap();
        let moto = Moto::start();
        let endpoint = moto.endpoint();
        let world = rt.block_on(aws_world::run_instance(&endpoint, "m5.large"));
        let arn = rt.block_on(aws_world::ecs::register(&endpoint, "prod", &world));
        let task = rt.block_on(aws_world::ecs::start_task(&endpoint, "prod", &arn));
        let creds = RoleCredentials {
            role: "ecs-instance-role".into(),
            access_key_id: "ASIAIMDSEXAMPLE00003".into(),
            secret_access_key: "imds/secret/key/for/ecs/asg/tests0000000".into(),
            token: "imds-session-token-ecs-asg".into(),
            expiration: "2099-01-01T00:00:00Z".into(),
            last_updated: "2026-01-01T00:00:00Z".into(),
        };
        let asg = AutoScalingEmulator::start(
            "us-west-2",
            Keys {
                access_key_id: creds.access_key_id.clone(),
                secret_access_key: creds.secret_access_key.clone(),
                session_token: Some(creds.token.clone()),
            },
        );
        let instance_id = world.instance.instance_id.clone();
        asg.add_group(
            "ecs-asg",
            &instance_id,
            vec![Hook {
                name: "drain-hook".into(),
                transition: "autoscaling:EC2_INSTANCE_TERMINATING".into(),
                heartbeat_timeout: 120,
            }],
        );
        let mut instance = world.instance.clone();
        instance.credentials = Some(creds);
        let imds = ImdsEmulator::start(instance);
        imds.set_target_lifecycle_state(Some("InService"));
        let agent_api = AgentEmulator::start("prod");
        agent_api.register(&arn);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        let _child = start_daemon(
            dir.path(),
            &imds,
            &agent_api,
            None,
            &[
                ("AWS_ENDPOINT_URL_ECS", endpoint.clone()),
                ("AWS_ENDPOINT_URL_AUTO_SCALING", asg.endpoint()),
            ],
            "[lifecycle.asg_termination]\ndrain_timeout_secs = 90\n",
        );
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        asg.terminate("ecs-asg", &instance_id);
        imds.set_target_lifecycle_state(Some("Terminated"));
        let start = Instant::now();
        while !rt.block_on(aws_world::ecs::is_draining(&endpoint, "prod", &arn)) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no DRAINING in moto; agent log:\n{}",
                read_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The task still runs: the hook waits.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            asg.completed("ecs-asg", "drain-hook", &instance_id),
            None,
            "completed while a task ran; log:\n{}",
            read_log()
        );
        rt.block_on(aws_world::ecs::stop_task(&endpoint, "prod", &task));
        wait_for(Duration::from_secs(30), "CompleteLifecycleAction", || {
            asg.completed("ecs-asg", "drain-hook", &instance_id)
                .is_some()
        });
        assert_eq!(
            asg.completed("ecs-asg", "drain-hook", &instance_id)
                .as_deref(),
            Some("CONTINUE")
        );
        assert!(asg.requests().iter().all(|r| r.signature_verified));
    }

    /// Starts `run --ecs` with the lifecycle watchers on, IMDS and the agent's API emulated;
    /// waits for the watchers' first IMDS reads.
    fn start_daemon(
        dir: &std::path::Path,
        imds: &ImdsEmulator,
        agent_api: &AgentEmulator,
        kubeconfig: Option<&std::path::Path>,
        env: &[(&str, String)],
        lifecycle_extra: &str,
    ) -> Child {
        let ecs_config = dir.join("ecs.config");
        std::fs::write(
            &ecs_config,
            "ECS_CLUSTER=prod\nECS_ENABLE_TASK_IAM_ROLE=true\n",
        )
        .unwrap();
        let config = dir.join("daemon.toml");
        std::fs::write(
            &config,
            format!("{NO_CHECKS}[lifecycle]\nenabled = true\n{lifecycle_extra}"),
        )
        .unwrap();
        let log = dir.join("agent.log");
        let before = imds.requests();
        let mut cmd = Command::new(crate::agent_bin());
        cmd.arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(["--node-name", "ecs-host", "--ecs"])
            .arg("--ecs-config")
            .arg(&ecs_config)
            .arg("--ecs-introspection")
            .arg(agent_api.endpoint())
            .arg("--config")
            .arg(&config)
            .arg("--lifecycle-state")
            .arg(dir.join("state/lifecycle.json"))
            .args(["--systemd-bus", "none", "--iam-credentials", "none"])
            .arg("--kmsg")
            .arg(dir.join("kmsg"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-creds"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        if let Some(k) = kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = Child(cmd.spawn().unwrap());
        wait_for(
            Duration::from_secs(20),
            "the watchers' first IMDS reads",
            || imds.requests() > before + 2,
        );
        child
    }

    #[test]
    fn a_spot_notice_sets_the_container_instance_to_draining_in_moto() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let moto = Moto::start();
        let world = rt.block_on(aws_world::run_instance(&moto.endpoint(), "m5.large"));
        let arn = rt.block_on(aws_world::ecs::register(&moto.endpoint(), "prod", &world));
        assert_eq!(
            rt.block_on(aws_world::ecs::status(&moto.endpoint(), "prod", &arn))
                .as_deref(),
            Some("ACTIVE")
        );
        let mut instance = world.instance.clone();
        instance.credentials = Some(RoleCredentials {
            role: "ecs-instance-role".into(),
            access_key_id: "ASIAIMDSEXAMPLE00002".into(),
            secret_access_key: "imds/secret/key/for/ecs/tests00000000000".into(),
            token: "imds-session-token-ecs".into(),
            expiration: "2099-01-01T00:00:00Z".into(),
            last_updated: "2026-01-01T00:00:00Z".into(),
        });
        let imds = ImdsEmulator::start(instance);
        let agent_api = AgentEmulator::start("prod");
        agent_api.register(&arn);
        let kube = rt.block_on(KubeApi::start("ecs-test-token"));
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kube.kubeconfig()).unwrap();
        let log = dir.path().join("agent.log");
        let child = start_daemon(
            dir.path(),
            &imds,
            &agent_api,
            Some(&kubeconfig),
            &[("AWS_ENDPOINT_URL_ECS", moto.endpoint())],
            "",
        );
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let deadline = (time::OffsetDateTime::now_utc() + time::Duration::seconds(60))
            .replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        imds.set_spot_action(Some(("terminate", &deadline)));
        let endpoint = moto.endpoint();
        let draining = || rt.block_on(aws_world::ecs::is_draining(&endpoint, "prod", &arn));
        let start = Instant::now();
        while !draining() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no DRAINING in moto; agent log:\n{}",
                read_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // No task runs on the instance: the drain is done, and recorded so in the state file.
        let state = dir.path().join("state/lifecycle.json");
        wait_for(
            Duration::from_secs(10),
            "the drain recorded as done",
            || {
                std::fs::read_to_string(&state).is_ok_and(|s| {
                    s.contains("\"drain\": \"done\"") || s.contains("\"drain\":\"done\"")
                })
            },
        );
        drop(child);
        assert!(
            kube.requests().is_empty(),
            "an ECS host must not talk to Kubernetes: {:?}",
            kube.requests()
        );
        let text = read_log();
        assert!(
            text.contains("set to DRAINING") && text.contains(&arn),
            "{text}"
        );
    }
}

/// `run --ecs`: the Docker check against a real dockerd (Debian's docker.io) and the ECS agent
/// check against the introspection emulator, as `eksnode_*` metrics.
mod daemon {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use eks_node_agent_tests::dockerd::Dockerd;
    use eks_node_agent_tests::ecs_agent::{AgentEmulator, Task};

    fn scrape(port: u16) -> String {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn docker_and_ecs_agent_checks_become_metrics() {
        let docker = match Dockerd::start() {
            Ok(d) => d,
            Err(why) => {
                eprintln!("skipped: no real dockerd here: {why}");
                return;
            }
        };
        let api = AgentEmulator::start("prod");
        api.register("arn:aws:ecs:us-west-2:123456789012:container-instance/prod/abc");
        let task = |arn: &str, known: &str| Task {
            arn: arn.into(),
            desired: "RUNNING".into(),
            known: known.into(),
            family: "web".into(),
        };
        api.set_tasks(vec![
            task("t1", "RUNNING"),
            task("t2", "RUNNING"),
            task("t3", "PENDING"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let ecs_config = dir.path().join("ecs.config");
        std::fs::write(&ecs_config, "ECS_CLUSTER=prod\n").unwrap();
        let config = dir.path().join("daemon.toml");
        std::fs::write(
            &config,
            "[checks.kernel]\nenabled = false\n[checks.storage]\nenabled = false\n[checks.credentials]\nenabled = false\n[checks.clock]\nenabled = false\n\
[checks.docker]\ninterval_secs = 1\n[checks.ecs_agent]\ninterval_secs = 1\n[lifecycle]\nenabled = false\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("agent.log");
        let mut child = Command::new(crate::agent_bin())
            .arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--node-name", "ecs-host", "--ecs"])
            .arg("--ecs-config")
            .arg(&ecs_config)
            .arg("--ecs-introspection")
            .arg(api.endpoint())
            .arg("--docker-socket")
            .arg(docker.socket())
            .arg("--config")
            .arg(&config)
            .arg("--lifecycle-state")
            .arg(dir.path().join("lifecycle.json"))
            .args(["--systemd-bus", "none", "--iam-credentials", "none"])
            .arg("--kmsg")
            .arg(dir.path().join("kmsg"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut text = String::new();
        while start.elapsed() < Duration::from_secs(30) {
            text = scrape(port);
            if sample(&text, "eksnode_ecs_agent_connected") == Some(1.0)
                && sample(&text, "eksnode_docker_up") == Some(1.0)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        let agent_log = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            sample(&text, "eksnode_docker_up"),
            Some(1.0),
            "{text}\n{agent_log}"
        );
        assert_eq!(
            sample(&text, "eksnode_ecs_agent_connected"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "eksnode_ecs_tasks{state=\"RUNNING\"}"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "eksnode_ecs_tasks{state=\"PENDING\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "eksnode_ecs_agent_info{cluster=\"prod\",version=\"1.82.0\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "eksnode_check_up{check=\"docker\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "eksnode_check_up{check=\"ecs_agent\"}"),
            Some(1.0),
            "{text}"
        );
        // No kubelet, containerd or VPC CNI check on an ECS host.
        assert!(!text.contains("check=\"kubelet\""), "{text}");
        assert!(!text.contains("check=\"containerd\""), "{text}");
    }
}

/// `status` on an ECS host: moto's ECS (DescribeClusters), the introspection emulator, a real
/// dockerd; then the failures each names: an unknown cluster, an unregistered agent, Docker
/// gone.
mod status {
    use std::process::{Command, Output};

    use eks_node_agent_tests::dockerd::Dockerd;
    use eks_node_agent_tests::ecs_agent::AgentEmulator;
    use eks_node_agent_tests::moto::Moto;
    use serde_json::Value;

    const CLOCK_SYNCED: &str =
        r#"{"state":0,"status":8193,"offset":150000,"maxerror":12000,"esterror":400,"tick":10000}"#;

    fn status(args: &[&str], moto: &str) -> Output {
        let home = tempfile::tempdir().unwrap();
        Command::new(crate::agent_bin())
            .arg("status")
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", home.path().join("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("no-creds"))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL_ECS", moto)
            .output()
            .unwrap()
    }

    fn checks(out: &Output) -> Vec<(String, String, String)> {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                    c["evidence"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn status_checks_the_cluster_the_agent_and_docker() {
        let docker = match Dockerd::start() {
            Ok(d) => d,
            Err(why) => {
                eprintln!("skipped: no real dockerd here: {why}");
                return;
            }
        };
        let moto = Moto::start();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let world = rt.block_on(eks_node_agent_tests::aws_world::run_instance(
            &moto.endpoint(),
            "m5.large",
        ));
        let arn = rt.block_on(eks_node_agent_tests::aws_world::ecs::register(
            &moto.endpoint(),
            "prod",
            &world,
        ));
        let api = AgentEmulator::start("prod");
        api.register(&arn);
        let dir = tempfile::tempdir().unwrap();
        let clock = dir.path().join("timex.json");
        std::fs::write(&clock, CLOCK_SYNCED).unwrap();
        let config = |name: &str, cluster: &str| {
            let p = dir.path().join(name);
            std::fs::write(
                &p,
                format!("ECS_CLUSTER={cluster}\nAWS_DEFAULT_REGION=us-west-2\n"),
            )
            .unwrap();
            format!("file://{}", p.display())
        };
        let good = config("good.config", "prod");
        let endpoint = api.endpoint();
        let socket = docker.socket().display().to_string();
        let clock_arg = clock.display().to_string();
        let run = |src: &str, introspection: &str, socket: &str| {
            status(
                &[
                    "-c",
                    src,
                    "--output",
                    "json",
                    "--ecs-introspection",
                    introspection,
                    "--docker-socket",
                    socket,
                    "--clock-state",
                    &clock_arg,
                ],
                &moto.endpoint(),
            )
        };
        let out = run(&good, &endpoint, &socket);
        let all = checks(&out);
        let names: Vec<&str> = all.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "config",
                "credentials",
                "ecs-cluster",
                "ecs-agent",
                "docker",
                "clock"
            ]
        );
        for (name, st, evidence) in &all {
            assert_eq!(st, "ok", "{name}: {evidence}");
        }
        assert_eq!(out.status.code(), Some(0));
        assert!(
            all[2]
                .2
                .contains("cluster prod in us-west-2 is ACTIVE with 1 registered"),
            "{all:?}"
        );
        assert!(all[3].2.contains(&arn), "{all:?}");

        // An unknown cluster, an agent that never registered, Docker gone.
        let missing = config("missing.config", "nowhere");
        let unregistered = AgentEmulator::start("nowhere");
        let gone = dir.path().join("no-docker.sock").display().to_string();
        let out = run(&missing, &unregistered.endpoint(), &gone);
        let all = checks(&out);
        assert_ne!(out.status.code(), Some(0));
        let by = |n: &str| all.iter().find(|c| c.0 == n).unwrap().clone();
        assert_eq!(by("ecs-cluster").1, "fail", "{all:?}");
        assert!(
            by("ecs-cluster")
                .2
                .contains("does not know cluster nowhere"),
            "{all:?}"
        );
        assert_eq!(by("ecs-agent").1, "fail", "{all:?}");
        assert!(by("ecs-agent").2.contains("has not registered"), "{all:?}");
        assert_eq!(by("docker").1, "fail", "{all:?}");
        assert!(
            by("docker").2.contains("cannot connect to Docker"),
            "{all:?}"
        );
        assert_eq!(by("credentials").1, "ok");
    }
}

/// ECS on EC2 end to end under `--root`: the user data (the ecs.config lines an
/// ECS-optimized AMI's launch template used to echo) and the instance identity from the IMDS
/// emulator; ecs.config and the 0600 secret file written, and again unchanged.
#[test]
fn ecs_on_ec2_init_from_imds_user_data() {
    use std::os::unix::fs::PermissionsExt;

    use eks_node_agent_tests::imds::{ImdsEmulator, Instance};

    let imds = ImdsEmulator::start(Instance::example());
    imds.set_user_data(Some(
        b"ECS_CLUSTER=prod-web\nECS_ENABLE_TASK_IAM_ROLE=true\nECS_ENGINE_AUTH_TYPE=docker\n\
ECS_ENGINE_AUTH_DATA={\"https://registry.example.com\":{\"username\":\"ci\",\"password\":\"EXAMPLEpassword\",\"email\":\"ci@example.com\"}}\n"
            .to_vec(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let envs = [
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint()),
        ("AWS_EC2_METADATA_DISABLED", "false".to_owned()),
    ];
    let args = [
        "init",
        "-c",
        "imds://user-data",
        "--root",
        root.to_str().unwrap(),
    ];
    let out = agent(&args, &envs);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains("EXAMPLEpassword"),
        "a secret in the output: {all}"
    );
    let config = std::fs::read_to_string(root.join("etc/ecs/ecs.config")).unwrap();
    assert!(
        config.contains("ECS_CLUSTER=prod-web\n")
            && config.contains("ECS_ENABLE_TASK_IAM_ROLE=true\n")
            && !config.contains("ECS_ENGINE_AUTH")
            && !config.contains("AWS_DEFAULT_REGION"),
        "{config}"
    );
    let secret = root.join("var/lib/ecs/ecs.config");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&secret)
            .unwrap()
            .contains("ECS_ENGINE_AUTH_TYPE=docker\n")
    );
    // Idempotent: the second run changes no file.
    let before = std::fs::metadata(root.join("etc/ecs/ecs.config"))
        .unwrap()
        .modified()
        .unwrap();
    let out = agent(&args, &envs);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::metadata(root.join("etc/ecs/ecs.config"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
}
