//! `install --from DIR|URL`: kubelet, containerd, runc, CNI plugins and the ECR credential
//! provider (EKS nodes), or Docker, ecs-init and the ECS agent's image (ECS hosts, with the
//! units and ecs-init's cache state that go with them), from a directory or mirror described
//! by a `manifest.json` of SHA-256 sums; and the pieces of `uninstall --deregister`.
//!
//! Verify everything before writing anything: the manifest is read and validated, every
//! selected artifact is copied to a private staging directory (outside the root) while it is
//! hashed, its size and SHA-256 are compared with the manifest, tarballs are expanded (and
//! checked) into staging. Only when all of that succeeded are the files installed, each
//! atomically and recorded in the agent's file record ([`crate::apply::manifest`]), so that
//! `uninstall` removes them (or restores what they replaced).

pub mod archive;
pub mod artifacts;
pub mod fetch;
pub mod rollback;
pub mod signature;
pub mod ssm;

use std::path::{Path, PathBuf};

use crate::apply::{self, Applier, Root, StagedFile};
use crate::exit;
use artifacts::{Component, Layout, Manifest};

/// Errors of `install` and `uninstall --deregister`. Each names the source, the artifact or
/// file, and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--from` (or another location) is not usable.
    #[error("--from {given}: {reason}")]
    BadSource {
        /// What was given.
        given: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The manifest is not valid.
    #[error("{source_name}: {field}: {reason}")]
    BadManifest {
        /// Where the manifest came from.
        source_name: String,
        /// The field (`artifacts[2].sha256`).
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The manifest's signature is missing, wrong, or by a key that is not trusted.
    #[error("{source_name}: {reason}")]
    Signature {
        /// The signature (or key file).
        source_name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An artifact's SHA-256 is not the manifest's.
    #[error(
        "artifact {artifact} ({location}): SHA-256 mismatch: the manifest says {expected}, the file has {actual}; \
         nothing was installed. The file is damaged or was replaced: copy it into the mirror again \
         (or, if it was updated on purpose, put its `sha256sum` in the manifest)"
    )]
    Checksum {
        /// The component.
        artifact: &'static str,
        /// The file's full location.
        location: String,
        /// SHA-256 from the manifest.
        expected: String,
        /// SHA-256 of what was read.
        actual: String,
    },
    /// An artifact's size is not the manifest's.
    #[error(
        "artifact {artifact} ({location}): size mismatch: the manifest says {expected} bytes, the file has {actual}; \
         nothing was installed. The file is truncated or was replaced: copy it into the mirror again"
    )]
    Size {
        /// The component.
        artifact: &'static str,
        /// The file's full location.
        location: String,
        /// Size from the manifest.
        expected: u64,
        /// Size of what was read.
        actual: u64,
    },
    /// A file is bigger than allowed (the manifest's size, or the manifest cap).
    #[error(
        "{location} is larger than {cap} bytes (the size the manifest declares, or the cap); nothing was installed"
    )]
    TooLarge {
        /// The file's full location.
        location: String,
        /// The cap.
        cap: u64,
    },
    /// The source does not have a file.
    #[error(
        "{location}: not found ({reason}); nothing was installed. Check --from and that the mirror holds every file manifest.json lists"
    )]
    NotFound {
        /// The file's full location.
        location: String,
        /// `HTTP 404 Not Found`, `no such file`.
        reason: String,
    },
    /// A download (or an SSM call) failed after its retries.
    #[error("{url}: failed after {attempts} attempt(s): {reason}")]
    Download {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure (an HTTP status and what the server said, or `no answer`).
        reason: String,
        /// The transport's error or the timeout, when there was no answer.
        #[source]
        source: Option<crate::net::retry::NoAnswer>,
    },
    /// The HTTP client could not be set up (an unusable `--ca-bundle`, a proxy setting that
    /// is not a URL).
    #[error("cannot set up the HTTP client for {purpose}")]
    Client {
        /// What the client is for.
        purpose: &'static str,
        /// What was wrong.
        #[source]
        source: crate::net::client::Error,
    },
    /// A tarball holds something that is not installed (escape, link, unexpected place).
    #[error("artifact {artifact}: tarball entry {entry}: {reason}; nothing was installed")]
    BadArchive {
        /// The component.
        artifact: &'static str,
        /// The entry's path as stored.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// Two artifacts install the same path.
    #[error(
        "{path} would be installed by both {first} and {second}; nothing was installed. Remove one from the manifest"
    )]
    Conflict {
        /// The host path.
        path: PathBuf,
        /// The first artifact.
        first: &'static str,
        /// The second artifact.
        second: &'static str,
    },
    /// Local IO outside the apply module (staging, registration).
    #[error("cannot access {what} {path}")]
    Io {
        /// What the file is.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The SSM registration file is not what the SSM agent writes.
    #[error("{path}: {reason}")]
    BadRegistration {
        /// The file (under the root).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Signing the SSM request failed.
    #[error("cannot sign the SSM request to {endpoint}")]
    Sign {
        /// The endpoint.
        endpoint: String,
        /// The signer's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// SSM answered with an error.
    #[error(
        "SSM DeregisterManagedInstance for {instance_id} at {endpoint}: HTTP {status} {code}: {message}; {fix}. \
         Nothing was removed"
    )]
    Ssm {
        /// The managed instance.
        instance_id: String,
        /// The endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// The error code (`__type`).
        code: String,
        /// The message.
        message: String,
        /// What to do.
        fix: String,
    },
    /// Writing the files failed.
    #[error(transparent)]
    Apply(#[from] apply::Error),
}

impl exit::Classify for Error {
    fn exit_code(&self) -> exit::Code {
        match self {
            // The source is inconsistent with its own manifest, or the manifest or flags are
            // wrong: retrying cannot help, the host is unchanged, the user must fix the input.
            Error::BadSource { .. }
            | Error::BadManifest { .. }
            | Error::Checksum { .. }
            | Error::Size { .. }
            | Error::TooLarge { .. }
            | Error::NotFound { .. }
            | Error::BadArchive { .. }
            | Error::Conflict { .. }
            | Error::BadRegistration { .. }
            | Error::Signature { .. } => exit::Code::BadInput,
            Error::Io {
                what: "trusted key",
                source,
                ..
            } => exit::io_code(source),
            Error::Client { source, .. } => exit::Classify::exit_code(source),
            _ => exit::Code::Failure,
        }
    }
}

/// Which containerd to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerdChoice {
    /// The mirror's, unless a containerd the agent did not install is already present.
    #[default]
    Auto,
    /// The mirror's (containerd and runc), replacing (and backing up) any present.
    Mirror,
    /// The distribution's: containerd and runc from the mirror are skipped.
    Distro,
}

