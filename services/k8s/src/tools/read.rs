//! Tools that only read: list_pods, get_pod_logs, list_resources, get_resource, list_events,
//! list_namespaces.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kube::discovery::Scope;
use mcp_runtime::CallerContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock as Content};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{api_version, list_params, ns_or_default};
use crate::K8sHandler;
use crate::access::Verb;
use crate::error::K8sError;
use crate::redact::{age, at_path, project, redact};
use crate::render::{summarize_pod, table_result};

/// Arguments of `list_pods`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPodsArgs {
    /// Namespace (default "default"); "*" for every namespace you may see.
    pub namespace: Option<String>,
    /// Label selector, e.g. "app=web,tier!=db".
    pub label_selector: Option<String>,
    /// Field selector, e.g. "status.phase=Running".
    pub field_selector: Option<String>,
    /// At most this many pods.
    pub limit: Option<u32>,
}

/// Arguments of `get_pod_logs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    pub namespace: Option<String>,
    pub pod: String,
    /// Container (required when the pod has several).
    pub container: Option<String>,
    /// Last N lines (default 200).
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// Logs of the previous (crashed) container instance.
    pub previous: Option<bool>,
    /// Keep only lines containing this text (case-sensitive).
    pub grep: Option<String>,
    /// Byte cap (default and maximum: the configured max_log_bytes).
    pub max_bytes: Option<usize>,
}

/// Arguments of `list_resources`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListResourcesArgs {
    /// Kind, plural or short name: "Deployment", "deployments", "deploy", "cm", a CRD kind...
    pub kind: String,
    /// "apps/v1", "v1", ... when the kind name is ambiguous.
    pub api_version: Option<String>,
    /// Kubernetes' own spelling of `api_version`.
    #[serde(rename = "apiVersion")]
    pub api_version_native: Option<String>,
    /// Namespace (default "default"; ignored for cluster-scoped kinds); "*" for all you may see.
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Dotted paths to return per item, e.g. ["spec.replicas","status.readyReplicas"].
    pub fields: Option<Vec<String>>,
    pub limit: Option<u32>,
}

/// Arguments of `get_resource`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetResourceArgs {
    pub kind: String,
    pub name: String,
    /// "apps/v1", "v1", ... when the kind name is ambiguous.
    pub api_version: Option<String>,
    /// Kubernetes' own spelling of `api_version`.
    #[serde(rename = "apiVersion")]
    pub api_version_native: Option<String>,
    /// Namespace (default "default"; ignored for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Dotted paths to return instead of the whole object.
    pub fields: Option<Vec<String>>,
}

/// Arguments of `list_events`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsArgs {
    pub namespace: Option<String>,
    /// Field selector, e.g. "involvedObject.name=web-1,type=Warning".
    pub field_selector: Option<String>,
    pub limit: Option<u32>,
}

