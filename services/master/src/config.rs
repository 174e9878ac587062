//! The `[master]` config section: downstreams, naming, resilience, policy, rate limits, audit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A `[master]` configuration that cannot run, with the key at fault and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigInvalid(pub String);

impl From<String> for ConfigInvalid {
    fn from(text: String) -> Self {
        Self(text)
    }
}

/// How master reaches a downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// MCP streamable HTTP (`url` ends in `/mcp`).
    #[default]
    Http,
    /// Legacy HTTP+SSE (`url` ends in `/sse`).
    Sse,
    /// A child process speaking MCP over stdin/stdout (`command` + `args`).
    Stdio,
}

/// One `[[master.downstream]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamConfig {
    /// Name used in logs, metrics and status (`linux`, `cmdb`, ...).
    pub name: String,
    /// Prefix of its tools at master; defaults to `name`. Empty: tools exposed unprefixed.
    pub namespace: Option<String>,
    #[serde(default)]
    pub transport: TransportKind,
    /// URL for `http` and `sse`.
    pub url: Option<String>,
    /// Program for `stdio`.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment for a `stdio` child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment for a `stdio` child read from files (API keys as Docker secrets): variable
    /// name → file, whose content (one trailing newline trimmed) is the value.
    #[serde(default)]
    pub env_from_files: BTreeMap<String, PathBuf>,
    /// Time limit of one call to this downstream, in seconds.
    #[serde(default = "default_call_timeout")]
    pub timeout_secs: u64,
    /// File of `Header-Name: value` lines sent with every HTTP request (for tokens; a Docker secret).
    pub headers_from_file: Option<PathBuf>,
    /// How master authenticates to this downstream: `none`, `static` (`headers_from_file`; the
    /// default when it is set), `client_credentials` (master's own OAuth token) or
    /// `token_exchange` (each caller's token exchanged for one meant for this downstream).
    #[serde(default)]
    pub auth: Option<crate::downstream::credentials::AuthMode>,
    /// Master's OAuth client for `client_credentials` and `token_exchange`.
    #[serde(default)]
    pub oauth: Option<crate::downstream::credentials::DownstreamOAuth>,
    /// `[server.oauth]`'s issuer, filled in at start-up (the default issuer of `oauth`).
    #[serde(skip)]
    pub default_issuer: Option<String>,
    /// PEM CA bundle trusted for this downstream's `https://` URL besides the system roots
    /// (default: `server.tls_ca_file`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM chain) presented to this downstream, for services that require
    /// mutual TLS (default: `server.tls_client_cert_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Private key of `client_cert_file` (default: `server.tls_client_key_file`).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// This entry's version when several entries share a namespace (`v1`, `v2`): together they
    /// form one route, whose first entry is the stable version (its tools are the ones listed).
    #[serde(default)]
    pub version: Option<String>,
    /// Share of the route's callers sent to this version (relative to the route's other
    /// versions; default 100 for the stable version, 0 for the others).
    #[serde(default)]
    pub weight: Option<u32>,
    /// A server the suite does not ship: its definitions are held when new or changed, its
    /// descriptions flagged by the scanner held, flagged text in its results masked (see
    /// `guard`). Default: false for the suite's services by name over HTTP/SSE, true otherwise.
    #[serde(default)]
    pub third_party: Option<bool>,
    /// New definitions of this already pinned downstream: `auto` (pinned) or `hold`.
    #[serde(default)]
    pub new_tools: Option<crate::guard::NewTools>,
    /// Changed definitions: `hold` (until an approver accepts) or `accept` (audited).
    #[serde(default)]
    pub on_change: Option<crate::guard::OnChange>,
    /// The injection scanner: `descriptions` (`off`, `warn`, `hold`), `results` (`off`, `warn`,
    /// `mask`, `block`).
    #[serde(default)]
    pub scan: crate::guard::ScanConfig,
    /// This downstream's tools whose results are secrets, passed on unmasked (default
    /// `["getSecret"]` for the suite's services, none for third-party ones).
    #[serde(default)]
    pub secret_tools: Option<Vec<String>>,
}

fn default_call_timeout() -> u64 {
    60
}

