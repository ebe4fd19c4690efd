//! Packaging and the end-to-end boot: the systemd units pass `systemd-analyze verify`, the
//! user-data examples pass `config check`, the .deb and .rpm hold what they should and pass
//! lintian, the .rpm's scriptlets run in a Debian root, and the .deb boots a real systemd in
//! `systemd-nspawn` against the IMDS emulator and moto, then purges clean.
//!
//! Tests that need root or host tools print why they are skipped and return (CI runs as
//! root with scripts/test.sh, which installs the tools).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use eks_node_agent_tests::e2e::{
    self, Container, Forward, KUBELET_STAND_IN, NetNs, Overlay, note, run_ok, skip_reason,
};
use eks_node_agent_tests::imds::{ImdsEmulator, RoleCredentials};
use eks_node_agent_tests::moto::Moto;
use eks_node_agent_tests::{aws_world, repo_root, token_verifier};

use crate::agent_bin;

const UNITS: [&str; 3] = [
    "eks-node-agent-init-config.service",
    "eks-node-agent-init.service",
    "eks-node-agent.service",
];

fn skipped(test: &str, reason: &str) {
    note(&format!("SKIPPED e2e::{test}: {reason}"));
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `systemd-analyze verify` resolves ExecStart= binaries and dependencies against a root: a
/// scratch root with the host's unit directory, the agent binary, a kubelet placeholder (only
/// its presence is checked) and the units where the packages put them.
#[test]
fn units_pass_systemd_analyze_verify() {
    if let Some(r) = skip_reason(false, &["systemd-analyze"]) {
        return skipped("units_pass_systemd_analyze_verify", &r);
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in ["usr/bin", "usr/lib/systemd", "etc/systemd/system"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    run_ok(
        Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(root.join("usr/lib/systemd/")),
        e2e::EXEC_TIMEOUT,
    )
    .unwrap();
    std::fs::copy(agent_bin(), root.join("usr/bin/eks-node-agent")).unwrap();
    for tool in ["touch", "kill", "true"] {
        std::fs::copy(e2e::which(tool).unwrap(), root.join("usr/bin").join(tool)).unwrap();
    }
    std::fs::copy(root.join("usr/bin/true"), root.join("usr/bin/kubelet")).unwrap();
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("systemd")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "service") {
            let dest = root.join("etc/systemd/system").join(p.file_name().unwrap());
            std::fs::copy(&p, &dest).unwrap();
            paths.push(dest);
        }
    }
    assert_eq!(paths.len(), 5, "the five units of systemd/");
    // --man=no: the man page is checked in the packages test (it is in the .deb and .rpm).
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .args(&paths)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );

    // And it does find problems: a unit with a typo'd directive and a missing binary.
    let bad = root.join("etc/systemd/system/broken.service");
    std::fs::write(
        &bad,
        "[Unit]\nDescription=x\n[Service]\nTyep=oneshot\nExecStart=/usr/bin/not-there\n",
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "verify accepted a broken unit");
}

