//! containerd choices: the default runtime (NVIDIA hosts), `FastImagePull` (the SOCI
//! snapshotter's parallel pull mode, where nodeadm uses it), and the user's TOML in the schema
//! of the installed containerd (a version 2 document is migrated to version 3 for containerd
//! 2.x, as `containerd config migrate` would).

use crate::config::{FeatureGate, NodeConfig};
use crate::model::{AcceleratorKind, FastImagePull, HostFacts};

use super::Error;

/// The runtime containerd uses unless told otherwise.
pub const RUNC: &str = "runc";
/// The NVIDIA container runtime's name in containerd's config.
pub const NVIDIA: &str = "nvidia";
/// nodeadm's `FastImagePull` thresholds: at least 4 CPUs...
pub const FAST_IMAGE_PULL_MIN_CORES: u32 = 4;
/// ...and 7 GiB of memory as the kernel reports it (an 8 GiB instance shows a little less).
pub const FAST_IMAGE_PULL_MIN_MEMORY_BYTES: u64 = 7 * 1024 * 1024 * 1024;
/// The gzip decompressor the SOCI snapshotter runs without `unpigz`.
pub const GZIP: &str = "/usr/bin/gzip";

/// containerd's default runtime: `nvidia` on a host with an NVIDIA GPU and the NVIDIA
/// container toolkit, else `runc`; with how that was decided.
pub fn default_runtime(host: &HostFacts) -> (String, String) {
    let gpus = host
        .accelerators
        .iter()
        .filter(|a| a.kind == AcceleratorKind::Nvidia)
        .count();
    match (gpus, &host.nvidia_runtime) {
        (0, _) => (RUNC.into(), "runc: no NVIDIA GPU on the PCI bus".into()),
        (n, Some(toolkit)) => (
            NVIDIA.into(),
            format!(
                "nvidia: {n} NVIDIA GPU(s) on the PCI bus (vendor 0x10de) and the NVIDIA container toolkit at {}",
                toolkit.display()
            ),
        ),
        (n, None) => {
            tracing::warn!(
                gpus = n,
                "this host has NVIDIA GPUs but no NVIDIA container toolkit (/usr/bin/nvidia-container-runtime): containers cannot use them until it is installed; containerd keeps runc as its default runtime"
            );
            (
                RUNC.into(),
                format!(
                    "runc: {n} NVIDIA GPU(s) on the PCI bus but no NVIDIA container toolkit installed"
                ),
            )
        }
    }
}

/// What `FastImagePull` comes to on this host: the SOCI snapshotter's parallel pull and unpack
/// mode when the gate is on, the host has at least [`FAST_IMAGE_PULL_MIN_CORES`] CPUs and
/// [`FAST_IMAGE_PULL_MIN_MEMORY_BYTES`] of memory (nodeadm's thresholds), and the snapshotter
/// is installed; with why.
pub fn fast_image_pull(config: &NodeConfig, host: &HostFacts) -> (Option<FastImagePull>, String) {
    if !config.feature(FeatureGate::FastImagePull) {
        return (
            None,
            "off: the FastImagePull feature gate is not set".into(),
        );
    }
    let gib = |b: u64| b as f64 / (1024.0 * 1024.0 * 1024.0);
    if host.cpu_cores < FAST_IMAGE_PULL_MIN_CORES
        || host.memory_bytes < FAST_IMAGE_PULL_MIN_MEMORY_BYTES
    {
        let why = format!(
            "off: FastImagePull needs at least {FAST_IMAGE_PULL_MIN_CORES} CPUs and {:.0} GiB of memory (nodeadm's thresholds); this host has {} CPUs and {:.2} GiB",
            gib(FAST_IMAGE_PULL_MIN_MEMORY_BYTES),
            host.cpu_cores,
            gib(host.memory_bytes)
        );
        tracing::warn!("{why}");
        return (None, why);
    }
    let Some(soci) = &host.soci_snapshotter else {
        let why = "off: FastImagePull uses the SOCI snapshotter (soci-snapshotter-grpc), which is not installed; install it (the EKS AMI ships it) to pull in parallel".to_owned();
        tracing::warn!("{why}");
        return (None, why);
    };
    let gzip = host
        .unpigz
        .as_ref()
        .map_or_else(|| GZIP.to_owned(), |p| p.display().to_string());
    (
        Some(FastImagePull {
            gzip_decompressor: gzip.clone(),
        }),
        format!(
            "on: the SOCI snapshotter ({}) pulls and unpacks layers in parallel ({} CPUs, {:.2} GiB; gzip layers through {gzip})",
            soci.display(),
            host.cpu_cores,
            gib(host.memory_bytes)
        ),
    )
}

