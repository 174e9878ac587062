//! sshExecuteCommand: a validated command on an inventory host (host keys from known_hosts only).

use std::time::Duration;

use mcp_runtime::CallerContext;
use mcp_runtime::guard::Decision as AuditDecision;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::error::LinuxError;
use crate::{LinuxHandler, ssh};

use super::exec_result;

/// Arguments of `sshExecuteCommand`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SshArgs {
    /// Host name as in the CMDB (e.g. "aicrusher") or in linux.ssh.host.
    pub host: String,
    /// Command line to run remotely; validated like runCommand.
    pub command: String,
    /// Seconds before the remote command is killed (default 30).
    pub timeout: Option<u64>,
}

#[tool_router(router = ssh_tools, vis = "pub(crate)")]
impl LinuxHandler {
    #[tool(
        name = "sshExecuteCommand",
        description = "Run a command on a remote host over SSH. The host is looked up by name in the CMDB (address, ssh_user, ssh_port) or in linux.ssh.host; the key comes from the secrets directory; the host key must already be in known_hosts. The command is validated like runCommand before connecting. Returns exit_code, stdout, stderr, duration_ms.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn ssh_execute_command(
        &self,
        Parameters(a): Parameters<SshArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, LinuxError> {
        let caller = CallerContext::from_request(&ctx);
        let timeout = self.timeout(a.timeout)?;
        if a.command.trim().is_empty() {
            return Err(LinuxError::invalid("`command` must not be empty"));
        }
        let v = self.svc.remote_validator.validate(&a.command, None);
        if let Err(refusal) = self.gate("sshExecuteCommand", &caller, &a.host, &a.command, &v) {
            return Ok(refusal);
        }
        let target = self.resolve_host(&a.host).await?;
        let cfg = &self.svc.config.ssh;
        let out = ssh::execute(
            &target,
            &cfg.known_hosts,
            &a.command,
            Duration::from_secs(cfg.connect_timeout_secs),
            timeout,
            self.svc.config.max_output_bytes,
        )
        .await
        .inspect_err(|e| tracing::warn!(target: "audit", message = "SSH command failed.", host = %a.host, identity = %caller.identity.name, correlation_id = %caller.correlation_id, error = %mcp_runtime::redact::text(&e.to_string())))?;
        self.audit(
            &caller,
            "sshExecuteCommand",
            &a.host,
            &a.command,
            &v,
            AuditDecision::Done("ran"),
            Some(&out),
        );
        Ok(exec_result(
            &out,
            &v,
            json!({ "host": target.host, "address": target.address, "port": target.port, "user": target.user }),
        ))
    }
}
