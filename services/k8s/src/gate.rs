//! Every action passes here before the API server is asked: access rules, the approval gate for
//! mutations, and the audit line of each decision.

use mcp_runtime::CallerContext;
use mcp_runtime::guard::{AccessAudited, ApprovalAsk, Decision, require_approval};
use rmcp::model::CallToolResult;

use crate::K8s;
use crate::access::Verb;
use crate::error::K8sError;

impl K8s {
    /// Writes the audit line of one action (`Kubernetes action audited.`) and counts it.
    pub(crate) fn audit(
        &self,
        caller: &CallerContext,
        tool: &str,
        namespace: Option<&str>,
        what: &str,
        decision: Decision,
    ) {
        audited(tool, namespace, what, decision).emit(caller, &self.metrics);
    }

    /// A listing across every namespace: only the kind is checked here; items are filtered by
    /// the namespaces the caller may see.
    pub(crate) fn listing_all(
        &self,
        caller: &CallerContext,
        tool: &str,
        kind: &str,
        plural: &str,
    ) -> Result<(), K8sError> {
        self.access.check_kind(kind, plural).map_err(|denied| {
            self.audit(
                caller,
                tool,
                None,
                &format!("list {plural} in every namespace"),
                Decision::Denied,
            );
            K8sError::Refused(denied)
        })
    }

    /// Checks access and, for mutations, the approval. `Ok(None)` means go on; `Ok(Some(r))` is the
    /// `approval_required` answer.
    #[allow(clippy::too_many_arguments)] // one call per tool, each naming every part of its action
    pub(crate) fn gate(
        &self,
        caller: &CallerContext,
        tool: &str,
        verb: Verb,
        namespace: Option<&str>,
        kind: Option<(&str, &str)>,
        dry_run: bool,
        what: &str,
    ) -> Result<Option<CallToolResult>, K8sError> {
        if let Err(denied) = self
            .access
            .check(&caller.identity, verb, namespace, kind, dry_run)
        {
            self.audit(caller, tool, namespace, what, Decision::Denied);
            return Err(K8sError::Refused(denied));
        }
        if verb == Verb::Write && !dry_run && self.config.approve_mutations {
            let mut ask = ApprovalAsk::new(format!(
                "{what} changes the cluster and needs a human approval (dry_run=true does not)"
            ))
            .detail("action", what);
            if let Some(ns) = namespace {
                ask = ask.detail("namespace", ns);
            }
            let event = audited(tool, namespace, what, Decision::ApprovalRequired);
            if let Err(refusal) = require_approval(caller, tool, ask, &event, &self.metrics) {
                return Ok(Some(refusal));
            }
        }
        Ok(None)
    }
}

fn audited<'a>(
    tool: &'a str,
    namespace: Option<&'a str>,
    what: &'a str,
    decision: Decision,
) -> AccessAudited<'a> {
    let mut e = AccessAudited::new("Kubernetes action audited.", tool, decision);
    e.namespace = Some(namespace.unwrap_or(""));
    e.action = Some(what);
    e
}
