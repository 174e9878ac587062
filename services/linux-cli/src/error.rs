//! What can go wrong in linux-cli, and the one place it becomes a tool error (`isError: true` with
//! the text below). Refusals by the validator and the approval gate are structured results of their
//! own (`blocked`, `approval_required`), not errors.

use rmcp::model::{ContentBlock, IntoContents};

use crate::files::FileError;

/// A linux-cli tool's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinuxError {
    /// Arguments that cannot be acted on.
    #[error("{0}")]
    Invalid(String),
    /// A file tool's refusal or failure (sandbox, size, backups, IO).
    #[error(transparent)]
    File(#[from] FileError),
    /// The working directory is outside the sandbox.
    #[error("cwd refused: {0}")]
    Cwd(FileError),
    /// A blocking file operation ended without an answer.
    #[error("the file operation stopped unexpectedly: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The command could not be started here.
    #[error("{0}")]
    Exec(String),
    /// The SSH host is unknown, or its record in the config or the CMDB is incomplete.
    #[error("{0}")]
    Host(String),
    /// The CMDB could not be asked for the host.
    #[error("{0}")]
    Cmdb(String),
    /// Connecting, authenticating or running over SSH failed.
    #[error("{0}")]
    Ssh(String),
}

impl LinuxError {
    pub(crate) fn invalid(text: impl Into<String>) -> Self {
        Self::Invalid(text.into())
    }
}

impl IntoContents for LinuxError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}
