//! Tools that read: listBackends, listSecrets (never values), getSecret (within the rules, rate
//! limited).

use std::collections::BTreeMap;

use mcp_runtime::CallerContext;
use mcp_runtime::guard::Decision;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::SecretsHandler;
use crate::acl::Action;
use crate::backend::{BackendState, SecretMeta};
use crate::error::SecretsError;

/// Arguments of `listSecrets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSecretsArgs {
    /// Only this backend (see listBackends).
    pub backend: Option<String>,
    /// Only secrets whose address starts with this, e.g. "keepass/Infra/".
    pub prefix: Option<String>,
    /// At most this many (default and maximum: the configured max_list).
    pub limit: Option<usize>,
}

/// Arguments of `getSecret`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetSecretArgs {
    /// Secret address `<backend>/<path>`, e.g. "keepass/Infra/docker-registry".
    pub name: String,
    /// Field of a KeePass entry: password (default), username, url, notes or a custom field name.
    pub field: Option<String>,
    /// Version (Azure Key Vault); default the latest.
    pub version: Option<String>,
}

/// One backend as listBackends shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackendInfo {
    pub name: String,
    pub kind: String,
    pub state: BackendState,
    pub writable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// listBackends result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BackendList {
    pub backends: Vec<BackendInfo>,
}

/// listSecrets result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SecretList {
    pub secrets: Vec<SecretMeta>,
    pub count: usize,
    /// True when more secrets exist than were returned.
    pub truncated: bool,
    /// Backends that could not be listed, with the reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, String>,
}

#[tool_router(router = read_tools, vis = "pub(crate)")]
impl SecretsHandler {
    #[tool(
        name = "listBackends",
        description = "List the configured secret backends: name (the first part of every secret address), kind (keepass, azure_key_vault, file, env), state (ready/unavailable with the reason) and whether it accepts writes.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_backends(&self) -> Result<Json<BackendList>, SecretsError> {
        Ok(Json(BackendList {
            backends: self
                .svc
                .backends
                .iter()
                .map(|b| {
                    let st = b.status();
                    BackendInfo {
                        name: b.name().to_owned(),
                        kind: b.kind().to_owned(),
                        state: st.state,
                        writable: b.writable(),
                        detail: st.detail,
                    }
                })
                .collect(),
        }))
    }

    #[tool(
        name = "listSecrets",
        description = "List secrets you may see: address (<backend>/<path>), backend, field names, created/updated times, tags. Never returns values, notes or custom-field contents; use getSecret for a value.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_secrets(
        &self,
        Parameters(a): Parameters<ListSecretsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SecretList>, SecretsError> {
        let caller = CallerContext::from_request(&ctx);
        let max = self.svc.config.max_list;
        let limit = a.limit.unwrap_or(max).clamp(1, max);
        let prefix = a.prefix.unwrap_or_default();
        let mut secrets = Vec::new();
        let mut errors = BTreeMap::new();
        let mut truncated = false;
        if let Some(n) = &a.backend
            && !self.svc.backends.iter().any(|b| b.name() == n)
        {
            return Err(SecretsError::NoSuchBackend(n.clone()));
        }
        for b in &self.svc.backends {
            if a.backend.as_deref().is_some_and(|n| n != b.name()) {
                continue;
            }
            match b.list(max + 1).await {
                Ok(list) => {
                    if list.len() > max {
                        truncated = true;
                    }
                    secrets.extend(list.into_iter().take(max).filter(|m| {
                        m.name.starts_with(&prefix)
                            && self.svc.acl.allows(&caller.identity, Action::List, &m.name)
                    }));
                }
                Err(e) => {
                    errors.insert(b.name().to_owned(), e.to_string());
                }
            }
        }
        if secrets.len() > limit {
            secrets.truncate(limit);
            truncated = true;
        }
        let scope = a.backend.as_deref().unwrap_or("*");
        self.svc.audit(
            &caller,
            Action::List,
            &format!("{scope}/{prefix}*"),
            scope,
            Decision::Allowed,
            &format!("{} listed", secrets.len()),
        );
        Ok(Json(SecretList {
            count: secrets.len(),
            secrets,
            truncated,
            errors,
        }))
    }

    #[tool(
        name = "getSecret",
        description = "Read a secret's value by address <backend>/<path> (e.g. keepass/Infra/docker-registry). KeePass entries: `field` picks password (default), username, url, notes or a custom field. Azure Key Vault: optional `version`. Access is checked against the rules and rate-limited per identity; every read is audited (without the value).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_secret(
        &self,
        Parameters(a): Parameters<GetSecretArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, SecretsError> {
        let caller = CallerContext::from_request(&ctx);
        let (b, path) = self.svc.authorize(&caller, Action::Get, &a.name)?;
        let address = format!("{}/{path}", b.name());
        if let Err(not_until) = self.svc.limiter.check_key(&caller.identity.name) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            self.svc.audit(
                &caller,
                Action::Get,
                &address,
                b.name(),
                Decision::RateLimited,
                "",
            );
            return Err(SecretsError::RateLimited {
                per_minute: self.svc.config.get_per_minute,
                burst: self.svc.config.get_burst,
                identity: caller.identity.name.clone(),
                retry_after_secs: wait.as_secs_f64(),
            });
        }
        match b.get(&path, a.field.as_deref(), a.version.as_deref()).await {
            Ok(fetched) => {
                self.svc.audit(
                    &caller,
                    Action::Get,
                    &address,
                    b.name(),
                    Decision::Allowed,
                    &fetched.field,
                );
                let mut body = json!({
                    "name": address,
                    "field": fetched.field,
                    "value": fetched.value.expose_secret(),
                });
                if let Some(v) = fetched.version {
                    body["version"] = json!(v);
                }
                Ok(CallToolResult::structured(body))
            }
            Err(e) => Err(self
                .svc
                .failure(&caller, Action::Get, &address, b.name(), e)),
        }
    }
}
