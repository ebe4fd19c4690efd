//! kubeadm token discovery (`spec.kubeadm`, EKS Anywhere): `eks-node-agent init` as a process
//! against the Kubernetes API emulator, which serves `cluster-info` signed as the
//! bootstrapsigner controller signs it (JWS made with josekit, not by the agent's code).
//! One test per case: the join, and each refusal with its message, exit code, and nothing
//! written under the root.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use eks_node_agent_tests::kube_api::{KubeApi, spki_pin};

use crate::agent_bin;

/// The token the cluster knows (and signs cluster-info for).
const TOKEN: &str = "07401b.f395accd246ae52d";
/// Same id, another secret.
const WRONG_SECRET_TOKEN: &str = "07401b.0000000000000000";
/// A token id the cluster has no signature for (expired or never created).
const UNKNOWN_TOKEN: &str = "zz9zz9.f395accd246ae52d";
/// A node IP for the tests (the sandbox may have no default route).
const NODE_IP: &str = "10.20.1.31";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct World {
    _rt: tokio::runtime::Runtime,
    api: KubeApi,
    tmp: tempfile::TempDir,
}

impl World {
    /// The emulator with cluster-info published for [`TOKEN`].
    fn new() -> World {
        let rt = runtime();
        let api = rt.block_on(KubeApi::start("not-used-by-discovery"));
        api.publish_cluster_info(&[TOKEN]);
        World {
            _rt: rt,
            api,
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// Writes a NodeConfig with `token` and `pins`; returns its file:// URI.
    fn config(&self, token: &str, pins: &[String], extra: &str) -> String {
        let path = self.tmp.path().join("nodeconfig.yaml");
        let pins: Vec<String> = pins.iter().map(|p| format!("      - \"{p}\"\n")).collect();
        std::fs::write(
            &path,
            format!(
                "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: eksa-test\n    apiServerEndpoint: {}\n  kubelet:\n    flags: [--node-ip={NODE_IP}]\n  kubeadm:\n    bootstrapToken: \"{token}\"\n    caCertHashes:\n{}{extra}",
                self.api.url,
                pins.concat()
            ),
        )
        .unwrap();
        format!("file://{}", path.display())
    }

    fn init(&self, src: &str) -> Output {
        let root = self.root();
        std::fs::create_dir_all(&root).unwrap();
        Command::new(agent_bin())
            .args(["init", "--root", root.to_str().unwrap(), "-c", src])
            .env_remove("AWS_PROFILE")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    }

    /// Asserts a refusal: the exit code, every needle in stderr, the secret nowhere, and
    /// nothing written under the root.
    fn assert_refused(&self, out: &Output, code: i32, needles: &[&str], secret: &str) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "the token secret leaked:\n{stderr}\n{stdout}"
        );
        assert!(
            files_under(&self.root()).is_empty(),
            "a refused join wrote {:?}",
            files_under(&self.root())
        );
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn secret_of(token: &str) -> &str {
    token.split_once('.').unwrap().1
}

/// A CA that is not the cluster's, with its pin.
fn other_ca() -> (String, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "some other CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), spki_pin(&key.public_key_der()))
}

#[test]
fn good_token_and_pin_join_with_the_ca_from_cluster_info() {
    let w = World::new();
    let out = w.init(&w.config(TOKEN, &[w.api.ca_pin()], ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(secret_of(TOKEN)), "{stderr}");
    let root = w.root();

    // The bootstrap kubeconfig: 0600, the server and the CA from the signed cluster-info,
    // and the token.
    let path = root.join("var/lib/kubelet/bootstrap-kubeconfig");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let kc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cluster = &kc["clusters"][0]["cluster"];
    assert_eq!(cluster["server"].as_str(), Some(w.api.url.as_str()));
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), w.api.ca_pem);
    assert_eq!(kc["users"][0]["user"]["token"].as_str(), Some(TOKEN));
    let current = kc["current-context"].as_str().unwrap();
    assert!(
        kc["contexts"][0]["name"].as_str() == Some(current),
        "{kc:?}"
    );

    // The CA file kubelet's client-CA and TLS use.
    assert_eq!(
        std::fs::read_to_string(root.join("etc/kubernetes/pki/ca.crt")).unwrap(),
        w.api.ca_pem
    );
    // TLS bootstrapping: kubelet gets both flags and writes its kubeconfig itself.
    let env = std::fs::read_to_string(root.join("etc/eks/kubelet/environment")).unwrap();
    for needle in [
        "--bootstrap-kubeconfig=/var/lib/kubelet/bootstrap-kubeconfig",
        "--kubeconfig=/var/lib/kubelet/kubeconfig",
        &format!("--node-ip={NODE_IP}"),
    ] {
        assert!(env.contains(needle), "missing {needle} in {env}");
    }
    for absent in [
        "--cloud-provider",
        "--image-credential-provider",
        "--hostname-override",
    ] {
        assert!(!env.contains(absent), "{absent} in {env}");
    }
    assert!(!root.join("var/lib/kubelet/kubeconfig").exists());
    assert!(
        !root
            .join("etc/eks/image-credential-provider/config.json")
            .exists()
    );
    let kubelet: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("etc/kubernetes/kubelet/config.json")).unwrap(),
    )
    .unwrap();
    assert!(kubelet.get("providerID").is_none(), "{kubelet}");
    assert_eq!(kubelet["rotateCertificates"], serde_json::json!(true));
    assert_eq!(kubelet["clusterDNS"], serde_json::json!(["10.96.0.10"]));

    // Two reads of cluster-info (unverified, then over the pinned CA), both anonymous.
    let reads: Vec<_> = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/configmaps/cluster-info"))
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads.iter().all(|r| r.status == 200 && !r.authorized));
}

