//! Human approvals in the pipeline: recording a pending call (stage 4, or a service's
//! `approval_required` in stage 6), settling it for the waiting caller (elicitation in the client,
//! or waiting for another approver), deciding, and running the approved call exactly as recorded
//! through the dispatch stage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_runtime::CallerContext;
use mcp_runtime::assertion::AssertionKey;
use rmcp::model::*;
use rmcp::{Peer, RoleServer};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::forward::{Outgoing, call_error_text};
use super::index::Route;
use super::{ApprovalEvent, Gateway, tool_error};
use crate::audit::{AuditRecord, redacted_args};
use crate::namespace::wire_name;

/// Why an approval action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalFailure {
    #[error(
        "approvals are not enabled on this master: set master.identity_key_file or master.approvals.key_file"
    )]
    Disabled,
    #[error("{0}")]
    Invalid(String),
    /// Not allowed, not pending, expired or unknown.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// The form an elicitation asks the user to fill in.
#[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ApprovalAnswer {
    /// true runs the call exactly as shown; false denies it.
    pub approve: bool,
    /// A note for the audit trail.
    pub comment: Option<String>,
}
rmcp::elicit_safe!(ApprovalAnswer);

/// The reason a service gave for its `approval_required` refusal, with its category
/// (linux-cli: write, network, privileged, destructive).
pub(super) fn service_reason(r: &CallToolResult) -> String {
    let field = |k: &str| {
        r.structured_content
            .as_ref()
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
    };
    let reason = field("reason").unwrap_or("the service requires a human approval");
    match field("category") {
        Some(c) => format!("{reason} (category: {c})"),
        None => reason.to_owned(),
    }
}

impl Gateway {
    /// Records a pending approval for a downstream call (none when approvals are off).
    #[allow(clippy::too_many_arguments)] // the call's route, arguments and caller, as recorded
    pub(super) fn record_approval(
        &self,
        wire: &str,
        index: usize,
        local: &str,
        arguments: Option<Map<String, Value>>,
        reason: &str,
        caller: &CallerContext,
        redacted: &str,
    ) -> Option<crate::approvals::ApprovalRow> {
        let (ap, _) = self.approvals.as_ref()?;
        let row = ap.request(
            wire,
            reason,
            redacted,
            &caller.correlation_id,
            crate::approvals::PendingCall {
                downstream: index,
                local_tool: local.to_owned(),
                arguments,
                requester: caller.identity.clone(),
            },
        );
        self.metrics
            .approvals
            .with_label_values(&["requested"])
            .inc();
        self.refresh_pending();
        tracing::info!(target: "audit", message = "Approval requested.", approval_id = %row.id, tool = wire, requester = %row.requester, reason, correlation_id = %caller.correlation_id);
        Some(row)
    }

    /// What the caller of a call waiting for approval `row` gets: its id, as a tool error.
    fn pending_response(&self, row: &crate::approvals::ApprovalRow) -> CallToolResponse {
        let sep = &self.cfg.separator;
        let message = format!(
            "pending approval {id}: `{wire}` needs a human approval ({reason}). An approver runs {approve} id={id} (or {deny}); {list} shows its state and, once it ran, its result.",
            id = row.id,
            wire = row.tool,
            reason = row.reason,
            approve = wire_name("approvals", sep, "approve"),
            deny = wire_name("approvals", sep, "deny"),
            list = wire_name("approvals", sep, "list"),
        );
        let mut r = CallToolResult::structured(json!({
            "status": "pending_approval",
            "approval_id": row.id,
            "tool": row.tool,
            "reason": row.reason,
            "expires": row.expires,
            "message": message,
        }));
        r.content = vec![ContentBlock::text(message)];
        r.is_error = Some(true);
        r.into()
    }

