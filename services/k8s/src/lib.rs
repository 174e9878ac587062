//! k8s MCP service (port 8008, namespace `k8s`): Kubernetes through kube-rs with access checked per
//! action at execution time (namespace allow/deny lists, denied kinds, read-only mode, per-identity
//! rules), approval tokens for mutations, and redaction of Secret data, last-applied annotations,
//! tokens and kubeconfig credentials in everything returned.

pub mod access;
pub mod redact;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Client, Config};
use mcp_runtime::approval::approval_required;
use mcp_runtime::{BoxError, BuildContext, CallerContext, Check, HealthProbe, McpService};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock as Content, Implementation, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::access::{Access, RuleConfig, Verb};
use crate::redact::{age, at_path, project, redact};

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

/// What the last health check found.
#[derive(Debug, Clone, Default)]
struct ClusterState {
    version: Option<String>,
    error: Option<String>,
}

/// The service: the client (if a cluster is configured), access settings, discovery cache.
pub struct K8s {
    config: K8sConfig,
    client: Result<Client, String>,
    access: Access,
    state: Arc<RwLock<ClusterState>>,
    discovery: tokio::sync::Mutex<Option<(Instant, Arc<Discovery>)>>,
    tools: ToolRouter<K8sHandler>,
}

async fn build_client(cfg: &K8sConfig) -> Result<Client, String> {
    let mut config = if let Some(url) = cfg.api_server.as_deref().filter(|u| !u.is_empty()) {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("k8s.api_server `{url}` is not a URL: {e}"))?;
        let mut c = Config::new(uri);
        if let Some(t) = &cfg.token_file {
            let raw = std::fs::read_to_string(t)
                .map_err(|e| format!("cannot read k8s.token_file {}: {e}", t.display()))?;
            let token = raw.trim();
            if token.is_empty() {
                return Err(format!("k8s.token_file {} is empty", t.display()));
            }
            if token.len() == raw.len() {
                // Re-read by the client, so a rotated (projected) token is picked up.
                c.auth_info.token_file = Some(t.display().to_string());
            } else {
                // A file written with a trailing newline (echo > file) cannot go into a header as is.
                c.auth_info.token = Some(secrecy::SecretString::from(token.to_owned()));
            }
        }
        c.root_cert_file = cfg.ca_file.clone();
        c.accept_invalid_certs = cfg.insecure_skip_tls_verify;
        c
    } else {
        let path = cfg
            .kubeconfig
            .clone()
            .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".kube/config"))
                    .filter(|p| p.exists())
            });
        match path {
            Some(p) => {
                let kc = Kubeconfig::read_from(&p)
                    .map_err(|e| format!("cannot read kubeconfig {}: {e}", p.display()))?;
                let opts = KubeConfigOptions {
                    context: cfg.context.clone(),
                    ..KubeConfigOptions::default()
                };
                Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| format!("kubeconfig {}: {e}", p.display()))?
            }
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                Config::incluster().map_err(|e| format!("in-cluster configuration: {e}"))?
            }
            None => {
                return Err("no cluster configured: set k8s.kubeconfig (or KUBECONFIG), k8s.api_server + k8s.token_file, or run in a pod".to_owned());
            }
        }
    };
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))
}

impl McpService for K8s {
    const NAME: &'static str = "k8s";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "k8s";
    const DEFAULT_PORT: u16 = 8008;
    type Config = K8sConfig;
    type Handler = K8sHandler;

