//! Crash safety of workflows: master runs as a real process, 20 workflows are mid-run when it is
//! killed with SIGKILL, and the restarted master finishes every one of them from its checkpoints.
//! The downstream (in this test process, so it outlives master) counts executions: steps that
//! completed before the crash never run again, the read-only step that was in flight runs again,
//! the non-idempotent last step runs exactly once; a non-idempotent step caught in flight waits
//! for a person (`needs_attention`). No file master wrote contains the canary secret.

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use std::path::Path;
use std::time::{Duration, Instant};

use common::get_workflow as get;
use common::*;
use mcp_test_support::ServiceProcess;
use serde_json::json;

const RUNS: usize = 20;

fn config(dir: &Path, port: u16, ledger_url: &str) -> String {
    format!(
        "[server]\nport = {port}\n[master]\nseed_env = false\naudit_db = {:?}\nhealth_interval_ms = 200\nreconnect_max_ms = 300\n[master.workflows]\ndir = {:?}\n{}",
        dir.join("audit.sqlite").display().to_string(),
        dir.join("wf").display().to_string(),
        downstream("ledger", None, "http", ledger_url)
    )
}

fn assert_no_canary(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            assert_no_canary(&p);
            continue;
        }
        let bytes = std::fs::read(&p).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(ledger::CANARY),
            "the canary secret is in {}",
            p.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_master_resumes_every_workflow_and_runs_each_side_effect_once() {
    let bin = workspace_bin("mcp-master");
    let (ledger, counts) = ledger::start_ledger("crash").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("wf")).unwrap();
    std::fs::write(
        dir.path().join("wf/crash.yaml"),
        r#"name: crash
inputs:
  n: {type: string}
steps:
  - id: cred
    service: ledger
    tool: getSecret
    params: {name: "registry"}
  - id: first
    service: ledger
    tool: record
    needs: [cred]
    params: {key: "first-{{ inputs.n }}"}
  - id: wait
    service: ledger
    tool: slow
    needs: [first]
    params: {key: "slow-{{ inputs.n }}", ms: 2500}
  - id: last
    service: ledger
    tool: record
    needs: [wait]
    params: {key: "last-{{ inputs.n }}-{{ steps.cred.result.value | length }}"}
"#,
    )
    .unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, &ledger.url("/mcp"));
    let master = ServiceProcess::spawn(bin.to_str().unwrap(), dir, port, &cfg).await;
    let c = mcp_test_support::client(&master.url("/mcp"), None).await;

    let mut ids = Vec::new();
    for n in 0..RUNS {
        let r = c
            .call_tool(call(
                "orchestrator_executeWorkflow",
                json!({"workflow": "crash", "inputs": {"n": n.to_string()}, "wait": false}),
            ))
            .await
            .unwrap();
        let doc = r.structured_content.unwrap();
        ids.push(doc["run_id"].as_str().unwrap().to_owned());
    }
    let r = c
        .call_tool(call(
            "orchestrator_executeWorkflow",
            json!({"wait": false, "definition": {"name": "held", "steps": [
                {"id": "hold", "service": "ledger", "tool": "record", "params": {"key": "hold", "ms": 60000}},
                {"id": "after", "service": "ledger", "tool": "record", "needs": ["hold"], "params": {"key": "after-hold"}}
            ]}}),
        ))
        .await
        .unwrap();
    let held = r.structured_content.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Every run is inside its slow read-only step, the held run inside its non-idempotent one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts.slow_started() < RUNS as u64 || counts.records("hold") < 1 {
        assert!(
            Instant::now() < deadline,
            "runs did not reach the slow step: {} started\n{}",
            counts.slow_started(),
            master.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(c);
    let dir = master.kill9();
    assert_no_canary(dir.path());
    for n in 0..RUNS {
        assert_eq!(counts.records(&format!("first-{n}")), 1);
        assert_eq!(
            counts.total_records(),
            RUNS as u64 + 1,
            "no last step ran before the kill"
        );
    }

    let master = ServiceProcess::spawn(bin.to_str().unwrap(), dir, port, &cfg).await;
    let c = mcp_test_support::client(&master.url("/mcp"), None).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let doc = get(&c, id).await;
            if doc["status"] == "completed" {
                break;
            }
            assert!(
                Instant::now() < deadline
                    && !["failed", "cancelled", "needs_attention"]
                        .contains(&doc["status"].as_str().unwrap_or("")),
                "run {id} did not complete after the restart: {doc}\n{}",
                master.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let len = ledger::CANARY.len();
    for n in 0..RUNS {
        assert_eq!(
            counts.records(&format!("first-{n}")),
            1,
            "first-{n} ran again"
        );
        assert_eq!(
            counts.records(&format!("last-{n}-{len}")),
            1,
            "last-{n} must run exactly once"
        );
    }
    assert!(
        counts.slow_started() >= 2 * RUNS as u64,
        "the read-only step in flight runs again"
    );
    assert!(
        master
            .log()
            .contains("Resuming workflow run after restart.")
    );

    // The held run: its non-idempotent step may have taken effect, so a person decides.
    let doc = get(&c, &held).await;
    assert_eq!(doc["status"], "needs_attention", "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("not read-only or idempotent"),
        "{doc}"
    );
    let r = c
        .call_tool(call("orchestrator_resumeWorkflow", json!({"run_id": held})))
        .await
        .unwrap();
    assert!(
        mcp_test_support::text(&r).contains("step_action"),
        "{}",
        mcp_test_support::text(&r)
    );
    let r = c
        .call_tool(call(
            "orchestrator_resumeWorkflow",
            json!({"run_id": held, "step_action": "skip"}),
        ))
        .await
        .unwrap();
    let doc = r.structured_content.unwrap();
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(counts.records("hold"), 1, "skipped, not run again");
    assert_eq!(counts.records("after-hold"), 1);

    let m = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert!(
        m.contains("mcp_workflows_total{status=\"completed\"} 21"),
        "{m}"
    );
    drop(c);
    let dir = master.kill9();
    assert_no_canary(dir.path());
}

/// Kills in the crash loop: `MCP_CRASH_LOOPS` (the long form in docs/reliability.md is 100).
fn crash_loops() -> usize {
    std::env::var("MCP_CRASH_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_killed_again_and_again_loses_no_run_and_repeats_no_side_effect() {
    let bin = workspace_bin("mcp-master");
    let (ledger, counts) = ledger::start_ledger("crash-loop").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("wf")).unwrap();
    // Two read-only steps (run again when caught in flight) and a non-idempotent one (never run
    // twice: caught in flight, the run waits for a person).
    std::fs::write(
        dir.path().join("wf/loop.yaml"),
        r#"name: loop
inputs:
  n: {type: string}
steps:
  - {id: a, service: ledger, tool: slow, params: {key: "a-{{ inputs.n }}", ms: 300}}
  - {id: b, service: ledger, tool: slow, needs: [a], params: {key: "b-{{ inputs.n }}", ms: 300}}
  - {id: c, service: ledger, tool: record, needs: [b], params: {key: "c-{{ inputs.n }}"}}
"#,
    )
    .unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port, &ledger.url("/mcp"));
    let mut master = ServiceProcess::spawn(bin.to_str().unwrap(), dir, port, &cfg).await;
    let mut ids = Vec::new();
    let loops = crash_loops();
    let started = Instant::now();
    for kill in 0..loops {
        // New runs each round, then a kill somewhere inside their steps.
        let c = mcp_test_support::client(&master.url("/mcp"), None).await;
        for _ in 0..4 {
            let n = ids.len();
            let r = c
                .call_tool(call(
                    "orchestrator_executeWorkflow",
                    json!({"workflow": "loop", "inputs": {"n": n.to_string()}, "wait": false}),
                ))
                .await
                .unwrap();
            ids.push(
                r.structured_content.unwrap()["run_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        drop(c);
        tokio::time::sleep(Duration::from_millis(200 + (kill as u64 * 137) % 500)).await;
        let dir = master.kill9();
        master = ServiceProcess::spawn(bin.to_str().unwrap(), dir, port, &cfg).await;
    }
    let killing = started.elapsed();

    // Every run ends: completed, or waiting for a person because its non-idempotent step was in
    // flight at a kill. None is lost, none failed.
    let c = mcp_test_support::client(&master.url("/mcp"), None).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut completed, mut attention) = (0, 0);
    for (n, id) in ids.iter().enumerate() {
        loop {
            let doc = get(&c, id).await;
            match doc["status"].as_str().unwrap_or("") {
                "completed" => {
                    completed += 1;
                    assert_eq!(counts.records(&format!("c-{n}")), 1, "{id}: {doc}");
                    break;
                }
                "needs_attention" => {
                    attention += 1;
                    assert!(counts.records(&format!("c-{n}")) <= 1, "{id}: {doc}");
                    break;
                }
                "running" | "pending" => {}
                other => panic!("run {id} ended {other}: {doc}\n{}", master.log()),
            }
            assert!(
                Instant::now() < deadline,
                "run {id} did not end: {doc}\n{}",
                master.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for n in 0..ids.len() {
        assert!(counts.records(&format!("c-{n}")) <= 1, "c-{n} ran twice");
    }
    drop(c);
    let dir = master.kill9();
    for store in ["audit.sqlite", "workflows.sqlite"] {
        let check: String = rusqlite::Connection::open(dir.path().join(store))
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{store}");
    }
    eprintln!(
        "crash loop: {loops} SIGKILLs in {:.1} s, {} runs: {completed} completed, {attention} waiting for a person (their non-idempotent step in flight at a kill), 0 lost, 0 side effects repeated, stores intact",
        killing.as_secs_f64(),
        ids.len()
    );
}
