//! Discovery: the IMDSv2 client against the IMDS emulator, and `facts::discover` against the
//! emulator plus moto (EC2 DescribeInstances, EKS DescribeCluster).

use std::time::{Duration, Instant};

use eks_node_agent::facts::imds::{self, Imds, RetryPolicy};
use eks_node_agent::facts::{self, DiscoverInput, Limits};
use eks_node_agent_tests::aws_world;
use eks_node_agent_tests::imds::{ImdsEmulator, Instance, RoleCredentials};
use eks_node_agent_tests::moto::Moto;

const CLUSTER: &str = "test-cluster";

use eks_node_agent_tests::TEST_CA_PEM;

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        attempt_timeout: Duration::from_secs(2),
        total_deadline: Duration::from_secs(20),
    }
}

fn input(moto: &Moto) -> DiscoverInput {
    DiscoverInput {
        cluster_name: CLUSTER.to_string(),
        ec2_endpoint: Some(moto.endpoint()),
        eks_endpoint: Some(moto.endpoint()),
        credentials: Some(aws_world::credentials()),
        limits: Limits {
            deadline: Duration::from_secs(60),
            ..Limits::default()
        },
        ..DiscoverInput::default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("tls")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .build()
        .expect("client")
}

#[tokio::test]
async fn emulator_follows_the_imdsv2_protocol() {
    let mut instance = Instance::example();
    instance.credentials = Some(RoleCredentials {
        role: "node-role".into(),
        access_key_id: "ASIAEXAMPLEEXAMPLE00".into(),
        secret_access_key: "secret".into(),
        token: "session".into(),
        expiration: "2026-12-31T00:00:00Z".into(),
        last_updated: "2026-12-30T18:00:00Z".into(),
    });
    let emu = ImdsEmulator::start(instance);
    let base = emu.endpoint();
    let http = client();
    let token_url = format!("{base}/latest/api/token");
    let ttl = "x-aws-ec2-metadata-token-ttl-seconds";

    // The TTL header is required and bounded.
    assert_eq!(
        http.put(&token_url).send().await.expect("put").status(),
        400
    );
    for bad in ["0", "21601", "abc"] {
        let s = http
            .put(&token_url)
            .header(ttl, bad)
            .send()
            .await
            .expect("put")
            .status();
        assert_eq!(s, 400, "ttl {bad}");
    }
    // A proxied token request is refused; GET on the token path is the wrong method.
    let s = http
        .put(&token_url)
        .header(ttl, "60")
        .header("x-forwarded-for", "10.0.0.9")
        .send()
        .await
        .expect("put")
        .status();
    assert_eq!(s, 403);
    assert_eq!(
        http.get(&token_url).send().await.expect("get").status(),
        405
    );

    // A token; the TTL is echoed.
    let r = http
        .put(&token_url)
        .header(ttl, "21600")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get(ttl).and_then(|v| v.to_str().ok()),
        Some("21600")
    );
    let token = r.text().await.expect("token");

    // No token or a wrong one: 401. With it: the data.
    let mac_url = format!("{base}/latest/meta-data/mac");
    assert_eq!(http.get(&mac_url).send().await.expect("get").status(), 401);
    let s = http
        .get(&mac_url)
        .header("x-aws-ec2-metadata-token", "nope")
        .send()
        .await
        .expect("get")
        .status();
    assert_eq!(s, 401);
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("x-aws-ec2-metadata-token", &token)
            .send()
    };
    let r = get("/latest/meta-data/mac").await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "0a:1b:2c:3d:4e:5f");
    let s = http
        .post(&mac_url)
        .header("x-aws-ec2-metadata-token", &token)
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(s, 405);

    // Directory listings and IAM role credentials.
    let listing = get("/latest/meta-data/")
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    for entry in ["mac", "placement/", "network/", "services/", "iam/"] {
        assert!(
            listing.lines().any(|l| l == entry),
            "{entry} missing in {listing}"
        );
    }
    let role = get("/latest/meta-data/iam/security-credentials/")
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert_eq!(role, "node-role");
    let creds: serde_json::Value = get("/latest/meta-data/iam/security-credentials/node-role")
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    for k in [
        "Code",
        "LastUpdated",
        "Type",
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
    ] {
        assert!(creds.get(k).is_some(), "{k} missing in {creds}");
    }
    assert_eq!(get("/latest/user-data").await.expect("get").status(), 404);
    assert_eq!(
        get("/latest/meta-data/no-such-thing")
            .await
            .expect("get")
            .status(),
        404
    );

    // Expired token: 401. Turned off: 403.
    emu.expire_tokens();
    assert_eq!(
        get("/latest/meta-data/mac").await.expect("get").status(),
        401
    );
    emu.set_disabled(true);
    assert_eq!(
        http.put(&token_url)
            .header(ttl, "60")
            .send()
            .await
            .expect("put")
            .status(),
        403
    );
}

