//! The `mcp-cmdb` binary as an operator runs it: config errors exit 64, JSON logs carry the caller's
//! correlation id, SIGTERM drains and exits cleanly.

use mcp_test_support::free_port;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-cmdb");

#[test]
fn bad_config_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cmdb.toml");
    std::fs::write(&cfg, "[server]\nport = 1\nlog_levle = \"debug\"\n").unwrap();
    for (args, env, needle) in [
        (vec!["--config", cfg.to_str().unwrap()], vec![], "log_levle"),
        (vec![], vec![("MCP_SERVER_PORT", "notaport")], "port"),
        (
            vec![],
            vec![("MCP_CMDB_RELOAD_INTERVAL_MS", "\"soon\"")],
            "cmdb",
        ),
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .envs(env.clone())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?} {env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    }
}

#[test]
fn logs_carry_the_correlation_id_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("hosts.csv");
    std::fs::write(&csv, mcp_cmdb::SAMPLE_CSV).unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .env("MCP_SERVER_PORT", port.to_string())
        .env("MCP_CMDB_CSV_PATH", &csv)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/ready")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "service did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let post = |body: Value, session: Option<String>| {
            let mut rb = http
                .post(format!("{base}/mcp"))
                .header("accept", "application/json, text/event-stream")
                .header("x-correlation-id", "corr-test-42")
                .json(&body);
            if let Some(s) = session {
                rb = rb.header("mcp-session-id", s);
            }
            rb.send()
        };
        let init = post(
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
            None,
        )
        .await
        .unwrap();
        assert_eq!(init.headers()["x-correlation-id"], "corr-test-42");
        let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let _ = init.text().await;
        post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}), Some(session.clone()))
            .await
            .unwrap();
        let r = post(
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"getHost","arguments":{"name":"aicrusher"}}}),
            Some(session),
        )
        .await
        .unwrap();
        assert!(r.text().await.unwrap().contains("aicrusher"));
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    let lines: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    for l in &lines {
        for key in [
            "timestamp",
            "level",
            "service",
            "message",
            "correlation_id",
            "target",
        ] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
    let call = lines
        .iter()
        .find(|l| l["message"] == "Tool call finished.")
        .unwrap_or_else(|| panic!("no tool-call line in {lines:#?}"));
    assert_eq!(call["correlation_id"], "corr-test-42");
    assert_eq!(call["tool"], "getHost");
    assert_eq!(call["service"], "cmdb");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "Shutdown signal received; draining.")
    );
}
