//! Link settings of the release binary.
//!
//! 1. Code layout. `link/symbol-order.txt` lists the functions that `run` (start-up, every
//!    check, scrapes) and `token` execute, and the linker places them together at the start
//!    of `.text`. The kernel maps a binary's code in 64 KiB blocks around each page fault, so
//!    the same few hundred KiB of code spread over 12 MiB of `.text` kept about 6.5 MiB of it
//!    resident in the daemon. The list comes from `scripts/order-file.sh`. A name missing from
//!    the binary is skipped, so a stale list only costs layout, never correctness. It is
//!    used where the linker is LLD, which is rustc's default on x86_64 Linux.
//! 2. Stripping. The profile keeps symbols, and this script strips through the linker instead.
//!    Symbol names depend on the profile, so the profiling build has to use the very profile
//!    that ships. `EKS_NODE_AGENT_KEEP_SYMBOLS=1` keeps the symbols for
//!    `scripts/order-file.sh`.

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=link/symbol-order.txt");
    println!("cargo::rerun-if-env-changed=EKS_NODE_AGENT_KEEP_SYMBOLS");
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let lld_default = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/symbol-order.txt");
    if lld_default && order.is_file() {
        println!(
            "cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if var("EKS_NODE_AGENT_KEEP_SYMBOLS") != "1" {
        println!("cargo::rustc-link-arg-bins=-Wl,--strip-all");
    }
}
