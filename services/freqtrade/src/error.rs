//! What can go wrong in the freqtrade knowledge service, and the one place it becomes a tool error
//! (`isError: true` with the text below).

use rmcp::model::{ContentBlock, IntoContents};

use crate::repo::RepoError;

/// A freqtrade tool's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FreqtradeError {
    /// The repository, a path in it, or git.
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// Arguments that cannot be acted on (empty query, bad regex or glob, empty line range, a file
    /// asked for as a directory).
    #[error("{0}")]
    Invalid(String),
    /// A CLI call outside the allow-list.
    #[error("{0}")]
    Refused(String),
    /// The freqtrade program is missing, failed or timed out.
    #[error("{0}")]
    Cli(String),
    /// Cloning, fetching or opening the repository.
    #[error("{0}")]
    Sync(String),
    /// A blocking repository task ended without an answer.
    #[error("the repository task stopped unexpectedly: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl FreqtradeError {
    pub(crate) fn invalid(text: impl Into<String>) -> Self {
        Self::Invalid(text.into())
    }
}

impl IntoContents for FreqtradeError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}
