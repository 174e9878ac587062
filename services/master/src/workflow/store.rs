//! The checkpoint store: one SQLite database (WAL, `synchronous=FULL`) with a row per run and a
//! row per step. Every step transition is one committed transaction before the engine's next
//! action, so a restarted master knows exactly which steps completed, which were in flight and
//! which never started.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

/// A run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub workflow: String,
    /// pending, running, waiting_approval, needs_attention, completed, failed, cancelled.
    pub status: String,
    pub owner: String,
    #[serde(skip)]
    pub owner_roles: Vec<String>,
    #[serde(skip)]
    pub definition: String,
    pub inputs: Value,
    pub correlation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix milliseconds.
    pub created: i64,
    pub updated: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    pub steps: Vec<StepRecord>,
}

/// A step as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepRecord {
    pub id: String,
    /// Canonical wire name of the tool.
    pub tool: String,
    /// pending, running, waiting_approval, completed, failed, skipped, cancelled.
    pub status: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    /// The step's result; `null` while it has none. A secret result is never stored: `withheld`.
    pub result: Value,
    pub withheld: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
}

impl StepRecord {
    pub fn new(id: &str, tool: &str) -> Self {
        Self {
            id: id.to_owned(),
            tool: tool.to_owned(),
            status: "pending".to_owned(),
            attempts: 0,
            started: None,
            finished: None,
            result: Value::Null,
            withheld: false,
            error: None,
            approval_id: None,
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("workflow store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("workflow store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("workflow store: {0}")]
    Json(#[from] serde_json::Error),
}

/// The store.
pub struct Store {
    db: Mutex<Connection>,
    /// Called with the seconds each checkpoint took.
    observe: Box<dyn Fn(f64) + Send + Sync>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

const STEP_COLUMNS: &str =
    "step_id, tool, status, attempts, started, finished, result, withheld, error, approval_id";

fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StepRecord> {
    let result: Option<String> = r.get(6)?;
    Ok(StepRecord {
        id: r.get(0)?,
        tool: r.get(1)?,
        status: r.get(2)?,
        attempts: r.get(3)?,
        started: r.get(4)?,
        finished: r.get(5)?,
        result: result
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null),
        withheld: r.get(7)?,
        error: r.get(8)?,
        approval_id: r.get(9)?,
    })
}

impl Store {
    pub fn open(path: &Path, observe: Box<dyn Fn(f64) + Send + Sync>) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS runs (
               run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL,
               owner TEXT NOT NULL, owner_roles TEXT NOT NULL, definition TEXT NOT NULL,
               inputs TEXT NOT NULL, correlation_id TEXT NOT NULL, error TEXT,
               created INTEGER NOT NULL, updated INTEGER NOT NULL, finished INTEGER);
             CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
             CREATE TABLE IF NOT EXISTS steps (
               run_id TEXT NOT NULL, seq INTEGER NOT NULL, step_id TEXT NOT NULL, tool TEXT NOT NULL,
               status TEXT NOT NULL, attempts INTEGER NOT NULL, started INTEGER, finished INTEGER,
               result TEXT, withheld INTEGER NOT NULL, error TEXT, approval_id TEXT,
               PRIMARY KEY (run_id, step_id));",
        )
        .map_err(open_err)?;
        Ok(Self {
            db: Mutex::new(conn),
            observe,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new run with all its steps pending.
    pub fn insert_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO runs (run_id, workflow, status, owner, owner_roles, definition, inputs, correlation_id, error, created, updated, finished)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                run.run_id,
                run.workflow,
                run.status,
                run.owner,
                serde_json::to_string(&run.owner_roles)?,
                run.definition,
                run.inputs.to_string(),
                run.correlation_id,
                run.error,
                run.created,
                run.updated,
                run.finished
            ],
        )?;
        for (seq, s) in run.steps.iter().enumerate() {
            tx.execute(
                &format!("INSERT INTO steps (run_id, seq, {STEP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11)"),
                params![run.run_id, seq as i64, s.id, s.tool, s.status, s.attempts, s.started, s.finished, s.withheld, s.error, s.approval_id],
            )?;
        }
        tx.commit()?;
        (self.observe)(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Commits one step transition, and the run's status when it changes with it.
    pub fn checkpoint(
        &self,
        run_id: &str,
        step: &StepRecord,
        run_status: Option<(&str, Option<&str>)>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = if step.withheld || step.result.is_null() {
            None
        } else {
            Some(step.result.to_string())
        };
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE steps SET status = ?3, attempts = ?4, started = ?5, finished = ?6, result = ?7, withheld = ?8, error = ?9, approval_id = ?10
             WHERE run_id = ?1 AND step_id = ?2",
            params![run_id, step.id, step.status, step.attempts, step.started, step.finished, result, step.withheld, step.error, step.approval_id],
        )?;
        match run_status {
            Some((status, error)) => tx.execute(
                "UPDATE runs SET status = ?2, error = ?3, updated = ?4 WHERE run_id = ?1",
                params![run_id, status, error, now],
            )?,
            None => tx.execute(
                "UPDATE runs SET updated = ?2 WHERE run_id = ?1",
                params![run_id, now],
            )?,
        };
        tx.commit()?;
        (self.observe)(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Sets a run's status (and error); terminal statuses also set `finished`.
    pub fn set_run_status(
        &self,
        run_id: &str,
        status: &str,
        error: Option<&str>,
        terminal: bool,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let now = now_ms();
        self.conn().execute(
            "UPDATE runs SET status = ?2, error = ?3, updated = ?4, finished = CASE WHEN ?5 THEN ?4 ELSE NULL END WHERE run_id = ?1",
            params![run_id, status, error, now, terminal],
        )?;
        (self.observe)(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
        let roles: String = r.get(4)?;
        let inputs: String = r.get(6)?;
        Ok(RunRecord {
            run_id: r.get(0)?,
            workflow: r.get(1)?,
            status: r.get(2)?,
            owner: r.get(3)?,
            owner_roles: serde_json::from_str(&roles).unwrap_or_default(),
            definition: r.get(5)?,
            inputs: serde_json::from_str(&inputs).unwrap_or(Value::Null),
            correlation_id: r.get(7)?,
            error: r.get(8)?,
            created: r.get(9)?,
            updated: r.get(10)?,
            finished: r.get(11)?,
            steps: Vec::new(),
        })
    }

    const RUN_COLUMNS: &'static str = "run_id, workflow, status, owner, owner_roles, definition, inputs, correlation_id, error, created, updated, finished";

    fn steps_of(conn: &Connection, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map(params![run_id], step_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One run with its steps.
    pub fn get(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let conn = self.conn();
        let run = conn
            .query_row(
                &format!("SELECT {} FROM runs WHERE run_id = ?1", Self::RUN_COLUMNS),
                params![run_id],
                Self::run_from_row,
            )
            .optional()?;
        match run {
            Some(mut r) => {
                r.steps = Self::steps_of(&conn, run_id)?;
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }

    /// Runs newest first (without steps), optionally of one status and/or owner.
    pub fn list(
        &self,
        status: Option<&str>,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR owner = ?2) ORDER BY created DESC, rowid DESC LIMIT ?3",
            Self::RUN_COLUMNS
        ))?;
        let rows = stmt.query_map(params![status, owner, limit as i64], Self::run_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Runs a restarted master picks up again: running or waiting for an approval.
    pub fn active(&self) -> Result<Vec<RunRecord>, StoreError> {
        let ids: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT run_id FROM runs WHERE status IN ('running', 'waiting_approval') ORDER BY created",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.get(&id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Counts runs by status (for the gauges after a restart).
    pub fn count(&self, status: &str) -> i64 {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM runs WHERE status = ?1",
                params![status],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }
}
