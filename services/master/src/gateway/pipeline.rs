//! The call pipeline: every `tools/call` master handles — on `/mcp`, `/sse`, every toolset,
//! `/mcp/discover` and its meta-tools, and every workflow step — runs [`Gateway::call_tool`],
//! whose stages run in this order:
//!
//! 1. **resolve** ([`Gateway::resolve`]): `master_callTool` on the discovery endpoint is unwrapped
//!    to the call it carries; aliases become wire names; a name nobody serves is refused.
//! 2. **authorize** ([`Gateway::authorize`]): the endpoint's view and the role policy together. A
//!    missing, denied or out-of-view tool gets the one [`unknown_tool`] answer, byte for byte.
//! 3. **rate limit** (`RateLimits::check`).
//! 4. **approval**: a policy `approve` rule records a pending approval (`approval_flow`).
//! 5. **dispatch**: a local tool (`local`) or the downstream (`forward`, with retry only for
//!    read-only/idempotent tools after a connection failure, span, progress, metrics); in a
//!    versioned namespace the version is chosen first and the outcome counted for its rollback
//!    thresholds (`routing`).
//! 6. **classify**: a service's `approval_required` becomes a pending approval; errors become
//!    sentences that name the service and what to do.
//! 7. **record**: [`Record`] writes exactly one audit row when it is dropped, whatever happened
//!    before (a refusal, an error, a panic unwinding, or a client that went away mid-call).
//!
//! Approved calls (`approval_flow::execute_approved`) run stage 5's `dispatch` too.

use std::time::Instant;

use mcp_runtime::CallerContext;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::forward::{Outgoing, call_error_text};
use super::index::Route;
use super::{Gateway, tool_error};
use crate::audit::{AuditRecord, redacted_args};
use crate::config::Action;
use crate::downstream::CallError;
use crate::namespace::wire_name;
use crate::routing::{Pick, ROUTE_HEADER, RouteRefused};
use crate::toolsets::{View, ViewKind};

/// The one answer for a tool the caller may not use here: missing, denied by policy, or outside
/// this endpoint's view. It names nothing, so it reveals nothing about what exists.
pub const UNKNOWN_TOOL: &str = "unknown tool: no tool of that name is available to you on this endpoint; call tools/list (on /mcp/discover: master_searchTools) to see the tools you can use";

/// [`UNKNOWN_TOOL`] as the JSON-RPC error every endpoint and transport answers.
pub fn unknown_tool() -> ErrorData {
    ErrorData::invalid_params(UNKNOWN_TOOL, None)
}

/// One `tools/call` as it enters the pipeline.
pub struct Call<'a> {
    pub request: CallToolRequestParams,
    /// The request's `_meta` (progress token, trace context, ...).
    pub meta: RequestMetaObject,
    pub caller: &'a CallerContext,
    /// The endpoint the call came in on; `None` for master's own calls (workflow steps), which may
    /// use every tool the policy allows.
    pub view: Option<&'a View>,
    /// The client, for progress, elicitation and requests of the service; none for workflow steps.
    pub peer: Option<&'a Peer<RoleServer>>,
    /// The client's request, in which master's own tools run; none for workflow steps.
    pub context: Option<&'a RequestContext<RoleServer>>,
    pub ct: &'a CancellationToken,
    /// The result is a secret (a workflow step marked `secret_result`): not masked.
    pub secret_result: bool,
}

/// The audit row of one call. Stages fill it in; it is written when dropped, so every call gets
/// exactly one, however the pipeline ends.
pub(crate) struct Record<'g> {
    gateway: &'g Gateway,
    started: Instant,
    identity: String,
    correlation_id: String,
    pub tool: String,
    pub arguments: String,
    pub decision: &'static str,
    pub status: &'static str,
    pub error: Option<String>,
    /// What the guardrails found in the result (`guard`).
    pub findings: Option<String>,
    /// `call` for a client's call, `step` for a workflow step's (no client peer).
    source: &'static str,
}

