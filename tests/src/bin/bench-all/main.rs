//! Every performance comparison in one command; writes docs/PERFORMANCE.md from scratch.
//!
//! ```text
//! scripts/bench.sh                      # builds, installs the peers, runs this
//! bench-all [--out FILE] [--agent BIN] [--runs N] [--rounds N] [--only SECTION,...]
//! ```
//!
//! Started under the name `amazon-ssm-agent`, it is instead the tests' stand-in for the SSM
//! agent's `-register` (`eks_node_agent_tests::ssm_agent`), for hosts the tests boot.
//!
//! Sections: size, token, run, run-growth, init, cold-start, init-growth, discovery, boot,
//! lifecycle, adversarial, write-budget. Each prints its markdown as soon as it is measured; the
//! file is those same sections, unchanged, under a header (machine, targets). A section that
//! cannot run (no root, a peer missing) is written as "not measured" with the reason, and the
//! exit code is then 1.

mod adversarial;
mod boot;
mod exporter;
mod init;
mod lifecycle;
mod machine;
mod proc;
mod report;
mod stats;
mod token;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use report::{Report, Table, verdict_word};

/// Calls per command in the `token` comparison, runs of `init`, cold starts.
const DEFAULT_RUNS: usize = 20;
/// Runs of each adversarial input (each reads up to 16 MiB).
const ADVERSARIAL_RUNS: usize = 5;
/// Rounds (fresh daemons) of the `run` vs node_exporter comparison.
const DEFAULT_ROUNDS: usize = 3;
const SECTIONS: &[&str] = &[
    "size",
    "token",
    "run",
    "run-growth",
    "init",
    "cold-start",
    "init-growth",
    "discovery",
    "boot",
    "lifecycle",
    "adversarial",
    "write-budget",
];

/// How to read the generated file; kept here so the file can be regenerated whole.
const HOW_TO_READ: &str = "\
## How to read this file

- Every number below was printed by one run of `scripts/bench.sh` on the machine described \
under it; rerun the script to regenerate the whole file (do not edit it by hand).
- A cell `a (b–c)` is the median `a` with the 10th and 90th percentiles `b` and `c` of the \
runs; `min–max` columns give the extremes. Ratios compare medians.
- Every peer ran on the same machine in the same run, one after the other (never \
concurrently with the agent's measured runs): compare rows within this file, not with other \
machines. Machine load at start and end is recorded: on a shared machine, a high load \
inflates times (both sides), not memory.
- The agent is the release build (`cargo build --release -p eks-node-agent`, the shipped \
profile of the root Cargo.toml). Wall times include process start; peak RSS is what the \
kernel reports for the process (`/usr/bin/time -f %M`, or VmRSS for daemons).
- Nothing here sends traffic outside 127.0.0.0/8: AWS APIs are moto, IMDS is the emulator \
in tests/src/imds.rs, the growth hosts are namespaces made for the run and removed after.
";

struct Args {
    out: PathBuf,
    agent: PathBuf,
    runs: usize,
    rounds: usize,
    only: Vec<String>,
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut a = Args {
        out: eks_node_agent_tests::repo_root().join("docs/PERFORMANCE.md"),
        agent: init::default_agent()?,
        runs: DEFAULT_RUNS,
        rounds: DEFAULT_ROUNDS,
        only: SECTIONS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(value()?),
            "--agent" => a.agent = PathBuf::from(value()?),
            "--runs" => a.runs = value()?.parse().context("--runs N")?,
            "--rounds" => a.rounds = value()?.parse().context("--rounds N")?,
            "--only" => {
                a.only = value()?.split(',').map(str::to_owned).collect();
                if let Some(bad) = a.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    bail!(
                        "--only: unknown section {bad:?}; sections: {}",
                        SECTIONS.join(",")
                    );
                }
            }
            other => bail!(
                "unknown argument {other:?}; see the header of tests/src/bin/bench-all/main.rs"
            ),
        }
    }
    if a.runs == 0 || a.rounds == 0 {
        bail!("--runs and --rounds must be at least 1");
    }
    Ok(a)
}

fn size_section(report: &mut Report, agent: &Path) -> Result<()> {
    let on_disk = std::fs::metadata(agent)?.len();
    let tmp = tempfile::NamedTempFile::new()?;
    let st = std::process::Command::new("strip")
        .arg("-o")
        .arg(tmp.path())
        .arg(agent)
        .status()
        .context("strip (binutils)")?;
    if !st.success() {
        bail!("strip failed on {}", agent.display());
    }
    let stripped = std::fs::metadata(tmp.path())?.len();
    let mut t = Table::new(&["binary", "bytes", "MiB"]);
    let mib = |b: u64| b as f64 / 1024.0 / 1024.0;
    t.row(&[
        "as built".into(),
        on_disk.to_string(),
        format!("{:.2}", mib(on_disk)),
    ]);
    t.row(&[
        "after `strip` again".into(),
        stripped.to_string(),
        format!("{:.2}", mib(stripped)),
    ]);
    report.section(format!(
        "## Release binary size\n\n`{}`: {}\n\n{}",
        agent.display(),
        proc::first_line("file", &["-b", &agent.display().to_string()]),
        t.render()
    ));
    Ok(())
}

