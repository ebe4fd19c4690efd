//! An emulator of the EC2 Instance Metadata Service (IMDSv2), named as an emulator: real HTTP
//! on 127.0.0.1, following the published protocol:
//!
//! - `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` in 1..=21600 (400
//!   otherwise), echoes it in the response, and refuses requests carrying `X-Forwarded-For`
//!   (403), as IMDS does so that proxies cannot fetch tokens.
//! - `GET` of metadata needs a valid, unexpired `X-aws-ec2-metadata-token` (401 otherwise;
//!   IMDSv1 can be allowed with [`Instance::allow_imdsv1`]).
//! - Other methods get 405; unknown paths 404; a turned-off endpoint 403.
//! - Directory paths list their children, one per line, sub-directories ending in `/`.
//! - `tags/instance/` lists the instance's tag keys (each key a leaf with the value) when the
//!   instance shows its tags in metadata, and is 404 otherwise.
//!
//! EC2 lifecycle paths, set per test with their documented shapes, 404 while nothing is
//! announced: `meta-data/spot/instance-action` (`{"action", "time"}`, and the older
//! `spot/termination-time` beside it), `meta-data/events/recommendations/rebalance`
//! (`{"noticeTime"}`), `meta-data/events/maintenance/scheduled` (a list of
//! `{"NotBefore", "Code", "Description", "EventId", "NotAfter", "State"}` with times like
//! `21 Jan 2027 09:00:43 GMT`) and `meta-data/autoscaling/target-lifecycle-state` (text).
//!
//! Faults are injected per test through [`ImdsEmulator`]'s methods: a delay on every request,
//! the next N requests answered 5xx, the next N connections dropped without an answer, all
//! tokens expired at once, the endpoint turned off.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::loopback_http::{Dropped, LoopbackServer};

/// Longest token lifetime IMDS grants, in seconds.
pub const MAX_TOKEN_TTL_SECS: u64 = 21_600;

const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// One network interface of the emulated instance.
#[derive(Debug, Clone)]
pub struct Interface {
    /// MAC address, e.g. `0a:1b:2c:3d:4e:5f`.
    pub mac: String,
    /// `device-number`.
    pub device_number: u32,
    /// `network-card` (None: the path is absent, as on single-card instance types).
    pub network_card: Option<u32>,
    /// Private IPv4 addresses, primary first.
    pub local_ipv4s: Vec<String>,
    /// IPv6 addresses (empty: the `ipv6s` path is absent).
    pub ipv6s: Vec<String>,
    /// `vpc-ipv4-cidr-blocks`.
    pub vpc_ipv4_cidr_blocks: Vec<String>,
    /// `subnet-ipv4-cidr-block`.
    pub subnet_ipv4_cidr_block: Option<String>,
    /// `subnet-id`.
    pub subnet_id: String,
    /// `vpc-id`.
    pub vpc_id: String,
}

/// IAM role credentials served under `iam/security-credentials/`.
#[derive(Debug, Clone)]
pub struct RoleCredentials {
    /// The role name.
    pub role: String,
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: String,
    /// `Token`.
    pub token: String,
    /// `Expiration`, RFC 3339.
    pub expiration: String,
    /// `LastUpdated`, RFC 3339.
    pub last_updated: String,
}

/// The emulated instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `instance-id`.
    pub instance_id: String,
    /// `instance-type`.
    pub instance_type: String,
    /// Region.
    pub region: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Availability zone ID.
    pub availability_zone_id: String,
    /// Account ID.
    pub account_id: String,
    /// AMI ID.
    pub image_id: String,
    /// Network interfaces; the first is the primary.
    pub interfaces: Vec<Interface>,
    /// `services/domain`.
    pub domain: String,
    /// `services/partition`.
    pub partition: String,
    /// `local-hostname`.
    pub local_hostname: String,
    /// User data (None: 404).
    pub user_data: Option<Vec<u8>>,
    /// IAM role credentials (None: no instance profile, `iam/` absent).
    pub credentials: Option<RoleCredentials>,
    /// The Outpost ARN (None: not on an Outpost).
    pub outpost_arn: Option<String>,
    /// Serve metadata without a token too (HttpTokens=optional).
    pub allow_imdsv1: bool,
    /// `block-device-mapping/`: name (`ami`, `root`, `ephemeral0`, ...) and device.
    pub block_device_mapping: Vec<(String, String)>,
    /// The instance's tags under `tags/instance/` (None: tags are not shown in instance
    /// metadata, and the path is 404, as with `InstanceMetadataTags=disabled`).
    pub tags: Option<BTreeMap<String, String>>,
}

