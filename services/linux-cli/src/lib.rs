//! linux-cli MCP service (port 8001, namespace `linux`): shell commands validated by
//! `mcp-security` (risky categories need an approval token signed by master, blocked ones never
//! run), sandboxed file tools with atomic writes and backups, and SSH to hosts from the CMDB.

pub mod exec;
pub mod files;
pub mod ssh;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcp_runtime::approval::approval_required;
use mcp_runtime::output::structured_error;
use mcp_runtime::{BoxError, BuildContext, CallerContext, Check, HealthProbe, McpService};
use mcp_security::{Category, Decision, PathSandbox, PolicyConfig, Validation, Validator};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::files::{BackupInfo, FileContent, Files, Listing, WriteResult};

/// One SSH host configured locally (takes precedence over the CMDB).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshHost {
    pub name: String,
    pub address: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    pub user: String,
    /// Private key file; default: `<key_dir>/<name>_<user>_id_ed25519` or `_id_rsa`, else `ssh.key_file`.
    pub key_file: Option<PathBuf>,
}

fn default_ssh_port() -> u16 {
    22
}

/// The `[linux.ssh]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    /// known_hosts file; hosts not in it are refused (never learned silently).
    pub known_hosts: PathBuf,
    /// Directory with per-host keys named `<host>_<user>_id_rsa` / `_id_ed25519` (the seed's layout).
    pub key_dir: PathBuf,
    /// Key used when no per-host key exists.
    pub key_file: Option<PathBuf>,
    /// CMDB MCP endpoint for host lookup (`getHost`); empty disables the lookup.
    pub cmdb_url: String,
    /// Bearer token file for the CMDB, if it requires auth.
    pub cmdb_token_file: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    /// Hosts configured here, looked up before the CMDB.
    pub host: Vec<SshHost>,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            known_hosts: PathBuf::from("secrets/known_hosts"),
            key_dir: PathBuf::from("secrets"),
            key_file: None,
            cmdb_url: "http://127.0.0.1:8012/mcp".to_owned(),
            cmdb_token_file: None,
            connect_timeout_secs: 10,
            host: Vec::new(),
        }
    }
}

/// The `[linux]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinuxConfig {
    /// Directories commands may run in and file tools may touch.
    pub allowed_roots: Vec<PathBuf>,
    /// Extra deny globs for sensitive files (added to the built-in list).
    pub deny_paths: Vec<String>,
    /// Where writeFile keeps previous versions (outside the roots).
    pub backup_dir: PathBuf,
    pub default_timeout_secs: u64,
    /// Keep below `server.tool_timeout_secs`.
    pub max_timeout_secs: u64,
    /// Cap per output stream (stdout, stderr) in bytes.
    pub max_output_bytes: usize,
    pub max_read_bytes: u64,
    pub max_write_bytes: usize,
    pub max_list_entries: usize,
    /// Command policy: categories needing approval or refused, extra commands, blocked patterns.
    pub policy: PolicyConfig,
    pub ssh: SshConfig,
}

impl Default for LinuxConfig {
    fn default() -> Self {
        Self {
            allowed_roots: vec![PathBuf::from("data/linux-cli/workspace")],
            deny_paths: Vec::new(),
            backup_dir: PathBuf::from("data/linux-cli/backups"),
            default_timeout_secs: 30,
            max_timeout_secs: 100,
            max_output_bytes: 64 * 1024,
            max_read_bytes: 1024 * 1024,
            max_write_bytes: 10 * 1024 * 1024,
            max_list_entries: 1000,
            policy: PolicyConfig::default(),
            ssh: SshConfig::default(),
        }
    }
}

/// The service: validator, sandbox and SSH settings shared by every session.
pub struct LinuxCli {
    config: LinuxConfig,
    validator: Validator,
    remote_validator: Validator,
    files: Files,
    tools: ToolRouter<LinuxHandler>,
}

impl McpService for LinuxCli {
    const NAME: &'static str = "linux-cli";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "linux";
    const DEFAULT_PORT: u16 = 8001;
    type Config = LinuxConfig;
    type Handler = LinuxHandler;

