//! The workflow engine: starts runs, drives their steps (in parallel where `needs` allow) through
//! the gateway's own call path (policy, rate limits, circuit, audit) as the run's owner,
//! checkpoints every transition, pauses for approvals and resumes after a restart.
//!
//! Over 800 lines because it is one state machine (runs, steps, approvals, resume after a crash)
//! whose transitions must be read together; parsing is in `definition`, durability in `store`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mcp_runtime::CallerContext;
use mcp_runtime::auth::Identity;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, RequestMetaObject};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::definition::{self, Definition, OnError};
use super::store::{RunFilter, RunRecord, StepRecord, Store, now_ms};
use crate::gateway::{ApprovalEvent, Gateway};
use crate::metrics::MasterMetrics;

/// `_meta` key carrying `<run id>/<step id>` on every step call, so a service that records it can
/// recognise a repeated call.
pub const IDEMPOTENCY_META_KEY: &str = "io.mcp-suite/idempotencyKey";

/// `[master.workflows]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowsConfig {
    /// Directory of workflow templates (`*.yaml`, `*.yml`, `*.json`).
    pub dir: std::path::PathBuf,
    /// Checkpoint database (default: `workflows.sqlite` beside the audit database).
    pub db: Option<std::path::PathBuf>,
    /// Seconds `orchestrator_executeWorkflow` waits for a run by default (at most 100, below the
    /// runtime's tool timeout); the run goes on after the wait either way.
    pub wait_secs: u64,
    /// Most runs in progress at once; more are refused with a clear error.
    pub max_active_runs: usize,
    /// Largest result of one step kept (bytes of JSON); larger ones are cut with a marker.
    pub max_result_bytes: usize,
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        Self {
            dir: "workflows".into(),
            db: None,
            wait_secs: 60,
            max_active_runs: 1000,
            max_result_bytes: 256 * 1024,
        }
    }
}

const MAX_WAIT_SECS: u64 = 100;

/// Why a workflow tool did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{0}")]
    Invalid(String),
    #[error("no workflow run `{0}` (orchestrator_listWorkflows lists runs)")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
}

impl From<definition::DefinitionError> for WorkflowError {
    fn from(e: definition::DefinitionError) -> Self {
        Self::Invalid(e.0)
    }
}

/// What one step attempt ended with.
enum Outcome {
    Completed { result: Value, secret: bool },
    Failed { error: String, reason: &'static str },
    Cancelled,
}

/// A run the engine is driving.
struct Live {
    run_id: String,
    def: Definition,
    inputs: Map<String, Value>,
    owner: Identity,
    correlation_id: String,
    /// Step indices in an order where every step comes after what it needs.
    topo: Vec<usize>,
    /// What each step (by index) transitively needs: the results its templates may read.
    ancestors: Vec<std::collections::BTreeSet<String>>,
    state: Mutex<LiveState>,
    cancel: CancellationToken,
    changed: watch::Sender<u64>,
    started: Instant,
}

struct LiveState {
    steps: Vec<StepRecord>,
    /// Results of secret steps: memory only.
    secrets: HashMap<String, Value>,
    status: String,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

fn topo_order(def: &Definition) -> Vec<usize> {
    let index: HashMap<&str, usize> = def
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut done = vec![false; def.steps.len()];
    let mut out = Vec::with_capacity(def.steps.len());
    while out.len() < def.steps.len() {
        let before = out.len();
        for (i, s) in def.steps.iter().enumerate() {
            if !done[i]
                && s.needs
                    .iter()
                    .all(|n| index.get(n.as_str()).is_some_and(|&j| done[j]))
            {
                done[i] = true;
                out.push(i);
            }
        }
        if out.len() == before {
            break; // a cycle: validation refuses these
        }
    }
    out
}

/// Text of a tool result (its text blocks).
fn result_text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value a step's result is: structured content when the tool gave it, else its text.
fn result_value(r: &CallToolResult) -> Value {
    r.structured_content
        .clone()
        .unwrap_or_else(|| Value::String(result_text(r)))
}

fn fmt_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The templates as last read, with what they were read from.
struct Templates {
    stamps: Vec<(std::path::PathBuf, Option<mcp_runtime::files::FileStamp>)>,
    by_name: Arc<BTreeMap<String, Definition>>,
    errors: Vec<String>,
}

fn stamps(
    dir: &std::path::Path,
) -> Vec<(std::path::PathBuf, Option<mcp_runtime::files::FileStamp>)> {
    definition::template_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let s = mcp_runtime::files::FileStamp::of(&p).ok();
            (p, s)
        })
        .collect()
}

/// The engine.
pub struct Engine {
    gateway: Weak<Gateway>,
    cfg: WorkflowsConfig,
    templates: Mutex<Templates>,
    store: Store,
    live: Mutex<HashMap<String, Arc<Live>>>,
    metrics: MasterMetrics,
    sep: String,
}

impl Engine {
    /// Opens the store and loads the templates (a broken template is a start-up error).
    pub fn open(
        cfg: WorkflowsConfig,
        path: &std::path::Path,
        metrics: MasterMetrics,
        sep: &str,
    ) -> Result<Self, WorkflowError> {
        // A broken template is a start-up error; later edits are picked up (and reported) live.
        let stamps_now = stamps(&cfg.dir);
        let templates = definition::load_dir(&cfg.dir)?;
        let checkpoint = metrics.workflow_checkpoint.clone();
        let batch = metrics.workflow_checkpoint_batch.clone();
        let store = Store::open(
            path,
            Box::new(move |s| checkpoint.observe(s)),
            Box::new(move |n| batch.observe(n as f64)),
        )?;
        Ok(Self {
            gateway: Weak::new(),
            cfg,
            templates: Mutex::new(Templates {
                stamps: stamps_now,
                by_name: Arc::new(templates),
                errors: Vec::new(),
            }),
            store,
            live: Mutex::new(HashMap::new()),
            metrics,
            sep: sep.to_owned(),
        })
    }

