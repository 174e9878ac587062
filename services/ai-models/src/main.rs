//! The `mcp-ai-models` binary: the ai-models service alone on its port (8016 by default).

fn main() -> std::process::ExitCode {
    mcp_runtime::main_for::<mcp_ai_models::AiModels>()
}
