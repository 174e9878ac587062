//! Finding the authorization server's metadata (RFC 8414, OpenID Connect Discovery) and keeping
//! its signing keys: the JWKS read once, again after `jwks_cache_secs`, and again — at most once
//! per `jwks_min_refresh_secs`, one fetch at a time — when a token names a key it does not hold.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::config::{parse_algorithm, secure_url};
use super::{AS_TIMEOUT, OAuth, OAuthError, Refusal};

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
pub(super) fn metadata_urls(issuer: &str) -> Vec<String> {
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
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<ServerMetadata, OAuthError> {
    let mut tried = Vec::new();
    for url in metadata_urls(issuer) {
        match http.get(&url).timeout(AS_TIMEOUT).send().await {
            Ok(r) if r.status().is_success() => {
                let meta: ServerMetadata = r.json().await.map_err(|e| {
                    OAuthError::Metadata(format!("metadata at {url} is not valid JSON ({e})"))
                })?;
                if meta.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                    return Err(OAuthError::Metadata(format!(
                        "metadata at {url} names issuer `{}`, not the configured `{issuer}`",
                        meta.issuer
                    )));
                }
                return Ok(meta);
            }
            Ok(r) => tried.push(format!("{url}: HTTP {}", r.status().as_u16())),
            Err(e) => tried.push(format!("{url}: {}", http_failure(&e))),
        }
    }
    Err(OAuthError::Metadata(format!(
        "no metadata found ({})",
        tried.join("; ")
    )))
}

/// What went wrong with a request to an authorization server, in words, without the URL (the
/// caller names it) or anything else from the error.
pub fn http_failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// One verification key of the JWKS.
pub(super) struct Key {
    pub(super) key: DecodingKey,
    /// The `alg` the JWK declares, which a token signed with it must use.
    pub(super) alg: Option<Algorithm>,
}

#[derive(Default)]
pub(super) struct KeyCache {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid` (used for tokens without one).
    anonymous: Vec<Arc<Key>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

/// What the edge knows of the authorization server once it has asked.
#[derive(Default, Clone)]
pub(super) struct Endpoints {
    pub(super) jwks_uri: Option<String>,
    pub(super) introspection: Option<String>,
}

impl OAuth {
    /// The JWKS and introspection URLs: configured, else from the issuer's metadata (asked once;
    /// a failure is asked again on the next token).
    pub(super) async fn endpoints(&self) -> Result<&Endpoints, Refusal> {
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
                                Refusal::unavailable(e.to_string())
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
                    secure_url(url).map_err(|e| Refusal::unavailable(e.to_string()))?;
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
        if self.attempted_within(min_age) {
            return Ok(());
        }
        self.fetch_keys(jwks_uri).await
    }

    /// Whether the key set was asked for less than `age` ago.
    fn attempted_within(&self, age: Duration) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .attempted
            .is_some_and(|t| t.elapsed() < age)
    }

    /// Reads the key set now; the caller holds `refresh`.
    async fn fetch_keys(&self, jwks_uri: &str) -> Result<(), Refusal> {
        let started = Instant::now();
        let fetched = async {
            let r = self
                .http
                .get(jwks_uri)
                .timeout(AS_TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("JWKS at {jwks_uri}: {}", http_failure(&e)))?;
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
        // Tokens accepted under the previous key set are checked again under this one.
        self.verified
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// The keys that may have signed a token with `kid` and `alg`, fetching the JWKS when it is
    /// missing, stale, or lacks the kid (rate-limited).
    pub(super) async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<Arc<Key>>, Refusal> {
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
        let min_refresh = Duration::from_secs(self.cfg.jwks_min_refresh_secs);
        let held = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .fetched
            .is_some();
        if stale && held {
            // Keys already held stay good while the issuer is slow or down: one request reads
            // the set again (at most once per `jwks_min_refresh_secs`), the others do not wait.
            if let Ok(_flight) = self.refresh.try_lock()
                && !self.attempted_within(min_refresh)
                && let Err(e) = self.fetch_keys(jwks_uri).await
            {
                tracing::warn!(message = "Keeping the JWKS held; reading it again failed.", error = %e.message);
            }
            // Looked up again below: a key the new set dropped is not used once more.
        } else if stale {
            self.refresh_keys(jwks_uri, Duration::from_secs(1)).await?;
        } else if found.is_empty() {
            self.refresh_keys(jwks_uri, min_refresh).await?;
        } else {
            return Ok(found);
        }
        let cache = self.keys.read().unwrap_or_else(|e| e.into_inner());
        Ok(lookup(&cache))
    }
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
}
