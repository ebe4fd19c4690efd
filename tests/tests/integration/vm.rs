//! Instance-store disks in a real kernel: the .deb in a Debian VM (qemu, see
//! `eks_node_agent_tests::vm`) with NVMe disks, booted against the IMDS emulator and moto.
//! The disks are discoverable the way EC2 names them through a udev rule in the image (the
//! agent runs with its default pattern).
//!
//! Scenarios: RAID0 over 4 disks, a reboot (same array, same data) and a stop/start (blank
//! disks, a new array); RAID10 with a custom mountPath and `disabledMounts: [PodLogs]`; Mount
//! with `disabledMounts`; no disks; and the faults: a disk mkfs.xfs refuses, an array that
//! cannot be assembled. A host without root, qemu or mke2fs prints SKIPPED with the reason.

use std::path::Path;
use std::time::{Duration, Instant};

use eks_node_agent_tests::e2e::{note, skip_reason};
use eks_node_agent_tests::vm::{self, Boot, Vm, VmWorld};
use serde_json::Value;

use crate::agent_bin;

/// One qemu run (boots, probes, reboots) may take this long under TCG.
const RUN_BOUND: Duration = Duration::from_secs(900);
/// Size of a normal disk (XFS needs 300 MB).
const DISK_MIB: u64 = 512;
/// A disk mkfs.xfs refuses (below its 300 MB minimum).
const TINY_DISK_MIB: u64 = 64;
const SERIALS: [&str; 4] = [
    "AWS1F2E3D4C5B6A7981",
    "AWS1F2E3D4C5B6A7982",
    "AWS1F2E3D4C5B6A7983",
    "AWS1F2E3D4C5B6A7984",
];

fn skipped(test: &str) -> bool {
    match skip_reason(true, &vm::REQUIRED_TOOLS) {
        Some(r) => {
            note(&format!("SKIPPED vm::{test}: {r}"));
            true
        }
        None => false,
    }
}

fn world(local_storage: &str) -> VmWorld {
    VmWorld::start(local_storage, &agent_bin()).unwrap()
}

/// Runs `vm`, keeping its artifacts and failing with the reason when `check` fails.
struct Session {
    vm: Option<Vm>,
    ok: bool,
    _one_vm: std::sync::MutexGuard<'static, ()>,
}

impl Session {
    fn new(w: &VmWorld, actions: &[&str], disks: &[(&str, u64)]) -> Session {
        let one = vm::exclusive();
        Session {
            vm: Some(w.vm(actions, disks).unwrap()),
            ok: false,
            _one_vm: one,
        }
    }

    fn vm(&mut self) -> &mut Vm {
        self.vm.as_mut().unwrap()
    }

    fn run(&mut self, w: &VmWorld, boots: usize) -> Vec<Boot> {
        let got = self.vm().run(&w.forwards, RUN_BOUND).unwrap();
        assert_eq!(got.len(), boots, "boots reported: {got:#?}");
        got
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(vm) = self.vm.take()
            && (!self.ok || std::thread::panicking())
        {
            vm.keep_artifacts();
        }
    }
}

fn unit(boot: &Boot, id: &str) -> String {
    boot.text("units")
        .split("\n\n")
        .find(|b| b.contains(&format!("Id={id}")))
        .unwrap_or_default()
        .to_owned()
}

fn status_check(boot: &Boot, name: &str) -> Value {
    let v: Value = serde_json::from_str(boot.text("status")).unwrap_or(Value::Null);
    v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

fn record(boot: &Boot) -> Value {
    serde_json::from_str(boot.text("record")).unwrap_or(Value::Null)
}

fn md_detail(boot: &Boot, key: &str) -> String {
    boot.text("mddetail")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_owned()
}

/// `TARGET SOURCE FSTYPE FSROOT` lines of findmnt.
fn mount_of<'a>(boot: &'a Boot, target: &str) -> Option<Vec<&'a str>> {
    boot.text("findmnt")
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&target))
}

