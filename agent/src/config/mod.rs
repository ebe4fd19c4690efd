//! The NodeConfig API (`node.eks.aws/v1alpha1`), its sources, user-data decoding, merging
//! and validation.
//!
//! `load` is the whole pipeline: source URIs -> bytes -> decoded text payloads -> typed
//! documents -> merged NodeConfig (+ which document set each field) -> validated.

pub mod bootstrap_flags;
pub mod decode;
mod discovery;
pub mod expression;
mod imds;
pub mod limits;
pub mod merge;
mod offline;
pub mod parse;
pub mod secrets;
pub mod source;
pub mod types;
pub mod validate;

pub use imds::{ImdsUserData, load_with_imds};
pub use merge::Provenance;
pub use source::{DEFAULT_SOURCES, Source};
pub use types::*;
pub use validate::Problem;

use crate::exit::{Classify, Code};

/// Errors reading, decoding, merging or validating configuration. All are bad input (exit 2)
/// except a failure to reach IMDS for user data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source URI that is not understood.
    #[error("config source \"{uri}\": {reason}")]
    BadSourceUri {
        /// The URI as given.
        uri: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// A source that cannot be read.
    #[error("cannot read config source {source_uri}")]
    Read {
        /// The source URI.
        source_uri: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// User data could not be fetched from IMDS.
    #[error("cannot fetch user data for imds://user-data")]
    UserData {
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Bytes that do not decode (base64, gzip, MIME, UTF-8).
    #[error("config source {source_uri}: {reason}")]
    Decode {
        /// The source URI.
        source_uri: String,
        /// What is wrong.
        reason: decode::DecodeError,
    },
    /// YAML/JSON that does not parse.
    #[error("{at}: line {line}, column {column}: {message}")]
    Syntax {
        /// Source and document.
        at: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's complaint.
        message: String,
    },
    /// A field with the wrong type, an unknown field, or a wrong apiVersion/kind.
    #[error("{at}: {path}: {message}")]
    Field {
        /// Source and document.
        at: String,
        /// The field path.
        path: String,
        /// What is wrong, with the nearest known field for a typo.
        message: String,
    },
    /// The merged configuration is invalid.
    #[error("the configuration is invalid:{}", list_problems(problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// `--strict` and the configuration has warnings.
    #[error("--strict: the configuration has warnings:{}", warnings.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    Strict {
        /// Every warning.
        warnings: Vec<Problem>,
    },
    /// A legacy bootstrap.sh flag that cannot be translated.
    #[error("bootstrap flags: {0}")]
    BootstrapFlag(String),
    /// A setting that validation let through but that does not parse where it is used.
    #[error("{path}: {reason}")]
    Setting {
        /// The field.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A bug: a value that round-trips through serde failed to.
    #[error("internal error while merging configuration: {0}")]
    Internal(String),
}

/// The most problems an error lists; the rest are counted.
pub const MAX_PROBLEMS_SHOWN: usize = 32;

fn list_problems(problems: &[Problem]) -> String {
    let mut out: String = problems
        .iter()
        .take(MAX_PROBLEMS_SHOWN)
        .map(|p| format!("\n  - {p}"))
        .collect();
    if problems.len() > MAX_PROBLEMS_SHOWN {
        out.push_str(&format!(
            "\n  ... and {} more problems",
            problems.len() - MAX_PROBLEMS_SHOWN
        ));
    }
    out
}

impl Classify for Error {
    fn exit_code(&self) -> Code {
        match self {
            Error::UserData { .. } | Error::Internal(_) => Code::Failure,
            Error::Read { source, .. } => crate::exit::io_code(source),
            _ => Code::BadInput,
        }
    }
}

/// Where user data comes from (IMDS on EC2; a fixed value in tests).
pub trait UserDataFetch {
    /// The raw user data, or `None` when the instance has none.
    fn fetch_user_data(&self) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>>;
}

/// No user data: for hosts without IMDS.
#[derive(Debug, Clone, Copy)]
pub struct NoUserData;

impl UserDataFetch for NoUserData {
    fn fetch_user_data(&self) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(None)
    }
}

/// Fixed user data bytes (tests, and `bootstrap`).
#[derive(Debug, Clone)]
pub struct StaticUserData(pub Vec<u8>);

impl UserDataFetch for StaticUserData {
    fn fetch_user_data(&self) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Some(self.0.clone()))
    }
}