impl DownstreamConfig {
    /// A streamable-HTTP downstream at `url` with every other setting at its default.
    pub fn http(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: None,
            transport: TransportKind::Http,
            url: Some(url.to_owned()),
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            env_from_files: BTreeMap::new(),
            timeout_secs: default_call_timeout(),
            headers_from_file: None,
            auth: None,
            oauth: None,
            default_issuer: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            version: None,
            weight: None,
            third_party: None,
            new_tools: None,
            on_change: None,
            scan: crate::guard::ScanConfig::default(),
            secret_tools: None,
        }
    }

    /// How master authenticates to this downstream (`auth`, else `static` when
    /// `headers_from_file` is set, else `none`).
    pub fn auth_mode(&self) -> crate::downstream::credentials::AuthMode {
        use crate::downstream::credentials::AuthMode;
        self.auth.unwrap_or(if self.headers_from_file.is_some() {
            AuthMode::Static
        } else {
            AuthMode::None
        })
    }

    /// The namespace at master.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(&self.name)
    }

    /// This downstream's HTTPS client settings.
    pub fn client_tls(&self) -> mcp_runtime::tls::ClientTls {
        mcp_runtime::tls::ClientTls {
            ca_file: self.ca_file.clone(),
            cert_file: self.client_cert_file.clone(),
            key_file: self.client_key_file.clone(),
        }
    }

    /// Fills the HTTPS client settings this downstream leaves unset from `defaults` (`[server]`).
    pub fn inherit_client_tls(&mut self, defaults: &mcp_runtime::tls::ClientTls) {
        let t = self.client_tls().or(defaults);
        self.ca_file = t.ca_file;
        self.client_cert_file = t.cert_file;
        self.client_key_file = t.key_file;
    }
}

/// Circuit breaker thresholds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// Seconds the circuit stays open before one probe call is let through.
    pub open_secs: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_secs: 10,
        }
    }
}

/// Retry of calls that failed to reach a downstream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in total (1 = no retry). Only connection failures of read-only or idempotent tools retry.
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay_ms: 100,
            max_delay_ms: 2000,
        }
    }
}

/// What a policy rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    /// Needs a human approval (completed by the approvals issue; until then a clear refusal).
    Approve,
}

/// One `[[master.policy.rule]]`; the first rule matching tool and caller decides. Naming no
/// identity and no role, it applies to everybody.
pub type Rule = mcp_runtime::guard::RuleConfig<ToolRule>;

/// What a `[[master.policy.rule]]` decides, for which tools.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    /// Wire-name globs (`linux_*`, `secrets_getSecret`).
    pub tools: Vec<String>,
    pub action: Action,
}

/// `[master.policy]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Decision when no rule matches.
    pub default_action: Action,
    pub rule: Vec<Rule>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            default_action: Action::Allow,
            rule: Vec::new(),
        }
    }
}

/// A per-tool rate limit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRate {
    /// Wire-name globs.
    pub tools: Vec<String>,
    /// Calls per minute per identity.
    pub per_minute: u32,
}

/// `[master.rate_limit]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Calls per minute per identity, over all tools.
    pub per_identity_per_minute: Option<u32>,
    pub tool: Vec<ToolRate>,
}

