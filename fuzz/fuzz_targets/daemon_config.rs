//! `daemon.toml`: checks, severities, taints, coexistence and `[lifecycle]`, parsed and then
//! validated as `run` does at start and on SIGHUP.
#![no_main]

use eks_node_agent::daemon::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = toml::from_str::<config::ConfigFile>(text) {
        let _ = config::validate(&file, std::path::Path::new("daemon.toml"));
    }
});
