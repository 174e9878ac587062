//! Pins: the digest of every downstream tool, prompt and resource template definition master has
//! accepted, in SQLite (`master.pins_db`), seeded from a committed lock file (`master.pins_file`)
//! for deployments that pin ahead. A definition whose digest differs from its pin is **held**
//! (not listed, not callable) until an approver accepts the change; a rejected change stays held,
//! across restarts, until the downstream serves the accepted definition again or another change
//! is accepted.
//!
//! The digest is SHA-256 over the definition's canonical JSON (keys sorted): for a tool its name,
//! title, description, input and output schema and annotations; for a prompt its name, title,
//! description and arguments; for a resource template its URI template, name, title, description
//! and MIME type. `_meta` and icons are not part of it.
//!
//! [`Pins::observe`] compares a downstream's catalog with the pins and says what changed; the
//! gateway (`guard::Guard`) turns that into audit rows, approvals, metrics and the index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// What kind of definition a pin is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefKind {
    Tool,
    Prompt,
    ResourceTemplate,
}

impl DefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Prompt => "prompt",
            Self::ResourceTemplate => "resource_template",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "tool" => Self::Tool,
            "prompt" => Self::Prompt,
            "resource_template" => Self::ResourceTemplate,
            _ => return None,
        })
    }

    /// The fields of the definition that the digest covers.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Tool => &[
                "name",
                "title",
                "description",
                "inputSchema",
                "outputSchema",
                "annotations",
            ],
            Self::Prompt => &["name", "title", "description", "arguments"],
            Self::ResourceTemplate => &["uriTemplate", "name", "title", "description", "mimeType"],
        }
    }
}

/// A pinned thing: downstream (its `name` in the config), kind, and its own name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PinKey {
    pub downstream: String,
    pub kind: DefKind,
    pub name: String,
}

/// One definition as served, reduced to what the digest covers.
#[derive(Debug, Clone)]
pub struct Definition {
    pub key: PinKey,
    /// Canonical JSON of the covered fields.
    pub json: Value,
    pub digest: String,
}

impl Definition {
    /// The covered fields of `served` (a tool, prompt or template as JSON), canonicalised.
    pub fn new(downstream: &str, kind: DefKind, name: &str, served: &Value) -> Self {
        let mut m = Map::new();
        for f in kind.fields() {
            if let Some(v) = served.get(*f).filter(|v| !v.is_null()) {
                m.insert((*f).to_owned(), canonical(v));
            }
        }
        let json = Value::Object(m);
        let digest = hex::encode(Sha256::digest(json.to_string().as_bytes()));
        Self {
            key: PinKey {
                downstream: downstream.to_owned(),
                kind,
                name: name.to_owned(),
            },
            json,
            digest,
        }
    }

    /// The definition as the store keeps it (for diffs): secrets masked as in a result, since a
    /// server can put anything in a description or a default.
    fn stored(&self) -> String {
        mcp_runtime::redact::result_document(&self.json).to_string()
    }

    /// The text a reader (and the model) sees: names, titles and descriptions anywhere in it,
    /// schema property descriptions included.
    pub fn texts(&self) -> String {
        let mut out = String::new();
        collect_texts(&self.json, None, &mut out);
        out
    }
}

/// Keys sorted at every level (serde_json's map may keep insertion order).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn collect_texts(v: &Value, key: Option<&str>, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                collect_texts(v, Some(k), out);
            }
        }
        Value::Array(a) => {
            for v in a {
                collect_texts(v, key, out);
            }
        }
        Value::String(s)
            if matches!(
                key,
                Some("name" | "title" | "description" | "default" | "examples" | "enum" | "const")
            ) =>
        {
            out.push_str(s);
            out.push('\n');
        }
        _ => {}
    }
}

/// Why a definition is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldWhy {
    /// It differs from its pin.
    Changed,
    /// A new definition of a downstream already pinned, whose `new_tools` policy is `hold`.
    New,
    /// Its text was flagged by the scanner and the downstream's `scan.descriptions` is `hold`.
    Flagged,
}

impl HeldWhy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::New => "new",
            Self::Flagged => "flagged",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "new" => Self::New,
            "flagged" => Self::Flagged,
            _ => Self::Changed,
        }
    }
}

/// A held definition.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub downstream: String,
    pub kind: DefKind,
    pub name: String,
    pub why: HeldWhy,
    /// `pending` (waiting for a decision) or `rejected`.
    pub state: String,
    /// The served definition's digest (what accepting pins).
    pub digest: String,
    /// Scanner findings in its text (`kind:rule, …`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<String>,
}

