//! The VM end-to-end harness: a real Debian kernel booted in qemu, for what `systemd-nspawn`
//! cannot show (it shares this machine's kernel): block devices, md arrays, XFS, mounts and
//! the boot order of real mount units.
//!
//! - The image: the debootstrapped rootfs the nspawn e2e caches ([`crate::e2e::cached_rootfs`]),
//!   plus Debian's `linux-image-cloud-amd64` with its initramfs (the cloud kernel has NVMe
//!   built in; md, raid0, raid10, xfs and virtio are modules, loaded from the initramfs and the
//!   root), `mdadm`, `xfsprogs` and `udev`, installed with apt in a chroot; cached under
//!   `<target>/e2e-cache/vm-*` like the rootfs.
//! - Per boot: an overlay of the image with the package under test installed (`dpkg -i` in a
//!   chroot) and the test's files, packed into a sparse ext4 image (`mke2fs -d`) that is the
//!   VM's root disk on virtio; N sparse files as NVMe disks (`-device nvme`).
//! - The disks are named as EC2 names them: the image carries a udev rule that adds
//!   `/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_<serial>` for qemu's NVMe
//!   controllers, so the agent runs with its default discovery pattern.
//! - Networking: qemu user networking with `restrict=on` (the guest reaches nothing but the
//!   `guestfwd` endpoints); each forward maps a guest address to a peer of the test on the
//!   host's 127.0.0.1 (the IMDS emulator, moto) through one `socat` per connection. Nothing
//!   leaves the machine.
//! - Acceleration: KVM when a short probe boot shows the kernel running under it, else TCG
//!   (software emulation); `EKS_AGENT_VM_ACCEL=kvm|tcg` decides instead.
//! - Driving: a probe unit in the image waits for the end of boot, prints what the test checks
//!   between `@@begin NAME` / `@@end NAME RC` lines on the second serial port (a file on the
//!   host), then reboots or powers off as the test's action list says. The first serial port
//!   is the console log, kept as an artifact when a test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use eks_node_agent::model::text;
use sha2::{Digest, Sha256};

use crate::e2e::{self, Overlay, run_ok, which};
use crate::imds::{ImdsEmulator, RoleCredentials};
use crate::moto::Moto;

/// Debian packages added to the nspawn rootfs for the VM image.
pub const VM_PACKAGES: [&str; 6] = [
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "mdadm",
    "xfsprogs",
    "udev",
    "kmod",
];
/// Host programs the harness needs (it also needs root).
pub const REQUIRED_TOOLS: [&str; 7] = [
    "qemu-system-x86_64",
    "mke2fs",
    "socat",
    "debootstrap",
    "chroot",
    "mount",
    "dpkg-deb",
];
/// Overrides the accelerator choice: `kvm` or `tcg`.
pub const ACCEL_ENV: &str = "EKS_AGENT_VM_ACCEL";
/// Bound on installing the VM packages (cold cache).
const IMAGE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Bound on the KVM probe boot.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Size of the root disk image (sparse).
const ROOT_IMAGE_SIZE: &str = "4G";
/// Guest memory, MiB.
const GUEST_MEMORY_MIB: u32 = 1536;
/// The guest address the forwards listen on (inside qemu's user network 10.0.2.0/24).
pub const GUEST_PEER_ADDR: &str = "10.0.2.100";

/// The udev rule that names qemu's NVMe disks as EC2 names its instance-store disks.
pub const EC2_NAMING_RULE: &str = "# e2e: qemu's NVMe controllers named as EC2 names instance-store disks\n\
ACTION!=\"remove\", SUBSYSTEM==\"block\", KERNEL==\"nvme*n*\", ENV{DEVTYPE}==\"disk\", ATTRS{model}==\"QEMU NVMe Ctrl*\", ENV{ID_SERIAL_SHORT}==\"?*\", SYMLINK+=\"disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_$env{ID_SERIAL_SHORT}\"\n";

/// The probe: waits for the end of boot, prints the sections, then runs this boot's action.
pub const PROBE_SCRIPT: &str = r#"#!/bin/sh
# e2e probe (VM harness): reports on the second serial port, then reboots or powers off.
exec >/dev/ttyS1 2>&1
state=$(timeout 900 systemctl is-system-running --wait)
mkdir -p /var/lib/e2e
n=$(( $(cat /var/lib/e2e/boot 2>/dev/null || echo 0) + 1 ))
echo "$n" > /var/lib/e2e/boot
action=$(sed -n "${n}p" /var/lib/e2e/actions)
echo "@@boot $n $state $action"
case "$action" in
  mark*) echo "written at boot $n" > /var/lib/containerd/e2e-marker; sync ;;
