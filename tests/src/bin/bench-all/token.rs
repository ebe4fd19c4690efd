//! `eks-node-agent token` against `aws eks get-token`, the same credentials, one process per
//! call (as the kubelet runs an exec credential plugin): wall time and peak RSS per call.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::proc::{Timed, check, timed};
use crate::report::{Report, Table, mib};
use crate::stats::Summary;

const CLUSTER: &str = "bench-cluster";
const REGION: &str = "us-west-2";
/// The target, as the report words it.
pub const TARGET: &str = "`token` at least 50x faster than `aws eks get-token`";
/// The target: `token` at least this many times faster than `aws eks get-token`.
pub const TARGET_SPEEDUP: f64 = 50.0;

struct Series {
    name: String,
    wall: Summary,
    rss: Summary,
}

fn measure(
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    runs: usize,
) -> Result<Series> {
    let one = || -> Result<Timed> {
        let t = timed(program, args, env)?;
        check(name, &t)?;
        if !String::from_utf8_lossy(&t.output.stdout).contains("k8s-aws-v1.") {
            bail!("{name} printed no k8s-aws-v1 token");
        }
        Ok(t)
    };
    one()?; // warm-up: page cache, Python bytecode
    let mut wall = Vec::with_capacity(runs);
    let mut rss = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = one()?;
        wall.push(t.wall_ms);
        rss.push(mib(t.max_rss_kib));
    }
    Ok(Series {
        name: name.to_owned(),
        wall: Summary::of(&wall),
        rss: Summary::of(&rss),
    })
}

pub fn run(report: &mut Report, agent: &Path, aws: &Path, runs: usize) -> Result<()> {
    let home = tempfile::tempdir().context("temp HOME")?;
    let h = |f: &str| home.path().join(f).display().to_string();
    let base: Vec<(String, String)> = [
        ("PATH", "/usr/bin:/bin".to_owned()),
        ("HOME", home.path().display().to_string()),
        ("AWS_CONFIG_FILE", h("config")),
        ("AWS_SHARED_CREDENTIALS_FILE", h("credentials")),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let creds = [
        ("AWS_ACCESS_KEY_ID", "AKIABENCHMARK0000001"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "bench/secret/key/0123456789abcdefghijkl",
        ),
        ("AWS_SESSION_TOKEN", "bench-session-token"),
    ];
    let mut env = base.clone();
    env.extend(
        creds
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    // The same credentials in the shared credentials file: aws-config's default chain runs.
    std::fs::write(
        h("credentials"),
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            creds[0].1, creds[1].1, creds[2].1
        ),
    )?;
    let ours: Vec<String> = ["token", "--cluster-id", CLUSTER, "--region", REGION]
        .map(str::to_owned)
        .to_vec();
    let theirs: Vec<String> = [
        "eks",
        "get-token",
        "--cluster-name",
        CLUSTER,
        "--region",
        REGION,
    ]
    .map(str::to_owned)
    .to_vec();
    let a = measure(
        "eks-node-agent token (env credentials)",
        agent,
        &ours,
        &env,
        runs,
    )?;
    let b = measure(
        "eks-node-agent token (default chain, credentials file)",
        agent,
        &ours,
        &base,
        runs,
    )?;
    let c = measure(
        "aws eks get-token (env credentials)",
        aws,
        &theirs,
        &env,
        runs,
    )?;

    let mut t = Table::new(&[
        "command",
        "wall ms: median (p10–p90)",
        "min–max",
        "peak RSS MiB: median (p10–p90)",
        "max",
    ]);
    for s in [&a, &b, &c] {
        t.row(&[
            s.name.clone(),
            s.wall.cell(2),
            s.wall.range(2),
            s.rss.cell(1),
            format!("{:.1}", s.rss.max),
        ]);
    }
    let speedup = c.wall.median / a.wall.median;
    let mem_ratio = c.rss.median / a.rss.median;
    report.section(format!(
        "## `token` vs `aws eks get-token`\n\n\
         One process per call, {runs} calls each after one warm-up, one after the other; the \
         same static credentials (environment); neither makes a network call (a token is a \
         local presign). Wall time is taken around GNU time, peak RSS is its `%M`.\n\n{}\n\
         Ratio to the peer (medians): wall **{speedup:.0}x** faster, peak RSS {mem_ratio:.1}x smaller \
         (target: at least {TARGET_SPEEDUP:.0}x faster).\n",
        t.render()
    ));
    report.verdict(
        TARGET,
        format!(
            "{speedup:.0}x ({:.2} ms vs {:.0} ms, medians)",
            a.wall.median, c.wall.median
        ),
        Some(speedup >= TARGET_SPEEDUP),
    );
    Ok(())
}
