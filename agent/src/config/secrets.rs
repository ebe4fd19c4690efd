//! The one redaction rule: which NodeConfig fields hold secrets, so that their values never
//! reach a message, a log line or `config show`, whatever their YAML/JSON type.
//!
//! Secret-bearing fields:
//! - `spec.hybrid.ssm.activationCode` (the SSM hybrid activation code);
//! - `spec.kubeadm.bootstrapToken` (the token's secret half; its id is public);
//! - `spec.containerd.config`: registry credentials in the TOML (`password`, `auth`,
//!   `identitytoken` and any key naming a secret, at any depth);
//! - `spec.kubelet.config.staticPodURLHeader`: HTTP headers kubelet sends (authorization);
//! - `spec.instance.environment`: variables whose name says they hold a secret
//!   (`*SECRET*`, `*TOKEN*`, `*PASSWORD*`, ...), and the user information of proxy URLs;
//! - `spec.containerd.baseRuntimeSpec.process.env`: the same variables, as `NAME=value`.
//!
//! A wrongly typed value is never shown under these fields nor under the sections that hold
//! them (`spec.hybrid`, `spec.hybrid.ssm`, `spec.kubeadm`): a code written unquoted (an
//! integer to YAML) is still the code.

use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Field paths whose whole value is a secret.
pub const SECRET_FIELDS: [&str; 2] = [
    "spec.hybrid.ssm.activationCode",
    "spec.kubeadm.bootstrapToken",
];

/// Paths whose values (at any depth) may hold secrets: errors never show a value under them.
const SECRET_SUBTREES: [&str; 5] = [
    "spec.containerd.config",
    "spec.kubelet.config.staticPodURLHeader",
    "spec.instance.environment",
    "spec.containerd.baseRuntimeSpec.process.env",
    "spec.hybrid.ssm",
];

/// Sections that hold a secret field: a wrongly typed value of the section itself (the secret
/// written one level too high) is not shown either.
const SECRET_SECTIONS: [&str; 2] = ["spec.hybrid", "spec.kubeadm"];

/// Words that make a variable or key name a secret's.
const SECRET_WORDS: [&str; 9] = [
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "PRIVATE_KEY",
    "API_KEY",
    "ACCESS_KEY",
    "AUTH",
];

/// Proxy variables, whose URLs may carry `user:password@`.
const PROXY_VARIABLES: [&str; 3] = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"];

