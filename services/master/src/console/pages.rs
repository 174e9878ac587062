//! The approvals page (pending with Approve / Deny, decided, kept live by `/ui/events`), the
//! workflow runs and a run's timeline with Resume / Cancel, and the status page. Decisions and run
//! actions call the gateway and the engine exactly as the tools do.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Console, Notice, Seen, Visitor, span, when};
use crate::approvals::{ApprovalRow, now};
use crate::workflow::store::RunFilter;

/// Pending approvals shown at most.
const MAX_PENDING: usize = 500;
/// Decided approvals shown.
const DECIDED: usize = 50;
/// Runs listed at most.
const MAX_RUNS: usize = 200;

/// A pending approval as the page shows it.
#[derive(Serialize)]
struct PendingView {
    id: String,
    tool: String,
    requester: String,
    reason: String,
    arguments: String,
    age: String,
    expires_in: String,
    may_decide: bool,
    why_not: String,
}

impl Console {
    fn pending_views(&self, v: &Visitor, only: Option<&str>) -> Vec<PendingView> {
        let Some(ap) = self.gateway.approvals_store() else {
            return Vec::new();
        };
        let t = now();
        let role = &ap.cfg.approver_role;
        ap.list(Some("pending"), MAX_PENDING)
            .into_iter()
            .filter(|a| only.is_none_or(|o| o == a.id))
            .map(|a| {
                let may_decide = ap.may_decide(v.identity(), &a.requester);
                let why_not = if may_decide {
                    String::new()
                } else if !v.identity().has_role(role) {
                    format!("Deciding needs the `{role}` role.")
                } else {
                    "You asked for this call; another approver decides it (master.approvals.allow_self_approval is off).".to_owned()
                };
                PendingView {
                    age: span(t.saturating_sub(a.created)),
                    expires_in: span(a.expires.saturating_sub(t)),
                    id: a.id,
                    tool: a.tool,
                    requester: a.requester,
                    reason: a.reason,
                    arguments: a.arguments,
                    may_decide,
                    why_not,
                }
            })
            .collect()
    }

    fn no_approvals(&self, v: &Visitor) -> Option<Response> {
        self.gateway.approvals_store().is_none().then(|| {
            self.error(
                StatusCode::NOT_FOUND,
                Some(v),
                "Approvals are off",
                "This master has no approvals: set master.identity_key_file or master.approvals.key_file.",
            )
        })
    }
}

#[derive(Serialize)]
struct DecidedView {
    id: String,
    when: String,
    tool: String,
    requester: String,
    status: String,
    decided_by: Option<String>,
    comment: Option<String>,
}

impl From<ApprovalRow> for DecidedView {
    fn from(a: ApprovalRow) -> Self {
        Self {
            when: when(a.decided.unwrap_or(a.created) as f64),
            id: a.id,
            tool: a.tool,
            requester: a.requester,
            status: a.status,
            decided_by: a.decided_by,
            comment: a.comment,
        }
    }
}

async fn approvals(Seen { c, v }: Seen<false>) -> Response {
    if let Some(r) = c.no_approvals(&v) {
        return r;
    }
    let decided: Vec<DecidedView> = c
        .gateway
        .approvals_store()
        .map(|ap| ap.list(None, MAX_PENDING + DECIDED))
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.status != "pending")
        .take(DECIDED)
        .map(DecidedView::from)
        .collect();
    let pending = c.pending_views(&v, None);
    c.render(
        StatusCode::OK,
        Some(&v),
        "approvals.html",
        "/ui/approvals",
        "Approvals",
        minijinja::context! { pending, decided },
    )
}

#[derive(Deserialize)]
struct Only {
    only: Option<String>,
    next: Option<String>,
}

/// The pending list alone, which the script puts in place when something changes.
async fn pending_fragment(Seen { c, v }: Seen<true>, Query(q): Query<Only>) -> Response {
    let pending = c.pending_views(&v, q.only.as_deref());
    c.render(
        StatusCode::OK,
        Some(&v),
        "pending.html",
        "/ui/approvals",
        "Pending",
        minijinja::context! { pending, next => q.next.as_deref().map(super::safe_next) },
    )
}