    /// `approvals_approve` / `approvals_deny`: the decision, and for an approval the approved
    /// call's result. The tool call's audit row records the decision.
    pub(super) async fn approvals_tool(
        &self,
        id: &str,
        approve: bool,
        comment: Option<&str>,
        caller: &CallerContext,
        ctx: &rmcp::service::RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let d = Decision {
            id,
            approve,
            comment: comment.unwrap_or_default(),
            approver: &caller.identity,
        };
        match self.decide(d, Some(&ctx.peer), None, &ctx.ct, false).await {
            Ok((v, _)) => CallToolResult::structured(v).into(),
            Err(e) => tool_error(e.to_string()),
        }
    }

    /// Approvals, newest first (`approvals_list`, `GET /approvals`).
    pub fn list_approvals(
        &self,
        status: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Value, ApprovalFailure> {
        let (ap, _) = self.approvals.as_ref().ok_or(ApprovalFailure::Disabled)?;
        let limit = usize::try_from(limit.unwrap_or(50).clamp(1, 500)).unwrap_or(50);
        let rows = ap.list(status, limit);
        Ok(json!({ "count": rows.len(), "approvals": rows }))
    }

    /// Approves (and runs) or denies one approval over HTTP (`POST /approvals/…`): audited here,
    /// since no tool call carries it.
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        comment: &str,
        approver: &mcp_runtime::auth::Identity,
        ct: &CancellationToken,
    ) -> Result<Value, ApprovalFailure> {
        let d = Decision {
            id,
            approve,
            comment,
            approver,
        };
        self.decide(d, None, None, ct, true)
            .await
            .map(|(doc, _)| doc)
    }

