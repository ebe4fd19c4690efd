//! Redaction of secrets in free text: what `collect` applies to every file of a support
//! bundle (logs, configs, command output), wherever a secret occurs in it. The NodeConfig's
//! own secret fields are redacted by field (`config::secrets`); this is the pattern-based
//! net for text of any shape.
//!
//! Replaced, each with [`REDACTED`]:
//! - PEM private keys (`-----BEGIN ... PRIVATE KEY-----` to its END line, or to the end of
//!   the text when the END line is missing): the whole body;
//! - `Authorization:` / `Proxy-Authorization:` values (headers, YAML, JSON, `key=value`, a
//!   YAML flow list), to the end of the line or the closing quote; `Bearer <token>` and
//!   `Basic <base64>` anywhere (a YAML block list of headers);
//! - EKS tokens `k8s-aws-v1.<base64url>` (the prefix is kept);
//! - AWS access key IDs (`AKIA`, `ASIA` and the other IAM unique-ID prefixes, 20 characters);
//! - AWS session tokens (the base64 of the STS token envelope: `IQoJb3JpZ2lu...`,
//!   `FwoGZXIvYXdz...`, `AQoDYXdz...`, `AgoJb3JpZ2lu...`) wherever they appear;
//! - Kubernetes bootstrap tokens `[a-z0-9]{6}.[a-z0-9]{16}` (the public token id is kept);
//! - the value of any key or variable whose name says it holds a secret (`*SECRET*`,
//!   `*TOKEN*`, `*PASSWORD*`, `*PASSWD*`, `*CREDENTIAL*`, `*PRIVATE_KEY*`, `*API_KEY*`,
//!   `*ACCESS_KEY*`, `*ACTIVATION_CODE*`, `*KEY_DATA*`, `*AUTH_DATA*`, `*SESSION*`, and a key
//!   named exactly `auth` as in a dockercfg; case, `-`, `_` and `.` alike) in `KEY=value`, `KEY: value`, `"key": "value"` and `key = "value"` forms, which
//!   covers env files, credentials files (the 40-character secret access key), kubeconfigs,
//!   JSON, YAML and TOML;
//! - the argument of a secret-named flag: `--token X`, `-code X` (the SSM agent's
//!   `-register -code`), `--password X`, `--activation-code X`, `--secret X`.
//!
//! Every pattern is a `regex` automaton: linear in the input, so a large or hostile file
//! cannot make redaction slow. Redacting redacted text changes nothing.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Words that make a key's value a secret (matched case-insensitively, `-`/`.` as `_`).
/// A key named exactly `auth` is a secret too: the base64 `user:password` of a dockercfg or a
/// Docker `config.json` (ECS_ENGINE_AUTH_DATA, registry credentials).
const SECRET_NAME: &str = r"[A-Za-z0-9_.\-]*(?:secret|token|password|passwd|credential|private[_.\-]?key|api[_.\-]?key|access[_.\-]?key|activation[_.\-]?code|key[_.\-]?data|auth[_.\-]?data|session)[A-Za-z0-9_.\-]*|auth";

struct Rules {
    private_key: Regex,
    authorization: Regex,
    bearer: Regex,
    eks_token: Regex,
    access_key_id: Regex,
    session_token: Regex,
    bootstrap_token: Regex,
    secret_value: Regex,
    secret_flag: Regex,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("redaction pattern {p}: {e}"));
    Rules {
        private_key: re(
            r"(?s)-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
        ),
        authorization: re(
            r#"(?i)\b((?:proxy-)?authorization)(["']?[ \t]*[:=][ \t]*)(\[?[ \t]*["']?)([^\r\n"'{\[\] \t][^\r\n"'\]]*)"#,
        ),
        bearer: re(r"(?i)\b(bearer|basic)[ \t]+([A-Za-z0-9._~+/=\-]{4,})"),
        eks_token: re(r"k8s-aws-v1\.[A-Za-z0-9_\-=]+"),
        access_key_id: re(r"\b(?:AKIA|ASIA|AROA|AIDA|AGPA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b"),
        session_token: re(
            r"(?:IQoJb3JpZ2lu|FwoGZXIvYXdz|AQoDYXdz|AgoJb3JpZ2lu)[A-Za-z0-9/+=]{20,}",
        ),
        bootstrap_token: re(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b"),
        secret_value: re(&format!(
            r#"(?i)\b({SECRET_NAME})(["']?[ \t]*[:=][ \t]*)(?:"([^"\r\n]*)"|'([^'\r\n]*)'|([^\s"',;{{}}\[\]]+))"#
        )),
        secret_flag: re(
            r"(?i)(?:^|[ \t])(--?(?:token|code|password|secret|activation-code|secret-access-key))([ \t]+|=)([^\s\-][^\s]*)",
        ),
    }
});

