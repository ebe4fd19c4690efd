//! A stand-in for `amazon-ssm-agent -register`, for tests only (never shipped): the part of
//! the SSM agent that the node agent runs (`auth::ssm::RegisterCommand`), doing on the wire and
//! on disk what the real agent's registration does, so that the node agent's own steps after it
//! run unchanged. `bench-all` becomes it when started under the name `amazon-ssm-agent`
//! (installed or linked as that name on a test host).
//!
//! What it does, as the real agent does (its `core/agent_parser.go` and the packages it calls):
//!
//! - flags in Go's `flag` syntax (`-register -y -id ID -region R -code CODE`, also `--flag` and
//!   `-flag=value`); the code only as `-code`, like the real agent;
//! - a new RSA 2048 key pair; the private key (PKCS#1 DER, base64) is first stored with an
//!   empty instance id, to check that the agent may write its key store (the vault:
//!   `/var/lib/amazon/ssm/Vault/Store/RegistrationKey` and `/var/lib/amazon/ssm/Vault/Manifest`,
//!   directories 0700 and files 0600); failing that it says "Try running as sudo/administrator";
//! - a fingerprint (a random UUID, kept in the vault as `InstanceFingerprint`);
//! - `RegisterManagedInstance` (AWS JSON 1.1, `X-Amz-Target: AmazonSSM.RegisterManagedInstance`,
//!   unsigned: the real agent sends it with anonymous credentials) with the code, the id, the
//!   public key (SubjectPublicKeyInfo DER, base64), `PublicKeyType: Rsa` and the fingerprint;
//! - on success the vault gets the instance id and region, and the registration file
//!   `/var/lib/amazon/ssm/registration` (0600) `{"ManagedInstanceID": "mi-...", "Region": "..."}`;
//!   it logs `Successfully registered the instance with AWS SSM using Managed instance-id: mi-...`
//!   and exits 0; on an error it logs `Registration failed due to error registering the
//!   instance with AWS SSM. CODE: message` and exits 1.
//!
//! The endpoint comes the way the real agent takes it: `Ssm.Endpoint` in
//! `/etc/amazon/ssm/amazon-ssm-agent.json` (the agent's app config), else the regional
//! `https://ssm.REGION.amazonaws.com` (which the stand-in refuses: it speaks plain HTTP to a
//! test's emulator only, and tests never leave the machine). It reads no `AWS_ENDPOINT_URL_*`
//! variable, as the real agent does not.
//!
//! Not stood in: the agent's service mode (its credential refresher, which on a real host then
//! writes `/root/.aws/credentials`), `-clear`, `-fingerprint`, and the hardware similarity
//! check.

use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// The name that selects this mode.
pub const PROGRAM: &str = "amazon-ssm-agent";
/// The SSM agent's app config (where `Ssm.Endpoint` is read).
pub const APP_CONFIG: &str = "/etc/amazon/ssm/amazon-ssm-agent.json";
/// The registration file.
pub const REGISTRATION_FILE: &str = "/var/lib/amazon/ssm/registration";
/// The vault (the agent's key store).
pub const VAULT_DIR: &str = "/var/lib/amazon/ssm/Vault";
/// What the success line says before the managed instance id.
pub const SUCCESS: &str =
    "Successfully registered the instance with AWS SSM using Managed instance-id:";
/// One request's bound (connect, send, answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts for a transport error (the real agent retries those with backoff).
const ATTEMPTS: u32 = 3;
/// Largest answer read.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// The flags of a registration.
#[derive(Debug, Default, PartialEq, Eq)]
struct Flags {
    register: bool,
    yes: bool,
    id: String,
    code: String,
    region: String,
}

/// Parses Go `flag` syntax; an unknown flag is an error, as with `flag.ExitOnError`.
fn parse(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            break; // Go stops at the first non-flag argument
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (name, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("flag needs an argument: -{name}"))
        };
        match name {
            "register" => f.register = true,
            "y" => f.yes = true,
            "clear" | "disableSimilarityCheck" | "fingerprint" | "version" => {}
            "id" => f.id = value()?,
            "code" => f.code = value()?,
            "region" => f.region = value()?,
            "similarityThreshold" => {
                value()?;
            }
            other => return Err(format!("flag provided but not defined: -{other}")),
        }
    }
    Ok(f)
}

