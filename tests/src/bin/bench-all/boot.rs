//! `boot`: a real boot of the .deb in the VM harness (`eks_node_agent_tests::vm`), RAID0 over
//! four NVMe disks, the IMDS emulator at 1 ms and moto as the peers: the agent's units on the
//! critical path (`systemd-analyze critical-chain`, `blame`), the disk setup apart.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use eks_node_agent_tests::vm::{Boot, VmWorld};

use crate::report::{Report, Table};

/// The issue's target for this section.
pub const TARGET: &str =
    "agent time on the boot's critical path under 300 ms (IMDS at 1 ms; disk setup apart)";
/// The target, in seconds.
const TARGET_SECS: f64 = 0.3;
/// Bound on the boot.
const BOUND: Duration = Duration::from_secs(900);

/// `+1.234s` / `+567ms` / `+1min 2.3s` of systemd-analyze, in seconds.
pub fn analyze_secs(text: &str) -> Option<f64> {
    let t = text.trim().trim_start_matches(['+', '@']);
    let mut total = 0.0;
    let mut any = false;
    for part in t.split_whitespace() {
        let (num, unit) = part
            .find(|c: char| c.is_ascii_alphabetic())
            .map(|i| part.split_at(i))?;
        let n: f64 = num.parse().ok()?;
        total += match unit {
            "ms" => n / 1e3,
            "us" | "µs" => n / 1e6,
            "s" => n,
            "min" => n * 60.0,
            _ => return None,
        };
        any = true;
    }
    any.then_some(total)
}

/// A unit's time in `systemd-analyze blame` (`1.234s unit.service`).
pub fn blame_secs(blame: &str, unit: &str) -> Option<f64> {
    blame.lines().find_map(|l| {
        let l = l.trim();
        let (time, name) = l.rsplit_once(' ')?;
        (name == unit).then(|| analyze_secs(time)).flatten()
    })
}

/// The agent's phase durations recorded by init (`init-phases.json`).
fn phase(boot: &Boot, name: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(boot.text("phases")).ok()?;
    v["phases"][name].as_f64()
}

pub fn run(report: &mut Report, agent: &Path) -> Result<()> {
    if let Some(why) =
        eks_node_agent_tests::e2e::skip_reason(true, &eks_node_agent_tests::vm::REQUIRED_TOOLS)
    {
        bail!("the VM cannot boot here: {why}");
    }
    let _one = eks_node_agent_tests::vm::exclusive();
    let world = VmWorld::start("      strategy: RAID0\n", agent).map_err(anyhow::Error::msg)?;
    let mut vm = world
        .vm(
            &["poweroff"],
            &[
                ("AWS00000000000000001", 512),
                ("AWS00000000000000002", 512),
                ("AWS00000000000000003", 512),
                ("AWS00000000000000004", 512),
            ],
        )
        .map_err(anyhow::Error::msg)?;
    let boots = vm.run(&world.forwards, BOUND).map_err(anyhow::Error::msg)?;
    let boot = boots.first().context("the probe reported no boot")?;
    let blame = boot.text("blame");
    let config = blame_secs(blame, "eks-node-agent-init-config.service")
        .context("init-config is not in systemd-analyze blame")?;
    let start = blame_secs(blame, "eks-node-agent-init.service")
        .context("init (run phase) is not in systemd-analyze blame")?;
    let storage = phase(boot, "storage").unwrap_or(0.0);
    let agent = (config - storage).max(0.0) + start;
    let mut t = Table::new(&["what", "seconds"]);
    t.row(&[
        "eks-node-agent-init-config.service (phase 1)".into(),
        format!("{config:.3}"),
    ]);
    t.row(&[
        "  of which disk setup (`storage` phase: mdadm, mkfs.xfs, mounts, moves)".into(),
        format!("{storage:.3}"),
    ]);
    t.row(&[
        "eks-node-agent-init.service (phase 2: starts the kubelet)".into(),
        format!("{start:.3}"),
    ]);
    t.row(&[
        "agent on the critical path, disks apart".into(),
        format!("{agent:.3}"),
    ]);
    report.section(format!(
        "## Boot in a VM (RAID0 over 4 NVMe disks)\n\n\
         The .deb in the VM harness (Debian's cloud kernel, qemu with `{}`; software emulation \
         runs guest code many times slower than the host, so compare rows, not hosts), the IMDS \
         emulator at 1 ms, moto for EC2. Phase 1 is ordered before containerd and the kubelet; \
         phase 2 starts the kubelet.\n\n{}\n`systemd-analyze critical-chain` of the boot:\n\n```text\n{}```\n\n\
         `systemd-analyze time`: {}\n",
        vm.accel(),
        t.render(),
        boot.text("critical"),
        boot.text("time").trim()
    ));
    report.verdict(
        TARGET,
        format!("{:.0} ms ({} guest)", agent * 1e3, vm.accel()),
        Some(agent < TARGET_SECS),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_analyze_times_parse() {
        assert_eq!(analyze_secs("+1.500s"), Some(1.5));
        assert_eq!(analyze_secs("567ms"), Some(0.567));
        assert_eq!(analyze_secs("1min 2.500s"), Some(62.5));
        let blame =
            "   43.299s eks-node-agent-init-config.service\n  8.846s systemd-networkd.service\n";
        assert_eq!(
            blame_secs(blame, "eks-node-agent-init-config.service"),
            Some(43.299)
        );
        assert_eq!(blame_secs(blame, "x.service"), None);
    }
}
