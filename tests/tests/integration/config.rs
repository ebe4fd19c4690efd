//! NodeConfig sources as a user meets them through the CLI: the examples, the bad-input
//! corpus, and golden decoding/merging/bootstrap-translation cases.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use eks_node_agent_tests::{golden, repo_root};

use crate::agent_bin;

/// Runs the agent in the repository, with no region in the environment.
pub(crate) fn run_agent<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(agent_bin())
        .args(args)
        .current_dir(repo_root())
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .output()
        .expect("run eks-node-agent")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cases of a fixture directory's `EXPECTED`: `fixture<TAB>text the output must contain`.
/// `fixture<TAB>text the error must contain[<TAB>text it must not contain]` lines.
fn fixture_cases(manifest: &str) -> Vec<(&str, &str, Option<&str>)> {
    manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next().unwrap();
            let expected = cols.next().expect("fixture<TAB>expected");
            (file, expected, cols.next())
        })
        .collect()
}

#[test]
fn every_example_passes_config_check() {
    let dir = repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let uri = format!(
            "file://examples/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let out = run_agent(&["config".into(), "check".into(), "-c".into(), uri.clone()]);
        assert!(out.status.success(), "{uri}: {}", text(&out.stderr));
        checked += 1;
    }
    assert!(
        checked >= 5,
        "expected at least 5 examples, found {checked}"
    );
}

/// The longest error output a bad config may produce: messages echo at most 64 characters of
/// any value, however long the input.
const MAX_ERROR_BYTES: usize = 4096;

