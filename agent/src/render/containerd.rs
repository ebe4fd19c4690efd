//! containerd: `config.toml` (schema v2 for containerd 1.x, v3 for 2.x) with the user's TOML
//! deep-merged over it, and the base OCI runtime spec with the user's fragment merged over it.

use serde_json::{Value, json};

use crate::config::NodeConfig;
use crate::config::merge::{deep_merge_json, deep_merge_toml};
use crate::model::NodeValues;
use crate::model::paths;

/// The runc binary containerd runs.
const RUNC_BINARY: &str = "/usr/sbin/runc";
/// Where registry host configs live (hosts.toml per registry).
const REGISTRY_CONFIG_PATH: &str = "/etc/containerd/certs.d:/etc/docker/certs.d";

fn runc_options(binary: &str) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("BinaryName".into(), binary.into());
    t.insert("SystemdCgroup".into(), true.into());
    t
}

fn runtime(binary: &str) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("runtime_type".into(), "io.containerd.runc.v2".into());
    t.insert(
        "base_runtime_spec".into(),
        paths::CONTAINERD_BASE_RUNTIME_SPEC.into(),
    );
    t.insert("options".into(), runc_options(binary).into());
    t
}

fn table(entries: Vec<(&str, toml::Value)>) -> toml::Table {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Renders `/etc/containerd/config.toml`.
pub fn config_toml(config: &NodeConfig, node: &NodeValues) -> String {
    let mut runtimes = toml::Table::new();
    runtimes.insert("runc".into(), runtime(RUNC_BINARY).into());
    if let Some(nvidia) = &node.nvidia_runtime {
        runtimes.insert(
            "nvidia".into(),
            runtime(&nvidia.display().to_string()).into(),
        );
    }
    let containerd = table(vec![
        ("default_runtime_name", "runc".into()),
        ("runtimes", runtimes.into()),
    ]);
    let registry = table(vec![("config_path", REGISTRY_CONFIG_PATH.into())]);
    let mut doc = table(vec![
        ("root", "/var/lib/containerd".into()),
        ("state", "/run/containerd".into()),
        (
            "grpc",
            table(vec![("address", paths::CONTAINERD_SOCKET.into())]).into(),
        ),
    ]);
    let plugins = if node.containerd_major >= 2 {
        doc.insert("version".into(), 3.into());
        let images = table(vec![
            ("discard_unpacked_layers", true.into()),
            (
                "pinned_images",
                table(vec![("sandbox", node.sandbox_image.clone().into())]).into(),
            ),
            ("registry", registry.into()),
        ]);
        let cni = table(vec![
            (
                "bin_dirs",
                toml::Value::Array(vec![paths::CNI_BIN_DIR.into()]),
            ),
            ("conf_dir", paths::CNI_CONF_DIR.into()),
        ]);
        let runtime = table(vec![
            ("enable_cdi", true.into()),
            ("containerd", containerd.into()),
            ("cni", cni.into()),
        ]);
        table(vec![
            ("io.containerd.cri.v1.images", images.into()),
            ("io.containerd.cri.v1.runtime", runtime.into()),
        ])
    } else {
        doc.insert("version".into(), 2.into());
        let mut containerd = containerd;
        containerd.insert("discard_unpacked_layers".into(), true.into());
        let cni = table(vec![
            ("bin_dir", paths::CNI_BIN_DIR.into()),
            ("conf_dir", paths::CNI_CONF_DIR.into()),
        ]);
        let cri = table(vec![
            ("sandbox_image", node.sandbox_image.clone().into()),
            ("enable_cdi", true.into()),
            ("containerd", containerd.into()),
            ("cni", cni.into()),
            ("registry", registry.into()),
        ]);
        table(vec![("io.containerd.grpc.v1.cri", cri.into())])
    };
    doc.insert("plugins".into(), plugins.into());
    if let Some(user) = config.spec.containerd.config.as_deref() {
        // Validated as TOML when the config was loaded.
        if let Ok(user) = user.parse::<toml::Table>() {
            deep_merge_toml(&mut doc, user);
        }
    }
    // Keep `version` first, as containerd's own docs write it.
    let mut ordered = toml::Table::new();
    if let Some(v) = doc.remove("version") {
        ordered.insert("version".into(), v);
    }
    ordered.extend(doc);
    toml::to_string(&ordered).unwrap_or_default()
}

/// Renders `/etc/containerd/base-runtime-spec.json`: the OCI defaults containerd would use,
/// with raised file limits, and the user's `baseRuntimeSpec` merged over them.
pub fn base_runtime_spec(config: &NodeConfig) -> String {
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    let mut spec = json!({
        "ociVersion": "1.1.0",
        "process": {
            "user": { "uid": 0, "gid": 0 },
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "soft": 65536, "hard": 1048576 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs" },
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }
        ],
        "linux": {
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/sys/devices/virtual/powercap", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ],
            "namespaces": [
                { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }, { "type": "network" }
            ]
        }
    });
    if let Value::Object(base) = &mut spec {
        deep_merge_json(base, &config.spec.containerd.base_runtime_spec);
    }
    serde_json::to_string_pretty(&spec).unwrap_or_default() + "\n"
}
