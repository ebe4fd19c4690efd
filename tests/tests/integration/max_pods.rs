//! `eks-node-agent max-pods` as a user runs it, against moto's DescribeInstanceTypes, and the
//! whole computation checked against AWS's published eni-max-pods.txt.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use eks_node_agent::compute::standard_max_pods;
use eks_node_agent::facts::instance_types::InstanceTypesClient;
use eks_node_agent::model::{InstanceType, embedded_limits};
use eks_node_agent_tests::moto::Moto;

use crate::agent_bin;

const REGION: &str = "us-east-1";

/// Types where AWS's published file and DescribeInstanceTypes disagree (see
/// `published_table_matches_our_secondary_ip_max_pods`): the file counts the ENIs of all network
/// cards for them, although its header says only the default card counts (and it does so for
/// p5.48xlarge). DescribeInstanceTypes (moto's copy of AWS's data) reports two cards for each.
const PUBLISHED_COUNTS_ALL_CARDS: [&str; 4] = [
    "i7ie.48xlarge",
    "i7ie.metal-48xl",
    "i8ge.48xlarge",
    "i8ge.metal-48xl",
];

/// Runs the agent with a hermetic AWS environment: static test credentials, no profile files,
/// no IMDS.
fn agent(dir: &Path, args: &[&str]) -> Output {
    let empty = dir.join("aws-config");
    std::fs::write(&empty, "").expect("write an empty AWS config file");
    agent_with_files(&empty, &empty, args)
}

fn agent_with_files(config: &Path, credentials: &Path, args: &[&str]) -> Output {
    Command::new(agent_bin())
        .arg("max-pods")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_EC2")
        .output()
        .expect("run the agent")
}

fn number(out: &Output) -> u32 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("stdout is not just a number: {stdout:?}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A loopback URL nobody listens on: any call to it fails at once.
fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", eks_node_agent_tests::free_port())
}

#[test]
fn the_table_answers_like_max_pods_calculator_without_any_network() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dead_endpoint();
    let base = ["--region", REGION, "--endpoint-url", dead.as_str()];
    let cases: &[(&[&str], u32)] = &[
        (&["--instance-type", "m5.large"], 29),
        (&["--instance-type", "m5.8xlarge"], 234),
        (&["--instance-type", "t3.medium"], 17),
        (
            &[
                "--instance-type",
                "m5.large",
                "--cni-version",
                "1.9.0",
                "--prefix-delegation",
            ],
            110,
        ),
        (
            &[
                "--instance-type",
                "m5.large",
                "--prefix-delegation",
                "--show-max-allowed",
            ],
            434,
        ),
        // The script's own flag names; prefix delegation needs CNI >= 1.9.0, else secondary IPs.
        (
            &[
                "--instance-type",
                "m5.large",
                "--cni-version",
                "1.8.0",
                "--cni-prefix-delegation-enabled",
            ],
            29,
        ),
        // Xen: no prefix delegation.
        (&["--instance-type", "t2.medium", "--prefix-delegation"], 17),
        (
            &[
                "--instance-type",
                "m5.large",
                "--cni-custom-networking-enabled",
            ],
            20,
        ),
        (&["--instance-type", "m5.large", "--cni-max-eni", "1"], 11),
        // m5.4xlarge: 234 by ENIs, 16 vCPUs -> capped at 110.
        (&["--instance-type", "m5.4xlarge"], 110),
        (
            &["--instance-type", "m5.4xlarge", "--show-max-allowed"],
            234,
        ),
        // p4d.24xlarge: 4 cards x 15 ENIs; only the default card counts: 15 * 49 + 2.
        (
            &["--instance-type", "p4d.24xlarge", "--show-max-allowed"],
            737,
        ),
        (&["--instance-type", "p4d.24xlarge"], 250),
    ];
    for (args, want) in cases {
        let all: Vec<&str> = args.iter().chain(base.iter()).copied().collect();
        assert_eq!(number(&agent(dir.path(), &all)), *want, "{args:?}");
    }
}

