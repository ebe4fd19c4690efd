//! `status`'s `cni-firewall` check: when a host firewall is active (firewalld, ufw, or an
//! nftables ruleset that drops input), the ports the node's CNI and the kubelet need are open
//! in it, as `nodeadm debug` and the EKS Hybrid Nodes network requirements list them:
//!
//! | CNI | port | why | closed is |
//! |---|---|---|---|
//! | any | 10250/tcp | the kubelet API (logs, exec, metrics) | fail |
//! | Cilium | 8472/udp (6081/udp when the `cilium_geneve` device exists) | the VXLAN (Geneve) overlay between nodes | fail |
//! | Cilium | 4240/tcp | cilium-health probes between nodes | warn |
//! | Calico | 4789/udp | the VXLAN overlay between nodes | fail |
//! | Calico | 179/tcp | BGP between nodes (BGP mode only) | warn |
//! | Calico | 5473/tcp | Typha (nodes that run it) | warn |
//!
//! A blocked kubelet port or overlay port breaks the node (no logs/exec, no pod traffic to
//! other nodes); health probes, BGP and Typha matter only in some setups, so those warn.
//!
//! Where each firewall's state is read (all pointable under `--host-root`/`--proc-root` and
//! `PATH`):
//!
//! - firewalld, when its daemon runs (a `firewalld` process): its permanent configuration,
//!   the zone of the default route's interface (an `<interface>` of a zone in
//!   `/etc/firewalld/zones`), else `DefaultZone` of `/etc/firewalld/firewalld.conf`; the zone
//!   and service XML of `/etc/firewalld` over `/usr/lib/firewalld`. Ports, services (with
//!   their includes), protocols, accepting rich rules and an `ACCEPT` target open a port.
//! - ufw, when `/etc/ufw/ufw.conf` says `ENABLED=yes`: the rule tuples of
//!   `/etc/ufw/user.rules` (`user6.rules` for an IPv6 node IP), first match wins, else
//!   `DEFAULT_INPUT_POLICY` of `/etc/default/ufw`.
//! - nftables: `nft -j list tables` and `nft -j list table` for each (the real `nft` on
//!   `PATH`, through the bounded command runner), except the tables firewalld and ufw own
//!   (judged above) and kube-proxy's (it rejects only traffic to services). Each `filter`
//!   chain on the `input` hook of the node IP's family is evaluated for a new connection to
//!   the port: port and protocol matches (values, sets, ranges, named sets), `ct state`,
//!   `iifname "lo"`, source-address matches (an accept from some sources counts as open,
//!   a drop from some does not close), verdict maps (anonymous and named),
//!   `jump`/`goto`/`return`, then the chain's policy.
//!   A rule with a match the check does not model is passed over.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::Outcome;
use super::network::Cni;
use super::status::{fail, ok, warn};
use crate::model::bounded::read_to_string_capped;

/// The most bytes read of one firewalld or ufw file.
const MAX_FILE_BYTES: usize = 256 * 1024;
/// The most firewalld zone files looked through for interface bindings.
const MAX_ZONES: usize = 256;
/// How deep firewalld service includes and nftables jumps are followed (nft's own limit).
const MAX_DEPTH: usize = 16;
/// The most nftables tables listed.
const MAX_TABLES: usize = 64;
/// Bound on each `nft` run.
const NFT_TIMEOUT: Duration = Duration::from_secs(5);

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn number(self) -> u64 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

/// A port the node needs open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The port.
    pub port: u16,
    /// Its protocol.
    pub proto: Proto,
    /// What uses it.
    pub what: &'static str,
    /// Closed fails the check (else it warns).
    pub required: bool,
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({})", self.port, self.proto.as_str(), self.what)
    }
}

const fn need(port: u16, proto: Proto, what: &'static str, required: bool) -> Need {
    Need {
        port,
        proto,
        what,
        required,
    }
}

/// The kubelet's API.
pub const KUBELET: Need = need(10250, Proto::Tcp, "kubelet", true);

/// What the node needs open for `cni`; `geneve`: Cilium's Geneve device exists.
pub fn needs(cni: Option<&Cni>, geneve: bool) -> Vec<Need> {
    let mut out = vec![KUBELET];
    match cni {
        Some(Cni::Cilium) => {
            out.push(if geneve {
                need(6081, Proto::Udp, "Cilium Geneve overlay", true)
            } else {
                need(8472, Proto::Udp, "Cilium VXLAN overlay", true)
            });
            out.push(need(4240, Proto::Tcp, "Cilium health", false));
        }
        Some(Cni::Calico) => {
            out.push(need(4789, Proto::Udp, "Calico VXLAN overlay", true));
            out.push(need(179, Proto::Tcp, "Calico BGP", false));
            out.push(need(5473, Proto::Tcp, "Calico Typha", false));
        }
        _ => {}
    }
    out
}

/// Whether a firewall lets a new connection to a port in, and how it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let in.
    Open(String),
    /// Dropped or rejected.
    Closed(String),
}

/// One active firewall, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firewall {
    /// firewalld: the zone and what it opens.
    Firewalld(Zone),
    /// ufw: its rules and default policy.
    Ufw(Ufw),
    /// nftables input chains.
    Nftables(Ruleset),
}

/// What the host's firewalls are, as read: each active one, or why one could not be read.
pub type Seen = Vec<Result<Firewall, String>>;

/// A port range a firewall opens, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// First and last port (`0..=65535` for a whole protocol).
    pub ports: (u16, u16),
    /// Its protocol (`None`: any).
    pub proto: Option<Proto>,
    /// Where it is opened.
    pub how: String,
}

impl Opening {
    fn covers(&self, port: u16, proto: Proto) -> bool {
        self.proto.is_none_or(|p| p == proto) && self.ports.0 <= port && port <= self.ports.1
    }
}

/// Parses `N`, `N-M` or `N:M`.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    match s.split_once(['-', ':']) {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => s.parse().ok().map(|p| (p, p)),
    }
}

fn proto(s: &str) -> Result<Option<Proto>, ()> {
    match s {
        "tcp" => Ok(Some(Proto::Tcp)),
        "udp" => Ok(Some(Proto::Udp)),
        "any" | "" => Ok(None),
        _ => Err(()),
    }
}

// ---------------------------------------------------------------- firewalld

/// firewalld's configuration directories: the administrator's, then the shipped defaults.
const FIREWALLD_DIRS: [&str; 2] = ["etc/firewalld", "usr/lib/firewalld"];

