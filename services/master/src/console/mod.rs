//! The operator console at `/ui/`: approvals, workflow runs, audit search with exports, the
//! compliance report and status, as server-rendered HTML (minijinja templates in `templates/`,
//! compiled in) with one small script and one stylesheet (`assets/`), no CDN and no build step.
//!
//! Served through `McpService::pages`: behind the Host/Origin checks of every endpoint but not
//! bearer auth, since a browser sends no `Authorization` header. Who a visitor is comes from the
//! runtime's [`Login`] (the edge's own rules): with bearer tokens off, the local operator is
//! `anonymous` with `server.anonymous_roles`, logged in at the first page; with tokens on, the
//! login form takes a token and a session cookie follows (`session`). Every state-changing
//! request carries the session's CSRF token; every page has a strict Content-Security-Policy.
//! Decisions go through the same gateway and engine calls as the `approvals_*` and
//! `orchestrator_*` tools, so the approver-role, self-approval and ownership rules are theirs.
//!
//! `pages` holds the approvals, runs and status pages, `records` the audit search, its exports
//! and the compliance report, `session` the sessions.

mod pages;
mod records;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use mcp_runtime::Login;
use mcp_runtime::auth::Identity;
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditReader;
use crate::gateway::Gateway;
use session::{COOKIE, Session, Sessions};

/// `[master.console]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/ui/`.
    pub enabled: bool,
    /// A login ends after this long without a request.
    pub session_idle_secs: u64,
    /// Rows one audit export holds at most (beyond: `X-Export-Truncated: true`, `"truncated"`).
    pub max_export_rows: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_secs: 8 * 3600,
            max_export_rows: 100_000,
        }
    }
}

/// Why a console page or export cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// A filter or period in the request does not parse (400).
    #[error("{0}")]
    BadInput(String),
    /// A store cannot be read (503).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Workflow(#[from] crate::workflow::WorkflowError),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadInput(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// What an action did, shown once on the next page.
pub enum Notice {
    Done(String),
    Problem(String),
}

/// Largest form body the console reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Every page's policy: only this origin's script and stylesheet, no inline script, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's state.
pub struct Console {
    gateway: Arc<Gateway>,
    audit: Result<AuditReader, crate::audit::AuditError>,
    sessions: Sessions,
    templates: Environment<'static>,
    shutdown: CancellationToken,
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("error.html", include_str!("templates/error.html")),
        ("pending.html", include_str!("templates/pending.html")),
        ("approvals.html", include_str!("templates/approvals.html")),
        ("runs.html", include_str!("templates/runs.html")),
        ("run.html", include_str!("templates/run.html")),
        ("audit.html", include_str!("templates/audit.html")),
        ("report.html", include_str!("templates/report.html")),
        ("status.html", include_str!("templates/status.html")),
    ] {
        // The templates are compiled in; one that does not parse fails the console's tests.
        if let Err(e) = env.add_template(name, text) {
            tracing::error!(message = "Console template does not parse.", template = name, error = %e);
        }
    }
    env
}

/// The answer a handler gives instead of its page (a login redirect, a refusal), boxed: a
/// `Response` is large.
pub type Early = Box<Response>;

/// A logged-in visitor of a page: their session and its id.
pub struct Visitor {
    id: String,
    session: Session,
    /// A `Set-Cookie` for a session made by this request (the open local console).
    cookie: Option<HeaderValue>,
}

impl Visitor {
    pub fn identity(&self) -> &Identity {
        &self.session.identity
    }
}

/// A handler's console and visitor: the session from the cookie (or the open local console's new
/// one); without one, a page (`ACTION = false`) answers the login page, an action or a data
/// request (`true`) 401.
pub struct Seen<const ACTION: bool> {
    pub c: Arc<Console>,
    pub v: Visitor,
}

impl<const ACTION: bool> axum::extract::FromRequestParts<Arc<Console>> for Seen<ACTION> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        c: &Arc<Console>,
    ) -> Result<Self, Response> {
        let Some(login) = parts.extensions.get::<Login>() else {
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        c.visitor(&parts.headers, login, ACTION)
            .map(|v| Self { c: c.clone(), v })
            .map_err(|r| *r)
    }
}

