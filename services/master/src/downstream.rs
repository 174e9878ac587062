//! One downstream MCP server: its connection (HTTP, SSE or stdio), a supervisor that connects,
//! pings, reconnects with backoff and refreshes the catalog, and a circuit breaker that makes calls
//! to a failing service fail fast.
//!
//! Over 800 lines because one connection's life — connect, supervise, reconnect, circuit, catalog,
//! request — shares the connection's state; transports are in `downstream/`.

pub mod asserting_client;
pub mod credentials;
pub mod sse_client;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{CircuitConfig, ConfigInvalid, DownstreamConfig, TransportKind};

/// What a downstream offers, with its own (un-namespaced) names.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub tools: Vec<Tool>,
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
}

/// Circuit breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Breaker {
    state: CircuitState,
    failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// Why a call could not be sent.
#[derive(Debug, Clone)]
pub enum Unavailable {
    Disconnected { reason: String, retry_in: Duration },
    CircuitOpen { retry_in: Duration },
}

/// Why a downstream could not be connected or its catalog listed: the text master_getSystemStatus
/// and the logs show, with transport errors already made sentences (`plain_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

impl From<String> for ConnectError {
    fn from(text: String) -> Self {
        Self(text)
    }
}

/// The outcome of forwarding one request.
#[derive(Debug)]
pub enum CallError {
    /// Not sent: the service is down or its circuit is open.
    Unavailable(Unavailable),
    /// The connection failed while sending or waiting (safe to retry only for idempotent tools).
    Connection(String),
    /// No answer within the downstream's timeout.
    Timeout(Duration),
    /// The caller cancelled; the downstream was told.
    Cancelled,
    /// The downstream answered with a JSON-RPC error.
    Remote(ErrorData),
    /// Not sent: master could not get a token for the downstream (its `auth`).
    Credentials(String),
}

/// A live connection to a downstream.
pub type Client = RunningService<RoleClient, DownstreamClient>;

/// Mutable status, for `master_getSystemStatus` and health.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub connected: bool,
    pub last_error: Option<String>,
    /// Exponentially weighted mean latency of calls, in milliseconds.
    pub latency_ms: Option<f64>,
    pub connects: u64,
    #[serde(skip)]
    pub next_attempt: Option<Instant>,
}

/// One downstream and its supervisor state.
pub struct Downstream {
    pub cfg: DownstreamConfig,
    pub index: usize,
    client: RwLock<Option<Arc<Client>>>,
    catalog: RwLock<Arc<Catalog>>,
    status: Mutex<Status>,
    breaker: Mutex<Breaker>,
    circuit: CircuitConfig,
    wake: Notify,
    check_requested: AtomicBool,
    refresh_requested: AtomicBool,
    headers: HeaderMap,
    /// OAuth credentials (`auth = "client_credentials"` or `"token_exchange"`).
    credentials: Option<Arc<credentials::Credentials>>,
}

/// What a downstream connection needs from the gateway above it. The seam keeps this module free
/// of the gateway's types (the gateway owns the downstreams; they call back through here).
pub trait Upstream: Send + Sync + 'static {
    /// The downstream's catalog changed (connected, lost, refreshed).
    fn catalog_changed(&self);
    /// The client of the newest call in flight to downstream `index` (for the service's sampling,
    /// elicitation and log messages).
    fn client_for(&self, index: usize) -> Option<rmcp::Peer<rmcp::RoleServer>>;
    /// Relays a downstream's progress notification to the client whose call it belongs to.
    fn relay_progress(
        &self,
        params: ProgressNotificationParam,
    ) -> futures::future::BoxFuture<'_, ()>;
    /// Downstream `index` said its lists changed: fetch its catalog again.
    fn refresh(&self, index: usize);
}

/// No gateway above: a standalone client (the conformance client binary).
pub struct NoUpstream;

impl Upstream for NoUpstream {
    fn catalog_changed(&self) {}
    fn client_for(&self, _index: usize) -> Option<rmcp::Peer<rmcp::RoleServer>> {
        None
    }
    fn relay_progress(
        &self,
        _params: ProgressNotificationParam,
    ) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn refresh(&self, _index: usize) {}
}

