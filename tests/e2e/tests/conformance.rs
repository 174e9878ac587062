//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned) against the
//! conformance fixture served by mcp-runtime. Needs `npx`; Node 22 is fetched as `node@22`.

mod common;

use common::*;

/// The pinned suite version; bump deliberately and re-check the expected failures.
const SUITE: &str = "@modelcontextprotocol/conformance@0.1.16";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_conformance_suite_passes_against_the_runtime() {
    if !npx_available() {
        skip("npx (Node.js) is not installed; the MCP conformance suite cannot run");
        return;
    }
    let svc = start_fixture().await;
    let work = tempfile::tempdir().unwrap();
    let baseline = crate_dir().join("conformance/expected-failures.yaml");
    let out = tokio::process::Command::new("npx")
        .args([
            "-y",
            "-p",
            "node@22",
            "-p",
            SUITE,
            "conformance",
            "server",
            "--url",
        ])
        .arg(svc.url("/mcp"))
        .args(["--suite", "all", "--expected-failures"])
        .arg(&baseline)
        .current_dir(work.path())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run npx");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .split("=== SUMMARY ===")
        .nth(1)
        .unwrap_or(&stdout)
        .to_owned();
    eprintln!("{summary}");
    assert!(
        out.status.success(),
        "conformance suite failed (exit {:?}):\n{summary}\n{stderr}",
        out.status.code()
    );
    // The run must really have exercised the server, not exited early.
    let passed = summary
        .lines()
        .find_map(|l| l.strip_prefix("Total: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed >= 40, "only {passed} checks passed:\n{summary}");
}
