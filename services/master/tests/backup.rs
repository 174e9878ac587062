//! `mcp-master backup DIR` and `mcp-master restore DIR` (every service binary has them): an online
//! copy of master's stores while it serves, a restore refused while it runs, and after a crash
//! and a lost data directory, the audit trail back in place for the next start.

use std::path::Path;
use std::process::Output;

use mcp_test_support::{ServiceProcess, client, free_port, tool};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-master");

fn master(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn audit_rows(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[tokio::test]
async fn master_backs_up_online_and_restores_only_when_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "[server]\nport = {port}\n[master]\nseed_env = false\naudit_db = \"data/audit.sqlite\"\n"
    );
    let svc = ServiceProcess::spawn(BIN, dir, port, &config).await;
    let c = client(&svc.url("/mcp"), None).await;
    for _ in 0..5 {
        let r = tool(&c, "master_hello_world", json!({})).await;
        assert_ne!(r.is_error, Some(true));
    }
    let db = svc.path("data/audit.sqlite");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while audit_rows(&db) < 5 {
        assert!(std::time::Instant::now() < deadline, "audit rows written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let out = master(svc.dir(), &["backup", "bk"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("master/audit: 1 file(s)"), "{printed}");
    // Approvals are off (no identity key), so that store was never made.
    assert!(
        printed.contains("master/approvals: nothing yet"),
        "{printed}"
    );

    let out = master(svc.dir(), &["restore", "bk", "--replace"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("master is running on this data"),
        "{err}"
    );
    // A second master on the same files is refused too.
    let second = master(svc.dir(), &[]);
    assert!(
        !second.status.success()
            && String::from_utf8_lossy(&second.stderr).contains("is running on this data"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let dir = svc.kill9();
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let out = master(dir.path(), &["restore", "bk"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("master/audit: restored"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(audit_rows(&dir.path().join("data/audit.sqlite")), 5);
    let svc = ServiceProcess::spawn(BIN, dir, port, &config).await;
    let c = client(&svc.url("/mcp"), None).await;
    let r = tool(&c, "master_hello_world", json!({})).await;
    assert_ne!(r.is_error, Some(true));
}
