//! The checkpoint store: one SQLite database (WAL, `synchronous=FULL`) with a row per run and a
//! row per step. Every step transition is committed before the engine's next action, so a
//! restarted master knows exactly which steps completed, which were in flight and which never
//! started.
//!
//! Writes go to one writer thread that commits whatever transitions are waiting in one
//! transaction (group commit: one fsync for many runs, each write in its own savepoint); a caller
//! continues only once its write is durable. The async workers never block on an fsync. Reads use
//! their own connection (WAL readers do not wait for the writer).

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

/// Which runs [`Store::list`] returns: each `Some` narrows the list.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFilter<'a> {
    pub status: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub workflow: Option<&'a str>,
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
    #[error("workflow store: {0}")]
    Writer(String),
}

type Write = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

/// One write waiting for the writer thread.
struct Job {
    write: Write,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// The store.
pub struct Store {
    jobs: std::sync::mpsc::Sender<Job>,
    db: Mutex<Connection>,
    /// Called with the seconds each write waited until it was durable.
    observe: Box<dyn Fn(f64) + Send + Sync>,
}

/// Most writes one transaction takes.
const MAX_BATCH: usize = 512;

/// Commits batches of writes until every sender is gone.
fn writer(
    mut conn: Connection,
    jobs: std::sync::mpsc::Receiver<Job>,
    batched: Box<dyn Fn(usize) + Send>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        batched(batch.len());
        let mut results = Vec::with_capacity(batch.len());
        let mut dones = Vec::with_capacity(batch.len());
        let committed = (|| -> rusqlite::Result<()> {
            let mut tx = conn.transaction()?;
            for job in batch {
                dones.push(job.done);
                let mut sp = tx.savepoint()?;
                match (job.write)(&sp) {
                    Ok(()) => {
                        sp.commit()?;
                        results.push(Ok(()));
                    }
                    Err(e) => {
                        sp.rollback()?;
                        results.push(Err(e.to_string()));
                    }
                }
            }
            tx.commit()
        })();
        for (i, done) in dones.into_iter().enumerate() {
            let r = match &committed {
                Ok(()) => results
                    .get(i)
                    .cloned()
                    .unwrap_or(Ok(()))
                    .map_err(StoreError::Writer),
                Err(e) => Err(StoreError::Writer(format!("commit failed: {e}"))),
            };
            let _ = done.send(r);
        }
    }
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

/// Text as stored: secrets masked.
fn masked_text(s: &str) -> String {
    mcp_runtime::redact::text(s).into_owned()
}

/// A definition as stored: secrets inside literal strings masked, keys, structure and templates
/// (`{{ … }}`) kept, since they are the run's code; a definition that had to be masked cannot resume (see `restore`).
fn stored_definition(definition: &str) -> String {
    match serde_json::from_str::<Value>(definition) {
        Ok(v) => mcp_runtime::redact::strings(&v, &|s| s.contains("{{")).to_string(),
        Err(_) => masked_text(definition),
    }
}

impl Store {
    /// Opens (or creates) the store. `observe` hears how long each write waited until durable,
    /// `batched` how many writes each transaction (one fsync) committed.
    pub fn open(
        path: &Path,
        observe: Box<dyn Fn(f64) + Send + Sync>,
        batched: Box<dyn Fn(usize) + Send>,
    ) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let writer_conn = Connection::open(path).map_err(open_err)?;
        writer_conn.execute_batch(
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
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch("PRAGMA busy_timeout=5000;")
            .map_err(open_err)?;
        let (jobs, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("workflow-store".to_owned())
            .spawn(move || writer(writer_conn, rx, batched))
            .map_err(|e| StoreError::Writer(e.to_string()))?;
        Ok(Self {
            jobs,
            db: Mutex::new(conn),
            observe,
        })
    }

    /// Hands a write to the writer thread and waits until it is committed.
    async fn write(&self, write: Write) -> Result<(), StoreError> {
        let started = Instant::now();
        let (done, wait) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job { write, done })
            .map_err(|_| StoreError::Writer("the writer thread stopped".to_owned()))?;
        let r = wait
            .await
            .map_err(|_| StoreError::Writer("the writer thread stopped".to_owned()))?;
        (self.observe)(started.elapsed().as_secs_f64());
        r
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new run with all its steps pending.
    pub async fn insert_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let run = run.clone();
        let roles = serde_json::to_string(&run.owner_roles)?;
        self.write(Box::new(move |c| {
            c.execute(
                "INSERT INTO runs (run_id, workflow, status, owner, owner_roles, definition, inputs, correlation_id, error, created, updated, finished)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    run.run_id,
                    run.workflow,
                    run.status,
                    run.owner,
                    roles,
                    stored_definition(&run.definition),
                    mcp_runtime::redact::json(&run.inputs).to_string(),
                    run.correlation_id,
                    run.error.as_deref().map(masked_text),
                    run.created,
                    run.updated,
                    run.finished
                ],
            )?;
            for (seq, s) in run.steps.iter().enumerate() {
                c.execute(
                    &format!("INSERT INTO steps (run_id, seq, {STEP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11)"),
                    params![run.run_id, seq as i64, s.id, s.tool, s.status, s.attempts, s.started, s.finished, s.withheld, s.error, s.approval_id],
                )?;
            }
            Ok(())
        }))
        .await
    }

