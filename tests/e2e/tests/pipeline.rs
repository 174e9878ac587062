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

/// Every audit row so far: identity, tool, decision, status, correlation id.
fn audit_rows(db: &std::path::Path) -> Vec<[String; 5]> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT identity, tool, decision, status, correlation_id FROM audit ORDER BY id")
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
        assert!(Instant::now() < deadline, "sentinel never audited: {rows:#?}");
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
    let alice_disc = mcp_test_support::client(&master.url("/mcp/discover"), Some("alice-tok")).await;
    let carol_disc = mcp_test_support::client(&master.url("/mcp/discover"), Some("carol-tok")).await;

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
    let missing_via_disc =
        refusal(&alice_disc, "master_callTool", json!({"name": "ledger_nope"})).await;
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
        .call_tool(call("master_describeTool", json!({"name": "ledger_record"})))
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
        bad["message"].as_str().unwrap().contains("`name` is required"),
        "{bad}"
    );
    assert_eq!(counts.records("via-discovery"), 1);

    // Approved: the pending call, then another approver's decision that runs it.
    let r = alice
        .call_tool(call("ledger_fail", json!({"key": "k", "message": "approved run"})))
        .await
        .unwrap();
    let id = r.structured_content.unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = bob
        .call_tool(call("approvals_approve", json!({"id": id, "comment": "go"})))
        .await
        .unwrap();
    let doc = r.structured_content.unwrap();
    assert_eq!(doc["approval"]["status"], "failed", "the tool fails on purpose: {doc}");
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
    assert!(text_of(&r).contains("rate limit exceeded"), "{}", text_of(&r));

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
    let re = regex::Regex::new(
        r"^service cmdb unavailable \(connection refused; reconnecting, next attempt in \d+ s\)$",
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