impl<'g> Record<'g> {
    fn new(gateway: &'g Gateway, call: &Call<'_>) -> Self {
        Self {
            gateway,
            started: Instant::now(),
            identity: call.caller.identity.name.clone(),
            correlation_id: call.caller.correlation_id.clone(),
            tool: call.request.name.to_string(),
            arguments: redacted_args(call.request.arguments.as_ref()),
            decision: "allow",
            // What stays when nothing else is set: the caller went away before the end.
            status: "cancelled",
            error: Some("the call ended before it finished (client gone or cancelled)".to_owned()),
            findings: None,
            source: if call.peer.is_some() { "call" } else { "step" },
        }
    }

    /// Sets how the call ended.
    pub(crate) fn set(
        &mut self,
        decision: &'static str,
        status: &'static str,
        error: Option<String>,
    ) {
        self.decision = decision;
        self.status = status;
        self.error = error;
    }

    /// Sets the outcome from the answer itself (`error` when it is a tool error).
    pub(crate) fn answered(&mut self, decision: &'static str, r: &CallToolResponse) {
        let status = match r {
            CallToolResponse::Complete(c) if c.is_error == Some(true) => "error",
            _ => "success",
        };
        self.set(decision, status, None);
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        self.gateway.audit.record(AuditRecord {
            identity: std::mem::take(&mut self.identity),
            tool: std::mem::take(&mut self.tool),
            arguments: std::mem::take(&mut self.arguments),
            decision: self.decision.to_owned(),
            status: self.status.to_owned(),
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            correlation_id: std::mem::take(&mut self.correlation_id),
            error: self.error.take(),
            findings: self.findings.take(),
            source: self.source,
        });
    }
}

/// What a name resolved to.
pub(crate) enum Target {
    /// A tool of the merged index (canonical wire name).
    Tool {
        wire: String,
        route: Route,
        tool: std::sync::Arc<Tool>,
    },
    /// `master_searchTools` / `master_describeTool` of the discovery endpoint.
    Discovery(String),
    /// A tool held by its pin (`guard::pins`): refused, with why, to callers who may see it.
    Held { wire: String, refusal: String },
}