fn context(boot: &Boot) -> String {
    format!(
        "boot {} ({}):\n--- units\n{}\n--- record\n{}\n--- findmnt\n{}\n--- journal\n{}",
        boot.number,
        boot.state,
        boot.text("units"),
        boot.text("record"),
        boot.text("findmnt"),
        boot.text("journal")
    )
}

/// The node came up: both init phases succeeded, containerd and the kubelet run.
fn assert_node_up(boot: &Boot) {
    for u in [
        "eks-node-agent-init-config.service",
        "eks-node-agent-init.service",
    ] {
        assert!(
            unit(boot, u).contains("Result=success"),
            "{u}:\n{}",
            context(boot)
        );
    }
    for u in ["containerd.service", "kubelet.service"] {
        assert!(
            unit(boot, u).contains("ActiveState=active"),
            "{u}:\n{}",
            context(boot)
        );
    }
    assert_eq!(
        status_check(boot, "local-storage")["status"],
        "ok",
        "{}",
        boot.text("status")
    );
}

/// Phase 1 failed, the kubelet is not running, and `status` fails its local-storage check;
/// returns the check's evidence.
fn assert_setup_failed(boot: &Boot) -> String {
    assert!(
        unit(boot, "eks-node-agent-init-config.service").contains("Result=exit-code"),
        "{}",
        context(boot)
    );
    assert!(
        !unit(boot, "kubelet.service").contains("ActiveState=active"),
        "{}",
        context(boot)
    );
    let check = status_check(boot, "local-storage");
    assert_eq!(check["status"], "fail", "{check}");
    check["evidence"].as_str().unwrap_or_default().to_owned()
}

/// The array at `mount` with the state directories bound from it.
fn assert_array(boot: &Boot, level: &str, disks: usize, mount: &str, binds: &[&str], not: &[&str]) {
    assert_eq!(
        md_detail(boot, "MD_LEVEL"),
        level,
        "{}",
        boot.text("mddetail")
    );
    assert_eq!(md_detail(boot, "MD_DEVICES"), disks.to_string());
    assert!(md_detail(boot, "MD_NAME").ends_with(":kubernetes"));
    let array =
        mount_of(boot, mount).unwrap_or_else(|| panic!("{mount} not mounted:\n{}", context(boot)));
    assert_eq!(array[2], "xfs", "{array:?}");
    assert!(array[1].starts_with("/dev/md"), "{array:?}");
    for b in binds {
        let m =
            mount_of(boot, b).unwrap_or_else(|| panic!("{b} not bind-mounted:\n{}", context(boot)));
        let name = Path::new(b).file_name().unwrap().to_string_lossy();
        assert_eq!(m[1], format!("{}[/{name}]", array[1]), "{b}: {m:?}");
        assert_eq!(m[3], format!("/{name}"), "{b}: {m:?}");
    }
    for n in not {
        assert!(
            mount_of(boot, n).is_none(),
            "{n} is mounted but should not be:\n{}",
            boot.text("findmnt")
        );
    }
}

fn timing_note(test: &str, boot: &Boot) {
    note(&format!(
        "vm::{test} boot {}: init phases {}\n--- systemd-analyze critical-chain\n{}--- systemd-analyze time\n{}--- blame (top)\n{}",
        boot.number,
        boot.text("phases").trim(),
        boot.text("critical"),
        boot.text("time"),
        boot.text("blame")
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    ));
}

fn disks(n: usize) -> Vec<(&'static str, u64)> {
    SERIALS[..n].iter().map(|s| (*s, DISK_MIB)).collect()
}

