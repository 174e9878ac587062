//! Shell tools: runCommand (validated, sandboxed, timed) and validateCommand (the verdict alone).

use mcp_runtime::CallerContext;
use mcp_runtime::guard::Decision as AuditDecision;
use mcp_security::Validation;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::error::LinuxError;
use crate::{LinuxHandler, exec};

use super::exec_result;

/// Arguments of `runCommand`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCommandArgs {
    /// Shell command line (bash syntax), e.g. "df -h | sort -k5". Give this or `argv`.
    pub command: Option<String>,
    /// Program and arguments, run without a shell, e.g. ["ls","-la"]. Give this or `command`.
    pub argv: Option<Vec<String>>,
    /// Working directory inside the allowed roots (default: the first root).
    pub cwd: Option<String>,
    /// Seconds before the whole process group is killed (default 30, at most the configured maximum).
    pub timeout_secs: Option<u64>,
}

/// Arguments of `validateCommand`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateArgs {
    /// Shell command line to classify.
    pub command: String,
}

#[tool_router(router = shell_tools, vis = "pub(crate)")]
impl LinuxHandler {
    #[tool(
        name = "runCommand",
        description = "Run a shell command (bash syntax in `command`, or `argv` without a shell) in a sandboxed working directory, with a timeout that kills the whole process group and capped output. Every part of the command is validated: read-only commands run, write/privileged/destructive ones need an approval (answer: approval_required), blocked ones (rm -rf /, curl|sh, fork bombs, unanalysable constructs) never run. Returns exit_code, stdout, stderr, duration_ms, category.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn run_command(
        &self,
        Parameters(args): Parameters<RunCommandArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, LinuxError> {
        let caller = CallerContext::from_request(&ctx);
        let timeout = self.timeout(args.timeout_secs)?;
        let cwd = match &args.cwd {
            Some(c) => self.svc.files.resolve(c).map_err(LinuxError::Cwd)?.absolute,
            None => self.svc.files.sandbox().roots()[0].clone(),
        };
        if !cwd.is_dir() {
            return Err(LinuxError::invalid(format!(
                "cwd `{}` is not an existing directory",
                cwd.display()
            )));
        }
        let (argv, shown, v) = match (&args.command, &args.argv) {
            (Some(c), None) => {
                if c.trim().is_empty() {
                    return Err(LinuxError::invalid("`command` must not be empty"));
                }
                let v = self.svc.validator.validate(c, Some(&cwd));
                (
                    vec![
                        "/bin/bash".to_owned(),
                        "--noprofile".to_owned(),
                        "--norc".to_owned(),
                        "-c".to_owned(),
                        c.clone(),
                    ],
                    c.clone(),
                    v,
                )
            }
            (None, Some(a)) if !a.is_empty() => {
                let v = self.svc.validator.validate_argv(a, Some(&cwd));
                (a.clone(), a.join(" "), v)
            }
            _ => {
                return Err(LinuxError::invalid(
                    "give exactly one of `command` (a shell string) or `argv` (a non-empty list)",
                ));
            }
        };
        if let Err(refusal) = self.gate("runCommand", &caller, "local", &shown, &v) {
            return Ok(refusal);
        }
        let out = exec::run(&argv, &cwd, timeout, self.svc.config.max_output_bytes).await?;
        self.audit(
            &caller,
            "runCommand",
            "local",
            &shown,
            &v,
            AuditDecision::Done("ran"),
            Some(&out),
        );
        Ok(exec_result(
            &out,
            &v,
            json!({ "cwd": cwd.display().to_string() }),
        ))
    }

    #[tool(
        name = "validateCommand",
        description = "Classify a shell command without running it: is_safe, category (read_only, write, network, privileged, destructive, blocked), decision (allow, approve, block) and the reason, with a finding for every part (pipelines, substitutions, wrapper payloads).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn validate_command(
        &self,
        Parameters(args): Parameters<ValidateArgs>,
    ) -> Result<Json<Validation>, LinuxError> {
        Ok(Json(self.svc.validator.validate(&args.command, None)))
    }
}
