//! Azure Key Vault backend over the official SDK (`azure_security_keyvault_secrets` +
//! `azure_identity`). Credentials from the environment, a client secret file or a managed identity;
//! 429/503 are retried by the SDK honouring `Retry-After`; HTTP errors become texts naming the status
//! and what to do. Secret values from the SDK are moved into [`SecretString`] at once.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret as AzSecret, TokenCredential};
use azure_core::http::{
    ClientOptions, ExponentialRetryOptions, RetryOptions, StatusCode, Transport,
};
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};
use azure_security_keyvault_secrets::models::{SecretAttributes, SetSecretParameters};
use azure_security_keyvault_secrets::{
    ResourceExt, SecretClient, SecretClientOptions,
    models::{SecretClientGetSecretOptions, SecretClientListSecretPropertiesOptions},
};
use futures::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::backend::SetupError;
use crate::backend::{
    BackendStatus, Deleted, Fetched, SecretBackend, SecretError, SecretMeta, rfc3339,
};

/// How the backend authenticates to Entra ID.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` (or `AZURE_CLIENT_SECRET_FILE`).
    #[default]
    Environment,
    /// `tenant_id`, `client_id` and `client_secret_file` from this table.
    ClientSecret,
    /// The managed identity of the VM / App Service / AKS pod (`client_id` picks a user-assigned one).
    ManagedIdentity,
}

/// `[[secrets.backend]]` with `kind = "azure_key_vault"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// e.g. `https://my-vault.vault.azure.net`.
    pub vault_url: String,
    #[serde(default)]
    pub credential: CredentialKind,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// Entra ID authority for sovereign or private clouds (default: the public cloud's).
    pub authority_host: Option<String>,
    /// Extra PEM root certificate to trust (a TLS-inspecting proxy, a private endpoint).
    pub ca_file: Option<PathBuf>,
    /// Retries of 408/429/5xx answers (the SDK waits at least `Retry-After`).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Give up retrying after this many seconds in total.
    #[serde(default = "default_retry_secs")]
    pub max_retry_secs: u64,
    /// Check that the vault's auth challenge names a Key Vault domain (SDK default: on).
    #[serde(default = "default_true")]
    pub verify_challenge_resource: bool,
    #[serde(default)]
    pub read_only: bool,
}

fn default_retries() -> u32 {
    3
}
fn default_retry_secs() -> u64 {
    60
}
fn default_true() -> bool {
    true
}

/// An Azure Key Vault as a secret backend.
pub struct AzureVault {
    name: String,
    cfg: AzureConfig,
    client: Result<SecretClient, SetupError>,
}

fn client_options(cfg: &AzureConfig) -> Result<ClientOptions, SetupError> {
    let mut options = ClientOptions::default();
    let retry = ExponentialRetryOptions {
        max_retries: cfg.max_retries,
        max_total_elapsed: azure_core::time::Duration::seconds(
            i64::try_from(cfg.max_retry_secs).unwrap_or(i64::MAX),
        ),
        ..Default::default()
    };
    options.retry = RetryOptions::exponential(retry);
    if let Some(host) = &cfg.authority_host {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = host.clone();
        options.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
    }
    if let Some(ca) = &cfg.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| format!("cannot read ca_file {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("ca_file {} is not a PEM certificate: {e}", ca.display()))?;
        let http = reqwest::Client::builder()
            .add_root_certificate(cert)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        options.transport = Some(Transport::new(Arc::new(http)));
    }
    Ok(options)
}

fn credential(
    cfg: &AzureConfig,
    options: &ClientOptions,
) -> Result<Arc<dyn TokenCredential>, SetupError> {
    let client_secret = |tenant: String, client: String, secret: String| {
        ClientSecretCredential::new(
            &tenant,
            client,
            AzSecret::new(secret),
            Some(ClientSecretCredentialOptions {
                client_options: options.clone(),
            }),
        )
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| SetupError(format!("client secret credential: {e}")))
    };
    let need = |v: &Option<String>, key: &str| {
        v.clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("`{key}` is required for this credential"))
    };
    match cfg.credential {
        CredentialKind::Environment => {
            let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let tenant = var("AZURE_TENANT_ID").ok_or("AZURE_TENANT_ID is not set")?;
            let client = var("AZURE_CLIENT_ID").ok_or("AZURE_CLIENT_ID is not set")?;
            let secret = match (var("AZURE_CLIENT_SECRET_FILE"), var("AZURE_CLIENT_SECRET")) {
                (Some(f), _) => read_secret_file(&PathBuf::from(f))?,
                (None, Some(s)) => s,
                (None, None) => {
                    return Err(SetupError::from(
                        "AZURE_CLIENT_SECRET_FILE (or AZURE_CLIENT_SECRET) is not set".to_owned(),
                    ));
                }
            };
            client_secret(tenant, client, secret)
        }
        CredentialKind::ClientSecret => {
            let file = cfg
                .client_secret_file
                .as_ref()
                .ok_or("`client_secret_file` is required for credential = \"client_secret\"")?;
            client_secret(
                need(&cfg.tenant_id, "tenant_id")?,
                need(&cfg.client_id, "client_id")?,
                read_secret_file(file)?,
            )
        }
        CredentialKind::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: cfg.client_id.clone().map(UserAssignedId::ClientId),
                client_options: options.clone(),
            }))
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| SetupError(format!("managed identity credential: {e}")))
        }
    }
}

