//! kubeadm token discovery's inputs from an API server not yet trusted: the `cluster-info`
//! ConfigMap JSON, its detached JWS signatures and the kubeconfig inside, verified with a
//! fixed token and pin (the input decides everything else).
#![no_main]

use eks_node_agent::facts::cluster_info;
use eks_node_agent::model::{BootstrapToken, CaPin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Ok(token), Ok(pin)) = (
        BootstrapToken::parse("abcdef.0123456789abcdef"),
        CaPin::parse("sha256:04e58bf21ceff0a3df962ae3651ed69177457769f22858dcf1b0988a66dedfa2"),
    ) else {
        return;
    };
    if let Ok(config_map) = cluster_info::parse_config_map(data) {
        let _ = cluster_info::verify(&config_map, &token, &[pin], "https://fuzz:6443");
    }
    // The JWS alone: `header..signature` over the rest of the input.
    let text = String::from_utf8_lossy(data);
    if let Some((jws, payload)) = text.split_once('\n') {
        let _ = cluster_info::verify_detached_jws(jws, payload.as_bytes(), &token);
    }
});