    async fn build(config: LinuxConfig, _ctx: BuildContext) -> Result<Self, BoxError> {
        if config.allowed_roots.is_empty() {
            return Err("linux.allowed_roots must name at least one directory".into());
        }
        if config.max_timeout_secs == 0 || config.default_timeout_secs > config.max_timeout_secs {
            return Err(
                "linux.default_timeout_secs must be between 1 and linux.max_timeout_secs".into(),
            );
        }
        let sandbox = PathSandbox::new(&config.allowed_roots, &config.deny_paths)?;
        let validator = Validator::new(config.policy.clone(), Some(sandbox.clone()))?;
        let remote_validator = Validator::new(config.policy.clone(), None)?;
        let files = Files::new(sandbox, config.backup_dir.clone())?;
        tracing::info!(
            message = "linux-cli ready.",
            roots = ?files.sandbox().roots(),
            approval_needed_for = ?config.policy.approve,
        );
        Ok(Self {
            config,
            validator,
            remote_validator,
            files,
            tools: LinuxHandler::tool_router(),
        })
    }

    fn handler(self: &Arc<Self>) -> LinuxHandler {
        LinuxHandler {
            svc: self.clone(),
            tool_router: self.tools.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }
}

impl HealthProbe for LinuxCli {
    fn checks(&self) -> BTreeMap<String, Check> {
        let roots: Vec<String> = self
            .files
            .sandbox()
            .roots()
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        let mut checks = BTreeMap::new();
        checks.insert(
            "sandbox".to_owned(),
            Check::healthy(
                json!({ "roots": roots, "approval_needed_for": self.config.policy.approve }),
            ),
        );
        let kh = &self.config.ssh.known_hosts;
        checks.insert(
            "ssh".to_owned(),
            if kh.exists() {
                Check::healthy(json!({ "known_hosts": kh.display().to_string() }))
            } else {
                Check::degraded(
                    format!(
                        "known_hosts file {} is missing: sshExecuteCommand refuses every host",
                        kh.display()
                    ),
                    Value::Null,
                )
            },
        );
        checks
    }

    fn ready(&self) -> bool {
        true
    }
}

/// Arguments of `runCommand`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCommandArgs {
    /// Shell command line (bash syntax), e.g. "df -h | sort -k5". Give this or `argv`.
    pub command: Option<String>,
    /// Program and arguments, run without a shell, e.g. ["ls","-la"]. Give this or `command`.
    pub argv: Option<Vec<String>>,
    /// Working directory inside the allowed roots (default: the first root).
    pub cwd: Option<String>,
    /// Seconds before the whole process group is killed (default 30, at most the configured maximum).
    pub timeout_secs: Option<u64>,
}

/// Arguments of `validateCommand`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateArgs {
    /// Shell command line to classify.
    pub command: String,
}

/// Arguments of `readFile`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    /// Path, relative to the first allowed root or absolute inside one.
    pub path: String,
    /// Byte offset to start at (default 0).
    pub offset: Option<u64>,
    /// Bytes to read (default and maximum: the configured read cap).
    pub length: Option<u64>,
}

/// Arguments of `writeFile`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    /// Path, relative to the first allowed root or absolute inside one. Parent directories are created.
    pub path: String,
    /// New content (UTF-8 text, or base64 when `encoding` is "base64").
    pub content: String,
    /// "utf-8" (default) or "base64".
    pub encoding: Option<String>,
}

/// Arguments of `listDirectory`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDirArgs {
    /// Directory (default: the first allowed root).
    pub path: Option<String>,
}

/// Arguments of `listBackups`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBackupsArgs {
    /// Only backups of this file.
    pub path: Option<String>,
}

/// Arguments of `restoreBackup`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreArgs {
    /// Backup id from listBackups.
    pub id: String,
}

/// Arguments of `sshExecuteCommand`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SshArgs {
    /// Host name as in the CMDB (e.g. "aicrusher") or in linux.ssh.host.
    pub host: String,
    /// Command line to run remotely; validated like runCommand.
    pub command: String,
    /// Seconds before the remote command is killed (default 30).
    pub timeout: Option<u64>,
}