impl Gateway {
    /// The whole pipeline of one `tools/call` (see the module docs for the stages).
    pub async fn call_tool(&self, mut call: Call<'_>) -> Result<CallToolResponse, ErrorData> {
        let mut record = Record::new(self, &call);
        // 1. resolve
        let target = self.resolve(&mut call, &mut record)?;
        let (wire, route, tool) = match target {
            Target::Discovery(name) => {
                if let Some(r) = self.rate_limit(&name, call.caller, &mut record) {
                    return Ok(r);
                }
                let r = self
                    .call_local(&name, call.request.arguments.clone(), call.context, true)
                    .await;
                match &r {
                    Ok(resp) => record.answered("allow", resp),
                    Err(e) => {
                        record.set("invalid_arguments", "refused", Some(e.message.to_string()))
                    }
                }
                return r;
            }
            Target::Held { wire, refusal } => {
                record.tool.clone_from(&wire);
                self.authorize(&wire, &call, &mut record)?;
                record.set("held", "refused", Some(refusal.clone()));
                return Ok(tool_error(refusal));
            }
            Target::Tool { wire, route, tool } => (wire, route, tool),
        };
        record.tool.clone_from(&wire);
        // 2. authorize
        let action = self.authorize(&wire, &call, &mut record)?;
        // No call runs that cannot be written down (unless `audit_fail_open`); its row, like
        // this refusal's, waits in memory until the store takes it.
        if !self.cfg.audit_fail_open
            && let Some(error) = self.audit.failing()
        {
            let why = format!(
                "master cannot write its audit trail ({error}); calls are refused until it can: free space or fix the audit database's permissions ({})",
                self.cfg.audit_db.display()
            );
            record.set("audit_unavailable", "refused", Some(why.clone()));
            return Ok(tool_error(why));
        }
        // 3. rate limit
        if let Some(r) = self.rate_limit(&wire, call.caller, &mut record) {
            return Ok(r);
        }
        // 4. approval required by policy
        if action == Action::Approve {
            return Ok(self
                .policy_approval(&wire, &route, &call, &mut record)
                .await);
        }
        // 5. dispatch, 6. classify
        match route {
            Route::Local(name) => {
                let r = self
                    .call_local(&name, call.request.arguments.clone(), call.context, false)
                    .await;
                match &r {
                    Ok(resp) => {
                        record.answered(local_decision(&wire, &self.cfg.separator, resp), resp)
                    }
                    Err(e) => record.set("allow", "error", Some(e.message.to_string())),
                }
                r
            }
            Route::Downstream { index, name } => {
                let (index, pick) = match self.route_version(index, &name, &mut call) {
                    Ok(chosen) => chosen,
                    Err(RouteRefused(msg)) => {
                        record.set("invalid_route", "refused", Some(msg.clone()));
                        return Ok(tool_error(msg));
                    }
                };
                let started = Instant::now();
                let retry = tool.annotations.as_ref().is_some_and(|a| {
                    a.read_only_hint == Some(true) || a.idempotent_hint == Some(true)
                });
                let progress = call.meta.get_progress_token();
                let outcome = self
                    .dispatch(Outgoing {
                        index,
                        name: &name,
                        arguments: call.request.arguments.clone(),
                        // Nothing after dispatch reads the request's `_meta` (the progress
                        // token is taken above).
                        meta: std::mem::take(&mut call.meta),
                        identity: &call.caller.identity,
                        subject_token: call.caller.subject_token.as_ref(),
                        correlation_id: &call.caller.correlation_id,
                        trace_id: call.caller.trace_id.as_deref(),
                        retry,
                        peer: call.peer,
                        progress: progress.clone(),
                        ct: call.ct,
                    })
                    .await;
                if let Some(pick) = &pick {
                    self.observe_route(pick, &outcome, started.elapsed());
                    let read_only = tool
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.read_only_hint == Some(true));
                    if read_only && let Ok(CallToolResponse::Complete(r)) = &outcome {
                        self.mirror(pick, &name, &call, r);
                    }
                }
                self.classify(outcome, &wire, index, &name, &call, progress, &mut record)
                    .await
            }
        }
    }

    /// Stage 1: what the requested name means on this endpoint.
    fn resolve(&self, call: &mut Call<'_>, record: &mut Record<'_>) -> Result<Target, ErrorData> {
        let sep = &self.cfg.separator;
        if call
            .view
            .is_some_and(|v| matches!(v.kind, ViewKind::Discover))
        {
            let name = call.request.name.to_string();
            if name == wire_name("master", sep, "searchTools")
                || name == wire_name("master", sep, "describeTool")
            {
                return Ok(Target::Discovery(name));
            }
            if name != wire_name("master", sep, "callTool") {
                record.set("unknown_tool", "refused", Some("unknown tool".to_owned()));
                return Err(unknown_tool());
            }
            let args = call.request.arguments.as_ref();
            let mut refuse = |why: &str, what: &str| {
                record.set("invalid_arguments", "refused", Some(why.to_owned()));
                ErrorData::invalid_params(
                    format!(
                        "invalid arguments for `master_callTool`: {why} ({what}). Expected arguments: {{name: string, arguments?: object}}"
                    ),
                    None,
                )
            };
            let Some(target) = args.and_then(|a| a.get("name")).and_then(Value::as_str) else {
                return Err(refuse(
                    "`name` is required",
                    "the tool to call, as master_searchTools lists it",
                ));
            };
            let inner: Option<Map<String, Value>> = match args.and_then(|a| a.get("arguments")) {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m.clone()),
                Some(_) => {
                    return Err(refuse(
                        "`arguments` must be an object",
                        "the tool's arguments",
                    ));
                }
            };
            // The wrapped call is the call: audited once, under the tool it runs.
            let mut request = CallToolRequestParams::new(target.to_owned());
            request.arguments = inner;
            record.tool = target.to_owned();
            record.arguments = redacted_args(request.arguments.as_ref());
            call.request = request;
            // Discovery reaches every tool the policy lets the caller see, like `/mcp`.
            call.view = None;
        }
        match self.canonical(&call.request.name) {
            Some((wire, route, tool)) => Ok(Target::Tool { wire, route, tool }),
            None => {
                if let Some((wire, held)) = self.held_tool(&call.request.name) {
                    return Ok(Target::Held {
                        wire,
                        refusal: held.refusal(),
                    });
                }
                record.set("unknown_tool", "refused", Some("unknown tool".to_owned()));
                Err(unknown_tool())
            }
        }
    }

    /// Stage 5, versioned namespaces: the version this call goes to (header or `_meta` override,
    /// rule, sticky assignment; see `routing`). The override is taken out of the `_meta` passed on.
    fn route_version(
        &self,
        index: usize,
        name: &str,
        call: &mut Call<'_>,
    ) -> Result<(usize, Option<Pick>), RouteRefused> {
        if self.routes.is_empty() {
            return Ok((index, None));
        }
        let parts = call
            .context
            .and_then(|c| c.extensions.get::<axum::http::request::Parts>());
        let header = |name: &str| {
            parts
                .and_then(|p| p.headers.get(name))
                .and_then(|v| v.to_str().ok())
        };
        let meta = call.meta.remove(ROUTE_HEADER);
        let overrides = match &meta {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                return Err(RouteRefused(format!(
                    "`_meta.{ROUTE_HEADER}` must be a string like \"cmdb=v2\""
                )));
            }
            None => header(ROUTE_HEADER),
        };
        let who = &call.caller.identity;
        // One caller, one version: by identity, or by session when auth is off.
        let sticky = if who.name == mcp_runtime::auth::Identity::anonymous().name {
            header("mcp-session-id")
        } else {
            Some(who.name.as_str())
        };
        let pick = self
            .routes
            .pick(index, name, who, sticky, overrides, &|i| {
                self.downstream(i).is_up()
            })?;
        Ok(match pick {
            Some(p) => (p.index, Some(p)),
            None => (index, None),
        })
    }

    /// Counts a routed call for its version; a rollback it triggers is logged and audited.
    fn observe_route(
        &self,
        pick: &Pick,
        outcome: &Result<CallToolResponse, CallError>,
        elapsed: std::time::Duration,
    ) {
        let error = match outcome {
            Ok(CallToolResponse::Complete(r)) => r.is_error == Some(true),
            Ok(_) => false,
            Err(CallError::Cancelled) => return,
            Err(_) => true,
        };
        if let Some(rb) = self.routes.observe(pick, error, elapsed) {
            tracing::warn!(
                message = "Candidate version rolled back: its weight is now 0.",
                namespace = %rb.namespace,
                version = %rb.version,
                reason = %rb.reason
            );
            self.audit_route_change(
                "master",
                &rb.namespace,
                &serde_json::json!({ rb.version.clone(): 0 }),
                "rollback",
                &rb.reason,
            );
        }
    }

    /// Stage 5, versioned namespaces with `mirror = true`: the same read-only call sent to the
    /// candidates in the background, their answers compared with `stable`'s and discarded.
    fn mirror(&self, pick: &Pick, name: &str, call: &Call<'_>, stable: &CallToolResult) {
        let targets = self
            .routes
            .mirror_targets(pick, name, &|i| self.downstream(i).is_up());
        if targets.is_empty() {
            return;
        }
        let Some(gateway) = self.me.upgrade() else {
            return;
        };
        for (index, version) in targets {
            let namespace = pick.namespace().to_owned();
            let Ok(permit) = self.mirror_slots.clone().try_acquire_owned() else {
                self.routes.mirrored(&namespace, &version, "skipped", None);
                continue;
            };
            let (g, name, stable) = (gateway.clone(), name.to_owned(), stable.clone());
            let arguments = call.request.arguments.clone();
            let identity = call.caller.identity.clone();
            let correlation_id = call.caller.correlation_id.clone();
            let trace_id = call.caller.trace_id.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let ct = CancellationToken::new();
                let started = Instant::now();
                let answer = g
                    .dispatch(Outgoing {
                        index,
                        name: &name,
                        arguments,
                        meta: RequestMetaObject::default(),
                        identity: &identity,
                        subject_token: None,
                        correlation_id: &correlation_id,
                        trace_id: trace_id.as_deref(),
                        retry: false,
                        peer: None,
                        progress: None,
                        ct: &ct,
                    })
                    .await;
                let outcome = match &answer {
                    Ok(CallToolResponse::Complete(r)) if same_answer(&stable, r) => "match",
                    Ok(CallToolResponse::Complete(_)) => "differ",
                    _ => "error",
                };
                g.routes
                    .mirrored(&namespace, &version, outcome, Some(started.elapsed()));
            });
        }
    }

    /// Stage 2: the endpoint's view, then the policy. Refusals all look like a missing tool.
    fn authorize(
        &self,
        wire: &str,
        call: &Call<'_>,
        record: &mut Record<'_>,
    ) -> Result<Action, ErrorData> {
        if let Some(view) = call.view {
            let idx = self.index();
            let ns = idx.tool_ns.get(wire).map_or("", String::as_str);
            if !view.allows(&call.caller.identity) || !view.admits(wire, ns) {
                record.set(
                    "out_of_view",
                    "refused",
                    Some(format!("not offered on {}", view.path())),
                );
                return Err(unknown_tool());
            }
        }
        match self.policy.decide(&call.caller.identity, wire) {
            Action::Deny => {
                self.metrics.policy_denied.inc();
                record.set("deny", "refused", Some("denied by policy".to_owned()));
                Err(unknown_tool())
            }
            other => Ok(other),
        }
    }

    /// Stage 3: the caller's and the tool's token buckets; the refusal when one is empty.
    fn rate_limit(
        &self,
        wire: &str,
        caller: &CallerContext,
        record: &mut Record<'_>,
    ) -> Option<CallToolResponse> {
        let Err(l) = self.limits.check(&caller.identity.name, wire) else {
            return None;
        };
        self.metrics
            .rate_limited
            .with_label_values(&[l.scope])
            .inc();
        let msg = format!(
            "rate limit exceeded: at most {} calls per minute per {} for {}; retry in {:.1} s",
            l.per_minute,
            if l.scope == "identity" {
                "identity"
            } else {
                "identity and tool"
            },
            caller.identity.name,
            l.retry_after_secs
        );
        record.set("rate_limited", "refused", Some(msg.clone()));
        Some(tool_error(msg))
    }

    /// Stage 4: a policy rule says a human approves this tool first.
    async fn policy_approval(
        &self,
        wire: &str,
        route: &Route,
        call: &Call<'_>,
        record: &mut Record<'_>,
    ) -> CallToolResponse {
        if let Route::Downstream { index, name } = route
            && let Some(row) = self.record_approval(
                wire,
                *index,
                name,
                call.request.arguments.clone(),
                "policy requires a human approval for this tool",
                call.caller,
                &record.arguments,
            )
        {
            let progress = call.meta.get_progress_token();
            return self.settle_recorded(row, call, progress, record).await;
        }
        record.set(
            "approve",
            "refused",
            Some("approval required, approvals disabled".to_owned()),
        );
        tool_error(format!(
            "approval required: policy requires a human approval before `{wire}` runs, and approvals are not enabled on this master (set master.identity_key_file or master.approvals.key_file); ask an operator to allow this tool for your role"
        ))
    }

    /// A pending approval settled for the waiting caller (stages 4 and 6); the call's record
    /// gets the decision and names the approval.
    async fn settle_recorded(
        &self,
        row: crate::approvals::ApprovalRow,
        call: &Call<'_>,
        progress: Option<ProgressToken>,
        record: &mut Record<'_>,
    ) -> CallToolResponse {
        let note = format!("{}: {}", row.id, row.reason);
        let (r, decision) = self
            .settle_approval(row, call.caller, call.peer, progress, call.ct)
            .await;
        record.answered(decision, &r);
        record.error = Some(note);
        r
    }

    /// Stage 6: what the downstream's answer means for the caller and the record.
    #[allow(clippy::too_many_arguments)] // the call as dispatched, and where it came from
    async fn classify(
        &self,
        outcome: Result<CallToolResponse, CallError>,
        wire: &str,
        index: usize,
        name: &str,
        call: &Call<'_>,
        progress: Option<ProgressToken>,
        record: &mut Record<'_>,
    ) -> Result<CallToolResponse, ErrorData> {
        let d = self.downstream(index).clone();
        match outcome {
            Ok(CallToolResponse::Complete(r))
                if self.approvals.is_some() && is_approval_required(&r) =>
            {
                let reason = super::approval_flow::service_reason(&r);
                match self.record_approval(
                    wire,
                    index,
                    name,
                    call.request.arguments.clone(),
                    &reason,
                    call.caller,
                    &record.arguments,
                ) {
                    Some(row) => Ok(self.settle_recorded(row, call, progress, record).await),
                    None => {
                        record.set("approve", "refused", Some("approvals disabled".to_owned()));
                        Ok(tool_error("approvals are not enabled on this master"))
                    }
                }
            }
            Ok(r) => Ok(self.guard_answer(index, name, wire, call.secret_result, r, record)),
            Err(CallError::Remote(e)) => {
                record.set("allow", "error", Some(e.message.to_string()));
                Err(e)
            }
            Err(CallError::Cancelled) => {
                let msg = "cancelled by the client".to_owned();
                record.set("allow", "cancelled", Some(msg.clone()));
                Err(ErrorData::internal_error(msg, None))
            }
            Err(e) => {
                let msg = call_error_text(&d, name, &e);
                let decision = if matches!(e, CallError::Unavailable(_)) {
                    "unavailable"
                } else {
                    "allow"
                };
                record.set(decision, "error", Some(msg.clone()));
                Ok(tool_error(msg))
            }
        }
    }
}

/// The decision a local tool's audit row records: an approver's decision is the row of
/// `approvals_approve` / `approvals_deny`.
fn local_decision(wire: &str, sep: &str, r: &CallToolResponse) -> &'static str {
    let ok = !matches!(r, CallToolResponse::Complete(c) if c.is_error == Some(true));
    if ok && wire == wire_name("approvals", sep, "approve") {
        "approval_approved"
    } else if ok && wire == wire_name("approvals", sep, "deny") {
        "approval_denied"
    } else {
        "allow"
    }
}

/// Whether a service answered a structured `approval_required` refusal.
fn is_approval_required(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
        && r.structured_content
            .as_ref()
            .and_then(|s| s.get("error"))
            .and_then(Value::as_str)
            == Some("approval_required")
}

/// Whether two answers to the same call say the same: error flag, structured content, content.
fn same_answer(a: &CallToolResult, b: &CallToolResult) -> bool {
    a.is_error.unwrap_or(false) == b.is_error.unwrap_or(false)
        && a.structured_content == b.structured_content
        && serde_json::to_value(&a.content).ok() == serde_json::to_value(&b.content).ok()
}