#[test]
fn wrong_token_secret_is_refused() {
    let w = World::new();
    let out = w.init(&w.config(WRONG_SECRET_TOKEN, &[w.api.ca_pin()], ""));
    w.assert_refused(
        &out,
        1,
        &[
            "refusing to trust the API server",
            "jws-kubeconfig-07401b",
            "does not verify",
            "HMAC-SHA256 does not match",
            "kubeadm token create",
        ],
        secret_of(WRONG_SECRET_TOKEN),
    );
}

#[test]
fn cluster_info_changed_after_signing_is_refused() {
    let w = World::new();
    // A machine in the middle without the token points kubelet at its own server.
    w.api.edit_cluster_info(|data| {
        let kc = data.get_mut("kubeconfig").unwrap();
        *kc = kc.replace(&w.api.url, "https://attacker.example:6443");
    });
    let out = w.init(&w.config(TOKEN, &[w.api.ca_pin()], ""));
    w.assert_refused(
        &out,
        1,
        &[
            "refusing to trust the API server",
            "does not verify",
            "cluster-info was altered by someone without the token",
        ],
        secret_of(TOKEN),
    );
}

#[test]
fn wrong_ca_hash_is_refused() {
    let w = World::new();
    let (_, wrong_pin) = other_ca();
    let out = w.init(&w.config(TOKEN, std::slice::from_ref(&wrong_pin), ""));
    let actual = w.api.ca_pin();
    w.assert_refused(
        &out,
        1,
        &[
            "refusing to trust the API server",
            "matches none of spec.kubeadm.caCertHashes",
            &wrong_pin,
            &actual,
            "openssl x509 -in /etc/kubernetes/pki/ca.crt",
        ],
        secret_of(TOKEN),
    );
}

#[test]
fn unknown_or_expired_token_id_is_refused_after_waiting() {
    let w = World::new();
    let started = std::time::Instant::now();
    let out = w.init(&w.config(
        UNKNOWN_TOKEN,
        &[w.api.ca_pin()],
        "    discoveryTimeoutSeconds: 2\n",
    ));
    w.assert_refused(
        &out,
        1,
        &[
            "no signature for token id \"zz9zz9\"",
            "no `jws-kubeconfig-zz9zz9` key",
            "expired",
            "kubeadm token create",
        ],
        secret_of(UNKNOWN_TOKEN),
    );
    // It waited for the bootstrapsigner (several reads), but within the configured bound.
    let reads = w
        .api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/configmaps/cluster-info"))
        .count();
    assert!(reads >= 3, "{reads} reads");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_signature_that_appears_later_is_waited_for() {
    let w = World::new();
    w.api.publish_cluster_info(&[UNKNOWN_TOKEN]);
    let api_url = w.api.url.clone();
    let ca_pem = w.api.ca_pem.clone();
    // The bootstrapsigner signs for the new token a moment later.
    let data_later = {
        let kubeconfig = eks_node_agent_tests::kube_api::cluster_info_kubeconfig(&api_url, &ca_pem);
        let mut data = w.api.cluster_info_data();
        data.insert(
            "jws-kubeconfig-07401b".into(),
            eks_node_agent_tests::kube_api::kubeadm_detached_jws(&kubeconfig, TOKEN),
        );
        data
    };
    let src = w.config(
        TOKEN,
        &[w.api.ca_pin()],
        "    discoveryTimeoutSeconds: 20\n",
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(1200));
            w.api.set_cluster_info_data(data_later);
        });
        let out = w.init(&src);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert!(
        w.root()
            .join("var/lib/kubelet/bootstrap-kubeconfig")
            .exists()
    );
}

