//! Adversarial input at the caps, per input format: the worst case the bad-input limits allow
//! (deep nesting, long values, many documents or parts, the most certificates), each fed to
//! the agent as a user would (`config check`, `install --dry-run`, `bootstrap
//! --print-config`), timed with its peak RSS. docs/RELIABILITY.md quotes the worst case per
//! format. Every input is made here, in a temp directory.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::proc::timed;
use crate::report::{Report, Table};
use crate::stats::Summary;

/// The decoded-size cap of a config source (config::decode::MAX_DECODED_BYTES).
const SOURCE_CAP: usize = 16 * 1024 * 1024;
const HEAD: &str =
    "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c1\n";

/// One case: what it is, the file (or args) it uses, the agent's arguments.
struct Case {
    format: &'static str,
    input: String,
    args: Vec<String>,
    bytes: usize,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap_or_default();
    e.finish().unwrap_or_default()
}

fn fill_to(cap: usize, mut line: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(cap);
    let mut i = 0;
    loop {
        let l = line(i);
        if out.len() + l.len() > cap {
            return out;
        }
        out.push_str(&l);
        i += 1;
    }
}

fn certificate_pem(serial: u64) -> Result<String> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![format!("ca-{serial}")])?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    Ok(params.self_signed(&key)?.pem())
}

