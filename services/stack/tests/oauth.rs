//! `mcp-stack` with one setting, `[server.oauth]`: master takes access tokens from a real OpenID
//! provider (oidc-provider on loopback); the official Python SDK's own OAuth client logs a user in
//! (discovery, registration, authorization code with PKCE) and uses the services through master;
//! the services behind master keep taking master's internal token, and an OAuth token sent to a
//! service's own port is refused there.

mod common;

use common::Stack;
use mcp_test_support::oidc::{Idp, python_sdk};
use mcp_test_support::{client, python_mcp_available, skip, structured, text, tool};
use serde_json::json;

#[test]
fn the_stack_takes_oauth_tokens_with_one_setting() {
    if !python_mcp_available() {
        skip("the Python MCP SDK is not installed");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(idp) = rt.block_on(Idp::start("k1")) else {
        return;
    };
    let cwd = tempfile::tempdir().unwrap();
    let oauth = format!(
        "{{ issuer = \"{}\", scope_roles = {{ \"mcp:admin\" = [\"admin\"] }} }}",
        idp.issuer
    );
    let stack = Stack::start(cwd.path(), &[("MCP_SERVER_OAUTH", &oauth)]);
    let screen = stack.first_screen();
    assert!(
        screen.contains(&format!(
            "OAuth:      master takes access tokens from {}",
            idp.issuer
        )) && screen.contains("auth is on"),
        "{screen}"
    );
    let url = stack.ports.master_url("/mcp");
    rt.block_on(async {
        // Without a token: the challenge that starts a client's OAuth discovery.
        let r = reqwest::Client::new()
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{}\"",
                stack
                    .ports
                    .master_url("/.well-known/oauth-protected-resource/mcp")
            )),
            "{challenge}"
        );

        // A person, through the Python SDK's own OAuth client: every service's tools, and a call.
        let report = python_sdk(&[
            &url,
            "user",
            "alice",
            &json!([["cmdb_getHost", {"name": "aicrusher"}]]).to_string(),
        ])
        .await;
        let tools: Vec<String> = serde_json::from_value(report["tools"].clone()).unwrap();
        for ns in [
            "linux_",
            "k8s_",
            "cmdb_",
            "secrets_",
            "ai_models_",
            "freqtrade_",
            "orchestrator_",
            "approvals_",
            "master_",
        ] {
            assert!(
                tools.iter().any(|t| t.starts_with(ns)),
                "no {ns}* tool: {tools:?}"
            );
        }
        let got = &report["results"][0];
        assert_eq!(got["is_error"], false, "{report}");
        assert_eq!(got["structured"]["host"]["name"], "aicrusher", "{report}");

        // A machine's token works through master, and is refused at a service's own port: only
        // master takes OAuth tokens; the services behind it take master's internal one.
        let token = idp
            .client_credentials("machine", "machine-secret", &url, "mcp:read mcp:admin")
            .await;
        let c = client(&url, Some(&token)).await;
        let r = tool(&c, "cmdb_getHost", json!({"name": "aicrusher"})).await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        assert_eq!(structured(&r)["host"]["name"], "aicrusher");
        let _ = c.cancel().await;
        let direct = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/mcp", stack.ports.cmdb))
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status(), 401);
    });
    // No token reached the stack's files or logs.
    let log = std::fs::read_to_string(&stack.stdout).unwrap_or_default();
    assert!(!log.contains("eyJ"), "a JWT in the log");
}
