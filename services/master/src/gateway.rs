//! The gateway's shared state: downstreams, the merged namespaced index, connected clients, and the
//! call path every `tools/call` takes (alias → route → policy → rate limit → circuit → forward with
//! retry → metrics → audit).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use mcp_runtime::CallerContext;
use mcp_runtime::assertion::{AssertionKey, IDENTITY_META_KEY};
use rand::Rng;
use rmcp::model::*;
use rmcp::{ErrorData, Peer, RoleServer};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::audit::{Audit, AuditRecord, redacted_args};
use crate::config::{Action, MasterConfig};
use crate::downstream::{CallError, Downstream, Unavailable};
use crate::metrics::MasterMetrics;
use crate::namespace::{check_wire_name, resolve_alias, split_wire_uri, wire_name, wire_uri};
use crate::policy::{Policy, RateLimits};
use crate::toolsets::{CLIENT_TOOL_LIMITS, DISCOVER, View, ViewKind};

/// `/mcp`, the configured toolsets, one per namespace (unless configured otherwise), `/mcp/discover`.
fn build_views(cfg: &MasterConfig, downstreams: &[Arc<Downstream>]) -> Vec<Arc<View>> {
    let mut views = vec![View::all()];
    for t in &cfg.toolset {
        // Validated with the config; a failure here would be a bug, so skip rather than panic.
        if let Ok(v) = View::toolset(t) {
            views.push(v);
        }
    }
    if cfg.per_namespace_toolsets {
        let approvals = cfg
            .approvals
            .key_file
            .as_ref()
            .or(cfg.identity_key_file.as_ref())
            .is_some();
        let local = ["master", "orchestrator"]
            .into_iter()
            .chain(approvals.then_some("approvals"))
            .map(str::to_owned);
        let namespaces = local.chain(
            downstreams
                .iter()
                .map(|d| d.namespace().to_owned())
                .filter(|n| !n.is_empty()),
        );
        for ns in namespaces {
            if views.iter().any(|v| v.name == ns) || ns == DISCOVER {
                continue;
            }
            let t = crate::toolsets::ToolsetConfig {
                name: ns.clone(),
                namespaces: vec![ns],
                include: Vec::new(),
                exclude: Vec::new(),
                roles: Vec::new(),
            };
            if let Ok(v) = View::toolset(&t) {
                views.push(v);
            }
        }
    }
    if cfg.discovery {
        views.push(View::discover());
    }
    views
}

/// Where a wire name leads.
#[derive(Debug, Clone)]
pub enum Route {
    Local(String),
    Downstream { index: usize, name: String },
}

/// The merged, namespaced view of every connected downstream plus master's own tools.
#[derive(Debug, Default)]
pub struct Index {
    pub tools: Vec<Tool>,
    pub tool_routes: HashMap<String, (Route, Arc<Tool>)>,
    pub prompts: Vec<Prompt>,
    pub prompt_routes: HashMap<String, Route>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
    /// Namespace of every routable tool, by wire name.
    pub tool_ns: HashMap<String, String>,
    /// Names that could not be exposed (collision, too long, bad characters), with the reason.
    pub problems: Vec<String>,
}

impl Index {
    /// Names of the prompts and URIs of the resources (tool lists are compared per endpoint view).
    fn prompts_and_resources(&self) -> (Vec<String>, Vec<String>) {
        (
            self.prompts.iter().map(|p| p.name.clone()).collect(),
            self.resources
                .iter()
                .map(|r| r.uri.clone())
                .chain(self.templates.iter().map(|t| t.uri_template.clone()))
                .collect(),
        )
    }
}

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

struct InFlight {
    id: u64,
    peer: Peer<RoleServer>,
}

/// Shared state of one master.
pub struct Gateway {
    pub cfg: MasterConfig,
    downstreams: Vec<Arc<Downstream>>,
    index: RwLock<Arc<Index>>,
    views: Vec<Arc<View>>,
    limit_warnings: RwLock<Vec<String>>,
    peers: Mutex<Vec<(Peer<RoleServer>, Arc<View>)>>,
    progress: Mutex<HashMap<String, (Peer<RoleServer>, ProgressToken)>>,
    inflight: Mutex<HashMap<usize, Vec<InFlight>>>,
    next_id: AtomicU64,
    policy: Policy,
    limits: Arc<RateLimits>,
    audit: Audit,
    pub metrics: MasterMetrics,
    assertion_key: Option<AssertionKey>,
    approvals: Option<(Arc<crate::approvals::Approvals>, AssertionKey)>,
    approval_events: broadcast::Sender<ApprovalEvent>,
    workflows: OnceLock<Arc<crate::workflow::Engine>>,
    started: Instant,
}

/// How a decided approval ended, for whoever waits on it (workflow steps, waiting callers).
#[derive(Debug, Clone)]
pub struct ApprovalEvent {
    pub id: String,
    /// executed, failed, denied.
    pub status: String,
    /// The approved call's result, when it ran.
    pub result: Option<CallToolResult>,
    /// Why it did not run, or failed.
    pub error: Option<String>,
}

