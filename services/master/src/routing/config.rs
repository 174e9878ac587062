//! `[[master.route]]` and the `version` / `weight` keys of `[[master.downstream]]`: the config
//! types, their checks, and whether a candidate's tool schema is compatible with the stable one's.

use std::collections::{BTreeMap, HashSet};

use mcp_runtime::guard::RuleConfig;
use rmcp::model::Tool;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConfigInvalid, DownstreamConfig, MasterConfig};

/// One `[[master.route]]`: settings of the route of a versioned namespace.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The versioned namespace (`cmdb`).
    pub namespace: String,
    /// Callers always sent to one version (`identities`, `roles`, `version`); the first match wins.
    #[serde(default)]
    pub rule: Vec<RouteRule>,
    #[serde(default)]
    pub rollback: RollbackConfig,
    /// Also send each read-only call the stable version serves to every candidate (that is up,
    /// has the tool and is not rolled back), compare the answers and discard the candidate's
    /// (`mcp_route_mirror_total{outcome=match|differ|error|skipped}`).
    #[serde(default)]
    pub mirror: bool,
}

/// A `[[master.route.rule]]`: whom it is for and the version they get.
pub type RouteRule = RuleConfig<RuleVersion>;

/// What a route rule decides.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleVersion {
    pub version: String,
}

/// `[master.route.rollback]`: when a candidate version is taken out of the route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollbackConfig {
    pub enabled: bool,
    /// Seconds of calls the thresholds look at.
    pub window_secs: u64,
    /// Calls within the window before a threshold may act.
    pub min_calls: u32,
    /// Largest share of failed calls (0–1) a candidate may have.
    pub max_error_rate: f64,
    /// Largest p95 call duration a candidate may have, in milliseconds.
    pub max_p95_ms: f64,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window_secs: 60,
            min_calls: 20,
            max_error_rate: 0.05,
            max_p95_ms: 500.0,
        }
    }
}

fn is_valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The downstreams of each versioned namespace, in config order (stable first).
pub(super) fn groups(cfg: &MasterConfig) -> BTreeMap<&str, Vec<(usize, &DownstreamConfig)>> {
    let mut groups: BTreeMap<&str, Vec<(usize, &DownstreamConfig)>> = BTreeMap::new();
    for (i, d) in cfg.downstream.iter().enumerate() {
        if d.version.is_some() {
            groups.entry(d.namespace()).or_default().push((i, d));
        }
    }
    groups
}

/// The weights a group's config gives (stable 100, others 0 unless set).
pub(super) fn configured_weights(members: &[(usize, &DownstreamConfig)]) -> Vec<u32> {
    members
        .iter()
        .enumerate()
        .map(|(pos, (_, d))| d.weight.unwrap_or(if pos == 0 { 100 } else { 0 }))
        .collect()
}