#[tokio::test]
async fn imds_client_reads_everything_with_one_token() {
    let emu = ImdsEmulator::start(Instance::example());
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(fast_policy());
    let md = imds.instance_metadata().await.expect("metadata");
    assert_eq!(md.identity.instance_id, "i-0123456789abcdef0");
    assert_eq!(md.identity.instance_type, "m5.large");
    assert_eq!(md.identity.region, "us-west-2");
    assert_eq!(md.mac, "0a:1b:2c:3d:4e:5f");
    assert_eq!(md.local_ipv4, Some("10.0.1.23".parse().expect("ip")));
    assert_eq!(md.interface.local_ipv4s.len(), 2);
    assert_eq!(
        md.interface.vpc_ipv4_cidr_blocks,
        vec!["10.0.0.0/16".parse().expect("cidr")]
    );
    assert_eq!(
        md.interface.subnet_ipv4_cidr_block,
        Some("10.0.1.0/24".parse().expect("cidr"))
    );
    assert!(md.interface.ipv6s.is_empty());
    assert_eq!(
        md.placement.availability_zone_id.as_deref(),
        Some("usw2-az1")
    );
    assert_eq!(md.placement.outpost_arn, None);
    assert_eq!(md.domain, "amazonaws.com");
    assert_eq!(md.partition, "aws");
    assert_eq!(emu.tokens_issued(), 1, "one token for all concurrent reads");

    // User data: absent is None, present is the raw bytes.
    assert_eq!(imds.user_data().await.expect("user data"), None);
    let raw = b"MIME-Version: 1.0\r\n\x00\xff binary".to_vec();
    emu.set_user_data(Some(raw.clone()));
    assert_eq!(imds.user_data().await.expect("user data"), Some(raw));
    assert_eq!(emu.tokens_issued(), 1);
}

