//! Master's call pipeline as a user meets it: every kind of call (plain, unknown, denied, outside
//! the endpoint, discovery meta-tools, approved, workflow steps, rate-limited) leaves exactly one
//! audit row; the refusals for a missing, a denied and an out-of-view tool are byte-identical on
//! every endpoint; a down service's error reads like a sentence.

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use common::*;
use rmcp::service::ServiceError;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// The JSON-RPC error a refused call got, as the client saw it.
async fn refusal(c: &Client, name: &str, args: Value) -> Value {
    match c.call_tool(call(name, args)).await {
        Err(ServiceError::McpError(e)) => serde_json::to_value(&e).unwrap(),
        other => panic!("`{name}` was not refused: {other:?}"),
    }
}

/// Every audit row of a call so far: identity, tool, decision, status, correlation id (rows about
/// pinned definitions, `pin_*`, are master's own and not calls).
fn audit_rows(db: &std::path::Path) -> Vec<[String; 5]> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT identity, tool, decision, status, correlation_id FROM audit WHERE decision NOT LIKE 'pin\\_%' ESCAPE '\\' ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The rows up to and including the sentinel call's row: the writer is one FIFO thread, so once
/// the sentinel is in, every earlier call's row is too, and a stray extra row would show.
async fn rows_until_sentinel(db: &std::path::Path, sentinel: &str) -> Vec<[String; 5]> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = audit_rows(db);
        if let Some(i) = rows.iter().position(|r| r[1] == sentinel) {
            assert_eq!(i + 1, rows.len(), "rows after the sentinel: {rows:#?}");
            return rows[..i].to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "sentinel never audited: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_kind_leaves_exactly_one_audit_row_and_refusals_are_identical() {
    let (ledger, counts) = ledger::start_ledger("pipeline").await;
    let master = start_keyed_master(
        &[
            ("alice", &["approver"], "alice-tok"),
            ("bob", &["approver"], "bob-tok"),
            ("carol", &[], "carol-tok"),
        ],
        &format!(
            "{}\n[[master.toolset]]\nname = \"ledgers\"\nnamespaces = [\"ledger\"]\n\
             [master.policy]\ndefault_action = \"allow\"\n\
             [[master.policy.rule]]\ntools = [\"ledger_slow\"]\nidentities = [\"carol\"]\naction = \"deny\"\n\
             [[master.policy.rule]]\ntools = [\"ledger_fail\"]\naction = \"approve\"\n\
             [master.rate_limit]\n[[master.rate_limit.tool]]\ntools = [\"master_hello_world\"]\nper_minute = 1\n",
            downstream("ledger", None, "http", &ledger.url("/mcp"))
        ),
    )
    .await;
    let db = master.path("audit.sqlite");
    let alice = mcp_test_support::client(&master.url("/mcp"), Some("alice-tok")).await;
    let bob = mcp_test_support::client(&master.url("/mcp"), Some("bob-tok")).await;
    let carol = mcp_test_support::client(&master.url("/mcp"), Some("carol-tok")).await;
    let alice_set = mcp_test_support::client(&master.url("/mcp/ledgers"), Some("alice-tok")).await;
    let alice_disc =
        mcp_test_support::client(&master.url("/mcp/discover"), Some("alice-tok")).await;
    let carol_disc =
        mcp_test_support::client(&master.url("/mcp/discover"), Some("carol-tok")).await;

    // Plain.
    let r = alice
        .call_tool(call("ledger_record", json!({"key": "plain"})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    // Unknown, denied, out of view: one answer, byte for byte, on every endpoint.
    let missing = refusal(&alice, "ledger_nope", json!({})).await;
    let denied = refusal(&carol, "ledger_slow", json!({"key": "x"})).await;
    let out_of_view = refusal(&alice_set, "master_hello_world", json!({})).await;
    let missing_in_set = refusal(&alice_set, "ledger_nope", json!({})).await;
    let missing_in_disc = refusal(&alice_disc, "ledger_nope", json!({})).await;
    let denied_via_disc = refusal(
        &carol_disc,
        "master_callTool",
        json!({"name": "ledger_slow", "arguments": {"key": "x"}}),
    )
    .await;
    let missing_via_disc = refusal(
        &alice_disc,
        "master_callTool",
        json!({"name": "ledger_nope"}),
    )
    .await;
    for other in [
        &denied,
        &out_of_view,
        &missing_in_set,
        &missing_in_disc,
        &denied_via_disc,
        &missing_via_disc,
    ] {
        assert_eq!(
            serde_json::to_string(other).unwrap(),
            serde_json::to_string(&missing).unwrap()
        );
    }
    assert_eq!(missing["message"], mcp_master::gateway::UNKNOWN_TOOL);
    // describeTool of a denied tool says the same.
    let r = carol_disc
        .call_tool(call("master_describeTool", json!({"name": "ledger_slow"})))
        .await
        .unwrap();
    assert_eq!(text_of(&r), mcp_master::gateway::UNKNOWN_TOOL);
    assert_eq!(counts.slow_started(), 0, "a refused call never runs");

    // Discovery meta-tools, and a wrapped call without its `name`.
    let r = alice_disc
        .call_tool(call("master_searchTools", json!({"query": "record"})))
        .await
        .unwrap();
    assert!(r.structured_content.unwrap()["count"].as_u64().unwrap() >= 1);
    alice_disc
        .call_tool(call(
            "master_describeTool",
            json!({"name": "ledger_record"}),
        ))
        .await
        .unwrap();
    alice_disc
        .call_tool(call(
            "master_callTool",
            json!({"name": "ledger_record", "arguments": {"key": "via-discovery"}}),
        ))
        .await
        .unwrap();
    let bad = refusal(&alice_disc, "master_callTool", json!({"arguments": {}})).await;
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("`name` is required"),
        "{bad}"
    );
    assert_eq!(counts.records("via-discovery"), 1);

    // Approved: the pending call, then another approver's decision that runs it.
    let r = alice
        .call_tool(call(
            "ledger_fail",
            json!({"key": "k", "message": "approved run"}),
        ))
        .await
        .unwrap();
    let id = r.structured_content.unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = bob
        .call_tool(call(
            "approvals_approve",
            json!({"id": id, "comment": "go"}),
        ))
        .await
        .unwrap();
    let doc = r.structured_content.unwrap();
    assert_eq!(
        doc["approval"]["status"], "failed",
        "the tool fails on purpose: {doc}"
    );
    assert!(doc.to_string().contains("approved run"), "{doc}");

    // A workflow of two steps.
    let r = alice
        .call_tool(call(
            "orchestrator_executeWorkflow",
            json!({"definition": {"name": "two", "steps": [
                {"id": "a", "service": "ledger", "tool": "record", "params": {"key": "wf-a"}},
                {"id": "b", "service": "ledger", "tool": "record", "needs": ["a"], "params": {"key": "wf-b"}}
            ]}}),
        ))
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["status"], "completed");

    // Rate-limited: one call per minute for master_hello_world.
    let r = alice
        .call_tool(call("master_hello_world", json!({})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));
    let r = alice
        .call_tool(call("master_hello_world", json!({})))
        .await
        .unwrap();
    assert!(
        text_of(&r).contains("rate limit exceeded"),
        "{}",
        text_of(&r)
    );

    // The approvals tool-call row and the approval's HTTP decision are two different rows; the
    // sentinel closes the list.
    alice
        .call_tool(call("master_getSystemStatus", json!({})))
        .await
        .unwrap();
    let rows = rows_until_sentinel(&db, "master_getSystemStatus").await;
    let got: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str(), r[3].as_str()))
        .collect();
    let want = vec![
        ("alice", "ledger_record", "allow", "success"),
        ("alice", "ledger_nope", "unknown_tool", "refused"),
        ("carol", "ledger_slow", "deny", "refused"),
        ("alice", "master_hello_world", "out_of_view", "refused"),
        ("alice", "ledger_nope", "unknown_tool", "refused"),
        ("alice", "ledger_nope", "unknown_tool", "refused"),
        ("carol", "ledger_slow", "deny", "refused"),
        ("alice", "ledger_nope", "unknown_tool", "refused"),
        ("carol", "master_describeTool", "allow", "error"),
        ("alice", "master_searchTools", "allow", "success"),
        ("alice", "master_describeTool", "allow", "success"),
        ("alice", "ledger_record", "allow", "success"),
        ("alice", "master_callTool", "invalid_arguments", "refused"),
        ("alice", "ledger_fail", "approval_pending", "error"),
        ("bob", "approvals_approve", "approval_approved", "success"),
        // The workflow's two steps finish before the call that ran them.
        ("alice", "ledger_record", "allow", "success"),
        ("alice", "ledger_record", "allow", "success"),
        ("alice", "orchestrator_executeWorkflow", "allow", "success"),
        ("alice", "master_hello_world", "allow", "success"),
        ("alice", "master_hello_world", "rate_limited", "refused"),
    ];
    assert_eq!(got, want, "one row per call, in order");
    assert!(
        rows.iter().all(|r| !r[4].is_empty()),
        "every row has a correlation id: {rows:#?}"
    );
    // The approval row names the approval; the pending call and the approve share nothing else.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let note: String = conn
        .query_row(
            "SELECT error FROM audit WHERE decision = 'approval_pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(note.starts_with(&format!("{id}: ")), "{note}");
    // Audit coverage (slo.yml): the rows written for client calls equal the calls master counted;
    // the workflow's two steps are rows of their own source.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = mcp_test_support::metrics(&master.url("/metrics")).await;
        let sum = |prefix: &str| -> f64 {
            m.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let calls = sum("mcp_tool_calls_total{");
        let call_rows = sum("mcp_audit_rows_total{outcome=\"written\",source=\"call\"}");
        let step_rows = sum("mcp_audit_rows_total{outcome=\"written\",source=\"step\"}");
        if call_rows == calls && step_rows == 2.0 {
            // Every row above plus the sentinel's.
            assert_eq!(calls as usize + 2, want.len() + 1, "{m}");
            assert_eq!(sum("mcp_audit_rows_total{outcome=\"failed\""), 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "calls {calls}, call rows {call_rows}, step rows {step_rows}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Approved execution went through the dispatch stage: it is a proxied call in the metrics.
    let m = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert!(
        m.contains(
            "mcp_proxied_calls_total{downstream=\"ledger\",status=\"error\",tool=\"fail\"} 1"
        ),
        "{m}"
    );
    for c in [alice, bob, carol, alice_set, alice_disc, carol_disc] {
        c.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_service_answers_a_sentence_without_type_names() {
    let mut cmdb = start_cmdb(server_config()).await;
    let master = start_master(
        &downstream("cmdb", None, "http", &cmdb.url("/mcp")),
        server_config(),
    )
    .await;
    let c = mcp_test_support::client(&master.url("/mcp"), None).await;
    let r = c
        .call_tool(call("cmdb_getHost", json!({"name": "aicrusher"})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    cmdb.shutdown.cancel();
    cmdb.running.take().unwrap().wait().await.unwrap();
    // Once master has seen the service go, a call answers at once with what happened and when
    // master tries again: the README's sentence, never rmcp's type names.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let r = c
            .call_tool(call("cmdb_getHost", json!({"name": "aicrusher"})))
            .await
            .unwrap();
        let t = text_of(&r);
        if t.contains("reconnecting") {
            break t;
        }
        assert!(Instant::now() < deadline, "never reported down: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Whichever noticed first names the cause: the call itself, or master's health ping (under
    // load the 200 ms ping can win the race).
    let re = regex::Regex::new(
        r"^service cmdb unavailable \((ping failed: )?connection refused; reconnecting, next attempt in \d+ s\)$",
    )
    .unwrap();
    assert!(re.is_match(&text), "{text}");
    let r = c
        .call_tool(call("master_getSystemStatus", json!({})))
        .await
        .unwrap();
    let status = serde_json::to_string(&r.structured_content.unwrap()).unwrap();
    assert!(
        !status.contains("::") && !status.contains("WorkerTransport"),
        "{status}"
    );
    c.cancel().await.unwrap();
}

/// A TCP proxy in front of a service that drops the connection, without answering, of every
/// HTTP request whose body contains `marker`, and counts those requests. Each forwarded request
/// gets `Connection: close`, so every request is seen here on its own.
async fn dropping_proxy(
    upstream: std::net::SocketAddr,
    marker: &'static str,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = dropped.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                // Read the head and the body (Content-Length) of one request.
                let mut buf = Vec::new();
                let head_end = loop {
                    let mut chunk = [0u8; 4096];
                    let n = inbound.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let mut chunk = [0u8; 4096];
                    let n = inbound.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = &buf[head_end..];
                if body.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    return; // dropped: the connection closes with no answer
                }
                let mut lines: Vec<&str> = head
                    .trim_end()
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .collect();
                lines.push("Connection: close");
                let mut out = (lines.join("\r\n") + "\r\n\r\n").into_bytes();
                out.extend_from_slice(body);
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if up.write_all(&out).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut up).await;
            });
        }
    });
    (addr, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_only_read_only_calls_after_a_dropped_connection() {
    let (ledger, counts) = ledger::start_ledger("retry").await;
    let upstream = ledger.running.as_ref().unwrap().local_addr();
    let (proxy, dropped) = dropping_proxy(upstream, "drop-me").await;
    let master = start_master(
        &format!(
            "{}\n[master.retry]\nmax_attempts = 3\nbase_delay_ms = 10\nmax_delay_ms = 20\n",
            downstream("ledger", None, "http", &format!("http://{proxy}/mcp"))
        ),
        server_config(),
    )
    .await;
    let c = mcp_test_support::client(&master.url("/mcp"), None).await;
    let retries = |m: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix("mcp_downstream_retries_total{downstream=\"ledger\"} "))
            .map_or(0, |v| v.parse().unwrap())
    };
    // Read-only `slow`: three attempts reach the service's address, two of them retries.
    let r = c
        .call_tool(call("ledger_slow", json!({"key": "drop-me", "ms": 1})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("service ledger failed during the call"),
        "{}",
        text_of(&r)
    );
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 3);
    let m = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert_eq!(retries(&m), 2, "{m}");
    // Not idempotent `record`: one attempt, never repeated.
    let r = c
        .call_tool(call("ledger_record", json!({"key": "drop-me"})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 4);
    let m = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert_eq!(retries(&m), 2, "{m}");
    assert_eq!(counts.records("drop-me"), 0);
    // The session survives: an ordinary call goes through the same proxy.
    let r = c
        .call_tool(call("ledger_record", json!({"key": "after"})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(counts.records("after"), 1);
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_timeout_cancels_the_call_at_the_service() {
    let (ledger, counts) = ledger::start_ledger("timeout").await;
    let master = start_master(
        &downstream("ledger", None, "http", &ledger.url("/mcp"))
            .replace("timeout_secs = 10", "timeout_secs = 1"),
        server_config(),
    )
    .await;
    let c = mcp_test_support::client(&master.url("/mcp"), None).await;
    let started = Instant::now();
    let r = c
        .call_tool(call("ledger_slow", json!({"key": "long", "ms": 20000})))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        text_of(&r).contains("did not answer `slow` within 1 s"),
        "{}",
        text_of(&r)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while counts
        .slow_cancelled
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the service never heard the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.cancel().await.unwrap();
}

/// A client that counts `notifications/tools/list_changed`.
#[derive(Clone, Default)]
struct ListWatcher(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl rmcp::ClientHandler for ListWatcher {
    async fn on_tool_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_downstreams_own_list_change_reaches_clients() {
    use rmcp::ServiceExt;
    let (ledger, _counts) = ledger::start_ledger("grow").await;
    // A third-party server's new tools are held by default (guard::pins); this one's are taken
    // as they come, so its list change reaches clients.
    let master = start_master(
        &format!(
            "{}new_tools = \"auto\"\n",
            downstream("ledger", None, "http", &ledger.url("/mcp"))
        ),
        server_config(),
    )
    .await;
    let w = ListWatcher::default();
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(master.url("/mcp"));
    let c = w.clone().serve(transport).await.unwrap();
    let names = |tools: Vec<rmcp::model::Tool>| -> Vec<String> {
        tools.into_iter().map(|t| t.name.to_string()).collect()
    };
    assert!(!names(c.list_all_tools().await.unwrap()).contains(&"ledger_grown".to_owned()));
    let r = c.call_tool(call("ledger_grow", json!({}))).await.unwrap();
    assert_ne!(r.is_error, Some(true));
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no tools/list_changed reached the client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(names(c.list_all_tools().await.unwrap()).contains(&"ledger_grown".to_owned()));
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_approvals_are_abandoned_after_a_restart() {
    let (ledger, counts) = ledger::start_ledger("abandon").await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, "test-identity-and-approval-key-0123456789").unwrap();
    let cfg = format!(
        "{}\n[master.policy]\ndefault_action = \"allow\"\n[[master.policy.rule]]\ntools = [\"ledger_record\"]\naction = \"approve\"\n",
        downstream("ledger", None, "http", &ledger.url("/mcp"))
    );
    let users: &[(&str, &[&str], &str)] = &[
        ("alice", &["approver"], "alice-tok"),
        ("bob", &["approver"], "bob-tok"),
    ];
    let mut master = keyed_master_in(dir, &key, users, &cfg).await;
    let alice = mcp_test_support::client(&master.url("/mcp"), Some("alice-tok")).await;
    let r = alice
        .call_tool(call("ledger_record", json!({"key": "never"})))
        .await
        .unwrap();
    let id = r.structured_content.unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice.cancel().await.unwrap();
    master.shutdown.cancel();
    master.running.take().unwrap().wait().await.unwrap();
    let dir = std::mem::replace(&mut master.dir, tempfile::tempdir().unwrap());
    drop(master);

    let master = keyed_master_in(dir, &key, users, &cfg).await;
    let bob = mcp_test_support::client(&master.url("/mcp"), Some("bob-tok")).await;
    let r = bob
        .call_tool(call("approvals_list", json!({})))
        .await
        .unwrap();
    let row = r.structured_content.unwrap()["approvals"][0].clone();
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["status"], "abandoned", "{row}");
    assert!(
        row["comment"]
            .as_str()
            .unwrap()
            .contains("master restarted"),
        "{row}"
    );
    let r = bob
        .call_tool(call("approvals_approve", json!({"id": id})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("abandoned"), "{}", text_of(&r));
    assert_eq!(counts.records("never"), 0, "an abandoned call never runs");
    bob.cancel().await.unwrap();
}
