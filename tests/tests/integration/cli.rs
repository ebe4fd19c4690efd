//! The command line as a user runs it.

use std::process::Command;

use crate::agent_bin;

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(agent_bin()).arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("eks-node-agent {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}
