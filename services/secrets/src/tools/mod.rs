//! The tools, one file per group: `read` (listBackends, listSecrets, getSecret) and `write`
//! (setSecret, deleteSecret; approvals). Each file has its own `#[tool_router]`;
//! [`crate::SecretsHandler`] serves their sum. Adding a tool: write it in its group's file; a new
//! group adds one line to [`routers`].

mod read;
mod write;

use rmcp::handler::server::router::tool::ToolRouter;

use crate::SecretsHandler;

pub use read::{BackendInfo, BackendList, GetSecretArgs, ListSecretsArgs, SecretList};
pub use write::{DeleteSecretArgs, SetResult, SetSecretArgs};

/// Every tool of the service.
pub(crate) fn routers() -> ToolRouter<SecretsHandler> {
    SecretsHandler::read_tools() + SecretsHandler::write_tools()
}
