//! `spec.kubelet.maxPodsExpression`: bounded, compiled and type-checked as `config check` does
//! it, then evaluated for an instance type as `init` does.
#![no_main]

use eks_node_agent::compute::MaxPodsExpression;
use eks_node_agent::model::{Hypervisor, InstanceLimits};
use libfuzzer_sys::fuzz_target;

const M5_LARGE: InstanceLimits = InstanceLimits {
    default_card_max_enis: 3,
    ipv4_per_eni: 10,
    hypervisor: Hypervisor::Nitro,
    vcpus: 2,
    network_cards: 1,
    bare_metal: false,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expression) = MaxPodsExpression::parse(text) {
        let _ = expression.evaluate(&M5_LARGE);
    }
});