/// `text` with every secret replaced (see the module documentation); borrowed when nothing
/// was found.
pub fn redact(text: &str) -> Cow<'_, str> {
    let r = &*RULES;
    let mut out = Cow::Borrowed(text);
    let mut apply = |re: &Regex, f: &dyn Fn(&Captures<'_>) -> String| {
        if let Cow::Owned(s) = re.replace_all(&out, |c: &Captures<'_>| f(c)) {
            out = Cow::Owned(s);
        }
    };
    apply(&r.private_key, &|c| {
        format!(
            "-----BEGIN {0}PRIVATE KEY-----\n{REDACTED}\n-----END {0}PRIVATE KEY-----",
            &c[1]
        )
    });
    apply(&r.authorization, &|c| {
        if &c[4] == REDACTED {
            return c[0].to_owned();
        }
        format!("{}{}{}{REDACTED}", &c[1], &c[2], &c[3])
    });
    apply(&r.bearer, &|c| {
        // `Basic` is also a word: its credentials are base64, never a plain lowercase word.
        let value = &c[2];
        if c[1].eq_ignore_ascii_case("basic")
            && !value
                .chars()
                .any(|ch| ch.is_ascii_digit() || ch.is_ascii_uppercase() || "+/=".contains(ch))
        {
            return c[0].to_owned();
        }
        format!("{} {REDACTED}", &c[1])
    });
    apply(&r.eks_token, &|_| format!("k8s-aws-v1.{REDACTED}"));
    apply(&r.access_key_id, &|_| REDACTED.to_owned());
    apply(&r.session_token, &|_| REDACTED.to_owned());
    apply(&r.bootstrap_token, &|c| format!("{}.{REDACTED}", &c[1]));
    apply(&r.secret_value, &|c| {
        let (key, sep) = (&c[1], &c[2]);
        if names_a_setting(key) {
            return c[0].to_owned();
        }
        match (c.get(3), c.get(4)) {
            (Some(_), _) => format!("{key}{sep}\"{REDACTED}\""),
            (_, Some(_)) => format!("{key}{sep}'{REDACTED}'"),
            _ if &c[5] == REDACTED || c[5].ends_with(REDACTED) => c[0].to_owned(),
            _ => format!("{key}{sep}{REDACTED}"),
        }
    });
    apply(&r.secret_flag, &|c| {
        let lead = if c[0].starts_with([' ', '\t']) {
            &c[0][..1]
        } else {
            ""
        };
        format!("{lead}{}{}{REDACTED}", &c[1], &c[2])
    });
    out
}