/// The `[master]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MasterConfig {
    /// Separator between namespace and tool name.
    pub separator: String,
    /// Longest wire name accepted (hard limit 64).
    pub max_name_length: usize,
    pub downstream: Vec<DownstreamConfig>,
    /// Also read the seed's `MCP_PORT_01`, `MCP_PORT_08_K8S`, ... variables (values are URLs).
    pub seed_env: bool,
    /// How often each downstream is pinged, in milliseconds.
    pub health_interval_ms: u64,
    /// Longest wait between reconnect attempts, in milliseconds.
    pub reconnect_max_ms: u64,
    pub circuit: CircuitConfig,
    pub retry: RetryConfig,
    pub policy: PolicyConfig,
    pub rate_limit: RateLimitConfig,
    /// SQLite file of the audit log.
    pub audit_db: PathBuf,
    /// Also write every audit row as an `Audit.` JSON log line at info (off: at debug; the row
    /// in `audit_db` is the per-call record either way).
    pub audit_log: bool,
    /// Run calls even while the audit store cannot be written (a full disk, a read-only file);
    /// their rows wait in memory meanwhile. Off: such calls are refused until it can be written.
    pub audit_fail_open: bool,
    /// Named subsets of tools, each served at `/mcp/<name>` and `/sse/<name>`.
    pub toolset: Vec<crate::toolsets::ToolsetConfig>,
    /// Also serve one toolset per namespace (`/mcp/cmdb`, `/mcp/linux`, `/mcp/master`, ...).
    pub per_namespace_toolsets: bool,
    /// Serve `/mcp/discover` with `master_searchTools`, `master_describeTool`, `master_callTool`.
    pub discovery: bool,
    /// Warn (log and `/health`) when an endpoint lists more tools than this.
    pub max_tools_per_endpoint: usize,
    /// Warn when a wire name is longer than this (48 keeps a 12-character server key inside
    /// Cursor's 60-character limit on server key + tool name).
    pub warn_name_length: usize,
    /// HMAC key file (a Docker secret) used to sign the caller's identity for downstreams; services
    /// configured with the same `server.identity_key_file` trust it.
    pub identity_key_file: Option<PathBuf>,
    /// Human approvals (`[master.approvals]`).
    pub approvals: crate::approvals::ApprovalsConfig,
    /// Workflows (`[master.workflows]`).
    pub workflows: crate::workflow::WorkflowsConfig,
    /// Refuse plain `http://` and `sse` downstream URLs: every hop to a service must be HTTPS.
    pub require_tls: bool,
    /// Per-route settings of versioned namespaces (`[[master.route]]`): rules and rollback.
    pub route: Vec<crate::routing::RouteConfig>,
    /// The role that may change route weights at runtime (`master_setRoute`).
    pub admin_role: String,
    /// SQLite file of the pinned definitions (default: `pins.sqlite` beside the audit database).
    pub pins_db: Option<PathBuf>,
    /// A committed lock file of pins (`master_exportToolPins` writes one): its digests are the
    /// accepted definitions at start, and its downstreams count as already pinned.
    pub pins_file: Option<PathBuf>,
    /// The operator console at `/ui/` (`[master.console]`).
    pub console: crate::console::ConsoleConfig,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            separator: "_".to_owned(),
            max_name_length: 64,
            downstream: Vec::new(),
            seed_env: true,
            health_interval_ms: 5000,
            reconnect_max_ms: 5000,
            circuit: CircuitConfig::default(),
            retry: RetryConfig::default(),
            policy: PolicyConfig::default(),
            rate_limit: RateLimitConfig::default(),
            audit_db: PathBuf::from("data/master/audit.sqlite"),
            audit_log: false,
            audit_fail_open: false,
            identity_key_file: None,
            approvals: crate::approvals::ApprovalsConfig::default(),
            workflows: crate::workflow::WorkflowsConfig::default(),
            toolset: Vec::new(),
            per_namespace_toolsets: true,
            discovery: true,
            max_tools_per_endpoint: 40,
            warn_name_length: 48,
            require_tls: false,
            route: Vec::new(),
            admin_role: "admin".to_owned(),
            pins_db: None,
            pins_file: None,
            console: crate::console::ConsoleConfig::default(),
        }
    }
}

/// The seed's environment variables naming downstream URLs, with the namespace each stands for.
pub const SEED_ENV: &[(&str, &str)] = &[
    ("MCP_PORT_01", "linux"),
    ("MCP_PORT_08_K8S", "k8s"),
    ("MCP_PORT_12", "cmdb"),
    ("MCP_PORT_13", "secrets"),
    ("MCP_PORT_15", "freqtrade"),
    ("MCP_PORT_16", "ai_models"),
];

/// Where master keeps its own files: every store beside the audit database unless set.
#[derive(Debug, Clone)]
pub struct StorePaths {
    pub audit: PathBuf,
    pub approvals: PathBuf,
    pub workflows: PathBuf,
    pub pins: PathBuf,
    /// The lock a running master holds (`mcp_runtime::backup::DataLock`).
    pub lock: PathBuf,
}

impl MasterConfig {
    /// The files of master's stores, with the defaults resolved.
    pub fn store_paths(&self) -> StorePaths {
        let dir = self
            .audit_db
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        StorePaths {
            audit: self.audit_db.clone(),
            approvals: self
                .approvals
                .db
                .clone()
                .unwrap_or_else(|| dir.join("approvals.sqlite")),
            workflows: self
                .workflows
                .db
                .clone()
                .unwrap_or_else(|| dir.join("workflows.sqlite")),
            pins: self
                .pins_db
                .clone()
                .unwrap_or_else(|| dir.join("pins.sqlite")),
            lock: dir.join(".lock"),
        }
    }