/// The form field every state-changing request sends.
#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl Console {
    fn cookie(id: &str, tls: bool) -> HeaderValue {
        let secure = if tls { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The visitor of a request: their session from the cookie, or a new one while bearer tokens
    /// are off. `Err` is the answer instead: the login page for a page, 401 for an action.
    fn visitor(&self, headers: &HeaderMap, login: &Login, action: bool) -> Result<Visitor, Early> {
        let from_cookie = cookie_value(headers, COOKIE)
            .and_then(|id| self.sessions.get(id, !action).map(|s| (id.to_owned(), s)));
        let visitor = match from_cookie {
            Some((id, session)) => Visitor {
                id,
                session,
                cookie: None,
            },
            None => match login.without_token() {
                // An action needs a session made by an earlier page (its CSRF token was in it).
                Some(identity) if !action => {
                    let (id, session) = self.sessions.create(identity, false);
                    Visitor {
                        cookie: Some(Self::cookie(&id, login.over_tls())),
                        id,
                        session,
                    }
                }
                _ if action => {
                    return Err(Box::new(self.error(
                        StatusCode::UNAUTHORIZED,
                        None,
                        "Not logged in",
                        "This action needs a console session: open the console and log in first.",
                    )));
                }
                _ => return Err(Box::new(Redirect::to("/ui/login").into_response())),
            },
        };
        self.admit(visitor.identity())?;
        Ok(visitor)
    }

    /// Whether `who` may use the console (the approver or admin role), or the refusal page.
    fn admit(&self, who: &Identity) -> Result<(), Early> {
        if who.has_role(&self.gateway.cfg.approvals.approver_role)
            || who.has_role(&self.gateway.cfg.admin_role)
        {
            return Ok(());
        }
        Err(Box::new(self.error(
            StatusCode::FORBIDDEN,
            None,
            "Not for this identity",
            &format!(
                "`{}` holds neither the `{}` nor the `{}` role, which the console needs.",
                who.name, self.gateway.cfg.approvals.approver_role, self.gateway.cfg.admin_role
            ),
        )))
    }

    /// Whether a state-changing request's form carried the session's CSRF token.
    fn check_csrf(&self, v: &Visitor, csrf: &str) -> Result<(), Early> {
        if !session::same_secret(csrf, &v.session.csrf) {
            return Err(Box::new(self.error(
                StatusCode::FORBIDDEN,
                Some(v),
                "Refused",
                "The form's CSRF token is missing or stale: reload the page and try again.",
            )));
        }
        Ok(())
    }

    /// A two-way action (`POST …/{verb}`) after its CSRF check: whether `verb` is the first of
    /// `verbs` (404 for another).
    fn action(&self, v: &Visitor, csrf: &str, verb: &str, verbs: [&str; 2]) -> Result<bool, Early> {
        self.check_csrf(v, csrf)?;
        match verbs.iter().position(|w| *w == verb) {
            Some(i) => Ok(i == 0),
            None => Err(Box::new(StatusCode::NOT_FOUND.into_response())),
        }
    }

    /// Renders `template` for `v` with the page's own `ctx`.
    fn render(
        &self,
        status: StatusCode,
        v: Option<&Visitor>,
        template: &str,
        page: &str,
        title: &str,
        ctx: minijinja::Value,
    ) -> Response {
        let notice = v.and_then(|v| v.session.notice.clone());
        let base = minijinja::context! {
            title => title,
            page => page,
            who => v.map(|v| v.identity().name.clone()),
            csrf => v.map(|v| v.session.csrf.clone()),
            can_logout => v.is_some_and(|v| v.session.with_token),
            note => notice.as_ref().filter(|n| !n.0).map(|n| n.1.clone()),
            problem => notice.as_ref().filter(|n| n.0).map(|n| n.1.clone()),
            approver_role => self.gateway.cfg.approvals.approver_role.clone(),
        };
        let ctx = minijinja::context! { ..ctx, ..base };
        let html = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(ctx));
        let mut resp = match html {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(message = "Console page failed to render.", template, error = %e);
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page failed to render; see master's log",
                )
                    .into_response()
            }
        };
        if let Some(cookie) = v.and_then(|v| v.cookie.clone()) {
            resp.headers_mut().append(header::SET_COOKIE, cookie);
        }
        resp
    }

    fn error(
        &self,
        status: StatusCode,
        v: Option<&Visitor>,
        title: &str,
        message: &str,
    ) -> Response {
        self.render(
            status,
            v,
            "error.html",
            "",
            title,
            minijinja::context! { message => message },
        )
    }

    /// After an action: a notice for the next page, and a redirect to it.
    fn done(&self, v: &Visitor, next: &str, outcome: Notice) -> Response {
        let (problem, text) = match outcome {
            Notice::Done(t) => (false, t),
            Notice::Problem(t) => (true, t),
        };
        self.sessions.notify(&v.id, problem, text);
        Redirect::to(safe_next(next)).into_response()
    }
}

