//! Software versions as the host's programs print them (`kubelet --version`,
//! `containerd --version`, the API server's `gitVersion`).

use serde::{Deserialize, Serialize};

/// A `major.minor.patch` version. Read and written as `[major, minor, patch]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "(u32, u32, u32)", into = "(u32, u32, u32)")]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

/// The newest kubelet minor whose settings the agent knows (nodeadm's version toggles run to
/// 1.34): what `init --root`/`--dry-run` assume when no kubelet is installed and no
/// `--kubelet-version` is given.
pub const NEWEST_KNOWN_KUBELET: Version = Version {
    major: 1,
    minor: 34,
    patch: 0,
};

impl Version {
    /// Whether this is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl From<(u32, u32, u32)> for Version {
    fn from((major, minor, patch): (u32, u32, u32)) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl From<Version> for (u32, u32, u32) {
    fn from(v: Version) -> Self {
        (v.major, v.minor, v.patch)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Version {
    /// Parses one version word: `v1.33.5-eks-3025e55`, `1.7.24`, `2.0.0+unknown`,
    /// `1.6.20~ds1`. A missing patch reads as 0.
    pub fn parse_word(word: &str) -> Option<Version> {
        let w = word.strip_prefix('v').unwrap_or(word);
        let mut parts = w.split(['.', '-', '~', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// The first version word of a program's `--version` output: `Kubernetes v1.33.5-eks-1`,
    /// `containerd github.com/containerd/containerd v1.7.24 <commit>`,
    /// `containerd containerd.io 2.0.0 <commit>`.
    pub fn find_in(output: &str) -> Option<Version> {
        output.split_whitespace().find_map(Version::parse_word)
    }
}

/// How many minor versions a kubelet may be behind its API server (Kubernetes' version
/// skew policy).
pub const MAX_KUBELET_MINORS_BEHIND: u32 = 3;

/// Where a kubelet stands against its API server under the version skew policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeletSkew {
    /// Same major, a minor from the server's down to [`MAX_KUBELET_MINORS_BEHIND`] behind.
    Supported,
    /// Another major, or a newer minor than the server's.
    NewerThanServer,
    /// More than [`MAX_KUBELET_MINORS_BEHIND`] minors behind.
    TooOld,
}

/// The skew policy for `kubelet` against `server` (patches do not matter).
pub fn kubelet_skew(kubelet: &Version, server: &Version) -> KubeletSkew {
    if kubelet.major != server.major || kubelet.minor > server.minor {
        KubeletSkew::NewerThanServer
    } else if kubelet.minor < server.minor.saturating_sub(MAX_KUBELET_MINORS_BEHIND) {
        KubeletSkew::TooOld
    } else {
        KubeletSkew::Supported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_program_output() {
        let v = |text| Version::find_in(text).map(<(u32, u32, u32)>::from);
        assert_eq!(
            v("containerd github.com/containerd/containerd v1.7.24 88bf19b\n"),
            Some((1, 7, 24))
        );
        assert_eq!(
            v("containerd containerd.io 2.0.0 207ad71\n"),
            Some((2, 0, 0))
        );
        assert_eq!(
            v("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n"),
            Some((1, 6, 20))
        );
        assert_eq!(v("Kubernetes v1.33.5-eks-3025e55\n"), Some((1, 33, 5)));
        assert_eq!(v(""), None);
        assert_eq!(Version::from((1, 2, 3)).to_string(), "v1.2.3");
    }
}