    /// Binds the engine to its gateway (set once, right after the gateway exists).
    pub fn bind(mut self, gateway: Weak<Gateway>) -> Self {
        self.gateway = gateway;
        self
    }

    pub fn default_wait_secs(&self) -> u64 {
        self.cfg.wait_secs.min(MAX_WAIT_SECS)
    }

    /// The templates, read again when a file of the directory changed, appeared or went away;
    /// and the files that do not load (the others keep working).
    pub fn templates(&self) -> (Arc<BTreeMap<String, Definition>>, Vec<String>) {
        let mut t = self
            .templates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = stamps(&self.cfg.dir);
        if now != t.stamps {
            let (by_name, errors) = definition::load_dir_lenient(&self.cfg.dir);
            for e in &errors {
                tracing::warn!(message = "Workflow template not loaded.", error = %e);
            }
            tracing::info!(
                message = "Workflow templates reloaded.",
                count = by_name.len()
            );
            *t = Templates {
                stamps: now,
                by_name: Arc::new(by_name),
                errors,
            };
        }
        (t.by_name.clone(), t.errors.clone())
    }

    fn gateway(&self) -> Option<Arc<Gateway>> {
        self.gateway.upgrade()
    }

    fn live_runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Live>>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refresh_gauges(&self) {
        for status in ["running", "waiting_approval", "needs_attention"] {
            self.metrics
                .workflows_active
                .with_label_values(&[status])
                .set(self.store.count(status));
        }
    }

    /// Resolves a step's tool at master: the canonical wire name and whether it may run again.
    fn resolve(
        &self,
        g: &Gateway,
        service: &str,
        tool: &str,
    ) -> Result<definition::ToolInfo, WorkflowError> {
        let wire = crate::namespace::wire_name(service, &self.sep, tool);
        match g.canonical(&wire) {
            Some((wire, crate::gateway::Route::Local(_), _)) => {
                Err(WorkflowError::Invalid(format!(
                    "`{wire}` is one of master's own tools, which run for a client, not as workflow steps"
                )))
            }
            Some((wire, _, t)) => Ok(definition::ToolInfo {
                wire,
                rerunnable: t.annotations.as_ref().is_some_and(|a| {
                    a.read_only_hint == Some(true) || a.idempotent_hint == Some(true)
                }),
            }),
            None => {
                let known = g.downstreams().iter().find(|d| d.namespace() == service);
                Err(WorkflowError::Invalid(match known {
                    Some(d) if !d.is_up() => format!(
                        "service `{service}` is not connected, so `{tool}` cannot be checked: {}",
                        d.status().last_error.unwrap_or_default()
                    ),
                    Some(_) => format!("service `{service}` has no tool `{tool}`"),
                    None if service == "orchestrator" || service == "approvals" => {
                        format!("`{service}` tools cannot be workflow steps")
                    }
                    None => format!("no service with namespace `{service}`"),
                }))
            }
        }
    }

    /// Validates a definition against the gateway and binds its inputs: every problem at once.
    fn validate(
        &self,
        g: &Gateway,
        def: &Definition,
        inputs: &Map<String, Value>,
    ) -> Result<(Vec<String>, Map<String, Value>), WorkflowError> {
        let mut errors = definition::check_static(def).err().unwrap_or_default();
        let mut wires = Vec::new();
        for s in &def.steps {
            if s.service == "orchestrator" || s.service == "approvals" {
                errors.push(format!(
                    "step `{}`: `{}` tools cannot be workflow steps",
                    s.id, s.service
                ));
                continue;
            }
            match self.resolve(g, &s.service, &s.tool) {
                Ok(info) => wires.push(info.wire),
                Err(e) => errors.push(format!("step `{}`: {e}", s.id)),
            }
        }
        let bound = definition::bind_inputs(def, inputs).map_err(|e| {
            errors.extend(e);
        });
        if !errors.is_empty() {
            return Err(WorkflowError::Invalid(format!(
                "workflow `{}` is not valid; nothing ran:\n- {}",
                def.name,
                errors.join("\n- ")
            )));
        }
        Ok((wires, bound.unwrap_or_default()))
    }

