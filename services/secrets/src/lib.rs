//! secrets MCP service (port 8013, namespace `secrets`): KeePass, Azure Key Vault and read-only
//! file/env backends behind one trait, each secret addressed as `<backend>/<path>`. Access rules per
//! identity and role, a rate limit on reads, an audit record for every access, and no secret value in
//! logs, metrics, audit records, errors or `Debug` output.

pub mod acl;
pub mod azure;
pub mod backend;
pub mod keepass;
pub mod local;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::num::NonZeroU32;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mcp_runtime::guard::{AccessAudited, ApprovalAsk, Decision, require_approval};
use mcp_runtime::{BoxError, BuildContext, CallerContext, Check, HealthProbe, McpService};
use prometheus::{IntCounterVec, Opts};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::acl::{Acl, Action, RuleConfig};
use crate::backend::{BackendState, Deleted, SecretBackend, SecretError, SecretMeta};

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

/// One audit record. Never carries a value.
#[derive(Debug, Serialize)]
struct AuditRecord<'a> {
    timestamp: String,
    identity: &'a str,
    action: &'a str,
    secret: &'a str,
    backend: &'a str,
    decision: &'a str,
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    approval_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    detail: &'a str,
}

/// The service: backends, rules, limiter, audit sink and metrics shared by every session.
pub struct Secrets {
    config: SecretsConfig,
    backends: Vec<Arc<dyn SecretBackend>>,
    acl: Acl,
    limiter: DefaultKeyedRateLimiter<String>,
    audit_file: Option<Mutex<std::fs::File>>,
    access: IntCounterVec,
    metrics: mcp_runtime::Metrics,
    tools: ToolRouter<SecretsHandler>,
}

fn valid_backend_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A random password for the demo database.
fn generate_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn write_private(path: &Path, data: &str) -> std::io::Result<()> {
    let mut f = keepass::create_private(path)?;
    f.write_all(data.as_bytes())?;
    f.sync_all()
}

/// Creates the demo KeePass database and its password file unless they exist; returns the backend
/// config for it.
pub fn ensure_demo(db: &Path, password_file: &Path) -> Result<BackendConfig, String> {
    let cfg = BackendConfig {
        name: "keepass".to_owned(),
        store: BackendKind::Keepass(keepass::KeepassConfig {
            path: db.to_owned(),
            password_file: Some(password_file.to_owned()),
            key_file: None,
            backup_dir: None,
            keep_backups: 20,
            read_only: false,
        }),
    };
    if db.exists() {
        return Ok(cfg);
    }
    if password_file.exists() {
        return Err(format!(
            "demo password file {} exists but the demo database {} does not; remove the password file to start afresh",
            password_file.display(),
            db.display()
        ));
    }
    let password = SecretString::from(generate_password());
    write_private(password_file, password.expose_secret())
        .map_err(|e| format!("cannot write {}: {e}", password_file.display()))?;
    let demo_pw = SecretString::from(generate_password());
    let entries = [
        keepass::NewEntry {
            group: &["Infra"],
            title: "docker-registry",
            username: "deploy",
            password: demo_pw.expose_secret(),
            url: "https://registry.example.internal",
            notes: "Push credentials for the internal registry (demo).",
            custom: &[],
        },
        keepass::NewEntry {
            group: &["Infra"],
            title: "postgres",
            username: "app",
            password: "demo-postgres-password",
            url: "postgres://db.example.internal:5432/app",
            notes: "Demo database account.",
            custom: &[("port", "5432")],
        },
        keepass::NewEntry {
            group: &["Cloud", "Azure"],
            title: "service-principal",
            username: "00000000-0000-0000-0000-000000000000",
            password: "demo-client-secret",
            url: "https://portal.azure.com",
            notes: "Demo service principal.",
            custom: &[("tenant_id", "11111111-1111-1111-1111-111111111111")],
        },
    ];
    let key = ::keepass::DatabaseKey::new().with_password(password.expose_secret());
    keepass::create_database(db, keepass::new_database_config(), key, &entries)?;
    tracing::warn!(
        message = "Created a demo KeePass database; its generated password is in the password file (0600). Configure [[secrets.backend]] for real use.",
        database = %db.display(),
        password_file = %password_file.display(),
    );
    Ok(cfg)
}

impl McpService for Secrets {
    const NAME: &'static str = "secrets";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "secrets";
    const DEFAULT_PORT: u16 = 8013;
    type Config = SecretsConfig;
    type Handler = SecretsHandler;