/// `bench-discovery` (the agent's `facts::discover` in-process, and the AWS CLI making the
/// same calls through the same proxy), its output kept verbatim.
fn discovery_section(report: &mut Report, runs: usize) -> Result<()> {
    let bin = proc::sibling("bench-discovery")?;
    let out = std::process::Command::new(&bin)
        .arg(runs.to_string())
        .output()
        .with_context(|| format!("{} (built beside bench-all)", bin.display()))?;
    if !out.status.success() {
        bail!(
            "bench-discovery failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    report.section(format!(
        "## Discovery alone (bench-discovery)\n\n\
         `facts::discover` in-process ({runs} iterations per scenario) against the same IMDS \
         emulator (1 ms) and moto behind the 30 ms proxy, and the AWS CLI making the same EC2 \
         and EKS calls through the same proxy. Its output, verbatim:\n\n```text\n{}```\n",
        String::from_utf8_lossy(&out.stdout)
    ));
    Ok(())
}

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // Started as `amazon-ssm-agent`: the tests' stand-in for the SSM agent's registration.
    let name = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if name.as_deref() == Some(eks_node_agent_tests::ssm_agent::PROGRAM) {
        return eks_node_agent_tests::ssm_agent::main(&argv);
    }
    if argv.first().map(String::as_str) == Some("scrape-helper") {
        return match exporter::scrape_helper(&argv[1..]) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("scrape-helper: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match run(&argv) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench-all: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs one section when selected; a failure is written as "not measured" with the reason.
fn step(
    report: &mut Report,
    enabled: bool,
    title: &str,
    f: impl FnOnce(&mut Report) -> Result<()>,
) {
    if !enabled {
        return;
    }
    if let Err(e) = f(report) {
        report.failed(title, &e);
        if let Some((_, target)) = TARGETS.iter().find(|(t, _)| *t == title) {
            report.verdict(target, "not measured (see its section)".into(), None);
        }
    }
}

/// The sections that carry one of the issue's targets, and the target's wording.
const TARGETS: &[(&str, &str)] = &[
    (TOKEN_TITLE, token::TARGET),
    (RUN_TITLE, exporter::TARGET),
    (INIT_TITLE, init::TARGET),
    (WRITE_TITLE, WRITE_TARGET),
    (BOOT_TITLE, boot::TARGET),
];
const WRITE_TITLE: &str = "Write budget: 2,000 simulated nodes";
const WRITE_TARGET: &str = "under 1 write per node per minute at 2,000 nodes (issue 17)";

/// The scale simulation (`eks_node_agent_tests::scale`), its writes by kind.
fn write_budget_section(report: &mut Report) -> Result<()> {
    let plan = eks_node_agent_tests::scale::Plan::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let w = eks_node_agent_tests::scale::simulate(&rt, plan);
    let per = w.per_node_minute(&plan);
    let mut t = Table::new(&["writes", "count", "per node per minute"]);
    let rate = |n: u64| format!("{:.3}", n as f64 / plan.nodes as f64 / plan.minutes as f64);
    for (what, n) in [
        ("condition PATCHes", w.conditions),
        ("taint PATCHes", w.taints),
        ("event creates and bumps", w.events),
        ("all", w.total()),
    ] {
        t.row(&[what.to_owned(), n.to_string(), rate(n)]);
    }
    report.section(format!(
        "## {WRITE_TITLE}\n\n{} simulated agents, each with every check (the accelerator check on {}% of them), \
         the daemon's own verdict, condition state machine, taints (on every condition: the worst case) and \
         event rules, over the real kube-rs request path to the API emulator, for {} simulated minutes; \
         checks every {} s; {}% of the nodes find a Fatal problem, a Warning or nothing at random on each run. \
         Wall time {:.1} s.\n\n{}",
        plan.nodes,
        plan.accelerated_percent,
        plan.minutes,
        plan.check_interval_secs,
        plan.flapping_percent,
        w.wall.as_secs_f64(),
        t.render()
    ));
    report.verdict(
        WRITE_TARGET,
        format!("{per:.3} writes/node/min"),
        Some(per < 1.0),
    );
    Ok(())
}
const TOKEN_TITLE: &str = "`token` vs `aws eks get-token`";
const RUN_TITLE: &str = "`run` vs Debian's prometheus-node-exporter";
const INIT_TITLE: &str = "`init` end to end against the emulators";
const BOOT_TITLE: &str = "Boot in a VM (RAID0 over 4 NVMe disks)";

/// The agent binary must exist before anything runs.
fn require(path: &Path) -> Result<()> {
    if !path.is_file() {
        bail!(
            "{} does not exist: build it first (scripts/bench.sh does)",
            path.display()
        );
    }
    Ok(())
}

/// Runs the selected sections and writes the file; false when a section could not be measured.
fn run(argv: &[String]) -> Result<bool> {
    let args = parse_args(argv)?;
    require(&args.agent)?;
    let started = Instant::now();
    let aws = eks_node_agent_tests::venv().join("bin/aws");
    let machine = machine::describe(&args.agent, &aws);
    println!("# bench-all\n\n{machine}\n");
    let mut report = Report::default();
    let want = |s: &str| args.only.iter().any(|o| o == s);

    step(&mut report, want("size"), "Release binary size", |r| {
        size_section(r, &args.agent)
    });
    step(&mut report, want("token"), TOKEN_TITLE, |r| {
        token::run(r, &args.agent, &aws, args.runs)
    });
    step(&mut report, want("run"), RUN_TITLE, |r| {
        exporter::run(r, &args.agent, args.rounds)
    });
    step(
        &mut report,
        want("run-growth"),
        "Growth: `run` on a bigger host",
        |r| exporter::growth(r, &args.agent),
    );
    if want("init") || want("cold-start") || want("init-growth") {
        match init::World::start() {
            Ok(world) => {
                step(&mut report, want("init"), INIT_TITLE, |r| {
                    init::run(r, &world, &args.agent, args.runs)
                });
                step(
                    &mut report,
                    want("cold-start"),
                    "Cold start to the first IMDS call",
                    |r| init::cold_start(r, &world, &args.agent, args.runs),
                );
                step(
                    &mut report,
                    want("init-growth"),
                    "Growth: `init` with a bigger NodeConfig",
                    |r| init::growth(r, &world, &args.agent),
                );
            }
            Err(e) => {
                report.failed("`init` (moto, IMDS emulator)", &e);
                if want("init") {
                    report.verdict(init::TARGET, "not measured (see its section)".into(), None);
                }
            }
        }
    }
    step(
        &mut report,
        want("discovery"),
        "Discovery alone (bench-discovery)",
        |r| discovery_section(r, args.runs),
    );
    step(&mut report, want("boot"), BOOT_TITLE, |r| {
        boot::run(r, &args.agent)
    });
    step(
        &mut report,
        want("lifecycle"),
        "Lifecycle: spot notice to tainted and cordoned",
        |r| lifecycle::run(r, &args.agent),
    );

    step(
        &mut report,
        want("adversarial"),
        "Adversarial input at the caps",
        |r| adversarial::run(r, &args.agent, args.runs.min(ADVERSARIAL_RUNS)),
    );

    step(
        &mut report,
        want("write-budget"),
        WRITE_TITLE,
        write_budget_section,
    );

    let elapsed = started.elapsed();
    let mut targets = Table::new(&["target (issues 10, 17)", "this run", "verdict"]);
    for v in &report.verdicts {
        targets.row(&[
            v.target.clone(),
            v.measured.clone(),
            verdict_word(v.met).to_owned(),
        ]);
    }
    let end = format!(
        "Load average (1, 5, 15 min) at the end: {}. The run took {:.0} s.\n",
        machine::loadavg(),
        elapsed.as_secs_f64()
    );
    println!("{end}");
    let command = if args.only.len() == SECTIONS.len() {
        "scripts/bench.sh".to_owned()
    } else {
        format!("scripts/bench.sh --only {}", args.only.join(","))
    };
    let mut doc = format!(
        "# Performance\n\n\
         <!-- Generated by `{command}` (tests/src/bin/bench-all); do not edit by hand. -->\n\n\
         **Generated file.** Produced from scratch by `{command}` (which builds the release \
         binary and the harness, installs the peers, and runs `bench-all`); every number is \
         the one that run printed.\n\n\
         ## Targets\n\n{}\n## Machine\n\n{machine}\n\n{HOW_TO_READ}\n",
        targets.render()
    );
    for s in report.sections() {
        doc.push_str(s);
        doc.push('\n');
    }
    doc.push_str("## End of run\n\n");
    doc.push_str(&end);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, doc).with_context(|| format!("write {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    for f in &report.failures {
        eprintln!("not measured: {f}");
    }
    Ok(report.failures.is_empty())
}