/// A firewalld zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Its name and why it applies.
    pub name: String,
    /// Its target accepts everything.
    pub accept_all: bool,
    /// What it opens.
    pub open: Vec<Opening>,
}

fn firewalld_file(host_root: &Path, kind: &str, name: &str) -> Result<(String, String), String> {
    if name.contains('/') || name.starts_with('.') {
        return Err(format!("firewalld {kind} name {name:?} is not a file name"));
    }
    for dir in FIREWALLD_DIRS {
        let rel = format!("{dir}/{kind}/{name}.xml");
        match read_to_string_capped(&host_root.join(&rel), MAX_FILE_BYTES) {
            Ok(text) => return Ok((text, format!("/{rel}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("/{rel}: {e}")),
        }
    }
    Err(format!(
        "firewalld {kind} {name:?} is defined in neither /etc/firewalld/{kind} nor /usr/lib/firewalld/{kind}"
    ))
}

/// An XML element: its depth (0 for the root), name and the attributes read.
type Element = (usize, String, HashMap<String, String>);

/// The value of `KEY=value` in a shell-style settings file (firewalld.conf, ufw.conf,
/// /etc/default/ufw): the last line setting it wins, quotes are dropped.
fn setting<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"'))
}

/// The elements of an XML document, the root's children at depth 1; only as deep as
/// `max_depth`.
fn xml_elements(xml: &str, max_depth: usize) -> Result<Vec<Element>, String> {
    use aws_smithy_xml::decode::{Document, ScopedDecoder};
    fn walk(el: &mut ScopedDecoder<'_, '_>, depth: usize, max: usize, out: &mut Vec<Element>) {
        while let Some(mut child) = el.next_tag() {
            let start = child.start_el();
            let attrs = [
                "name", "port", "protocol", "value", "target", "service", "address",
            ]
            .iter()
            .filter_map(|k| start.attr(k).map(|v| ((*k).to_owned(), v.to_owned())))
            .collect();
            out.push((depth, start.local().to_owned(), attrs));
            if depth < max {
                walk(&mut child, depth + 1, max, out);
            }
        }
    }
    let mut doc = Document::new(xml);
    let mut root = doc.root_element().map_err(|e| format!("not XML: {e}"))?;
    let mut out = vec![(
        0,
        root.start_el().local().to_owned(),
        root.start_el()
            .attr("target")
            .map(|t| HashMap::from([("target".to_owned(), t.to_owned())]))
            .unwrap_or_default(),
    )];
    walk(&mut root, 1, max_depth, &mut out);
    Ok(out)
}

/// The ports of firewalld service `name` (with its includes, at most [`MAX_DEPTH`] deep).
fn service_ports(host_root: &Path, name: &str, depth: usize) -> Result<Vec<Opening>, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "firewalld service {name}: includes nest deeper than {MAX_DEPTH}"
        ));
    }
    let (text, path) = firewalld_file(host_root, "services", name)?;
    let mut out = Vec::new();
    for (d, el, attrs) in xml_elements(&text, 1).map_err(|e| format!("{path}: {e}"))? {
        let how = format!("service {name} ({path})");
        match (d, el.as_str()) {
            (1, "port") => out.extend(opening(&attrs, &how)),
            (1, "protocol") => out.extend(whole_protocol(&attrs, &how)),
            (1, "include") => {
                if let Some(inc) = attrs.get("service") {
                    out.extend(service_ports(host_root, inc, depth + 1)?);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn opening(attrs: &HashMap<String, String>, how: &str) -> Option<Opening> {
    let ports = port_range(attrs.get("port")?)?;
    let proto = proto(attrs.get("protocol").map_or("", String::as_str)).ok()?;
    Some(Opening {
        ports,
        proto,
        how: how.to_owned(),
    })
}

fn whole_protocol(attrs: &HashMap<String, String>, how: &str) -> Option<Opening> {
    let proto = proto(attrs.get("value")?).ok()??;
    Some(Opening {
        ports: (0, u16::MAX),
        proto: Some(proto),
        how: format!("all of {} ({how})", proto.as_str()),
    })
}

/// Parses firewalld zone XML (`name`, read from `path`).
pub fn parse_zone(host_root: &Path, name: &str, path: &str, xml: &str) -> Result<Zone, String> {
    let elements = xml_elements(xml, 2).map_err(|e| format!("{path}: {e}"))?;
    let accept_all = elements
        .first()
        .and_then(|(_, _, a)| a.get("target"))
        .is_some_and(|t| t == "ACCEPT");
    let mut open = Vec::new();
    // Rich rules: each <rule> is followed by its children at depth 2.
    let mut rule: Option<(Vec<Opening>, bool, Option<String>)> = None;
    let close_rule = |rule: &mut Option<(Vec<Opening>, bool, Option<String>)>,
                      open: &mut Vec<Opening>| {
        if let Some((ports, accept, source)) = rule.take()
            && accept
        {
            for mut o in ports {
                if let Some(s) = &source {
                    o.how = format!("{} from {s}", o.how);
                }
                open.push(o);
            }
        }
    };
    for (d, el, attrs) in &elements[1..] {
        if *d == 1 {
            close_rule(&mut rule, &mut open);
        }
        let here = format!("zone {name} ({path})");
        match (*d, el.as_str()) {
            (1, "port") => open.extend(opening(attrs, &here)),
            (1, "protocol") => open.extend(whole_protocol(attrs, &here)),
            (1, "service") => {
                if let Some(s) = attrs.get("name") {
                    open.extend(service_ports(host_root, s, 0)?);
                }
            }
            (1, "rule") => rule = Some((Vec::new(), false, None)),
            (2, "port") => {
                if let Some(r) = rule.as_mut() {
                    r.0.extend(opening(attrs, &format!("rich rule of {here}")));
                }
            }
            (2, "service") => {
                if let (Some(r), Some(s)) = (rule.as_mut(), attrs.get("name")) {
                    r.0.extend(service_ports(host_root, s, 0)?);
                }
            }
            (2, "source") => {
                if let Some(r) = rule.as_mut() {
                    r.2 = attrs.get("address").cloned();
                }
            }
            (2, "accept") => {
                if let Some(r) = rule.as_mut() {
                    r.1 = true;
                }
            }
            _ => {}
        }
    }
    close_rule(&mut rule, &mut open);
    Ok(Zone {
        name: name.to_owned(),
        accept_all,
        open,
    })
}

/// firewalld's zone for `interface`: the zone in `/etc/firewalld/zones` that binds it, else
/// the default zone.
fn firewalld_zone(host_root: &Path, interface: Option<&str>) -> Result<Zone, String> {
    let zones_dir = host_root.join("etc/firewalld/zones");
    if let (Some(ifname), Ok(entries)) = (interface, std::fs::read_dir(&zones_dir)) {
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .take(MAX_ZONES)
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "xml"))
        {
            let name = f
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let shown = format!("/etc/firewalld/zones/{name}.xml");
            let text =
                read_to_string_capped(f, MAX_FILE_BYTES).map_err(|e| format!("{shown}: {e}"))?;
            let binds = xml_elements(&text, 1)
                .map_err(|e| format!("{shown}: {e}"))?
                .iter()
                .any(|(d, el, a)| {
                    *d == 1 && el == "interface" && a.get("name").is_some_and(|n| n == ifname)
                });
            if binds {
                let mut zone = parse_zone(host_root, &name, &shown, &text)?;
                zone.name = format!("{name}, bound to {ifname}");
                return Ok(zone);
            }
        }
    }
    let conf = "etc/firewalld/firewalld.conf";
    let default = match read_to_string_capped(&host_root.join(conf), MAX_FILE_BYTES) {
        Ok(text) => setting(&text, "DefaultZone").map(str::to_owned),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("/{conf}: {e}")),
    }
    .unwrap_or_else(|| "public".to_owned());
    let (text, path) = firewalld_file(host_root, "zones", &default)?;
    let mut zone = parse_zone(host_root, &default, &path, &text)?;
    zone.name = format!("{default}, the default zone");
    Ok(zone)
}

// ---------------------------------------------------------------- ufw

/// ufw's rules, in order, and its default input policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ufw {
    /// The rules file read.
    pub file: String,
    /// Each incoming rule: allows (allow, limit) or not (deny, reject), what it matches, from
    /// where (`None`: anywhere), its tuple line.
    pub rules: Vec<UfwRule>,
    /// `DEFAULT_INPUT_POLICY` (`DROP` when unset, as ufw ships).
    pub policy: String,
}

