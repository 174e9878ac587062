//! The one trait every secret store implements, and the types that cross it. Values only ever travel
//! as [`SecretString`] (redacted `Debug`, zeroized on drop); metadata never carries a value.

use async_trait::async_trait;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Serialize;

/// What a backend can say about one secret without revealing it.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct SecretMeta {
    /// Address of the secret in this service: `<backend>/<path>`.
    pub name: String,
    pub backend: String,
    /// Path inside the backend (KeePass: group path + title; Azure: secret name).
    pub path: String,
    /// Names of the fields the entry has (never their contents).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl SecretMeta {
    /// Metadata with only the address filled in.
    pub fn new(backend: &str, path: &str) -> Self {
        Self {
            name: format!("{backend}/{path}"),
            backend: backend.to_owned(),
            path: path.to_owned(),
            fields: Vec::new(),
            created: None,
            updated: None,
            enabled: None,
            content_type: None,
            version: None,
            tags: Vec::new(),
        }
    }
}

/// A value read from a backend.
#[derive(Debug)]
pub struct Fetched {
    pub value: SecretString,
    /// The field read (KeePass) or `value` (single-value stores).
    pub field: String,
    pub version: Option<String>,
}

/// What a delete did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Deleted {
    pub name: String,
    /// `recycle_bin`, `removed` (KeePass) or `soft_deleted` (Azure, recoverable until purge).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_purge_date: Option<String>,
}

/// State of a backend, as `listBackends` and `/health` show it.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// Open and serving.
    Ready,
    /// Serving an older version: the file changed and the new one cannot be opened; writes refused.
    Degraded,
    /// Configured but not usable now (wrong password, corrupt file, missing credentials).
    Unavailable,
}

/// A backend's status with the reason when unavailable.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BackendStatus {
    pub state: BackendState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl BackendStatus {
    pub fn ready() -> Self {
        Self {
            state: BackendState::Ready,
            detail: None,
        }
    }

    pub fn degraded(detail: impl Into<String>) -> Self {
        Self {
            state: BackendState::Degraded,
            detail: Some(detail.into()),
        }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            state: BackendState::Unavailable,
            detail: Some(detail.into()),
        }
    }
}

/// Errors of secret backends. Display texts never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret does not exist. Shown to callers exactly like an access denial.
    #[error("not found")]
    NotFound,
    #[error("backend `{backend}` is unavailable: {reason}")]
    Unavailable { backend: String, reason: String },
    #[error("backend `{0}` is read-only")]
    ReadOnly(String),
    #[error("invalid secret path: {0}")]
    InvalidPath(String),
    #[error("entry has no field `{field}` (fields: {available})")]
    NoField { field: String, available: String },
    #[error("{0}")]
    Unsupported(String),
    /// The remote store refused or failed; the text names the HTTP status and what to do.
    #[error("{0}")]
    Remote(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a backend cannot be built or opened from its configuration (missing or unreadable key files,
/// credentials, certificates, a database that does not open). The backend stays unavailable with
/// this text as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

impl From<String> for SetupError {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for SetupError {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// One configured secret store.
#[async_trait]
pub trait SecretBackend: Send + Sync + 'static {
    /// The configured name: the first component of every secret address.
    fn name(&self) -> &str;
    /// `keepass`, `azure_key_vault`, `file` or `env`.
    fn kind(&self) -> &'static str;
    fn writable(&self) -> bool;
    fn status(&self) -> BackendStatus;
    /// Every secret's metadata (bounded by `limit`).
    async fn list(&self, limit: usize) -> Result<Vec<SecretMeta>, SecretError>;
    /// A value: `field` picks one of an entry's fields, `version` an older version where supported.
    async fn get(
        &self,
        path: &str,
        field: Option<&str>,
        version: Option<&str>,
    ) -> Result<Fetched, SecretError>;
    /// Creates or updates a secret (one field of it where the store has fields).
    async fn set(
        &self,
        path: &str,
        field: Option<&str>,
        value: SecretString,
    ) -> Result<SecretMeta, SecretError>;
    async fn delete(&self, path: &str) -> Result<Deleted, SecretError>;
}

/// RFC 3339 text of a timestamp.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
