//! OTLP export: master and a service as real processes with `server.otlp_endpoint` set, an
//! in-test OTLP/HTTP collector (JSON encoding) receiving their spans. A call with a W3C
//! `traceparent` yields one trace: master's `http` and `tool_call` spans continue the caller's
//! span, master's `downstream_call` is their child, and the service's `tool_call` is the child of
//! that downstream call.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use common::*;
use mcp_test_support::ServiceProcess;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
}

fn spans(bodies: &[Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for b in bodies {
        for rs in b["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or("")
                .to_owned();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push(Span {
                        service: service.clone(),
                        name: s["name"].as_str().unwrap_or("").to_owned(),
                        trace: s["traceId"].as_str().unwrap_or("").to_lowercase(),
                        id: s["spanId"].as_str().unwrap_or("").to_lowercase(),
                        parent: s["parentSpanId"].as_str().unwrap_or("").to_lowercase(),
                    });
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_spans_master_and_the_service() {
    let master_bin = workspace_bin("mcp-master");
    let cmdb_bin = workspace_bin("mcp-cmdb");
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = Router::new().route(
        "/v1/traces",
        post({
            let received = received.clone();
            move |body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        received.lock().unwrap().push(v);
                    }
                    axum::Json(json!({}))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let otlp = format!(
        "otlp_endpoint = {collector:?}\notlp_protocol = \"http/json\"\notlp_batch_ms = 100\n"
    );
    let cmdb_port = free_port();
    let cmdb = ServiceProcess::spawn(
        cmdb_bin.to_str().unwrap(),
        tempfile::tempdir().unwrap(),
        cmdb_port,
        &format!("[server]\nport = {cmdb_port}\n{otlp}[cmdb]\nsample_if_missing = true\n"),
    )
    .await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let master = ServiceProcess::spawn(
        master_bin.to_str().unwrap(),
        dir,
        port,
        &format!(
            "[server]\nport = {port}\n{otlp}[master]\nseed_env = false\naudit_db = \"audit.sqlite\"\n{}",
            downstream("cmdb", None, "http", &cmdb.url("/mcp"))
        ),
    )
    .await;

    let mut cfg = StreamableHttpClientTransportConfig::with_uri(master.url("/mcp"));
    cfg.custom_headers.insert(
        http::HeaderName::from_static("traceparent"),
        http::HeaderValue::from_str(&format!("00-{TRACE}-{CALLER_SPAN}-01")).unwrap(),
    );
    let client = ().serve(StreamableHttpClientTransport::from_config(cfg)).await.unwrap();
    let r = client
        .call_tool(call("cmdb_getHost", json!({"name": "aicrusher"})))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));

    let deadline = Instant::now() + Duration::from_secs(15);
    let (ds, service_call) = loop {
        let all = spans(&received.lock().unwrap());
        let ours: Vec<&Span> = all.iter().filter(|s| s.trace == TRACE).collect();
        let ds = ours
            .iter()
            .find(|s| s.service == "master" && s.name == "downstream_call")
            .map(|s| (*s).clone());
        let service_call = ours
            .iter()
            .find(|s| s.service == "cmdb" && s.name == "tool_call")
            .map(|s| (*s).clone());
        let master_call = ours
            .iter()
            .find(|s| s.service == "master" && s.name == "tool_call");
        if let (Some(ds), Some(sc), Some(_)) = (ds, service_call, master_call) {
            break (ds, sc);
        }
        assert!(
            Instant::now() < deadline,
            "spans of the trace never arrived: {all:#?}\nmaster: {}\ncmdb: {}",
            master.log(),
            cmdb.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all = spans(&received.lock().unwrap());
    let master_call = all
        .iter()
        .find(|s| s.trace == TRACE && s.service == "master" && s.name == "tool_call")
        .unwrap();
    assert_eq!(master_call.parent, CALLER_SPAN, "{all:#?}");
    assert_eq!(
        ds.parent, master_call.id,
        "the downstream call is a child of the tool call"
    );
    assert_eq!(
        service_call.parent, ds.id,
        "the service continues master's downstream span"
    );
    assert!(
        all.iter().any(|s| s.trace == TRACE
            && s.service == "master"
            && s.name == "http"
            && s.parent == CALLER_SPAN),
        "{all:#?}"
    );
    // The log lines carry the same trace id.
    assert!(master.log().contains(TRACE) && cmdb.log().contains(TRACE));
    client.cancel().await.unwrap();
}