/// containerd's CRI plugin of config version 2 (containerd 1.x).
pub const CRI_V2: &str = "io.containerd.grpc.v1.cri";
/// The CRI image service plugin of config version 3 (containerd 2.x).
pub const CRI_IMAGES_V3: &str = "io.containerd.cri.v1.images";
/// The CRI runtime service plugin of config version 3 (containerd 2.x).
pub const CRI_RUNTIME_V3: &str = "io.containerd.cri.v1.runtime";

/// Keys of the version 2 CRI table that move to the image service plugin.
const IMAGE_KEYS: [&str; 6] = [
    "registry",
    "image_decryption",
    "max_concurrent_downloads",
    "image_pull_progress_timeout",
    "image_pull_with_sync_fs",
    "stats_collect_period",
];
/// Keys of the version 2 `containerd` table that move to the image service plugin.
const IMAGE_CONTAINERD_KEYS: [&str; 3] = [
    "snapshotter",
    "disable_snapshot_annotations",
    "discard_unpacked_layers",
];
/// Keys that stay in `io.containerd.grpc.v1.cri` (the CRI server's own settings).
const SERVER_KEYS: [&str; 6] = [
    "disable_tcp_service",
    "stream_server_address",
    "stream_server_port",
    "stream_idle_timeout",
    "enable_tls_streaming",
    "x509_key_pair_streaming",
];

/// The config schema a user's TOML is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// containerd 1.x (`version = 2`, `io.containerd.grpc.v1.cri`).
    V2,
    /// containerd 2.x (`version = 3`, `io.containerd.cri.v1.*`).
    V3,
    /// Neither plugin and no version: fits either.
    Either,
}