    async fn build(mut config: SecretsConfig, ctx: BuildContext) -> Result<Self, BoxError> {
        if config.backend.is_empty() && config.demo_if_empty {
            config
                .backend
                .push(ensure_demo(&config.demo_path, &config.demo_password_file)?);
        }
        let acl = Acl::new(&config.rule)?;
        let mut backends: Vec<Arc<dyn SecretBackend>> = Vec::new();
        for b in &config.backend {
            if !valid_backend_name(&b.name) {
                return Err(format!(
                    "secrets.backend name `{}` must be 1-32 characters of letters, digits, '_' and '-'",
                    b.name
                )
                .into());
            }
            if backends.iter().any(|x| x.name() == b.name) {
                return Err(format!("secrets.backend `{}` is configured twice", b.name).into());
            }
            let backend: Arc<dyn SecretBackend> = match &b.store {
                BackendKind::Keepass(c) => {
                    Arc::new(keepass::Keepass::open(&b.name, c.clone()).await)
                }
                BackendKind::AzureKeyVault(c) => {
                    Arc::new(azure::AzureVault::new(&b.name, c.clone()))
                }
                BackendKind::File(c) => Arc::new(local::Local::new(
                    &b.name,
                    local::Source::Dir(c.dir.clone()),
                )),
                BackendKind::Env(c) => Arc::new(local::Local::new(
                    &b.name,
                    local::Source::Env(c.prefix.clone()),
                )),
            };
            backends.push(backend);
        }
        let per_minute = NonZeroU32::new(config.get_per_minute)
            .ok_or("secrets.get_per_minute must be at least 1")?;
        let burst = NonZeroU32::new(config.get_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst));
        let audit_file = if config.audit_file.as_os_str().is_empty() {
            None
        } else {
            if let Some(dir) = config
                .audit_file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&config.audit_file)
                .map_err(|e| {
                    format!(
                        "cannot open audit file {}: {e}",
                        config.audit_file.display()
                    )
                })?;
            Some(Mutex::new(f))
        };
        let access = IntCounterVec::new(
            Opts::new(
                "mcp_secret_access_total",
                "Secret accesses by backend, action and decision",
            ),
            &["backend", "action", "decision"],
        )?;
        ctx.metrics.registry().register(Box::new(access.clone()))?;
        for b in &backends {
            let st = b.status();
            tracing::info!(
                message = "Secret backend configured.",
                backend = %b.name(),
                kind = b.kind(),
                state = ?st.state,
                detail = st.detail.as_deref().unwrap_or(""),
            );
        }
        Ok(Self {
            config,
            backends,
            acl,
            limiter,
            audit_file,
            access,
            metrics: ctx.metrics.clone(),
            tools: SecretsHandler::tool_router(),
        })
    }

    fn handler(self: &Arc<Self>) -> SecretsHandler {
        SecretsHandler {
            svc: self.clone(),
            tool_router: self.tools.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }
}

impl HealthProbe for Secrets {
    fn checks(&self) -> BTreeMap<String, Check> {
        let mut checks = BTreeMap::new();
        if self.backends.is_empty() {
            checks.insert(
                "backends".to_owned(),
                Check::degraded(
                    "no secret backend configured: add [[secrets.backend]]",
                    Value::Null,
                ),
            );
        }
        for b in &self.backends {
            let st = b.status();
            let details = json!({ "kind": b.kind(), "writable": b.writable() });
            let check = match st.state {
                BackendState::Ready => Check::healthy(details),
                BackendState::Degraded | BackendState::Unavailable => {
                    Check::degraded(st.detail.unwrap_or_default(), details)
                }
            };
            checks.insert(format!("backend:{}", b.name()), check);
        }
        checks
    }

    fn ready(&self) -> bool {
        true
    }
}