/// One ufw rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfwRule {
    /// allow or limit (else deny, reject).
    pub allows: bool,
    /// The ports (empty: any port).
    pub ports: Vec<(u16, u16)>,
    /// The protocol (`None`: any).
    pub proto: Option<Proto>,
    /// The source, when not anywhere.
    pub from: Option<String>,
    /// The tuple as ufw wrote it.
    pub tuple: String,
}

/// Parses the `### tuple ###` lines of a ufw rules file: `action proto dport dst sport src
/// [dapp sapp] direction [comment=..]`; incoming rules only (route and outgoing rules are
/// left out, as are protocols other than tcp/udp/any).
pub fn parse_ufw_rules(text: &str) -> Vec<UfwRule> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(tuple) = line.strip_prefix("### tuple ###") else {
            continue;
        };
        let f: Vec<&str> = tuple.split_whitespace().collect();
        if f.len() < 7 {
            continue;
        }
        let incoming = f[6..].iter().any(|t| *t == "in" || t.starts_with("in_"));
        let action = f[0].split('_').next().unwrap_or_default();
        let Ok(proto) = proto(f[1]) else { continue };
        if !incoming || action.starts_with("route:") {
            continue;
        }
        let ports = if f[2] == "any" {
            Vec::new()
        } else {
            f[2].split(',').filter_map(port_range).collect()
        };
        let from = (!matches!(f[5], "0.0.0.0/0" | "::/0")).then(|| f[5].to_owned());
        out.push(UfwRule {
            allows: matches!(action, "allow" | "limit"),
            ports,
            proto,
            from,
            tuple: tuple.trim().to_owned(),
        });
    }
    out
}

/// ufw's state under `host_root`: `None` when it is not enabled.
fn read_ufw(host_root: &Path, ipv6: bool) -> Option<Result<Ufw, String>> {
    let conf = read_to_string_capped(&host_root.join("etc/ufw/ufw.conf"), MAX_FILE_BYTES).ok()?;
    let enabled = setting(&conf, "ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    if !enabled {
        return None;
    }
    let file = if ipv6 {
        "/etc/ufw/user6.rules"
    } else {
        "/etc/ufw/user.rules"
    };
    let rules = match read_to_string_capped(&host_root.join(&file[1..]), MAX_FILE_BYTES) {
        Ok(text) => parse_ufw_rules(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Some(Err(format!("{file}: {e}"))),
    };
    let policy = read_to_string_capped(&host_root.join("etc/default/ufw"), MAX_FILE_BYTES)
        .ok()
        .and_then(|t| setting(&t, "DEFAULT_INPUT_POLICY").map(str::to_ascii_uppercase))
        .unwrap_or_else(|| "DROP".to_owned());
    Some(Ok(Ufw {
        file: file.to_owned(),
        rules,
        policy,
    }))
}

impl Ufw {
    fn verdict(&self, port: u16, proto: Proto) -> Verdict {
        for r in &self.rules {
            let hit = r.proto.is_none_or(|p| p == proto)
                && (r.ports.is_empty() || r.ports.iter().any(|(a, b)| *a <= port && port <= *b));
            match (hit, r.allows, &r.from) {
                (false, _, _) | (true, false, Some(_)) => {}
                (true, true, from) => {
                    let from = from
                        .as_ref()
                        .map(|f| format!(" from {f}"))
                        .unwrap_or_default();
                    return Verdict::Open(format!("ufw rule `{}`{from}", r.tuple));
                }
                (true, false, None) => {
                    return Verdict::Closed(format!("ufw rule `{}`", r.tuple));
                }
            }
        }
        if self.policy == "ACCEPT" {
            Verdict::Open("ufw's default input policy ACCEPT".into())
        } else {
            Verdict::Closed(format!(
                "no ufw rule in {}; default input policy {}",
                self.file, self.policy
            ))
        }
    }
}

// ---------------------------------------------------------------- nftables

/// The tables whose input chains are judged, as `nft -j` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// Chains by (family, table, name).
    pub chains: HashMap<(String, String, String), Chain>,
    /// Named sets' elements by (family, table, name).
    pub sets: HashMap<(String, String, String), Vec<Value>>,
}

