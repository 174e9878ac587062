//! File tools inside the allowed roots: readFile, writeFile (atomic, backed up), listDirectory,
//! listBackups, restoreBackup.

use mcp_runtime::CallerContext;
use mcp_runtime::guard::Decision as AuditDecision;
use mcp_security::Category;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::LinuxHandler;
use crate::error::LinuxError;
use crate::files::{BackupInfo, FileContent, Listing, WriteResult};

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

#[tool_router(router = file_tools, vis = "pub(crate)")]
impl LinuxHandler {
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
    ) -> Result<Json<FileContent>, LinuxError> {
        let svc = self.svc.clone();
        tokio::task::spawn_blocking(move || {
            svc.files.read(
                &a.path,
                a.offset.unwrap_or(0),
                a.length,
                svc.config.max_read_bytes,
            )
        })
        .await?
        .map(Json)
        .map_err(LinuxError::from)
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
    ) -> Result<CallToolResult, LinuxError> {
        let caller = CallerContext::from_request(&ctx);
        let data = match a.encoding.as_deref().unwrap_or("utf-8") {
            "utf-8" | "utf8" | "text" => a.content.into_bytes(),
            "base64" => decode_base64(&a.content)
                .ok_or_else(|| LinuxError::invalid("`content` is not valid base64"))?,
            other => {
                return Err(LinuxError::invalid(format!(
                    "unknown encoding `{other}`; use utf-8 or base64"
                )));
            }
        };
        let resolved = self.svc.files.resolve(&a.path)?;
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
        .await??;
        self.audit(
            &caller,
            "writeFile",
            "local",
            &shown,
            &v,
            AuditDecision::Done("written"),
            None,
        );
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
    ) -> Result<Json<Listing>, LinuxError> {
        let path = a.path.unwrap_or_else(|| ".".to_owned());
        self.svc
            .files
            .list(&path, self.svc.config.max_list_entries)
            .map(Json)
            .map_err(LinuxError::from)
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
    ) -> Result<Json<BackupList>, LinuxError> {
        self.svc
            .files
            .list_backups(a.path.as_deref())
            .map(|backups| Json(BackupList { backups }))
            .map_err(LinuxError::from)
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
    ) -> Result<CallToolResult, LinuxError> {
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
            .restore(&a.id, self.svc.config.max_write_bytes)?;
        self.audit(
            &caller,
            "restoreBackup",
            "local",
            &shown,
            &v,
            AuditDecision::Done("restored"),
            None,
        );
        Ok(CallToolResult::structured(
            serde_json::to_value(Restored { restored, write }).unwrap_or(Value::Null),
        ))
    }
}

/// `content` in base64: the standard alphabet, whitespace (line breaks) ignored, padding optional.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT.decode(compact).ok()
}
