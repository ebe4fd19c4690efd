//! `install --from DIR|URL` and `uninstall [--deregister]` as processes: a test mirror built
//! here (small executables and release-shaped tarballs with a manifest.json of SHA-256 sums),
//! served from a directory, by Python's http.server (a real HTTP server) and by a fault-injecting
//! server; `uninstall` compared against a snapshot of the tree; `--deregister` against the SSM
//! emulator with botocore checking every signature.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::agent_bin;

/// (host path, contents, mode) of every file the test mirror installs.
type Expected = Vec<(&'static str, Vec<u8>, u32)>;

pub(crate) fn script(name: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho \"{name} v1.33.0-test\"\n").into_bytes()
}

pub(crate) fn targz(path: &Path, entries: &[(&str, &[u8], u32)]) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    let mut b = tar::Builder::new(gz);
    for (name, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// Builds the mirror in `dir`; returns what it installs.
fn build_mirror(dir: &Path) -> Expected {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/kubelet"), script("kubelet")).unwrap();
    std::fs::write(dir.join("runc.amd64"), script("runc")).unwrap();
    std::fs::write(
        dir.join("ecr-credential-provider-linux-amd64"),
        script("ecr-credential-provider"),
    )
    .unwrap();
    targz(
        &dir.join("cni-plugins-linux-amd64-v1.6.2.tgz"),
        &[
            ("./bridge", &script("bridge")[..], 0o755),
            ("./host-local", &script("host-local")[..], 0o755),
            ("./loopback", &script("loopback")[..], 0o755),
            ("./LICENSE", &b"Apache-2.0\n"[..], 0o644),
        ],
    );
    targz(
        &dir.join("containerd-2.0.5-linux-amd64.tar.gz"),
        &[
            ("bin/containerd", &script("containerd")[..], 0o755),
            ("bin/containerd-shim-runc-v2", &script("shim")[..], 0o755),
            ("bin/ctr", &script("ctr")[..], 0o755),
        ],
    );
    write_manifest(dir);
    vec![
        ("/usr/bin/kubelet", script("kubelet"), 0o755),
        ("/usr/sbin/runc", script("runc"), 0o755),
        (
            "/etc/eks/image-credential-provider/ecr-credential-provider",
            script("ecr-credential-provider"),
            0o755,
        ),
        ("/opt/cni/bin/bridge", script("bridge"), 0o755),
        ("/opt/cni/bin/host-local", script("host-local"), 0o755),
        ("/opt/cni/bin/loopback", script("loopback"), 0o755),
        ("/opt/cni/bin/LICENSE", b"Apache-2.0\n".to_vec(), 0o644),
        ("/usr/bin/containerd", script("containerd"), 0o755),
        ("/usr/bin/containerd-shim-runc-v2", script("shim"), 0o755),
        ("/usr/bin/ctr", script("ctr"), 0o755),
    ]
}

/// The test key pair that signs every test mirror, made once per test process by
/// scripts/sign-mirror.sh (minisign): (public key, secret key).
pub(crate) fn test_key() -> &'static (PathBuf, PathBuf) {
    static KEY: std::sync::OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> =
        std::sync::OnceLock::new();
    let (_, public, secret) = KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (public, secret) = new_key(dir.path());
        (dir, public, secret)
    });
    Box::leak(Box::new((public.clone(), secret.clone())))
}

