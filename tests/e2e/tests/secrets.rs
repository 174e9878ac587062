//! The secrets service behind master: access rules applied to the identity master asserts (signed
//! with the shared key), denials that read like "missing", approvals required for writes, and the
//! value of a write never landing in master's audit store.

mod common;

use common::*;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

async fn client(url: &str, token: &str) -> RunningService<RoleClient, ()> {
    let cfg =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rules_follow_the_identity_master_asserts() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef0123456789abcdef\n").unwrap();
    let secrets = start_secrets_demo(
        &key,
        r#"
[[secrets.rule]]
identities = ["alice"]
paths = ["keepass/**"]
actions = ["list", "get", "set", "delete"]

[[secrets.rule]]
roles = ["viewer"]
paths = ["keepass/Cloud/**"]
actions = ["list", "get"]
"#,
    )
    .await;
    let master = start_master_trusting(
        &key,
        &[
            ("alice", &["admin"], "alice-tok"),
            ("bob", &["viewer"], "bob-tok"),
        ],
        &downstream("secrets", None, "http", &secrets.url("/mcp")),
    )
    .await;
    let alice = client(&master.url("/mcp"), "alice-tok").await;
    let bob = client(&master.url("/mcp"), "bob-tok").await;

    let r = alice
        .call_tool(call(
            "secrets_getSecret",
            json!({"name": "keepass/Infra/docker-registry", "field": "username"}),
        ))
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["value"], "deploy");

    let forbidden = bob
        .call_tool(call(
            "secrets_getSecret",
            json!({"name": "keepass/Infra/docker-registry"}),
        ))
        .await
        .unwrap();
    let missing = bob
        .call_tool(call(
            "secrets_getSecret",
            json!({"name": "keepass/Cloud/nothing-here"}),
        ))
        .await
        .unwrap();
    assert_eq!(forbidden.is_error, Some(true));
    assert_eq!(
        text_of(&forbidden).replace("keepass/Infra/docker-registry", "X"),
        text_of(&missing).replace("keepass/Cloud/nothing-here", "X")
    );
    let r = bob
        .call_tool(call(
            "secrets_getSecret",
            json!({"name": "keepass/Cloud/Azure/service-principal"}),
        ))
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["value"], "demo-client-secret");
    let r = bob
        .call_tool(call("secrets_listSecrets", json!({})))
        .await
        .unwrap();
    let listed = r.structured_content.unwrap();
    assert_eq!(listed["count"], 1, "{listed}");

    // A write becomes a pending approval; its value reaches neither master's audit store nor the
    // approvals store.
    let canary = "CANARY-write-through-master-31c9";
    let r = alice
        .call_tool(call(
            "secrets_setSecret",
            json!({"name": "keepass/Infra/postgres", "value": canary}),
        ))
        .await
        .unwrap();
    assert_eq!(
        r.structured_content.as_ref().unwrap()["status"],
        "pending_approval"
    );
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
    let audit_db = master.path("audit.sqlite");
    let mut rows = Vec::new();
    for _ in 0..50 {
        let conn = rusqlite::Connection::open(&audit_db).unwrap();
        rows = conn
            .prepare("SELECT tool, arguments FROM audit ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>();
        if rows.iter().any(|(t, _)| t == "secrets_setSecret") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let set = rows
        .iter()
        .find(|(t, _)| t == "secrets_setSecret")
        .unwrap_or_else(|| panic!("no audit row for setSecret: {rows:?}"));
    assert!(set.1.contains("keepass/Infra/postgres"), "{set:?}");
    assert!(rows.iter().all(|(_, a)| !a.contains(canary)), "{rows:?}");
    for f in ["approvals.sqlite", "approvals.sqlite-wal"] {
        let bytes = std::fs::read(master.path(f)).unwrap_or_else(|e| {
            if f.ends_with("-wal") {
                Vec::new()
            } else {
                panic!("{f}: {e}")
            }
        });
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{f} holds the value"
        );
    }
}
