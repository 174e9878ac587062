//! Bad input, systematically (issue 27): a generated corpus of malformed JSON-RPC messages —
//! truncated JSON, invalid UTF-8, wrong types in every envelope field and in the params of every
//! method, huge ids, deep nesting, duplicate keys, batches, unknown methods, notifications with
//! ids, bodies that are not objects — sent to a service (the CMDB) and to master in front of it,
//! over `/mcp` (outside and inside a session) and the legacy `/message` of an `/sse` session.
//!
//! Every answer must be an HTTP 4xx, a JSON-RPC error, or (for what is a notification, or a
//! well-formed message after all) an acceptance; never a 5xx, never a hang, never a panic; the
//! services keep serving. The figures are printed (`cargo test -p mcp-e2e --test malformed --
//! --nocapture`) and kept in docs/reliability.md.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ACCEPT: &str = "application/json, text/event-stream";

/// One message of the corpus.
struct Case {
    what: String,
    body: Vec<u8>,
    /// A well-formed message after all (an odd but valid id, null params of a method whose
    /// params are optional): a result is an acceptable answer too.
    may_succeed: bool,
}

fn case(what: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
    Case {
        what: what.into(),
        body: body.into(),
        may_succeed: false,
    }
}

fn value(what: impl Into<String>, v: &Value) -> Case {
    case(what, v.to_string())
}

/// Every method a client may send, with params of the right shape.
fn methods() -> Vec<(&'static str, Value)> {
    vec![
        (
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        ),
        ("ping", json!({})),
        ("tools/list", json!({})),
        (
            "tools/call",
            json!({"name": "cmdb_getHost", "arguments": {"name": "aicrusher"}}),
        ),
        ("resources/list", json!({})),
        ("resources/templates/list", json!({})),
        ("resources/read", json!({"uri": "cmdb://hosts"})),
        ("prompts/list", json!({})),
        ("prompts/get", json!({"name": "x", "arguments": {}})),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "x"}, "argument": {"name": "a", "value": "b"}}),
        ),
        ("logging/setLevel", json!({"level": "info"})),
    ]
}

/// Values of the wrong type for a field.
fn wrong_values() -> Vec<(&'static str, Value)> {
    vec![
        ("null", Value::Null),
        ("true", json!(true)),
        ("a number", json!(12345)),
        ("a negative float", json!(-1.5)),
        ("a string", json!("x")),
        ("an empty string", json!("")),
        ("an array", json!([1, "a"])),
        ("an object", json!({"k": "v"})),
    ]
}