/// The result of loading: the merged, validated config and where each field came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged configuration.
    pub config: NodeConfig,
    /// Field path -> the document that set it.
    pub provenance: Provenance,
    /// Every document read, in merge order.
    pub documents: Vec<String>,
    /// What is accepted but probably a mistake (unknown feature gates and `disabledMounts`
    /// names, CA certificates outside their validity window); errors under `--strict`
    /// ([`Loaded::check_warnings`]).
    pub warnings: Vec<Problem>,
}

impl Loaded {
    /// Logs every warning; under `strict`, refuses the configuration when there is any.
    pub fn check_warnings(&self, strict: bool) -> Result<(), Error> {
        if strict && !self.warnings.is_empty() {
            return Err(Error::Strict {
                warnings: self.warnings.clone(),
            });
        }
        for w in &self.warnings {
            tracing::warn!("{w}");
        }
        Ok(())
    }
}

/// Reads every source (in order), decodes, parses and merges, then validates.
/// An empty `uris` means the default chain, in which a missing drop-in directory and
/// unreachable IMDS are not errors.
pub fn load(uris: &[String], user_data: &dyn UserDataFetch) -> Result<Loaded, Error> {
    let defaults: Vec<String>;
    let (uris, explicit) = if uris.is_empty() {
        defaults = DEFAULT_SOURCES.iter().map(|s| (*s).to_owned()).collect();
        (&defaults[..], false)
    } else {
        (uris, true)
    };
    let sources = uris
        .iter()
        .map(|u| Source::parse(u).map(|s| (u, s)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut docs = Vec::new();
    let mut read = Vec::new();
    for (uri, source) in sources {
        match source {
            Source::ImdsUserData => {
                let bytes = match user_data.fetch_user_data() {
                    Ok(b) => b,
                    Err(e) if !explicit => {
                        tracing::warn!(error = %e, "no user data from IMDS; continuing with the other default sources");
                        None
                    }
                    Err(source) => return Err(Error::UserData { source }),
                };
                if let Some(bytes) = bytes {
                    read.push(uri.clone());
                    docs.extend(documents_from(uri, &bytes, decode::Mode::UserData)?);
                }
            }
            Source::File(path) => {
                for file in source::read_files(uri, &path, explicit)? {
                    read.push(file.label.clone());
                    docs.extend(documents_from(
                        &file.label,
                        &file.bytes,
                        decode::Mode::File,
                    )?);
                }
            }
        }
    }
    finish(docs, &read)
}

/// Decodes and parses one source's bytes into documents.
pub fn documents_from(
    label: &str,
    bytes: &[u8],
    mode: decode::Mode,
) -> Result<Vec<parse::Document>, Error> {
    let payloads = decode::decode(bytes, mode).map_err(|reason| Error::Decode {
        source_uri: label.to_owned(),
        reason,
    })?;
    let mut docs = Vec::new();
    for p in payloads {
        docs.extend(parse::parse_documents(label, &p.origin, &p.text)?);
    }
    tracing::debug!(source = label, documents = docs.len(), "read config source");
    Ok(docs)
}

/// Merges and validates parsed documents; `sources` names what was read (for errors when
/// no document sets a required field).
pub fn finish(docs: Vec<parse::Document>, sources: &[String]) -> Result<Loaded, Error> {
    finish_at(docs, sources, std::time::SystemTime::now())
}

/// [`finish`] with the time that certificate validity is checked against.
pub fn finish_at(
    docs: Vec<parse::Document>,
    sources: &[String],
    now: std::time::SystemTime,
) -> Result<Loaded, Error> {
    if docs.len() > limits::MAX_DOCUMENTS {
        return Err(Error::Field {
            at: docs[limits::MAX_DOCUMENTS].label.clone(),
            path: "(document)".into(),
            message: format!(
                "more than {} NodeConfig documents in all sources (the document limit); merge them",
                limits::MAX_DOCUMENTS
            ),
        });
    }
    let (mut config, provenance) = merge::merge(&docs)?;
    config.api_version = API_VERSION.to_owned();
    config.kind = KIND.to_owned();
    let documents: Vec<String> = docs.into_iter().map(|d| d.label).collect();
    let warnings = validate::validate(&config, &provenance, sources, now)
        .map_err(|problems| Error::Invalid { problems })?;
    Ok(Loaded {
        config,
        provenance,
        documents,
        warnings,
    })
}

/// The config as a JSON value with every secret replaced by `<redacted>` (for `config show`
/// and `bootstrap --print-config`); [`secrets`] lists them.
pub fn redacted(config: &NodeConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or(serde_json::Value::Null);
    secrets::redact(&mut value);
    value
}