/// The schema of a user's TOML: its `version`, else the CRI plugins it configures (nodeadm's
/// rule: a document naming `io.containerd.cri.v1.images` or `.runtime` is version 3).
pub fn schema_of(doc: &toml::Table) -> Schema {
    match doc.get("version").and_then(toml::Value::as_integer) {
        Some(3) => return Schema::V3,
        Some(2) => return Schema::V2,
        _ => {}
    }
    let plugins = doc.get("plugins").and_then(toml::Value::as_table);
    let has = |name: &str| plugins.is_some_and(|p| p.contains_key(name));
    if has(CRI_IMAGES_V3) || has(CRI_RUNTIME_V3) {
        Schema::V3
    } else if has(CRI_V2) {
        Schema::V2
    } else {
        Schema::Either
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::ContainerdConfig {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// The user's `spec.containerd.config` for the installed containerd (`major`): as written when
/// its schema fits, migrated to version 3 when it is a version 2 document on containerd 2.x.
/// A version 3 document on containerd 1.x is refused (nodeadm refuses it too), as are the keys
/// containerd 2.0 removed.
pub fn user_config(text: Option<&str>, major: u32) -> Result<Option<String>, Error> {
    let Some(text) = text else {
        return Ok(None);
    };
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid("", e.message().to_owned()))?;
    let out = match (schema_of(&doc), major >= 2) {
        (Schema::V3, false) => {
            return Err(invalid(
                "plugins",
                format!(
                    "configures the containerd 2.x plugins {CRI_IMAGES_V3}/{CRI_RUNTIME_V3} (config version 3), but the installed containerd is {major}.x, which reads version 2: write the settings under [plugins.\"{CRI_V2}\"] instead"
                ),
            ));
        }
        (Schema::V2, true) => migrate_v2_to_v3(doc)?,
        _ => {
            let mut doc = doc;
            doc.remove("version");
            doc
        }
    };
    Ok(Some(toml::to_string(&out).unwrap_or_default()))
}

/// Moves one key of a table into another (created when missing).
fn sub_table<'a>(table: &'a mut toml::Table, key: &str) -> &'a mut toml::Table {
    let entry = table
        .entry(key.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    match entry {
        toml::Value::Table(t) => t,
        _ => unreachable!("made a table above"),
    }
}

/// The mapping `containerd config migrate` applies to the CRI plugin (containerd 2.0's
/// `configMigration` of the images and runtime plugins), for the keys users set:
/// `sandbox_image` -> `pinned_images.sandbox`; `registry`, `image_decryption`,
/// `max_concurrent_downloads`, `image_pull_progress_timeout`, `image_pull_with_sync_fs`,
/// `stats_collect_period` and `containerd.{snapshotter, disable_snapshot_annotations,
/// discard_unpacked_layers}` -> the images plugin; the streaming server's keys stay; everything
/// else (`containerd.runtimes.*`, `default_runtime_name`, `cni`, `enable_cdi`, ...) -> the
/// runtime plugin, with `cni.bin_dir` -> `cni.bin_dirs` and a runtime's `sandbox_mode` ->
/// `sandboxer`. `version` is dropped (the rendered document is version 3).
pub fn migrate_v2_to_v3(mut doc: toml::Table) -> Result<toml::Table, Error> {
    doc.remove("version");
    let Some(cri) = doc
        .get_mut("plugins")
        .and_then(toml::Value::as_table_mut)
        .and_then(|p| p.remove(CRI_V2))
    else {
        return Ok(doc);
    };
    let toml::Value::Table(cri) = cri else {
        return Err(invalid(&format!("plugins.\"{CRI_V2}\""), "is not a table"));
    };
    let mut images = toml::Table::new();
    let mut runtime = toml::Table::new();
    let mut server = toml::Table::new();
    for (key, value) in cri {
        let at = format!("plugins.\"{CRI_V2}\".{key}");
        match key.as_str() {
            "sandbox_image" => {
                sub_table(&mut images, "pinned_images").insert("sandbox".into(), value);
            }
            "systemd_cgroup" => {
                return Err(invalid(
                    &at,
                    "was removed in containerd 2.0: set SystemdCgroup = true in the runtime's options ([plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options]) instead",
                ));
            }
            k if IMAGE_KEYS.contains(&k) => {
                images.insert(key, value);
            }
            k if SERVER_KEYS.contains(&k) => {
                server.insert(key, value);
            }
            "containerd" => {
                let toml::Value::Table(containerd) = value else {
                    return Err(invalid(&at, "is not a table"));
                };
                for (ck, cv) in containerd {
                    let at = format!("{at}.{ck}");
                    match ck.as_str() {
                        k if IMAGE_CONTAINERD_KEYS.contains(&k) => {
                            images.insert(ck, cv);
                        }
                        "default_runtime" | "untrusted_workload_runtime" => {
                            return Err(invalid(
                                &at,
                                "was removed in containerd 2.0: name the runtime in default_runtime_name and describe it under runtimes",
                            ));
                        }
                        "runtimes" => {
                            let toml::Value::Table(runtimes) = cv else {
                                return Err(invalid(&at, "is not a table"));
                            };
                            let target =
                                sub_table(sub_table(&mut runtime, "containerd"), "runtimes");
                            for (name, rt) in runtimes {
                                let mut rt = match rt {
                                    toml::Value::Table(t) => t,
                                    _ => {
                                        return Err(invalid(
                                            &format!("{at}.{name}"),
                                            "is not a table",
                                        ));
                                    }
                                };
                                if let Some(mode) = rt.remove("sandbox_mode") {
                                    rt.entry("sandboxer").or_insert(mode);
                                }
                                target.insert(name, toml::Value::Table(rt));
                            }
                        }
                        _ => {
                            sub_table(&mut runtime, "containerd").insert(ck, cv);
                        }
                    }
                }
            }
            "cni" => {
                let toml::Value::Table(mut cni) = value else {
                    return Err(invalid(&at, "is not a table"));
                };
                if let Some(dir) = cni.remove("bin_dir") {
                    cni.insert("bin_dirs".into(), toml::Value::Array(vec![dir]));
                }
                runtime.insert(key, toml::Value::Table(cni));
            }
            _ => {
                runtime.insert(key, value);
            }
        }
    }
    let plugins = sub_table(&mut doc, "plugins");
    for (name, table) in [
        (CRI_IMAGES_V3, images),
        (CRI_RUNTIME_V3, runtime),
        (CRI_V2, server),
    ] {
        if !table.is_empty() {
            crate::config::merge::deep_merge_toml(sub_table(plugins, name), table);
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn schemas_are_told_apart_like_nodeadm() {
        assert_eq!(schema_of(&table("version = 3\n")), Schema::V3);
        assert_eq!(
            schema_of(&table(
                "[plugins.\"io.containerd.cri.v1.images\"]\nsnapshotter = \"x\"\n"
            )),
            Schema::V3
        );
        assert_eq!(
            schema_of(&table(
                "[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"p\"\n"
            )),
            Schema::V2
        );
        assert_eq!(
            schema_of(&table("[grpc]\nmax_recv_message_size = 1\n")),
            Schema::Either
        );
    }

    #[test]
    fn a_version_2_document_moves_to_the_version_3_plugins() {
        let v2 = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "registry.example.com/pause:3.10"
enable_cdi = true
stream_server_port = "10010"
max_concurrent_downloads = 10
[plugins."io.containerd.grpc.v1.cri".registry]
config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri".containerd]
discard_unpacked_layers = false
default_runtime_name = "crun"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
runtime_type = "io.containerd.runc.v2"
sandbox_mode = "podsandbox"
[plugins."io.containerd.grpc.v1.cri".cni]
bin_dir = "/opt/cni/bin"
"#;
        let out = migrate_v2_to_v3(table(v2)).unwrap();
        let want = table(
            r#"
[plugins."io.containerd.cri.v1.images"]
max_concurrent_downloads = 10
discard_unpacked_layers = false
[plugins."io.containerd.cri.v1.images".pinned_images]
sandbox = "registry.example.com/pause:3.10"
[plugins."io.containerd.cri.v1.images".registry]
config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
enable_cdi = true
[plugins."io.containerd.cri.v1.runtime".containerd]
default_runtime_name = "crun"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.crun]
runtime_type = "io.containerd.runc.v2"
sandboxer = "podsandbox"
[plugins."io.containerd.cri.v1.runtime".cni]
bin_dirs = ["/opt/cni/bin"]
[plugins."io.containerd.grpc.v1.cri"]
stream_server_port = "10010"
"#,
        );
        assert_eq!(out, want);
    }

    #[test]
    fn removed_keys_and_v3_on_containerd_1_are_refused_naming_the_key() {
        let err = user_config(
            Some("[plugins.\"io.containerd.grpc.v1.cri\"]\nsystemd_cgroup = true\n"),
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("systemd_cgroup") && err.contains("SystemdCgroup"),
            "{err}"
        );
        let err = user_config(
            Some("[plugins.\"io.containerd.cri.v1.images\"]\nsnapshotter = \"x\"\n"),
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("spec.containerd.config") && err.contains("1.x"),
            "{err}"
        );
        // Fitting documents pass as written (less `version`).
        let same = "[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"p\"\n";
        assert_eq!(
            user_config(Some(same), 1)
                .unwrap()
                .unwrap()
                .parse::<toml::Table>()
                .unwrap(),
            table(same)
        );
        assert_eq!(user_config(None, 2).unwrap(), None);
    }
}