esac
sec() { name=$1; shift; echo "@@begin $name"; "$@" 2>&1; rc=$?; echo; echo "@@end $name $rc"; }
sec mdstat cat /proc/mdstat
sec findmnt findmnt -rn -o TARGET,SOURCE,FSTYPE,FSROOT
sec lsblk lsblk -rn -o NAME,TYPE,FSTYPE,UUID,SIZE,MOUNTPOINT
sec byid ls /dev/disk/by-id
sec mddetail sh -c 'for d in /dev/md[0-9]*; do [ -b "$d" ] && mdadm --detail --export "$d"; done; true'
sec units systemctl show -p Id -p ActiveState -p Result -p ExecMainStatus eks-node-agent-init-config.service eks-node-agent-init.service containerd.service kubelet.service
sec mountunits sh -c 'systemctl list-units --all --no-legend --plain -t mount | grep -E "k8s|var-lib|var-log" ; true'
sec record cat /run/eks-node-agent/local-storage.json
sec phases cat /run/eks-node-agent/init-phases.json
sec status sh -c 'set -a; . /etc/default/eks-node-agent; exec eks-node-agent status --output json --timeout 5 2>/dev/null' 
sec containerdroot sh -c 'containerd config dump 2>/dev/null | grep -E "^(root|state) "; ls /var/lib/containerd'
sec marker sh -c 'cat /var/lib/containerd/e2e-marker; ls -la /mnt/k8s-disks/0/containerd/e2e-marker'
sec critical sh -c 'systemctl is-active -q kubelet.service && systemd-analyze critical-chain --no-pager kubelet.service || systemd-analyze critical-chain --no-pager containerd.service'
sec blame systemd-analyze blame --no-pager
sec time systemd-analyze time
sec journal journalctl -b --no-pager -o short-monotonic -u eks-node-agent-init-config -u eks-node-agent-init -u 'var-lib-*.mount' -u 'mnt-*.mount'
echo "@@action $action"
sync
case "$action" in
  *reboot) systemctl reboot ;;
  *) systemctl poweroff ;;
esac
"#;

/// The unit that runs the probe (Type=simple: the boot does not wait for it).
pub const PROBE_UNIT: &str = "[Unit]\nDescription=e2e probe (VM harness)\nAfter=multi-user.target\n\n[Service]\nType=simple\nExecStart=/usr/local/sbin/e2e-probe\n\n[Install]\nWantedBy=multi-user.target\n";

/// The cached VM image.
#[derive(Debug, Clone)]
pub struct VmImage {
    /// The root filesystem tree.
    pub rootfs: PathBuf,
    /// The kernel.
    pub kernel: PathBuf,
    /// Its initramfs.
    pub initrd: PathBuf,
}

/// Cache key: the nspawn rootfs's key and the VM packages.
pub fn image_key() -> String {
    let spec = format!("{}\n{}\n", e2e::rootfs_key(), VM_PACKAGES.join(","));
    hex::encode(Sha256::digest(spec.as_bytes()))[..16].to_string()
}

/// Unmounts on drop (chroot bind mounts).
struct Mounted(Vec<PathBuf>);