#[test]
fn describe_instance_types_against_moto_gives_the_same_answers() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = moto.endpoint();
    let api = [
        "--from-api",
        "--region",
        REGION,
        "--endpoint-url",
        endpoint.as_str(),
    ];
    for (t, want) in [("m5.large", 29), ("m5.8xlarge", 234), ("t3.medium", 17)] {
        let args: Vec<&str> = ["--instance-type", t]
            .iter()
            .chain(api.iter())
            .copied()
            .collect();
        assert_eq!(number(&agent(dir.path(), &args)), want, "{t}");
    }
    let args: Vec<&str> = ["--instance-type", "m5.large", "--prefix-delegation"]
        .iter()
        .chain(api.iter())
        .copied()
        .collect();
    assert_eq!(number(&agent(dir.path(), &args)), 110);

    // p4d.24xlarge from the API: the default card's 15 ENIs, not the 60 of all four cards.
    let args: Vec<&str> = [
        "--instance-type",
        "p4d.24xlarge",
        "--show-max-allowed",
        "--json",
    ]
    .iter()
    .chain(api.iter())
    .copied()
    .collect();
    let out = agent(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["limitsSource"], "ec2-api", "{json}");
    assert_eq!(json["limits"]["defaultCardMaxEnis"], 15, "{json}");
    assert_eq!(json["limits"]["networkCards"], 4, "{json}");
    assert_eq!(json["maxPods"]["value"], 737, "{json}");
}

