//! Master as an OAuth 2.1 resource server (MCP authorization) against a real OpenID provider:
//! `oidc-provider` (a certified OpenID Connect implementation) run with Node 22 by npx on
//! loopback. Discovery, JWT access tokens and every way of refusing one, key rotation without a
//! restart, opaque tokens by introspection, scope step-up on a toolset, static tokens beside
//! OAuth, and the official Python SDK's own OAuth clients (authorization code with PKCE for two
//! users with different roles, whose subjects then run through approvals and audit; client
//! credentials for a machine).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use mcp_runtime::oauth::OAuthConfig;
use mcp_test_support::oidc::{Idp, python_sdk};
use serde_json::{Value, json};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a request to `url` with `token` answers: status, `WWW-Authenticate`, body.
async fn probe(url: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "probe", "version": "1"}
            }}),
        );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), challenge, r.text().await.unwrap())
}

/// Tool names a caller with `token` sees at `url`.
async fn tools_seen(url: &str, token: &str) -> Vec<String> {
    let c = mcp_test_support::client(url, Some(token)).await;
    let mut names: Vec<String> = c
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    let _ = c.cancel().await;
    names
}

fn oauth_config(idp: &Idp) -> OAuthConfig {
    OAuthConfig {
        issuer: idp.issuer.clone(),
        required_scopes: vec!["mcp:read".into()],
        endpoint_scopes: [("ops".to_owned(), vec!["mcp:admin".to_owned()])].into(),
        tool_scopes: [("cmdb_list*".to_owned(), vec!["mcp:admin".to_owned()])].into(),
        jwks_min_refresh_secs: 1,
        leeway_secs: 1,
        ..OAuthConfig::default()
    }
}

