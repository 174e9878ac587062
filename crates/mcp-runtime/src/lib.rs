//! Everything a service needs to be an MCP server: streamable HTTP at `/mcp`, legacy SSE at `/sse`
//! and `/message`, `/health`, `/ready`, `/metrics`, JSON logs with correlation ids, config, bearer
//! auth, Host/Origin checks, body and time limits, graceful shutdown.
//!
//! A service implements [`McpService`]; its binary is `fn main() -> ExitCode { mcp_runtime::main_for::<S>() }`.
//! Tests and the stack use [`start`] or the lower-level [`Runtime`] to serve on a chosen address.

pub mod approval;
mod arguments;
pub mod assertion;
pub mod auth;
pub mod backup;
pub mod config;
mod edge;
pub mod files;
pub mod guard;
pub mod health;
mod instrument;
pub mod metrics;
pub mod oauth;
pub mod output;
pub mod redact;
mod serve;
mod service;
mod sse;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{ConfigDoc, ConfigError, ServerConfig};
pub use edge::{LOOPBACK_HOSTS, Login};
pub use health::{Check, HealthProbe, HealthStatus};
pub use instrument::CallerContext;
pub use metrics::Metrics;
pub use service::{
    BoxError, BuildContext, DataCommand, McpService, data_set, main_for, run_data_command, start,
};
pub use tokio_util::sync::CancellationToken as ShutdownToken;

use crate::auth::{Identity, TokenStore};
use crate::edge::Edge;
use crate::health::{AlwaysHealthy, HealthReport};
use crate::instrument::{CallPolicy, Instrumented};
use crate::sse::SseSessions;

