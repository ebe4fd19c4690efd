//! NodeConfig text (a config file: YAML or JSON, several documents), through parse, merge and
//! validation, and the redacted view `config show` prints.
#![no_main]

use eks_node_agent::config::{self, decode::Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(docs) = config::parse::parse_documents("file:///fuzz.yaml", "fuzz.yaml", text) {
        if let Ok(loaded) = config::finish(docs, &["file:///fuzz.yaml".to_owned()]) {
            let _ = config::redacted(&loaded.config);
        }
    }
    let _ = config::documents_from("file:///fuzz.yaml", data, Mode::File);
});
