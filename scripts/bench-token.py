#!/usr/bin/env python3
"""Benchmark: `eks-node-agent token` against `aws eks get-token`, side by side.

Both get the same static credentials from the environment (no network call is made by
either: a token is a local presign). Each command runs N times, one after the other; for
every run the wall time is measured around the child process, and its peak RSS is what GNU
time (/usr/bin/time -f %M) reports for it. (Reading ru_maxrss from a child forked by this
Python process would count Python's own pages, copied at fork, as the child's.) The wall
time includes GNU time's fork/exec, the same for both commands.

Usage (from the repository root, after `scripts/test.sh --no-run` created .venv):
    cargo build --release -p eks-node-agent
    .venv/bin/python scripts/bench-token.py [--agent target/release/eks-node-agent] [--runs 50]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CLUSTER = "bench-cluster"


def measure(argv, env, runs):
    walls, rss = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "MAXRSS=%M"] + argv, env=env, capture_output=True
        )
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0 or b"k8s-aws-v1." not in proc.stdout:
            sys.exit("%s failed (status %d): %r" % (argv[0], proc.returncode, proc.stderr[-300:]))
        line = [l for l in proc.stderr.decode().splitlines() if l.startswith("MAXRSS=")][-1]
        rss.append(int(line.split("=")[1]))  # KiB
    return walls, rss


def row(name, walls, rss):
    ms = [w * 1000 for w in walls]
    return "| %s | %.2f | %.2f | %.2f | %.1f |" % (
        name,
        statistics.median(ms),
        statistics.mean(ms),
        max(ms),
        max(rss) / 1024,
    )


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser()
    p.add_argument("--agent", default=os.path.join(root, "target/release/eks-node-agent"))
    p.add_argument("--aws", default=os.path.join(root, ".venv/bin/aws"))
    p.add_argument("--runs", type=int, default=50)
    args = p.parse_args()

    home = tempfile.mkdtemp()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "AWS_CONFIG_FILE": os.path.join(home, "config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "AKIABENCHMARK0000001",
        "AWS_SECRET_ACCESS_KEY": "bench/secret/key/0123456789abcdefghijkl",
        "AWS_SESSION_TOKEN": "bench-session-token",
        "AWS_REGION": "us-west-2",
    }
    ours = [args.agent, "token", "--cluster-id", CLUSTER, "--region", "us-west-2"]
    # The same credentials from the shared credentials file instead: the full aws-config
    # default chain runs (environment, then profile files), which the environment shortcut skips.
    with open(env["AWS_SHARED_CREDENTIALS_FILE"], "w") as f:
        f.write(
            "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n"
            % (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"])
        )
    chain_env = {k: v for k, v in env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET") and k != "AWS_SESSION_TOKEN"}
    theirs = [args.aws, "eks", "get-token", "--cluster-name", CLUSTER, "--region", "us-west-2"]
    # One warm-up each (page cache, Python bytecode).
    measure(ours, env, 1)
    measure(theirs, env, 1)
    measure(ours, chain_env, 1)
    ow, orss = measure(ours, env, args.runs)
    cw, crss = measure(ours, chain_env, args.runs)
    tw, trss = measure(theirs, env, args.runs)
    print("runs per command: %d" % args.runs)
    print("| command | median ms | mean ms | max ms | peak RSS MiB |")
    print("|---|---|---|---|---|")
    print(row("eks-node-agent token (env credentials)", ow, orss))
    print(row("eks-node-agent token (default chain, credentials file)", cw, crss))
    print(row("aws eks get-token", tw, trss))
    print(
        "ratio (aws / ours): wall %.0fx (median), peak RSS %.1fx"
        % (statistics.median(tw) / statistics.median(ow), max(trss) / max(orss))
    )


if __name__ == "__main__":
    main()
