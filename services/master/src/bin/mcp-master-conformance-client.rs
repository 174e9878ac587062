//! Master's downstream client as a standalone program, for the conformance suite's client scenarios
//! (`conformance client --command mcp-master-conformance-client --scenario initialize|tools_call|sse-retry`).
//! It connects exactly as master connects to a downstream, lists the tools, and calls the ones the
//! scenario offers.

use std::process::ExitCode;
use std::sync::Weak;

use mcp_master::config::DownstreamConfig;
use mcp_master::downstream::credentials::{AuthMode, DownstreamOAuth};
use mcp_master::downstream::{NoUpstream, connect_client};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

/// Sets `auth = "client_credentials"` when the scenario's context (`MCP_CONFORMANCE_CONTEXT`)
/// holds `client_id` and `client_secret`; the directory holding the secret file lives as long as
/// the returned guard.
fn client_credentials(cfg: &mut DownstreamConfig) -> Result<Option<std::path::PathBuf>, String> {
    let Ok(raw) = std::env::var("MCP_CONFORMANCE_CONTEXT") else {
        return Ok(None);
    };
    let context: serde_json::Value =
        serde_json::from_str(&raw).map_err(|e| format!("MCP_CONFORMANCE_CONTEXT: {e}"))?;
    let (Some(id), Some(secret)) = (
        context["client_id"].as_str(),
        context["client_secret"].as_str(),
    ) else {
        return Ok(None);
    };
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = std::env::temp_dir().join(format!(
        "mcp-conformance-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("client_secret");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(secret.as_bytes()))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    cfg.auth = Some(AuthMode::ClientCredentials);
    cfg.oauth = Some(DownstreamOAuth {
        client_id: id.to_owned(),
        client_secret_file: file,
        issuer: None,
        resource: None,
        scope: None,
        token_endpoint_auth: Default::default(),
    });
    Ok(Some(dir))
}

/// Removes the secret's directory when the client ends.
struct RemoveOnDrop(Option<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

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
        let mut cfg = DownstreamConfig {
            timeout_secs: 30,
            ..DownstreamConfig::http("conformance", &url)
        };
        // The auth scenarios hand over client credentials: master then uses them as it would
        // with `auth = "client_credentials"`, the issuer found from the server's RFC 9728
        // metadata. The secret goes to an owner-only file, as master reads secrets.
        let _secret_dir = match client_credentials(&mut cfg) {
            Ok(dir) => RemoveOnDrop(dir),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let credentials = match mcp_master::downstream::credentials_of(&cfg) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}", e.0);
                return ExitCode::FAILURE;
            }
        };
        let client = match connect_client(
            &cfg,
            &Default::default(),
            credentials,
            Weak::<NoUpstream>::new(),
            0,
        )
        .await
        {
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
