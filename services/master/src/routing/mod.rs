//! Versions of a downstream, routed by weight: `[[master.downstream]]` entries that share a
//! namespace and each carry a `version` form one route. The first entry is the **stable**
//! version: its tools are the ones listed, and prompts and resources come from it. Every
//! `tools/call` of the namespace goes to one version, chosen in this order:
//!
//! 1. an explicit override, the `x-mcp-route: cmdb=v2` HTTP header or the same text in the call's
//!    `_meta["x-mcp-route"]` (an unknown version, or one without a compatible tool, is refused);
//! 2. the first `[[master.route.rule]]` naming the caller's identity or one of its roles;
//! 3. the caller's sticky assignment (identity; a session when auth is off), made once so that the
//!    split of callers follows the weights as closely as whole callers allow, and moved only when
//!    the weights change (the fewest callers needed) or the version's weight drops to 0.
//!
//! A version that lacks the tool, whose input schema for it is incompatible with the stable
//! version's, or that is down, gets none of that tool's calls: the stable version serves them.
//!
//! With `mirror = true`, read-only calls the stable version serves are also sent to the
//! candidates, their answers compared with the stable one's and discarded.
//!
//! Each version's calls are watched over `rollback.window_secs`; a candidate whose error ratio or
//! p95 crosses its threshold gets weight 0 (logged, audited, `mcp_route_rollbacks_total`), and
//! stays there until an admin raises it (`master_setRoute`) or the config file changes its weight.

mod config;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mcp_runtime::auth::Identity;
use mcp_runtime::guard::Subjects;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};
use rmcp::model::Tool;
use serde_json::{Value, json};

pub use config::{RollbackConfig, RouteConfig, RouteRule, RuleVersion, incompatibility, validate};
use config::{configured_weights, groups_of};
use state::{MAX_ASSIGNED, State, Window};

use crate::config::MasterConfig;

/// The HTTP header (and `_meta` key) that picks versions for one call: `cmdb=v2, linux=v1`.
pub const ROUTE_HEADER: &str = "x-mcp-route";

/// Why a call's route override or a weight change was refused, in a sentence for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouteRefused(pub String);

impl From<String> for RouteRefused {
    fn from(text: String) -> Self {
        Self(text)
    }
}

/// One version of a route.
#[derive(Debug)]
pub struct Version {
    pub name: String,
    /// Index of its downstream.
    pub index: usize,
    /// Its downstream's name.
    pub downstream: String,
}

/// A versioned namespace.
#[derive(Debug)]
pub struct Group {
    pub namespace: String,
    /// Stable first.
    pub versions: Vec<Version>,
    rules: Vec<(Subjects, usize)>,
    rollback: RollbackConfig,
    mirror: bool,
    state: Mutex<State>,
    /// Per version, the tools it may serve: present and compatible with the stable version's.
    routable: RwLock<Vec<HashSet<String>>>,
    /// Tools a candidate has with an incompatible schema (served by the stable version).
    problems: RwLock<Vec<String>>,
}

impl Group {
    fn position(&self, version: &str) -> Option<usize> {
        self.versions.iter().position(|v| v.name == version)
    }

