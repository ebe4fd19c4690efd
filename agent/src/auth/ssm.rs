//! SSM hybrid activations.
//!
//! After `amazon-ssm-agent -register`, the SSM agent keeps short-lived credentials for the
//! activation's IAM role in a shared credentials file (profile `default`), by default
//! `/root/.aws/credentials`; `AWS_SHARED_CREDENTIALS_FILE` names another. The token path reads
//! that file through aws-config's profile provider ([`super::credentials::Source::SsmFile`]).
//!
//! Registration: `amazon-ssm-agent` accepts the activation code only as its `-code` flag (its
//! flag parser has no stdin or file option), so the code is in the child's arguments for the
//! few seconds registration takes. We read the code from a file or stdin (never from our own
//! arguments), never log the command line ([`RegisterCommand`]'s `Debug` redacts the code), and
//! scrub the code from the agent's output before it reaches an error message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::Error;
use crate::model::Region;

/// The most bytes read of an activation code file (the code is 20 characters).
const MAX_ACTIVATION_FILE_BYTES: usize = 4096;

/// The profile the SSM agent writes in its credentials file.
pub const SSM_PROFILE: &str = "default";
/// Where the SSM agent writes credentials when `AWS_SHARED_CREDENTIALS_FILE` is unset.
pub const DEFAULT_SSM_CREDENTIALS_FILE: &str = "/root/.aws/credentials";
/// The SSM agent program, looked up on `PATH`.
pub const SSM_AGENT_PROGRAM: &str = "amazon-ssm-agent";
/// How long registration may take before it is abandoned.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(120);
/// What the SSM agent prints on success, followed by the managed instance id.
const REGISTERED_MARKER: &str =
    "Successfully registered the instance with AWS SSM using Managed instance-id:";

/// The credentials file of an SSM hybrid node: `AWS_SHARED_CREDENTIALS_FILE` or the default.
pub fn credentials_file(env: &super::credentials::Env) -> PathBuf {
    env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SSM_CREDENTIALS_FILE))
}

/// An activation code: a secret; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode(String);

impl std::fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivationCode(** redacted **)")
    }
}

impl ActivationCode {
    /// Parses a code read from `source_name` (trailing newline allowed). Codes are 20
    /// characters of base64 (`A-Z a-z 0-9 + / =`); we accept 8 to 256 of them.
    pub fn parse(raw: &str, source_name: &str) -> Result<ActivationCode, Error> {
        let code = raw.trim();
        let ok = (8..=256).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if ok {
            Ok(ActivationCode(code.to_owned()))
        } else {
            Err(Error::InvalidInput {
                source_name: source_name.to_owned(),
                field: "SSM activation code",
                reason:
                    "not an activation code (8 to 256 characters of A-Z, a-z, 0-9, '+', '/', '='); \
                         use the ActivationCode that `aws ssm create-activation` returned"
                        .into(),
            })
        }
    }

    /// Reads the code from a file (`-` for stdin).
    pub fn read(path: &Path) -> Result<ActivationCode, Error> {
        let read_err = |source| Error::Read {
            what: "SSM activation code file",
            path: path.to_owned(),
            source,
        };
        use crate::model::bounded;
        let raw = if path == Path::new("-") {
            bounded::read_capped_from(std::io::stdin(), MAX_ACTIVATION_FILE_BYTES)
                .and_then(bounded::utf8)
                .map_err(read_err)?
        } else {
            bounded::read_to_string_capped(path, MAX_ACTIVATION_FILE_BYTES).map_err(read_err)?
        };
        ActivationCode::parse(&raw, &path.display().to_string())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

/// An SSM hybrid activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The activation id (a UUID; not secret).
    pub id: String,
    /// The activation code (secret).
    pub code: ActivationCode,
    /// The region the activation was created in.
    pub region: Region,
}

/// The `amazon-ssm-agent -register` invocation.
#[derive(Clone)]
pub struct RegisterCommand {
    program: PathBuf,
    activation: Activation,
}

impl std::fmt::Debug for RegisterCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterCommand")
            .field("program", &self.program)
            .field("id", &self.activation.id)
            .field("region", &self.activation.region)
            .field("code", &"** redacted **")
            .finish()
    }
}

impl RegisterCommand {
    /// Registration with the SSM agent found on `PATH`.
    pub fn new(activation: Activation) -> RegisterCommand {
        RegisterCommand::with_program(SSM_AGENT_PROGRAM, activation)
    }

    /// Registration with a given SSM agent binary.
    pub fn with_program(program: impl Into<PathBuf>, activation: Activation) -> RegisterCommand {
        RegisterCommand {
            program: program.into(),
            activation,
        }
    }

