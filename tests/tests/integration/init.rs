//! `init`: golden scenarios for resolve + render, and the command end to end under `--root`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use eks_node_agent::compute::values::{Discovered, resolve};
use eks_node_agent::config::{self, NoUserData};
use eks_node_agent::render;
use eks_node_agent_tests::{golden, repo_root};

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.insert(p);
        }
    }
    out
}

/// Each scenario directory has `nodeconfig.yaml` (the user's documents), `discovered.yaml`
/// (what IMDS, EC2, EKS and the host reported) and the expected output: `expected/` (every
/// file with its host path) and `expected.plan` (modes, units affected, sysctls, services).
/// `EKS_AGENT_UPDATE_GOLDEN=1` regenerates.
#[test]
fn golden_init_scenarios() {
    let root = repo_root().join("tests/golden/init");
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("nodeconfig.yaml").exists())
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 9, "found {} scenarios", scenarios.len());
    let mut failures = Vec::new();
    for dir in &scenarios {
        let uri = format!("file://{}", dir.join("nodeconfig.yaml").display());
        let loaded = config::load(&[uri], &NoUserData).unwrap();
        let found: Discovered =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("discovered.yaml")).unwrap())
                .unwrap();
        let node = resolve(&loaded.config, &found).unwrap();
        let plan = render::render(&loaded.config, &node);
        let expected_dir = dir.join("expected");
        let mut written = BTreeSet::new();
        let mut summary = String::new();
        for f in &plan.files {
            let rel = f.path.strip_prefix("/").unwrap();
            let path = expected_dir.join(rel);
            if let Err(e) = golden::check(&path, &String::from_utf8_lossy(&f.contents)) {
                failures.push(e);
            }
            written.insert(path);
            summary.push_str(&format!(
                "file {:o} {} affects={}\n",
                f.mode,
                f.path.display(),
                f.affects.join(",")
            ));
        }
        for s in &plan.sysctls {
            summary.push_str(&format!("sysctl {} = {}\n", s.key, s.value));
        }
        for s in &plan.services {
            summary.push_str(&format!(
                "service {} wait_for_socket={:?}\n",
                s.unit, s.wait_for_socket
            ));
        }
        if let Err(e) = golden::check(&dir.join("expected.plan"), &summary) {
            failures.push(e);
        }
        for stale in files_under(&expected_dir).difference(&written) {
            if std::env::var_os(golden::UPDATE_ENV).is_some() {
                std::fs::remove_file(stale).unwrap();
            } else {
                failures.push(format!("{} is not in the plan any more", stale.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
