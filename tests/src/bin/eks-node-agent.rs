//! The agent binary, built inside the test crate so that integration tests get its path from
//! `CARGO_BIN_EXE_eks-node-agent`. Same code as `agent/src/main.rs`.

fn main() -> std::process::ExitCode {
    eks_node_agent::cli::main()
}
