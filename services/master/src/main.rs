//! The `mcp-master` binary: the gateway alone on port 8000.

fn main() -> std::process::ExitCode {
    mcp_runtime::main_for::<mcp_master::Master>()
}