impl Held {
    /// The refusal a caller who may see the tool gets.
    pub fn refusal(&self) -> String {
        let what = match self.why {
            HeldWhy::Changed => "definition changed",
            HeldWhy::New => "new definition of an already pinned server",
            HeldWhy::Flagged => "description flagged as aimed at the model",
        };
        if self.state == "rejected" {
            format!(
                "held: {what}, and an approver rejected the change; it stays unavailable until the server serves the accepted definition again or an approver accepts it (master_acceptToolChange)"
            )
        } else {
            format!(
                "held: {what}, waiting for approval (an approver accepts or rejects it: approvals_list, master_acceptToolChange)"
            )
        }
    }
}

/// What [`Pins::observe`] saw for one definition.
#[derive(Debug, Clone)]
pub enum Seen {
    /// First time, pinned as served (with the scanner's findings under `warn`).
    Pinned {
        def: Definition,
        findings: Option<String>,
    },
    /// Held now (changed, new under `hold`, or flagged under `hold`): `accepted` is the pinned
    /// definition it differs from, when one is known.
    Held {
        def: Definition,
        held: Held,
        accepted: Option<Value>,
    },
    /// Changed, and accepted at once (`on_change = "accept"`): recorded, not held.
    Accepted {
        def: Definition,
        accepted: Option<Value>,
        findings: Option<String>,
    },
    /// Held before, and now served as pinned again: no longer held.
    Restored(PinKey),
    /// Still held as stored (after a restart, or unchanged since): the gateway makes sure an
    /// approval is pending for it.
    StillHeld {
        def: Definition,
        held: Held,
        accepted: Option<Value>,
    },
}

/// How one downstream's definitions are treated (from its config).
#[derive(Debug, Clone, Copy)]
pub struct PinPolicy {
    /// New definitions of an already pinned downstream are held.
    pub hold_new: bool,
    /// A changed definition is held (else accepted, and audited).
    pub hold_changes: bool,
}

/// The pins store cannot be opened or its lock file read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinsError {
    #[error("pins db {0}")]
    Open(#[from] crate::db::DbOpenError),
    #[error("pins db {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
    #[error("pins file {path}: {why}")]
    LockFile { path: String, why: String },
}

/// The decision on a held definition could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PinRefused(pub String);

/// The store and what is held now.
pub struct Pins {
    db: Mutex<Connection>,
    path: PathBuf,
    /// Held definitions by key (mirrors the store, read on every call).
    held: Mutex<HashMap<PinKey, Held>>,
    /// Digest last observed per key, so an unchanged catalog costs nothing.
    seen: Mutex<HashMap<PinKey, String>>,
    /// Downstreams listed in the lock file (already pinned, even before their first catalog).
    locked: HashSet<String>,
}

/// A row of the store.
struct Row {
    digest: Option<String>,
    definition: Option<String>,
    held_digest: Option<String>,
    held_definition: Option<String>,
    held_why: Option<String>,
    held_state: Option<String>,
    findings: Option<String>,
}

fn now() -> i64 {
    crate::approvals::now().try_into().unwrap_or(i64::MAX)
}

