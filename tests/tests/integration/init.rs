//! `init`: golden scenarios for resolve + render, and the command end to end under `--root`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use eks_node_agent::compute::values::resolve;
use eks_node_agent::config::{self, NoUserData};
use eks_node_agent::model::Discovered;
use eks_node_agent::render;
use eks_node_agent_tests::{golden, repo_root};

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.insert(p);
        }
    }
    out
}

/// The user's documents of a scenario: `nodeconfig.yaml`, or `user-data` (EC2 user data as
/// a launch template holds it: MIME multipart, base64...).
pub fn scenario_source(dir: &Path) -> Option<PathBuf> {
    ["nodeconfig.yaml", "user-data"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.exists())
}

/// What discovery found for a scenario: `discovered.yaml`, with the accelerators of the fake
/// sysfs tree under `sys/` when there is one (read by the same detection `init` uses).
pub fn scenario_facts(dir: &Path) -> Discovered {
    let mut found: Discovered =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("discovered.yaml")).unwrap())
            .unwrap();
    if dir.join("sys").is_dir() {
        found.host.accelerators = eks_node_agent::facts::pci::accelerators(&dir.join("sys"));
        assert!(!found.host.accelerators.is_empty(), "{}", dir.display());
    }
    found
}

/// Checks a scenario's plan against its golden files: every file under `expected/` (with its
/// host path), and `expected.plan` (the registration before discovery, modes, units affected,
/// sysctls, host actions, services); a golden file the plan no longer writes is a failure.
/// Returns the failures.
pub fn check_plan(dir: &Path, registration: &render::Plan, plan: &render::Plan) -> Vec<String> {
    let mut failures = Vec::new();
    let expected_dir = dir.join("expected");
    let mut written = BTreeSet::new();
    let mut summary = String::new();
    for a in &registration.actions {
        summary.push_str(&format!("before discovery: {}\n", a.describe()));
    }
    if let Some(storage) = &plan.storage {
        summary.push_str(&format!("storage {}\n", storage.summary));
        if let Some(w) = &storage.warning {
            summary.push_str(&format!("storage warning: {w}\n"));
        }
        for step in &storage.steps {
            summary.push_str(&format!("storage step: {}\n", step.describe()));
        }
    }
    for f in &plan.files {
        let rel = f.path.strip_prefix("/").unwrap();
        let path = expected_dir.join(rel);
        if let Err(e) = golden::check(&path, &String::from_utf8_lossy(&f.contents)) {
            failures.push(e);
        }
        written.insert(path);
        summary.push_str(&format!(
            "file {:o} {} affects={}\n",
            f.mode,
            f.path.display(),
            f.affects.join(",")
        ));
    }
    for s in &plan.sysctls {
        summary.push_str(&format!("sysctl {} = {}\n", s.key, s.value));
    }
    for a in &plan.actions {
        summary.push_str(&format!("action {}\n", a.describe()));
    }
    for s in &plan.services {
        summary.push_str(&format!(
            "service {} wait_for_socket={:?}\n",
            s.unit, s.wait_for_socket
        ));
    }
    if let Err(e) = golden::check(&dir.join("expected.plan"), &summary) {
        failures.push(e);
    }
    for stale in files_under(&expected_dir).difference(&written) {
        if std::env::var_os(golden::UPDATE_ENV).is_some() {
            std::fs::remove_file(stale).unwrap();
        } else {
            failures.push(format!("{} is not in the plan any more", stale.display()));
        }
    }
    failures
}

