//! What can go wrong in an ai-models tool, and the one place it becomes a tool error (`isError:
//! true` with the text below). Provider texts are scrubbed of keys before they get here.

use rmcp::model::{ContentBlock, IntoContents};

use crate::providers::CallError;

/// An ai-models tool's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AiError {
    /// Refused before any request: provider disabled, model not allowed, budget spent.
    #[error("{0}")]
    Refused(String),
    /// No API key in the key file.
    #[error("{0}")]
    NoKey(String),
    /// Arguments that cannot be sent (shapes, conflicting settings, unsupported parts).
    #[error("{0}")]
    Invalid(String),
    /// The provider failed, could not be reached, or answered something unreadable.
    #[error(transparent)]
    Provider(#[from] CallError),
}

impl IntoContents for AiError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}
