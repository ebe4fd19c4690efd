//! Text the agent reads from the host and from the programs it runs, and the identifiers it
//! parses at the edge: /proc and /sys formats (swaps, mounts, loadavg, cpuinfo, routes, stat,
//! diskstats, meminfo, netdev, pressure, conntrack), `--version` outputs, and the model's
//! newtypes (instance types and IDs, zones, cluster and node names, regions, versions, VPC CNI
//! versions, bootstrap tokens and CA pins).
#![no_main]

use eks_node_agent::model::{self, procfs};
use eks_node_agent::report::host;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = procfs::parse_swaps(&text);
    let _ = procfs::unescape(&text);
    let _ = procfs::parse_loadavg(&text);
    let _ = procfs::count_processors(&text);
    let _ = procfs::default_route_interface(&text);
    let _ = host::conntrack::parse_conntrack_stat(&text);
    let _ = host::cpu::parse_stat(&text);
    let _ = host::diskstats::parse_diskstats(&text);
    let _ = host::filesystem::parse_mounts(&text);
    let _ = host::meminfo::parse_meminfo(&text);
    let _ = host::netdev::parse_netdev(&text);
    let _ = host::pressure::parse_pressure(&text);
    let _ = model::Version::find_in(&text);
    let _ = eks_node_agent::checks::versions::parse_kubelet_version(&text);
    let _ = eks_node_agent::checks::versions::parse_containerd_version(&text);
    for word in text.split_whitespace().take(64) {
        let _ = model::InstanceType::parse(word);
        let _ = model::InstanceId::parse(word);
        let _ = model::AvailabilityZone::parse(word);
        let _ = model::ClusterName::parse(word);
        let _ = model::NodeName::parse(word);
        let _ = model::Region::parse(word, "fuzz");
        let _ = model::Version::parse_word(word);
        let _ = model::BootstrapToken::parse(word);
        let _ = model::CaPin::parse(word);
        let _ = eks_node_agent::compute::CniVersion::parse(word);
    }
});
