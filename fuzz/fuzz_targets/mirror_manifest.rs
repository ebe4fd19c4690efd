//! What a mirror serves `install --from`: manifest.json and its minisign signature (split at
//! the first NUL byte), checked against a fixed trusted key, then parsed.
#![no_main]

use std::path::PathBuf;

use eks_node_agent::install::{artifacts, signature};
use libfuzzer_sys::fuzz_target;

/// A minisign public key (any will do: the input cannot know its secret).
const KEY: &str = "RWTCtqoeNnTRgH+lS3vvXaQDJXUPBCByalCP6hED0gmKpmDROtGB5ZFI";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = minisign_verify::PublicKey::from_base64(KEY) else {
        return;
    };
    let trust = signature::Trust::from_keys(vec![(PathBuf::from("mirror.pub"), key)], false);
    let (manifest, sig) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let _ = signature::verify_manifest(manifest, sig, &trust, "manifest.json.minisig");
    let _ = artifacts::parse(manifest, "manifest.json");
});
