//! Legacy bootstrap.sh command lines (NUL-separated arguments) through clap, the translation
//! to NodeConfig documents (one per flag, `--kubelet-extra-args` shell-split) and their
//! validation.
#![no_main]

use clap::Parser;
use eks_node_agent::config::bootstrap_flags::{self, LegacyFlags, TranslationContext};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Parser)]
struct Bootstrap {
    #[command(flatten)]
    flags: LegacyFlags,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args = std::iter::once("bootstrap").chain(text.split('\0'));
    let Ok(parsed) = Bootstrap::try_parse_from(args) else {
        return;
    };
    let ctx = TranslationContext {
        region: Some("us-west-2".into()),
        containerd_config: None,
    };
    if let Ok(translation) = bootstrap_flags::translate(&parsed.flags, &ctx) {
        let _ = translation.load();
    }
});
