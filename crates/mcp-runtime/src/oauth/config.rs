//! `[server.oauth]`: what the resource server accepts, checked without network, and the URL rule
//! every request to an authorization server follows (`https`, or `http` to loopback).

use std::collections::BTreeMap;
use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use super::OAuthError;
use crate::config::ConfigError;

/// Algorithms accepted when `algorithms` is not set: every asymmetric JWS algorithm the JWT
/// library verifies. HMAC is never accepted (a public JWKS key must not become an HMAC secret).
const DEFAULT_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

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
    /// Extra scopes a `tools/call` of a matching tool requires (glob → scopes), e.g.
    /// `{ "linux_*" = ["mcp:admin"] }`: without them the call gets 403 `insufficient_scope`, and
    /// the client can ask for more (step-up).
    pub tool_scopes: BTreeMap<String, Vec<String>>,
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
            tool_scopes: BTreeMap::new(),
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
pub fn secure_url(url: &str) -> Result<(), OAuthError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| OAuthError::Url(format!("`{url}` is not a URL ({e})")))?;
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
                Err(OAuthError::Url(format!(
                    "`{url}` must use https (plain http only for loopback)"
                )))
            }
        }
        other => Err(OAuthError::Url(format!(
            "`{url}` has scheme `{other}`; expected https"
        ))),
    }
}

pub(super) fn parse_algorithm(name: &str) -> Option<Algorithm> {
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
        secure_url(&self.issuer).map_err(|m| invalid("issuer", m.to_string()))?;
        for (key, url) in [
            ("jwks_uri", &self.jwks_uri),
            ("introspection_endpoint", &self.introspection_endpoint),
        ] {
            if let Some(url) = url {
                secure_url(url).map_err(|m| invalid(key, m.to_string()))?;
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
        for pattern in self.tool_scopes.keys() {
            globset::Glob::new(pattern)
                .map_err(|e| invalid("tool_scopes", format!("`{pattern}` is not a glob ({e})")))?;
        }
        if self.jwks_cache_secs == 0 {
            return Err(invalid("jwks_cache_secs", "must be at least 1".to_owned()));
        }
        Ok(())
    }

    /// The scopes listed in the protected resource metadata.
    pub(super) fn scopes_supported(&self) -> Vec<String> {
        if !self.scopes_supported.is_empty() {
            return self.scopes_supported.clone();
        }
        let mut all: Vec<String> = self
            .required_scopes
            .iter()
            .chain(self.endpoint_scopes.values().flatten())
            .chain(self.tool_scopes.values().flatten())
            .chain(self.scope_roles.keys())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The scopes a request to `endpoint` ("" for `/mcp`) needs.
    pub(super) fn scopes_for(&self, endpoint: &str) -> Vec<&str> {
        self.required_scopes
            .iter()
            .chain(self.endpoint_scopes.get(endpoint).into_iter().flatten())
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
