//! The audit search (filters by identity, tool, namespace, decision, status and time range; pages
//! of 50), its CSV and JSON exports of exactly the filtered rows, and the compliance report of a
//! period as a page and a CSV. Times in forms are UTC, `YYYY-MM-DDTHH:MM` (what a
//! `datetime-local` input sends) or unix seconds.

use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Console, ConsoleError, Early, Seen, Visitor, when};
use crate::approvals::ApprovalSummary;
use crate::audit::{AuditFilter, AuditReader, AuditRow, CallCount, Refusal};

/// Rows per audit page.
const PAGE_ROWS: u64 = 50;

/// The audit page's query: the filter, as typed, and the page.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(super) struct AuditQuery {
    identity: Option<String>,
    tool: Option<String>,
    namespace: Option<String>,
    decision: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(skip_serializing)]
    page: Option<u64>,
}

/// A form's time: `YYYY-MM-DDTHH:MM[:SS]` (UTC; a space for the `T` too) or unix seconds.
fn parse_time(field: &str, text: &Option<String>) -> Result<Option<f64>, ConsoleError> {
    let Some(t) = text.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(secs) = t.parse::<f64>() {
        return Ok(Some(secs));
    }
    let t = t.replacen(' ', "T", 1);
    let long = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let short = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(&t, long)
        .or_else(|_| time::PrimitiveDateTime::parse(&t, short))
        .map(|d| Some(d.assume_utc().unix_timestamp() as f64))
        .map_err(|_| {
            ConsoleError::BadInput(format!(
                "`{field}` must be a UTC time as YYYY-MM-DDTHH:MM (or unix seconds), not `{t}`"
            ))
        })
}

/// A unix time as a `datetime-local` value.
fn input_time(secs: f64) -> String {
    when(secs).replacen(' ', "T", 1).chars().take(16).collect()
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ConsoleError> {
        Ok(AuditFilter {
            identity: nonempty(&self.identity),
            tool: nonempty(&self.tool),
            namespace: nonempty(&self.namespace),
            decision: nonempty(&self.decision),
            status: nonempty(&self.status),
            from: parse_time("from", &self.from)?,
            to: parse_time("to", &self.to)?,
        })
    }

    /// The filter as a query string (without the page), for export and page links.
    fn query_string(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("identity", &self.identity),
            ("tool", &self.tool),
            ("namespace", &self.namespace),
            ("decision", &self.decision),
            ("status", &self.status),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(v) = nonempty(v) {
                s.append_pair(k, &v);
            }
        }
        s.finish()
    }
}

impl Console {
    fn reader(&self, v: &Visitor) -> Result<&AuditReader, Early> {
        self.audit.as_ref().map_err(|e| {
            Box::new(self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(v),
                "Audit unavailable",
                &e.to_string(),
            ))
        })
    }
}

/// An audit row as the page shows it.
#[derive(Serialize)]
struct RowView<'a> {
    #[serde(flatten)]
    row: &'a AuditRow,
    when: String,
    ms: String,
}

async fn audit(Seen { c, v }: Seen<false>, Query(q): Query<AuditQuery>) -> Response {
    let reader = match c.reader(&v) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let page = q.page.unwrap_or(0);
    let (status, rows, total, problem) = match q.filter() {
        Err(e) => (e.status(), Vec::new(), 0, Some(e.to_string())),
        Ok(f) => match reader.search(&f, page.saturating_mul(PAGE_ROWS), PAGE_ROWS) {
            Ok((rows, total)) => (StatusCode::OK, rows, total, None),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Vec::new(),
                0,
                Some(e.to_string()),
            ),
        },
    };
    let views: Vec<RowView<'_>> = rows
        .iter()
        .map(|row| RowView {
            row,
            when: when(row.ts),
            ms: format!("{:.1}", row.duration_ms),
        })
        .collect();
    let pages = total.div_ceil(PAGE_ROWS).max(1);
    let mut ctx = minijinja::context! {
        q => &q,
        query => q.query_string(),
        rows => views,
        total,
        page,
        pages,
        prev => page.checked_sub(1),
        next => (page + 1 < pages).then_some(page + 1),
    };
    if let Some(p) = problem {
        ctx = minijinja::context! { problem => p, ..ctx };
    }
    c.render(status, Some(&v), "audit.html", "/ui/audit", "Audit", ctx)
}