    /// Checks that need no IO.
    pub fn validate(&self) -> Result<(), ConfigInvalid> {
        if self.separator.is_empty() || !crate::namespace::is_valid_wire_name(&self.separator) {
            return Err(ConfigInvalid(
                "master.separator must be one or more of A-Z a-z 0-9 _ -".to_owned(),
            ));
        }
        if !(8..=64).contains(&self.max_name_length) {
            return Err(ConfigInvalid(
                "master.max_name_length must be between 8 and 64".to_owned(),
            ));
        }
        if self.health_interval_ms < 100 {
            return Err(ConfigInvalid(
                "master.health_interval_ms must be at least 100".to_owned(),
            ));
        }
        let mut toolsets = std::collections::BTreeSet::new();
        for t in &self.toolset {
            crate::toolsets::View::toolset(t).map_err(|e| ConfigInvalid(e.to_string()))?;
            if !toolsets.insert(t.name.clone()) {
                return Err(ConfigInvalid(format!(
                    "master.toolset `{}` is defined twice",
                    t.name
                )));
            }
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigInvalid(
                "master.retry.max_attempts must be at least 1".to_owned(),
            ));
        }
        if self.circuit.failure_threshold == 0 {
            return Err(ConfigInvalid(
                "master.circuit.failure_threshold must be at least 1".to_owned(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut namespaces = std::collections::BTreeMap::new();
        for d in &self.downstream {
            let what = format!("master.downstream `{}`", d.name);
            if !names.insert(d.name.clone()) {
                return Err(ConfigInvalid(format!("{what} is defined twice")));
            }
            let ns = d.namespace();
            if !ns.is_empty() && !crate::namespace::is_valid_wire_name(ns) {
                return Err(ConfigInvalid(format!(
                    "{what}: namespace `{ns}` may use only A-Z a-z 0-9 _ -"
                )));
            }
            if ns == "master" {
                return Err(ConfigInvalid(format!(
                    "{what}: namespace `master` is reserved for master's own tools"
                )));
            }
            if let Some(other) = namespaces.insert(ns.to_owned(), d.clone())
                && !ns.is_empty()
                && (other.version.is_none() || d.version.is_none())
            {
                return Err(ConfigInvalid(format!(
                    "{what}: namespace `{ns}` is already used by `{}`; give every downstream of a namespace a `version` to route between them",
                    other.name
                )));
            }
            {
                use crate::downstream::credentials::AuthMode;
                let mode = d.auth_mode();
                let oauth = matches!(mode, AuthMode::ClientCredentials | AuthMode::TokenExchange);
                if oauth && d.transport != TransportKind::Http {
                    return Err(ConfigInvalid(format!(
                        "{what}: auth = {mode:?} needs transport \"http\" (streamable HTTP)"
                    )));
                }
                if oauth && d.oauth.is_none() {
                    return Err(ConfigInvalid(format!(
                        "{what}: auth = {mode:?} needs oauth = {{ client_id = \"…\", client_secret_file = \"…\" }}"
                    )));
                }
                if !oauth && d.oauth.is_some() {
                    return Err(ConfigInvalid(format!(
                        "{what}: oauth is set but auth is {mode:?}; set auth = \"client_credentials\" or \"token_exchange\""
                    )));
                }
                if mode == AuthMode::Static && d.headers_from_file.is_none() {
                    return Err(ConfigInvalid(format!(
                        "{what}: auth = \"static\" needs headers_from_file"
                    )));
                }
            }
            match d.transport {
                TransportKind::Http | TransportKind::Sse => match &d.url {
                    Some(u) if self.require_tls && u.starts_with("http://") => {
                        return Err(ConfigInvalid(format!(
                            "{what}: url `{u}` is plain HTTP but master.require_tls is on; use https://"
                        )));
                    }
                    Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
                    Some(u) => {
                        return Err(ConfigInvalid(format!(
                            "{what}: url `{u}` must start with http:// or https://"
                        )));
                    }
                    None => {
                        return Err(ConfigInvalid(format!(
                            "{what}: transport {:?} needs `url`",
                            d.transport
                        )));
                    }
                },
                TransportKind::Stdio => {
                    if d.command.as_deref().is_none_or(str::is_empty) {
                        return Err(ConfigInvalid(format!(
                            "{what}: transport stdio needs `command`"
                        )));
                    }
                }
            }
            if d.timeout_secs == 0 {
                return Err(ConfigInvalid(format!(
                    "{what}: timeout_secs must be at least 1"
                )));
            }
        }
        crate::routing::validate(self)?;
        Ok(())
    }

    /// Adds downstreams from the seed's environment variables, unless one with that namespace exists.
    pub fn add_seed_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        if !self.seed_env {
            return;
        }
        for (var, ns) in SEED_ENV {
            let Some(url) = get(var).filter(|u| !u.trim().is_empty()) else {
                continue;
            };
            if self.downstream.iter().any(|d| d.namespace() == *ns) {
                continue;
            }
            let url = url.trim().to_owned();
            let transport = if url.trim_end_matches('/').ends_with("/sse") {
                TransportKind::Sse
            } else {
                TransportKind::Http
            };
            self.downstream.push(DownstreamConfig {
                transport,
                ..DownstreamConfig::http(ns, &url)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(toml_text: &str) -> MasterConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        MasterConfig::default().validate().unwrap();
    }

    #[test]
    fn validation_names_the_problem() {
        for (text, needle) in [
            ("[[downstream]]\nname='a'\n", "needs `url`"),
            (
                "[[downstream]]\nname='a'\ntransport='stdio'\n",
                "needs `command`",
            ),
            (
                "[[downstream]]\nname='a'\nurl='ftp://x'\n",
                "must start with http",
            ),
            (
                "[[downstream]]\nname='a'\nurl='http://x'\n[[downstream]]\nname='a'\nurl='http://y'\n",
                "defined twice",
            ),
            (
                "[[downstream]]\nname='a'\nnamespace='x'\nurl='http://x'\n[[downstream]]\nname='b'\nnamespace='x'\nurl='http://y'\n",
                "already used",
            ),
            (
                "[[downstream]]\nname='a'\nnamespace='a.b'\nurl='http://x'\n",
                "namespace `a.b`",
            ),
            (
                "[[downstream]]\nname='master'\nurl='http://x'\n",
                "reserved",
            ),
            ("separator='.'\n", "separator"),
            (
                "[[downstream]]\nname='a'\nurl='http://x'\nauth='client_credentials'\n",
                "needs oauth = {",
            ),
            (
                "[[downstream]]\nname='a'\ntransport='sse'\nurl='http://x/sse'\nauth='token_exchange'\noauth={client_id='m', client_secret_file='s'}\n",
                "needs transport \"http\"",
            ),
            (
                "[[downstream]]\nname='a'\nurl='http://x'\noauth={client_id='m', client_secret_file='s'}\n",
                "oauth is set but auth is None",
            ),
            (
                "[[downstream]]\nname='a'\nurl='http://x'\nauth='static'\n",
                "needs headers_from_file",
            ),
        ] {
            let err = ds(text).validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn downstream_auth_defaults_to_static_headers_or_none() {
        use crate::downstream::credentials::AuthMode;
        let c = ds(
            "[[downstream]]\nname='a'\nurl='http://x'\nheaders_from_file='h'\n[[downstream]]\nname='b'\nurl='http://y'\n",
        );
        assert_eq!(c.downstream[0].auth_mode(), AuthMode::Static);
        assert_eq!(c.downstream[1].auth_mode(), AuthMode::None);
        let bad: Result<MasterConfig, _> =
            toml::from_str("[[downstream]]\nname='a'\nurl='http://x'\nauth='password'\n");
        assert!(bad.unwrap_err().to_string().contains("client_credentials"));
    }

    #[test]
    fn seed_env_adds_missing_namespaces() {
        let mut c = ds("[[downstream]]\nname='cmdb'\nurl='http://cmdb:8012/mcp'\n");
        let env = |k: &str| match k {
            "MCP_PORT_12" => Some("http://other/mcp".to_owned()),
            "MCP_PORT_01" => Some("http://linux-cli:8001/sse".to_owned()),
            _ => None,
        };
        c.add_seed_env(&env);
        assert_eq!(c.downstream.len(), 2);
        assert_eq!(c.downstream[0].url.as_deref(), Some("http://cmdb:8012/mcp"));
        assert_eq!(c.downstream[1].name, "linux");
        assert_eq!(c.downstream[1].transport, TransportKind::Sse);
        c.validate().unwrap();
    }
}