/// Every MIME example for launch templates, and the NodeConfig inside the on-prem cloud-init
/// example, pass `config check`.
#[test]
fn user_data_examples_pass_config_check() {
    let dir = repo_root().join("packaging/user-data");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "mime") {
            let out = Command::new(agent_bin())
                .args(["config", "check", "-c"])
                .arg(format!("file://{}", p.display()))
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "found {checked} MIME examples");

    let cloud: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir.join("on-prem-cloud-init.yaml")).unwrap(),
    )
    .unwrap();
    let files = cloud["write_files"].as_sequence().unwrap();
    let node = files
        .iter()
        .find(|f| f["path"].as_str() == Some("/etc/eks-node-agent/config.d/10-node.yaml"))
        .expect("the cloud-init example writes a NodeConfig into config.d");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("10-node.yaml");
    std::fs::write(&path, node["content"].as_str().unwrap()).unwrap();
    let out = Command::new(agent_bin())
        .args(["config", "check", "-c"])
        .arg(format!("file://{}", tmp.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The check is not vacuous: a broken copy of an example fails with exit 2.
    let broken = std::fs::read_to_string(dir.join("ec2-nodeconfig-only.mime"))
        .unwrap()
        .replace("name: my-cluster", "name: \"\"");
    let bad = tmp.path().join("bad.mime");
    std::fs::write(&bad, broken).unwrap();
    let out = Command::new(agent_bin())
        .args(["config", "check", "-c"])
        .arg(format!("file://{}", bad.display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The packages list the binary, the units, the config, the man page; the .deb's conffiles
/// are marked and lintian finds no error; the .rpm marks its config files and has scriptlets.
#[test]
fn packages_hold_binary_units_config_and_pass_lintian() {
    if let Some(r) = skip_reason(false, &["dpkg-deb", "rpm", "lintian", "cargo"]) {
        return skipped("packages_hold_binary_units_config_and_pass_lintian", &r);
    }
    let pkgs = e2e::packages(&agent_bin()).unwrap();
    let expected = [
        "usr/bin/eks-node-agent",
        "usr/lib/systemd/system/eks-node-agent-init-config.service",
        "usr/lib/systemd/system/eks-node-agent-init.service",
        "usr/lib/systemd/system/eks-node-agent.service",
        "usr/share/eks-node-agent/systemd/kubelet.service",
        "usr/share/eks-node-agent/prometheus/eks-node-agent.rules.yaml",
        "usr/share/eks-node-agent/grafana/eks-node-agent.dashboard.json",
        "etc/eks-node-agent/config.d/README",
        "etc/default/eks-node-agent",
        "usr/share/man/man1/eks-node-agent.1",
        "usr/share/doc/eks-node-agent/user-data/ec2-launch-template.mime",
        "usr/share/doc/eks-node-agent/sbom.cdx.json",
    ];
    let deb_list = stdout(
        &run_ok(
            Command::new("dpkg-deb").arg("-c").arg(&pkgs.deb),
            e2e::EXEC_TIMEOUT,
        )
        .unwrap(),
    );
    let rpm_list = stdout(
        &run_ok(
            Command::new("rpm").arg("-qlp").arg(&pkgs.rpm),
            e2e::EXEC_TIMEOUT,
        )
        .unwrap(),
    );
    for f in expected {
        assert!(
            deb_list.contains(&format!("./{f}")),
            "{f} not in the .deb:\n{deb_list}"
        );
        assert!(
            rpm_list.lines().any(|l| l == format!("/{f}")),
            "{f} not in the .rpm:\n{rpm_list}"
        );
    }
    let conffiles = stdout(
        &run_ok(
            Command::new("dpkg-deb")
                .args(["-I"])
                .arg(&pkgs.deb)
                .arg("conffiles"),
            e2e::EXEC_TIMEOUT,
        )
        .unwrap(),
    );
    assert!(
        conffiles.contains("/etc/default/eks-node-agent"),
        "{conffiles}"
    );
    assert!(
        conffiles.contains("/etc/eks-node-agent/config.d/README"),
        "{conffiles}"
    );
    let rpm_config = stdout(
        &run_ok(
            Command::new("rpm").arg("-qcp").arg(&pkgs.rpm),
            e2e::EXEC_TIMEOUT,
        )
        .unwrap(),
    );
    assert!(
        rpm_config.contains("/etc/default/eks-node-agent"),
        "{rpm_config}"
    );
    let scripts = stdout(
        &run_ok(
            Command::new("rpm")
                .args(["-qp", "--scripts"])
                .arg(&pkgs.rpm),
            e2e::EXEC_TIMEOUT,
        )
        .unwrap(),
    );
    for s in [
        "postinstall scriptlet",
        "preuninstall scriptlet",
        "postuninstall scriptlet",
    ] {
        assert!(scripts.contains(s), "no {s}:\n{scripts}");
    }

    // The SBOM in each package is CycloneDX and lists exactly what the binary links from
    // Cargo.lock.
    let deb_sbom = run_ok(
        Command::new("sh").arg("-c").arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -xO ./usr/share/doc/eks-node-agent/sbom.cdx.json",
            pkgs.deb.display()
        )),
        e2e::EXEC_TIMEOUT,
    )
    .unwrap();
    let rpm_sbom = run_ok(
        Command::new("sh").arg("-c").arg(format!(
            "rpm2cpio '{}' | cpio --quiet -i --to-stdout ./usr/share/doc/eks-node-agent/sbom.cdx.json",
            pkgs.rpm.display()
        )),
        e2e::EXEC_TIMEOUT,
    )
    .unwrap();
    assert_eq!(
        deb_sbom.stdout, rpm_sbom.stdout,
        "the .deb and .rpm ship different SBOMs"
    );
    check_sbom(&deb_sbom.stdout);

    let lint = Command::new("lintian")
        .args(["--fail-on", "error", "--no-tag-display-limit"])
        .arg(&pkgs.deb)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "lintian: {}\n{}{}",
        lint.status,
        stdout(&lint),
        String::from_utf8_lossy(&lint.stderr)
    );
}

/// A CycloneDX SBOM of the binary: every crate the binary is built from (cargo's own view,
/// `cargo tree -e normal`: no dev- or build-dependencies) is listed with its Cargo.lock
/// version and package URL, and nothing is listed that Cargo.lock does not hold; the test-only
/// crates are not there.
fn check_sbom(bytes: &[u8]) {
    let sbom: serde_json::Value = serde_json::from_slice(bytes).expect("the SBOM is JSON");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["name"], "eks-node-agent");
    let listed: std::collections::BTreeSet<(String, String)> = sbom["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            let (name, version) = (c["name"].as_str().unwrap(), c["version"].as_str().unwrap());
            assert_eq!(
                c["purl"].as_str(),
                Some(format!("pkg:cargo/{name}@{version}").as_str()),
                "{c}"
            );
            (name.to_owned(), version.to_owned())
        })
        .collect();
    let lock: toml::Table = std::fs::read_to_string(repo_root().join("Cargo.lock"))
        .unwrap()
        .parse()
        .unwrap();
    let locked: std::collections::BTreeSet<(String, String)> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let tree = run_ok(
        Command::new("cargo")
            .args([
                "tree",
                "-p",
                "eks-node-agent",
                "-e",
                "normal",
                "--prefix",
                "none",
                "--locked",
                "--offline",
            ])
            .current_dir(repo_root()),
        e2e::EXEC_TIMEOUT,
    )
    .unwrap();
    let used: std::collections::BTreeSet<(String, String)> = stdout(&tree)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.trim_start_matches('v');
            (name != "eks-node-agent").then(|| (name.to_owned(), version.to_owned()))
        })
        .collect();
    assert!(used.len() > 100, "cargo tree listed {} crates", used.len());
    let missing: Vec<_> = used.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "crates the binary uses but the SBOM lacks: {missing:?}"
    );
    let unknown: Vec<_> = listed.difference(&locked).collect();
    assert!(
        unknown.is_empty(),
        "SBOM entries not in Cargo.lock: {unknown:?}"
    );
    for test_only in [
        "josekit",
        "proptest",
        "rcgen",
        "eks-node-agent-tests",
        "rsa",
    ] {
        assert!(
            !listed.iter().any(|(n, _)| n == test_only),
            "{test_only} is not part of the binary"
        );
    }
}