/// A transport error as a person reads it: what happened to the connection, without the Rust
/// type names rmcp's error texts carry (`Transport [rmcp::transport::worker::WorkerTransport<…`).
pub fn plain_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        chain.push(err.to_string());
        cur = inner_error(err);
    }
    plain_text(&chain.join(": "))
}

/// The error inside `err`: its `source()`, or the field rmcp's error types keep their cause in
/// without declaring it a source (so the "connection refused" at the bottom is found).
fn inner_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    use rmcp::service::ClientInitializeError;
    use rmcp::transport::streamable_http_client::StreamableHttpError;
    use rmcp::transport::worker::WorkerQuitReason;
    type HttpError = StreamableHttpError<reqwest::Error>;
    if let Some(ClientInitializeError::TransportError { error, .. }) = err.downcast_ref() {
        return Some(error);
    }
    if let Some(HttpError::Client(e)) = err.downcast_ref::<HttpError>() {
        return Some(e);
    }
    if let Some(WorkerQuitReason::Fatal { error, .. }) =
        err.downcast_ref::<WorkerQuitReason<HttpError>>()
    {
        return Some(error);
    }
    err.source()
}

/// [`plain_error`] for a text already flattened.
pub fn plain_text(text: &str) -> String {
    // URLs carry ports and paths that look like status codes; they say nothing new here.
    static URL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\(?\b(?:https?|wss?)://[^\s)]*\)?").expect("compiles")
    });
    let text = URL.replace_all(text, "");
    let text = text.as_ref();
    let t = text.to_ascii_lowercase();
    let known: &[(&[&str], &str)] = &[
        (&["connection refused"], "connection refused"),
        (&["connection reset"], "connection reset by the service"),
        (
            &["broken pipe"],
            "connection closed by the service (broken pipe)",
        ),
        (
            &[
                "dns error",
                "failed to lookup address",
                "name or service not known",
            ],
            "cannot resolve the service's host name",
        ),
        (
            &["certificaterequired", "peer sent no certificates"],
            "the service requires a client certificate: set the downstream's client_cert_file and client_key_file (or server.tls_client_cert_file and tls_client_key_file)",
        ),
        (
            &[
                "alert: badcertificate",
                "alert: unknownca",
                "alert: certificateunknown",
            ],
            "the service refused master's client certificate (not signed by a CA it trusts)",
        ),
        (
            &["unknownissuer"],
            "the service's TLS certificate is not trusted: set the downstream's ca_file (or server.tls_ca_file) to the CA that signed it",
        ),
        (
            &["certificate not valid for name", "notvalidforname"],
            "the service's TLS certificate does not name the host in the downstream's url",
        ),
        (
            &["certificate expired"],
            "the service's TLS certificate has expired",
        ),
        (
            &["serves https only"],
            "the service serves HTTPS: use an https:// url",
        ),
        (
            &["received corrupt message", "invalidcontenttype"],
            "TLS handshake failed: does the service serve HTTPS at that url?",
        ),
        (
            &["certificate", "invalidcertificate"],
            "TLS certificate not accepted",
        ),
        (&["handshake"], "TLS handshake failed"),
        (
            &["http 401", "401 unauthorized", "unauthorized"],
            "the service refused master's credentials (HTTP 401): check the downstream's headers/token file",
        ),
        (
            &["http 403", "403 forbidden", "forbidden"],
            "the service refused master (HTTP 403 forbidden)",
        ),
        (
            &["http 404", "404 not found"],
            "no MCP endpoint at that URL (HTTP 404): check the downstream's url",
        ),
        (
            &["timed out", "timeout", "deadline has elapsed"],
            "the connection timed out",
        ),
        (
            &[
                "unexpected eof",
                "connection closed",
                "channel closed",
                "transport closed",
                "closed",
            ],
            "connection closed",
        ),
    ];
    for (needles, sentence) in known {
        if needles.iter().any(|n| t.contains(n)) {
            return (*sentence).to_owned();
        }
    }
    // Keep a short text that reads like a sentence; never one with type paths.
    let last = text.rsplit(": ").next().unwrap_or(text).trim();
    if last.is_empty() || last.contains("::") || last.contains('<') || last.len() > 160 {
        "connection failed".to_owned()
    } else {
        last.to_owned()
    }
}