fn log(level: &str, message: &str) {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    println!("{stamp} {level} {message}");
}

/// Runs as `amazon-ssm-agent` with `args` (without the program name).
pub fn main(args: &[String]) -> ExitCode {
    let flags = match parse(args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            usage();
            return ExitCode::from(2);
        }
    };
    if !flags.register {
        eprintln!("this stand-in of amazon-ssm-agent only registers (-register)");
        usage();
        return ExitCode::FAILURE;
    }
    if flags.code.is_empty() || flags.id.is_empty() || flags.region.is_empty() {
        usage();
        return ExitCode::FAILURE;
    }
    if !flags.yes && registered_instance_id().is_some() {
        print!(
            "\nInstance already registered. Would you like to override existing with new registration information? [Yes/No]: "
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        match (read, answer.trim().chars().next()) {
            (Ok(n), Some(c)) if n > 0 && c.eq_ignore_ascii_case(&'y') => {}
            (Ok(n), Some(c)) if n > 0 && c.eq_ignore_ascii_case(&'n') => {
                log("INFO", "Registration canceled by user");
                return ExitCode::FAILURE;
            }
            _ => {
                log("ERROR", "Registration failed due to unexpected newline");
                return ExitCode::FAILURE;
            }
        }
    }
    match register(&flags) {
        Ok(id) => {
            log("INFO", &format!("{SUCCESS} {id}"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            log("ERROR", &format!("Registration failed due to {e}"));
            ExitCode::FAILURE
        }
    }
}

fn usage() {
    eprintln!(
        "\n\nCommand-line Usage:\n\t-register\tregister managed instance\n\t\t-id\tSSM activation ID\t(REQUIRED)\n\t\t-code\tSSM activation code\t(REQUIRED)\n\t\t-region\tSSM region\t(REQUIRED)\n\n\t-y\tAnswer yes for all questions"
    );
}

/// The instance id in the vault, if registered.
fn registered_instance_id() -> Option<String> {
    let text = std::fs::read_to_string(Path::new(VAULT_DIR).join("Store/RegistrationKey")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["instanceID"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Writes `data` with mode 0600 (directories 0700), as the agent's hardened writes do.
fn hardened_write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Stores `key` in the vault (its file, then the manifest naming it).
fn vault_store(key: &str, data: &[u8]) -> std::io::Result<()> {
    let vault = Path::new(VAULT_DIR);
    let file = vault.join("Store").join(key);
    hardened_write(&file, data)?;
    let manifest_path = vault.join("Manifest");
    let mut manifest: serde_json::Map<String, serde_json::Value> =
        std::fs::read_to_string(&manifest_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
    manifest.insert(key.to_owned(), file.display().to_string().into());
    hardened_write(
        &manifest_path,
        serde_json::Value::Object(manifest).to_string().as_bytes(),
    )
}

fn server_info(instance_id: &str, region: &str, private_key: &str) -> Vec<u8> {
    serde_json::json!({
        "instanceID": instance_id,
        "region": region,
        "instanceType": "",
        "availabilityZone": "",
        "privateKey": private_key,
        "privateKeyType": "Rsa",
    })
    .to_string()
    .into_bytes()
}

/// A new RSA 2048 key pair: (public SubjectPublicKeyInfo DER, private PKCS#1 DER), base64.
fn key_pair() -> Result<(String, String), String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;
    let err = |what: &str| format!("error generating signing keys. {what}");
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| err("RSA key generation failed"))?;
    let public: PublicKeyX509Der = pair
        .public_key()
        .as_der()
        .map_err(|_| err("public key encoding failed"))?;
    let pkcs8: Pkcs8V1Der = pair
        .as_der()
        .map_err(|_| err("private key encoding failed"))?;
    let pkcs1 = pkcs1_of_pkcs8(pkcs8.as_ref()).ok_or_else(|| err("not a PKCS#8 RSA key"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok((b64.encode(public.as_ref()), b64.encode(pkcs1)))
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (its `privateKey` octets).
fn pkcs1_of_pkcs8(der: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::asn1::OctetString;
    use x509_cert::der::{Decode as _, Reader as _, SliceReader};
    let mut reader = SliceReader::new(der).ok()?;
    reader
        .sequence(|r| {
            let _version = u8::decode(r)?;
            let _algorithm = x509_cert::spki::AlgorithmIdentifierOwned::decode(r)?;
            let key = OctetString::decode(r)?;
            // Optional attributes and a public key may follow; not needed.
            let rest = r.remaining_len();
            r.read_slice(rest)?;
            Ok(key.into_bytes())
        })
        .ok()
}

/// A random UUID (version 4), the instance's fingerprint.
fn fingerprint() -> Result<String, String> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "error generating instance fingerprint.")?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The SSM endpoint: `Ssm.Endpoint` of the app config, else the region's.
fn endpoint(region: &str) -> String {
    std::fs::read_to_string(APP_CONFIG)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["Ssm"]["Endpoint"].as_str().map(str::to_owned))
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| format!("https://ssm.{region}.amazonaws.com"))
}

fn register(flags: &Flags) -> Result<String, String> {
    let (public_key, private_key) = key_pair()?;
    vault_store("RegistrationKey", &server_info("", "", &private_key)).map_err(|e| {
        format!("Unable to save registration information. {e}\nTry running as sudo/administrator.")
    })?;
    let fingerprint = fingerprint()?;
    vault_store(
        "InstanceFingerprint",
        serde_json::json!({"fingerprint": fingerprint, "similarityThreshold": 40})
            .to_string()
            .as_bytes(),
    )
    .map_err(|e| format!("error generating instance fingerprint. {e}"))?;
    let body = serde_json::json!({
        "ActivationCode": flags.code,
        "ActivationId": flags.id,
        "PublicKey": public_key,
        "PublicKeyType": "Rsa",
        "Fingerprint": fingerprint,
    })
    .to_string();
    let answer = call(&endpoint(&flags.region), &body)
        .map_err(|e| format!("error registering the instance with AWS SSM. {e}"))?;
    let instance_id = answer["InstanceId"]
        .as_str()
        .filter(|id| id.starts_with("mi-"))
        .ok_or_else(|| {
            format!("error registering the instance with AWS SSM. no InstanceId in {answer}")
        })?
        .to_owned();
    vault_store(
        "RegistrationKey",
        &server_info(&instance_id, &flags.region, &private_key),
    )
    .map_err(|e| format!("error persisting the instance registration information. {e}"))?;
    let registration =
        serde_json::json!({"ManagedInstanceID": instance_id, "Region": flags.region});
    hardened_write(
        Path::new(REGISTRATION_FILE),
        registration.to_string().as_bytes(),
    )
    .map_err(|e| format!("Failed to write registration info to file. {e}"))?;
    Ok(instance_id)
}

/// POSTs the call to `endpoint` (plain HTTP only), retrying transport errors; an AWS error
/// answer is `CODE: message\n\tstatus code: N, request id: ID`, as the Go SDK prints it.
fn call(endpoint: &str, body: &str) -> Result<serde_json::Value, String> {
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| {
        format!(
            "RequestError: send request failed\ncaused by: this stand-in speaks plain HTTP to a test emulator only, not {endpoint} (set Ssm.Endpoint in {APP_CONFIG})"
        )
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500 << attempt));
        }
        match exchange(authority, body) {
            Ok(answer) => return answer,
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!(
        "RequestError: send request failed\ncaused by: Post \"{endpoint}\": {last}"
    ))
}

/// One HTTP/1.1 exchange; `Err` is a transport error, `Ok(Err)` an AWS error answer.
fn exchange(authority: &str, body: &str) -> std::io::Result<Result<serde_json::Value, String>> {
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("no address for {authority}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AmazonSSM.RegisterManagedInstance\r\nUser-Agent: amazon-ssm-agent-test-stand-in\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.take(MAX_ANSWER_BYTES).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed HTTP answer"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let request_id = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-amzn-requestid")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
    if (200..300).contains(&status) {
        return Ok(Ok(json));
    }
    let code = json["__type"]
        .as_str()
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        .unwrap_or("UnknownError");
    let message = json["message"]
        .as_str()
        .or_else(|| json["Message"].as_str())
        .unwrap_or_default();
    Ok(Err(format!(
        "{code}: {message}\n\tstatus code: {status}, request id: {request_id}"
    )))
}
