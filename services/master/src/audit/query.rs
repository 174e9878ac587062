//! The audit trail read back: searches with filters and pages (the console's audit page and its
//! CSV/JSON exports) and the per-period sums of the compliance report. A read-only connection of
//! its own, so reading never waits on the writer thread (WAL lets both run at once).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, params_from_iter, types::Value as Sql};
use serde::Serialize;

use super::AuditError;

/// Which rows a search returns: each `Some` narrows it; times are unix seconds, `to` excluded.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub identity: Option<String>,
    /// A wire name, exactly.
    pub tool: Option<String>,
    /// Rows whose tool is in this namespace (`<namespace><separator>…`).
    pub namespace: Option<String>,
    pub decision: Option<String>,
    pub status: Option<String>,
    pub from: Option<f64>,
    pub to: Option<f64>,
}

/// One stored row, as written (arguments and errors were masked before they were stored).
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    /// Unix seconds.
    pub ts: f64,
    pub identity: String,
    pub tool: String,
    pub arguments: String,
    pub decision: String,
    pub status: String,
    pub duration_ms: f64,
    pub correlation_id: String,
    pub error: Option<String>,
    pub findings: Option<String>,
}

/// Calls of one identity to one tool in a period.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallCount {
    pub identity: String,
    pub tool: String,
    pub calls: u64,
    /// Ran and failed (`status = error`, not counting calls sent to approval).
    pub errors: u64,
    /// Refused before running (`status = refused`: denied, rate limited, unknown…).
    pub refused: u64,
    /// Sent to a human approval (`decision = approval_pending`).
    pub pending_approval: u64,
}

/// Refusals of one kind (`deny`, `rate_limited`, …) for one identity in a period.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refusal {
    pub identity: String,
    pub decision: String,
    pub count: u64,
}

/// Reads the audit database.
pub struct AuditReader {
    conn: Mutex<Connection>,
    separator: String,
}

/// `LIKE` with `\` escaping, so a namespace's `_` is no wildcard.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl AuditReader {
    /// Opens the database `Audit::open` made, read-only; `separator` joins a namespace and a tool.
    pub fn open(path: &Path, separator: &str) -> Result<Self, AuditError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| AuditError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
            separator: separator.to_owned(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `WHERE` clause of `f` and its parameters.
    fn clause(&self, f: &AuditFilter) -> (String, Vec<Sql>) {
        let mut terms = vec!["1 = 1".to_owned()];
        let mut params = Vec::new();
        let mut eq = |column: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                terms.push(format!("{column} = ?"));
                params.push(Sql::Text(v.to_owned()));
            }
        };
        eq("identity", &f.identity);
        eq("tool", &f.tool);
        eq("decision", &f.decision);
        eq("status", &f.status);
        if let Some(ns) = f.namespace.as_deref().filter(|v| !v.is_empty()) {
            terms.push("tool LIKE ? ESCAPE '\\'".to_owned());
            params.push(Sql::Text(like_prefix(&format!("{ns}{}", self.separator))));
        }
        if let Some(from) = f.from {
            terms.push("ts >= ?".to_owned());
            params.push(Sql::Real(from));
        }
        if let Some(to) = f.to {
            terms.push("ts < ?".to_owned());
            params.push(Sql::Real(to));
        }
        (terms.join(" AND "), params)
    }

    /// The rows `f` selects, newest first, `limit` from `offset`, and how many it selects in all.
    pub fn search(
        &self,
        f: &AuditFilter,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<AuditRow>, u64), AuditError> {
        let (clause, params) = self.clause(f);
        let conn = self.conn();
        let total: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM audit WHERE {clause}"),
                params_from_iter(params.iter()),
                |r| r.get(0),
            )
            .map_err(AuditError::Query)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, ts, identity, tool, arguments, decision, status, duration_ms, correlation_id, error, findings
                 FROM audit WHERE {clause} ORDER BY id DESC LIMIT {} OFFSET {}",
                limit.min(i64::MAX as u64),
                offset.min(i64::MAX as u64)
            ))
            .map_err(AuditError::Query)?;
        let rows = stmt
            .query_map(params_from_iter(params.iter()), |r| {
                Ok(AuditRow {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    identity: r.get(2)?,
                    tool: r.get(3)?,
                    arguments: r.get(4)?,
                    decision: r.get(5)?,
                    status: r.get(6)?,
                    duration_ms: r.get(7)?,
                    correlation_id: r.get(8)?,
                    error: r.get(9)?,
                    findings: r.get(10)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(AuditError::Query)?;
        Ok((rows, total.try_into().unwrap_or(0)))
    }

    /// Calls per identity and tool in `[from, to)`, busiest first.
    pub fn calls(&self, from: f64, to: f64) -> Result<Vec<CallCount>, AuditError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT identity, tool, COUNT(*), SUM(status = 'error' AND decision <> 'approval_pending'),
                        SUM(status = 'refused'), SUM(decision = 'approval_pending')
                 FROM audit WHERE ts >= ?1 AND ts < ?2
                 GROUP BY identity, tool ORDER BY COUNT(*) DESC, identity, tool",
            )
            .map_err(AuditError::Query)?;
        stmt.query_map(rusqlite::params![from, to], |r| {
            let n = |i| r.get::<_, i64>(i).map(|v| v.try_into().unwrap_or(0));
            Ok(CallCount {
                identity: r.get(0)?,
                tool: r.get(1)?,
                calls: n(2)?,
                errors: n(3)?,
                refused: n(4)?,
                pending_approval: n(5)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(AuditError::Query)
    }

    /// Denials and rate-limit refusals per identity in `[from, to)`.
    pub fn refusals(&self, from: f64, to: f64) -> Result<Vec<Refusal>, AuditError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT identity, decision, COUNT(*) FROM audit
                 WHERE ts >= ?1 AND ts < ?2 AND decision IN ('deny', 'rate_limited')
                 GROUP BY identity, decision ORDER BY identity, decision",
            )
            .map_err(AuditError::Query)?;
        stmt.query_map(rusqlite::params![from, to], |r| {
            Ok(Refusal {
                identity: r.get(0)?,
                decision: r.get(1)?,
                count: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(AuditError::Query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_prefix_matches_literally() {
        assert_eq!(like_prefix("my_ns_"), "my\\_ns\\_%");
        assert_eq!(like_prefix("a%b"), "a\\%b%");
    }
}
