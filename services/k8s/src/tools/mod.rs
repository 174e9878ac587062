//! The tools, one file per group: `read` (list, get, logs, events, namespaces) and `write` (apply,
//! scale, restart, delete; approvals). Each file has its own `#[tool_router]`; [`crate::K8sHandler`]
//! serves their sum. Adding a tool: write it in its group's file; a new group adds one line to
//! [`routers`].

mod read;
mod write;

use kube::api::ListParams;

use rmcp::handler::server::router::tool::ToolRouter;
use serde::Deserialize;
use serde_json::Value;

use crate::K8sHandler;
use crate::error::K8sError;

pub use read::{EventsArgs, GetResourceArgs, ListPodsArgs, ListResourcesArgs, LogsArgs};
pub use write::{ApplyArgs, DeleteArgs, RestartArgs, ScaleArgs};

/// Every tool of the service.
pub(crate) fn routers() -> ToolRouter<K8sHandler> {
    K8sHandler::read_tools() + K8sHandler::write_tools()
}

/// The API version a call names, in either spelling (`api_version` or Kubernetes' `apiVersion`).
pub(crate) fn api_version<'a>(
    snake: &'a Option<String>,
    native: &'a Option<String>,
) -> Result<Option<&'a str>, K8sError> {
    match (snake.as_deref(), native.as_deref()) {
        (Some(a), Some(b)) if a != b => Err(K8sError::invalid(format!(
            "`api_version` ({a}) and `apiVersion` ({b}) disagree; give one"
        ))),
        (a, b) => Ok(a.or(b)),
    }
}

pub(crate) fn ns_or_default(ns: Option<&str>) -> String {
    ns.filter(|n| !n.is_empty()).unwrap_or("default").to_owned()
}

pub(crate) fn list_params(labels: Option<&str>, fields: Option<&str>, limit: u32) -> ListParams {
    let mut lp = ListParams::default().limit(limit);
    if let Some(l) = labels.filter(|l| !l.is_empty()) {
        lp = lp.labels(l);
    }
    if let Some(f) = fields.filter(|f| !f.is_empty()) {
        lp = lp.fields(f);
    }
    lp
}

/// Splits a manifest into documents (YAML stream, or JSON object/List).
pub(crate) fn documents(manifest: &str) -> Result<Vec<Value>, K8sError> {
    let trimmed = manifest.trim_start();
    let mut docs = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(trimmed)
            .map_err(|e| K8sError::invalid(format!("manifest is not valid JSON: {e}")))?;
        match v {
            Value::Array(a) => docs.extend(a),
            v => docs.push(v),
        }
    } else {
        for (i, d) in serde_yaml_ng::Deserializer::from_str(manifest).enumerate() {
            let v = Value::deserialize(d).map_err(|e| {
                K8sError::invalid(format!("document {} is not valid YAML: {e}", i + 1))
            })?;
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    // A List kind expands into its items.
    let mut out = Vec::new();
    for d in docs {
        if d.get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && let Some(items) = d.get("items").and_then(Value::as_array)
        {
            out.extend(items.iter().cloned());
        } else {
            out.push(d);
        }
    }
    if out.is_empty() {
        return Err(K8sError::invalid("the manifest holds no documents"));
    }
    Ok(out)
}
