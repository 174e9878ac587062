//! Helpers shared by the tests of several packages: free ports, MCP clients and calls, accessors of
//! tool results, a service binary run as a child process with a config file and captured logs, and
//! the `MCP_E2E_REQUIRED` skip rule. Test-only: no service depends on it.

pub mod oidc;
pub mod pki;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

/// A port that was free a moment ago on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `n` distinct free loopback ports: all bound at once before any is released, so the kernel
/// cannot hand out one of them twice (as consecutive [`free_port`] calls can).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

/// True when CI demands that every real-component test runs (`MCP_E2E_REQUIRED=1`).
pub fn required() -> bool {
    std::env::var("MCP_E2E_REQUIRED").is_ok_and(|v| v == "1")
}

/// Skips loudly, or fails when real components are required.
pub fn skip(why: &str) {
    assert!(!required(), "MCP_E2E_REQUIRED=1 but {why}");
    eprintln!(
        "\n!!!!! SKIPPED: {why} (set MCP_E2E_REQUIRED=1 to make this a failure; .ci/run installs it) !!!!!\n"
    );
}

/// Whether the official Python MCP SDK imports (`python3 -c "import mcp"`).
pub fn python_mcp_available() -> bool {
    Command::new("python3")
        .args(["-c", "import mcp.client.sse, mcp.client.streamable_http"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A `tools/call` request for `name` with JSON-object `args`.
pub fn call(name: &str, args: Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name.to_owned());
    p.arguments = args.as_object().cloned();
    p
}

/// The text blocks of a tool result, joined by newlines.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The structured content of a tool result (`null` when there is none).
pub fn structured(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

/// An rmcp client over streamable HTTP, with a bearer token when given.
pub async fn client(url: &str, token: Option<&str>) -> RunningService<RoleClient, ()> {
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(t) = token {
        cfg = cfg.auth_header(t.to_owned());
    }
    ().serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .expect("client connects")
}

/// An rmcp client over streamable HTTP through `http` (a client with its own TLS settings).
pub async fn client_over(url: &str, http: reqwest::Client) -> RunningService<RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
    ))
    .await
    .expect("client connects")
}

/// The Prometheus text at `url` (a service's `/metrics`).
pub async fn metrics(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body")
}

/// Calls a tool and returns its result (a protocol error fails the test).
pub async fn tool(c: &RunningService<RoleClient, ()>, name: &str, args: Value) -> CallToolResult {
    c.call_tool(call(name, args))
        .await
        .expect("tools/call answers")
}

/// A service binary running with `config.toml` in its own temp dir; stdout and stderr go to
/// `out.log` there. Killed on drop.
pub struct ServiceProcess {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl ServiceProcess {
    /// Writes `config` (which should set `server.port = port`) and starts `bin --config` in `dir`, then
    /// waits up to 10 s for `/health` to answer 200.
    pub async fn spawn(bin: &str, dir: tempfile::TempDir, port: u16, config: &str) -> Self {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("out.log")).expect("log file");
        let child = Command::new(bin)
            .arg("--config")
            .arg(&path)
            // Relative paths (data/, secrets/) land in the temp dir, never in the source tree.
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the service");
        let svc = Self { child, port, dir };
        for _ in 0..200 {
            if reqwest::get(svc.url("/health"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return svc;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{bin} did not come up: {}", svc.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the process with SIGKILL (no shutdown, no flush) and hands back its directory, so
    /// that a test can start it again on the same data.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let placeholder = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
