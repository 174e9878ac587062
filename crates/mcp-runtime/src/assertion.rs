//! Identity assertions: master tells a service who the real caller is, signed with an HMAC key that
//! both read from a secret file. The assertion travels in the request's `_meta` (one downstream
//! session carries many callers, and `_meta` crosses every transport, stdio included).
//! A service configured with the same key trusts a valid, fresh assertion over its own edge identity.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::Identity;

/// Key under `_meta` carrying the assertion.
pub const IDENTITY_META_KEY: &str = "io.mcp-suite/identity";
/// HTTP header carrying the same assertion (JSON) on streamable-HTTP requests.
pub const IDENTITY_HEADER: &str = "x-mcp-identity-assertion";
/// How old (or how far in the future) an assertion may be, in seconds.
pub const MAX_SKEW_SECS: u64 = 300;

/// A signed statement of who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityAssertion {
    pub identity: String,
    pub roles: Vec<String>,
    pub correlation_id: String,
    /// Unix seconds when master signed it.
    pub ts: u64,
    /// Hex HMAC-SHA256 over the fields above.
    pub sig: String,
}

/// Why an assertion was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionError {
    #[error("identity assertion signature does not verify")]
    BadSignature,
    #[error("identity assertion is {age} s away from now (limit {MAX_SKEW_SECS} s)")]
    Stale { age: u64 },
    #[error("identity assertion is malformed: {0}")]
    Malformed(String),
    #[error("cannot read identity key file {path}: {message}")]
    Key { path: String, message: String },
}

/// The shared HMAC key. `Debug` never shows it.
#[derive(Clone)]
pub struct AssertionKey(Vec<u8>);

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AssertionKey([redacted])")
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl AssertionKey {
    /// Reads a key file (at least 32 bytes after trimming whitespace).
    pub fn load(path: &Path) -> Result<Self, AssertionError> {
        let key_err = |message: String| AssertionError::Key {
            path: path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| key_err(e.to_string()))?;
        Self::from_bytes(bytes.trim_ascii()).map_err(|e| key_err(e.to_string()))
    }

    /// A key from raw bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AssertionError> {
        if bytes.len() < 32 {
            return Err(AssertionError::Malformed(
                "key must be at least 32 bytes (e.g. `openssl rand -hex 32`)".to_owned(),
            ));
        }
        Ok(Self(bytes.to_vec()))
    }

    fn mac(&self, identity: &str, roles: &[String], cid: &str, ts: u64) -> Hmac<Sha256> {
        self.mac_parts(&[identity, &roles.join("\u{1f}"), cid, &ts.to_string()])
    }

    /// HMAC-SHA256 over length-prefixed fields, so no two different field lists share a message.
    pub(crate) fn mac_parts(&self, parts: &[&str]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// Signs `identity` for a call with correlation id `cid`, now.
    pub fn sign(&self, identity: &Identity, cid: &str) -> IdentityAssertion {
        self.sign_at(identity, cid, now())
    }

    fn sign_at(&self, identity: &Identity, cid: &str, ts: u64) -> IdentityAssertion {
        let sig = hex::encode(
            self.mac(&identity.name, &identity.roles, cid, ts)
                .finalize()
                .into_bytes(),
        );
        IdentityAssertion {
            identity: identity.name.clone(),
            roles: identity.roles.clone(),
            correlation_id: cid.to_owned(),
            ts,
            sig,
        }
    }

    /// Checks signature and freshness; returns the asserted identity.
    pub fn verify(&self, a: &IdentityAssertion) -> Result<Identity, AssertionError> {
        let sig = hex::decode(&a.sig).map_err(|_| AssertionError::BadSignature)?;
        self.mac(&a.identity, &a.roles, &a.correlation_id, a.ts)
            .verify_slice(&sig)
            .map_err(|_| AssertionError::BadSignature)?;
        let age = now().abs_diff(a.ts);
        if age > MAX_SKEW_SECS {
            return Err(AssertionError::Stale { age });
        }
        Ok(Identity {
            name: a.identity.clone(),
            roles: a.roles.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> AssertionKey {
        AssertionKey::from_bytes(&[b; 32]).unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let id = Identity {
            name: "alice".into(),
            roles: vec!["admin".into()],
        };
        let a = key(1).sign(&id, "cid-1");
        assert_eq!(key(1).verify(&a).unwrap(), id);
        assert_eq!(key(2).verify(&a), Err(AssertionError::BadSignature));
        for tamper in [
            IdentityAssertion {
                identity: "mallory".into(),
                ..a.clone()
            },
            IdentityAssertion {
                roles: vec!["admin".into(), "approver".into()],
                ..a.clone()
            },
            IdentityAssertion {
                correlation_id: "cid-2".into(),
                ..a.clone()
            },
            IdentityAssertion {
                ts: a.ts + 1,
                ..a.clone()
            },
            IdentityAssertion {
                sig: "zz".into(),
                ..a.clone()
            },
        ] {
            assert_eq!(key(1).verify(&tamper), Err(AssertionError::BadSignature));
        }
        let old = key(1).sign_at(&id, "c", now() - MAX_SKEW_SECS - 10);
        assert!(matches!(
            key(1).verify(&old),
            Err(AssertionError::Stale { .. })
        ));
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert!(AssertionKey::from_bytes(b"short").is_err());
        assert_eq!(format!("{:?}", key(7)), "AssertionKey([redacted])");
    }
}