impl Instance {
    /// A realistic m5.large in us-west-2 with one interface.
    pub fn example() -> Instance {
        Instance {
            instance_id: "i-0123456789abcdef0".into(),
            instance_type: "m5.large".into(),
            region: "us-west-2".into(),
            availability_zone: "us-west-2a".into(),
            availability_zone_id: "usw2-az1".into(),
            account_id: "123456789012".into(),
            image_id: "ami-0abcdef1234567890".into(),
            interfaces: vec![Interface {
                mac: "0a:1b:2c:3d:4e:5f".into(),
                device_number: 0,
                network_card: Some(0),
                local_ipv4s: vec!["10.0.1.23".into(), "10.0.1.24".into()],
                ipv6s: vec![],
                vpc_ipv4_cidr_blocks: vec!["10.0.0.0/16".into()],
                subnet_ipv4_cidr_block: Some("10.0.1.0/24".into()),
                subnet_id: "subnet-0123456789abcdef0".into(),
                vpc_id: "vpc-0123456789abcdef0".into(),
            }],
            domain: "amazonaws.com".into(),
            partition: "aws".into(),
            local_hostname: "ip-10-0-1-23.us-west-2.compute.internal".into(),
            user_data: None,
            credentials: None,
            outpost_arn: None,
            allow_imdsv1: false,
            block_device_mapping: vec![
                ("ami".into(), "xvda".into()),
                ("root".into(), "/dev/xvda".into()),
            ],
            tags: None,
        }
    }

    /// The instance identity document as IMDS serves it.
    pub fn identity_document(&self) -> String {
        let ip = self
            .interfaces
            .first()
            .and_then(|i| i.local_ipv4s.first())
            .cloned();
        let doc = serde_json::json!({
            "accountId": self.account_id,
            "architecture": "x86_64",
            "availabilityZone": self.availability_zone,
            "billingProducts": null,
            "devpayProductCodes": null,
            "marketplaceProductCodes": null,
            "imageId": self.image_id,
            "instanceId": self.instance_id,
            "instanceType": self.instance_type,
            "kernelId": null,
            "pendingTime": "2026-01-01T00:00:00Z",
            "privateIp": ip,
            "ramdiskId": null,
            "region": self.region,
            "version": "2017-09-30",
        });
        serde_json::to_string_pretty(&doc).expect("json")
    }

    /// Every leaf path (under `/latest/`) with its content.
    fn tree(&self) -> BTreeMap<String, Vec<u8>> {
        let mut t: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut put = |k: String, v: String| {
            t.insert(k, v.into_bytes());
        };
        let m = |s: &str| format!("meta-data/{s}");
        put(
            "dynamic/instance-identity/document".into(),
            self.identity_document(),
        );
        put(m("ami-id"), self.image_id.clone());
        put(m("instance-id"), self.instance_id.clone());
        put(m("instance-type"), self.instance_type.clone());
        put(m("local-hostname"), self.local_hostname.clone());
        put(m("hostname"), self.local_hostname.clone());
        put(
            m("placement/availability-zone"),
            self.availability_zone.clone(),
        );
        put(
            m("placement/availability-zone-id"),
            self.availability_zone_id.clone(),
        );
        put(m("placement/region"), self.region.clone());
        put(m("services/domain"), self.domain.clone());
        put(m("services/partition"), self.partition.clone());
        if let Some(arn) = &self.outpost_arn {
            put(m("outpost-arn"), arn.clone());
        }
        if let Some(primary) = self.interfaces.first() {
            put(m("mac"), primary.mac.clone());
            if let Some(ip) = primary.local_ipv4s.first() {
                put(m("local-ipv4"), ip.clone());
            }
            if let Some(ip) = primary.ipv6s.first() {
                put(m("ipv6"), ip.clone());
            }
        }
        for i in &self.interfaces {
            let p = |leaf: &str| m(&format!("network/interfaces/macs/{}/{leaf}", i.mac));
            put(p("mac"), i.mac.clone());
            put(p("device-number"), i.device_number.to_string());
            put(
                p("interface-id"),
                format!("eni-{:017x}", i.device_number + 1),
            );
            if let Some(card) = i.network_card {
                put(p("network-card"), card.to_string());
            }
            if !i.local_ipv4s.is_empty() {
                put(p("local-ipv4s"), i.local_ipv4s.join("\n"));
            }
            if !i.ipv6s.is_empty() {
                put(p("ipv6s"), i.ipv6s.join("\n"));
            }
            put(p("vpc-ipv4-cidr-blocks"), i.vpc_ipv4_cidr_blocks.join("\n"));
            if let Some(first) = i.vpc_ipv4_cidr_blocks.first() {
                put(p("vpc-ipv4-cidr-block"), first.clone());
            }
            if let Some(c) = &i.subnet_ipv4_cidr_block {
                put(p("subnet-ipv4-cidr-block"), c.clone());
            }
            put(p("subnet-id"), i.subnet_id.clone());
            put(p("vpc-id"), i.vpc_id.clone());
        }
        for (name, dev) in &self.block_device_mapping {
            put(m(&format!("block-device-mapping/{name}")), dev.clone());
        }
        if let Some(c) = &self.credentials {
            for (k, v) in role_tree(c, &self.account_id) {
                t.insert(k, v);
            }
        }
        if let Some(u) = &self.user_data {
            t.insert("user-data".into(), u.clone());
        }
        for (k, v) in self.tags.iter().flatten() {
            t.insert(m(&format!("tags/instance/{k}")), v.clone().into_bytes());
        }
        t
    }
}

