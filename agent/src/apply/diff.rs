//! The dry run: what applying a plan would change, as text. Reads the disk, writes nothing.
//!
//! The formatting is pure ([`render`]); [`dry_run`] only gathers the current state.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use similar::TextDiff;

use super::file::{self, Current};
use super::{Outcome, Result, Root, service_actions, sysctl};
use crate::render::{FileSpec, Plan, ServiceSpec};

/// Lines of context around each change in the unified diffs.
const DIFF_CONTEXT_LINES: usize = 3;

/// The current value of one sysctl, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlState {
    /// Current value (normalized).
    Value(String),
    /// Could not be read (missing key, bad key...): the error text.
    Unreadable(String),
}

/// Everything the dry run needs, gathered from the disk.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// Each plan file with what is on disk now.
    pub files: Vec<(&'a FileSpec, Option<Current>)>,
    /// Each sysctl with its current value; `Err(reason)` when sysctls are skipped.
    pub sysctls: std::result::Result<Vec<SysctlState>, String>,
    /// Why host actions would be skipped (a non-host root); `None` when they would run.
    pub actions_skipped: Option<String>,
}

/// The plan's host actions, one line each, and why they would be skipped.
pub fn render_actions(out: &mut String, plan: &Plan, skipped: Option<&str>) {
    for action in &plan.actions {
        let _ = writeln!(out, "{}", action.describe());
    }
    if let Some(reason) = skipped {
        let _ = writeln!(out, "(skipped: {reason})");
    }
}

/// The outcome writing `spec` over `current` would have.
pub fn outcome(spec: &FileSpec, current: Option<&Current>) -> Outcome {
    match current {
        None => Outcome::Created,
        Some(c) if c.contents == spec.contents && c.mode == spec.mode => Outcome::Unchanged,
        Some(_) => Outcome::Updated,
    }
}

