//! secrets MCP service (port 8013, namespace `secrets`): KeePass, Azure Key Vault and read-only
//! file/env backends behind one trait, each secret addressed as `<backend>/<path>`. Access rules per
//! identity and role, a rate limit on reads, an audit record for every access, and no secret value in
//! logs, metrics, audit records, errors or `Debug` output.

pub mod acl;
pub mod azure;
pub mod backend;
mod config;
mod demo;
pub mod error;
mod gate;
pub mod keepass;
pub mod local;
pub mod tools;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::num::NonZeroU32;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mcp_runtime::backup::{DataFiles, DataItem, DataKind};
use mcp_runtime::{BoxError, BuildContext, Check, HealthProbe, McpService};
use prometheus::{IntCounterVec, Opts};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};
use serde_json::{Value, json};

use crate::acl::Acl;
use crate::backend::{BackendState, SecretBackend};

pub use crate::config::{BackendConfig, BackendKind, SecretsConfig};
pub use crate::demo::ensure_demo;
use crate::demo::valid_backend_name;
pub use crate::error::SecretsError;
pub use crate::tools::*;

/// The service: backends, rules, limiter, audit sink and metrics shared by every session.
pub struct Secrets {
    config: SecretsConfig,
    backends: Vec<Arc<dyn SecretBackend>>,
    acl: Acl,
    limiter: DefaultKeyedRateLimiter<String>,
    audit_file: Option<Mutex<std::fs::File>>,
    access: IntCounterVec,
    metrics: mcp_runtime::Metrics,
    tools: ToolRouter<SecretsHandler>,
}

impl McpService for Secrets {
    const NAME: &'static str = "secrets";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "secrets";
    const DEFAULT_PORT: u16 = 8013;
    type Config = SecretsConfig;
    type Handler = SecretsHandler;

    async fn build(mut config: SecretsConfig, ctx: BuildContext) -> Result<Self, BoxError> {
        if config.backend.is_empty() && config.demo_if_empty {
            config
                .backend
                .push(ensure_demo(&config.demo_path, &config.demo_password_file)?);
        }
        let acl = Acl::new(&config.rule)?;
        let mut backends: Vec<Arc<dyn SecretBackend>> = Vec::new();
        for b in &config.backend {
            if !valid_backend_name(&b.name) {
                return Err(format!(
                    "secrets.backend name `{}` must be 1-32 characters of letters, digits, '_' and '-'",
                    b.name
                )
                .into());
            }
            if backends.iter().any(|x| x.name() == b.name) {
                return Err(format!("secrets.backend `{}` is configured twice", b.name).into());
            }
            let backend: Arc<dyn SecretBackend> = match &b.store {
                BackendKind::Keepass(c) => {
                    Arc::new(keepass::Keepass::open(&b.name, c.clone()).await)
                }
                BackendKind::AzureKeyVault(c) => {
                    Arc::new(azure::AzureVault::new(&b.name, c.clone()))
                }
                BackendKind::File(c) => Arc::new(local::Local::new(
                    &b.name,
                    local::Source::Dir(c.dir.clone()),
                )),
                BackendKind::Env(c) => Arc::new(local::Local::new(
                    &b.name,
                    local::Source::Env(c.prefix.clone()),
                )),
            };
            backends.push(backend);
        }
        let per_minute = NonZeroU32::new(config.get_per_minute)
            .ok_or("secrets.get_per_minute must be at least 1")?;
        let burst = NonZeroU32::new(config.get_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst));
        let audit_file = if config.audit_file.as_os_str().is_empty() {
            None
        } else {
            if let Some(dir) = config
                .audit_file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&config.audit_file)
                .map_err(|e| {
                    format!(
                        "cannot open audit file {}: {e}",
                        config.audit_file.display()
                    )
                })?;
            Some(Mutex::new(f))
        };
        let access = IntCounterVec::new(
            Opts::new(
                "mcp_secret_access_total",
                "Secret accesses by backend, action and decision",
            ),
            &["backend", "action", "decision"],
        )?;
        ctx.metrics.registry().register(Box::new(access.clone()))?;
        for b in &backends {
            let st = b.status();
            tracing::info!(
                message = "Secret backend configured.",
                backend = %b.name(),
                kind = b.kind(),
                state = ?st.state,
                detail = st.detail.as_deref().unwrap_or(""),
            );
        }
        Ok(Self {
            config,
            backends,
            acl,
            limiter,
            audit_file,
            access,
            metrics: ctx.metrics.clone(),
            tools: tools::routers(),
        })
    }

    fn handler(self: &Arc<Self>) -> SecretsHandler {
        SecretsHandler {
            svc: self.clone(),
            tool_router: self.tools.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }

    /// The KeePass databases (the demo one when it is what the service would open) and the
    /// access log. Key and password files are not data: they stay in the secret store.
    fn data(config: &SecretsConfig) -> DataFiles {
        let mut items: Vec<DataItem> = config
            .backend
            .iter()
            .filter_map(|b| match &b.store {
                BackendKind::Keepass(k) => Some(DataItem::new(
                    format!("keepass-{}", b.name),
                    &k.path,
                    DataKind::File,
                )),
                _ => None,
            })
            .collect();
        if config.backend.is_empty() && config.demo_if_empty {
            items.push(DataItem::new(
                "keepass-demo",
                &config.demo_path,
                DataKind::File,
            ));
        }
        let has_log = !config.audit_file.as_os_str().is_empty();
        if has_log {
            items.push(DataItem::new(
                "audit",
                &config.audit_file,
                DataKind::AppendLog,
            ));
        }
        let anchor = if has_log {
            &config.audit_file
        } else {
            &config.demo_path
        };
        DataFiles {
            lock: Some(anchor.with_file_name(".lock")),
            items,
        }
    }
}

impl HealthProbe for Secrets {
    fn checks(&self) -> BTreeMap<String, Check> {
        let mut checks = BTreeMap::new();
        if self.backends.is_empty() {
            checks.insert(
                "backends".to_owned(),
                Check::degraded(
                    "no secret backend configured: add [[secrets.backend]]",
                    Value::Null,
                ),
            );
        }
        for b in &self.backends {
            let st = b.status();
            let details = json!({ "kind": b.kind(), "writable": b.writable() });
            let check = match st.state {
                BackendState::Ready => Check::healthy(details),
                BackendState::Degraded | BackendState::Unavailable => {
                    Check::degraded(st.detail.unwrap_or_default(), details)
                }
            };
            checks.insert(format!("backend:{}", b.name()), check);
        }
        checks
    }

    fn ready(&self) -> bool {
        true
    }
}

/// The per-session handler.
#[derive(Clone)]
pub struct SecretsHandler {
    svc: Arc<Secrets>,
    tool_router: ToolRouter<Self>,
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SecretsHandler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("secrets", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Secrets from KeePass, Azure Key Vault and local files. Addresses are <backend>/<path> (listBackends, listSecrets). listSecrets never returns values; getSecret does, within your access rules; setSecret/deleteSecret need a human approval."
                .to_owned(),
        );
        info
    }
}