fn read_secret_file(path: &PathBuf) -> Result<String, SetupError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|e| SetupError(format!("cannot read {}: {e}", path.display())))
}

/// Key Vault secret names: 1-127 of `[0-9a-zA-Z-]`.
fn check_name(path: &str) -> Result<(), SecretError> {
    if path.is_empty()
        || path.len() > 127
        || !path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(SecretError::InvalidPath(format!(
            "`{path}`: Key Vault secret names are 1-127 characters of letters, digits and '-'"
        )));
    }
    Ok(())
}

impl AzureVault {
    /// Builds the client; a configuration problem leaves the backend unavailable with the reason.
    pub fn new(name: &str, cfg: AzureConfig) -> Self {
        let client = (|| {
            let options = client_options(&cfg)?;
            let cred = credential(&cfg, &options)?;
            let opts = SecretClientOptions {
                client_options: options,
                verify_challenge_resource: Some(cfg.verify_challenge_resource),
                ..SecretClientOptions::default()
            };
            SecretClient::new(&cfg.vault_url, cred, Some(opts))
                .map_err(|e| SetupError(format!("invalid vault_url `{}`: {e}", cfg.vault_url)))
        })();
        if let Err(e) = &client {
            tracing::warn!(message = "Azure Key Vault backend unavailable.", backend = %name, error = %e);
        }
        Self {
            name: name.to_owned(),
            cfg,
            client,
        }
    }

    fn client(&self) -> Result<&SecretClient, SecretError> {
        self.client.as_ref().map_err(|e| SecretError::Unavailable {
            backend: self.name.clone(),
            reason: e.to_string(),
        })
    }

    /// Turns an SDK error into a texted error; 404 becomes NotFound (shown like a denial).
    fn map_err(&self, e: &azure_core::Error) -> SecretError {
        let (status, code) = http_failure(e).unwrap_or((None, String::new()));
        let vault = &self.cfg.vault_url;
        match status {
            Some(StatusCode::NotFound) => SecretError::NotFound,
            Some(StatusCode::Unauthorized) => SecretError::Remote(format!(
                "Key Vault {vault} refused the credentials (401 {code}): check the tenant, client id and secret of backend `{}`",
                self.name
            )),
            Some(StatusCode::Forbidden) => SecretError::Remote(format!(
                "Key Vault {vault} denied the operation (403 {code}): grant the service principal this permission in the vault's access policy or RBAC role"
            )),
            Some(StatusCode::TooManyRequests) => SecretError::Remote(format!(
                "Key Vault {vault} is throttling requests (429) and still was after {} retries; try again later",
                self.cfg.max_retries
            )),
            Some(StatusCode::Conflict) => SecretError::Remote(format!(
                "Key Vault {vault} reports a conflict (409 {code}): a deleted secret of this name may be awaiting purge; recover or purge it first"
            )),
            Some(s) => SecretError::Remote(format!(
                "Key Vault {vault} answered {} {code}",
                u16::from(s)
            )),
            None => SecretError::Remote(format!("cannot reach Key Vault {vault}: {e}")),
        }
    }
}

/// The HTTP status and service error code of a failure, looking through the errors the SDK wraps
/// (a credential failure arrives inside a retry-policy error).
fn http_failure(e: &azure_core::Error) -> Option<(Option<StatusCode>, String)> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(az) = err.downcast_ref::<azure_core::Error>()
            && let azure_core::error::ErrorKind::HttpResponse {
                status, error_code, ..
            } = az.kind()
        {
            return Some((Some(*status), error_code.clone().unwrap_or_default()));
        }
        current = err.source();
    }
    None
}

