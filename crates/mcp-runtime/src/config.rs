//! Configuration: a TOML file, `MCP_<SECTION>_<KEY>` environment overrides, and defaults that run out of the box.
//!
//! A service's file has a `[server]` table (this module's [`ServerConfig`]) and one table of its own
//! (for example `[cmdb]`). Environment variables override single keys: `MCP_SERVER_PORT=9000`,
//! `MCP_CMDB_CSV_PATH=/data/hosts.csv`. Values are read as TOML literals when they parse as one
//! (`9000`, `true`, `["a","b"]`) and as plain strings otherwise.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Environment variable naming the config file when `--config` is not given.
pub const ENV_CONFIG: &str = "MCP_CONFIG";
/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "MCP_";

/// Errors from loading or validating configuration. Each names the key and where it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config in {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid value for `{key}` (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
}

/// Where environment variables come from; tests pass a map instead of touching the process env.
pub trait Env {
    /// All variables whose name starts with `prefix`.
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        std::env::vars()
            .filter(|(k, _)| k.starts_with(prefix))
            .collect()
    }
}

impl Env for BTreeMap<String, String> {
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the default; what Loki and the tests read).
    #[default]
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// The runtime part of every service's configuration: the `[server]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind. Loopback by default; anything else needs auth (or `allow_insecure`).
    pub host: IpAddr,
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// Serve `/mcp` without sessions (every request stands alone), for multi-replica deployments.
    pub stateless: bool,
    /// TOML file with bearer tokens (hashed), identities and roles. No file (and no `oauth`):
    /// auth is off.
    pub auth_tokens_file: Option<PathBuf>,
    /// `[server.oauth]`: accept access tokens from an OAuth 2.1 / OpenID Connect issuer (MCP
    /// authorization). Static tokens keep working beside it.
    pub oauth: Option<crate::oauth::OAuthConfig>,
    /// Roles of the `anonymous` caller while auth is off (no `auth_tokens_file`). `mcp-stack` on
    /// loopback grants `approver`, so the local operator can approve their own risky calls.
    pub anonymous_roles: Vec<String>,
    /// HMAC key file shared with master: a valid, fresh identity assertion signed with it (in a
    /// request's `_meta`) names the real caller behind master.
    pub identity_key_file: Option<PathBuf>,
    /// HMAC key file shared with master for approval tokens (risky calls carry one after a human
    /// approved them). Defaults to `identity_key_file`.
    pub approval_key_file: Option<PathBuf>,
    /// Allow binding a non-loopback address with auth off. Dangerous; for trusted networks only.
    pub allow_insecure: bool,
    /// Extra host names accepted in the `Host` header, besides loopback (the deployment sets a
    /// service's compose or DNS names here).
    pub allowed_hosts: Vec<String>,
    /// Extra browser origins (`scheme://host[:port]`) accepted in the `Origin` header, besides loopback ones.
    pub allowed_origins: Vec<String>,
    /// PEM certificate chain (leaf first) to serve HTTPS with, together with `tls_key_file`. Both
    /// files are read again when they change, so a renewed certificate needs no restart. With TLS
    /// on, the port speaks HTTPS only (`/health`, `/ready` and `/metrics` too).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Oldest TLS version accepted: `1.2` (default) or `1.3`.
    pub tls_min_version: TlsVersion,
    /// PEM CA bundle that client certificates must chain to (mutual TLS).
    pub tls_client_ca_file: Option<PathBuf>,
    /// `off` (default), `optional` (a certificate, when sent, must verify) or `required`. A verified
    /// client certificate names the caller (its first DNS subject alternative name) when the
    /// request carries no bearer token.
    pub tls_client_auth: ClientAuth,
    /// PEM CA bundle trusted, besides the system roots, when this service calls others over HTTPS
    /// (master's downstreams, linux-cli's CMDB).
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM chain) this service presents when it calls others over HTTPS.
    pub tls_client_cert_file: Option<PathBuf>,
    /// Private key of `tls_client_cert_file`.
    pub tls_client_key_file: Option<PathBuf>,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Seconds a streamable-HTTP session may stay without a request before it is closed (a
    /// request on it then gets 404, and the client initializes a new one).
    pub session_idle_secs: u64,
    /// Seconds a client has to send a request's headers, from its first byte (or, on a kept-alive
    /// connection, from the end of the previous answer); past it the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Time limit for producing a response to one HTTP request, in seconds.
    pub request_timeout_secs: u64,
    /// Time limit for one tool call, in seconds.
    pub tool_timeout_secs: u64,
    /// Largest tool result (text bytes) before it is cut with a visible truncation marker.
    pub max_output_bytes: usize,
    /// Default log filter (`RUST_LOG` syntax), for example `info` or `mcp_cmdb=debug,info`.
    pub log_level: String,
    /// Log format: `json` or `pretty`.
    pub log_format: LogFormat,
    /// OTLP/HTTP collector to export spans to (`http://collector:4318`; `/v1/traces` is added);
    /// empty exports nothing.
    pub otlp_endpoint: String,
    /// `http/protobuf` (default) or `http/json`.
    pub otlp_protocol: String,
    /// How often batched spans are sent, in milliseconds.
    pub otlp_batch_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            stateless: false,
            auth_tokens_file: None,
            oauth: None,
            anonymous_roles: Vec::new(),
            identity_key_file: None,
            approval_key_file: None,
            allow_insecure: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_min_version: TlsVersion::V1_2,
            tls_client_ca_file: None,
            tls_client_auth: ClientAuth::Off,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            max_body_bytes: 4 * 1024 * 1024,
            session_idle_secs: 300,
            header_read_timeout_secs: 10,
            request_timeout_secs: 60,
            tool_timeout_secs: 120,
            max_output_bytes: 256 * 1024,
            log_level: "info,rmcp=warn".to_owned(),
            log_format: LogFormat::Json,
            otlp_endpoint: String::new(),
            otlp_protocol: "http/protobuf".to_owned(),
            otlp_batch_ms: 5000,
        }
    }
}