/// Config checks of versions, weights and `[[master.route]]` (called by `MasterConfig::validate`).
pub fn validate(cfg: &MasterConfig) -> Result<(), ConfigInvalid> {
    let groups = groups(cfg);
    for d in &cfg.downstream {
        let what = format!("master.downstream `{}`", d.name);
        match &d.version {
            Some(v) if d.namespace().is_empty() => {
                return Err(ConfigInvalid(format!(
                    "{what}: version `{v}` needs a namespace to route (its namespace is empty)"
                )));
            }
            Some(v) if !is_valid_version(v) => {
                return Err(ConfigInvalid(format!(
                    "{what}: version `{v}` must be 1–32 of A-Z a-z 0-9 . _ -"
                )));
            }
            None if d.weight.is_some() => {
                return Err(ConfigInvalid(format!(
                    "{what}: `weight` needs a `version` (weights split a namespace between versions)"
                )));
            }
            _ => {}
        }
    }
    for (ns, members) in &groups {
        let mut seen = HashSet::new();
        for (_, d) in members {
            let v = d.version.as_deref().unwrap_or_default();
            if !seen.insert(v) {
                return Err(ConfigInvalid(format!(
                    "master.downstream `{}`: version `{v}` of namespace `{ns}` is defined twice",
                    d.name
                )));
            }
        }
        if configured_weights(members).iter().all(|w| *w == 0) {
            return Err(ConfigInvalid(format!(
                "namespace `{ns}`: every version has weight 0; give at least one a weight above 0"
            )));
        }
    }
    let mut routes = HashSet::new();
    for r in &cfg.route {
        let what = format!("master.route `{}`", r.namespace);
        let Some(members) = groups.get(r.namespace.as_str()) else {
            return Err(ConfigInvalid(format!(
                "{what}: no versioned downstream has this namespace (give its [[master.downstream]] entries a `version`)"
            )));
        };
        if !routes.insert(r.namespace.as_str()) {
            return Err(ConfigInvalid(format!("{what} is defined twice")));
        }
        for rule in &r.rule {
            rule.required_subjects(&format!("{what} rule"))
                .map_err(|e| ConfigInvalid(e.to_string()))?;
            if !members
                .iter()
                .any(|(_, d)| d.version.as_deref() == Some(rule.grant.version.as_str()))
            {
                return Err(ConfigInvalid(format!(
                    "{what}: a rule names version `{}`, which is not one of {}",
                    rule.grant.version,
                    version_list(members.iter().map(|(_, d)| *d))
                )));
            }
        }
        let rb = &r.rollback;
        if rb.window_secs == 0 || rb.min_calls == 0 {
            return Err(ConfigInvalid(format!(
                "{what}: rollback.window_secs and rollback.min_calls must be at least 1"
            )));
        }
        if !(rb.max_error_rate > 0.0 && rb.max_error_rate <= 1.0) {
            return Err(ConfigInvalid(format!(
                "{what}: rollback.max_error_rate is a share of calls, above 0 and at most 1 (0.05 = 5 %)"
            )));
        }
        if !(rb.max_p95_ms > 0.0 && rb.max_p95_ms.is_finite()) {
            return Err(ConfigInvalid(format!(
                "{what}: rollback.max_p95_ms must be a number of milliseconds above 0"
            )));
        }
    }
    Ok(())
}

fn version_list<'a>(ds: impl Iterator<Item = &'a DownstreamConfig>) -> String {
    ds.map(|d| d.version.as_deref().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether calls made against the stable version's input schema fit the candidate's: the
/// candidate requires nothing the stable version does not, shared properties keep their type, and
/// properties it lacks are not refused (`additionalProperties: false`). `None` when compatible,
/// else why not.
pub fn incompatibility(stable: &Tool, candidate: &Tool) -> Option<String> {
    let props = |t: &Tool| {
        t.input_schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let required = |t: &Tool| -> HashSet<String> {
        t.input_schema
            .get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (sp, cp) = (props(stable), props(candidate));
    let (sr, cr) = (required(stable), required(candidate));
    let mut missing: Vec<&String> = cr.iter().filter(|r| !sr.contains(*r)).collect();
    missing.sort();
    if let Some(r) = missing.first() {
        return Some(format!(
            "it requires `{r}`, which the stable version does not"
        ));
    }
    for (name, s) in &sp {
        match cp.get(name) {
            Some(c) => {
                if let (Some(st), Some(ct)) = (s.get("type"), c.get("type"))
                    && st != ct
                {
                    return Some(format!(
                        "`{name}` is {ct} there but {st} in the stable version"
                    ));
                }
            }
            None if candidate.input_schema.get("additionalProperties")
                == Some(&Value::Bool(false)) =>
            {
                return Some(format!(
                    "it refuses `{name}`, which the stable version accepts"
                ));
            }
            None => {}
        }
    }
    None
}

/// [`groups`] with the namespace as an owned key.
pub(super) fn groups_of(cfg: &MasterConfig) -> BTreeMap<String, Vec<(usize, &DownstreamConfig)>> {
    groups(cfg)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}