    fn routable(&self, pos: usize, tool: &str) -> bool {
        pos == 0
            || self
                .routable
                .read()
                .map(|r| r.get(pos).is_some_and(|s| s.contains(tool)))
                .unwrap_or(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn names(&self) -> String {
        self.versions
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How a call's version was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Header,
    Rule,
    Sticky,
    Random,
    /// The chosen version cannot serve this tool now (missing, incompatible, down).
    Stable,
}

/// The version one call goes to.
#[derive(Debug, Clone)]
pub struct Pick {
    group: Arc<Group>,
    pub pos: usize,
    /// The downstream to call.
    pub index: usize,
    pub choice: Choice,
}

impl Pick {
    pub fn namespace(&self) -> &str {
        &self.group.namespace
    }

    pub fn version(&self) -> &str {
        &self.group.versions[self.pos].name
    }
}

/// A candidate taken out of its route by the rollback thresholds.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub namespace: String,
    pub version: String,
    pub reason: String,
}

/// What a config reload did to one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The route's weights are now these.
    Weights {
        namespace: String,
        weights: BTreeMap<String, u32>,
    },
    /// The file adds, removes or reorders versions: that needs a restart; weights unchanged.
    NeedsRestart { namespace: String },
}

/// Route metrics (registered by `MasterMetrics`).
#[derive(Clone)]
pub struct RouteMetrics {
    pub calls: IntCounterVec,
    pub duration: HistogramVec,
    pub weight: IntGaugeVec,
    pub rollbacks: IntCounterVec,
    pub mirrors: IntCounterVec,
    pub mirror_duration: HistogramVec,
}

/// Buckets of the route duration histograms, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl RouteMetrics {
    /// `mcp_route_calls_total{namespace,version,status}`, `mcp_route_call_duration_seconds`,
    /// `mcp_route_weight`, `mcp_route_rollbacks_total`, registered in `registry`.
    pub fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            calls: IntCounterVec::new(
                prometheus::Opts::new(
                    "mcp_route_calls_total",
                    "Tool calls of versioned namespaces, by the version that served them.",
                ),
                &["namespace", "version", "status"],
            )?,
            duration: HistogramVec::new(
                prometheus::HistogramOpts::new(
                    "mcp_route_call_duration_seconds",
                    "Duration of tool calls of versioned namespaces, by version.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["namespace", "version"],
            )?,
            weight: IntGaugeVec::new(
                prometheus::Opts::new(
                    "mcp_route_weight",
                    "Current weight of each version of a versioned namespace.",
                ),
                &["namespace", "version"],
            )?,
            rollbacks: IntCounterVec::new(
                prometheus::Opts::new(
                    "mcp_route_rollbacks_total",
                    "Candidate versions set to weight 0 by the rollback thresholds.",
                ),
                &["namespace", "version"],
            )?,
            mirrors: IntCounterVec::new(
                prometheus::Opts::new(
                    "mcp_route_mirror_total",
                    "Read-only calls mirrored to a candidate version, by how its answer compared with the stable version's: match, differ, error (no answer), skipped (too many mirrors in flight).",
                ),
                &["namespace", "version", "outcome"],
            )?,
            mirror_duration: HistogramVec::new(
                prometheus::HistogramOpts::new(
                    "mcp_route_mirror_duration_seconds",
                    "Duration of mirrored calls at the candidate version.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["namespace", "version"],
            )?,
        };
        registry.register(Box::new(m.mirrors.clone()))?;
        registry.register(Box::new(m.mirror_duration.clone()))?;
        registry.register(Box::new(m.calls.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.weight.clone()))?;
        registry.register(Box::new(m.rollbacks.clone()))?;
        Ok(m)
    }
}

/// Every versioned namespace of a master.
pub struct Routes {
    /// Downstream index → its group (only for versioned downstreams).
    by_index: Vec<Option<Arc<Group>>>,
    groups: Vec<Arc<Group>>,
    metrics: RouteMetrics,
}

/// Parses `cmdb=v2, linux=v1` and returns the version named for `namespace`.
pub fn parse_override<'a>(text: &'a str, namespace: &str) -> Result<Option<&'a str>, RouteRefused> {
    let mut found = None;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((ns, v)) = part.split_once('=') else {
            return Err(format!(
                "{ROUTE_HEADER} `{part}` is not namespace=version (e.g. {ROUTE_HEADER}: cmdb=v2)"
            )
            .into());
        };
        if ns.trim() == namespace {
            found = Some(v.trim());
        }
    }
    Ok(found)
}

