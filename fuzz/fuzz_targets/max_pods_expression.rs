//! `spec.kubelet.maxPodsExpression`: bounded, compiled and type-checked as `config check` does
//! it, then evaluated for an instance type as `init` does.
#![no_main]

use eks_node_agent::compute::MaxPodsExpression;
use eks_node_agent::model::{InstanceType, embedded_limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(limits) = InstanceType::parse("m5.large")
        .ok()
        .and_then(|t| embedded_limits(&t))
    else {
        return;
    };
    if let Ok(expression) = MaxPodsExpression::parse(text) {
        let _ = expression.evaluate(&limits);
    }
});
