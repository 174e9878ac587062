//! How master proves itself to an HTTP downstream (`auth` of `[[master.downstream]]`):
//!
//! - `none`: nothing; `static`: the headers of `headers_from_file` (the default when it is set);
//! - `client_credentials`: master's own access token from the issuer (OAuth 2.1 client
//!   credentials grant), for the downstream's resource (RFC 8707), cached until shortly before
//!   it expires;
//! - `token_exchange`: each caller's access token exchanged (RFC 8693) for one whose audience is
//!   the downstream, cached per caller until shortly before it expires. Master's own requests
//!   (initialize, listings, pings) and calls that have no caller's token (workflow steps,
//!   approved calls, static-token callers) go with master's client-credentials token.
//!
//! The issuer is `oauth.issuer`, else `[server.oauth]`'s, else the first authorization server of
//! the downstream's RFC 9728 metadata. The client's own token is never sent downstream (the MCP
//! authorization spec forbids passing it through). Secrets come from files; no token or secret
//! appears in a log line, an error or a message.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_runtime::oauth::{SubjectToken, discover, http_failure, secure_url};

use crate::config::ConfigInvalid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `_meta` key naming the per-call credential of a forwarded call (a random reference, never
/// the token); the HTTP client looks the token up and strips the key before sending.
pub(crate) const CREDENTIAL_META_KEY: &str = "io.mcp-suite/credential";

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(30);
/// Exchanged tokens kept at most; beyond it the cache starts again.
const MAX_EXCHANGED: usize = 10_000;
/// Time limit of one request to the authorization server or for metadata.
const AS_TIMEOUT: Duration = Duration::from_secs(10);

/// `auth` of a downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    None,
    Static,
    ClientCredentials,
    TokenExchange,
}

/// How master authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// The id and secret as form fields.
    ClientSecretPost,
}

/// `oauth = { … }` of a downstream: master's client at the issuer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DownstreamOAuth {
    /// Master's client id at the issuer.
    pub client_id: String,
    /// File holding its client secret (a Docker secret).
    pub client_secret_file: PathBuf,
    /// The authorization server; default `[server.oauth]`'s issuer, else the downstream's RFC 9728
    /// metadata.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The resource (RFC 8707) tokens are asked for; default the downstream's metadata's
    /// `resource`, else its URL.
    #[serde(default)]
    pub resource: Option<String>,
    /// Scopes to ask for (space-separated).
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth: TokenEndpointAuth,
}

/// Why master has no token for a downstream (safe to show: never a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot get a token for downstream `{downstream}`: {reason}")]
pub struct CredentialError {
    downstream: String,
    reason: String,
}

#[derive(Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
}

impl Cached {
    fn fresh(&self) -> Option<&str> {
        (Instant::now() < self.renew_at).then_some(self.token.as_str())
    }
}

/// Where tokens come from, found once.
struct Endpoint {
    token_endpoint: String,
    resource: String,
}

