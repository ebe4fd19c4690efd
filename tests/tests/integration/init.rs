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

/// Each scenario directory has `nodeconfig.yaml` (the user's documents), `discovered.yaml`
/// (what IMDS, EC2, EKS and the host reported) and the expected output: `expected/` (every
/// file with its host path) and `expected.plan` (the registration before discovery when the
/// node is an unregistered SSM hybrid node, as if the SSM agent were installed; modes, units
/// affected, the local storage steps, sysctls, host actions, services). `EKS_AGENT_UPDATE_GOLDEN=1` regenerates.
#[test]
fn golden_init_scenarios() {
    let root = repo_root().join("tests/golden/init");
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("nodeconfig.yaml").exists())
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 10, "found {} scenarios", scenarios.len());
    let mut failures = Vec::new();
    for dir in &scenarios {
        let uri = format!("file://{}", dir.join("nodeconfig.yaml").display());
        let loaded = config::load(&[uri], &NoUserData).unwrap();
        let found: Discovered =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("discovered.yaml")).unwrap())
                .unwrap();
        let registration = render::registration(
            &loaded.config,
            found.ssm_managed_instance_id.is_some(),
            true,
        )
        .unwrap();
        let node = resolve(&loaded.config, &found).unwrap();
        let plan = render::render(&loaded.config, &node);
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
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
        let emu = ImdsEmulator::start(world.instance.clone());
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
        let node = resolve(&loaded.config, &found).unwrap();
        let plan = render::render(&loaded.config, &node);
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