    async fn build(config: K8sConfig, ctx: BuildContext) -> Result<Self, BoxError> {
        let access = Access::new(
            &config.allowed_namespaces,
            &config.denied_namespaces,
            &config.denied_kinds,
            config.read_only,
            &config.rule,
        )?;
        let client = build_client(&config).await;
        let state = Arc::new(RwLock::new(ClusterState::default()));
        match &client {
            Ok(c) => {
                let c = c.clone();
                let st = state.clone();
                let every = Duration::from_secs(config.health_interval_secs.max(1));
                let shutdown = ctx.shutdown.clone();
                tokio::spawn(async move {
                    loop {
                        let probe =
                            tokio::time::timeout(Duration::from_secs(10), c.apiserver_version())
                                .await;
                        let next = match probe {
                            Ok(Ok(info)) => ClusterState {
                                version: Some(info.git_version),
                                error: None,
                            },
                            Ok(Err(e)) => ClusterState {
                                version: None,
                                error: Some(describe_error(&e)),
                            },
                            Err(_) => ClusterState {
                                version: None,
                                error: Some(
                                    "the API server did not answer /version in 10 s".to_owned(),
                                ),
                            },
                        };
                        if let Ok(mut s) = st.write() {
                            *s = next;
                        }
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(every) => {}
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(message = "No Kubernetes cluster; k8s tools will answer with the reason.", error = %e)
            }
        }
        Ok(Self {
            config,
            client,
            access,
            state,
            discovery: tokio::sync::Mutex::new(None),
            tools: K8sHandler::tool_router(),
        })
    }

    fn handler(self: &Arc<Self>) -> K8sHandler {
        K8sHandler {
            svc: self.clone(),
            tool_router: self.tools.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }
}

impl HealthProbe for K8s {
    fn checks(&self) -> BTreeMap<String, Check> {
        let mut checks = BTreeMap::new();
        let check = match &self.client {
            Err(e) => Check::degraded(e.clone(), Value::Null),
            Ok(_) => {
                let s = self.state.read().map(|s| s.clone()).unwrap_or_default();
                match (s.version, s.error) {
                    (Some(v), _) => Check::healthy(
                        json!({ "server_version": v, "read_only": self.config.read_only }),
                    ),
                    (None, Some(e)) => {
                        Check::degraded(format!("cluster unreachable: {e}"), Value::Null)
                    }
                    (None, None) => Check::degraded("cluster not checked yet", Value::Null),
                }
            }
        };
        checks.insert("cluster".to_owned(), check);
        checks
    }

    fn ready(&self) -> bool {
        true
    }
}

/// A Kubernetes API error as a text a person can act on.
fn describe_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let hint = match s.code {
                401 => {
                    "the API server rejected the credentials: check the token or kubeconfig user"
                }
                403 => {
                    "RBAC forbids this for the service's account: grant the verb on the resource or use another namespace"
                }
                404 => "no such resource",
                409 => {
                    "conflict: another field manager owns these fields (apply with force=true to take them over) or the object changed meanwhile"
                }
                422 => "the object is invalid",
                429 => "the API server is throttling requests; retry later",
                500..=599 => "the API server failed; retry later or check its logs",
                _ => "",
            };
            format!(
                "Kubernetes API {} {}: {}{}{}",
                s.code,
                s.reason,
                s.message,
                if hint.is_empty() { "" } else { " — " },
                hint
            )
        }
        other => format!("Kubernetes API request failed: {other}"),
    }
}

impl K8s {
    fn client(&self) -> Result<&Client, String> {
        self.client
            .as_ref()
            .map_err(|e| format!("the k8s service has no cluster: {e}"))
    }

    async fn discovery(&self) -> Result<Arc<Discovery>, String> {
        let mut cache = self.discovery.lock().await;
        if let Some((at, d)) = cache.as_ref()
            && at.elapsed() < Duration::from_secs(300)
        {
            return Ok(d.clone());
        }
        let d = Arc::new(
            Discovery::new(self.client()?.clone())
                .run()
                .await
                .map_err(|e| describe_error(&e))?,
        );
        *cache = Some((Instant::now(), d.clone()));
        Ok(d)
    }

    /// Finds a resource type by kind, plural or short name (`Deployment`, `deployments`, `deploy`).
    async fn resolve(
        &self,
        kind: &str,
        api_version: Option<&str>,
    ) -> Result<(ApiResource, ApiCapabilities), String> {
        let wanted = short_name(&kind.to_ascii_lowercase()).to_owned();
        let d = self.discovery().await?;
        let mut found = Vec::new();
        for g in d.groups() {
            for (ar, caps) in g.recommended_resources() {
                let hit = ar.kind.eq_ignore_ascii_case(&wanted) || ar.plural == wanted;
                if hit && api_version.is_none_or(|v| v == ar.api_version) {
                    found.push((ar, caps));
                }
            }
        }
        // The core and built-in groups win over same-named custom resources.
        found.sort_by_key(|(ar, _)| (!ar.group.is_empty(), ar.group.contains('.')));
        found.into_iter().next().ok_or_else(|| {
            format!(
                "unknown kind `{kind}`{}: the API server lists no such resource",
                api_version.map(|v| format!(" in {v}")).unwrap_or_default()
            )
        })
    }

    fn dynamic_api(
        &self,
        ar: &ApiResource,
        caps: &ApiCapabilities,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>, String> {
        let client = self.client()?.clone();
        Ok(match (&caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client, ns, ar),
            _ => Api::all_with(client, ar),
        })
    }

    /// A listing across every namespace: only the kind is checked here; items are filtered by
    /// the namespaces the caller may see.
    fn listing_all(
        &self,
        caller: &CallerContext,
        tool: &str,
        kind: &str,
        plural: &str,
    ) -> Result<(), String> {
        self.access.check_kind(kind, plural).map_err(|denied| {
            audit(
                caller,
                tool,
                None,
                &format!("list {plural} in every namespace"),
                "denied",
            );
            format!("refused: {denied}")
        })
    }