/// The OAuth credentials of a downstream whose `auth` needs them (reads the secret file now).
pub fn credentials_of(
    cfg: &DownstreamConfig,
) -> Result<Option<Arc<credentials::Credentials>>, ConfigInvalid> {
    use credentials::AuthMode;
    let mode = cfg.auth_mode();
    let (AuthMode::ClientCredentials | AuthMode::TokenExchange, Some(oauth)) = (mode, &cfg.oauth)
    else {
        return Ok(None);
    };
    let http = cfg
        .client_tls()
        .builder()
        .map_err(|e| format!("downstream `{}`: {e}", cfg.name))?
        .build()
        .map_err(|e| format!("downstream `{}`: {}", cfg.name, plain_error(&e)))?;
    credentials::Credentials::new(
        &cfg.name,
        cfg.url.as_deref().unwrap_or_default(),
        mode,
        oauth,
        cfg.default_issuer.as_deref(),
        http,
    )
    .map(|c| Some(Arc::new(c)))
}

fn load_headers(cfg: &DownstreamConfig) -> Result<HeaderMap, ConfigInvalid> {
    let mut map = HeaderMap::new();
    let Some(path) = &cfg.headers_from_file else {
        return Ok(map);
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "downstream `{}`: cannot read headers_from_file {}: {e}",
            cfg.name,
            path.display()
        )
    })?;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            format!(
                "downstream `{}`: {} line {}: expected `Name: value`",
                cfg.name,
                path.display(),
                i + 1
            )
        })?;
        // Never echo the value: it is usually a token.
        let bad = || {
            format!(
                "downstream `{}`: {} line {}: invalid header",
                cfg.name,
                path.display(),
                i + 1
            )
        };
        let name = HeaderName::try_from(name.trim()).map_err(|_| bad())?;
        let mut value = HeaderValue::try_from(value.trim()).map_err(|_| bad())?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

