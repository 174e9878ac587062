//! Where SSH targets come from: `linux.ssh.host` entries first, else the CMDB's `getHost` over MCP;
//! and the key file for each (per-host keys in `linux.ssh.key_dir`, else `linux.ssh.key_file`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::LinuxError;
use crate::{LinuxHandler, ssh};

impl LinuxHandler {
    pub(crate) async fn resolve_host(&self, name: &str) -> Result<ssh::Target, LinuxError> {
        let cfg = &self.svc.config.ssh;
        let key_for = |host: &str,
                       user: &str,
                       explicit: Option<&PathBuf>|
         -> Result<PathBuf, LinuxError> {
            if let Some(k) = explicit {
                return Ok(k.clone());
            }
            for suffix in ["id_ed25519", "id_rsa", "id_ecdsa"] {
                let p = cfg.key_dir.join(format!("{host}_{user}_{suffix}"));
                if p.exists() {
                    return Ok(p);
                }
            }
            cfg.key_file.clone().ok_or_else(|| {
                LinuxError::Host(format!(
                    "no private key for {user}@{host}: put it at {}/{host}_{user}_id_ed25519 (or _id_rsa) or set linux.ssh.key_file",
                    cfg.key_dir.display()
                ))
            })
        };
        if let Some(h) = cfg.host.iter().find(|h| h.name.eq_ignore_ascii_case(name)) {
            return Ok(ssh::Target {
                host: h.name.clone(),
                address: h.address.clone(),
                port: h.port,
                user: h.user.clone(),
                key_file: key_for(&h.name, &h.user, h.key_file.as_ref())?,
            });
        }
        if cfg.cmdb_url.is_empty() {
            return Err(LinuxError::Host(format!(
                "host `{name}` is not configured in linux.ssh.host and CMDB lookup is off"
            )));
        }
        let host = cmdb_lookup(
            self.svc.cmdb_http.clone(),
            &cfg.cmdb_url,
            cfg.cmdb_token_file.as_deref(),
            name,
        )
        .await?;
        let field = |k: &str| {
            host.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .filter(|s| !s.is_empty())
        };
        let host_name = field("name").unwrap_or_else(|| name.to_owned());
        let address = field("ip").or_else(|| field("fqdn")).ok_or_else(|| {
            LinuxError::Host(format!("CMDB record of `{name}` has neither ip nor fqdn"))
        })?;
        let user = field("ssh_user")
            .ok_or_else(|| LinuxError::Host(format!("CMDB record of `{name}` has no ssh_user")))?;
        let port = match host.get("ssh_port") {
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) if !s.is_empty() => s.parse().ok(),
            _ => Some(22),
        }
        .ok_or_else(|| {
            LinuxError::Host(format!("CMDB record of `{name}` has an invalid ssh_port"))
        })?;
        Ok(ssh::Target {
            key_file: key_for(&host_name, &user, None)?,
            host: host_name,
            address,
            port,
            user,
        })
    }
}

/// `getHost` on the CMDB over MCP.
pub(crate) async fn cmdb_lookup(
    http: reqwest::Client,
    url: &str,
    token_file: Option<&Path>,
    name: &str,
) -> Result<Map<String, Value>, LinuxError> {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(path) = token_file {
        let token = std::fs::read_to_string(path).map_err(|e| {
            LinuxError::Cmdb(format!(
                "cannot read CMDB token file {}: {e}",
                path.display()
            ))
        })?;
        config = config.auth_header(token.trim().to_owned());
    }
    let transport = StreamableHttpClientTransport::with_client(http, config);
    let client = tokio::time::timeout(Duration::from_secs(10), ().serve(transport))
        .await
        .map_err(|_| LinuxError::Cmdb(format!("CMDB at {url} did not answer in 10 s")))?
        .map_err(|e| LinuxError::Cmdb(format!("cannot reach the CMDB at {url}: {e}")))?;
    let mut args = Map::new();
    args.insert("name".into(), Value::String(name.to_owned()));
    let result = client
        .call_tool(CallToolRequestParams::new("getHost").with_arguments(args))
        .await
        .map_err(|e| LinuxError::Cmdb(format!("CMDB getHost failed: {e}")));
    let _ = client.cancel().await;
    let result = result?;
    if result.is_error == Some(true) {
        let text = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(LinuxError::Host(format!("unknown host: {text}")));
    }
    result
        .structured_content
        .and_then(|v| v.get("host").and_then(Value::as_object).cloned())
        .ok_or_else(|| LinuxError::Cmdb("CMDB getHost returned no host record".to_owned()))
}
