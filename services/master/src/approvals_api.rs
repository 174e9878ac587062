//! The approvals HTTP API for scripts and browsers: `GET /approvals[?status=&limit=]`,
//! `POST /approvals/{id}/approve` (`{"comment": …}`) and `POST /approvals/{id}/deny`
//! (`{"reason": …}`). Served behind the same edge checks and bearer auth as `/mcp`; the decision
//! rules are those of the `approvals_*` tools.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use mcp_runtime::auth::Identity;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::gateway::{ApprovalFailure, Gateway};

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    comment: Option<String>,
    reason: Option<String>,
}

fn answer(outcome: Result<Value, ApprovalFailure>) -> Response {
    match outcome {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let status = match &e {
                ApprovalFailure::Disabled => StatusCode::NOT_FOUND,
                ApprovalFailure::Invalid(_) => StatusCode::BAD_REQUEST,
                ApprovalFailure::Refused(m) if m.starts_with("no approval") => {
                    StatusCode::NOT_FOUND
                }
                ApprovalFailure::Refused(m)
                    if m.contains("may not") || m.contains("role is required") =>
                {
                    StatusCode::FORBIDDEN
                }
                ApprovalFailure::Refused(_) => StatusCode::CONFLICT,
                ApprovalFailure::Failed(_) => StatusCode::BAD_GATEWAY,
            };
            (status, Json(json!({ "error": e.to_string() }))).into_response()
        }
    }
}

async fn list(State(g): State<Arc<Gateway>>, Query(q): Query<ListQuery>) -> Response {
    answer(g.list_approvals(q.status.as_deref(), q.limit))
}

async fn decide(
    g: Arc<Gateway>,
    id: String,
    approve: bool,
    who: Option<Identity>,
    body: Option<Json<Decision>>,
) -> Response {
    let who = who.unwrap_or_else(Identity::anonymous);
    let d = body.map(|Json(d)| d).unwrap_or_default();
    let text = if approve { d.comment } else { d.reason }.unwrap_or_default();
    answer(
        g.decide_approval(&id, approve, &text, &who, &CancellationToken::new())
            .await,
    )
}

async fn approve(
    State(g): State<Arc<Gateway>>,
    Path(id): Path<String>,
    who: Option<Extension<Identity>>,
    body: Option<Json<Decision>>,
) -> Response {
    decide(g, id, true, who.map(|Extension(i)| i), body).await
}

async fn deny(
    State(g): State<Arc<Gateway>>,
    Path(id): Path<String>,
    who: Option<Extension<Identity>>,
    body: Option<Json<Decision>>,
) -> Response {
    decide(g, id, false, who.map(|Extension(i)| i), body).await
}

/// The routes, bound to the gateway.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/approvals", get(list))
        .route("/approvals/{id}/approve", post(approve))
        .route("/approvals/{id}/deny", post(deny))
        .with_state(gateway)
}