/// A JSON value's type.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn corpus() -> Vec<Case> {
    let mut out = Vec::new();
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "cmdb_getHost", "arguments": {"name": "aicrusher"}}}).to_string();
    // Truncated JSON, at every tenth byte.
    for cut in (1..call.len()).step_by(10) {
        out.push(case(
            format!("truncated at byte {cut}"),
            &call.as_bytes()[..cut],
        ));
    }
    // Not JSON, or not UTF-8.
    for (what, body) in [
        ("empty body", b"".to_vec()),
        ("whitespace", b"  \n\t ".to_vec()),
        ("garbage", b"hello world".to_vec()),
        ("invalid UTF-8 in a string", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\xff\xfe\"}}".to_vec()),
        ("invalid UTF-8 alone", b"\xc3\x28\xa0\xa1".to_vec()),
        ("a lone surrogate escape", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"x\":\"\\ud800\"}}".to_vec()),
        ("a NUL byte", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\0".to_vec()),
        ("two messages glued", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}".to_vec()),
    ] {
        out.push(case(what, body));
    }
    // Bodies that are JSON but not a message object.
    for v in [
        json!(null),
        json!(true),
        json!(42),
        json!("ping"),
        json!([]),
        json!([1, 2]),
        json!({}),
    ] {
        out.push(value(format!("the body {v}"), &v));
    }
    // Batches (removed from the protocol in 2025-06-18).
    out.push(value(
        "a batch of one ping",
        &json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
    ));
    out.push(value(
        "a batch of a ping and garbage",
        &json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}, 5]),
    ));
    // Wrong types in every envelope field.
    for (what, v) in wrong_values() {
        let mut m = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        m["jsonrpc"] = v.clone();
        out.push(value(format!("jsonrpc is {what}"), &m));
        if !matches!(what, "a number" | "a string" | "an empty string") {
            let mut m = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
            m["id"] = v.clone();
            out.push(value(format!("id is {what}"), &m));
        }
        let mut m = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        m["method"] = v.clone();
        out.push(value(format!("method is {what}"), &m));
    }
    // Missing fields.
    out.push(value("no jsonrpc", &json!({"id": 1, "method": "ping"})));
    out.push(value("no method", &json!({"jsonrpc": "2.0", "id": 1})));
    // Huge and odd ids: an error, or (a long string is still a string id) an answer.
    for (what, body) in [
        (
            "an id of 1e400",
            b"{\"jsonrpc\":\"2.0\",\"id\":1e400,\"method\":\"ping\"}".to_vec(),
        ),
        (
            "an id of 2^70",
            b"{\"jsonrpc\":\"2.0\",\"id\":1180591620717411303424,\"method\":\"ping\"}".to_vec(),
        ),
        (
            "an id of 60 000 characters",
            json!({"jsonrpc": "2.0", "id": "i".repeat(60_000), "method": "ping"})
                .to_string()
                .into_bytes(),
        ),
    ] {
        out.push(Case {
            what: what.to_owned(),
            body,
            may_succeed: true,
        });
    }
    // Deep nesting: far past serde_json's recursion limit.
    let deep = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":{}{}}}}}",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    out.push(case("params nested 20 000 deep", deep.into_bytes()));
    // Duplicate keys: refused (rmcp's parser rejects a duplicate field).
    for body in [
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"method\":\"ping\"}",
    ] {
        out.push(case(
            format!("duplicate keys: {body}"),
            body.as_bytes().to_vec(),
        ));
    }
    // Unknown methods, as requests and as notifications.
    out.push(value(
        "an unknown method",
        &json!({"jsonrpc": "2.0", "id": 1, "method": "foo/bar", "params": {}}),
    ));
    out.push(value(
        "an unknown notification",
        &json!({"jsonrpc": "2.0", "method": "notifications/foo"}),
    ));
    // Notifications sent with an id.
    for n in [
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
    ] {
        out.push(value(
            format!("{n} with an id"),
            &json!({"jsonrpc": "2.0", "id": 9, "method": n, "params": {}}),
        ));
    }
    // A response nobody asked for.
    out.push(value(
        "an unsolicited response",
        &json!({"jsonrpc": "2.0", "id": 424242, "result": {}}),
    ));
    // Wrong params for every method: the whole params, then each field of it.
    for (method, params) in methods() {
        for (what, v) in wrong_values() {
            if v.is_object() {
                continue;
            }
            let empty = params.as_object().is_some_and(|m| m.is_empty());
            out.push(Case {
                // Null params of a method whose params are all optional read as none.
                may_succeed: v.is_null() && empty,
                ..value(
                    format!("{method}: params is {what}"),
                    &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": v}),
                )
            });
        }
        if let Value::Object(fields) = &params {
            for (key, right) in fields {
                for (what, v) in wrong_values() {
                    if kind(&v) == kind(right) {
                        continue; // the right type: not a wrong one
                    }
                    let mut p = params.clone();
                    p[key] = v;
                    out.push(value(
                        format!("{method}: {key} is {what}"),
                        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": p}),
                    ));
                }
            }
        }
    }
    out
}

/// How one answer looked.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    http_4xx: usize,
    jsonrpc_error: usize,
    accepted: usize,
    succeeded: usize,
}

/// Whether an answer body carries an error, and whether a result (plain JSON or SSE `data:`
/// lines).
fn jsonrpc_kinds(body: &str) -> (bool, bool) {
    let values: Vec<Value> = std::iter::once(body)
        .chain(body.lines().filter_map(|l| l.strip_prefix("data:")))
        .filter_map(|t| serde_json::from_str::<Value>(t.trim()).ok())
        .collect();
    // A tool's refusal of its arguments is a tool error (`isError`), as MCP wants it.
    let error = values
        .iter()
        .any(|v| v.get("error").is_some() || v["result"]["isError"] == true);
    let result = values.iter().any(|v| v.get("result").is_some());
    (error, result)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = http
        .post(url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .body(body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), req.send())
        .await
        .expect("answered within 10 s (no hang)")
        .expect("the connection stays up");
    let status = resp.status().as_u16();
    // A 200 with an event stream ends once the answer is sent.
    let text = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .expect("the answer's body ends within 10 s")
        .unwrap_or_default();
    (status, text)
}

/// Opens an initialized streamable-HTTP session; its id.
async fn session(http: &reqwest::Client, url: &str) -> String {
    let r = http
        .post(url)
        .header("accept", ACCEPT)
        .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": methods()[0].1}))
        .send()
        .await
        .expect("initialize");
    let id = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let _ = r.text().await;
    let (status, _) = post(
        http,
        url,
        Some(&id),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 202);
    id
}

/// Sends one message: never a 5xx; a 4xx is counted and gives `None`, anything else the answer.
async fn send(
    http: &reqwest::Client,
    (label, url, session): (&str, &str, Option<&str>),
    c: &Case,
    t: &mut Tally,
) -> Option<(u16, String)> {
    let (status, body) = post(http, url, session, c.body.clone()).await;
    assert!(
        status < 500,
        "{label}: {} answered HTTP {status}: {body}",
        c.what
    );
    if (400..500).contains(&status) {
        t.http_4xx += 1;
        return None;
    }
    Some((status, body))
}

