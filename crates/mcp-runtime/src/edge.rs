//! Security and hygiene at the HTTP edge: correlation ids, Host/Origin validation, bearer auth,
//! body limits with JSON-RPC parse errors, and per-request metrics. Everything here runs before a
//! request reaches rmcp or the SSE shim.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::auth::{Identity, TokenStore};
use crate::instrument::TraceParent;
use crate::metrics::Metrics;
use crate::oauth::{GrantedScopes, OAuth, Refusal, Resource, SubjectToken};
use crate::telemetry::{CORRELATION_HEADER, CorrelationId, trace_id_from_traceparent};
use crate::tls::TlsPeer;

/// Host names that are always accepted: loopback. Other names (the compose service names, a
/// Kubernetes Service's DNS names) come from `server.allowed_hosts`, which the deployment's wiring
/// sets (`docker-compose.yml`, `deploy/kubernetes`).
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Shared state of the edge middleware.
#[derive(Debug)]
pub(crate) struct Edge {
    pub(crate) service: String,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) tokens: Option<TokenStore>,
    /// Access tokens from an OAuth issuer (`server.oauth`).
    pub(crate) oauth: Option<Arc<OAuth>>,
    /// `https` when the listener serves TLS: the scheme of this server's canonical URL.
    pub(crate) scheme: &'static str,
    /// Who calls while auth is off: `anonymous`, with `server.anonymous_roles`.
    pub(crate) anonymous: Identity,
    pub(crate) max_body_bytes: usize,
    pub(crate) metrics: Metrics,
}