impl Downstream {
    pub fn new(
        cfg: DownstreamConfig,
        index: usize,
        circuit: CircuitConfig,
    ) -> Result<Self, ConfigInvalid> {
        let headers = load_headers(&cfg)?;
        if cfg.transport != TransportKind::Stdio {
            // Read the CA and client certificate now: a bad file is a start-up error.
            cfg.client_tls()
                .builder()
                .map(drop)
                .map_err(|e| format!("downstream `{}`: {e}", cfg.name))?;
        }
        let credentials = credentials_of(&cfg)?;
        Ok(Self {
            credentials,
            cfg,
            index,
            client: RwLock::new(None),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            status: Mutex::new(Status {
                connected: false,
                last_error: Some("not connected yet".to_owned()),
                latency_ms: None,
                connects: 0,
                next_attempt: None,
            }),
            breaker: Mutex::new(Breaker {
                state: CircuitState::Closed,
                failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
            circuit,
            wake: Notify::new(),
            check_requested: AtomicBool::new(false),
            refresh_requested: AtomicBool::new(false),
            headers,
        })
    }

    /// Its OAuth credentials, when `auth` is `client_credentials` or `token_exchange`.
    pub fn credentials(&self) -> Option<&Arc<credentials::Credentials>> {
        self.credentials.as_ref()
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn namespace(&self) -> &str {
        self.cfg.namespace()
    }

    /// The catalog as last fetched (empty while down).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn circuit_state(&self) -> CircuitState {
        self.breaker
            .lock()
            .map(|b| b.state)
            .unwrap_or(CircuitState::Closed)
    }

    fn current(&self) -> Option<Arc<Client>> {
        self.client.read().ok().and_then(|c| c.clone())
    }

    pub fn is_up(&self) -> bool {
        self.current().is_some_and(|c| !c.is_closed())
    }

    /// Asks the supervisor to re-check the connection now (a call saw it fail).
    pub fn request_check(&self) {
        self.check_requested.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Asks the supervisor to re-fetch the catalog (the downstream said its lists changed).
    pub fn request_refresh(&self) {
        self.refresh_requested.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Reserves a call slot: fails fast when down or when the circuit is open.
    pub fn admit(&self) -> Result<Arc<Client>, Unavailable> {
        let Some(client) = self.current().filter(|c| !c.is_closed()) else {
            let st = self.status();
            let retry_in = st
                .next_attempt
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            return Err(Unavailable::Disconnected {
                reason: st.last_error.unwrap_or_else(|| "not connected".to_owned()),
                retry_in,
            });
        };
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if b.state == CircuitState::Open {
            let open_for = Duration::from_secs(self.circuit.open_secs);
            let since = b.opened_at.map(|t| t.elapsed()).unwrap_or(open_for);
            if since < open_for {
                return Err(Unavailable::CircuitOpen {
                    retry_in: open_for - since,
                });
            }
            b.state = CircuitState::HalfOpen;
            b.probe_in_flight = false;
        }
        if b.state == CircuitState::HalfOpen {
            if b.probe_in_flight {
                return Err(Unavailable::CircuitOpen {
                    retry_in: Duration::from_secs(1),
                });
            }
            b.probe_in_flight = true;
        }
        Ok(client)
    }

    fn record(&self, ok: bool, latency: Option<Duration>) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.probe_in_flight = false;
        if ok {
            b.state = CircuitState::Closed;
            b.failures = 0;
            b.opened_at = None;
        } else {
            b.failures += 1;
            if b.state == CircuitState::HalfOpen || b.failures >= self.circuit.failure_threshold {
                if b.state != CircuitState::Open {
                    tracing::warn!(message = "Circuit opened.", downstream = %self.cfg.name, failures = b.failures);
                }
                b.state = CircuitState::Open;
                b.opened_at = Some(Instant::now());
            }
        }
        drop(b);
        if let Some(l) = latency {
            let ms = l.as_secs_f64() * 1000.0;
            self.set_status(|s| {
                s.latency_ms = Some(s.latency_ms.map_or(ms, |old| old * 0.8 + ms * 0.2));
            });
        }
    }

    /// The downstream's call timeout (`timeout_secs`).
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_secs)
    }

    /// A request that got no answer, or could not even be handed to the downstream's transport
    /// (a hung connection ahead of it), within the call timeout: counted against the circuit.
    pub fn timed_out(&self) -> CallError {
        self.record(false, None);
        CallError::Timeout(self.call_timeout())
    }

    /// Sends one request through an admitted client, bounded by the downstream's timeout and the
    /// caller's cancellation. Dropping the request future makes rmcp send `notifications/cancelled`.
    pub async fn request<T>(
        &self,
        fut: impl Future<Output = Result<T, ServiceError>>,
        ct: &CancellationToken,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let outcome = tokio::select! {
            r = tokio::time::timeout(self.call_timeout(), fut) => r,
            () = ct.cancelled() => {
                // Not the downstream's fault: release a half-open probe without judging.
                if let Ok(mut b) = self.breaker.lock() { b.probe_in_flight = false; }
                return Err(CallError::Cancelled);
            }
        };
        match outcome {
            Err(_) => Err(self.timed_out()),
            Ok(Ok(v)) => {
                self.record(true, Some(started.elapsed()));
                Ok(v)
            }
            Ok(Err(ServiceError::McpError(e))) => {
                // The downstream answered; it is alive.
                self.record(true, Some(started.elapsed()));
                Err(CallError::Remote(e))
            }
            Ok(Err(ServiceError::Cancelled { .. })) => {
                if let Ok(mut b) = self.breaker.lock() {
                    b.probe_in_flight = false;
                }
                Err(CallError::Cancelled)
            }
            Ok(Err(ServiceError::Timeout { timeout })) => {
                self.record(false, None);
                Err(CallError::Timeout(timeout))
            }
            Ok(Err(e)) => {
                self.record(false, None);
                self.request_check();
                Err(CallError::Connection(plain_error(&e)))
            }
        }
    }

    async fn connect(
        self: &Arc<Self>,
        gateway: Weak<dyn Upstream>,
    ) -> Result<Client, ConnectError> {
        connect_client(
            &self.cfg,
            &self.headers,
            self.credentials.clone(),
            gateway,
            self.index,
        )
        .await
    }

    async fn fetch_catalog(&self, client: &Client) -> Result<Catalog, ConnectError> {
        let caps = client
            .peer_info()
            .map(|i| i.capabilities.clone())
            .unwrap_or_default();
        let peer = client.peer();
        let mut cat = Catalog::default();
        let t = Duration::from_secs(self.cfg.timeout_secs.min(30));
        let err = |what: &str, e: String| format!("{what} failed: {}", plain_text(&e));
        if caps.tools.is_some() {
            cat.tools = tokio::time::timeout(t, peer.list_all_tools())
                .await
                .map_err(|_| "tools/list timed out".to_owned())?
                .map_err(|e| err("tools/list", e.to_string()))?;
        }
        if caps.prompts.is_some() {
            cat.prompts = tokio::time::timeout(t, peer.list_all_prompts())
                .await
                .map_err(|_| "prompts/list timed out".to_owned())?
                .map_err(|e| err("prompts/list", e.to_string()))?;
        }
        if caps.resources.is_some() {
            cat.resources = tokio::time::timeout(t, peer.list_all_resources())
                .await
                .map_err(|_| "resources/list timed out".to_owned())?
                .map_err(|e| err("resources/list", e.to_string()))?;
            cat.templates = tokio::time::timeout(t, peer.list_all_resource_templates())
                .await
                .map_err(|_| "resources/templates/list timed out".to_owned())?
                .unwrap_or_default();
        }
        Ok(cat)
    }

    fn set_client(&self, client: Option<Arc<Client>>, catalog: Catalog) {
        if let Ok(mut c) = self.client.write() {
            *c = client;
        }
        if let Ok(mut c) = self.catalog.write() {
            *c = Arc::new(catalog);
        }
    }

    /// Connects, watches and reconnects until `shutdown`.
    pub async fn supervise(
        self: Arc<Self>,
        gateway: Weak<dyn Upstream>,
        health_interval: Duration,
        reconnect_max: Duration,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(200);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.connect(gateway.clone()).await {
                Ok(client) => {
                    let catalog = match self.fetch_catalog(&client).await {
                        Ok(c) => c,
                        Err(e) => {
                            self.mark_down(&gateway, format!("connected but {e}"), backoff);
                            let _ = client.cancel().await;
                            if wait_or_stop(&self.wake, backoff, &shutdown).await {
                                return;
                            }
                            backoff = (backoff * 2).min(reconnect_max);
                            continue;
                        }
                    };
                    backoff = Duration::from_millis(200);
                    let client = Arc::new(client);
                    tracing::info!(
                        message = "Downstream connected.",
                        downstream = %self.cfg.name,
                        tools = catalog.tools.len(),
                        prompts = catalog.prompts.len(),
                        resources = catalog.resources.len()
                    );
                    if let Ok(mut b) = self.breaker.lock() {
                        b.state = CircuitState::Closed;
                        b.failures = 0;
                    }
                    self.set_client(Some(client.clone()), catalog);
                    self.set_status(|s| {
                        s.connected = true;
                        s.last_error = None;
                        s.connects += 1;
                        s.next_attempt = None;
                    });
                    if let Some(g) = gateway.upgrade() {
                        g.catalog_changed();
                    }
                    let reason = self
                        .watch(&client, &gateway, health_interval, &shutdown)
                        .await;
                    let Some(reason) = reason else {
                        let _ = self.take_and_close().await;
                        return;
                    };
                    let _ = self.take_and_close().await;
                    self.mark_down(&gateway, reason, backoff);
                }
                Err(e) => {
                    self.mark_down(&gateway, e.to_string(), backoff);
                    if wait_or_stop(&self.wake, backoff, &shutdown).await {
                        return;
                    }
                    backoff = (backoff * 2).min(reconnect_max);
                }
            }
        }
    }