impl Drop for Mounted {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let ok = Command::new("umount")
                .arg(p)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

fn find_boot_file(rootfs: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(rootfs.join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found.pop()
}

/// The VM image, built on first use (concurrent callers wait); a partial build is never used.
pub fn cached_image(target: &Path) -> Result<VmImage, String> {
    static IMAGE: OnceLock<Result<VmImage, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let base = e2e::cached_rootfs(target)?;
            let cache = base
                .parent()
                .and_then(Path::parent)
                .ok_or("rootfs cache has no parent")?
                .to_path_buf();
            let dir = cache.join(format!("vm-debian-{}-{}", e2e::SUITE, image_key()));
            let rootfs = dir.join("rootfs");
            let done = |rootfs: &Path| -> Option<VmImage> {
                Some(VmImage {
                    kernel: find_boot_file(rootfs, "vmlinuz-")?,
                    initrd: find_boot_file(rootfs, "initrd.img-")?,
                    rootfs: rootfs.to_path_buf(),
                })
            };
            if let Some(img) = done(&rootfs) {
                return Ok(img);
            }
            let started = Instant::now();
            let partial = dir.join("rootfs.partial");
            let _ = std::fs::remove_dir_all(&partial);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            run_ok(
                Command::new("cp")
                    .args(["-a", "--reflink=auto"])
                    .arg(&base)
                    .arg(&partial),
                IMAGE_TIMEOUT,
            )?;
            {
                let mut mounted = Mounted(Vec::new());
                for (fs, what, at, bind) in [
                    ("proc", "proc", "proc", false),
                    ("sysfs", "sysfs", "sys", false),
                    ("", "/dev", "dev", true),
                ] {
                    let at = partial.join(at);
                    let mut cmd = Command::new("mount");
                    if bind {
                        cmd.arg("--bind").arg(what).arg(&at);
                    } else {
                        cmd.args(["-t", fs, what]).arg(&at);
                    }
                    run_ok(&mut cmd, e2e::EXEC_TIMEOUT)?;
                    mounted.0.push(at);
                }
                // No service starts inside the chroot.
                let policy = partial.join("usr/sbin/policy-rc.d");
                std::fs::write(&policy, "#!/bin/sh\nexit 101\n").map_err(|e| e.to_string())?;
                run_ok(
                    Command::new("chmod").arg("0755").arg(&policy),
                    e2e::EXEC_TIMEOUT,
                )?;
                run_ok(
                    Command::new("chroot")
                        .arg(&partial)
                        .args(["apt-get", "update", "-qq"]),
                    IMAGE_TIMEOUT,
                )?;
                run_ok(
                    Command::new("chroot")
                        .arg(&partial)
                        .args(["apt-get", "install", "-y", "-qq", "--no-install-recommends"])
                        .args(VM_PACKAGES)
                        .env("DEBIAN_FRONTEND", "noninteractive"),
                    IMAGE_TIMEOUT,
                )?;
                let _ = std::fs::remove_file(&policy);
            }
            let _ = std::fs::remove_dir_all(partial.join("var/cache/apt/archives"));
            // The guest's network: DHCP on qemu's user network, through systemd-networkd.
            let write = |rel: &str, text: &str| -> Result<(), String> {
                let p = partial.join(rel);
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
                }
                std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
            };
            write(
                "etc/systemd/network/10-e2e.network",
                "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n",
            )?;
            for (unit, wants) in [
                ("systemd-networkd.service", "multi-user.target.wants"),
                ("systemd-networkd.socket", "sockets.target.wants"),
                (
                    "systemd-networkd-wait-online.service",
                    "network-online.target.wants",
                ),
            ] {
                let link = partial.join("etc/systemd/system").join(wants).join(unit);
                if let Some(d) = link.parent() {
                    std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
                }
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(format!("/lib/systemd/system/{unit}"), &link)
                    .map_err(|e| e.to_string())?;
            }
            write("etc/hostname", "e2e-vm\n")?;
            std::fs::rename(&partial, &rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
            e2e::note(&format!(
                "vm: image with {} built in {:.1}s (cached in {})",
                VM_PACKAGES.join(","),
                started.elapsed().as_secs_f64(),
                rootfs.display()
            ));
            done(&rootfs).ok_or_else(|| format!("no kernel or initrd in {}/boot", rootfs.display()))
        })
        .clone()
}