/// A redirect target from a form: a console path only (no other site, no `//host`).
fn safe_next(next: &str) -> &str {
    if next.starts_with("/ui/") && !next.contains("//") && !next.contains('\\') {
        next
    } else {
        "/ui/approvals"
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Unix seconds as `2026-12-02 01:30:00` (UTC).
fn when(secs: f64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// A span of seconds for people: `42 s`, `3 min`, `2 h 5 min`, `3 d 4 h`.
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86400, secs % 86400 / 3600),
    }
}

/// Security headers on every console answer.
async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// The approvals page, or the status page on a master without approvals.
async fn home(State(c): State<Arc<Console>>) -> Redirect {
    if c.gateway.approvals_store().is_some() {
        Redirect::to("/ui/approvals")
    } else {
        Redirect::to("/ui/status")
    }
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login_page(
    State(c): State<Arc<Console>>,
    Extension(login): Extension<Login>,
    headers: HeaderMap,
) -> Response {
    if !login.needs_token()
        || cookie_value(&headers, COOKIE).is_some_and(|id| c.sessions.get(id, false).is_some())
    {
        return Redirect::to("/ui/approvals").into_response();
    }
    c.render(
        StatusCode::OK,
        None,
        "login.html",
        "/ui/login",
        "Log in",
        minijinja::context! {},
    )
}

async fn login_submit(
    State(c): State<Arc<Console>>,
    Extension(login): Extension<Login>,
    Form(f): Form<LoginForm>,
) -> Response {
    let Some(identity) = login.with_token(&f.token).await else {
        tracing::info!(target: "audit", message = "Console login refused.", reason = "token not recognised");
        return c.render(
            StatusCode::UNAUTHORIZED,
            None,
            "login.html",
            "/ui/login",
            "Log in",
            minijinja::context! { problem => "That token is not recognised." },
        );
    };
    if let Err(refused) = c.admit(&identity) {
        return *refused;
    }
    tracing::info!(target: "audit", message = "Console login.", identity = %identity.name);
    let (id, _) = c.sessions.create(identity, true);
    let mut resp = Redirect::to("/ui/approvals").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, Console::cookie(&id, login.over_tls()));
    resp
}

async fn logout(Seen { c, v }: Seen<true>, Form(f): Form<CsrfOnly>) -> Response {
    if let Err(r) = c.check_csrf(&v, &f.csrf) {
        return *r;
    }
    c.sessions.remove(&v.id);
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("mcp_console=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

/// The console's routes, or `None` when `master.console.enabled` is off.
pub fn router(gateway: Arc<Gateway>, shutdown: CancellationToken) -> Option<Router> {
    let cfg = gateway.cfg.console.clone();
    if !cfg.enabled {
        return None;
    }
    let audit = AuditReader::open(&gateway.cfg.audit_db, &gateway.cfg.separator);
    let console = Arc::new(Console {
        gateway,
        audit,
        sessions: Sessions::new(Duration::from_secs(cfg.session_idle_secs.max(60))),
        templates: templates(),
        shutdown,
    });
    Some(
        Router::new()
            .route("/ui", get(home))
            .route("/ui/", get(home))
            .route("/ui/assets/{name}", get(asset))
            .route("/ui/login", get(login_page).post(login_submit))
            .route("/ui/logout", post(logout))
            .merge(pages::routes())
            .merge(records::routes())
            .with_state(console)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
            .layer(from_fn(headers)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        let env = templates();
        for name in [
            "base.html",
            "login.html",
            "error.html",
            "pending.html",
            "approvals.html",
            "runs.html",
            "run.html",
            "audit.html",
            "report.html",
            "status.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name} does not parse");
        }
    }

    #[test]
    fn redirects_stay_in_the_console() {
        assert_eq!(safe_next("/ui/runs/r-1"), "/ui/runs/r-1");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil",
            "/other",
            "/ui/\\evil",
        ] {
            assert_eq!(safe_next(bad), "/ui/approvals", "{bad}");
        }
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; mcp_console=abc"),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "b"), None);
    }

    #[test]
    fn spans_read_like_people_say_them() {
        assert_eq!(span(5), "5 s");
        assert_eq!(span(125), "2 min");
        assert_eq!(span(7500), "2 h 5 min");
        assert_eq!(span(90000), "1 d 1 h");
        assert_eq!(when(0.0), "1970-01-01 00:00:00");
    }
}