/// One nftables chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    /// Its hook, for a base chain.
    pub hook: Option<String>,
    /// Its type (`filter`, ...).
    pub kind: Option<String>,
    /// Its priority.
    pub prio: i64,
    /// Its policy (`accept`, `drop`).
    pub policy: Option<String>,
    /// Each rule's expressions.
    pub rules: Vec<Vec<Value>>,
}

impl Ruleset {
    /// Adds the objects of one `nft -j` answer.
    pub fn add(&mut self, json: &str) -> Result<(), String> {
        let doc: Value = serde_json::from_str(json).map_err(|e| format!("not nft JSON: {e}"))?;
        let items = doc
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or("not nft JSON: no `nftables` array")?;
        let s = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        for item in items {
            if let Some(c) = item.get("chain") {
                let chain = self
                    .chains
                    .entry((s(c, "family"), s(c, "table"), s(c, "name")))
                    .or_default();
                chain.hook = c.get("hook").and_then(Value::as_str).map(str::to_owned);
                chain.kind = c.get("type").and_then(Value::as_str).map(str::to_owned);
                chain.prio = c.get("prio").and_then(Value::as_i64).unwrap_or(0);
                chain.policy = c.get("policy").and_then(Value::as_str).map(str::to_owned);
            } else if let Some(r) = item.get("rule") {
                let expr = r
                    .get("expr")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                self.chains
                    .entry((s(r, "family"), s(r, "table"), s(r, "chain")))
                    .or_default()
                    .rules
                    .push(expr);
            } else if let Some(set) = item.get("set").or_else(|| item.get("map")) {
                let elem = set
                    .get("elem")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                self.sets
                    .insert((s(set, "family"), s(set, "table"), s(set, "name")), elem);
            }
        }
        Ok(())
    }

    /// The input base chains of the families a packet of `ipv6` traverses, by priority.
    fn input_chains(&self, ipv6: bool) -> Vec<(&(String, String, String), &Chain)> {
        let fam = if ipv6 { "ip6" } else { "ip" };
        let mut out: Vec<_> = self
            .chains
            .iter()
            .filter(|((f, _, _), c)| {
                (f == fam || f == "inet")
                    && c.hook.as_deref() == Some("input")
                    && c.kind.as_deref().is_none_or(|k| k == "filter")
            })
            .collect();
        out.sort_by_key(|(k, c)| (c.prio, (*k).clone()));
        out
    }

    /// An input chain drops what it does not accept, or has a rule that drops: the ruleset
    /// is a firewall.
    pub fn filters(&self, ipv6: bool) -> bool {
        self.input_chains(ipv6).iter().any(|((f, t, _), c)| {
            c.policy.as_deref() == Some("drop")
                || self.chains.iter().any(|((f2, t2, _), c2)| {
                    f2 == f
                        && t2 == t
                        && c2
                            .rules
                            .iter()
                            .flatten()
                            .any(|e| e.get("drop").is_some() || e.get("reject").is_some())
                })
        })
    }

    /// What happens to a new connection to `port`/`proto` from another node.
    pub fn verdict(&self, port: u16, proto: Proto, ipv6: bool) -> Verdict {
        let packet = Packet { port, proto, ipv6 };
        let mut opened = Vec::new();
        for ((family, table, name), chain) in self.input_chains(ipv6) {
            let at = format!("{family} {table} {name}");
            match self.run_chain(family, table, chain, &packet, &at, 0) {
                Flow::Accept(how) => opened.push(how),
                Flow::Drop(how) => return Verdict::Closed(how),
                Flow::Continue => match chain.policy.as_deref() {
                    Some("drop") => return Verdict::Closed(format!("policy drop of chain {at}")),
                    _ => opened.push(format!("policy accept of chain {at}")),
                },
            }
        }
        Verdict::Open(opened.join(", "))
    }

    fn run_chain(
        &self,
        family: &str,
        table: &str,
        chain: &Chain,
        p: &Packet,
        at: &str,
        depth: usize,
    ) -> Flow {
        if depth > MAX_DEPTH {
            return Flow::Continue;
        }
        for (i, rule) in chain.rules.iter().enumerate() {
            let here = format!("rule {} of chain {at}", i + 1);
            let mut from = None;
            for e in rule {
                if let Some(m) = e.get("match") {
                    match self.matches(family, table, m, p) {
                        Cond::Yes => {}
                        Cond::From(s) => from = Some(s),
                        Cond::No | Cond::Unknown => break,
                    }
                    continue;
                }
                // A verdict map gives the verdict of the element the packet matches; none:
                // the rule does not apply.
                let e = match e.get("vmap") {
                    Some(vmap) => match self.vmap_verdict(family, table, vmap, p) {
                        Some(verdict) => verdict,
                        None => break,
                    },
                    None => e,
                };
                let target = |k: &str| {
                    e.get(k)
                        .and_then(|j| j.get("target"))
                        .and_then(Value::as_str)
                        .and_then(|t| {
                            self.chains
                                .get(&(family.to_owned(), table.to_owned(), t.to_owned()))
                                .map(|c| (t.to_owned(), c))
                        })
                };
                if e.get("accept").is_some() {
                    return Flow::Accept(match &from {
                        Some(s) => format!("{here} from {s}"),
                        None => here,
                    });
                }
                if e.get("drop").is_some() || e.get("reject").is_some() {
                    if from.is_some() {
                        break; // drops only some sources
                    }
                    return Flow::Drop(here);
                }
                if e.get("return").is_some() {
                    return Flow::Continue;
                }
                if let Some((name, next)) = target("jump") {
                    match self.run_chain(
                        family,
                        table,
                        next,
                        p,
                        &format!("{family} {table} {name}"),
                        depth + 1,
                    ) {
                        Flow::Continue => break,
                        done => return done,
                    }
                }
                if let Some((name, next)) = target("goto") {
                    return self.run_chain(
                        family,
                        table,
                        next,
                        p,
                        &format!("{family} {table} {name}"),
                        depth + 1,
                    );
                }
                if ["jump", "goto", "queue"]
                    .iter()
                    .any(|k| e.get(*k).is_some())
                {
                    break; // a verdict the check does not model
                }
            }
        }
        Flow::Continue
    }