/// Renders the dry run from observed state: pure.
pub fn render(plan: &Plan, observed: &Observed<'_>) -> String {
    let mut out = String::new();
    let mut changed: Vec<&Path> = Vec::new();

    if let Some(storage) = &plan.storage {
        let _ = writeln!(
            out,
            "# local storage (before the files)\n{}",
            storage.summary
        );
        if let Some(w) = &storage.warning {
            let _ = writeln!(out, "warning: {w}");
        }
        for s in &storage.steps {
            let _ = writeln!(out, "{}", s.describe());
        }
        if storage.steps.is_empty() && storage.warning.is_none() {
            let _ = writeln!(out, "(set up already: nothing to do)");
        } else if let Some(reason) = observed.actions_skipped.as_deref()
            && !storage.steps.is_empty()
        {
            let _ = writeln!(out, "(skipped: {reason}: no block device is touched)");
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "# files");
    for (spec, current) in &observed.files {
        let outcome = outcome(spec, current.as_ref());
        if outcome != Outcome::Unchanged {
            changed.push(&spec.path);
        }
        render_file(&mut out, spec, current.as_ref(), outcome);
    }

    let _ = writeln!(out, "\n# sysctls");
    match &observed.sysctls {
        Err(reason) => {
            for s in &plan.sysctls {
                let _ = writeln!(out, "{} = {}", s.key, s.value);
            }
            let _ = writeln!(out, "(skipped: {reason})");
        }
        Ok(states) => {
            for (s, state) in plan.sysctls.iter().zip(states) {
                let wanted = sysctl::normalize(&s.value);
                let _ = match state {
                    SysctlState::Value(v) if *v == wanted => {
                        writeln!(out, "{}: {v} (unchanged)", s.key)
                    }
                    SysctlState::Value(v) => writeln!(out, "{}: {v} -> {wanted}", s.key),
                    SysctlState::Unreadable(why) => {
                        writeln!(out, "{}: unreadable ({why}) -> {wanted}", s.key)
                    }
                };
            }
        }
    }

    if !plan.actions.is_empty() {
        let _ = writeln!(out, "\n# host actions");
        render_actions(&mut out, plan, observed.actions_skipped.as_deref());
    }

    let _ = writeln!(out, "\n# services");
    let actions = service_actions(&plan.files, changed);
    if actions.daemon_reload {
        let _ = writeln!(out, "daemon-reload (a unit file or drop-in changes)");
    }
    // Affected units that are not planned services go first, as in `run_services`.
    for unit in actions
        .restart
        .iter()
        .filter(|u| !plan.services.iter().any(|s| &s.unit == *u))
    {
        let _ = writeln!(
            out,
            "try-restart {unit} (inputs change; restarted only if running)"
        );
    }
    for ServiceSpec {
        unit,
        wait_for_socket,
    } in &plan.services
    {
        let _ = if actions.restart.contains(unit) {
            writeln!(out, "restart {unit} (inputs change)")
        } else {
            writeln!(out, "start {unit} if not active (inputs unchanged)")
        };
        if let Some(socket) = wait_for_socket {
            let _ = writeln!(out, "  then wait until {} accepts", socket.display());
        }
    }
    out
}

fn render_file(out: &mut String, spec: &FileSpec, current: Option<&Current>, outcome: Outcome) {
    let path = spec.path.display();
    let mode = format!("{:04o}", spec.mode);
    let mode_note = match current {
        Some(c) if c.mode != spec.mode => format!(", mode was {:04o}", c.mode),
        _ => String::new(),
    };
    match outcome {
        Outcome::Unchanged => {
            let _ = writeln!(out, "{path} ({mode}): unchanged");
            return;
        }
        Outcome::Created => {
            let _ = writeln!(out, "{path} ({mode}): new");
        }
        Outcome::Updated => {
            let _ = writeln!(out, "{path} ({mode}): changed{mode_note}");
        }
    }
    if spec.secret || spec.mode == 0o600 {
        let _ = writeln!(out, "  changed (secret, diff hidden)");
        return;
    }
    let old = current.map(|c| c.contents.as_slice()).unwrap_or_default();
    if old == spec.contents.as_slice() {
        let _ = writeln!(out, "  contents unchanged");
        return;
    }
    let (Ok(old_text), Ok(new_text)) = (
        std::str::from_utf8(old),
        std::str::from_utf8(&spec.contents),
    ) else {
        let _ = writeln!(
            out,
            "  binary contents change ({} -> {} bytes)",
            old.len(),
            spec.contents.len()
        );
        return;
    };
    let old_name = if current.is_some() {
        format!("a{path}")
    } else {
        "/dev/null".to_owned()
    };
    let diff = TextDiff::from_lines(old_text, new_text);
    let mut unified = diff.unified_diff();
    unified
        .context_radius(DIFF_CONTEXT_LINES)
        .header(&old_name, &format!("b{path}"));
    let _ = write!(out, "{unified}");
    if !new_text.is_empty() && !new_text.ends_with('\n') {
        let _ = writeln!(out);
    }
}

/// Gathers the current state under `root` (and `proc_root` for sysctls, `None` when skipped)
/// and renders the dry run.
pub fn dry_run(root: &Root, proc_root: Option<&Path>, plan: &Plan) -> Result<String> {
    let mut files = Vec::with_capacity(plan.files.len());
    for spec in &plan.files {
        let target: PathBuf = root.path(&spec.path)?;
        files.push((spec, file::read_current(&target)?));
    }
    let sysctls = match proc_root {
        None => Err(format!("root is {}, not /", root.dir().display())),
        Some(proc_root) => Ok(plan
            .sysctls
            .iter()
            .map(|s| match sysctl::current(proc_root, s) {
                Ok(v) => SysctlState::Value(v),
                Err(e) => SysctlState::Unreadable(e.to_string()),
            })
            .collect()),
    };
    let actions_skipped =
        (!root.is_host()).then(|| format!("root is {}, not /", root.dir().display()));
    Ok(render(
        plan,
        &Observed {
            files,
            sysctls,
            actions_skipped,
        },
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::render::Sysctl;

    fn plan() -> Plan {
        Plan {
            files: vec![
                FileSpec::new(
                    "/etc/kubernetes/kubelet/config.json",
                    "{\n  \"maxPods\": 58\n}\n",
                    &["kubelet.service"],
                ),
                FileSpec::new(
                    "/var/lib/kubelet/kubeconfig",
                    "token: s3cr3t\n",
                    &["kubelet.service"],
                )
                .secret(),
                FileSpec::new(
                    "/etc/containerd/config.toml",
                    "version = 2\n",
                    &["containerd.service"],
                ),
                FileSpec::new(
                    "/etc/systemd/system/kubelet.service.d/10-env.conf",
                    "[Service]\nEnvironment=HTTPS_PROXY=http://p:3128\n",
                    &["kubelet.service"],
                ),
            ],
            sysctls: vec![Sysctl {
                key: "net.ipv4.ip_forward".into(),
                value: "1".into(),
            }],
            actions: Vec::new(),
            storage: None,
            services: vec![
                ServiceSpec {
                    unit: "containerd.service".into(),
                    wait_for_socket: Some("/run/containerd/containerd.sock".into()),
                },
                ServiceSpec {
                    unit: "kubelet.service".into(),
                    wait_for_socket: None,
                },
            ],
        }
    }

    fn current(s: &str, mode: u32) -> Option<Current> {
        Some(Current {
            contents: s.as_bytes().to_vec(),
            mode,
        })
    }

    #[test]
    fn shows_diffs_hides_secrets_and_lists_actions() {
        let plan = plan();
        let observed = Observed {
            files: vec![
                (&plan.files[0], current("{\n  \"maxPods\": 29\n}\n", 0o644)),
                (&plan.files[1], current("token: old\n", 0o600)),
                (&plan.files[2], current("version = 2\n", 0o644)),
                (&plan.files[3], None),
            ],
            sysctls: Ok(vec![SysctlState::Value("0".into())]),
            actions_skipped: None,
        };
        let text = render(&plan, &observed);
        let expected = "\
# files
/etc/kubernetes/kubelet/config.json (0644): changed
--- a/etc/kubernetes/kubelet/config.json
+++ b/etc/kubernetes/kubelet/config.json
@@ -1,3 +1,3 @@
 {
-  \"maxPods\": 29
+  \"maxPods\": 58
 }
/var/lib/kubelet/kubeconfig (0600): changed
  changed (secret, diff hidden)
/etc/containerd/config.toml (0644): unchanged
/etc/systemd/system/kubelet.service.d/10-env.conf (0644): new
--- /dev/null
+++ b/etc/systemd/system/kubelet.service.d/10-env.conf
@@ -0,0 +1,2 @@
+[Service]
+Environment=HTTPS_PROXY=http://p:3128

# sysctls
net.ipv4.ip_forward: 0 -> 1

# services
daemon-reload (a unit file or drop-in changes)
start containerd.service if not active (inputs unchanged)
  then wait until /run/containerd/containerd.sock accepts
restart kubelet.service (inputs change)
";
        assert_eq!(text, expected);
        assert!(!text.contains("s3cr3t") && !text.contains("old"));
    }

    #[test]
    fn nothing_to_do_and_skipped_sysctls() {
        let plan = plan();
        let observed = Observed {
            files: plan
                .files
                .iter()
                .map(|f| {
                    (
                        f,
                        Some(Current {
                            contents: f.contents.clone(),
                            mode: f.mode,
                        }),
                    )
                })
                .collect(),
            sysctls: Err("root is /tmp/x, not /".into()),
            actions_skipped: Some("root is /tmp/x, not /".into()),
        };
        let text = render(&plan, &observed);
        assert!(!text.contains("restart"), "{text}");
        assert!(!text.contains("daemon-reload"), "{text}");
        assert!(
            text.contains("net.ipv4.ip_forward = 1\n(skipped: root is /tmp/x, not /)"),
            "{text}"
        );
        assert_eq!(text.matches(": unchanged").count(), 4, "{text}");
    }

    /// The dry run lists the storage steps (mdadm, mkfs.xfs, mount, bind) before the files,
    /// the unit files among the files, and under a non-host root says no block device is
    /// touched.
    #[test]
    fn storage_steps_come_first_and_are_skipped_under_a_root() {
        use crate::model::disks::{ArrayLayout, ArraySetup, BindMount, StorageLayout, Strategy};
        let layout = StorageLayout::Array {
            strategy: Strategy::Raid10,
            array: ArrayLayout {
                level: 10,
                disks: (1..=4).map(|n| format!("/dev/nvme{n}n1").into()).collect(),
                setup: ArraySetup::Create,
                device: "/dev/md/kubernetes".into(),
                format: true,
                md_uuid: "a:b:c:d".into(),
                mount_point: "/mnt/k8s-disks/0".into(),
                mounted: false,
                binds: vec![BindMount {
                    target: "/var/lib/kubelet".into(),
                    source: "/mnt/k8s-disks/0/kubelet".into(),
                    service: "kubelet.service".into(),
                    mounted: false,
                    move_data: true,
                }],
            },
        };
        let (storage, units) = crate::render::local_storage::render(&layout);
        let mut plan = plan();
        plan.files.extend(units);
        plan.storage = Some(storage);
        let observed = Observed {
            files: plan.files.iter().map(|f| (f, None)).collect(),
            sysctls: Err("root is /tmp/x, not /".into()),
            actions_skipped: Some("root is /tmp/x, not /".into()),
        };
        let text = render(&plan, &observed);
        let storage_at = text.find("# local storage (before the files)").unwrap();
        assert!(storage_at < text.find("# files").unwrap(), "{text}");
        for want in [
            "mdadm --create /dev/md/kubernetes --run --force --level=10 --raid-devices=4",
            "mkfs.xfs -K -l su=8b /dev/md/kubernetes (only if",
            "mount -t xfs -o defaults,noatime /dev/disk/by-id/md-uuid-a:b:c:d /mnt/k8s-disks/0",
            "mount --bind /mnt/k8s-disks/0/kubelet /var/lib/kubelet",
            "(skipped: root is /tmp/x, not /: no block device is touched)",
            "/etc/systemd/system/var-lib-kubelet.mount (0644): new",
            "/etc/systemd/system/kubelet.service.d/40-eks-node-agent-local-storage.conf (0644): new",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }

    #[test]
    fn mode_only_change_and_binary_files() {
        let spec = FileSpec::new("/etc/a", "same\n", &[]);
        let mut out = String::new();
        let cur = current("same\n", 0o600);
        render_file(&mut out, &spec, cur.as_ref(), outcome(&spec, cur.as_ref()));
        assert_eq!(
            out,
            "/etc/a (0644): changed, mode was 0600\n  contents unchanged\n"
        );

        let bin = FileSpec::new("/etc/b", vec![0xff, 0x00, 0x01], &[]);
        let mut out = String::new();
        render_file(&mut out, &bin, None, Outcome::Created);
        assert_eq!(
            out,
            "/etc/b (0644): new\n  binary contents change (0 -> 3 bytes)\n"
        );
    }

    #[test]
    fn dry_run_reads_disk_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::at(tmp.path());
        let plan = plan();
        let text = dry_run(&root, None, &plan).unwrap();
        assert_eq!(text.matches(": new").count(), 4, "{text}");
        assert!(text.contains("restart containerd.service"), "{text}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