/// Sends the corpus to `url` and checks every answer; the tally of how they looked.
async fn run(http: &reqwest::Client, label: &str, url: &str, session: Option<&str>) -> Tally {
    let mut t = Tally::default();
    for c in corpus() {
        let Some((status, body)) = send(http, (label, url, session), &c, &mut t).await else {
            continue;
        };
        let (error, result) = jsonrpc_kinds(&body);
        if error {
            t.jsonrpc_error += 1;
        } else if result {
            assert!(
                c.may_succeed,
                "{label}: {} got a result, not an error: {body}",
                c.what
            );
            t.succeeded += 1;
        } else {
            // 202 Accepted: a notification or a response, which get no answer.
            assert_eq!(
                status, 202,
                "{label}: {} answered {status}: {body:?}",
                c.what
            );
            t.accepted += 1;
        }
    }
    t
}

/// The legacy transport: the corpus POSTed to `/message` of a live `/sse` session; the session
/// keeps answering.
async fn run_sse(http: &reqwest::Client, base: &str) -> Tally {
    let mut stream = http
        .get(format!("{base}/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("sse");
    let mut buf = String::new();
    // The first event names the session's POST endpoint.
    read_until(&mut stream, &mut buf, "\n\n").await;
    let endpoint = buf
        .lines()
        .find_map(|l| l.strip_prefix("data:").filter(|d| d.contains("/message")))
        .expect("an endpoint event")
        .trim()
        .to_owned();
    let url = format!("{base}{endpoint}");
    // An initialized session, as a client has it (before `initialize` a session takes nothing
    // else, and ends on a stray notification: that is the protocol's order, not bad input).
    let (status, _) = post(
        http,
        &url,
        None,
        json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": methods()[0].1})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 202);
    read_until(&mut stream, &mut buf, "\"init\"").await;
    let (status, _) = post(
        http,
        &url,
        None,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, 202);
    let mut t = Tally::default();
    for c in corpus() {
        if send(http, ("sse", &url, None), &c, &mut t).await.is_some() {
            // Accepted for the session; the answer, if any, goes down the stream.
            t.accepted += 1;
        }
        // The session survives every message.
        let ping = json!({"jsonrpc": "2.0", "id": "probe", "method": "ping"});
        let (alive, _) = post(http, &url, None, ping.to_string().into_bytes()).await;
        assert_eq!(alive, 202, "sse: the session ended after {}", c.what);
    }
    // The session still works: a ping's answer arrives on the stream.
    let (status, _) = post(
        http,
        &url,
        None,
        json!({"jsonrpc": "2.0", "id": "after", "method": "ping"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert!(status < 300, "ping after the corpus: {status}");
    read_until(&mut stream, &mut buf, "\"after\"").await;
    t
}

/// Reads the SSE stream into `buf` until it holds `needle` (10 s at most).
async fn read_until(stream: &mut reqwest::Response, buf: &mut String, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !buf.contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "{needle} never came on the stream"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event")
            .expect("chunk")
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_get_errors_never_crashes_or_hangs() {
    let panics = Arc::new(AtomicUsize::new(0));
    {
        let panics = panics.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    }
    let cmdb = start_cmdb(server_config()).await;
    let master = start_master(
        &downstream("cmdb", None, "http", &cmdb.url("/mcp")),
        server_config(),
    )
    .await;
    let http = reqwest::Client::new();
    let n = corpus().len();
    assert!(n >= 200, "corpus of {n}");
    let mut rows = Vec::new();
    for (label, svc) in [("cmdb", &cmdb), ("master", &master)] {
        let url = svc.url("/mcp");
        rows.push((
            format!("{label} /mcp, no session"),
            run(&http, label, &url, None).await,
        ));
        let s = session(&http, &url).await;
        rows.push((
            format!("{label} /mcp, in a session"),
            run(&http, label, &url, Some(&s)).await,
        ));
        let base = url.trim_end_matches("/mcp").to_owned();
        rows.push((
            format!("{label} /sse + /message"),
            run_sse(&http, &base).await,
        ));
        // Still serving, to a client that never saw the corpus.
        let c = mcp_client(&url).await;
        let tools = c
            .list_all_tools()
            .await
            .expect("tools/list after the corpus");
        assert!(!tools.is_empty());
        c.cancel().await.expect("cancel");
        assert_eq!(
            http.get(svc.url("/health"))
                .send()
                .await
                .expect("health")
                .status(),
            200
        );
    }
    println!("malformed corpus: {n} messages per path");
    println!("| path | HTTP 4xx | JSON-RPC error | accepted (202) | well-formed after all |");
    for (label, t) in &rows {
        println!(
            "| {label} | {} | {} | {} | {} |",
            t.http_4xx, t.jsonrpc_error, t.accepted, t.succeeded
        );
    }
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a handler panicked");
}