/// The oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `MCP_SERVER_TLS_MIN_VERSION=1.3` reads as a TOML float; a file may quote it.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(n) => format!("{n:.1}"),
        };
        match text.trim() {
            "1.2" => Ok(Self::V1_2),
            "1.3" => Ok(Self::V1_3),
            other => Err(serde::de::Error::custom(format!(
                "tls_min_version `{other}` must be \"1.2\" or \"1.3\""
            ))),
        }
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::V1_2 => "1.2",
            Self::V1_3 => "1.3",
        })
    }
}

/// Whether a TLS listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificates.
    #[default]
    Off,
    /// A client may present one; when it does, it must chain to `tls_client_ca_file`.
    Optional,
    /// Every client must present one that chains to `tls_client_ca_file`.
    Required,
}

impl ServerConfig {
    /// Whether callers must authenticate (a tokens file or OAuth).
    pub fn auth_enabled(&self) -> bool {
        self.auth_tokens_file.is_some() || self.oauth.is_some()
    }

    /// Whether this listener serves HTTPS.
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert_file.is_some()
    }

    /// The socket address to bind.
    pub fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Checks that need no IO. The auth-on-public-address rule is checked at bind time, once
    /// the tokens file has been read.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("server.{key}"),
            origin: origin.to_owned(),
            message: message.to_owned(),
        };
        if self.max_body_bytes < 1024 {
            return Err(invalid("max_body_bytes", "must be at least 1024"));
        }
        if self.request_timeout_secs == 0 {
            return Err(invalid("request_timeout_secs", "must be at least 1"));
        }
        if !(1..=86_400).contains(&self.session_idle_secs) {
            return Err(invalid(
                "session_idle_secs",
                "must be between 1 and 86400 (a day)",
            ));
        }
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return Err(invalid(
                "header_read_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        if self.tool_timeout_secs == 0 {
            return Err(invalid("tool_timeout_secs", "must be at least 1"));
        }
        if self.max_output_bytes < 256 {
            return Err(invalid("max_output_bytes", "must be at least 256"));
        }
        if !matches!(self.otlp_protocol.as_str(), "http/protobuf" | "http/json") {
            return Err(invalid(
                "otlp_protocol",
                "must be http/protobuf or http/json",
            ));
        }
        let scheme_ok = ["http://", "https://"]
            .iter()
            .any(|p| self.otlp_endpoint.starts_with(p));
        if !self.otlp_endpoint.is_empty() && !scheme_ok {
            return Err(invalid(
                "otlp_endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        if self.otlp_batch_ms < 10 {
            return Err(invalid("otlp_batch_ms", "must be at least 10"));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(invalid(
                "tls_cert_file",
                "tls_cert_file and tls_key_file go together: set both or neither",
            ));
        }
        if self.tls_client_auth != ClientAuth::Off {
            if !self.tls_enabled() {
                return Err(invalid(
                    "tls_client_auth",
                    "needs TLS on (tls_cert_file and tls_key_file)",
                ));
            }
            if self.tls_client_ca_file.is_none() {
                return Err(invalid(
                    "tls_client_auth",
                    "needs tls_client_ca_file, the CA client certificates must chain to",
                ));
            }
        }
        if self.tls_client_cert_file.is_some() != self.tls_client_key_file.is_some() {
            return Err(invalid(
                "tls_client_cert_file",
                "tls_client_cert_file and tls_client_key_file go together: set both or neither",
            ));
        }
        if let Some(oauth) = &self.oauth {
            oauth.validate(origin)?;
            // The default audience is this server's URL as the request's Host names it; a Host
            // anyone may choose would let a token for another server through.
            if oauth.audience.is_empty()
                && oauth.resource.is_none()
                && self.allowed_hosts.iter().any(|h| h == "*")
            {
                return Err(invalid(
                    "oauth.resource",
                    "is required (or oauth.audience) when server.allowed_hosts accepts any host (\"*\"): the accepted audience must not come from a Host header a caller chooses",
                ));
            }
        }
        for o in &self.allowed_origins {
            if !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(invalid(
                    "allowed_origins",
                    &format!("`{o}` must start with http:// or https://"),
                ));
            }
        }
        Ok(())
    }
}

