//! Every access passes here: the address, the rules (a denial answers exactly like a missing secret),
//! the approval gate for writes, and the audit record of each decision (log line, metrics, audit file).

use std::io::Write;
use std::sync::Arc;

use mcp_runtime::CallerContext;
use mcp_runtime::guard::{AccessAudited, ApprovalAsk, Decision, require_approval};
use rmcp::model::CallToolResult;
use serde::Serialize;

use crate::acl::Action;
use crate::backend::{SecretBackend, SecretError};
use crate::error::SecretsError;
use crate::{Secrets, SecretsHandler, backend};

/// One audit record. Never carries a value.
#[derive(Debug, Serialize)]
pub(crate) struct AuditRecord<'a> {
    pub(crate) timestamp: String,
    pub(crate) identity: &'a str,
    pub(crate) action: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) backend: &'a str,
    pub(crate) decision: &'a str,
    pub(crate) correlation_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(crate) approval_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(crate) detail: &'a str,
}

impl Secrets {
    pub(crate) fn backend(
        &self,
        name: &str,
    ) -> Result<(&Arc<dyn SecretBackend>, String), SecretsError> {
        let (backend, path) = name
            .split_once('/')
            .ok_or_else(|| SecretsError::NotAnAddress(name.to_owned()))?;
        let b = self
            .backends
            .iter()
            .find(|b| b.name() == backend)
            .ok_or_else(|| {
                let names: Vec<&str> = self.backends.iter().map(|b| b.name()).collect();
                SecretsError::UnknownBackend {
                    backend: backend.to_owned(),
                    configured: if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    },
                }
            })?;
        if path.is_empty() {
            return Err(SecretsError::NoPath(name.to_owned()));
        }
        Ok((b, path.to_owned()))
    }

    /// One audited access: the audit line and `mcp_access_decisions_total` (through the shared
    /// guard), `mcp_secret_access_total{backend,action,decision}` and the JSON-lines audit file.
    pub(crate) fn audit(
        &self,
        caller: &CallerContext,
        action: Action,
        secret: &str,
        backend: &str,
        decision: Decision,
        detail: &str,
    ) {
        self.audited(action, secret, backend, decision, detail)
            .emit(caller, &self.metrics);
        self.recorded(caller, action, secret, backend, decision, detail);
    }

    pub(crate) fn audited<'a>(
        &self,
        action: Action,
        secret: &'a str,
        backend: &'a str,
        decision: Decision,
        detail: &'a str,
    ) -> AccessAudited<'a> {
        let mut e = AccessAudited::new("Secret access audited.", action.tool(), decision);
        e.action = Some(action.as_str());
        e.secret = Some(secret);
        e.backend = Some(backend);
        e.detail = Some(detail);
        e
    }

    /// The service's own counter and audit file (the guard's event wrote the log line).
    pub(crate) fn recorded(
        &self,
        caller: &CallerContext,
        action: Action,
        secret: &str,
        backend: &str,
        decision: Decision,
        detail: &str,
    ) {
        self.access
            .with_label_values(&[backend, action.as_str(), decision.as_str()])
            .inc();
        let rec = AuditRecord {
            timestamp: backend::rfc3339(time::OffsetDateTime::now_utc()).unwrap_or_default(),
            identity: &caller.identity.name,
            action: action.as_str(),
            secret,
            backend,
            decision: decision.as_str(),
            correlation_id: &caller.correlation_id,
            approval_id: caller
                .approval
                .as_ref()
                .map(|a| a.id.as_str())
                .unwrap_or(""),
            detail,
        };
        if let Some(f) = &self.audit_file
            && let Ok(mut line) = serde_json::to_string(&rec)
        {
            line.push('\n');
            let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = f.write_all(line.as_bytes()) {
                tracing::error!(message = "Cannot write the secrets audit file.", error = %e);
            }
        }
    }

    /// The one answer for "missing" and "forbidden", so callers cannot probe for existence.
    pub(crate) fn hidden(name: &str, action: Action) -> SecretsError {
        SecretsError::Hidden {
            address: name.to_owned(),
            action: action.as_str(),
        }
    }

    /// Checks the address and the rules; a refusal is audited and returned as the tool error text.
    pub(crate) fn authorize(
        &self,
        caller: &CallerContext,
        action: Action,
        name: &str,
    ) -> Result<(Arc<dyn SecretBackend>, String), SecretsError> {
        let (b, path) = match self.backend(name) {
            Ok(v) => v,
            Err(e) => {
                self.audit(caller, action, name, "", Decision::Invalid, &e.to_string());
                return Err(e);
            }
        };
        let address = format!("{}/{path}", b.name());
        if !self.acl.allows(&caller.identity, action, &address) {
            self.audit(
                caller,
                action,
                &address,
                b.name(),
                Decision::Denied,
                "no rule grants this",
            );
            return Err(Self::hidden(&address, action));
        }
        Ok((b.clone(), path))
    }

    /// Maps a backend error to the caller's text (NotFound looks exactly like a denial).
    pub(crate) fn failure(
        &self,
        caller: &CallerContext,
        action: Action,
        address: &str,
        backend: &str,
        e: SecretError,
    ) -> SecretsError {
        match e {
            SecretError::NotFound => {
                self.audit(caller, action, address, backend, Decision::NotFound, "");
                Self::hidden(address, action)
            }
            other => {
                let text = other.to_string();
                self.audit(caller, action, address, backend, Decision::Error, &text);
                SecretsError::Backend(other)
            }
        }
    }
}

impl SecretsHandler {
    /// Destructive actions need an approval token for exactly this call.
    pub(crate) fn require_approval(
        &self,
        caller: &CallerContext,
        tool: &str,
        action: Action,
        address: &str,
        backend: &str,
        field: Option<&str>,
    ) -> Option<CallToolResult> {
        let mut ask = ApprovalAsk::new(format!(
            "{} of secret `{address}` needs a human approval",
            action.as_str()
        ))
        .detail("secret", address)
        .detail("action", action.as_str());
        if let Some(f) = field {
            ask = ask.detail("field", f);
        }
        let event = self
            .svc
            .audited(action, address, backend, Decision::ApprovalRequired, "");
        let refusal = require_approval(caller, tool, ask, &event, &self.svc.metrics).err()?;
        self.svc.recorded(
            caller,
            action,
            address,
            backend,
            Decision::ApprovalRequired,
            "",
        );
        Some(refusal)
    }
}