    /// What the packet has for the key expression `left` of a match or a verdict map.
    fn key(left: &Value, p: &Packet) -> Key {
        if let Some(pl) = left.get("payload") {
            let field = pl.get("field").and_then(Value::as_str).unwrap_or_default();
            let protocol = pl
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match (protocol, field) {
                ("tcp" | "udp", "dport") if protocol != p.proto.as_str() => Key::Absent,
                ("tcp" | "udp" | "th", "dport") => Key::Value(Value::from(p.port)),
                ("ip" | "ip6", "saddr") => Key::Source,
                ("ip", "protocol") | ("ip6", "nexthdr") => {
                    Key::Value(Value::from(p.proto.as_str()))
                }
                _ => Key::Unknown,
            }
        } else if let Some(meta) = left.get("meta") {
            match meta.get("key").and_then(Value::as_str).unwrap_or_default() {
                "l4proto" => Key::Value(Value::from(p.proto.as_str())),
                "nfproto" => Key::Value(Value::from(if p.ipv6 { "ipv6" } else { "ipv4" })),
                "iifname" | "iif" => Key::Interface,
                _ => Key::Unknown,
            }
        } else if left
            .get("ct")
            .and_then(|c| c.get("key"))
            .and_then(Value::as_str)
            == Some("state")
        {
            Key::Value(Value::from("new"))
        } else {
            Key::Unknown
        }
    }

    fn matches(&self, family: &str, table: &str, m: &Value, p: &Packet) -> Cond {
        let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
        let (Some(left), Some(right)) = (m.get("left"), m.get("right")) else {
            return Cond::Unknown;
        };
        let negate = match op {
            "==" | "in" => false,
            "!=" => true,
            _ => return Cond::Unknown,
        };
        let value = match Self::key(left, p) {
            Key::Value(v) => v,
            Key::Absent => return Cond::No,
            Key::Source if !negate => return Cond::From(describe(right)),
            // Traffic from other nodes never arrives on the loopback interface.
            Key::Interface => {
                return match (right.as_str(), negate) {
                    (Some("lo"), false) => Cond::No,
                    (Some("lo"), true) => Cond::Yes,
                    _ => Cond::Unknown,
                };
            }
            Key::Source | Key::Unknown => return Cond::Unknown,
        };
        let Some(hit) = self.contains(family, table, right, &value, p) else {
            return Cond::Unknown;
        };
        if hit != negate { Cond::Yes } else { Cond::No }
    }

    /// The verdict a verdict map (`... vmap { KEY : VERDICT, ... }` or `vmap @map`) gives
    /// the packet: `None` when no element matches or the key is not modelled.
    fn vmap_verdict<'v>(
        &'v self,
        family: &str,
        table: &str,
        vmap: &'v Value,
        p: &Packet,
    ) -> Option<&'v Value> {
        let Key::Value(value) = Self::key(vmap.get("key")?, p) else {
            return None;
        };
        let data = vmap.get("data")?;
        let elems = match data.as_str().and_then(|n| n.strip_prefix('@')) {
            Some(name) => self
                .sets
                .get(&(family.to_owned(), table.to_owned(), name.to_owned()))?,
            None => data.get("set")?.as_array()?,
        };
        elems.iter().find_map(|pair| {
            let pair = pair.as_array()?;
            let (k, verdict) = (pair.first()?, pair.get(1)?);
            self.contains(family, table, k, &value, p)
                .filter(|hit| *hit)
                .map(|_| verdict)
        })
    }

    /// Whether `right` (a value, a list, an anonymous or named set, a range) holds `value`.
    fn contains(
        &self,
        family: &str,
        table: &str,
        right: &Value,
        value: &Value,
        p: &Packet,
    ) -> Option<bool> {
        let same = |a: &Value| -> Option<bool> {
            match (a, value) {
                (Value::Number(a), Value::Number(v)) => Some(a == v),
                (Value::String(a), Value::String(v)) => Some(a == v),
                // Protocols as numbers (meta l4proto 17).
                (Value::Number(a), Value::String(_)) => Some(a.as_u64() == Some(p.proto.number())),
                (Value::Object(o), Value::Number(v)) => {
                    let r = o.get("range")?.as_array()?;
                    let (lo, hi, v) = (r.first()?.as_u64()?, r.get(1)?.as_u64()?, v.as_u64()?);
                    Some(lo <= v && v <= hi)
                }
                _ => None,
            }
        };
        match right {
            Value::String(name) if name.starts_with('@') => {
                let elems =
                    self.sets
                        .get(&(family.to_owned(), table.to_owned(), name[1..].to_owned()))?;
                Some(
                    elems
                        .iter()
                        .filter_map(|e| same(e.get("elem").and_then(|x| x.get("val")).unwrap_or(e)))
                        .any(|b| b),
                )
            }
            Value::Array(items) => Some(items.iter().filter_map(same).any(|b| b)),
            Value::Object(o) if o.contains_key("set") => {
                let items = o["set"].as_array()?;
                Some(items.iter().filter_map(same).any(|b| b))
            }
            other => same(other),
        }
    }
}

fn describe(v: &Value) -> String {
    match v.get("prefix") {
        Some(p) => format!(
            "{}/{}",
            p.get("addr").and_then(Value::as_str).unwrap_or("?"),
            p.get("len").and_then(Value::as_u64).unwrap_or(0)
        ),
        None => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
    }
}

struct Packet {
    port: u16,
    proto: Proto,
    ipv6: bool,
}

/// What a packet has for a key expression.
enum Key {
    /// This value.
    Value(Value),
    /// The packet has no such header (a tcp port of a udp packet).
    Absent,
    /// Its source address (from another node: any).
    Source,
    /// Its input interface (not loopback).
    Interface,
    /// Not modelled.
    Unknown,
}

enum Cond {
    Yes,
    No,
    /// Matches traffic from these sources only.
    From(String),
    Unknown,
}

enum Flow {
    Accept(String),
    Drop(String),
    Continue,
}