// Every service binary links this crate. In mcp-bench, mimalloc took about 6 % off the gateway's CPU
// per proxied call against glibc malloc (MCP traffic is many small, short-lived JSON allocations).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    OAuth(#[from] oauth::OAuthError),
    #[error(
        "refusing to serve {service} on non-loopback address {addr} without auth: set server.auth_tokens_file or [server.oauth], or server.allow_insecure = true (MCP_SERVER_ALLOW_INSECURE=true) on a trusted network"
    )]
    InsecureBind { service: String, addr: SocketAddr },
    #[error("cannot bind {addr} for {service}: {source}")]
    Bind {
        service: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Assertion(#[from] assertion::AssertionError),
    #[error("metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("service {service} failed to start: {source}")]
    Build { service: String, source: BoxError },
    #[error("TLS for {service}: {source}")]
    Tls {
        service: String,
        source: tls::TlsError,
    },
}

/// One service's HTTP surface, ready to be turned into a router or bound to a socket.
/// Handler factory of named endpoints (`/mcp/<name>`, `/sse/<name>`).
pub type EndpointFactory<H> = Arc<dyn Fn(&str) -> H + Send + Sync>;

pub struct Runtime<F, H> {
    name: String,
    version: String,
    factory: F,
    endpoints: Vec<String>,
    endpoint_factory: Option<EndpointFactory<H>>,
    health: Arc<dyn HealthProbe>,
    server: ServerConfig,
    metrics: Option<Metrics>,
    shutdown: CancellationToken,
    api: Option<Router>,
    pages: Option<Router>,
}

impl<F, H> Runtime<F, H>
where
    F: Fn() -> H + Send + Sync + Clone + 'static,
    H: ServerHandler,
{
    /// A runtime for service `name` whose sessions each get a handler from `factory`.
    pub fn new(name: &str, version: &str, factory: F) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            factory,
            endpoints: Vec::new(),
            endpoint_factory: None,
            health: Arc::new(AlwaysHealthy),
            server: ServerConfig::default(),
            metrics: None,
            shutdown: CancellationToken::new(),
            api: None,
            pages: None,
        }
    }

    /// Extra HTTP routes of the service (master's `/approvals`), served behind the same edge
    /// checks as `/mcp`: Host/Origin, body limit and bearer auth (the caller's `Identity` is in the
    /// request extensions).
    pub fn with_api(mut self, api: Option<Router>) -> Self {
        self.api = api;
        self
    }

    /// Pages that log their visitors in themselves (master's console): served behind the
    /// Host/Origin checks but not bearer auth or the JSON body check; each request carries an
    /// [`edge::Login`] in its extensions to establish who the visitor is by the edge's rules.
    pub fn with_pages(mut self, pages: Option<Router>) -> Self {
        self.pages = pages;
        self
    }

    /// Extra MCP endpoints: each name is served at `/mcp/<name>` and `/sse/<name>` with handlers
    /// from `factory(name)`. Names must be plain words (`[A-Za-z0-9_-]`).
    pub fn with_endpoints(mut self, names: Vec<String>, factory: EndpointFactory<H>) -> Self {
        self.endpoints = names;
        self.endpoint_factory = Some(factory);
        self
    }

    /// The `[server]` settings (address, auth, limits).
    pub fn with_config(mut self, server: ServerConfig) -> Self {
        self.server = server;
        self
    }

    /// The probe behind `/health` and `/ready`.
    pub fn with_health(mut self, probe: Arc<dyn HealthProbe>) -> Self {
        self.health = probe;
        self
    }

    /// Metrics to record into (their registry is what `/metrics` serves). Default: a fresh registry.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Token that stops the server (and every session) when cancelled.
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Builds the axum router with every endpoint and edge layer.
    pub fn router(&self) -> Result<Router, RuntimeError> {
        let metrics = match &self.metrics {
            Some(m) => m.clone(),
            None => Metrics::new(&self.name, &prometheus::Registry::new())?,
        };
        let tokens = match &self.server.auth_tokens_file {
            Some(path) => Some(TokenStore::load(path)?),
            None => None,
        };
        let oauth = match &self.server.oauth {
            Some(cfg) => {
                let http = tls::ClientTls::from_server(&self.server)
                    .builder()
                    .and_then(|b| {
                        b.build()
                            .map_err(|e| tls::TlsError::Setup(format!("HTTP client: {e}")))
                    })
                    .map_err(|source| RuntimeError::Tls {
                        service: self.name.clone(),
                        source,
                    })?;
                Some(Arc::new(oauth::OAuth::new(
                    cfg.clone(),
                    http,
                    self.endpoints.clone(),
                )?))
            }
            None => None,
        };
        let edge = Arc::new(Edge {
            service: self.name.clone(),
            oauth,
            scheme: if self.server.tls_enabled() {
                "https"
            } else {
                "http"
            },
            allowed_hosts: self
                .server
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            allowed_origins: self.server.allowed_origins.clone(),
            tokens,
            anonymous: Identity {
                roles: self.server.anonymous_roles.clone(),
                ..Identity::anonymous()
            },
            max_body_bytes: self.server.max_body_bytes,
            metrics: metrics.clone(),
        });
        let assertion_key = match &self.server.identity_key_file {
            Some(path) => Some(assertion::AssertionKey::load(path)?),
            None => None,
        };
        let approval_key = match &self.server.approval_key_file {
            Some(path) => Some(assertion::AssertionKey::load(path)?),
            None => assertion_key.clone(),
        };
        let policy = Arc::new(CallPolicy {
            approval_key,
            ledger: approval::ApprovalLedger::default(),
            assertion_key,
            metrics: metrics.clone(),
            tool_timeout: Duration::from_secs(self.server.tool_timeout_secs),
            max_output_bytes: self.server.max_output_bytes,
        });

        // One factory for every endpoint: "" is `/mcp` itself.
        let any_factory: EndpointFactory<H> = {
            let main = self.factory.clone();
            let named = self.endpoint_factory.clone();
            Arc::new(move |endpoint: &str| match (&named, endpoint) {
                (Some(f), e) if !e.is_empty() => f(e),
                _ => main(),
            })
        };
        let mut http_cfg = StreamableHttpServerConfig::default()
            .with_cancellation_token(self.shutdown.child_token())
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_max_request_body_bytes(self.server.max_body_bytes)
            .with_legacy_session_mode(!self.server.stateless);
        if self.server.stateless {
            http_cfg = http_cfg.with_json_response(true);
        }
        let idle = Duration::from_secs(self.server.session_idle_secs);
        let streamable_for = |endpoint: String| {
            let factory = any_factory.clone();
            let policy = policy.clone();
            let mut sessions = LocalSessionManager::default();
            sessions.session_config.keep_alive = Some(idle);
            StreamableHttpService::new(
                move || {
                    Ok(Instrumented::new(
                        factory(&endpoint),
                        policy.clone(),
                        "streamable_http",
                    ))
                },
                sessions.into(),
                http_cfg.clone(),
            )
        };

        let sse_factory = {
            let factory = any_factory.clone();
            let policy = policy.clone();
            move |endpoint: &str| Instrumented::new(factory(endpoint), policy.clone(), "sse")
        };
        let sessions = Arc::new(SseSessions::new(
            sse_factory,
            self.endpoints.clone(),
            self.shutdown.child_token(),
            Duration::from_secs(15),
        ));

        let mut mcp = Router::new()
            .route("/sse", get(sse::open))
            .route("/sse/{endpoint}", get(sse::open_named))
            .route("/message", post(sse::post))
            .route("/messages", post(sse::post))
            .with_state(sessions)
            .nest_service("/mcp", streamable_for(String::new()));
        for name in &self.endpoints {
            mcp = mcp.nest_service(&format!("/mcp/{name}"), streamable_for(name.clone()));
        }
        if let Some(api) = &self.api {
            mcp = mcp.merge(api.clone());
        }
        let mcp = mcp
            .layer(axum::middleware::from_fn(edge::delete_compat))
            .layer(from_fn_with_state(edge.clone(), edge::limit_body))
            .layer(from_fn_with_state(edge.clone(), edge::authenticate))
            .layer(from_fn_with_state(edge.clone(), edge::check_host_origin));

        let pages = self.pages.clone().map(|pages| {
            pages
                .layer(from_fn_with_state(edge.clone(), edge::offer_login))
                .layer(from_fn_with_state(edge.clone(), edge::check_host_origin))
        });

        let ops = OpsState {
            name: self.name.clone(),
            version: self.version.clone(),
            health: self.health.clone(),
            metrics,
            shutdown: self.shutdown.clone(),
        };
        let ops = Router::new()
            .route("/health", get(health_handler))
            .route("/ready", get(ready_handler))
            .route("/metrics", get(metrics_handler))
            .with_state(Arc::new(ops));
        // RFC 9728 metadata, where MCP clients learn which authorization server to ask.
        let ops = if edge.oauth.is_some() {
            let state = (edge.clone(), Arc::new(self.endpoints.clone()));
            ops.merge(
                Router::new()
                    .route(
                        "/.well-known/oauth-protected-resource",
                        get(edge::resource_metadata),
                    )
                    .route(
                        "/.well-known/oauth-protected-resource/{*rest}",
                        get(edge::resource_metadata),
                    )
                    .with_state(state)
                    .layer(from_fn_with_state(edge.clone(), edge::check_host_origin)),
            )
        } else {
            ops
        };

        let mut all = ops.merge(mcp);
        if let Some(pages) = pages {
            all = all.merge(pages);
        }
        Ok(all
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(self.server.request_timeout_secs),
            ))
            .layer(from_fn_with_state(edge, edge::correlate)))
    }

    /// Binds the configured address and serves until the shutdown token is cancelled.
    pub async fn bind(self) -> Result<Running, RuntimeError> {
        let addr = self.server.bind_addr();
        if !addr.ip().is_loopback() && !self.server.auth_enabled() && !self.server.allow_insecure {
            return Err(RuntimeError::InsecureBind {
                service: self.name.clone(),
                addr,
            });
        }
        let router = self.router()?;
        let tls =
            tls::server_config(&self.server, &self.name).map_err(|source| RuntimeError::Tls {
                service: self.name.clone(),
                source,
            })?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RuntimeError::Bind {
                service: self.name.clone(),
                addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| RuntimeError::Bind {
            service: self.name.clone(),
            addr,
            source,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(
            message = "Listening.",
            service = %self.name,
            addr = %local_addr,
            scheme,
            client_certificates = ?self.server.tls_client_auth,
            auth = self.server.auth_tokens_file.is_some(),
            oauth_issuer = self.server.oauth.as_ref().map_or("", |o| o.issuer.as_str()),
            stateless = self.server.stateless,
        );
        let shutdown = self.shutdown.clone();
        let name = self.name.clone();
        let header_timeout = Duration::from_secs(self.server.header_read_timeout_secs);
        let server: futures::future::BoxFuture<'static, std::io::Result<()>> = match tls {
            Some(config) => {
                let listener = tls::TlsListener::new(listener, config);
                Box::pin(serve::serve(
                    listener,
                    router,
                    |io| Some(tls::TlsPeer::of(io)),
                    header_timeout,
                    shutdown.clone(),
                ))
            }
            None => {
                // MCP over HTTP writes small frames (SSE priming event, then the message); without
                // TCP_NODELAY, Nagle plus the peer's delayed ACK adds ~40 ms to a call.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                Box::pin(serve::serve(
                    listener,
                    router,
                    |_| None,
                    header_timeout,
                    shutdown.clone(),
                ))
            }
        };
        let task = tokio::spawn(async move {
            // After the signal, give in-flight requests DRAIN_TIMEOUT to finish, then stop anyway.
            tokio::select! {
                r = server => r,
                () = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(DRAIN_TIMEOUT).await;
                } => {
                    tracing::warn!(message = "Drain timeout reached; closing remaining connections.", service = %name);
                    Ok(())
                }
            }
        });
        Ok(Running {
            local_addr,
            scheme,
            name: self.name,
            version: self.version,
            health: self.health,
            shutdown: self.shutdown,
            task,
        })
    }
}