/// Each scenario directory has `nodeconfig.yaml` or `user-data` (the user's documents),
/// `discovered.yaml` (what IMDS, EC2, EKS and the host reported) and optionally a fake sysfs
/// tree `sys/`, and the expected output: `expected/` (every file with its host path) and
/// `expected.plan` (the registration before discovery when the node is an unregistered SSM
/// hybrid node, as if the SSM agent were installed; modes, units affected, the local storage
/// steps, sysctls, host actions, services). `EKS_AGENT_UPDATE_GOLDEN=1` regenerates.
#[test]
fn golden_init_scenarios() {
    let root = repo_root().join("tests/golden/init");
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| scenario_source(p).is_some())
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 25, "found {} scenarios", scenarios.len());
    let mut failures = Vec::new();
    for dir in &scenarios {
        let uri = format!("file://{}", scenario_source(dir).unwrap().display());
        let loaded = config::load(&[uri], &NoUserData).unwrap();
        let found = scenario_facts(dir);
        let registration = render::registration(
            &loaded.config,
            found.ssm_managed_instance_id.is_some(),
            true,
        )
        .unwrap();
        let node = resolve(&loaded.config, &found).unwrap();
        let plan = render::render(&loaded.config, &node);
        failures.extend(check_plan(dir, &registration, &plan));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Karpenter's user data (tests/golden/init/karpenter-user-data: a MIME archive, base64, with
/// the user's NodeConfig part before Karpenter's own, `registerWithTaints`, `localStorage` and
/// `--node-labels="..."` with the quotes Karpenter writes): the kubelet gets the label keys
/// without quote characters, as systemd expands `$NODEADM_KUBELET_ARGS` from the environment
/// file (computed with a faithful model of systemd's parser, which the e2e test checks
/// against a real systemd).
mod karpenter {
    use eks_node_agent_tests::repo_root;
    use eks_node_agent_tests::systemd_env::{exec_argv, parse_env_file, split_words};

    #[test]
    fn systemd_model_reads_quotes_as_systemd_does() {
        let text = "# comment\n; another\n  A = one two  \nB=\"x \\\"y\\\" \\$z \\n\"\nC='a \\ b'\"c\"\nD=e\\\n f\nE=\n";
        let env = parse_env_file(text);
        assert_eq!(env["A"], "one two");
        assert_eq!(env["B"], "x \"y\" $z \\n");
        assert_eq!(env["C"], "a \\ bc");
        assert_eq!(env["D"], "e f");
        assert_eq!(env["E"], "");
        assert_eq!(
            split_words("--a=1  --labels=\"x=y,z=w\" 'b c' d\\ e \"f\\\"g\""),
            ["--a=1", "--labels=x=y,z=w", "b c", "d e", "f\"g"]
        );
        assert_eq!(split_words("  "), Vec::<String>::new());
        assert_eq!(split_words("\"open"), ["open"]);
    }

    #[test]
    fn the_kubelet_gets_karpenters_labels_without_quotes() {
        let dir = repo_root().join("tests/golden/init/karpenter-user-data/expected");
        let env = std::fs::read_to_string(dir.join("etc/eks/kubelet/environment")).unwrap();
        let argv = exec_argv("/usr/bin/kubelet", "NODEADM_KUBELET_ARGS", &env);
        assert_eq!(
            argv,
            [
                "/usr/bin/kubelet",
                "--runtime-cgroups=/runtime.slice/containerd.service",
                "--config=/etc/kubernetes/kubelet/config.json",
                "--config-dir=/etc/kubernetes/kubelet/config.json.d",
                "--kubeconfig=/var/lib/kubelet/kubeconfig",
                "--node-ip=10.0.12.34",
                "--image-credential-provider-config=/etc/eks/image-credential-provider/config.json",
                "--image-credential-provider-bin-dir=/etc/eks/image-credential-provider",
                "--cloud-provider=external",
                "--hostname-override=i-0123456789abcdef0",
                "--node-labels=karpenter.k8s.aws/ec2nodeclass=default,karpenter.sh/capacity-type=on-demand,karpenter.sh/nodepool=default,workload/team=payments",
            ]
        );
        assert!(argv.iter().all(|a| !a.contains('"')), "{argv:?}");
        // Karpenter's taint reaches the kubelet through the drop-in.
        let dropin = std::fs::read_to_string(
            dir.join("etc/kubernetes/kubelet/config.json.d/40-nodeconfig.conf"),
        )
        .unwrap();
        let dropin: serde_json::Value = serde_json::from_str(&dropin).unwrap();
        assert_eq!(
            dropin["registerWithTaints"],
            serde_json::json!([{ "effect": "NoExecute", "key": "karpenter.sh/unregistered" }])
        );
        // The user's part (InstanceIdNodeName, shutdownGracePeriod) merged with Karpenter's.
        assert_eq!(dropin["shutdownGracePeriod"], "45s");
        let plan = std::fs::read_to_string(dir.join("../expected.plan")).unwrap();
        assert!(
            plan.contains("storage step: mdadm --create /dev/md/kubernetes --run --force --level=0 --raid-devices=1")
                && plan.contains(" /dev/nvme1n1\n"),
            "{plan}"
        );
    }
}

/// The ECR credential provider's image patterns: nodeadm's list, and for every partition the
/// agent knows (model::partition) its registries match, dual-stack endpoints included, as
/// kubelet matches `matchImages` (dot-separated parts, same count, `*` within one part).
mod ecr {
    use eks_node_agent::model::partition::PARTITIONS;
    use eks_node_agent::render::system::{ECR_MATCH_IMAGES, ECR_PUBLIC_ALIAS};

    /// kubelet's `URLsMatch` for a host: same number of dot-separated parts, each matched as
    /// a glob where `*` stands for any run of characters of that part.
    fn part_matches(pattern: &str, part: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == part,
            Some((head, tail)) => {
                part.starts_with(head)
                    && (0..=part.len() - head.len())
                        .any(|i| part_matches(tail, &part[head.len() + i..]))
            }
        }
    }

    fn matches(pattern: &str, host: &str) -> bool {
        let p: Vec<&str> = pattern.split('.').collect();
        let h: Vec<&str> = host.split('.').collect();
        p.len() == h.len() && p.iter().zip(&h).all(|(p, h)| part_matches(p, h))
    }

    #[test]
    fn every_partitions_registries_match_nodeadms_patterns() {
        assert_eq!(ECR_MATCH_IMAGES.len(), 12);
        let region_of = |id: &str| match id {
            "aws" => "us-west-2",
            "aws-us-gov" => "us-gov-west-1",
            "aws-cn" => "cn-north-1",
            "aws-iso" => "us-iso-east-1",
            "aws-iso-b" => "us-isob-east-1",
            "aws-iso-e" => "eu-isoe-west-1",
            "aws-iso-f" => "us-isof-south-1",
            "aws-eusc" => "eusc-de-east-1",
            other => panic!("a partition the test does not know: {other}"),
        };
        let mut hosts: Vec<String> = Vec::new();
        for p in PARTITIONS {
            let region = region_of(p.id);
            hosts.push(format!("123456789012.dkr.ecr.{region}.{}", p.dns_suffix));
        }
        hosts.extend([
            // Dual-stack and FIPS endpoints.
            "123456789012.dkr-ecr.us-west-2.on.aws".to_owned(),
            "123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn".to_owned(),
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com".to_owned(),
            "123456789012.dkr-ecr-fips.us-gov-west-1.on.aws".to_owned(),
            "public.ecr.aws".to_owned(),
        ]);
        for host in &hosts {
            assert!(
                ECR_MATCH_IMAGES.iter().any(|p| matches(p, host)),
                "no pattern matches {host}"
            );
        }
        assert!(matches(ECR_PUBLIC_ALIAS, "ecr-public.aws.com"));
        for other in [
            "docker.io",
            "123456789012.dkr.ecr.us-west-2.amazonaws.com.evil.com",
            "quay.io",
        ] {
            assert!(
                !ECR_MATCH_IMAGES.iter().any(|p| matches(p, other)),
                "{other}"
            );
        }
    }
}

