//! `spec.instance.localStorage` for real: instance-store disks stand-ins (loop devices over
//! sparse files) formatted by the real mkfs.xfs, mounted and bind-mounted by the agent's local
//! storage step in a private mount namespace (nothing leaks to the host's mount table). The
//! kernel here has no MD driver, so `mdadm --create` is the one step not run: the RAID case
//! starts from an assembled array (`/dev/md/kubernetes` under the root links to a loop device),
//! which is what every boot after the first sees.

use std::path::{Path, PathBuf};
use std::process::Command;

use eks_node_agent::apply::local_storage::setup;
use eks_node_agent::config::{DisabledMount, LocalStorageStrategy, NodeConfig};
use eks_node_agent::model::HostFacts;

/// The environment variable that makes the helper run (set by the parent test only).
const HELPER_ROOT: &str = "EKS_AGENT_LOCAL_STORAGE_ROOT";

/// A loop device over a sparse file; detached on drop.
struct Loop(String);

impl Loop {
    fn new(file: &Path) -> Loop {
        let f = std::fs::File::create(file).unwrap();
        f.set_len(512 * 1024 * 1024).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn skip_reason() -> Option<String> {
    eks_node_agent_tests::e2e::skip_reason(
        true,
        &["losetup", "mkfs.xfs", "blkid", "unshare", "cp", "umount"],
    )
}

#[test]
fn local_storage_mounts_disks_and_moves_state_directories_for_real() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED local_storage_mounts_disks_and_moves_state_directories_for_real: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = Loop::new(&tmp.path().join("disk1.img"));
    let array = Loop::new(&tmp.path().join("array.img"));
    let root = tmp.path().join("root");
    let by_id = root.join("dev/disk/by-id");
    std::fs::create_dir_all(&by_id).unwrap();
    std::os::unix::fs::symlink(
        &disk.0,
        by_id.join("nvme-Amazon_EC2_NVMe_Instance_Storage_AWS0LOOP1"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("dev/md")).unwrap();
    std::os::unix::fs::symlink(&array.0, root.join("dev/md/kubernetes")).unwrap();
    // State that must move onto the array with the directory.
    std::fs::create_dir_all(root.join("var/lib/kubelet/pki")).unwrap();
    std::fs::write(root.join("var/lib/kubelet/pki/kubelet.crt"), "cert").unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "local_storage::helper_in_a_private_mount_namespace",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_ROOT, &root)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("LOCAL-STORAGE-OK"),
        "{text}"
    );
    // Nothing was mounted in the test's own namespace.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&root.display().to_string()), "{mounts}");
}

fn config(strategy: LocalStorageStrategy, disabled: Vec<DisabledMount>) -> NodeConfig {
    let mut c = NodeConfig::default();
    c.spec.instance.local_storage.strategy = Some(strategy);
    c.spec.instance.local_storage.disabled_mounts = disabled;
    c
}

fn mounted(dir: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    eks_node_agent::report::host::filesystem::parse_mounts(&mounts)
        .into_iter()
        .find(|m| Path::new(&m.mountpoint) == dir)
        .map(|m| format!("{} {}", m.device, m.fstype))
}

/// Runs in the private mount namespace the parent made (never on its own: it mounts).
#[test]
#[ignore = "a helper of local_storage_mounts_disks_and_moves_state_directories_for_real"]
fn helper_in_a_private_mount_namespace() {
    let Some(root) = std::env::var_os(HELPER_ROOT).map(PathBuf::from) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let host = HostFacts {
        instance_store_disks: eks_node_agent::facts::host::instance_store_disks(&root),
        md_array: eks_node_agent::facts::host::md_array(&root),
        ..HostFacts::default()
    };
    assert_eq!(host.instance_store_disks.len(), 1, "{host:?}");
    assert!(
        host.md_array
            .as_deref()
            .is_some_and(|a| a.starts_with("/dev/loop")),
        "{host:?}"
    );

    // Mount: the disk is formatted and mounted at <dir>/1; a second run changes nothing.
    let (spec, _) = eks_node_agent::compute::local_storage::local_storage(
        &config(LocalStorageStrategy::Mount, vec![]),
        &host,
    )
    .unwrap();
    let spec = spec.unwrap();
    let done = rt.block_on(setup(&root, &spec, None)).unwrap();
    assert!(done.iter().any(|d| d.starts_with("mkfs.xfs")), "{done:?}");
    let point = root.join("mnt/k8s-disks/1");
    assert!(
        mounted(&point).is_some_and(|m| m.ends_with(" xfs")),
        "{:?}",
        mounted(&point)
    );
    assert_eq!(
        rt.block_on(setup(&root, &spec, None)).unwrap(),
        Vec::<String>::new()
    );

    // RAID0 from the assembled array, SOCI kept on the root volume: formatted (-K), mounted at
    // <dir>/0, the state directories copied onto it and bind-mounted back.
    let (spec, _) = eks_node_agent::compute::local_storage::local_storage(
        &config(LocalStorageStrategy::Raid0, vec![DisabledMount::Soci]),
        &host,
    )
    .unwrap();
    let spec = spec.unwrap();
    let done = rt.block_on(setup(&root, &spec, None)).unwrap();
    assert!(
        done.iter().any(|d| d.starts_with("mkfs.xfs /dev/loop")),
        "{done:?}"
    );
    let array = root.join("mnt/k8s-disks/0");
    assert!(
        mounted(&array).is_some_and(|m| m.ends_with(" xfs")),
        "{done:?}"
    );
    for dir in ["var/lib/containerd", "var/log/pods", "var/lib/kubelet"] {
        assert!(
            mounted(&root.join(dir)).is_some(),
            "{dir} not bind-mounted: {done:?}"
        );
    }
    assert!(mounted(&root.join("var/lib/soci-snapshotter-grpc")).is_none());
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kubelet/pki/kubelet.crt")).unwrap(),
        "cert",
        "the kubelet's state moved with its directory"
    );
    assert_eq!(
        std::fs::read_to_string(array.join("kubelet/pki/kubelet.crt")).unwrap(),
        "cert"
    );
    // Writes through the bind mount land on the array.
    std::fs::write(root.join("var/log/pods/new"), "x").unwrap();
    assert!(array.join("pods/new").exists());
    assert_eq!(
        rt.block_on(setup(&root, &spec, None)).unwrap(),
        Vec::<String>::new()
    );

    // A reboot: the array stays, the mounts are gone. The kubelet rotated its certificate on
    // the array meanwhile; setting up again mounts it back without copying the root volume's
    // older directory over it.
    std::fs::write(root.join("var/lib/kubelet/pki/kubelet.crt"), "rotated").unwrap();
    for dir in [
        "var/lib/containerd",
        "var/log/pods",
        "var/lib/kubelet",
        "mnt/k8s-disks/0",
    ] {
        let ok = Command::new("umount")
            .arg(root.join(dir))
            .status()
            .unwrap()
            .success();
        assert!(ok, "umount {dir}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kubelet/pki/kubelet.crt")).unwrap(),
        "cert",
        "the root volume keeps the old copy"
    );
    let done = rt.block_on(setup(&root, &spec, None)).unwrap();
    assert!(!done.iter().any(|d| d.starts_with("mkfs")), "{done:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/kubelet/pki/kubelet.crt")).unwrap(),
        "rotated",
        "the array's directory is the kubelet's again: {done:?}"
    );
    println!("LOCAL-STORAGE-OK");
}
