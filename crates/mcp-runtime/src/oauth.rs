//! OAuth 2.1 resource server (the MCP authorization specification, 2025-11-25): access tokens
//! issued by the team's identity provider name the caller.
//!
//! - JWT access tokens are checked against the issuer's JWKS (discovered from RFC 8414 or OpenID
//!   metadata, cached, fetched again on an unknown `kid` at most once per
//!   `jwks_min_refresh_secs`): an algorithm allow-list (never `none`, never HMAC), the key's own
//!   `alg` when it declares one, `iss`, `aud` (this resource, RFC 8707), `exp` and `nbf`.
//! - Opaque tokens go to the introspection endpoint (RFC 7662) when one is configured, with the
//!   resource server's own client credentials (secret from a file); answers are cached briefly.
//! - The identity is `identity_claim` (default `sub`); roles come from `roles_claim` (a JSON array
//!   or a space-separated string; a dotted path such as Keycloak's `realm_access.roles` works) and
//!   from `scope_roles`, a role list per granted scope.
//! - [`metadata`] is the RFC 9728 protected resource metadata document.
//!
//! Every refusal says what was wrong without echoing the token.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Identity;
use crate::config::ConfigError;

/// Algorithms accepted when `algorithms` is not set: every asymmetric JWS algorithm the JWT
/// library verifies. HMAC is never accepted (a public JWKS key must not become an HMAC secret).
const DEFAULT_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// How long an introspection answer is reused (never past the token's `exp`).
const INTROSPECTION_CACHE: Duration = Duration::from_secs(30);
/// At most this many introspection answers are cached; beyond it the cache starts again.
const INTROSPECTION_CACHE_ENTRIES: usize = 10_000;
/// Time limit of one request to the authorization server.
const AS_TIMEOUT: Duration = Duration::from_secs(10);

/// `[server.oauth]`: accept access tokens issued by `issuer` for this resource.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// The authorization server's issuer identifier (`https://idp.example.com/realms/ops`). Its
    /// metadata comes from `/.well-known/oauth-authorization-server` or
    /// `/.well-known/openid-configuration`. `https` is required unless the host is loopback.
    pub issuer: String,
    /// Accepted `aud` values. Default: the canonical URL of the endpoint the request came to
    /// (`<resource>/mcp`, `<resource>/mcp/<toolset>`) or of the whole server (`<resource>`).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// This server's public base URL (`https://mcp.example.com`), as clients reach it. Default: the
    /// scheme and `Host` of each request (the Host is checked against `server.allowed_hosts`).
    pub resource: Option<String>,
    /// The JWKS to verify signatures with, instead of the metadata's `jwks_uri`.
    pub jwks_uri: Option<String>,
    /// Claim holding the caller's roles: a JSON array or a space-separated string; a dotted path
    /// reaches into objects (`realm_access.roles`).
    pub roles_claim: String,
    /// Roles granted per scope, e.g. `{ "mcp:admin" = ["admin", "approver"] }`.
    pub scope_roles: BTreeMap<String, Vec<String>>,
    /// Claim naming the caller (`sub`; `oid` or `preferred_username` for Entra ID). A token
    /// without it is named by its `client_id` (a machine's client-credentials token).
    pub identity_claim: String,
    /// Scopes every token must carry; a token without them gets 403 `insufficient_scope`.
    pub required_scopes: Vec<String>,
    /// Extra scopes a toolset endpoint (`/mcp/<name>`) requires, e.g. `{ ops = ["mcp:admin"] }`.
    pub endpoint_scopes: BTreeMap<String, Vec<String>>,
    /// Scopes listed in the protected resource metadata. Default: the required, endpoint and
    /// `scope_roles` scopes.
    pub scopes_supported: Vec<String>,
    /// RFC 7662 endpoint for opaque (non-JWT) tokens. Default: the metadata's, when
    /// `client_id` is set.
    pub introspection_endpoint: Option<String>,
    /// This resource server's client id at the authorization server (for introspection).
    pub client_id: Option<String>,
    /// File holding the client secret of `client_id`.
    pub client_secret_file: Option<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Accepted JWS algorithms (asymmetric only).
    pub algorithms: Vec<String>,
    /// The JWKS is fetched again after this many seconds (rotated-out keys stop working then).
    pub jwks_cache_secs: u64,
    /// A token signed by an unknown key fetches the JWKS again at most this often (seconds).
    pub jwks_min_refresh_secs: u64,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audience: Vec::new(),
            resource: None,
            jwks_uri: None,
            roles_claim: "roles".to_owned(),
            scope_roles: BTreeMap::new(),
            identity_claim: "sub".to_owned(),
            required_scopes: Vec::new(),
            endpoint_scopes: BTreeMap::new(),
            scopes_supported: Vec::new(),
            introspection_endpoint: None,
            client_id: None,
            client_secret_file: None,
            leeway_secs: 30,
            algorithms: DEFAULT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect(),
            jwks_cache_secs: 300,
            jwks_min_refresh_secs: 10,
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => vec![s],
        Raw::Many(v) => v,
    })
}