/// The rows of an export, or the answer saying why there are none.
fn export_rows(c: &Console, v: &Visitor, q: &AuditQuery) -> Result<(Vec<AuditRow>, u64), Early> {
    let reader = c.reader(v)?;
    let f = q
        .filter()
        .map_err(|e| Box::new((e.status(), e.to_string()).into_response()))?;
    reader
        .search(&f, 0, c.gateway.cfg.console.max_export_rows.max(1))
        .map_err(|e| Box::new((StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()))
}

/// A CSV cell that a spreadsheet will not run: text starting like a formula gets a `'` first
/// (OWASP's advice for CSV exports).
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

fn csv_answer(name: &str, body: Vec<u8>, truncated: bool) -> Response {
    let mut resp = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response();
    if truncated {
        resp.headers_mut().insert(
            "x-export-truncated",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    resp
}

fn audit_csv_bytes(rows: &[AuditRow]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "time_utc",
        "identity",
        "tool",
        "decision",
        "status",
        "duration_ms",
        "correlation_id",
        "arguments",
        "error",
        "findings",
    ])?;
    for r in rows {
        w.write_record([
            r.id.to_string().as_str(),
            &when(r.ts),
            &cell(&r.identity),
            &cell(&r.tool),
            &cell(&r.decision),
            &cell(&r.status),
            &format!("{:.3}", r.duration_ms),
            &cell(&r.correlation_id),
            &cell(&r.arguments),
            &cell(r.error.as_deref().unwrap_or("")),
            &cell(r.findings.as_deref().unwrap_or("")),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

async fn audit_csv(Seen { c, v }: Seen<true>, Query(q): Query<AuditQuery>) -> Response {
    let (rows, total) = match export_rows(&c, &v, &q) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match audit_csv_bytes(&rows) {
        Ok(body) => csv_answer("audit.csv", body, total > rows.len() as u64),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn audit_json(Seen { c, v }: Seen<true>, Query(q): Query<AuditQuery>) -> Response {
    let (rows, total) = match export_rows(&c, &v, &q) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let doc = json!({
        "total": total,
        "truncated": total > rows.len() as u64,
        "rows": rows,
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.json\"",
            ),
        ],
        doc.to_string(),
    )
        .into_response()
}

/// What happened in a period: the compliance report.
#[derive(Debug, Serialize)]
struct Report {
    from: f64,
    to: f64,
    calls: Vec<CallCount>,
    approvals: ApprovalSummary,
    refusals: Vec<Refusal>,
    workflows: Vec<WorkflowOutcome>,
}

#[derive(Debug, Serialize)]
struct WorkflowOutcome {
    status: String,
    runs: u64,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Period {
    from: Option<String>,
    to: Option<String>,
}

impl Period {
    /// `[from, to)`; by default the last 24 hours up to the next whole minute.
    fn bounds(&self) -> Result<(f64, f64), ConsoleError> {
        let now = crate::approvals::now() as f64;
        let to = parse_time("to", &self.to)?.unwrap_or(((now / 60.0).floor() + 1.0) * 60.0);
        let from = parse_time("from", &self.from)?.unwrap_or(to - 86_400.0);
        if from >= to {
            return Err(ConsoleError::BadInput(
                "`from` must be before `to`".to_owned(),
            ));
        }
        Ok((from, to))
    }
}

impl Console {
    fn report(&self, reader: &AuditReader, from: f64, to: f64) -> Result<Report, ConsoleError> {
        let calls = reader.calls(from, to)?;
        let refusals = reader.refusals(from, to)?;
        let approvals = self
            .gateway
            .approvals_store()
            .map(|ap| ap.summary(from as u64, to.ceil() as u64))
            .unwrap_or_default();
        let workflows = match self.gateway.workflows() {
            Some(engine) => engine
                .outcomes((from * 1000.0) as i64, (to * 1000.0) as i64)?
                .into_iter()
                .map(|(status, runs)| WorkflowOutcome { status, runs })
                .collect(),
            None => Vec::new(),
        };
        Ok(Report {
            from,
            to,
            calls,
            approvals,
            refusals,
            workflows,
        })
    }
}

/// The report for the request's period, or the answer saying why there is none.
fn report_for(c: &Console, p: &Period) -> Result<Report, ConsoleError> {
    let reader = c
        .audit
        .as_ref()
        .map_err(|e| ConsoleError::Unavailable(e.to_string()))?;
    let (from, to) = p.bounds()?;
    c.report(reader, from, to)
}

fn period_query(p: &Period) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("from", &p.from), ("to", &p.to)] {
        if let Some(v) = nonempty(v) {
            s.append_pair(k, &v);
        }
    }
    s.finish()
}

async fn report_page(Seen { c, v }: Seen<false>, Query(p): Query<Period>) -> Response {
    match report_for(&c, &p) {
        Ok(report) => {
            let period = json!({
                "from_input": input_time(report.from), "to_input": input_time(report.to),
                "from_text": when(report.from), "to_text": when(report.to),
            });
            c.render(
                StatusCode::OK,
                Some(&v),
                "report.html",
                "/ui/report",
                "Compliance report",
                minijinja::context! { report, period, query => period_query(&p) },
            )
        }
        Err(e) => c.error(e.status(), Some(&v), "No report", &e.to_string()),
    }
}

fn report_csv_bytes(r: &Report) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["section", "identity", "tool", "metric", "value"])?;
    w.write_record(["period", "", "", "from_utc", &when(r.from)])?;
    w.write_record(["period", "", "", "to_utc", &when(r.to)])?;
    for c in &r.calls {
        for (metric, n) in [
            ("calls", c.calls),
            ("errors", c.errors),
            ("refused", c.refused),
            ("pending_approval", c.pending_approval),
        ] {
            w.write_record([
                "calls",
                &cell(&c.identity),
                &cell(&c.tool),
                metric,
                &n.to_string(),
            ])?;
        }
    }
    let a = &r.approvals;
    for (metric, n) in [
        ("requested", Some(a.requested as f64)),
        ("approved", Some(a.approved as f64)),
        ("denied", Some(a.denied as f64)),
        ("expired", Some(a.expired as f64)),
        ("other", Some(a.other as f64)),
        ("mean_decision_secs", a.mean_decision_secs),
        ("max_decision_secs", a.max_decision_secs.map(|s| s as f64)),
    ] {
        let value = n.map(|n| format!("{n}")).unwrap_or_default();
        w.write_record(["approvals", "", "", metric, &value])?;
    }
    for f in &r.refusals {
        w.write_record([
            "refusals",
            &cell(&f.identity),
            "",
            &cell(&f.decision),
            &f.count.to_string(),
        ])?;
    }
    for o in &r.workflows {
        w.write_record(["workflows", "", "", &cell(&o.status), &o.runs.to_string()])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

async fn report_csv(Seen { c, .. }: Seen<true>, Query(p): Query<Period>) -> Response {
    match report_for(&c, &p).map(|r| report_csv_bytes(&r)) {
        Ok(Ok(body)) => csv_answer("compliance-report.csv", body, false),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (e.status(), e.to_string()).into_response(),
    }
}

pub(super) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/ui/audit", get(audit))
        .route("/ui/audit.csv", get(audit_csv))
        .route("/ui/audit.json", get(audit_json))
        .route("/ui/report", get(report_page))
        .route("/ui/report.csv", get(report_csv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_utc() {
        let t = |s: &str| parse_time("from", &Some(s.to_owned()));
        assert_eq!(t("2026-12-02T01:30").unwrap(), Some(1_796_175_000.0));
        assert_eq!(t("2026-12-02 01:30:15").unwrap(), Some(1_796_175_015.0));
        assert_eq!(t("1796175000").unwrap(), Some(1_796_175_000.0));
        assert_eq!(parse_time("from", &Some(" ".into())).unwrap(), None);
        let e = t("yesterday").unwrap_err();
        assert!(e.to_string().contains("`from` must be a UTC time"), "{e}");
        assert_eq!(input_time(1_796_175_000.0), "2026-12-02T01:30");
    }

    #[test]
    fn exported_cells_never_start_a_formula() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("@SUM(1)"), "'@SUM(1)");
        assert_eq!(cell("alice"), "alice");
    }
}