    /// A call waiting for its approval: asks the user in the client (elicitation) when configured,
    /// else waits up to `wait_secs` for someone to decide, with progress notifications; answers
    /// the approved call's result, the denial, or the pending notice.
    pub(super) async fn settle_approval(
        &self,
        row: crate::approvals::ApprovalRow,
        caller: &CallerContext,
        peer: Option<&Peer<RoleServer>>,
        progress: Option<ProgressToken>,
        ct: &CancellationToken,
    ) -> (CallToolResponse, &'static str) {
        const PENDING: &str = "approval_pending";
        let pending = self.pending_response(&row);
        let (Some((ap, _)), Some(peer)) = (&self.approvals, peer) else {
            return (pending, PENDING);
        };
        let id = row.id.clone();
        let denied =
            |why: &str| tool_error(format!("approval {id} denied: {why}; the call did not run"));
        if ap.cfg.elicitation && ap.may_decide(&caller.identity, &caller.identity.name) {
            let message = format!(
                "Approve this call?\n\nTool: {}\nArguments: {}\nReason: {}\n\nAnswer approve = true to run it exactly as shown.",
                row.tool, row.arguments, row.reason,
            );
            let ttl = Duration::from_secs(ap.cfg.ttl_secs.max(1));
            let answer = tokio::select! {
                a = peer.elicit_with_timeout::<ApprovalAnswer>(message, Some(ttl)) => Some(a),
                () = ct.cancelled() => None,
            };
            use rmcp::service::ElicitationError as E;
            let decision = match answer {
                Some(Ok(Some(ApprovalAnswer { approve, comment }))) => {
                    let default = if approve {
                        "approved in the client"
                    } else {
                        "not approved in the client"
                    };
                    Some((approve, comment.unwrap_or_else(|| default.to_owned())))
                }
                Some(Ok(None) | Err(E::NoContent)) => {
                    Some((false, "accepted without an answer in the client".to_owned()))
                }
                Some(Err(E::UserDeclined)) => Some((false, "declined in the client".to_owned())),
                Some(Err(E::UserCancelled)) => Some((false, "cancelled in the client".to_owned())),
                // No elicitation support, a timeout or a broken answer: nobody decided here.
                Some(Err(e)) => {
                    tracing::info!(message = "Approval not decided by elicitation; it stays pending.", approval_id = %id, reason = %e);
                    None
                }
                None => Some((false, "the call was cancelled by the client".to_owned())),
            };
            if let Some((approve, comment)) = decision {
                let d = Decision {
                    id: &id,
                    approve,
                    comment: &comment,
                    approver: &caller.identity,
                };
                // The call being settled carries the audit row of this decision.
                return match self.decide(d, Some(peer), progress, ct, false).await {
                    Ok((_, Some(r))) => (r.into(), "approval_approved"),
                    Ok((_, None)) => (denied(&comment), "approval_denied"),
                    Err(e) => (tool_error(format!("approval {id}: {e}")), PENDING),
                };
            }
        }
        if ap.cfg.wait_secs == 0 {
            return (pending, PENDING);
        }
        let mut events = self.approval_events.subscribe();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(ap.cfg.wait_secs);
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) if ev.id == id => {
                        return match ev.result {
                            Some(r) => (r.into(), "approval_approved"),
                            None => (denied(ev.error.as_deref().unwrap_or(&ev.status)), "approval_denied"),
                        };
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return (pending, PENDING),
                },
                _ = tick.tick() => {
                    if let Some(row) = ap.get(&id).filter(|r| r.status != "pending" && r.status != "approved") {
                        return match row.status.as_str() {
                            "denied" => (denied(row.comment.as_deref().unwrap_or("denied")), "approval_denied"),
                            _ => (pending, PENDING),
                        };
                    }
                    if let Some(token) = &progress {
                        let waited = started.elapsed().as_secs();
                        let _ = peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), waited as f64)
                                    .with_total(ap.cfg.wait_secs as f64)
                                    .with_message(format!("waiting for approval {id} ({waited} s)")),
                            )
                            .await;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return (pending, PENDING),
                () = ct.cancelled() => return (pending, PENDING),
            }
        }
    }

    /// [`Gateway::decide_approval`], also handing back the approved call's result.
    /// `record` writes the decision's own audit row (decisions over HTTP); a decision made by a
    /// tool call (`approvals_approve`, elicitation) is recorded by that call's row instead.
    async fn decide(
        &self,
        d: Decision<'_>,
        peer: Option<&Peer<RoleServer>>,
        progress: Option<ProgressToken>,
        ct: &CancellationToken,
        record: bool,
    ) -> Result<(Value, Option<CallToolResult>), ApprovalFailure> {
        let Decision {
            id,
            approve,
            comment,
            approver,
        } = d;
        let (ap, key) = self.approvals.as_ref().ok_or(ApprovalFailure::Disabled)?;
        if !approve && comment.trim().is_empty() {
            return Err(ApprovalFailure::Invalid(
                "`reason` is required to deny an approval".to_owned(),
            ));
        }
        let (row, call) = ap
            .decide(id, approver, approve, comment)
            .map_err(|e| ApprovalFailure::Refused(e.0))?;
        let decision = if approve { "approved" } else { "denied" };
        self.metrics.approvals.with_label_values(&[decision]).inc();
        self.metrics
            .approval_decision
            .observe(crate::approvals::now().saturating_sub(row.created) as f64);
        self.refresh_pending();
        tracing::info!(target: "audit", message = "Approval decided.", approval_id = %row.id, decision = %row.status, approver = %approver.name, requester = %row.requester, tool = %row.tool);
        if record {
            self.audit.record(AuditRecord {
                identity: approver.name.clone(),
                tool: row.tool.clone(),
                arguments: row.arguments.clone(),
                decision: format!("approval_{decision}"),
                status: decision.to_owned(),
                duration_ms: 0.0,
                correlation_id: row.correlation_id.clone(),
                error: (!comment.is_empty()).then(|| {
                    format!(
                        "{} {}: {comment}",
                        row.id,
                        if approve { "comment" } else { "reason" }
                    )
                }),
                findings: None,
                source: "approval",
            });
        }
        let call = match call {
            Some(crate::approvals::Pending::Pin(pin)) => {
                // A held definition: accepting pins it and lists it again; denying keeps it held.
                let done = self.decide_pin(&pin, approve, &approver.name, comment);
                return match done {
                    Ok(v) => {
                        if approve {
                            ap.finish(id, true, &v.to_string());
                        }
                        Ok((json!({ "approval": ap.get(id), "definition": v }), None))
                    }
                    Err(e) => {
                        if approve {
                            ap.finish(id, false, &e.0);
                        }
                        Err(ApprovalFailure::Failed(e.0))
                    }
                };
            }
            Some(crate::approvals::Pending::Call(c)) => Some(c),
            None => None,
        };
        let Some(call) = call else {
            let _ = self.approval_events.send(ApprovalEvent {
                id: row.id.clone(),
                status: "denied".to_owned(),
                result: None,
                error: Some(comment.to_owned()),
            });
            return Ok((json!({ "approval": row }), None));
        };
        match self
            .execute_approved(&row, call, key, peer, progress, ct)
            .await
        {
            Ok(r) => {
                let ok = r.is_error != Some(true);
                let shown = crate::audit::redact(&serde_json::to_value(&r).unwrap_or(Value::Null));
                ap.finish(id, ok, &shown.to_string());
                let _ = self.approval_events.send(ApprovalEvent {
                    id: row.id.clone(),
                    status: if ok { "executed" } else { "failed" }.to_owned(),
                    result: Some(r.clone()),
                    error: None,
                });
                Ok((json!({ "approval": ap.get(id), "result": r }), Some(r)))
            }
            Err(e) => {
                ap.finish(id, false, &e.0);
                let _ = self.approval_events.send(ApprovalEvent {
                    id: row.id.clone(),
                    status: "failed".to_owned(),
                    result: None,
                    error: Some(e.0.clone()),
                });
                Err(ApprovalFailure::Failed(format!(
                    "approved, but the call failed: {e}"
                )))
            }
        }
    }

    /// Sets the pending-approvals gauge from the store, and tells the console's live lists.
    pub fn refresh_pending(&self) {
        if let Some((ap, _)) = &self.approvals {
            self.metrics
                .approvals_pending
                .set(i64::try_from(ap.count("pending")).unwrap_or(i64::MAX));
            self.approvals_changed
                .send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Changes whenever an approval is requested, decided or withdrawn.
    pub fn approvals_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.approvals_changed.subscribe()
    }

    /// Decisions as they happen.
    pub fn approval_events(&self) -> broadcast::Receiver<ApprovalEvent> {
        self.approval_events.subscribe()
    }

    /// Withdraws a pending approval nobody may approve any more (its workflow run was cancelled).
    pub fn withdraw_approval(&self, id: &str, reason: &str) {
        if let Some((ap, _)) = &self.approvals
            && ap.withdraw(id, reason)
        {
            self.refresh_pending();
            tracing::info!(target: "audit", message = "Approval withdrawn.", approval_id = id, reason);
        }
    }

    /// One approval as stored.
    pub fn approval(&self, id: &str) -> Option<crate::approvals::ApprovalRow> {
        self.approvals.as_ref().and_then(|(ap, _)| ap.get(id))
    }

    /// The approvals store, when approvals are on (the console reads and decides through it).
    pub fn approvals_store(&self) -> Option<&Arc<crate::approvals::Approvals>> {
        self.approvals.as_ref().map(|(ap, _)| ap)
    }

    /// The workflow engine, once set.
    pub fn workflows(&self) -> Option<&Arc<crate::workflow::Engine>> {
        self.workflows.get()
    }

    /// Installs the workflow engine (once).
    pub fn set_workflows(&self, engine: Arc<crate::workflow::Engine>) {
        let _ = self.workflows.set(engine);
    }

    /// A pending approval for a workflow step marked `approval: true` (the step's exact call).
    pub fn request_step_approval(
        &self,
        wire: &str,
        arguments: Map<String, Value>,
        reason: &str,
        caller: &CallerContext,
    ) -> Result<String, ApprovalFailed> {
        if self.approvals.is_none() {
            return Err(ApprovalFailed(format!(
                "step needs an approval, but approvals are not enabled on this master (set master.identity_key_file or master.approvals.key_file), so `{wire}` cannot run"
            )));
        }
        let Some((_, Route::Downstream { index, name }, _)) = self.canonical(wire) else {
            return Err(ApprovalFailed(format!("unknown tool `{wire}`")));
        };
        let redacted = redacted_args(Some(&arguments));
        let row = self
            .record_approval(
                wire,
                index,
                &name,
                Some(arguments),
                reason,
                caller,
                &redacted,
            )
            .ok_or_else(|| ApprovalFailed("approvals are not enabled on this master".to_owned()))?;
        // The step's call is this request: its one audit row.
        self.audit.record(AuditRecord {
            identity: caller.identity.name.clone(),
            tool: wire.to_owned(),
            arguments: redacted,
            decision: "approval_pending".to_owned(),
            status: "pending".to_owned(),
            duration_ms: 0.0,
            correlation_id: caller.correlation_id.clone(),
            error: Some(format!("{}: {reason}", row.id)),
            findings: None,
            source: "step",
        });
        Ok(row.id)
    }

    /// Runs an approved call with a single-use token bound to the service's tool and arguments,
    /// on behalf of the requester, through the pipeline's dispatch stage (retry where the tool
    /// allows it, span, progress to the approver's client, proxied-call metrics).
    async fn execute_approved(
        &self,
        row: &crate::approvals::ApprovalRow,
        call: crate::approvals::PendingCall,
        key: &AssertionKey,
        peer: Option<&Peer<RoleServer>>,
        progress: Option<ProgressToken>,
        ct: &CancellationToken,
    ) -> Result<CallToolResult, ApprovalFailed> {
        let token = key.sign_approval(&call.local_tool, call.arguments.as_ref(), &row.id, 300);
        let mut meta = RequestMetaObject::default();
        meta.insert(
            mcp_runtime::approval::APPROVAL_META_KEY.to_owned(),
            serde_json::to_value(token).unwrap_or(Value::Null),
        );
        let retry = self
            .canonical(&row.tool)
            .and_then(|(_, _, t)| t.annotations.clone())
            .is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true));
        let d = self.downstream(call.downstream).clone();
        let outcome = self
            .dispatch(Outgoing {
                index: call.downstream,
                name: &call.local_tool,
                arguments: call.arguments,
                meta,
                identity: &call.requester,
                // The requester's token is not kept (nor may still be valid when an approver
                // decides): the approved call goes out with master's own credentials.
                subject_token: None,
                correlation_id: &row.correlation_id,
                trace_id: None,
                retry,
                peer,
                progress,
                ct,
            })
            .await;
        match outcome {
            Ok(CallToolResponse::Complete(mut r)) => {
                // The approver's answer passes the same guardrails as any call's.
                let g =
                    self.guard_result(call.downstream, &call.local_tool, &row.tool, false, &mut r);
                match g.blocked {
                    Some(blocked) => Err(ApprovalFailed(blocked)),
                    None => Ok(r),
                }
            }
            Ok(_) => Err(ApprovalFailed(format!(
                "service {} answered the approved call with a task or an input request, which approvals do not support",
                d.name()
            ))),
            Err(e) => Err(ApprovalFailed(call_error_text(&d, &call.local_tool, &e))),
        }
    }
}

/// Why an approval could not be requested, or why an approved call did not complete: the text the
/// approver, the requester or the workflow step is shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApprovalFailed(pub String);

/// One approver's decision on one approval.
struct Decision<'a> {
    id: &'a str,
    approve: bool,
    comment: &'a str,
    approver: &'a mcp_runtime::auth::Identity,
}