fn attrs_into(meta: &mut SecretMeta, attrs: Option<&SecretAttributes>) {
    if let Some(a) = attrs {
        meta.created = a.created.and_then(rfc3339);
        meta.updated = a.updated.and_then(rfc3339);
        meta.enabled = a.enabled;
    }
}

fn tags_of(tags: Option<&std::collections::HashMap<String, String>>) -> Vec<String> {
    let mut t: Vec<String> = tags
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    t.sort();
    t
}

#[async_trait]
impl SecretBackend for AzureVault {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "azure_key_vault"
    }

    fn writable(&self) -> bool {
        !self.cfg.read_only
    }

    fn status(&self) -> BackendStatus {
        match &self.client {
            Ok(_) => BackendStatus::ready(),
            Err(e) => BackendStatus::unavailable(e.to_string()),
        }
    }

    async fn list(&self, limit: usize) -> Result<Vec<SecretMeta>, SecretError> {
        let client = self.client()?;
        let mut pager = client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions::default()))
            .map_err(|e| self.map_err(&e))?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(props) = pager.try_next().await.map_err(|e| self.map_err(&e))? else {
                break;
            };
            let Ok(id) = props.resource_id() else {
                continue;
            };
            let mut m = SecretMeta::new(&self.name, &id.name);
            attrs_into(&mut m, props.attributes.as_ref());
            m.content_type = props.content_type.clone();
            m.tags = tags_of(props.tags.as_ref());
            out.push(m);
        }
        Ok(out)
    }

    async fn get(
        &self,
        path: &str,
        field: Option<&str>,
        version: Option<&str>,
    ) -> Result<Fetched, SecretError> {
        check_name(path)?;
        if let Some(f) = field.filter(|f| *f != "value" && *f != "password") {
            return Err(SecretError::NoField {
                field: f.to_owned(),
                available: "value".to_owned(),
            });
        }
        let client = self.client()?;
        let options = SecretClientGetSecretOptions {
            secret_version: version.map(str::to_owned),
            ..Default::default()
        };
        let resp = client
            .get_secret(path, Some(options))
            .await
            .map_err(|e| self.map_err(&e))?;
        let mut secret = resp.into_model().map_err(|e| self.map_err(&e))?;
        let version = secret.resource_id().ok().and_then(|id| id.version);
        let value = SecretString::from(secret.value.take().unwrap_or_default());
        Ok(Fetched {
            value,
            field: "value".to_owned(),
            version,
        })
    }

    async fn set(
        &self,
        path: &str,
        field: Option<&str>,
        value: SecretString,
    ) -> Result<SecretMeta, SecretError> {
        check_name(path)?;
        if self.cfg.read_only {
            return Err(SecretError::ReadOnly(self.name.clone()));
        }
        if field.is_some_and(|f| f != "value" && f != "password") {
            return Err(SecretError::Unsupported(
                "Key Vault secrets have one value; omit `field`".to_owned(),
            ));
        }
        let client = self.client()?;
        let params = SetSecretParameters {
            value: Some(value.expose_secret().to_owned()),
            ..Default::default()
        };
        let body = params.try_into().map_err(|e: azure_core::Error| {
            SecretError::Remote(format!("cannot encode the request: {}", e.kind()))
        })?;
        let resp = client
            .set_secret(path, body, None)
            .await
            .map_err(|e| self.map_err(&e))?;
        let mut secret = resp.into_model().map_err(|e| self.map_err(&e))?;
        secret.value = None;
        let mut m = SecretMeta::new(&self.name, path);
        m.version = secret.resource_id().ok().and_then(|id| id.version);
        attrs_into(&mut m, secret.attributes.as_ref());
        m.content_type = secret.content_type.clone();
        m.tags = tags_of(secret.tags.as_ref());
        Ok(m)
    }

    async fn delete(&self, path: &str) -> Result<Deleted, SecretError> {
        check_name(path)?;
        if self.cfg.read_only {
            return Err(SecretError::ReadOnly(self.name.clone()));
        }
        let client = self.client()?;
        let resp = client
            .delete_secret(path, None)
            .await
            .map_err(|e| self.map_err(&e))?;
        let mut deleted = resp.into_model().map_err(|e| self.map_err(&e))?;
        deleted.value = None;
        Ok(Deleted {
            name: format!("{}/{path}", self.name),
            outcome: "soft_deleted".to_owned(),
            recovery_id: deleted.recovery_id.clone(),
            scheduled_purge_date: deleted.scheduled_purge_date.and_then(rfc3339),
        })
    }
}