/// Where another containerd may be installed (host paths).
pub const DISTRO_CONTAINERD_PATHS: [&str; 2] = ["/usr/bin/containerd", "/usr/local/bin/containerd"];

/// What `install` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--from`.
    pub from: String,
    /// The root to install under.
    pub root: Root,
    /// Which containerd.
    pub containerd: ContainerdChoice,
    /// HTTP timeouts and retries.
    pub policy: fetch::Policy,
    /// Extra PEM roots for HTTPS mirrors.
    pub ca_bundle: Option<PathBuf>,
    /// The keys the manifest must be signed with.
    pub trust: signature::Trust,
}

/// Everything verified and staged, ready to install.
#[derive(Debug)]
pub struct Verified {
    /// Files to install, in order.
    pub files: Vec<StagedFile>,
    /// Each component installed, with its file and SHA-256.
    pub components: Vec<(Component, String, String)>,
    /// Components left out, and why.
    pub skipped: Vec<(Component, String)>,
    /// How the manifest's signature was checked.
    pub signature: signature::Verified,
    staging: tempfile::TempDir,
}

impl Verified {
    /// The staging directory (removed on drop).
    pub fn staging(&self) -> &Path {
        self.staging.path()
    }
}

/// Whether a containerd the agent did not install is present under `root`.
fn distro_containerd(root: &Root) -> Result<Option<&'static str>, Error> {
    let recorded = apply::manifest::load(root)?.unwrap_or_default();
    for p in DISTRO_CONTAINERD_PATHS {
        let real = root.path(Path::new(p))?;
        if real.exists() && !recorded.files.contains_key(Path::new(p)) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Which artifacts to install (pure given `distro`).
fn select(
    manifest: &Manifest,
    choice: ContainerdChoice,
    distro: Option<&str>,
) -> (Vec<artifacts::Artifact>, Vec<(Component, String)>) {
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for a in &manifest.artifacts {
        // Docker's tarball carries containerd and runc too.
        let runtime = matches!(
            a.component,
            Component::Containerd | Component::Runc | Component::Docker
        );
        match (runtime, choice, distro) {
            (true, ContainerdChoice::Distro, _) => {
                skipped.push((a.component, "--containerd distro".to_owned()));
            }
            (true, ContainerdChoice::Auto, Some(p)) => skipped.push((
                a.component,
                format!("the distribution's containerd is installed ({p}); use --containerd mirror to replace it"),
            )),
            _ => chosen.push(a.clone()),
        }
    }
    (chosen, skipped)
}

/// Reads the manifest, fetches and verifies every selected artifact, expands tarballs; writes
/// nothing under the root.
pub async fn verify(opts: &Options) -> Result<Verified, Error> {
    let source = fetch::Source::parse(&opts.from)?;
    let fetcher = fetch::Fetcher::new(source, opts.policy, opts.ca_bundle.as_deref())?;
    let staging = tempfile::Builder::new()
        .prefix("eks-node-agent-install.")
        .tempdir()
        .map_err(|source| Error::Io {
            what: "staging directory in",
            path: std::env::temp_dir(),
            source,
        })?;
    let manifest_location = fetcher.source().locate(artifacts::MANIFEST_NAME);
    let bytes = fetcher
        .fetch_small(
            artifacts::MANIFEST_NAME,
            artifacts::MAX_MANIFEST_BYTES,
            staging.path(),
        )
        .await?;
    let signature_location = fetcher.source().locate(signature::SIGNATURE_NAME);
    let signature_bytes = match fetcher
        .fetch_small(
            signature::SIGNATURE_NAME,
            signature::MAX_SIGNATURE_BYTES,
            staging.path(),
        )
        .await
    {
        Ok(b) => Some(b),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    // The signature is checked before the manifest is even parsed.
    let verified_signature = signature::verify_manifest(
        &bytes,
        signature_bytes.as_deref(),
        &opts.trust,
        &signature_location,
    )?;
    match &verified_signature {
        signature::Verified::Signed {
            key,
            trusted_comment,
        } => {
            tracing::info!(key = %key.display(), comment = %trusted_comment, "manifest signature verified");
        }
        signature::Verified::Unsigned(why) => {
            tracing::warn!(
                "--allow-unsigned: the manifest's signature is NOT checked ({why}); the SHA-256 sums are only as trustworthy as the mirror"
            );
        }
    }
    let manifest = artifacts::parse(&bytes, &manifest_location)?;
    let distro = distro_containerd(&opts.root)?;
    let (chosen, skipped) = select(&manifest, opts.containerd, distro);
    for (c, why) in &skipped {
        tracing::info!(component = %c, reason = %why, "skipped");
    }

    // 1. Every artifact copied and checked before anything else.
    let mut downloaded = Vec::new();
    for a in &chosen {
        let dest = staging
            .path()
            .join(format!("{}.download", a.component.name()));
        let location = fetcher.source().locate(&a.file);
        let got = fetcher.fetch_to(&a.file, a.size, &dest).await?;
        if got.size != a.size {
            return Err(Error::Size {
                artifact: a.component.name(),
                location,
                expected: a.size,
                actual: got.size,
            });
        }
        if got.sha256 != a.sha256 {
            return Err(Error::Checksum {
                artifact: a.component.name(),
                location,
                expected: a.sha256.clone(),
                actual: got.sha256,
            });
        }
        tracing::info!(component = %a.component, location = %location, sha256 = %got.sha256, size = got.size, "verified");
        downloaded.push((a.clone(), dest));
    }

    // 2. Tarballs expanded and checked; destinations must not collide.
    let mut files: Vec<(StagedFile, &'static str)> = Vec::new();
    for (a, dest) in &downloaded {
        let staged = match a.component.layout() {
            Layout::Single { path, mode } => vec![StagedFile {
                source: dest.clone(),
                sha256: a.sha256.clone(),
                path: PathBuf::from(path),
                mode,
            }],
            Layout::Tarball { prefix, dir } => {
                archive::expand(dest, a, prefix, dir, staging.path())?
            }
        };
        let mut staged = staged;
        for (i, (path, contents, mode)) in a.component.companions().into_iter().enumerate() {
            let source = staging
                .path()
                .join(format!("{}.companion{i}", a.component.name()));
            std::fs::write(&source, contents).map_err(|e| Error::Io {
                what: "staged file",
                path: source.clone(),
                source: e,
            })?;
            staged.push(StagedFile {
                source,
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(contents.as_bytes())),
                path: PathBuf::from(path),
                mode,
            });
        }
        for f in staged {
            if let Some((_, first)) = files.iter().find(|(g, _)| g.path == f.path) {
                return Err(Error::Conflict {
                    path: f.path.clone(),
                    first,
                    second: a.component.name(),
                });
            }
            files.push((f, a.component.name()));
        }
    }
    Ok(Verified {
        files: files.into_iter().map(|(f, _)| f).collect(),
        components: downloaded
            .iter()
            .map(|(a, _)| (a.component, a.file.clone(), a.sha256.clone()))
            .collect(),
        skipped,
        signature: verified_signature,
        staging,
    })
}

/// Installs what [`verify`] staged under `root`. Blocking.
pub fn install(root: &Root, verified: &Verified) -> Result<apply::Report, Error> {
    Ok(Applier::new(root.clone()).install_files(&verified.files)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn manifest() -> Manifest {
        let a = |component| artifacts::Artifact {
            component,
            file: "f".into(),
            sha256: "0".repeat(64),
            size: 1,
        };
        Manifest {
            artifacts: vec![
                a(Component::Containerd),
                a(Component::Runc),
                a(Component::Kubelet),
            ],
        }
    }

    #[test]
    fn containerd_choice() {
        let m = manifest();
        let names =
            |v: Vec<artifacts::Artifact>| v.into_iter().map(|a| a.component).collect::<Vec<_>>();
        let (c, s) = select(&m, ContainerdChoice::Auto, None);
        assert_eq!(
            names(c),
            [Component::Containerd, Component::Runc, Component::Kubelet]
        );
        assert!(s.is_empty());
        let (c, s) = select(&m, ContainerdChoice::Auto, Some("/usr/bin/containerd"));
        assert_eq!(names(c), [Component::Kubelet]);
        assert!(s[0].1.contains("--containerd mirror"), "{s:?}");
        let (c, _) = select(&m, ContainerdChoice::Mirror, Some("/usr/bin/containerd"));
        assert_eq!(c.len(), 3);
        let (c, s) = select(&m, ContainerdChoice::Distro, None);
        assert_eq!(names(c), [Component::Kubelet]);
        assert_eq!(s.len(), 2);
    }
}