#[test]
fn vm_raid0_survives_reboot_and_stop_start_gets_a_new_array() {
    let test = "vm_raid0_survives_reboot_and_stop_start_gets_a_new_array";
    if skipped(test) {
        return;
    }
    let started = Instant::now();
    let w = world("      strategy: RAID0\n");
    let mut s = Session::new(&w, &["mark-reboot", "poweroff", "poweroff"], &disks(4));
    let boots = s.run(&w, 2);
    let (first, second) = (&boots[0], &boots[1]);
    timing_note(test, first);

    // Boot 1: a new RAID0 over the 4 disks, XFS, mounted, the state directories bound.
    assert_node_up(first);
    assert_eq!(first.state, "running", "{}", context(first));
    let binds = [
        "/var/lib/containerd",
        "/var/log/pods",
        "/var/lib/kubelet",
        "/var/lib/soci-snapshotter-grpc",
    ];
    assert_array(first, "raid0", 4, "/mnt/k8s-disks/0", &binds, &[]);
    assert!(
        first.text("mdstat").contains("active raid0"),
        "{}",
        first.text("mdstat")
    );
    let done = record(first)["done"].to_string();
    assert!(done.contains("mdadm --create"), "{done}");
    assert!(done.contains("mkfs.xfs"), "{done}");
    // containerd's state is on the array (its metadata database is there), and a file
    // written under /var/lib/containerd landed on the array.
    assert!(
        first
            .text("containerdroot")
            .contains("root = \"/var/lib/containerd\"")
            && first
                .text("containerdroot")
                .contains("io.containerd.metadata.v1.bolt"),
        "{}",
        first.text("containerdroot")
    );
    assert!(
        first.text("marker").contains("written at boot 1"),
        "{}",
        first.text("marker")
    );
    assert_eq!(first.rc("marker"), 0, "{}", first.text("marker"));
    // The mount units and drop-ins exist and are loaded after the reboot.
    let uuid = md_detail(first, "MD_UUID");

    // Boot 2 (reboot): the same array, assembled (never re-created), the data still there.
    assert_node_up(second);
    assert_array(second, "raid0", 4, "/mnt/k8s-disks/0", &binds, &[]);
    assert_eq!(
        md_detail(second, "MD_UUID"),
        uuid,
        "a different array after the reboot"
    );
    let done = record(second)["done"].to_string();
    assert!(
        !done.contains("mdadm --create") && !done.contains("mkfs.xfs"),
        "re-created: {done}"
    );
    assert!(
        second.text("marker").contains("written at boot 1"),
        "{}",
        second.text("marker")
    );
    assert!(
        second
            .text("mountunits")
            .contains("var-lib-containerd.mount"),
        "{}",
        second.text("mountunits")
    );

    // Stop and start: a blank instance store. A new array (with the identity the mount
    // units name), empty: the marker is gone.
    s.vm().blank_disks(&disks(4)).unwrap();
    let third = s.run(&w, 1).remove(0);
    assert_node_up(&third);
    assert_array(&third, "raid0", 4, "/mnt/k8s-disks/0", &binds, &[]);
    let done = record(&third)["done"].to_string();
    assert!(done.contains("mdadm --create"), "{done}");
    assert_eq!(md_detail(&third, "MD_UUID"), uuid);
    assert_ne!(
        third.rc("marker"),
        0,
        "the blank disks still hold the marker: {}",
        third.text("marker")
    );
    s.ok = true;
    note(&format!(
        "vm::{test}: {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        s.vm().accel()
    ));
}

