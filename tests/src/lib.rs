//! Test support shared by the integration tests: paths, free ports, the Python venv with the
//! real peers (moto, botocore, awscli), and the emulators for services that cannot run here.

pub mod autoscaling;
pub mod aws_world;
pub mod dockerd;
pub mod e2e;
pub mod ecs_agent;
pub mod fault_proxy;
pub mod golden;
pub mod imds;
pub mod journald;
pub mod kube_api;
pub mod latency_proxy;
pub mod loopback_http;
pub mod moto;
pub mod moto_sts;
pub mod rolesanywhere;
pub mod scale;
pub mod sigv4_verify;
pub mod ssm_agent;
pub mod ssm_api;
pub mod systemd_dbus;
pub mod systemd_env;
pub mod token_verifier;
pub mod vm;

use std::net::TcpListener;
use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives in the repository")
        .to_path_buf()
}

/// `../shared/reference/` beside the repository (published reference data).
pub fn shared_reference() -> PathBuf {
    std::env::var_os("EKS_AGENT_SHARED_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/reference"))
}

/// The venv that `scripts/test.sh` creates with moto, botocore and awscli.
pub fn venv() -> PathBuf {
    std::env::var_os("EKS_AGENT_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"))
}

/// A program inside the test venv; panics with the fix when the venv is missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/test.sh` (it creates the venv with moto, botocore and awscli)",
        path.display()
    );
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A real CA certificate (self-signed EC P-256, made for these tests), PEM.
pub const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUMnGKbeq3m3PqkkQSQQr/NQGMGKAwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAeFw0yNjExMjUxNjQyMTNaFw0zNjExMjIx
NjQyMTNaMBUxEzARBgNVBAMMCmt1YmVybmV0ZXMwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAS7BBJw8QO2htNYnZKbXtowjYSLeH8O6b1xsb8cnd6kfYd9YmtWk/l4
2xJpSKx9QKuAf2OuONwSxuqTQFHc9pMlo1MwUTAdBgNVHQ4EFgQU2dayg3RmGgOq
p+B5z5R0uLXSFuQwHwYDVR0jBBgwFoAU2dayg3RmGgOqp+B5z5R0uLXSFuQwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAouN0IeTvRGriiLP8V0pL
XyM4j7Z9iUemNvJoJ2KaMs8CIG1iPV8SPEYnBA+2tTtnbD6wVr5fRyDeWJKub5Z+
DzD4
-----END CERTIFICATE-----
";

/// [`TEST_CA_PEM`] as base64, the form NodeConfig and DescribeCluster carry it in.
pub fn test_ca_b64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(TEST_CA_PEM)
}
