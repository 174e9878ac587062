//! Master's own tools: `master_hello_world`, `master_getSystemStatus`, `approvals_*` (when a key
//! is set), `orchestrator_*` (the workflow engine) and the discovery endpoint's
//! `master_searchTools` / `master_describeTool`. Dispatch stage for `Route::Local`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mcp_runtime::CallerContext;
use rmcp::model::*;
use rmcp::{Peer, RoleServer};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{Gateway, tool_error};
use crate::namespace::wire_name;
use crate::toolsets;

/// Annotations of a tool that only reads local state.
pub(crate) fn read_only_annotations() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false)
}

/// Annotations of a tool that runs calls of other services (which may change anything).
pub(crate) fn acting_annotations() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(false)
        .destructive(true)
        .idempotent(false)
        .open_world(true)
}

/// Annotations of a tool that changes only master's own state, and the same way when repeated.
pub(crate) fn local_write_annotations() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(false)
        .destructive(false)
        .idempotent(true)
        .open_world(false)
}

/// Master's own tools: `master_*`, and `approvals_*` when approvals are enabled (a key is set).
pub fn local_tools(sep: &str, approvals: bool) -> Vec<Tool> {
    let empty = Arc::new(
        json!({"type": "object", "properties": {}, "additionalProperties": false})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let ro = read_only_annotations();
    let mut tools = vec![
        Tool::new(
            wire_name("master", sep, "hello_world"),
            "Say hello: a quick check that the gateway answers.",
            empty.clone(),
        )
        .annotate(ro.clone()),
        Tool::new(
            wire_name("master", sep, "getSystemStatus"),
            "State of the gateway and of every downstream service: up/down, circuit, tool count, latency, last error.",
            empty,
        )
        .annotate(ro.clone()),
    ];
    tools.extend(crate::workflow::tools(sep));
    if !approvals {
        return tools;
    }
    tools.extend([
        Tool::new(
            wire_name("approvals", sep, "list"),
            "Approvals, newest first: id, status (pending, approved, denied, expired, executed, failed, abandoned, withdrawn), requester, tool, redacted arguments, reason, expiry, decision and the result of an executed call.",
            schema(json!({"type": "object", "properties": {
                "status": {"type": "string", "description": "Only this status, e.g. pending"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 500}
            }, "additionalProperties": false})),
        )
        .annotate(ro),
        Tool::new(
            wire_name("approvals", sep, "approve"),
            "Approve a pending call (approver role; not your own request unless configured). Master then runs exactly that call with a single-use approval token and returns its result.",
            schema(json!({"type": "object", "properties": {
                "id": {"type": "string"}, "comment": {"type": "string"}
            }, "required": ["id"], "additionalProperties": false})),
        )
        .annotate(
            acting_annotations(),
        ),
        Tool::new(
            wire_name("approvals", sep, "deny"),
            "Deny a pending call with a reason; it never runs.",
            schema(json!({"type": "object", "properties": {
                "id": {"type": "string"}, "reason": {"type": "string"}
            }, "required": ["id", "reason"], "additionalProperties": false})),
        )
        .annotate(
            local_write_annotations(),
        ),
    ]);
    tools
}

fn schema(v: Value) -> Arc<Map<String, Value>> {
    Arc::new(v.as_object().cloned().unwrap_or_default())
}
impl Gateway {
    /// Dispatch of a local tool: its answer and the decision its audit row records.
    pub(super) async fn call_local(
        &self,
        wire: &str,
        args: Option<&Map<String, Value>>,
        caller: &CallerContext,
        peer: Option<&Peer<RoleServer>>,
        ct: &CancellationToken,
    ) -> (CallToolResponse, &'static str) {
        let sep = &self.cfg.separator;
        if wire.starts_with(&wire_name("approvals", sep, "")) {
            return self.approvals_tool(wire, args, caller, peer, ct).await;
        }
        if let Some(tool) = wire.strip_prefix(&wire_name("orchestrator", sep, "")) {
            let r = match self.workflows.get() {
                Some(engine) => engine.call(tool, args, caller).await,
                None => tool_error("workflows are not available on this master"),
            };
            return (r, "allow");
        }
        if wire == wire_name("master", sep, "hello_world") {
            let r = CallToolResult::success(vec![ContentBlock::text(
                "Hello from the MCP master gateway!",
            )]);
            return (r.into(), "allow");
        }
        (CallToolResult::structured(self.system_status()).into(), "allow")
    }

    /// `master_searchTools` and `master_describeTool` of `/mcp/discover`: over the tools the
    /// caller may see (a denied tool is as absent here as everywhere).
    pub(super) fn discovery_tool(
        &self,
        name: &str,
        args: Option<&Map<String, Value>>,
        caller: &CallerContext,
    ) -> CallToolResponse {
        let sep = &self.cfg.separator;
        let arg = |k: &str| args.and_then(|a| a.get(k)).and_then(Value::as_str);
        if name == wire_name("master", sep, "searchTools") {
            let limit = args
                .and_then(|a| a.get("limit"))
                .and_then(Value::as_u64)
                .unwrap_or(10)
                .clamp(1, 50) as usize;
            let tools = self.visible_tools(caller);
            let hits: Vec<Value> =
                toolsets::rank(&tools, arg("query").unwrap_or(""), arg("namespace"), sep, limit)
                    .into_iter()
                    .map(toolsets::describe)
                    .collect();
            return CallToolResult::structured(json!({
                "count": hits.len(),
                "tools": hits,
                "hint": "call one with master_callTool name=<tool> arguments={...}",
            }))
            .into();
        }
        let Some(target) = arg("name") else {
            return tool_error(
                "invalid arguments for `master_describeTool`: `name` is required. Expected arguments: {name: string}",
            );
        };
        let visible = self.visible_tools(caller);
        match self
            .canonical(target)
            .and_then(|(wire, _, _)| visible.into_iter().find(|t| t.name == wire))
        {
            Some(t) => CallToolResult::structured(toolsets::describe(&t)).into(),
            None => tool_error(super::UNKNOWN_TOOL),
        }
    }

    /// The `master_getSystemStatus` document.
    pub fn system_status(&self) -> Value {
        let downstreams: Vec<BTreeMap<&'static str, Value>> = self
            .downstreams
            .iter()
            .map(|d| crate::downstream::summary(d))
            .collect();
        let idx = self.index();
        json!({
            "service": "master",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": self.started.elapsed().as_secs(),
            "tools": idx.tools.len(),
            "prompts": idx.prompts.len(),
            "resources": idx.resources.len(),
            "downstreams": downstreams,
            "problems": idx.problems,
        })
    }
}
