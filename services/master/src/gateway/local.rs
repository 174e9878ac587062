//! Master's own tools, declared like every service's with rmcp's `#[tool_router]` / `#[tool]` and
//! typed `Parameters<…>`: `master_hello_world`, `master_getSystemStatus`, `approvals_*` (listed
//! when a key is set), `orchestrator_*` (the workflow engine), and the discovery endpoint's
//! `master_searchTools`, `master_describeTool`, `master_callTool`. The dispatch stage calls the
//! router for `Route::Local`.
//!
//! The routers know the tools by their names with the default separator (`master_hello_world`);
//! [`local_tools`] lists them under the configured one, and [`Gateway::call_local`] maps back.

use std::collections::BTreeMap;

use mcp_runtime::CallerContext;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Gateway, tool_error};
use crate::namespace::wire_name;
use crate::toolsets;

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListApprovalsArgs {
    /// Only this status, e.g. pending.
    pub(super) status: Option<String>,
    /// Most rows (1–500, default 50).
    #[schemars(range(min = 1, max = 500))]
    pub(super) limit: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproveArgs {
    /// The approval's id (ap-…), from approvals_list or the pending answer.
    pub(super) id: String,
    /// A note for the audit trail.
    pub(super) comment: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DenyArgs {
    /// The approval's id (ap-…).
    pub(super) id: String,
    /// Why: the requester reads it.
    pub(super) reason: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetRouteArgs {
    /// A versioned namespace, e.g. cmdb (master_getSystemStatus lists them under `routes`).
    pub(super) namespace: String,
    /// New weights by version, e.g. {"v1": 90, "v2": 10}; versions left out keep theirs.
    pub(super) weights: BTreeMap<String, u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AcceptToolChangeArgs {
    /// The held tool's wire name, e.g. everything_echo (master_getSystemStatus lists held ones).
    pub(super) tool: String,
    /// true accepts the served definition (the default), false rejects it: it stays held.
    pub(super) accept: Option<bool>,
    /// Why; required to reject.
    pub(super) reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchToolsArgs {
    /// Keywords, e.g. "pods logs" or "host ip".
    pub(super) query: String,
    /// Only tools of this namespace (cmdb, linux, k8s, ...).
    pub(super) namespace: Option<String>,
    /// Most results (default 10).
    #[schemars(range(min = 1, max = 50))]
    pub(super) limit: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DescribeToolArgs {
    /// Tool name, e.g. cmdb_getHost.
    pub(super) name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CallToolArgs {
    /// Tool name, e.g. cmdb_getHost.
    pub(super) name: String,
    /// Arguments matching the tool's input schema (read by the pipeline's resolve stage).
    #[allow(dead_code)]
    pub(super) arguments: Option<Map<String, Value>>,
}

/// One step of an ad-hoc workflow.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(super) struct StepArg {
    /// Unique within the workflow; step1, step2, … when left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    /// Namespace at master: linux, k8s, cmdb, secrets, …
    pub(super) service: String,
    /// The service's tool: runCommand, list_pods, …
    pub(super) tool: String,
    /// Arguments; strings may use {{ inputs.x }} and {{ steps.<id>.result }} / .text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) params: Option<Map<String, Value>>,
    /// Steps that must complete first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) needs: Option<Vec<String>>,
    /// retry, timeout, on_error, approval, secret_result, …
    #[serde(flatten)]
    pub(super) options: Map<String, Value>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecuteWorkflowArgs {
    /// Template name (see orchestrator_listWorkflows), or a definition object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) workflow: Option<Value>,
    /// Ad-hoc definition {name, inputs, steps}: an object, or YAML/JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) definition: Option<Value>,
    /// The seed's shape: the ad-hoc workflow's name, with `steps` beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    /// The ad-hoc workflow's name, with `steps` beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    /// The ad-hoc workflow's steps at the top level (the seed's shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) steps: Option<Vec<StepArg>>,
    /// Values of the workflow's inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) inputs: Option<Map<String, Value>>,
    /// Same as inputs (the seed's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parameters: Option<Map<String, Value>>,
    /// Wait for the run (default true); false returns the run id at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) wait: Option<bool>,
    /// Longest wait in seconds (at most 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub(super) wait_secs: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListWorkflowsArgs {
    /// Only runs with this status: running, waiting_approval, needs_attention, completed,
    /// failed, cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub(super) limit: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunIdArgs {
    /// Run id (wf-…) from orchestrator_executeWorkflow or orchestrator_listWorkflows.
    pub(super) run_id: String,
}

/// What to do with a step interrupted by a crash.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum StepAction {
    Rerun,
    Skip,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResumeWorkflowArgs {
    /// Run id (wf-…).
    pub(super) run_id: String,
    /// For a run needing attention: run the interrupted step again, or treat it as done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) step_action: Option<StepAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) wait: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub(super) wait_secs: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelWorkflowArgs {
    /// Run id (wf-…).
    pub(super) run_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<String>,
}

/// Typed arguments back as the object the workflow engine reads.
fn object(args: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(args) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Renames a router tool (`master_x`) to its wire name under separator `sep`.
fn under(mut t: Tool, sep: &str) -> Tool {
    if let Some((ns, tool)) = t.name.split_once('_') {
        t.name = wire_name(ns, sep, tool).into();
    }
    t
}

/// Master's own tools as listed (the discovery meta-tools are on `/mcp/discover` only):
/// `approvals_*` only when approvals are enabled (a key is set).
pub fn local_tools(sep: &str, approvals: bool) -> Vec<Tool> {
    Gateway::local_router()
        .list_all()
        .into_iter()
        .filter(|t| approvals || !t.name.starts_with("approvals_"))
        .map(|t| under(t, sep))
        .collect()
}

/// The discovery endpoint's three tools.
pub fn discovery_tools(sep: &str) -> Vec<Tool> {
    Gateway::discovery_router()
        .list_all()
        .into_iter()
        .map(|t| under(t, sep))
        .collect()
}

impl Gateway {
    /// Dispatch of a local tool through its router; `None` when the call has no client request
    /// to run it in (a workflow step: master's own tools are not steps).
    pub(super) async fn call_local(
        &self,
        wire: &str,
        arguments: Option<Map<String, Value>>,
        context: Option<&RequestContext<RoleServer>>,
        discovery: bool,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(context) = context else {
            return Ok(tool_error(format!(
                "`{wire}` is one of master's own tools, which run for a client, not as a workflow step"
            )));
        };
        let sep = &self.cfg.separator;
        let name = ["master", "approvals", "orchestrator"]
            .iter()
            .find_map(|ns| {
                wire.strip_prefix(&wire_name(ns, sep, ""))
                    .map(|t| format!("{ns}_{t}"))
            })
            .unwrap_or_else(|| wire.to_owned());
        let mut request = CallToolRequestParams::new(name);
        request.arguments = arguments;
        let call = ToolCallContext::new(self, request, context.clone());
        if discovery {
            self.discovery_router.call(call).await
        } else {
            self.local_router.call(call).await
        }
    }
}

#[tool_router(router = local_router, vis = "pub(super)")]
impl Gateway {
    #[tool(
        name = "master_hello_world",
        description = "Say hello: a quick check that the gateway answers.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn hello_world(&self, Parameters(_): Parameters<NoArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(
            "Hello from the MCP master gateway!",
        )])
    }

    #[tool(
        name = "master_getSystemStatus",
        description = "State of the gateway and of every downstream service: up/down, circuit, tool count, latency, last error.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_system_status(&self, Parameters(_): Parameters<NoArgs>) -> CallToolResult {
        CallToolResult::structured(self.system_status())
    }

    #[tool(
        name = "master_setRoute",
        description = "Change the weights of the versions of a versioned namespace (admin role), e.g. {namespace: \"cmdb\", weights: {\"v1\": 90, \"v2\": 10}}: callers move to follow the new split (the fewest needed), a rolled-back version given a weight above 0 is back in the route. Returns the route's state; master_getSystemStatus shows every route.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn set_route(
        &self,
        Parameters(args): Parameters<SetRouteArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let caller = CallerContext::from_request(&ctx);
        if !caller.identity.has_role(&self.cfg.admin_role) {
            return tool_error(format!(
                "master_setRoute needs the `{}` role (master.admin_role), which {} does not have; ask an operator",
                self.cfg.admin_role, caller.identity.name
            ));
        }
        match self.routes.set_weights(&args.namespace, &args.weights) {
            Ok(state) => {
                tracing::info!(target: "audit", message = "Route weights changed.", namespace = %args.namespace, by = %caller.identity.name, weights = ?args.weights);
                CallToolResult::structured(state).into()
            }
            Err(e) => tool_error(e.to_string()),
        }
    }

    #[tool(
        name = "master_acceptToolChange",
        description = "Decide a held tool, prompt or resource template (approver role): a downstream changed its definition, added one, or has text flagged as aimed at the model, so master holds it (not listed, not callable). accept: true pins the served definition and lists it again; accept: false rejects it (a reason is required) and it stays held. The pending approval of the change (approvals_list shows its diff) is withdrawn.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn accept_tool_change_tool(
        &self,
        Parameters(args): Parameters<AcceptToolChangeArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let caller = CallerContext::from_request(&ctx);
        let comment = args.reason.unwrap_or_default();
        match self.accept_tool_change(
            &args.tool,
            args.accept.unwrap_or(true),
            &caller.identity,
            &comment,
        ) {
            Ok(v) => CallToolResult::structured(v).into(),
            Err(e) => tool_error(e.0),
        }
    }

    #[tool(
        name = "master_exportToolPins",
        description = "The digest of every accepted tool, prompt and resource template definition, as a lock file for master.pins_file (admin role): commit it to pin a deployment ahead of its first start.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn export_tool_pins(
        &self,
        Parameters(_): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let caller = CallerContext::from_request(&ctx);
        if !caller.identity.has_role(&self.cfg.admin_role) {
            return tool_error(format!(
                "master_exportToolPins needs the `{}` role (master.admin_role), which {} does not have; ask an operator",
                self.cfg.admin_role, caller.identity.name
            ));
        }
        CallToolResult::success(vec![ContentBlock::text(self.pins_lock_text())]).into()
    }

    #[tool(
        name = "approvals_list",
        description = "Approvals, newest first: id, status (pending, approved, denied, expired, executed, failed, abandoned, withdrawn), requester, tool, redacted arguments, reason, expiry, decision and the result of an executed call.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn approvals_list(
        &self,
        Parameters(args): Parameters<ListApprovalsArgs>,
    ) -> CallToolResponse {
        match self.list_approvals(args.status.as_deref(), args.limit) {
            Ok(v) => CallToolResult::structured(v).into(),
            Err(e) => tool_error(e.to_string()),
        }
    }

    #[tool(
        name = "approvals_approve",
        description = "Approve a pending call (approver role; not your own request unless configured). Master then runs exactly that call with a single-use approval token and returns its result.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn approvals_approve(
        &self,
        Parameters(args): Parameters<ApproveArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let caller = CallerContext::from_request(&ctx);
        self.approvals_tool(&args.id, true, args.comment.as_deref(), &caller, &ctx)
            .await
    }

    #[tool(
        name = "approvals_deny",
        description = "Deny a pending call with a reason; it never runs.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn approvals_deny(
        &self,
        Parameters(args): Parameters<DenyArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let caller = CallerContext::from_request(&ctx);
        self.approvals_tool(&args.id, false, Some(&args.reason), &caller, &ctx)
            .await
    }

    #[tool(
        name = "orchestrator_executeWorkflow",
        description = "Run a workflow: a template by name (see orchestrator_listWorkflows) or an ad-hoc definition {name, inputs, steps: [{id, service, tool, params, needs, retry, timeout, on_error, approval}]} in YAML or JSON, in `definition` or (the seed's shape) at the top level: {id or name, description, steps}; steps without an id are step1, step2, …. Params may use {{ inputs.x }} and {{ steps.<id>.result }} / .text. Everything is validated before anything runs; steps whose needs are met run in parallel; every step is checkpointed and the run resumes after a master restart. Waits for the end (or an approval) up to wait_secs, then returns the run's state; the run goes on either way.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn execute_workflow(
        &self,
        Parameters(args): Parameters<ExecuteWorkflowArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        self.orchestrator("executeWorkflow", object(&args), &ctx)
            .await
    }

    #[tool(
        name = "orchestrator_listWorkflows",
        description = "Workflow templates (name, description, inputs, steps) and recent runs, newest first (your own; all runs for approvers).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_workflows(
        &self,
        Parameters(args): Parameters<ListWorkflowsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        self.orchestrator("listWorkflows", object(&args), &ctx)
            .await
    }

    #[tool(
        name = "orchestrator_getWorkflow",
        description = "One run: status, each step's state, attempts, timings, result (secret results withheld), error and approval id.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_workflow(
        &self,
        Parameters(args): Parameters<RunIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        self.orchestrator("getWorkflow", object(&args), &ctx).await
    }

    #[tool(
        name = "orchestrator_resumeWorkflow",
        description = "Resume a failed or cancelled run (failed steps run again, completed ones never), or one needing attention after a crash: step_action `rerun` runs the interrupted step again, `skip` treats it as done.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn resume_workflow(
        &self,
        Parameters(args): Parameters<ResumeWorkflowArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        self.orchestrator("resumeWorkflow", object(&args), &ctx)
            .await
    }

    #[tool(
        name = "orchestrator_cancelWorkflow",
        description = "Cancel a run: steps in flight are cancelled at their services, nothing further starts.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn cancel_workflow(
        &self,
        Parameters(args): Parameters<CancelWorkflowArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        self.orchestrator("cancelWorkflow", object(&args), &ctx)
            .await
    }
}

