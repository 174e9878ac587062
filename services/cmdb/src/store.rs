//! The host inventory: a CSV file loaded into an in-memory SQLite database with indexes, replaced
//! atomically on reload. A reload that cannot read the file keeps the last good data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use mcp_runtime::files::FileStamp;
use rusqlite::{Connection, params_from_iter};
use serde::Serialize;
use serde_json::{Map, Value};

/// Columns every CMDB CSV may have; `name` is required. Other columns are kept as extra attributes.
pub const COLUMNS: &[&str] = &[
    "name",
    "fqdn",
    "ip",
    "environment",
    "role",
    "ci_type",
    "os",
    "owner",
    "ssh_user",
    "ssh_port",
    "location",
    "tags",
    "description",
];

/// Columns searched by free text.
const TEXT_COLUMNS: &[&str] = &[
    "name",
    "fqdn",
    "ip",
    "environment",
    "role",
    "ci_type",
    "os",
    "owner",
    "location",
    "tags",
    "description",
];

/// Errors of the inventory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("unknown field `{field}`; valid fields: {valid}")]
    UnknownField { field: String, valid: String },
}

/// A CSV row that was not loaded, with the reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowIssue {
    /// 1-based line number in the CSV file.
    pub line: u64,
    pub reason: String,
}

/// One loaded version of the inventory.
struct Snapshot {
    conn: Mutex<Connection>,
    hosts: usize,
    extra_columns: Vec<String>,
    issues: Vec<RowIssue>,
    loaded_at: SystemTime,
    fingerprint: Option<FileStamp>,
}

/// What the last reload attempt did, for health.
#[derive(Debug, Clone, Default)]
struct ReloadState {
    last_error: Option<String>,
    /// File version whose load failed, so it is not parsed again on every tick.
    failed_fingerprint: Option<FileStamp>,
    reloads: u64,
}

/// The inventory, safe to share between sessions.
pub struct Store {
    path: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    state: RwLock<ReloadState>,
}

/// Search parameters, already validated by the tool layer.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// Exact (case-insensitive) matches by column; `tags` matches one tag.
    pub filters: BTreeMap<String, String>,
    /// Free text matched (case-insensitive substring) against the text columns.
    pub text: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// One page of hosts.
#[derive(Debug, Serialize)]
pub struct Page {
    pub total: usize,
    pub offset: usize,
    pub count: usize,
    pub hosts: Vec<Map<String, Value>>,
}

/// Health-relevant facts about the inventory.
#[derive(Debug, Serialize)]
pub struct StoreStatus {
    pub path: String,
    pub hosts: usize,
    pub invalid_rows: Vec<RowIssue>,
    pub loaded_at_unix: f64,
    pub reloads: u64,
    pub last_reload_error: Option<String>,
}

fn fingerprint(path: &Path) -> Option<FileStamp> {
    FileStamp::of(path).ok()
}

