//! Bodies IMDS and the host hand the agent: the instance identity document, the SSM
//! registration file, /proc/swaps.
#![no_main]

use eks_node_agent::facts::{host, imds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = imds::parse_identity_document(data);
    let text = String::from_utf8_lossy(data);
    let _ = host::parse_ssm_registration(&text);
    let _ = host::parse_swaps(&text);
    let _ = host::parse_containerd_version(&text);
});