/// One downstream's OAuth credentials.
pub struct Credentials {
    downstream: String,
    url: String,
    mode: AuthMode,
    cfg: DownstreamOAuth,
    issuer: Option<String>,
    secret: String,
    http: reqwest::Client,
    endpoint: tokio::sync::OnceCell<Endpoint>,
    own: tokio::sync::Mutex<Option<Cached>>,
    exchanged: Mutex<HashMap<[u8; 32], Cached>>,
    /// Per-call tokens of calls in flight, by the reference in their `_meta`.
    in_flight: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("downstream", &self.downstream)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The credentials of downstream `name` at `url`, for `client_credentials` and
    /// `token_exchange`. Reads the secret now (a missing file is a start-up error).
    pub fn new(
        name: &str,
        url: &str,
        mode: AuthMode,
        cfg: &DownstreamOAuth,
        default_issuer: Option<&str>,
        http: reqwest::Client,
    ) -> Result<Self, ConfigInvalid> {
        let invalid = |m: String| ConfigInvalid(format!("downstream `{name}`: {m}"));
        let secret = mcp_runtime::files::read_secret(&cfg.client_secret_file)
            .map_err(|e| invalid(format!("oauth.client_secret_file: {e}")))?;
        if cfg.client_id.trim().is_empty() {
            return Err(invalid("oauth.client_id is empty".to_owned()));
        }
        let issuer = cfg
            .issuer
            .clone()
            .or_else(|| default_issuer.map(str::to_owned));
        if let Some(i) = &issuer {
            secure_url(i).map_err(|m| invalid(format!("oauth.issuer {m}")))?;
        }
        Ok(Self {
            downstream: name.to_owned(),
            url: url.to_owned(),
            mode,
            cfg: cfg.clone(),
            issuer,
            secret,
            http,
            endpoint: tokio::sync::OnceCell::new(),
            own: tokio::sync::Mutex::new(None),
            exchanged: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// Whether callers' tokens are exchanged for this downstream.
    pub fn exchanges(&self) -> bool {
        self.mode == AuthMode::TokenExchange
    }

    fn error(&self, reason: impl Into<String>) -> CredentialError {
        CredentialError {
            downstream: self.downstream.clone(),
            reason: reason.into(),
        }
    }

    /// The token endpoint and resource, found once: the issuer's metadata, the issuer being
    /// configured or named by the downstream's protected resource metadata.
    async fn endpoint(&self) -> Result<&Endpoint, CredentialError> {
        self.endpoint
            .get_or_try_init(|| async {
                let prm = match (&self.issuer, &self.cfg.resource) {
                    (Some(_), Some(_)) => None,
                    _ => self.resource_metadata().await,
                };
                let issuer = match (&self.issuer, &prm) {
                    (Some(i), _) => i.clone(),
                    (None, Some(m)) => m
                        .authorization_servers
                        .first()
                        .cloned()
                        .ok_or_else(|| self.error("its protected resource metadata names no authorization server"))?,
                    (None, None) => {
                        return Err(self.error(
                            "no issuer: set oauth.issuer or [server.oauth], or serve RFC 9728 metadata at the downstream",
                        ));
                    }
                };
                secure_url(&issuer).map_err(|m| self.error(format!("issuer {m}")))?;
                let meta = discover(&self.http, &issuer)
                    .await
                    .map_err(|e| self.error(e.to_string()))?;
                let token_endpoint = meta
                    .token_endpoint
                    .ok_or_else(|| self.error(format!("{issuer} publishes no token_endpoint")))?;
                secure_url(&token_endpoint).map_err(|m| self.error(format!("token endpoint {m}")))?;
                let resource = self
                    .cfg
                    .resource
                    .clone()
                    .or_else(|| prm.and_then(|m| m.resource))
                    .unwrap_or_else(|| self.url.clone());
                Ok(Endpoint {
                    token_endpoint,
                    resource,
                })
            })
            .await
    }

    /// The downstream's RFC 9728 metadata: the path form for its URL, then the root form.
    async fn resource_metadata(&self) -> Option<ResourceMetadata> {
        let url = reqwest::Url::parse(&self.url).ok()?;
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/');
        let mut candidates = Vec::new();
        if !path.is_empty() {
            candidates.push(format!(
                "{origin}/.well-known/oauth-protected-resource{path}"
            ));
        }
        candidates.push(format!("{origin}/.well-known/oauth-protected-resource"));
        for c in candidates {
            if let Ok(r) = self.http.get(&c).timeout(AS_TIMEOUT).send().await
                && r.status().is_success()
                && let Ok(m) = r.json::<ResourceMetadata>().await
            {
                return Some(m);
            }
        }
        None
    }

    /// Asks the token endpoint; the token and how long it lives.
    async fn token(&self, grant: &[(&str, &str)]) -> Result<Cached, CredentialError> {
        let endpoint = self.endpoint().await?;
        // Built apart: the form serializer may not be held across an await (it is not `Send`).
        let post = self.cfg.token_endpoint_auth == TokenEndpointAuth::ClientSecretPost;
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in grant {
                form.append_pair(k, v);
            }
            form.append_pair("resource", &endpoint.resource);
            if let Some(scope) = &self.cfg.scope {
                form.append_pair("scope", scope);
            }
            if post {
                form.append_pair("client_id", &self.cfg.client_id);
                form.append_pair("client_secret", &self.secret);
            }
            form.finish()
        };
        let mut req = self
            .http
            .post(&endpoint.token_endpoint)
            .timeout(AS_TIMEOUT)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if !post {
            // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&self.cfg.client_id), Some(enc(&self.secret)));
        }
        let started = Instant::now();
        let r = req.body(body).send().await.map_err(|e| {
            self.error(format!("token endpoint unreachable ({})", http_failure(&e)))
        })?;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or("no error code");
            let described = body["error_description"]
                .as_str()
                .map(|d| format!(": {}", d.chars().take(200).collect::<String>()))
                .unwrap_or_default();
            return Err(self.error(format!(
                "token endpoint answered HTTP {} {error}{described}",
                status.as_u16()
            )));
        }
        let token = body["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.error("token endpoint answered without access_token"))?
            .to_owned();
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(300));
        Ok(Cached {
            token,
            renew_at: started + lifetime.saturating_sub(RENEW_BEFORE),
        })
    }

    /// Master's own token for this downstream (client credentials), renewed before it expires.
    pub async fn own_token(&self) -> Result<String, CredentialError> {
        let mut own = self.own.lock().await;
        if let Some(t) = own.as_ref().and_then(Cached::fresh) {
            return Ok(t.to_owned());
        }
        let fresh = self.token(&[("grant_type", "client_credentials")]).await?;
        let token = fresh.token.clone();
        *own = Some(fresh);
        tracing::info!(message = "Downstream token obtained.", downstream = %self.downstream, grant = "client_credentials");
        Ok(token)
    }

    /// A token for this downstream on behalf of the caller whose token is `subject` (RFC 8693).
    pub async fn exchange(&self, subject: &SubjectToken) -> Result<String, CredentialError> {
        let key: [u8; 32] = Sha256::digest(subject.secret().as_bytes()).into();
        if let Some(t) = self
            .exchanged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .and_then(Cached::fresh)
        {
            return Ok(t.to_owned());
        }
        let fresh = self
            .token(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", subject.secret()),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ])
            .await?;
        let token = fresh.token.clone();
        let mut cache = self.exchanged.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_EXCHANGED {
            cache.retain(|_, c| c.fresh().is_some());
            if cache.len() >= MAX_EXCHANGED {
                cache.clear();
            }
        }
        cache.insert(key, fresh);
        Ok(token)
    }

    /// Holds `token` for one call in flight; its reference goes into the call's `_meta`, and the
    /// token is forgotten when the returned guard drops.
    pub(crate) fn hold(&self, token: String) -> Held<'_> {
        let reference = uuid::Uuid::new_v4().simple().to_string();
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.clone(), token);
        Held {
            credentials: self,
            reference,
        }
    }