    async fn take_and_close(&self) -> Option<()> {
        let client = self.client.write().ok().and_then(|mut c| c.take())?;
        if let Ok(client) = Arc::try_unwrap(client) {
            let _ = tokio::time::timeout(Duration::from_secs(2), client.cancel()).await;
        }
        Some(())
    }

    fn mark_down(&self, gateway: &Weak<dyn Upstream>, reason: String, retry_in: Duration) {
        let was_up = self.status().connected;
        // Keep the last catalog: its tools stay routable and answer "unavailable" at once.
        if let Ok(mut c) = self.client.write() {
            *c = None;
        }
        self.set_status(|s| {
            s.connected = false;
            s.last_error = Some(reason.clone());
            s.next_attempt = Some(Instant::now() + retry_in);
        });
        if was_up {
            tracing::warn!(message = "Downstream down.", downstream = %self.cfg.name, reason = %reason);
            if let Some(g) = gateway.upgrade() {
                g.catalog_changed();
            }
        }
    }

    /// Watches a live connection; returns why it ended, or `None` on shutdown.
    async fn watch(
        &self,
        client: &Client,
        gateway: &Weak<dyn Upstream>,
        health_interval: Duration,
        shutdown: &CancellationToken,
    ) -> Option<String> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(health_interval) => {}
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => return None,
            }
            if client.is_closed() {
                return Some("connection closed".to_owned());
            }
            let check = self.check_requested.swap(false, Ordering::SeqCst);
            let refresh = self.refresh_requested.swap(false, Ordering::SeqCst);
            if refresh {
                match self.fetch_catalog(client).await {
                    Ok(cat) => {
                        if let Ok(mut c) = self.catalog.write() {
                            *c = Arc::new(cat);
                        }
                        if let Some(g) = gateway.upgrade() {
                            g.catalog_changed();
                        }
                    }
                    Err(e) => return Some(e.to_string()),
                }
                if !check {
                    continue;
                }
            }
            let ping = tokio::time::timeout(
                Duration::from_secs(5),
                client
                    .peer()
                    .send_request(ClientRequest::PingRequest(Default::default())),
            )
            .await;
            match ping {
                Ok(Ok(_)) | Ok(Err(ServiceError::McpError(_))) => {}
                Ok(Err(e)) => return Some(format!("ping failed: {}", plain_error(&e))),
                Err(_) => return Some("ping timed out after 5 s".to_owned()),
            }
        }
    }
}