/// Backups of a file.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackupList {
    pub backups: Vec<BackupInfo>,
}

/// Result of a restore.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Restored {
    pub restored: BackupInfo,
    pub write: WriteResult,
}

/// The per-session handler.
#[derive(Clone)]
pub struct LinuxHandler {
    svc: Arc<LinuxCli>,
    tool_router: ToolRouter<Self>,
}

fn validation_details(v: &Validation, command: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("category".into(), json!(v.category));
    m.insert("command".into(), json!(command));
    m.insert(
        "validation".into(),
        serde_json::to_value(v).unwrap_or(Value::Null),
    );
    m
}

/// Secrets that may appear in command lines are masked in audit records.
/// The command as the audit line shows it: secrets masked by the shared redactor, bounded.
fn redact(command: &str) -> String {
    let s = mcp_runtime::redact::text(command);
    if s.len() > 1000 {
        format!("{}…", &s[..s.floor_char_boundary(1000)])
    } else {
        s.into_owned()
    }
}

fn audit(
    caller: &CallerContext,
    tool: &str,
    target: &str,
    command: &str,
    v: &Validation,
    decision: &str,
    out: Option<&exec::ExecOutput>,
) {
    tracing::info!(
        target: "audit",
        message = "Command audited.",
        tool,
        host = target,
        identity = %caller.identity.name,
        correlation_id = %caller.correlation_id,
        command = %redact(command),
        category = %v.category,
        decision,
        approval_id = caller.approval.as_ref().map(|a| a.id.as_str()).unwrap_or(""),
        exit_code = out.and_then(|o| o.exit_code),
        timed_out = out.is_some_and(|o| o.timed_out),
        duration_ms = out.map(|o| o.duration_ms),
    );
}

impl LinuxHandler {
    /// Applies the verdict: blocked → refusal, approval needed without a token → approval_required.
    fn gate(
        &self,
        tool: &str,
        caller: &CallerContext,
        host: &str,
        command: &str,
        v: &Validation,
    ) -> Result<(), CallToolResult> {
        match v.decision {
            Decision::Block => {
                audit(caller, tool, host, command, v, "blocked", None);
                Err(structured_error(
                    format!("refused ({}): {}. Nothing was run.", v.category, v.reason),
                    json!({ "error": "blocked", "category": v.category, "reason": v.reason, "validation": v }),
                ))
            }
            Decision::Approve if caller.approval.is_none() => {
                audit(caller, tool, host, command, v, "approval_required", None);
                let mut reason = format!("`{}` command needs approval: {}", v.category, v.reason);
                if let Some(e) = &caller.approval_error {
                    reason.push_str(&format!(" (the approval token sent was refused: {e})"));
                }
                Err(approval_required(
                    tool,
                    &reason,
                    validation_details(v, command),
                ))
            }
            _ => Ok(()),
        }
    }