/// moto knows every type of the embedded table (both come from the same data), so a type "not
/// in the table" is made with `--from-api`, which skips the table: the answer must then come
/// from DescribeInstanceTypes, which the dead-endpoint run proves.
#[test]
fn a_type_the_table_does_not_answer_is_resolved_through_describe_instance_types() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = moto.endpoint();
    let out = agent(
        dir.path(),
        &[
            "--instance-type",
            "c5.metal",
            "--from-api",
            "--show-max-allowed",
            "--json",
            "--region",
            REGION,
            "--endpoint-url",
            &endpoint,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["limitsSource"], "ec2-api", "{json}");
    assert_eq!(json["maxPods"]["value"], 737, "{json}");
    assert_eq!(json["limits"]["hypervisor"], "none", "{json}");

    // Same flags, nobody at the endpoint: it fails, so the answer above came from moto.
    let dead = dead_endpoint();
    let out = agent(
        dir.path(),
        &[
            "--instance-type",
            "c5.metal",
            "--from-api",
            "--region",
            REGION,
            "--endpoint-url",
            &dead,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("DescribeInstanceTypes for c5.metal failed") && err.contains(&dead),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // A type neither the table nor EC2 knows: the table misses, EC2 says InvalidInstanceType,
    // and that is bad input.
    let out = agent(
        dir.path(),
        &[
            "--instance-type",
            "zz9.large",
            "--region",
            REGION,
            "--endpoint-url",
            &endpoint,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("EC2 does not know instance type zz9.large in region us-east-1"),
        "{err}"
    );
    assert!(
        err.contains("not in the embedded table"),
        "the lookup order is logged: {err}"
    );
}

/// `--profile` as in the script: region and credentials from a named profile of the shared
/// files (the environment's keys are removed for this run).
#[test]
fn a_named_profile_supplies_region_and_credentials() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let credentials = dir.path().join("credentials");
    std::fs::write(&config, "[profile nodes]\nregion = eu-west-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[nodes]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    let endpoint = moto.endpoint();
    let out = {
        let mut cmd = Command::new(agent_bin());
        cmd.args([
            "max-pods",
            "--instance-type",
            "m5.large",
            "--from-api",
            "--json",
            "--profile",
            "nodes",
            "--endpoint-url",
            &endpoint,
        ])
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true");
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_EC2",
        ] {
            cmd.env_remove(var);
        }
        cmd.output().unwrap()
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            json["limitsSource"].as_str(),
            json["maxPods"]["value"].as_u64()
        ),
        (Some("ec2-api"), Some(29)),
        "{json}"
    );
    // A profile that does not exist fails at the API call, naming the region it had (none).
    let out = agent_with_files(
        &config,
        &credentials,
        &[
            "--instance-type",
            "m5.large",
            "--from-api",
            "--profile",
            "absent",
            "--endpoint-url",
            &endpoint,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn bad_flags_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&[], "--instance-type <TYPE>"),
        (
            &["--instance-type", "M5.LARGE"],
            "instance types are lowercase",
        ),
        (&["--instance-type", "m5"], "exactly one '.'"),
        (
            &["--instance-type", "m5.large", "--cni-version", "latest"],
            "MAJOR.MINOR",
        ),
        (
            &["--instance-type", "m5.large", "--cni-max-eni", "0"],
            "--cni-max-eni",
        ),
        (
            &["--instance-type", "m5.large", "--cni-max-eni", "-3"],
            "'-3'",
        ),
        (
            &["--instance-type", "m5.large", "--endpoint-url", "ftp://x"],
            "http:// or https://",
        ),
        (
            &["--instance-type", "m5.large", "--no-such-flag"],
            "--no-such-flag",
        ),
    ];
    for (args, want) in cases {
        let out = agent(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_has_examples() {
    let out = Command::new(agent_bin())
        .args(["max-pods", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Examples:")
            && text.contains("--show-max-allowed")
            && text.contains("--cni-prefix-delegation-enabled"),
        "{text}"
    );
}

fn published() -> BTreeMap<String, u32> {
    let path = eks_node_agent_tests::shared_reference().join("eni-max-pods.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (t, n) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (
                t.to_owned(),
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("bad line {l:?}")),
            )
        })
        .collect()
}

fn moto_client(moto: &Moto) -> aws_sdk_ec2::Client {
    use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// AWS's published eni-max-pods.txt is uncapped `ENIs * (IPs - 1) + 2` over the default card.
/// For every type both it and moto's DescribeInstanceTypes know, our secondary-IP max pods
/// (through the same conversion the agent uses for API answers) must equal it, and the embedded
/// table must hold exactly what the API says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_table_matches_our_secondary_ip_max_pods() {
    let moto = Moto::start();
    let client = moto_client(&moto);
    let all = InstanceTypesClient::from_client(client.clone(), &moto.endpoint())
        .describe_all()
        .await
        .unwrap();
    assert!(all.len() > 1000, "moto answered {} types", all.len());

    assert_eq!(
        eks_node_agent::model::embedded_types().count(),
        all.len(),
        "table rows vs API types"
    );
    let mut table_checked = 0;
    for (t, limits) in &all {
        assert_eq!(
            embedded_limits(t),
            Some(*limits),
            "embedded table vs DescribeInstanceTypes for {t}"
        );
        table_checked += 1;
    }

    let published = published();
    let mut compared = 0;
    let mut known_differences = Vec::new();
    let mut unexpected = Vec::new();
    for (t, limits) in &all {
        let Some(&want) = published.get(t.as_str()) else {
            continue;
        };
        compared += 1;
        let ours = standard_max_pods(limits);
        if ours == want {
            continue;
        }
        if PUBLISHED_COUNTS_ALL_CARDS.contains(&t.as_str()) {
            known_differences.push((t.clone(), ours, want));
        } else {
            unexpected.push(format!(
                "{t}: ours {ours}, published {want}, limits {limits:?}"
            ));
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} types differ from eni-max-pods.txt:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );

    // The known differences must all still be there (no stale entries), and each must be
    // exactly "the published file used all cards' ENIs": check against the raw API answer.
    assert_eq!(
        known_differences.len(),
        PUBLISHED_COUNTS_ALL_CARDS.len(),
        "{known_differences:?}"
    );
    for (t, ours, want) in &known_differences {
        let out = client
            .describe_instance_types()
            .instance_types(aws_sdk_ec2::types::InstanceType::from(t.as_str()))
            .send()
            .await
            .unwrap();
        let net = out.instance_types()[0].network_info().unwrap();
        let all_cards = u32::try_from(net.maximum_network_interfaces().unwrap()).unwrap();
        let ips = u32::try_from(net.ipv4_addresses_per_interface().unwrap()).unwrap();
        assert!(net.network_cards().len() > 1, "{t} has one card");
        assert_eq!(
            *want,
            all_cards * (ips - 1) + 2,
            "{t}: published {want} is not the all-cards value"
        );
        assert!(ours < want, "{t}");
    }
    let only_published = published.keys().filter(|t| {
        InstanceType::parse(t)
            .map(|t| !all.iter().any(|(a, _)| *a == t))
            .unwrap_or(true)
    });
    println!(
        "compared {compared} instance types with eni-max-pods.txt: {} equal, {} known differences \
         (published counts all network cards: {}); {} published types moto does not know; \
         embedded table checked against DescribeInstanceTypes for {table_checked} types",
        compared - known_differences.len(),
        known_differences.len(),
        PUBLISHED_COUNTS_ALL_CARDS.join(", "),
        only_published.count(),
    );
    assert!(compared > 1000, "only {compared} types compared");
}

/// The committed table is what the generator in tools/ makes from moto's data (only the date
/// line may differ).
#[test]
fn the_embedded_table_is_the_generators_output() {
    let root = eks_node_agent_tests::repo_root();
    let out = Command::new(eks_node_agent_tests::venv_bin("python3"))
        .arg(root.join("tools/gen-instance-limits.py"))
        .arg("--from-moto-venv")
        .arg(eks_node_agent_tests::venv())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed =
        std::fs::read_to_string(root.join("agent/src/model/instance_limits.rs")).unwrap();
    let without_date = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("// Generated on "))
            .map(str::to_owned)
            .collect()
    };
    assert!(
        without_date(&generated) == without_date(&committed),
        "agent/src/model/instance_limits.rs is stale: regenerate it with \
         tools/gen-instance-limits.py --from-moto-venv .venv > agent/src/model/instance_limits.rs"
    );
}