/// Whether `url` may be used to reach an authorization server: `https`, or `http` to loopback.
pub fn secure_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = parsed
                .host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "`{url}` must use https (plain http only for loopback)"
                ))
            }
        }
        other => Err(format!("`{url}` has scheme `{other}`; expected https")),
    }
}

fn parse_algorithm(name: &str) -> Option<Algorithm> {
    let alg: Algorithm = name.parse().ok()?;
    (!matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)).then_some(alg)
}

impl OAuthConfig {
    /// Checks that need no network.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("server.oauth.{key}"),
            origin: origin.to_owned(),
            message,
        };
        if self.issuer.trim().is_empty() {
            return Err(invalid(
                "issuer",
                "is required: the authorization server's issuer URL".to_owned(),
            ));
        }
        secure_url(&self.issuer).map_err(|m| invalid("issuer", m))?;
        for (key, url) in [
            ("jwks_uri", &self.jwks_uri),
            ("introspection_endpoint", &self.introspection_endpoint),
        ] {
            if let Some(url) = url {
                secure_url(url).map_err(|m| invalid(key, m))?;
            }
        }
        if let Some(resource) = &self.resource {
            let ok = reqwest::Url::parse(resource)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.fragment().is_none());
            if !ok {
                return Err(invalid(
                    "resource",
                    format!("`{resource}` must be an http(s) URL without a fragment"),
                ));
            }
        }
        if self.algorithms.is_empty() {
            return Err(invalid("algorithms", "must list at least one".to_owned()));
        }
        for a in &self.algorithms {
            if parse_algorithm(a).is_none() {
                return Err(invalid(
                    "algorithms",
                    format!(
                        "`{a}` is not accepted; use asymmetric algorithms only: {}",
                        DEFAULT_ALGORITHMS.join(", ")
                    ),
                ));
            }
        }
        if self.identity_claim.trim().is_empty() {
            return Err(invalid("identity_claim", "must not be empty".to_owned()));
        }
        if self.client_id.is_some() != self.client_secret_file.is_some() {
            return Err(invalid(
                "client_id",
                "client_id and client_secret_file go together".to_owned(),
            ));
        }
        if self.introspection_endpoint.is_some() && self.client_id.is_none() {
            return Err(invalid(
                "introspection_endpoint",
                "needs client_id and client_secret_file (introspection is authenticated)"
                    .to_owned(),
            ));
        }
        if self.jwks_cache_secs == 0 {
            return Err(invalid("jwks_cache_secs", "must be at least 1".to_owned()));
        }
        Ok(())
    }

    /// The scopes listed in the protected resource metadata.
    fn scopes_supported(&self) -> Vec<String> {
        if !self.scopes_supported.is_empty() {
            return self.scopes_supported.clone();
        }
        let mut all: Vec<String> = self
            .required_scopes
            .iter()
            .chain(self.endpoint_scopes.values().flatten())
            .chain(self.scope_roles.keys())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The scopes a request to `endpoint` ("" for `/mcp`) needs.
    fn scopes_for(&self, endpoint: &str) -> Vec<&str> {
        self.required_scopes
            .iter()
            .chain(self.endpoint_scopes.get(endpoint).into_iter().flatten())
            .map(String::as_str)
            .collect()
    }
}

/// The OAuth access token a caller presented, once the edge accepted it: what master exchanges
/// for a downstream's own token (RFC 8693). Kept in memory only; `Debug` never shows it.
#[derive(Clone)]
pub struct SubjectToken(Arc<str>);