#[tokio::test]
async fn imds_client_replaces_its_token_before_it_expires() {
    let emu = ImdsEmulator::start(Instance::example());
    // A 2 s token is used for 1 s (half its life, as the TTL is below twice the margin).
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(fast_policy())
        .with_token_ttl(2);
    imds.mac().await.expect("first read");
    imds.mac().await.expect("second read, same token");
    assert_eq!(emu.tokens_issued(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    imds.mac()
        .await
        .expect("read after the token's use-by time");
    assert_eq!(
        emu.tokens_issued(),
        2,
        "a new token was fetched before IMDS expired the old one"
    );
    assert_eq!(
        emu.unauthorized(),
        0,
        "no request went out with an expired token"
    );
}

#[tokio::test]
async fn imds_client_turned_off_is_a_clear_error() {
    let emu = ImdsEmulator::start(Instance::example());
    emu.set_disabled(true);
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(fast_policy());
    let err = imds.mac().await.expect_err("turned off");
    assert!(matches!(err, imds::Error::Disabled { .. }), "{err}");
    assert!(err.to_string().contains("turned off"), "{err}");
}

#[tokio::test]
async fn discovery_succeeds_against_moto_and_the_emulator() {
    let moto = Moto::start();
    let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
    aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
    let emu = ImdsEmulator::start(world.instance.clone());
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(fast_policy());
    // The CA comes from the config (moto's DescribeCluster CA is random text); endpoint and
    // service CIDR are missing, so DescribeCluster is called for them.
    let mut input = input(&moto);
    input.certificate_authority = Some(TEST_CA_PEM.as_bytes().to_vec());
    let facts = facts::discover(&imds, &input).await.expect("discovery");

    assert_eq!(facts.instance_id(), world.instance.instance_id);
    assert_eq!(facts.instance_type(), "m5.large");
    assert_eq!(facts.region(), aws_world::REGION);
    assert_eq!(facts.instance.mac, world.instance.interfaces[0].mac);
    assert!(!world.private_dns_name.is_empty());
    assert_eq!(facts.private_dns_name, world.private_dns_name);
    let cluster = facts.cluster.expect("DescribeCluster was called");
    assert_eq!(cluster.name, CLUSTER);
    assert_eq!(
        cluster.service_ipv4_cidr,
        Some(aws_world::SERVICE_CIDR.parse().expect("cidr"))
    );
    assert_eq!(cluster.ip_family, Some(facts::eks::IpFamily::Ipv4));
    assert_eq!(
        cluster.remote_node_networks,
        vec![aws_world::REMOTE_NODE_CIDR.parse().expect("cidr")]
    );
    assert!(cluster.endpoint.is_some_and(|e| e.starts_with("https://")));
    assert_eq!(
        cluster.certificate_authority_pem, None,
        "the configured CA is kept"
    );
    assert!(!cluster.local_outpost);
}

#[tokio::test]
async fn discovery_skips_describe_cluster_when_the_config_has_everything() {
    let moto = Moto::start();
    let world = aws_world::run_instance(&moto.endpoint(), "c5.xlarge").await;
    let emu = ImdsEmulator::start(world.instance.clone());
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(fast_policy());
    // No cluster exists in moto: a DescribeCluster call would fail with ResourceNotFound.
    let mut input = input(&moto);
    input.cluster_name = "no-such-cluster".into();
    input.api_server_endpoint = Some("https://example.invalid".into());
    input.certificate_authority = Some(TEST_CA_PEM.as_bytes().to_vec());
    input.service_cidr = Some("10.100.0.0/16".into());
    let facts = facts::discover(&imds, &input).await.expect("discovery");
    assert_eq!(facts.cluster, None);
    assert_eq!(facts.instance_type(), "c5.xlarge");

    // And the same input without the CIDR does call it, and fails naming the cluster.
    input.service_cidr = None;
    let err = facts::discover(&imds, &input)
        .await
        .expect_err("no such cluster");
    let msg = err.to_string();
    assert!(
        msg.contains("DescribeCluster") && msg.contains("no-such-cluster"),
        "{msg}"
    );
}

#[tokio::test]
async fn discovery_survives_imds_faults() {
    let moto = Moto::start();
    let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
    aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
    let emu = std::sync::Arc::new(ImdsEmulator::start(world.instance.clone()));
    emu.set_delay(Duration::from_millis(300));
    emu.drop_next(1);
    emu.fail_next(3, 503);
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(fast_policy());
    let mut input = input(&moto);
    input.certificate_authority = Some(TEST_CA_PEM.as_bytes().to_vec());
    // Expire the token while discovery is reading IMDS.
    let expirer = {
        let emu = emu.clone();
        tokio::spawn(async move {
            while emu.tokens_issued() == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(350)).await;
            emu.expire_tokens();
        })
    };
    let facts = facts::discover(&imds, &input)
        .await
        .expect("discovery despite faults");
    expirer.await.expect("expirer");
    assert_eq!(facts.instance_id(), world.instance.instance_id);
    assert_eq!(facts.private_dns_name, world.private_dns_name);
    assert_eq!(emu.dropped(), 1, "one connection was dropped");
    assert_eq!(emu.failed(), 3, "three 503s were served");
    assert!(
        emu.unauthorized() >= 1,
        "the expired token was refused at least once"
    );
    assert!(
        emu.tokens_issued() >= 2,
        "a fresh token was fetched after the 401"
    );
}

#[tokio::test]
async fn discovery_fails_within_the_deadline_when_imds_is_down() {
    // Nothing listens on this port.
    let port = eks_node_agent_tests::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Duration::from_secs(3);
    let imds = Imds::with_endpoint(&endpoint)
        .expect("client")
        .with_policy(RetryPolicy {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            attempt_timeout: Duration::from_secs(1),
            total_deadline: deadline,
        });
    let input = DiscoverInput {
        cluster_name: CLUSTER.into(),
        ..DiscoverInput::default()
    };
    let started = Instant::now();
    let err = facts::discover(&imds, &input)
        .await
        .expect_err("IMDS is down");
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("IMDS unreachable at {endpoint} after ")),
        "{msg}"
    );
    assert!(
        msg.contains("attempts over") && msg.contains("cannot connect"),
        "{msg}"
    );
    assert!(
        took >= deadline - Duration::from_millis(500),
        "gave up too early: {took:?}"
    );
    assert!(
        took < deadline + Duration::from_secs(2),
        "overran the deadline: {took:?}"
    );

    // A server that only answers 503 is reported the same way, with the status.
    let emu = ImdsEmulator::start(Instance::example());
    emu.fail_next(u32::MAX, 503);
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(RetryPolicy {
            max_attempts: 4,
            ..fast_policy()
        });
    let err = imds.mac().await.expect_err("always 503");
    let msg = err.to_string();
    assert!(
        msg.contains("after 4 attempts") && msg.contains("HTTP 503"),
        "{msg}"
    );
}