/// Reads the nftables ruleset with `nft` (found on `search_path`); `None` when nft is not
/// installed. Tables of firewalld (when `skip_firewalld`), of ufw (when `skip_ufw`) and of
/// kube-proxy are left out.
pub async fn read_nftables(
    search_path: &str,
    skip_firewalld: bool,
    skip_ufw: bool,
) -> Option<Result<Ruleset, String>> {
    let nft = super::versions::find_program("nft", search_path)?;
    let nft = nft.display().to_string();
    let list = |args: &[&str]| {
        let mut argv = vec![nft.clone(), "-j".to_owned()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        async move {
            let ran = crate::facts::command::run(&argv, NFT_TIMEOUT)
                .await
                .map_err(|e| crate::model::text::error_chain(&e))?;
            if !ran.success() {
                return Err(format!("`{}` failed: {}", argv[1..].join(" "), ran.tail()));
            }
            Ok(ran.stdout)
        }
    };
    let tables = match list(&["list", "tables"]).await {
        Ok(t) => t,
        Err(e) => return Some(Err(format!("nft: {e}"))),
    };
    let mut names = Ruleset::default();
    let tables: Vec<(String, String)> = serde_json::from_str::<Value>(&tables)
        .ok()
        .and_then(|v| v.get("nftables").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.get("table"))
        .filter_map(|t| {
            Some((
                t.get("family")?.as_str()?.to_owned(),
                t.get("name")?.as_str()?.to_owned(),
            ))
        })
        .take(MAX_TABLES)
        .collect();
    for (family, name) in tables {
        if name == "kube-proxy" || (skip_firewalld && name == "firewalld") {
            continue;
        }
        let text = match list(&["list", "table", &family, &name]).await {
            Ok(t) => t,
            Err(e) => return Some(Err(format!("nft: {e}"))),
        };
        let mut table = Ruleset::default();
        if let Err(e) = table.add(&text) {
            return Some(Err(format!("nft table {family} {name}: {e}")));
        }
        let ufw_owned = table.chains.keys().any(|(_, _, c)| c.starts_with("ufw"));
        if skip_ufw && ufw_owned {
            continue;
        }
        names.chains.extend(table.chains);
        names.sets.extend(table.sets);
    }
    Some(Ok(names))
}

/// Reads firewalld's and ufw's state (files) and the nftables ruleset (`nft`): each that is
/// active. `interface`: the default route's; `ipv6`: the node IP is IPv6.
pub async fn read(
    host_root: &Path,
    proc_root: &Path,
    search_path: &str,
    interface: Option<&str>,
    ipv6: bool,
) -> Seen {
    let mut seen = Vec::new();
    let firewalld = super::ulimits::processes_named(proc_root, &["firewalld"])[0]
        .1
        .is_some();
    if firewalld {
        seen.push(firewalld_zone(host_root, interface).map(Firewall::Firewalld));
    }
    let ufw = read_ufw(host_root, ipv6);
    let ufw_on = ufw.is_some();
    seen.extend(ufw.map(|u| u.map(Firewall::Ufw)));
    match read_nftables(search_path, firewalld, ufw_on).await {
        Some(Ok(rules)) if rules.filters(ipv6) => seen.push(Ok(Firewall::Nftables(rules))),
        Some(Err(e)) => seen.push(Err(e)),
        _ => {}
    }
    seen
}

impl Firewall {
    fn name(&self) -> String {
        match self {
            Firewall::Firewalld(z) => {
                format!("firewalld (zone {}, permanent configuration)", z.name)
            }
            Firewall::Ufw(_) => "ufw".to_owned(),
            Firewall::Nftables(_) => "nftables".to_owned(),
        }
    }

    fn verdict(&self, n: &Need, ipv6: bool) -> Verdict {
        match self {
            Firewall::Firewalld(z) => {
                if z.accept_all {
                    return Verdict::Open(format!("zone {} has target ACCEPT", z.name));
                }
                match z.open.iter().find(|o| o.covers(n.port, n.proto)) {
                    Some(o) => Verdict::Open(o.how.clone()),
                    None => Verdict::Closed(format!("not opened in zone {}", z.name)),
                }
            }
            Firewall::Ufw(u) => u.verdict(n.port, n.proto),
            Firewall::Nftables(r) => r.verdict(n.port, n.proto, ipv6),
        }
    }

    fn fix(&self, n: &Need) -> String {
        let (port, proto) = (n.port, n.proto.as_str());
        match self {
            Firewall::Firewalld(z) => {
                let zone = z.name.split(',').next().unwrap_or("public");
                format!(
                    "firewall-cmd --permanent --zone={zone} --add-port={port}/{proto} && firewall-cmd --reload"
                )
            }
            Firewall::Ufw(_) => format!("ufw allow {port}/{proto}"),
            Firewall::Nftables(_) => format!(
                "nft insert rule <family> <table> <input chain> {proto} dport {port} accept (and the same in the ruleset file that loads at boot, e.g. /etc/nftables.conf)"
            ),
        }
    }
}

/// The check: every active firewall lets in what `needs` lists.
pub fn check(seen: &Seen, cni: Option<&(Cni, String)>, needs: &[Need], ipv6: bool) -> Outcome {
    let cni_text = match cni {
        Some((c, file)) => format!("{c} ({file})"),
        None => "no CNI config yet".to_owned(),
    };
    if seen.is_empty() {
        return ok(format!(
            "no host firewall active (firewalld, ufw, nftables); {cni_text}"
        ));
    }
    let mut evidence = Vec::new();
    let (mut blocked, mut warned, mut fixes) = (Vec::new(), Vec::new(), Vec::new());
    for fw in seen {
        let fw = match fw {
            Ok(fw) => fw,
            Err(e) => {
                warned.push(format!("cannot read a firewall: {e}"));
                continue;
            }
        };
        let mut opened = Vec::new();
        for n in needs {
            match fw.verdict(n, ipv6) {
                Verdict::Open(how) => opened.push(format!("{n} open by {how}")),
                Verdict::Closed(why) => {
                    let line = format!("{}: {n} closed ({why})", fw.name());
                    if n.required {
                        blocked.push(line);
                    } else {
                        warned.push(line);
                    }
                    fixes.push(fw.fix(n));
                }
            }
        }
        evidence.push(format!(
            "{}: {}",
            fw.name(),
            if opened.is_empty() {
                "nothing needed open".to_owned()
            } else {
                opened.join(", ")
            }
        ));
    }
    let summary = format!("{cni_text}; {}", evidence.join("; "));
    if !blocked.is_empty() {
        blocked.extend(warned);
        return fail(
            "FirewallBlocksNodePorts",
            format!("{}; {summary}", blocked.join("; ")),
            format!("open the ports: {}", fixes.join("; ")),
        );
    }
    if !warned.is_empty() {
        return warn(
            "FirewallBlocksOptionalPorts",
            format!("{}; {summary}", warned.join("; ")),
            if fixes.is_empty() {
                "run status as root so that it can read the firewall (nft needs CAP_NET_ADMIN)"
                    .to_owned()
            } else {
                format!(
                    "open the ports where the CNI uses them: {}",
                    fixes.join("; ")
                )
            },
        );
    }
    ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn cilium() -> Option<(Cni, String)> {
        Some((Cni::Cilium, "05-cilium.conflist".into()))
    }

    fn verdicts(seen: &Seen) -> Outcome {
        check(
            seen,
            cilium().as_ref(),
            &needs(Some(&Cni::Cilium), false),
            false,
        )
    }

    const PUBLIC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<zone>
  <short>Public</short>
  <service name="ssh"/>
  <service name="kubelet-worker"/>
  PORTS
  <rule family="ipv4">
    <source address="10.0.0.0/8"/>
    <port port="4240" protocol="tcp"/>
    <accept/>
  </rule>
  <rule family="ipv4">
    <port port="5555" protocol="tcp"/>
    <drop/>
  </rule>
</zone>
"#;

    fn firewalld_host(ports: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "etc/firewalld/firewalld.conf",
            "# comment\nDefaultZone=public\n",
        );
        write(
            d.path(),
            "usr/lib/firewalld/zones/public.xml",
            &PUBLIC.replace("PORTS", ports),
        );
        write(
            d.path(),
            "usr/lib/firewalld/services/ssh.xml",
            r#"<service><short>SSH</short><port protocol="tcp" port="22"/></service>"#,
        );
        write(
            d.path(),
            "usr/lib/firewalld/services/kubelet-worker.xml",
            r#"<service><include service="kubelet"/><port protocol="tcp" port="30000-32767"/></service>"#,
        );
        write(
            d.path(),
            "etc/firewalld/services/kubelet.xml",
            r#"<service><port protocol="tcp" port="10250"/></service>"#,
        );
        d
    }

    #[test]
    fn firewalld_zone_ports_services_includes_and_rich_rules() {
        let d = firewalld_host(r#"<port port="8472" protocol="udp"/>"#);
        let zone = firewalld_zone(d.path(), Some("eth0")).unwrap();
        assert_eq!(zone.name, "public, the default zone");
        let o = verdicts(&vec![Ok(Firewall::Firewalld(zone))]);
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(
            o.evidence.contains(
                "10250/tcp (kubelet) open by service kubelet (/etc/firewalld/services/kubelet.xml)"
            ),
            "{o:?}"
        );
        assert!(
            o.evidence
                .contains("4240/tcp (Cilium health) open by rich rule of zone public"),
            "{o:?}"
        );
        assert!(o.evidence.contains("from 10.0.0.0/8"), "{o:?}");

        // Without the VXLAN port: the overlay is blocked.
        let d = firewalld_host("");
        let o = verdicts(&vec![Ok(Firewall::Firewalld(
            firewalld_zone(d.path(), None).unwrap(),
        ))]);
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Fail, "FirewallBlocksNodePorts"),
            "{o:?}"
        );
        assert!(
            o.evidence
                .contains("8472/udp (Cilium VXLAN overlay) closed"),
            "{o:?}"
        );
        assert!(
            o.fix
                .contains("firewall-cmd --permanent --zone=public --add-port=8472/udp"),
            "{o:?}"
        );

        // The interface's own zone wins over the default; trusted accepts everything.
        write(
            d.path(),
            "etc/firewalld/zones/trusted.xml",
            r#"<zone target="ACCEPT"><interface name="eth0"/></zone>"#,
        );
        let zone = firewalld_zone(d.path(), Some("eth0")).unwrap();
        assert_eq!(zone.name, "trusted, bound to eth0");
        assert_eq!(
            verdicts(&vec![Ok(Firewall::Firewalld(zone))]).status,
            Status::Ok
        );
        write(
            d.path(),
            "usr/lib/firewalld/zones/public.xml",
            "<zone><service name=\"missing\"/></zone>",
        );
        assert!(
            firewalld_zone(d.path(), None)
                .unwrap_err()
                .contains("missing")
        );
    }

    #[test]
    fn ufw_first_match_then_default_policy() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_ufw(d.path(), false).is_none());
        write(
            d.path(),
            "etc/ufw/ufw.conf",
            "# /etc/ufw/ufw.conf\nENABLED=no\n",
        );
        assert!(read_ufw(d.path(), false).is_none());
        write(d.path(), "etc/ufw/ufw.conf", "ENABLED=yes\nLOGLEVEL=low\n");
        write(
            d.path(),
            "etc/default/ufw",
            "IPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\n",
        );
        write(
            d.path(),
            "etc/ufw/user.rules",
            "*filter\n### RULES ###\n\
             ### tuple ### allow any 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in\n\
             -A ufw-user-input -p tcp --dport 22 -j ACCEPT\n\
             ### tuple ### deny udp 8472 0.0.0.0/0 any 192.168.9.0/24 in\n\
             ### tuple ### allow udp 8472 0.0.0.0/0 any 10.0.0.0/8 in comment=76786c616e\n\
             ### tuple ### allow tcp 10250,4240 0.0.0.0/0 any 0.0.0.0/0 in\n\
             ### tuple ### route:allow any any 0.0.0.0/0 any 0.0.0.0/0 in_cilium_host\n\
             ### END RULES ###\nCOMMIT\n",
        );
        let ufw = read_ufw(d.path(), false).unwrap().unwrap();
        assert_eq!(ufw.rules.len(), 4, "{ufw:?}");
        let o = verdicts(&vec![Ok(Firewall::Ufw(ufw))]);
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(o.evidence.contains("8472/udp (Cilium VXLAN overlay) open by ufw rule `allow udp 8472 0.0.0.0/0 any 10.0.0.0/8 in comment=76786c616e` from 10.0.0.0/8"), "{o:?}");

        write(
            d.path(),
            "etc/ufw/user.rules",
            "### tuple ### deny tcp 10250 0.0.0.0/0 any 0.0.0.0/0 in\n### tuple ### allow any any 0.0.0.0/0 any 0.0.0.0/0 in\n",
        );
        let o = verdicts(&vec![Ok(Firewall::Ufw(
            read_ufw(d.path(), false).unwrap().unwrap(),
        ))]);
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(
            o.evidence
                .contains("ufw: 10250/tcp (kubelet) closed (ufw rule `deny tcp 10250"),
            "{o:?}"
        );
        assert!(o.fix.contains("ufw allow 10250/tcp"), "{o:?}");
        // Only the health port left to the default policy: a warning.
        write(
            d.path(),
            "etc/ufw/user.rules",
            "### tuple ### allow tcp 10250 0.0.0.0/0 any 0.0.0.0/0 in\n### tuple ### allow udp 8472 0.0.0.0/0 any 0.0.0.0/0 in\n",
        );
        let o = verdicts(&vec![Ok(Firewall::Ufw(
            read_ufw(d.path(), false).unwrap().unwrap(),
        ))]);
        assert_eq!(
            (o.status, o.reason.as_str()),
            (Status::Warn, "FirewallBlocksOptionalPorts"),
            "{o:?}"
        );
        assert!(o.evidence.contains("4240/tcp (Cilium health) closed (no ufw rule in /etc/ufw/user.rules; default input policy DROP)"), "{o:?}");
    }

    /// `nft -j list table inet filter` of a ruleset as nft 1.0.6 prints it.
    const NFT: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "filter", "handle": 1}},
{"set": {"family": "inet", "name": "allowed", "table": "filter", "type": "inet_service", "handle": 3, "elem": [4240, 5473]}},
{"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
{"chain": {"family": "inet", "table": "filter", "name": "overlay", "handle": 2}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 10250]}}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 10, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"range": [30000, 32767]}}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 11, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 179}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 12, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@allowed"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 13, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": OVERLAY}}, {"jump": {"target": "overlay"}}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 14, "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "overlay", "handle": 15, "expr": [{"accept": null}]}}
]}"#;

    fn ruleset(overlay: u16) -> Ruleset {
        let mut r = Ruleset::default();
        r.add(&NFT.replace("OVERLAY", &overlay.to_string()))
            .unwrap();
        r
    }

    #[test]
    fn nftables_input_chains_are_evaluated_rule_by_rule() {
        let r = ruleset(8472);
        assert!(r.filters(false));
        // inet chains see IPv6 too.
        assert!(r.filters(true));
        let at = |port, proto| r.verdict(port, proto, false);
        assert_eq!(
            at(10250, Proto::Tcp),
            Verdict::Open("rule 4 of chain inet filter input".into())
        );
        assert_eq!(
            at(8472, Proto::Udp),
            Verdict::Open("rule 1 of chain inet filter overlay".into())
        );
        assert_eq!(
            at(5473, Proto::Tcp),
            Verdict::Open("rule 7 of chain inet filter input".into())
        );
        assert_eq!(
            at(179, Proto::Tcp),
            Verdict::Open("rule 6 of chain inet filter input from 10.0.0.0/8".into())
        );
        assert_eq!(
            at(10250, Proto::Udp),
            Verdict::Closed("rule 9 of chain inet filter input".into())
        );
        assert_eq!(
            at(4789, Proto::Udp),
            Verdict::Closed("rule 9 of chain inet filter input".into())
        );
        let o = verdicts(&vec![Ok(Firewall::Nftables(r))]);
        assert_eq!(o.status, Status::Ok, "{o:?}");

        // Calico's VXLAN port is not the one this ruleset opens.
        let calico = needs(Some(&Cni::Calico), false);
        let o = check(
            &vec![Ok(Firewall::Nftables(ruleset(8472)))],
            Some(&(Cni::Calico, "10-calico.conflist".into())),
            &calico,
            false,
        );
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert!(o.evidence.contains("nftables: 4789/udp (Calico VXLAN overlay) closed (rule 9 of chain inet filter input)"), "{o:?}");
        assert!(o.fix.contains("udp dport 4789 accept"), "{o:?}");

        // A policy-accept chain without drops is no firewall.
        let mut open = Ruleset::default();
        open.add(r#"{"nftables": [{"chain": {"family": "ip", "table": "t", "name": "in", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}]}"#).unwrap();
        assert!(!open.filters(false));
        assert!(Ruleset::default().add("{\"nftables\": 3}").is_err());
    }

    /// Verdict maps as `nft -j` prints them: on `ct state`, on a port, and a named map.
    #[test]
    fn nftables_verdict_maps() {
        let mut r = Ruleset::default();
        r.add(r#"{"nftables": [
{"map": {"family": "inet", "name": "ports", "table": "f", "type": "inet_service", "handle": 2, "map": "verdict", "elem": [[4240, {"accept": null}], [9999, {"drop": null}]]}},
{"chain": {"family": "inet", "table": "f", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
{"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 4, "expr": [{"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["invalid", {"drop": null}], ["established", {"accept": null}], ["related", {"accept": null}]]}}}]}},
{"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 6, "expr": [{"vmap": {"key": {"payload": {"protocol": "udp", "field": "dport"}}, "data": {"set": [[4789, {"drop": null}], [8472, {"accept": null}]]}}}]}},
{"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 7, "expr": [{"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": "@ports"}}]}}
]}"#).unwrap();
        let at = |port, proto| r.verdict(port, proto, false);
        assert_eq!(
            at(8472, Proto::Udp),
            Verdict::Open("rule 2 of chain inet f input".into())
        );
        assert_eq!(
            at(4789, Proto::Udp),
            Verdict::Closed("rule 2 of chain inet f input".into())
        );
        assert_eq!(
            at(4240, Proto::Tcp),
            Verdict::Open("rule 3 of chain inet f input".into())
        );
        assert_eq!(
            at(9999, Proto::Tcp),
            Verdict::Closed("rule 3 of chain inet f input".into())
        );
        assert_eq!(
            at(10250, Proto::Tcp),
            Verdict::Closed("policy drop of chain inet f input".into())
        );
    }

    #[test]
    fn needs_follow_the_cni() {
        let ports = |c: Option<&Cni>, g| {
            needs(c, g)
                .iter()
                .map(|n| (n.port, n.required))
                .collect::<Vec<_>>()
        };
        assert_eq!(ports(None, false), [(10250, true)]);
        assert_eq!(ports(Some(&Cni::VpcCni), false), [(10250, true)]);
        assert_eq!(
            ports(Some(&Cni::Cilium), false),
            [(10250, true), (8472, true), (4240, false)]
        );
        assert_eq!(
            ports(Some(&Cni::Cilium), true),
            [(10250, true), (6081, true), (4240, false)]
        );
        assert_eq!(
            ports(Some(&Cni::Calico), false),
            [(10250, true), (4789, true), (179, false), (5473, false)]
        );
        let o = check(&Vec::new(), None, &needs(None, false), false);
        assert_eq!(o.status, Status::Ok);
        assert!(o.evidence.starts_with("no host firewall active"), "{o:?}");
    }
}
