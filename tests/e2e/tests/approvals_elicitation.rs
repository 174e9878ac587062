//! Approval by MCP elicitation, with the official Python SDK as the client: master asks the user in
//! the client; accept runs the exact call once, a "no", decline or cancel denies it and it never
//! runs. Without elicitation, a configured wait returns the result when another approver decides
//! in time, with progress notifications meanwhile.

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::NotificationContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elicitation_answers_are_honoured_exactly() {
    if !python_mcp_available() {
        skip("the Python `mcp` SDK is not installed (pip install mcp)");
        return;
    }
    let (ledger, counts) = ledger::start_ledger("elicitation").await;
    let master = start_keyed_master(
        &[("solo", &["approver"], "solo-tok")],
        &format!(
            "[master.approvals]\nelicitation = true\nallow_self_approval = true\n[master.policy]\n[[master.policy.rule]]\ntools = [\"ledger_record\"]\naction = \"approve\"\n{}",
            downstream("ledger", None, "http", &ledger.url("/mcp"))
        ),
    )
    .await;
    let run = |answer: &'static str| {
        let url = master.url("/mcp");
        async move {
            let out = tokio::process::Command::new("python3")
                .arg(crate_dir().join("python/elicit_approval.py"))
                .args([url.as_str(), "solo-tok", "ledger_record", answer])
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{answer}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
            report
        }
    };

    let r = run("accept").await;
    assert_eq!(r["asked"].as_array().unwrap().len(), 1, "{r}");
    assert!(
        r["asked"][0].as_str().unwrap().contains("ledger_record"),
        "{r}"
    );
    assert_eq!(r["is_error"], false, "{r}");
    assert_eq!(r["structured"]["count"], 1, "{r}");
    assert_eq!(counts.records("elicited-accept"), 1);

    for answer in ["reject", "decline", "cancel"] {
        let r = run(answer).await;
        assert_eq!(r["asked"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(r["is_error"], true, "{r}");
        assert!(
            r["text"].as_str().unwrap().contains("the call did not run"),
            "{r}"
        );
        assert_eq!(
            counts.records(&format!("elicited-{answer}")),
            0,
            "{answer} ran the call"
        );
    }
    let c = mcp_test_support::client(&master.url("/mcp"), Some("solo-tok")).await;
    let r = c
        .call_tool(call("approvals_list", json!({"status": "denied"})))
        .await
        .unwrap();
    let list = r.structured_content.unwrap();
    let comments: Vec<&str> = list["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["comment"].as_str().unwrap_or(""))
        .collect();
    for want in [
        "no from python",
        "declined in the client",
        "cancelled in the client",
    ] {
        assert!(comments.contains(&want), "{comments:?}");
    }
}

/// A client that keeps the progress messages it hears.
#[derive(Clone, Default)]
struct Progress(Arc<Mutex<Vec<String>>>);

impl rmcp::ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<rmcp::RoleClient>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_call_gets_the_result_when_approved_in_time() {
    let (ledger, counts) = ledger::start_ledger("approval-wait").await;
    let master = start_keyed_master(
        &[
            ("alice", &[], "alice-tok"),
            ("bob", &["approver"], "bob-tok"),
        ],
        &format!(
            "[master.approvals]\nwait_secs = 20\nelicitation = true\n[master.policy]\n[[master.policy.rule]]\ntools = [\"ledger_record\"]\naction = \"approve\"\n{}",
            downstream("ledger", None, "http", &ledger.url("/mcp"))
        ),
    )
    .await;
    let heard = Progress::default();
    let alice = heard
        .clone()
        .serve(StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(master.url("/mcp"))
                .auth_header("alice-tok".to_owned()),
        ))
        .await
        .unwrap();
    let bob = mcp_test_support::client(&master.url("/mcp"), Some("bob-tok")).await;
    // alice may not decide, so she is not asked; her call waits for bob.
    let waiting = tokio::spawn(async move {
        let mut p = call("ledger_record", json!({"key": "waited"}));
        p.meta = Some({
            let mut m = rmcp::model::RequestMetaObject::default();
            m.set_progress_token(rmcp::model::ProgressToken(
                rmcp::model::NumberOrString::Number(7),
            ));
            m
        });
        alice.call_tool(p).await.unwrap()
    });
    let id = loop {
        let r = bob
            .call_tool(call("approvals_list", json!({"status": "pending"})))
            .await
            .unwrap();
        let list = r.structured_content.unwrap();
        if let Some(id) = list["approvals"][0]["id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !waiting.is_finished(),
        "the call must wait for the decision"
    );
    let r = bob
        .call_tool(call("approvals_approve", json!({"id": id})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let r = waiting.await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(r.structured_content.unwrap()["count"], 1);
    assert_eq!(counts.records("waited"), 1);
    let heard = heard.0.lock().unwrap().clone();
    assert!(
        heard
            .iter()
            .any(|m| m.contains(&format!("waiting for approval {id}"))),
        "{heard:?}"
    );
}
