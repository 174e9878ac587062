//! The merged index: every downstream's catalog namespaced into wire names (`<namespace>_<tool>`),
//! master's own tools beside them, the endpoint views, and list-change notifications when the
//! merged set an endpoint shows changes.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::*;
use rmcp::{Peer, RoleServer};

use super::Gateway;
use super::local::local_tools;
use crate::config::MasterConfig;
use crate::downstream::Downstream;
use crate::guard::pins::DefKind;
use crate::namespace::{check_wire_name, wire_name, wire_uri};
use crate::toolsets::{DISCOVER, View};

/// `/mcp`, the configured toolsets, one per namespace (unless configured otherwise), `/mcp/discover`.
pub(super) fn build_views(cfg: &MasterConfig, downstreams: &[Arc<Downstream>]) -> Vec<Arc<View>> {
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
    /// Namespace of every routable tool, by wire name (held tools included).
    pub tool_ns: HashMap<String, String>,
    /// Tools held by their pins (`guard::pins`), by wire name: neither listed nor routed.
    pub held: HashMap<String, crate::guard::pins::Held>,
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
impl Gateway {
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
        let unheld_tools = |i: usize| -> Vec<Tool> {
            self.downstreams[i]
                .catalog()
                .tools
                .iter()
                .filter(|t| self.held(i, DefKind::Tool, &t.name).is_none())
                .cloned()
                .collect()
        };
        for problem in self.routes.refresh(&unheld_tools) {
            tracing::warn!(message = "Tool not routed to a candidate version.", problem = %problem);
        }
        for d in &self.downstreams {
            // A candidate version's catalog is not listed: the namespace shows its stable version.
            if self.routes.is_candidate(d.index) {
                continue;
            }
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
                if let Some(h) = self.held(d.index, DefKind::Tool, &t.name) {
                    idx.held.insert(wire, h);
                    continue;
                }
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
                if self.held(d.index, DefKind::Prompt, &p.name).is_some() {
                    continue;
                }
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
                if self
                    .held(d.index, DefKind::ResourceTemplate, &t.uri_template)
                    .is_some()
                {
                    continue;
                }
                let mut exposed = t.clone();
                exposed.uri_template = wire_uri(ns, &t.uri_template);
                idx.templates.push(exposed);
            }
        }
        idx
    }

    /// Rebuilds the index after a catalog change and tells clients when the merged set changed.
    pub fn catalog_changed(&self) {
        let _rebuilding = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        self.observe_pins();
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
}