/// The `iam/` subtree IMDS serves for an instance profile's role.
fn role_tree(c: &RoleCredentials, account_id: &str) -> Vec<(String, Vec<u8>)> {
    let body = serde_json::json!({
        "Code": "Success",
        "LastUpdated": c.last_updated,
        "Type": "AWS-HMAC",
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key,
        "Token": c.token,
        "Expiration": c.expiration,
    });
    let info = serde_json::json!({
        "Code": "Success",
        "LastUpdated": c.last_updated,
        "InstanceProfileArn": format!("arn:aws:iam::{account_id}:instance-profile/{}", c.role),
        "InstanceProfileId": "AIPAEXAMPLEPROFILEID0",
    });
    vec![
        (
            format!("meta-data/iam/security-credentials/{}", c.role),
            serde_json::to_string_pretty(&body)
                .expect("json")
                .into_bytes(),
        ),
        (
            "meta-data/iam/info".to_owned(),
            serde_json::to_string_pretty(&info)
                .expect("json")
                .into_bytes(),
        ),
    ]
}

/// A scheduled maintenance event as IMDS lists it.
#[derive(Debug, Clone)]
pub struct ScheduledEvent {
    /// `EventId`.
    pub id: String,
    /// `Code`, e.g. `system-reboot`.
    pub code: String,
    /// `NotBefore`.
    pub not_before: time::OffsetDateTime,
    /// `State`: `active`, `completed` or `canceled`.
    pub state: String,
}

impl ScheduledEvent {
    fn json(&self) -> serde_json::Value {
        let f = time::macros::format_description!(
            "[day padding:none] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let at = |t: time::OffsetDateTime| {
            t.to_offset(time::UtcOffset::UTC)
                .format(&f)
                .expect("format")
        };
        serde_json::json!({
            "NotBefore": at(self.not_before),
            "Code": self.code,
            "Description": format!("scheduled {}", self.code.replace('-', " ")),
            "EventId": self.id,
            "NotAfter": at(self.not_before + time::Duration::minutes(15)),
            "State": self.state,
        })
    }
}

/// Faults and state shared with the server task.
#[derive(Debug, Default)]
struct State {
    tokens: HashMap<String, Instant>,
    delay: Duration,
    fail_next: u32,
    fail_status: u16,
    drop_next: u32,
    disabled: bool,
}

#[derive(Debug)]
struct Shared {
    tree: Mutex<BTreeMap<String, Vec<u8>>>,
    allow_v1: bool,
    state: Mutex<State>,
    requests: AtomicU64,
    token_puts: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    unauthorized: AtomicU64,
    counter: AtomicU32,
}