/// Opens one client connection to a downstream the way master does (transport, handler, timeout).
/// `gateway` may be dangling (`Weak::<NoUpstream>::new()`) for a standalone client.
pub async fn connect_client(
    cfg: &DownstreamConfig,
    headers: &HeaderMap,
    credentials: Option<Arc<credentials::Credentials>>,
    gateway: Weak<dyn Upstream>,
    index: usize,
) -> Result<Client, ConnectError> {
    let handler = DownstreamClient { gateway, index };
    let connect_timeout = Duration::from_secs(15);
    let fut = async {
        match cfg.transport {
            TransportKind::Http => {
                let url = cfg.url.clone().unwrap_or_default();
                let http = cfg
                    .client_tls()
                    .builder()
                    .map_err(|e| e.to_string())?
                    .default_headers(headers.clone())
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|e| plain_error(&e))?;
                let transport = StreamableHttpClientTransport::with_client(
                    asserting_client::AssertingClient { http, credentials },
                    StreamableHttpClientTransportConfig::with_uri(url),
                );
                handler.serve(transport).await.map_err(|e| plain_error(&e))
            }
            TransportKind::Sse => {
                let url = cfg.url.clone().unwrap_or_default();
                let http = cfg.client_tls().builder().map_err(|e| e.to_string())?;
                let transport =
                    sse_client::SseClientTransport::connect(&url, http, headers.clone())
                        .await
                        .map_err(|e| plain_text(&e.to_string()))?;
                handler.serve(transport).await.map_err(|e| plain_error(&e))
            }
            TransportKind::Stdio => {
                let program = cfg.command.clone().unwrap_or_default();
                let mut cmd = tokio::process::Command::new(&program);
                cmd.args(&cfg.args).envs(&cfg.env).kill_on_drop(true);
                for (var, path) in &cfg.env_from_files {
                    let value = std::fs::read_to_string(path).map_err(|e| {
                        format!("cannot read env_from_files.{var} ({}): {e}", path.display())
                    })?;
                    let value = value.strip_suffix('\n').unwrap_or(&value);
                    cmd.env(var, value.strip_suffix('\r').unwrap_or(value));
                }
                let (transport, _stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot start `{program}`: {e}"))?;
                handler.serve(transport).await.map_err(|e| plain_error(&e))
            }
        }
    };
    tokio::time::timeout(connect_timeout, fut)
        .await
        .map_err(|_| {
            format!(
                "no answer to initialize within {} s",
                connect_timeout.as_secs()
            )
        })?
        .map_err(ConnectError)
}