    /// Starts a run; returns its id.
    pub async fn start(
        self: &Arc<Self>,
        def: Definition,
        inputs: &Map<String, Value>,
        caller: &CallerContext,
    ) -> Result<String, WorkflowError> {
        let g = self
            .gateway()
            .ok_or_else(|| WorkflowError::Refused("master is shutting down".to_owned()))?;
        let (wires, inputs) = self.validate(&g, &def, inputs)?;
        if self.live_runs().len() >= self.cfg.max_active_runs {
            return Err(WorkflowError::Refused(format!(
                "{} workflow runs are in progress (master.workflows.max_active_runs); try again when some finish",
                self.cfg.max_active_runs
            )));
        }
        let run_id = format!("wf-{}", uuid::Uuid::new_v4().simple());
        let now = now_ms();
        let steps: Vec<StepRecord> = def
            .steps
            .iter()
            .zip(&wires)
            .map(|(s, w)| StepRecord::new(&s.id, w))
            .collect();
        let record = RunRecord {
            run_id: run_id.clone(),
            workflow: def.name.clone(),
            status: "running".to_owned(),
            owner: caller.identity.name.clone(),
            owner_roles: caller.identity.roles.clone(),
            definition: serde_json::to_string(&def).unwrap_or_default(),
            inputs: Value::Object(inputs.clone()),
            correlation_id: caller.correlation_id.clone(),
            error: None,
            created: now,
            updated: now,
            finished: None,
            steps: steps.clone(),
        };
        self.store.insert_run(&record).await?;
        self.metrics.workflows.with_label_values(&["started"]).inc();
        tracing::info!(target: "audit", message = "Workflow started.", run_id = %run_id, workflow = %def.name, owner = %caller.identity.name, correlation_id = %caller.correlation_id);
        let live = self.make_live(
            &run_id,
            def,
            inputs,
            caller.identity.clone(),
            &caller.correlation_id,
            steps,
        );
        self.spawn(live);
        Ok(run_id)
    }

    fn make_live(
        &self,
        run_id: &str,
        def: Definition,
        inputs: Map<String, Value>,
        owner: Identity,
        correlation_id: &str,
        steps: Vec<StepRecord>,
    ) -> Arc<Live> {
        let topo = topo_order(&def);
        let ancestors = {
            let by_id = definition::ancestors(&def);
            def.steps
                .iter()
                .map(|s| {
                    by_id[s.id.as_str()]
                        .iter()
                        .map(|a| (*a).to_owned())
                        .collect()
                })
                .collect()
        };
        Arc::new(Live {
            run_id: run_id.to_owned(),
            def,
            inputs,
            owner,
            correlation_id: correlation_id.to_owned(),
            topo,
            ancestors,
            state: Mutex::new(LiveState {
                steps,
                secrets: HashMap::new(),
                status: "running".to_owned(),
            }),
            cancel: CancellationToken::new(),
            changed: watch::Sender::new(0),
            started: Instant::now(),
        })
    }

    fn spawn(self: &Arc<Self>, live: Arc<Live>) {
        self.live_runs().insert(live.run_id.clone(), live.clone());
        self.refresh_gauges();
        let engine = self.clone();
        tokio::spawn(async move {
            engine.drive(live.clone()).await;
            engine.live_runs().remove(&live.run_id);
            engine.refresh_gauges();
            live.bump();
        });
    }

