//! Durable workflows: definitions (YAML/JSON, minijinja templates), a SQLite checkpoint store and
//! the engine that runs steps through the gateway and resumes runs after a restart.

pub mod definition;
pub mod engine;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use mcp_runtime::CallerContext;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde_json::{Map, Value};

pub use engine::{Engine, IDEMPOTENCY_META_KEY, WorkflowError, WorkflowsConfig};

fn error(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(text)]).into()
}

fn run_result(doc: Value, text: String) -> CallToolResponse {
    let failed = matches!(
        doc.get("status").and_then(Value::as_str),
        Some("failed" | "cancelled" | "needs_attention")
    );
    let mut r = CallToolResult::structured(doc);
    r.content = vec![ContentBlock::text(text)];
    r.is_error = Some(failed);
    r.into()
}

impl Engine {
    fn wait_for(&self, args: &Map<String, Value>) -> Option<Duration> {
        if args.get("wait").and_then(Value::as_bool) == Some(false) {
            return None;
        }
        let secs = args
            .get("wait_secs")
            .and_then(Value::as_u64)
            .unwrap_or(self.default_wait_secs())
            .min(100);
        Some(Duration::from_secs(secs))
    }

    /// One `orchestrator_*` call.
    pub async fn call(
        self: &Arc<Self>,
        tool: &str,
        args: Option<&Map<String, Value>>,
        caller: &CallerContext,
    ) -> CallToolResponse {
        let empty = Map::new();
        let args = args.unwrap_or(&empty);
        let s = |k: &str| args.get(k).and_then(Value::as_str);
        let who = &caller.identity;
        let to_end = tool == "cancelWorkflow";
        let outcome: Result<(String, Option<Duration>), WorkflowError> = match tool {
            "executeWorkflow" => self
                .execute(args, caller)
                .await
                .map(|id| (id, self.wait_for(args))),
            "resumeWorkflow" => match s("run_id") {
                Some(id) => self
                    .resume(id, who, s("step_action"))
                    .await
                    .map(|()| (id.to_owned(), self.wait_for(args))),
                None => Err(WorkflowError::Invalid("`run_id` is required".to_owned())),
            },
            "cancelWorkflow" => match s("run_id") {
                Some(id) => self
                    .cancel(id, who, s("reason").unwrap_or("no reason given"))
                    .await
                    .map(|()| (id.to_owned(), Some(Duration::from_secs(10)))),
                None => Err(WorkflowError::Invalid("`run_id` is required".to_owned())),
            },
            "getWorkflow" => match s("run_id") {
                Some(id) => Ok((id.to_owned(), None)),
                None => Err(WorkflowError::Invalid("`run_id` is required".to_owned())),
            },
            "listWorkflows" => {
                let limit = args
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(50)
                    .clamp(1, 500) as usize;
                return match self.list(
                    who,
                    store::RunFilter {
                        status: s("status"),
                        ..Default::default()
                    },
                    limit,
                ) {
                    Ok(v) => CallToolResult::structured(v).into(),
                    Err(e) => error(e.to_string()),
                };
            }
            other => Err(WorkflowError::Invalid(format!(
                "no orchestrator tool `{other}`"
            ))),
        };
        let (run_id, wait) = match outcome {
            Ok(x) => x,
            Err(e) => return error(e.to_string()),
        };
        if let Some(w) = wait {
            self.wait(&run_id, w, to_end).await;
        }
        match self.describe(&run_id, who) {
            Ok((doc, text)) => run_result(doc, text),
            Err(e) => error(e.to_string()),
        }
    }

    /// Resolves what to run (template or ad-hoc definition) and starts it.
    async fn execute(
        self: &Arc<Self>,
        args: &Map<String, Value>,
        caller: &CallerContext,
    ) -> Result<String, WorkflowError> {
        // The seed's shapes: the definition itself at the top level (`id` or `name`, `steps`).
        let inline = args.contains_key("steps").then(|| {
            let mut d = args.clone();
            for control in ["inputs", "parameters", "wait", "wait_secs"] {
                d.remove(control);
            }
            Value::Object(d)
        });
        let def = match (args.get("workflow"), args.get("definition"), inline) {
            (None, None, Some(v)) => definition::from_value(v)?,
            (_, _, Some(_)) => {
                return Err(WorkflowError::Invalid(
                    "give the definition's `steps` at the top level, or `workflow` / `definition`, not both".to_owned(),
                ));
            }
            (Some(_), Some(_), None) => {
                return Err(WorkflowError::Invalid(
                    "give either `workflow` (a template name) or `definition`, not both".to_owned(),
                ));
            }
            (Some(Value::String(name)), None, None) => {
                let (defs, errors) = self.templates();
                defs.get(name).cloned().ok_or_else(|| {
                    let mut msg = format!(
                        "no workflow template `{name}`; templates: {}",
                        defs.keys().cloned().collect::<Vec<_>>().join(", ")
                    );
                    if !errors.is_empty() {
                        msg.push_str(&format!("; files that do not load: {}", errors.join("; ")));
                    }
                    WorkflowError::Invalid(msg)
                })?
            }
            (Some(v @ Value::Object(_)), None, None) | (None, Some(v @ Value::Object(_)), None) => {
                definition::from_value(v.clone())?
            }
            (None, Some(Value::String(text)), None) => definition::parse(text)?,
            (None, None, None) => {
                return Err(WorkflowError::Invalid(
                    "say which workflow: `workflow` (a template name, see orchestrator_listWorkflows) or `definition`".to_owned(),
                ));
            }
            _ => {
                return Err(WorkflowError::Invalid(
                    "`workflow` must be a template name or a definition object".to_owned(),
                ));
            }
        };
        let inputs = match args.get("inputs").or_else(|| args.get("parameters")) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(WorkflowError::Invalid(
                    "`inputs` must be an object".to_owned(),
                ));
            }
        };
        self.start(def, &inputs, caller).await
    }
}