#[tool_router(router = discovery_router, vis = "pub(super)")]
impl Gateway {
    #[tool(
        name = "master_searchTools",
        description = "Find tools of every service by keywords (name, description, annotations). Returns each match with its full input schema, ready for master_callTool.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn search_tools(
        &self,
        Parameters(args): Parameters<SearchToolsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let caller = CallerContext::from_request(&ctx);
        let limit = args.limit.unwrap_or(10).clamp(1, 50) as usize;
        let tools = self.visible_tools(&caller);
        let sep = &self.cfg.separator;
        let hits: Vec<Value> =
            toolsets::rank(&tools, &args.query, args.namespace.as_deref(), sep, limit)
                .into_iter()
                .map(toolsets::describe)
                .collect();
        CallToolResult::structured(json!({
            "count": hits.len(),
            "tools": hits,
            "hint": "call one with master_callTool name=<tool> arguments={...}",
        }))
    }

    #[tool(
        name = "master_describeTool",
        description = "Full definition of one tool: description, input schema, output schema, annotations.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn describe_tool(
        &self,
        Parameters(args): Parameters<DescribeToolArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let caller = CallerContext::from_request(&ctx);
        let visible = self.visible_tools(&caller);
        match self
            .canonical(&args.name)
            .and_then(|(wire, _, _)| visible.into_iter().find(|t| t.name == wire))
        {
            Some(t) => CallToolResult::structured(toolsets::describe(&t)).into(),
            // A denied tool is as absent here as everywhere.
            None => tool_error(super::UNKNOWN_TOOL),
        }
    }

    #[tool(
        name = "master_callTool",
        description = "Call any tool you may use, by name, with its arguments. Policy, approvals, rate limits and audit apply exactly as for a direct call.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn call_tool_meta(&self, Parameters(args): Parameters<CallToolArgs>) -> CallToolResponse {
        // The pipeline's resolve stage unwraps master_callTool before dispatch; reaching here
        // means the call came some other way.
        tool_error(format!(
            "`master_callTool` wraps `{}`: call it on /mcp/discover",
            args.name
        ))
    }
}

impl Gateway {
    /// One `orchestrator_*` call, run by the workflow engine.
    async fn orchestrator(
        &self,
        tool: &str,
        args: Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let caller = CallerContext::from_request(ctx);
        match self.workflows.get() {
            Some(engine) => engine.call(tool, Some(&args), &caller).await,
            None => tool_error("workflows are not available on this master"),
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
            "routes": self.routes.status(),
            "held": self.held_definitions(),
            "problems": idx.problems,
        })
    }
}
