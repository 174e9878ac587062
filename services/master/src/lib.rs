//! The master gateway (port 8000): discovers every downstream MCP service, exposes their tools,
//! prompts and resources under namespaces, and guards every call with policy, rate limits, a
//! circuit breaker per service and an audit record.

pub mod approvals;
pub mod approvals_api;
pub mod audit;
pub mod config;
pub mod console;
pub mod db;
pub mod downstream;
pub mod gateway;
pub mod guard;
pub mod metrics;
pub mod namespace;
pub mod policy;
pub mod relay;
pub mod routing;
pub mod toolsets;
pub mod workflow;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_runtime::backup::{DataFiles, DataItem, DataKind};
use mcp_runtime::{BoxError, BuildContext, Check, HealthProbe, McpService};
use serde_json::json;

pub use config::MasterConfig;
use downstream::Downstream;
use gateway::Gateway;
use relay::MasterHandler;

/// How long start-up waits for every downstream's first connection attempt.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(10);

/// The master service.
pub struct Master {
    gateway: Arc<Gateway>,
    /// Ends the console's event streams at shutdown.
    shutdown: tokio_util::sync::CancellationToken,
}

impl Master {
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }
}

impl McpService for Master {
    const NAME: &'static str = "master";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "master";
    const DEFAULT_PORT: u16 = 8000;
    type Config = MasterConfig;
    type Handler = MasterHandler;

    async fn build(mut cfg: MasterConfig, ctx: BuildContext) -> Result<Self, BoxError> {
        cfg.add_seed_env(&|k| std::env::var(k).ok());
        for d in &mut cfg.downstream {
            d.inherit_client_tls(&ctx.client_tls);
            d.default_issuer.clone_from(&ctx.oauth_issuer);
        }
        cfg.validate()?;
        let policy = policy::Policy::new(&cfg.policy)?;
        let limits = policy::RateLimits::new(&cfg.rate_limit)?;
        let metrics = metrics::MasterMetrics::new(ctx.metrics.registry())?;
        let paths = cfg.store_paths();
        let audit = audit::Audit::open(&paths.audit, metrics.audit_rows.clone(), cfg.audit_log)?;
        let assertion_key = cfg
            .identity_key_file
            .as_deref()
            .map(mcp_runtime::assertion::AssertionKey::load)
            .transpose()?;
        let downstreams = cfg
            .downstream
            .iter()
            .enumerate()
            .map(|(i, d)| Downstream::new(d.clone(), i, cfg.circuit.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let health = Duration::from_millis(cfg.health_interval_ms);
        let reconnect = Duration::from_millis(cfg.reconnect_max_ms);
        // Approvals need a key shared with the services (their approval key defaults to their
        // identity key, as master's does).
        let approvals = match cfg
            .approvals
            .key_file
            .as_deref()
            .or(cfg.identity_key_file.as_deref())
        {
            Some(path) => {
                let key = mcp_runtime::assertion::AssertionKey::load(path)?;
                let store = approvals::Approvals::open(cfg.approvals.clone(), &paths.approvals)?;
                Some((Arc::new(store), key))
            }
            None => None,
        };
        let engine = workflow::Engine::open(
            cfg.workflows.clone(),
            &paths.workflows,
            metrics.clone(),
            &cfg.separator,
        )?;
        let pins = guard::pins::Pins::open(&paths.pins, cfg.pins_file.as_deref())?;
        let gateway = Gateway::new(
            cfg,
            downstreams,
            policy,
            limits,
            gateway::Stores { audit, pins },
            metrics,
            gateway::Signing {
                identity: assertion_key,
                approvals,
            },
        );
        let engine = Arc::new(engine.bind(Arc::downgrade(&gateway)));
        gateway.set_workflows(engine.clone());
        for d in gateway.downstreams() {
            let upstream: std::sync::Weak<dyn downstream::Upstream> =
                Arc::downgrade(&(gateway.clone() as Arc<dyn downstream::Upstream>));
            tokio::spawn(
                d.clone()
                    .supervise(upstream, health, reconnect, ctx.shutdown.clone()),
            );
        }
        if let Some(source) = ctx.config_source.clone()
            && !gateway.routes().is_empty()
        {
            tokio::spawn(watch_route_weights(
                Arc::downgrade(&gateway),
                source,
                health,
                ctx.shutdown.clone(),
            ));
        }
        {
            let limits = gateway.limits().clone();
            let shutdown = ctx.shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(60)) => limits.shrink(),
                        () = shutdown.cancelled() => break,
                    }
                }
            });
        }
        {
            // Keep the up and circuit gauges current between catalog changes.
            let g = Arc::downgrade(&gateway);
            let shutdown = ctx.shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => break,
                    }
                    let Some(g) = g.upgrade() else { break };
                    g.metrics.refresh_downstreams(g.downstreams());
                }
            });
        }
        // Give every downstream one chance to connect, so that clients connecting right after
        // start-up see the full tool list and naming problems are start-up errors.
        let deadline = Instant::now() + FIRST_CONNECT_WAIT;
        while Instant::now() < deadline
            && gateway
                .downstreams()
                .iter()
                .any(|d| d.status().last_error.as_deref() == Some("not connected yet"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A supervisor marks its downstream connected just before it rebuilds the index; rebuild
        // once more so the start-up checks and the first clients see every catalog that arrived.
        gateway.catalog_changed();
        let problems = gateway.index().problems.clone();
        if !problems.is_empty() {
            ctx.shutdown.cancel();
            return Err(format!("tool naming problems: {}", problems.join("; ")).into());
        }
        for d in gateway.downstreams() {
            if !d.is_up() {
                tracing::warn!(
                    message = "Downstream not reachable at start-up; it joins when it comes up.",
                    downstream = %d.name(),
                    error = d.status().last_error.unwrap_or_default()
                );
            }
        }
        gateway.metrics.refresh_downstreams(gateway.downstreams());
        gateway.refresh_pending();
        // Runs a previous master left in progress continue from their checkpoints.
        engine.resume_all().await;
        Ok(Self {
            gateway,
            shutdown: ctx.shutdown.clone(),
        })
    }

    fn handler(self: &Arc<Self>) -> MasterHandler {
        MasterHandler::new(self.gateway.clone(), toolsets::View::all())
    }

    fn endpoints(self: &Arc<Self>) -> Vec<String> {
        self.gateway
            .views()
            .iter()
            .filter(|v| !v.name.is_empty())
            .map(|v| v.name.clone())
            .collect()
    }

    fn endpoint_handler(self: &Arc<Self>, name: &str) -> MasterHandler {
        let view = self
            .gateway
            .views()
            .iter()
            .find(|v| v.name == name)
            .cloned()
            .unwrap_or_else(toolsets::View::all);
        MasterHandler::new(self.gateway.clone(), view)
    }

    fn api(self: &Arc<Self>) -> Option<axum::Router> {
        Some(approvals_api::router(self.gateway.clone()))
    }

    fn pages(self: &Arc<Self>) -> Option<axum::Router> {
        console::router(self.gateway.clone(), self.shutdown.clone())
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }

    fn data(cfg: &MasterConfig) -> DataFiles {
        let paths = cfg.store_paths();
        DataFiles {
            lock: Some(paths.lock),
            items: [
                ("audit", paths.audit),
                ("approvals", paths.approvals),
                ("workflows", paths.workflows),
                ("pins", paths.pins),
            ]
            .into_iter()
            .map(|(name, path)| DataItem::new(name, path, DataKind::Sqlite))
            .collect(),
        }
    }
}