#[tokio::test]
async fn describe_cluster_with_a_ca_that_is_not_base64_pem_is_a_clear_error() {
    let moto = Moto::start();
    let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
    // moto's DescribeCluster returns 1400 random letters and digits as the CA.
    aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
    let emu = ImdsEmulator::start(world.instance.clone());
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(fast_policy());
    let err = facts::discover(&imds, &input(&moto))
        .await
        .expect_err("bad CA");
    let msg = err.to_string();
    assert!(msg.contains("DescribeCluster"), "{msg}");
    assert!(msg.contains("cluster.certificateAuthority.data"), "{msg}");
    assert!(msg.contains(CLUSTER), "{msg}");
    assert!(
        matches!(
            err,
            facts::Error::Eks(facts::eks::Error::InvalidCertificateAuthority { .. })
        ),
        "{err:?}"
    );
}

/// Xen instance-store disks: the `ephemeralN` entries of IMDS `block-device-mapping/`, read
/// through the IMDSv2 client from the emulator (`ami` and `root` are not instance store).
#[tokio::test]
async fn xen_ephemeral_disks_come_from_the_block_device_mapping() {
    let mut instance = Instance::example();
    instance.block_device_mapping.extend([
        ("ephemeral0".into(), "sdb".into()),
        ("ephemeral1".into(), "sdc".into()),
    ]);
    let emu = ImdsEmulator::start(instance);
    let imds = Imds::with_endpoint(&emu.endpoint()).unwrap();
    let found = facts::disks::ephemeral_mappings(&imds).await.unwrap();
    assert_eq!(
        found,
        [
            ("ephemeral0".to_owned(), "sdb".to_owned()),
            ("ephemeral1".to_owned(), "sdc".to_owned())
        ]
    );
    let none = ImdsEmulator::start(Instance::example());
    let imds = Imds::with_endpoint(&none.endpoint()).unwrap();
    assert!(
        facts::disks::ephemeral_mappings(&imds)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Instance tags from instance metadata: 404 (tags not shown in metadata) is "no tags", not an
/// error; shown tags are read, only those under the prefix.
#[tokio::test]
async fn instance_tags_are_read_under_the_prefix_and_404_is_not_an_error() {
    use eks_node_agent::facts::imds::Imds;
    use eks_node_agent::facts::provider::instance_tags;
    use eks_node_agent_tests::imds::{ImdsEmulator, Instance};
    let off = ImdsEmulator::start(Instance::example());
    let imds = Imds::with_endpoint(&off.endpoint()).unwrap();
    assert_eq!(
        instance_tags(&imds, "node.eks.aws:label:").await.unwrap(),
        None
    );
    let mut instance = Instance::example();
    instance.tags = Some(
        [
            ("Name", "worker"),
            ("node.eks.aws:label:team", "payments"),
            ("node.eks.aws:label:example.com:tier", "gold"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let on = ImdsEmulator::start(instance);
    let imds = Imds::with_endpoint(&on.endpoint()).unwrap();
    let tags = instance_tags(&imds, "node.eks.aws:label:")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tags.into_iter().collect::<Vec<_>>(),
        [
            (
                "node.eks.aws:label:example.com:tier".to_owned(),
                "gold".to_owned()
            ),
            ("node.eks.aws:label:team".to_owned(), "payments".to_owned()),
        ]
    );
}