    /// Commits one step transition, and the run's status when it changes with it.
    pub async fn checkpoint(
        &self,
        run_id: &str,
        step: &StepRecord,
        run_status: Option<(&str, Option<&str>)>,
    ) -> Result<(), StoreError> {
        let result = if step.withheld || step.result.is_null() {
            None
        } else {
            Some(mcp_runtime::redact::document(&step.result).to_string())
        };
        let (run_id, mut step) = (run_id.to_owned(), step.clone());
        step.error = step.error.as_deref().map(masked_text);
        let run_status = run_status.map(|(s, e)| (s.to_owned(), e.map(masked_text)));
        self.write(Box::new(move |c| {
            let now = now_ms();
            c.execute(
                "UPDATE steps SET status = ?3, attempts = ?4, started = ?5, finished = ?6, result = ?7, withheld = ?8, error = ?9, approval_id = ?10
                 WHERE run_id = ?1 AND step_id = ?2",
                params![run_id, step.id, step.status, step.attempts, step.started, step.finished, result, step.withheld, step.error, step.approval_id],
            )?;
            match run_status {
                Some((status, error)) => c.execute(
                    "UPDATE runs SET status = ?2, error = ?3, updated = ?4 WHERE run_id = ?1",
                    params![run_id, status, error, now],
                )?,
                None => c.execute(
                    "UPDATE runs SET updated = ?2 WHERE run_id = ?1",
                    params![run_id, now],
                )?,
            };
            Ok(())
        }))
        .await
    }