    /// The token of the call in flight whose reference is `reference`.
    pub(crate) fn held(&self, reference: &str) -> Option<String> {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reference)
            .cloned()
    }
}

/// A per-call token held while its call is in flight.
pub(crate) struct Held<'a> {
    credentials: &'a Credentials,
    pub(crate) reference: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.credentials
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.reference);
    }
}

#[derive(Deserialize)]
struct ResourceMetadata {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth(secret: &std::path::Path) -> DownstreamOAuth {
        DownstreamOAuth {
            client_id: "mcp-master".into(),
            client_secret_file: secret.to_owned(),
            issuer: None,
            resource: None,
            scope: None,
            token_endpoint_auth: TokenEndpointAuth::default(),
        }
    }

    fn make(cfg: &DownstreamOAuth, issuer: Option<&str>) -> Result<Credentials, String> {
        Credentials::new(
            "inv",
            "https://inv.example.com/mcp",
            AuthMode::ClientCredentials,
            cfg,
            issuer,
            reqwest::Client::new(),
        )
        .map_err(|e| e.0)
    }

    #[test]
    fn secrets_and_issuers_are_checked_at_start_without_showing_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        let e = make(&oauth(&secret), None).unwrap_err();
        assert!(
            e.contains("downstream `inv`") && e.contains("cannot read"),
            "{e}"
        );
        std::fs::write(&secret, "\n").unwrap();
        let e = make(&oauth(&secret), None).unwrap_err();
        assert!(e.contains("is empty"), "{e}");
        std::fs::write(&secret, "s3cret-value\n").unwrap();
        let e = make(&oauth(&secret), Some("http://idp.example.com")).unwrap_err();
        assert!(e.contains("must use https") && !e.contains("s3cret"), "{e}");
        let c = make(&oauth(&secret), Some("https://idp.example.com")).unwrap();
        assert!(!c.exchanges());
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn a_held_token_lives_as_long_as_its_call() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "x").unwrap();
        let c = make(&oauth(&secret), Some("https://idp.example.com")).unwrap();
        let reference = {
            let held = c.hold("exchanged-token".into());
            assert_eq!(c.held(&held.reference).as_deref(), Some("exchanged-token"));
            held.reference.clone()
        };
        assert_eq!(c.held(&reference), None);
    }
}
