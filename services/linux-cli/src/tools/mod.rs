//! The tools, one file per group: `shell` (runCommand, validateCommand), `files` (readFile,
//! writeFile, listDirectory, listBackups, restoreBackup) and `remote` (sshExecuteCommand). Each file has
//! its own `#[tool_router]`; [`crate::LinuxHandler`] serves their sum. Adding a tool: write it in its
//! group's file; a new group adds one line to [`routers`].

mod files;
mod remote;
mod shell;

use mcp_security::Validation;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use crate::{LinuxHandler, exec};

pub use self::files::{
    BackupList, ListBackupsArgs, ListDirArgs, ReadFileArgs, RestoreArgs, Restored, WriteFileArgs,
};
pub use self::remote::SshArgs;
pub use self::shell::{RunCommandArgs, ValidateArgs};

/// Every tool of the service.
pub(crate) fn routers() -> ToolRouter<LinuxHandler> {
    LinuxHandler::shell_tools() + LinuxHandler::file_tools() + LinuxHandler::ssh_tools()
}

pub(crate) fn exec_result(out: &exec::ExecOutput, v: &Validation, extra: Value) -> CallToolResult {
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
