//! The audit log: one record per `tools/call`, allowed or not, in SQLite (WAL) and as a JSON log line.
//! Records are written by one background thread in batches, so a call never waits on the disk.
//! Arguments and error texts pass the shared redactor (`mcp_runtime::redact`: secret keys, secret
//! contents, file contents as length + SHA-256) before anything is stored or logged.

mod query;

pub use query::{AuditFilter, AuditReader, AuditRow, CallCount, Refusal};

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;
use serde_json::{Map, Value};

/// Longest redacted-arguments JSON stored per record.
const MAX_ARGS_CHARS: usize = 4096;
/// Replacement for redacted values.
pub const REDACTED: &str = mcp_runtime::redact::MASK;

/// One audited call.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub identity: String,
    pub tool: String,
    /// Arguments with secret-looking fields redacted, as JSON (bounded).
    pub arguments: String,
    /// `allow`, `deny`, `approve`, `rate_limited`, `unavailable`, `unknown_tool`.
    pub decision: String,
    /// `success`, `error`, `refused`.
    pub status: String,
    pub duration_ms: f64,
    pub correlation_id: String,
    /// Short error text for failed or refused calls.
    pub error: Option<String>,
    /// What the guardrails found (`guard`): secrets masked in the result, scanner findings in a
    /// result or a definition, and what was done about them.
    pub findings: Option<String>,
    /// What the row is about, for `mcp_audit_rows_total{source}`: `call` (a client's `tools/call`),
    /// `step` (a workflow step's call), `approval` (a decision made through the HTTP API),
    /// `route` (a route change master made itself: a rollback, a config reload), `pin` (a
    /// definition pinned, changed, held, accepted or rejected) or `console` (a run resumed or
    /// cancelled in the console).
    #[serde(skip)]
    pub source: &'static str,
}

impl AuditRecord {
    /// A row about something master did or decided itself (a route change, a pin), not a call:
    /// no duration, no correlation id; set `error` and `findings` on it as needed.
    pub fn event(
        identity: &str,
        tool: String,
        arguments: String,
        decision: &str,
        status: &str,
        source: &'static str,
    ) -> Self {
        Self {
            identity: identity.to_owned(),
            tool,
            arguments,
            decision: decision.to_owned(),
            status: status.to_owned(),
            duration_ms: 0.0,
            correlation_id: String::new(),
            error: None,
            findings: None,
            source,
        }
    }
}

/// Errors opening the audit store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("cannot open audit database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot read the audit database: {0}")]
    Query(rusqlite::Error),
    #[error("cannot create directory for audit database {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// Handle to the audit writer.
#[derive(Clone)]
pub struct Audit {
    /// Each record with the time it was recorded (Unix seconds), which is its row's `ts` however
    /// late the store takes it.
    tx: mpsc::Sender<(f64, AuditRecord)>,
    rows: prometheus::IntCounterVec,
    /// Also log every row as an `Audit.` JSON line at info (`master.audit_log`); else at debug.
    log_lines: bool,
    state: Arc<WriterState>,
}

/// What the writer reports while the store cannot be written (a full disk, a read-only file):
/// the error, and how many rows wait in memory to be written when it can be again.
#[derive(Debug, Default)]
struct WriterState {
    /// Read on every call: whether `failing` holds an error (so the lock is taken only then).
    is_failing: AtomicBool,
    failing: Mutex<Option<String>>,
    pending: AtomicUsize,
}

/// Rows kept in memory while the store cannot be written; past this, the oldest are lost (and
/// counted `lost`). Calls are refused meanwhile (unless `master.audit_fail_open`), so only the
/// refusals' own rows pile up.
const MAX_PENDING: usize = 100_000;
/// How long the writer waits before it tries a failed store again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// How long the writer lets rows gather before committing them in one transaction.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// Copies `v` with its secrets masked (the shared redactor: keys and contents).
pub fn redact(v: &Value) -> Value {
    mcp_runtime::redact::json(v)
}

/// Redacted, size-bounded JSON text of tool arguments.
pub fn redacted_args(args: Option<&Map<String, Value>>) -> String {
    let v = args.map_or(Value::Null, |m| redact(&Value::Object(m.clone())));
    let mut s = v.to_string();
    if s.len() > MAX_ARGS_CHARS {
        let mut cut = MAX_ARGS_CHARS;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("…[truncated]");
    }
    s
}

