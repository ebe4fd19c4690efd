//! Config source URIs: `imds://user-data` and `file:///path` (a file, or a directory whose
//! `*.yaml`, `*.yml` and `*.json` files are read in lexical order).

use std::path::{Path, PathBuf};

use super::Error;

/// The default chain when no `-c` is given.
pub const DEFAULT_SOURCES: [&str; 2] = ["imds://user-data", "file:///etc/eks-node-agent/config.d/"];
/// File extensions read from a directory source.
const DIR_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// A parsed `-c/--config-source` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// EC2 user data, through IMDS.
    ImdsUserData,
    /// A file or directory on the host.
    File(PathBuf),
}

impl Source {
    /// Parses a source URI. `file://relative/path` is taken relative to the working directory
    /// (a convenience; `file:///abs` is the standard form).
    pub fn parse(uri: &str) -> Result<Source, Error> {
        if uri == "imds://user-data" {
            return Ok(Source::ImdsUserData);
        }
        if let Some(rest) = uri.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(bad_uri(
                    uri,
                    "the path is empty; write file:///absolute/path",
                ));
            }
            return Ok(Source::File(PathBuf::from(rest)));
        }
        if uri.starts_with("imds://") {
            return Err(bad_uri(uri, "the only IMDS source is imds://user-data"));
        }
        Err(bad_uri(
            uri,
            "unsupported scheme; use imds://user-data or file:///path (a file or a directory)",
        ))
    }
}

fn bad_uri(uri: &str, reason: &str) -> Error {
    Error::BadSourceUri {
        uri: uri.to_owned(),
        reason: reason.to_owned(),
    }
}

/// One file's bytes, labelled with the URI that names it.
#[derive(Debug)]
pub struct SourceBytes {
    /// `file:///...` of the file itself (for directories, each file gets its own).
    pub label: String,
    /// The raw bytes.
    pub bytes: Vec<u8>,
}

/// Reads a file source. A directory yields its config files in lexical order. A missing path
/// is an error when the user named it, and nothing when it is the default drop-in directory.
pub fn read_files(uri: &str, path: &Path, required: bool) -> Result<Vec<SourceBytes>, Error> {
    let read_err = |source: std::io::Error| Error::Read {
        source_uri: uri.to_owned(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    if !meta.is_dir() {
        let bytes = read_source(path).map_err(read_err)?;
        return Ok(vec![SourceBytes {
            label: uri.to_owned(),
            bytes,
        }]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| DIR_EXTENSIONS.contains(&e))
                && p.is_file()
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let label = format!("file://{}", p.display());
            let bytes = read_source(&p).map_err(|source| Error::Read {
                source_uri: label.clone(),
                source,
            })?;
            Ok(SourceBytes { label, bytes })
        })
        .collect()
}

/// A source file's bytes, at most [`super::limits::MAX_SOURCE_BYTES`] (a bigger file, or a
/// device that never ends, is an error naming the limit).
fn read_source(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::model::bounded::read_capped(path, super::limits::MAX_SOURCE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_known_schemes() {
        assert_eq!(
            Source::parse("imds://user-data").unwrap(),
            Source::ImdsUserData
        );
        assert_eq!(
            Source::parse("file:///etc/x.yaml").unwrap(),
            Source::File(PathBuf::from("/etc/x.yaml"))
        );
        assert!(Source::parse("http://x").is_err());
        assert!(Source::parse("imds://meta-data").is_err());
        assert!(Source::parse("file://").is_err());
    }

    #[test]
    fn directory_is_read_in_lexical_order_and_filters_extensions() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.json", "c.txt", "10.yml"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let uri = format!("file://{}", dir.path().display());
        let files = read_files(&uri, dir.path(), true).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| String::from_utf8(f.bytes.clone()).unwrap())
            .collect();
        assert_eq!(names, ["10.yml", "a.json", "b.yaml"]);
    }

    #[test]
    fn missing_default_directory_is_empty_but_missing_named_file_is_an_error() {
        let p = Path::new("/nonexistent/eks-node-agent/config.d");
        assert!(
            read_files("file:///nonexistent", p, false)
                .unwrap()
                .is_empty()
        );
        assert!(read_files("file:///nonexistent", p, true).is_err());
    }
}
