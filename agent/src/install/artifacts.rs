//! The artifacts manifest (`manifest.json` at the top of a mirror) and where each component
//! installs. Pure: bytes in, values out.
//!
//! ```json
//! {
//!   "version": 1,
//!   "artifacts": [
//!     {"name": "kubelet", "file": "bin/kubelet", "sha256": "<64 hex>", "size": 81234944},
//!     {"name": "cni-plugins", "file": "cni-plugins-linux-amd64-v1.6.2.tgz", "sha256": "...", "size": 52000000}
//!   ]
//! }
//! ```
//!
//! The agent, not the mirror, decides where a component goes ([`Component::layout`]): a
//! mirror can only offer bytes for a known component, never choose a host path.

use std::path::{Component as PathComponent, Path};

use serde::Deserialize;

use super::Error;

/// The manifest's file name at the top of a mirror.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The manifest format this agent reads.
pub const FORMAT_VERSION: u32 = 1;
/// Largest manifest accepted.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Largest artifact accepted (the size a manifest may declare).
pub const MAX_ARTIFACT_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest `file` value accepted.
const MAX_FILE_LEN: usize = 512;

/// A component the agent knows how to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The kubelet binary.
    Kubelet,
    /// containerd's release tarball (`bin/containerd`, `bin/containerd-shim-runc-v2`, `bin/ctr`...).
    Containerd,
    /// The runc binary.
    Runc,
    /// The CNI plugins release tarball (`bridge`, `host-local`, `loopback`...).
    CniPlugins,
    /// The ECR image credential provider binary.
    EcrCredentialProvider,
}

/// Every component, in install order.
pub const COMPONENTS: [Component; 5] = [
    Component::Containerd,
    Component::Runc,
    Component::CniPlugins,
    Component::EcrCredentialProvider,
    Component::Kubelet,
];

/// Where a component's bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One file, installed at `path` with `mode`.
    Single {
        /// The host path.
        path: &'static str,
        /// Its mode.
        mode: u32,
    },
    /// A gzipped tar; each regular file `PREFIX/NAME` (or `NAME` with no prefix) installs as
    /// `dir/NAME`, executable bits kept, group/other write and setuid/setgid dropped.
    Tarball {
        /// The one directory inside the tarball that holds the files, if any.
        prefix: Option<&'static str>,
        /// The host directory.
        dir: &'static str,
    },
}

impl Component {
    /// The name used in manifests and messages.
    pub fn name(self) -> &'static str {
        match self {
            Component::Kubelet => "kubelet",
            Component::Containerd => "containerd",
            Component::Runc => "runc",
            Component::CniPlugins => "cni-plugins",
            Component::EcrCredentialProvider => "ecr-credential-provider",
        }
    }

    /// Parses a manifest name.
    pub fn parse(name: &str) -> Option<Component> {
        COMPONENTS.into_iter().find(|c| c.name() == name)
    }

    /// Where it installs (paths compatible with the EKS AMI and nodeadm).
    pub fn layout(self) -> Layout {
        match self {
            Component::Kubelet => Layout::Single {
                path: "/usr/bin/kubelet",
                mode: 0o755,
            },
            Component::Runc => Layout::Single {
                path: "/usr/sbin/runc",
                mode: 0o755,
            },
            Component::EcrCredentialProvider => Layout::Single {
                path: "/etc/eks/image-credential-provider/ecr-credential-provider",
                mode: 0o755,
            },
            Component::Containerd => Layout::Tarball {
                prefix: Some("bin"),
                dir: "/usr/bin",
            },
            Component::CniPlugins => Layout::Tarball {
                prefix: None,
                dir: crate::model::paths::CNI_BIN_DIR,
            },
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One artifact of the manifest, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The component.
    pub component: Component,
    /// Its path relative to the mirror (`/`-separated, no `..`).
    pub file: String,
    /// Expected SHA-256, lowercase hex.
    pub sha256: String,
    /// Expected size in bytes.
    pub size: u64,
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The artifacts, in install order.
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: u32,
    artifacts: Vec<RawArtifact>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    name: String,
    file: String,
    sha256: String,
    size: u64,
}

/// Parses and validates a manifest read from `source_name`.
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Manifest, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let raw: RawManifest =
        serde_path_to_error::deserialize(de).map_err(|e| Error::BadManifest {
            source_name: source_name.to_owned(),
            field: e.path().to_string(),
            reason: format!("{}; see docs/install.md for the manifest format", e.inner()),
        })?;
    let bad = |field: String, reason: String| Error::BadManifest {
        source_name: source_name.to_owned(),
        field,
        reason,
    };
    if raw.version != FORMAT_VERSION {
        return Err(bad(
            "version".into(),
            format!(
                "{} is not a manifest version this agent reads; use \"version\": {FORMAT_VERSION}",
                raw.version
            ),
        ));
    }
    let mut artifacts: Vec<Artifact> = Vec::new();
    for (i, a) in raw.artifacts.iter().enumerate() {
        let field = |f: &str| format!("artifacts[{i}].{f}");
        let component = Component::parse(&a.name).ok_or_else(|| {
            bad(
                field("name"),
                format!(
                    "{} is not a component; use one of {}",
                    crate::model::text::echo(&a.name),
                    COMPONENTS.map(Component::name).join(", ")
                ),
            )
        })?;
        if artifacts.iter().any(|x| x.component == component) {
            return Err(bad(
                field("name"),
                format!("{component} is listed twice; keep one entry per component"),
            ));
        }
        check_file(&a.file).map_err(|reason| bad(field("file"), reason))?;
        let sha256 = a.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                field("sha256"),
                format!(
                    "{} is not a SHA-256 (64 hex digits); compute it with `sha256sum {}`",
                    crate::model::text::echo(&a.sha256),
                    crate::model::text::shorten(&a.file)
                ),
            ));
        }
        if a.size == 0 || a.size > MAX_ARTIFACT_BYTES {
            return Err(bad(
                field("size"),
                format!(
                    "{} bytes is outside 1..={MAX_ARTIFACT_BYTES}; use the file's size (`stat -c %s {}`)",
                    a.size,
                    crate::model::text::shorten(&a.file)
                ),
            ));
        }
        artifacts.push(Artifact {
            component,
            file: a.file.clone(),
            sha256,
            size: a.size,
        });
    }
    if artifacts.is_empty() {
        return Err(bad(
            "artifacts".into(),
            "lists nothing to install; add at least one artifact".into(),
        ));
    }
    artifacts.sort_by_key(|a| COMPONENTS.iter().position(|c| *c == a.component));
    Ok(Manifest { artifacts })
}