    fn timeout(&self, asked: Option<u64>) -> Result<Duration, String> {
        let c = &self.svc.config;
        let secs = asked.unwrap_or(c.default_timeout_secs);
        if secs == 0 || secs > c.max_timeout_secs {
            return Err(format!(
                "timeout must be between 1 and {} seconds, got {secs}",
                c.max_timeout_secs
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    async fn resolve_host(&self, name: &str) -> Result<ssh::Target, String> {
        let cfg = &self.svc.config.ssh;
        let key_for = |host: &str,
                       user: &str,
                       explicit: Option<&PathBuf>|
         -> Result<PathBuf, String> {
            if let Some(k) = explicit {
                return Ok(k.clone());
            }
            for suffix in ["id_ed25519", "id_rsa", "id_ecdsa"] {
                let p = cfg.key_dir.join(format!("{host}_{user}_{suffix}"));
                if p.exists() {
                    return Ok(p);
                }
            }
            cfg.key_file.clone().ok_or_else(|| {
                format!(
                    "no private key for {user}@{host}: put it at {}/{host}_{user}_id_ed25519 (or _id_rsa) or set linux.ssh.key_file",
                    cfg.key_dir.display()
                )
            })
        };
        if let Some(h) = cfg.host.iter().find(|h| h.name.eq_ignore_ascii_case(name)) {
            return Ok(ssh::Target {
                host: h.name.clone(),
                address: h.address.clone(),
                port: h.port,
                user: h.user.clone(),
                key_file: key_for(&h.name, &h.user, h.key_file.as_ref())?,
            });
        }
        if cfg.cmdb_url.is_empty() {
            return Err(format!(
                "host `{name}` is not configured in linux.ssh.host and CMDB lookup is off"
            ));
        }
        let host = cmdb_lookup(&cfg.cmdb_url, cfg.cmdb_token_file.as_deref(), name).await?;
        let field = |k: &str| {
            host.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .filter(|s| !s.is_empty())
        };
        let host_name = field("name").unwrap_or_else(|| name.to_owned());
        let address = field("ip")
            .or_else(|| field("fqdn"))
            .ok_or_else(|| format!("CMDB record of `{name}` has neither ip nor fqdn"))?;
        let user =
            field("ssh_user").ok_or_else(|| format!("CMDB record of `{name}` has no ssh_user"))?;
        let port = match host.get("ssh_port") {
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) if !s.is_empty() => s.parse().ok(),
            _ => Some(22),
        }
        .ok_or_else(|| format!("CMDB record of `{name}` has an invalid ssh_port"))?;
        Ok(ssh::Target {
            key_file: key_for(&host_name, &user, None)?,
            host: host_name,
            address,
            port,
            user,
        })
    }
}

/// `getHost` on the CMDB over MCP.
async fn cmdb_lookup(
    url: &str,
    token_file: Option<&Path>,
    name: &str,
) -> Result<Map<String, Value>, String> {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(path) = token_file {
        let token = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read CMDB token file {}: {e}", path.display()))?;
        config = config.auth_header(token.trim().to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    let client = tokio::time::timeout(Duration::from_secs(10), ().serve(transport))
        .await
        .map_err(|_| format!("CMDB at {url} did not answer in 10 s"))?
        .map_err(|e| format!("cannot reach the CMDB at {url}: {e}"))?;
    let mut args = Map::new();
    args.insert("name".into(), Value::String(name.to_owned()));
    let result = client
        .call_tool(CallToolRequestParams::new("getHost").with_arguments(args))
        .await
        .map_err(|e| format!("CMDB getHost failed: {e}"));
    let _ = client.cancel().await;
    let result = result?;
    if result.is_error == Some(true) {
        let text = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(format!("unknown host: {text}"));
    }
    result
        .structured_content
        .and_then(|v| v.get("host").and_then(Value::as_object).cloned())
        .ok_or_else(|| "CMDB getHost returned no host record".to_owned())
}

fn exec_result(out: &exec::ExecOutput, v: &Validation, extra: Value) -> CallToolResult {
    let mut body = serde_json::to_value(out).unwrap_or(Value::Null);
    if let (Some(m), Value::Object(e)) = (body.as_object_mut(), extra) {
        m.insert("category".into(), json!(v.category));
        m.extend(e);
    }
    let mut r = CallToolResult::structured(body);
    if out.timed_out {
        r.is_error = Some(true);
    }
    r
}

#[tool_router]
impl LinuxHandler {
    #[tool(
        name = "runCommand",
        description = "Run a shell command (bash syntax in `command`, or `argv` without a shell) in a sandboxed working directory, with a timeout that kills the whole process group and capped output. Every part of the command is validated: read-only commands run, write/privileged/destructive ones need an approval (answer: approval_required), blocked ones (rm -rf /, curl|sh, fork bombs, unanalysable constructs) never run. Returns exit_code, stdout, stderr, duration_ms, category.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn run_command(
        &self,
        Parameters(args): Parameters<RunCommandArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let timeout = self.timeout(args.timeout_secs)?;
        let cwd = match &args.cwd {
            Some(c) => {
                self.svc
                    .files
                    .resolve(c)
                    .map_err(|e| format!("cwd refused: {e}"))?
                    .absolute
            }
            None => self.svc.files.sandbox().roots()[0].clone(),
        };
        if !cwd.is_dir() {
            return Err(format!(
                "cwd `{}` is not an existing directory",
                cwd.display()
            ));
        }
        let (argv, shown, v) =
            match (&args.command, &args.argv) {
                (Some(c), None) => {
                    if c.trim().is_empty() {
                        return Err("`command` must not be empty".to_owned());
                    }
                    let v = self.svc.validator.validate(c, Some(&cwd));
                    (
                        vec![
                            "/bin/bash".to_owned(),
                            "--noprofile".to_owned(),
                            "--norc".to_owned(),
                            "-c".to_owned(),
                            c.clone(),
                        ],
                        c.clone(),
                        v,
                    )
                }
                (None, Some(a)) if !a.is_empty() => {
                    let v = self.svc.validator.validate_argv(a, Some(&cwd));
                    (a.clone(), a.join(" "), v)
                }
                _ => return Err(
                    "give exactly one of `command` (a shell string) or `argv` (a non-empty list)"
                        .to_owned(),
                ),
            };
        if let Err(refusal) = self.gate("runCommand", &caller, "local", &shown, &v) {
            return Ok(refusal);
        }
        let out = exec::run(&argv, &cwd, timeout, self.svc.config.max_output_bytes).await?;
        audit(
            &caller,
            "runCommand",
            "local",
            &shown,
            &v,
            "ran",
            Some(&out),
        );
        Ok(exec_result(
            &out,
            &v,
            json!({ "cwd": cwd.display().to_string() }),
        ))
    }

    #[tool(
        name = "validateCommand",
        description = "Classify a shell command without running it: is_safe, category (read_only, write, network, privileged, destructive, blocked), decision (allow, approve, block) and the reason, with a finding for every part (pipelines, substitutions, wrapper payloads).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn validate_command(
        &self,
        Parameters(args): Parameters<ValidateArgs>,
    ) -> Result<Json<Validation>, String> {
        Ok(Json(self.svc.validator.validate(&args.command, None)))
    }

    #[tool(
        name = "readFile",
        description = "Read a file inside the allowed roots, optionally a part (offset/length). Binary files come back base64-encoded. Sensitive files (private keys, /etc/shadow, ...) are never readable.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn read_file(
        &self,
        Parameters(a): Parameters<ReadFileArgs>,
    ) -> Result<Json<FileContent>, String> {
        let svc = self.svc.clone();
        tokio::task::spawn_blocking(move || {
            svc.files.read(
                &a.path,
                a.offset.unwrap_or(0),
                a.length,
                svc.config.max_read_bytes,
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map(Json)
        .map_err(|e| e.to_string())
    }

    #[tool(
        name = "writeFile",
        description = "Write a file inside the allowed roots atomically (temp file + rename, mode kept). The previous version is backed up first (see listBackups / restoreBackup). Needs an approval under the default policy.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn write_file(
        &self,
        Parameters(a): Parameters<WriteFileArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let data = match a.encoding.as_deref().unwrap_or("utf-8") {
            "utf-8" | "utf8" | "text" => a.content.into_bytes(),
            "base64" => decode_base64(&a.content).ok_or("`content` is not valid base64")?,
            other => return Err(format!("unknown encoding `{other}`; use utf-8 or base64")),
        };
        let resolved = self.svc.files.resolve(&a.path).map_err(|e| e.to_string())?;
        let shown = format!("writeFile {}", resolved.absolute.display());
        let v = self.svc.validator.validate_action(
            &shown,
            Category::Write,
            &format!("writes {} bytes", data.len()),
        );
        if let Err(refusal) = self.gate("writeFile", &caller, "local", &shown, &v) {
            return Ok(refusal);
        }
        let svc = self.svc.clone();
        let path = a.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            svc.files.write(&path, &data, svc.config.max_write_bytes)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        audit(&caller, "writeFile", "local", &shown, &v, "written", None);
        Ok(CallToolResult::structured(
            serde_json::to_value(&written).unwrap_or(Value::Null),
        ))
    }

    #[tool(
        name = "listDirectory",
        description = "List a directory inside the allowed roots: name, kind (file/dir/symlink), size, mode, modified time.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_directory(
        &self,
        Parameters(a): Parameters<ListDirArgs>,
    ) -> Result<Json<Listing>, String> {
        let path = a.path.unwrap_or_else(|| ".".to_owned());
        self.svc
            .files
            .list(&path, self.svc.config.max_list_entries)
            .map(Json)
            .map_err(|e| e.to_string())
    }

    #[tool(
        name = "listBackups",
        description = "List backups taken by writeFile and restoreBackup (newest first), optionally only those of one file.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_backups(
        &self,
        Parameters(a): Parameters<ListBackupsArgs>,
    ) -> Result<Json<BackupList>, String> {
        self.svc
            .files
            .list_backups(a.path.as_deref())
            .map(|backups| Json(BackupList { backups }))
            .map_err(|e| e.to_string())
    }

    #[tool(
        name = "restoreBackup",
        description = "Restore a backup (id from listBackups) over its original file, byte for byte; the current version is backed up first. Needs an approval under the default policy.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn restore_backup(
        &self,
        Parameters(a): Parameters<RestoreArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let shown = format!("restoreBackup {}", a.id);
        let v = self.svc.validator.validate_action(
            &shown,
            Category::Write,
            "overwrites a file with a backup",
        );
        if let Err(refusal) = self.gate("restoreBackup", &caller, "local", &shown, &v) {
            return Ok(refusal);
        }
        let (restored, write) = self
            .svc
            .files
            .restore(&a.id, self.svc.config.max_write_bytes)
            .map_err(|e| e.to_string())?;
        audit(
            &caller,
            "restoreBackup",
            "local",
            &shown,
            &v,
            "restored",
            None,
        );
        Ok(CallToolResult::structured(
            serde_json::to_value(Restored { restored, write }).unwrap_or(Value::Null),
        ))
    }

    #[tool(
        name = "sshExecuteCommand",
        description = "Run a command on a remote host over SSH. The host is looked up by name in the CMDB (address, ssh_user, ssh_port) or in linux.ssh.host; the key comes from the secrets directory; the host key must already be in known_hosts. The command is validated like runCommand before connecting. Returns exit_code, stdout, stderr, duration_ms.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn ssh_execute_command(
        &self,
        Parameters(a): Parameters<SshArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, String> {
        let caller = CallerContext::from_request(&ctx);
        let timeout = self.timeout(a.timeout)?;
        if a.command.trim().is_empty() {
            return Err("`command` must not be empty".to_owned());
        }
        let v = self.svc.remote_validator.validate(&a.command, None);
        if let Err(refusal) = self.gate("sshExecuteCommand", &caller, &a.host, &a.command, &v) {
            return Ok(refusal);
        }
        let target = self.resolve_host(&a.host).await?;
        let cfg = &self.svc.config.ssh;
        let out = ssh::execute(
            &target,
            &cfg.known_hosts,
            &a.command,
            Duration::from_secs(cfg.connect_timeout_secs),
            timeout,
            self.svc.config.max_output_bytes,
        )
        .await
        .inspect_err(|e| tracing::warn!(target: "audit", message = "SSH command failed.", host = %a.host, identity = %caller.identity.name, correlation_id = %caller.correlation_id, error = %mcp_runtime::redact::text(&e.to_string())))?;
        audit(
            &caller,
            "sshExecuteCommand",
            &a.host,
            &a.command,
            &v,
            "ran",
            Some(&out),
        );
        Ok(exec_result(
            &out,
            &v,
            json!({ "host": target.host, "address": target.address, "port": target.port, "user": target.user }),
        ))
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for LinuxHandler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("linux-cli", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Shell and files on this host, SSH to inventory hosts. Use validateCommand to see how a command is classified; read-only commands run at once, risky ones need an approval."
                .to_owned(),
        );
        info
    }
}