/// Which accelerator qemu uses here: KVM if a probe boot shows the kernel running under it
/// within [`KVM_PROBE_TIMEOUT`], else TCG. Decided once per process.
pub fn accel(image: &VmImage) -> &'static str {
    static ACCEL: OnceLock<&'static str> = OnceLock::new();
    ACCEL.get_or_init(|| {
        match std::env::var(ACCEL_ENV).as_deref() {
            Ok("kvm") => return "kvm",
            Ok("tcg") => return "tcg",
            _ => {}
        }
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_err()
        {
            e2e::note("vm: /dev/kvm is not usable: TCG");
            return "tcg";
        }
        let Ok(tmp) = tempfile::tempdir() else {
            return "tcg";
        };
        let log = tmp.path().join("kvm-probe.log");
        // No init in the initramfs path given: the kernel panics once it is fully up, which
        // is all the probe needs to see (panic=-1 and -no-reboot end qemu right then).
        let out = e2e::run_bounded(
            Command::new("qemu-system-x86_64")
                .args([
                    "-machine",
                    "q35",
                    "-accel",
                    "kvm",
                    "-cpu",
                    "host,-arch-capabilities",
                ])
                .args(["-m", "512", "-smp", "1", "-display", "none", "-nodefaults"])
                .args(["-no-user-config", "-no-reboot"])
                .arg("-kernel")
                .arg(&image.kernel)
                .arg("-initrd")
                .arg(&image.initrd)
                .args(["-append", "console=ttyS0 panic=-1 rdinit=/e2e-no-such-init"])
                .arg("-serial")
                .arg(format!("file:{}", log.display())),
            KVM_PROBE_TIMEOUT,
        );
        let console = std::fs::read_to_string(&log).unwrap_or_default();
        let ok = console.contains("Kernel panic") || console.contains("Run /");
        e2e::note(&format!(
            "vm: KVM probe {} ({}); using {}",
            if ok { "booted" } else { "failed" },
            match &out {
                Ok(o) => format!("qemu {}", o.status),
                Err(e) => e.lines().next().unwrap_or_default().to_owned(),
            },
            if ok {
                "KVM"
            } else {
                "TCG (software emulation)"
            }
        ));
        if ok { "kvm" } else { "tcg" }
    })
}

/// A forward: the guest connects to `GUEST_PEER_ADDR:guest_port`, qemu connects to
/// `127.0.0.1:host_port` on the host.
#[derive(Debug, Clone, Copy)]
pub struct Forward {
    /// Port inside the guest.
    pub guest_port: u16,
    /// Port of the peer on the host's loopback.
    pub host_port: u16,
}

/// One file to put into the guest's root.
#[derive(Debug, Clone)]
pub struct GuestFile {
    /// Absolute path inside the guest.
    pub path: String,
    /// Contents.
    pub contents: Vec<u8>,
    /// Mode.
    pub mode: u32,
}

impl GuestFile {
    /// A file with `mode`.
    pub fn new(path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> GuestFile {
        GuestFile {
            path: path.into(),
            contents: contents.into(),
            mode,
        }
    }
}

/// A VM: its root disk, its NVMe disks, its logs. Files live in a scratch directory kept (and
/// named on stderr) when the test fails.
#[derive(Debug)]
pub struct Vm {
    scratch: tempfile::TempDir,
    image: VmImage,
    accel: &'static str,
    root: PathBuf,
    disks: Vec<(String, PathBuf)>,
    boots: u32,
}

/// Everything the probe printed at one boot.
#[derive(Debug, Clone, Default)]
pub struct Boot {
    /// 1-based boot number (counted on the root disk, so across qemu runs).
    pub number: u32,
    /// `systemctl is-system-running --wait`.
    pub state: String,
    /// The action the probe ran after reporting.
    pub action: String,
    /// Each section's text and exit code.
    pub sections: BTreeMap<String, (String, i32)>,
}

impl Boot {
    /// A section's text ("" when absent).
    pub fn text(&self, name: &str) -> &str {
        self.sections.get(name).map_or("", |(t, _)| t.as_str())
    }