impl Secrets {
    fn backend(&self, name: &str) -> Result<(&Arc<dyn SecretBackend>, String), String> {
        let (backend, path) = name.split_once('/').ok_or_else(|| {
            format!("`{name}` is not a secret address: use <backend>/<path>, e.g. keepass/Infra/docker-registry")
        })?;
        let b = self
            .backends
            .iter()
            .find(|b| b.name() == backend)
            .ok_or_else(|| {
                let names: Vec<&str> = self.backends.iter().map(|b| b.name()).collect();
                format!(
                    "unknown backend `{backend}` (configured: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                )
            })?;
        if path.is_empty() {
            return Err(format!("`{name}` names no secret after the backend"));
        }
        Ok((b, path.to_owned()))
    }

    /// One audited access: the audit line and `mcp_access_decisions_total` (through the shared
    /// guard), `mcp_secret_access_total{backend,action,decision}` and the JSON-lines audit file.
    fn audit(
        &self,
        caller: &CallerContext,
        action: Action,
        secret: &str,
        backend: &str,
        decision: Decision,
        detail: &str,
    ) {
        self.audited(action, secret, backend, decision, detail)
            .emit(caller, &self.metrics);
        self.recorded(caller, action, secret, backend, decision, detail);
    }

    fn audited<'a>(
        &self,
        action: Action,
        secret: &'a str,
        backend: &'a str,
        decision: Decision,
        detail: &'a str,
    ) -> AccessAudited<'a> {
        let mut e = AccessAudited::new("Secret access audited.", action.tool(), decision);
        e.action = Some(action.as_str());
        e.secret = Some(secret);
        e.backend = Some(backend);
        e.detail = Some(detail);
        e
    }

    /// The service's own counter and audit file (the guard's event wrote the log line).
    fn recorded(
        &self,
        caller: &CallerContext,
        action: Action,
        secret: &str,
        backend: &str,
        decision: Decision,
        detail: &str,
    ) {
        self.access
            .with_label_values(&[backend, action.as_str(), decision.as_str()])
            .inc();
        let rec = AuditRecord {
            timestamp: backend::rfc3339(time::OffsetDateTime::now_utc()).unwrap_or_default(),
            identity: &caller.identity.name,
            action: action.as_str(),
            secret,
            backend,
            decision: decision.as_str(),
            correlation_id: &caller.correlation_id,
            approval_id: caller
                .approval
                .as_ref()
                .map(|a| a.id.as_str())
                .unwrap_or(""),
            detail,
        };
        if let Some(f) = &self.audit_file
            && let Ok(mut line) = serde_json::to_string(&rec)
        {
            line.push('\n');
            let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = f.write_all(line.as_bytes()) {
                tracing::error!(message = "Cannot write the secrets audit file.", error = %e);
            }
        }
    }

    /// The one answer for "missing" and "forbidden", so callers cannot probe for existence.
    fn hidden(name: &str, action: Action) -> String {
        format!(
            "secret `{name}` does not exist or you may not {} it",
            action.as_str()
        )
    }

    /// Checks the address and the rules; a refusal is audited and returned as the tool error text.
    fn authorize(
        &self,
        caller: &CallerContext,
        action: Action,
        name: &str,
    ) -> Result<(Arc<dyn SecretBackend>, String), String> {
        let (b, path) = match self.backend(name) {
            Ok(v) => v,
            Err(e) => {
                self.audit(caller, action, name, "", Decision::Invalid, &e);
                return Err(e);
            }
        };
        let address = format!("{}/{path}", b.name());
        if !self.acl.allows(&caller.identity, action, &address) {
            self.audit(
                caller,
                action,
                &address,
                b.name(),
                Decision::Denied,
                "no rule grants this",
            );
            return Err(Self::hidden(&address, action));
        }
        Ok((b.clone(), path))
    }

    /// Maps a backend error to the caller's text (NotFound looks exactly like a denial).
    fn failure(
        &self,
        caller: &CallerContext,
        action: Action,
        address: &str,
        backend: &str,
        e: &SecretError,
    ) -> String {
        match e {
            SecretError::NotFound => {
                self.audit(caller, action, address, backend, Decision::NotFound, "");
                Self::hidden(address, action)
            }
            other => {
                let text = other.to_string();
                self.audit(caller, action, address, backend, Decision::Error, &text);
                text
            }
        }
    }
}

/// Arguments of `listSecrets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSecretsArgs {
    /// Only this backend (see listBackends).
    pub backend: Option<String>,
    /// Only secrets whose address starts with this, e.g. "keepass/Infra/".
    pub prefix: Option<String>,
    /// At most this many (default and maximum: the configured max_list).
    pub limit: Option<usize>,
}

/// Arguments of `getSecret`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetSecretArgs {
    /// Secret address `<backend>/<path>`, e.g. "keepass/Infra/docker-registry".
    pub name: String,
    /// Field of a KeePass entry: password (default), username, url, notes or a custom field name.
    pub field: Option<String>,
    /// Version (Azure Key Vault); default the latest.
    pub version: Option<String>,
}

/// Arguments of `setSecret`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecretArgs {
    /// Secret address `<backend>/<path>`; KeePass groups and entries are created as needed.
    pub name: String,
    /// The new value.
    #[schemars(with = "String")]
    pub value: SecretString,
    /// Field of a KeePass entry (default password).
    pub field: Option<String>,
}

impl std::fmt::Debug for SetSecretArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSecretArgs")
            .field("name", &self.name)
            .field("value", &"[redacted]")
            .field("field", &self.field)
            .finish()
    }
}

