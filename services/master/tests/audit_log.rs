//! The master binary's per-call record: every call has its audit row in `audit_db`; the `Audit.`
//! JSON log line is written at info only with `master.audit_log = true` (off by default, at
//! debug), while the runtime's `Tool call finished.` line stays.

use mcp_test_support::{ServiceProcess, client, free_port, tool};
use serde_json::{Value, json};

async fn run(audit_log: bool) -> (Vec<Value>, i64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "[server]\nport = {port}\n[master]\nseed_env = false\naudit_db = \"audit.sqlite\"\naudit_log = {audit_log}\n"
    );
    let master = ServiceProcess::spawn(env!("CARGO_BIN_EXE_mcp-master"), dir, port, &config).await;
    let c = client(&master.url("/mcp"), None).await;
    let r = tool(&c, "master_hello_world", json!({})).await;
    assert_ne!(r.is_error, Some(true));
    let db = master.path("audit.sqlite");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rows = loop {
        let n: i64 = rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM audit WHERE tool = 'master_hello_world'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0);
        if n > 0 || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let lines = master
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    (lines, rows)
}

#[tokio::test]
async fn audit_rows_always_audit_log_lines_only_when_asked() {
    for audit_log in [false, true] {
        let (lines, rows) = run(audit_log).await;
        assert_eq!(rows, 1, "audit_log = {audit_log}: one row for the call");
        let finished = lines
            .iter()
            .filter(|l| l["message"] == "Tool call finished." && l["tool"] == "master_hello_world")
            .count();
        assert_eq!(finished, 1, "audit_log = {audit_log}: {lines:#?}");
        let audit: Vec<&Value> = lines.iter().filter(|l| l["message"] == "Audit.").collect();
        if audit_log {
            assert_eq!(audit.len(), 1, "{lines:#?}");
            assert_eq!(audit[0]["tool"], "master_hello_world");
            assert_eq!(audit[0]["decision"], "allow");
        } else {
            assert!(audit.is_empty(), "{audit:#?}");
        }
    }
}