#[test]
fn server_certificate_not_from_the_pinned_ca_is_refused() {
    let w = World::new();
    // cluster-info (correctly signed) lists a CA that did not issue the server's certificate.
    let (other_pem, other_pin) = other_ca();
    w.api.publish_cluster_info_with_ca(&[TOKEN], &other_pem);
    // A refusal, not retried: the bound only keeps a regression from hanging the test.
    let out = w.init(&w.config(TOKEN, &[other_pin], "    discoveryTimeoutSeconds: 3\n"));
    w.assert_refused(
        &out,
        1,
        &[
            "refusing to trust the API server",
            "does not verify against the pinned cluster CA",
        ],
        secret_of(TOKEN),
    );
}

#[test]
fn cluster_info_that_changes_between_the_two_reads_is_refused() {
    let w = World::new();
    // Both versions are correctly signed and list the pinned CA; only the server differs.
    let other = eks_node_agent_tests::kube_api::cluster_info_kubeconfig(
        "https://10.20.0.99:6443",
        &w.api.ca_pem,
    );
    let mut data = std::collections::BTreeMap::new();
    data.insert(
        "jws-kubeconfig-07401b".to_owned(),
        eks_node_agent_tests::kube_api::kubeadm_detached_jws(&other, TOKEN),
    );
    data.insert("kubeconfig".to_owned(), other);
    w.api.change_cluster_info_after_first_read(data);
    let out = w.init(&w.config(TOKEN, &[w.api.ca_pin()], ""));
    w.assert_refused(
        &out,
        1,
        &[
            "refusing to trust the API server",
            "read over TLS verified with the pinned CA differs from the one read first",
        ],
        secret_of(TOKEN),
    );
}

#[test]
fn anonymous_reads_refused_by_rbac_fail_with_the_fix() {
    let w = World::new();
    w.api.deny_anonymous_cluster_info(true);
    let out = w.init(&w.config(TOKEN, &[w.api.ca_pin()], "    discoveryTimeoutSeconds: 1\n"));
    w.assert_refused(
        &out,
        1,
        &[
            "HTTP 403",
            "system:anonymous",
            "kubeadm:bootstrap-signer-clusterinfo",
        ],
        secret_of(TOKEN),
    );
}

#[test]
fn malformed_token_is_bad_input_and_never_echoed() {
    let w = World::new();
    let bad = "07401B.F395ACCD246AE52D";
    let out = w.init(&w.config(bad, &[w.api.ca_pin()], ""));
    w.assert_refused(
        &out,
        2,
        &[
            "spec.kubeadm.bootstrapToken",
            "is not a bootstrap token",
            "not shown because it is a secret",
        ],
        "F395ACCD246AE52D",
    );
    assert!(
        w.api.requests().is_empty(),
        "bad input must not reach the network"
    );
}

#[test]
fn malformed_ca_hash_is_bad_input() {
    let w = World::new();
    let out = w.init(&w.config(TOKEN, &["sha256:1234".to_owned()], ""));
    w.assert_refused(
        &out,
        2,
        &[
            "spec.kubeadm.caCertHashes[0]",
            "\"sha256:1234\" is not a CA pin",
        ],
        secret_of(TOKEN),
    );
    assert!(w.api.requests().is_empty());
}

#[test]
fn dry_run_and_config_show_never_print_the_token_secret() {
    let w = World::new();
    let src = w.config(TOKEN, &[w.api.ca_pin()], "");
    let root = w.root();
    std::fs::create_dir_all(&root).unwrap();
    let out = Command::new(agent_bin())
        .args([
            "init",
            "--dry-run",
            "--root",
            root.to_str().unwrap(),
            "-c",
            &src,
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("/var/lib/kubelet/bootstrap-kubeconfig"),
        "{stdout}"
    );
    assert!(stdout.contains("--bootstrap-kubeconfig"), "{stdout}");
    assert!(!stdout.contains(secret_of(TOKEN)), "{stdout}");
    assert!(files_under(&root).is_empty());

    let out = Command::new(agent_bin())
        .args(["config", "show", "-c", &src])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("bootstrapToken: 07401b.<redacted>"),
        "{stdout}"
    );
    assert!(!stdout.contains(secret_of(TOKEN)), "{stdout}");
}
