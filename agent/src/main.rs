//! Thin entry point; the whole command line lives in [`eks_node_agent::cli`].

fn main() -> std::process::ExitCode {
    eks_node_agent::cli::main()
}
