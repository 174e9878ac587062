//! The `mcp-linux-cli` binary: the linux-cli service alone on its port (8001 by default).

fn main() -> std::process::ExitCode {
    mcp_runtime::main_for::<mcp_linux_cli::LinuxCli>()
}