mod cli {
    //! `eks-node-agent init` as a process: EC2 against the IMDS emulator and moto, hybrid
    //! with no cloud at all, dry runs, bad input, and idempotence.

    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::process::{Command, Output};

    use eks_node_agent_tests::aws_world;
    use eks_node_agent_tests::imds::ImdsEmulator;
    use eks_node_agent_tests::moto::Moto;

    use super::files_under;
    use crate::agent_bin;

    use eks_node_agent_tests::test_ca_b64 as ca_b64;

    fn hybrid_config(dir: &Path) -> String {
        let path = dir.join("hybrid.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c1\n    region: us-west-2\n    apiServerEndpoint: https://c1.example.com\n    certificateAuthority: {}\n    cidr: 172.16.0.0/16\n  kubelet:\n    flags: [--node-ip=192.168.10.7]\n  hybrid:\n    iamRolesAnywhere:\n      nodeName: node-7\n      trustAnchorArn: arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/a\n      profileArn: arn:aws:rolesanywhere:us-west-2:123456789012:profile/b\n      roleArn: arn:aws:iam::123456789012:role/Node\n",
                ca_b64()
            ),
        )
        .unwrap();
        format!("file://{}", path.display())
    }

    fn agent(args: &[&str], envs: &[(&str, String)]) -> Output {
        let mut cmd = Command::new(agent_bin());
        cmd.args(args)
            .env_remove("AWS_PROFILE")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn stat_all(root: &Path) -> Vec<(std::path::PathBuf, u64, i64, i64)> {
        files_under(root)
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p).unwrap();
                (p, m.ino(), m.mtime(), m.mtime_nsec())
            })
            .collect()
    }

    #[test]
    fn hybrid_init_under_root_needs_no_cloud_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let src = hybrid_config(tmp.path());
        let out = agent(&["init", "--root", root.to_str().unwrap(), "-c", &src], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(root.join("etc/eks/kubelet/environment")).unwrap();
        assert!(env.contains("--node-ip=192.168.10.7"), "{env}");
        assert!(
            !env.contains("--hostname-override"),
            "hybrid nodes get no --hostname-override: {env}"
        );
        let kubelet =
            std::fs::read_to_string(root.join("etc/kubernetes/kubelet/config.json")).unwrap();
        assert!(
            kubelet.contains("\"providerID\": \"eks-hybrid:///us-west-2/c1/node-7\""),
            "{kubelet}"
        );
        let mode = std::fs::metadata(root.join("var/lib/kubelet/kubeconfig"))
            .unwrap()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let before = stat_all(&root);
        assert!(before.len() >= 8, "{before:?}");

        let out = agent(&["init", "--root", root.to_str().unwrap(), "-c", &src], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stat_all(&root),
            before,
            "a second init must not rewrite any file"
        );
        let report = String::from_utf8_lossy(&out.stderr);
        assert!(
            !report.contains("created") && !report.contains("updated"),
            "{report}"
        );
    }

    #[test]
    fn dry_run_prints_the_plan_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let src = hybrid_config(tmp.path());
        let out = agent(
            &[
                "init",
                "--dry-run",
                "--root",
                root.to_str().unwrap(),
                "-c",
                &src,
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "/etc/kubernetes/kubelet/config.json",
            "+  \"maxPods\": 110,",
            "/etc/containerd/config.toml",
            "kubelet.service",
        ] {
            assert!(plan.contains(needle), "missing {needle:?} in:\n{plan}");
        }
        assert!(files_under(&root).is_empty(), "dry run wrote files");
    }

    /// The kubelet's version keys its settings: read from `--kubelet-binary`'s `--version`,
    /// given with `--kubelet-version`, or (dry run, no kubelet) assumed newest, with a warning.
    #[test]
    fn kubelet_version_from_the_binary_the_flag_or_assumed() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let src = hybrid_config(tmp.path());
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let dry = |extra: &[&str]| {
            let mut args = vec![
                "init",
                "--dry-run",
                "--root",
                root.to_str().unwrap(),
                "-c",
                &src,
            ];
            args.extend_from_slice(extra);
            agent(&args, &[])
        };
        let missing = tmp.path().join("no-kubelet");
        let out = dry(&["--kubelet-binary", missing.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(
                "assuming kubelet v1.34.0, the newest version whose settings the agent knows"
            ),
            "{stderr}"
        );
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(
            plan.contains("+  \"shutdownGracePeriod\": \"2m30s\","),
            "{plan}"
        );

        let kubelet = tmp.path().join("kubelet");
        std::fs::write(
            &kubelet,
            "#!/bin/sh\necho 'Kubernetes v1.33.5-eks-3025e55'\n",
        )
        .unwrap();
        std::fs::set_permissions(&kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = dry(&["--kubelet-binary", kubelet.to_str().unwrap()]);
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            plan.contains("+    \"DynamicResourceAllocation\": true")
                && !plan.contains("shutdownGracePeriod"),
            "{plan}"
        );

        let out = dry(&[
            "--kubelet-binary",
            kubelet.to_str().unwrap(),
            "--kubelet-version",
            "1.27.9",
        ]);
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            plan.contains(
                "--pod-infra-container-image=public.ecr.aws/eks-distro/kubernetes/pause:3.10"
            ) && plan.contains("+    \"KubeletCredentialProviders\": true")
                && !plan.contains("DynamicResourceAllocation"),
            "{plan}"
        );
        let out = dry(&["--kubelet-version", "one.two"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a Kubernetes version"));
    }

    /// An SSM hybrid node that is not registered, with a swap file on: the dry run shows the
    /// registration before discovery, the swap file turned off and its fstab line commented
    /// out, each marked as skipped because the root is not the host's, and writes nothing.
    #[test]
    fn dry_run_shows_registration_swapoff_and_fstab() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("proc/swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1048572 0 -2\n",
        )
        .unwrap();
        let fstab = "UUID=0a1b / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n";
        std::fs::write(root.join("etc/fstab"), fstab).unwrap();
        // An SSM agent on PATH (a dry run never starts it).
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let ssm_agent = bin.join("amazon-ssm-agent");
        std::fs::write(&ssm_agent, "#!/bin/false\n").unwrap();
        std::fs::set_permissions(&ssm_agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let config = tmp.path().join("ssm.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c1\n    region: us-west-2\n    apiServerEndpoint: https://c1.example.com\n    certificateAuthority: {}\n    cidr: 172.16.0.0/16\n  kubelet:\n    flags: [--node-ip=192.168.10.7]\n  hybrid:\n    ssm:\n      activationCode: EXAMPLEcode+0123456789\n      activationId: 3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b\n",
                ca_b64()
            ),
        )
        .unwrap();
        let before = stat_all(&root);
        let out = agent(
            &[
                "init",
                "--dry-run",
                "--root",
                root.to_str().unwrap(),
                "-c",
                &format!("file://{}", config.display()),
            ],
            &[
                ("PATH", path),
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    tmp.path().join("none").display().to_string(),
                ),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let plan = String::from_utf8_lossy(&out.stdout);
        let skipped = format!("(skipped: root is {}, not /)", root.display());
        let registration = plan.find("# before discovery").expect(&plan);
        let files = plan.find("# files").expect(&plan);
        let actions = plan.find("# host actions").expect(&plan);
        assert!(registration < files && files < actions, "{plan}");
        for needle in [
            "register with SSM: activation 3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b in us-west-2",
            "/etc/fstab (0644): changed",
            "-/swapfile none swap sw 0 0",
            "swapoff /swapfile",
        ] {
            assert!(plan.contains(needle), "missing {needle:?} in:\n{plan}");
        }
        assert_eq!(
            plan.matches(&skipped).count(),
            3,
            "registration, sysctls, swapoff: {plan}"
        );
        assert!(!plan.contains("EXAMPLEcode") && !stderr.contains("EXAMPLEcode"));
        assert_eq!(stat_all(&root), before, "a dry run writes nothing");
    }

    #[test]
    fn any_config_error_exits_2_before_anything_is_written() {
        let dir = eks_node_agent_tests::repo_root().join("tests/fixtures/bad-config");
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "EXPECTED") {
                continue;
            }
            let src = format!("file://{}", path.display());
            let out = agent(&["init", "--root", root.to_str().unwrap(), "-c", &src], &[]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                files_under(&root).is_empty(),
                "{} wrote files",
                path.display()
            );
            checked += 1;
        }
        assert!(checked >= 40);
        // Warnings are errors under --strict: exit 2, nothing written.
        let strict = eks_node_agent_tests::repo_root().join("tests/fixtures/strict");
        for entry in std::fs::read_dir(&strict).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "EXPECTED") {
                continue;
            }
            let src = format!("file://{}", path.display());
            let out = agent(
                &[
                    "init",
                    "--strict",
                    "--root",
                    root.to_str().unwrap(),
                    "-c",
                    &src,
                ],
                &[],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
            assert!(stderr.contains("--strict"), "{stderr}");
            assert!(
                files_under(&root).is_empty(),
                "{} wrote files",
                path.display()
            );
        }
    }

    /// The two boot phases share one resolved state: `init --skip run` leaves it under
    /// /run/eks-node-agent/, `init --skip config` uses it instead of discovering again and
    /// restarts what the config phase changed (against the systemd emulator); used once, its
    /// restarts are gone; a changed config or a foreign file is ignored with a warning and the
    /// run phase discovers again.
    #[test]
    fn the_run_phase_uses_the_config_phases_state() {
        use eks_node_agent_tests::systemd_dbus::SystemdEmulator;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let src = hybrid_config(tmp.path());
        let root_arg = root.to_str().unwrap().to_owned();
        let out = agent(
            &["init", "--skip", "run", "--root", &root_arg, "-c", &src],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let state_path = root.join("run/eks-node-agent/init-state.json");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
        assert_eq!(state["daemonReload"], true, "{state}");
        let restarts = state["unitsToRestart"].as_array().unwrap().clone();
        for unit in ["containerd.service", "kubelet.service"] {
            assert!(restarts.contains(&serde_json::json!(unit)), "{state}");
        }
        assert!(
            state["explain"]["node name"]
                .as_str()
                .unwrap()
                .contains("spec.hybrid.iamRolesAnywhere.nodeName"),
            "{state}"
        );

        let emulator = rt.block_on(SystemdEmulator::start());
        for unit in [
            "systemd-modules-load.service",
            "containerd.service",
            "kubelet.service",
        ] {
            emulator.add_unit(unit, "active");
        }
        let sock = root.join("run/containerd/containerd.sock");
        std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let run_phase = |src: &str| {
            agent(
                &[
                    "init",
                    "--skip",
                    "config",
                    "--root",
                    &root_arg,
                    "--systemd-bus",
                    emulator.address(),
                    "-c",
                    src,
                ],
                &[],
            )
        };
        let out = run_phase(&src);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("run phase from the config phase's state (no discovery)")
                && !stderr.contains("facts gathered"),
            "{stderr}"
        );
        let actions = emulator.actions();
        assert_eq!(
            actions.first().map(String::as_str),
            Some("Reload"),
            "{actions:?}"
        );
        for unit in ["containerd.service", "kubelet.service"] {
            assert!(
                actions.contains(&format!("RestartUnit {unit}")),
                "{unit} not restarted: {actions:?}"
            );
        }

        // Used once: a second run phase in the same boot has nothing to restart.
        emulator.clear_calls();
        let out = run_phase(&src);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(emulator.actions(), Vec::<String>::new());

        // Another configuration: the state is stale, ignored with a warning, and the run phase
        // discovers again.
        let changed = tmp.path().join("changed.yaml");
        std::fs::write(
            &changed,
            std::fs::read_to_string(src.trim_start_matches("file://"))
                .unwrap()
                .replace("--node-ip=192.168.10.7", "--node-ip=192.168.10.8"),
        )
        .unwrap();
        let out = run_phase(&format!("file://{}", changed.display()));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.contains("the state file is stale: the configuration changed since the config phase; ignoring it")
                && stderr.contains("facts gathered"),
            "{stderr}"
        );

        // A file that is not this agent's state: ignored with a warning.
        std::fs::write(&state_path, "{\"format\": 99}").unwrap();
        let out = run_phase(&src);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.contains("the state file is not this agent's")
                && stderr.contains("facts gathered"),
            "{stderr}"
        );
    }

    /// A Roles Anywhere hybrid node whose credentials come from the Roles Anywhere emulator
    /// (signed with the node's certificate) and whose cluster's remote node networks come from
    /// moto's DescribeCluster.
    struct HybridWorld {
        _moto: Moto,
        ra: eks_node_agent_tests::rolesanywhere::Emulator,
        envs: Vec<(&'static str, String)>,
        tmp: tempfile::TempDir,
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        trust_anchor: String,
        profile: String,
        role: String,
    }

    impl HybridWorld {
        fn start() -> HybridWorld {
            use eks_node_agent_tests::rolesanywhere::{Config, Emulator, KeyKind, TestPki};
            let rt = tokio::runtime::Runtime::new().unwrap();
            let moto = Moto::start();
            rt.block_on(aws_world::create_cluster(&moto.endpoint(), "hy"));
            let pki = TestPki::new("node", KeyKind::P256);
            let config = Config::for_pki(&pki);
            let ra = Emulator::start(config.clone());
            let leaf = pki.issue_valid("node-7", KeyKind::P256);
            let tmp = tempfile::tempdir().unwrap();
            let cert = tmp.path().join("server.pem");
            let key = tmp.path().join("server.key");
            std::fs::write(&cert, format!("{}{}", leaf.cert_pem, leaf.chain_pem)).unwrap();
            std::fs::write(&key, &leaf.key_pem).unwrap();
            let envs = vec![
                ("AWS_ENDPOINT_URL_EKS", moto.endpoint()),
                ("AWS_ENDPOINT_URL_ROLESANYWHERE", ra.endpoint()),
                ("AWS_CA_BUNDLE", ra.ca_bundle().display().to_string()),
            ];
            HybridWorld {
                _moto: moto,
                envs,
                cert,
                key,
                trust_anchor: config.trust_anchor_arn.clone(),
                profile: config.profile_arn.clone(),
                role: config.role_arns[0].clone(),
                ra,
                tmp,
            }
        }

        /// A NodeConfig for cluster `hy` with `--node-ip=<ip>` (and `extra` kubelet config).
        fn config(&self, ip: &str, kubelet_config: &str) -> String {
            let path = self
                .tmp
                .path()
                .join(format!("hybrid-{ip}-{}.yaml", kubelet_config.len()));
            std::fs::write(
                &path,
                format!(
                    "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: hy\n    region: us-west-2\n    apiServerEndpoint: https://hy.example.com\n    certificateAuthority: {}\n    cidr: 172.16.0.0/16\n  kubelet:\n    flags: [--node-ip={ip}]\n{kubelet_config}  hybrid:\n    iamRolesAnywhere:\n      nodeName: node-7\n      trustAnchorArn: {}\n      profileArn: {}\n      roleArn: {}\n      certificatePath: {}\n      privateKeyPath: {}\n",
                    ca_b64(),
                    self.trust_anchor,
                    self.profile,
                    self.role,
                    self.cert.display(),
                    self.key.display()
                ),
            )
            .unwrap();
            format!("file://{}", path.display())
        }
    }

    #[test]
    fn hybrid_node_ip_must_be_in_the_clusters_remote_node_networks() {
        let world = HybridWorld::start();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");

        // 192.168.10.7 is outside the cluster's remote node network (10.200.0.0/16).
        let outside = world.config("192.168.10.7", "");
        let out = agent(
            &["init", "--root", root.to_str().unwrap(), "-c", &outside],
            &world.envs,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("192.168.10.7")
                && err.contains(aws_world::REMOTE_NODE_CIDR)
                && err.contains("remoteNetworkConfig"),
            "{err}"
        );
        assert!(!root.exists(), "nothing may be written on a refusal");
        assert!(
            world.ra.requests().iter().any(|r| r.status == 201),
            "DescribeCluster was signed with Roles Anywhere credentials: {:?}",
            world.ra.requests()
        );

        let inside = world.config("10.200.3.4", "");
        let out = agent(
            &["init", "--root", root.to_str().unwrap(), "-c", &inside],
            &world.envs,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(root.join("etc/eks/kubelet/environment")).unwrap();
        assert!(env.contains("--node-ip=10.200.3.4"), "{env}");
        assert!(!env.contains("--hostname-override"), "{env}");
    }

    #[test]
    fn hybrid_swap_files_are_disabled_in_fstab_and_swap_partitions_refused() {
        let world = HybridWorld::start();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        let fstab = "UUID=abcd / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n";
        std::fs::write(root.join("etc/fstab"), fstab).unwrap();
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        std::fs::write(
            root.join("proc/swaps"),
            format!(
                "{header}/dev/sda3                               partition\t2097148\t\t0\t\t-2\n"
            ),
        )
        .unwrap();
        let src = world.config("10.200.3.4", "");
        let out = agent(
            &["init", "--root", root.to_str().unwrap(), "-c", &src],
            &world.envs,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("/dev/sda3") && err.contains("failSwapOn: false"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/fstab")).unwrap(),
            fstab
        );
        assert!(!root.join("etc/eks").exists(), "nothing may be written");

        // failSwapOn: false lets kubelet run with the partition: nothing is refused or edited.
        let allowed = world.config("10.200.3.4", "    config:\n      failSwapOn: false\n");
        let out = agent(
            &["init", "--root", root.to_str().unwrap(), "-c", &allowed],
            &world.envs,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/fstab")).unwrap(),
            fstab
        );

        // A swap file: its fstab line is commented out so it stays off after a reboot.
        std::fs::write(
            root.join("proc/swaps"),
            format!("{header}/swapfile                               file\t\t1048572\t\t0\t\t-2\n"),
        )
        .unwrap();
        let out = agent(
            &["init", "--root", root.to_str().unwrap(), "-c", &src],
            &world.envs,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let now = std::fs::read_to_string(root.join("etc/fstab")).unwrap();
        assert!(
            now.starts_with("UUID=abcd / ext4 defaults 0 1\n# swap disabled by eks-node-agent")
                && now.contains("/swapfile none swap sw 0 0"),
            "{now}"
        );
    }

    /// EC2: user data from the IMDS emulator, DescribeInstances and DescribeCluster from moto.
    #[test]
    fn ec2_init_from_user_data_against_imds_and_moto() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let moto = Moto::start();
        let world = rt.block_on(async {
            let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
            aws_world::create_cluster(&moto.endpoint(), "ec2-cluster").await;
            world
        });
        // The instance shows its tags in metadata: those under the label prefix become node
        // labels, except one the kubelet may not set on itself.
        let mut instance = world.instance.clone();
        instance.tags = Some(
            [
                ("Name", "worker"),
                ("node.eks.aws:label:team", "payments"),
                ("node.eks.aws:label:node-role.kubernetes.io:worker", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let emu = ImdsEmulator::start(instance);
        // Endpoint and service CIDR come from DescribeCluster; the CA from user data (moto's CA
        // is random text, see the discovery tests).
        let user_data = format!(
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n--B\nContent-Type: application/node.eks.aws\n\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: ec2-cluster\n    certificateAuthority: {}\n--B--\n",
            ca_b64()
        );
        emu.set_user_data(Some(user_data.into_bytes()));
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let envs = [
            ("AWS_EC2_METADATA_DISABLED", "false".to_owned()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.endpoint()),
            ("AWS_ENDPOINT_URL_EC2", moto.endpoint()),
            ("AWS_ENDPOINT_URL_EKS", moto.endpoint()),
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE".to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
            ),
        ];
        let out = agent(
            &[
                "init",
                "--root",
                root.to_str().unwrap(),
                "-c",
                "imds://user-data",
            ],
            &envs,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kubelet =
            std::fs::read_to_string(root.join("etc/kubernetes/kubelet/config.json")).unwrap();
        assert!(kubelet.contains("\"maxPods\": 29"), "{kubelet}");
        let id = &world.instance.instance_id;
        assert!(kubelet.contains(&format!("/{id}\"")), "{kubelet}");
        let env = std::fs::read_to_string(root.join("etc/eks/kubelet/environment")).unwrap();
        assert!(
            env.contains(&format!("--hostname-override={}", world.private_dns_name)),
            "{env}"
        );
        assert!(env.contains(" --node-labels=team=payments\""), "{env}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("node.eks.aws:label:node-role.kubernetes.io:worker")
                && stderr.contains("NodeRestriction"),
            "the refused tag is named with the rule: {stderr}"
        );
        let kubeconfig = std::fs::read_to_string(root.join("var/lib/kubelet/kubeconfig")).unwrap();
        assert!(kubeconfig.contains("server: https://"), "{kubeconfig}");
        assert!(kubeconfig.contains("- ec2-cluster"), "{kubeconfig}");
        let before = stat_all(&root);
        let out = agent(
            &[
                "init",
                "--root",
                root.to_str().unwrap(),
                "-c",
                "imds://user-data",
            ],
            &envs,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stat_all(&root),
            before,
            "a second init must not rewrite any file"
        );
    }
}

mod containerd {
    //! The rendered containerd config, run by Debian's real containerd.

    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use eks_node_agent::compute::values::resolve;
    use eks_node_agent::config::{self, NoUserData};
    use eks_node_agent::model::Discovered;
    use eks_node_agent::render;
    use eks_node_agent_tests::repo_root;

    /// How long containerd may take to open its socket.
    const START_TIMEOUT: Duration = Duration::from_secs(30);

    struct Daemon(Child);

    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn ensure_containerd() -> bool {
        if Command::new("containerd").arg("--version").output().is_ok() {
            return true;
        }
        if !eks_node_agent_tests::e2e::is_root() {
            return false;
        }
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", "containerd", "runc"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        ok && Command::new("containerd").arg("--version").output().is_ok()
    }

    #[test]
    fn real_containerd_loads_the_rendered_config_and_its_cri_plugin() {
        if !eks_node_agent_tests::e2e::is_root() {
            eprintln!(
                "SKIP real_containerd...: containerd needs root to run; run the tests as root"
            );
            return;
        }
        assert!(
            ensure_containerd(),
            "containerd is not installed and `apt-get install containerd runc` failed"
        );
        let version = String::from_utf8(
            Command::new("containerd")
                .arg("--version")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let parsed = eks_node_agent::model::Version::find_in(&version).expect("containerd version");

        // Render for the installed containerd (schema v2 for 1.x, v3 for 2.x).
        let scenario = repo_root().join("tests/golden/init/ec2-basic");
        let loaded = config::load(
            &[format!(
                "file://{}",
                scenario.join("nodeconfig.yaml").display()
            )],
            &NoUserData,
        )
        .unwrap();
        let mut found: Discovered = serde_yaml_ng::from_str(
            &std::fs::read_to_string(scenario.join("discovered.yaml")).unwrap(),
        )
        .unwrap();
        found.host.containerd_version = Some(parsed);
        // FastImagePull on a host large enough for it, with the SOCI snapshotter installed:
        // containerd must still load the config (the snapshotter is a proxy plugin, reached
        // through its socket when an image is pulled).
        let mut config = loaded.config.clone();
        config
            .spec
            .feature_gates
            .insert("FastImagePull".into(), true);
        found.host.cpu_cores = 4;
        found.host.memory_bytes = 16 * 1024 * 1024 * 1024;
        found.host.soci_snapshotter = Some("/usr/bin/soci-snapshotter-grpc".into());
        let node = resolve(&config, &found).unwrap();
        assert!(node.fast_image_pull.is_some(), "{:?}", node.explain);
        let plan = render::render(&config, &node);
        let file = |p: &str| {
            plan.files
                .iter()
                .find(|f| f.path.to_str() == Some(p))
                .unwrap()
                .contents
                .clone()
        };

        // Same config, with containerd's own directories moved under a temp root.
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let spec_path = d.join("base-runtime-spec.json");
        std::fs::write(&spec_path, file("/etc/containerd/base-runtime-spec.json")).unwrap();
        let mut doc: toml::Table = String::from_utf8(file("/etc/containerd/config.toml"))
            .unwrap()
            .parse()
            .unwrap();
        doc.insert("root".into(), d.join("root").display().to_string().into());
        doc.insert("state".into(), d.join("state").display().to_string().into());
        let sock = d.join("containerd.sock");
        doc["grpc"]
            .as_table_mut()
            .unwrap()
            .insert("address".into(), sock.display().to_string().into());
        let text = toml::to_string(&doc).unwrap().replace(
            "/etc/containerd/base-runtime-spec.json",
            &spec_path.display().to_string(),
        );
        let text = format!(
            "{text}\n[plugins.\"io.containerd.internal.v1.opt\"]\npath = \"{}\"\n",
            d.join("opt").display()
        );
        let config_path = d.join("config.toml");
        std::fs::write(&config_path, text).unwrap();

        let log_path = d.join("containerd.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let _daemon = Daemon(
            Command::new("containerd")
                .arg("--config")
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .arg("--address")
                .arg(&sock)
                .args(args)
                .output()
                .unwrap()
        };
        loop {
            if sock.exists() && ctr(&["version"]).status.success() {
                break;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "containerd did not answer: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let version_out = ctr(&["version"]);
        assert!(String::from_utf8_lossy(&version_out.stdout).contains("Server:"));
        let plugins = String::from_utf8(ctr(&["plugins", "ls"]).stdout).unwrap();
        let cri = plugins
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("cri"))
            .expect("cri plugin listed");
        // The SOCI snapshotter is registered as a proxy snapshotter plugin.
        assert!(
            plugins.lines().any(|l| l
                .split_whitespace()
                .take(2)
                .eq(["io.containerd.snapshotter.v1", "soci"])),
            "soci proxy snapshotter not listed:\n{plugins}"
        );
        assert!(
            cri.split_whitespace().last() == Some("ok"),
            "CRI plugin did not load: {cri}\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        // containerd logs the CRI config it parsed: our sandbox image and runc options are in it.
        let log = std::fs::read_to_string(&log_path).unwrap();
        for needle in [
            node.sandbox_image.as_str(),
            "BinaryName:/usr/sbin/runc",
            "SystemdCgroup:true",
            "DiscardUnpackedLayers:true",
            "Snapshotter:soci",
        ] {
            if parsed.major < 2 {
                assert!(
                    log.contains(needle),
                    "containerd's CRI config lacks {needle}"
                );
            }
        }
    }
}
