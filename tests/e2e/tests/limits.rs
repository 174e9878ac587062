//! Limits the runtime enforces for every tool of every service: the tool timeout and the output cap.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mcp_runtime::{Runtime, ServerConfig};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, ServerCapabilities, ServerConfig as McpServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

#[derive(Clone)]
struct Slow {
    tool_router: ToolRouter<Self>,
    finished: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct Size {
    /// Bytes of text to return.
    bytes: usize,
}

#[tool_router]
impl Slow {
    #[tool(description = "Sleeps for a minute")]
    async fn sleepy(&self) -> String {
        tokio::time::sleep(Duration::from_secs(60)).await;
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        "done".to_owned()
    }

    #[tool(description = "Returns `bytes` bytes of text")]
    async fn big(&self, Parameters(Size { bytes }): Parameters<Size>) -> String {
        "é".repeat(bytes / 2)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Slow {
    fn get_info(&self) -> McpServerConfig {
        McpServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::test]
async fn tool_timeout_and_output_cap_apply_to_every_tool() {
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = finished.clone();
    let running = Runtime::new("limits", "0", move || Slow {
        tool_router: Slow::tool_router(),
        finished: f.clone(),
    })
    .with_config(ServerConfig {
        tool_timeout_secs: 1,
        max_output_bytes: 1000,
        ..server_config()
    })
    .bind()
    .await
    .unwrap();
    let client = mcp_client(&running.url("/mcp")).await;

    let r = client
        .call_tool(CallToolRequestParams::new("sleepy"))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = &r.content[0].as_text().unwrap().text;
    assert!(text.contains("timed out after 1 s"), "{text}");
    assert!(!finished.load(std::sync::atomic::Ordering::SeqCst));

    let mut p = CallToolRequestParams::new("big");
    p.arguments = json!({"bytes": 5000}).as_object().cloned();
    let r = client.call_tool(p).await.unwrap();
    let text = &r.content[0].as_text().unwrap().text;
    assert!(
        text.contains("[truncated: showing 1000 of 5000 bytes"),
        "{}",
        &text[text.len() - 200..]
    );
    assert!(text.len() < 1200);

    let mut p = CallToolRequestParams::new("big");
    p.arguments = json!({"bytes": 500}).as_object().cloned();
    let r = client.call_tool(p).await.unwrap();
    assert!(!r.content[0].as_text().unwrap().text.contains("truncated"));

    let metrics = mcp_test_support::metrics(&running.url("/metrics")).await;
    assert!(
        metrics.contains(
            "mcp_tool_calls_total{service=\"limits\",status=\"error\",tool=\"sleepy\"} 1"
        )
    );
    client.cancel().await.unwrap();
    running.stop().await.unwrap();
}