/// Whether an error at `path` (dotted, `[i]` for list items, as serde_path_to_error prints it)
/// may show the offending value.
pub fn value_is_secret(path: &str) -> bool {
    let under = |p: &str| {
        path == p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    SECRET_FIELDS.iter().any(|p| under(p))
        || SECRET_SUBTREES.iter().any(|p| under(p))
        || SECRET_SECTIONS.contains(&path)
}

/// Where a secret value's own keys begin: a path (as `config show --explain` lists them)
/// below `prefix` plus this many segments is inside a secret value.
const SECRET_VALUE_ROOTS: [(&str, usize); 3] = [
    ("spec.hybrid.ssm.activationCode", 0),
    ("spec.kubeadm.bootstrapToken", 0),
    ("spec.kubelet.config.staticPodURLHeader", 1),
];

/// A field path as it may be shown: cut where a secret value begins, so that the keys of a
/// map written as a secret's value are not listed either.
pub fn shown_path(path: &str) -> String {
    for (root, keep) in SECRET_VALUE_ROOTS {
        if let Some(rest) = path.strip_prefix(root)
            && rest.starts_with('.')
        {
            let kept: Vec<&str> = rest[1..].split('.').take(keep).collect();
            return if kept.is_empty() {
                root.to_owned()
            } else {
                format!("{root}.{}", kept.join("."))
            };
        }
    }
    path.to_owned()
}

/// Whether a variable or key named `name` holds a secret (case-insensitive).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase().replace('-', "_");
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

fn is_proxy_variable(name: &str) -> bool {
    PROXY_VARIABLES.contains(&name.to_ascii_uppercase().as_str())
}

/// The value a variable may be shown with: `<redacted>` for a secret name, a proxy URL with
/// its user information masked, anything else as is.
pub fn shown_variable(name: &str, value: &str) -> String {
    if is_secret_name(name) {
        REDACTED.to_owned()
    } else if is_proxy_variable(name) {
        crate::model::text::mask_userinfo(value).into_owned()
    } else {
        value.to_owned()
    }
}

/// Replaces every secret in a serialized NodeConfig (`config show`, `bootstrap
/// --print-config`).
pub fn redact(value: &mut Value) {
    if let Some(code) = value.pointer_mut("/spec/hybrid/ssm/activationCode") {
        *code = Value::String(REDACTED.into());
    }
    if let Some(token) = value.pointer_mut("/spec/kubeadm/bootstrapToken") {
        // The token id is public (it names the signature key in cluster-info); the secret is not.
        let shown = token
            .as_str()
            .and_then(|t| crate::model::BootstrapToken::parse(t).ok())
            .map_or_else(|| REDACTED.to_owned(), |t| format!("{}.{REDACTED}", t.id()));
        *token = Value::String(shown);
    }
    if let Some(Value::String(text)) = value.pointer_mut("/spec/containerd/config") {
        *text = redact_toml(text);
    }
    if let Some(Value::Object(headers)) =
        value.pointer_mut("/spec/kubelet/config/staticPodURLHeader")
    {
        for v in headers.values_mut() {
            *v = Value::String(REDACTED.into());
        }
    }
    if let Some(Value::Object(units)) = value.pointer_mut("/spec/instance/environment") {
        for vars in units.values_mut() {
            if let Value::Object(vars) = vars {
                for (name, v) in vars.iter_mut() {
                    if let Value::String(s) = v {
                        *s = shown_variable(name, s);
                    }
                }
            }
        }
    }
    if let Some(Value::Array(env)) =
        value.pointer_mut("/spec/containerd/baseRuntimeSpec/process/env")
    {
        for entry in env.iter_mut() {
            if let Value::String(s) = entry
                && let Some((name, v)) = s.split_once('=')
            {
                *s = format!("{name}={}", shown_variable(name, v));
            }
        }
    }
}

/// containerd TOML with every value under a secret-named key replaced (registry `password`,
/// `auth`, `identitytoken`, ...). Text that does not parse is replaced whole.
pub fn redact_toml(text: &str) -> String {
    fn walk(table: &mut toml::Table) {
        for (key, value) in table.iter_mut() {
            // A secret key's value goes whole, whatever its type (the `auth` table of a
            // registry holds its username, password and tokens).
            if is_secret_name(key) || key.eq_ignore_ascii_case("identitytoken") {
                *value = toml::Value::String(REDACTED.into());
                continue;
            }
            match value {
                toml::Value::Table(t) => walk(t),
                toml::Value::Array(items) => {
                    for item in items {
                        if let toml::Value::Table(t) = item {
                            walk(t);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return REDACTED.to_owned();
    };
    walk(&mut table);
    toml::to_string(&table).unwrap_or_else(|_| REDACTED.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths_cover_fields_sections_and_subtrees() {
        for p in [
            "spec.hybrid.ssm.activationCode",
            "spec.kubeadm.bootstrapToken",
            "spec.hybrid",
            "spec.hybrid.ssm",
            "spec.kubeadm",
            "spec.instance.environment.kubelet.AWS_SECRET_ACCESS_KEY",
            "spec.containerd.config",
            "spec.kubelet.config.staticPodURLHeader.Authorization[0]",
        ] {
            assert!(value_is_secret(p), "{p}");
        }
        for p in [
            "spec.cluster.name",
            "spec",
            "spec.kubeadm.caCertHashes[0]",
            "spec.hybrid.iamRolesAnywhere.nodeName",
            "spec.kubeadm.bootstrapTokenX",
        ] {
            assert!(!value_is_secret(p), "{p}");
        }
    }

    #[test]
    fn paths_stop_where_a_secret_value_begins() {
        assert_eq!(
            shown_path("spec.kubelet.config.staticPodURLHeader.Authorization.SECRETKEY"),
            "spec.kubelet.config.staticPodURLHeader.Authorization"
        );
        assert_eq!(
            shown_path("spec.hybrid.ssm.activationCode.X"),
            "spec.hybrid.ssm.activationCode"
        );
        assert_eq!(shown_path("spec.cluster.name"), "spec.cluster.name");
    }

    #[test]
    fn redaction_reaches_every_secret() {
        let mut v = serde_json::json!({"spec": {
            "hybrid": {"ssm": {"activationCode": "CODE1", "activationId": "id"}},
            "kubeadm": {"bootstrapToken": "abcdef.0123456789abcdef"},
            "containerd": {
                "config": "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r\".auth]\nusername = \"u\"\npassword = \"PW1\"\nauth = \"AUTH1\"\nidentitytoken = \"IT1\"\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r\".tls]\ninsecure_skip_verify = false\n",
                "baseRuntimeSpec": {"process": {"env": ["DB_PASSWORD=PW2", "PATH=/bin"]}}
            },
            "kubelet": {"config": {"staticPodURLHeader": {"Authorization": ["Bearer TOK1"]}}},
            "instance": {"environment": {"default": {
                "HTTPS_PROXY": "http://u:PW3@proxy:3128", "AWS_SECRET_ACCESS_KEY": "SAK1", "NO_PROXY": "x"
            }}}
        }});
        redact(&mut v);
        let text = v.to_string();
        for secret in [
            "CODE1",
            "0123456789abcdef",
            "PW1",
            "AUTH1",
            "IT1",
            "PW2",
            "TOK1",
            "PW3",
            "SAK1",
        ] {
            assert!(!text.contains(secret), "{secret}: {text}");
        }
        for kept in [
            "abcdef.<redacted>",
            "PATH=/bin",
            "proxy:3128",
            "insecure_skip_verify",
        ] {
            assert!(text.contains(kept), "{kept}: {text}");
        }
    }
}
