//! Tools that change a backend: setSecret and deleteSecret, each after a human approval.

use mcp_runtime::CallerContext;
use mcp_runtime::guard::Decision;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SecretsHandler;
use crate::acl::Action;
use crate::backend::{Deleted, SecretError, SecretMeta};
use crate::error::SecretsError;

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

/// setSecret result (metadata only).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SetResult {
    pub secret: SecretMeta,
    pub field: String,
}

#[tool_router(router = write_tools, vis = "pub(crate)")]
impl SecretsHandler {
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
    ) -> Result<CallToolResult, SecretsError> {
        let caller = CallerContext::from_request(&ctx);
        let (b, path) = self.svc.authorize(&caller, Action::Set, &a.name)?;
        let address = format!("{}/{path}", b.name());
        if !b.writable() {
            let e = SecretError::ReadOnly(b.name().to_owned());
            return Err(self
                .svc
                .failure(&caller, Action::Set, &address, b.name(), e));
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
                .failure(&caller, Action::Set, &address, b.name(), e)),
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
    ) -> Result<CallToolResult, SecretsError> {
        let caller = CallerContext::from_request(&ctx);
        let (b, path) = self.svc.authorize(&caller, Action::Delete, &a.name)?;
        let address = format!("{}/{path}", b.name());
        if !b.writable() {
            let e = SecretError::ReadOnly(b.name().to_owned());
            return Err(self
                .svc
                .failure(&caller, Action::Delete, &address, b.name(), e));
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
                .failure(&caller, Action::Delete, &address, b.name(), e)),
        }
    }
}
