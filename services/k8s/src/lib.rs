//! k8s MCP service (port 8008, namespace `k8s`): Kubernetes through kube-rs with access checked per
//! action at execution time (namespace allow/deny lists, denied kinds, read-only mode, per-identity
//! rules), approval tokens for mutations, and redaction of Secret data, last-applied annotations,
//! tokens and kubeconfig credentials in everything returned.

pub mod access;
mod client;
mod config;
pub mod error;
mod gate;
pub mod redact;
mod render;
pub mod tools;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kube::Client;
use kube::discovery::Discovery;
use mcp_runtime::{BoxError, BuildContext, Check, HealthProbe, McpService};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};
use serde_json::{Value, json};

use crate::access::Access;
use crate::client::{ClusterState, build_client, describe_error};
pub use crate::config::K8sConfig;
pub use crate::error::K8sError;
pub use crate::tools::*;

/// The service: the client (if a cluster is configured), access settings, discovery cache.
pub struct K8s {
    config: K8sConfig,
    client: Result<Client, K8sError>,
    metrics: mcp_runtime::Metrics,
    access: Access,
    state: Arc<RwLock<ClusterState>>,
    discovery: tokio::sync::Mutex<Option<(Instant, Arc<Discovery>)>>,
    tools: ToolRouter<K8sHandler>,
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
            metrics: ctx.metrics.clone(),
            access,
            state,
            discovery: tokio::sync::Mutex::new(None),
            tools: tools::routers(),
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
            Err(e) => Check::degraded(e.to_string(), Value::Null),
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

/// The per-session handler.
#[derive(Clone)]
pub struct K8sHandler {
    svc: Arc<K8s>,
    tool_router: ToolRouter<Self>,
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
