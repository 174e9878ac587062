//! Master's SQLite stores on a disk that fills up, and on a read-only one (a small tmpfs the test
//! mounts; root only): calls are refused with a reason a person can act on while the audit trail
//! cannot be written, `/health` says why, nothing is half written, and when space returns every
//! call — the refused ones too — has its row and the store passes SQLite's integrity check.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use mcp_runtime::{ConfigDoc, ShutdownToken};
use mcp_test_support::{client, tool};
use serde_json::{Value, json};

/// A tmpfs of `size` mounted at `at`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_owned()))
    }

    fn remount(&self, mode: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(s.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `filler` until it is full.
fn fill(filler: &Path) {
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).and_then(|()| f.sync_data()).is_ok() {}
}

fn rows(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)))
        .unwrap_or(-1)
}

async fn start(audit: &Path) -> Result<TestService, mcp_runtime::RuntimeError> {
    let text = format!(
        "[master]\nseed_env = false\naudit_db = {:?}\n",
        audit.display().to_string()
    );
    let doc = ConfigDoc::from_str(&text, "test master config").unwrap();
    let shutdown = ShutdownToken::new();
    let running =
        mcp_runtime::start::<mcp_master::Master>(&doc, server_config(), shutdown.clone()).await?;
    Ok(TestService {
        running: Some(running),
        shutdown,
        dir: tempfile::tempdir().unwrap(),
    })
}

/// A 2 MB tmpfs for master's stores and the audit database's path on it; `None` (skipped, or a
/// failure when required) where mounting is not allowed.
fn store() -> Option<(tempfile::TempDir, Tmpfs, PathBuf)> {
    let outer = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&outer.path().join("store"), "2m") else {
        skip("mounting a tmpfs needs root");
        return None;
    };
    let db = disk.0.join("audit.sqlite");
    Some((outer, disk, db))
}

/// `mcp_audit_rows_total{source="call",outcome=...}` on master's `/metrics`.
async fn call_rows(master: &TestService, outcome: &str) -> f64 {
    let text = mcp_test_support::metrics(&master.url("/metrics")).await;
    let want = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| {
            l.starts_with("mcp_audit_rows_total{")
                && l.contains(&want)
                && l.contains("source=\"call\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn health_of(master: &TestService) -> Value {
    reqwest::get(master.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_calls_with_why_and_loses_no_audit_row() {
    let Some((_outer, disk, db)) = store() else {
        return;
    };
    let master = start(&db).await.unwrap();
    let c = client(&master.url("/mcp"), None).await;
    let mut calls = 0;
    for _ in 0..5 {
        let r = tool(&c, "master_hello_world", json!({})).await;
        assert_ne!(r.is_error, Some(true));
        calls += 1;
    }

    let filler = disk.0.join("filler");
    fill(&filler);
    // The first call after the disk filled still runs (nothing has failed yet); once a write has
    // failed, calls are refused and say why.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusal = loop {
        let r = tool(&c, "master_hello_world", json!({})).await;
        calls += 1;
        if r.is_error == Some(true) {
            break text_of(&r);
        }
        assert!(
            Instant::now() < deadline,
            "calls still run with a full disk"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refusal.contains("master cannot write its audit trail")
            && refusal.contains("full")
            && refusal.contains("free space"),
        "{refusal}"
    );
    let health = health_of(&master).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["checks"]["audit"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be written"),
        "{health}"
    );
    for _ in 0..3 {
        let r = tool(&c, "master_hello_world", json!({})).await;
        calls += 1;
        assert_eq!(r.is_error, Some(true));
    }
    // The alert on `failed` rows (monitoring/prometheus/slo.yml) sees the outage; nothing is lost.
    assert!(call_rows(&master, "failed").await >= 1.0);
    assert_eq!(call_rows(&master, "lost").await, 0.0);

    // Space returns: calls run again, and every call has its row.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = tool(&c, "master_hello_world", json!({})).await;
        calls += 1;
        if r.is_error != Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calls still refused after space returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows(&db) != calls {
        assert!(
            Instant::now() < deadline,
            "{} audit rows for {calls} calls",
            rows(&db)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = health_of(&master).await;
    assert!(health["checks"].get("audit").is_none(), "{health}");
    assert_eq!(call_rows(&master, "written").await, calls as f64);
    drop(c);
    drop(master);
    let check: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_stops_master_at_start_with_the_path() {
    let Some((_outer, disk, db)) = store() else {
        return;
    };
    // A store written before (by an earlier master), then the disk turned read-only.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE earlier(x INTEGER);")
        .unwrap();
    disk.remount("ro");
    let e = match start(&db).await {
        Ok(_) => panic!("master started on a read-only audit store"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(&db.display().to_string()) && e.contains("readonly"),
        "{e}"
    );
    disk.remount("rw");
    drop(start(&db).await.unwrap());
}
