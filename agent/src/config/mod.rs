//! The NodeConfig API (`node.eks.aws/v1alpha1`), its sources, user-data decoding, merging
//! and validation.

/// Errors reading, decoding, merging or validating configuration. All are bad input (exit 2)
/// except failures to reach a source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source could not be read.
    #[error("cannot read config source {source_uri}")]
    Read {
        /// The source URI.
        source_uri: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            Error::Read { .. } => crate::exit::Code::Failure,
        }
    }
}
