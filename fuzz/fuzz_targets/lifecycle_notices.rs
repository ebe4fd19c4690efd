//! The IMDS documents the lifecycle watchers poll: the spot instance action, the rebalance
//! recommendation and the scheduled maintenance events, each capped at
//! `lifecycle::events::MAX_BODY` by the reader, so longer inputs are cut as it cuts them.
#![no_main]

use eks_node_agent::lifecycle::events;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = &data[..data.len().min(events::MAX_BODY)];
    let _ = events::parse_spot(body);
    let _ = events::parse_rebalance(body);
    let _ = events::parse_scheduled(body);
});