/// A new minisign key pair in `dir` (no password), by scripts/sign-mirror.sh.
fn new_key(dir: &Path) -> (PathBuf, PathBuf) {
    let out = Command::new(eks_node_agent_tests::repo_root().join("scripts/sign-mirror.sh"))
        .args(["--new-key", dir.to_str().unwrap(), "--no-password"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    (dir.join("mirror.pub"), dir.join("mirror.key"))
}

/// Signs `dir`'s manifest.json with `secret` by scripts/sign-mirror.sh (the real minisign).
fn sign_mirror(dir: &Path, secret: &Path) {
    let out = Command::new(eks_node_agent_tests::repo_root().join("scripts/sign-mirror.sh"))
        .args([dir.to_str().unwrap(), secret.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Writes manifest.json with the true sums and sizes of the files now in `dir`, signed with
/// the test key.
fn write_manifest(dir: &Path) {
    write_manifest_of(dir, &DEFAULT_ARTIFACTS);
}

/// The EKS components of the test mirror: (component, file).
const DEFAULT_ARTIFACTS: [(&str, &str); 5] = [
    ("kubelet", "bin/kubelet"),
    ("runc", "runc.amd64"),
    (
        "ecr-credential-provider",
        "ecr-credential-provider-linux-amd64",
    ),
    ("cni-plugins", "cni-plugins-linux-amd64-v1.6.2.tgz"),
    ("containerd", "containerd-2.0.5-linux-amd64.tar.gz"),
];

/// Writes `dir/manifest.json` for `(component, file)` entries (each file's SHA-256 and size),
/// signed with the test key ([`test_key`]).
pub(crate) fn write_manifest_of(dir: &Path, entries: &[(&str, &str)]) {
    write_unsigned_manifest_of(dir, entries);
    sign_mirror(dir, &test_key().1);
}

/// Writes manifest.json of the default artifacts, leaving any signature as it was.
fn write_unsigned_manifest(dir: &Path) {
    write_unsigned_manifest_of(dir, &DEFAULT_ARTIFACTS);
}

/// Writes manifest.json for `entries`, leaving any signature as it was.
fn write_unsigned_manifest_of(dir: &Path, entries: &[(&str, &str)]) {
    let artifacts: Vec<serde_json::Value> = entries
        .iter()
        .map(|(name, file)| {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            serde_json::json!({
                "name": name,
                "file": file,
                "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
                "size": bytes.len(),
            })
        })
        .collect();
    let doc = serde_json::json!({"version": 1, "artifacts": artifacts});
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Runs the agent; `install` trusts the test key unless the test names its own trust.
fn agent(args: &[&str], envs: &[(&str, String)]) -> Output {
    let own_trust = args
        .iter()
        .any(|a| matches!(*a, "--trusted-key" | "--allow-unsigned"));
    if args.first() == Some(&"install") && !own_trust {
        let key = test_key().0.to_str().unwrap().to_owned();
        let mut with_key: Vec<&str> = args.to_vec();
        with_key.extend(["--trusted-key", &key]);
        return agent_as_given(&with_key, envs);
    }
    agent_as_given(args, envs)
}

/// Runs the agent with exactly `args`.
fn agent_as_given(args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(agent_bin());
    cmd.args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SSM")
        .env("AWS_CONFIG_FILE", "/nonexistent/eks-agent-test/config")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a tree holds: every path with its kind, mode and contents (or link target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            // The host lock stays in /run (a tmpfs, empty at boot) as lock files do.
            if rel.starts_with("run/eks-node-agent/host.lock")
                || rel == Path::new("run/eks-node-agent")
                || rel == Path::new("run")
            {
                if m.is_dir() {
                    stack.push(p);
                }
                continue;
            }
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, ('l', 0, t.into_os_string().into_encoded_bytes()));
            } else if m.is_dir() {
                out.insert(rel, ('d', mode, Vec::new()));
                stack.push(p);
            } else {
                out.insert(rel, ('f', mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn assert_installed(root: &Path, expected: &Expected) {
    for (path, contents, mode) in expected {
        let p = root.join(path.trim_start_matches('/'));
        assert_eq!(&std::fs::read(&p).unwrap(), contents, "{path}");
        let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, *mode, "{path}: mode {m:o}");
    }
}

#[test]
fn install_from_a_directory_verifies_installs_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    let root = tmp.path().join("root");
    let expected = build_mirror(&mirror);
    let out = agent(
        &[
            "install",
            "--from",
            mirror.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_installed(&root, &expected);
    // The installed kubelet runs.
    let run = Command::new(root.join("usr/bin/kubelet")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "kubelet v1.33.0-test\n"
    );
    // Every installed file is in the agent's record with its SHA-256.
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("var/lib/eks-node-agent/files.json")).unwrap(),
    )
    .unwrap();
    for (path, contents, _) in &expected {
        assert_eq!(record["files"][path]["sha256"], sha_hex(contents), "{path}");
        assert_eq!(record["files"][path]["prior"]["kind"], "absent", "{path}");
    }
    // A second run changes nothing: same inodes, same times.
    let before = snapshot(&root);
    let stat = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(root.join(p)).unwrap();
        (m.ino(), m.mtime_nsec())
    };
    let kubelet = stat("usr/bin/kubelet");
    let out = agent(
        &[
            "install",
            "--from",
            mirror.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("created") && !stderr(&out).contains("updated"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&root), before);
    assert_eq!(stat("usr/bin/kubelet"), kubelet);

    // --containerd distro leaves containerd and runc out.
    let root2 = tmp.path().join("root2");
    let out = agent(
        &[
            "install",
            "--from",
            &format!("file://{}/manifest.json", mirror.display()),
            "--root",
            root2.to_str().unwrap(),
            "--containerd",
            "distro",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(root2.join("usr/bin/kubelet").exists());
    assert!(!root2.join("usr/bin/containerd").exists());
    assert!(!root2.join("usr/sbin/runc").exists());
    assert!(
        stderr(&out).contains("skipped  containerd: --containerd distro"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_flipped_byte_in_any_artifact_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    build_mirror(&mirror);
    // kubelet is installed last: every other artifact verifies, still nothing is written.
    for file in ["bin/kubelet", "containerd-2.0.5-linux-amd64.tar.gz"] {
        let original = std::fs::read(mirror.join(file)).unwrap();
        let mut bad = original.clone();
        let i = bad.len() / 2;
        bad[i] ^= 0x01;
        std::fs::write(mirror.join(file), &bad).unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let out = agent(
            &[
                "install",
                "--from",
                mirror.to_str().unwrap(),
                "--root",
                root.to_str().unwrap(),
            ],
            &[],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let name = if file == "bin/kubelet" {
            "kubelet"
        } else {
            "containerd"
        };
        assert!(err.contains(&format!("artifact {name} (")), "{err}");
        assert!(
            err.contains(&mirror.join(file).display().to_string()),
            "{err}"
        );
        assert!(
            err.contains(&sha_hex(&original)),
            "expected sum missing: {err}"
        );
        assert!(err.contains(&sha_hex(&bad)), "actual sum missing: {err}");
        assert!(
            err.contains("nothing was installed") && err.contains("copy it into the mirror again"),
            "{err}"
        );
        assert!(snapshot(&root).is_empty(), "{file}: something was written");
        std::fs::write(mirror.join(file), &original).unwrap();
    }
    // A manifest that declares fewer bytes than the file holds: the cap refuses it.
    let m = std::fs::read_to_string(mirror.join("manifest.json")).unwrap();
    let kubelet_len = script("kubelet").len();
    let smaller = m.replacen(&format!("\"size\": {kubelet_len}"), "\"size\": 5", 1);
    assert_ne!(m, smaller);
    std::fs::write(mirror.join("manifest.json"), smaller).unwrap();
    // Signed: the signature vouches for the manifest, the cap still checks the files.
    sign_mirror(&mirror, &test_key().1);
    let root = tmp.path().join("root3");
    let out = agent(
        &[
            "install",
            "--from",
            mirror.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larger than 5 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(!root.exists());
    // A bad manifest names the field and the fix.
    std::fs::write(mirror.join("manifest.json"), "{\"version\": 1, \"artifacts\": [{\"name\": \"kubectl\", \"file\": \"k\", \"sha256\": \"00\", \"size\": 1}]}").unwrap();
    sign_mirror(&mirror, &test_key().1);
    let out = agent(
        &[
            "install",
            "--from",
            mirror.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("artifacts[0].name") && stderr(&out).contains("use one of"),
        "{}",
        stderr(&out)
    );
}

/// Python's http.server serving a directory on a free loopback port; killed on drop.
struct PyHttp {
    child: Child,
    port: u16,
}

impl PyHttp {
    fn start(dir: &Path) -> PyHttp {
        let port = eks_node_agent_tests::free_port();
        let child = Command::new(eks_node_agent_tests::venv_bin("python"))
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PyHttp { child, port }
    }
}

impl Drop for PyHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn install_from_a_url_matches_install_from_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    let expected = build_mirror(&mirror);
    let server = PyHttp::start(&mirror);
    let from_dir = tmp.path().join("from-dir");
    let from_url = tmp.path().join("from-url");
    let out = agent(
        &[
            "install",
            "--from",
            mirror.to_str().unwrap(),
            "--root",
            from_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let url = format!("http://127.0.0.1:{}", server.port);
    let out = agent(
        &[
            "install",
            "--from",
            &url,
            "--root",
            from_url.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_installed(&from_url, &expected);
    assert_eq!(snapshot(&from_dir), snapshot(&from_url));

    // A flipped byte served over HTTP is refused the same way.
    let original = std::fs::read(mirror.join("runc.amd64")).unwrap();
    let mut bad = original.clone();
    bad[0] ^= 0x20;
    std::fs::write(mirror.join("runc.amd64"), &bad).unwrap();
    let root = tmp.path().join("bad");
    let out = agent(
        &["install", "--from", &url, "--root", root.to_str().unwrap()],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{url}/runc.amd64"))
            && err.contains(&sha_hex(&original))
            && err.contains(&sha_hex(&bad)),
        "{err}"
    );
    assert!(!root.exists());
}

/// A static file server with faults: the next N requests answered 503, or their connection
/// dropped; counts requests per path.
#[derive(Clone, Default)]
struct Faults {
    fail_next: Arc<AtomicU32>,
    drop_next: Arc<AtomicU32>,
    hits: Arc<Mutex<BTreeMap<String, u32>>>,
}

/// The mirror's signature (manifest.json.minisig, by the real minisign through
/// scripts/sign-mirror.sh) is what makes its SHA-256 sums trustworthy: a manifest changed
/// after signing (an artifact replaced together with its sum), a signature by another key and
/// an unsigned mirror are refused with exit 2 and an untouched root, from a directory and over
/// HTTP; `--allow-unsigned` installs with a warning; the key pinned at
/// /etc/eks-node-agent/mirror.pub (under --root) is the default trust.
#[test]
fn tampered_wrongly_signed_and_unsigned_mirrors_install_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    let expected = build_mirror(&mirror);
    let server = PyHttp::start(&mirror);
    let url = format!("http://127.0.0.1:{}", server.port);
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let before = snapshot(&root);
    let r = root.to_str().unwrap();
    let refused = |out: &Output, want: &str| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(2), "{want}: {err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(
            err.contains("manifest.json.minisig") || err.contains("trusted key"),
            "{err}"
        );
        assert_eq!(snapshot(&root), before, "{want}: the root changed");
    };

    // 1. The mirror replaces kubelet and puts the new file's sum in the manifest: the sums
    //    agree with the files, the signature no longer agrees with the manifest.
    let signature = std::fs::read(mirror.join("manifest.json.minisig")).unwrap();
    std::fs::write(mirror.join("bin/kubelet"), script("evil-kubelet")).unwrap();
    write_unsigned_manifest(&mirror);
    for from in [mirror.to_str().unwrap(), &url] {
        let out = agent(&["install", "--from", from, "--root", r], &[]);
        refused(
            &out,
            "the manifest was changed after it was signed; nothing was installed",
        );
    }
    // ... and --allow-unsigned does not let a wrong signature through.
    let out = agent(
        &[
            "install",
            "--from",
            &url,
            "--root",
            r,
            "--allow-unsigned",
            "--trusted-key",
            test_key().0.to_str().unwrap(),
        ],
        &[],
    );
    refused(&out, "the manifest was changed after it was signed");
    std::fs::write(mirror.join("bin/kubelet"), script("kubelet")).unwrap();
    write_unsigned_manifest(&mirror);
    std::fs::write(mirror.join("manifest.json.minisig"), &signature).unwrap();

    // 2. Signed, but by a key the node does not trust.
    let other = tmp.path().join("other-key");
    let (other_public, _) = new_key(&other);
    let out = agent(
        &[
            "install",
            "--from",
            &url,
            "--root",
            r,
            "--trusted-key",
            other_public.to_str().unwrap(),
        ],
        &[],
    );
    refused(&out, "was made with a key that is not trusted");

    // 3. Unsigned.
    std::fs::remove_file(mirror.join("manifest.json.minisig")).unwrap();
    for from in [mirror.to_str().unwrap(), &url] {
        let out = agent(&["install", "--from", from, "--root", r], &[]);
        refused(&out, "not found: the mirror is not signed");
    }
    let out = agent(
        &["install", "--from", &url, "--root", r, "--allow-unsigned"],
        &[],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("--allow-unsigned") && err.contains("NOT checked"),
        "{err}"
    );
    assert_installed(&root, &expected);

    // 4. No key pinned and none given: refused; the key pinned under the root is the default.
    sign_mirror(&mirror, &test_key().1);
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let f = fresh.to_str().unwrap();
    let out = agent_as_given(&["install", "--from", &url, "--root", f], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no trusted key"), "{}", stderr(&out));
    assert!(snapshot(&fresh).is_empty());
    let pinned = fresh.join("etc/eks-node-agent/mirror.pub");
    std::fs::create_dir_all(pinned.parent().unwrap()).unwrap();
    std::fs::copy(&test_key().0, &pinned).unwrap();
    let out = agent_as_given(&["install", "--from", &url, "--root", f], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_installed(&fresh, &expected);

    // 5. Credentials in the mirror URL are refused and never echoed.
    let out = agent(
        &[
            "install",
            "--from",
            "https://robot:MIRRORPW42@127.0.0.1:9/",
            "--root",
            f,
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        !err.contains("MIRRORPW42") && err.contains("credentials"),
        "{err}"
    );
}

fn faulty_server(dir: PathBuf, faults: Faults) -> (u16, std::sync::mpsc::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        loop {
            if rx.try_recv().is_ok() {
                return;
            }
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut buf = [0u8; 4096];
            let n = std::io::Read::read(&mut stream, &mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = req
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_owned();
            *faults.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
            let take = |a: &AtomicU32| {
                a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok()
            };
            if take(&faults.drop_next) {
                continue; // closed without an answer
            }
            if take(&faults.fail_next) {
                let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            match std::fs::read(dir.join(&path)) {
                Ok(body) => {
                    let _ = stream.write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    let _ = stream.write_all(&body);
                }
                Err(_) => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    (port, tx)
}

#[test]
fn url_downloads_retry_5xx_and_dropped_connections_but_not_404() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    let expected = build_mirror(&mirror);
    let faults = Faults::default();
    let (port, stop) = faulty_server(mirror.clone(), faults.clone());
    let url = format!("http://127.0.0.1:{port}/");

    // Two 503s and a dropped connection: retried with backoff, then everything installs.
    faults.fail_next.store(2, Ordering::SeqCst);
    faults.drop_next.store(1, Ordering::SeqCst);
    let root = tmp.path().join("root");
    let out = agent(
        &["install", "--from", &url, "--root", root.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_installed(&root, &expected);
    let hits = faults.hits.lock().unwrap().clone();
    assert_eq!(hits["manifest.json"], 4, "3 faults then success: {hits:?}");
    // The manifest, its signature and five artifacts, plus the three faults.
    assert_eq!(hits["manifest.json.minisig"], 1, "{hits:?}");
    assert_eq!(hits.values().sum::<u32>(), 7 + 3, "{hits:?}");

    // 404: not retried, bad input, nothing written.
    faults.hits.lock().unwrap().clear();
    std::fs::remove_file(mirror.join("runc.amd64")).unwrap();
    let root = tmp.path().join("root404");
    let out = agent(
        &["install", "--from", &url, "--root", root.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{url}runc.amd64: not found (HTTP 404 Not Found)")),
        "{}",
        stderr(&out)
    );
    assert_eq!(faults.hits.lock().unwrap()["runc.amd64"], 1);
    assert!(!root.exists());

    // A mirror that keeps failing: bounded attempts, runtime failure.
    faults.fail_next.store(100, Ordering::SeqCst);
    let started = Instant::now();
    let out = agent(
        &["install", "--from", &url, "--root", root.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed after 4 attempt(s): HTTP 503"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let _ = stop.send(());
}

fn hybrid_config(dir: &Path) -> String {
    let path = dir.join("hybrid.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c1\n    region: us-west-2\n    apiServerEndpoint: https://c1.example.com\n    certificateAuthority: {}\n    cidr: 172.16.0.0/16\n  kubelet:\n    flags: [--node-ip=192.168.10.7]\n  hybrid:\n    iamRolesAnywhere:\n      nodeName: node-7\n      trustAnchorArn: arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/a\n      profileArn: arn:aws:rolesanywhere:us-west-2:123456789012:profile/b\n      roleArn: arn:aws:iam::123456789012:role/Node\n",
            eks_node_agent_tests::test_ca_b64()
        ),
    )
    .unwrap();
    format!("file://{}", path.display())
}

fn put(root: &Path, path: &str, contents: &[u8], mode: u32) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, contents).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A host with the user's own files, some of which init and install replace.
fn populated_root(root: &Path) {
    put(root, "etc/hosts", b"127.0.0.1 localhost\n", 0o644);
    put(
        root,
        "etc/containerd/config.toml",
        b"# the admin's own containerd config\nversion = 2\n",
        0o600,
    );
    put(
        root,
        "etc/containerd/certs.d/registry.local/hosts.toml",
        b"server = \"https://registry.local\"\n",
        0o644,
    );
    put(root, "opt/cni/bin/portmap", b"#!/bin/sh\n", 0o750);
    put(root, "usr/bin/tool", b"#!/bin/sh\n", 0o755);
    std::fs::create_dir_all(root.join("etc/eks/image-credential-provider")).unwrap();
    std::os::unix::fs::symlink(
        "/opt/ecr/provider",
        root.join("etc/eks/image-credential-provider/ecr-credential-provider"),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("etc/containerd"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
}

#[test]
fn uninstall_after_init_and_install_leaves_the_tree_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    build_mirror(&mirror);
    let root = tmp.path().join("root");
    populated_root(&root);
    let before = snapshot(&root);
    let r = root.to_str().unwrap();

    let out = agent(
        &["init", "--root", r, "-c", &hybrid_config(tmp.path())],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = agent(
        &[
            "install",
            "--from",
            mirror.to_str().unwrap(),
            "--root",
            r,
            "--containerd",
            "mirror",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let installed = snapshot(&root);
    assert_ne!(installed, before);
    assert!(
        std::fs::read_to_string(root.join("etc/containerd/config.toml"))
            .unwrap()
            .contains("[plugins"),
        "init replaced the admin's containerd config"
    );
    assert!(root.join("var/lib/kubelet/kubeconfig").exists());
    assert!(
        !std::fs::symlink_metadata(
            root.join("etc/eks/image-credential-provider/ecr-credential-provider")
        )
        .unwrap()
        .file_type()
        .is_symlink()
    );

    // A dry run prints the steps and changes nothing. (--force: the kubeconfig init wrote
    // names an API server that does not exist; the drain preflight has its own test.)
    let out = agent(&["uninstall", "--root", r, "--dry-run", "--force"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("restore  /etc/containerd/config.toml from /var/lib/eks-node-agent/backup/etc/containerd/config.toml"), "{plan}");
    assert!(plan.contains("remove   /usr/bin/kubelet"), "{plan}");
    assert!(plan.contains("relink   /etc/eks/image-credential-provider/ecr-credential-provider -> /opt/ecr/provider"), "{plan}");
    assert_eq!(snapshot(&root), installed);

    let out = agent(&["uninstall", "--root", r, "--force"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = snapshot(&root);
    let diff: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        diff.is_empty(),
        "differs from the snapshot: {diff:?}\n{}",
        stderr(&out)
    );

    // Nothing left to do.
    let out = agent(&["uninstall", "--root", r, "--force"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn uninstall_changes_nothing_when_a_file_was_edited_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    build_mirror(&mirror);
    let root = tmp.path().join("root");
    let r = root.to_str().unwrap();
    let out = agent(
        &["install", "--from", mirror.to_str().unwrap(), "--root", r],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(root.join("usr/bin/kubelet"), b"patched by the admin").unwrap();
    let installed = snapshot(&root);
    let out = agent(&["uninstall", "--root", r], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("/usr/bin/kubelet")
            && err.contains("--force")
            && err.contains("changed nothing"),
        "{err}"
    );
    assert_eq!(snapshot(&root), installed);
    let out = agent(&["uninstall", "--root", r, "--force"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("forced   /usr/bin/kubelet"),
        "{}",
        stderr(&out)
    );
    assert!(snapshot(&root).is_empty(), "{:?}", snapshot(&root).keys());
}

mod deregister {
    //! `uninstall --deregister` against the SSM emulator (botocore verifies every signature).

    use super::*;
    use eks_node_agent_tests::ssm_api::{Keys, SsmEmulator};

    const ID: &str = "mi-0123456789abcdef0";
    const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLETOKEN";

    fn emulator() -> SsmEmulator {
        SsmEmulator::start(
            "us-west-2",
            Keys {
                access_key_id: KEY.into(),
                secret_access_key: SECRET.into(),
                session_token: Some(TOKEN.into()),
            },
        )
    }

    /// A registered SSM hybrid node: the SSM agent's registration, key store, per-instance
    /// state and credentials file (its default place, /root/.aws/credentials, under the root).
    fn registered_root(root: &Path, secret: &str) {
        put(
            root,
            "var/lib/amazon/ssm/registration",
            format!("{{\"ManagedInstanceID\":\"{ID}\",\"Region\":\"us-west-2\"}}").as_bytes(),
            0o644,
        );
        put(
            root,
            "var/lib/amazon/ssm/Vault/Store/RegistrationKey",
            b"{\"PrivateKey\":\"x\"}",
            0o600,
        );
        put(
            root,
            &format!("var/lib/amazon/ssm/{ID}/document/state/current/x"),
            b"{}",
            0o600,
        );
        put(root, "var/lib/amazon/ssm/ipc/health", b"", 0o600);
        put(
            root,
            "root/.aws/credentials",
            format!("[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {secret}\naws_session_token = {TOKEN}\n").as_bytes(),
            0o600,
        );
    }

    #[test]
    fn deregisters_then_removes_the_registration() {
        let ssm = emulator();
        ssm.register(ID);
        ssm.fail_next(1);
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        registered_root(&root, SECRET);
        let envs = [("AWS_ENDPOINT_URL_SSM", ssm.endpoint())];
        let out = agent(
            &[
                "uninstall",
                "--deregister",
                "--root",
                root.to_str().unwrap(),
            ],
            &envs,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!ssm.is_registered(ID));
        let reqs = ssm.requests();
        assert_eq!(reqs.len(), 2, "a 500 then a retry: {reqs:?}");
        assert_eq!(reqs[0].code, "InternalServerError");
        assert_eq!(reqs[1].status, 200);
        assert!(
            reqs[1].signature_verified,
            "botocore agreed with the signature"
        );
        assert_eq!(reqs[1].target, "AmazonSSM.DeregisterManagedInstance");
        let instance_dir = format!("var/lib/amazon/ssm/{ID}");
        for gone in [
            "var/lib/amazon/ssm/registration",
            "var/lib/amazon/ssm/Vault",
            instance_dir.as_str(),
        ] {
            assert!(!root.join(gone).exists(), "{gone}");
        }
        assert!(
            root.join("var/lib/amazon/ssm/ipc/health").exists(),
            "the SSM agent's other files stay"
        );
        assert!(root.join("root/.aws/credentials").exists());
        // Registered no more: nothing to do.
        let out = agent(
            &[
                "uninstall",
                "--deregister",
                "--root",
                root.to_str().unwrap(),
            ],
            &envs,
        );
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    }

    #[test]
    fn ssm_errors_keep_the_registration_and_name_the_fix() {
        let ssm = emulator();
        let tmp = tempfile::tempdir().unwrap();
        let envs = [("AWS_ENDPOINT_URL_SSM", ssm.endpoint())];

        // Not a managed instance SSM knows: InvalidInstanceId, 400, as published.
        let root = tmp.path().join("unknown");
        registered_root(&root, SECRET);
        let out = agent(
            &[
                "uninstall",
                "--deregister",
                "--root",
                root.to_str().unwrap(),
            ],
            &envs,
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("SSM DeregisterManagedInstance for {ID}"))
                && err.contains("HTTP 400 InvalidInstanceId"),
            "{err}"
        );
        assert!(
            err.contains("already deregistered") && err.contains("Nothing was removed"),
            "{err}"
        );
        assert!(root.join("var/lib/amazon/ssm/registration").exists());
        assert!(ssm.requests()[0].signature_verified);

        // The wrong secret: botocore's signature differs, InvalidSignatureException.
        ssm.register(ID);
        let root = tmp.path().join("badkey");
        registered_root(&root, "not-the-secret");
        let out = agent(
            &[
                "uninstall",
                "--deregister",
                "--root",
                root.to_str().unwrap(),
            ],
            &envs,
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("InvalidSignatureException") && err.contains("credentials were refused"),
            "{err}"
        );
        assert!(
            !err.contains("not-the-secret"),
            "the secret never shows: {err}"
        );
        assert!(ssm.is_registered(ID));
        assert!(
            root.join("var/lib/amazon/ssm/Vault/Store/RegistrationKey")
                .exists()
        );
    }
}

/// `uninstall` refuses a node that is not cordoned, or that still runs pods (the Kubernetes
/// API emulator), and changes nothing; once drained it stops the daemon, the kubelet and
/// containerd (the systemd emulator, in that order) before it removes the files.
#[test]
fn uninstall_needs_a_drained_node_and_stops_services_first() {
    use eks_node_agent_tests::kube_api::{KubeApi, PodSpec};
    use eks_node_agent_tests::systemd_dbus::SystemdEmulator;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(KubeApi::start("node-token"));
    let systemd = rt.block_on(SystemdEmulator::start());
    for unit in [
        "eks-node-agent.service",
        "kubelet.service",
        "containerd.service",
    ] {
        systemd.add_unit(unit, "active");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    build_mirror(&mirror);
    let root = tmp.path().join("root");
    let r = root.to_str().unwrap();
    let out = agent(
        &["install", "--from", mirror.to_str().unwrap(), "--root", r],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    put(
        &root,
        "etc/test/kubeconfig",
        api.kubeconfig().as_bytes(),
        0o600,
    );
    api.add_node("node-7", serde_json::json!([]));
    api.add_pod(PodSpec::new("default", "web", "node-7"));
    let installed = snapshot(&root);
    let uninstall = |extra: &[&str]| {
        let mut args = vec![
            "uninstall",
            "--root",
            r,
            "--node-name",
            "node-7",
            "--kubeconfig",
            "/etc/test/kubeconfig",
            "--systemd-bus",
            systemd.address(),
        ];
        args.extend_from_slice(extra);
        agent(&args, &[])
    };

    let out = uninstall(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Node node-7: the Node is not cordoned"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(snapshot(&root), installed);
    assert!(systemd.actions().is_empty(), "{:?}", systemd.actions());

    api.patch_node_status(
        "node-7",
        &serde_json::json!({"spec": {"unschedulable": true}}),
    );
    let out = uninstall(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 pod(s) still run on it: default/web"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&root), installed);
    assert!(systemd.actions().is_empty(), "{:?}", systemd.actions());

    // A dry run says what it would stop and stops nothing.
    api.remove_pod("web");
    let out = uninstall(&["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("stop eks-node-agent.service, kubelet.service, containerd.service"),
        "{plan}"
    );
    assert!(systemd.actions().is_empty(), "{:?}", systemd.actions());

    let out = uninstall(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Node node-7 is cordoned and drained"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        systemd.actions(),
        [
            "StopUnit eks-node-agent.service",
            "StopUnit kubelet.service",
            "StopUnit containerd.service"
        ]
    );
    assert!(!root.join("usr/bin/kubelet").exists());
    assert!(!root.join("var/lib/eks-node-agent/files.json").exists());
    for unit in ["kubelet.service", "containerd.service"] {
        assert_eq!(systemd.active_state(unit).as_deref(), Some("inactive"));
    }
}

/// Two `init`s at once: the host lock makes the second wait for the first (both succeed, the
/// record `files.json` is whole and uninstall restores the tree from it); a command that
/// cannot get the lock within `--lock-wait` fails with exit 1 naming the holder and writes
/// nothing.
#[test]
fn concurrent_inits_take_turns_and_files_json_stays_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    populated_root(&root);
    let before = snapshot(&root);
    let r = root.to_str().unwrap().to_owned();
    let source = hybrid_config(tmp.path());

    // The test holds the lock: an init with a short wait fails clearly and changes nothing.
    let lock_path = root.join("run/eks-node-agent/host.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    held.lock().unwrap();
    let me = format!("pid {} (", std::process::id());
    let started = std::time::Instant::now();
    let out = agent(
        &["init", "--root", &r, "-c", &source, "--lock-wait", "1"],
        &[],
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("holds the host lock") && err.contains(&me),
        "{err}"
    );
    assert!(!root.join("var/lib/eks-node-agent/files.json").exists());
    assert!(!root.join("etc/kubernetes/kubelet/config.json").exists());

    // Two inits started while the lock is held both wait, then take turns.
    let spawn = || {
        Command::new(agent_bin())
            .args(["init", "--root", &r, "-c", &source, "--lock-wait", "60"])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/eks-agent-test/config")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    // Both reach the lock (init takes it just before its first change) while the test holds it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    drop(held);
    let mut waited_for_the_test = 0;
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("waiting up to 60 s for the host lock held by pid "),
            "{err}"
        );
        if err.contains(&format!(
            "waiting up to 60 s for the host lock held by {me}"
        )) {
            waited_for_the_test += 1;
        }
    }
    assert!(waited_for_the_test >= 1);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("var/lib/eks-node-agent/files.json")).unwrap(),
    )
    .expect("files.json is whole JSON");
    assert!(record.is_object(), "{record}");
    let out = agent(&["uninstall", "--root", &r, "--force"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshot(&root), before, "{}", stderr(&out));
}

/// A mirror like [`build_mirror`]'s whose kubelet reports `kubelet_version` and whose
/// containerd is `containerd_tag`'s.
fn versioned_mirror(dir: &Path, kubelet_version: &str, containerd_tag: &str) {
    build_mirror(dir);
    std::fs::write(
        dir.join("bin/kubelet"),
        format!("#!/bin/sh\necho \"Kubernetes {kubelet_version}\"\n"),
    )
    .unwrap();
    targz(
        &dir.join("containerd-2.0.5-linux-amd64.tar.gz"),
        &[
            ("bin/containerd", &script(containerd_tag)[..], 0o755),
            ("bin/containerd-shim-runc-v2", &script("shim")[..], 0o755),
            ("bin/ctr", &script("ctr")[..], 0o755),
        ],
    );
    write_manifest(dir);
}

/// `upgrade` against the Kubernetes API emulator (cordon, drain through evictions, the Node's
/// Ready heartbeat) and the systemd emulator: a kubelet that never reports Ready after the
/// restart rolls back (old binaries, kubelet started, uncordoned, exit 1 naming the step);
/// the happy path installs the new binaries and uncordons; a kubelet newer than the API
/// server, or a mirror without the requested version, is exit 2 with nothing changed.
#[test]
fn upgrade_drains_installs_waits_for_ready_and_rolls_back_on_failure() {
    use eks_node_agent_tests::kube_api::{KubeApi, PodSpec};
    use eks_node_agent_tests::systemd_dbus::SystemdEmulator;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(KubeApi::start("node-token"));
    api.set_version("v1.31.0");
    let ready = |at: &str| {
        serde_json::json!([{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status", "lastHeartbeatTime": at,
            "lastTransitionTime": "2025-01-01T00:00:00Z"}])
    };
    api.add_node("node-7", ready("2025-01-01T00:00:00Z"));
    let systemd = rt.block_on(SystemdEmulator::start());
    for unit in ["kubelet.service", "containerd.service"] {
        systemd.add_unit(unit, "active");
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let r = root.to_str().unwrap().to_owned();
    let (old, new, newer) = (
        tmp.path().join("old"),
        tmp.path().join("new"),
        tmp.path().join("newer"),
    );
    versioned_mirror(&old, "v1.30.4", "containerd-old");
    versioned_mirror(&new, "v1.31.2", "containerd-new");
    versioned_mirror(&newer, "v1.32.0", "containerd-newer");
    let out = agent(
        &[
            "install",
            "--from",
            old.to_str().unwrap(),
            "--root",
            &r,
            "--containerd",
            "mirror",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    put(
        &root,
        "etc/test/kubeconfig",
        api.kubeconfig().as_bytes(),
        0o600,
    );
    let old_kubelet = std::fs::read(root.join("usr/bin/kubelet")).unwrap();
    let key = test_key().0.to_str().unwrap().to_owned();
    let upgrade = |mirror: &Path, extra: &[&str]| {
        let mut args = vec![
            "upgrade",
            "--from",
            mirror.to_str().unwrap(),
            "--root",
            &r,
            "--node-name",
            "node-7",
            "--kubeconfig",
            "/etc/test/kubeconfig",
            "--systemd-bus",
            systemd.address(),
            "--trusted-key",
            &key,
            "--drain-timeout",
            "30",
        ];
        args.extend_from_slice(extra);
        agent_as_given(&args, &[])
    };
    let unschedulable = || {
        api.node("node-7").unwrap()["spec"]["unschedulable"]
            .as_bool()
            .unwrap_or(false)
    };

    // Skew: a kubelet newer than the API server; a mirror without the version asked for.
    let installed = snapshot(&root);
    let out = upgrade(&newer, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("version skew: kubelet v1.32.0 is newer than the API server v1.31.0"),
        "{}",
        stderr(&out)
    );
    let out = upgrade(&new, &["--kubernetes-version", "1.30"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not the requested version v1.30"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&root), installed);
    assert!(!unschedulable());
    assert!(systemd.actions().is_empty(), "{:?}", systemd.actions());

    // A dry run prints the steps.
    let out = upgrade(&new, &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.starts_with(
            "preflight\ncordon\ndrain\nstop-kubelet\ninstall\nrestart\nwait-ready\nuncordon\n"
        ),
        "{plan}"
    );
    assert!(plan.contains("/usr/bin/kubelet"), "{plan}");
    assert_eq!(snapshot(&root), installed);

    // The new kubelet never reports Ready: everything is rolled back.
    api.add_pod(PodSpec::new("default", "web", "node-7"));
    let out = upgrade(&new, &["--ready-timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("upgrade failed at step wait-ready"), "{err}");
    assert!(
        err.contains(
            "rolled back: the previous binaries restored, kubelet started, Node node-7 uncordoned"
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read(root.join("usr/bin/kubelet")).unwrap(),
        old_kubelet
    );
    assert_eq!(
        std::fs::read(root.join("usr/bin/containerd")).unwrap(),
        script("containerd-old")
    );
    assert!(!unschedulable());
    assert!(
        api.pods_on("node-7").is_empty(),
        "drained: {:?}",
        api.pods_on("node-7")
    );
    assert_eq!(
        systemd.actions().last().map(String::as_str),
        Some("StartUnit kubelet.service")
    );
    assert_eq!(
        systemd.active_state("kubelet.service").as_deref(),
        Some("active")
    );

    // The happy path: the "kubelet" posts Ready once it is started again.
    systemd.clear_calls();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heartbeat = {
        let flag = stop.clone();
        let api = &api;
        let systemd = &systemd;
        std::thread::scope(|s| {
            let h = s.spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    if systemd
                        .actions()
                        .iter()
                        .any(|a| a == "StartUnit kubelet.service")
                    {
                        let now = time::OffsetDateTime::now_utc()
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap();
                        api.patch_node_status(
                            "node-7",
                            &serde_json::json!({"status": {"conditions": ready(&now)}}),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let out = upgrade(
                &new,
                &["--kubernetes-version", "1.31", "--ready-timeout", "20"],
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            h.join().unwrap();
            out
        })
    };
    let out = heartbeat;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for step in [
        "cordon:",
        "drain:",
        "stop-kubelet:",
        "restart:",
        "wait-ready:",
        "uncordon:",
    ] {
        assert!(err.contains(step), "{step}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("usr/bin/kubelet")).unwrap(),
        "#!/bin/sh\necho \"Kubernetes v1.31.2\"\n"
    );
    assert_eq!(
        std::fs::read(root.join("usr/bin/containerd")).unwrap(),
        script("containerd-new")
    );
    assert_eq!(
        std::fs::read(root.join("var/lib/eks-node-agent/rollback/usr/bin/kubelet")).unwrap(),
        old_kubelet,
        "the previous kubelet is kept"
    );
    assert!(!unschedulable());
    assert_eq!(
        systemd.actions(),
        [
            "StopUnit kubelet.service",
            "StopUnit containerd.service",
            "StartUnit containerd.service",
            "StartUnit kubelet.service"
        ]
    );
}