/// A running IMDS emulator on 127.0.0.1; stopped on drop.
#[derive(Debug)]
pub struct ImdsEmulator {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

impl ImdsEmulator {
    /// Starts the emulator for `instance` on a free loopback port, on its own thread.
    pub fn start(instance: Instance) -> ImdsEmulator {
        let shared = Arc::new(Shared {
            tree: Mutex::new(instance.tree()),
            allow_v1: instance.allow_imdsv1,
            state: Mutex::new(State {
                fail_status: 503,
                ..State::default()
            }),
            requests: AtomicU64::new(0),
            token_puts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            counter: AtomicU32::new(0),
        });
        let s = shared.clone();
        let server = LoopbackServer::start("imds-emulator", move |req| handle(s.clone(), req));
        ImdsEmulator { server, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("state lock")
    }

    /// Delays every answer by `d`.
    pub fn set_delay(&self, d: Duration) {
        self.state().delay = d;
    }

    /// Answers the next `n` requests (any path, the token PUT included) with `status` (5xx).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut s = self.state();
        s.fail_next = n;
        s.fail_status = status;
    }

    /// Drops the next `n` connections' requests without answering (the connection is closed).
    pub fn drop_next(&self, n: u32) {
        self.state().drop_next = n;
    }

    /// Expires every token issued so far (the next GET with one gets 401).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in self.state().tokens.values_mut() {
            *t = now;
        }
    }

    /// Turns the endpoint off (403 for everything) or on again.
    pub fn set_disabled(&self, disabled: bool) {
        self.state().disabled = disabled;
    }

    /// Replaces the instance profile's credentials (None: no instance profile), as EC2 does
    /// when it rotates them.
    pub fn set_credentials(&self, credentials: Option<RoleCredentials>, account_id: &str) {
        let mut t = self.shared.tree.lock().expect("tree lock");
        t.retain(|k, _| !k.starts_with("meta-data/iam/"));
        if let Some(c) = &credentials {
            t.extend(role_tree(c, account_id));
        }
    }

    /// Replaces the user data (None: 404).
    pub fn set_user_data(&self, data: Option<Vec<u8>>) {
        let mut t = self.shared.tree.lock().expect("tree lock");
        match data {
            Some(d) => t.insert("user-data".into(), d),
            None => t.remove("user-data"),
        };
    }

    fn set_leaf(&self, leaf: &str, value: Option<String>) {
        let mut t = self.shared.tree.lock().expect("tree lock");
        let key = format!("meta-data/{leaf}");
        match value {
            Some(v) => t.insert(key, v.into_bytes()),
            None => t.remove(&key),
        };
    }

    /// Announces a spot interruption (`action` is `terminate`, `stop` or `hibernate`; `time`
    /// RFC 3339 UTC), or withdraws it (None: 404).
    pub fn set_spot_action(&self, action: Option<(&str, &str)>) {
        match action {
            Some((action, time)) => {
                self.set_leaf(
                    "spot/instance-action",
                    Some(serde_json::json!({"action": action, "time": time}).to_string()),
                );
                self.set_leaf("spot/termination-time", Some(time.to_owned()));
            }
            None => {
                self.set_leaf("spot/instance-action", None);
                self.set_leaf("spot/termination-time", None);
            }
        }
    }

    /// Sets the rebalance recommendation's notice time (RFC 3339), or none (404).
    pub fn set_rebalance(&self, notice_time: Option<&str>) {
        self.set_leaf(
            "events/recommendations/rebalance",
            notice_time.map(|t| serde_json::json!({"noticeTime": t}).to_string()),
        );
    }

    /// Sets the scheduled maintenance events (None: 404).
    pub fn set_scheduled_events(&self, events: Option<&[ScheduledEvent]>) {
        self.set_leaf(
            "events/maintenance/scheduled",
            events.map(|list| {
                let docs: Vec<serde_json::Value> = list.iter().map(ScheduledEvent::json).collect();
                serde_json::to_string_pretty(&docs).expect("json")
            }),
        );
    }

    /// Sets the Auto Scaling target lifecycle state, e.g. `InService`, `Terminated`,
    /// `Warmed:Stopped` (None: 404, not in a group).
    pub fn set_target_lifecycle_state(&self, state: Option<&str>) {
        self.set_leaf(
            "autoscaling/target-lifecycle-state",
            state.map(str::to_owned),
        );
    }

    /// Requests received (all methods and paths).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Tokens issued.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.token_puts.load(Ordering::SeqCst)
    }

    /// Requests dropped by fault injection.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// Requests failed with 5xx by fault injection.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// GETs refused with 401.
    pub fn unauthorized(&self) -> u64 {
        self.shared.unauthorized.load(Ordering::SeqCst)
    }
}

/// The fault injected into one request.
enum Fault {
    None,
    Drop,
    Status(u16),
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    r.headers_mut().insert(
        hyper::header::SERVER,
        hyper::header::HeaderValue::from_static("EC2ws"),
    );
    r
}