fn metric(text: &str, reason: &str) -> u64 {
    let needle = format!("mcp_auth_failures_total{{reason=\"{reason}\",service=\"master\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_providers_tokens_name_the_caller_and_every_bad_token_is_refused() {
    let Some(mut idp) = Idp::start("k1").await else {
        return;
    };
    let cmdb = start_cmdb(server_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path(), &[("script", &["admin"], "static-script-token")]);
    let master = start_master_in(
        dir,
        &format!(
            "[[master.toolset]]\nname = \"ops\"\nnamespaces = [\"cmdb\"]\n\
             [[master.policy.rule]]\ntools = [\"cmdb_listHosts\"]\nroles = [\"admin\"]\naction = \"allow\"\n\
             [[master.policy.rule]]\ntools = [\"cmdb_listHosts\"]\naction = \"deny\"\n{}",
            downstream("cmdb", None, "http", &cmdb.url("/mcp"))
        ),
        mcp_runtime::ServerConfig {
            oauth: Some(oauth_config(&idp)),
            auth_tokens_file: Some(tokens),
            ..server_config()
        },
    )
    .await;
    let url = master.url("/mcp");
    let base = master.url("");

    // RFC 9728: where clients learn whom to ask, per endpoint.
    let prm: Value = reqwest::get(master.url("/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], url.as_str(), "{prm}");
    assert_eq!(prm["authorization_servers"], json!([idp.issuer]), "{prm}");
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
    let scopes = prm["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&json!("mcp:read")) && scopes.contains(&json!("mcp:admin")));
    let ops_prm: Value = reqwest::get(master.url("/.well-known/oauth-protected-resource/mcp/ops"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ops_prm["resource"], master.url("/mcp/ops").as_str());
    let root: Value = reqwest::get(master.url("/.well-known/oauth-protected-resource"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root["resource"], base.as_str());
    let nowhere = reqwest::get(master.url("/.well-known/oauth-protected-resource/mcp/nope"))
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);

    // No token: 401 with the challenge MCP clients follow, and no error code (nothing was wrong
    // with a token that was not sent).
    let (status, challenge, _) = probe(&url, None).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:read\""
        )
    );

    // A machine's token from the provider: its subject is the caller, its roles claim counts.
    let machine = idp
        .client_credentials("machine", "machine-secret", &url, "mcp:read mcp:admin")
        .await;
    let reader = idp
        .client_credentials("reader", "reader-secret", &url, "mcp:read")
        .await;
    let c = mcp_test_support::client(&url, Some(&machine)).await;
    let r = mcp_test_support::tool(&c, "cmdb_getHost", json!({"name": "aicrusher"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let r = mcp_test_support::tool(&c, "cmdb_listHosts", json!({})).await;
    assert_ne!(r.is_error, Some(true), "admin may list: {}", text_of(&r));
    let _ = c.cancel().await;
    // Different roles, different tools: the reader (no admin role) is not shown cmdb_listHosts
    // and cannot call it.
    assert!(
        tools_seen(&url, &machine)
            .await
            .contains(&"cmdb_listHosts".to_owned())
    );
    assert!(
        !tools_seen(&url, &reader)
            .await
            .contains(&"cmdb_listHosts".to_owned())
    );
    let c = mcp_test_support::client(&url, Some(&reader)).await;
    let refused = c
        .call_tool(call("cmdb_listHosts", json!({})))
        .await
        .map(|r| r.is_error == Some(true))
        .unwrap_or(true);
    assert!(refused, "reader has no admin role");
    let r = mcp_test_support::tool(&c, "cmdb_getHost", json!({"name": "aicrusher"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let _ = c.cancel().await;
    // Static tokens keep working beside OAuth.
    let c = mcp_test_support::client(&url, Some("static-script-token")).await;
    let r = mcp_test_support::tool(&c, "cmdb_getHost", json!({"name": "aicrusher"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let _ = c.cancel().await;
    let audit = master.path("audit.sqlite");
    let identities = audit_identities(&audit, 3).await;
    assert_eq!(
        identities,
        ["machine", "reader", "script"],
        "audit rows carry each caller's subject"
    );

    // Step-up per tool: cmdb_list* needs mcp:admin. The reader's call is refused at HTTP level
    // with every scope the call needs, before any session or policy sees it.
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&reader)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "cmdb_listHosts", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp:read mcp:admin\""),
        "{challenge}"
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("tool `cmdb_listHosts` needs scope mcp:admin"),
        "the body names the tool and the scope"
    );

    // Step-up: the ops toolset needs mcp:admin; the reader's token for it gets 403 naming it.
    let ops = master.url("/mcp/ops");
    let reader_ops = idp
        .client_credentials("reader", "reader-secret", &ops, "mcp:read")
        .await;
    let (status, challenge, body) = probe(&ops, Some(&reader_ops)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp:read mcp:admin\"")
            && challenge.contains("/.well-known/oauth-protected-resource/mcp/ops"),
        "{challenge}"
    );
    let machine_ops = idp
        .client_credentials("machine", "machine-secret", &ops, "mcp:read mcp:admin")
        .await;
    assert_eq!(
        tools_seen(&ops, &machine_ops).await,
        [
            "cmdb_getHost",
            "cmdb_listCiTypes",
            "cmdb_listHosts",
            "cmdb_searchHosts"
        ]
    );
    // A token for /mcp is not one for /mcp/ops (another resource).
    let (status, _, body) = probe(&ops, Some(&machine)).await;
    assert_eq!(status, 401, "{body}");

    // Every bad token: 401, an error a person can act on, the token never echoed, counted.
    let valid = |extra: Value| {
        let mut claims = json!({
            "iss": idp.issuer, "sub": "mallory", "aud": url, "scope": "mcp:read",
            "iat": now(), "exp": now() + 600,
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let elsewhere = idp
        .client_credentials(
            "machine",
            "machine-secret",
            "https://other.example.com/mcp",
            "mcp:read",
        )
        .await;
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "wrong audience",
            elsewhere,
            "audience",
            "meant for another resource",
        ),
        (
            "wrong issuer",
            idp.sign("k1", valid(json!({"iss": "https://evil.example.com"})))
                .await,
            "issuer",
            "not issued by",
        ),
        (
            "expired",
            idp.sign(
                "k1",
                valid(json!({"iat": now() - 7200, "exp": now() - 3600})),
            )
            .await,
            "expired",
            "token expired",
        ),
        (
            "not yet valid",
            idp.sign("k1", valid(json!({"nbf": now() + 3600}))).await,
            "not_yet_valid",
            "not valid yet",
        ),
        (
            "unsigned",
            format!(
                "{}.{}.",
                b64(json!({"alg": "none", "typ": "JWT"})),
                b64(valid(json!({})))
            ),
            "algorithm",
            "`none` is not accepted",
        ),
        (
            "HMAC",
            format!(
                "{}.{}.c2ln",
                b64(json!({"alg": "HS256", "kid": "k1"})),
                b64(valid(json!({})))
            ),
            "algorithm",
            "`HS256` is not accepted",
        ),
        (
            "unknown key",
            idp.sign("stranger", valid(json!({}))).await,
            "unknown_key",
            "not in the issuer's JWKS",
        ),
        (
            "forged signature",
            {
                let t = idp.sign("k1", valid(json!({}))).await;
                let (head, _) = t.rsplit_once('.').unwrap();
                format!("{head}.{}", b64(json!("forged")))
            },
            "signature",
            "signature is invalid",
        ),
        (
            "garbage",
            "garbage-not-a-token".to_owned(),
            "malformed",
            "not a JWT",
        ),
        (
            "garbage JWT",
            "e30.e30.e30".to_owned(),
            "malformed",
            "not a well-formed JWT",
        ),
        (
            "no subject",
            idp.sign("k1", {
                let mut c = valid(json!({}));
                c.as_object_mut().unwrap().remove("sub");
                c
            })
            .await,
            "claims",
            "no `sub` claim",
        ),
    ];
    for (what, token, reason, says) in &cases {
        let before = metric(
            &mcp_test_support::metrics(&master.url("/metrics")).await,
            reason,
        );
        let (status, challenge, body) = probe(&url, Some(token)).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body.contains(says), "{what}: {body}");
        assert!(
            challenge.starts_with("Bearer resource_metadata=")
                && challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(
            !body.contains(token.as_str()) && !challenge.contains(token.as_str()),
            "{what}: token echoed"
        );
        let after = metric(
            &mcp_test_support::metrics(&master.url("/metrics")).await,
            reason,
        );
        assert_eq!(
            after,
            before + 1,
            "{what}: mcp_auth_failures_total{{reason={reason}}}"
        );
    }

    // An accepted token is remembered, but never past its `exp` (+ leeway, 1 s here).
    let short = idp
        .sign("k1", valid(json!({"sub": "brief", "exp": now() + 2})))
        .await;
    let (status, _, body) = probe(&url, Some(&short)).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = probe(&url, Some(&short)).await;
        if status == 401 {
            assert!(body.contains("token expired"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an expired token was still accepted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Rotation: the provider now publishes only k2. A token signed by k2 is accepted without a
    // restart (the unknown kid fetches the JWKS again); one signed by the retired k1 is refused.
    let old = machine.clone();
    idp.restart("k2").await;
    let fresh = idp
        .client_credentials("machine", "machine-secret", &url, "mcp:read")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = probe(&url, Some(&fresh)).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated-in key was never picked up: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, body) = probe(&url, Some(&old)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("key `k1`"), "{body}");
}

/// Identities of the first `n` audit rows of tool calls, waiting for the writer to commit them.
async fn audit_identities(db: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT identity FROM audit WHERE tool = 'cmdb_getHost' \
                 AND decision NOT LIKE 'pin_%' ORDER BY id",
            )
            .unwrap();
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if ids.len() >= n {
            return ids;
        }
        assert!(Instant::now() < deadline, "audit rows: {ids:?}, wanted {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opaque_tokens_are_introspected_with_the_servers_own_credentials() {
    let Some(idp) = Idp::start("k1").await else {
        return;
    };
    let cmdb = start_cmdb(server_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("introspection.secret");
    std::fs::write(&secret, "resource-secret\n").unwrap();
    let master = start_master_in(
        dir,
        &downstream("cmdb", None, "http", &cmdb.url("/mcp")),
        mcp_runtime::ServerConfig {
            oauth: Some(OAuthConfig {
                client_id: Some("mcp-resource".into()),
                client_secret_file: Some(secret),
                ..oauth_config(&idp)
            }),
            ..server_config()
        },
    )
    .await;
    let url = master.url("/mcp");
    let opaque = idp
        .client_credentials("opaque-machine", "opaque-secret", &url, "mcp:read")
        .await;
    assert_eq!(opaque.matches('.').count(), 0, "an opaque token: {opaque}");
    let c = mcp_test_support::client(&url, Some(&opaque)).await;
    let r = mcp_test_support::tool(&c, "cmdb_getHost", json!({"name": "aicrusher"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let _ = c.cancel().await;
    // Named by its client (introspection gives no subject for a client-credentials token).
    assert_eq!(
        audit_identities(&master.path("audit.sqlite"), 1).await,
        ["opaque-machine"]
    );
    // One the provider never issued is inactive.
    let (status, _, body) = probe(&url, Some("made-up-opaque-token")).await;
    assert_eq!(status, 401);
    assert!(body.contains("not active"), "{body}");
    // For another resource: refused by audience.
    let elsewhere = idp
        .client_credentials(
            "opaque-machine",
            "opaque-secret",
            "https://other.example.com/mcp",
            "mcp:read",
        )
        .await;
    let (status, _, body) = probe(&url, Some(&elsewhere)).await;
    assert_eq!(status, 401);
    assert!(body.contains("another resource"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_logs_users_in_and_their_subjects_run_through_approvals() {
    if !python_mcp_available() {
        skip("the Python MCP SDK is not installed");
        return;
    }
    let Some(idp) = Idp::start("k1").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("shared.key");
    std::fs::write(&key, "oauth-approval-and-identity-key-0123456789").unwrap();
    let secrets = start_secrets_demo(&key, "").await;
    let master = start_master_in(
        dir,
        &format!(
            "identity_key_file = {:?}\n\
             [[master.policy.rule]]\ntools = [\"approvals_list\"]\nroles = [\"approver\"]\naction = \"allow\"\n\
             [[master.policy.rule]]\ntools = [\"approvals_list\"]\naction = \"deny\"\n{}",
            key.display().to_string(),
            downstream("secrets", None, "http", &secrets.url("/mcp"))
        ),
        mcp_runtime::ServerConfig {
            oauth: Some(oauth_config(&idp)),
            ..server_config()
        },
    )
    .await;
    let url = master.url("/mcp");

    // bob (no roles) logs in through the SDK's authorization-code flow and asks for a write that
    // needs an approval.
    let set = json!([["secrets_setSecret", {"name": "keepass/Infra/postgres", "value": "rotated-by-oauth"}]]);
    let bob = python_sdk(&[&url, "user", "bob", &set.to_string()]).await;
    let pending = &bob["results"][0];
    assert_eq!(pending["is_error"], true, "{bob}");
    assert_eq!(pending["structured"]["status"], "pending_approval", "{bob}");
    let id = pending["structured"]["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // bob may not decide it (self-approval, and no role); alice (approver, from her token's roles
    // claim) sees it with bob as the requester and approves it.
    let bob_again = python_sdk(&[
        &url,
        "user",
        "bob",
        &json!([["approvals_approve", {"id": id}]]).to_string(),
    ])
    .await;
    assert_eq!(bob_again["results"][0]["is_error"], true, "{bob_again}");
    let alice = python_sdk(&[
        &url,
        "user",
        "alice",
        &json!([
            ["approvals_list", {"status": "pending"}],
            ["approvals_approve", {"id": id, "comment": "ok"}],
            ["orchestrator_executeWorkflow", {"wait": true, "definition": {"name": "mine", "steps": [
                {"id": "a", "service": "secrets", "tool": "listBackends"}
            ]}}],
        ])
        .to_string(),
    ])
    .await;
    let listed = &alice["results"][0]["structured"]["approvals"][0];
    assert_eq!(listed["id"], id.as_str(), "{alice}");
    assert_eq!(listed["requester"], "bob", "{alice}");
    let approved = &alice["results"][1];
    assert_eq!(approved["is_error"], false, "{alice}");
    let decided = &approved["structured"]["approval"];
    assert_eq!(decided["requester"], "bob", "{alice}");
    assert_eq!(decided["decided_by"], "alice", "{alice}");
    assert_eq!(decided["status"], "executed", "{alice}");
    // A workflow alice starts is hers.
    let run = &alice["results"][2]["structured"];
    assert_eq!(run["owner"], "alice", "{alice}");
    assert_eq!(run["status"], "completed", "{alice}");
    // Different roles, different tools: approvals_list is denied to bob by policy.
    let bob_tools: Vec<String> = serde_json::from_value(bob["tools"].clone()).unwrap();
    let alice_tools: Vec<String> = serde_json::from_value(alice["tools"].clone()).unwrap();
    assert!(
        alice_tools.contains(&"approvals_list".to_owned()),
        "{alice_tools:?}"
    );
    assert!(
        !bob_tools.contains(&"approvals_list".to_owned()),
        "{bob_tools:?}"
    );

    // A machine with client credentials, through the SDK's own provider.
    let secret = master.path("machine.secret");
    std::fs::write(&secret, "machine-secret").unwrap();
    let machine = python_sdk(&[
        &url,
        "machine",
        "machine",
        secret.to_str().unwrap(),
        &json!([["secrets_listSecrets", {}]]).to_string(),
    ])
    .await;
    assert_eq!(machine["results"][0]["is_error"], false, "{machine}");

    // The audit rows name each user's subject.
    let conn = rusqlite::Connection::open(master.path("audit.sqlite")).unwrap();
    let who: Vec<(String, String)> = conn
        .prepare("SELECT identity, tool FROM audit WHERE tool LIKE 'secrets_%' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        who.contains(&("bob".into(), "secrets_setSecret".into()))
            && who.contains(&("machine".into(), "secrets_listSecrets".into())),
        "{who:?}"
    );
    assert!(!who.iter().any(|(i, _)| i == "anonymous"), "{who:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn downstreams_get_tokens_of_their_own_never_the_clients() {
    let Some(idp) = Idp::start("k1").await else {
        return;
    };
    // The downstream is itself an OAuth resource server: it accepts only tokens whose audience
    // is its own URL, so the client's token (audience: master) would be refused there.
    let cmdb = start_cmdb(mcp_runtime::ServerConfig {
        oauth: Some(OAuthConfig {
            issuer: idp.issuer.clone(),
            ..OAuthConfig::default()
        }),
        ..server_config()
    })
    .await;
    let cmdb_url = cmdb.url("/mcp");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("master-client.secret");
    std::fs::write(&secret, "master-secret\n").unwrap();
    let oauth = format!(
        "oauth = {{ client_id = \"mcp-master\", client_secret_file = {:?} }}",
        secret.display().to_string()
    );
    let master = start_master_in(
        dir,
        &format!(
            "[[master.downstream]]\nname = \"exchanged\"\nurl = {cmdb_url:?}\nauth = \"token_exchange\"\n{oauth}\n\
             [[master.downstream]]\nname = \"own\"\nurl = {cmdb_url:?}\nauth = \"client_credentials\"\n{oauth}\n"
        ),
        mcp_runtime::ServerConfig {
            oauth: Some(OAuthConfig {
                jwks_cache_secs: 1,
                ..oauth_config(&idp)
            }),
            ..server_config()
        },
    )
    .await;
    let url = master.url("/mcp");
    let machine = idp
        .client_credentials("machine", "machine-secret", &url, "mcp:read mcp:admin")
        .await;
    let c = mcp_test_support::client(&url, Some(&machine)).await;
    // Master lists both (its own requests go with its client-credentials token).
    let tools: Vec<String> = c
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        tools.contains(&"exchanged_getHost".to_owned())
            && tools.contains(&"own_getHost".to_owned()),
        "{tools:?}"
    );
    for tool in ["exchanged_getHost", "own_getHost", "exchanged_getHost"] {
        let r = mcp_test_support::tool(&c, tool, json!({"name": "aicrusher"})).await;
        assert_ne!(r.is_error, Some(true), "{tool}: {}", text_of(&r));
    }
    let _ = c.cancel().await;

    // One exchange (the second call reused it): the machine's subject, master as the actor, the
    // downstream as the resource; the subject token was the one meant for master.
    let exchanges: Value = reqwest::get(format!("{}/test/exchanges", idp.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        exchanges,
        json!([{ "sub": "machine", "subject_aud": url, "actor": "mcp-master", "resource": cmdb_url }])
    );
    // The downstream refused nothing: it never saw a token meant for someone else.
    let m = mcp_test_support::metrics(&cmdb.url("/metrics")).await;
    assert!(
        !m.contains("mcp_auth_failures_total{"),
        "the downstream refused a token:\n{}",
        m.lines()
            .filter(|l| l.starts_with("mcp_auth_failures_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        m.contains("mcp_tool_calls_total{service=\"cmdb\",status=\"success\",tool=\"getHost\"} 3"),
        "{m}"
    );
    // And the client's own token does not work there.
    let (status, _, _) = probe(&cmdb_url, Some(&machine)).await;
    assert_eq!(status, 401);

    // When no token can be had (the provider is gone), the call is a tool error saying why,
    // and nothing is sent to the downstream.
    let reader = idp
        .client_credentials("reader", "reader-secret", &url, "mcp:read")
        .await;
    let mut idp = idp;
    idp.child.kill().await.unwrap();
    // Let master's key set go stale (jwks_cache_secs = 1): with the issuer gone, the keys it
    // holds still verify the reader's token (the refusal below is about the downstream's token).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let c = mcp_test_support::client(&url, Some(&reader)).await;
    let r = mcp_test_support::tool(&c, "exchanged_getHost", json!({"name": "aicrusher"})).await;
    assert_eq!(r.is_error, Some(true));
    let says = text_of(&r);
    assert!(
        says.contains("cannot get a token for downstream `exchanged`")
            && says.contains("not sent")
            && !says.contains(&reader),
        "{says}"
    );
    let _ = c.cancel().await;
    let m = mcp_test_support::metrics(&cmdb.url("/metrics")).await;
    assert!(
        m.contains("mcp_tool_calls_total{service=\"cmdb\",status=\"success\",tool=\"getHost\"} 3"),
        "{m}"
    );
    // Master counts it as a failed call to that downstream, like any other.
    let m = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert!(
        m.contains(
            "mcp_proxied_calls_total{downstream=\"exchanged\",status=\"error\",tool=\"getHost\"} 1"
        ),
        "{m}"
    );
}
