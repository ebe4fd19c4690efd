//! Exit codes, as documented in the design: 0 success, 1 runtime failure, 2 bad input,
//! 3 nothing to do.

/// The process exit status of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The command did what was asked.
    Success = 0,
    /// A runtime failure: network, AWS, host.
    Failure = 1,
    /// Bad input: configuration or flags. Nothing on the host was changed.
    BadInput = 2,
    /// Nothing to do, or not applicable on this host.
    NothingToDo = 3,
}

impl From<Code> for std::process::ExitCode {
    fn from(code: Code) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Errors that know whether they are the user's input being wrong.
pub trait Classify {
    /// The exit code this error maps to.
    fn exit_code(&self) -> Code;
}

/// Maps an error chain to an exit code: the first error in the chain that classifies
/// itself wins; anything else is a runtime failure.
pub fn classify(err: &anyhow::Error) -> Code {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::config::Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::auth::Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::facts::Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::compute::values::Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::compute::Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::facts::instance_types::Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::daemon::Error>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::install::Error>() {
            return e.exit_code();
        }
        if cause.downcast_ref::<BadInput>().is_some() {
            return Code::BadInput;
        }
    }
    Code::Failure
}

/// A generic bad-input error for the CLI edge (flag combinations and the like).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);