impl HealthProbe for Master {
    fn checks(&self) -> BTreeMap<String, Check> {
        let mut checks = BTreeMap::new();
        for d in self.gateway.downstreams() {
            let st = d.status();
            let details = json!({
                "namespace": d.namespace(),
                "circuit": d.circuit_state(),
                "tools": d.catalog().tools.len(),
            });
            let check = if st.connected {
                Check::healthy(details)
            } else {
                Check::degraded(
                    format!("down: {}", st.last_error.unwrap_or_default()),
                    details,
                )
            };
            checks.insert(format!("downstream:{}", d.name()), check);
        }
        if let Some(error) = self.gateway.audit_failing() {
            checks.insert(
                "audit".to_owned(),
                Check::degraded(
                    format!("the audit store cannot be written: {error}"),
                    json!({ "pending_rows": self.gateway.audit_pending() }),
                ),
            );
        }
        let problems = self.gateway.index().problems.clone();
        if !problems.is_empty() {
            checks.insert(
                "naming".to_owned(),
                Check::degraded(problems.join("; "), serde_json::Value::Null),
            );
        }
        let held = self.gateway.held_definitions();
        if !held.is_empty() {
            let names: Vec<String> = held
                .iter()
                .map(|h| {
                    format!(
                        "{} ({})",
                        h["wire"].as_str().unwrap_or_default(),
                        h["refusal"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            checks.insert(
                "pins".to_owned(),
                Check::degraded(
                    format!("{} held: {}", held.len(), names.join("; ")),
                    json!({ "held": held }),
                ),
            );
        }
        let warnings = self.gateway.limit_warnings();
        checks.insert(
            "client_limits".to_owned(),
            Check {
                status: mcp_runtime::HealthStatus::Healthy,
                message: (!warnings.is_empty()).then(|| format!("{} warning(s)", warnings.len())),
                details: json!({ "warnings": warnings }),
            },
        );
        checks
    }

    fn ready(&self) -> bool {
        true
    }
}

/// Reads the config file again whenever it changes and applies the route weights it now gives
/// (each change logged and audited); the rest of the file needs a restart. A file that cannot be
/// read or is invalid leaves the routes as they are, with a warning.
async fn watch_route_weights(
    gateway: std::sync::Weak<Gateway>,
    source: mcp_runtime::config::ConfigSource,
    every: Duration,
    shutdown: mcp_runtime::ShutdownToken,
) {
    use mcp_runtime::files::FileStamp;
    let mut last = FileStamp::of(source.path()).ok();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => break,
        }
        let Some(g) = gateway.upgrade() else { break };
        let now = FileStamp::of(source.path()).ok();
        if now == last || now.is_none() {
            continue;
        }
        last = now;
        let cfg = source
            .load()
            .map_err(|e| e.to_string())
            .and_then(|doc| {
                doc.section::<MasterConfig>("master")
                    .map_err(|e| e.to_string())
            })
            .and_then(|cfg| cfg.validate().map(|()| cfg).map_err(|e| e.to_string()));
        match cfg {
            Ok(cfg) => {
                for change in g.routes().reload(&cfg) {
                    match change {
                        routing::Reloaded::Weights { namespace, weights } => {
                            tracing::info!(target: "audit", message = "Route weights read from the config file.", namespace = %namespace, weights = ?weights, path = %source.path().display());
                            g.audit_route_change(
                                "config",
                                &namespace,
                                &json!(weights),
                                "config_reload",
                                &format!("weights read from {}", source.path().display()),
                            );
                        }
                        routing::Reloaded::NeedsRestart { namespace } => tracing::warn!(
                            message = "The config file changes the versions of a route; restart master to apply that (weights unchanged).",
                            namespace = %namespace
                        ),
                    }
                }
            }
            Err(e) => tracing::warn!(
                message = "Config file changed but cannot be used; route weights unchanged.",
                path = %source.path().display(),
                error = %e
            ),
        }
    }
}