#[test]
fn every_bad_config_exits_2_with_a_precise_message() {
    let dir = repo_root().join("tests/fixtures/bad-config");
    let manifest = std::fs::read_to_string(dir.join("EXPECTED")).unwrap();
    let cases = fixture_cases(&manifest);
    assert!(
        cases.len() >= 100,
        "the corpus has {} cases; it needs at least 100",
        cases.len()
    );
    let mut failures = Vec::new();
    for (file, expected, forbidden) in &cases {
        assert!(dir.join(file).exists(), "{file} is listed but missing");
        let uri = format!("file://tests/fixtures/bad-config/{file}");
        let started = std::time::Instant::now();
        let out = run_agent(&[
            "-vv".into(),
            "config".into(),
            "check".into(),
            "-c".into(),
            uri,
        ]);
        let elapsed = started.elapsed();
        let stderr = text(&out.stderr);
        let all = text(&out.stdout) + &stderr;
        let leaked = forbidden.is_some_and(|f| all.contains(f));
        if out.status.code() != Some(2)
            || !stderr.contains(expected)
            || !stderr.contains(file)
            || leaked
            || stderr.len() > MAX_ERROR_BYTES
        {
            failures.push(format!(
                "{file}: exit {:?} after {elapsed:?}, {} bytes of stderr{}\n  expected to contain: {expected}\n  stderr: {}",
                out.status.code(),
                stderr.len(),
                if leaked { ", LEAKS the forbidden text" } else { "" },
                stderr.chars().take(2000).collect::<String>()
            ));
        }
    }
    // Every fixture in the directory is listed, so none is silently skipped.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "EXPECTED" && !cases.iter().any(|(f, _, _)| *f == name) {
            failures.push(format!("{name} is not listed in EXPECTED"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_config_never_echoes_the_activation_code() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "SECRETactivationCODE42";
    let path = dir.path().join("ssm.yaml");
    std::fs::write(
        &path,
        format!("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n  hybrid:\n    ssm:\n      activationCode: {secret}\n      activationId: nope\n"),
    )
    .unwrap();
    let uri = format!("file://{}", path.display());
    let out = run_agent(&[
        "-vv".into(),
        "config".into(),
        "check".into(),
        "-c".into(),
        uri.clone(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains(secret));
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("nope", "3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
    )
    .unwrap();
    for format in ["yaml", "json"] {
        let out = run_agent(&[
            "-vv".into(),
            "config".into(),
            "show".into(),
            "-o".into(),
            format.into(),
            "--explain".into(),
            "-c".into(),
            uri.clone(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(!all.contains(secret), "{all}");
        assert!(all.contains("<redacted>"), "{all}");
    }
}

/// The strict corpus: names nodeadm ignores (an unknown feature gate or `disabledMounts`
/// entry) pass `config check` with a warning naming the field and the nearest known name, and
/// fail `config check --strict` with exit code 2 and the same text.
#[test]
fn warnings_pass_and_strict_refuses_them() {
    let dir = repo_root().join("tests/fixtures/strict");
    let manifest = std::fs::read_to_string(dir.join("EXPECTED")).unwrap();
    let cases = fixture_cases(&manifest);
    assert!(cases.len() >= 2);
    for (file, expected, _) in &cases {
        let uri = format!("file://tests/fixtures/strict/{file}");
        let out = run_agent(&["config".into(), "check".into(), "-c".into(), uri.clone()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{file}: {stderr}");
        assert!(
            stderr.contains("warning") && stderr.contains(expected) && stderr.contains(file),
            "{file}: {stderr}"
        );
        let out = run_agent(&[
            "config".into(),
            "check".into(),
            "--strict".into(),
            "-c".into(),
            uri,
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains("--strict") && stderr.contains(expected),
            "{file}: {stderr}"
        );
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name == "EXPECTED" || cases.iter().any(|(f, _, _)| *f == name),
            "{name} is not listed in EXPECTED"
        );
    }
}

/// `config show --explain --facts FILE` explains the derived values for those facts: max pods,
/// the node name, the cluster DNS IP and each kubelet setting, with their sources.
#[test]
fn explain_shows_how_derived_values_came_about() {
    let scenario = "tests/golden/init/ec2-instance-tags";
    let out = run_agent(&[
        "config".into(),
        "show".into(),
        "--explain".into(),
        "--facts".into(),
        format!("{scenario}/discovered.yaml"),
        "-c".into(),
        format!("file://{scenario}/nodeconfig.yaml"),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for needle in [
        "# How the derived values came about (from the facts in tests/golden/init/ec2-instance-tags/discovered.yaml):",
        "#   max pods: 29: computed from m5.large's limits (3 ENIs, 10 IPv4 addresses each, 2 vCPUs, embedded table)",
        "#   node name: ip-10-0-12-34.us-west-2.compute.internal: the instance's private DNS name (EC2 DescribeInstances)",
        "#   cluster DNS: 10.100.0.10: the 10th address of the service CIDR 10.100.0.0/16 (from spec.cluster.cidr)",
        "#   kubelet version: v1.34.0: assumed",
        "#   label team: EC2 instance tag node.eks.aws:label:team",
        "# Where each kubelet setting comes from:",
        "#   maxPods: 29: computed from m5.large's limits",
        "#   shutdownGracePeriod: kubelet >= 1.34 (graceful node shutdown, as nodeadm)",
        "#   address: default (the EKS AMI's)",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // A user's kubelet setting names the document that set it, and wins through the drop-in.
    let out = run_agent::<String>(&[
        "config".into(),
        "show".into(),
        "-o".into(),
        "json".into(),
        "--explain".into(),
        "--facts".into(),
        "tests/golden/init/kubelet-1-29/discovered.yaml".into(),
        "-c".into(),
        "file://tests/golden/init/kubelet-1-29/nodeconfig.yaml".into(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["kubeletSettings"]["maxPods"],
        "spec.kubelet.config in file://tests/golden/init/kubelet-1-29/nodeconfig.yaml (its drop-in, which wins over config.json)"
    );
    assert!(
        json["derived"]["kubelet version"]
            .as_str()
            .unwrap()
            .starts_with("v1.29.15"),
        "{json}"
    );
}

#[test]
fn unknown_source_scheme_and_missing_file_are_bad_input() {
    for uri in ["s3://bucket/key", "file:///nonexistent/eks-node-agent.yaml"] {
        let out = run_agent(&["config", "check", "-c", uri]);
        assert_eq!(out.status.code(), Some(2), "{uri}");
        assert!(
            text(&out.stderr).contains(uri),
            "{uri}: {}",
            text(&out.stderr)
        );
    }
}

fn golden_cases(root: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("args").exists())
        .collect();
    cases.sort();
    cases
}

/// Each case directory has `args` (the command line; `{dir}` is the case directory relative to
/// the repository) and `expected.out` (stdout, then the exit code).
#[test]
fn golden_decoding_merging_and_bootstrap_translation() {
    let root = repo_root().join("tests/golden/config");
    let cases = golden_cases(&root);
    assert!(cases.len() >= 8, "found only {} golden cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let rel = case
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        let line = std::fs::read_to_string(case.join("args"))
            .unwrap()
            .replace("{dir}", &rel);
        let args = shell_words::split(line.trim()).unwrap();
        let out = run_agent(&args);
        let actual = format!(
            "{}# exit code: {}\n",
            text(&out.stdout),
            out.status.code().unwrap_or(-1)
        );
        if let Err(diff) = golden::check(&case.join("expected.out"), &actual) {
            failures.push(format!("{diff}\nstderr: {}", text(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