    /// A section's exit code (-1 when absent).
    pub fn rc(&self, name: &str) -> i32 {
        self.sections.get(name).map_or(-1, |(_, rc)| *rc)
    }
}

/// Parses the probe's output into boots.
pub fn parse_probe(text: &str) -> Vec<Boot> {
    let mut boots = Vec::new();
    let mut cur: Option<Boot> = None;
    let mut section: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("@@boot ") {
            if let Some(b) = cur.take() {
                boots.push(b);
            }
            let mut f = rest.split_whitespace();
            cur = Some(Boot {
                number: f.next().and_then(|n| n.parse().ok()).unwrap_or(0),
                state: f.next().unwrap_or_default().to_owned(),
                action: f.next().unwrap_or_default().to_owned(),
                ..Boot::default()
            });
        } else if let Some(name) = line.strip_prefix("@@begin ") {
            section = Some((name.to_owned(), String::new()));
        } else if let Some(rest) = line.strip_prefix("@@end ") {
            if let (Some((name, text)), Some(b)) = (section.take(), cur.as_mut()) {
                let rc = rest
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(-1);
                b.sections.insert(name, (text, rc));
            }
        } else if let Some((_, text)) = section.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some(b) = cur {
        boots.push(b);
    }
    boots
}

/// The IMDS endpoint's port inside the guest.
pub const IMDS_PORT: u16 = 1338;
/// moto's port inside the guest.
pub const MOTO_PORT: u16 = 5000;
/// The IMDS emulator's latency.
pub const IMDS_LATENCY: Duration = Duration::from_millis(1);

/// The peers of a VM test (moto with the instance; the IMDS emulator, 1 ms per answer, serving
/// a NodeConfig with the given `localStorage` body as user data), the image and the package.
#[derive(Debug)]
pub struct VmWorld {
    _moto: Moto,
    /// The emulator (tests may change its answers).
    pub imds: ImdsEmulator,
    /// The guest's forwards to them.
    pub forwards: Vec<Forward>,
    /// The cached image.
    pub image: VmImage,
    /// The .deb under test.
    pub deb: PathBuf,
    /// Where the VMs' scratch directories go.
    pub scratch: PathBuf,
}

impl VmWorld {
    /// Starts the peers for the package of `agent_bin` (built on first use).
    pub fn start(local_storage: &str, agent_bin: &Path) -> Result<VmWorld, String> {
        let target = e2e::target_dir(agent_bin);
        let image = cached_image(&target)?;
        let deb = e2e::packages(agent_bin)?.deb;
        let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        let moto = Moto::start();
        let mut w = rt.block_on(crate::aws_world::run_instance(
            &moto.endpoint(),
            "m5d.2xlarge",
        ));
        let now = time::OffsetDateTime::now_utc();
        w.instance.credentials = Some(RoleCredentials {
            role: "EksNodeRole".into(),
            access_key_id: "ASIAVME2EROLEEXAMPLE".into(),
            secret_access_key: "vmE2eRoleSecretKey0123456789abcdefghijklm".into(),
            token: "IQoJb3JpZ2luX2VjVMSessionToken".into(),
            expiration: text::rfc3339(now + time::Duration::hours(6)),
            last_updated: text::rfc3339(now),
        });
        let user_data = format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: vm-cluster\n    apiServerEndpoint: https://ABCDEF0123456789.gr7.us-west-2.eks.amazonaws.com\n    certificateAuthority: {}\n    cidr: 172.20.0.0/16\n  instance:\n    localStorage:\n{local_storage}",
            crate::test_ca_b64()
        );
        w.instance.user_data = Some(user_data.into_bytes());
        let imds = ImdsEmulator::start(w.instance.clone());
        imds.set_delay(IMDS_LATENCY);
        let forwards = vec![
            Forward {
                guest_port: IMDS_PORT,
                host_port: imds.addr().port(),
            },
            Forward {
                guest_port: MOTO_PORT,
                host_port: moto.port(),
            },
        ];
        Ok(VmWorld {
            _moto: moto,
            imds,
            forwards,
            image,
            deb,
            scratch: target.join("e2e-scratch"),
        })
    }

    /// A VM of this world with `actions` (one per boot) and blank disks `(serial, MiB)`.
    pub fn vm(&self, actions: &[&str], disks: &[(&str, u64)]) -> Result<Vm, String> {
        let mut vm = Vm::new(
            &self.image,
            &self.scratch,
            &self.deb,
            &guest_files(),
            actions,
        )?;
        vm.blank_disks(disks)?;
        Ok(vm)
    }
}

/// The guest's environment for the agent's units (the peers through the forwards), the
/// kubelet stand-in, and br_netfilter at boot.
pub fn guest_files() -> Vec<GuestFile> {
    let peer = GUEST_PEER_ADDR;
    let env = format!(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{peer}:{IMDS_PORT}\n\
         AWS_ENDPOINT_URL_EC2=http://{peer}:{MOTO_PORT}\n\
         AWS_ENDPOINT_URL_EKS=http://{peer}:{MOTO_PORT}\n\
         AWS_ENDPOINT_URL_STS=http://{peer}:{MOTO_PORT}\n\
         EKS_NODE_AGENT_RUN_ARGS=--no-kubernetes\n"
    );
    vec![
        GuestFile::new("/etc/default/eks-node-agent", env, 0o644),
        GuestFile::new("/usr/bin/kubelet", crate::e2e::KUBELET_STAND_IN, 0o755),
        // br_netfilter is loaded at boot, as on hosts prepared for Kubernetes: init sets
        // net.bridge.* sysctls in its first phase, before the modules-load.d file it writes
        // takes effect (a fresh Debian host fails there without it).
        GuestFile::new(
            "/etc/modules-load.d/e2e-br_netfilter.conf",
            "br_netfilter\n",
            0o644,
        ),
    ]
}