fn status_page(status: StatusCode) -> Response<Full<Bytes>> {
    let reason = status.canonical_reason().unwrap_or("");
    let code = status.as_u16();
    let html = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{code} - {reason}</title>\n </head>\n <body>\n  <h1>{code} - {reason}</h1>\n </body>\n</html>\n"
    );
    let mut r = reply(status, html);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html"),
    );
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let (delay, fault, disabled) = {
        let mut s = shared.state.lock().expect("state lock");
        let fault = if s.drop_next > 0 {
            s.drop_next -= 1;
            Fault::Drop
        } else if s.fail_next > 0 {
            s.fail_next -= 1;
            Fault::Status(s.fail_status)
        } else {
            Fault::None
        };
        (s.delay, fault, s.disabled)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Fault::Drop => {
            shared.dropped.fetch_add(1, Ordering::SeqCst);
            return Err(Dropped);
        }
        Fault::Status(code) => {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Ok(status_page(status));
        }
        Fault::None => {}
    }
    if disabled {
        return Ok(status_page(StatusCode::FORBIDDEN));
    }
    let (parts, body) = req.into_parts();
    // Drain the request body (IMDS ignores it).
    let _ = body.collect().await;
    let path = parts.uri.path().to_string();
    if path == "/latest/api/token" {
        return Ok(token(&shared, &parts.method, &parts.headers));
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut r = status_page(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("OPTIONS, GET, HEAD"),
        );
        return Ok(r);
    }
    let token_ok = match parts
        .headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(t) => {
            let s = shared.state.lock().expect("state lock");
            s.tokens.get(t).is_some_and(|exp| Instant::now() < *exp)
        }
        None => shared.allow_v1,
    };
    if !token_ok {
        shared.unauthorized.fetch_add(1, Ordering::SeqCst);
        return Ok(status_page(StatusCode::UNAUTHORIZED));
    }
    let Some(rest) = path.strip_prefix("/latest/") else {
        if path == "/" || path.is_empty() {
            return Ok(reply(StatusCode::OK, "latest"));
        }
        return Ok(status_page(StatusCode::NOT_FOUND));
    };
    let tree = shared.tree.lock().expect("tree lock");
    Ok(lookup(&tree, rest))
}

/// A leaf's content, or a directory listing, or 404.
fn lookup(tree: &BTreeMap<String, Vec<u8>>, rest: &str) -> Response<Full<Bytes>> {
    if let Some(v) = tree.get(rest.trim_end_matches('/')) {
        return reply(StatusCode::OK, v.clone());
    }
    let prefix = if rest.is_empty() || rest.ends_with('/') {
        rest.to_string()
    } else {
        format!("{rest}/")
    };
    let mut children: Vec<String> = Vec::new();
    for key in tree.keys().filter(|k| k.starts_with(&prefix)) {
        let tail = &key[prefix.len()..];
        let child = match tail.split_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => tail.to_string(),
        };
        if children.last() != Some(&child) {
            children.push(child);
        }
    }
    children.dedup();
    if children.is_empty() {
        return status_page(StatusCode::NOT_FOUND);
    }
    reply(StatusCode::OK, children.join("\n"))
}

fn token(shared: &Shared, method: &Method, headers: &hyper::HeaderMap) -> Response<Full<Bytes>> {
    if method != Method::PUT {
        let mut r = status_page(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("OPTIONS, PUT"),
        );
        return r;
    }
    if headers.contains_key("x-forwarded-for") {
        return status_page(StatusCode::FORBIDDEN);
    }
    let Some(ttl) = headers
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|t| (1..=MAX_TOKEN_TTL_SECS).contains(t))
    else {
        return status_page(StatusCode::BAD_REQUEST);
    };
    let n = shared.counter.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    use base64::Engine as _;
    let value = base64::engine::general_purpose::STANDARD
        .encode(format!("imds-emulator-token-{n}-{nanos:x}-{:p}", shared));
    shared
        .state
        .lock()
        .expect("state lock")
        .tokens
        .insert(value.clone(), Instant::now() + Duration::from_secs(ttl));
    shared.token_puts.fetch_add(1, Ordering::SeqCst);
    let mut r = reply(StatusCode::OK, value);
    r.headers_mut().insert(
        TTL_HEADER,
        hyper::header::HeaderValue::from_str(&ttl.to_string()).expect("header value"),
    );
    r
}
