//! The master gateway end to end over loopback: namespacing and aliases, HTTP, SSE and stdio
//! downstreams, progress and cancellation forwarding, a downstream dying under load and coming back,
//! role filtering, rate limits and the audit trail.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mcp_runtime::{ConfigDoc, ServerConfig, ShutdownToken};
use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

/// A client that counts what master sends it.
#[derive(Clone, Default)]
struct Watcher {
    list_changed: Arc<AtomicUsize>,
    progress: Arc<std::sync::Mutex<Vec<f64>>>,
}

impl ClientHandler for Watcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params.progress);
    }
}

async fn watcher_client(
    url: &str,
    token: Option<&str>,
) -> (RunningService<RoleClient, Watcher>, Watcher) {
    let w = Watcher::default();
    let mut cfg =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.to_owned(),
        );
    if let Some(t) = token {
        cfg = cfg.auth_header(t.to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(cfg);
    (w.clone().serve(transport).await.expect("connect"), w)
}

/// Waits up to 10 s for `cond`, failing with `what`.
async fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespacing_aliases_and_transports() {
    let cmdb = start_cmdb(server_config()).await;
    let master = start_master(
        &(downstream("cmdb", None, "http", &cmdb.url("/mcp"))
            + &downstream("legacy", Some("cmdbsse"), "sse", &cmdb.url("/sse"))),
        server_config(),
    )
    .await;
    let client = mcp_client(&master.url("/mcp")).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "master_hello_world",
        "master_getSystemStatus",
        "cmdb_getHost",
        "cmdb_searchHosts",
        "cmdbsse_getHost",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for t in &tools {
        assert!(
            t.name.len() <= 64
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
    }
    // Annotations pass through untouched.
    let get_host = tools.iter().find(|t| t.name == "cmdb_getHost").unwrap();
    assert_eq!(
        get_host.annotations.as_ref().unwrap().read_only_hint,
        Some(true)
    );

    // Through master equals direct.
    let direct = mcp_client(&cmdb.url("/mcp")).await;
    let d = direct
        .call_tool(call("getHost", json!({"name": "aicrusher"})))
        .await
        .unwrap();
    for name in ["cmdb_getHost", "cmdb.getHost", "cmdbsse_getHost"] {
        let m = client
            .call_tool(call(name, json!({"name": "aicrusher"})))
            .await
            .unwrap();
        assert_eq!(m.structured_content, d.structured_content, "{name}");
        assert_eq!(m.is_error, d.is_error);
    }
    // A downstream tool error stays a tool error.
    let m = client
        .call_tool(call("cmdb_getHost", json!({"name": "nope"})))
        .await
        .unwrap();
    assert_eq!(m.is_error, Some(true));
    assert!(text_of(&m).contains("not in the CMDB"));

    let hello = client
        .call_tool(call("master_hello_world", json!({})))
        .await
        .unwrap();
    assert!(text_of(&hello).contains("Hello"));
    let status = client
        .call_tool(call("get_system_status", json!({})))
        .await
        .unwrap();
    let s = status.structured_content.unwrap();
    let ds = s["downstreams"].as_array().unwrap();
    assert_eq!(ds.len(), 2);
    assert!(
        ds.iter()
            .all(|d| d["state"] == "up" && d["circuit"] == "closed" && d["tools"] == 4),
        "{s}"
    );

    let err = client
        .call_tool(call("cmdb_noSuchTool", json!({})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool"), "{err}");
    client.cancel().await.unwrap();
    direct.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stdio_downstream_server_everything_passes_through() {
    if !npx_available() {
        skip("npx is not installed; the stdio downstream (server-everything) cannot run");
        return;
    }
    let master = start_master(
        "[[master.downstream]]\nname = \"everything\"\ntransport = \"stdio\"\ncommand = \"npx\"\nargs = [\"-y\", \"-p\", \"node@22\", \"-p\", \"@modelcontextprotocol/server-everything@2026.8.31\", \"mcp-server-everything\"]\ntimeout_secs = 30\n",
        server_config(),
    )
    .await;
    let (client, watcher) = watcher_client(&master.url("/mcp"), None).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let tools = loop {
        let tools = client.list_all_tools().await.unwrap();
        if tools.iter().any(|t| t.name == "everything_echo") {
            break tools;
        }
        assert!(Instant::now() < deadline, "server-everything never came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(tools.iter().any(|t| t.name == "everything_get-sum"));
    let r = client
        .call_tool(call("everything_echo", json!({"message": "hi there"})))
        .await
        .unwrap();
    assert!(text_of(&r).contains("hi there"), "{r:?}");
    let r = client
        .call_tool(call("everything_get-sum", json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    assert!(text_of(&r).contains('5'), "{r:?}");

    let prompts = client.list_all_prompts().await.unwrap();
    let simple = prompts
        .iter()
        .find(|p| p.name.starts_with("everything_"))
        .expect("prompts pass through");
    assert!(simple.name.starts_with("everything_"));
    let resources = client.list_all_resources().await.unwrap();
    let res = resources.first().expect("resources pass through");
    assert!(res.uri.starts_with("everything+"), "{}", res.uri);
    let read = client
        .read_resource(ReadResourceRequestParams::new(res.uri.clone()))
        .await
        .unwrap();
    match &read.contents[0] {
        ResourceContents::TextResourceContents { uri, .. }
        | ResourceContents::BlobResourceContents { uri, .. } => {
            assert_eq!(uri, &res.uri);
        }
        _ => panic!("unexpected contents"),
    }

    // Progress of a long operation reaches the client with its own token.
    let mut p = call(
        "everything_trigger-long-running-operation",
        json!({"duration": 1, "steps": 3}),
    );
    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(NumberOrString::String(
        "client-token-7".into(),
    )));
    p.meta = Some(meta);
    let r = client.call_tool(p).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let progress = watcher.progress.lock().unwrap().clone();
    assert!(progress.len() >= 2, "progress notifications: {progress:?}");
    // rmcp's client replaces any token with its own; a raw client keeps "client-token-7", and
    // master must answer under it, not under the token master used downstream.
    let tokens = raw_progress_tokens(&master.url("/mcp")).await;
    assert!(tokens.len() >= 2, "progress notifications: {tokens:?}");
    assert!(
        tokens.iter().all(|t| t == "client-token-7"),
        "progress must come with the client's own token: {tokens:?}"
    );
    client.cancel().await.unwrap();
}

/// Calls `everything_trigger-long-running-operation` over raw streamable HTTP with progress
/// token "client-token-7" and returns the tokens of the progress notifications in the answer.
async fn raw_progress_tokens(url: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let post = |body: Value, sid: Option<String>| {
        let mut r = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(sid) = sid {
            r = r.header("mcp-session-id", sid);
        }
        r.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let sid = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    init.text().await.unwrap();
    post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(sid.clone()),
    )
    .await
    .unwrap();
    let body = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "everything_trigger-long-running-operation",
            "arguments": {"duration": 1, "steps": 3},
            "_meta": {"progressToken": "client-token-7"}}}),
        Some(sid),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            m["params"]["progressToken"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

/// A downstream whose only tool waits until cancelled and records that it was.
#[derive(Clone)]
struct Waiter {
    cancelled: Arc<AtomicBool>,
    started: Arc<AtomicBool>,
}

impl ServerHandler for Waiter {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = Arc::new(json!({"type": "object"}).as_object().cloned().unwrap());
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "wait",
            "Waits until cancelled",
            schema,
        )]))
    }

    async fn call_tool(
        &self,
        _r: CallToolRequestParams,
        c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.started.store(true, Ordering::SeqCst);
        tokio::select! {
            () = c.ct.cancelled() => { self.cancelled.store(true, Ordering::SeqCst); }
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        Ok(CallToolResult::success(vec![ContentBlock::text("finished")]).into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancellation_reaches_the_downstream() {
    let waiter = Waiter {
        cancelled: Arc::new(AtomicBool::new(false)),
        started: Arc::new(AtomicBool::new(false)),
    };
    let w = waiter.clone();
    let down = mcp_runtime::Runtime::new("waiter", "0", move || w.clone())
        .with_config(server_config())
        .bind()
        .await
        .unwrap();
    let master = start_master(
        &downstream("waiter", None, "http", &down.url("/mcp")),
        server_config(),
    )
    .await;
    let client = mcp_client(&master.url("/mcp")).await;
    let handle = client
        .peer()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(call("waiter_wait", json!({})))),
            rmcp::service::PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    wait_for(
        || waiter.started.load(Ordering::SeqCst),
        "the call to reach the downstream",
    )
    .await;
    handle
        .cancel(Some("user pressed stop".into()))
        .await
        .unwrap();
    wait_for(
        || waiter.cancelled.load(Ordering::SeqCst),
        "the downstream to see the cancellation",
    )
    .await;
    client.cancel().await.unwrap();
    down.stop().await.unwrap();
}

async fn start_cmdb_on(port: u16, dir: &std::path::Path) -> (mcp_runtime::Running, ShutdownToken) {
    let csv = dir.join("cmdb.csv");
    if !csv.exists() {
        std::fs::write(&csv, mcp_cmdb::SAMPLE_CSV).unwrap();
    }
    let doc = ConfigDoc::from_str(
        &format!("[cmdb]\ncsv_path = {:?}\n", csv.display().to_string()),
        "t",
    )
    .unwrap();
    let shutdown = ShutdownToken::new();
    let cfg = ServerConfig {
        port,
        ..server_config()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match mcp_runtime::start::<mcp_cmdb::Cmdb>(&doc, cfg.clone(), shutdown.clone()).await {
            Ok(r) => return (r, shutdown),
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot restart cmdb on {port}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dying_downstream_fails_fast_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (cmdb, cmdb_stop) = start_cmdb_on(0, dir.path()).await;
    let port = cmdb.local_addr().port();
    let fixture = start_fixture().await;
    let master = start_master(
        &(downstream("cmdb", None, "http", &cmdb.url("/mcp"))
            + &downstream("fixture", None, "http", &fixture.url("/mcp"))),
        server_config(),
    )
    .await;
    let (client, watcher) = watcher_client(&master.url("/mcp"), None).await;
    let client = Arc::new(client);

    // 100 concurrent calls, half to each namespace; the CMDB dies in the middle.
    let mut tasks = Vec::new();
    for i in 0..100 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let (name, args) = if i % 2 == 0 {
                ("fixture_test_simple_text", json!({}))
            } else {
                ("cmdb_getHost", json!({"name": "aicrusher"}))
            };
            tokio::time::sleep(Duration::from_millis((i % 10) * 5)).await;
            (name, c.call_tool(call(name, args)).await)
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    cmdb_stop.cancel();
    let _ = cmdb.wait().await;
    for t in tasks {
        let (name, r) = t.await.unwrap();
        if name.starts_with("fixture") {
            let r = r.unwrap_or_else(|e| panic!("fixture call failed: {e}"));
            assert_ne!(r.is_error, Some(true), "{r:?}");
        } else {
            // Either it made it before the kill, or it failed with a clear message.
            match r {
                Ok(r) if r.is_error == Some(true) => {
                    assert!(text_of(&r).contains("cmdb"), "{}", text_of(&r))
                }
                Ok(_) => {}
                // A call in flight at the moment of death may also end in a protocol error.
                Err(e) => eprintln!("in-flight cmdb call ended with: {e}"),
            }
        }
    }
    // The dead namespace now fails fast with a clear reason, and clients were told the list changed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let r = client
            .call_tool(call("cmdb_getHost", json!({"name": "aicrusher"})))
            .await;
        let fast = started.elapsed() < Duration::from_millis(500);
        let unavailable = match &r {
            Ok(r) => text_of(r).contains("service cmdb unavailable"),
            Err(e) => e.to_string().contains("unknown tool"),
        };
        if unavailable && fast {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cmdb calls did not start failing fast: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(
        || watcher.list_changed.load(Ordering::SeqCst) > 0,
        "tools/list_changed after the downstream died",
    )
    .await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(
        !tools.iter().any(|t| t.name.starts_with("cmdb_")),
        "dead tools still listed"
    );
    let r = client
        .call_tool(call("fixture_test_simple_text", json!({})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));

    // Back on the same port: the same client session works again without reconnecting.
    let seen = watcher.list_changed.load(Ordering::SeqCst);
    let (_cmdb2, cmdb2_stop) = start_cmdb_on(port, dir.path()).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = client
            .call_tool(call("cmdb_getHost", json!({"name": "aicrusher"})))
            .await;
        if let Ok(r) = &r
            && r.is_error != Some(true)
        {
            assert_eq!(
                r.structured_content.as_ref().unwrap()["host"]["name"],
                "aicrusher"
            );
            break;
        }
        assert!(Instant::now() < deadline, "cmdb never came back: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(
        || watcher.list_changed.load(Ordering::SeqCst) > seen,
        "list_changed when cmdb returned",
    )
    .await;
    cmdb2_stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roles_rate_limits_and_audit() {
    let cmdb = start_cmdb(server_config()).await;
    let tokens_dir = tempfile::tempdir().unwrap();
    let tokens = tokens_dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nidentity = \"alice\"\nroles = [\"admin\"]\nsha256 = \"{}\"\n[[token]]\nidentity = \"bob\"\nroles = [\"viewer\"]\nsha256 = \"{}\"\n",
            mcp_runtime::auth::hash_token("alice-tok"),
            mcp_runtime::auth::hash_token("bob-tok"),
        ),
    )
    .unwrap();
    let policy = "[master.policy]\ndefault_action = \"allow\"\n\
        [[master.policy.rule]]\ntools = [\"cmdb_*\"]\nroles = [\"admin\"]\naction = \"allow\"\n\
        [[master.policy.rule]]\ntools = [\"cmdb_searchHosts\"]\naction = \"approve\"\n\
        [[master.policy.rule]]\ntools = [\"cmdb_*\"]\naction = \"deny\"\n\
        [master.rate_limit]\n[[master.rate_limit.tool]]\ntools = [\"master_hello_world\"]\nper_minute = 2\n";
    let master = start_master(
        &(downstream("cmdb", None, "http", &cmdb.url("/mcp")) + policy),
        ServerConfig {
            auth_tokens_file: Some(tokens),
            ..server_config()
        },
    )
    .await;
    let (alice, _) = watcher_client(&master.url("/mcp"), Some("alice-tok")).await;
    let (bob, _) = watcher_client(&master.url("/mcp"), Some("bob-tok")).await;

    let alice_tools: Vec<String> = alice
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    let bob_tools: Vec<String> = bob
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(alice_tools.contains(&"cmdb_getHost".to_owned()));
    assert!(
        !bob_tools.contains(&"cmdb_getHost".to_owned()),
        "{bob_tools:?}"
    );
    assert!(
        bob_tools.contains(&"cmdb_searchHosts".to_owned()),
        "approval-gated tools stay visible"
    );
    assert!(bob_tools.contains(&"master_hello_world".to_owned()));

    let ok = alice
        .call_tool(call(
            "cmdb_getHost",
            json!({"name": "aicrusher", "password": "canary-pw-991"}),
        ))
        .await;
    // The extra argument is refused by the CMDB's schema or ignored; either way the call is audited.
    let _ = ok;
    let denied = bob
        .call_tool(call("cmdb_getHost", json!({"name": "aicrusher"})))
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("unknown tool"), "{denied}");
    let gated = bob
        .call_tool(call("cmdb_searchHosts", json!({})))
        .await
        .unwrap();
    assert_eq!(gated.is_error, Some(true));
    assert!(text_of(&gated).contains("approval required"));

    for _ in 0..2 {
        let r = bob
            .call_tool(call("master_hello_world", json!({})))
            .await
            .unwrap();
        assert_ne!(r.is_error, Some(true));
    }
    let limited = bob
        .call_tool(call("master_hello_world", json!({})))
        .await
        .unwrap();
    assert_eq!(limited.is_error, Some(true));
    assert!(
        text_of(&limited).contains("rate limit exceeded"),
        "{}",
        text_of(&limited)
    );
    // Alice has her own bucket.
    let r = alice
        .call_tool(call("master_hello_world", json!({})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));

    let metrics = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert!(
        metrics.contains("mcp_rate_limited_total{scope=\"tool\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mcp_downstream_up{downstream=\"cmdb\"} 1"));

    // Every call has an audit row, denied and limited ones included; no secret reaches it.
    let db = master.path("audit.sqlite");
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows: Vec<(String, String, String, String)> = loop {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT identity, tool, decision, arguments FROM audit ORDER BY id")
            .unwrap();
        let rows: Vec<(String, String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if rows.len() >= 7 {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "only {} audit rows: {rows:?}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let has = |who: &str, tool: &str, decision: &str| {
        rows.iter()
            .any(|r| r.0 == who && r.1 == tool && r.2 == decision)
    };
    assert!(has("alice", "cmdb_getHost", "allow"), "{rows:?}");
    assert!(has("bob", "cmdb_getHost", "deny"), "{rows:?}");
    assert!(has("bob", "cmdb_searchHosts", "approve"), "{rows:?}");
    assert!(has("bob", "master_hello_world", "rate_limited"), "{rows:?}");
    assert!(
        rows.iter().all(|r| !r.3.contains("canary-pw-991")),
        "{rows:?}"
    );
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_through_master() {
    if !npx_available() {
        skip("npx (Node.js) is not installed; the MCP conformance suite cannot run");
        return;
    }
    let fixture = start_fixture().await;
    let master = start_master(
        &downstream("fixture", Some(""), "http", &fixture.url("/mcp")),
        server_config(),
    )
    .await;
    assert_conformance_passes(&master.url("/mcp"), "expected-failures-master.yaml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_downstream_down_at_startup_joins_when_it_comes_up() {
    let port = common::free_port();
    let master = start_master(
        &downstream(
            "cmdb",
            None,
            "http",
            &format!("http://127.0.0.1:{port}/mcp"),
        ),
        server_config(),
    )
    .await;
    let (client, watcher) = watcher_client(&master.url("/mcp"), None).await;
    let r = client
        .call_tool(call("master_getSystemStatus", json!({})))
        .await
        .unwrap();
    assert_eq!(
        r.structured_content.unwrap()["downstreams"][0]["state"],
        "down"
    );
    let health: Value = reqwest::get(master.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["checks"]["downstream:cmdb"]["status"], "degraded");

    let dir = tempfile::tempdir().unwrap();
    let (_cmdb, stop) = start_cmdb_on(port, dir.path()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tools = client.list_all_tools().await.unwrap();
        if tools.iter().any(|t| t.name == "cmdb_getHost") {
            break;
        }
        assert!(Instant::now() < deadline, "cmdb never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The notification travels on its own task; give it a moment to land.
    wait_for(
        || watcher.list_changed.load(Ordering::SeqCst) >= 1,
        "list_changed when cmdb joined",
    )
    .await;
    let r = client
        .call_tool(call("cmdb_getHost", json!({"name": "web-01"})))
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["host"]["name"], "web-01");
    stop.cancel();
}

/// A downstream that says who it thinks is calling.
#[derive(Clone)]
struct WhoAmI;

impl ServerHandler for WhoAmI {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = Arc::new(json!({"type": "object"}).as_object().cloned().unwrap());
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "whoami",
            "Who is calling",
            schema,
        )]))
    }

    async fn call_tool(
        &self,
        _r: CallToolRequestParams,
        c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = mcp_runtime::CallerContext::from_request(&c);
        let header = c.extensions.get::<http::request::Parts>().is_some_and(|p| {
            p.headers
                .contains_key(mcp_runtime::assertion::IDENTITY_HEADER)
        });
        Ok(CallToolResult::structured(json!({
            "header": header,
            "identity": caller.identity.name,
            "roles": caller.identity.roles,
            "correlation_id": caller.correlation_id,
        }))
        .into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_learn_the_real_caller_from_a_signed_assertion() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef0123456789abcdef\n").unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(
        &other_key,
        "ffffffffffffffffffffffffffffffffffffffffffffffff\n",
    )
    .unwrap();
    let service = |key: Option<std::path::PathBuf>| async move {
        mcp_runtime::Runtime::new("whoami", "0", || WhoAmI)
            .with_config(ServerConfig {
                identity_key_file: key,
                ..server_config()
            })
            .bind()
            .await
            .unwrap()
    };
    let trusting = service(Some(key.clone())).await;
    let other = service(Some(other_key)).await;
    let master = start_master_trusting(
        &key,
        &[("alice", &["admin"], "alice-tok")],
        &format!(
            "{}{}",
            downstream("trusting", None, "http", &trusting.url("/mcp")),
            downstream("other", None, "http", &other.url("/mcp"))
        ),
    )
    .await;
    let (alice, _) = watcher_client(&master.url("/mcp"), Some("alice-tok")).await;
    let r = alice
        .call_tool(call("trusting_whoami", json!({})))
        .await
        .unwrap();
    let who = r.structured_content.unwrap();
    assert_eq!(who["identity"], "alice");
    assert_eq!(who["roles"], json!(["admin"]));
    assert_eq!(
        who["header"], true,
        "the assertion also travels as a header"
    );
    // A service with a different key does not trust the assertion.
    let r = alice
        .call_tool(call("other_whoami", json!({})))
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["identity"], "anonymous");

    // A client cannot forge an assertion by putting one in its own _meta.
    let direct = mcp_client(&trusting.url("/mcp")).await;
    let mut p = call("whoami", json!({}));
    let mut meta = RequestMetaObject::default();
    meta.insert(
        mcp_runtime::assertion::IDENTITY_META_KEY.to_owned(),
        json!({"identity": "root", "roles": ["admin"], "correlation_id": "x", "ts": 1, "sig": "00"}),
    );
    p.meta = Some(meta);
    let r = direct.call_tool(p).await.unwrap();
    assert_eq!(r.structured_content.unwrap()["identity"], "anonymous");
    alice.cancel().await.unwrap();
    direct.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn colliding_tool_names_are_a_startup_error_naming_both_sources() {
    let a = start_cmdb(server_config()).await;
    let b = start_cmdb(server_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[master]\nseed_env = false\naudit_db = {:?}\n{}{}",
        dir.path().join("a.sqlite").display().to_string(),
        downstream("first", Some(""), "http", &a.url("/mcp")),
        downstream("second", Some(""), "http", &b.url("/mcp")),
    );
    let doc = ConfigDoc::from_str(&text, "t").unwrap();
    let err = mcp_runtime::start::<mcp_master::Master>(&doc, server_config(), ShutdownToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("getHost") && err.contains("first") && err.contains("second"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn toolsets_and_discovery_keep_clients_under_their_limits() {
    let cmdb = start_cmdb(server_config()).await;
    let fixture = start_fixture().await;
    let master = start_master(
        &format!(
            "max_tools_per_endpoint = 10\nwarn_name_length = 30\n{}{}\
             [[master.toolset]]\nname = \"infra\"\nnamespaces = [\"cmdb\", \"master\"]\nexclude = [\"master_hello_world\"]\n\
             [[master.toolset]]\nname = \"admins\"\nnamespaces = [\"cmdb\"]\nroles = [\"admin\"]\n\
             [master.policy]\n[[master.policy.rule]]\ntools = [\"cmdb_searchHosts\"]\naction = \"approve\"\n",
            downstream("cmdb", None, "http", &cmdb.url("/mcp")),
            downstream("fixture", None, "http", &fixture.url("/mcp")),
        ),
        server_config(),
    )
    .await;
    let names =
        |tools: &[Tool]| -> Vec<String> { tools.iter().map(|t| t.name.to_string()).collect() };

    // A toolset lists exactly its tools, serves them, and refuses others even by name.
    let infra = mcp_client(&master.url("/mcp/infra")).await;
    let listed = names(&infra.list_all_tools().await.unwrap());
    assert!(
        listed.contains(&"cmdb_getHost".to_owned())
            && listed.contains(&"master_getSystemStatus".to_owned())
    );
    assert!(
        !listed
            .iter()
            .any(|n| n.starts_with("fixture_") || n == "master_hello_world"),
        "{listed:?}"
    );
    for name in &listed {
        if name == "cmdb_searchHosts" {
            continue; // approval-gated
        }
        if name == "master_setRoute" {
            continue; // needs a versioned namespace and the admin role (canary.rs)
        }
        if name == "master_acceptToolChange" || name == "master_exportToolPins" {
            continue; // need a held definition, the approver or admin role (guardrails.rs)
        }
        let args = if name == "cmdb_getHost" {
            json!({"name": "aicrusher"})
        } else {
            json!({})
        };
        let r = infra.call_tool(call(name, args)).await.unwrap();
        assert_ne!(r.is_error, Some(true), "{name}: {r:?}");
    }
    let refused = infra
        .call_tool(call("fixture_test_simple_text", json!({})))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("unknown tool"), "{refused}");
    assert!(
        infra
            .call_tool(call("master_hello_world", json!({})))
            .await
            .is_err()
    );

    // One toolset per namespace, and role-limited toolsets list nothing to others.
    let per_ns = mcp_client(&master.url("/mcp/fixture")).await;
    let listed = names(&per_ns.list_all_tools().await.unwrap());
    assert!(
        !listed.is_empty() && listed.iter().all(|n| n.starts_with("fixture_")),
        "{listed:?}"
    );
    let admins = mcp_client(&master.url("/mcp/admins")).await;
    assert!(admins.list_all_tools().await.unwrap().is_empty());
    assert!(
        admins
            .call_tool(call("cmdb_getHost", json!({"name": "aicrusher"})))
            .await
            .is_err()
    );

    // Discovery: three tools reach everything, under the same policy.
    let disc = mcp_client(&master.url("/mcp/discover")).await;
    let mut listed = names(&disc.list_all_tools().await.unwrap());
    listed.sort();
    assert_eq!(
        listed,
        [
            "master_callTool",
            "master_describeTool",
            "master_searchTools"
        ]
    );
    let found = disc
        .call_tool(call("master_searchTools", json!({"query": "host"})))
        .await
        .unwrap();
    let found = found.structured_content.unwrap();
    let first = &found["tools"][0];
    assert_eq!(first["name"], "cmdb_getHost", "{found}");
    assert!(first["inputSchema"]["properties"]["name"].is_object());
    let described = disc
        .call_tool(call("master_describeTool", json!({"name": "cmdb.getHost"})))
        .await
        .unwrap();
    assert_eq!(
        described.structured_content.unwrap()["name"],
        "cmdb_getHost"
    );
    let via = disc
        .call_tool(call(
            "master_callTool",
            json!({"name": "cmdb_getHost", "arguments": {"name": "aicrusher"}}),
        ))
        .await
        .unwrap();
    let direct = mcp_client(&cmdb.url("/mcp")).await;
    let d = direct
        .call_tool(call("getHost", json!({"name": "aicrusher"})))
        .await
        .unwrap();
    assert_eq!(via.structured_content, d.structured_content);
    let gated = disc
        .call_tool(call(
            "master_callTool",
            json!({"name": "cmdb_searchHosts", "arguments": {}}),
        ))
        .await
        .unwrap();
    assert_eq!(gated.is_error, Some(true));
    assert!(text_of(&gated).contains("approval required"));

    // Legacy SSE per toolset.
    let resp = reqwest::get(master.url("/sse/infra")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        reqwest::get(master.url("/sse/nope"))
            .await
            .unwrap()
            .status(),
        404
    );
    drop(resp);

    // Limits awareness: /mcp is over 10 tools, and long names are named.
    let health: Value = reqwest::get(master.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let warnings = health["checks"]["client_limits"]["details"]["warnings"].to_string();
    assert!(
        warnings.contains("endpoint /mcp lists") && warnings.contains("Cursor"),
        "{warnings}"
    );
    assert!(
        warnings.contains("fixture_test_elicitation_sep1034_defaults"),
        "{warnings}"
    );
    let metrics = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert!(
        metrics.contains("mcp_endpoint_tools{endpoint=\"/mcp/infra\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_endpoint_calls_total{endpoint=\"/mcp/discover\"} 4"),
        "{metrics}"
    );
    for c in [infra, per_ns, admins, disc, direct] {
        c.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_sdk_client_uses_a_toolset_over_both_transports() {
    if !python_mcp_available() {
        skip("the Python `mcp` SDK is not installed (pip install mcp)");
        return;
    }
    let cmdb = start_cmdb(server_config()).await;
    let fixture = start_fixture().await;
    let master = start_master(
        &format!(
            "{}{}[[master.toolset]]\nname = \"infra\"\nnamespaces = [\"cmdb\", \"master\"]\n",
            downstream("cmdb", None, "http", &cmdb.url("/mcp")),
            downstream("fixture", None, "http", &fixture.url("/mcp")),
        ),
        server_config(),
    )
    .await;
    let out = tokio::process::Command::new("python3")
        .arg(crate_dir().join("python/check_client.py"))
        .arg(master.url(""))
        .env("MCP_ENDPOINT", "infra")
        .env("MCP_TOOL_PREFIX", "cmdb_")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for transport in ["sse", "streamable_http"] {
        let r = &report[transport];
        assert_eq!(r["server"], "mcp-master");
        let tools: Vec<&str> = r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            tools.len() < 40 && tools.contains(&"cmdb_getHost"),
            "{tools:?}"
        );
        assert!(
            !tools.iter().any(|t| t.starts_with("fixture_")),
            "{tools:?}"
        );
        assert_eq!(r["host"], "aicrusher", "{transport}");
        assert_eq!(r["missing_is_error"], true);
    }
}
