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

mod config;
mod keys;
mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::auth::Identity;

use config::parse_algorithm;
use jsonwebtoken::Algorithm;
use keys::{Endpoints, KeyCache};

pub use config::{OAuthConfig, secure_url};
pub use keys::{ServerMetadata, discover, http_failure};

/// How long a token accepted by introspection is remembered (never past its `exp`).
const INTROSPECTION_CACHE: Duration = Duration::from_secs(30);
/// Time limit of one request to the authorization server.
const AS_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// 403: `what` (this endpoint, a tool) needs scopes the token lacks (`missing`); the
    /// challenge names every scope the request needs (`needed`), so a client asks for all at once.
    fn insufficient_scope(what: &str, missing: &[&str], needed: &[&str]) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason: "insufficient_scope",
            message: format!("forbidden: {what} needs scope {}", missing.join(" ")),
            error: Some("insufficient_scope"),
            scope: Some(needed.join(" ")),
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

/// The protected resource a request is for: its canonical URL and the endpoint name (empty while
/// OAuth is off: nothing reads it then).
#[derive(Debug, Clone, Default)]
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
    /// Tokens already accepted for a resource, by the SHA-256 of token and resource: a client
    /// sends the same token with every request, and its signature need not be checked each time.
    /// Emptied whenever the key set is read again, so a rotated-out key stops working then, as
    /// it would without this cache.
    pub(super) verified: RwLock<HashMap<[u8; 32], Verified>>,
    /// `tool_scopes`, compiled.
    tool_scopes: Vec<(globset::GlobMatcher, Vec<String>)>,
    /// The server's toolset endpoints (`/mcp/<name>`): `/message`, which carries only a session
    /// id, takes a token for any of them.
    endpoint_names: Vec<String>,
}

/// An accepted OAuth caller: who, and the scopes the token grants (for per-tool scopes).
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) identity: Identity,
    pub(crate) scopes: GrantedScopes,
}

/// The scopes an accepted OAuth token grants, in the request's extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct GrantedScopes(pub(crate) Arc<[String]>);

impl GrantedScopes {
    /// Those of `needed` this token was not granted.
    fn missing<'a>(&self, needed: &[&'a str]) -> Vec<&'a str> {
        needed
            .iter()
            .copied()
            .filter(|s| !self.0.iter().any(|g| g == s))
            .collect()
    }
}

/// An accepted token's caller, until its `exp` (plus leeway) or [`VERIFIED_FOR`], whichever
/// comes first.
#[derive(Clone)]
pub(super) struct Verified {
    caller: Authenticated,
    until: u64,
}

/// Longest an accepted token is reused without checking its signature again (seconds).
const VERIFIED_FOR: u64 = 300;
/// Accepted tokens remembered at most; beyond it the cache starts again.
const VERIFIED_ENTRIES: usize = 10_000;

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
    #[error("server.oauth.client_secret_file: {0}")]
    Secret(#[from] crate::files::SecretFileError),
    /// An authorization server URL that is neither `https` nor `http` to loopback.
    #[error("{0}")]
    Url(String),
    /// The issuer's metadata could not be read, or names another issuer.
    #[error("{0}")]
    Metadata(String),
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
    pub(crate) fn new(
        cfg: OAuthConfig,
        http: reqwest::Client,
        endpoint_names: Vec<String>,
    ) -> Result<Self, OAuthError> {
        // Checked by `OAuthConfig::validate`; a pattern that still fails matches nothing.
        let tool_scopes = cfg
            .tool_scopes
            .iter()
            .filter_map(|(p, s)| {
                globset::Glob::new(p)
                    .ok()
                    .map(|g| (g.compile_matcher(), s.clone()))
            })
            .collect();
        let algorithms = cfg
            .algorithms
            .iter()
            .filter_map(|a| parse_algorithm(a))
            .collect();
        let client_secret = cfg
            .client_secret_file
            .as_deref()
            .map(crate::files::read_secret)
            .transpose()?;
        Ok(Self {
            cfg,
            http,
            algorithms,
            client_secret,
            endpoints: tokio::sync::OnceCell::new(),
            keys: RwLock::new(KeyCache::default()),
            refresh: tokio::sync::Mutex::new(()),
            verified: RwLock::new(HashMap::new()),
            tool_scopes,
            endpoint_names,
        })
    }

    pub(crate) fn config(&self) -> &OAuthConfig {
        &self.cfg
    }

    /// The identity an access token names, for a request to `resource`.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        resource: &Resource,
    ) -> Result<Authenticated, Refusal> {
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(token.as_bytes());
            h.update([0]);
            h.update(resource.base.as_bytes());
            h.update([0]);
            h.update(
                resource
                    .endpoint
                    .as_deref()
                    .unwrap_or("\u{0}any")
                    .as_bytes(),
            );
            h.finalize().into()
        };
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(v) = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|v| v.until > now)
        {
            return Ok(v.caller.clone());
        }
        let audiences = self.audiences(resource);
        let jwt = header_of(token);
        let is_jwt = jwt.is_some();
        let claims = match jwt {
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
        let caller = Authenticated {
            identity: self.identity_of(&claims)?,
            scopes: GrantedScopes(scopes_of(&claims).into_iter().map(str::to_owned).collect()),
        };
        let needed = self
            .cfg
            .scopes_for(resource.endpoint.as_deref().unwrap_or(""));
        let missing = caller.scopes.missing(&needed);
        if !missing.is_empty() {
            return Err(Refusal::insufficient_scope(
                "this endpoint",
                &missing,
                &needed,
            ));
        }
        let lifetime = if is_jwt {
            VERIFIED_FOR
        } else {
            INTROSPECTION_CACHE.as_secs()
        };
        let until = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .map_or(now + lifetime, |exp| {
                (exp + self.cfg.leeway_secs).min(now + lifetime)
            });
        let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_ENTRIES {
            verified.retain(|_, v| v.until > now);
            if verified.len() >= VERIFIED_ENTRIES {
                verified.clear();
            }
        }
        verified.insert(
            key,
            Verified {
                caller: caller.clone(),
                until,
            },
        );
        Ok(caller)
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
                for name in &self.endpoint_names {
                    out.push(format!("{base}/mcp/{name}"));
                }
            }
        }
        out
    }

    /// For a `tools/call` of `tool` by a caller granted `granted`: the refusal when a
    /// `tool_scopes` pattern matching the tool asks for a scope the token lacks (403, with every
    /// scope the call needs, so the client can ask for them all at once).
    pub(crate) fn check_tool(
        &self,
        tool: &str,
        granted: &GrantedScopes,
        resource: &Resource,
    ) -> Result<(), Refusal> {
        let mut needed: Vec<&str> = Vec::new();
        for (glob, scopes) in &self.tool_scopes {
            if glob.is_match(tool) {
                needed.extend(scopes.iter().map(String::as_str));
            }
        }
        let missing = granted.missing(&needed);
        if missing.is_empty() {
            return Ok(());
        }
        let mut all = self
            .cfg
            .scopes_for(resource.endpoint.as_deref().unwrap_or(""));
        for s in needed {
            if !all.contains(&s) {
                all.push(s);
            }
        }
        Err(Refusal::insufficient_scope(
            &format!("tool `{tool}`"),
            &missing,
            &all,
        ))
    }

    /// Whether any tool needs scopes of its own (then `tools/call` bodies are looked at).
    pub(crate) fn has_tool_scopes(&self) -> bool {
        !self.tool_scopes.is_empty()
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
    use std::collections::BTreeMap;

    use super::*;

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
        let oauth = OAuth::new(cfg, reqwest::Client::new(), Vec::new()).unwrap();
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