/// Arguments of `deleteSecret`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteSecretArgs {
    /// Secret address `<backend>/<path>`.
    pub name: String,
}

/// One backend as listBackends shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackendInfo {
    pub name: String,
    pub kind: String,
    pub state: BackendState,
    pub writable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// listBackends result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackendList {
    pub backends: Vec<BackendInfo>,
}

/// listSecrets result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SecretList {
    pub secrets: Vec<SecretMeta>,
    pub count: usize,
    /// True when more secrets exist than were returned.
    pub truncated: bool,
    /// Backends that could not be listed, with the reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, String>,
}

/// setSecret result (metadata only).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SetResult {
    pub secret: SecretMeta,
    pub field: String,
}

/// The per-session handler.
#[derive(Clone)]
pub struct SecretsHandler {
    svc: Arc<Secrets>,
    tool_router: ToolRouter<Self>,
}

impl SecretsHandler {
    /// Destructive actions need an approval token for exactly this call.
    fn require_approval(
        &self,
        caller: &CallerContext,
        tool: &str,
        action: Action,
        address: &str,
        backend: &str,
        field: Option<&str>,
    ) -> Option<CallToolResult> {
        let mut ask = ApprovalAsk::new(format!(
            "{} of secret `{address}` needs a human approval",
            action.as_str()
        ))
        .detail("secret", address)
        .detail("action", action.as_str());
        if let Some(f) = field {
            ask = ask.detail("field", f);
        }
        let event = self
            .svc
            .audited(action, address, backend, Decision::ApprovalRequired, "");
        let refusal = require_approval(caller, tool, ask, &event, &self.svc.metrics).err()?;
        self.svc.recorded(
            caller,
            action,
            address,
            backend,
            Decision::ApprovalRequired,
            "",
        );
        Some(refusal)
    }
}

