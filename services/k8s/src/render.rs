//! What tools show: compact text tables beside structured rows, and pod summaries.

use k8s_openapi::api::core::v1::Pod;
use rmcp::model::{CallToolResult, ContentBlock as Content};
use serde_json::{Value, json};

use crate::redact::age;

/// A result with a compact text table for people and the same rows as structured content.
pub(crate) fn table_result(
    columns: &[&str],
    rows: &[Vec<String>],
    structured: Value,
) -> CallToolResult {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut text = line(columns.to_vec());
    for r in rows {
        text.push('\n');
        text.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        text.push_str("\n(none)");
    }
    let mut result = CallToolResult::structured(structured);
    result.content = vec![Content::text(text)];
    result
}

pub(crate) fn summarize_pod(p: &Pod) -> Value {
    let status = p.status.as_ref();
    let statuses = status.and_then(|s| s.container_statuses.as_ref());
    let total = p.spec.as_ref().map_or(0, |s| s.containers.len());
    let ready = statuses.map_or(0, |cs| cs.iter().filter(|c| c.ready).count());
    let restarts: i32 = statuses.map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
    let created = p
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string());
    json!({
        "namespace": p.metadata.namespace,
        "name": p.metadata.name,
        "phase": status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        "ready": format!("{ready}/{total}"),
        "restarts": restarts,
        "age": age(created.as_deref()),
        "node": p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "ip": status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
    })
}