/// A JSON-RPC error body with a null id, for errors found before a message could be read.
pub(crate) fn jsonrpc_error_response(status: StatusCode, code: i64, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn plain_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Outermost layer: correlation id in, span around the request, correlation id out, HTTP metrics.
pub(crate) async fn correlate(
    State(edge): State<Arc<Edge>>,
    mut req: Request,
    next: Next,
) -> Response {
    let cid = CorrelationId::from_header(
        req.headers()
            .get(CORRELATION_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| trace_id_from_traceparent(v).is_some())
        .map(|v| v.trim().to_owned());
    let trace_id = traceparent
        .as_deref()
        .and_then(trace_id_from_traceparent)
        .map(str::to_owned);
    if let Ok(v) = HeaderValue::from_str(&cid.id) {
        req.headers_mut().insert(CORRELATION_HEADER, v);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http",
        service = %edge.service,
        correlation_id = %cid.id,
        trace_id = trace_id.as_deref().unwrap_or(""),
        method = %method,
        route = %route,
        identity = tracing::field::Empty,
    );
    req.extensions_mut().insert(cid.clone());
    if let Some(t) = traceparent {
        crate::telemetry::continue_trace(&span, &t);
        req.extensions_mut().insert(TraceParent(t));
    }
    let mut resp = next.run(req).instrument(span.clone()).await;
    let code = resp.status().as_u16();
    edge.metrics.record_http(method.as_str(), &route, code);
    if code >= 400 {
        span.in_scope(|| {
            tracing::info!(message = "Request refused.", status = code);
        });
    }
    if let Ok(v) = HeaderValue::from_str(&cid.id) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    resp
}

fn host_of_authority(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        // IPv6 literal: [::1]:8000
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    a.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h.to_owned())
        .unwrap_or(a)
}

impl Edge {
    fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts.iter().any(|h| h == "*" || h == host) || LOOPBACK_HOSTS.contains(&host)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        if self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(&origin))
        {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        if scheme != "http" && scheme != "https" {
            return false;
        }
        let host = host_of_authority(authority);
        // Loopback pages (an Inspector on localhost) are allowed on any port; so are origins whose
        // host was allowed explicitly (without a port) in `allowed_origins`.
        matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1")
            || self.allowed_origins.iter().any(|o| {
                o.split_once("://")
                    .is_some_and(|(s, a)| s == scheme && !a.contains(':') && a == host)
            })
    }
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// DNS-rebinding protection for the MCP endpoints: the Host must be known, and a browser Origin must be allowed.
pub(crate) async fn check_host_origin(
    State(edge): State<Arc<Edge>>,
    req: Request,
    next: Next,
) -> Response {
    let host = header_str(req.headers(), header::HOST)
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    let Some(host) = host else {
        return plain_error(StatusCode::FORBIDDEN, "forbidden: missing Host header");
    };
    let host_name = host_of_authority(&host);
    if !edge.host_allowed(&host_name) {
        return plain_error(
            StatusCode::FORBIDDEN,
            &format!("forbidden: host `{host_name}` is not in server.allowed_hosts"),
        );
    }
    if let Some(origin) = header_str(req.headers(), header::ORIGIN)
        && !edge.origin_allowed(origin)
    {
        return plain_error(
            StatusCode::FORBIDDEN,
            &format!("forbidden: origin `{origin}` is not in server.allowed_origins"),
        );
    }
    next.run(req).await
}

/// rmcp answers a session `DELETE` with 202; clients such as the Python SDK expect 200 or 204 and
/// log a failure otherwise. The session is gone either way, so say 204.
pub(crate) async fn delete_compat(req: Request, next: Next) -> Response {
    let is_delete = req.method() == Method::DELETE;
    let mut resp = next.run(req).await;
    if is_delete && resp.status() == StatusCode::ACCEPTED {
        *resp.status_mut() = StatusCode::NO_CONTENT;
    }
    resp
}

impl Edge {
    /// Whether callers must authenticate (a tokens file or OAuth).
    fn auth_on(&self) -> bool {
        self.tokens.is_some() || self.oauth.is_some()
    }

    /// Who a request is: a recognised static bearer token names the caller, else a valid OAuth
    /// access token does; without a token, a verified TLS client certificate does (its first DNS
    /// name, with no roles, or with `server.anonymous_roles` while auth is off). With auth off
    /// every other caller is `anonymous` (with `server.anonymous_roles`). `Err` says why a
    /// caller is refused. An accepted OAuth access token comes back too (for token exchange).
    async fn identify(
        &self,
        token: Option<&str>,
        certificate: Option<String>,
        resource: &Resource,
    ) -> Result<(Identity, Option<(SubjectToken, GrantedScopes)>), Refusal> {
        if !self.auth_on() {
            return Ok((self.unauthenticated(certificate), None));
        }
        match (token, certificate) {
            (Some(token), _) => {
                if let Some(id) = self.tokens.as_ref().and_then(|s| s.authenticate(token)) {
                    return Ok((id.clone(), None));
                }
                match &self.oauth {
                    Some(oauth) => oauth
                        .authenticate(token, resource)
                        .await
                        .map(|a| (a.identity, Some((SubjectToken::new(token), a.scopes)))),
                    None => Err(Refusal::unauthorized(
                        "unknown_token",
                        "bearer token not recognised",
                    )),
                }
            }
            (None, Some(name)) => Ok((
                Identity {
                    name,
                    roles: Vec::new(),
                },
                None,
            )),
            (None, None) => Err(Refusal::missing("send Authorization: Bearer <token>")),
        }
    }

    /// Who calls while auth is off: a verified client certificate's name, else `anonymous`, both
    /// with `server.anonymous_roles`.
    fn unauthenticated(&self, certificate: Option<String>) -> Identity {
        match certificate {
            Some(name) => Identity {
                name,
                roles: self.anonymous.roles.clone(),
            },
            None => self.anonymous.clone(),
        }
    }

    /// The protected resource a request is for (the canonical URL clients ask tokens for).
    fn resource_of(&self, req: &Request) -> Resource {
        self.resource_at(req.extensions(), req.uri(), req.headers())
    }

    fn resource_of_parts(&self, parts: &http::request::Parts) -> Resource {
        self.resource_at(&parts.extensions, &parts.uri, &parts.headers)
    }

    /// Only OAuth needs to know the resource: without it this is an empty `Resource` (no
    /// allocation on the hot path).
    fn resource_at(
        &self,
        extensions: &http::Extensions,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Resource {
        if self.oauth.is_none() {
            return Resource::default();
        }
        let path = extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| uri.path(), |u| u.0.path());
        let mut parts = path.trim_start_matches('/').split('/');
        let endpoint = match (parts.next(), parts.next()) {
            (Some("mcp" | "sse"), Some(name)) if !name.is_empty() => Some(name.to_owned()),
            (Some("message" | "messages"), _) => None,
            _ => Some(String::new()),
        };
        Resource {
            base: self.base_url(headers),
            endpoint,
        }
    }

    /// This server's public base URL: `server.oauth.resource`, else the request's scheme and Host
    /// (already checked against `server.allowed_hosts`).
    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(r) = self
            .oauth
            .as_ref()
            .and_then(|o| o.config().resource.clone())
        {
            return r.trim_end_matches('/').to_owned();
        }
        let host = header_str(headers, header::HOST).unwrap_or("localhost");
        format!("{}://{}", self.scheme, host.trim().to_ascii_lowercase())
    }

    /// The 401/403 answer for `refusal`, with the `WWW-Authenticate` challenge MCP clients follow
    /// (RFC 9728 `resource_metadata`, RFC 6750 `error` and `scope`), counted by reason.
    fn refuse(&self, refusal: &Refusal, resource: &Resource) -> Response {
        self.metrics.record_auth_failure(refusal.reason);
        let mut resp = plain_error(refusal.status, &refusal.message);
        if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
            return resp;
        }
        let mut challenge = match &self.oauth {
            Some(oauth) => {
                let mut c = format!("Bearer resource_metadata=\"{}\"", resource.metadata_url());
                let needed = refusal.scope.clone().or_else(|| {
                    let s = oauth.config().required_scopes.join(" ");
                    (!s.is_empty()).then_some(s)
                });
                if let Some(scope) = needed {
                    c.push_str(&format!(", scope=\"{}\"", quoted(&scope)));
                }
                c
            }
            None => "Bearer realm=\"mcp\"".to_owned(),
        };
        if let Some(error) = refusal.error {
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                quoted(&refusal.message)
            ));
        }
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// Text safe inside a quoted-string of a `WWW-Authenticate` parameter.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