impl Pins {
    /// Opens (or creates) the store; a lock file's pins replace the stored ones they name.
    pub fn open(path: &Path, lock_file: Option<&Path>) -> Result<Self, PinsError> {
        let conn = crate::db::open(path)?;
        let db = |source| PinsError::Db {
            path: path.display().to_string(),
            source,
        };
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS pins (
               downstream TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
               digest TEXT, definition TEXT,
               held_digest TEXT, held_definition TEXT, held_why TEXT, held_state TEXT, findings TEXT,
               updated INTEGER NOT NULL,
               PRIMARY KEY (downstream, kind, name));",
        )
        .map_err(db)?;
        let mut locked = HashSet::new();
        if let Some(lock) = lock_file {
            for (key, digest) in lock::read(lock)? {
                locked.insert(key.downstream.clone());
                // The lock file wins: its digest is the accepted one. A held definition it names
                // by its digest is thereby accepted.
                conn.execute(
                    "INSERT INTO pins (downstream, kind, name, digest, definition, updated) VALUES (?1, ?2, ?3, ?4, NULL, ?5)
                     ON CONFLICT (downstream, kind, name) DO UPDATE SET
                       definition = CASE WHEN pins.digest = excluded.digest THEN pins.definition
                                         WHEN pins.held_digest = excluded.digest THEN pins.held_definition
                                         ELSE NULL END,
                       digest = excluded.digest,
                       held_digest = CASE WHEN pins.held_digest = excluded.digest THEN NULL ELSE pins.held_digest END,
                       held_state = CASE WHEN pins.held_digest = excluded.digest THEN NULL ELSE pins.held_state END,
                       updated = excluded.updated",
                    params![key.downstream, key.kind.as_str(), key.name, digest, now()],
                )
                .map_err(db)?;
            }
        }
        let pins = Self {
            db: Mutex::new(conn),
            path: path.to_owned(),
            held: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            locked,
        };
        pins.load_held().map_err(db)?;
        Ok(pins)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn load_held(&self) -> rusqlite::Result<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT downstream, kind, name, held_digest, held_why, held_state, findings FROM pins WHERE held_digest IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (downstream, kind, name, digest, why, state, findings) in rows.flatten() {
            let Some(kind) = DefKind::parse(&kind) else {
                continue;
            };
            let key = PinKey {
                downstream,
                kind,
                name,
            };
            held.insert(
                key.clone(),
                Held {
                    downstream: key.downstream,
                    kind,
                    name: key.name,
                    why: HeldWhy::parse(why.as_deref().unwrap_or_default()),
                    state: state.unwrap_or_else(|| "pending".to_owned()),
                    digest,
                    findings,
                },
            );
        }
        Ok(())
    }

    fn row(&self, key: &PinKey) -> Option<Row> {
        self.conn()
            .query_row(
                "SELECT digest, definition, held_digest, held_definition, held_why, held_state, findings FROM pins WHERE downstream = ?1 AND kind = ?2 AND name = ?3",
                params![key.downstream, key.kind.as_str(), key.name],
                |r| {
                    Ok(Row {
                        digest: r.get(0)?,
                        definition: r.get(1)?,
                        held_digest: r.get(2)?,
                        held_definition: r.get(3)?,
                        held_why: r.get(4)?,
                        held_state: r.get(5)?,
                        findings: r.get(6)?,
                    })
                },
            )
            .optional()
            .ok()
            .flatten()
    }

    /// Whether anything of `downstream` is pinned (or it is in the lock file).
    fn knows(&self, downstream: &str) -> bool {
        self.locked.contains(downstream)
            || self
                .conn()
                .query_row(
                    "SELECT 1 FROM pins WHERE downstream = ?1 LIMIT 1",
                    params![downstream],
                    |_| Ok(()),
                )
                .optional()
                .ok()
                .flatten()
                .is_some()
    }

    /// The held definition of a key, if held.
    pub fn held(&self, key: &PinKey) -> Option<Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Every held definition, sorted.
    pub fn all_held(&self) -> Vec<Held> {
        let mut v: Vec<Held> = self
            .held
            .lock()
            .map(|h| h.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| (&a.downstream, a.kind, &a.name).cmp(&(&b.downstream, b.kind, &b.name)));
        v
    }

    /// Compares one downstream's served definitions with the pins. `flagged` gives the scanner's
    /// findings for a definition and whether they hold it (`scan.descriptions = "hold"`).
    pub fn observe(
        &self,
        downstream: &str,
        policy: PinPolicy,
        defs: Vec<Definition>,
        flagged: &dyn Fn(&Definition) -> (Option<String>, bool),
    ) -> Vec<Seen> {
        let fresh: Vec<Definition> = {
            let seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            defs.into_iter()
                .filter(|d| seen.get(&d.key) != Some(&d.digest))
                .collect()
        };
        if fresh.is_empty() {
            return Vec::new();
        }
        let known = self.knows(downstream);
        let mut out = Vec::new();
        // One transaction for the whole catalog: a first sight of a hundred definitions is one
        // commit, not a hundred.
        let _ = self.conn().execute_batch("BEGIN");
        for def in fresh {
            if let Some(s) = self.observe_one(&def, policy, known, flagged) {
                out.push(s);
            }
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(def.key.clone(), def.digest.clone());
        }
        if let Err(e) = self.conn().execute_batch("COMMIT") {
            tracing::error!(message = "Pins not saved.", path = %self.path.display(), error = %e);
        }
        out
    }

    fn observe_one(
        &self,
        def: &Definition,
        policy: PinPolicy,
        known: bool,
        flagged: &dyn Fn(&Definition) -> (Option<String>, bool),
    ) -> Option<Seen> {
        let row = self.row(&def.key);
        let accepted = |r: &Row| {
            r.definition
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
        };
        match row {
            Some(r) if r.digest.as_deref() == Some(def.digest.as_str()) => {
                if r.held_digest.is_some() {
                    self.clear_held(&def.key);
                    return Some(Seen::Restored(def.key.clone()));
                }
                if r.definition.is_none() {
                    // Pinned by digest from the lock file: keep the definition for later diffs.
                    let _ = self.conn().execute(
                        "UPDATE pins SET definition = ?4 WHERE downstream = ?1 AND kind = ?2 AND name = ?3",
                        params![def.key.downstream, def.key.kind.as_str(), def.key.name, def.stored()],
                    );
                }
                None
            }
            Some(r) if r.held_digest.as_deref() == Some(def.digest.as_str()) => {
                let held = Held {
                    downstream: def.key.downstream.clone(),
                    kind: def.key.kind,
                    name: def.key.name.clone(),
                    why: HeldWhy::parse(r.held_why.as_deref().unwrap_or_default()),
                    state: r.held_state.clone().unwrap_or_else(|| "pending".to_owned()),
                    digest: def.digest.clone(),
                    findings: r.findings.clone(),
                };
                Some(Seen::StillHeld {
                    def: def.clone(),
                    held,
                    accepted: accepted(&r),
                })
            }
            Some(r) => {
                let (findings, hold_flagged) = flagged(def);
                let why = if r.digest.is_none() {
                    HeldWhy::New
                } else {
                    HeldWhy::Changed
                };
                if !policy.hold_changes && why == HeldWhy::Changed && !hold_flagged {
                    self.pin(def, findings.as_deref());
                    return Some(Seen::Accepted {
                        def: def.clone(),
                        accepted: accepted(&r),
                        findings,
                    });
                }
                let held = self.hold(def, why, findings);
                Some(Seen::Held {
                    def: def.clone(),
                    held,
                    accepted: accepted(&r),
                })
            }
            None => {
                let (findings, hold_flagged) = flagged(def);
                if known && policy.hold_new {
                    let held = self.hold(def, HeldWhy::New, findings);
                    return Some(Seen::Held {
                        def: def.clone(),
                        held,
                        accepted: None,
                    });
                }
                if hold_flagged {
                    let held = self.hold(def, HeldWhy::Flagged, findings);
                    return Some(Seen::Held {
                        def: def.clone(),
                        held,
                        accepted: None,
                    });
                }
                self.pin(def, findings.as_deref());
                Some(Seen::Pinned {
                    def: def.clone(),
                    findings,
                })
            }
        }
    }

    /// Pins `def` as served (first sight, or an accepted change).
    fn pin(&self, def: &Definition, findings: Option<&str>) {
        let _ = self.conn().execute(
            "INSERT INTO pins (downstream, kind, name, digest, definition, findings, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (downstream, kind, name) DO UPDATE SET digest = excluded.digest, definition = excluded.definition,
               held_digest = NULL, held_definition = NULL, held_why = NULL, held_state = NULL, findings = excluded.findings, updated = excluded.updated",
            params![def.key.downstream, def.key.kind.as_str(), def.key.name, def.digest, def.stored(), findings, now()],
        );
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&def.key);
    }

    fn hold(&self, def: &Definition, why: HeldWhy, findings: Option<String>) -> Held {
        let _ = self.conn().execute(
            "INSERT INTO pins (downstream, kind, name, digest, definition, held_digest, held_definition, held_why, held_state, findings, updated)
               VALUES (?1, ?2, ?3, NULL, NULL, ?4, ?5, ?6, 'pending', ?7, ?8)
             ON CONFLICT (downstream, kind, name) DO UPDATE SET held_digest = excluded.held_digest,
               held_definition = excluded.held_definition, held_why = excluded.held_why, held_state = 'pending',
               findings = excluded.findings, updated = excluded.updated",
            params![def.key.downstream, def.key.kind.as_str(), def.key.name, def.digest, def.stored(), why.as_str(), findings, now()],
        );
        let held = Held {
            downstream: def.key.downstream.clone(),
            kind: def.key.kind,
            name: def.key.name.clone(),
            why,
            state: "pending".to_owned(),
            digest: def.digest.clone(),
            findings,
        };
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(def.key.clone(), held.clone());
        held
    }

    fn clear_held(&self, key: &PinKey) {
        let _ = self.conn().execute(
            "UPDATE pins SET held_digest = NULL, held_definition = NULL, held_why = NULL, held_state = NULL, updated = ?4
             WHERE downstream = ?1 AND kind = ?2 AND name = ?3",
            params![key.downstream, key.kind.as_str(), key.name, now()],
        );
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Accepts the held definition with `digest` (what the approver saw): it becomes the pin.
    pub fn accept(&self, key: &PinKey, digest: &str) -> Result<(), PinRefused> {
        let r = self.row(key).ok_or_else(|| not_held(key))?;
        match (r.held_digest.as_deref(), r.held_definition) {
            (Some(d), Some(json)) if d == digest => {
                let _ = self.conn().execute(
                    "UPDATE pins SET digest = held_digest, definition = ?4, held_digest = NULL, held_definition = NULL,
                       held_why = NULL, held_state = NULL, updated = ?5 WHERE downstream = ?1 AND kind = ?2 AND name = ?3",
                    params![key.downstream, key.kind.as_str(), key.name, json, now()],
                );
                self.held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(key);
                Ok(())
            }
            (Some(_), _) => Err(PinRefused(format!(
                "the definition of `{}` changed again since this decision was asked for; decide the newer change instead",
                key.name
            ))),
            (None, _) => Err(not_held(key)),
        }
    }

    /// Rejects the held definition with `digest`: it stays held (also after a restart).
    pub fn reject(&self, key: &PinKey, digest: &str) -> Result<(), PinRefused> {
        let r = self.row(key).ok_or_else(|| not_held(key))?;
        if r.held_digest.as_deref() != Some(digest) {
            return Err(if r.held_digest.is_some() {
                PinRefused(format!(
                    "the definition of `{}` changed again since this decision was asked for; decide the newer change instead",
                    key.name
                ))
            } else {
                not_held(key)
            });
        }
        let _ = self.conn().execute(
            "UPDATE pins SET held_state = 'rejected', updated = ?4 WHERE downstream = ?1 AND kind = ?2 AND name = ?3",
            params![key.downstream, key.kind.as_str(), key.name, now()],
        );
        if let Some(h) = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(key)
        {
            h.state = "rejected".to_owned();
        }
        Ok(())
    }

    /// The pins as a lock file (`master.pins_file`): what a deployment commits to pin ahead.
    pub fn lock_text(&self) -> String {
        let conn = self.conn();
        let mut by: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        if let Ok(mut stmt) = conn.prepare(
            "SELECT downstream, kind, name, digest FROM pins WHERE digest IS NOT NULL ORDER BY downstream, kind, name",
        ) && let Ok(rows) = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        }) {
            for (d, k, n, digest) in rows.flatten() {
                by.entry(d).or_default().insert(format!("{k}:{n}"), digest);
            }
        }
        let mut out = String::from(
            "# master.pins_file: SHA-256 of every accepted definition, by downstream name and `kind:name`.\n# Written by master_exportToolPins; master pins exactly these at start.\n",
        );
        out.push_str(&toml::to_string(&by).unwrap_or_default());
        out
    }
}

