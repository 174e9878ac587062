//! The `mcp-secrets` binary: the secrets service alone on its port (8013 by default).

fn main() -> std::process::ExitCode {
    mcp_runtime::main_for::<mcp_secrets::Secrets>()
}