impl SubjectToken {
    pub(crate) fn new(token: &str) -> Self {
        Self(Arc::from(token))
    }

    /// The token itself, to send to the authorization server (never to log).
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectToken(..)")
    }
}

/// Why a request was refused at the edge: its HTTP status, the `reason` label of
/// `mcp_auth_failures_total`, and a message for the caller.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    /// The RFC 6750 `error` code for `WWW-Authenticate` (none when no token was sent).
    pub(crate) error: Option<&'static str>,
    /// The scopes the caller needs (`insufficient_scope`).
    pub(crate) scope: Option<String>,
}

impl Refusal {
    pub(crate) fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            reason,
            message: format!("unauthorized: {}", message.into()),
            error: Some("invalid_token"),
            scope: None,
        }
    }

    pub(crate) fn missing(message: impl Into<String>) -> Self {
        Self {
            error: None,
            ..Self::unauthorized("missing", message)
        }
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "unavailable",
            message: format!("authorization server unavailable: {}", message.into()),
            error: None,
            scope: None,
        }
    }
}

/// The protected resource a request is for: its canonical URL and the endpoint name.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    /// `https://mcp.example.com` (no trailing slash).
    pub(crate) base: String,
    /// `""` for `/mcp` (and the API routes), a toolset name for `/mcp/<name>`; `None` where any
    /// of the server's endpoints is right (`/message`, which only carries a session id).
    pub(crate) endpoint: Option<String>,
}

impl Resource {
    /// The endpoint's canonical URL (`<base>/mcp`, `<base>/mcp/<name>`).
    pub(crate) fn url(&self) -> String {
        match self.endpoint.as_deref() {
            None | Some("") => format!("{}/mcp", self.base),
            Some(name) => format!("{}/mcp/{name}", self.base),
        }
    }

    /// Where this endpoint's RFC 9728 metadata is served.
    pub(crate) fn metadata_url(&self) -> String {
        match self.endpoint.as_deref() {
            None | Some("") => format!("{}/.well-known/oauth-protected-resource/mcp", self.base),
            Some(name) => format!(
                "{}/.well-known/oauth-protected-resource/mcp/{name}",
                self.base
            ),
        }
    }
}

/// The RFC 9728 document for `resource` (`resource_url` is what the document names).
pub(crate) fn metadata(
    cfg: &OAuthConfig,
    resource_url: &str,
    service: &str,
    endpoint: &str,
) -> serde_json::Value {
    let mut scopes = cfg.scopes_supported();
    for s in cfg.scopes_for(endpoint) {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    serde_json::json!({
        "resource": resource_url,
        "authorization_servers": [cfg.issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": format!("MCP {service}"),
    })
}

/// Authorization server metadata (RFC 8414 / OpenID Connect Discovery): the fields used here.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
}

/// Where an issuer's metadata may be: RFC 8414's path-inserted form, then OpenID's (inserted,
/// then appended).
fn metadata_urls(issuer: &str) -> Vec<String> {
    let issuer = issuer.trim_end_matches('/');
    let (origin, path) = match issuer.find("://").map(|i| i + 3) {
        Some(start) => match issuer[start..].find('/') {
            Some(p) => issuer.split_at(start + p),
            None => (issuer, ""),
        },
        None => (issuer, ""),
    };
    let mut urls = vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
    ];
    if !path.is_empty() {
        urls.push(format!("{issuer}/.well-known/openid-configuration"));
    }
    urls
}

/// Fetches the issuer's metadata; its `issuer` must be the configured one (RFC 8414 §3.3).
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<ServerMetadata, String> {
    let mut tried = Vec::new();
    for url in metadata_urls(issuer) {
        match http.get(&url).timeout(AS_TIMEOUT).send().await {
            Ok(r) if r.status().is_success() => {
                let meta: ServerMetadata = r
                    .json()
                    .await
                    .map_err(|e| format!("metadata at {url} is not valid JSON ({e})"))?;
                if meta.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                    return Err(format!(
                        "metadata at {url} names issuer `{}`, not the configured `{issuer}`",
                        meta.issuer
                    ));
                }
                return Ok(meta);
            }
            Ok(r) => tried.push(format!("{url}: HTTP {}", r.status().as_u16())),
            Err(e) => tried.push(format!("{url}: {}", without_url(&e))),
        }
    }
    Err(format!("no metadata found ({})", tried.join("; ")))
}