/// The .rpm installs into a Debian root with `rpm -i --nodeps --root` (the root's rpm database
/// knows no Debian package, hence --nodeps), its %post enables the units and links the kubelet
/// unit, and `rpm -e` runs %preun/%postun: units disabled, link and state gone.
#[test]
fn rpm_installs_into_a_debian_root_and_its_scriptlets_run() {
    if let Some(r) = skip_reason(true, &["rpm", "debootstrap", "mount", "dpkg-deb"]) {
        return skipped("rpm_installs_into_a_debian_root_and_its_scriptlets_run", &r);
    }
    let bin = agent_bin();
    let target = e2e::target_dir(&bin);
    let rootfs = e2e::cached_rootfs(&target).unwrap();
    let pkgs = e2e::packages(&bin).unwrap();
    let root = Overlay::mount(&rootfs, &target.join("e2e-scratch")).unwrap();
    let rpm = |args: &[&str]| {
        run_ok(
            Command::new("rpm")
                .args(args)
                .arg("--root")
                .arg(root.root()),
            e2e::EXEC_TIMEOUT,
        )
        .unwrap()
    };
    rpm(&["-i", "--nodeps", pkgs.rpm.to_str().unwrap()]);
    assert!(root.path("/usr/bin/eks-node-agent").is_file());
    for unit in UNITS {
        let link = root.path(&format!(
            "/etc/systemd/system/multi-user.target.wants/{unit}"
        ));
        assert!(link.is_symlink(), "%post did not enable {unit}");
    }
    let kubelet = root.path("/etc/systemd/system/kubelet.service");
    assert_eq!(
        std::fs::read_link(&kubelet).unwrap(),
        Path::new("/usr/share/eks-node-agent/systemd/kubelet.service")
    );
    // State the agent would have made, for %postun to remove.
    root.write("/var/lib/eks-node-agent/token-cache/x", b"{}", 0o600)
        .unwrap();
    rpm(&["-e", "--nodeps", "eks-node-agent"]);
    assert!(!root.path("/usr/bin/eks-node-agent").exists());
    for unit in UNITS {
        let link = root.path(&format!(
            "/etc/systemd/system/multi-user.target.wants/{unit}"
        ));
        assert!(!link.is_symlink(), "%preun did not disable {unit}");
    }
    assert!(!kubelet.is_symlink(), "%postun left the kubelet link");
    assert!(
        !root.path("/var/lib/eks-node-agent").exists(),
        "%postun left the state"
    );
    assert!(
        !root.path("/etc/eks-node-agent").exists(),
        "%postun left the config dir"
    );
}