    /// The arguments, code included (`-y` answers the "already registered" prompt, since there
    /// is no terminal). Only [`RegisterCommand::run`] uses them.
    fn args(&self) -> Vec<String> {
        vec![
            "-register".into(),
            "-y".into(),
            "-id".into(),
            self.activation.id.clone(),
            "-region".into(),
            self.activation.region.as_str().into(),
            "-code".into(),
            self.activation.code.expose().into(),
        ]
    }

    /// Runs the registration (bounded by `timeout`) and returns the managed instance id.
    pub async fn run(&self, timeout: Duration) -> Result<String, Error> {
        tracing::info!(program = %self.program.display(), activation_id = %self.activation.id, region = %self.activation.region, "registering with SSM");
        let child = tokio::process::Command::new(&self.program)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::SsmRegistration {
                reason: format!(
                    "cannot run {}: {e}; install the SSM agent (package amazon-ssm-agent) first",
                    self.program.display()
                ),
                bad_activation: false,
            })?;
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| Error::SsmRegistration {
                reason: format!(
                    "{} -register did not finish within {timeout:?}",
                    self.program.display()
                ),
                bad_activation: false,
            })?
            .map_err(|e| Error::SsmRegistration {
                reason: format!("waiting for the SSM agent: {e}"),
                bad_activation: false,
            })?;
        let text = scrub(
            &format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            &self.activation.code,
        );
        if out.status.success() {
            parse_instance_id(&text).ok_or_else(|| Error::SsmRegistration {
                reason: "the SSM agent exited 0 but printed no managed instance id".into(),
                bad_activation: false,
            })
        } else {
            Err(classify_failure(&text, &self.activation))
        }
    }
}

/// Removes every occurrence of the code from the agent's output.
pub fn scrub(output: &str, code: &ActivationCode) -> String {
    output.replace(code.expose(), "***")
}

/// The managed instance id (`mi-...`) from the SSM agent's success line.
pub fn parse_instance_id(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let rest = line.split(REGISTERED_MARKER).nth(1)?;
        let id = rest.trim();
        (id.starts_with("mi-") || id.starts_with("i-")).then(|| id.to_owned())
    })
}

