//! The restore drill of docs/operations.md on the real stack: workflow runs and calls under way,
//! `mcp-stack backup`, the data directory wiped, `mcp-stack restore`, the stack started again —
//! every run completed and every audit row written before the backup is back, the stores pass
//! SQLite's integrity check, and the runs that were in flight resume. A running stack's data
//! cannot be restored over, nor served by a second stack.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Ports, Stack};
use mcp_test_support::{client, structured, tool};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

const RUNS: usize = 100;

/// `mcp-stack <args>` in `cwd`, as an operator runs it beside (or instead of) the stack.
fn stack_command(cwd: &Path, args: &[&str]) -> Output {
    Ports::free()
        .command(cwd)
        .args(args)
        .output()
        .expect("run mcp-stack")
}

fn read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn ids(conn: &Connection, sql: &str) -> BTreeSet<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn integrity_ok(path: &Path) {
    let conn = Connection::open(path).unwrap();
    let answer: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(answer, "ok", "{}", path.display());
}

/// A two-step ad-hoc workflow over the CMDB (read-only steps: resumable after a crash).
fn definition(i: usize) -> Value {
    json!({
        "name": format!("drill-{i}"),
        "steps": [
            {"id": "host", "service": "cmdb", "tool": "getHost", "params": {"name": "aicrusher"}},
            {"id": "search", "service": "cmdb", "tool": "searchHosts", "needs": ["host"],
             "params": {"query": "ai"}}
        ]
    })
}

