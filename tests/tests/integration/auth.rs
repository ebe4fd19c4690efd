//! IAM-authenticated join: `token` (checked by the authenticator's rules and botocore),
//! credentials from the environment, profiles (credential_process, role_arn + source_profile
//! against moto's STS), IAM Roles Anywhere (against the emulator), and secrets kept out of logs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use eks_node_agent::auth::rolesanywhere::{RolesAnywhere, SessionParams, X509Identity};
use eks_node_agent::auth::{FixedClock, SystemClock};
use eks_node_agent_tests::moto::Moto;
use eks_node_agent_tests::rolesanywhere::{Config, Emulator, KeyKind, TestPki};
use eks_node_agent_tests::token_verifier::{self as verifier, Rejection, SigningSecret};
use time::OffsetDateTime;

use crate::agent_bin;

const CLUSTER: &str = "test-cluster";
const ACCESS_KEY: &str = "ASIAENVTESTKEY000001";
const SECRET_KEY: &str = "env/Secret+Key0123456789abcdefghijklmnop";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEnvSessionToken/with+chars==";

/// A hermetic environment: no inherited AWS settings, IMDS off, config files in `home`.
fn agent(home: &Path) -> Command {
    let mut cmd = Command::new(agent_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("EKS_NODE_AGENT_STATE_DIR", home.join("state"));
    cmd
}

fn with_env_creds(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run the agent");
    assert!(
        out.status.success(),
        "agent failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn exec_credential(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("ExecCredential JSON")
}

fn token_of(cred: &serde_json::Value) -> String {
    cred["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_owned()
}

fn secret(s: &str) -> SigningSecret {
    SigningSecret {
        secret_access_key: s.to_owned(),
    }
}

fn assert_passes(token: &str, secret_key: &str) -> verifier::Checked {
    verifier::verify(
        token,
        CLUSTER,
        &secret(secret_key),
        OffsetDateTime::now_utc(),
    )
    .unwrap_or_else(|r| panic!("token rejected: {r:?}"))
}

#[test]
fn published_vector_passes_the_verifier_and_botocore() {
    let creds = aws_credential_types::Credentials::new(
        "ASIAR2TG44V6AS3ZZE7C",
        "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q",
        None,
        None,
        "vector",
    );
    let at = time::macros::datetime!(2023-04-28 00:00:00 UTC);
    let region = eks_node_agent::model::Region::parse("us-west-2", "test").unwrap();
    let cluster = eks_node_agent::auth::token::ClusterId::parse(CLUSTER, "test").unwrap();
    let token =
        eks_node_agent::auth::token::sign_token(&creds, &region, &cluster, SystemTime::from(at))
            .unwrap();
    let checked = verifier::verify(
        &token.token,
        CLUSTER,
        &secret("4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q"),
        at,
    )
    .unwrap();
    assert_eq!(
        checked.signature,
        "e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce"
    );
    assert_eq!(
        eks_node_agent::model::text::rfc3339(token.expiration),
        "2023-04-28T00:14:00Z"
    );
}

#[test]
fn token_from_environment_passes_the_verifier() {
    let home = tempfile::tempdir().unwrap();
    let before = OffsetDateTime::now_utc();
    let out = run_ok(with_env_creds(&mut agent(home.path())).args([
        "token",
        "--cluster-id",
        CLUSTER,
        "--region",
        "us-west-2",
    ]));
    let cred = exec_credential(&out);
    assert_eq!(cred["kind"], "ExecCredential");
    assert_eq!(cred["apiVersion"], "client.authentication.k8s.io/v1beta1");
    let checked = assert_passes(&token_of(&cred), SECRET_KEY);
    assert_eq!(checked.access_key_id, ACCESS_KEY);
    assert_eq!(checked.session_token.as_deref(), Some(SESSION_TOKEN));
    assert_eq!(checked.host, "sts.us-west-2.amazonaws.com");
    assert_eq!(checked.expires, 60);
    let exp = OffsetDateTime::parse(
        cred["status"]["expirationTimestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = (exp - before).whole_seconds();
    assert!(
        (14 * 60 - 1..=14 * 60 + 5).contains(&lifetime),
        "lifetime {lifetime}"
    );
    assert!(
        cred["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // apiVersion echoed from KUBERNETES_EXEC_INFO; the partition's STS host; --token-only.
    let out = run_ok(
        with_env_creds(&mut agent(home.path()))
            .env("KUBERNETES_EXEC_INFO", r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#)
            .env("AWS_REGION", "cn-north-1")
            .args(["token", "-i", CLUSTER]),
    );
    let cred = exec_credential(&out);
    assert_eq!(cred["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(
        assert_passes(&token_of(&cred), SECRET_KEY).host,
        "sts.cn-north-1.amazonaws.com.cn"
    );
    let out = run_ok(with_env_creds(&mut agent(home.path())).args([
        "token",
        "-i",
        CLUSTER,
        "--region",
        "us-west-2",
        "--token-only",
    ]));
    let token = String::from_utf8(out.stdout).unwrap();
    assert_passes(token.trim(), SECRET_KEY);
}

#[test]
fn bad_input_exits_2_and_names_the_field() {
    let home = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (
            &["token", "-i", CLUSTER, "--region", "mars-1"],
            &[],
            "--region: invalid region",
        ),
        (
            &["token", "-i", "bad cluster", "--region", "us-west-2"],
            &[],
            "--cluster-id: invalid cluster id",
        ),
        (&["token", "-i", CLUSTER], &[], "no AWS region"),
        (
            &[
                "token",
                "-i",
                CLUSTER,
                "--region",
                "us-west-2",
                "--role-arn",
                "nope",
            ],
            &[],
            "--role-arn: invalid role ARN",
        ),
        (
            &["token", "-i", CLUSTER, "--region", "us-west-2"],
            &[(
                "KUBERNETES_EXEC_INFO",
                r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#,
            )],
            "KUBERNETES_EXEC_INFO: invalid apiVersion",
        ),
    ];
    for (args, env, want) in cases {
        let mut cmd = agent(home.path());
        with_env_creds(&mut cmd).args(*args);
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn token_from_profile_files() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("credentials"),
        "[node]\naws_access_key_id = AKIAPROFILE000000001\naws_secret_access_key = profile/secret\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join("config"),
        "[profile node]\nregion = eu-central-1\n",
    )
    .unwrap();
    let out = run_ok(
        agent(home.path())
            .env("AWS_PROFILE", "node")
            .args(["token", "-i", CLUSTER]),
    );
    let checked = assert_passes(&token_of(&exec_credential(&out)), "profile/secret");
    assert_eq!(checked.access_key_id, "AKIAPROFILE000000001");
    assert_eq!(checked.region, "eu-central-1", "region from the profile");
    assert_eq!(checked.session_token, None);

    // credential_process, named with --profile.
    let script = home.path().join("cred.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS000000001\", \"SecretAccessKey\": \"process/secret\", \"SessionToken\": \"process-token\", \"Expiration\": \"2099-01-01T00:00:00Z\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        home.path().join("config"),
        format!(
            "[profile proc]\nregion = us-east-2\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let out = run_ok(agent(home.path()).args(["token", "-i", CLUSTER, "--profile", "proc"]));
    let checked = assert_passes(&token_of(&exec_credential(&out)), "process/secret");
    assert_eq!(checked.access_key_id, "ASIAPROCESS000000001");
    assert_eq!(checked.session_token.as_deref(), Some("process-token"));

    // SSM hybrid: the SSM agent's credentials file (profile default of that file).
    let ssm_file = home.path().join("ssm-credentials");
    std::fs::write(
        &ssm_file,
        "[default]\naws_access_key_id = ASIASSMFILE000000001\naws_secret_access_key = ssm/secret\naws_session_token = ssm-token\n",
    )
    .unwrap();
    let out = run_ok(
        agent(home.path())
            .env("AWS_SHARED_CREDENTIALS_FILE", &ssm_file)
            .args([
                "token",
                "-i",
                CLUSTER,
                "--region",
                "us-west-2",
                "--credentials-source",
                "ssm",
            ]),
    );
    let checked = assert_passes(&token_of(&exec_credential(&out)), "ssm/secret");
    assert_eq!(checked.access_key_id, "ASIASSMFILE000000001");
}

/// The secret moto issued with an access key id (moto's model dump lists assumed roles).
fn moto_secret_for(moto: &Moto, access_key_id: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", moto.port())).expect("moto data.json");
    s.write_all(
        b"GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .expect("moto data.json");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("moto data.json");
    let text = String::from_utf8_lossy(&raw);
    let body = &text[text.find("\r\n\r\n").expect("moto data.json") + 4..];
    // The body may be chunked; the JSON object spans from the first '{' to the last '}'.
    let json: serde_json::Value = serde_json::from_str(
        &body[body.find('{').expect("moto data.json")..=body.rfind('}').expect("moto data.json")],
    )
    .expect("moto data.json");
    json["sts"]["AssumedRole"]
        .as_array()
        .expect("moto data.json")
        .iter()
        .find(|r| r["access_key_id"] == access_key_id)
        .unwrap_or_else(|| panic!("moto has no assumed role with {access_key_id}"))["secret_access_key"]
        .as_str()
        .expect("moto data.json")
        .to_owned()
}

#[test]
fn token_with_assumed_roles_against_moto_sts() {
    let moto = Moto::start();
    let home = tempfile::tempdir().unwrap();

    // role_arn + source_profile in the shared config.
    std::fs::write(
        home.path().join("credentials"),
        "[base]\naws_access_key_id = AKIABASE000000000001\naws_secret_access_key = base/secret\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join("config"),
        "[profile node]\nrole_arn = arn:aws:iam::123456789012:role/node-from-profile\nsource_profile = base\nregion = us-west-2\n",
    )
    .unwrap();
    let out = run_ok(
        agent(home.path())
            .env("AWS_ENDPOINT_URL_STS", moto.endpoint())
            .env("AWS_PROFILE", "node")
            .args(["token", "-i", CLUSTER]),
    );
    let token = token_of(&exec_credential(&out));
    let checked = verifier::check(&token, OffsetDateTime::now_utc()).unwrap();
    assert_ne!(
        checked.access_key_id, "AKIABASE000000000001",
        "assumed, not the source profile's key"
    );
    assert!(checked.session_token.is_some());
    verifier::check_signature(
        &checked,
        &secret(&moto_secret_for(&moto, &checked.access_key_id)),
        CLUSTER,
    )
    .unwrap();

    // --role-arn on top of environment credentials.
    let out = run_ok(
        with_env_creds(&mut agent(home.path()))
            .env("AWS_ENDPOINT_URL_STS", moto.endpoint())
            .args([
                "token",
                "-i",
                CLUSTER,
                "--region",
                "us-west-2",
                "--role-arn",
                "arn:aws:iam::123456789012:role/node-from-flag",
            ]),
    );
    let token = token_of(&exec_credential(&out));
    let checked = verifier::check(&token, OffsetDateTime::now_utc()).unwrap();
    assert_ne!(checked.access_key_id, ACCESS_KEY);
    verifier::check_signature(
        &checked,
        &secret(&moto_secret_for(&moto, &checked.access_key_id)),
        CLUSTER,
    )
    .unwrap();
}

#[test]
fn cache_keeps_the_token_private_and_reuses_it() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let first = run_ok(with_env_creds(&mut agent(home.path())).args([
        "token",
        "-i",
        CLUSTER,
        "--region",
        "us-west-2",
        "--cache",
    ]));
    let dir = home.path().join("state/token-cache");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // No credentials at all now: only the cache can answer.
    let second = run_ok(
        agent(home.path())
            .env("AWS_REGION", "us-west-2")
            .args(["token", "-i", CLUSTER, "--cache"]),
    );
    assert_eq!(
        token_of(&exec_credential(&first)),
        token_of(&exec_credential(&second))
    );
    // Another cluster is a miss (and, without credentials, a failure).
    let out = agent(home.path())
        .env("AWS_REGION", "us-west-2")
        .args(["token", "-i", "other", "--cache"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn verifier_rejects_each_negative_case() {
    let home = tempfile::tempdir().unwrap();
    let out = run_ok(with_env_creds(&mut agent(home.path())).args([
        "token",
        "-i",
        CLUSTER,
        "--region",
        "us-west-2",
        "--token-only",
    ]));
    let good = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let now = OffsetDateTime::now_utc();
    assert_passes(&good, SECRET_KEY);
    let url = verifier::decode(&good);
    let reject = |token: &str, now: OffsetDateTime| {
        verifier::verify(token, CLUSTER, &secret(SECRET_KEY), now).unwrap_err()
    };

    assert_eq!(
        reject(&good.replacen("k8s-aws-v1.", "k8s-aws-v2.", 1), now),
        Rejection::Prefix
    );
    assert!(matches!(
        reject(&format!("{good}=="), now),
        Rejection::Encoding(_)
    ));
    let std_b64 = format!(
        "k8s-aws-v1.{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &url)
    );
    if std_b64.contains(['+', '/', '=']) {
        assert!(matches!(
            reject(&std_b64, now),
            Rejection::Encoding(_) | Rejection::Url(_)
        ));
    }
    let mutate = |from: &str, to: &str| verifier::encode(&url.replacen(from, to, 1));
    assert!(matches!(
        reject(&mutate("https://", "http://"), now),
        Rejection::Scheme(_)
    ));
    assert!(matches!(
        reject(
            &mutate("sts.us-west-2.amazonaws.com", "sts.us-west-2.evil.com"),
            now
        ),
        Rejection::Host(_)
    ));
    assert!(matches!(
        reject(
            &mutate("sts.us-west-2.amazonaws.com", "sts.amazonaws.com"),
            now
        ),
        Rejection::Host(_)
    ));
    assert!(matches!(
        reject(&mutate("amazonaws.com/?", "amazonaws.com/other?"), now),
        Rejection::Path(_)
    ));
    assert!(
        matches!(reject(&mutate("?Action=", "?Extra=1&Action="), now), Rejection::QueryKey(k) if k == "Extra")
    );
    assert!(matches!(
        reject(&mutate("?Action=", "?Version=2011-06-15&Action="), now),
        Rejection::DuplicateKey(_)
    ));
    assert!(matches!(
        reject(
            &mutate("Action=GetCallerIdentity", "Action=GetSessionToken"),
            now
        ),
        Rejection::Action(_)
    ));
    assert!(matches!(
        reject(&mutate("host%3Bx-k8s-aws-id", "host"), now),
        Rejection::SignedHeaders(_)
    ));
    assert!(matches!(
        reject(&mutate("X-Amz-Expires=60", "X-Amz-Expires=86400"), now),
        Rejection::Expires(86400)
    ));
    assert!(matches!(
        reject(&good, now + time::Duration::minutes(16)),
        Rejection::Date(_)
    ));
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.clone();
    let flipped = if &url[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(sig_at..sig_at + 1, flipped);
    assert!(matches!(
        reject(&verifier::encode(&tampered), now),
        Rejection::Signature { .. }
    ));
    // Same token for another cluster, or checked with another secret: the signature differs.
    assert!(matches!(
        verifier::verify(&good, "other-cluster", &secret(SECRET_KEY), now).unwrap_err(),
        Rejection::Signature { .. }
    ));
    assert!(matches!(
        verifier::verify(&good, CLUSTER, &secret("wrong"), now).unwrap_err(),
        Rejection::Signature { .. }
    ));
}

struct RolesAnywhereSetup {
    pki: TestPki,
    emulator: Emulator,
    config: Config,
    dir: tempfile::TempDir,
}

fn rolesanywhere(kind: KeyKind) -> RolesAnywhereSetup {
    let pki = TestPki::new("node", kind);
    let config = Config::for_pki(&pki);
    let emulator = Emulator::start(config.clone());
    RolesAnywhereSetup {
        pki,
        emulator,
        config,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

impl RolesAnywhereSetup {
    fn args(&self, cert: &Path, key: &Path, chain: &Path) -> Vec<String> {
        vec![
            "credentials".into(),
            "--certificate".into(),
            cert.display().to_string(),
            "--private-key".into(),
            key.display().to_string(),
            "--intermediates".into(),
            chain.display().to_string(),
            "--trust-anchor-arn".into(),
            self.config.trust_anchor_arn.clone(),
            "--profile-arn".into(),
            self.config.profile_arn.clone(),
            "--role-arn".into(),
            self.config.role_arns[0].clone(),
            "--endpoint".into(),
            self.emulator.endpoint(),
        ]
    }

    fn command(&self, args: &[String]) -> Command {
        let mut cmd = agent(self.dir.path());
        cmd.env("AWS_CA_BUNDLE", self.emulator.ca_bundle())
            .args(args);
        cmd
    }
}

#[test]
fn rolesanywhere_credentials_for_rsa_and_ecdsa_keys() {
    for kind in [KeyKind::Rsa, KeyKind::P256, KeyKind::P384] {
        let ra = rolesanywhere(kind);
        let leaf = ra.pki.issue_valid("node-1", kind);
        let (cert, key, chain) = leaf.write(ra.dir.path());
        let out = run_ok(&mut ra.command(&ra.args(&cert, &key, &chain)));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["Version"], 1, "{kind:?}");
        assert_eq!(json["AccessKeyId"], ra.config.access_key_id.as_str());
        assert_eq!(
            json["SecretAccessKey"],
            ra.config.secret_access_key.as_str()
        );
        assert_eq!(json["SessionToken"], ra.config.session_token.as_str());
        let exp = OffsetDateTime::parse(
            json["Expiration"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let left = (exp - OffsetDateTime::now_utc()).whole_seconds();
        assert!((3590..=3600).contains(&left), "{left}");
        let log = ra.emulator.requests();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(
            (log[0].status, log[0].duration_seconds),
            (201, Some(3600)),
            "{log:?}"
        );
    }
}

#[test]
fn botocore_accepts_credentials_as_credential_process_and_the_token_verifies() {
    let ra = rolesanywhere(KeyKind::P256);
    let leaf = ra.pki.issue_valid("node-2", KeyKind::P256);
    let (cert, key, chain) = leaf.write(ra.dir.path());
    let process = std::iter::once(agent_bin().display().to_string())
        .chain(ra.args(&cert, &key, &chain))
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        ra.dir.path().join("config"),
        format!("[profile ra]\nregion = us-west-2\ncredential_process = {process}\n"),
    )
    .unwrap();

    let got = botocore_credentials(
        ra.dir.path(),
        &[
            ("AWS_PROFILE", "ra".as_ref()),
            ("AWS_CONFIG_FILE", ra.dir.path().join("config").as_os_str()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                ra.dir.path().join("credentials").as_os_str(),
            ),
            ("AWS_CA_BUNDLE", ra.emulator.ca_bundle().as_os_str()),
        ],
    );
    assert_eq!(
        got,
        vec![
            ra.config.access_key_id.clone(),
            ra.config.secret_access_key.clone(),
            ra.config.session_token.clone()
        ]
    );

    // The kubelet's path on a hybrid node: token through the same credential_process profile.
    let out = run_ok(&mut ra.command(&[
        "token".into(),
        "-i".into(),
        CLUSTER.into(),
        "--profile".into(),
        "ra".into(),
    ]));
    let checked = assert_passes(
        &token_of(&exec_credential(&out)),
        &ra.config.secret_access_key,
    );
    assert_eq!(checked.access_key_id, ra.config.access_key_id);
    assert_eq!(
        checked.session_token.as_deref(),
        Some(ra.config.session_token.as_str())
    );
}

/// `enableCredentialsFile` on a Roles Anywhere node: `credentials --update-file` keeps an AWS
/// shared credentials file fresh (a new session before the old one expires; here sessions of
/// 900 s renewed 898 s early, so every 2 s), each written atomically with mode 0600; botocore
/// reads it; SIGTERM stops it cleanly.
#[test]
fn credentials_file_is_renewed_before_expiry_atomically_and_0600() {
    use std::os::unix::fs::PermissionsExt;
    let ra = rolesanywhere(KeyKind::P256);
    let leaf = ra.pki.issue_valid("node-3", KeyKind::P256);
    let (cert, key, chain) = leaf.write(ra.dir.path());
    let file = ra.dir.path().join("eks-hybrid/.aws/credentials");
    let mut args = ra.args(&cert, &key, &chain);
    args.extend([
        "--session-duration".into(),
        "900".into(),
        "--refresh-before".into(),
        "898".into(),
        "--update-file".into(),
        file.display().to_string(),
    ]);
    let mut child = ra
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while ra.emulator.requests().len() < 3 && started.elapsed() < Duration::from_secs(30) {
        if let Ok(text) = std::fs::read_to_string(&file)
            && seen.last() != Some(&text)
        {
            seen.push(text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let sessions = ra.emulator.requests();
    assert!(sessions.len() >= 3, "{sessions:?}");
    assert!(
        sessions
            .iter()
            .all(|r| r.status == 201 && r.duration_seconds == Some(900))
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(seen.len() >= 2, "the file was renewed: {seen:?}");
    assert!(
        text.contains("[default]")
            && text.contains(&format!("aws_access_key_id = {}", ra.config.access_key_id))
            && text.contains(&format!("aws_session_token = {}", ra.config.session_token)),
        "{text}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A real AWS SDK reads it.
    let got = botocore_credentials(
        ra.dir.path(),
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", file.as_os_str()),
            (
                "AWS_CONFIG_FILE",
                ra.dir.path().join("no-config").as_os_str(),
            ),
        ],
    );
    assert_eq!(got[0], ra.config.access_key_id);
    assert_eq!(got[2], ra.config.session_token);

    nix_kill(child.id(), "TERM");
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    // Once the writer has stopped, no temp file is left (while it runs, one may be mid-write).
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["credentials"], "no temp file is left");
    assert!(
        !stderr.contains(&ra.config.secret_access_key)
            && !stderr.contains(&ra.config.session_token),
        "secrets never reach the log: {stderr}"
    );
}

/// Sends a signal with kill(1) (fixed arguments).
fn nix_kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn rolesanywhere_rejects_expired_untrusted_and_wrong_keys() {
    let ra = rolesanywhere(KeyKind::P256);
    let now = OffsetDateTime::now_utc();

    let expired = ra.pki.issue(
        "old",
        KeyKind::P256,
        now - time::Duration::days(10),
        now - time::Duration::days(1),
    );
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, chain) = expired.write(dir.path());
    let out = ra.command(&ra.args(&cert, &key, &chain)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("HTTP 403 AccessDeniedException: Certificate expired"),
        "{stderr}"
    );

    let stranger = TestPki::new("stranger", KeyKind::P256).issue_valid("intruder", KeyKind::P256);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, chain) = stranger.write(dir.path());
    let out = ra.command(&ra.args(&cert, &key, &chain)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 403 AccessDeniedException: Untrusted signing certificate"),
        "{stderr}"
    );

    // A key that is not the certificate's: refused locally (bad input), nothing sent.
    let a = ra.pki.issue_valid("a", KeyKind::P256);
    let b = ra.pki.issue_valid("b", KeyKind::P256);
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, _, chain) = a.write(dir.path());
    let key_b = dir.path().join("b.key");
    std::fs::write(&key_b, &b.key_pem).unwrap();
    let before = ra.emulator.requests().len();
    let out = ra
        .command(&ra.args(&cert_a, &key_b, &chain))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not belong to the certificate"),
        "{stderr}"
    );
    assert_eq!(ra.emulator.requests().len(), before);

    // Signed by A's key but presenting B's certificate: the emulator's signature check fails.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let identity = X509Identity::from_pem(
            (Path::new("a.pem"), &a.cert_pem),
            (Path::new("a.key"), &a.key_pem),
            Some((Path::new("chain.pem"), &a.chain_pem)),
        )
        .unwrap();
        let client =
            eks_node_agent::auth::rolesanywhere::https_client(Some(ra.emulator.ca_bundle()))
                .unwrap();
        let params = SessionParams {
            trust_anchor_arn: ra.config.trust_anchor_arn.clone(),
            profile_arn: ra.config.profile_arn.clone(),
            role_arn: ra.config.role_arns[0].clone(),
            role_session_name: Some("swap".into()),
            duration_secs: 900,
        };
        let region = eks_node_agent::model::Region::parse("us-west-2", "t").unwrap();
        let client_ra = RolesAnywhere::new(
            identity,
            params,
            region,
            Some(&ra.emulator.endpoint()),
            client,
            Arc::new(SystemClock),
        )
        .unwrap();
        let ok = client_ra.create_session().await.unwrap();
        assert_eq!(ok.access_key_id, ra.config.access_key_id);

        let b_der = x509_der(&b.cert_pem);
        let mut req = client_ra.sign().unwrap();
        for (k, v) in req.headers.iter_mut() {
            if k == "x-amz-x509" {
                *v = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &b_der);
            }
            if k == "authorization" {
                *v = v.replace(
                    &format!("Credential={}/", a.serial),
                    &format!("Credential={}/", b.serial),
                );
            }
        }
        let err = client_ra.send(&req).await.unwrap_err().to_string();
        assert!(
            err.contains("HTTP 403 AccessDeniedException: Signature validation failed"),
            "{err}"
        );

        // A stale signing time is refused too.
        let stale = RolesAnywhere::new(
            X509Identity::from_pem(
                (Path::new("a.pem"), &a.cert_pem),
                (Path::new("a.key"), &a.key_pem),
                Some((Path::new("c"), &a.chain_pem)),
            )
            .unwrap(),
            SessionParams {
                trust_anchor_arn: ra.config.trust_anchor_arn.clone(),
                profile_arn: ra.config.profile_arn.clone(),
                role_arn: ra.config.role_arns[0].clone(),
                role_session_name: None,
                duration_secs: 900,
            },
            eks_node_agent::model::Region::parse("us-west-2", "t").unwrap(),
            Some(&ra.emulator.endpoint()),
            eks_node_agent::auth::rolesanywhere::https_client(Some(ra.emulator.ca_bundle()))
                .unwrap(),
            Arc::new(FixedClock(SystemTime::now() - Duration::from_secs(3600))),
        )
        .unwrap();
        let err = stale.create_session().await.unwrap_err().to_string();
        assert!(err.contains("AccessDeniedException"), "{err}");
    });
}

/// A clock the test moves.
#[derive(Debug)]
struct MovableClock(std::sync::Mutex<SystemTime>);

impl eks_node_agent::auth::Clock for MovableClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().expect("clock")
    }
}

#[test]
fn rolesanywhere_provider_refreshes_five_minutes_before_expiry() {
    use aws_credential_types::provider::ProvideCredentials;
    use eks_node_agent::auth::rolesanywhere::RolesAnywhereProvider;
    let pki = TestPki::new("node", KeyKind::P384);
    let mut config = Config::for_pki(&pki);
    config.max_clock_skew = Duration::from_secs(3600);
    let emulator = Emulator::start(config.clone());
    let leaf = pki.issue_valid("node-4", KeyKind::P384);
    let identity = X509Identity::from_pem(
        (Path::new("c.pem"), &leaf.cert_pem),
        (Path::new("k.pem"), &leaf.key_pem),
        Some((Path::new("i.pem"), &leaf.chain_pem)),
    )
    .unwrap();
    let t0 = SystemTime::now();
    let clock = Arc::new(MovableClock(std::sync::Mutex::new(t0)));
    let ra = RolesAnywhere::new(
        identity,
        SessionParams {
            trust_anchor_arn: config.trust_anchor_arn.clone(),
            profile_arn: config.profile_arn.clone(),
            role_arn: config.role_arns[0].clone(),
            role_session_name: None,
            duration_secs: 900,
        },
        eks_node_agent::model::Region::parse("us-west-2", "t").unwrap(),
        Some(&emulator.endpoint()),
        eks_node_agent::auth::rolesanywhere::https_client(Some(emulator.ca_bundle())).unwrap(),
        clock.clone(),
    )
    .unwrap();
    let provider = RolesAnywhereProvider::new(ra);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let first = provider.provide_credentials().await.unwrap();
        assert_eq!(first.secret_access_key(), config.secret_access_key);
        // 15-minute session: still cached with 5 min 1 s left...
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(15 * 60 - 301);
        provider.provide_credentials().await.unwrap();
        assert_eq!(emulator.requests().len(), 1);
        // ...refreshed with 5 minutes left.
        *clock.0.lock().unwrap() = t0 + Duration::from_secs(15 * 60 - 299);
        provider.provide_credentials().await.unwrap();
        assert_eq!(emulator.requests().len(), 2);
        assert!(
            emulator
                .requests()
                .iter()
                .all(|r| r.status == 201 && r.duration_seconds == Some(900))
        );
    });
}

fn x509_der(pem: &str) -> Vec<u8> {
    use x509_cert::der::{DecodePem, Encode};
    x509_cert::Certificate::from_pem(pem.as_bytes())
        .expect("PEM certificate")
        .to_der()
        .expect("PEM certificate")
}

#[test]
fn no_secret_in_any_log_line() {
    let home = tempfile::tempdir().unwrap();
    let secrets = [SECRET_KEY, SESSION_TOKEN];
    for format in ["text", "json"] {
        for verbosity in ["-v", "-vv"] {
            for args in [
                vec!["token", "-i", CLUSTER, "--region", "us-west-2", "--cache"],
                vec!["token", "-i", CLUSTER, "--region", "nowhere"],
                vec![
                    "token",
                    "-i",
                    CLUSTER,
                    "--region",
                    "us-west-2",
                    "--role-arn",
                    "arn:aws:iam::123456789012:role/x",
                ],
            ] {
                let out = with_env_creds(&mut agent(home.path()))
                    .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
                    .args(["--log-format", format, verbosity])
                    .args(&args)
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                for s in secrets {
                    assert!(
                        !stderr.contains(s),
                        "{format} {verbosity} {args:?} leaked a secret:\n{stderr}"
                    );
                }
            }
        }
    }
    // Roles Anywhere at full verbosity, success and failure.
    let ra = rolesanywhere(KeyKind::Rsa);
    let leaf = ra.pki.issue_valid("node-3", KeyKind::Rsa);
    let (cert, key, chain) = leaf.write(ra.dir.path());
    for format in ["text", "json"] {
        let mut args = vec![
            "--log-format".to_owned(),
            format.to_owned(),
            "-vv".to_owned(),
        ];
        args.extend(ra.args(&cert, &key, &chain));
        let out = ra.command(&args).output().unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("CreateSession"),
            "-vv logs the call: {stderr}"
        );
        for s in [&ra.config.secret_access_key, &ra.config.session_token] {
            assert!(!stderr.contains(s.as_str()), "leaked:\n{stderr}");
        }
        let key_body: String = leaf
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!stderr.contains(&key_body[..40]), "private key leaked");
    }
    // SSM activation codes: see auth::ssm unit tests (the code never reaches logs or errors).
}

/// EC2 instance role: credentials from the IMDS emulator's `iam/security-credentials/<role>`
/// (IMDSv2 token first), through the default chain and through `--credentials-source imds`.
#[test]
fn token_from_the_instance_role_via_imds_passes_the_verifier() {
    use eks_node_agent_tests::imds::{ImdsEmulator, Instance, RoleCredentials};
    let expiration = (OffsetDateTime::now_utc() + time::Duration::hours(6))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let role_secret = "imdsRoleSecretKey0123456789abcdefghijklmn";
    let role_token = "IQoJb3JpZ2luX2VjEImdsRoleSessionToken";
    let mut instance = Instance::example();
    instance.credentials = Some(RoleCredentials {
        role: "NodeInstanceRole".into(),
        access_key_id: "ASIAIMDSROLEEXAMPLE1".into(),
        secret_access_key: role_secret.into(),
        token: role_token.into(),
        expiration,
        last_updated: "2026-11-25T00:00:00Z".into(),
    });
    let emu = ImdsEmulator::start(instance);
    let home = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--credentials-source", "imds"][..]] {
        let before = emu.tokens_issued();
        let out = run_ok(
            agent(home.path())
                .env("AWS_EC2_METADATA_DISABLED", "false")
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.endpoint())
                .args(["token", "--cluster-id", CLUSTER, "--region", "us-west-2"])
                .args(extra),
        );
        let checked = assert_passes(&token_of(&exec_credential(&out)), role_secret);
        assert_eq!(checked.access_key_id, "ASIAIMDSROLEEXAMPLE1");
        assert_eq!(checked.session_token.as_deref(), Some(role_token));
        assert!(
            emu.tokens_issued() > before,
            "credentials were not fetched with an IMDSv2 token ({extra:?})"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains(role_secret) && !stderr.contains(role_token));
    }
}

/// What a real AWS SDK (botocore) reads as its credentials, [access key, secret key, token],
/// with only `env` set (plus HOME, and no instance metadata service).
fn botocore_credentials(home: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Vec<String> {
    let script = "import botocore.session, json\n\
                  c = botocore.session.Session().get_credentials().get_frozen_credentials()\n\
                  print(json.dumps([c.access_key, c.secret_key, c.token]))\n";
    let out = Command::new(eks_node_agent_tests::venv_bin("python"))
        .args(["-c", script])
        .env_clear()
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