    /// Checks access and, for mutations, the approval. `Ok(None)` means go on.
    #[allow(clippy::too_many_arguments)] // one call per tool, each naming every part of its action
    fn gate(
        &self,
        caller: &CallerContext,
        tool: &str,
        verb: Verb,
        namespace: Option<&str>,
        kind: Option<(&str, &str)>,
        dry_run: bool,
        what: &str,
    ) -> Result<Option<CallToolResult>, String> {
        if let Err(denied) = self
            .access
            .check(&caller.identity, verb, namespace, kind, dry_run)
        {
            audit(caller, tool, namespace, what, "denied");
            return Err(format!("refused: {denied}"));
        }
        if verb == Verb::Write
            && !dry_run
            && self.config.approve_mutations
            && caller.approval.is_none()
        {
            audit(caller, tool, namespace, what, "approval_required");
            let mut reason = format!(
                "{what} changes the cluster and needs a human approval (dry_run=true does not)"
            );
            if let Some(e) = &caller.approval_error {
                reason.push_str(&format!(" (the approval token sent was refused: {e})"));
            }
            let mut details = Map::new();
            details.insert("action".into(), json!(what));
            if let Some(ns) = namespace {
                details.insert("namespace".into(), json!(ns));
            }
            return Ok(Some(approval_required(tool, &reason, details)));
        }
        Ok(None)
    }
}

fn short_name(k: &str) -> &str {
    match k {
        "po" | "pod" => "pods",
        "deploy" | "deployment" => "deployments",
        "svc" | "service" => "services",
        "ns" | "namespace" => "namespaces",
        "cm" | "configmap" => "configmaps",
        "sts" | "statefulset" => "statefulsets",
        "ds" | "daemonset" => "daemonsets",
        "rs" | "replicaset" => "replicasets",
        "ev" | "event" => "events",
        "no" | "node" => "nodes",
        "sa" | "serviceaccount" => "serviceaccounts",
        "ing" | "ingress" => "ingresses",
        "pvc" => "persistentvolumeclaims",
        "pv" => "persistentvolumes",
        "cj" => "cronjobs",
        other => other,
    }
}

fn audit(caller: &CallerContext, tool: &str, namespace: Option<&str>, what: &str, decision: &str) {
    tracing::info!(
        target: "audit",
        message = "Kubernetes action audited.",
        tool,
        namespace = namespace.unwrap_or(""),
        action = what,
        decision,
        identity = %caller.identity.name,
        correlation_id = %caller.correlation_id,
        approval_id = caller.approval.as_ref().map(|a| a.id.as_str()).unwrap_or(""),
    );
}

/// A result with a compact text table for people and the same rows as structured content.
fn table_result(columns: &[&str], rows: &[Vec<String>], structured: Value) -> CallToolResult {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut text = line(columns.to_vec());
    for r in rows {
        text.push('\n');
        text.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        text.push_str("\n(none)");
    }
    let mut result = CallToolResult::structured(structured);
    result.content = vec![Content::text(text)];
    result
}

fn summarize_pod(p: &Pod) -> Value {
    let status = p.status.as_ref();
    let statuses = status.and_then(|s| s.container_statuses.as_ref());
    let total = p.spec.as_ref().map_or(0, |s| s.containers.len());
    let ready = statuses.map_or(0, |cs| cs.iter().filter(|c| c.ready).count());
    let restarts: i32 = statuses.map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
    let created = p
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string());
    json!({
        "namespace": p.metadata.namespace,
        "name": p.metadata.name,
        "phase": status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        "ready": format!("{ready}/{total}"),
        "restarts": restarts,
        "age": age(created.as_deref()),
        "node": p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "ip": status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
    })
}

/// Arguments of `list_pods`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPodsArgs {
    /// Namespace (default "default"); "*" for every namespace you may see.
    pub namespace: Option<String>,
    /// Label selector, e.g. "app=web,tier!=db".
    pub label_selector: Option<String>,
    /// Field selector, e.g. "status.phase=Running".
    pub field_selector: Option<String>,
    /// At most this many pods.
    pub limit: Option<u32>,
}

/// Arguments of `get_pod_logs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    pub namespace: Option<String>,
    pub pod: String,
    /// Container (required when the pod has several).
    pub container: Option<String>,
    /// Last N lines (default 200).
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// Logs of the previous (crashed) container instance.
    pub previous: Option<bool>,
    /// Keep only lines containing this text (case-sensitive).
    pub grep: Option<String>,
    /// Byte cap (default and maximum: the configured max_log_bytes).
    pub max_bytes: Option<usize>,
}

/// Arguments of `list_resources`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListResourcesArgs {
    /// Kind, plural or short name: "Deployment", "deployments", "deploy", "cm", a CRD kind...
    pub kind: String,
    /// "apps/v1", "v1", ... when the kind name is ambiguous.
    pub api_version: Option<String>,
    /// Kubernetes' own spelling of `api_version`.
    #[serde(rename = "apiVersion")]
    pub api_version_native: Option<String>,
    /// Namespace (default "default"; ignored for cluster-scoped kinds); "*" for all you may see.
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Dotted paths to return per item, e.g. ["spec.replicas","status.readyReplicas"].
    pub fields: Option<Vec<String>>,
    pub limit: Option<u32>,
}

/// Arguments of `get_resource`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetResourceArgs {
    pub kind: String,
    pub name: String,
    /// "apps/v1", "v1", ... when the kind name is ambiguous.
    pub api_version: Option<String>,
    /// Kubernetes' own spelling of `api_version`.
    #[serde(rename = "apiVersion")]
    pub api_version_native: Option<String>,
    /// Namespace (default "default"; ignored for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Dotted paths to return instead of the whole object.
    pub fields: Option<Vec<String>>,
}

/// Arguments of `list_events`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsArgs {
    pub namespace: Option<String>,
    /// Field selector, e.g. "involvedObject.name=web-1,type=Warning".
    pub field_selector: Option<String>,
    pub limit: Option<u32>,
}