/// Keys that name where a secret is or how it is handled, not the secret itself
/// (`imageCredentialProviderConfigPath`, `tokenFile`, `credentialsTTL`...): their values stay.
fn names_a_setting(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "path",
        "file",
        "dir",
        "config",
        "ttl",
        "duration",
        "enabled",
        "seconds",
        "expiry",
        "expiration",
        "source",
        "name",
        "_id",
        "-id",
        "id",
    ]
    .iter()
    .any(|end| key.ends_with(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of secret, in the shapes it takes on a node.
    const PLANTED: &[(&str, &str)] = &[
        (
            "AKIAIOSFODNN7EXAMPLE",
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
        ),
        (
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKE2",
            r#"{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKE2", "Version": 1}"#,
        ),
        (
            "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLXdlc3QtMiJHMEUCIQ",
            "creds refreshed token IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLXdlc3QtMiJHMEUCIQ for role",
        ),
        (
            "FwoGZXIvYXdzEBYaDHqa0AP1ewOuOSvnbCLGAQ",
            "export AWS_SESSION_TOKEN='FwoGZXIvYXdzEBYaDHqa0AP1ewOuOSvnbCLGAQ'",
        ),
        (
            "aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20v",
            "exec plugin returned k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20v",
        ),
        (
            "0123456789abcdef",
            "kubeadm join --token abcdef.0123456789abcdef 10.0.0.1:6443",
        ),
        (
            "0123456789abcdeg",
            "    bootstrapToken: abcdeg.0123456789abcdeg",
        ),
        (
            "e3zXHJe8ZdTm5ML1Pc4M",
            "amazon-ssm-agent -register -code e3zXHJe8ZdTm5ML1Pc4M -id 1b8f5b1e -region us-west-2",
        ),
        (
            "Zm9vYmFyYWN0aXZhdGlvbg",
            "      activationCode: Zm9vYmFyYWN0aXZhdGlvbg",
        ),
        (
            "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----\n",
        ),
        (
            "MC4CAQAwBQYDK2VwBCIEIOzpdtruncated",
            "key: \"-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEIOzpdtruncated",
        ),
        (
            "dXNlcjpwYXNzd29yZA==",
            "GET /v1 HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNzd29yZA==\r\nHost: x",
        ),
        (
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2RlIn0.c2ln",
            "curl -H 'Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2RlIn0.c2ln' https://api",
        ),
        (
            "Credential=AKIA/20250101/us-west-2/sts/aws4_request, SignedHeaders=host, Signature=9f",
            "authorization: AWS4-HMAC-SHA256 Credential=AKIA/20250101/us-west-2/sts/aws4_request, SignedHeaders=host, Signature=9f",
        ),
        (
            "s3cr3t-registry-pass",
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.io\".auth]\n  password = \"s3cr3t-registry-pass\"",
        ),
        (
            "kubelet-token-value-123",
            "users:\n- name: kubelet\n  user:\n    token: kubelet-token-value-123\n",
        ),
        (
            "dXNlcjpzZWNyZXRkb2NrZXI=",
            r#"ECS_ENGINE_AUTH_DATA={"https://index.docker.io/v1/":{"auth":"dXNlcjpzZWNyZXRkb2NrZXI=","email":"a@example.com"}}"#,
        ),
        (
            "p4ss-for-the-registry",
            r#"ECS_ENGINE_AUTH_DATA={"https://r.example.com":{"username":"u","password":"p4ss-for-the-registry"}}"#,
        ),
        (
            "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo",
            "    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo",
        ),
    ];

    #[test]
    fn every_planted_secret_is_gone_and_the_context_stays() {
        for (secret, text) in PLANTED {
            let out = redact(text);
            assert!(!out.contains(secret), "{secret} left in {out:?}");
            assert!(out.contains(REDACTED), "{out:?}");
            assert_eq!(redact(&out), out, "redaction is idempotent: {out:?}");
        }
        let out = redact("kubeadm join --token abcdef.0123456789abcdef 10.0.0.1:6443");
        assert_eq!(out, "kubeadm join --token <redacted> 10.0.0.1:6443");
        let out = redact("bootstrap token abcdef.0123456789abcdef used");
        assert_eq!(out, "bootstrap token abcdef.<redacted> used");
        let out = redact("Authorization: Bearer abc.def.ghi");
        assert_eq!(out, "Authorization: <redacted>");
        let out = redact("Authorization: [\"Basic dXNlcjpwYXNz\"]");
        assert_eq!(out, "Authorization: [\"<redacted>\"]");
        let out = redact("Authorization:\n  - Basic dXNlcjpwYXNz\n");
        assert_eq!(out, "Authorization:\n  - Basic <redacted>\n");
        assert_eq!(redact("basic networking works"), "basic networking works");
        let out = redact(r#"{"authorization": {"mode": "Webhook"}}"#);
        assert_eq!(out, r#"{"authorization": {"mode": "Webhook"}}"#);
        let out = redact(r#""imageCredentialProviderConfigPath": "/etc/eks/ecr.json""#);
        assert_eq!(
            out,
            r#""imageCredentialProviderConfigPath": "/etc/eks/ecr.json""#
        );
    }

    #[test]
    fn text_without_secrets_is_untouched() {
        for text in [
            "Dec 06 kubelet[1]: Successfully registered node ip-10-0-0-1.ec2.internal",
            "net.ipv4.ip_forward = 1",
            "default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 metric 100",
            r#"{"kind": "KubeletConfiguration", "maxPods": 110, "clusterDNS": ["10.100.0.10"]}"#,
            "sha1 9fceb02d0ae598e95dc970b74767f19372d61af8",
            "image sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn a_large_input_is_redacted_in_linear_time() {
        let line = "Dec 06 kubelet[1]: token=abc AKIAIOSFODNN7EXAMPLE ok\n";
        let text = line.repeat(200_000);
        let started = std::time::Instant::now();
        let out = redact(&text);
        assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