/// Ports inside the container's own network namespace.
const IMDS_PORT_INSIDE: u16 = 1338;
const MOTO_PORT_INSIDE: u16 = 5000;
/// The daemon's default listen address (inside the container's namespace).
const METRICS_PORT: u16 = 9256;

/// Paths `init` writes for this user data: the node's configuration, which the package does
/// not own and purge keeps (docs/install-on-prem.md, "Removing").
const INIT_OUTPUTS: [&str; 8] = [
    "/etc/containerd/config.toml",
    "/etc/kubernetes/kubelet/config.json",
    "/etc/eks/kubelet/environment",
    "/var/lib/kubelet/kubeconfig",
    "/etc/kubernetes/pki/ca.crt",
    "/etc/modules-load.d/eks-node-agent.conf",
    "/etc/systemd/system/containerd.service.d/10-eks-node-agent-slice.conf",
    "/etc/systemd/system/kubelet.service.d/10-eks-node-agent-slice.conf",
];

#[test]
fn deb_boots_under_systemd_and_purges_clean() {
    let test = "deb_boots_under_systemd_and_purges_clean";
    let tools = [&e2e::NSPAWN_TOOLS[..], &["chroot", "dpkg-deb"]].concat();
    if let Some(r) = skip_reason(true, &tools) {
        return skipped(test, &r);
    }
    let started = Instant::now();
    let bin = agent_bin();
    let target = e2e::target_dir(&bin);
    let rootfs = e2e::cached_rootfs(&target).unwrap();
    let pkgs = e2e::packages(&bin).unwrap();
    let prepared = started.elapsed();

    // The peers: moto with one instance, the IMDS emulator describing it, with an instance
    // role and the launch-template example as user data.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let moto = Moto::start();
    let mut world = rt.block_on(aws_world::run_instance(&moto.endpoint(), "m5.large"));
    let role_secret = "e2eRoleSecretKey0123456789abcdefghijklmn";
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    world.instance.credentials = Some(RoleCredentials {
        role: "EksNodeRole".into(),
        access_key_id: "ASIAE2EROLEEXAMPLE01".into(),
        secret_access_key: role_secret.into(),
        token: "IQoJb3JpZ2luX2VjE2ESessionToken".into(),
        expiration: rfc3339(now + time::Duration::hours(6)),
        last_updated: rfc3339(now),
    });
    // The launch-template example, with the label flag quoted the way Karpenter writes it:
    // the kubelet must get the label without the quote characters.
    let user_data =
        std::fs::read_to_string(repo_root().join("packaging/user-data/ec2-launch-template.mime"))
            .unwrap()
            .replace(
                "--node-labels=node.example.com/pool=general",
                "--node-labels=\"node.example.com/pool=general\"",
            );
    assert!(user_data.contains("--node-labels=\"node.example.com/pool=general\""));
    world.instance.user_data = Some(user_data.into_bytes());
    let emu = ImdsEmulator::start(world.instance.clone());

    // The container's root: the cached image, our .deb installed offline (as an image build
    // would), the unit environment pointing at the emulators, and the kubelet stand-in.
    let root = Overlay::mount(&rootfs, &target.join("e2e-scratch")).unwrap();
    root.write(
        "/var/cache/e2e/eks-node-agent.deb",
        &std::fs::read(&pkgs.deb).unwrap(),
        0o644,
    )
    .unwrap();
    run_ok(
        Command::new("chroot").arg(root.root()).args([
            "dpkg",
            "-i",
            "/var/cache/e2e/eks-node-agent.deb",
        ]),
        e2e::EXEC_TIMEOUT,
    )
    .unwrap();
    let env_file = format!(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:{IMDS_PORT_INSIDE}\n\
         AWS_ENDPOINT_URL_EC2=http://127.0.0.1:{MOTO_PORT_INSIDE}\n\
         AWS_ENDPOINT_URL_EKS=http://127.0.0.1:{MOTO_PORT_INSIDE}\n\
         EKS_NODE_AGENT_RUN_ARGS=--no-kubernetes\n"
    );
    root.write("/etc/default/eks-node-agent", env_file.as_bytes(), 0o644)
        .unwrap();
    root.write("/usr/bin/kubelet", KUBELET_STAND_IN.as_bytes(), 0o755)
        .unwrap();

    let netns = NetNs::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let _imds_fwd = Forward::start(
        &netns,
        IMDS_PORT_INSIDE,
        emu.addr(),
        &scratch.path().join("imds.sock"),
    )
    .unwrap();
    let moto_addr = format!("127.0.0.1:{}", moto.port()).parse().unwrap();
    let _moto_fwd = Forward::start(
        &netns,
        MOTO_PORT_INSIDE,
        moto_addr,
        &scratch.path().join("moto.sock"),
    )
    .unwrap();

    let boot_started = Instant::now();
    let machine = format!("eks-e2e-{}", std::process::id());
    let c = Container::boot(
        root.root(),
        &netns,
        &machine,
        &scratch.path().join("console.log"),
    )
    .unwrap();
    let state = c.wait_booted().unwrap();
    let booted = boot_started.elapsed();
    let journal = |c: &Container| {
        c.sh("journalctl -b --no-pager -o short-monotonic -u 'eks-node-agent*' -u containerd -u kubelet")
            .unwrap_or_default()
    };
    assert_eq!(
        state,
        "running",
        "system state {state}:\n{}\n{}",
        c.sh("systemctl --failed --no-pager").unwrap_or_default(),
        journal(&c)
    );

    // The init phases succeeded, once each.
    for unit in &UNITS[..2] {
        let show = c
            .sh(&format!(
                "systemctl show {unit} -p ActiveState -p Result -p ExecMainStatus"
            ))
            .unwrap();
        assert!(
            show.contains("ActiveState=active")
                && show.contains("Result=success")
                && show.contains("ExecMainStatus=0"),
            "{unit}: {show}\n{}",
            journal(&c)
        );
    }
    c.sh("test -e /run/eks-node-agent/init-config.done && test -e /run/eks-node-agent/init.done")
        .unwrap();

    // The rendered files are in place, with this instance's facts.
    for f in INIT_OUTPUTS {
        assert!(root.path(f).is_file(), "{f} missing\n{}", journal(&c));
    }
    let kubelet_config =
        std::fs::read_to_string(root.path("/etc/kubernetes/kubelet/config.json")).unwrap();
    assert!(
        kubelet_config.contains(&world.instance.instance_id),
        "{kubelet_config}"
    );
    // Keyed on what the kubelet says it is (1.33 here): dynamic resource allocation, not yet
    // 1.34's settings.
    assert!(
        kubelet_config.contains("\"DynamicResourceAllocation\": true")
            && !kubelet_config.contains("MutableCSINodeAllocatableCount"),
        "{kubelet_config}"
    );
    // Phase 2 used what phase 1 resolved instead of discovering again.
    let phase2 = c
        .sh("journalctl -b --no-pager -u eks-node-agent-init.service")
        .unwrap_or_default();
    assert!(
        phase2.contains("run phase from the config phase's state")
            && !phase2.contains("facts gathered"),
        "{phase2}"
    );
    let dropin = std::fs::read_to_string(
        root.path("/etc/kubernetes/kubelet/config.json.d/40-nodeconfig.conf"),
    )
    .unwrap();
    assert!(
        dropin.contains("shutdownGracePeriod"),
        "the user's kubelet.config: {dropin}"
    );

    // containerd is active and was (re)started after our config was written, and loads it.
    assert_eq!(
        c.sh("systemctl is-active containerd").unwrap().trim(),
        "active"
    );
    let started_at: u64 = c
        .sh("systemctl show containerd -p ExecMainStartTimestamp --timestamp=unix --value")
        .unwrap()
        .trim()
        .trim_start_matches('@')
        .parse()
        .unwrap();
    let written_at: u64 = c
        .sh("stat -c %Y /etc/containerd/config.toml")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        started_at >= written_at,
        "containerd started at {started_at}, config written at {written_at}"
    );
    let dump = c.sh("containerd config dump").unwrap();
    assert!(
        dump.contains("/etc/containerd/base-runtime-spec.json"),
        "containerd does not load our config:\n{dump}"
    );

    // kubelet.service (the package's, linked in) ran the kubelet with the arguments file.
    let env = std::fs::read_to_string(root.path("/etc/eks/kubelet/environment")).unwrap();
    let args_line = env
        .lines()
        .find(|l| l.starts_with("NODEADM_KUBELET_ARGS="))
        .expect("NODEADM_KUBELET_ARGS in the environment file");
    // What the model of systemd's parsing (tests/src/systemd_env.rs) says the kubelet gets:
    // the real systemd here checks the model.
    let want: Vec<String> =
        eks_node_agent_tests::systemd_env::exec_argv("kubelet", "NODEADM_KUBELET_ARGS", &env)
            .into_iter()
            .skip(1)
            .collect();
    let got: Vec<String> = c
        .sh("cat /run/kubelet-e2e.argv")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, want, "kubelet argv differs from {args_line}");
    assert!(
        got.iter()
            .any(|a| a == "--node-labels=node.example.com/pool=general"),
        "{got:?}"
    );
    assert_eq!(
        c.sh("systemctl is-active kubelet").unwrap().trim(),
        "active"
    );

    // The daemon reached READY (Type=notify: active means READY arrived) and serves /metrics.
    let show = c
        .sh("systemctl show eks-node-agent -p ActiveState -p SubState -p StatusText -p NRestarts")
        .unwrap();
    assert!(
        show.contains("ActiveState=active")
            && show.contains("SubState=running")
            && show.contains("NRestarts=0"),
        "{show}\n{}",
        journal(&c)
    );
    // Type=notify is only "active" once READY=1 arrived; the status text is the daemon's own
    // wording, so only its presence is checked.
    assert!(
        show.lines()
            .any(|l| l.starts_with("StatusText=") && l.len() > "StatusText=".len()),
        "no sd_notify status: {show}"
    );
    let get = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{METRICS_PORT}; printf 'GET /metrics HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3; cat <&3"
    );
    let metrics = stdout(&c.exec(&["bash", "-c", &get], &[]).unwrap());
    assert!(
        metrics.starts_with("HTTP/1.0 200") || metrics.starts_with("HTTP/1.1 200"),
        "{metrics}"
    );
    assert!(metrics.contains("node_cpu_seconds_total"), "{metrics}");

    // `token` inside, exactly as the rendered kubeconfig runs it, with the instance role from
    // IMDS; the token passes the authenticator's checks and botocore's signature.
    let kubeconfig: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.path("/var/lib/kubelet/kubeconfig")).unwrap(),
    )
    .unwrap();
    let exec = &kubeconfig["users"][0]["user"]["exec"];
    let mut argv: Vec<String> = vec![exec["command"].as_str().unwrap().to_string()];
    argv.extend(
        exec["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    assert_eq!(argv[0], "/usr/bin/eks-node-agent");
    let imds_env = format!("http://127.0.0.1:{IMDS_PORT_INSIDE}");
    let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = c
        .exec(
            &argv_ref,
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_env)],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cred: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = cred["status"]["token"].as_str().unwrap();
    let cluster_id = argv[argv.iter().position(|a| a == "--cluster-id").unwrap() + 1].clone();
    let checked = token_verifier::verify(
        token,
        &cluster_id,
        &token_verifier::SigningSecret {
            secret_access_key: role_secret.into(),
        },
        time::OffsetDateTime::now_utc(),
    );
    assert!(checked.is_ok(), "{checked:?}");

    // No error lines from our units: neither systemd's (priority err) nor the agent's own.
    let errors = c
        .sh("journalctl -b --no-pager -q -p err -u eks-node-agent-init-config -u eks-node-agent-init -u eks-node-agent")
        .unwrap();
    assert!(
        errors.trim().is_empty(),
        "error-priority journal lines:\n{errors}"
    );
    let ours = c
        .sh("journalctl -b --no-pager -q -o cat -u eks-node-agent-init-config -u eks-node-agent-init -u eks-node-agent")
        .unwrap();
    let bad: Vec<&str> = ours
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        bad.is_empty(),
        "error lines from our units:\n{}",
        bad.join("\n")
    );
    assert!(
        ours.contains("kubelet.service"),
        "init's run phase did not report the kubelet:\n{ours}"
    );

    // `collect` inside the booted node: every source is in the manifest, the journals of
    // the real units, the daemon's scrape and the IMDS identity are in the bundle, and none
    // of the node's secrets (the role's keys, the kubelet's token) is in any file.
    let collected = c
        .exec(
            &[
                "eks-node-agent",
                "collect",
                "--output",
                "/var/tmp/e2e-bundle.tar.gz",
                "--since",
                "1h",
            ],
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_env)],
        )
        .unwrap();
    assert!(
        collected.status.success(),
        "collect: {}",
        String::from_utf8_lossy(&collected.stderr)
    );
    let unpacked = tempfile::tempdir().unwrap();
    let top = crate::collect::extract(&root.path("/var/tmp/e2e-bundle.tar.gz"), unpacked.path());
    let manifest = crate::collect::manifest_lists_the_bundle(&top);
    let read = |f: &str| {
        std::fs::read_to_string(top.join(f)).unwrap_or_else(|e| panic!("{f}: {e}\n{manifest:#}"))
    };
    assert!(
        read("journal/kubelet.log").contains("kubelet"),
        "{}",
        read("journal/kubelet.log")
    );
    assert!(read("journal/eks-node-agent-init.log").contains("eks-node-agent"));
    assert!(read("metrics.txt").contains("node_cpu_seconds_total"));
    assert!(read("imds/instance-identity.json").contains(&world.instance.instance_id));
    assert!(read("config/kubelet/config.json").contains(&world.instance.instance_id));
    let status_json: serde_json::Value = serde_json::from_str(&read("status.json")).unwrap();
    assert!(
        status_json["checks"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    crate::collect::no_secret_in(
        &top,
        &[role_secret, "IQoJb3JpZ2luX2VjE2ESessionToken", token],
    );

    // Purge inside the running system: the daemon stops, nothing of the package is left.
    let owned: Vec<String> = c
        .sh("dpkg -L eks-node-agent")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    c.sh("DEBIAN_FRONTEND=noninteractive dpkg --purge eks-node-agent")
        .unwrap();
    let state = c
        .exec(&["systemctl", "is-active", "eks-node-agent.service"], &[])
        .unwrap();
    assert_eq!(
        stdout(&state).trim(),
        "inactive",
        "the daemon still runs after purge"
    );
    for f in owned
        .iter()
        .filter(|f| f.contains("eks-node-agent") || f.ends_with(".service"))
    {
        assert!(!root.path(f).exists(), "{f} survived the purge");
    }
    for gone in [
        "/etc/eks-node-agent",
        "/etc/default/eks-node-agent",
        "/var/lib/eks-node-agent",
        "/run/eks-node-agent",
        "/etc/systemd/system/kubelet.service",
    ] {
        let out = c.exec(&["test", "-e", gone], &[]).unwrap();
        assert!(!out.status.success(), "{gone} survived the purge");
    }
    // Anything named after the agent written since the pristine image (the overlay's upper
    // layer), except init's outputs for the node, is a leftover.
    let mut leftovers = Vec::new();
    collect_named(root.upper(), root.upper(), "eks-node-agent", &mut leftovers);
    leftovers.retain(|p| {
        !INIT_OUTPUTS.contains(&p.as_str())
            && !p.starts_with("/var/log/")
            && !p.starts_with("/var/cache/e2e")
    });
    assert!(
        leftovers.is_empty(),
        "left behind after purge: {leftovers:?}"
    );

    // Installing into a running system enables the units and starts nothing.
    c.sh("dpkg -i /var/cache/e2e/eks-node-agent.deb").unwrap();
    for unit in UNITS {
        assert_eq!(
            c.exec(&["systemctl", "is-enabled", unit], &[])
                .map(|o| stdout(&o))
                .unwrap()
                .trim(),
            "enabled"
        );
    }
    assert_eq!(
        c.exec(&["systemctl", "is-active", "eks-node-agent.service"], &[])
            .map(|o| stdout(&o))
            .unwrap()
            .trim(),
        "inactive",
        "installation started the daemon"
    );

    drop(c);
    note(&format!(
        "e2e: rootfs + packages ready in {:.1}s, boot to `running` {:.1}s, whole test {:.1}s",
        prepared.as_secs_f64(),
        booted.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
}

/// Paths under `dir` (relative to `base`, as absolute container paths) whose name contains
/// `needle`.
fn collect_named(base: &Path, dir: &Path, needle: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p: PathBuf = e.path();
        let rel = format!("/{}", p.strip_prefix(base).unwrap().display());
        let meta = std::fs::symlink_metadata(&p).unwrap();
        // Overlay whiteouts (char devices 0:0) mark deletions, not files.
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_char_device() {
            continue;
        }
        if e.file_name().to_string_lossy().contains(needle) {
            out.push(rel);
        }
        if meta.is_dir() {
            collect_named(base, &p, needle, out);
        }
    }
}