/// A reqwest error's text without the URL (already given by the caller).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_owned()
}

/// One verification key of the JWKS.
struct Key {
    key: DecodingKey,
    /// The `alg` the JWK declares, which a token signed with it must use.
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeyCache {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid` (used for tokens without one).
    anonymous: Vec<Arc<Key>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

/// What the edge knows of the authorization server once it has asked.
#[derive(Default, Clone)]
struct Endpoints {
    jwks_uri: Option<String>,
    introspection: Option<String>,
}

/// Claims of a verified token (JWT payload or introspection answer).
type Claims = serde_json::Map<String, serde_json::Value>;

/// The resource server: validates access tokens and maps them to identities.
pub(crate) struct OAuth {
    cfg: OAuthConfig,
    http: reqwest::Client,
    algorithms: Vec<Algorithm>,
    client_secret: Option<String>,
    endpoints: tokio::sync::OnceCell<Endpoints>,
    keys: RwLock<KeyCache>,
    refresh: tokio::sync::Mutex<()>,
    introspected: Mutex<HashMap<[u8; 32], (Instant, Claims)>>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("issuer", &self.cfg.issuer)
            .finish_non_exhaustive()
    }
}

/// Errors setting the resource server up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    #[error("cannot read server.oauth.client_secret_file {path}: {source}")]
    Secret {
        path: String,
        source: std::io::Error,
    },
    #[error("server.oauth.client_secret_file {path} is empty")]
    EmptySecret { path: String },
}

/// The `alg` and `kid` of a token shaped like a JWT (three segments, the first a base64url JSON
/// object), read without trusting them; `None` for anything else (an opaque token).
fn header_of(token: &str) -> Option<(Option<String>, Option<String>)> {
    let mut parts = token.split('.');
    let (h, _, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h.trim_end_matches('='))
        .ok()?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    let text = |k: &str| header.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some((text("alg"), text("kid")))
}

impl OAuth {
    pub(crate) fn new(cfg: OAuthConfig, http: reqwest::Client) -> Result<Self, OAuthError> {
        let algorithms = cfg
            .algorithms
            .iter()
            .filter_map(|a| parse_algorithm(a))
            .collect();
        let client_secret = match &cfg.client_secret_file {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| OAuthError::Secret {
                    path: shown.clone(),
                    source,
                })?;
                let secret = text.trim().to_owned();
                if secret.is_empty() {
                    return Err(OAuthError::EmptySecret { path: shown });
                }
                Some(secret)
            }
            None => None,
        };
        Ok(Self {
            cfg,
            http,
            algorithms,
            client_secret,
            endpoints: tokio::sync::OnceCell::new(),
            keys: RwLock::new(KeyCache::default()),
            refresh: tokio::sync::Mutex::new(()),
            introspected: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn config(&self) -> &OAuthConfig {
        &self.cfg
    }

    /// The JWKS and introspection URLs: configured, else from the issuer's metadata (asked once;
    /// a failure is asked again on the next token).
    async fn endpoints(&self) -> Result<&Endpoints, Refusal> {
        self.endpoints
            .get_or_try_init(|| async {
                let needs_metadata = self.cfg.jwks_uri.is_none()
                    || (self.cfg.introspection_endpoint.is_none() && self.cfg.client_id.is_some());
                let meta = if needs_metadata {
                    Some(
                        discover(&self.http, &self.cfg.issuer)
                            .await
                            .map_err(|e| {
                                tracing::warn!(message = "OAuth discovery failed.", issuer = %self.cfg.issuer, error = %e);
                                Refusal::unavailable(e)
                            })?,
                    )
                } else {
                    None
                };
                let jwks_uri = self
                    .cfg
                    .jwks_uri
                    .clone()
                    .or_else(|| meta.as_ref().and_then(|m| m.jwks_uri.clone()));
                let introspection = self.cfg.introspection_endpoint.clone().or_else(|| {
                    self.cfg
                        .client_id
                        .as_ref()
                        .and(meta.as_ref().and_then(|m| m.introspection_endpoint.clone()))
                });
                for url in jwks_uri.iter().chain(introspection.iter()) {
                    secure_url(url).map_err(Refusal::unavailable)?;
                }
                Ok(Endpoints {
                    jwks_uri,
                    introspection,
                })
            })
            .await
    }

    /// Fetches the JWKS now (single flight: a caller that waited finds it fresh and returns).
    async fn refresh_keys(&self, jwks_uri: &str, min_age: Duration) -> Result<(), Refusal> {
        let _flight = self.refresh.lock().await;
        {
            let cache = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if cache.attempted.is_some_and(|t| t.elapsed() < min_age) {
                return Ok(());
            }
        }
        let started = Instant::now();
        let fetched = async {
            let r = self
                .http
                .get(jwks_uri)
                .timeout(AS_TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("JWKS at {jwks_uri}: {}", without_url(&e)))?;
            if !r.status().is_success() {
                return Err(format!("JWKS at {jwks_uri}: HTTP {}", r.status().as_u16()));
            }
            #[derive(Deserialize)]
            struct RawSet {
                keys: Vec<serde_json::Value>,
            }
            r.json::<RawSet>()
                .await
                .map_err(|e| format!("JWKS at {jwks_uri} is not a JWK set ({e})"))
        }
        .await;
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        cache.attempted = Some(started);
        let set = fetched.map_err(|e| {
            tracing::warn!(message = "JWKS fetch failed.", error = %e);
            Refusal::unavailable(e)
        })?;
        let mut by_kid = HashMap::new();
        let mut anonymous = Vec::new();
        // A key this library cannot read (another key type) is skipped, not the whole set.
        for jwk in set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        {
            // Encryption keys and symmetric keys never verify an access token.
            let for_signing = !matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            );
            let symmetric = matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            );
            if !for_signing || symmetric {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            // A key that declares an algorithm is used with that one only; one that declares an
            // encryption or unknown algorithm is not a signing key.
            let alg = match jwk.common.key_algorithm {
                None => None,
                Some(a) => match parse_algorithm(&a.to_string()) {
                    Some(a) => Some(a),
                    None => continue,
                },
            };
            let key = Arc::new(Key { key, alg });
            match &jwk.common.key_id {
                Some(kid) => {
                    by_kid.insert(kid.clone(), key);
                }
                None => anonymous.push(key),
            }
        }
        tracing::info!(
            message = "JWKS fetched.",
            keys = by_kid.len() + anonymous.len()
        );
        cache.by_kid = by_kid;
        cache.anonymous = anonymous;
        cache.fetched = Some(started);
        Ok(())
    }

    /// The keys that may have signed a token with `kid` and `alg`, fetching the JWKS when it is
    /// missing, stale, or lacks the kid (rate-limited).
    async fn keys_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<Arc<Key>>, Refusal> {
        let endpoints = self.endpoints().await?;
        let Some(jwks_uri) = endpoints.jwks_uri.as_deref() else {
            return Err(Refusal::unauthorized(
                "unknown_key",
                "the issuer publishes no JWKS (jwks_uri), so JWT access tokens cannot be verified",
            ));
        };
        let lookup = |cache: &KeyCache| -> Vec<Arc<Key>> {
            match kid {
                Some(kid) => cache.by_kid.get(kid).cloned().into_iter().collect(),
                None => cache
                    .anonymous
                    .iter()
                    .chain(cache.by_kid.values())
                    .filter(|k| k.key.family() == alg.family())
                    .cloned()
                    .collect(),
            }
        };
        let (found, stale) = {
            let cache = self.keys.read().unwrap_or_else(|e| e.into_inner());
            let stale = cache
                .fetched
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(self.cfg.jwks_cache_secs));
            (lookup(&cache), stale)
        };
        if stale {
            self.refresh_keys(jwks_uri, Duration::from_secs(1)).await?;
        } else if found.is_empty() {
            self.refresh_keys(
                jwks_uri,
                Duration::from_secs(self.cfg.jwks_min_refresh_secs),
            )
            .await?;
        } else {
            return Ok(found);
        }
        let cache = self.keys.read().unwrap_or_else(|e| e.into_inner());
        Ok(lookup(&cache))
    }

    /// The identity an access token names, for a request to `resource`.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        resource: &Resource,
    ) -> Result<Identity, Refusal> {
        let audiences = self.audiences(resource);
        let claims = match header_of(token) {
            Some((Some(alg), kid)) => {
                self.verify_jwt(token, &alg, kid.as_deref(), &audiences)
                    .await?
            }
            Some((None, _)) => {
                return Err(Refusal::unauthorized(
                    "malformed",
                    "token is not a well-formed JWT (its header names no `alg`)",
                ));
            }
            None => self.introspect(token, &audiences).await?,
        };
        let identity = self.identity_of(&claims)?;
        let needed = self
            .cfg
            .scopes_for(resource.endpoint.as_deref().unwrap_or(""));
        let granted = scopes_of(&claims);
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|s| !granted.contains(*s))
            .collect();
        if !missing.is_empty() {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                reason: "insufficient_scope",
                message: format!("forbidden: this endpoint needs scope {}", missing.join(" ")),
                error: Some("insufficient_scope"),
                scope: Some(needed.join(" ")),
            });
        }
        Ok(identity)
    }

    /// Accepted `aud` values for a request to `resource`.
    fn audiences(&self, resource: &Resource) -> Vec<String> {
        if !self.cfg.audience.is_empty() {
            return self.cfg.audience.clone();
        }
        let base = resource.base.trim_end_matches('/');
        let mut out = vec![base.to_owned(), format!("{base}/")];
        match resource.endpoint.as_deref() {
            Some(_) => out.push(resource.url()),
            // `/message` serves every endpoint's legacy sessions.
            None => {
                out.push(format!("{base}/mcp"));
                for name in self.cfg.endpoint_scopes.keys() {
                    out.push(format!("{base}/mcp/{name}"));
                }
            }
        }
        out
    }

    async fn verify_jwt(
        &self,
        token: &str,
        alg: &str,
        kid: Option<&str>,
        audiences: &[String],
    ) -> Result<Claims, Refusal> {
        let allowed = || self.cfg.algorithms.join(", ");
        let Some(algorithm) = parse_algorithm(alg).filter(|a| self.algorithms.contains(a)) else {
            return Err(Refusal::unauthorized(
                "algorithm",
                format!(
                    "token algorithm `{alg}` is not accepted (accepted: {})",
                    allowed()
                ),
            ));
        };
        let keys = self.keys_for(kid, algorithm).await?;
        if keys.is_empty() {
            return Err(Refusal::unauthorized(
                "unknown_key",
                match kid {
                    Some(kid) => {
                        format!("token signed by key `{kid}`, which is not in the issuer's JWKS")
                    }
                    None => "token has no `kid` and no key of the issuer's JWKS fits it".to_owned(),
                },
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.cfg.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.cfg.issuer.as_str()]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut last = None;
        for key in keys {
            if key.alg.is_some_and(|a| a != algorithm) {
                last = Some(Refusal::unauthorized(
                    "algorithm",
                    format!("token algorithm `{alg}` does not match its key's"),
                ));
                continue;
            }
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    let refusal = self.refusal_of(e.kind(), audiences);
                    let bad_signature = refusal.reason == "signature";
                    last = Some(refusal);
                    if !bad_signature {
                        break;
                    }
                }
            }
        }
        Err(last
            .unwrap_or_else(|| Refusal::unauthorized("signature", "token signature is invalid")))
    }

    fn refusal_of(&self, kind: &jsonwebtoken::errors::ErrorKind, audiences: &[String]) -> Refusal {
        use jsonwebtoken::errors::ErrorKind as K;
        match kind {
            K::ExpiredSignature => Refusal::unauthorized("expired", "token expired"),
            K::ImmatureSignature => {
                Refusal::unauthorized("not_yet_valid", "token is not valid yet (nbf)")
            }
            K::InvalidIssuer => Refusal::unauthorized(
                "issuer",
                format!("token was not issued by {}", self.cfg.issuer),
            ),
            K::InvalidAudience => Refusal::unauthorized(
                "audience",
                format!(
                    "token is meant for another resource (its aud must name {})",
                    audiences
                        .last()
                        .map(String::as_str)
                        .unwrap_or("this server")
                ),
            ),
            K::MissingRequiredClaim(c) => {
                Refusal::unauthorized("claims", format!("token has no `{c}` claim"))
            }
            K::InvalidSignature => Refusal::unauthorized("signature", "token signature is invalid"),
            K::InvalidAlgorithm => {
                Refusal::unauthorized("algorithm", "token algorithm does not match its key")
            }
            K::InvalidClaimFormat(c) => {
                Refusal::unauthorized("claims", format!("token claim `{c}` has the wrong type"))
            }
            _ => Refusal::unauthorized("malformed", "token is not a well-formed JWT"),
        }
    }

    /// RFC 7662: asks the authorization server about an opaque token.
    async fn introspect(&self, token: &str, audiences: &[String]) -> Result<Claims, Refusal> {
        let endpoints = self.endpoints().await?;
        let (Some(url), Some(client_id), Some(secret)) = (
            endpoints.introspection.as_deref(),
            self.cfg.client_id.as_deref(),
            self.client_secret.as_deref(),
        ) else {
            return Err(Refusal::unauthorized(
                "malformed",
                "token is not a JWT (opaque tokens need server.oauth.client_id for introspection)",
            ));
        };
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        let cached = {
            let cache = self.introspected.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(&hash)
                .filter(|(at, c)| {
                    at.elapsed() < INTROSPECTION_CACHE
                        && c.get("exp")
                            .and_then(serde_json::Value::as_u64)
                            .is_none_or(|e| e > now)
                })
                .map(|(_, c)| c.clone())
        };
        let claims = match cached {
            Some(c) => c,
            None => {
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", token)
                    .append_pair("token_type_hint", "access_token")
                    .finish();
                let r = self
                    .http
                    .post(url)
                    .basic_auth(client_id, Some(secret))
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form)
                    .timeout(AS_TIMEOUT)
                    .send()
                    .await
                    .map_err(|e| {
                        Refusal::unavailable(format!("introspection: {}", without_url(&e)))
                    })?;
                if !r.status().is_success() {
                    return Err(Refusal::unavailable(format!(
                        "introspection answered HTTP {}",
                        r.status().as_u16()
                    )));
                }
                let claims: Claims = r.json().await.map_err(|_| {
                    Refusal::unavailable("introspection answer is not a JSON object")
                })?;
                if claims.get("active").and_then(serde_json::Value::as_bool) != Some(true) {
                    return Err(Refusal::unauthorized(
                        "inactive",
                        "token is not active (revoked, expired or unknown to the issuer)",
                    ));
                }
                let mut cache = self.introspected.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= INTROSPECTION_CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(hash, (Instant::now(), claims.clone()));
                claims
            }
        };
        if let Some(iss) = claims.get("iss").and_then(serde_json::Value::as_str)
            && iss.trim_end_matches('/') != self.cfg.issuer.trim_end_matches('/')
        {
            return Err(Refusal::unauthorized(
                "issuer",
                format!("token was not issued by {}", self.cfg.issuer),
            ));
        }
        let aud: HashSet<&str> = match claims.get("aud") {
            Some(serde_json::Value::String(s)) => HashSet::from([s.as_str()]),
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => HashSet::new(),
        };
        if !audiences.iter().any(|a| aud.contains(a.as_str())) {
            return Err(
                self.refusal_of(&jsonwebtoken::errors::ErrorKind::InvalidAudience, audiences)
            );
        }
        if let Some(nbf) = claims.get("nbf").and_then(serde_json::Value::as_u64)
            && nbf > now + self.cfg.leeway_secs
        {
            return Err(self.refusal_of(
                &jsonwebtoken::errors::ErrorKind::ImmatureSignature,
                audiences,
            ));
        }
        Ok(claims)
    }

    fn identity_of(&self, claims: &Claims) -> Result<Identity, Refusal> {
        // A client-credentials token may carry no subject (an introspection answer often has
        // none): the client it was issued to is the caller then.
        let name = claim(claims, &self.cfg.identity_claim)
            .or_else(|| claims.get("client_id"))
            .and_then(|v| match v {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                Refusal::unauthorized(
                    "claims",
                    format!(
                        "token has no `{}` claim to name the caller",
                        self.cfg.identity_claim
                    ),
                )
            })?;
        let mut roles: Vec<String> = match claim(claims, &self.cfg.roles_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        for scope in scopes_of(claims) {
            if let Some(extra) = self.cfg.scope_roles.get(scope) {
                roles.extend(extra.iter().cloned());
            }
        }
        let mut seen = HashSet::new();
        roles.retain(|r| seen.insert(r.clone()));
        Ok(Identity { name, roles })
    }
}

/// The value at a dotted claim path (`realm_access.roles`); a claim whose own name has a dot wins.
fn claim<'a>(claims: &'a Claims, path: &str) -> Option<&'a serde_json::Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

/// Granted scopes: `scope` (space-separated, RFC 9068) or `scp` (Entra ID: string or array).
fn scopes_of(claims: &Claims) -> HashSet<&str> {
    let mut out = HashSet::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(serde_json::Value::String(s)) => out.extend(s.split_whitespace()),
            Some(serde_json::Value::Array(a)) => out.extend(a.iter().filter_map(|v| v.as_str())),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_locations_follow_rfc_8414_then_openid() {
        assert_eq!(
            metadata_urls("https://idp.example.com/realms/ops/"),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server/realms/ops",
                "https://idp.example.com/.well-known/openid-configuration/realms/ops",
                "https://idp.example.com/realms/ops/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_urls("http://127.0.0.1:9000"),
            [
                "http://127.0.0.1:9000/.well-known/oauth-authorization-server",
                "http://127.0.0.1:9000/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn issuer_must_be_https_unless_loopback() {
        let check = |issuer: &str| {
            OAuthConfig {
                issuer: issuer.to_owned(),
                ..OAuthConfig::default()
            }
            .validate("t.toml")
        };
        assert!(check("https://login.microsoftonline.com/tenant/v2.0").is_ok());
        assert!(check("http://127.0.0.1:9000").is_ok());
        assert!(check("http://localhost:8080/realms/x").is_ok());
        assert!(check("http://[::1]:9").is_ok());
        for bad in ["http://idp.example.com", "ftp://x", "", "not a url"] {
            let e = check(bad).unwrap_err().to_string();
            assert!(
                e.contains("server.oauth.issuer") && e.contains("t.toml"),
                "{e}"
            );
        }
        let e = OAuthConfig {
            issuer: "https://idp".into(),
            algorithms: vec!["HS256".into()],
            ..OAuthConfig::default()
        }
        .validate("t")
        .unwrap_err()
        .to_string();
        assert!(e.contains("asymmetric"), "{e}");
    }

    #[test]
    fn roles_come_from_a_claim_path_and_from_scopes() {
        let cfg = OAuthConfig {
            issuer: "https://idp".into(),
            roles_claim: "realm_access.roles".into(),
            scope_roles: BTreeMap::from([(
                "mcp:admin".to_owned(),
                vec!["admin".to_owned(), "approver".to_owned()],
            )]),
            ..OAuthConfig::default()
        };
        let oauth = OAuth::new(cfg, reqwest::Client::new()).unwrap();
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "sub": "u-1",
            "realm_access": { "roles": ["ops", "approver"] },
            "scope": "openid mcp:admin",
        }))
        .unwrap();
        let id = oauth.identity_of(&claims).unwrap();
        assert_eq!(id.name, "u-1");
        assert_eq!(id.roles, ["ops", "approver", "admin"]);
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "scp": ["mcp:admin"], "realm_access": { "roles": "a b" }
        }))
        .unwrap();
        let e = oauth.identity_of(&claims).unwrap_err();
        assert_eq!(e.reason, "claims");
        assert!(e.message.contains("`sub`"), "{}", e.message);
    }

    #[test]
    fn headers_are_read_without_trusting_them() {
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let t = format!("{}.e30.", enc(serde_json::json!({"alg": "none"})));
        assert_eq!(header_of(&t), Some((Some("none".to_owned()), None)));
        assert_eq!(header_of("e30.e30.e30"), Some((None, None)));
        assert_eq!(header_of("opaque-token"), None);
        assert_eq!(header_of("a.b.c.d"), None);
        assert!(parse_algorithm("none").is_none());
        assert!(parse_algorithm("HS256").is_none());
        assert_eq!(parse_algorithm("ES256"), Some(Algorithm::ES256));
    }
}
