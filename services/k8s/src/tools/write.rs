//! Tools that change the cluster: apply_manifest, scale_deployment, rollout_restart,
//! delete_resource. Each needs an approval unless dry_run.

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::discovery::Scope;
use mcp_runtime::CallerContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{api_version, documents, ns_or_default};
use crate::K8sHandler;
use crate::access::Verb;
use crate::client::describe_error;
use crate::error::K8sError;
use crate::redact::{at_path, redact};
use crate::render::table_result;
use mcp_runtime::guard::Decision;

/// Arguments of `apply_manifest`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyArgs {
    /// One or more YAML documents (separated by ---) or a JSON object / List.
    pub manifest: String,
    /// Namespace for namespaced objects that name none (default "default").
    pub namespace: Option<String>,
    /// Ask the server to validate and compute the result without changing anything.
    pub dry_run: Option<bool>,
    /// Take over fields owned by other managers.
    pub force: Option<bool>,
}

/// Arguments of `scale_deployment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleArgs {
    pub namespace: Option<String>,
    pub name: String,
    pub replicas: i32,
    pub dry_run: Option<bool>,
}

/// Arguments of `rollout_restart`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    pub namespace: Option<String>,
    pub name: String,
    /// "deployment" (default), "statefulset" or "daemonset".
    pub kind: Option<String>,
    pub dry_run: Option<bool>,
}

/// Arguments of `delete_resource`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    pub kind: String,
    pub name: String,
    /// "apps/v1", "v1", ... when the kind name is ambiguous.
    pub api_version: Option<String>,
    /// Kubernetes' own spelling of `api_version`.
    #[serde(rename = "apiVersion")]
    pub api_version_native: Option<String>,
    pub namespace: Option<String>,
    pub dry_run: Option<bool>,
}

