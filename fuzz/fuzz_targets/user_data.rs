//! User data as EC2 delivers it: base64, gzip, MIME multipart (nested), YAML/JSON documents,
//! decoded and then merged and validated. Errors are fine; panics, hangs and unbounded
//! memory are not.
#![no_main]

use eks_node_agent::config::{self, decode::Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(docs) = config::documents_from("imds://user-data", data, Mode::UserData) {
        let _ = config::finish(docs, &["imds://user-data".to_owned()]);
    }
});
