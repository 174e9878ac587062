//! What can go wrong in the k8s service, and the one place it becomes a tool error (`isError: true`
//! with the text below).

use rmcp::model::{ContentBlock, IntoContents};

use crate::access::Denied;
use crate::client::describe_error;

/// A k8s tool's failure. Every text says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum K8sError {
    /// The configuration names no usable cluster (shown by the tools and the health check).
    #[error("{0}")]
    Config(String),
    /// Tools asked while no client could be built.
    #[error("the k8s service has no cluster: {0}")]
    NoCluster(String),
    /// The API server answered with an error or could not be reached.
    #[error("{}", describe_error(.0))]
    Api(#[from] kube::Error),
    #[error("unknown kind `{kind}`{}: the API server lists no such resource", .api_version.as_ref().map(|v| format!(" in {v}")).unwrap_or_default())]
    UnknownKind {
        kind: String,
        api_version: Option<String>,
    },
    /// Refused by the access settings or rules.
    #[error("refused: {0}")]
    Refused(#[from] Denied),
    /// One document of a manifest is refused; nothing is applied.
    #[error("refused (document {document}, {kind} {name}): {denied}; nothing was applied")]
    DocumentRefused {
        document: usize,
        kind: String,
        name: String,
        denied: Denied,
    },
    /// Arguments or a manifest that cannot be acted on.
    #[error("{0}")]
    Invalid(String),
    /// An error about one part of a request (`document 2: …`).
    #[error("{context}: {source}")]
    In {
        context: String,
        source: Box<K8sError>,
    },
}

impl K8sError {
    pub(crate) fn invalid(text: impl Into<String>) -> Self {
        Self::Invalid(text.into())
    }

    /// This error, said about `context`.
    pub(crate) fn within(self, context: impl Into<String>) -> Self {
        Self::In {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

impl IntoContents for K8sError {
    fn into_contents(self) -> Vec<ContentBlock> {
        vec![ContentBlock::text(self.to_string())]
    }
}