/// Writes every case's input under `dir`.
fn cases(dir: &Path) -> Result<Vec<Case>> {
    use base64::Engine as _;
    let mut out = Vec::new();
    let mut file = |format: &'static str, input: &str, name: &str, bytes: &[u8]| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        out.push(Case {
            format,
            input: input.to_owned(),
            args: vec![
                "config".into(),
                "check".into(),
                "-c".into(),
                format!("file://{}", path.display()),
            ],
            bytes: bytes.len(),
        });
        Ok(())
    };
    let brackets = format!("{HEAD}---\n{}", "[".repeat(SOURCE_CAP - HEAD.len() - 4));
    file(
        "YAML",
        "16 MiB of `[` after a NodeConfig (the issue's hang, at the source cap)",
        "flow.yaml",
        brackets.as_bytes(),
    )?;
    file(
        "YAML",
        "the same, gzipped (16 KiB on disk)",
        "flow.yaml.gz",
        &gzip(brackets.as_bytes()),
    )?;
    let at_limit = format!(
        "{HEAD}  kubelet:\n    config:\n{}",
        fill_to(SOURCE_CAP - HEAD.len() - 32, |i| format!(
            "      k{i}: {}1{}\n",
            "[".repeat(63),
            "]".repeat(63)
        ))
    );
    file(
        "YAML",
        "16 MiB of keys each nested 63 deep (past the flow node limit)",
        "flow-limit.yaml",
        at_limit.as_bytes(),
    )?;
    let items = format!(
        "{HEAD}  kubelet:\n    config:\n      a: [{}]\n",
        "[], ".repeat(65_535 / 2)
    );
    file(
        "YAML",
        "65,535 flow collections and items (just under the flow node limit)",
        "flow-items.yaml",
        items.as_bytes(),
    )?;
    let block = format!(
        "{HEAD}  kubelet:\n    config:\n      a:\n{}",
        fill_to(SOURCE_CAP - HEAD.len() - 64, |i| format!(
            "        - {}\n",
            i % 10
        ))
    );
    file(
        "YAML",
        "16 MiB of block list items (the cheapest nodes past flow syntax)",
        "block-items.yaml",
        block.as_bytes(),
    )?;
    let long = format!(
        "{HEAD}  kubelet:\n    config:\n      k: {}\n",
        "v".repeat(SOURCE_CAP - 128)
    );
    file("YAML", "one 16 MiB value", "long.yaml", long.as_bytes())?;
    let name = format!(
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: {}\n",
        "x".repeat(SOURCE_CAP - 128)
    );
    file(
        "YAML",
        "a 16 MiB cluster name (echoed in 64 characters)",
        "name.yaml",
        name.as_bytes(),
    )?;
    let doc = format!(
        "{HEAD}  kubelet:\n    config:\n{}---\n",
        fill_to(SOURCE_CAP / 64 - HEAD.len() - 64, |i| format!(
            "      k{i}: {i}\n"
        ))
    );
    file(
        "YAML",
        "64 documents (the merge limit) of 256 KiB, all merged",
        "docs.yaml",
        doc.repeat(64).as_bytes(),
    )?;
    file(
        "YAML",
        "1,025 documents (one past the YAML document limit)",
        "empty-docs.yaml",
        format!("{HEAD}{}", "---\n".repeat(1025)).as_bytes(),
    )?;
    let json = format!(
        "{{\"apiVersion\": \"node.eks.aws/v1alpha1\", \"kind\": \"NodeConfig\", \"spec\": {{\"cluster\": {{\"name\": \"c1\"}}, \"kubelet\": {{\"config\": {}}}}}}}",
        "{\"a\": ".repeat((SOURCE_CAP - 256) / 6)
    );
    file(
        "JSON",
        "16 MiB of nested objects",
        "deep.json",
        json.as_bytes(),
    )?;
    let toml_doc = |size: usize| {
        format!(
            "{HEAD}  containerd:\n    config: |\n{}",
            fill_to(size, |i| format!(
                "      [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"r{i}.example.com\"]\n      endpoint = [\"https://m{i}.example.com\"]\n"
            ))
        )
    };
    file(
        "TOML",
        "16 MiB of containerd registry tables",
        "containerd.yaml",
        toml_doc(SOURCE_CAP - 256).as_bytes(),
    )?;
    file(
        "TOML",
        "64 documents of 24 KiB containerd TOML (under the flow node limit), deep-merged",
        "containerd-docs.yaml",
        (toml_doc(24 * 1024) + "---\n").repeat(64).as_bytes(),
    )?;
    let deep_toml = format!(
        "{HEAD}  containerd:\n    config: |\n      a = {}\n",
        "[".repeat(SOURCE_CAP - 256)
    );
    file(
        "TOML",
        "16 MiB of nested arrays",
        "containerd-deep.yaml",
        deep_toml.as_bytes(),
    )?;
    let part = |i: usize, size: usize| {
        format!(
            "--B\nContent-Type: application/node.eks.aws\nContent-Transfer-Encoding: base64\n\n{}\n",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{HEAD}  kubelet:\n    config:\n{}",
                fill_to(size, |j| format!("      p{i}k{j}: {j}\n"))
            ))
        )
    };
    let mime = format!(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n{}--B--\n",
        (0..64)
            .map(|i| part(i, SOURCE_CAP / 64 / 2))
            .collect::<String>()
    );
    file(
        "MIME",
        "64 base64 NodeConfig parts, 12 MiB in all",
        "parts.mime",
        mime.as_bytes(),
    )?;
    let mime_many = format!(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n{}--B--\n",
        "--B\nContent-Type: text/x-shellscript\n\necho\n".repeat(SOURCE_CAP / 48)
    );
    file(
        "MIME",
        "16 MiB of small parts (past the part limit)",
        "many-parts.mime",
        mime_many.as_bytes(),
    )?;
    let mut nested = format!("Content-Type: application/node.eks.aws\n\n{HEAD}");
    for i in 0..16 {
        nested = format!(
            "Content-Type: multipart/mixed; boundary=\"B{i}\"\n\n--B{i}\n{nested}\n--B{i}--\n"
        );
    }
    file(
        "MIME",
        "16 nested multiparts (at the header limit, past the nesting limit)",
        "nested.mime",
        format!("MIME-Version: 1.0\n{nested}").as_bytes(),
    )?;
    let bomb = gzip(&vec![b'a'; SOURCE_CAP + 1024]);
    file(
        "gzip/base64",
        "a gzip bomb past 16 MiB, base64-encoded",
        "bomb.b64",
        base64::engine::general_purpose::STANDARD
            .encode(&bomb)
            .as_bytes(),
    )?;
    let cel = format!("{}max_pods{}", "(".repeat(32), ")".repeat(32));
    let chain = format!("max_pods{}", "+1".repeat(32));
    file(
        "CEL",
        "an expression 32 deep and one 32 operations long (the limits)",
        "cel.yaml",
        format!("{HEAD}  kubelet:\n    maxPodsExpression: \"{cel} + ({chain})\"\n").as_bytes(),
    )?;
    file(
        "CEL",
        "a 256-character expression of the longest chain",
        "cel-long.yaml",
        format!(
            "{HEAD}  kubelet:\n    maxPodsExpression: \"max_pods{}\"\n",
            " + 0".repeat(62)
        )
        .as_bytes(),
    )?;
    let mut bundle = String::new();
    for i in 0..256 {
        bundle.push_str(&certificate_pem(i)?);
    }
    let ca = base64::engine::general_purpose::STANDARD.encode(&bundle);
    file(
        "PEM",
        "a CA bundle of 256 certificates (the limit), each checked",
        "ca.yaml",
        format!("{HEAD}    certificateAuthority: {ca}\n").as_bytes(),
    )?;
    bundle.push_str(&certificate_pem(256)?);
    let ca = base64::engine::general_purpose::STANDARD.encode(&bundle);
    file(
        "PEM",
        "257 certificates (past the limit)",
        "ca-over.yaml",
        format!("{HEAD}    certificateAuthority: {ca}\n").as_bytes(),
    )?;

    // The mirror manifest: 1 MiB of nested arrays (its cap), through install --dry-run.
    let mirror = dir.join("mirror");
    std::fs::create_dir_all(&mirror)?;
    let manifest = format!(
        "{{\"version\": 1, \"artifacts\": {}",
        "[".repeat(1024 * 1024 - 64)
    );
    std::fs::write(mirror.join("manifest.json"), &manifest)?;
    out.push(Case {
        format: "JSON (mirror manifest)",
        input: "1 MiB of nested arrays (the manifest cap), unsigned mirror allowed".into(),
        args: vec![
            "install".into(),
            "--from".into(),
            mirror.display().to_string(),
            "--root".into(),
            dir.join("root").display().to_string(),
            "--dry-run".into(),
            "--allow-unsigned".into(),
        ],
        bytes: manifest.len(),
    });
    // A bootstrap.sh flag at the kernel's limit of one argument (128 KiB).
    let args = format!("--node-labels={}", "a".repeat(128 * 1024 - 32));
    out.push(Case {
        format: "bootstrap flags",
        input: "a 128 KiB --kubelet-extra-args (one argument's limit)".into(),
        bytes: args.len(),
        args: vec![
            "bootstrap".into(),
            "c1".into(),
            "--print-config".into(),
            "--kubelet-extra-args".into(),
            args,
        ],
    });
    Ok(out)
}

