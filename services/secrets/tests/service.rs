//! The `mcp-secrets` binary as a user runs it, driven by an MCP client over HTTP with bearer tokens:
//! tools, access rules, approvals, rate limit, audit, and a canary value that must never show up in
//! logs (at debug level), metrics, the audit file or error messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keepass::DatabaseKey;
use keepass::config::{DatabaseConfig, KdfConfig};
use mcp_runtime::approval::APPROVAL_META_KEY;
use mcp_runtime::assertion::AssertionKey;
use mcp_secrets::keepass::{NewEntry, create_database};
use mcp_test_support::{ServiceProcess, call, free_port, text, tool};
use rmcp::RoleClient;
use rmcp::model::{MetaObject, RequestMetaObject};
use rmcp::service::RunningService;
use serde_json::{Value, json};

const CANARY: &str = "CANARY-7d1e-never-in-logs";
const SET_CANARY: &str = "CANARY-SET-44a0-never-in-logs";
const DB_PASSWORD: &str = "db-pass-for-tests";
const APPROVAL_KEY: &str = "approval-key-for-tests-0123456789abcdef";

fn audit_of(svc: &ServiceProcess) -> String {
    std::fs::read_to_string(svc.path("audit.jsonl")).unwrap_or_default()
}

fn make_db(dir: &Path) -> PathBuf {
    let mut config = DatabaseConfig::default();
    config.kdf_config = KdfConfig::Argon2id {
        iterations: 2,
        memory: 1024 * 1024,
        parallelism: 1,
        version: argon2::Version::Version13,
    };
    let path = dir.join("vault.kdbx");
    create_database(
        &path,
        config,
        DatabaseKey::new().with_password(DB_PASSWORD),
        &[
            NewEntry {
                group: &["Infra"],
                title: "docker-registry",
                username: "deploy",
                password: CANARY,
                url: "https://registry.example",
                notes: "notes-are-private",
                custom: &[("api_token", "custom-is-private")],
            },
            NewEntry {
                group: &["Cloud"],
                title: "storage",
                username: "acct",
                password: "cloud-pass",
                url: "",
                notes: "",
                custom: &[],
            },
        ],
    )
    .unwrap();
    std::fs::write(dir.join("db-password"), DB_PASSWORD).unwrap();
    path
}

async fn start(extra: &str) -> ServiceProcess {
    let dir = tempfile::tempdir().unwrap();
    let db = make_db(dir.path());
    let tokens = format!(
        "[[token]]\nidentity = \"alice\"\nsha256 = \"{}\"\n\n[[token]]\nidentity = \"bob\"\nroles = [\"viewer\"]\nsha256 = \"{}\"\n",
        mcp_runtime::auth::hash_token("alice-token"),
        mcp_runtime::auth::hash_token("bob-token"),
    );
    std::fs::write(dir.path().join("tokens.toml"), tokens).unwrap();
    std::fs::write(dir.path().join("approval.key"), APPROVAL_KEY).unwrap();
    let port = free_port();
    let d = dir.path().display();
    let config = format!(
        r#"
[server]
port = {port}
log_level = "debug"
auth_tokens_file = "{d}/tokens.toml"
approval_key_file = "{d}/approval.key"

[secrets]
audit_file = "{d}/audit.jsonl"
{extra}

[[secrets.backend]]
name = "keepass"
kind = "keepass"
path = "{db}"
password_file = "{d}/db-password"

[[secrets.rule]]
identities = ["alice"]
paths = ["keepass/**"]
actions = ["list", "get", "set", "delete"]

[[secrets.rule]]
roles = ["viewer"]
paths = ["keepass/Cloud/**"]
actions = ["list", "get"]
"#,
        db = db.display()
    );
    ServiceProcess::spawn(env!("CARGO_BIN_EXE_mcp-secrets"), dir, port, &config).await
}

async fn client(svc: &ServiceProcess, token: &str) -> RunningService<RoleClient, ()> {
    mcp_test_support::client(&svc.url("/mcp"), Some(token)).await
}