#[test]
fn vm_raid10_with_custom_mount_path_and_pod_logs_kept() {
    let test = "vm_raid10_with_custom_mount_path_and_pod_logs_kept";
    if skipped(test) {
        return;
    }
    let started = Instant::now();
    let w = world(
        "      strategy: RAID10\n      mountPath: /data/instance-store\n      disabledMounts: [PodLogs]\n",
    );
    let mut s = Session::new(&w, &["poweroff"], &disks(4));
    let boot = s.run(&w, 1).remove(0);
    assert_node_up(&boot);
    assert_array(
        &boot,
        "raid10",
        4,
        "/data/instance-store/0",
        &["/var/lib/containerd", "/var/lib/kubelet"],
        &["/var/log/pods"],
    );
    s.ok = true;
    note(&format!(
        "vm::{test}: {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn vm_mount_formats_each_disk_and_binds_nothing() {
    let test = "vm_mount_formats_each_disk_and_binds_nothing";
    if skipped(test) {
        return;
    }
    let started = Instant::now();
    let w = world("      strategy: Mount\n      disabledMounts: [Containerd]\n");
    let mut s = Session::new(&w, &["poweroff"], &disks(3));
    let boot = s.run(&w, 1).remove(0);
    assert_node_up(&boot);
    for i in 1..=3 {
        let m = mount_of(&boot, &format!("/mnt/k8s-disks/{i}"))
            .unwrap_or_else(|| panic!("disk {i} not mounted:\n{}", context(&boot)));
        assert_eq!(m[2], "xfs");
        assert!(m[1].starts_with("/dev/nvme"), "{m:?}");
    }
    for n in ["/var/lib/containerd", "/var/lib/kubelet", "/var/log/pods"] {
        assert!(
            mount_of(&boot, n).is_none(),
            "{n} is a mount:\n{}",
            boot.text("findmnt")
        );
    }
    assert!(
        boot.text("mdstat").lines().all(|l| !l.starts_with("md")),
        "{}",
        boot.text("mdstat")
    );
    s.ok = true;
    note(&format!(
        "vm::{test}: {:.1}s",
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn vm_no_disks_is_a_warning_and_changes_nothing() {
    let test = "vm_no_disks_is_a_warning_and_changes_nothing";
    if skipped(test) {
        return;
    }
    let w = world("      strategy: RAID0\n");
    let mut s = Session::new(&w, &["poweroff"], &[]);
    let boot = s.run(&w, 1).remove(0);
    timing_note(test, &boot);
    for u in [
        "eks-node-agent-init-config.service",
        "eks-node-agent-init.service",
    ] {
        assert!(
            unit(&boot, u).contains("Result=success"),
            "{u}:\n{}",
            context(&boot)
        );
    }
    assert!(
        unit(&boot, "kubelet.service").contains("ActiveState=active"),
        "{}",
        context(&boot)
    );
    let check = status_check(&boot, "local-storage");
    assert_eq!(check["status"], "warn", "{check}");
    assert!(
        check["evidence"]
            .as_str()
            .unwrap_or_default()
            .contains("no instance-store disk"),
        "{check}"
    );
    assert!(
        boot.text("journal")
            .contains("no instance-store disk matched"),
        "{}",
        boot.text("journal")
    );
    assert!(mount_of(&boot, "/var/lib/kubelet").is_none());
    s.ok = true;
}

#[test]
fn vm_a_disk_mkfs_refuses_leaves_kubelet_stopped_and_status_names_it() {
    let test = "vm_a_disk_mkfs_refuses_leaves_kubelet_stopped_and_status_names_it";
    if skipped(test) {
        return;
    }
    let w = world("      strategy: Mount\n");
    let mut s = Session::new(
        &w,
        &["poweroff"],
        &[(SERIALS[0], DISK_MIB), (SERIALS[1], TINY_DISK_MIB)],
    );
    let boot = s.run(&w, 1).remove(0);
    let evidence = assert_setup_failed(&boot);
    assert!(
        evidence.contains("mkfs.xfs") && evidence.contains("/dev/nvme"),
        "{evidence}"
    );
    assert!(
        boot.text("journal").contains("mkfs.xfs"),
        "{}",
        boot.text("journal")
    );
    s.ok = true;
}

#[test]
fn vm_an_array_that_cannot_assemble_leaves_kubelet_stopped_and_status_names_it() {
    let test = "vm_an_array_that_cannot_assemble_leaves_kubelet_stopped_and_status_names_it";
    if skipped(test) {
        return;
    }
    let w = world("      strategy: RAID0\n");
    let mut s = Session::new(&w, &["poweroff", "poweroff"], &disks(4));
    let first = s.run(&w, 1).remove(0);
    assert_node_up(&first);
    // A member disappears (its slot comes back blank).
    s.vm().replace_disk(2, DISK_MIB).unwrap();
    let boot = s.run(&w, 1).remove(0);
    let evidence = assert_setup_failed(&boot);
    assert!(
        evidence.contains("mdadm --assemble") && evidence.contains("/dev/nvme"),
        "{evidence}"
    );
    assert!(evidence.contains("3 of its 4"), "{evidence}");
    s.ok = true;
}