impl Audit {
    /// Opens (or creates) the database and starts the writer thread. `rows` counts the rows by
    /// `source` and `outcome` (`written` once committed, `failed`, `lost`): audit coverage is
    /// written `call` rows ÷ master's `mcp_tool_calls_total`.
    pub fn open(
        path: &Path,
        rows: prometheus::IntCounterVec,
        log_lines: bool,
    ) -> Result<Self, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AuditError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let shown = path.display().to_string();
        let open_err = |source| AuditError::Open {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts REAL NOT NULL,
                identity TEXT NOT NULL,
                tool TEXT NOT NULL,
                arguments TEXT NOT NULL,
                decision TEXT NOT NULL,
                status TEXT NOT NULL,
                duration_ms REAL NOT NULL,
                correlation_id TEXT NOT NULL,
                error TEXT,
                findings TEXT
             );
             CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
             CREATE INDEX IF NOT EXISTS audit_identity ON audit(identity);
             CREATE INDEX IF NOT EXISTS audit_correlation ON audit(correlation_id);",
        )
        .map_err(open_err)?;
        // Databases made before the guardrails have no `findings` column.
        let has_findings = conn
            .prepare("SELECT 1 FROM pragma_table_info('audit') WHERE name = 'findings'")
            .and_then(|mut s| s.exists([]))
            .map_err(open_err)?;
        if !has_findings {
            conn.execute_batch("ALTER TABLE audit ADD COLUMN findings TEXT;")
                .map_err(open_err)?;
        }
        let (tx, rx) = mpsc::channel::<(f64, AuditRecord)>();
        let counted = rows.clone();
        let state = Arc::new(WriterState::default());
        let shared = state.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(conn, rx, &counted, &shared))
            .map_err(|source| AuditError::Dir {
                path: shown.clone(),
                source,
            })?;
        Ok(Self {
            tx,
            rows,
            log_lines,
            state,
        })
    }

    /// Why the store cannot be written right now (rows wait in memory), or `None` when it can.
    pub fn failing(&self) -> Option<String> {
        if !self.state.is_failing.load(Ordering::Acquire) {
            return None;
        }
        self.state
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Rows waiting in memory for the store.
    pub fn pending(&self) -> usize {
        self.state.pending.load(Ordering::Relaxed)
    }

    /// Records one call: a database row within milliseconds (and an `Audit.` log line, at info
    /// with `master.audit_log`, else at debug).
    pub fn record(&self, mut r: AuditRecord) {
        if let Some(e) = &r.error
            && let std::borrow::Cow::Owned(masked) = mcp_runtime::redact::text(e)
        {
            r.error = Some(masked);
        }
        // One event, at info with `master.audit_log`, else at debug.
        macro_rules! audit_line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    message = "Audit.",
                    audit = true,
                    identity = %r.identity,
                    tool = %r.tool,
                    arguments = %r.arguments,
                    decision = %r.decision,
                    status = %r.status,
                    duration_ms = r.duration_ms,
                    error = r.error.as_deref().unwrap_or(""),
                    findings = r.findings.as_deref().unwrap_or(""),
                )
            };
        }
        if self.log_lines {
            audit_line!(tracing::Level::INFO);
        } else {
            audit_line!(tracing::Level::DEBUG);
        }
        let source = r.source;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        if self.tx.send((now, r)).is_err() {
            self.rows.with_label_values(&[source, "lost"]).inc();
            tracing::error!(message = "Audit writer is gone; record lost.");
        }
    }
}

