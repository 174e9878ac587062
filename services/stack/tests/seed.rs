//! The seed's own tests, as the seed wrote them (`tests/seed/*.py`, Python MCP SDK), against
//! `mcp-stack` started from an empty directory with no configuration: the integration test's
//! workflow shapes complete, and the performance test's 100 concurrent `get_system_status` calls
//! all succeed.

mod common;

use std::path::Path;

use common::Stack;
use mcp_test_support::{python_mcp_available, skip};

fn run_seed(stack: &Stack, script: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/seed");
    let out = std::process::Command::new("python3")
        .arg(dir.join(script))
        .env("MCP_MASTER_URL", stack.ports.master_url("/mcp"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // The seed prints its figures; show them in the test log.
    println!("{script}:\n{stdout}");
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_seeds_integration_and_performance_tests_pass_on_the_stack() {
    if !python_mcp_available() {
        skip("the Python `mcp` SDK is not installed (pip install mcp)");
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let stack = Stack::start(cwd.path(), &[]);
    let out = run_seed(&stack, "test_integration.py");
    assert!(
        out.contains("test_workflow_execution: completed (step1=completed, step2=completed)"),
        "{out}"
    );
    assert!(
        out.contains("test_template_shape: completed (step1=completed, step2=completed)"),
        "{out}"
    );
    let out = run_seed(&stack, "test_performance.py");
    assert!(
        out.contains("100 concurrent get_system_status: success rate 100.0%"),
        "{out}"
    );
}