#[test]
fn restore_drill_backup_under_load_wipe_restore_resume() {
    let cwd = tempfile::tempdir().unwrap();
    let d = cwd.path();
    let stack = Stack::start(d, &[]);
    let url = stack.ports.master_url("/mcp");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = d.join("data");
    let backup_dir = d.join("backup-1");

    let (before_runs, before_audit, started) = rt.block_on(async {
        let c = Arc::new(client(&url, None).await);
        let stop = Arc::new(AtomicBool::new(false));
        // Calls under way the whole time: CMDB lookups and secret listings through master.
        let mut load = Vec::new();
        for n in 0..4 {
            let (c, stop) = (c.clone(), stop.clone());
            load.push(tokio::spawn(async move {
                let mut made = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = if n % 2 == 0 {
                        tool(&c, "cmdb_getHost", json!({"name": "aicrusher"})).await
                    } else {
                        tool(&c, "secrets_listSecrets", json!({})).await
                    };
                    assert_ne!(r.is_error, Some(true), "{r:?}");
                    made += 1;
                }
                made
            }));
        }
        // 100 runs started, without waiting for them.
        let mut started = Vec::new();
        for i in 0..RUNS {
            let r = tool(
                &c,
                "orchestrator_executeWorkflow",
                json!({"definition": definition(i), "wait": false}),
            )
            .await;
            assert_ne!(r.is_error, Some(true), "{r:?}");
            started.push(structured(&r)["run_id"].as_str().unwrap().to_owned());
        }
        let stores = read_only(&data.join("master/workflows.sqlite"));
        let before_runs = ids(
            &stores,
            "SELECT run_id FROM runs WHERE status = 'completed'",
        );
        let audit = read_only(&data.join("master/audit.sqlite"));
        let before_audit = ids(&audit, "SELECT CAST(id AS TEXT) FROM audit");
        drop((stores, audit));
        assert!(!before_runs.is_empty() && !before_audit.is_empty());
        let out = tokio::task::spawn_blocking({
            let (d, b) = (d.to_owned(), backup_dir.clone());
            move || stack_command(&d, &["backup", b.to_str().unwrap()])
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout);
        for item in [
            "master/audit:",
            "master/workflows:",
            "master/approvals:",
            "secrets/keepass-demo:",
            "secrets/audit:",
            "backup complete in",
        ] {
            assert!(printed.contains(item), "{item} in {printed}");
        }
        stop.store(true, Ordering::Relaxed);
        let mut calls = 0;
        for l in load {
            calls += l.await.unwrap();
        }
        assert!(calls > 0);
        (before_runs, before_audit, started)
    });

    // While the stack runs, its data cannot be restored over, nor served by a second stack.
    let refused = stack_command(d, &["restore", backup_dir.to_str().unwrap(), "--replace"]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && why.contains("is running on this data"),
        "{why}"
    );
    let second = Ports::free().command(d).output().unwrap();
    assert!(
        !second.status.success()
            && String::from_utf8_lossy(&second.stderr).contains("is running on this data"),
        "a second stack on the same data: {}",
        String::from_utf8_lossy(&second.stderr)
    );

    // Disaster: the stack is gone and so is its data directory.
    drop(stack);
    std::fs::remove_dir_all(&data).unwrap();
    // A damaged backup restores nothing.
    let damaged = d.join("backup-damaged");
    copy_dir(&backup_dir, &damaged);
    let audit_copy = damaged.join("master/audit");
    let mut bytes = std::fs::read(&audit_copy).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&audit_copy, bytes).unwrap();
    let out = stack_command(d, &["restore", damaged.to_str().unwrap()]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("does not match its checksum"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.join("master/audit.sqlite").exists());

    let out = stack_command(d, &["restore", backup_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for store in ["audit", "workflows", "approvals", "pins"] {
        integrity_ok(&data.join(format!("master/{store}.sqlite")));
    }
    {
        let runs = read_only(&data.join("master/workflows.sqlite"));
        let restored = ids(&runs, "SELECT run_id FROM runs WHERE status = 'completed'");
        let missing: Vec<_> = before_runs.difference(&restored).collect();
        assert!(missing.is_empty(), "completed runs lost: {missing:?}");
        let audit = read_only(&data.join("master/audit.sqlite"));
        let rows = ids(&audit, "SELECT CAST(id AS TEXT) FROM audit");
        let missing: Vec<_> = before_audit.difference(&rows).collect();
        assert!(missing.is_empty(), "audit rows lost: {missing:?}");
    }
    // A second restore over the restored data needs --replace.
    let out = stack_command(d, &["restore", backup_dir.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pass --replace"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Start again: the restored runs are served, those in flight at the backup finish, and the
    // KeePass database opens with the password that stayed in secrets/.
    let stack = Stack::start(d, &[]);
    let url = stack.ports.master_url("/mcp");
    rt.block_on(async {
        let c = client(&url, None).await;
        let in_backup: BTreeSet<String> = ids(
            &read_only(&backup_dir.join("master/workflows")),
            "SELECT run_id FROM runs",
        );
        assert!(in_backup.len() >= before_runs.len());
        eprintln!(
            "drill: {} runs completed and {} audit rows before the backup; {} runs in it, {} of them not yet completed",
            before_runs.len(),
            before_audit.len(),
            in_backup.len(),
            in_backup.difference(&before_runs).count()
        );
        for run in &before_runs {
            let r = tool(&c, "orchestrator_getWorkflow", json!({"run_id": run})).await;
            assert_eq!(structured(&r)["status"], "completed", "{run}: {r:?}");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        for run in &in_backup {
            loop {
                let r = tool(&c, "orchestrator_getWorkflow", json!({"run_id": run})).await;
                let status = structured(&r)["status"].as_str().unwrap_or("").to_owned();
                if status == "completed" {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{run} did not resume: {status}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        // Runs started after the backup are not there (the backup is a point in time).
        let after: Vec<_> = started.iter().filter(|r| !in_backup.contains(*r)).collect();
        if let Some(run) = after.first() {
            let r = tool(&c, "orchestrator_getWorkflow", json!({"run_id": run})).await;
            assert_eq!(r.is_error, Some(true), "{r:?}");
        }
        let r = tool(&c, "secrets_listSecrets", json!({})).await;
        assert_ne!(r.is_error, Some(true), "{r:?}");
        let r = tool(&c, "cmdb_getHost", json!({"name": "aicrusher"})).await;
        assert_ne!(r.is_error, Some(true), "{r:?}");
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