fn writer(
    mut conn: Connection,
    rx: mpsc::Receiver<(f64, AuditRecord)>,
    rows: &prometheus::IntCounterVec,
    state: &WriterState,
) {
    // Rows not yet in the store: a failed batch stays here and is written again, whole, when the
    // store can be written (one transaction: never a part of a batch).
    let mut pending: Vec<(f64, AuditRecord)> = Vec::new();
    // How many of `pending` (from the front) are already counted `failed`: each row is counted
    // `failed` once, at the first write that could not take it, and `written` when one does.
    let mut counted_failed: usize = 0;
    loop {
        if pending.is_empty() {
            let Ok(first) = rx.recv() else { return };
            // Let a batch gather without being woken for every record (senders only wake a
            // thread blocked in `recv`), then write it in one transaction.
            std::thread::sleep(BATCH_WINDOW);
            pending.push(first);
        } else {
            // The store failed: try again a little later with what came in meanwhile.
            std::thread::sleep(RETRY_EVERY);
        }
        pending.extend(rx.try_iter().take(4096));
        if pending.len() > MAX_PENDING {
            let dropped = pending.len() - MAX_PENDING;
            for (_, r) in pending.drain(..dropped) {
                rows.with_label_values(&[r.source, "lost"]).inc();
            }
            counted_failed = counted_failed.saturating_sub(dropped);
        }
        match write_batch(&mut conn, &pending) {
            Ok(()) => {
                let was = state
                    .failing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                state.is_failing.store(false, Ordering::Release);
                if was.is_some() {
                    tracing::warn!(message = "Audit writes resumed.", written = pending.len());
                }
                for (_, r) in pending.drain(..) {
                    rows.with_label_values(&[r.source, "written"]).inc();
                }
                counted_failed = 0;
            }
            Err(error) => {
                let mut failing = state
                    .failing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if failing.is_none() {
                    tracing::error!(
                        message = "Audit write failed; rows are kept in memory and written when the store can be written again.",
                        %error,
                        pending = pending.len(),
                    );
                }
                *failing = Some(error.to_string());
                state.is_failing.store(true, Ordering::Release);
                for (_, r) in &pending[counted_failed..] {
                    rows.with_label_values(&[r.source, "failed"]).inc();
                }
                counted_failed = pending.len();
            }
        }
        state.pending.store(pending.len(), Ordering::Relaxed);
    }
}

/// Writes `batch` in one transaction: all of it or nothing.
fn write_batch(conn: &mut Connection, batch: &[(f64, AuditRecord)]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO audit (ts, identity, tool, arguments, decision, status, duration_ms, correlation_id, error, findings)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (ts, r) in batch {
            stmt.execute(rusqlite::params![
                ts,
                r.identity,
                r.tool,
                r.arguments,
                r.decision,
                r.status,
                r.duration_ms,
                r.correlation_id,
                r.error,
                r.findings
            ])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_is_recursive_and_keeps_shape() {
        let v = json!({"host": "a", "password": "hunter2", "nested": {"apiKey": "k", "list": [{"token": "t", "n": 1}]}});
        let r = redact(&v);
        assert_eq!(r["host"], "a");
        assert_eq!(r["password"], REDACTED);
        assert_eq!(r["nested"]["apiKey"], REDACTED);
        assert_eq!(r["nested"]["list"][0]["token"], REDACTED);
        assert_eq!(r["nested"]["list"][0]["n"], 1);
        assert!(!r.to_string().contains("hunter2"));
    }

    #[test]
    fn records_reach_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/audit.sqlite");
        let rows = crate::metrics::audit_rows().unwrap();
        let audit = Audit::open(&path, rows.clone(), false).unwrap();
        for i in 0..10 {
            audit.record(AuditRecord {
                identity: "alice".into(),
                tool: format!("cmdb_t{i}"),
                arguments: redacted_args(json!({"secret": "canary-123"}).as_object()),
                decision: "allow".into(),
                status: "success".into(),
                duration_ms: 1.0,
                correlation_id: "c".into(),
                error: None,
                findings: None,
                source: "call",
            });
        }
        let conn = Connection::open(&path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let n: i64 = conn
                .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
                .unwrap();
            if n == 10 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "only {n} rows");
            std::thread::sleep(Duration::from_millis(10));
        }
        let leaked: i64 = conn
            .query_row(
                "SELECT count(*) FROM audit WHERE arguments LIKE '%canary-123%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leaked, 0);
        // Counted once committed, by source.
        let written = rows.with_label_values(&["call", "written"]);
        while written.get() < 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "counted {}",
                written.get()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(written.get(), 10);
        assert_eq!(rows.with_label_values(&["call", "failed"]).get(), 0);
    }
}