fn certificate_of(req: &Request) -> Option<String> {
    req.extensions()
        .get::<ConnectInfo<TlsPeer>>()
        .and_then(|c| c.0.certificate_name.clone())
}

/// The bearer token of `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, header::AUTHORIZATION).and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    })
}

/// Bearer authentication (static tokens, then OAuth), then client certificates
/// ([`Edge::identify`]): the caller's [`Identity`] goes into the request's extensions, or the
/// request is refused with 401 (403 for a token without the scope the endpoint needs).
pub(crate) async fn authenticate(
    State(edge): State<Arc<Edge>>,
    mut req: Request,
    next: Next,
) -> Response {
    let certificate = certificate_of(&req);
    let resource = edge.resource_of(&req);
    // Owned: a request body is not `Sync`, so nothing borrowed from it may be held across await.
    let token = bearer(req.headers()).map(str::to_owned);
    let (identity, subject) = match edge
        .identify(token.as_deref(), certificate, &resource)
        .await
    {
        Ok(found) => found,
        Err(refusal) => return edge.refuse(&refusal, &resource),
    };
    tracing::Span::current().record("identity", identity.name.as_str());
    req.extensions_mut().insert(identity);
    if let Some((subject, scopes)) = subject {
        req.extensions_mut().insert(subject);
        req.extensions_mut().insert(scopes);
    }
    next.run(req).await
}

/// RFC 9728 protected resource metadata: `/.well-known/oauth-protected-resource` (the server as
/// a whole), `/…/mcp` and `/…/mcp/<toolset>` (each endpoint); 404 for other paths.
pub(crate) async fn resource_metadata(
    State((edge, endpoints)): State<(Arc<Edge>, Arc<Vec<String>>)>,
    req: Request,
) -> Response {
    let Some(oauth) = &edge.oauth else {
        return plain_error(StatusCode::NOT_FOUND, "OAuth is not configured");
    };
    let base = edge.base_url(req.headers());
    let path = req.uri().path();
    let suffix = path
        .strip_prefix("/.well-known/oauth-protected-resource")
        .unwrap_or_default()
        .trim_end_matches('/');
    let (resource, endpoint) = match suffix {
        "" => (base.clone(), ""),
        "/mcp" => (format!("{base}/mcp"), ""),
        other => match other.strip_prefix("/mcp/") {
            Some(name) if endpoints.iter().any(|e| e == name) => {
                (format!("{base}/mcp/{name}"), name)
            }
            _ => {
                return plain_error(
                    StatusCode::NOT_FOUND,
                    "no such protected resource on this server",
                );
            }
        },
    };
    let doc = crate::oauth::metadata(oauth.config(), &resource, &edge.service, endpoint);
    ([(header::CACHE_CONTROL, "max-age=300")], axum::Json(doc)).into_response()
}

/// How pages that log their users in themselves (master's console: a login form, then a session
/// cookie) establish who a visitor is, with the edge's own rules: found in the request extensions
/// of every route given to [`crate::Runtime::with_pages`].
#[derive(Clone)]
pub struct Login {
    edge: Arc<Edge>,
    certificate: Option<String>,
    tls: bool,
    resource: Resource,
}

impl Login {
    /// The visitor's identity without a token: while auth is off, `anonymous` (with
    /// `server.anonymous_roles`) or a verified client certificate's name; `None` when a token is
    /// needed.
    pub fn without_token(&self) -> Option<Identity> {
        (!self.edge.auth_on()).then(|| self.edge.unauthenticated(self.certificate.clone()))
    }

    /// Whether a login needs a token (static tokens or OAuth are on).
    pub fn needs_token(&self) -> bool {
        self.edge.auth_on()
    }

