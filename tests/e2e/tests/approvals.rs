//! Human approvals through master: a write the secrets service refuses with `approval_required`
//! becomes a pending approval; another identity with the approver role approves it and master runs
//! exactly that call with a single-use token; self-approval, non-approvers, denial and expiry.

mod common;

use common::*;
use serde_json::{Value, json};

async fn as_user(url: &str, token: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    mcp_test_support::client(url, Some(token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_run_the_exact_call_for_another_approver_only() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("shared.key");
    std::fs::write(&key, "approval-and-identity-key-0123456789abcdef").unwrap();
    let secrets = start_secrets_demo(&key, "").await;
    let master = start_master_trusting(
        &key,
        &[
            ("alice", &["approver"], "alice-tok"),
            ("bob", &["approver"], "bob-tok"),
            ("carol", &[], "carol-tok"),
        ],
        &format!(
            "[master.approvals]\nttl_secs = 2\n{}",
            downstream("secrets", None, "http", &secrets.url("/mcp"))
        ),
    )
    .await;
    let url = master.url("/mcp");
    let alice = as_user(&url, "alice-tok").await;
    let bob = as_user(&url, "bob-tok").await;
    let carol = as_user(&url, "carol-tok").await;

    let args = json!({"name": "keepass/Infra/postgres", "value": "rotated-by-approval"});
    let r = alice
        .call_tool(call("secrets_setSecret", args.clone()))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let pending = r.structured_content.clone().unwrap();
    assert_eq!(pending["status"], "pending_approval", "{pending}");
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    assert!(text_of(&r).contains(&format!("pending approval {id}")));

    // The listing shows it, arguments redacted.
    let r = bob
        .call_tool(call("approvals_list", json!({"status": "pending"})))
        .await
        .unwrap();
    let list = r.structured_content.unwrap();
    assert_eq!(list["approvals"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["approvals"][0]["requester"], "alice");
    assert!(!list.to_string().contains("rotated-by-approval"), "{list}");

    // Nobody approves their own call; a caller without the role cannot decide.
    let r = alice
        .call_tool(call("approvals_approve", json!({"id": id})))
        .await
        .unwrap();
    assert!(text_of(&r).contains("may not decide it"), "{}", text_of(&r));
    let r = carol
        .call_tool(call("approvals_approve", json!({"id": id})))
        .await
        .unwrap();
    assert!(text_of(&r).contains("role is required"), "{}", text_of(&r));

    // Another approver: master runs exactly the call, as alice, with a token.
    let r = bob
        .call_tool(call(
            "approvals_approve",
            json!({"id": id, "comment": "ok"}),
        ))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let done = r.structured_content.unwrap();
    assert_eq!(done["approval"]["status"], "executed", "{done}");
    assert_eq!(done["approval"]["decided_by"], "bob");
    assert_eq!(
        done["result"]["structuredContent"]["secret"]["name"], "keepass/Infra/postgres",
        "{done}"
    );
    let r = alice
        .call_tool(call(
            "secrets_getSecret",
            json!({"name": "keepass/Infra/postgres"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        r.structured_content.unwrap()["value"],
        "rotated-by-approval"
    );
    let r = bob
        .call_tool(call("approvals_approve", json!({"id": id})))
        .await
        .unwrap();
    assert!(
        text_of(&r).contains("is executed, not pending"),
        "{}",
        text_of(&r)
    );

    // Denial: the call never runs.
    let r = alice
        .call_tool(call(
            "secrets_deleteSecret",
            json!({"name": "keepass/Infra/postgres"}),
        ))
        .await
        .unwrap();
    let id2 = r.structured_content.unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = bob
        .call_tool(call("approvals_deny", json!({"id": id2})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).starts_with("invalid arguments for `approvals_deny`: missing field `reason`"),
        "{}",
        text_of(&r)
    );
    let r = bob
        .call_tool(call(
            "approvals_deny",
            json!({"id": id2, "reason": "keep it"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        r.structured_content.unwrap()["approval"]["status"],
        "denied"
    );
    let r = alice
        .call_tool(call(
            "secrets_getSecret",
            json!({"name": "keepass/Infra/postgres"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        r.structured_content.unwrap()["value"],
        "rotated-by-approval"
    );

    // The HTTP API: same rules, bearer auth.
    let r = alice
        .call_tool(call(
            "secrets_setSecret",
            json!({"name": "keepass/Infra/postgres", "value": "via-http"}),
        ))
        .await
        .unwrap();
    let id4 = r.structured_content.unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let post = |token: Option<&str>, path: String, body: Value| {
        let mut rb = http.post(master.url(&path)).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    let r = post(None, format!("/approvals/{id4}/approve"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = post(
        Some("carol-tok"),
        format!("/approvals/{id4}/approve"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(
        Some("bob-tok"),
        format!("/approvals/{id4}/approve"),
        json!({"comment": "via http"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["approval"]["status"], "executed", "{body}");
    let r = post(
        Some("bob-tok"),
        "/approvals/ap-nope/deny".to_owned(),
        json!({"reason": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let listed: Value = http
        .get(master.url("/approvals?status=executed"))
        .bearer_auth("bob-tok")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 2, "{listed}");

    // Expiry (ttl 2 s): an expired approval cannot be used.
    let r = carol
        .call_tool(call("secrets_setSecret", args.clone()))
        .await
        .unwrap();
    let id3 = r.structured_content.unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let r = bob
        .call_tool(call("approvals_approve", json!({"id": id3})))
        .await
        .unwrap();
    assert!(text_of(&r).contains("is expired"), "{}", text_of(&r));

    let metrics = mcp_test_support::metrics(&master.url("/metrics")).await;
    for (decision, n) in [("requested", 4), ("approved", 2), ("denied", 1)] {
        assert!(
            metrics.contains(&format!(
                "mcp_approvals_total{{decision=\"{decision}\"}} {n}"
            )),
            "{decision}"
        );
    }
    let listed: Value = bob
        .call_tool(call("approvals_list", json!({})))
        .await
        .unwrap()
        .structured_content
        .unwrap();
    assert_eq!(listed["count"], 4);
    for c in [alice, bob, carol] {
        c.cancel().await.unwrap();
    }
}
