//! containerd: `config.toml` (schema v2 for containerd 1.x, v3 for 2.x) with the user's TOML
//! (migrated to the installed containerd's schema by `compute`) deep-merged over it, the base
//! OCI runtime spec with the user's fragment merged over it, and, with `FastImagePull`, the
//! SOCI snapshotter's config.

use serde_json::{Value, json};

use crate::config::NodeConfig;
use crate::config::merge::{deep_merge_json, deep_merge_toml};
use crate::model::NodeValues;
use crate::model::paths;

/// The runc binary containerd runs.
const RUNC_BINARY: &str = "/usr/sbin/runc";
/// Where registry host configs live (hosts.toml per registry).
const REGISTRY_CONFIG_PATH: &str = "/etc/containerd/certs.d:/etc/docker/certs.d";
/// The SOCI snapshotter's name in containerd (a proxy plugin).
pub const SOCI: &str = "soci";
/// The SOCI snapshotter's socket.
pub const SOCI_SOCKET: &str = "/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock";
/// The SOCI snapshotter's state.
pub const SOCI_ROOT: &str = "/var/lib/soci-snapshotter-grpc";
/// The SOCI snapshotter's config file.
pub const SOCI_CONFIG: &str = "/etc/soci-snapshotter-grpc/config.toml";
/// The SOCI snapshotter's unit.
pub const SOCI_UNIT: &str = "soci-snapshotter.service";

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

/// `[proxy_plugins.soci]`: the SOCI snapshotter as a containerd snapshotter.
fn soci_proxy_plugin() -> toml::Table {
    let soci = table(vec![
        ("type", "snapshot".into()),
        ("address", SOCI_SOCKET.into()),
        ("exports", table(vec![("root", SOCI_ROOT.into())]).into()),
    ]);
    table(vec![(SOCI, soci.into())])
}

/// Renders `/etc/containerd/config.toml`.
pub fn config_toml(node: &NodeValues) -> String {
    let mut runtimes = toml::Table::new();
    runtimes.insert("runc".into(), runtime(RUNC_BINARY).into());
    if let Some(nvidia) = &node.nvidia_runtime {
        runtimes.insert(
            "nvidia".into(),
            runtime(&nvidia.display().to_string()).into(),
        );
    }
    let mut containerd = table(vec![
        ("default_runtime_name", node.default_runtime.clone().into()),
        ("runtimes", runtimes.into()),
    ]);
    // CDI for device plugins from kubelet 1.32, as nodeadm.
    let enable_cdi = node.kubelet_version.at_least(1, 32);
    let soci = node.fast_image_pull.is_some();
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
        let mut images = table(vec![
            ("discard_unpacked_layers", true.into()),
            (
                "pinned_images",
                table(vec![("sandbox", node.sandbox_image.clone().into())]).into(),
            ),
            ("registry", registry.into()),
        ]);
        if soci {
            images.insert("snapshotter".into(), SOCI.into());
            images.insert("disable_snapshot_annotations".into(), false.into());
        }
        let cni = table(vec![
            (
                "bin_dirs",
                toml::Value::Array(vec![paths::CNI_BIN_DIR.into()]),
            ),
            ("conf_dir", paths::CNI_CONF_DIR.into()),
        ]);
        let runtime = table(vec![
            ("enable_cdi", enable_cdi.into()),
            ("containerd", containerd.into()),
            ("cni", cni.into()),
        ]);
        table(vec![
            ("io.containerd.cri.v1.images", images.into()),
            ("io.containerd.cri.v1.runtime", runtime.into()),
        ])
    } else {
        doc.insert("version".into(), 2.into());
        containerd.insert("discard_unpacked_layers".into(), true.into());
        if soci {
            containerd.insert("snapshotter".into(), SOCI.into());
            containerd.insert("disable_snapshot_annotations".into(), false.into());
        }
        let cni = table(vec![
            ("bin_dir", paths::CNI_BIN_DIR.into()),
            ("conf_dir", paths::CNI_CONF_DIR.into()),
        ]);
        let cri = table(vec![
            ("sandbox_image", node.sandbox_image.clone().into()),
            ("enable_cdi", enable_cdi.into()),
            ("containerd", containerd.into()),
            ("cni", cni.into()),
            ("registry", registry.into()),
        ]);
        table(vec![("io.containerd.grpc.v1.cri", cri.into())])
    };
    doc.insert("plugins".into(), plugins.into());
    if soci {
        doc.insert("proxy_plugins".into(), soci_proxy_plugin().into());
    }
    if let Some(user) = node.containerd_user_config.as_deref() {
        // Parsed (and migrated to this containerd's schema) by compute.
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

/// Renders `/etc/soci-snapshotter-grpc/config.toml` for `FastImagePull`: the parallel pull and
/// unpack mode with nodeadm's settings (16 MB chunks, 20 downloads and 12 unpacks per image,
/// unpacked layers discarded, gzip through `gzip_decompressor`, with the long spellings of
/// nodeadm's `-d -c`), credentials through containerd's CRI image service.
pub fn soci_config(gzip_decompressor: &str) -> String {
    let parallel = table(vec![
        ("enable", true.into()),
        ("concurrent_download_chunk_size", "16mb".into()),
        ("discard_unpacked_layers", true.into()),
        ("max_concurrent_downloads", (-1).into()),
        ("max_concurrent_downloads_per_image", 20.into()),
        ("max_concurrent_unpacks", (-1).into()),
        ("max_concurrent_unpacks_per_image", 12.into()),
        (
            "decompress_streams",
            table(vec![(
                "gzip",
                table(vec![
                    ("path", gzip_decompressor.into()),
                    (
                        "args",
                        toml::Value::Array(vec!["--decompress".into(), "--stdout".into()]),
                    ),
                ])
                .into(),
            )])
            .into(),
        ),
    ]);
    let doc = table(vec![
        ("debug", false.into()),
        (
            "content_store",
            table(vec![("type", "containerd".into())]).into(),
        ),
        (
            "cri_keychain",
            table(vec![
                ("enable_keychain", true.into()),
                ("image_service_path", paths::CONTAINERD_SOCKET.into()),
            ])
            .into(),
        ),
        (
            "pull_modes",
            table(vec![("parallel_pull_unpack", parallel.into())]).into(),
        ),
    ]);
    toml::to_string(&doc).unwrap_or_default()
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
