//! The `[k8s]` config section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::access::RuleConfig;

/// The `[k8s]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct K8sConfig {
    /// kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config` when it exists).
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    pub context: Option<String>,
    /// API server URL; with `token_file` (and `ca_file`) instead of a kubeconfig.
    pub api_server: Option<String>,
    /// Bearer token file (a Docker secret or a projected service-account token).
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle for `api_server`.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS verification of `api_server` (off by default; never for production).
    pub insecure_skip_tls_verify: bool,
    /// Refuse every mutation, whatever the tool (dry runs still work).
    pub read_only: bool,
    /// Namespace globs the service may touch; empty means all.
    pub allowed_namespaces: Vec<String>,
    /// Namespace globs it may never touch (wins over the allow-list).
    pub denied_namespaces: Vec<String>,
    /// Kinds (or plurals) refused for every tool, e.g. `["secrets"]`.
    pub denied_kinds: Vec<String>,
    /// Mutations need an approval token (dry runs never do).
    pub approve_mutations: bool,
    /// Per-identity namespace rules; none means the lists above alone decide.
    pub rule: Vec<RuleConfig>,
    /// Field manager for server-side apply.
    pub field_manager: String,
    /// Most items a list returns.
    pub max_items: u32,
    /// Log bytes returned at most (`max_bytes` may lower it).
    pub max_log_bytes: usize,
    pub default_tail_lines: i64,
    /// Seconds between cluster health checks.
    pub health_interval_secs: u64,
}

impl Default for K8sConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            api_server: None,
            token_file: None,
            ca_file: None,
            insecure_skip_tls_verify: false,
            read_only: false,
            allowed_namespaces: Vec::new(),
            denied_namespaces: Vec::new(),
            denied_kinds: Vec::new(),
            approve_mutations: true,
            rule: Vec::new(),
            field_manager: "mcp-k8s".to_owned(),
            max_items: 500,
            max_log_bytes: 64 * 1024,
            default_tail_lines: 200,
            health_interval_secs: 30,
        }
    }
}