/// Arguments of `apply_manifest`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyArgs {
    /// One or more YAML documents (separated by ---) or a JSON object / List.
    pub manifest: String,
    /// Namespace for namespaced objects that name none (default "default").
    pub namespace: Option<String>,
    /// Ask the server to validate and compute the result without changing anything.
    pub dry_run: Option<bool>,
    /// Take over fields owned by other managers.
    pub force: Option<bool>,
}

/// Arguments of `scale_deployment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleArgs {
    pub namespace: Option<String>,
    pub name: String,
    pub replicas: i32,
    pub dry_run: Option<bool>,
}

/// Arguments of `rollout_restart`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    pub namespace: Option<String>,
    pub name: String,
    /// "deployment" (default), "statefulset" or "daemonset".
    pub kind: Option<String>,
    pub dry_run: Option<bool>,
}

/// Arguments of `delete_resource`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    pub kind: String,
    pub name: String,
    /// "apps/v1", "v1", ... when the kind name is ambiguous.
    pub api_version: Option<String>,
    /// Kubernetes' own spelling of `api_version`.
    #[serde(rename = "apiVersion")]
    pub api_version_native: Option<String>,
    pub namespace: Option<String>,
    pub dry_run: Option<bool>,
}

/// The per-session handler.
#[derive(Clone)]
pub struct K8sHandler {
    svc: Arc<K8s>,
    tool_router: ToolRouter<Self>,
}

/// The API version a call names, in either spelling (`api_version` or Kubernetes' `apiVersion`).
fn api_version<'a>(
    snake: &'a Option<String>,
    native: &'a Option<String>,
) -> Result<Option<&'a str>, String> {
    match (snake.as_deref(), native.as_deref()) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "`api_version` ({a}) and `apiVersion` ({b}) disagree; give one"
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn ns_or_default(ns: Option<&str>) -> String {
    ns.filter(|n| !n.is_empty()).unwrap_or("default").to_owned()
}

fn list_params(labels: Option<&str>, fields: Option<&str>, limit: u32) -> ListParams {
    let mut lp = ListParams::default().limit(limit);
    if let Some(l) = labels.filter(|l| !l.is_empty()) {
        lp = lp.labels(l);
    }
    if let Some(f) = fields.filter(|f| !f.is_empty()) {
        lp = lp.fields(f);
    }
    lp
}