/// A loaded configuration document: the TOML table after environment overrides, plus where it came from.
#[derive(Debug, Clone)]
pub struct ConfigDoc {
    table: toml::Table,
    origin: String,
    source: Option<ConfigSource>,
}

/// The file a [`ConfigDoc`] was read from and the sections whose environment overrides it got,
/// so that a service can read it again when the file changes (master's route weights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    path: PathBuf,
    sections: Vec<String>,
}

impl ConfigSource {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again, with the process environment's overrides.
    pub fn load(&self) -> Result<ConfigDoc, ConfigError> {
        let sections: Vec<&str> = self.sections.iter().map(String::as_str).collect();
        ConfigDoc::load(Some(&self.path), &ProcessEnv, &sections)
    }
}

impl ConfigDoc {
    /// Reads `path` (if any), then applies `MCP_<SECTION>_<KEY>` overrides for the given sections.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Env,
        sections: &[&str],
    ) -> Result<Self, ConfigError> {
        let (table, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                let origin = p.display().to_string();
                let table = text
                    .parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        origin: origin.clone(),
                        message: e.to_string(),
                    })?;
                (table, origin)
            }
            None => (toml::Table::new(), "defaults".to_owned()),
        };
        let source = path.map(|p| ConfigSource {
            path: p.to_owned(),
            sections: sections.iter().map(|s| (*s).to_owned()).collect(),
        });
        let mut doc = Self {
            table,
            origin,
            source,
        };
        doc.apply_env(env, sections)?;
        Ok(doc)
    }

    /// Builds a document from TOML text (used for embedded defaults and tests).
    pub fn from_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Parse {
                origin: origin.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Self {
            table,
            origin: origin.to_owned(),
            source: None,
        })
    }

    /// The file this document was read from, to read it again; `None` for text and defaults.
    pub fn source(&self) -> Option<&ConfigSource> {
        self.source.as_ref()
    }

    /// Where the document came from, for error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Applies environment overrides for `sections`. Longer section names are tried first so that
    /// `MCP_AI_MODELS_X` belongs to `ai_models`, not to a section called `ai`.
    pub fn apply_env(&mut self, env: &dyn Env, sections: &[&str]) -> Result<(), ConfigError> {
        let mut sections: Vec<&str> = sections.to_vec();
        sections.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut vars = env.vars_with_prefix(ENV_PREFIX);
        vars.sort();
        for (name, raw) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some((section, key)) = sections.iter().find_map(|s| {
                let upper = s.to_ascii_uppercase();
                rest.strip_prefix(&upper)
                    .and_then(|k| k.strip_prefix('_'))
                    .filter(|k| !k.is_empty())
                    .map(|k| (*s, k.to_ascii_lowercase()))
            }) else {
                continue;
            };
            let value = parse_env_value(&raw);
            let entry = self
                .table
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(t) = entry else {
                return Err(ConfigError::Invalid {
                    key: section.to_owned(),
                    origin: format!("environment variable {name}"),
                    message: "is not a table in the config file".to_owned(),
                });
            };
            t.insert(key, value);
            if !self.origin.contains("environment") {
                self.origin.push_str(" + environment");
            }
        }
        Ok(())
    }

    /// Sets `section.key` to `value` unless the file or the environment already set it.
    pub fn set_default(&mut self, section: &str, key: &str, value: toml::Value) {
        self.set_default_path(&[section, key], value);
    }

    /// Sets the key at a dotted `path` (`["master", "approvals", "elicitation"]`) to `value` unless
    /// the file or the environment already set it; missing tables on the way are created.
    pub fn set_default_path(&mut self, path: &[&str], value: toml::Value) {
        let Some((key, tables)) = path.split_last() else {
            return;
        };
        let mut table = &mut self.table;
        for name in tables {
            let entry = table
                .entry((*name).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(t) = entry else {
                // Not a table: leave it for deserialization to report.
                return;
            };
            table = t;
        }
        table.entry((*key).to_owned()).or_insert(value);
    }

    /// Deserializes one section (missing section: the type's defaults). Errors name the section and origin.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        match self.table.get(name) {
            None => Ok(T::default()),
            // The error names the key inside the section (`linux.max_timeout_secs`), not only
            // the section.
            Some(v) => serde_path_to_error::deserialize(v.clone()).map_err(
                |e: serde_path_to_error::Error<toml::de::Error>| {
                    let path = e.path().to_string();
                    ConfigError::Invalid {
                        key: if path.is_empty() || path == "." {
                            name.to_owned()
                        } else {
                            format!("{name}.{path}")
                        },
                        origin: self.origin.clone(),
                        message: e.inner().message().to_owned(),
                    }
                },
            ),
        }
    }

    /// The `[server]` section, validated.
    pub fn server(&self) -> Result<ServerConfig, ConfigError> {
        let cfg: ServerConfig = self.section("server")?;
        cfg.validate(&self.origin)?;
        Ok(cfg)
    }

    /// Rejects top-level tables other than `known`, so a typo in a section name is not silently ignored.
    pub fn deny_unknown_sections(&self, known: &[&str]) -> Result<(), ConfigError> {
        for key in self.table.keys() {
            if !known.contains(&key.as_str()) {
                return Err(ConfigError::Invalid {
                    key: key.clone(),
                    origin: self.origin.clone(),
                    message: format!("unknown section; expected one of: {}", known.join(", ")),
                });
            }
        }
        Ok(())
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    // A TOML literal when the text is one (numbers, booleans, arrays); a plain string otherwise,
    // so paths and names need no quoting.
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tls_settings_are_checked_together() {
        let server = |pairs: &[(&str, &str)]| {
            ConfigDoc::load(None, &env(pairs), &["server"])
                .unwrap()
                .server()
        };
        let s = server(&[
            ("MCP_SERVER_TLS_CERT_FILE", "c.pem"),
            ("MCP_SERVER_TLS_KEY_FILE", "k.pem"),
            ("MCP_SERVER_TLS_MIN_VERSION", "1.3"),
            ("MCP_SERVER_TLS_CLIENT_CA_FILE", "ca.pem"),
            ("MCP_SERVER_TLS_CLIENT_AUTH", "required"),
        ])
        .unwrap();
        assert!(s.tls_enabled());
        assert_eq!(s.tls_min_version, TlsVersion::V1_3);
        assert_eq!(s.tls_client_auth, ClientAuth::Required);
        let file: ServerConfig = toml::from_str("tls_min_version = \"1.2\"").unwrap();
        assert_eq!(file.tls_min_version, TlsVersion::V1_2);
        for (pairs, key, needle) in [
            (
                vec![("MCP_SERVER_TLS_CERT_FILE", "c.pem")],
                "server.tls_cert_file",
                "set both or neither",
            ),
            (
                vec![("MCP_SERVER_TLS_CLIENT_AUTH", "optional")],
                "server.tls_client_auth",
                "needs TLS on",
            ),
            (
                vec![
                    ("MCP_SERVER_TLS_CERT_FILE", "c.pem"),
                    ("MCP_SERVER_TLS_KEY_FILE", "k.pem"),
                    ("MCP_SERVER_TLS_CLIENT_AUTH", "required"),
                ],
                "server.tls_client_auth",
                "needs tls_client_ca_file",
            ),
            (
                vec![("MCP_SERVER_TLS_CLIENT_KEY_FILE", "k.pem")],
                "server.tls_client_cert_file",
                "set both or neither",
            ),
        ] {
            let e = server(&pairs).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(needle), "{pairs:?}: {e}");
        }
        let e = server(&[("MCP_SERVER_TLS_MIN_VERSION", "1.1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be \"1.2\" or \"1.3\""), "{e}");
        let e = server(&[("MCP_SERVER_TLS_CLIENT_AUTH", "sometimes")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sometimes"), "{e}");
    }

    #[test]
    fn oauth_with_any_host_needs_a_fixed_resource() {
        let server = |extra: &str| {
            ConfigDoc::from_str(
                &format!(
                    "[server]\nallowed_hosts = [\"*\"]\n[server.oauth]\nissuer = \"https://idp.example.com\"\n{extra}"
                ),
                "t.toml",
            )
            .unwrap()
            .server()
        };
        let e = server("").unwrap_err().to_string();
        assert!(
            e.contains("server.oauth.resource") && e.contains("Host"),
            "{e}"
        );
        assert!(server("resource = \"https://mcp.example.com\"").is_ok());
        assert!(server("audience = \"api://mcp\"").is_ok());
    }

    #[test]
    fn defaults_parse_and_bind_loopback() {
        let doc = ConfigDoc::load(None, &env(&[]), &["server"]).unwrap();
        let s = doc.server().unwrap();
        assert!(s.host.is_loopback());
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn nested_defaults_fill_only_what_file_and_environment_left_unset() {
        let mut doc = ConfigDoc::from_str(
            "[master.approvals]\nelicitation = false\n[server]\nport = 1",
            "t.toml",
        )
        .unwrap();
        doc.apply_env(
            &env(&[("MCP_SERVER_ANONYMOUS_ROLES", "[\"ops\"]")]),
            &["server", "master"],
        )
        .unwrap();
        for key in ["elicitation", "allow_self_approval"] {
            doc.set_default_path(&["master", "approvals", key], toml::Value::Boolean(true));
        }
        doc.set_default_path(&["k8s", "deep", "x"], toml::Value::Integer(3));
        doc.set_default(
            "server",
            "anonymous_roles",
            toml::Value::Array(vec!["approver".into()]),
        );
        let approvals = &doc.table["master"]["approvals"];
        assert_eq!(approvals["elicitation"].as_bool(), Some(false));
        assert_eq!(approvals["allow_self_approval"].as_bool(), Some(true));
        assert_eq!(doc.table["k8s"]["deep"]["x"].as_integer(), Some(3));
        assert_eq!(doc.server().unwrap().anonymous_roles, ["ops"]);
    }

    #[test]
    fn env_overrides_file_with_typed_values() {
        let mut doc =
            ConfigDoc::from_str("[server]\nport = 1\n[cmdb]\ncsv_path = \"a.csv\"", "t.toml")
                .unwrap();
        doc.apply_env(
            &env(&[
                ("MCP_SERVER_PORT", "9000"),
                ("MCP_SERVER_ALLOWED_HOSTS", "[\"a\", \"b\"]"),
                ("MCP_CMDB_CSV_PATH", "/x/y.csv"),
                ("MCP_OTHER_THING", "ignored"),
            ]),
            &["server", "cmdb"],
        )
        .unwrap();
        let s = doc.server().unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.allowed_hosts, vec!["a", "b"]);
        let t: toml::Table = doc.section("cmdb").unwrap();
        assert_eq!(t["csv_path"].as_str(), Some("/x/y.csv"));
    }

    #[test]
    fn longest_section_wins() {
        let mut doc = ConfigDoc::from_str("", "t").unwrap();
        doc.apply_env(
            &env(&[("MCP_AI_MODELS_TIMEOUT", "5")]),
            &["ai", "ai_models"],
        )
        .unwrap();
        let t: toml::Table = doc.section("ai_models").unwrap();
        assert_eq!(t["timeout"].as_integer(), Some(5));
    }

    #[test]
    fn bad_value_names_key_and_origin() {
        let doc = ConfigDoc::from_str("[server]\nport = \"abc\"", "svc.toml").unwrap();
        let err = doc.server().unwrap_err().to_string();
        assert!(err.contains("`server.port`"), "{err}");
        assert!(err.contains("svc.toml"), "{err}");
        // Inside nested tables and arrays of tables too.
        #[derive(Debug, Default, serde::Deserialize)]
        struct Svc {
            #[allow(dead_code)]
            downstream: Vec<std::collections::BTreeMap<String, u64>>,
        }
        let doc = ConfigDoc::from_str(
            "[svc]\n[[svc.downstream]]\nok = 1\n[[svc.downstream]]\ntimeout = \"long\"",
            "svc.toml",
        )
        .unwrap();
        let err = doc.section::<Svc>("svc").unwrap_err().to_string();
        assert!(err.contains("`svc.downstream[1].timeout`"), "{err}");
        let doc = ConfigDoc::from_str("[server]\nprot = 1", "svc.toml").unwrap();
        let err = doc.server().unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn validation_rejects_zero_timeouts() {
        let doc = ConfigDoc::from_str("[server]\ntool_timeout_secs = 0", "f.toml").unwrap();
        let err = doc.server().unwrap_err().to_string();
        assert!(err.contains("server.tool_timeout_secs"), "{err}");
    }

    #[test]
    fn session_idle_secs_is_bounded() {
        for v in ["0", "86401"] {
            let doc = ConfigDoc::from_str(&format!("[server]\nsession_idle_secs = {v}"), "f.toml")
                .unwrap();
            let err = doc.server().unwrap_err().to_string();
            assert!(
                err.contains("server.session_idle_secs") && err.contains("between 1 and 86400"),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_section_is_an_error() {
        let doc = ConfigDoc::from_str("[servr]\nport = 1", "f.toml").unwrap();
        let err = doc
            .deny_unknown_sections(&["server", "cmdb"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("servr") && err.contains("f.toml"), "{err}");
    }
}
