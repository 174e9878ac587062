//! linux-cli MCP service (port 8001, namespace `linux`): shell commands validated by
//! `mcp-security` (risky categories need an approval token signed by master, blocked ones never
//! run), sandboxed file tools with atomic writes and backups, and SSH to hosts from the CMDB.

pub mod exec;
pub mod files;
pub mod ssh;

mod client;
mod config;
pub mod error;
mod gate;
pub mod tools;

use std::collections::BTreeMap;
use std::sync::Arc;

use mcp_runtime::backup::{DataFiles, DataItem, DataKind};
use mcp_runtime::{BoxError, BuildContext, Check, HealthProbe, McpService};
use mcp_security::{PathSandbox, Validator};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};
use serde_json::{Value, json};

use crate::files::Files;

pub use crate::config::{LinuxConfig, SshConfig, SshHost};
pub use crate::error::LinuxError;
pub use crate::tools::*;

/// The service: validator, sandbox and SSH settings shared by every session.
pub struct LinuxCli {
    config: LinuxConfig,
    validator: Validator,
    remote_validator: Validator,
    files: Files,
    metrics: mcp_runtime::Metrics,
    tools: ToolRouter<LinuxHandler>,
    /// HTTP client of CMDB lookups (trusts `server.tls_ca_file`, presents the client certificate).
    cmdb_http: reqwest::Client,
}

impl McpService for LinuxCli {
    const NAME: &'static str = "linux-cli";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "linux";
    const DEFAULT_PORT: u16 = 8001;
    type Config = LinuxConfig;
    type Handler = LinuxHandler;

    async fn build(config: LinuxConfig, ctx: BuildContext) -> Result<Self, BoxError> {
        if config.allowed_roots.is_empty() {
            return Err("linux.allowed_roots must name at least one directory".into());
        }
        if config.max_timeout_secs == 0 || config.default_timeout_secs > config.max_timeout_secs {
            return Err(
                "linux.default_timeout_secs must be between 1 and linux.max_timeout_secs".into(),
            );
        }
        let sandbox = PathSandbox::new(&config.allowed_roots, &config.deny_paths)?;
        let validator = Validator::new(config.policy.clone(), Some(sandbox.clone()))?;
        let remote_validator = Validator::new(config.policy.clone(), None)?;
        let files = Files::new(sandbox, config.backup_dir.clone())?;
        let cmdb_http = ctx.client_tls.builder()?.tcp_nodelay(true).build()?;
        tracing::info!(
            message = "linux-cli ready.",
            roots = ?files.sandbox().roots(),
            approval_needed_for = ?config.policy.approve,
        );
        Ok(Self {
            config,
            validator,
            remote_validator,
            files,
            metrics: ctx.metrics,
            tools: tools::routers(),
            cmdb_http,
        })
    }

    fn handler(self: &Arc<Self>) -> LinuxHandler {
        LinuxHandler {
            svc: self.clone(),
            tool_router: self.tools.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }

    /// The file backups `writeFile` and `restoreBackup` made (those still being written left
    /// out). The lock sits beside the backup directory.
    fn data(config: &LinuxConfig) -> DataFiles {
        DataFiles {
            lock: Some(config.backup_dir.with_file_name(".lock")),
            items: vec![DataItem::new(
                "backups",
                &config.backup_dir,
                DataKind::Dir {
                    complete: Some(files::backup_entry_complete),
                },
            )],
        }
    }
}

impl HealthProbe for LinuxCli {
    fn checks(&self) -> BTreeMap<String, Check> {
        let roots: Vec<String> = self
            .files
            .sandbox()
            .roots()
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        let mut checks = BTreeMap::new();
        checks.insert(
            "sandbox".to_owned(),
            Check::healthy(
                json!({ "roots": roots, "approval_needed_for": self.config.policy.approve }),
            ),
        );
        let kh = &self.config.ssh.known_hosts;
        checks.insert(
            "ssh".to_owned(),
            if kh.exists() {
                Check::healthy(json!({ "known_hosts": kh.display().to_string() }))
            } else {
                Check::degraded(
                    format!(
                        "known_hosts file {} is missing: sshExecuteCommand refuses every host",
                        kh.display()
                    ),
                    Value::Null,
                )
            },
        );
        checks
    }

    fn ready(&self) -> bool {
        true
    }
}

/// The per-session handler.
#[derive(Clone)]
pub struct LinuxHandler {
    svc: Arc<LinuxCli>,
    tool_router: ToolRouter<Self>,
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for LinuxHandler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("linux-cli", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Shell and files on this host, SSH to inventory hosts. Use validateCommand to see how a command is classified; read-only commands run at once, risky ones need an approval."
                .to_owned(),
        );
        info
    }
}
