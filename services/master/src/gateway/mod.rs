//! The gateway: master's shared state (downstreams, the merged namespaced index, endpoint views,
//! connected clients) and the call pipeline every `tools/call` takes. Read in this order:
//!
//! - `index` — the merged index: which wire name leads to which service tool, and list changes;
//! - `pipeline` — the stages of one call: resolve → authorize → rate limit → approval →
//!   dispatch → classify → record;
//! - `forward` — the dispatch stage for downstream tools (retry, span, progress, cancellation);
//! - `approval_flow` — pending approvals, decisions, and running an approved call;
//! - `pin_flow` — pinned definitions held, audited and decided; results guarded (`guard`);
//! - `local` — master's own tools (`master_*`, `approvals_*`, `orchestrator_*`, discovery).

mod approval_flow;
mod forward;
mod index;
mod local;
mod pin_flow;
mod pipeline;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use mcp_runtime::CallerContext;
use mcp_runtime::assertion::AssertionKey;
use rmcp::model::*;
use rmcp::{ErrorData, Peer, RoleServer};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use approval_flow::{ApprovalAnswer, ApprovalFailure};
pub use index::{Index, Route};
pub use local::{discovery_tools, local_tools};
pub use pipeline::{Call, UNKNOWN_TOOL, unknown_tool};

use crate::audit::Audit;
use crate::config::MasterConfig;
use crate::downstream::{CallError, Downstream};
use crate::metrics::MasterMetrics;
use crate::namespace::{resolve_alias, split_wire_uri};
use crate::policy::{Policy, RateLimits};
use crate::toolsets::{CLIENT_TOOL_LIMITS, DISCOVER, View, ViewKind};
use forward::{InFlight, token_key};
use index::build_views;

/// Shared state of one master.
pub struct Gateway {
    pub cfg: MasterConfig,
    downstreams: Vec<Arc<Downstream>>,
    index: RwLock<Arc<Index>>,
    /// Held while the index is rebuilt and replaced: two supervisors finishing at once must not
    /// write an index built from an older view of the catalogs over a newer one.
    rebuild: Mutex<()>,
    views: Vec<Arc<View>>,
    limit_warnings: RwLock<Vec<String>>,
    peers: Mutex<Vec<(Peer<RoleServer>, Arc<View>)>>,
    progress: Mutex<HashMap<String, (Peer<RoleServer>, ProgressToken)>>,
    inflight: Mutex<HashMap<usize, Vec<InFlight>>>,
    next_id: AtomicU64,
    policy: Policy,
    limits: Arc<RateLimits>,
    audit: Audit,
    /// Versioned namespaces and how their calls are split (`routing`).
    routes: crate::routing::Routes,
    /// This gateway, for work that outlives a call (mirrored calls).
    me: std::sync::Weak<Gateway>,
    /// Mirrored calls in flight at most ([`MIRRORS_IN_FLIGHT`]); more are skipped, not queued.
    mirror_slots: Arc<tokio::sync::Semaphore>,
    pub metrics: MasterMetrics,
    assertion_key: Option<AssertionKey>,
    approvals: Option<(Arc<crate::approvals::Approvals>, AssertionKey)>,
    approval_events: broadcast::Sender<ApprovalEvent>,
    /// Bumped whenever an approval is requested, decided or withdrawn (the console's live list).
    approvals_changed: tokio::sync::watch::Sender<u64>,
    workflows: OnceLock<Arc<crate::workflow::Engine>>,
    /// Pins, per-downstream guardrail policies, approvals of held definitions (`pin_flow`).
    guard: pin_flow::GuardState,
    started: Instant,
    /// Master's own tools and the discovery meta-tools (`local`).
    local_router: rmcp::handler::server::router::tool::ToolRouter<Gateway>,
    discovery_router: rmcp::handler::server::router::tool::ToolRouter<Gateway>,
}

impl crate::downstream::Upstream for Gateway {
    fn catalog_changed(&self) {
        Gateway::catalog_changed(self);
    }
    fn client_for(&self, index: usize) -> Option<Peer<RoleServer>> {
        Gateway::client_for(self, index)
    }
    fn relay_progress(
        &self,
        params: ProgressNotificationParam,
    ) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(Gateway::relay_progress(self, params))
    }
    fn refresh(&self, index: usize) {
        if let Some(d) = self.downstreams.get(index) {
            d.request_refresh();
        }
    }
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
/// What master writes down: the audit log and the pinned definitions.
pub struct Stores {
    pub audit: Audit,
    pub pins: crate::guard::pins::Pins,
}

