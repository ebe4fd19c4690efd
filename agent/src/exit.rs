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

/// The exit code of a failure to read a file the user named, by whether the user can fix it:
/// a path that does not exist, is a directory (or goes through a file), is not readable by the
/// agent, or holds something other than text is the input (2); the host failing to read a file
/// that is there (an I/O error, out of memory or file descriptors) is a runtime failure (1).
pub fn io_code(err: &std::io::Error) -> Code {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound
        | ErrorKind::IsADirectory
        | ErrorKind::NotADirectory
        | ErrorKind::PermissionDenied
        | ErrorKind::InvalidData
        | ErrorKind::InvalidInput
        | ErrorKind::InvalidFilename
        | ErrorKind::FileTooLarge => Code::BadInput,
        // A symlink loop has no stable ErrorKind.
        _ if err.raw_os_error() == Some(libc::ELOOP) => Code::BadInput,
        _ => Code::Failure,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_are_the_input_unless_the_host_failed() {
        let dir = std::env::temp_dir();
        let is_dir = std::fs::read(&dir).unwrap_err();
        let missing = std::fs::read(dir.join("eks-node-agent-missing/x")).unwrap_err();
        assert_eq!(io_code(&is_dir), Code::BadInput, "{is_dir}");
        assert_eq!(io_code(&missing), Code::BadInput, "{missing}");
        let eio = std::io::Error::from_raw_os_error(5);
        assert_eq!(io_code(&eio), Code::Failure);
        let emfile = std::io::Error::from_raw_os_error(24);
        assert_eq!(io_code(&emfile), Code::Failure);
    }
}
