//! /dev/kmsg records (`prio,seq,usec,flags;message` plus continuation lines) through the
//! record parser, the problem classifier the kernel check uses and the NVIDIA XID reader.
#![no_main]

use eks_node_agent::checks::kernel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let record = String::from_utf8_lossy(data);
    if let Some(message) = kernel::kmsg_message(&record) {
        let _ = kernel::classify(message);
        let _ = kernel::parse_xid(message);
    }
    let _ = kernel::classify(&record);
});
