//! Bearer-token authentication: identities and roles from a tokens file that stores only SHA-256 hashes.
//!
//! The file is TOML:
//!
//! ```toml
//! [[token]]
//! identity = "alice"
//! roles = ["admin", "approver"]
//! sha256 = "<64 hex digits: sha256 of the token>"
//! ```
//!
//! `mcp-stack hash-token` prints the hash of a token read from standard input.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who is calling, as established at the edge. Handlers find it in the request's `http::request::Parts` extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Stable name of the caller (`anonymous` when auth is off).
    pub name: String,
    /// Roles granted to the caller.
    pub roles: Vec<String>,
}

impl Identity {
    /// The identity used when auth is off.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".to_owned(),
            roles: Vec::new(),
        }
    }

    /// An identity named `name` holding `roles`.
    pub fn new(name: impl Into<String>, roles: &[&str]) -> Self {
        Self {
            name: name.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// Whether the identity holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Errors reading a tokens file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid tokens file {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    identity: String,
    #[serde(default)]
    roles: Vec<String>,
    sha256: String,
}

/// The set of accepted tokens, keyed by their SHA-256 hash.
#[derive(Debug, Clone, Default)]
pub struct TokenStore {
    by_hash: Arc<HashMap<[u8; 32], Identity>>,
}

impl TokenStore {
    /// Loads a tokens file. An empty file is an error: it would silently turn auth off.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses tokens-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, AuthError> {
        let invalid = |message: String| AuthError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let file: TokensFile = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        if file.token.is_empty() {
            return Err(invalid("no [[token]] entries".to_owned()));
        }
        let mut by_hash = HashMap::new();
        for (i, t) in file.token.into_iter().enumerate() {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(t.sha256.trim(), &mut hash).map_err(|_| {
                invalid(format!(
                    "token[{i}].sha256 must be 64 hex digits (sha256 of the token)"
                ))
            })?;
            if t.identity.trim().is_empty() {
                return Err(invalid(format!("token[{i}].identity is empty")));
            }
            let identity = Identity {
                name: t.identity,
                roles: t.roles,
            };
            if by_hash.insert(hash, identity).is_some() {
                return Err(invalid(format!(
                    "token[{i}] repeats the hash of an earlier token"
                )));
            }
        }
        Ok(Self {
            by_hash: Arc::new(by_hash),
        })
    }

    /// The identity holding `token`, if any. The token is hashed first, so lookup time does not
    /// depend on how much of a guessed token matches a real one.
    pub fn authenticate(&self, token: &str) -> Option<&Identity> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&hash)
    }

    /// Number of configured tokens.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Hex SHA-256 of a token, the form stored in the tokens file.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticates_by_hash_only() {
        let text = format!(
            "[[token]]\nidentity = \"alice\"\nroles = [\"admin\"]\nsha256 = \"{}\"\n",
            hash_token("s3cret-token")
        );
        let store = TokenStore::parse(&text, "t.toml").unwrap();
        let id = store.authenticate("s3cret-token").unwrap();
        assert_eq!(id.name, "alice");
        assert!(id.has_role("admin"));
        assert!(store.authenticate("s3cret-tokeN").is_none());
        assert!(store.authenticate("").is_none());
    }

    #[test]
    fn rejects_bad_files() {
        for (text, needle) in [
            ("", "no [[token]]"),
            ("[[token]]\nidentity=\"a\"\nsha256=\"zz\"", "64 hex"),
            ("[[token]]\nidentity=\"a\"\nsha256=\"00\"\nrole=[]", "role"),
        ] {
            let err = TokenStore::parse(text, "t.toml").unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("t.toml"), "{err}");
        }
    }
}