/// A bound, serving server.
pub struct Running {
    local_addr: SocketAddr,
    scheme: &'static str,
    name: String,
    version: String,
    health: Arc<dyn HealthProbe>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("name", &self.name)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The service's name (`cmdb`, `master`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What `/health` would answer now.
    pub fn health(&self) -> HealthReport {
        HealthReport::collect(&self.name, &self.version, self.health.as_ref())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<addr><path>`, or `https://` when the service serves TLS.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.local_addr)
    }

    /// Asks the server to stop and waits for it to drain.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after its shutdown token is cancelled).
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

struct OpsState {
    name: String,
    version: String,
    health: Arc<dyn HealthProbe>,
    metrics: Metrics,
    shutdown: CancellationToken,
}

async fn health_handler(axum::extract::State(s): axum::extract::State<Arc<OpsState>>) -> Response {
    let report = HealthReport::collect(&s.name, &s.version, s.health.as_ref());
    let code = if report.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(report)).into_response()
}

async fn ready_handler(axum::extract::State(s): axum::extract::State<Arc<OpsState>>) -> Response {
    let ready = !s.shutdown.is_cancelled() && s.health.ready();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(serde_json::json!({ "ready": ready, "service": s.name })),
    )
        .into_response()
}

async fn metrics_handler(axum::extract::State(s): axum::extract::State<Arc<OpsState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