/// Maps the SSM agent's failure output to a clear error. Known failures of the activation
/// (`ActivationExpired`, `InvalidActivationId`, `InvalidActivation`) are bad input; anything
/// else is a runtime failure carrying the agent's last meaningful line.
pub fn classify_failure(output: &str, activation: &Activation) -> Error {
    let id = &activation.id;
    let region = &activation.region;
    let (reason, bad_activation) = if output.contains("ActivationExpired") {
        (
            format!(
                "activation {id} has expired; create a new one (`aws ssm create-activation --region {region} ...`) \
                 and put its id and code in the NodeConfig"
            ),
            true,
        )
    } else if output.contains("InvalidActivationId") {
        (
            format!(
                "activation id {id} is not known to SSM in {region}; check the activation id and that the \
                 region is the one the activation was created in"
            ),
            true,
        )
    } else if output.contains("InvalidActivation") {
        (
            format!(
                "activation {id} was rejected by SSM in {region}: the code does not match the id, or the \
                 activation was deleted or has reached its registration limit; create a new activation"
            ),
            true,
        )
    } else if output.contains("Try running as sudo") || output.contains("permission denied") {
        (
            "the SSM agent cannot save its registration: run as root".to_owned(),
            false,
        )
    } else {
        let last = output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .rfind(|l| l.contains("ERROR") || l.contains("failed") || l.contains("error"))
            .or_else(|| output.lines().map(str::trim).rfind(|l| !l.is_empty()))
            .unwrap_or("no output");
        (format!("amazon-ssm-agent -register failed: {last}"), false)
    };
    Error::SsmRegistration {
        reason,
        bad_activation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "QC2CV0/lRfn+LTqf23Bf";

    fn activation() -> Activation {
        Activation {
            id: "751a488c-e9c7-4539-8171-15d48f4fd90a".into(),
            code: ActivationCode::parse(&format!("{CODE}\n"), "test").unwrap(),
            region: Region::parse("us-west-2", "test").unwrap(),
        }
    }

    #[test]
    fn known_failures_map_to_clear_errors() {
        let a = activation();
        let expired = "2018-11-01 00:10:19 ERROR Registration failed due to error registering the instance with AWS SSM. ActivationExpired: \n\tstatus code: 400, request id:";
        let e = classify_failure(expired, &a);
        assert!(matches!(
            e,
            Error::SsmRegistration {
                bad_activation: true,
                ..
            }
        ));
        assert!(e.to_string().contains("has expired"), "{e}");
        let bad_id = "ERROR Registration failed due to error registering the instance with AWS SSM. InvalidActivationId: Activation ID not found";
        assert!(
            classify_failure(bad_id, &a)
                .to_string()
                .contains("not known to SSM")
        );
        let invalid = "ERROR Registration failed due to error registering the instance with AWS SSM. InvalidActivation: Activation id or code invalid";
        let e = classify_failure(invalid, &a);
        assert!(e.to_string().contains("code does not match"), "{e}");
        assert_eq!(
            crate::exit::Classify::exit_code(&e),
            crate::exit::Code::BadInput
        );
        let perm = "Unable to save registration information. open /var/lib/amazon/ssm/x: permission denied\nTry running as sudo/administrator.";
        let e = classify_failure(perm, &a);
        assert!(matches!(
            e,
            Error::SsmRegistration {
                bad_activation: false,
                ..
            }
        ));
        let other = "INFO starting\nERROR Registration failed due to error registering the instance with AWS SSM. RequestError: send request failed\n";
        let e = classify_failure(other, &a);
        assert!(
            e.to_string().contains("RequestError: send request failed"),
            "{e}"
        );
        assert_eq!(
            crate::exit::Classify::exit_code(&e),
            crate::exit::Code::Failure
        );
    }

    #[test]
    fn the_code_never_shows() {
        let a = activation();
        let cmd = RegisterCommand::new(a.clone());
        assert!(!format!("{cmd:?}").contains(CODE));
        assert!(!format!("{a:?}").contains(CODE));
        assert_eq!(
            scrub(&format!("bad code {CODE} here"), &a.code),
            "bad code *** here"
        );
        assert!(
            cmd.args().contains(&CODE.to_owned()),
            "the agent gets it as -code"
        );
        assert!(ActivationCode::parse("short", "f").is_err());
        assert!(
            !ActivationCode::parse("has space in it", "f")
                .unwrap_err()
                .to_string()
                .contains("space")
        );
    }

    #[test]
    fn instance_id_is_parsed_from_the_success_line() {
        let out = "INFO Successfully registered the instance with AWS SSM using Managed instance-id: mi-0123456789abcdef0\n";
        assert_eq!(
            parse_instance_id(out).as_deref(),
            Some("mi-0123456789abcdef0")
        );
        assert_eq!(parse_instance_id("nothing"), None);
    }

    /// At trace level, in text and JSON, registration logs never carry the activation code.
    #[test]
    fn the_code_never_reaches_logs() {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("amazon-ssm-agent");
        std::fs::write(
            &prog,
            "#!/bin/sh\necho \"ERROR bad code $8: InvalidActivation\" >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        for json in [false, true] {
            let buf = Buf::default();
            let writer = buf.clone();
            let builder = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone());
            let dispatch: tracing::Dispatch = if json {
                builder.json().finish().into()
            } else {
                builder.finish().into()
            };
            let err = tracing::dispatcher::with_default(&dispatch, || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let cmd = RegisterCommand::with_program(&prog, activation());
                    tracing::debug!(command = ?cmd, "about to register");
                    cmd.run(Duration::from_secs(10)).await.unwrap_err()
                })
            });
            tracing::dispatcher::with_default(
                &dispatch,
                || tracing::error!(error = %err, "registration failed"),
            );
            let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            assert!(logs.contains("registering with SSM"), "{logs}");
            assert!(logs.contains("registration failed"), "{logs}");
            assert!(!logs.contains(CODE), "json={json}: {logs}");
            assert!(err.to_string().contains("code does not match"), "{err}");
        }
    }

    /// The IO shell against a stand-in `amazon-ssm-agent` that fails like the real one.
    #[tokio::test]
    async fn run_maps_a_failing_agent_and_scrubs_its_output() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("amazon-ssm-agent");
        std::fs::write(
            &prog,
            "#!/bin/sh\necho \"args: $*\" >&2\necho 'ERROR Registration failed due to error registering the instance with AWS SSM. ActivationExpired: '\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = RegisterCommand::with_program(&prog, activation())
            .run(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("has expired"), "{err}");
        assert!(!format!("{err} {err:?}").contains(CODE));

        std::fs::write(&prog, "#!/bin/sh\necho \"INFO Successfully registered the instance with AWS SSM using Managed instance-id: mi-0abc\"\n").unwrap();
        let id = RegisterCommand::with_program(&prog, activation())
            .run(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(id, "mi-0abc");
    }
}