/// What master signs with: the caller's identity for services, and approval tokens (with the
/// store of pending approvals). Approvals are off without their key.
pub struct Signing {
    pub identity: Option<AssertionKey>,
    pub approvals: Option<(Arc<crate::approvals::Approvals>, AssertionKey)>,
}

/// Removes an in-flight entry when a forwarded call ends, however it ends.
struct InFlightGuard<'a> {
    gateway: &'a Gateway,
    index: usize,
    id: u64,
    progress_key: Option<String>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.gateway.inflight.lock()
            && let Some(v) = m.get_mut(&self.index)
        {
            v.retain(|f| f.id != self.id);
        }
        if let Some(k) = &self.progress_key
            && let Ok(mut p) = self.gateway.progress.lock()
        {
            p.remove(k);
        }
    }
}

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

/// Whether a service answered a structured `approval_required` refusal.
fn is_approval_required(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
        && r.structured_content
            .as_ref()
            .and_then(|s| s.get("error"))
            .and_then(Value::as_str)
            == Some("approval_required")
}

fn tool_error(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(text)]).into()
}

fn fmt_secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64().ceil().max(1.0) as u64)
}

impl Gateway {
    pub fn new(
        cfg: MasterConfig,
        downstreams: Vec<Arc<Downstream>>,
        policy: Policy,
        limits: Arc<RateLimits>,
        audit: Audit,
        metrics: MasterMetrics,
        keys: Signing,
    ) -> Self {
        let Signing {
            identity: assertion_key,
            approvals,
        } = keys;
        let views = build_views(&cfg, &downstreams);
        let g = Self {
            cfg,
            downstreams,
            index: RwLock::new(Arc::new(Index::default())),
            views,
            limit_warnings: RwLock::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            progress: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            policy,
            limits,
            audit,
            metrics,
            assertion_key,
            approvals,
            approval_events: broadcast::channel(256).0,
            workflows: OnceLock::new(),
            started: Instant::now(),
        };
        let idx = g.build_index();
        if let Ok(mut i) = g.index.write() {
            *i = Arc::new(idx);
        }
        g.check_limits();
        g
    }

    /// Every endpoint's view: `/mcp`, the toolsets, and `/mcp/discover`.
    pub fn views(&self) -> &[Arc<View>] {
        &self.views
    }