/// One `approvals` event whenever an approval is requested, decided or withdrawn; ends at
/// shutdown.
async fn events(Seen { c, .. }: Seen<true>) -> Response {
    let rx = c.gateway.approvals_changed();
    let stop = c.shutdown.clone();
    Sse::new(changes(rx, stop))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn changes(
    rx: tokio::sync::watch::Receiver<u64>,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((rx, stop), |(mut rx, stop)| async move {
        tokio::select! {
            () = stop.cancelled() => None,
            changed = rx.changed() => changed.ok().map(|()| {
                (Ok(Event::default().event("approvals").data("changed")), (rx, stop))
            }),
        }
    })
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    comment: Option<String>,
    reason: Option<String>,
    next: Option<String>,
}

/// `POST /ui/approvals/{id}/approve` (`comment`) or `…/deny` (`reason`).
async fn decide(
    Seen { c, v }: Seen<true>,
    Path((id, verb)): Path<(String, String)>,
    Form(f): Form<DecisionForm>,
) -> Response {
    let approve = match c.action(&v, &f.csrf, &verb, ["approve", "deny"]) {
        Ok(approve) => approve,
        Err(r) => return *r,
    };
    let text = if approve { f.comment } else { f.reason }.unwrap_or_default();
    let outcome = c
        .gateway
        .decide_approval(&id, approve, &text, v.identity(), &CancellationToken::new())
        .await;
    let outcome = match outcome {
        Ok(doc) => {
            let status = doc["approval"]["status"].as_str().unwrap_or("decided");
            let mut text = format!("Approval {id} {status}.");
            if doc["result"]["isError"] == Value::Bool(true) {
                text.push_str(" The call ran and answered an error.");
            }
            Notice::Done(text)
        }
        Err(e) => Notice::Problem(format!("Approval {id}: {e}")),
    };
    c.done(&v, f.next.as_deref().unwrap_or("/ui/approvals"), outcome)
}

#[derive(Deserialize, Serialize, Default)]
struct RunQuery {
    status: Option<String>,
    owner: Option<String>,
    workflow: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

const RUN_STATUSES: &[&str] = &[
    "pending",
    "running",
    "waiting_approval",
    "needs_attention",
    "completed",
    "failed",
    "cancelled",
];

async fn runs(Seen { c, v }: Seen<false>, Query(q): Query<RunQuery>) -> Response {
    let Some(engine) = c.gateway.workflows() else {
        return c.error(
            StatusCode::NOT_FOUND,
            Some(&v),
            "Workflows are off",
            "This master runs no workflows.",
        );
    };
    let filter = RunFilter {
        status: nonempty(&q.status),
        owner: nonempty(&q.owner),
        workflow: nonempty(&q.workflow),
    };
    let doc = match engine.list(v.identity(), filter, MAX_RUNS) {
        Ok(doc) => doc,
        Err(e) => {
            return c.error(
                StatusCode::BAD_GATEWAY,
                Some(&v),
                "Runs unavailable",
                &e.to_string(),
            );
        }
    };
    let ms = |x: &Value| x.as_f64().map(|m| when(m / 1000.0)).unwrap_or_default();
    let runs: Vec<Value> = doc["runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["created_at"] = Value::String(ms(&r["created"]));
            r["updated_at"] = Value::String(ms(&r["updated"]));
            r
        })
        .collect();
    let templates: Vec<Value> = doc["templates"]
        .as_array()
        .map(|t| t.iter().map(|t| t["name"].clone()).collect())
        .unwrap_or_default();
    c.render(
        StatusCode::OK,
        Some(&v),
        "runs.html",
        "/ui/runs",
        "Workflow runs",
        minijinja::context! { runs, templates, filter => q, statuses => RUN_STATUSES },
    )
}

async fn run(Seen { c, v }: Seen<false>, Path(run_id): Path<String>) -> Response {
    let Some(engine) = c.gateway.workflows() else {
        return c.error(
            StatusCode::NOT_FOUND,
            Some(&v),
            "Workflows are off",
            "This master runs no workflows.",
        );
    };
    let (doc, _) = match engine.describe(&run_id, v.identity()) {
        Ok(d) => d,
        Err(e) => {
            return c.error(
                StatusCode::NOT_FOUND,
                Some(&v),
                "No such run",
                &e.to_string(),
            );
        }
    };
    let waiting = doc["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["status"] == "waiting_approval")
        .and_then(|s| s["approval_id"].as_str())
        .map(str::to_owned);
    let pending = waiting
        .as_deref()
        .map(|id| c.pending_views(&v, Some(id)))
        .unwrap_or_default();
    // The page reloads itself while the run moves: running, or waiting on an approval that is no
    // longer pending (decided a moment before the engine went on).
    let active = match doc["status"].as_str() {
        Some("running" | "pending") => true,
        Some("waiting_approval") => pending.is_empty(),
        _ => false,
    };
    let duration =
        span(u64::try_from(doc["duration_ms"].as_i64().unwrap_or(0) / 1000).unwrap_or(0));
    c.render(
        StatusCode::OK,
        Some(&v),
        "run.html",
        "/ui/runs",
        &format!("Run {run_id}"),
        minijinja::context! {
            run => doc,
            pending_id => waiting,
            pending,
            active,
            duration,
            next => format!("/ui/runs/{run_id}"),
        },
    )
}

#[derive(Deserialize)]
struct RunAction {
    #[serde(default)]
    csrf: String,
    reason: Option<String>,
    step_action: Option<String>,
}

/// `POST /ui/runs/{id}/resume` (`step_action`) or `…/cancel` (`reason`).
async fn run_action(
    Seen { c, v }: Seen<true>,
    Path((run_id, verb)): Path<(String, String)>,
    Form(f): Form<RunAction>,
) -> Response {
    let resume = match c.action(&v, &f.csrf, &verb, ["resume", "cancel"]) {
        Ok(resume) => resume,
        Err(r) => return *r,
    };
    let next = format!("/ui/runs/{run_id}");
    let Some(engine) = c.gateway.workflows() else {
        return c.done(
            &v,
            &next,
            Notice::Problem("This master runs no workflows.".to_owned()),
        );
    };
    let mut arguments = serde_json::Map::new();
    arguments.insert("run_id".to_owned(), Value::String(run_id.clone()));
    let (tool, outcome) = if resume {
        if let Some(a) = nonempty(&f.step_action) {
            arguments.insert("step_action".to_owned(), Value::String(a.to_owned()));
        }
        let done = engine
            .resume(&run_id, v.identity(), nonempty(&f.step_action))
            .await
            .map(|()| format!("Run {run_id} resumed."));
        ("resumeWorkflow", done)
    } else {
        let reason = nonempty(&f.reason).unwrap_or("cancelled from the console");
        arguments.insert("reason".to_owned(), Value::String(reason.to_owned()));
        let done = engine
            .cancel(&run_id, v.identity(), reason)
            .await
            .map(|()| format!("Run {run_id} cancelled."));
        ("cancelWorkflow", done)
    };
    let error = outcome.as_ref().err().map(ToString::to_string);
    c.gateway.audit_console_action(
        &v.identity().name,
        ("orchestrator", tool),
        &arguments,
        error.as_deref().map_or(Ok(()), Err),
    );
    let notice = match outcome {
        Ok(text) => Notice::Done(text),
        Err(e) => Notice::Problem(e.to_string()),
    };
    c.done(&v, &next, notice)
}

async fn status(Seen { c, v }: Seen<false>) -> Response {
    let g = &c.gateway;
    let status = g.system_status();
    let downstreams: Vec<Value> = status["downstreams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            serde_json::json!({
                "name": d["name"], "state": d["state"], "circuit": d["circuit"], "tools": d["tools"],
                "latency": d["latency_ms"].as_f64().map(|l| format!("{l:.1} ms")).unwrap_or_default(),
                "detail": d["last_error"].as_str().unwrap_or(""),
            })
        })
        .collect();
    let idx = g.index();
    let endpoints: Vec<Value> = g
        .views()
        .iter()
        .map(|view| {
            let path = if view.name.is_empty() {
                "/mcp".to_owned()
            } else {
                format!("/mcp/{}", view.name)
            };
            serde_json::json!({"path": path, "tools": g.view_tools(&idx, view).len()})
        })
        .collect();
    let uptime = span(status["uptime_secs"].as_u64().unwrap_or(0));
    c.render(
        StatusCode::OK,
        Some(&v),
        "status.html",
        "/ui/status",
        "Status",
        minijinja::context! { status, downstreams, endpoints, uptime, warnings => g.limit_warnings() },
    )
}

pub(super) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/ui/approvals", get(approvals))
        .route("/ui/approvals/pending", get(pending_fragment))
        .route("/ui/approvals/{id}/{verb}", post(decide))
        .route("/ui/events", get(events))
        .route("/ui/runs", get(runs))
        .route("/ui/runs/{id}", get(run))
        .route("/ui/runs/{id}/{verb}", post(run_action))
        .route("/ui/status", get(status))
}