/// Sleeps `d` or until woken; true when shutting down.
async fn wait_or_stop(wake: &Notify, d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = wake.notified() => false,
        () = shutdown.cancelled() => true,
    }
}

/// Master's client side of one downstream connection: relays what the downstream sends back
/// (progress, logs, sampling and elicitation requests, list changes) to master's clients.
#[derive(Clone)]
pub struct DownstreamClient {
    gateway: Weak<dyn Upstream>,
    index: usize,
}

impl DownstreamClient {
    fn gateway(&self) -> Result<Arc<dyn Upstream>, ErrorData> {
        self.gateway
            .upgrade()
            .ok_or_else(|| ErrorData::internal_error("gateway is shutting down", None))
    }
}

#[allow(deprecated)] // Sampling and logging still matter to clients on 2025-era protocol versions.
impl ClientHandler for DownstreamClient {
    fn get_info(&self) -> ClientConfig {
        let caps = ClientCapabilities::builder()
            .enable_sampling()
            .enable_elicitation()
            .build();
        let mut cfg = ClientConfig::new(
            caps,
            Implementation::new("mcp-master", env!("CARGO_PKG_VERSION")),
        );
        // 2025-11-25 is the newest version the wider ecosystem (and the conformance suite) speaks;
        // rmcp's default, 2026-07-28, drops sessions, which stateful downstreams rely on.
        cfg.protocol_version = ProtocolVersion::V_2025_11_25;
        cfg
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let g = self.gateway()?;
        let peer = g.client_for(self.index).ok_or_else(|| {
            ErrorData::invalid_request("no client call in flight to relay sampling to", None)
        })?;
        peer.create_message(params)
            .await
            .map_err(|e| ErrorData::internal_error(format!("client sampling failed: {e}"), None))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let g = self.gateway()?;
        let peer = g.client_for(self.index).ok_or_else(|| {
            ErrorData::invalid_request("no client call in flight to relay elicitation to", None)
        })?;
        peer.create_elicitation(request)
            .await
            .map_err(|e| ErrorData::internal_error(format!("client elicitation failed: {e}"), None))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(g) = self.gateway() {
            g.relay_progress(params).await;
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(g) = self.gateway()
            && let Some(peer) = g.client_for(self.index)
        {
            let _ = peer.notify_logging_message(params).await;
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Ok(g) = self.gateway() {
            g.refresh(self.index);
        }
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Ok(g) = self.gateway() {
            g.refresh(self.index);
        }
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Ok(g) = self.gateway() {
            g.refresh(self.index);
        }
    }
}

/// Status summary used by `master_getSystemStatus`.
pub fn summary(d: &Downstream) -> BTreeMap<&'static str, serde_json::Value> {
    let st = d.status();
    let cat = d.catalog();
    BTreeMap::from([
        ("name", serde_json::json!(d.cfg.name)),
        ("namespace", serde_json::json!(d.namespace())),
        ("transport", serde_json::json!(d.cfg.transport)),
        (
            "state",
            serde_json::json!(if st.connected { "up" } else { "down" }),
        ),
        ("circuit", serde_json::json!(d.circuit_state())),
        ("tools", serde_json::json!(cat.tools.len())),
        ("latency_ms", serde_json::json!(st.latency_ms)),
        ("last_error", serde_json::json!(st.last_error)),
        ("connects", serde_json::json!(st.connects)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(headers_file: Option<std::path::PathBuf>) -> DownstreamConfig {
        DownstreamConfig {
            timeout_secs: 5,
            headers_from_file: headers_file,
            ..DownstreamConfig::http("svc", "http://127.0.0.1:1/mcp")
        }
    }

    fn connected(threshold: u32, open_secs: u64) -> Downstream {
        let d = Downstream::new(
            cfg(None),
            0,
            CircuitConfig {
                failure_threshold: threshold,
                open_secs,
            },
        )
        .unwrap();
        d.set_status(|s| s.connected = true);
        d
    }

    #[test]
    fn transport_errors_read_as_sentences() {
        // rmcp's text for a refused connection, as it reached callers before.
        let raw = "Send message error Transport [rmcp::transport::worker::WorkerTransport<rmcp::transport::streamable_http_client::StreamableHttpClientWorker<reqwest::Client>>] error: Client error: error sending request for url (http://127.0.0.1:40401/mcp): client error (Connect): tcp connect error: Connection refused (os error 111), when send initialize request";
        assert_eq!(plain_text(raw), "connection refused");
        // A port that looks like a status code is not one.
        let p = plain_text("error sending request for url (http://127.0.0.1:40401/mcp)");
        assert!(!p.contains("401") && !p.contains("credentials"), "{p}");
        assert!(plain_text("HTTP 401 Unauthorized").contains("HTTP 401"));
        assert_eq!(plain_text("Transport closed"), "connection closed");
        assert_eq!(
            plain_text("dns error: failed to lookup address information"),
            "cannot resolve the service's host name"
        );
        for t in [raw, "Transport [rmcp::x::Y<z::W>] odd"] {
            let p = plain_text(t);
            assert!(!p.contains("::") && !p.contains('<'), "{p}");
        }
    }

    #[test]
    fn breaker_opens_after_threshold_and_half_opens_for_one_probe() {
        let d = connected(3, 0);
        d.record(false, None);
        d.record(false, None);
        assert_eq!(d.circuit_state(), CircuitState::Closed);
        d.record(true, Some(Duration::from_millis(2)));
        d.record(false, None);
        d.record(false, None);
        assert_eq!(
            d.circuit_state(),
            CircuitState::Closed,
            "a success resets the count"
        );
        d.record(false, None);
        assert_eq!(d.circuit_state(), CircuitState::Open);
        // open_secs = 0: the next admission is the half-open probe; a failed probe reopens at once.
        {
            let mut b = d.breaker.lock().unwrap();
            b.state = CircuitState::HalfOpen;
            b.probe_in_flight = true;
        }
        d.record(false, None);
        assert_eq!(d.circuit_state(), CircuitState::Open);
        // A successful probe closes it.
        {
            let mut b = d.breaker.lock().unwrap();
            b.state = CircuitState::HalfOpen;
        }
        d.record(true, None);
        assert_eq!(d.circuit_state(), CircuitState::Closed);
    }

    #[test]
    fn open_circuit_refuses_with_retry_time_and_disconnected_says_why() {
        let d = connected(1, 30);
        // Not connected (no client): refused with the last error.
        match d.admit() {
            Err(Unavailable::Disconnected { reason, .. }) => {
                assert!(reason.contains("not connected"))
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("admitted while disconnected"),
        }
        d.record(false, None);
        let b = d.breaker.lock().unwrap();
        assert_eq!(b.state, CircuitState::Open);
        assert!(b.opened_at.is_some());
    }

    #[test]
    fn headers_file_is_parsed_and_errors_never_echo_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        std::fs::write(
            &path,
            "# comment\nAuthorization: Bearer s3cr3t-canary\nX-Tenant: a\n",
        )
        .unwrap();
        let h = load_headers(&cfg(Some(path.clone()))).unwrap();
        assert_eq!(h.len(), 2);
        assert!(h["authorization"].is_sensitive());
        std::fs::write(&path, "Authorization Bearer s3cr3t-canary\n").unwrap();
        let err = load_headers(&cfg(Some(path.clone())))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && !err.contains("s3cr3t-canary"),
            "{err}"
        );
        std::fs::write(&path, "Bad Header: s3cr3t-canary\n").unwrap();
        let err = load_headers(&cfg(Some(path))).unwrap_err().to_string();
        assert!(
            err.contains("invalid header") && !err.contains("s3cr3t-canary"),
            "{err}"
        );
    }
}