#[tool_router]
impl SecretsHandler {
    #[tool(
        name = "listBackends",
        description = "List the configured secret backends: name (the first part of every secret address), kind (keepass, azure_key_vault, file, env), state (ready/unavailable with the reason) and whether it accepts writes.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_backends(&self) -> Result<Json<BackendList>, String> {
        Ok(Json(BackendList {
            backends: self
                .svc
                .backends
                .iter()
                .map(|b| {
                    let st = b.status();
                    BackendInfo {
                        name: b.name().to_owned(),
                        kind: b.kind().to_owned(),
                        state: st.state,
                        writable: b.writable(),
                        detail: st.detail,
                    }
                })
                .collect(),
        }))
    }

    #[tool(
        name = "listSecrets",
        description = "List secrets you may see: address (<backend>/<path>), backend, field names, created/updated times, tags. Never returns values, notes or custom-field contents; use getSecret for a value.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_secrets(
        &self,
        Parameters(a): Parameters<ListSecretsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SecretList>, String> {
        let caller = CallerContext::from_request(&ctx);
        let max = self.svc.config.max_list;
        let limit = a.limit.unwrap_or(max).clamp(1, max);
        let prefix = a.prefix.unwrap_or_default();
        let mut secrets = Vec::new();
        let mut errors = BTreeMap::new();
        let mut truncated = false;
        if let Some(n) = &a.backend
            && !self.svc.backends.iter().any(|b| b.name() == n)
        {
            return Err(format!("unknown backend `{n}`; see listBackends"));
        }
        for b in &self.svc.backends {
            if a.backend.as_deref().is_some_and(|n| n != b.name()) {
                continue;
            }
            match b.list(max + 1).await {
                Ok(list) => {
                    if list.len() > max {
                        truncated = true;
                    }
                    secrets.extend(list.into_iter().take(max).filter(|m| {
                        m.name.starts_with(&prefix)
                            && self.svc.acl.allows(&caller.identity, Action::List, &m.name)
                    }));
                }
                Err(e) => {
                    errors.insert(b.name().to_owned(), e.to_string());
                }
            }
        }
        if secrets.len() > limit {
            secrets.truncate(limit);
            truncated = true;
        }
        let scope = a.backend.as_deref().unwrap_or("*");
        self.svc.audit(
            &caller,
            Action::List,
            &format!("{scope}/{prefix}*"),
            scope,
            Decision::Allowed,
            &format!("{} listed", secrets.len()),
        );
        Ok(Json(SecretList {
            count: secrets.len(),
            secrets,
            truncated,
            errors,
        }))
    }

    #[tool(
        name = "getSecret",
        description = "Read a secret's value by address <backend>/<path> (e.g. keepass/Infra/docker-registry). KeePass entries: `field` picks password (default), username, url, notes or a custom field. Azure Key Vault: optional `version`. Access is checked against the rules and rate-limited per identity; every read is audited (without the value).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_secret(
        &self,
        Parameters(a): Parameters<GetSecretArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let (b, path) = self.svc.authorize(&caller, Action::Get, &a.name)?;
        let address = format!("{}/{path}", b.name());
        if let Err(not_until) = self.svc.limiter.check_key(&caller.identity.name) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            self.svc.audit(
                &caller,
                Action::Get,
                &address,
                b.name(),
                Decision::RateLimited,
                "",
            );
            return Err(format!(
                "rate limit: getSecret is limited to {} per minute per identity (burst {}); `{}` may retry in {:.1} s",
                self.svc.config.get_per_minute,
                self.svc.config.get_burst,
                caller.identity.name,
                wait.as_secs_f64()
            ));
        }
        match b.get(&path, a.field.as_deref(), a.version.as_deref()).await {
            Ok(fetched) => {
                self.svc.audit(
                    &caller,
                    Action::Get,
                    &address,
                    b.name(),
                    Decision::Allowed,
                    &fetched.field,
                );
                let mut body = json!({
                    "name": address,
                    "field": fetched.field,
                    "value": fetched.value.expose_secret(),
                });
                if let Some(v) = fetched.version {
                    body["version"] = json!(v);
                }
                Ok(CallToolResult::structured(body))
            }
            Err(e) => Err(self
                .svc
                .failure(&caller, Action::Get, &address, b.name(), &e)),
        }
    }

    #[tool(
        name = "setSecret",
        description = "Create or update a secret (KeePass: one field of an entry, default password; groups and the entry are created as needed; the previous database is backed up first). Destructive: needs a human approval (answer approval_required until approved through master).",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn set_secret(
        &self,
        Parameters(a): Parameters<SetSecretArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let (b, path) = self.svc.authorize(&caller, Action::Set, &a.name)?;
        let address = format!("{}/{path}", b.name());
        if !b.writable() {
            let e = SecretError::ReadOnly(b.name().to_owned());
            return Err(self
                .svc
                .failure(&caller, Action::Set, &address, b.name(), &e));
        }
        if let Some(refusal) = self.require_approval(
            &caller,
            "setSecret",
            Action::Set,
            &address,
            b.name(),
            a.field.as_deref(),
        ) {
            return Ok(refusal);
        }
        match b.set(&path, a.field.as_deref(), a.value).await {
            Ok(meta) => {
                let field = a.field.unwrap_or_else(|| "password".to_owned());
                self.svc.audit(
                    &caller,
                    Action::Set,
                    &address,
                    b.name(),
                    Decision::Allowed,
                    &field,
                );
                Ok(CallToolResult::structured(
                    serde_json::to_value(SetResult {
                        secret: meta,
                        field,
                    })
                    .unwrap_or(Value::Null),
                ))
            }
            Err(e) => Err(self
                .svc
                .failure(&caller, Action::Set, &address, b.name(), &e)),
        }
    }

    #[tool(
        name = "deleteSecret",
        description = "Delete a secret (KeePass: moved to the recycle bin when the database has one, after a backup; Azure Key Vault: soft delete, recoverable until purged). Destructive: needs a human approval.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn delete_secret(
        &self,
        Parameters(a): Parameters<DeleteSecretArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let (b, path) = self.svc.authorize(&caller, Action::Delete, &a.name)?;
        let address = format!("{}/{path}", b.name());
        if !b.writable() {
            let e = SecretError::ReadOnly(b.name().to_owned());
            return Err(self
                .svc
                .failure(&caller, Action::Delete, &address, b.name(), &e));
        }
        if let Some(refusal) = self.require_approval(
            &caller,
            "deleteSecret",
            Action::Delete,
            &address,
            b.name(),
            None,
        ) {
            return Ok(refusal);
        }
        match b.delete(&path).await {
            Ok(d) => {
                self.svc.audit(
                    &caller,
                    Action::Delete,
                    &address,
                    b.name(),
                    Decision::Allowed,
                    &d.outcome,
                );
                Ok(CallToolResult::structured(
                    serde_json::to_value::<&Deleted>(&d).unwrap_or(Value::Null),
                ))
            }
            Err(e) => Err(self
                .svc
                .failure(&caller, Action::Delete, &address, b.name(), &e)),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SecretsHandler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("secrets", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Secrets from KeePass, Azure Key Vault and local files. Addresses are <backend>/<path> (listBackends, listSecrets). listSecrets never returns values; getSecret does, within your access rules; setSecret/deleteSecret need a human approval."
                .to_owned(),
        );
        info
    }
}
