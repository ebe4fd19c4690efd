//! The mirror manifest's signature: minisign (Ed25519 over the BLAKE2b-512 hash of
//! `manifest.json`), in `manifest.json.minisig` next to it, checked with the public keys the
//! operator pins on the host. The SHA-256 sums in the manifest protect the artifacts only if
//! the manifest itself is the one the operator trusts: a mirror that can replace an artifact
//! can replace its sum too, but not sign the new manifest.
//!
//! One function, [`verify_manifest`], for `install --from` and `upgrade --from`.

use std::path::{Path, PathBuf};

use super::Error;

/// The signature's name, next to the manifest.
pub const SIGNATURE_NAME: &str = "manifest.json.minisig";
/// Where the operator pins the mirror's public key (minisign's `.pub` format).
pub const DEFAULT_TRUSTED_KEY: &str = "/etc/eks-node-agent/mirror.pub";
/// Largest signature file read (a minisign signature is about 300 bytes).
pub const MAX_SIGNATURE_BYTES: u64 = 4096;
/// Largest public key file read.
const MAX_KEY_BYTES: usize = 4096;

/// The keys a manifest may be signed with, and whether an unsigned mirror is accepted.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<(PathBuf, minisign_verify::PublicKey)>,
    allow_unsigned: bool,
}

/// What the check found: signed by a trusted key, or accepted unsigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Signed; the key's file and the signature's trusted (signed) comment.
    Signed {
        /// The key file that verified it.
        key: PathBuf,
        /// The signed comment (minisign puts a timestamp and the file name there).
        trusted_comment: String,
    },
    /// Not verified, as `--allow-unsigned` allows; why.
    Unsigned(String),
}

impl Trust {
    /// Reads the public keys: each of `keys`, or the default file under `root_default` (the
    /// host's `/etc/eks-node-agent/mirror.pub`) when none is given and it exists.
    pub fn load(
        keys: &[PathBuf],
        root_default: &Path,
        allow_unsigned: bool,
    ) -> Result<Trust, Error> {
        let paths: Vec<PathBuf> = if keys.is_empty() {
            if root_default.exists() {
                vec![root_default.to_owned()]
            } else {
                Vec::new()
            }
        } else {
            keys.to_vec()
        };
        let keys = paths
            .into_iter()
            .map(|path| read_key(&path).map(|k| (path, k)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trust {
            keys,
            allow_unsigned,
        })
    }

    /// Trust built from key files' contents (tests, and `upgrade`'s pinned keys).
    pub fn from_keys(
        keys: Vec<(PathBuf, minisign_verify::PublicKey)>,
        allow_unsigned: bool,
    ) -> Trust {
        Trust {
            keys,
            allow_unsigned,
        }
    }
}

fn read_key(path: &Path) -> Result<minisign_verify::PublicKey, Error> {
    let bad = |reason: String| Error::Signature {
        source_name: path.display().to_string(),
        reason,
    };
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_BYTES as u64).read_to_string(&mut text))
        .map_err(|source| Error::Io {
            what: "trusted key",
            path: path.to_owned(),
            source,
        })?;
    // minisign writes "untrusted comment: ..." then the key; a bare base64 key is accepted too.
    let decoded = if text.trim_start().starts_with("untrusted comment:") {
        minisign_verify::PublicKey::decode(text.trim())
    } else {
        minisign_verify::PublicKey::from_base64(text.trim())
    };
    decoded.map_err(|e| {
        bad(format!(
            "not a minisign public key ({e}); it is the file `minisign -G` writes (mirror.pub)"
        ))
    })
}

/// Checks `signature` (the bytes of `manifest.json.minisig`, `None` when the mirror has none)
/// over `manifest` with `trust`. `location` names the signature in errors. Unsigned, wrongly
/// signed or a signature by another key: bad input, nothing is installed.
pub fn verify_manifest(
    manifest: &[u8],
    signature: Option<&[u8]>,
    trust: &Trust,
    location: &str,
) -> Result<Verified, Error> {
    let bad = |reason: String| Error::Signature {
        source_name: location.to_owned(),
        reason,
    };
    if trust.keys.is_empty() {
        if trust.allow_unsigned {
            return Ok(Verified::Unsigned(format!(
                "no trusted key is configured ({DEFAULT_TRUSTED_KEY} or --trusted-key)"
            )));
        }
        return Err(bad(format!(
            "no trusted key to check the mirror's signature with: put the mirror's minisign public key at {DEFAULT_TRUSTED_KEY} (or pass --trusted-key FILE); --allow-unsigned installs without checking"
        )));
    }
    let Some(signature) = signature else {
        if trust.allow_unsigned {
            return Ok(Verified::Unsigned(format!(
                "the mirror has no {SIGNATURE_NAME}"
            )));
        }
        return Err(bad(
            "not found: the mirror is not signed. Sign its manifest with scripts/sign-mirror.sh (minisign), or pass --allow-unsigned to install without checking".into(),
        ));
    };
    let text = std::str::from_utf8(signature)
        .map_err(|_| bad("is not a minisign signature (not text)".into()))?;
    let signature = minisign_verify::Signature::decode(text)
        .map_err(|e| bad(format!("is not a minisign signature ({e})")))?;
    let mut only_other_keys = true;
    for (path, key) in &trust.keys {
        match key.verify(manifest, &signature, false) {
            Ok(()) => {
                return Ok(Verified::Signed {
                    key: path.clone(),
                    trusted_comment: crate::model::text::shorten(signature.trusted_comment())
                        .into_owned(),
                });
            }
            Err(minisign_verify::Error::UnexpectedKeyId) => {}
            Err(minisign_verify::Error::UnexpectedAlgorithm) => {
                return Err(bad(
                    "is a legacy (not prehashed) minisign signature; sign again with minisign 0.10 or later (scripts/sign-mirror.sh)".into(),
                ));
            }
            Err(_) => only_other_keys = false,
        }
    }
    let keys = trust
        .keys
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if only_other_keys {
        return Err(bad(format!(
            "was made with a key that is not trusted (trusted: {keys}); nothing was installed. Pin the mirror's public key, or have the mirror signed with the pinned key"
        )));
    }
    Err(bad(format!(
        "does not match manifest.json (checked with {keys}): the manifest was changed after it was signed; nothing was installed"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_trusted_is_refused_unless_allowed() {
        let none = Trust::default();
        let err = verify_manifest(b"{}", None, &none, "m").unwrap_err();
        assert!(err.to_string().contains("no trusted key"), "{err}");
        let allowed = Trust::from_keys(Vec::new(), true);
        assert!(matches!(
            verify_manifest(b"{}", None, &allowed, "m").unwrap(),
            Verified::Unsigned(_)
        ));
    }
}
