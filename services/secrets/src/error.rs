//! What can go wrong in the secrets service, and the one place it becomes a tool error (`isError:
//! true` with the text below). A missing secret and a forbidden one answer the same text.

use rmcp::model::{ContentBlock, IntoContents};

use crate::backend::SecretError;

/// A secrets tool's failure (or the demo database's, at start-up).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    #[error(
        "`{0}` is not a secret address: use <backend>/<path>, e.g. keepass/Infra/docker-registry"
    )]
    NotAnAddress(String),
    #[error("unknown backend `{backend}` (configured: {configured})")]
    UnknownBackend { backend: String, configured: String },
    /// `listSecrets` asked for a backend that is not configured.
    #[error("unknown backend `{0}`; see listBackends")]
    NoSuchBackend(String),
    #[error("`{0}` names no secret after the backend")]
    NoPath(String),
    /// Missing or forbidden: the one answer, so callers cannot probe for existence.
    #[error("secret `{address}` does not exist or you may not {action} it")]
    Hidden {
        address: String,
        action: &'static str,
    },
    #[error(
        "rate limit: getSecret is limited to {per_minute} per minute per identity (burst {burst}); `{identity}` may retry in {retry_after_secs:.1} s"
    )]
    RateLimited {
        per_minute: u32,
        burst: u32,
        identity: String,
        retry_after_secs: f64,
    },
    #[error(transparent)]
    Backend(#[from] SecretError),
    /// The demo database or its password file cannot be created.
    #[error("{0}")]
    Demo(String),
}

impl IntoContents for SecretsError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}
