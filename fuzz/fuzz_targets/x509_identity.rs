//! IAM Roles Anywhere's inputs: the node's certificate chain and private key in PEM (RSA,
//! ECDSA P-256/P-384 in PKCS#8, PKCS#1, SEC1; split at the first NUL byte), a CA bundle as
//! `config check` reads it, and a `CreateSession` answer.
#![no_main]

use std::path::Path;

use eks_node_agent::auth::rolesanywhere::{self, X509Identity};
use eks_node_agent::config::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (cert, key) = text.split_once('\0').unwrap_or((&text, &text));
    if let Ok(identity) = X509Identity::from_pem(
        (Path::new("cert.pem"), cert),
        (Path::new("key.pem"), key),
        None,
    ) {
        let _ = identity.serial();
    }
    let _ = validate::pem_certificates(data);
    for status in [200, 403] {
        let _ = rolesanywhere::parse_response(status, None, data, "https://fuzz");
    }
});
