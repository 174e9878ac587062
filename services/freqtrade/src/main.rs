//! The `mcp-freqtrade` binary: the freqtrade-knowledge service alone on its port (8015 by default).

fn main() -> std::process::ExitCode {
    mcp_runtime::main_for::<mcp_freqtrade::Freqtrade>()
}