    /// Sets a run's status (and error); terminal statuses also set `finished`.
    pub async fn set_run_status(
        &self,
        run_id: &str,
        status: &str,
        error: Option<&str>,
        terminal: bool,
    ) -> Result<(), StoreError> {
        let (run_id, status, error) =
            (run_id.to_owned(), status.to_owned(), error.map(masked_text));
        self.write(Box::new(move |c| {
            c.execute(
                "UPDATE runs SET status = ?2, error = ?3, updated = ?4, finished = CASE WHEN ?5 THEN ?4 ELSE NULL END WHERE run_id = ?1",
                params![run_id, status, error, now_ms(), terminal],
            )?;
            Ok(())
        }))
        .await
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

    /// Runs newest first (without steps), optionally of one status, owner and/or workflow.
    pub fn list(&self, filter: &RunFilter<'_>, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR owner = ?2) AND (?3 IS NULL OR workflow = ?3) ORDER BY created DESC, rowid DESC LIMIT ?4",
            Self::RUN_COLUMNS
        ))?;
        let rows = stmt.query_map(
            params![filter.status, filter.owner, filter.workflow, limit as i64],
            Self::run_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How the runs created in `[from, to)` (unix milliseconds) stand, by status.
    pub fn outcomes(&self, from: i64, to: i64) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT status, COUNT(*) FROM runs WHERE created >= ?1 AND created < ?2 GROUP BY status ORDER BY status",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?.try_into().unwrap_or(0),
            ))
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, steps: usize) -> RunRecord {
        RunRecord {
            run_id: id.to_owned(),
            workflow: "w".to_owned(),
            status: "running".to_owned(),
            owner: "alice".to_owned(),
            owner_roles: vec!["approver".to_owned()],
            definition: "{}".to_owned(),
            inputs: serde_json::json!({"n": 1}),
            correlation_id: "c".to_owned(),
            error: None,
            created: now_ms(),
            updated: now_ms(),
            finished: None,
            steps: (0..steps)
                .map(|i| StepRecord::new(&format!("s{i}"), "ns_tool"))
                .collect(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_are_grouped_and_all_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wf.sqlite");
        let batches = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = batches.clone();
        let store = std::sync::Arc::new(
            Store::open(
                &path,
                Box::new(|_| {}),
                Box::new(move |n| seen.lock().unwrap().push(n)),
            )
            .unwrap(),
        );
        let mut tasks = Vec::new();
        for r in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("run-{r}");
                store.insert_run(&run(&id, 3)).await.unwrap();
                for i in 0..3 {
                    let mut s = StepRecord::new(&format!("s{i}"), "ns_tool");
                    s.status = "completed".to_owned();
                    s.attempts = 1;
                    s.result = serde_json::json!({"i": i, "run": r});
                    store.checkpoint(&id, &s, None).await.unwrap();
                }
                store
                    .set_run_status(&id, "completed", None, true)
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 250 writes (50 × insert, 3 checkpoints, status), committed in fewer transactions: the
        // writes that queue while one transaction is fsynced share the next one.
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 250, "{batches:?}");
        assert!(
            batches.len() < 250 && batches.iter().any(|&n| n > 1),
            "writes were not grouped: {batches:?}"
        );
        // A failing write (a duplicate run id) fails alone.
        assert!(store.insert_run(&run("run-0", 1)).await.is_err());
        drop(store);
        // Everything is on disk: a fresh store reads it back.
        let store = Store::open(&path, Box::new(|_| {}), Box::new(|_| {})).unwrap();
        assert_eq!(store.count("completed"), 50);
        let r = store.get("run-7").unwrap().unwrap();
        assert_eq!(r.owner_roles, ["approver"]);
        assert_eq!(r.steps.len(), 3);
        assert!(r.finished.is_some());
        assert_eq!(r.steps[2].result, serde_json::json!({"i": 2, "run": 7}));
        assert!(store.active().unwrap().is_empty());
    }

    #[tokio::test]
    async fn withheld_results_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wf.sqlite");
        let store = Store::open(&path, Box::new(|_| {}), Box::new(|_| {})).unwrap();
        store.insert_run(&run("r", 1)).await.unwrap();
        let mut s = StepRecord::new("s0", "secrets_getSecret");
        s.status = "completed".to_owned();
        s.withheld = true;
        s.result = serde_json::json!({"value": "canary-in-the-store-3141"});
        store.checkpoint("r", &s, None).await.unwrap();
        let back = store.get("r").unwrap().unwrap();
        assert_eq!(back.steps[0].result, Value::Null);
        assert!(back.steps[0].withheld);
        drop(store);
        for f in std::fs::read_dir(dir.path()).unwrap() {
            // The writer may still be closing: its -wal and -shm files can vanish meanwhile.
            let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
            assert!(!String::from_utf8_lossy(&bytes).contains("canary-in-the-store-3141"));
        }
    }
}
