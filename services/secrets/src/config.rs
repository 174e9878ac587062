//! The `[secrets]` config section and its `[[secrets.backend]]` tables.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::acl::RuleConfig;

use crate::{azure, keepass, local};

/// The store behind one `[[secrets.backend]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackendKind {
    Keepass(keepass::KeepassConfig),
    AzureKeyVault(azure::AzureConfig),
    File(local::FileConfig),
    Env(local::EnvConfig),
}

/// One `[[secrets.backend]]`: a name (the first component of secret addresses) and its store.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BackendConfig {
    pub name: String,
    #[serde(flatten)]
    pub store: BackendKind,
}

/// The `[secrets]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    pub backend: Vec<BackendConfig>,
    /// Access rules; none means every identity may do everything (set/delete still need approval).
    pub rule: Vec<RuleConfig>,
    /// getSecret calls allowed per identity and minute.
    pub get_per_minute: u32,
    /// Burst of getSecret calls above the steady rate.
    pub get_burst: u32,
    /// Most secrets listSecrets returns.
    pub max_list: usize,
    /// JSON-lines audit file (one record per access, never a value); empty disables the file (the
    /// `audit` log line is always written).
    pub audit_file: PathBuf,
    /// With no backend configured, create (or open) a demo KeePass database (mcp-stack sets this).
    pub demo_if_empty: bool,
    /// The demo database.
    pub demo_path: PathBuf,
    /// The demo database's generated password (written 0600).
    pub demo_password_file: PathBuf,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            backend: Vec::new(),
            rule: Vec::new(),
            get_per_minute: 120,
            get_burst: 30,
            max_list: 1000,
            audit_file: PathBuf::from("data/secrets/audit.jsonl"),
            demo_if_empty: false,
            demo_path: PathBuf::from("data/secrets/demo.kdbx"),
            demo_password_file: PathBuf::from("secrets/keepass_demo_password"),
        }
    }
}
