//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned) against the
//! conformance fixture served by mcp-runtime. Needs `npx`; Node 22 is fetched as `node@22`.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_conformance_suite_passes_against_the_runtime() {
    if !npx_available() {
        skip("npx (Node.js) is not installed; the MCP conformance suite cannot run");
        return;
    }
    let svc = start_fixture().await;
    assert_conformance_passes(&svc.url("/mcp"), "expected-failures.yaml").await;
}