    /// Picks the runs a previous master left running and drives them on from their checkpoints.
    pub async fn resume_all(self: &Arc<Self>) {
        let Some(g) = self.gateway() else { return };
        let runs = match self.store.active() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(message = "Cannot read the workflow store; runs in progress are not resumed.", error = %e);
                return;
            }
        };
        for run in runs {
            let run_id = run.run_id.clone();
            match self.restore(&g, run).await {
                Ok(Some(live)) => {
                    tracing::info!(message = "Resuming workflow run after restart.", run_id = %run_id);
                    self.spawn(live);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(message = "Cannot resume workflow run.", run_id = %run_id, error = %e);
                    let _ = self
                        .store
                        .set_run_status(&run_id, "failed", Some(&e.to_string()), true)
                        .await;
                }
            }
        }
        self.refresh_gauges();
    }

    /// Rebuilds a run from its checkpoint. A step that was in flight runs again only if its tool
    /// is read-only or idempotent; otherwise the run waits for a person (`needs_attention`).
    async fn restore(
        &self,
        g: &Gateway,
        run: RunRecord,
    ) -> Result<Option<Arc<Live>>, WorkflowError> {
        let def: Definition = serde_json::from_str(&run.definition)
            .map_err(|e| WorkflowError::Invalid(format!("stored definition unreadable: {e}")))?;
        let inputs = run.inputs.as_object().cloned().unwrap_or_default();
        let owner = Identity {
            name: run.owner.clone(),
            roles: run.owner_roles.clone(),
        };
        let mut steps = run.steps.clone();
        let mut attention = Vec::new();
        for (i, s) in steps.iter_mut().enumerate() {
            let Some(sd) = def.steps.get(i) else { continue };
            let before = s.clone();
            let in_flight = match s.status.as_str() {
                "running" => true,
                "waiting_approval" => {
                    let row = s.approval_id.as_deref().and_then(|id| g.approval(id));
                    match row.as_ref().map(|r| r.status.as_str()) {
                        Some("executed") => {
                            let r = row
                                .as_ref()
                                .and_then(|r| r.result.clone())
                                .unwrap_or_default();
                            let parsed: Option<CallToolResult> = serde_json::from_str(&r).ok();
                            s.status = "completed".to_owned();
                            s.result = parsed
                                .as_ref()
                                .map(result_value)
                                .unwrap_or(Value::String(r));
                            s.finished = Some(now_ms());
                            false
                        }
                        Some("failed") | Some("denied") => {
                            s.status = "failed".to_owned();
                            s.error = Some(format!(
                                "approval {} ended {} while master was down",
                                s.approval_id.clone().unwrap_or_default(),
                                row.as_ref().map(|r| r.status.clone()).unwrap_or_default()
                            ));
                            false
                        }
                        // Approved and being executed when master stopped.
                        Some("approved") => true,
                        // Pending approvals do not survive a restart: ask again.
                        _ => {
                            s.status = "pending".to_owned();
                            s.approval_id = None;
                            false
                        }
                    }
                }
                _ => false,
            };
            // Only a step caught in flight needs its tool's annotations.
            let rerunnable = in_flight
                && self
                    .resolve(g, &sd.service, &sd.tool)
                    .is_ok_and(|t| t.rerunnable);
            if in_flight {
                if rerunnable {
                    s.status = "pending".to_owned();
                    s.error = Some("was in flight when master stopped; run again (read-only or idempotent tool)".to_owned());
                } else {
                    attention.push(format!(
                        "step `{}` (`{}`) was running when master stopped; its tool is not read-only or idempotent, so it may or may not have taken effect. Check, then call orchestrator_resumeWorkflow with run_id {} and step_action `rerun` or `skip`",
                        s.id, s.tool, run.run_id
                    ));
                }
            }
            if *s != before {
                self.store.checkpoint(&run.run_id, s, None).await?;
            }
        }
        let unfinished = steps
            .iter()
            .any(|s| !matches!(s.status.as_str(), "completed" | "skipped"));
        let mask = mcp_runtime::redact::MASK;
        if unfinished && (run.definition.contains(mask) || run.inputs.to_string().contains(mask)) {
            attention.push(format!(
                "the run's inputs or literal step arguments held secrets, which are never stored, so it cannot continue after a restart; start it again (orchestrator_executeWorkflow) or call orchestrator_resumeWorkflow with run_id {} and step_action `skip`",
                run.run_id
            ));
        }
        if !attention.is_empty() {
            let msg = attention.join("; ");
            self.store
                .set_run_status(&run.run_id, "needs_attention", Some(&msg), false)
                .await?;
            self.metrics
                .workflows
                .with_label_values(&["needs_attention"])
                .inc();
            tracing::warn!(message = "Workflow run needs attention after restart.", run_id = %run.run_id, reason = %msg);
            return Ok(None);
        }
        self.store
            .set_run_status(&run.run_id, "running", None, false)
            .await?;
        Ok(Some(self.make_live(
            &run.run_id,
            def,
            inputs,
            owner,
            &run.correlation_id,
            steps,
        )))
    }

    /// Runs ready steps until none is left, then settles the run's status.
    async fn drive(self: &Arc<Self>, live: Arc<Live>) {
        let mut tasks: JoinSet<(usize, Outcome)> = JoinSet::new();
        let mut failure: Option<String> = None;
        loop {
            if failure.is_none() && !live.cancel.is_cancelled() {
                for i in self.ready(&live) {
                    let started = {
                        let mut st = live.lock();
                        let s = &mut st.steps[i];
                        s.status = "running".to_owned();
                        s.attempts += 1;
                        s.started = Some(now_ms());
                        s.finished = None;
                        s.error = None;
                        let snapshot = s.clone();
                        st.status = "running".to_owned();
                        snapshot
                    };
                    if let Err(e) = self
                        .store
                        .checkpoint(&live.run_id, &started, Some(("running", None)))
                        .await
                    {
                        failure = Some(format!("cannot checkpoint step `{}`: {e}", started.id));
                        break;
                    }
                    live.bump();
                    let engine = self.clone();
                    let l = live.clone();
                    tasks.spawn(async move { (i, engine.run_step(&l, i).await) });
                }
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let Ok((i, outcome)) = joined else {
                failure.get_or_insert_with(|| "a step task panicked".to_owned());
                continue;
            };
            let on_error = live.def.steps[i].on_error;
            let snapshot = {
                let mut st = live.lock();
                let s = &mut st.steps[i];
                s.finished = Some(now_ms());
                let secret = match outcome {
                    Outcome::Completed { result, secret } => {
                        s.status = "completed".to_owned();
                        s.error = None;
                        // File contents are never stored either: kept in memory, fetched again
                        // after a restart when a later step needs them.
                        if secret || mcp_runtime::redact::has_content(&result) {
                            s.withheld = true;
                            s.result = Value::Null;
                            Some(result)
                        } else {
                            s.result = self.bounded(result);
                            None
                        }
                    }
                    Outcome::Failed { error, reason } => {
                        s.status = "failed".to_owned();
                        s.error = Some(error.clone());
                        self.metrics
                            .workflow_step_failures
                            .with_label_values(&[reason])
                            .inc();
                        if on_error == OnError::Fail {
                            failure.get_or_insert_with(|| {
                                format!("step `{}` failed: {error}", live.def.steps[i].id)
                            });
                        }
                        None
                    }
                    Outcome::Cancelled => {
                        s.status = "cancelled".to_owned();
                        s.error = Some("cancelled".to_owned());
                        None
                    }
                };
                let snapshot = s.clone();
                if let Some(v) = secret {
                    st.secrets.insert(snapshot.id.clone(), v);
                }
                snapshot
            };
            if let Err(e) = self.store.checkpoint(&live.run_id, &snapshot, None).await {
                failure.get_or_insert_with(|| {
                    format!("cannot checkpoint step `{}`: {e}", snapshot.id)
                });
            }
            live.bump();
        }
        // Settle.
        let (status, error) = if live.cancel.is_cancelled() {
            ("cancelled", Some("cancelled by request".to_owned()))
        } else if let Some(f) = failure {
            ("failed", Some(f))
        } else {
            ("completed", None)
        };
        let touched: Vec<StepRecord> = {
            let mut st = live.lock();
            let left = if status == "completed" {
                "skipped"
            } else {
                "cancelled"
            };
            st.steps
                .iter_mut()
                .filter(|s| s.status == "pending")
                .map(|s| {
                    s.status = left.to_owned();
                    s.clone()
                })
                .collect()
        };
        for s in touched {
            let _ = self.store.checkpoint(&live.run_id, &s, None).await;
        }
        if let Err(e) = self
            .store
            .set_run_status(&live.run_id, status, error.as_deref(), true)
            .await
        {
            tracing::error!(message = "Cannot record the end of a workflow run.", run_id = %live.run_id, error = %e);
        }
        live.lock().status = status.to_owned();
        self.metrics.workflows.with_label_values(&[status]).inc();
        self.metrics
            .workflow_duration
            .with_label_values(&[status])
            .observe(live.started.elapsed().as_secs_f64());
        tracing::info!(target: "audit", message = "Workflow ended.", run_id = %live.run_id, workflow = %live.def.name, status, error = error.as_deref().unwrap_or(""), correlation_id = %live.correlation_id);
    }

    /// A result cut to the configured size, with a visible marker.
    fn bounded(&self, v: Value) -> Value {
        let text = v.to_string();
        if text.len() <= self.cfg.max_result_bytes {
            return v;
        }
        let mut cut = text;
        cut.truncate(cut.floor_char_boundary(self.cfg.max_result_bytes.min(16 * 1024)));
        json!({"truncated": true, "note": format!("result larger than master.workflows.max_result_bytes ({} bytes); first part as text", self.cfg.max_result_bytes), "text": cut})
    }

    /// Steps whose needs are all settled and that have not started.
    fn ready(&self, live: &Live) -> Vec<usize> {
        let st = live.lock();
        let status: HashMap<&str, (&str, OnError)> = live
            .def
            .steps
            .iter()
            .zip(&st.steps)
            .map(|(d, s)| (d.id.as_str(), (s.status.as_str(), d.on_error)))
            .collect();
        live.topo
            .iter()
            .copied()
            .filter(|&i| st.steps[i].status == "pending")
            .filter(|&i| {
                live.def.steps[i].needs.iter().all(|n| {
                    matches!(
                        status.get(n.as_str()),
                        Some(("completed" | "skipped", _)) | Some(("failed", OnError::Continue))
                    )
                })
            })
            .collect()
    }

    fn caller(&self, live: &Live) -> CallerContext {
        CallerContext {
            correlation_id: live.correlation_id.clone(),
            identity: live.owner.clone(),
            trace_id: None,
            traceparent: None,
            approval: None,
            approval_error: None,
            // A durable run may resume long after the owner's token expired: steps go out with
            // master's own credentials and the owner's signed identity.
            subject_token: None,
        }
    }

    /// The template context of step `i`: inputs and the results of what it needs, fetching
    /// secret results again when this master does not hold them (after a restart).
    async fn context(&self, live: &Live, i: usize) -> Result<Value, definition::DefinitionError> {
        let wanted = &live.ancestors[i];
        // Re-fetch missing secret results in dependency order.
        for &j in &live.topo {
            let id = &live.def.steps[j].id;
            if !wanted.contains(id) {
                continue;
            }
            let missing = {
                let st = live.lock();
                st.steps[j].status == "completed"
                    && st.steps[j].withheld
                    && !st.secrets.contains_key(id)
            };
            if missing {
                let ctx = Box::pin(self.context(live, j)).await?;
                let params = definition::render(&live.def.steps[j].params, &ctx)
                    .map_err(|e| format!("step `{id}` (re-fetching its secret result): {e}"))?;
                match self.call_once(live, j, params).await {
                    Outcome::Completed { result, .. } => {
                        live.lock().secrets.insert(id.clone(), result);
                    }
                    Outcome::Failed { error, .. } => {
                        return Err(definition::DefinitionError(format!(
                            "the secret result of step `{id}` is not stored and fetching it again failed: {error}"
                        )));
                    }
                    Outcome::Cancelled => return Err("cancelled".into()),
                }
            }
        }
        let st = live.lock();
        let mut steps = Map::new();
        for (d, s) in live.def.steps.iter().zip(&st.steps) {
            if !wanted.contains(&d.id) {
                continue;
            }
            let result = if s.withheld {
                st.secrets.get(&d.id).cloned().unwrap_or(Value::Null)
            } else {
                s.result.clone()
            };
            let text = match &result {
                Value::String(t) => t.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            steps.insert(
                d.id.clone(),
                json!({"status": s.status, "result": result, "text": text, "error": s.error}),
            );
        }
        Ok(json!({"inputs": live.inputs, "steps": steps}))
    }

    /// Runs step `i` to its end: approvals, retries, timeout.
    async fn run_step(self: &Arc<Self>, live: &Arc<Live>, i: usize) -> Outcome {
        let def = &live.def.steps[i];
        let ctx = match self.context(live, i).await {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failed {
                    error: e.to_string(),
                    reason: "template",
                };
            }
        };
        let params = match definition::render(&def.params, &ctx) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Failed {
                    error: format!("cannot render params: {e}"),
                    reason: "template",
                };
            }
        };
        let (retries, delay_ms) = def.retry.map(|r| r.plan()).unwrap_or((0, 0));
        let mut attempt = 0;
        loop {
            let outcome = if def.approval {
                self.approved_call(live, i, params.clone()).await
            } else {
                self.call_once(live, i, params.clone()).await
            };
            match outcome {
                Outcome::Failed { reason, .. }
                    if attempt < retries
                        && !matches!(reason, "denied" | "expired" | "template")
                        && !live.cancel.is_cancelled() =>
                {
                    attempt += 1;
                    let snapshot = {
                        let mut st = live.lock();
                        st.steps[i].attempts += 1;
                        st.steps[i].clone()
                    };
                    let _ = self.store.checkpoint(&live.run_id, &snapshot, None).await;
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                        () = live.cancel.cancelled() => return Outcome::Cancelled,
                    }
                }
                other => return other,
            }
        }
    }

    /// One call of step `i` through the gateway as the run's owner; a pending approval (policy or
    /// the service's `approval_required`) is waited for.
    async fn call_once(&self, live: &Live, i: usize, params: Map<String, Value>) -> Outcome {
        let Some(g) = self.gateway() else {
            return Outcome::Cancelled;
        };
        let def = &live.def.steps[i];
        let wire = live.lock().steps[i].tool.clone();
        let secret = def.secret();
        let mut meta = RequestMetaObject::default();
        meta.insert(
            IDEMPOTENCY_META_KEY.to_owned(),
            Value::String(format!("{}/{}", live.run_id, def.id)),
        );
        let request = CallToolRequestParams::new(wire.clone()).with_arguments(params);
        let ct = live.cancel.child_token();
        let caller = self.caller(live);
        let call = g.call_tool(crate::gateway::Call {
            request,
            meta,
            caller: &caller,
            view: None,
            peer: None,
            context: None,
            ct: &ct,
            secret_result: secret,
        });
        let r = match def.timeout {
            Some(t) => match tokio::time::timeout(Duration::from_secs_f64(t), call).await {
                Ok(r) => r,
                Err(_) => {
                    ct.cancel();
                    return Outcome::Failed {
                        error: format!(
                            "`{wire}` did not finish within the step's timeout of {t} s"
                        ),
                        reason: "timeout",
                    };
                }
            },
            None => call.await,
        };
        if live.cancel.is_cancelled() {
            return Outcome::Cancelled;
        }
        match r {
            Ok(CallToolResponse::Complete(r)) => {
                let pending = r
                    .structured_content
                    .as_ref()
                    .filter(|s| s.get("status").and_then(Value::as_str) == Some("pending_approval"))
                    .and_then(|s| s.get("approval_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(id) = pending {
                    return self.await_approval(live, i, &id, secret).await;
                }
                self.outcome_of(&wire, &r, secret)
            }
            Ok(_) => Outcome::Failed {
                error: format!(
                    "`{wire}` answered with a task or an input request, which workflow steps do not support"
                ),
                reason: "protocol",
            },
            Err(e) => Outcome::Failed {
                error: format!("`{wire}`: {}", e.message),
                reason: "error",
            },
        }
    }

    fn outcome_of(&self, wire: &str, r: &CallToolResult, secret: bool) -> Outcome {
        if r.is_error == Some(true) {
            let mut text = result_text(r);
            text.truncate(text.floor_char_boundary(4096));
            Outcome::Failed {
                error: format!("`{wire}` failed: {text}"),
                reason: "tool_error",
            }
        } else {
            Outcome::Completed {
                result: result_value(r),
                secret,
            }
        }
    }

    /// A step marked `approval: true`: a person approves the exact call before it runs.
    async fn approved_call(&self, live: &Live, i: usize, params: Map<String, Value>) -> Outcome {
        let Some(g) = self.gateway() else {
            return Outcome::Cancelled;
        };
        let def = &live.def.steps[i];
        let wire = live.lock().steps[i].tool.clone();
        let reason = format!(
            "workflow `{}` (run {}) step `{}` requires an approval",
            live.def.name, live.run_id, def.id
        );
        match g.request_step_approval(&wire, params, &reason, &self.caller(live)) {
            Ok(id) => {
                let secret = def.secret();
                self.await_approval(live, i, &id, secret).await
            }
            Err(e) => Outcome::Failed {
                error: e.to_string(),
                reason: "approval",
            },
        }
    }

    /// Marks step `i` waiting for approval `id` and waits for the decision and the approved call.
    async fn await_approval(&self, live: &Live, i: usize, id: &str, secret: bool) -> Outcome {
        let Some(g) = self.gateway() else {
            return Outcome::Cancelled;
        };
        let mut events = g.approval_events();
        let snapshot = {
            let mut st = live.lock();
            st.steps[i].status = "waiting_approval".to_owned();
            st.steps[i].approval_id = Some(id.to_owned());
            st.steps[i].clone()
        };
        let _ = self
            .store
            .checkpoint(&live.run_id, &snapshot, Some(("waiting_approval", None)))
            .await;
        // Waiters read the store once they see the new status: it is committed by now.
        live.lock().status = "waiting_approval".to_owned();
        self.refresh_gauges();
        live.bump();
        let wire = snapshot.tool.clone();
        drop(g);
        let outcome = loop {
            // The store is the truth; events only wake us early.
            if let Some(row) = self.gateway().and_then(|g| g.approval(id)) {
                match row.status.as_str() {
                    "denied" => {
                        break Outcome::Failed {
                            error: format!(
                                "approval {id} was denied by {}: {}",
                                row.decided_by.unwrap_or_default(),
                                row.comment.unwrap_or_default()
                            ),
                            reason: "denied",
                        };
                    }
                    "expired" | "abandoned" | "withdrawn" => {
                        break Outcome::Failed {
                            error: format!("approval {id} {} before anyone decided", row.status),
                            reason: "expired",
                        };
                    }
                    "executed" | "failed" => {
                        // The decision's event carries the full result; the row a redacted copy.
                        let parsed: Option<CallToolResult> = row
                            .result
                            .as_deref()
                            .and_then(|r| serde_json::from_str(r).ok());
                        match parsed {
                            Some(r) => break self.outcome_of(&wire, &r, secret),
                            None => {
                                break Outcome::Failed {
                                    error: format!(
                                        "approved call failed: {}",
                                        row.result.unwrap_or_default()
                                    ),
                                    reason: "tool_error",
                                };
                            }
                        }
                    }
                    _ => {}
                }
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ApprovalEvent { id: ev_id, result: Some(r), .. }) if ev_id == id => {
                        break self.outcome_of(&wire, &r, secret);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break Outcome::Cancelled,
                },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = live.cancel.cancelled() => {
                    if let Some(g) = self.gateway() {
                        g.withdraw_approval(id, &format!("workflow run {} was cancelled", live.run_id));
                    }
                    break Outcome::Cancelled;
                }
            }
        };
        {
            let mut st = live.lock();
            if !st
                .steps
                .iter()
                .any(|s| s.status == "waiting_approval" && s.id != live.def.steps[i].id)
            {
                st.status = "running".to_owned();
            }
            st.steps[i].status = "running".to_owned();
        }
        let status = live.lock().status.clone();
        let _ = self
            .store
            .set_run_status(&live.run_id, &status, None, false)
            .await;
        self.refresh_gauges();
        outcome
    }

    /// Waits until a run stops running (ends, waits for an approval or a person; with `to_end`,
    /// until it ends) or `wait` passes.
    pub async fn wait(&self, run_id: &str, wait: Duration, to_end: bool) {
        let Some(live) = self.live_runs().get(run_id).cloned() else {
            return;
        };
        let mut rx = live.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let status = live.lock().status.clone();
            if (!to_end && status != "running") || !self.live_runs().contains_key(run_id) {
                return;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Whether `who` may see or steer a run of `owner`.
    fn may_access(&self, g: &Gateway, who: &Identity, owner: &str) -> bool {
        who.name == owner || who.has_role(&g.cfg.approvals.approver_role)
    }

    fn load(&self, run_id: &str, who: &Identity) -> Result<RunRecord, WorkflowError> {
        let g = self
            .gateway()
            .ok_or_else(|| WorkflowError::Refused("master is shutting down".to_owned()))?;
        let run = self
            .store
            .get(run_id)?
            .ok_or_else(|| WorkflowError::NotFound(run_id.to_owned()))?;
        if !self.may_access(&g, who, &run.owner) {
            // Someone else's run looks like a missing one.
            return Err(WorkflowError::NotFound(run_id.to_owned()));
        }
        Ok(run)
    }

    /// The document `orchestrator_getWorkflow` returns.
    pub fn describe(&self, run_id: &str, who: &Identity) -> Result<(Value, String), WorkflowError> {
        let run = self.load(run_id, who)?;
        Ok(render_run(&run))
    }

    /// Cancels a run: steps in flight are cancelled downstream, nothing new starts.
    pub async fn cancel(
        &self,
        run_id: &str,
        who: &Identity,
        reason: &str,
    ) -> Result<(), WorkflowError> {
        let run = self.load(run_id, who)?;
        if let Some(live) = self.live_runs().get(run_id).cloned() {
            tracing::info!(target: "audit", message = "Workflow cancel requested.", run_id, by = %who.name, reason);
            live.cancel.cancel();
            return Ok(());
        }
        match run.status.as_str() {
            "needs_attention" | "failed" => {
                self.store
                    .set_run_status(
                        run_id,
                        "cancelled",
                        Some(&format!("cancelled by {}: {reason}", who.name)),
                        true,
                    )
                    .await?;
                self.metrics
                    .workflows
                    .with_label_values(&["cancelled"])
                    .inc();
                self.refresh_gauges();
                Ok(())
            }
            other => Err(WorkflowError::Refused(format!(
                "run `{run_id}` is {other}; only runs in progress, failed or needing attention can be cancelled"
            ))),
        }
    }

    /// Resumes a failed or cancelled run, or one needing attention (`step_action` decides what
    /// happens to the step that was in flight: `rerun` or `skip`).
    pub async fn resume(
        self: &Arc<Self>,
        run_id: &str,
        who: &Identity,
        step_action: Option<&str>,
    ) -> Result<(), WorkflowError> {
        let g = self
            .gateway()
            .ok_or_else(|| WorkflowError::Refused("master is shutting down".to_owned()))?;
        let run = self.load(run_id, who)?;
        if self.live_runs().contains_key(run_id) {
            return Err(WorkflowError::Refused(format!(
                "run `{run_id}` is {} already",
                run.status
            )));
        }
        let attention = run.status == "needs_attention";
        if !matches!(
            run.status.as_str(),
            "needs_attention" | "failed" | "cancelled"
        ) {
            return Err(WorkflowError::Refused(format!(
                "run `{run_id}` is {}; only failed, cancelled or needs_attention runs resume",
                run.status
            )));
        }
        let action = match (attention, step_action) {
            (true, Some(a @ ("rerun" | "skip"))) => a,
            (true, _) => {
                return Err(WorkflowError::Invalid(
                    "this run needs attention: say step_action `rerun` (run the interrupted step again) or `skip` (treat it as done without a result)".to_owned(),
                ));
            }
            (false, _) => "rerun",
        };
        let mut run = run;
        for s in run.steps.iter_mut() {
            let reset = match s.status.as_str() {
                "running" | "waiting_approval" if attention => true,
                "failed" | "cancelled" | "pending" => true,
                _ => false,
            };
            if !reset {
                continue;
            }
            if action == "skip" && matches!(s.status.as_str(), "running" | "waiting_approval") {
                s.status = "skipped".to_owned();
                s.error = Some(format!("skipped by {} after an interrupted run", who.name));
                s.finished = Some(now_ms());
            } else {
                s.status = "pending".to_owned();
                s.approval_id = None;
            }
            self.store.checkpoint(run_id, s, None).await?;
        }
        self.store
            .set_run_status(run_id, "running", None, false)
            .await?;
        tracing::info!(target: "audit", message = "Workflow resumed.", run_id, by = %who.name, step_action = action);
        let run = self
            .store
            .get(run_id)?
            .ok_or_else(|| WorkflowError::NotFound(run_id.to_owned()))?;
        match self
            .restore(&g, run)
            .await
            .map_err(|e| WorkflowError::Refused(e.to_string()))?
        {
            Some(live) => {
                self.spawn(live);
                Ok(())
            }
            None => Err(WorkflowError::Refused(
                "the run still needs attention".to_owned(),
            )),
        }
    }

    /// How the runs created in `[from, to)` (unix milliseconds) stand, by status.
    pub fn outcomes(&self, from: i64, to: i64) -> Result<Vec<(String, u64)>, WorkflowError> {
        Ok(self.store.outcomes(from, to)?)
    }

    /// Templates and recent runs (one's own; all for approvers, or one owner's with
    /// `filter.owner`).
    pub fn list(
        &self,
        who: &Identity,
        filter: RunFilter<'_>,
        limit: usize,
    ) -> Result<Value, WorkflowError> {
        let g = self
            .gateway()
            .ok_or_else(|| WorkflowError::Refused("master is shutting down".to_owned()))?;
        let mut filter = filter;
        if !who.has_role(&g.cfg.approvals.approver_role) {
            filter.owner = Some(who.name.as_str());
        }
        let runs: Vec<Value> = self
            .store
            .list(&filter, limit)?
            .into_iter()
            .map(|r| {
                json!({"run_id": r.run_id, "workflow": r.workflow, "status": r.status, "owner": r.owner,
                       "created": r.created, "updated": r.updated, "finished": r.finished, "error": r.error})
            })
            .collect();
        let (defs, errors) = self.templates();
        let templates: Vec<Value> = defs
            .values()
            .map(|d| {
                json!({"name": d.name, "description": d.description, "inputs": d.inputs,
                       "steps": d.steps.iter().map(|s| json!({"id": s.id, "tool": crate::namespace::wire_name(&s.service, &self.sep, &s.tool), "needs": s.needs, "approval": s.approval})).collect::<Vec<_>>()})
            })
            .collect();
        let mut doc = json!({"templates": templates, "runs": runs});
        if !errors.is_empty() {
            doc["template_errors"] = json!(errors);
        }
        Ok(doc)
    }
}

/// A run as the tools show it: structured document and a short text summary.
pub fn render_run(run: &RunRecord) -> (Value, String) {
    let duration = run.finished.unwrap_or(run.updated) - run.created;
    let steps: Vec<Value> = run
        .steps
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
            if let (Some(a), Some(b), Some(o)) = (s.started, s.finished, v.as_object_mut()) {
                o.insert("duration_ms".to_owned(), json!(b - a));
            }
            if s.withheld
                && let Some(o) = v.as_object_mut()
            {
                o.insert(
                    "result".to_owned(),
                    json!("[withheld: a secret or file contents, never stored; kept in master's memory only]"),
                );
            }
            v
        })
        .collect();
    let mut text = format!(
        "workflow `{}` run {}: {} ({})",
        run.workflow,
        run.run_id,
        run.status,
        fmt_ms(duration)
    );
    if let Some(e) = &run.error {
        text.push_str(&format!("\n{e}"));
    }
    for s in &run.steps {
        text.push_str(&format!("\n- {} `{}`: {}", s.id, s.tool, s.status));
        if let (Some(a), Some(b)) = (s.started, s.finished) {
            text.push_str(&format!(" in {}", fmt_ms(b - a)));
        }
        if let Some(id) = &s.approval_id
            && s.status == "waiting_approval"
        {
            text.push_str(&format!(" (approval {id})"));
        }
        if let Some(e) = &s.error
            && s.status != "completed"
        {
            let mut e = e.clone();
            e.truncate(e.floor_char_boundary(300));
            text.push_str(&format!(": {e}"));
        }
    }
    let doc = json!({
        "run_id": run.run_id,
        "workflow": run.workflow,
        "status": run.status,
        "owner": run.owner,
        "inputs": run.inputs,
        "error": run.error,
        "created": run.created,
        "updated": run.updated,
        "finished": run.finished,
        "duration_ms": duration,
        "steps": steps,
    });
    (doc, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topological_order_puts_needs_first() {
        let def = definition::parse(
            "name: x\nsteps:\n - {id: c, service: s, tool: t, needs: [b]}\n - {id: b, service: s, tool: t, needs: [a]}\n - {id: a, service: s, tool: t}\n - {id: d, service: s, tool: t}",
        )
        .unwrap();
        let order: Vec<&str> = topo_order(&def)
            .into_iter()
            .map(|i| def.steps[i].id.as_str())
            .collect();
        let pos = |id| order.iter().position(|x| *x == id).unwrap();
        assert_eq!(order.len(), 4);
        assert!(pos("a") < pos("b") && pos("b") < pos("c"), "{order:?}");
    }
}