/// A mirror-relative file: `/`-separated plain names of `A-Z a-z 0-9 . _ + -`, no `..`.
fn check_file(file: &str) -> Result<(), String> {
    let chars_ok = file
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-' | b'/'));
    let parts_ok = Path::new(file)
        .components()
        .all(|c| matches!(c, PathComponent::Normal(_)));
    if file.is_empty()
        || file.len() > MAX_FILE_LEN
        || !chars_ok
        || !parts_ok
        || file.starts_with('/')
        || file.ends_with('/')
        || file.split('/').any(|p| p == "." || p.is_empty())
    {
        return Err(format!(
            "{} is not a path inside the mirror; use a relative path of letters, digits, \
             '.', '_', '+', '-' and '/' without '..'",
            crate::model::text::echo(file)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn doc(artifacts: &str) -> String {
        format!("{{\"version\": 1, \"artifacts\": [{artifacts}]}}")
    }

    #[test]
    fn parses_and_orders_components() {
        let text = doc(&format!(
            "{{\"name\": \"kubelet\", \"file\": \"bin/kubelet\", \"sha256\": \"{}\", \"size\": 4}},\
             {{\"name\": \"containerd\", \"file\": \"containerd-2.0.0.tar.gz\", \"sha256\": \"{SHA}\", \"size\": 9}}",
            SHA.to_uppercase()
        ));
        let m = parse(text.as_bytes(), "m.json").unwrap();
        assert_eq!(m.artifacts[0].component, Component::Containerd);
        assert_eq!(m.artifacts[1].component, Component::Kubelet);
        assert_eq!(m.artifacts[1].sha256, SHA, "lowercased");
    }

    #[test]
    fn errors_name_the_source_the_field_and_the_fix() {
        let cases = [
            (
                doc(&format!(
                    "{{\"name\": \"kubectl\", \"file\": \"k\", \"sha256\": \"{SHA}\", \"size\": 1}}"
                )),
                "artifacts[0].name",
                "use one of",
            ),
            (
                doc(&format!(
                    "{{\"name\": \"runc\", \"file\": \"../runc\", \"sha256\": \"{SHA}\", \"size\": 1}}"
                )),
                "artifacts[0].file",
                "without '..'",
            ),
            (
                doc(&format!(
                    "{{\"name\": \"runc\", \"file\": \"/etc/runc\", \"sha256\": \"{SHA}\", \"size\": 1}}"
                )),
                "artifacts[0].file",
                "relative path",
            ),
            (
                doc("{\"name\": \"runc\", \"file\": \"runc\", \"sha256\": \"abc\", \"size\": 1}"),
                "artifacts[0].sha256",
                "sha256sum runc",
            ),
            (
                doc(&format!(
                    "{{\"name\": \"runc\", \"file\": \"runc\", \"sha256\": \"{SHA}\", \"size\": 0}}"
                )),
                "artifacts[0].size",
                "stat -c %s runc",
            ),
            (
                doc(&format!(
                    "{{\"name\": \"runc\", \"file\": \"runc\", \"sha256\": \"{SHA}\"}}"
                )),
                "artifacts[0]",
                "missing field `size`",
            ),
            (
                doc(&format!(
                    "{{\"name\": \"runc\", \"file\": \"runc\", \"sha256\": \"{SHA}\", \"size\": 1, \"path\": \"/x\"}}"
                )),
                "artifacts[0]",
                "unknown field `path`",
            ),
            (doc(""), "artifacts", "nothing to install"),
            (
                "{\"version\": 2, \"artifacts\": []}".to_owned(),
                "version",
                "\"version\": 1",
            ),
        ];
        for (text, field, fix) in cases {
            let err = parse(text.as_bytes(), "https://mirror/manifest.json").unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("https://mirror/manifest.json"), "{msg}");
            assert!(msg.contains(field), "{field}: {msg}");
            assert!(msg.contains(fix), "{fix}: {msg}");
        }
    }

    #[test]
    fn a_component_listed_twice_is_refused() {
        let one = format!(
            "{{\"name\": \"runc\", \"file\": \"runc\", \"sha256\": \"{SHA}\", \"size\": 1}}"
        );
        let err = parse(doc(&format!("{one},{one}")).as_bytes(), "m").unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}
