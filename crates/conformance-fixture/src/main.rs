//! The conformance fixture alone: `mcp-conformance-fixture` serves it on port 8099 (or `[server] port`).

fn main() -> std::process::ExitCode {
    mcp_runtime::main_for::<mcp_conformance_fixture::Fixture>()
}
