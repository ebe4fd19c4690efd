//! The Prometheus rules and the Grafana dashboard the packages ship
//! (`packaging/prometheus/`, `packaging/grafana/`): Debian's promtool checks the rules and
//! runs their unit tests (`tests/prometheus/`), every alert has a test that fires it and one
//! that does not, and every query of the dashboard parses as PromQL. That the dashboard's
//! metrics exist in a real scrape of `run` is `daemon::dashboard_queries_only_series_a_real_scrape_has`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use eks_node_agent_tests::repo_root;
use serde_json::Value;

pub(crate) const RULES: &str = "packaging/prometheus/eks-node-agent.rules.yaml";
const RULE_TESTS: &str = "tests/prometheus/eks-node-agent.rules.test.yaml";
pub(crate) const DASHBOARD: &str = "packaging/grafana/eks-node-agent.dashboard.json";

fn promtool(args: &[&Path]) -> (bool, String) {
    let out = Command::new("promtool").args(args).output().expect(
        "promtool (Debian package prometheus) must be installed: scripts/test.sh installs it",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn yaml(path: &Path) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let rules = repo_root().join(RULES);
    let (ok, text) = promtool(&[Path::new("check"), Path::new("rules"), &rules]);
    assert!(ok, "{text}");
    let (ok, text) = promtool(&[
        Path::new("test"),
        Path::new("rules"),
        &repo_root().join(RULE_TESTS),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let rules = yaml(&repo_root().join(RULES));
    let alerts: BTreeSet<String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    let tests = yaml(&repo_root().join(RULE_TESTS));
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for case in tests["tests"].as_sequence().unwrap() {
        for t in case["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = t["alertname"].as_str().unwrap().to_owned();
            match t["exp_alerts"].as_sequence() {
                Some(a) if !a.is_empty() => firing.insert(name),
                _ => quiet.insert(name),
            };
        }
    }
    let untested: Vec<_> = alerts.difference(&firing).collect();
    assert!(
        untested.is_empty(),
        "alerts never tested firing: {untested:?}"
    );
    let untested: Vec<_> = alerts.difference(&quiet).collect();
    assert!(
        untested.is_empty(),
        "alerts never tested not firing: {untested:?}"
    );
    // The topics the issue asks alerts for.
    for topic in [
        "EksNodeConditionFalse",
        "EksNodeIamCredentialsExpiring",
        "EksNodeKubeletCertificateExpiring",
        "EksNodeUnitRestarting",
        "EksNodeLifecycleEvent",
        "EksNodeAcceleratorErrors",
    ] {
        assert!(alerts.contains(topic), "{topic}");
    }
}

/// Every PromQL query of the dashboard, with Grafana's variables replaced by values.
pub(crate) fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join(DASHBOARD)).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            out.push(
                expr.replace("$__rate_interval", "5m")
                    .replace("$instance", ".+"),
            );
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str()
            && let Some(inner) = q.strip_prefix("label_values(")
        {
            out.push(inner.split(',').next().unwrap().to_owned());
        }
    }
    assert!(out.len() >= 20, "{out:?}");
    out
}

/// The metric names a query reads (its `eksnode_*` and `node_*` words).
pub(crate) fn metric_names(query: &str) -> BTreeSet<String> {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("eksnode_") || w.starts_with("node_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // promtool parses each query as the expression of a recording rule.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in dashboard_queries().iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(q).unwrap()
        ));
    }
    let path: PathBuf = dir.path().join("dashboard.rules.yaml");
    std::fs::write(&path, rules).unwrap();
    let (ok, text) = promtool(&[Path::new("check"), Path::new("rules"), &path]);
    assert!(ok, "{text}");
}
