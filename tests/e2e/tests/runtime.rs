//! The runtime's HTTP surface, exercised on the CMDB service over real loopback sockets:
//! streamable HTTP and legacy SSE, health, metrics, Host/Origin checks, auth, limits, parse errors.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mcp_runtime::ServerConfig;
use serde_json::{Value, json};

const ACCEPT: &str = "application/json, text/event-stream";

fn init_body() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}})
}

/// An `initialize` POST to `url`, ready to send (headers may be added).
fn initialize(http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    http.post(url).header("accept", ACCEPT).json(&init_body())
}

/// Value of one sample in Prometheus text, 0 when absent.
fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn streamable_http_initialize_list_and_call() {
    let svc = start_cmdb(server_config()).await;
    let client = mcp_client(&svc.url("/mcp")).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("cmdb")
    );

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["getHost", "listCiTypes", "listHosts", "searchHosts"]
    );
    for t in &tools {
        let a = t.annotations.as_ref().expect("annotations");
        assert_eq!(a.read_only_hint, Some(true), "{}", t.name);
        assert_eq!(a.destructive_hint, Some(false), "{}", t.name);
        assert!(t.output_schema.is_some(), "{}", t.name);
    }

    let r = client
        .call_tool(call("getHost", json!({"name": "aicrusher"})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));
    let host = &r.structured_content.unwrap()["host"];
    assert_eq!(host["name"], "aicrusher");
    assert_eq!(host["ip"], "192.168.1.50");

    let r = client
        .call_tool(call("getHost", json!({"name": "k8s-cp"})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = &r.content[0].as_text().unwrap().text;
    assert!(
        text.contains("not in the CMDB") && text.contains("k8s-cp-01"),
        "{text}"
    );

    let r = client
        .call_tool(call(
            "searchHosts",
            json!({"environment": "production", "role": "database", "fields": ["name", "ip"]}),
        ))
        .await
        .unwrap();
    let page = r.structured_content.unwrap();
    assert_eq!(page["total"], 2);
    assert_eq!(
        page["hosts"][0],
        json!({"name": "db-primary", "ip": "10.10.3.41"})
    );

    let r = client
        .call_tool(call("listHosts", json!({"limit": 0})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));

    // Arguments that do not match the schema are refused with a clear message, not ignored.
    let err = client
        .call_tool(call("getHost", json!({"nam": "aicrusher"})))
        .await;
    match err {
        Ok(r) => assert_eq!(r.is_error, Some(true)),
        Err(e) => assert!(e.to_string().contains("nam"), "{e}"),
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let svc = start_cmdb(server_config()).await;
    let http = reqwest::Client::new();
    let health: Value = http
        .get(svc.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["service"], "cmdb");
    assert!(health["version"].is_string());
    assert!(health["timestamp"].as_f64().unwrap() > 1.7e9);
    assert_eq!(health["checks"]["inventory"]["status"], "healthy");
    assert_eq!(health["checks"]["inventory"]["details"]["hosts"], 21);
    let ready = http.get(svc.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let before = http
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ok_key = "mcp_tool_calls_total{service=\"cmdb\",status=\"success\",tool=\"getHost\"}";
    let err_key = "mcp_tool_calls_total{service=\"cmdb\",status=\"error\",tool=\"getHost\"}";
    let client = mcp_client(&svc.url("/mcp")).await;
    for name in ["aicrusher", "web-01", "missing-host"] {
        client
            .call_tool(call("getHost", json!({"name": name})))
            .await
            .unwrap();
    }
    let after = http
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&after, ok_key) - sample(&before, ok_key),
        2.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, err_key) - sample(&before, err_key),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "mcp_tool_call_duration_seconds_count{service=\"cmdb\",tool=\"getHost\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &after,
            "mcp_sessions_active{service=\"cmdb\",transport=\"streamable_http\"}"
        ),
        1.0
    );
    assert!(after.contains(
        "mcp_http_requests_total{code=\"200\",method=\"POST\",route=\"/mcp\",service=\"cmdb\"}"
    ));
    assert!(after.contains("process_cpu_seconds_total"));
    // Unknown tool names share one label value, so callers cannot grow the metric without bound.
    let _ = client.call_tool(call("no-such-tool-x1", json!({}))).await;
    let m = http
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!m.contains("no-such-tool-x1"));
    assert!(m.contains("tool=\"unknown\""));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn host_and_origin_are_checked() {
    // The compose wiring names each service in its allowed hosts (docker-compose.yml); the runtime
    // itself accepts only loopback.
    let svc = start_cmdb(ServerConfig {
        allowed_origins: vec!["https://app.example.com".into()],
        allowed_hosts: vec!["cmdb".into()],
        ..server_config()
    })
    .await;
    let http = reqwest::Client::new();
    let post = |origin: Option<&str>, host: Option<&str>| {
        let mut rb = initialize(&http, &svc.url("/mcp"));
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        if let Some(h) = host {
            rb = rb.header("host", h);
        }
        rb.send()
    };
    for (origin, host, expect) in [
        (Some("https://evil.example.com"), None, 403),
        (Some("null"), None, 403),
        (None, Some("evil.example.com"), 403),
        (None, Some("127.0.0.1.evil.example.com:80"), 403),
        (Some("http://localhost:6274"), None, 200),
        (Some("https://app.example.com"), None, 200),
        (None, Some("cmdb:8012"), 200),
        (None, Some("master:8000"), 403),
        (None, Some("localhost:8012"), 200),
        (None, None, 200),
    ] {
        let r = post(origin, host).await.unwrap();
        assert_eq!(
            r.status().as_u16(),
            expect,
            "origin={origin:?} host={host:?}"
        );
    }
    // The legacy SSE endpoint is protected the same way.
    let r = http
        .get(svc.url("/sse"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Health stays reachable for probes that send a pod IP as Host.
    let r = http
        .get(svc.url("/health"))
        .header("host", "10.1.2.3:8012")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bearer_auth_when_tokens_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nidentity = \"alice\"\nroles = [\"admin\"]\nsha256 = \"{}\"\n",
            mcp_runtime::auth::hash_token("alice-token-123")
        ),
    )
    .unwrap();
    let svc = start_cmdb(ServerConfig {
        auth_tokens_file: Some(tokens),
        ..server_config()
    })
    .await;
    let http = reqwest::Client::new();
    let send = |token: Option<&str>| {
        let mut rb = initialize(&http, &svc.url("/mcp"));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    let r = send(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(send(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(send(Some("alice-token-123")).await.unwrap().status(), 200);
    let r = http.get(svc.url("/sse")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Probes and scrapes need no token.
    assert_eq!(
        http.get(svc.url("/health")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http.get(svc.url("/metrics")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn oversized_and_malformed_bodies_do_not_hurt_the_service() {
    let svc = start_cmdb(ServerConfig {
        max_body_bytes: 4096,
        ..server_config()
    })
    .await;
    let http = reqwest::Client::new();
    let big = json!({"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"x".repeat(10_000)}});
    let r = http
        .post(svc.url("/mcp"))
        .header("accept", ACCEPT)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    for path in ["/mcp", "/message?sessionId=abc"] {
        let r = http
            .post(svc.url(path))
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .body("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32700, "{path}");
        assert_eq!(body["jsonrpc"], "2.0");
    }
    // Still serving.
    let client = mcp_client(&svc.url("/mcp")).await;
    let r = client
        .call_tool(call("listCiTypes", json!({})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));
    client.cancel().await.unwrap();
}

/// Reads SSE events from a streaming response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    async fn next_event(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = "message".to_owned();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return (event, data);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("event within 10 s")
                .unwrap()
                .expect("stream open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn legacy_sse_transport_round_trip() {
    let svc = start_cmdb(server_config()).await;
    let http = reqwest::Client::new();
    let resp = http.get(svc.url("/sse")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut sse = SseReader {
        resp,
        buf: String::new(),
    };
    let (event, endpoint) = sse.next_event().await;
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/message?sessionId="), "{endpoint}");
    let post = |body: Value| http.post(svc.url(&endpoint)).json(&body).send();

    assert_eq!(post(init_body()).await.unwrap().status(), 202);
    let (event, data) = sse.next_event().await;
    assert_eq!(event, "message");
    let init: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "cmdb");
    post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await
        .unwrap();
    post(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"getHost","arguments":{"name":"aicrusher"}}}))
        .await
        .unwrap();
    let (_, data) = sse.next_event().await;
    let r: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(r["id"], 2);
    assert_eq!(
        r["result"]["structuredContent"]["host"]["name"],
        "aicrusher"
    );

    // The `/messages` alias reaches the same session.
    let alias = endpoint.replacen("/message?", "/messages?", 1);
    let r = http
        .post(svc.url(&alias))
        .json(&json!({"jsonrpc":"2.0","id":3,"method":"ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (_, data) = sse.next_event().await;
    assert_eq!(serde_json::from_str::<Value>(&data).unwrap()["id"], 3);

    // Not a JSON-RPC message: refused, session unharmed.
    let r = post(json!({"hello": "world"})).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(svc.url("/message?sessionId=does-not-exist"))
        .json(&json!({"jsonrpc":"2.0","id":9,"method":"ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Closing the stream ends the session.
    drop(sse);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = post(json!({"jsonrpc":"2.0","id":4,"method":"ping"}))
            .await
            .unwrap();
        if r.status() == 404 || r.status() == 410 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "session still open after the client left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn python_sdk_clients_over_sse_and_streamable_http() {
    if !python_mcp_available() {
        skip("the Python `mcp` SDK is not installed (pip install mcp)");
        return;
    }
    let svc = start_cmdb(server_config()).await;
    let script = crate_dir().join("python/check_client.py");
    let base = svc.url("");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&base)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("termination failed"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for transport in ["sse", "streamable_http"] {
        let r = &report[transport];
        assert_eq!(r["server"], "cmdb", "{transport}");
        assert_eq!(
            r["tools"],
            json!(["getHost", "listCiTypes", "listHosts", "searchHosts"]),
            "{transport}"
        );
        assert_eq!(r["read_only"]["getHost"], true);
        assert_eq!(r["host"], "aicrusher", "{transport}");
        assert_eq!(r["host_is_error"], false);
        assert_eq!(r["missing_is_error"], true);
        assert!(
            r["missing_text"]
                .as_str()
                .unwrap()
                .contains("not in the CMDB")
        );
    }
}

#[tokio::test]
async fn hot_reload_picks_up_an_edit_within_two_seconds() {
    let svc = start_cmdb(server_config()).await;
    let client = mcp_client(&svc.url("/mcp")).await;
    let csv = svc.path("cmdb.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("newbox,newbox.lab.internal,192.168.1.99,lab,test,vm,Debian 12,me,me,22,lab,new,Added by the test\n");
    text.push_str("broken-row,only-two\n");
    // Write a sibling file and rename it over, as editors and config management do.
    let tmp = svc.path("cmdb.csv.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &csv).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = client
            .call_tool(call("getHost", json!({"name": "newbox"})))
            .await
            .unwrap();
        if r.is_error != Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "reload not seen within 2 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health: Value = reqwest::get(svc.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded");
    let invalid = &health["checks"]["inventory"]["details"]["invalid_rows"];
    assert_eq!(invalid[0]["line"], 24, "{invalid}");
    assert!(
        invalid[0]["reason"]
            .as_str()
            .unwrap()
            .contains("expected 13 fields")
    );

    // A broken file keeps the last good data.
    std::fs::write(&csv, "garbage without a name column\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let health: Value = reqwest::get(svc.url("/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["checks"]["inventory"]["details"]["last_reload_error"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "failed reload not reported within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client
        .call_tool(call("getHost", json!({"name": "newbox"})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn non_loopback_bind_without_auth_is_refused() {
    let err = mcp_runtime::Runtime::new("t", "0", || {
        mcp_conformance_fixture::FixtureHandler::default()
    })
    .with_config(ServerConfig {
        host: "0.0.0.0".parse().unwrap(),
        ..server_config()
    })
    .bind()
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("allow_insecure") && err.contains("auth_tokens_file"),
        "{err}"
    );
}

#[tokio::test]
async fn stateless_mode_serves_without_sessions() {
    let svc = start_cmdb(ServerConfig {
        stateless: true,
        ..server_config()
    })
    .await;
    // A plain JSON request/response, no session id.
    let http = reqwest::Client::new();
    let r = initialize(&http, &svc.url("/mcp")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("mcp-session-id").is_none(),
        "stateless mode hands out no session"
    );
    // A regular client works too.
    let client = mcp_client(&svc.url("/mcp")).await;
    let r = client
        .call_tool(call("getHost", json!({"name": "aicrusher"})))
        .await
        .unwrap();
    assert_eq!(r.structured_content.unwrap()["host"]["name"], "aicrusher");
    client.cancel().await.unwrap();
}

/// Opens a raw connection and sends `head` (and nothing after it yet).
async fn raw_request_start(addr: std::net::SocketAddr, head: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Reads the rest of an HTTP/1.1 answer (the server closes the connection).
async fn raw_response(mut s: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_string(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    out
}

#[tokio::test]
async fn a_request_over_request_timeout_secs_answers_408() {
    let svc = start_cmdb(ServerConfig {
        request_timeout_secs: 1,
        ..server_config()
    })
    .await;
    let addr = svc.running.as_ref().unwrap().local_addr();
    // A body announced at 100 bytes that never arrives in full keeps the request open.
    let s = raw_request_start(
        addr,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: {ACCEPT}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"jsonrpc\":"
        ),
    )
    .await;
    let started = Instant::now();
    let answer = raw_response(s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn ready_is_503_while_draining() {
    let mut svc = start_cmdb(server_config()).await;
    let addr = svc.running.as_ref().unwrap().local_addr();
    // A request whose head is still arriving when the shutdown signal comes is served while the
    // server drains: that is what a load balancer's probe sees.
    let mut s = raw_request_start(addr, &format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\n")).await;
    // The server has the first bytes once a complete request on another connection is answered.
    let ok = raw_response(
        raw_request_start(
            addr,
            &format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
        .await,
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    svc.shutdown.cancel();
    let running = svc.running.take().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        s.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    }
    let answer = raw_response(s).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"ready\":false"), "{answer}");
    running.wait().await.unwrap();
}

#[tokio::test]
async fn an_idle_session_expires_and_its_next_request_gets_404() {
    let svc = start_cmdb(ServerConfig {
        session_idle_secs: 1,
        ..server_config()
    })
    .await;
    let http = reqwest::Client::new();
    let r = initialize(&http, &svc.url("/mcp")).send().await.unwrap();
    assert!(r.status().is_success());
    let id = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await;
    let post = |body: Value| {
        http.post(svc.url("/mcp"))
            .header("accept", ACCEPT)
            .header("mcp-session-id", &id)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
    };
    let r = post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let gauge = r#"mcp_sessions_active{service="cmdb",transport="streamable_http"}"#;
    let metrics_text = || async { mcp_test_support::metrics(&svc.url("/metrics")).await };
    assert_eq!(sample(&metrics_text().await, gauge), 1.0);
    // Nothing on the session: it is closed after session_idle_secs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&metrics_text().await, gauge) != 0.0 {
        assert!(Instant::now() < deadline, "the idle session never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = post(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a request on an expired session");
    // A client starts a new session and goes on.
    let client = mcp_client(&svc.url("/mcp")).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_at_header_read_timeout_secs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let svc = start_cmdb(ServerConfig {
        header_read_timeout_secs: 1,
        ..server_config()
    })
    .await;
    let addr = svc.running.as_ref().unwrap().local_addr();
    // 200 clients trickle a header line every 200 ms and never end the head.
    let started = Instant::now();
    let mut trickles = Vec::new();
    for _ in 0..200 {
        let mut s =
            raw_request_start(addr, &format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n")).await;
        trickles.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return Some(Instant::now());
                }
                // The server closed it (any answer it wrote first is followed by the close).
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await
                {
                    return Some(Instant::now());
                }
                if Instant::now() > deadline {
                    return None;
                }
            }
        }));
    }
    // Meanwhile an ordinary client is served at once.
    let client = mcp_client(&svc.url("/mcp")).await;
    let t = Instant::now();
    let tools = client.list_all_tools().await.unwrap();
    assert!(!tools.is_empty());
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "served beside 200 slow clients"
    );
    let mut closed = 0;
    let mut latest = Duration::ZERO;
    for t in trickles {
        if let Some(at) = t.await.unwrap() {
            closed += 1;
            latest = latest.max(at - started);
        }
    }
    assert_eq!(closed, 200, "every slow connection is closed");
    assert!(
        latest < Duration::from_secs(5),
        "closed {latest:?} after the first byte"
    );
    eprintln!("200 slowloris connections closed, the last {latest:?} after its first byte");
    // A fresh request still works.
    let ok = raw_response(
        raw_request_start(
            addr,
            &format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
        .await,
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    client.cancel().await.unwrap();
}