/// Splits a manifest into documents (YAML stream, or JSON object/List).
fn documents(manifest: &str) -> Result<Vec<Value>, String> {
    let trimmed = manifest.trim_start();
    let mut docs = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(trimmed)
            .map_err(|e| format!("manifest is not valid JSON: {e}"))?;
        match v {
            Value::Array(a) => docs.extend(a),
            v => docs.push(v),
        }
    } else {
        for (i, d) in serde_yaml_ng::Deserializer::from_str(manifest).enumerate() {
            let v = Value::deserialize(d)
                .map_err(|e| format!("document {} is not valid YAML: {e}", i + 1))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    // A List kind expands into its items.
    let mut out = Vec::new();
    for d in docs {
        if d.get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && let Some(items) = d.get("items").and_then(Value::as_array)
        {
            out.extend(items.iter().cloned());
        } else {
            out.push(d);
        }
    }
    if out.is_empty() {
        return Err("the manifest holds no documents".to_owned());
    }
    Ok(out)
}

#[tool_router]
impl K8sHandler {
    #[tool(
        name = "list_pods",
        description = "List pods in a namespace (default \"default\", \"*\" for all you may see) with label/field selectors: name, phase, ready containers, restarts, age, node, IP. Returns a compact table plus structured rows.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_pods(
        &self,
        Parameters(a): Parameters<ListPodsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let ns = ns_or_default(a.namespace.as_deref());
        let all = ns == "*";
        if !all
            && let Some(r) = self.svc.gate(
                &caller,
                "list_pods",
                Verb::Read,
                Some(&ns),
                Some(("Pod", "pods")),
                false,
                "list pods",
            )?
        {
            return Ok(r);
        }
        if all {
            self.svc.listing_all(&caller, "list_pods", "Pod", "pods")?;
        }
        let client = self.svc.client()?.clone();
        let api: Api<Pod> = if all {
            Api::all(client)
        } else {
            Api::namespaced(client, &ns)
        };
        let limit = a
            .limit
            .unwrap_or(self.svc.config.max_items)
            .clamp(1, self.svc.config.max_items);
        let lp = list_params(
            a.label_selector.as_deref(),
            a.field_selector.as_deref(),
            limit,
        );
        let pods = api.list(&lp).await.map_err(|e| describe_error(&e))?;
        let rows: Vec<Value> = pods
            .items
            .iter()
            .filter(|p| {
                !all || p
                    .metadata
                    .namespace
                    .as_deref()
                    .is_some_and(|n| self.svc.access.namespace_visible(&caller.identity, n))
            })
            .map(summarize_pod)
            .collect();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let s = |k: &str| match &r[k] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    v => v.to_string(),
                };
                let mut row = vec![
                    s("name"),
                    s("ready"),
                    s("phase"),
                    s("restarts"),
                    s("age"),
                    s("node"),
                    s("ip"),
                ];
                if all {
                    row.insert(0, s("namespace"));
                }
                row
            })
            .collect();
        let mut columns = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "IP"];
        if all {
            columns.insert(0, "NAMESPACE");
        }
        let more = pods
            .metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty());
        Ok(table_result(
            &columns,
            &cells,
            json!({ "namespace": ns, "count": rows.len(), "truncated": more, "pods": rows }),
        ))
    }

    #[tool(
        name = "get_pod_logs",
        description = "Logs of a pod's container: tail lines (default 200), since seconds, previous instance, a grep filter and a byte cap. Output beyond the cap is cut with a marker.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_pod_logs(
        &self,
        Parameters(a): Parameters<LogsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let ns = ns_or_default(a.namespace.as_deref());
        if let Some(r) = self.svc.gate(
            &caller,
            "get_pod_logs",
            Verb::Read,
            Some(&ns),
            Some(("Pod", "pods")),
            false,
            "read pod logs",
        )? {
            return Ok(r);
        }
        let cap = a
            .max_bytes
            .unwrap_or(self.svc.config.max_log_bytes)
            .clamp(1, self.svc.config.max_log_bytes);
        let api: Api<Pod> = Api::namespaced(self.svc.client()?.clone(), &ns);
        let lp = LogParams {
            container: a.container.clone(),
            tail_lines: Some(a.tail_lines.unwrap_or(self.svc.config.default_tail_lines)),
            since_seconds: a.since_seconds,
            previous: a.previous.unwrap_or(false),
            // Fetch more than the cap when filtering, so grep has lines to search.
            limit_bytes: Some(
                i64::try_from(if a.grep.is_some() { cap * 8 } else { cap + 1 }).unwrap_or(i64::MAX),
            ),
            ..LogParams::default()
        };
        let text = api
            .logs(&a.pod, &lp)
            .await
            .map_err(|e| describe_error(&e))?;
        let filtered: String = match &a.grep {
            Some(g) => text
                .lines()
                .filter(|l| l.contains(g.as_str()))
                .map(|l| format!("{l}\n"))
                .collect(),
            None => text,
        };
        let (body, truncated) = mcp_runtime::output::truncate_text(&filtered, cap);
        let lines = body.lines().count();
        let mut r = CallToolResult::structured(json!({
            "namespace": ns, "pod": a.pod, "container": a.container, "lines": lines, "truncated": truncated, "logs": body,
        }));
        r.content = vec![Content::text(body)];
        Ok(r)
    }

    #[tool(
        name = "list_resources",
        description = "List objects of any kind the API server offers (found by discovery: kind, plural or short name; CRDs too) in a namespace (\"*\" for all you may see) with selectors. Each item: name, namespace, age, and the dotted `fields` you ask for. Secret values are never returned.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_resources(
        &self,
        Parameters(a): Parameters<ListResourcesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let (ar, caps) = self
            .svc
            .resolve(&a.kind, api_version(&a.api_version, &a.api_version_native)?)
            .await?;
        let namespaced = matches!(caps.scope, Scope::Namespaced);
        let ns = ns_or_default(a.namespace.as_deref());
        let all = ns == "*" || !namespaced;
        let scope_ns = (!all).then_some(ns.as_str());
        if namespaced && all {
            self.svc
                .listing_all(&caller, "list_resources", &ar.kind, &ar.plural)?;
        } else if let Some(r) = self.svc.gate(
            &caller,
            "list_resources",
            Verb::Read,
            scope_ns,
            Some((&ar.kind, &ar.plural)),
            false,
            &format!("list {}", ar.plural),
        )? {
            return Ok(r);
        }
        let api = self.svc.dynamic_api(&ar, &caps, scope_ns)?;
        let limit = a
            .limit
            .unwrap_or(self.svc.config.max_items)
            .clamp(1, self.svc.config.max_items);
        let list = api
            .list(&list_params(
                a.label_selector.as_deref(),
                a.field_selector.as_deref(),
                limit,
            ))
            .await
            .map_err(|e| describe_error(&e))?;
        let fields = a.fields.unwrap_or_default();
        let mut items = Vec::new();
        let mut rows = Vec::new();
        for obj in list.items {
            let obj_ns = obj.metadata.namespace.clone();
            if namespaced
                && all
                && !obj_ns
                    .as_deref()
                    .is_some_and(|n| self.svc.access.namespace_visible(&caller.identity, n))
            {
                continue;
            }
            let mut v = serde_json::to_value(&obj).unwrap_or(Value::Null);
            v["kind"] = json!(ar.kind);
            redact(&mut v);
            let created = at_path(&v, "metadata.creationTimestamp")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let mut item = json!({
                "name": obj.metadata.name,
                "namespace": obj_ns,
                "age": age(created.as_deref()),
            });
            if !fields.is_empty() {
                item["fields"] = project(&v, &fields);
            }
            rows.push(vec![
                obj_ns.unwrap_or_default(),
                item["name"].as_str().unwrap_or_default().to_owned(),
                item["age"].as_str().unwrap_or_default().to_owned(),
            ]);
            items.push(item);
        }
        let more = list
            .metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty());
        Ok(table_result(
            &["NAMESPACE", "NAME", "AGE"],
            &rows,
            json!({ "kind": ar.kind, "api_version": ar.api_version, "count": items.len(), "truncated": more, "items": items }),
        ))
    }

    #[tool(
        name = "get_resource",
        description = "Get one object of any kind (discovery: kind, plural or short name). Secret data/stringData, the last-applied-configuration annotation, tokens and kubeconfig credentials are replaced with a redaction marker; managedFields are dropped. `fields` returns only the dotted paths asked for.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_resource(
        &self,
        Parameters(a): Parameters<GetResourceArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let (ar, caps) = self
            .svc
            .resolve(&a.kind, api_version(&a.api_version, &a.api_version_native)?)
            .await?;
        let namespaced = matches!(caps.scope, Scope::Namespaced);
        let ns = ns_or_default(a.namespace.as_deref());
        let scope_ns = namespaced.then_some(ns.as_str());
        if let Some(r) = self.svc.gate(
            &caller,
            "get_resource",
            Verb::Read,
            scope_ns,
            Some((&ar.kind, &ar.plural)),
            false,
            &format!("get {} {}", ar.kind, a.name),
        )? {
            return Ok(r);
        }
        let api = self.svc.dynamic_api(&ar, &caps, scope_ns)?;
        let obj = api.get(&a.name).await.map_err(|e| describe_error(&e))?;
        let mut v = serde_json::to_value(&obj).unwrap_or(Value::Null);
        v["kind"] = json!(ar.kind);
        v["apiVersion"] = json!(ar.api_version);
        redact(&mut v);
        let body = match &a.fields {
            Some(f) if !f.is_empty() => project(&v, f),
            _ => v,
        };
        Ok(CallToolResult::structured(body))
    }

    #[tool(
        name = "list_events",
        description = "Events in a namespace, newest first (type, reason, object, message, count, age); filter with a field selector such as involvedObject.name=web-1 or type=Warning.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_events(
        &self,
        Parameters(a): Parameters<EventsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let ns = ns_or_default(a.namespace.as_deref());
        if let Some(r) = self.svc.gate(
            &caller,
            "list_events",
            Verb::Read,
            Some(&ns),
            Some(("Event", "events")),
            false,
            "list events",
        )? {
            return Ok(r);
        }
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.svc.client()?.clone(), &ns);
        let limit = a
            .limit
            .unwrap_or(self.svc.config.max_items)
            .clamp(1, self.svc.config.max_items);
        let list = api
            .list(&list_params(None, a.field_selector.as_deref(), limit))
            .await
            .map_err(|e| describe_error(&e))?;
        let mut events: Vec<(String, Value)> = list
            .items
            .iter()
            .map(|e| {
                let when = e
                    .last_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                    .or_else(|| {
                        e.metadata
                            .creation_timestamp
                            .as_ref()
                            .map(|t| t.0.to_string())
                    })
                    .unwrap_or_default();
                let obj = format!(
                    "{}/{}",
                    e.involved_object
                        .kind
                        .clone()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    e.involved_object.name.clone().unwrap_or_default()
                );
                (
                    when.clone(),
                    json!({
                        "type": e.type_, "reason": e.reason, "object": obj, "message": e.message,
                        "count": e.count, "last_seen": when, "age": age(Some(&when)),
                    }),
                )
            })
            .collect();
        events.sort_by(|a, b| b.0.cmp(&a.0));
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|(_, e)| {
                ["age", "type", "reason", "object", "message"]
                    .iter()
                    .map(|k| e[*k].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect();
        let events: Vec<Value> = events.into_iter().map(|(_, v)| v).collect();
        Ok(table_result(
            &["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &rows,
            json!({ "namespace": ns, "count": events.len(), "events": events }),
        ))
    }

    #[tool(
        name = "list_namespaces",
        description = "Namespaces you may use (the allow/deny lists and your rules applied), with phase and age.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_namespaces(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.svc.client()?.clone());
        let list = api
            .list(&ListParams::default().limit(self.svc.config.max_items))
            .await
            .map_err(|e| describe_error(&e))?;
        let mut rows = Vec::new();
        let mut items = Vec::new();
        for n in list.items {
            let name = n.metadata.name.clone().unwrap_or_default();
            if !self.svc.access.namespace_visible(&caller.identity, &name) {
                continue;
            }
            let phase = n.status.and_then(|s| s.phase).unwrap_or_default();
            let created = n.metadata.creation_timestamp.map(|t| t.0.to_string());
            let a = age(created.as_deref());
            rows.push(vec![name.clone(), phase.clone(), a.clone()]);
            items.push(json!({ "name": name, "phase": phase, "age": a }));
        }
        Ok(table_result(
            &["NAME", "STATUS", "AGE"],
            &rows,
            json!({ "count": items.len(), "namespaces": items }),
        ))
    }

    #[tool(
        name = "apply_manifest",
        description = "Server-side apply of one or more YAML documents (or JSON / a List) with this service's field manager. Reports each document: kind, name, namespace, created/configured/unchanged or the error. dry_run=true asks the server to validate and compute the result without changing anything (needs no approval). A real apply needs an approval.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn apply_manifest(
        &self,
        Parameters(a): Parameters<ApplyArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let dry_run = a.dry_run.unwrap_or(false);
        let docs = documents(&a.manifest)?;
        let default_ns = ns_or_default(a.namespace.as_deref());
        // Resolve and check every document before changing anything.
        let mut plan = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let n = i + 1;
            let api_version = d
                .get("apiVersion")
                .and_then(Value::as_str)
                .ok_or(format!("document {n}: no apiVersion"))?;
            let kind = d
                .get("kind")
                .and_then(Value::as_str)
                .ok_or(format!("document {n}: no kind"))?;
            let name = at_path(d, "metadata.name")
                .and_then(Value::as_str)
                .ok_or(format!("document {n} ({kind}): no metadata.name"))?;
            let (ar, caps) = self
                .svc
                .resolve(kind, Some(api_version))
                .await
                .map_err(|e| format!("document {n}: {e}"))?;
            let ns = matches!(caps.scope, Scope::Namespaced).then(|| {
                at_path(d, "metadata.namespace")
                    .and_then(Value::as_str)
                    .map_or(default_ns.clone(), str::to_owned)
            });
            if let Err(denied) = self.svc.access.check(
                &caller.identity,
                Verb::Write,
                ns.as_deref(),
                Some((&ar.kind, &ar.plural)),
                dry_run,
            ) {
                audit(
                    &caller,
                    "apply_manifest",
                    ns.as_deref(),
                    &format!("apply {kind} {name}"),
                    "denied",
                );
                return Err(format!(
                    "refused (document {n}, {kind} {name}): {denied}; nothing was applied"
                ));
            }
            plan.push((d.clone(), ar, caps, ns, name.to_owned()));
        }
        let what = format!(
            "apply {}",
            plan.iter()
                .map(|(_, ar, _, _, name)| format!("{} {name}", ar.kind))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(r) = self.svc.gate(
            &caller,
            "apply_manifest",
            Verb::Write,
            Some(&default_ns),
            None,
            dry_run,
            &what,
        )? {
            return Ok(r);
        }
        let mut pp = PatchParams::apply(&self.svc.config.field_manager);
        if a.force.unwrap_or(false) {
            pp = pp.force();
        }
        if dry_run {
            pp = pp.dry_run();
        }
        let mut results = Vec::new();
        let mut failed = 0;
        for (i, (doc, ar, caps, ns, name)) in plan.into_iter().enumerate() {
            let api = self.svc.dynamic_api(&ar, &caps, ns.as_deref())?;
            let before = api.get_opt(&name).await.ok().flatten();
            let mut body = doc.clone();
            if let (Some(ns), Some(meta)) =
                (&ns, body.get_mut("metadata").and_then(Value::as_object_mut))
            {
                meta.insert("namespace".into(), json!(ns));
            }
            let outcome = api.patch(&name, &pp, &Patch::Apply(&body)).await;
            let mut r =
                json!({ "document": i + 1, "kind": ar.kind, "name": name, "namespace": ns });
            match outcome {
                Ok(after) => {
                    let status = match (&before, dry_run) {
                        (None, true) => "would be created",
                        (Some(_), true) => "would be configured",
                        (None, false) => "created",
                        (Some(b), false)
                            if b.metadata.resource_version == after.metadata.resource_version =>
                        {
                            "unchanged"
                        }
                        (Some(_), false) => "configured",
                    };
                    r["status"] = json!(status);
                    if dry_run {
                        let mut v = serde_json::to_value(&after).unwrap_or(Value::Null);
                        v["kind"] = json!(ar.kind);
                        redact(&mut v);
                        r["server_result"] = v;
                    }
                }
                Err(e) => {
                    failed += 1;
                    r["status"] = json!("error");
                    r["error"] = json!(describe_error(&e));
                }
            }
            results.push(r);
        }
        audit(
            &caller,
            "apply_manifest",
            Some(&default_ns),
            &what,
            if dry_run { "dry_run" } else { "applied" },
        );
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    r["document"].to_string(),
                    r["kind"].as_str().unwrap_or_default().to_owned(),
                    r["namespace"].as_str().unwrap_or_default().to_owned(),
                    r["name"].as_str().unwrap_or_default().to_owned(),
                    r["status"].as_str().unwrap_or_default().to_owned(),
                    r["error"].as_str().unwrap_or_default().to_owned(),
                ]
            })
            .collect();
        let mut result = table_result(
            &["DOC", "KIND", "NAMESPACE", "NAME", "STATUS", "ERROR"],
            &rows,
            json!({ "dry_run": dry_run, "applied": results.len() - failed, "failed": failed, "documents": results }),
        );
        if failed > 0 {
            result.is_error = Some(true);
        }
        Ok(result)
    }

    #[tool(
        name = "scale_deployment",
        description = "Set a Deployment's replica count (the scale subresource). Needs an approval unless dry_run.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn scale_deployment(
        &self,
        Parameters(a): Parameters<ScaleArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        if a.replicas < 0 {
            return Err("replicas must be 0 or more".to_owned());
        }
        let ns = ns_or_default(a.namespace.as_deref());
        let dry_run = a.dry_run.unwrap_or(false);
        let what = format!("scale deployment {} to {}", a.name, a.replicas);
        if let Some(r) = self.svc.gate(
            &caller,
            "scale_deployment",
            Verb::Write,
            Some(&ns),
            Some(("Deployment", "deployments")),
            dry_run,
            &what,
        )? {
            return Ok(r);
        }
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.svc.client()?.clone(), &ns);
        let mut pp = PatchParams::default();
        if dry_run {
            pp = pp.dry_run();
        }
        let scale = api
            .patch_scale(
                &a.name,
                &pp,
                &Patch::Merge(json!({ "spec": { "replicas": a.replicas } })),
            )
            .await
            .map_err(|e| describe_error(&e))?;
        audit(
            &caller,
            "scale_deployment",
            Some(&ns),
            &what,
            if dry_run { "dry_run" } else { "scaled" },
        );
        Ok(CallToolResult::structured(json!({
            "namespace": ns, "name": a.name, "dry_run": dry_run,
            "replicas": scale.spec.and_then(|s| s.replicas),
            "current_replicas": scale.status.map(|s| s.replicas),
        })))
    }

    #[tool(
        name = "rollout_restart",
        description = "Restart a Deployment, StatefulSet or DaemonSet the way `kubectl rollout restart` does (a restartedAt annotation on the pod template). Needs an approval unless dry_run.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn rollout_restart(
        &self,
        Parameters(a): Parameters<RestartArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let ns = ns_or_default(a.namespace.as_deref());
        let dry_run = a.dry_run.unwrap_or(false);
        let kind = a
            .kind
            .as_deref()
            .unwrap_or("deployment")
            .to_ascii_lowercase();
        let (group_kind, plural) = match kind.as_str() {
            "deployment" | "deploy" | "deployments" => ("Deployment", "deployments"),
            "statefulset" | "sts" | "statefulsets" => ("StatefulSet", "statefulsets"),
            "daemonset" | "ds" | "daemonsets" => ("DaemonSet", "daemonsets"),
            other => {
                return Err(format!(
                    "rollout_restart works on deployment, statefulset or daemonset, not `{other}`"
                ));
            }
        };
        let what = format!("restart {group_kind} {}", a.name);
        if let Some(r) = self.svc.gate(
            &caller,
            "rollout_restart",
            Verb::Write,
            Some(&ns),
            Some((group_kind, plural)),
            dry_run,
            &what,
        )? {
            return Ok(r);
        }
        let (ar, caps) = self.svc.resolve(group_kind, Some("apps/v1")).await?;
        let api = self.svc.dynamic_api(&ar, &caps, Some(&ns))?;
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut pp = PatchParams::default();
        if dry_run {
            pp = pp.dry_run();
        }
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
        api.patch(&a.name, &pp, &Patch::Merge(&patch))
            .await
            .map_err(|e| describe_error(&e))?;
        audit(
            &caller,
            "rollout_restart",
            Some(&ns),
            &what,
            if dry_run { "dry_run" } else { "restarted" },
        );
        Ok(CallToolResult::structured(
            json!({ "namespace": ns, "kind": group_kind, "name": a.name, "restarted_at": now, "dry_run": dry_run }),
        ))
    }

    #[tool(
        name = "delete_resource",
        description = "Delete one object of any kind (discovery: kind, plural or short name). Needs an approval unless dry_run.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn delete_resource(
        &self,
        Parameters(a): Parameters<DeleteArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let dry_run = a.dry_run.unwrap_or(false);
        let (ar, caps) = self
            .svc
            .resolve(&a.kind, api_version(&a.api_version, &a.api_version_native)?)
            .await?;
        let ns = ns_or_default(a.namespace.as_deref());
        let scope_ns = matches!(caps.scope, Scope::Namespaced).then_some(ns.as_str());
        let what = format!("delete {} {}", ar.kind, a.name);
        if let Some(r) = self.svc.gate(
            &caller,
            "delete_resource",
            Verb::Write,
            scope_ns,
            Some((&ar.kind, &ar.plural)),
            dry_run,
            &what,
        )? {
            return Ok(r);
        }
        let api = self.svc.dynamic_api(&ar, &caps, scope_ns)?;
        let mut dp = DeleteParams::background();
        if dry_run {
            dp = dp.dry_run();
        }
        api.delete(&a.name, &dp)
            .await
            .map_err(|e| describe_error(&e))?;
        audit(
            &caller,
            "delete_resource",
            scope_ns,
            &what,
            if dry_run { "dry_run" } else { "deleted" },
        );
        Ok(CallToolResult::structured(
            json!({ "kind": ar.kind, "name": a.name, "namespace": scope_ns, "deleted": !dry_run, "dry_run": dry_run }),
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for K8sHandler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("k8s", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Kubernetes: list_pods, get_pod_logs, list_resources/get_resource for any kind, list_events, list_namespaces; apply_manifest, scale_deployment, rollout_restart and delete_resource change the cluster and need an approval (dry_run=true never does). Secret values are never returned."
                .to_owned(),
        );
        info
    }
}
