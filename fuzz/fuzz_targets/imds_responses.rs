//! Bodies IMDS and the host hand the agent: the instance identity document and the SSM
//! registration file (/proc/swaps and the containerd version are host_text's).
#![no_main]

use eks_node_agent::facts::{host, imds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = imds::parse_identity_document(data);
    let text = String::from_utf8_lossy(data);
    let _ = host::parse_ssm_registration(&text);
});