fn not_held(key: &PinKey) -> PinRefused {
    PinRefused(format!(
        "{} `{}` of `{}` is not held",
        key.kind.as_str(),
        key.name,
        key.downstream
    ))
}

/// A unified diff of two definitions (pretty JSON), secrets masked, bounded. Both sides are masked
/// the way the store keeps definitions, so a secret present in both is no changed line.
pub fn diff(old: Option<&Value>, new: &Value) -> String {
    let pretty = |v: &Value| {
        serde_json::to_string_pretty(&mcp_runtime::redact::result_document(v)).unwrap_or_default()
            + "\n"
    };
    let old_text = old.map(pretty).unwrap_or_default();
    let new_text = pretty(new);
    let d = similar::TextDiff::from_lines(&old_text, &new_text);
    let mut out = d
        .unified_diff()
        .context_radius(3)
        .header(
            if old.is_some() {
                "accepted"
            } else {
                "(no accepted definition)"
            },
            "served",
        )
        .to_string();
    out = mcp_runtime::redact::text(&out).into_owned();
    const MAX: usize = 8 * 1024;
    if out.len() > MAX {
        out.truncate(out.floor_char_boundary(MAX));
        out.push_str("\n…[diff truncated]\n");
    }
    out
}

mod lock;
#[cfg(test)]
mod tests;