#[tokio::test]
async fn tools_rules_approvals_and_a_canary_that_never_leaks() {
    let svc = start("get_per_minute = 100000\nget_burst = 100000").await;
    let alice = client(&svc, "alice-token").await;
    let bob = client(&svc, "bob-token").await;

    let r = tool(&alice, "listBackends", json!({})).await;
    let b = &r.structured_content.unwrap()["backends"][0];
    assert_eq!(b["name"], "keepass");
    assert_eq!(b["kind"], "keepass");
    assert_eq!(b["state"], "ready");

    // Listing: names and field names only.
    let r = tool(&alice, "listSecrets", json!({})).await;
    let listing = serde_json::to_string(&r).unwrap();
    assert!(
        listing.contains("keepass/Infra/docker-registry"),
        "{listing}"
    );
    for private in [
        CANARY,
        "notes-are-private",
        "custom-is-private",
        "cloud-pass",
    ] {
        assert!(!listing.contains(private), "listSecrets leaked {private}");
    }
    // bob (role viewer) sees only Cloud.
    let r = tool(&bob, "listSecrets", json!({})).await;
    let names: Vec<String> = r.structured_content.unwrap()["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["keepass/Cloud/storage"]);

    // The canary, read 1000 times at debug log level.
    for _ in 0..1000 {
        let r = tool(
            &alice,
            "getSecret",
            json!({"name": "keepass/Infra/docker-registry"}),
        )
        .await;
        assert_eq!(r.structured_content.as_ref().unwrap()["value"], CANARY);
    }
    let r = tool(
        &alice,
        "getSecret",
        json!({"name": "keepass/Infra/docker-registry", "field": "username"}),
    )
    .await;
    assert_eq!(r.structured_content.unwrap()["value"], "deploy");
    // Errors name fields, never contents.
    let r = tool(
        &alice,
        "getSecret",
        json!({"name": "keepass/Infra/docker-registry", "field": "pin"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let err = text(&r);
    assert!(
        err.contains("no field `pin`") && err.contains("password"),
        "{err}"
    );
    assert!(!err.contains(CANARY));

    // Missing and forbidden read the same.
    let forbidden = tool(
        &bob,
        "getSecret",
        json!({"name": "keepass/Infra/docker-registry"}),
    )
    .await;
    let missing = tool(&bob, "getSecret", json!({"name": "keepass/Cloud/nope"})).await;
    assert_eq!(forbidden.is_error, Some(true));
    assert_eq!(missing.is_error, Some(true));
    assert_eq!(
        text(&forbidden).replace("keepass/Infra/docker-registry", "X"),
        text(&missing).replace("keepass/Cloud/nope", "X"),
    );
    assert_eq!(forbidden.structured_content, missing.structured_content);
    assert!(!text(&forbidden).contains(CANARY));
    let ok = tool(&bob, "getSecret", json!({"name": "keepass/Cloud/storage"})).await;
    assert_eq!(ok.structured_content.unwrap()["value"], "cloud-pass");
    // bob may not set even with approval; the refusal comes before any approval request.
    let r = tool(
        &bob,
        "setSecret",
        json!({"name": "keepass/Cloud/storage", "value": "x"}),
    )
    .await;
    assert!(
        text(&r).contains("does not exist or you may not set it"),
        "{}",
        text(&r)
    );

    // setSecret needs an approval token for exactly this call.
    let args = json!({"name": "keepass/Infra/docker-registry", "value": SET_CANARY});
    let r = tool(&alice, "setSecret", args.clone()).await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        r.structured_content.as_ref().unwrap()["error"],
        "approval_required"
    );
    assert!(!serde_json::to_string(&r).unwrap().contains(SET_CANARY));
    let key = AssertionKey::from_bytes(APPROVAL_KEY.as_bytes()).unwrap();
    let token = key.sign_approval("setSecret", args.as_object(), "ap-1", 60);
    let with_token = || {
        let mut p = call("setSecret", args.clone());
        let mut meta = serde_json::Map::new();
        meta.insert(
            APPROVAL_META_KEY.to_owned(),
            serde_json::to_value(&token).unwrap(),
        );
        p.meta = Some(RequestMetaObject(MetaObject(meta)));
        p
    };
    let r = alice.call_tool(with_token()).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(
        r.structured_content.as_ref().unwrap()["secret"]["name"],
        "keepass/Infra/docker-registry"
    );
    assert!(!serde_json::to_string(&r).unwrap().contains(SET_CANARY));
    let r = tool(
        &alice,
        "getSecret",
        json!({"name": "keepass/Infra/docker-registry"}),
    )
    .await;
    assert_eq!(r.structured_content.unwrap()["value"], SET_CANARY);
    // The token is single-use.
    let r = alice.call_tool(with_token()).await.unwrap();
    assert_eq!(
        r.structured_content.as_ref().unwrap()["error"],
        "approval_required"
    );
    assert!(text(&r).contains("refused"), "{}", text(&r));
    // deleteSecret needs one too.
    let r = tool(
        &alice,
        "deleteSecret",
        json!({"name": "keepass/Cloud/storage"}),
    )
    .await;
    assert_eq!(
        r.structured_content.as_ref().unwrap()["error"],
        "approval_required"
    );

    let metrics = mcp_test_support::metrics(&svc.url("/metrics")).await;
    assert!(
        metrics.contains(
            r#"mcp_secret_access_total{action="get",backend="keepass",decision="allowed"} 1003"#
        ),
        "{}",
        lines_with(&metrics, "secret_access")
    );
    assert!(metrics.contains(r#"decision="denied""#));
    assert!(metrics.contains(r#"decision="not_found""#));
    assert!(metrics.contains(r#"decision="approval_required""#));
    // The shared guard counts the same decisions per tool, beside the service's own counter.
    assert!(
        metrics.contains(
            r#"mcp_access_decisions_total{decision="allowed",service="secrets",tool="getSecret"} 1003"#
        ),
        "{}",
        lines_with(&metrics, "access_decisions")
    );
    assert!(metrics.contains(
        r#"mcp_access_decisions_total{decision="approval_required",service="secrets",tool="deleteSecret"}"#
    ));

    drop(alice);
    drop(bob);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = svc.log();
    let audit = audit_of(&svc);
    // The captures are real: debug lines and one audit record per access are there.
    assert!(
        log.contains(r#""level":"DEBUG""#),
        "the log was not at debug level"
    );
    assert!(log.matches("Secret access audited.").count() >= 1000);
    assert!(
        audit.lines().count() >= 1010,
        "{} audit lines",
        audit.lines().count()
    );
    assert!(audit.contains(r#""identity":"bob","action":"get","secret":"keepass/Infra/docker-registry","backend":"keepass","decision":"denied""#));
    for canary in [
        CANARY,
        SET_CANARY,
        DB_PASSWORD,
        "alice-token",
        "bob-token",
        APPROVAL_KEY,
    ] {
        assert!(!log.contains(canary), "log contains {canary}");
        assert!(!audit.contains(canary), "audit contains {canary}");
        assert!(!metrics.contains(canary), "metrics contain {canary}");
    }
}

#[tokio::test]
async fn the_read_rate_limit_trips_with_a_clear_error() {
    let svc = start("get_per_minute = 2\nget_burst = 2").await;
    let alice = client(&svc, "alice-token").await;
    let bob = client(&svc, "bob-token").await;
    for _ in 0..2 {
        let r = tool(
            &alice,
            "getSecret",
            json!({"name": "keepass/Cloud/storage"}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
    }
    let r = tool(
        &alice,
        "getSecret",
        json!({"name": "keepass/Cloud/storage"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.contains("rate limit") && t.contains("per minute") && t.contains("retry in"),
        "{t}"
    );
    // Per identity: bob still has his budget.
    let r = tool(&bob, "getSecret", json!({"name": "keepass/Cloud/storage"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(audit_of(&svc).contains(r#""decision":"rate_limited""#));
}

#[tokio::test]
async fn a_wrong_password_keeps_the_service_up_and_degraded() {
    let svc = start("").await;
    // Replace the password file and touch the database: the next access re-opens and fails.
    std::fs::write(svc.path("db-password"), "wrong").unwrap();
    let db = svc.path("vault.kdbx");
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes).unwrap();
    let alice = client(&svc, "alice-token").await;
    let r = tool(
        &alice,
        "getSecret",
        json!({"name": "keepass/Infra/docker-registry"}),
    )
    .await;
    // The last good version keeps serving reads; health says why it is degraded.
    assert_eq!(r.structured_content.unwrap()["value"], CANARY);
    let health: Value = reqwest::get(svc.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let msg = health["checks"]["backend:keepass"]["message"]
        .as_str()
        .unwrap();
    assert!(msg.contains("wrong password"), "{msg}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
}

/// The lines of `text` that contain `needle` (the metrics a failed assertion shows).
fn lines_with(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}