/// One VM at a time: TCG guests are CPU-bound, each root disk takes close to a GiB, and this
/// machine is shared. A test holds the guard from building its VM to dropping it.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

impl Vm {
    /// Builds the root disk: an overlay of the image, the .deb installed, `files` written, the
    /// probe and the EC2 naming rule added, `actions` (one per boot: `reboot`, `mark-reboot`,
    /// `poweroff`), all packed into a sparse ext4 image.
    pub fn new(
        image: &VmImage,
        scratch_parent: &Path,
        deb: &Path,
        files: &[GuestFile],
        actions: &[&str],
    ) -> Result<Vm, String> {
        let accel = accel(image);
        std::fs::create_dir_all(scratch_parent).map_err(|e| e.to_string())?;
        let scratch = tempfile::Builder::new()
            .prefix("vm-")
            .tempdir_in(scratch_parent)
            .map_err(|e| e.to_string())?;
        let overlay = Overlay::mount(&image.rootfs, scratch.path())?;
        overlay.write(
            "/var/cache/e2e/eks-node-agent.deb",
            &std::fs::read(deb).map_err(|e| e.to_string())?,
            0o644,
        )?;
        run_ok(
            Command::new("chroot").arg(overlay.root()).args([
                "dpkg",
                "-i",
                "/var/cache/e2e/eks-node-agent.deb",
            ]),
            e2e::EXEC_TIMEOUT,
        )?;
        overlay.write(
            "/etc/udev/rules.d/61-e2e-ec2-instance-store.rules",
            EC2_NAMING_RULE.as_bytes(),
            0o644,
        )?;
        overlay.write("/usr/local/sbin/e2e-probe", PROBE_SCRIPT.as_bytes(), 0o755)?;
        overlay.write(
            "/etc/systemd/system/e2e-probe.service",
            PROBE_UNIT.as_bytes(),
            0o644,
        )?;
        let wants = overlay.path("/etc/systemd/system/multi-user.target.wants/e2e-probe.service");
        std::os::unix::fs::symlink("/etc/systemd/system/e2e-probe.service", &wants)
            .map_err(|e| e.to_string())?;
        overlay.write(
            "/var/lib/e2e/actions",
            format!("{}\n", actions.join("\n")).as_bytes(),
            0o644,
        )?;
        for f in files {
            overlay.write(&f.path, &f.contents, f.mode)?;
        }
        let root = scratch.path().join("root.img");
        run_ok(
            Command::new(which("mke2fs").ok_or("mke2fs is missing")?)
                .args(["-q", "-t", "ext4", "-L", "root", "-d"])
                .arg(overlay.root())
                .arg(&root)
                .arg(ROOT_IMAGE_SIZE),
            e2e::EXEC_TIMEOUT,
        )?;
        drop(overlay);
        Ok(Vm {
            scratch,
            image: image.clone(),
            accel,
            root,
            disks: Vec::new(),
            boots: 0,
        })
    }