impl Routes {
    pub fn new(cfg: &MasterConfig, metrics: RouteMetrics) -> Self {
        let mut by_index = vec![None; cfg.downstream.len()];
        let mut groups = Vec::new();
        for (ns, members) in groups_of(cfg) {
            let versions: Vec<Version> = members
                .iter()
                .map(|(i, d)| Version {
                    name: d.version.clone().unwrap_or_default(),
                    index: *i,
                    downstream: d.name.clone(),
                })
                .collect();
            let route = cfg.route.iter().find(|r| r.namespace == ns);
            let rules = route
                .map(|r| {
                    r.rule
                        .iter()
                        .filter_map(|rule| {
                            let pos = versions.iter().position(|v| v.name == rule.grant.version)?;
                            Some((rule.subjects(), pos))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let weights = configured_weights(&members);
            let n = versions.len();
            let group = Arc::new(Group {
                namespace: ns.to_owned(),
                rules,
                rollback: route.map(|r| r.rollback.clone()).unwrap_or_default(),
                mirror: route.is_some_and(|r| r.mirror),
                state: Mutex::new(State {
                    weights: weights.clone(),
                    configured: weights,
                    assigned: HashMap::new(),
                    counts: vec![0; n],
                    seq: 0,
                    max_assigned: MAX_ASSIGNED,
                    rolled_back: vec![None; n],
                    windows: (0..n).map(|_| Window::default()).collect(),
                }),
                routable: RwLock::new(vec![HashSet::new(); n]),
                problems: RwLock::new(Vec::new()),
                versions,
            });
            for v in &group.versions {
                by_index[v.index] = Some(group.clone());
            }
            groups.push(group);
        }
        let routes = Self {
            by_index,
            groups,
            metrics,
        };
        for g in &routes.groups {
            routes.publish_weights(g, &g.lock());
            // A series at 0 from the start, so the first rollback is an increase Prometheus sees.
            for v in &g.versions[1..] {
                routes
                    .metrics
                    .rollbacks
                    .with_label_values(&[g.namespace.as_str(), v.name.as_str()]);
            }
        }
        routes
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether downstream `index` is a candidate (a non-stable version), whose catalog is not listed.
    pub fn is_candidate(&self, index: usize) -> bool {
        self.by_index
            .get(index)
            .and_then(Option::as_ref)
            .is_some_and(|g| g.versions[0].index != index)
    }

    /// Recomputes which tools each candidate may serve from the current catalogs; returns the
    /// incompatibilities found that were not known before (to log).
    pub fn refresh(&self, tools_of: &dyn Fn(usize) -> Vec<Tool>) -> Vec<String> {
        let mut fresh = Vec::new();
        for g in &self.groups {
            let stable: HashMap<String, Tool> = tools_of(g.versions[0].index)
                .into_iter()
                .map(|t| (t.name.to_string(), t))
                .collect();
            let mut routable = vec![stable.keys().cloned().collect::<HashSet<_>>()];
            let mut problems = Vec::new();
            for v in &g.versions[1..] {
                let mut ok = HashSet::new();
                for t in tools_of(v.index) {
                    let Some(s) = stable.get(t.name.as_ref()) else {
                        continue;
                    };
                    match incompatibility(s, &t) {
                        None => {
                            ok.insert(t.name.to_string());
                        }
                        Some(why) => problems.push(format!(
                            "`{}` of {} version {} is not routed there: its input schema differs incompatibly from version {} ({why}); the stable version serves it",
                            t.name, g.namespace, v.name, g.versions[0].name
                        )),
                    }
                }
                routable.push(ok);
            }
            if let Ok(mut r) = g.routable.write() {
                *r = routable;
            }
            if let Ok(mut p) = g.problems.write() {
                fresh.extend(problems.iter().filter(|x| !p.contains(x)).cloned());
                *p = problems;
            }
        }
        fresh
    }

    /// Chooses the version of one call to `tool` of the stable downstream `index`; `None` when that
    /// downstream is not versioned. `overrides` is the `x-mcp-route` text, `sticky` the caller's
    /// key (none: a weighted random version). Errors are for the caller (a bad override).
    pub fn pick(
        &self,
        index: usize,
        tool: &str,
        who: &Identity,
        sticky: Option<&str>,
        overrides: Option<&str>,
        is_up: &dyn Fn(usize) -> bool,
    ) -> Result<Option<Pick>, RouteRefused> {
        let Some(g) = self.by_index.get(index).and_then(Option::as_ref) else {
            return Ok(None);
        };
        let forced = match overrides {
            Some(text) => parse_override(text, &g.namespace)?,
            None => None,
        };
        let pick = |pos: usize, choice| Pick {
            group: g.clone(),
            pos,
            index: g.versions[pos].index,
            choice,
        };
        if let Some(v) = forced {
            let Some(pos) = g.position(v) else {
                return Err(format!(
                    "{ROUTE_HEADER} asks for version `{v}` of `{}`, which has versions {}",
                    g.namespace,
                    g.names()
                )
                .into());
            };
            if !g.routable(pos, tool) {
                return Err(format!(
                    "{ROUTE_HEADER} asks for version `{v}` of `{}`, which has no tool `{tool}` compatible with version {} (master_getSystemStatus lists the route's problems)",
                    g.namespace, g.versions[0].name
                ).into());
            }
            return Ok(Some(pick(pos, Choice::Header)));
        }
        let (pos, choice) = match g.rules.iter().find(|(s, _)| s.include(who)) {
            Some((_, pos)) => (*pos, Choice::Rule),
            None => {
                let mut st = g.lock();
                match sticky {
                    Some(key) => (st.assign(key), Choice::Sticky),
                    None => (st.random(), Choice::Random),
                }
            }
        };
        if pos != 0 && (!g.routable(pos, tool) || !is_up(g.versions[pos].index)) {
            return Ok(Some(pick(0, Choice::Stable)));
        }
        Ok(Some(pick(pos, choice)))
    }

    /// Counts one call's outcome for its version and applies the rollback thresholds.
    pub fn observe(&self, pick: &Pick, error: bool, elapsed: Duration) -> Option<Rollback> {
        let g = &pick.group;
        let version = g.versions[pick.pos].name.as_str();
        self.metrics
            .calls
            .with_label_values(&[
                g.namespace.as_str(),
                version,
                if error { "error" } else { "success" },
            ])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[g.namespace.as_str(), version])
            .observe(elapsed.as_secs_f64());
        let rb = &g.rollback;
        let span = Duration::from_secs(rb.window_secs);
        let mut st = g.lock();
        let w = &mut st.windows[pick.pos];
        w.push(Instant::now(), error, elapsed.as_secs_f32() * 1000.0, span);
        if pick.pos == 0
            || !rb.enabled
            || st.rolled_back[pick.pos].is_some()
            || st.weights[pick.pos] == 0
        {
            return None;
        }
        let w = &st.windows[pick.pos];
        let n = w.calls.len();
        if n < rb.min_calls as usize {
            return None;
        }
        let rate = w.errors as f64 / n as f64;
        let reason = if rate > rb.max_error_rate {
            Some(format!(
                "error rate {:.1} % ({} of the last {n} calls within {} s) is above rollback.max_error_rate {:.1} %",
                rate * 100.0,
                w.errors,
                rb.window_secs,
                rb.max_error_rate * 100.0
            ))
        } else if n < 256 || n.is_multiple_of(16) {
            w.p95().filter(|p| f64::from(*p) > rb.max_p95_ms).map(|p| {
                format!(
                    "p95 {p:.0} ms over the last {n} calls within {} s is above rollback.max_p95_ms {:.0} ms",
                    rb.window_secs, rb.max_p95_ms
                )
            })
        } else {
            None
        }?;
        st.weights[pick.pos] = 0;
        st.rolled_back[pick.pos] = Some(reason.clone());
        st.rebalance();
        self.metrics
            .rollbacks
            .with_label_values(&[g.namespace.as_str(), version])
            .inc();
        self.publish_weights(g, &st);
        Some(Rollback {
            namespace: g.namespace.clone(),
            version: version.to_owned(),
            reason,
        })
    }

    /// The candidates a read-only call served by the stable version is mirrored to:
    /// `(downstream index, version)`.
    pub fn mirror_targets(
        &self,
        pick: &Pick,
        tool: &str,
        is_up: &dyn Fn(usize) -> bool,
    ) -> Vec<(usize, String)> {
        let g = &pick.group;
        if !g.mirror || pick.pos != 0 || pick.choice == Choice::Header {
            return Vec::new();
        }
        let st = g.lock();
        (1..g.versions.len())
            .filter(|pos| {
                st.rolled_back[*pos].is_none()
                    && g.routable(*pos, tool)
                    && is_up(g.versions[*pos].index)
            })
            .map(|pos| (g.versions[pos].index, g.versions[pos].name.clone()))
            .collect()
    }

    /// Counts one mirrored call: `match`, `differ`, `error` or `skipped`.
    pub fn mirrored(&self, namespace: &str, version: &str, outcome: &str, took: Option<Duration>) {
        self.metrics
            .mirrors
            .with_label_values(&[namespace, version, outcome])
            .inc();
        if let Some(t) = took {
            self.metrics
                .mirror_duration
                .with_label_values(&[namespace, version])
                .observe(t.as_secs_f64());
        }
    }

    fn publish_weights(&self, g: &Group, st: &State) {
        for (v, w) in g.versions.iter().zip(&st.weights) {
            self.metrics
                .weight
                .with_label_values(&[g.namespace.as_str(), v.name.as_str()])
                .set(i64::from(*w));
        }
    }

    fn group(&self, namespace: &str) -> Result<&Arc<Group>, RouteRefused> {
        self.groups
            .iter()
            .find(|g| g.namespace == namespace)
            .ok_or_else(|| {
                let known: Vec<&str> = self.groups.iter().map(|g| g.namespace.as_str()).collect();
                RouteRefused(if known.is_empty() {
                    format!("namespace `{namespace}` has no versions: no namespace of this master is versioned (give [[master.downstream]] entries a `version`)")
                } else {
                    format!(
                        "namespace `{namespace}` has no versions; versioned namespaces: {}",
                        known.join(", ")
                    )
                })
            })
    }

    /// Sets weights of versions of `namespace` (others keep theirs); a version given a weight
    /// above 0 is no longer rolled back. Returns the route's state.
    pub fn set_weights(
        &self,
        namespace: &str,
        weights: &BTreeMap<String, u32>,
    ) -> Result<Value, RouteRefused> {
        let g = self.group(namespace)?;
        let mut positions = Vec::new();
        for (v, w) in weights {
            let pos = g.position(v).ok_or_else(|| {
                RouteRefused(format!(
                    "`{namespace}` has no version `{v}`; its versions: {}",
                    g.names()
                ))
            })?;
            positions.push((pos, *w));
        }
        if positions.is_empty() {
            return Err(format!(
                "`weights` is empty: give versions of `{namespace}` and their weights, e.g. {{\"{}\": 90}}",
                g.versions[0].name
            ).into());
        }
        {
            let mut st = g.lock();
            let mut new = st.weights.clone();
            for (pos, w) in &positions {
                new[*pos] = *w;
            }
            if new.iter().all(|w| *w == 0) {
                return Err(format!(
                    "every version of `{namespace}` would have weight 0; keep at least one above 0"
                )
                .into());
            }
            for (pos, w) in &positions {
                if *w > 0 {
                    st.rolled_back[*pos] = None;
                    st.windows[*pos] = Window::default();
                }
            }
            st.weights = new;
            st.rebalance();
            self.publish_weights(g, &st);
        }
        Ok(self.group_status(g))
    }

    /// Applies the weights of a re-read config where they differ from the ones it gave before.
    /// Returns what changed, per route.
    pub fn reload(&self, cfg: &MasterConfig) -> Vec<Reloaded> {
        let mut changed = Vec::new();
        let groups = groups_of(cfg);
        for g in &self.groups {
            let Some(members) = groups.get(g.namespace.as_str()) else {
                continue;
            };
            let names: Vec<&str> = members.iter().map(|(_, d)| d.name.as_str()).collect();
            if names
                != g.versions
                    .iter()
                    .map(|v| v.downstream.as_str())
                    .collect::<Vec<_>>()
            {
                changed.push(Reloaded::NeedsRestart {
                    namespace: g.namespace.clone(),
                });
                continue;
            }
            let new = configured_weights(members);
            let mut st = g.lock();
            if new == st.configured {
                continue;
            }
            for (pos, w) in new.iter().enumerate() {
                if *w != st.configured[pos] && *w > 0 {
                    st.rolled_back[pos] = None;
                    st.windows[pos] = Window::default();
                }
            }
            let mut weights = st.weights.clone();
            for (pos, w) in new.iter().enumerate() {
                if *w != st.configured[pos] {
                    weights[pos] = *w;
                }
            }
            st.configured.clone_from(&new);
            st.weights = weights;
            st.rebalance();
            self.publish_weights(g, &st);
            changed.push(Reloaded::Weights {
                namespace: g.namespace.clone(),
                weights: g
                    .versions
                    .iter()
                    .zip(&st.weights)
                    .map(|(v, w)| (v.name.clone(), *w))
                    .collect(),
            });
        }
        changed
    }

    fn group_status(&self, g: &Group) -> Value {
        let mut st = g.lock();
        let span = Duration::from_secs(g.rollback.window_secs);
        let now = Instant::now();
        let total: u64 = st.weights.iter().map(|w| u64::from(*w)).sum();
        let mut versions = Vec::new();
        for pos in 0..g.versions.len() {
            st.windows[pos].prune(now, span);
            let v = &g.versions[pos];
            let w = &st.windows[pos];
            versions.push(json!({
                "version": v.name,
                "downstream": v.downstream,
                "stable": pos == 0,
                "weight": st.weights[pos],
                "share_percent": if total == 0 { 0.0 } else { f64::from(st.weights[pos]) * 100.0 / total as f64 },
                "callers": st.counts[pos],
                "window_calls": w.calls.len(),
                "window_errors": w.errors,
                "window_p95_ms": w.p95(),
                "rolled_back": st.rolled_back[pos],
            }));
        }
        json!({
            "namespace": g.namespace,
            "stable": g.versions[0].name,
            "listing": "the stable version's tools",
            "versions": versions,
            "rollback": g.rollback,
            "problems": g.problems.read().map(|p| p.clone()).unwrap_or_default(),
        })
    }

    /// Every route's state, for `master_getSystemStatus`.
    pub fn status(&self) -> Vec<Value> {
        self.groups.iter().map(|g| self.group_status(g)).collect()
    }
}
