//! The `mcp-cmdb` binary: the CMDB service alone on its port (8012 by default).

fn main() -> std::process::ExitCode {
    mcp_runtime::main_for::<mcp_cmdb::Cmdb>()
}