impl Store {
    /// Loads `path`. A missing or unreadable file is an error here: at startup there is no last good data.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let snapshot = load(path)?;
        log_issues(path, &snapshot.issues);
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(snapshot)),
            state: RwLock::new(ReloadState::default()),
        })
    }

    /// Loads CSV text that is not backed by a file (the embedded sample). Never reloads.
    pub fn from_text(text: &str, origin: &str) -> Result<Self, StoreError> {
        let snapshot = load_text(text, origin, None)?;
        log_issues(Path::new(origin), &snapshot.issues);
        Ok(Self {
            path: PathBuf::from(origin),
            current: RwLock::new(Arc::new(snapshot)),
            state: RwLock::new(ReloadState::default()),
        })
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads when the file's modification time or size changed. Returns whether data was replaced.
    pub fn reload_if_changed(&self) -> bool {
        let old = self.snapshot();
        if old.fingerprint.is_none() {
            // Embedded data: nothing to watch.
            return false;
        }
        let now = fingerprint(&self.path);
        if now.is_none() {
            self.record_error(
                format!(
                    "{} is missing; serving the last good data",
                    self.path.display()
                ),
                None,
            );
            return false;
        }
        let already_failed = self
            .state
            .read()
            .map(|s| s.failed_fingerprint == now)
            .unwrap_or(false);
        if now == old.fingerprint || already_failed {
            return false;
        }
        match load(&self.path) {
            Ok(snapshot) => {
                log_issues(&self.path, &snapshot.issues);
                tracing::info!(
                    message = "CMDB reloaded.",
                    path = %self.path.display(),
                    hosts = snapshot.hosts,
                    invalid_rows = snapshot.issues.len()
                );
                if let Ok(mut cur) = self.current.write() {
                    *cur = Arc::new(snapshot);
                }
                if let Ok(mut st) = self.state.write() {
                    st.last_error = None;
                    st.failed_fingerprint = None;
                    st.reloads += 1;
                }
                true
            }
            Err(e) => {
                self.record_error(format!("{e}; serving the last good data"), now);
                false
            }
        }
    }

    fn record_error(&self, message: String, failed: Option<FileStamp>) {
        if let Ok(mut st) = self.state.write() {
            st.failed_fingerprint = failed;
            if st.last_error.as_deref() != Some(message.as_str()) {
                tracing::warn!(message = "CMDB reload failed.", error = %message);
            }
            st.last_error = Some(message);
        }
    }

    /// Facts for `/health`.
    pub fn status(&self) -> StoreStatus {
        let snap = self.snapshot();
        let state = self.state.read().map(|s| s.clone()).unwrap_or_default();
        StoreStatus {
            path: self.path.display().to_string(),
            hosts: snap.hosts,
            invalid_rows: snap.issues.clone(),
            loaded_at_unix: snap
                .loaded_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
            reloads: state.reloads,
            last_reload_error: state.last_error,
        }
    }

    /// Every column name a filter or projection may use (fixed columns plus extra CSV columns).
    pub fn fields(&self) -> Vec<String> {
        let snap = self.snapshot();
        COLUMNS
            .iter()
            .map(|c| (*c).to_owned())
            .chain(snap.extra_columns.iter().cloned())
            .collect()
    }

    /// Checks projection/filter field names against the known columns.
    pub fn check_fields<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), StoreError> {
        let valid = self.fields();
        for n in names {
            if !valid.iter().any(|v| v == n) {
                return Err(StoreError::UnknownField {
                    field: n.clone(),
                    valid: valid.join(", "),
                });
            }
        }
        Ok(())
    }

    /// Hosts matching `q`, ordered by name.
    pub fn search(&self, q: &Query) -> Result<Page, StoreError> {
        self.check_fields(q.filters.keys())?;
        let snap = self.snapshot();
        let mut clauses = Vec::new();
        let mut args: Vec<String> = Vec::new();
        for (col, val) in &q.filters {
            if col == "tags" {
                clauses.push("(';' || lower(tags) || ';') LIKE ? ESCAPE '\\'".to_owned());
                args.push(format!("%;{};%", escape_like(&val.to_lowercase())));
            } else if COLUMNS.contains(&col.as_str()) {
                clauses.push(format!("lower({col}) = lower(?)"));
                args.push(val.clone());
            } else {
                clauses.push("lower(json_extract(extra, ?)) = lower(?)".to_owned());
                args.push(format!("$.\"{}\"", col.replace('"', "")));
                args.push(val.clone());
            }
        }
        if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let like = format!("%{}%", escape_like(&text.to_lowercase()));
            let ors: Vec<String> = TEXT_COLUMNS
                .iter()
                .map(|c| format!("lower({c}) LIKE ? ESCAPE '\\'"))
                .chain(std::iter::once(
                    "lower(extra) LIKE ? ESCAPE '\\'".to_owned(),
                ))
                .collect();
            clauses.push(format!("({})", ors.join(" OR ")));
            for _ in 0..=TEXT_COLUMNS.len() {
                args.push(like.clone());
            }
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let conn = snap.conn.lock().unwrap_or_else(|p| p.into_inner());
        let total: i64 = conn.query_row(
            &format!("SELECT count(*) FROM hosts {where_sql}"),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let mut page_args = args.clone();
        page_args.push(q.limit.to_string());
        page_args.push(q.offset.to_string());
        let mut stmt = conn.prepare(&format!(
            "SELECT {} , extra FROM hosts {where_sql} ORDER BY name COLLATE NOCASE LIMIT CAST(? AS INTEGER) OFFSET CAST(? AS INTEGER)",
            COLUMNS.join(", ")
        ))?;
        let hosts = stmt
            .query_map(params_from_iter(page_args.iter()), row_to_host)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            total: usize::try_from(total).unwrap_or_default(),
            offset: q.offset,
            count: hosts.len(),
            hosts,
        })
    }

    /// The host whose name, FQDN or IP equals `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Result<Option<Map<String, Value>>, StoreError> {
        let snap = self.snapshot();
        let conn = snap.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare(&format!(
            "SELECT {}, extra FROM hosts WHERE lower(name) = lower(?1) OR lower(fqdn) = lower(?1) OR ip = ?1
             ORDER BY (lower(name) = lower(?1)) DESC LIMIT 1",
            COLUMNS.join(", ")
        ))?;
        let mut rows = stmt.query_map([key], row_to_host)?;
        Ok(rows.next().transpose()?)
    }

    /// Names of hosts similar to `key`, for "did you mean" hints.
    pub fn similar(&self, key: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let snap = self.snapshot();
        let conn = snap.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare(
            "SELECT name FROM hosts WHERE lower(name) LIKE ?1 ESCAPE '\\' OR lower(fqdn) LIKE ?1 ESCAPE '\\'
             ORDER BY name LIMIT ?2",
        )?;
        let like = format!("%{}%", escape_like(&key.to_lowercase()));
        let names = stmt
            .query_map(
                rusqlite::params![like, i64::try_from(limit).unwrap_or(5)],
                |r| r.get(0),
            )?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }

    /// Counts of hosts per value of `column` (a fixed column), most common first.
    pub fn counts(&self, column: &str) -> Result<Vec<(String, usize)>, StoreError> {
        if !COLUMNS.contains(&column) || column == "tags" {
            return Err(StoreError::UnknownField {
                field: column.to_owned(),
                valid: COLUMNS.join(", "),
            });
        }
        let snap = self.snapshot();
        let conn = snap.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare(&format!(
            "SELECT coalesce(nullif({column}, ''), '(unset)'), count(*) FROM hosts GROUP BY 1 ORDER BY 2 DESC, 1"
        ))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    usize::try_from(r.get::<_, i64>(1)?).unwrap_or_default(),
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn row_to_host(row: &rusqlite::Row<'_>) -> rusqlite::Result<Map<String, Value>> {
    let mut host = Map::new();
    for (i, col) in COLUMNS.iter().enumerate() {
        let value = match *col {
            "ssh_port" => row
                .get::<_, Option<i64>>(i)?
                .map(Value::from)
                .unwrap_or(Value::Null),
            "tags" => {
                let raw: String = row.get(i)?;
                Value::Array(
                    raw.split(';')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| Value::String(t.to_owned()))
                        .collect(),
                )
            }
            _ => Value::String(row.get::<_, String>(i)?),
        };
        host.insert((*col).to_owned(), value);
    }
    let extra: String = row.get(COLUMNS.len())?;
    if let Ok(Value::Object(extra)) = serde_json::from_str(&extra) {
        host.extend(extra);
    }
    Ok(host)
}

