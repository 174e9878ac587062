//! A fresh clone's first run: `mcp-stack` in an empty directory with no configuration turns
//! approvals on (it creates the key), the local operator approves their own risky call — with
//! `approvals_approve` or in the client by elicitation — and the call runs once; with auth on,
//! self-approval is refused as before. The first screen says where everything is.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::Stack;
use mcp_test_support::{client, python_mcp_available, skip, structured, text, tool};
use serde_json::{Value, json};

fn workspace_file(cwd: &Path, name: &str) -> std::path::PathBuf {
    cwd.join("data/linux-cli/workspace").join(name)
}

#[test]
fn a_risky_write_is_approved_by_the_local_operator_and_runs_once() {
    let cwd = tempfile::tempdir().unwrap();
    let stack = Stack::start(cwd.path(), &[]);

    // The key was made on first start, owner-only, and the first screen names it.
    let key = cwd.path().join("secrets/identity_key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&key).unwrap().trim().len() >= 64);
    let screen = stack.first_screen();
    let master = stack.ports.master_url("");
    for want in [
        format!("{master}/mcp "),
        format!("{master}/mcp/infra"),
        format!("{master}/mcp/discover"),
        format!("Console:             {master}/ui/"),
        "secrets/identity_key (created now, owner-only)".to_owned(),
        "you are the only user and approve your own risky calls".to_owned(),
        "secrets/keepass_demo_password".to_owned(),
        format!("\"url\": \"{master}/mcp/infra\""),
        format!("\"mcp-remote\", \"{master}/mcp\""),
        "- k8s (cluster):".to_owned(),
        "fix: start with MCP_K8S_KUBECONFIG=/path/to/kubeconfig".to_owned(),
        "- ai-models (gemini): no API key".to_owned(),
        "- freqtrade-knowledge (repository):".to_owned(),
    ] {
        assert!(
            screen.contains(&want),
            "first screen lacks {want:?}:\n{screen}"
        );
    }
    // The screen names where the secrets are, never their values.
    let demo_pw =
        std::fs::read_to_string(cwd.path().join("secrets/keepass_demo_password")).unwrap();
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(!screen.contains(demo_pw.trim()) && !screen.contains(key_text.trim()));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client(&stack.ports.master_url("/mcp"), None).await;
        let tools = c.list_all_tools().await.unwrap();
        for name in ["approvals_list", "approvals_approve", "approvals_deny"] {
            assert!(tools.iter().any(|t| t.name == name), "{name} not offered");
        }
        let r = tool(
            &c,
            "linux_writeFile",
            json!({"path": "notes/first.txt", "content": "written after approval\n"}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{}", text(&r));
        let pending = structured(&r);
        assert_eq!(pending["status"], "pending_approval", "{pending}");
        let id = pending["approval_id"].as_str().unwrap().to_owned();
        assert!(!workspace_file(cwd.path(), "notes/first.txt").exists());

        let list = structured(&tool(&c, "approvals_list", json!({"status": "pending"})).await);
        assert_eq!(list["approvals"][0]["id"], id.as_str(), "{list}");
        assert_eq!(list["approvals"][0]["requester"], "anonymous", "{list}");

        let r = tool(
            &c,
            "approvals_approve",
            json!({"id": id, "comment": "mine"}),
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        assert_eq!(
            std::fs::read_to_string(workspace_file(cwd.path(), "notes/first.txt")).unwrap(),
            "written after approval\n"
        );
        // Once: the approval is spent, a second approval is refused and nothing is written again.
        let again = tool(&c, "approvals_approve", json!({"id": id})).await;
        assert_eq!(again.is_error, Some(true), "{}", text(&again));
        assert!(text(&again).contains("not pending"), "{}", text(&again));
        let list = structured(&tool(&c, "approvals_list", json!({})).await);
        assert_eq!(list["approvals"][0]["status"], "executed", "{list}");
        let backups =
            structured(&tool(&c, "linux_listBackups", json!({"path": "notes/first.txt"})).await);
        assert_eq!(
            backups["backups"].as_array().map(Vec::len),
            Some(0),
            "the file was written more than once: {backups}"
        );
        // The console is open to the local operator, who sees the decision there.
        let page = reqwest::get(stack.ports.master_url("/ui/approvals"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("<span id=\"who\">anonymous</span>"), "{page}");
        assert!(page.contains(&format!("<tr data-id=\"{id}\">")), "{page}");
    });
}

#[test]
fn the_operator_approves_in_the_client_by_elicitation() {
    if !python_mcp_available() {
        skip("the Python `mcp` SDK is not installed (pip install mcp)");
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let stack = Stack::start(cwd.path(), &[]);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/python/elicit_approval.py");
    let run = |answer: &str, file: &str| -> Value {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(stack.ports.master_url("/mcp"))
            .args(["-", "linux_writeFile", answer])
            .arg(json!({"path": file, "content": format!("{answer}\n")}).to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{answer}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()
    };
    let r = run("accept", "elicited.txt");
    assert_eq!(r["asked"].as_array().unwrap().len(), 1, "{r}");
    assert!(
        r["asked"][0].as_str().unwrap().contains("linux_writeFile"),
        "{r}"
    );
    assert_eq!(r["is_error"], false, "{r}");
    assert_eq!(
        std::fs::read_to_string(workspace_file(cwd.path(), "elicited.txt")).unwrap(),
        "accept\n"
    );
    let r = run("reject", "refused.txt");
    assert_eq!(r["asked"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["is_error"], true, "{r}");
    assert!(!workspace_file(cwd.path(), "refused.txt").exists());
}

#[test]
fn with_auth_on_a_requester_may_not_approve_their_own_call() {
    let cwd = tempfile::tempdir().unwrap();
    let hash = mcp_runtime::auth::hash_token("alice-token");
    std::fs::write(
        cwd.path().join("tokens.toml"),
        format!("[[token]]\nidentity = \"alice\"\nroles = [\"approver\"]\nsha256 = \"{hash}\"\n"),
    )
    .unwrap();
    let stack = Stack::start(
        cwd.path(),
        &[("MCP_SERVER_AUTH_TOKENS_FILE", "tokens.toml")],
    );
    assert!(
        stack
            .first_screen()
            .contains("may not approve their own calls"),
        "{}",
        stack.first_screen()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client(&stack.ports.master_url("/mcp"), Some("alice-token")).await;
        let r = tool(
            &c,
            "linux_writeFile",
            json!({"path": "mine.txt", "content": "x"}),
        )
        .await;
        let pending = structured(&r);
        assert_eq!(pending["status"], "pending_approval", "{pending}");
        let r = tool(
            &c,
            "approvals_approve",
            json!({"id": pending["approval_id"]}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{}", text(&r));
        assert!(text(&r).contains("may not decide it"), "{}", text(&r));
    });
    assert!(!workspace_file(cwd.path(), "mine.txt").exists());
}