#[tool_router(router = write_tools, vis = "pub(crate)")]
impl K8sHandler {
    #[tool(
        name = "apply_manifest",
        description = "Server-side apply of one or more YAML documents (or JSON / a List) with this service's field manager. Reports each document: kind, name, namespace, created/configured/unchanged or the error. dry_run=true asks the server to validate and compute the result without changing anything (needs no approval). A real apply needs an approval.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn apply_manifest(
        &self,
        Parameters(a): Parameters<ApplyArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let dry_run = a.dry_run.unwrap_or(false);
        let docs = documents(&a.manifest)?;
        let default_ns = ns_or_default(a.namespace.as_deref());
        // Resolve and check every document before changing anything.
        let mut plan = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let n = i + 1;
            let api_version = d
                .get("apiVersion")
                .and_then(Value::as_str)
                .ok_or_else(|| K8sError::invalid(format!("document {n}: no apiVersion")))?;
            let kind = d
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| K8sError::invalid(format!("document {n}: no kind")))?;
            let name = at_path(d, "metadata.name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    K8sError::invalid(format!("document {n} ({kind}): no metadata.name"))
                })?;
            let (ar, caps) = self
                .svc
                .resolve(kind, Some(api_version))
                .await
                .map_err(|e| e.within(format!("document {n}")))?;
            let ns = matches!(caps.scope, Scope::Namespaced).then(|| {
                at_path(d, "metadata.namespace")
                    .and_then(Value::as_str)
                    .map_or(default_ns.clone(), str::to_owned)
            });
            if let Err(denied) = self.svc.access.check(
                &caller.identity,
                Verb::Write,
                ns.as_deref(),
                Some((&ar.kind, &ar.plural)),
                dry_run,
            ) {
                self.svc.audit(
                    &caller,
                    "apply_manifest",
                    ns.as_deref(),
                    &format!("apply {kind} {name}"),
                    Decision::Denied,
                );
                return Err(K8sError::DocumentRefused {
                    document: n,
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    denied,
                });
            }
            plan.push((d.clone(), ar, caps, ns, name.to_owned()));
        }
        let what = format!(
            "apply {}",
            plan.iter()
                .map(|(_, ar, _, _, name)| format!("{} {name}", ar.kind))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(r) = self.svc.gate(
            &caller,
            "apply_manifest",
            Verb::Write,
            Some(&default_ns),
            None,
            dry_run,
            &what,
        )? {
            return Ok(r);
        }
        let mut pp = PatchParams::apply(&self.svc.config.field_manager);
        if a.force.unwrap_or(false) {
            pp = pp.force();
        }
        if dry_run {
            pp = pp.dry_run();
        }
        let mut results = Vec::new();
        let mut failed = 0;
        for (i, (doc, ar, caps, ns, name)) in plan.into_iter().enumerate() {
            let api = self.svc.dynamic_api(&ar, &caps, ns.as_deref())?;
            let before = api.get_opt(&name).await.ok().flatten();
            let mut body = doc.clone();
            if let (Some(ns), Some(meta)) =
                (&ns, body.get_mut("metadata").and_then(Value::as_object_mut))
            {
                meta.insert("namespace".into(), json!(ns));
            }
            let outcome = api.patch(&name, &pp, &Patch::Apply(&body)).await;
            let mut r =
                json!({ "document": i + 1, "kind": ar.kind, "name": name, "namespace": ns });
            match outcome {
                Ok(after) => {
                    let status = match (&before, dry_run) {
                        (None, true) => "would be created",
                        (Some(_), true) => "would be configured",
                        (None, false) => "created",
                        (Some(b), false)
                            if b.metadata.resource_version == after.metadata.resource_version =>
                        {
                            "unchanged"
                        }
                        (Some(_), false) => "configured",
                    };
                    r["status"] = json!(status);
                    if dry_run {
                        let mut v = serde_json::to_value(&after).unwrap_or(Value::Null);
                        v["kind"] = json!(ar.kind);
                        redact(&mut v);
                        r["server_result"] = v;
                    }
                }
                Err(e) => {
                    failed += 1;
                    r["status"] = json!("error");
                    r["error"] = json!(describe_error(&e));
                }
            }
            results.push(r);
        }
        self.svc.audit(
            &caller,
            "apply_manifest",
            Some(&default_ns),
            &what,
            Decision::Done(if dry_run { "dry_run" } else { "applied" }),
        );
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    r["document"].to_string(),
                    r["kind"].as_str().unwrap_or_default().to_owned(),
                    r["namespace"].as_str().unwrap_or_default().to_owned(),
                    r["name"].as_str().unwrap_or_default().to_owned(),
                    r["status"].as_str().unwrap_or_default().to_owned(),
                    r["error"].as_str().unwrap_or_default().to_owned(),
                ]
            })
            .collect();
        let mut result = table_result(
            &["DOC", "KIND", "NAMESPACE", "NAME", "STATUS", "ERROR"],
            &rows,
            json!({ "dry_run": dry_run, "applied": results.len() - failed, "failed": failed, "documents": results }),
        );
        if failed > 0 {
            result.is_error = Some(true);
        }
        Ok(result)
    }

    #[tool(
        name = "scale_deployment",
        description = "Set a Deployment's replica count (the scale subresource). Needs an approval unless dry_run.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn scale_deployment(
        &self,
        Parameters(a): Parameters<ScaleArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        if a.replicas < 0 {
            return Err(K8sError::invalid("replicas must be 0 or more"));
        }
        let ns = ns_or_default(a.namespace.as_deref());
        let dry_run = a.dry_run.unwrap_or(false);
        let what = format!("scale deployment {} to {}", a.name, a.replicas);
        if let Some(r) = self.svc.gate(
            &caller,
            "scale_deployment",
            Verb::Write,
            Some(&ns),
            Some(("Deployment", "deployments")),
            dry_run,
            &what,
        )? {
            return Ok(r);
        }
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.svc.client()?.clone(), &ns);
        let mut pp = PatchParams::default();
        if dry_run {
            pp = pp.dry_run();
        }
        let scale = api
            .patch_scale(
                &a.name,
                &pp,
                &Patch::Merge(json!({ "spec": { "replicas": a.replicas } })),
            )
            .await?;
        self.svc.audit(
            &caller,
            "scale_deployment",
            Some(&ns),
            &what,
            Decision::Done(if dry_run { "dry_run" } else { "scaled" }),
        );
        Ok(CallToolResult::structured(json!({
            "namespace": ns, "name": a.name, "dry_run": dry_run,
            "replicas": scale.spec.and_then(|s| s.replicas),
            "current_replicas": scale.status.map(|s| s.replicas),
        })))
    }

    #[tool(
        name = "rollout_restart",
        description = "Restart a Deployment, StatefulSet or DaemonSet the way `kubectl rollout restart` does (a restartedAt annotation on the pod template). Needs an approval unless dry_run.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn rollout_restart(
        &self,
        Parameters(a): Parameters<RestartArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let ns = ns_or_default(a.namespace.as_deref());
        let dry_run = a.dry_run.unwrap_or(false);
        let kind = a
            .kind
            .as_deref()
            .unwrap_or("deployment")
            .to_ascii_lowercase();
        let (group_kind, plural) = match kind.as_str() {
            "deployment" | "deploy" | "deployments" => ("Deployment", "deployments"),
            "statefulset" | "sts" | "statefulsets" => ("StatefulSet", "statefulsets"),
            "daemonset" | "ds" | "daemonsets" => ("DaemonSet", "daemonsets"),
            other => {
                return Err(K8sError::invalid(format!(
                    "rollout_restart works on deployment, statefulset or daemonset, not `{other}`"
                )));
            }
        };
        let what = format!("restart {group_kind} {}", a.name);
        if let Some(r) = self.svc.gate(
            &caller,
            "rollout_restart",
            Verb::Write,
            Some(&ns),
            Some((group_kind, plural)),
            dry_run,
            &what,
        )? {
            return Ok(r);
        }
        let (ar, caps) = self.svc.resolve(group_kind, Some("apps/v1")).await?;
        let api = self.svc.dynamic_api(&ar, &caps, Some(&ns))?;
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut pp = PatchParams::default();
        if dry_run {
            pp = pp.dry_run();
        }
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
        api.patch(&a.name, &pp, &Patch::Merge(&patch)).await?;
        self.svc.audit(
            &caller,
            "rollout_restart",
            Some(&ns),
            &what,
            Decision::Done(if dry_run { "dry_run" } else { "restarted" }),
        );
        Ok(CallToolResult::structured(
            json!({ "namespace": ns, "kind": group_kind, "name": a.name, "restarted_at": now, "dry_run": dry_run }),
        ))
    }

    #[tool(
        name = "delete_resource",
        description = "Delete one object of any kind (discovery: kind, plural or short name). Needs an approval unless dry_run.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn delete_resource(
        &self,
        Parameters(a): Parameters<DeleteArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, K8sError> {
        let caller = CallerContext::from_request(&ctx);
        let dry_run = a.dry_run.unwrap_or(false);
        let (ar, caps) = self
            .svc
            .resolve(&a.kind, api_version(&a.api_version, &a.api_version_native)?)
            .await?;
        let ns = ns_or_default(a.namespace.as_deref());
        let scope_ns = matches!(caps.scope, Scope::Namespaced).then_some(ns.as_str());
        let what = format!("delete {} {}", ar.kind, a.name);
        if let Some(r) = self.svc.gate(
            &caller,
            "delete_resource",
            Verb::Write,
            scope_ns,
            Some((&ar.kind, &ar.plural)),
            dry_run,
            &what,
        )? {
            return Ok(r);
        }
        let api = self.svc.dynamic_api(&ar, &caps, scope_ns)?;
        let mut dp = DeleteParams::background();
        if dry_run {
            dp = dp.dry_run();
        }
        api.delete(&a.name, &dp).await?;
        self.svc.audit(
            &caller,
            "delete_resource",
            scope_ns,
            &what,
            Decision::Done(if dry_run { "dry_run" } else { "deleted" }),
        );
        Ok(CallToolResult::structured(
            json!({ "kind": ar.kind, "name": a.name, "namespace": scope_ns, "deleted": !dry_run, "dry_run": dry_run }),
        ))
    }
}