    /// The identity a bearer token names, exactly as `Authorization: Bearer` on `/mcp` would
    /// (a static token, or an OAuth access token for this server).
    pub async fn with_token(&self, token: &str) -> Option<Identity> {
        let token = token.trim();
        if !self.edge.auth_on() || token.is_empty() {
            return None;
        }
        match self.edge.identify(Some(token), None, &self.resource).await {
            Ok((id, _)) => Some(id),
            Err(refusal) => {
                self.edge.metrics.record_auth_failure(refusal.reason);
                None
            }
        }
    }

    /// Whether the request came over TLS (a cookie set on it must be `Secure`).
    pub fn over_tls(&self) -> bool {
        self.tls
    }
}

/// Puts a [`Login`] into the request's extensions (the routes of [`crate::Runtime::with_pages`]).
pub(crate) async fn offer_login(
    State(edge): State<Arc<Edge>>,
    mut req: Request,
    next: Next,
) -> Response {
    let tls = req.extensions().get::<ConnectInfo<TlsPeer>>().is_some();
    // A token pasted into the login form is checked as one sent to `/mcp`.
    let resource = match edge.oauth {
        Some(_) => Resource {
            base: edge.base_url(req.headers()),
            endpoint: Some(String::new()),
        },
        None => Resource::default(),
    };
    let login = Login {
        edge,
        certificate: certificate_of(&req),
        tls,
        resource,
    };
    req.extensions_mut().insert(login);
    next.run(req).await
}

/// The tool a JSON-RPC `tools/call` body names (`None` for anything else, batches included).
fn called_tool(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params {
        name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Message {
        method: Option<String>,
        params: Option<Params>,
    }
    let m: Message = serde_json::from_slice(body).ok()?;
    (m.method.as_deref() == Some("tools/call"))
        .then_some(m.params?.name)
        .flatten()
}

/// Bounds request bodies (413) and answers a JSON-RPC parse error (-32700) for a POST that is not JSON,
/// so neither reaches a session and the service keeps serving.
pub(crate) async fn limit_body(
    State(edge): State<Arc<Edge>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let declared =
        header_str(req.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        jsonrpc_error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            &format!(
                "request body larger than {} bytes (server.max_body_bytes)",
                edge.max_body_bytes
            ),
        )
    };
    if declared.is_some_and(|n| n > edge.max_body_bytes) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, edge.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        return jsonrpc_error_response(
            StatusCode::BAD_REQUEST,
            -32700,
            &format!("Parse error: request body is not valid JSON ({e})"),
        );
    }
    // Per-tool scopes (`server.oauth.tool_scopes`): only OAuth callers have scopes, and only a
    // `tools/call` names a tool.
    if let (Some(oauth), Some(granted)) = (&edge.oauth, parts.extensions.get::<GrantedScopes>())
        && oauth.has_tool_scopes()
        && let Some(tool) = called_tool(&bytes)
    {
        let resource = edge.resource_of_parts(&parts);
        if let Err(refusal) = oauth.check_tool(&tool, granted, &resource) {
            return edge.refuse(&refusal, &resource);
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(hosts: &[&str], origins: &[&str]) -> Edge {
        Edge {
            service: "t".into(),
            allowed_hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            tokens: None,
            oauth: None,
            scheme: "http",
            anonymous: Identity::anonymous(),
            max_body_bytes: 1024,
            metrics: Metrics::new("t", &prometheus::Registry::new()).unwrap(),
        }
    }

    #[test]
    fn hosts() {
        let e = edge(&["mcp.example.com"], &[]);
        for (authority, ok) in [
            ("localhost:8000", true),
            ("127.0.0.1", true),
            ("[::1]:8012", true),
            // A compose name only where the deployment allows it (server.allowed_hosts).
            ("cmdb:8012", false),
            ("mcp.example.com:443", true),
            ("evil.example.com", false),
            ("127.0.0.1.nip.io:8000", false),
        ] {
            assert_eq!(
                e.host_allowed(&host_of_authority(authority)),
                ok,
                "{authority}"
            );
        }
    }

    #[test]
    fn origins() {
        let e = edge(
            &[],
            &["https://app.example.com", "http://ui.example.com:3000"],
        );
        for (origin, ok) in [
            ("http://localhost:6274", true),
            ("http://127.0.0.1", true),
            ("http://[::1]:3000", true),
            ("https://app.example.com", true),
            ("https://app.example.com:8443", true),
            ("http://app.example.com", false),
            ("http://ui.example.com:3000", true),
            ("http://ui.example.com:3001", false),
            ("https://evil.example.com", false),
            ("null", false),
            ("file://", false),
        ] {
            assert_eq!(e.origin_allowed(origin), ok, "{origin}");
        }
    }
}
