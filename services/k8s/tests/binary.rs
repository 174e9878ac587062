//! The `mcp-k8s` binary as an operator runs it: a bad config value exits 64 naming the key, and
//! without a cluster `--check-config` still accepts the defaults (the service starts degraded).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-k8s");

#[test]
fn bad_config_exits_64_naming_the_key_and_defaults_check() {
    let out = Command::new(BIN)
        .env("MCP_SERVER_PORT", "notaport")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("port"));
    let out = Command::new(BIN)
        .arg("--check-config")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