    /// Current client-limit warnings (endpoints with too many tools, names too long).
    pub fn limit_warnings(&self) -> Vec<String> {
        self.limit_warnings
            .read()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    /// Tools of the index a view lists (ignoring the caller's role).
    pub fn view_tools<'a>(&self, idx: &'a Index, view: &View) -> Vec<&'a Tool> {
        idx.tools
            .iter()
            .filter(|t| {
                let ns = idx.tool_ns.get(t.name.as_ref()).map_or("", String::as_str);
                view.admits(&t.name, ns)
            })
            .collect()
    }

    /// Recomputes client-limit warnings and per-endpoint gauges; logs new warnings.
    fn check_limits(&self) {
        let idx = self.index();
        let mut warnings = Vec::new();
        for v in &self.views {
            if matches!(v.kind, ViewKind::Discover) {
                continue;
            }
            let n = self.view_tools(&idx, v).len();
            self.metrics
                .endpoint_tools
                .with_label_values(&[v.path().as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
            if n > self.cfg.max_tools_per_endpoint {
                warnings.push(format!(
                    "endpoint {} lists {n} tools, over master.max_tools_per_endpoint = {} ({CLIENT_TOOL_LIMITS}); use a smaller toolset or /mcp/{DISCOVER}",
                    v.path(),
                    self.cfg.max_tools_per_endpoint
                ));
            }
        }
        if let Some(v) = self
            .views
            .iter()
            .find(|v| matches!(v.kind, ViewKind::Discover))
        {
            self.metrics
                .endpoint_tools
                .with_label_values(&[v.path().as_str()])
                .set(3);
        }
        let max = self.cfg.warn_name_length;
        for t in &idx.tools {
            if t.name.len() > max {
                warnings.push(format!(
                    "tool `{}` is {} characters, over master.warn_name_length = {max}: Cursor drops a tool when server key + tool name exceed 60 characters, so the server key must be at most {} characters",
                    t.name,
                    t.name.len(),
                    60usize.saturating_sub(t.name.len())
                ));
            }
        }
        let old = self.limit_warnings();
        for w in &warnings {
            if !old.contains(w) {
                tracing::warn!(message = "Client limit warning.", warning = %w);
            }
        }
        if let Ok(mut l) = self.limit_warnings.write() {
            *l = warnings;
        }
    }

    pub fn downstreams(&self) -> &[Arc<Downstream>] {
        &self.downstreams
    }

    pub fn downstream(&self, index: usize) -> &Arc<Downstream> {
        &self.downstreams[index]
    }

    pub fn index(&self) -> Arc<Index> {
        self.index.read().map(|i| i.clone()).unwrap_or_default()
    }

    pub fn limits(&self) -> &Arc<RateLimits> {
        &self.limits
    }

    /// Builds the merged index from every downstream's catalog. Names that collide or break the
    /// naming rules are left out and reported in `problems`.
    pub fn build_index(&self) -> Index {
        let sep = self.cfg.separator.as_str();
        let max = self.cfg.max_name_length;
        let mut idx = Index::default();
        let mut owner: HashMap<String, String> = HashMap::new();
        for t in local_tools(sep, self.approvals.is_some()) {
            // master_*, approvals_*, orchestrator_*: each its own namespace (for toolsets).
            let ns = t
                .name
                .split_once(sep)
                .map_or("master", |(ns, _)| ns)
                .to_owned();
            owner.insert(t.name.to_string(), "master".to_owned());
            idx.tool_ns.insert(t.name.to_string(), ns);
            idx.tool_routes.insert(
                t.name.to_string(),
                (Route::Local(t.name.to_string()), Arc::new(t.clone())),
            );
            idx.tools.push(t);
        }
        let mut prompt_owner: HashMap<String, String> = HashMap::new();
        for d in &self.downstreams {
            let cat = d.catalog();
            let ns = d.namespace();
            // A down service's last known tools stay routable (so calls get a clear "unavailable"
            // answer) but are not listed.
            let listed = d.is_up();
            for t in &cat.tools {
                let wire = wire_name(ns, sep, &t.name);
                if let Err(e) = check_wire_name(&wire, max) {
                    idx.problems
                        .push(format!("tool of `{}` not exposed: {e}", d.name()));
                    continue;
                }
                if let Some(other) = owner.get(&wire) {
                    idx.problems.push(format!(
                        "tool `{wire}` of `{}` collides with the same name from `{other}`; not exposed",
                        d.name()
                    ));
                    continue;
                }
                owner.insert(wire.clone(), d.name().to_owned());
                idx.tool_ns.insert(wire.clone(), ns.to_owned());
                let mut exposed = t.clone();
                exposed.name = wire.clone().into();
                idx.tool_routes.insert(
                    wire,
                    (
                        Route::Downstream {
                            index: d.index,
                            name: t.name.to_string(),
                        },
                        Arc::new(exposed.clone()),
                    ),
                );
                if listed {
                    idx.tools.push(exposed);
                }
            }
            if !listed {
                continue;
            }
            for p in &cat.prompts {
                let wire = wire_name(ns, sep, &p.name);
                if let Err(e) = check_wire_name(&wire, max) {
                    idx.problems
                        .push(format!("prompt of `{}` not exposed: {e}", d.name()));
                    continue;
                }
                if let Some(other) = prompt_owner.get(&wire) {
                    idx.problems.push(format!(
                        "prompt `{wire}` of `{}` collides with the same name from `{other}`; not exposed",
                        d.name()
                    ));
                    continue;
                }
                prompt_owner.insert(wire.clone(), d.name().to_owned());
                let mut exposed = p.clone();
                exposed.name = wire.clone();
                idx.prompt_routes.insert(
                    wire,
                    Route::Downstream {
                        index: d.index,
                        name: p.name.clone(),
                    },
                );
                idx.prompts.push(exposed);
            }
            for r in &cat.resources {
                let mut exposed = r.clone();
                exposed.uri = wire_uri(ns, &r.uri);
                idx.resources.push(exposed);
            }
            for t in &cat.templates {
                let mut exposed = t.clone();
                exposed.uri_template = wire_uri(ns, &t.uri_template);
                idx.templates.push(exposed);
            }
        }
        idx
    }

    /// Rebuilds the index after a catalog change and tells clients when the merged set changed.
    pub fn catalog_changed(&self) {
        let new = Arc::new(self.build_index());
        for p in &new.problems {
            tracing::warn!(message = "Name not exposed.", problem = %p);
        }
        let old = {
            let mut guard = self.index.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *guard, new.clone())
        };
        self.metrics.refresh_downstreams(&self.downstreams);
        self.check_limits();
        let (op, or) = old.prompts_and_resources();
        let (np, nr) = new.prompts_and_resources();
        let (prompts, resources) = (op != np, or != nr);
        let peers: Vec<(Peer<RoleServer>, Arc<View>)> = {
            let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers.retain(|(p, _)| !p.is_transport_closed());
            peers.clone()
        };
        // Each endpoint's clients hear about a change only when that endpoint's list changed.
        let mut changed_views: HashMap<String, bool> = HashMap::new();
        for v in &self.views {
            let names = |idx: &Index| -> Vec<String> {
                self.view_tools(idx, v)
                    .iter()
                    .map(|t| t.name.to_string())
                    .collect()
            };
            changed_views.insert(v.name.clone(), names(&old) != names(&new));
        }
        if changed_views.values().any(|c| *c) {
            self.metrics.list_changed.inc();
        }
        let targets: Vec<(Peer<RoleServer>, bool)> = peers
            .into_iter()
            .map(|(p, v)| (p, changed_views.get(&v.name).copied().unwrap_or(false)))
            .filter(|(_, tools)| *tools || prompts || resources)
            .collect();
        if targets.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for (p, tools) in targets {
                if tools {
                    let _ = p.notify_tool_list_changed().await;
                }
                if prompts {
                    let _ = p.notify_prompt_list_changed().await;
                }
                if resources {
                    let _ = p.notify_resource_list_changed().await;
                }
            }
        });
    }

    /// Remembers a client so it hears about list changes.
    pub fn add_peer(&self, peer: Peer<RoleServer>, view: Arc<View>) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.retain(|(p, _)| !p.is_transport_closed());
            peers.push((peer, view));
        }
    }

    /// The client of the newest call in flight to downstream `index` (for sampling, elicitation, logs).
    pub fn client_for(&self, index: usize) -> Option<Peer<RoleServer>> {
        self.inflight
            .lock()
            .ok()
            .and_then(|m| m.get(&index).and_then(|v| v.last().map(|f| f.peer.clone())))
    }

    /// Relays a downstream progress notification to the client whose call it belongs to.
    pub async fn relay_progress(&self, mut params: ProgressNotificationParam) {
        let key = token_key(&params.progress_token);
        let lookup = || self.progress.lock().ok().and_then(|m| m.get(&key).cloned());
        let mut target = lookup();
        // The token is registered right after the request is sent; a very fast downstream can
        // report progress first, so look again briefly before giving up.
        for _ in 0..10 {
            if target.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            target = lookup();
        }
        if let Some((peer, original)) = target {
            params.progress_token = original;
            let _ = peer.notify_progress(params).await;
        }
    }

    /// Visible tools for a caller, in index order.
    pub fn visible_tools(&self, caller: &CallerContext) -> Vec<Tool> {
        self.index()
            .tools
            .iter()
            .filter(|t| self.policy.visible(&caller.identity, &t.name))
            .cloned()
            .collect()
    }

    /// Resolves a requested name (wire name or alias) to its canonical wire name.
    pub fn canonical(&self, requested: &str) -> Option<(String, Route, Arc<Tool>)> {
        let idx = self.index();
        if let Some((r, t)) = idx.tool_routes.get(requested) {
            return Some((requested.to_owned(), r.clone(), t.clone()));
        }
        let alias = resolve_alias(requested, &self.cfg.separator)?;
        idx.tool_routes
            .get(&alias)
            .map(|(r, t)| (alias.clone(), r.clone(), t.clone()))
    }

    /// The whole call path of one `tools/call`.
    pub async fn call_tool(
        &self,
        request: CallToolRequestParams,
        meta: RequestMetaObject,
        caller: &CallerContext,
        peer: Option<&Peer<RoleServer>>,
        ct: &CancellationToken,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let requested = request.name.to_string();
        let arguments = redacted_args(request.arguments.as_ref());
        let audit = |tool: &str, decision: &str, status: &str, error: Option<String>| {
            self.audit.record(AuditRecord {
                identity: caller.identity.name.clone(),
                tool: tool.to_owned(),
                arguments: arguments.clone(),
                decision: decision.to_owned(),
                status: status.to_owned(),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                correlation_id: caller.correlation_id.clone(),
                error,
            });
        };
        let unknown = |tool: &str| {
            ErrorData::invalid_params(
                format!(
                    "unknown tool `{tool}`; call tools/list (or master_getSystemStatus) to see what is available"
                ),
                None,
            )
        };
        let Some((wire, route, tool)) = self.canonical(&requested) else {
            audit(
                &requested,
                "unknown_tool",
                "refused",
                Some("unknown tool".into()),
            );
            return Err(unknown(&requested));
        };
        match self.policy.decide(&caller.identity, &wire) {
            Action::Allow => {}
            Action::Deny => {
                self.metrics.policy_denied.inc();
                audit(&wire, "deny", "refused", Some("denied by policy".into()));
                // A denied tool looks exactly like a missing one.
                return Err(unknown(&requested));
            }
            Action::Approve => {
                if let Route::Downstream { index, name } = &route
                    && let Some(row) = self.record_approval(
                        &wire,
                        *index,
                        name,
                        request.arguments.clone(),
                        "policy requires a human approval for this tool",
                        caller,
                        &arguments,
                    )
                {
                    audit(&wire, "approve", "pending", None);
                    let progress = meta.get_progress_token();
                    return Ok(self.settle_approval(row, caller, peer, progress, ct).await);
                }
                audit(
                    &wire,
                    "approve",
                    "refused",
                    Some("approval required".into()),
                );
                return Ok(tool_error(format!(
                    "approval required: policy requires a human approval before `{wire}` runs, and approvals are not enabled on this master (set master.identity_key_file or master.approvals.key_file); ask an operator to allow this tool for your role"
                )));
            }
        }
        if let Err(l) = self.limits.check(&caller.identity.name, &wire) {
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
            audit(&wire, "rate_limited", "refused", Some(msg.clone()));
            return Ok(tool_error(msg));
        }
        let (index, name) = match route {
            Route::Local(name)
                if name.starts_with(&wire_name("approvals", &self.cfg.separator, "")) =>
            {
                let r = self
                    .approvals_tool(&name, request.arguments.as_ref(), caller, ct)
                    .await;
                let status = match &r {
                    CallToolResponse::Complete(c) if c.is_error == Some(true) => "error",
                    _ => "success",
                };
                audit(&wire, "allow", status, None);
                return Ok(r);
            }
            Route::Local(name)
                if name.starts_with(&wire_name("orchestrator", &self.cfg.separator, "")) =>
            {
                let tool = &name[wire_name("orchestrator", &self.cfg.separator, "").len()..];
                let r = match self.workflows.get() {
                    Some(engine) => engine.call(tool, request.arguments.as_ref(), caller).await,
                    None => tool_error("workflows are not available on this master"),
                };
                let status = match &r {
                    CallToolResponse::Complete(c) if c.is_error == Some(true) => "error",
                    _ => "success",
                };
                audit(&wire, "allow", status, None);
                return Ok(r);
            }
            Route::Local(name) => {
                let r = self.call_local(&name);
                audit(&wire, "allow", "success", None);
                return Ok(r);
            }
            Route::Downstream { index, name } => (index, name),
        };
        let d = self.downstream(index).clone();
        let idempotent = tool
            .annotations
            .as_ref()
            .is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true));

        // rmcp gives every outgoing request its own progress token; progress for it is relayed to
        // this client under the client's original token.
        let call_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let original_token = meta.get_progress_token();
        let mut meta = meta;
        meta.insert(
            mcp_runtime::telemetry::CORRELATION_META_KEY.to_owned(),
            Value::String(caller.correlation_id.clone()),
        );
        // One span per downstream call; the caller's trace continues downstream as its child.
        let span = tracing::info_span!(
            "downstream_call",
            downstream = %d.name(),
            tool = %name,
            correlation_id = %caller.correlation_id,
            trace_id = caller.trace_id.as_deref().unwrap_or(""),
        );
        if let Some(tp) = mcp_runtime::telemetry::traceparent_for(&span, caller.trace_id.as_deref())
        {
            meta.insert(
                mcp_runtime::telemetry::TRACEPARENT_META_KEY.to_owned(),
                Value::String(tp),
            );
        }
        // Only master speaks for the caller: drop any assertion a client sent, then sign our own.
        meta.remove(IDENTITY_META_KEY);
        if let Some(key) = &self.assertion_key {
            let assertion = key.sign(&caller.identity, &caller.correlation_id);
            if let Ok(v) = serde_json::to_value(assertion) {
                meta.insert(IDENTITY_META_KEY.to_owned(), v);
            }
        }
        // Calls of a workflow step have no client to relay progress or requests to.
        if let Some(peer) = peer
            && let Ok(mut m) = self.inflight.lock()
        {
            m.entry(index).or_default().push(InFlight {
                id: call_id,
                peer: peer.clone(),
            });
        }
        let mut guard = InFlightGuard {
            gateway: self,
            index,
            id: call_id,
            progress_key: None,
        };

        let mut params = CallToolRequestParams::new(name.clone());
        params.arguments = request.arguments.clone();
        params.meta = Some(meta);

        let max_attempts = if idempotent {
            self.cfg.retry.max_attempts
        } else {
            1
        };
        let mut attempt = 1;
        let outcome = async { loop {
            let client = match d.admit() {
                Ok(c) => c,
                Err(u) => break Err(CallError::Unavailable(u)),
            };
            let r = self
                .forward_call(
                    &d,
                    &client,
                    params.clone(),
                    original_token.clone(),
                    peer,
                    &mut guard,
                    ct,
                )
                .await;
            match r {
                Err(CallError::Connection(e)) if attempt < max_attempts => {
                    self.metrics.retries.with_label_values(&[d.name()]).inc();
                    let base = self
                        .cfg
                        .retry
                        .base_delay_ms
                        .saturating_mul(1 << (attempt - 1));
                    let capped = base.min(self.cfg.retry.max_delay_ms);
                    let jitter = rand::rng().random_range(0..=capped / 2 + 1);
                    tracing::info!(message = "Retrying after connection failure.", downstream = %d.name(), attempt, error = %e);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(capped / 2 + jitter)) => {}
                        () = ct.cancelled() => break Err(CallError::Cancelled),
                    }
                    attempt += 1;
                }
                other => break other,
            }
        } }
        .instrument(span)
        .await;
        let elapsed = started.elapsed();
        drop(guard);
        let (result, status, decision, error) = match outcome {
            Ok(CallToolResponse::Complete(r))
                if self.approvals.is_some() && is_approval_required(&r) =>
            {
                let field = |k: &str| {
                    r.structured_content
                        .as_ref()
                        .and_then(|s| s.get(k))
                        .and_then(Value::as_str)
                };
                let reason = field("reason").unwrap_or("the service requires a human approval");
                // The service's category (linux-cli: write, network, privileged, destructive).
                let reason = match field("category") {
                    Some(c) => format!("{reason} (category: {c})"),
                    None => reason.to_owned(),
                };
                let settled = match self.record_approval(
                    &wire,
                    index,
                    &name,
                    request.arguments.clone(),
                    &reason,
                    caller,
                    &arguments,
                ) {
                    Some(row) => {
                        self.settle_approval(row, caller, peer, original_token.clone(), ct)
                            .await
                    }
                    None => tool_error("approvals are not enabled on this master"),
                };
                (Ok(settled), "error", "approval_pending", None)
            }
            Ok(CallToolResponse::Complete(r)) => {
                let status = if r.is_error == Some(true) {
                    "error"
                } else {
                    "success"
                };
                (Ok(CallToolResponse::Complete(r)), status, "allow", None)
            }
            Ok(other) => (Ok(other), "success", "allow", None),
            Err(CallError::Remote(e)) => {
                let msg = e.message.to_string();
                (Err(e), "error", "allow", Some(msg))
            }
            Err(CallError::Unavailable(u)) => {
                let msg = match u {
                    Unavailable::CircuitOpen { retry_in } => format!(
                        "service {} unavailable (circuit open, retry in {})",
                        d.name(),
                        fmt_secs(retry_in)
                    ),
                    Unavailable::Disconnected { reason, retry_in } => format!(
                        "service {} unavailable ({reason}; reconnecting, next attempt in {})",
                        d.name(),
                        fmt_secs(retry_in)
                    ),
                };
                (
                    Ok(tool_error(msg.clone())),
                    "error",
                    "unavailable",
                    Some(msg),
                )
            }
            Err(CallError::Connection(e)) => {
                let msg = format!("service {} failed during the call: {e}", d.name());
                (Ok(tool_error(msg.clone())), "error", "allow", Some(msg))
            }
            Err(CallError::Timeout(t)) => {
                let msg = format!(
                    "service {} did not answer `{name}` within {} (master.downstream.timeout_secs)",
                    d.name(),
                    fmt_secs(t)
                );
                (Ok(tool_error(msg.clone())), "error", "allow", Some(msg))
            }
            Err(CallError::Cancelled) => {
                let msg = "cancelled by the client".to_owned();
                (
                    Err(ErrorData::internal_error(msg.clone(), None)),
                    "error",
                    "allow",
                    Some(msg),
                )
            }
        };
        self.metrics
            .proxied_calls
            .with_label_values(&[d.name(), &name, status])
            .inc();
        self.metrics
            .proxied_duration
            .with_label_values(&[d.name(), &name])
            .observe(elapsed.as_secs_f64());
        audit(&wire, decision, status, error);
        result
    }

    /// Sends one `tools/call` downstream, relays its progress, and tells the downstream when the
    /// caller cancels or the call times out.
    #[allow(clippy::too_many_arguments)]
    async fn forward_call(
        &self,
        d: &Downstream,
        client: &crate::downstream::Client,
        params: CallToolRequestParams,
        original_token: Option<ProgressToken>,
        peer: Option<&Peer<RoleServer>>,
        guard: &mut InFlightGuard<'_>,
        ct: &CancellationToken,
    ) -> Result<CallToolResponse, CallError> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = match client
            .peer()
            .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
            .await
        {
            Ok(h) => h,
            Err(e) => {
                d.request_check();
                return Err(CallError::Connection(e.to_string()));
            }
        };
        if let (Some(original), Some(peer)) = (original_token, peer) {
            let key = token_key(&handle.progress_token);
            if let Ok(mut m) = self.progress.lock() {
                m.insert(key.clone(), (peer.clone(), original));
            }
            if let Some(old) = guard.progress_key.replace(key)
                && let Ok(mut m) = self.progress.lock()
            {
                m.remove(&old);
            }
        }
        let request_id = handle.id.clone();
        let downstream_peer = handle.peer.clone();
        let response = async move {
            match handle.await_response().await? {
                ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
                ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
                ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
                _ => Err(rmcp::service::ServiceError::UnexpectedResponse),
            }
        };
        let r = d.request(response, ct).await;
        if let Err(CallError::Cancelled | CallError::Timeout(_)) = &r {
            let reason = if matches!(r, Err(CallError::Cancelled)) {
                "cancelled by the client"
            } else {
                "timed out at the gateway"
            };
            let _ = downstream_peer
                .notify_cancelled(CancelledNotificationParam::new(
                    Some(request_id),
                    Some(reason.to_owned()),
                ))
                .await;
        }
        r
    }

    /// Records a pending approval for a downstream call (none when approvals are off).
    #[allow(clippy::too_many_arguments)] // the call's route, arguments and caller, as recorded
    fn record_approval(
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
        self.audit.record(AuditRecord {
            identity: caller.identity.name.clone(),
            tool: wire.to_owned(),
            arguments: redacted.to_owned(),
            decision: "approval_requested".to_owned(),
            status: "pending".to_owned(),
            duration_ms: 0.0,
            correlation_id: caller.correlation_id.clone(),
            error: Some(format!("{}: {reason}", row.id)),
        });
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

    /// `approvals_list`, `approvals_approve`, `approvals_deny`.
    async fn approvals_tool(
        &self,
        wire: &str,
        args: Option<&Map<String, Value>>,
        caller: &CallerContext,
        ct: &CancellationToken,
    ) -> CallToolResponse {
        let sep = &self.cfg.separator;
        let arg = |k: &str| args.and_then(|a| a.get(k)).and_then(Value::as_str);
        let outcome = if wire == wire_name("approvals", sep, "list") {
            let limit = args.and_then(|a| a.get("limit")).and_then(Value::as_u64);
            self.list_approvals(arg("status"), limit)
        } else {
            let approve = wire == wire_name("approvals", sep, "approve");
            match arg("id") {
                None => Err(ApprovalFailure::Invalid(
                    "`id` is required (see approvals_list)".to_owned(),
                )),
                Some(id) => {
                    let comment =
                        arg(if approve { "comment" } else { "reason" }).unwrap_or_default();
                    self.decide_approval(id, approve, comment, &caller.identity, ct)
                        .await
                }
            }
        };
        match outcome {
            Ok(v) => CallToolResult::structured(v).into(),
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

    /// Approves (and runs) or denies one approval (`approvals_approve`/`_deny`, `POST /approvals/…`).
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        comment: &str,
        approver: &mcp_runtime::auth::Identity,
        ct: &CancellationToken,
    ) -> Result<Value, ApprovalFailure> {
        self.decide(id, approve, comment, approver, ct)
            .await
            .map(|(doc, _)| doc)
    }

    /// A call waiting for its approval: asks the user in the client (elicitation) when configured,
    /// else waits up to `wait_secs` for someone to decide, with progress notifications; answers
    /// the approved call's result, the denial, or the pending notice.
    async fn settle_approval(
        &self,
        row: crate::approvals::ApprovalRow,
        caller: &CallerContext,
        peer: Option<&Peer<RoleServer>>,
        progress: Option<ProgressToken>,
        ct: &CancellationToken,
    ) -> CallToolResponse {
        let pending = self.pending_response(&row);
        let (Some((ap, _)), Some(peer)) = (&self.approvals, peer) else {
            return pending;
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
                return match self
                    .decide(&id, approve, &comment, &caller.identity, ct)
                    .await
                {
                    Ok((_, Some(r))) => r.into(),
                    Ok((_, None)) => denied(&comment),
                    Err(e) => tool_error(format!("approval {id}: {e}")),
                };
            }
        }
        if ap.cfg.wait_secs == 0 {
            return pending;
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
                            Some(r) => r.into(),
                            None => denied(ev.error.as_deref().unwrap_or(&ev.status)),
                        };
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return pending,
                },
                _ = tick.tick() => {
                    if let Some(row) = ap.get(&id).filter(|r| r.status != "pending" && r.status != "approved") {
                        return match row.status.as_str() {
                            "denied" => denied(row.comment.as_deref().unwrap_or("denied")),
                            _ => pending,
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
                () = tokio::time::sleep_until(deadline) => return pending,
                () = ct.cancelled() => return pending,
            }
        }
    }

    /// [`Gateway::decide_approval`], also handing back the approved call's result.
    async fn decide(
        &self,
        id: &str,
        approve: bool,
        comment: &str,
        approver: &mcp_runtime::auth::Identity,
        ct: &CancellationToken,
    ) -> Result<(Value, Option<CallToolResult>), ApprovalFailure> {
        let (ap, key) = self.approvals.as_ref().ok_or(ApprovalFailure::Disabled)?;
        if !approve && comment.trim().is_empty() {
            return Err(ApprovalFailure::Invalid(
                "`reason` is required to deny an approval".to_owned(),
            ));
        }
        let (row, call) = ap
            .decide(id, approver, approve, comment)
            .map_err(ApprovalFailure::Refused)?;
        let decision = if approve { "approved" } else { "denied" };
        self.metrics.approvals.with_label_values(&[decision]).inc();
        self.metrics
            .approval_decision
            .observe(crate::approvals::now().saturating_sub(row.created) as f64);
        self.refresh_pending();
        tracing::info!(target: "audit", message = "Approval decided.", approval_id = %row.id, decision = %row.status, approver = %approver.name, requester = %row.requester, tool = %row.tool);
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
        });
        let Some(call) = call else {
            let _ = self.approval_events.send(ApprovalEvent {
                id: row.id.clone(),
                status: "denied".to_owned(),
                result: None,
                error: Some(comment.to_owned()),
            });
            return Ok((json!({ "approval": row }), None));
        };
        match self.execute_approved(&row, call, key, ct).await {
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
                ap.finish(id, false, &e);
                let _ = self.approval_events.send(ApprovalEvent {
                    id: row.id.clone(),
                    status: "failed".to_owned(),
                    result: None,
                    error: Some(e.clone()),
                });
                Err(ApprovalFailure::Failed(format!(
                    "approved, but the call failed: {e}"
                )))
            }
        }
    }

    /// Sets the pending-approvals gauge from the store.
    pub fn refresh_pending(&self) {
        if let Some((ap, _)) = &self.approvals {
            self.metrics
                .approvals_pending
                .set(i64::try_from(ap.count("pending")).unwrap_or(i64::MAX));
        }
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
    ) -> Result<String, String> {
        if self.approvals.is_none() {
            return Err(format!(
                "step needs an approval, but approvals are not enabled on this master (set master.identity_key_file or master.approvals.key_file), so `{wire}` cannot run"
            ));
        }
        let Some((_, Route::Downstream { index, name }, _)) = self.canonical(wire) else {
            return Err(format!("unknown tool `{wire}`"));
        };
        let redacted = redacted_args(Some(&arguments));
        self.record_approval(
            wire,
            index,
            &name,
            Some(arguments),
            reason,
            caller,
            &redacted,
        )
        .map(|row| row.id)
        .ok_or_else(|| "approvals are not enabled on this master".to_owned())
    }

    /// Runs an approved call with a single-use token bound to the service's tool and arguments,
    /// on behalf of the requester.
    async fn execute_approved(
        &self,
        row: &crate::approvals::ApprovalRow,
        call: crate::approvals::PendingCall,
        key: &AssertionKey,
        ct: &CancellationToken,
    ) -> Result<CallToolResult, String> {
        let d = self.downstream(call.downstream).clone();
        let client = d
            .admit()
            .map_err(|_| format!("service {} is unavailable", d.name()))?;
        let token = key.sign_approval(&call.local_tool, call.arguments.as_ref(), &row.id, 300);
        let mut meta = RequestMetaObject::default();
        meta.insert(
            mcp_runtime::approval::APPROVAL_META_KEY.to_owned(),
            serde_json::to_value(token).unwrap_or(Value::Null),
        );
        meta.insert(
            mcp_runtime::telemetry::CORRELATION_META_KEY.to_owned(),
            Value::String(row.correlation_id.clone()),
        );
        if let Some(ak) = &self.assertion_key
            && let Ok(v) = serde_json::to_value(ak.sign(&call.requester, &row.correlation_id))
        {
            meta.insert(IDENTITY_META_KEY.to_owned(), v);
        }
        let mut params = CallToolRequestParams::new(call.local_tool.clone());
        params.arguments = call.arguments;
        params.meta = Some(meta);
        match d.request(client.call_tool(params), ct).await {
            Ok(r) => Ok(r),
            Err(CallError::Remote(e)) => Err(e.message.to_string()),
            Err(CallError::Timeout(t)) => Err(format!(
                "service {} did not answer within {}",
                d.name(),
                fmt_secs(t)
            )),
            Err(CallError::Cancelled) => Err("cancelled".to_owned()),
            Err(CallError::Connection(e)) => Err(format!("service {} failed: {e}", d.name())),
            Err(CallError::Unavailable(_)) => Err(format!("service {} is unavailable", d.name())),
        }
    }

    fn call_local(&self, wire: &str) -> CallToolResponse {
        let sep = &self.cfg.separator;
        if wire == wire_name("master", sep, "hello_world") {
            return CallToolResult::success(vec![ContentBlock::text(
                "Hello from the MCP master gateway!",
            )])
            .into();
        }
        let status = self.system_status();
        CallToolResult::structured(status).into()
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

    /// Routes a namespaced prompt name.
    pub fn prompt_route(&self, name: &str) -> Option<(usize, String)> {
        match self.index().prompt_routes.get(name)? {
            Route::Downstream { index, name } => Some((*index, name.clone())),
            Route::Local(_) => None,
        }
    }

    /// Routes a wire resource URI to `(downstream, original uri)`.
    pub fn resource_route(&self, uri: &str) -> Option<(usize, String)> {
        if let Some((ns, rest)) = split_wire_uri(uri)
            && let Some(d) = self.downstreams.iter().find(|d| d.namespace() == ns)
        {
            return Some((d.index, rest.to_owned()));
        }
        // Downstreams mounted with an empty namespace keep their URIs.
        let unprefixed: Vec<&Arc<Downstream>> = self
            .downstreams
            .iter()
            .filter(|d| d.namespace().is_empty())
            .collect();
        if let [only] = unprefixed.as_slice() {
            return Some((only.index, uri.to_owned()));
        }
        unprefixed
            .iter()
            .find(|d| {
                let cat = d.catalog();
                cat.resources.iter().any(|r| r.uri == uri)
                    || cat.templates.iter().any(|t| {
                        t.uri_template
                            .split('{')
                            .next()
                            .is_some_and(|p| uri.starts_with(p))
                    })
            })
            .map(|d| (d.index, uri.to_owned()))
    }

    /// Forwards a non-tool request (prompts, resources, completion) to a downstream.
    pub async fn forward<T>(
        &self,
        index: usize,
        f: impl AsyncFnOnce(Peer<rmcp::RoleClient>) -> Result<T, rmcp::service::ServiceError>,
        ct: &CancellationToken,
    ) -> Result<T, ErrorData> {
        let d = self.downstream(index).clone();
        let client = d.admit().map_err(|u| {
            let why = match u {
                Unavailable::CircuitOpen { retry_in } => {
                    format!("circuit open, retry in {}", fmt_secs(retry_in))
                }
                Unavailable::Disconnected { reason, .. } => reason,
            };
            ErrorData::internal_error(format!("service {} unavailable ({why})", d.name()), None)
        })?;
        let peer = client.peer().clone();
        match d.request(f(peer), ct).await {
            Ok(v) => Ok(v),
            Err(CallError::Remote(e)) => Err(e),
            Err(e) => Err(ErrorData::internal_error(
                format!("service {}: {}", d.name(), describe(&e)),
                None,
            )),
        }
    }
}

fn describe(e: &CallError) -> String {
    match e {
        CallError::Unavailable(_) => "unavailable".to_owned(),
        CallError::Connection(m) => format!("connection failed: {m}"),
        CallError::Timeout(t) => format!("no answer within {}", fmt_secs(*t)),
        CallError::Cancelled => "cancelled".to_owned(),
        CallError::Remote(e) => e.message.to_string(),
    }
}

fn token_key(t: &ProgressToken) -> String {
    match &t.0 {
        NumberOrString::Number(n) => format!("n:{n}"),
        NumberOrString::String(s) => format!("s:{s}"),
    }
}