#[tool_router(router = read_tools, vis = "pub(crate)")]
impl K8sHandler {
    #[tool(
        name = "list_pods",
        description = "List pods in a namespace (default \"default\", \"*\" for all you may see) with label/field selectors: name, phase, ready containers, restarts, age, node, IP. Returns a compact table plus structured rows.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_pods(
        &self,
        Parameters(a): Parameters<ListPodsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let ns = ns_or_default(a.namespace.as_deref());
        let all = ns == "*";
        if !all
            && let Some(r) = self.svc.gate(
                &caller,
                "list_pods",
                Verb::Read,
                Some(&ns),
                Some(("Pod", "pods")),
                false,
                "list pods",
            )?
        {
            return Ok(r);
        }
        if all {
            self.svc.listing_all(&caller, "list_pods", "Pod", "pods")?;
        }
        let client = self.svc.client()?.clone();
        let api: Api<Pod> = if all {
            Api::all(client)
        } else {
            Api::namespaced(client, &ns)
        };
        let limit = a
            .limit
            .unwrap_or(self.svc.config.max_items)
            .clamp(1, self.svc.config.max_items);
        let lp = list_params(
            a.label_selector.as_deref(),
            a.field_selector.as_deref(),
            limit,
        );
        let pods = api.list(&lp).await?;
        let rows: Vec<Value> = pods
            .items
            .iter()
            .filter(|p| {
                !all || p
                    .metadata
                    .namespace
                    .as_deref()
                    .is_some_and(|n| self.svc.access.namespace_visible(&caller.identity, n))
            })
            .map(summarize_pod)
            .collect();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let s = |k: &str| match &r[k] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    v => v.to_string(),
                };
                let mut row = vec![
                    s("name"),
                    s("ready"),
                    s("phase"),
                    s("restarts"),
                    s("age"),
                    s("node"),
                    s("ip"),
                ];
                if all {
                    row.insert(0, s("namespace"));
                }
                row
            })
            .collect();
        let mut columns = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "IP"];
        if all {
            columns.insert(0, "NAMESPACE");
        }
        let more = pods
            .metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty());
        Ok(table_result(
            &columns,
            &cells,
            json!({ "namespace": ns, "count": rows.len(), "truncated": more, "pods": rows }),
        ))
    }

    #[tool(
        name = "get_pod_logs",
        description = "Logs of a pod's container: tail lines (default 200), since seconds, previous instance, a grep filter and a byte cap. Output beyond the cap is cut with a marker.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_pod_logs(
        &self,
        Parameters(a): Parameters<LogsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let ns = ns_or_default(a.namespace.as_deref());
        if let Some(r) = self.svc.gate(
            &caller,
            "get_pod_logs",
            Verb::Read,
            Some(&ns),
            Some(("Pod", "pods")),
            false,
            "read pod logs",
        )? {
            return Ok(r);
        }
        let cap = a
            .max_bytes
            .unwrap_or(self.svc.config.max_log_bytes)
            .clamp(1, self.svc.config.max_log_bytes);
        let api: Api<Pod> = Api::namespaced(self.svc.client()?.clone(), &ns);
        let lp = LogParams {
            container: a.container.clone(),
            tail_lines: Some(a.tail_lines.unwrap_or(self.svc.config.default_tail_lines)),
            since_seconds: a.since_seconds,
            previous: a.previous.unwrap_or(false),
            // Fetch more than the cap when filtering, so grep has lines to search.
            limit_bytes: Some(
                i64::try_from(if a.grep.is_some() { cap * 8 } else { cap + 1 }).unwrap_or(i64::MAX),
            ),
            ..LogParams::default()
        };
        let text = api.logs(&a.pod, &lp).await?;
        let filtered: String = match &a.grep {
            Some(g) => text
                .lines()
                .filter(|l| l.contains(g.as_str()))
                .map(|l| format!("{l}\n"))
                .collect(),
            None => text,
        };
        let (body, truncated) = mcp_runtime::output::truncate_text(&filtered, cap);
        let lines = body.lines().count();
        let mut r = CallToolResult::structured(json!({
            "namespace": ns, "pod": a.pod, "container": a.container, "lines": lines, "truncated": truncated, "logs": body,
        }));
        r.content = vec![Content::text(body)];
        Ok(r)
    }

    #[tool(
        name = "list_resources",
        description = "List objects of any kind the API server offers (found by discovery: kind, plural or short name; CRDs too) in a namespace (\"*\" for all you may see) with selectors. Each item: name, namespace, age, and the dotted `fields` you ask for. Secret values are never returned.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_resources(
        &self,
        Parameters(a): Parameters<ListResourcesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let (ar, caps) = self
            .svc
            .resolve(&a.kind, api_version(&a.api_version, &a.api_version_native)?)
            .await?;
        let namespaced = matches!(caps.scope, Scope::Namespaced);
        let ns = ns_or_default(a.namespace.as_deref());
        let all = ns == "*" || !namespaced;
        let scope_ns = (!all).then_some(ns.as_str());
        if namespaced && all {
            self.svc
                .listing_all(&caller, "list_resources", &ar.kind, &ar.plural)?;
        } else if let Some(r) = self.svc.gate(
            &caller,
            "list_resources",
            Verb::Read,
            scope_ns,
            Some((&ar.kind, &ar.plural)),
            false,
            &format!("list {}", ar.plural),
        )? {
            return Ok(r);
        }
        let api = self.svc.dynamic_api(&ar, &caps, scope_ns)?;
        let limit = a
            .limit
            .unwrap_or(self.svc.config.max_items)
            .clamp(1, self.svc.config.max_items);
        let list = api
            .list(&list_params(
                a.label_selector.as_deref(),
                a.field_selector.as_deref(),
                limit,
            ))
            .await?;
        let fields = a.fields.unwrap_or_default();
        let mut items = Vec::new();
        let mut rows = Vec::new();
        for obj in list.items {
            let obj_ns = obj.metadata.namespace.clone();
            if namespaced
                && all
                && !obj_ns
                    .as_deref()
                    .is_some_and(|n| self.svc.access.namespace_visible(&caller.identity, n))
            {
                continue;
            }
            let mut v = serde_json::to_value(&obj).unwrap_or(Value::Null);
            v["kind"] = json!(ar.kind);
            redact(&mut v);
            let created = at_path(&v, "metadata.creationTimestamp")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let mut item = json!({
                "name": obj.metadata.name,
                "namespace": obj_ns,
                "age": age(created.as_deref()),
            });
            if !fields.is_empty() {
                item["fields"] = project(&v, &fields);
            }
            rows.push(vec![
                obj_ns.unwrap_or_default(),
                item["name"].as_str().unwrap_or_default().to_owned(),
                item["age"].as_str().unwrap_or_default().to_owned(),
            ]);
            items.push(item);
        }
        let more = list
            .metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty());
        Ok(table_result(
            &["NAMESPACE", "NAME", "AGE"],
            &rows,
            json!({ "kind": ar.kind, "api_version": ar.api_version, "count": items.len(), "truncated": more, "items": items }),
        ))
    }

    #[tool(
        name = "get_resource",
        description = "Get one object of any kind (discovery: kind, plural or short name). Secret data/stringData, the last-applied-configuration annotation, tokens and kubeconfig credentials are replaced with a redaction marker; managedFields are dropped. `fields` returns only the dotted paths asked for.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_resource(
        &self,
        Parameters(a): Parameters<GetResourceArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let (ar, caps) = self
            .svc
            .resolve(&a.kind, api_version(&a.api_version, &a.api_version_native)?)
            .await?;
        let namespaced = matches!(caps.scope, Scope::Namespaced);
        let ns = ns_or_default(a.namespace.as_deref());
        let scope_ns = namespaced.then_some(ns.as_str());
        if let Some(r) = self.svc.gate(
            &caller,
            "get_resource",
            Verb::Read,
            scope_ns,
            Some((&ar.kind, &ar.plural)),
            false,
            &format!("get {} {}", ar.kind, a.name),
        )? {
            return Ok(r);
        }
        let api = self.svc.dynamic_api(&ar, &caps, scope_ns)?;
        let obj = api.get(&a.name).await?;
        let mut v = serde_json::to_value(&obj).unwrap_or(Value::Null);
        v["kind"] = json!(ar.kind);
        v["apiVersion"] = json!(ar.api_version);
        redact(&mut v);
        let body = match &a.fields {
            Some(f) if !f.is_empty() => project(&v, f),
            _ => v,
        };
        Ok(CallToolResult::structured(body))
    }

    #[tool(
        name = "list_events",
        description = "Events in a namespace, newest first (type, reason, object, message, count, age); filter with a field selector such as involvedObject.name=web-1 or type=Warning.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_events(
        &self,
        Parameters(a): Parameters<EventsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let ns = ns_or_default(a.namespace.as_deref());
        if let Some(r) = self.svc.gate(
            &caller,
            "list_events",
            Verb::Read,
            Some(&ns),
            Some(("Event", "events")),
            false,
            "list events",
        )? {
            return Ok(r);
        }
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.svc.client()?.clone(), &ns);
        let limit = a
            .limit
            .unwrap_or(self.svc.config.max_items)
            .clamp(1, self.svc.config.max_items);
        let list = api
            .list(&list_params(None, a.field_selector.as_deref(), limit))
            .await?;
        let mut events: Vec<(String, Value)> = list
            .items
            .iter()
            .map(|e| {
                let when = e
                    .last_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                    .or_else(|| {
                        e.metadata
                            .creation_timestamp
                            .as_ref()
                            .map(|t| t.0.to_string())
                    })
                    .unwrap_or_default();
                let obj = format!(
                    "{}/{}",
                    e.involved_object
                        .kind
                        .clone()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    e.involved_object.name.clone().unwrap_or_default()
                );
                (
                    when.clone(),
                    json!({
                        "type": e.type_, "reason": e.reason, "object": obj, "message": e.message,
                        "count": e.count, "last_seen": when, "age": age(Some(&when)),
                    }),
                )
            })
            .collect();
        events.sort_by(|a, b| b.0.cmp(&a.0));
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|(_, e)| {
                ["age", "type", "reason", "object", "message"]
                    .iter()
                    .map(|k| e[*k].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect();
        let events: Vec<Value> = events.into_iter().map(|(_, v)| v).collect();
        Ok(table_result(
            &["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &rows,
            json!({ "namespace": ns, "count": events.len(), "events": events }),
        ))
    }

    #[tool(
        name = "list_namespaces",
        description = "Namespaces you may use (the allow/deny lists and your rules applied), with phase and age.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn list_namespaces(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.svc.client()?.clone());
        let list = api
            .list(&ListParams::default().limit(self.svc.config.max_items))
            .await?;
        let mut rows = Vec::new();
        let mut items = Vec::new();
        for n in list.items {
            let name = n.metadata.name.clone().unwrap_or_default();
            if !self.svc.access.namespace_visible(&caller.identity, &name) {
                continue;
            }
            let phase = n.status.and_then(|s| s.phase).unwrap_or_default();
            let created = n.metadata.creation_timestamp.map(|t| t.0.to_string());
            let a = age(created.as_deref());
            rows.push(vec![name.clone(), phase.clone(), a.clone()]);
            items.push(json!({ "name": name, "phase": phase, "age": a }));
        }
        Ok(table_result(
            &["NAME", "STATUS", "AGE"],
            &rows,
            json!({ "count": items.len(), "namespaces": items }),
        ))
    }
}
