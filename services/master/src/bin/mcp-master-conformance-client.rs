//! Master's downstream client as a standalone program, for the conformance suite's client scenarios
//! (`conformance client --command mcp-master-conformance-client --scenario initialize|tools_call|sse-retry`).
//! It connects exactly as master connects to a downstream, lists the tools, and calls the ones the
//! scenario offers.

use std::process::ExitCode;
use std::sync::Weak;

use mcp_master::config::DownstreamConfig;
use mcp_master::downstream::{NoUpstream, connect_client};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: mcp-master-conformance-client <server-url>");
        return ExitCode::from(64);
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let url = if url.ends_with("/mcp") {
            url
        } else {
            format!("{}/mcp", url.trim_end_matches('/'))
        };
        let cfg = DownstreamConfig {
            timeout_secs: 30,
            ..DownstreamConfig::http("conformance", &url)
        };
        let client =
            match connect_client(&cfg, &Default::default(), Weak::<NoUpstream>::new(), 0).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("connect failed: {e}");
                    return ExitCode::FAILURE;
                }
            };
        // Some scenarios (initialize) serve no tools/list; then there is nothing to call.
        let tools = match client.peer().list_all_tools().await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("tools/list unavailable ({e}); nothing to call");
                Vec::new()
            }
        };
        for tool in tools {
            let mut p = CallToolRequestParams::new(tool.name.to_string());
            match tool.name.as_ref() {
                "add_numbers" => p.arguments = json!({"a": 5, "b": 3}).as_object().cloned(),
                "test_reconnection" => {}
                _ => continue,
            }
            match client.peer().call_tool(p).await {
                Ok(r) => println!(
                    "{}: {:?}",
                    tool.name,
                    r.content.first().and_then(|c| c.as_text()).map(|t| &t.text)
                ),
                Err(e) => {
                    eprintln!("{} failed: {e}", tool.name);
                    return ExitCode::FAILURE;
                }
            }
        }
        let _ = client.cancel().await;
        ExitCode::SUCCESS
    })
}
