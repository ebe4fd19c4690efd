//! Exit codes, as documented in the design: 0 success, 1 runtime failure, 2 bad input,
//! 3 nothing to do. A leaf: each module's error implements [`Classify`]; the CLI maps an
//! error chain to its code (`cli::exit_code`).

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

/// A generic bad-input error for the CLI edge (flag combinations and the like).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl Classify for BadInput {
    fn exit_code(&self) -> Code {
        Code::BadInput
    }
}
