//! The `mcp-k8s` binary: the k8s service alone on its port (8008 by default).

fn main() -> std::process::ExitCode {
    mcp_runtime::main_for::<mcp_k8s::K8s>()
}
