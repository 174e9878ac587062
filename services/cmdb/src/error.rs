//! What can go wrong in a CMDB tool, and the one place it becomes a tool error (`isError: true`
//! with the text below).

use rmcp::model::{ContentBlock, IntoContents};

use crate::store::StoreError;

/// A CMDB tool's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmdbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Arguments that cannot be acted on.
    #[error("{0}")]
    Invalid(String),
    /// The host is not there; the suggestion names similar hosts or how to find one.
    #[error("host `{host}` is not in the CMDB; {suggestion}")]
    UnknownHost { host: String, suggestion: String },
}

impl IntoContents for CmdbError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}
