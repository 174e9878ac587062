//! Views of the merged tool set: the full `/mcp`, named toolsets at `/mcp/<toolset>`, and the
//! discovery endpoint `/mcp/discover` with three meta-tools, so every client stays under its tool
//! limits while every tool stays reachable.

use std::sync::Arc;

use globset::GlobSet;
use mcp_runtime::auth::Identity;
use mcp_runtime::guard::{GuardError, Subjects};
use rmcp::model::Tool;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::globs;

/// Name of the discovery endpoint.
pub const DISCOVER: &str = "discover";

/// Client limits the warnings name.
pub const CLIENT_TOOL_LIMITS: &str = "Cursor sends only the first 40 tools to its agent and warns above 80 in total; Windsurf refuses more than 50 (later 100); Antigravity 100";

/// One `[[master.toolset]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsetConfig {
    /// Served at `/mcp/<name>` and `/sse/<name>`.
    pub name: String,
    /// Namespaces whose tools belong to the set (`cmdb`, `linux`, `master`, ...).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Wire-name globs added to the set.
    #[serde(default)]
    pub include: Vec<String>,
    /// Wire-name globs removed from the set (wins over namespaces and include).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Roles allowed to use the endpoint; empty: everybody.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What an endpoint shows.
pub enum ViewKind {
    /// Everything (subject to role policy).
    All,
    /// A toolset.
    Toolset {
        namespaces: Vec<String>,
        include: GlobSet,
        exclude: GlobSet,
        /// Who may use the endpoint (no roles: everyone).
        roles: Subjects,
    },
    /// The three meta-tools.
    Discover,
}

/// One endpoint's view.
pub struct View {
    /// Endpoint name (`""` for `/mcp`).
    pub name: String,
    pub kind: ViewKind,
}

impl View {
    pub fn all() -> Arc<Self> {
        Arc::new(Self {
            name: String::new(),
            kind: ViewKind::All,
        })
    }

    pub fn discover() -> Arc<Self> {
        Arc::new(Self {
            name: DISCOVER.to_owned(),
            kind: ViewKind::Discover,
        })
    }

    pub fn toolset(cfg: &ToolsetConfig) -> Result<Arc<Self>, GuardError> {
        let what = format!("master.toolset `{}`", cfg.name);
        let invalid = |reason: String| GuardError::Invalid {
            key: what.clone(),
            reason,
        };
        if !crate::namespace::is_valid_wire_name(&cfg.name) {
            return Err(invalid("name may use only A-Z a-z 0-9 _ -".to_owned()));
        }
        if cfg.name == DISCOVER {
            return Err(invalid(format!(
                "`{DISCOVER}` is reserved for the discovery endpoint"
            )));
        }
        Ok(Arc::new(Self {
            name: cfg.name.clone(),
            kind: ViewKind::Toolset {
                namespaces: cfg.namespaces.clone(),
                include: globs(&cfg.include, &format!("{what}.include"))?,
                exclude: globs(&cfg.exclude, &format!("{what}.exclude"))?,
                roles: Subjects::new(&[], &cfg.roles),
            },
        }))
    }

    /// The path clients use.
    pub fn path(&self) -> String {
        if self.name.is_empty() {
            "/mcp".to_owned()
        } else {
            format!("/mcp/{}", self.name)
        }
    }

    /// Whether a caller may use this endpoint at all.
    pub fn allows(&self, identity: &Identity) -> bool {
        match &self.kind {
            ViewKind::Toolset { roles, .. } => roles.include(identity),
            _ => true,
        }
    }

    /// Whether the tool `wire` from namespace `ns` belongs to this endpoint's direct tool list.
    pub fn admits(&self, wire: &str, ns: &str) -> bool {
        match &self.kind {
            ViewKind::All => true,
            ViewKind::Discover => false,
            ViewKind::Toolset {
                namespaces,
                include,
                exclude,
                ..
            } => {
                !exclude.is_match(wire)
                    && (namespaces.iter().any(|n| n == ns) || include.is_match(wire))
            }
        }
    }
}

/// A search hit.
pub fn describe(t: &Tool) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// Ranks `tools` for `query`: every query word found in the name scores 3, in the description 1,
/// in the annotation title 2. Tools scoring 0 are left out; ties keep list order.
pub fn rank<'a>(
    tools: &'a [Tool],
    query: &str,
    namespace: Option<&str>,
    sep: &str,
    limit: usize,
) -> Vec<&'a Tool> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut scored: Vec<(usize, usize, &Tool)> = tools
        .iter()
        .enumerate()
        .filter(|(_, t)| namespace.is_none_or(|ns| t.name.starts_with(&format!("{ns}{sep}"))))
        .map(|(i, t)| {
            let name = t.name.to_lowercase();
            let desc = t.description.as_deref().unwrap_or("").to_lowercase();
            let title = t
                .annotations
                .as_ref()
                .and_then(|a| a.title.as_deref())
                .unwrap_or("")
                .to_lowercase();
            let score = words
                .iter()
                .map(|w| {
                    3 * usize::from(name.contains(w.as_str()))
                        + usize::from(desc.contains(w.as_str()))
                        + 2 * usize::from(title.contains(w.as_str()))
                })
                .sum::<usize>();
            (score, i, t)
        })
        .filter(|(s, _, _)| *s > 0 || words.is_empty())
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(limit).map(|(_, _, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, desc: &str) -> Tool {
        Tool::new(
            name.to_owned(),
            desc.to_owned(),
            Arc::new(Default::default()),
        )
    }

    #[test]
    fn ranking_prefers_names_and_filters_namespaces() {
        let tools = vec![
            tool("cmdb_getHost", "Get one host by name or IP"),
            tool("k8s_list_pods", "List pods in a namespace"),
            tool("k8s_get_pod_logs", "Logs of a pod"),
            tool("linux_runCommand", "Run a command; can list processes"),
        ];
        let hits: Vec<&str> = rank(&tools, "pods", None, "_", 10)
            .iter()
            .map(|t| t.name.as_ref())
            .collect();
        assert_eq!(hits, ["k8s_list_pods"]);
        let hits: Vec<&str> = rank(&tools, "pod logs", None, "_", 10)
            .iter()
            .map(|t| t.name.as_ref())
            .collect();
        assert_eq!(hits[0], "k8s_get_pod_logs");
        let hits: Vec<&str> = rank(&tools, "list", Some("linux"), "_", 10)
            .iter()
            .map(|t| t.name.as_ref())
            .collect();
        assert_eq!(hits, ["linux_runCommand"]);
        assert!(rank(&tools, "zzz", None, "_", 10).is_empty());
        assert_eq!(rank(&tools, "", None, "_", 2).len(), 2);
    }

    #[test]
    fn toolsets_admit_namespaces_and_globs_minus_excludes() {
        let v = View::toolset(&ToolsetConfig {
            name: "infra".into(),
            namespaces: vec!["cmdb".into()],
            include: vec!["master_getSystemStatus".into()],
            exclude: vec!["cmdb_listCiTypes".into()],
            roles: vec!["ops".into()],
        })
        .unwrap();
        assert!(v.admits("cmdb_getHost", "cmdb"));
        assert!(!v.admits("cmdb_listCiTypes", "cmdb"));
        assert!(v.admits("master_getSystemStatus", "master"));
        assert!(!v.admits("master_hello_world", "master"));
        assert!(!v.allows(&Identity::anonymous()));
        assert!(
            View::toolset(&ToolsetConfig {
                name: "discover".into(),
                namespaces: vec![],
                include: vec![],
                exclude: vec![],
                roles: vec![]
            })
            .is_err()
        );
    }
}