fn log_issues(path: &Path, issues: &[RowIssue]) {
    for issue in issues {
        tracing::warn!(
            message = "CMDB row skipped.",
            path = %path.display(),
            line = issue.line,
            reason = %issue.reason
        );
    }
}

fn load(path: &Path) -> Result<Snapshot, StoreError> {
    let before = fingerprint(path);
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_text(&text, &path.display().to_string(), before)
}

fn load_text(
    text: &str,
    origin: &str,
    fingerprint: Option<FileStamp>,
) -> Result<Snapshot, StoreError> {
    let format_err = |message: String| StoreError::Format {
        path: origin.to_owned(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format_err(format!("cannot read the header row: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if !headers.iter().any(|h| h == "name") {
        return Err(format_err(format!(
            "the header row has no `name` column (found: {})",
            headers.join(", ")
        )));
    }
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() {
            return Err(format_err(format!("header column {} is empty", i + 1)));
        }
        if headers[..i].contains(h) {
            return Err(format_err(format!("header column `{h}` appears twice")));
        }
    }
    let extra_columns: Vec<String> = headers
        .iter()
        .filter(|h| !COLUMNS.contains(&h.as_str()))
        .cloned()
        .collect();

    let conn = Connection::open_in_memory()?;
    conn.execute_batch(
        "CREATE TABLE hosts (
            line INTEGER NOT NULL,
            name TEXT NOT NULL, fqdn TEXT NOT NULL, ip TEXT NOT NULL, environment TEXT NOT NULL,
            role TEXT NOT NULL, ci_type TEXT NOT NULL, os TEXT NOT NULL, owner TEXT NOT NULL,
            ssh_user TEXT NOT NULL, ssh_port INTEGER, location TEXT NOT NULL, tags TEXT NOT NULL,
            description TEXT NOT NULL, extra TEXT NOT NULL
         );
         CREATE UNIQUE INDEX hosts_name ON hosts(name COLLATE NOCASE);
         CREATE INDEX hosts_fqdn ON hosts(lower(fqdn));
         CREATE INDEX hosts_ip ON hosts(ip);
         CREATE INDEX hosts_env ON hosts(lower(environment));
         CREATE INDEX hosts_role ON hosts(lower(role));
         CREATE INDEX hosts_type ON hosts(lower(ci_type));
         CREATE INDEX hosts_owner ON hosts(lower(owner));",
    )?;
    let mut issues = Vec::new();
    let mut hosts = 0usize;
    {
        let mut insert = conn.prepare(
            "INSERT INTO hosts (line, name, fqdn, ip, environment, role, ci_type, os, owner, ssh_user,
                                ssh_port, location, tags, description, extra)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        let mut seen = std::collections::HashMap::<String, u64>::new();
        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or_default();
                    issues.push(RowIssue {
                        line,
                        reason: format!("unreadable CSV: {e}"),
                    });
                    continue;
                }
            };
            let line = record.position().map(|p| p.line()).unwrap_or_default();
            if record.iter().all(|f| f.is_empty()) {
                continue;
            }
            if record.len() != headers.len() {
                issues.push(RowIssue {
                    line,
                    reason: format!("expected {} fields, found {}", headers.len(), record.len()),
                });
                continue;
            }
            let get = |col: &str| {
                headers
                    .iter()
                    .position(|h| h == col)
                    .and_then(|i| record.get(i))
                    .unwrap_or("")
                    .to_owned()
            };
            match validate_row(&get) {
                Ok(port) => {
                    let name = get("name");
                    if let Some(first) = seen.get(&name.to_lowercase()) {
                        issues.push(RowIssue {
                            line,
                            reason: format!(
                                "duplicate host name `{name}` (first defined on line {first})"
                            ),
                        });
                        continue;
                    }
                    seen.insert(name.to_lowercase(), line);
                    let mut extra = Map::new();
                    for col in &extra_columns {
                        extra.insert(col.clone(), Value::String(get(col)));
                    }
                    insert.execute(rusqlite::params![
                        i64::try_from(line).unwrap_or(i64::MAX),
                        name,
                        get("fqdn"),
                        get("ip"),
                        get("environment"),
                        get("role"),
                        get("ci_type"),
                        get("os"),
                        get("owner"),
                        get("ssh_user"),
                        port,
                        get("location"),
                        get("tags"),
                        get("description"),
                        Value::Object(extra).to_string(),
                    ])?;
                    hosts += 1;
                }
                Err(InvalidRow(reason)) => issues.push(RowIssue { line, reason }),
            }
        }
    }
    Ok(Snapshot {
        conn: Mutex::new(conn),
        hosts,
        extra_columns,
        issues,
        loaded_at: SystemTime::now(),
        fingerprint,
    })
}

/// Why a CSV row is not loaded (reported with its line, never fatal to the load).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRow(pub String);

/// Checks one row; returns its SSH port (if any) or the reason it is invalid.
fn validate_row(get: &dyn Fn(&str) -> String) -> Result<Option<i64>, InvalidRow> {
    let name = get("name");
    if name.is_empty() {
        return Err(InvalidRow("empty `name`".to_owned()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(InvalidRow(format!(
            "invalid `name` `{name}`: use letters, digits, `-`, `_` and `.` only"
        )));
    }
    let ip = get("ip");
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(InvalidRow(format!("invalid `ip` `{ip}` for host `{name}`")));
    }
    let port = get("ssh_port");
    if port.is_empty() {
        return Ok(None);
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(Some(i64::from(p))),
        _ => Err(InvalidRow(format!(
            "invalid `ssh_port` `{port}` for host `{name}`: expected 1-65535"
        ))),
    }
}

#[cfg(test)]
mod tests;