    /// The accelerator in use.
    pub fn accel(&self) -> &'static str {
        self.accel
    }

    /// Replaces the NVMe disks with fresh blank ones (`(serial, size in MiB)`): a new instance
    /// store, as after a stop and start.
    pub fn blank_disks(&mut self, disks: &[(&str, u64)]) -> Result<(), String> {
        for (_, p) in self.disks.drain(..) {
            let _ = std::fs::remove_file(p);
        }
        for (i, (serial, mib)) in disks.iter().enumerate() {
            let p = self.scratch.path().join(format!("nvme{i}.img"));
            let f = std::fs::File::create(&p).map_err(|e| e.to_string())?;
            f.set_len(mib * 1024 * 1024).map_err(|e| e.to_string())?;
            self.disks.push(((*serial).to_owned(), p));
        }
        Ok(())
    }

    /// Replaces disk `index` with a blank one of `mib` MiB (a disk that disappeared and came
    /// back empty).
    pub fn replace_disk(&mut self, index: usize, mib: u64) -> Result<(), String> {
        let (_, p) = self.disks.get(index).ok_or("no such disk")?;
        let f = std::fs::File::create(p).map_err(|e| e.to_string())?;
        f.set_len(mib * 1024 * 1024).map_err(|e| e.to_string())
    }

    /// The console log of run `n` (1-based).
    pub fn console_path(&self, run: u32) -> PathBuf {
        self.scratch.path().join(format!("console-{run}.log"))
    }

    /// Boots the VM and waits (at most `bound`) for qemu to exit (the probe powers it off,
    /// after any reboots it was told to do); returns the boots the probe reported.
    pub fn run(&mut self, forwards: &[Forward], bound: Duration) -> Result<Vec<Boot>, String> {
        self.boots += 1;
        let console = self.console_path(self.boots);
        let probe = self
            .scratch
            .path()
            .join(format!("probe-{}.log", self.boots));
        let mut net = String::from("user,id=n0,restrict=on");
        for f in forwards {
            // `cmd:` runs one socat per guest connection (a `tcp:` target would be one
            // connection for the whole life of the VM).
            net.push_str(&format!(
                ",guestfwd=tcp:{GUEST_PEER_ADDR}:{}-cmd:socat - TCP:127.0.0.1:{}",
                f.guest_port, f.host_port
            ));
        }
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-accel", self.accel]);
        if self.accel == "kvm" {
            cmd.args(["-cpu", "host,-arch-capabilities", "-smp", "2"]);
        } else {
            cmd.args(["-cpu", "max", "-smp", "1"]);
        }
        cmd.args(["-m", &GUEST_MEMORY_MIB.to_string()])
            .args(["-display", "none", "-nodefaults", "-no-user-config"])
            .arg("-kernel")
            .arg(&self.image.kernel)
            .arg("-initrd")
            .arg(&self.image.initrd)
            .args([
                "-append",
                "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=0 net.ifnames=1",
            ])
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=raw", self.root.display()))
            .args(["-netdev", &net, "-device", "virtio-net-pci,netdev=n0"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-serial")
            .arg(format!("file:{}", probe.display()));
        for (i, (serial, p)) in self.disks.iter().enumerate() {
            cmd.arg("-drive")
                .arg(format!("file={},if=none,id=nvm{i},format=raw", p.display()))
                .arg("-device")
                .arg(format!("nvme,serial={serial},drive=nvm{i}"));
        }
        let started = Instant::now();
        let out = e2e::run_bounded(&mut cmd, bound);
        let text = std::fs::read_to_string(&probe).unwrap_or_default();
        let boots = parse_probe(&text);
        e2e::note(&format!(
            "vm: run {} ({}) ended after {:.1}s with {} boot(s) reported",
            self.boots,
            self.accel,
            started.elapsed().as_secs_f64(),
            boots.len()
        ));
        match out {
            Ok(o) if o.status.success() => Ok(boots),
            Ok(o) => Err(format!(
                "qemu exited with {}: {}\n{}",
                o.status,
                String::from_utf8_lossy(&o.stderr),
                self.failure_note()
            )),
            Err(e) => Err(format!("{e}\n{}", self.failure_note())),
        }
    }

    /// Keeps the scratch directory's logs (console, probe output; the disk images are
    /// removed: a root disk is close to a GiB) and says where they are.
    pub fn keep_artifacts(self) -> PathBuf {
        let _ = std::fs::remove_file(&self.root);
        for (_, p) in &self.disks {
            let _ = std::fs::remove_file(p);
        }
        let path = self.scratch.keep();
        e2e::note(&format!(
            "vm: artifacts (console logs, probe output) kept in {}",
            path.display()
        ));
        path
    }

    fn failure_note(&self) -> String {
        let console = std::fs::read_to_string(self.console_path(self.boots)).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(60).collect();
        format!(
            "last console lines of run {}:\n{}",
            self.boots,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_parses_into_boots_and_sections() {
        let text = "noise\n@@boot 1 running mark-reboot\n@@begin mdstat\nmd127 : active raid0\n@@end mdstat 0\n@@begin x\n@@end x 3\n@@action mark-reboot\n@@boot 2 degraded poweroff\n@@begin mdstat\n\r\n@@end mdstat 0\n";
        let b = parse_probe(text);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].number, 1);
        assert_eq!(b[0].action, "mark-reboot");
        assert_eq!(b[0].text("mdstat"), "md127 : active raid0\n");
        assert_eq!(b[0].rc("x"), 3);
        assert_eq!(b[1].state, "degraded");
        assert_eq!(b[1].rc("missing"), -1);
    }
}