/// Times every case `runs` times; a table per format with the worst case marked.
pub fn run(report: &mut Report, agent: &Path, runs: usize) -> Result<()> {
    let dir = tempfile::tempdir().context("temp dir for the adversarial inputs")?;
    let cases = cases(dir.path())?;
    let mut table = Table::new(&[
        "format",
        "input at the cap",
        "bytes read",
        "exit",
        "wall ms",
        "peak RSS MiB",
        "error printed (bytes)",
    ]);
    let mut worst: Vec<(&str, f64, String)> = Vec::new();
    for case in &cases {
        let mut walls = Vec::new();
        let mut rss = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let t = timed(agent, &case.args, &[])?;
            walls.push(t.wall_ms);
            rss.push(t.max_rss_kib / 1024.0);
            last = Some(t.output);
        }
        let out = last.context("no run")?;
        let wall = Summary::of(&walls);
        table.row(&[
            case.format.to_owned(),
            case.input.clone(),
            case.bytes.to_string(),
            out.status.code().map_or("signal".into(), |c| c.to_string()),
            wall.cell(0),
            Summary::of(&rss).cell(1),
            out.stderr.len().to_string(),
        ]);
        match worst.iter_mut().find(|(f, _, _)| *f == case.format) {
            Some(w) if w.1 >= wall.median => {}
            Some(w) => *w = (case.format, wall.median, case.input.clone()),
            None => worst.push((case.format, wall.median, case.input.clone())),
        }
    }
    let mut summary = String::new();
    for (format, ms, input) in &worst {
        let _ = writeln!(summary, "- {format}: {ms:.0} ms ({input})");
    }
    report.section(format!(
        "## Adversarial input at the caps\n\n\
         Each input is the worst the bad-input limits let through to a parser (or the first \
         past them), given to the agent as a user would (`config check -c file://...`, \
         `install --dry-run`, `bootstrap --print-config`); {runs} run(s) each. Every one must \
         end promptly with a bounded message (exit 0 when accepted, 2 when refused).\n\n{}\n\
         Worst case per format (median wall time):\n\n{summary}",
        table.render()
    ));
    Ok(())
}