/// Mirrored calls in flight at most, over all routes.
const MIRRORS_IN_FLIGHT: usize = 64;

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
        stores: Stores,
        metrics: MasterMetrics,
        keys: Signing,
    ) -> Arc<Self> {
        let Stores { audit, pins } = stores;
        let Signing {
            identity: assertion_key,
            approvals,
        } = keys;
        let views = build_views(&cfg, &downstreams);
        let routes = crate::routing::Routes::new(&cfg, metrics.routes.clone());
        let guard = pin_flow::GuardState::new(pins, &cfg);
        let g = Arc::new_cyclic(|me| Self {
            guard,
            me: me.clone(),
            mirror_slots: Arc::new(tokio::sync::Semaphore::new(MIRRORS_IN_FLIGHT)),
            cfg,
            downstreams,
            index: RwLock::new(Arc::new(Index::default())),
            views,
            limit_warnings: RwLock::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            rebuild: Mutex::new(()),
            progress: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            policy,
            limits,
            audit,
            routes,
            metrics,
            assertion_key,
            approvals,
            approval_events: broadcast::channel(256).0,
            approvals_changed: tokio::sync::watch::Sender::new(0),
            workflows: OnceLock::new(),
            started: Instant::now(),
            local_router: Self::local_router(),
            discovery_router: Self::discovery_router(),
        });
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

    /// The versioned namespaces.
    pub fn routes(&self) -> &crate::routing::Routes {
        &self.routes
    }

    /// Why the audit store cannot be written now (see `Audit::failing`).
    pub fn audit_failing(&self) -> Option<String> {
        self.audit.failing()
    }

    /// Audit rows waiting in memory for the store.
    pub fn audit_pending(&self) -> usize {
        self.audit.pending()
    }

    /// Writes the audit row of a route change master made itself (a rollback, a config reload):
    /// the row a `master_setRoute` call with those weights would get, from identity `by`.
    pub fn audit_route_change(
        &self,
        by: &str,
        namespace: &str,
        weights: &serde_json::Value,
        decision: &str,
        why: &str,
    ) {
        self.audit.record(crate::audit::AuditRecord {
            error: Some(why.to_owned()),
            ..crate::audit::AuditRecord::event(
                by,
                crate::namespace::wire_name("master", &self.cfg.separator, "setRoute"),
                serde_json::json!({"namespace": namespace, "weights": weights}).to_string(),
                decision,
                "success",
                "route",
            )
        });
    }

    /// The audit row of an action taken in the console without a tool call (a run resumed or
    /// cancelled), under the name of the tool that does the same: arguments masked like a call's.
    pub fn audit_console_action(
        &self,
        by: &str,
        tool: (&str, &str),
        arguments: &serde_json::Map<String, serde_json::Value>,
        outcome: Result<(), &str>,
    ) {
        self.audit.record(crate::audit::AuditRecord {
            error: outcome.err().map(str::to_owned),
            ..crate::audit::AuditRecord::event(
                by,
                crate::namespace::wire_name(tool.0, &self.cfg.separator, tool.1),
                crate::audit::redacted_args(Some(arguments)),
                "allow",
                if outcome.is_ok() { "success" } else { "error" },
                "console",
            )
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

    /// The held tool a requested name (wire name or alias) means, if held.
    pub fn held_tool(&self, requested: &str) -> Option<(String, crate::guard::pins::Held)> {
        let idx = self.index();
        if idx.held.is_empty() {
            return None;
        }
        if let Some(h) = idx.held.get(requested) {
            return Some((requested.to_owned(), h.clone()));
        }
        let alias = resolve_alias(requested, &self.cfg.separator)?;
        idx.held.get(&alias).map(|h| (alias.clone(), h.clone()))
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
            ErrorData::internal_error(
                forward::call_error_text(&d, "", &CallError::Unavailable(u)),
                None,
            )
        })?;
        let peer = client.peer().clone();
        match d.request(f(peer), ct).await {
            Ok(v) => Ok(v),
            Err(CallError::Remote(e)) => Err(e),
            Err(e) => Err(ErrorData::internal_error(
                forward::call_error_text(&d, "", &e),
                None,
            )),
        }
    }
}
