//! Every command passes here before it runs: the validator's verdict (blocked, approval needed), the
//! approval gate, the audit line of each decision, and the timeout bounds.

use std::time::Duration;

use mcp_runtime::CallerContext;
use mcp_runtime::guard::{AccessAudited, ApprovalAsk, Decision as AuditDecision, require_approval};
use mcp_runtime::output::structured_error;
use mcp_security::{Decision, Validation};
use rmcp::model::CallToolResult;
use serde_json::{Map, Value, json};

use crate::error::LinuxError;
use crate::{LinuxHandler, exec};

pub(crate) fn validation_details(v: &Validation, command: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("category".into(), json!(v.category));
    m.insert("command".into(), json!(command));
    m.insert(
        "validation".into(),
        serde_json::to_value(v).unwrap_or(Value::Null),
    );
    m
}

/// Secrets that may appear in command lines are masked in audit records.
/// The command as the audit line shows it: secrets masked by the shared redactor, bounded.
pub(crate) fn redact(command: &str) -> String {
    let s = mcp_runtime::redact::text(command);
    if s.len() > 1000 {
        format!("{}…", &s[..s.floor_char_boundary(1000)])
    } else {
        s.into_owned()
    }
}

/// The audit event of one command (`Command audited.`): the command is masked and bounded here.
pub(crate) fn audited<'a>(
    tool: &'a str,
    host: &'a str,
    shown: &'a str,
    v: &'a Validation,
    decision: AuditDecision,
    out: Option<&exec::ExecOutput>,
) -> AccessAudited<'a> {
    let mut e = AccessAudited::new("Command audited.", tool, decision);
    e.host = Some(host);
    e.command = Some(shown);
    e.category = Some(v.category.as_str());
    e.exit_code = out.and_then(|o| o.exit_code);
    e.timed_out = out.map(|o| o.timed_out);
    e.duration_ms = out.map(|o| o.duration_ms);
    e
}

impl LinuxHandler {
    /// Writes the audit line of one command and counts it.
    #[allow(clippy::too_many_arguments)] // one call per tool, each naming every part of its action
    pub(crate) fn audit(
        &self,
        caller: &CallerContext,
        tool: &str,
        host: &str,
        command: &str,
        v: &Validation,
        decision: AuditDecision,
        out: Option<&exec::ExecOutput>,
    ) {
        let shown = redact(command);
        audited(tool, host, &shown, v, decision, out).emit(caller, &self.svc.metrics);
    }

    /// Applies the verdict: blocked → refusal, approval needed without a token → approval_required.
    pub(crate) fn gate(
        &self,
        tool: &str,
        caller: &CallerContext,
        host: &str,
        command: &str,
        v: &Validation,
    ) -> Result<(), CallToolResult> {
        match v.decision {
            Decision::Block => {
                self.audit(caller, tool, host, command, v, AuditDecision::Blocked, None);
                Err(structured_error(
                    format!("refused ({}): {}. Nothing was run.", v.category, v.reason),
                    json!({ "error": "blocked", "category": v.category, "reason": v.reason, "validation": v }),
                ))
            }
            Decision::Approve => {
                let shown = redact(command);
                let ask = ApprovalAsk {
                    reason: format!("`{}` command needs approval: {}", v.category, v.reason),
                    details: validation_details(v, command),
                };
                let event = audited(tool, host, &shown, v, AuditDecision::ApprovalRequired, None);
                require_approval(caller, tool, ask, &event, &self.svc.metrics).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn timeout(&self, asked: Option<u64>) -> Result<Duration, LinuxError> {
        let c = &self.svc.config;
        let secs = asked.unwrap_or(c.default_timeout_secs);
        if secs == 0 || secs > c.max_timeout_secs {
            return Err(LinuxError::invalid(format!(
                "timeout must be between 1 and {} seconds, got {secs}",
                c.max_timeout_secs
            )));
        }
        Ok(Duration::from_secs(secs))
    }
}
