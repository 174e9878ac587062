//! Human approvals: a call that policy marks `approve`, or that a service answers with
//! `approval_required`, becomes a pending approval (SQLite). An approver (another identity holding
//! the approver role, unless self-approval is allowed) approves or denies it; on approval master
//! runs the exact call again with a single-use approval token the service verifies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mcp_runtime::auth::Identity;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `[master.approvals]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// SQLite file of approvals (default: beside the audit database).
    pub db: Option<PathBuf>,
    /// HMAC key file for approval tokens (default: `master.identity_key_file`); services verify
    /// with the same key (`server.approval_key_file`, default their identity key).
    pub key_file: Option<PathBuf>,
    /// Seconds a pending approval stays usable.
    pub ttl_secs: u64,
    /// Role an approver must hold.
    pub approver_role: String,
    /// Let requesters approve their own calls (single-user setups).
    pub allow_self_approval: bool,
    /// Seconds a call needing approval waits for the decision (progress notifications meanwhile)
    /// before answering "pending approval <id>"; 0 answers at once.
    pub wait_secs: u64,
    /// Ask the user in the client (MCP elicitation) when the client supports it and the caller may
    /// decide (approver role, and `allow_self_approval`): accept runs the call, decline or cancel
    /// denies it.
    pub elicitation: bool,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            db: None,
            key_file: None,
            ttl_secs: 3600,
            approver_role: "approver".to_owned(),
            allow_self_approval: false,
            wait_secs: 0,
            elicitation: false,
        }
    }
}

/// What master needs to run an approved call again.
#[derive(Debug, Clone)]
pub struct PendingCall {
    pub downstream: usize,
    /// The service's own tool name (what the token is bound to).
    pub local_tool: String,
    pub arguments: Option<Map<String, Value>>,
    pub requester: Identity,
}

/// A held definition whose acceptance an approval decides (`guard::pins`).
#[derive(Debug, Clone)]
pub struct PinDecision {
    pub key: crate::guard::pins::PinKey,
    /// The held definition's digest the approver was shown.
    pub digest: String,
}

/// What an approval decides: a call to run, or a held definition to accept or reject.
#[derive(Debug, Clone)]
pub enum Pending {
    Call(PendingCall),
    Pin(PinDecision),
}

/// Who asks for approvals of held definitions.
pub const PIN_REQUESTER: &str = "master";

/// One approval as the tools and the API show it (arguments redacted).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ApprovalRow {
    pub id: String,
    /// pending, approved, denied, expired, executed, failed, abandoned, withdrawn.
    pub status: String,
    pub requester: String,
    pub tool: String,
    pub arguments: String,
    pub args_sha256: String,
    pub reason: String,
    pub created: u64,
    pub expires: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    pub correlation_id: String,
    /// When it was approved or denied (unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided: Option<u64>,
}

/// Approvals requested in a period and how they ended (the console's compliance report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApprovalSummary {
    pub requested: u64,
    /// Approved, whether the call then ran (`executed`), failed or is still `approved`.
    pub approved: u64,
    pub denied: u64,
    pub expired: u64,
    /// Still pending, withdrawn (their run was cancelled) or abandoned (master restarted).
    pub other: u64,
    /// Seconds from request to decision over the decided ones: mean and longest.
    pub mean_decision_secs: Option<f64>,
    pub max_decision_secs: Option<u64>,
}

/// The approvals store.
pub struct Approvals {
    pub cfg: ApprovalsConfig,
    db: Mutex<Connection>,
    /// Full arguments of pending calls, and held definitions, by id (memory only: arguments may
    /// hold secrets).
    calls: Mutex<HashMap<String, Pending>>,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRow> {
    Ok(ApprovalRow {
        id: r.get(0)?,
        status: r.get(1)?,
        requester: r.get(2)?,
        tool: r.get(3)?,
        arguments: r.get(4)?,
        args_sha256: r.get(5)?,
        reason: r.get(6)?,
        created: r.get::<_, i64>(7)?.try_into().unwrap_or(0),
        expires: r.get::<_, i64>(8)?.try_into().unwrap_or(0),
        decided_by: r.get(9)?,
        comment: r.get(10)?,
        result: r.get(11)?,
        correlation_id: r.get(12)?,
        decided: r.get::<_, Option<i64>>(13)?.and_then(|t| t.try_into().ok()),
    })
}

const COLUMNS: &str = "id, status, requester, tool, arguments, args_sha256, reason, created, expires, decided_by, comment, result, correlation_id, decided";

/// Why an approver's decision is refused (unknown or no longer pending approval, missing role,
/// self-approval, a call lost in a restart); the text is shown to the approver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecisionRefused(pub String);

/// The approvals database cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalsError {
    #[error("approvals db {0}")]
    Open(#[from] crate::db::DbOpenError),
    #[error("approvals db {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
}

impl Approvals {
    /// Opens the store at `path` (`MasterConfig::store_paths`).
    pub fn open(cfg: ApprovalsConfig, path: &Path) -> Result<Self, ApprovalsError> {
        let path = path.to_path_buf();
        let conn = crate::db::open(&path)?;
        let db = |source| ApprovalsError::Db {
            path: path.display().to_string(),
            source,
        };
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS approvals (
               id TEXT PRIMARY KEY, status TEXT NOT NULL, requester TEXT NOT NULL, tool TEXT NOT NULL,
               arguments TEXT NOT NULL, args_sha256 TEXT NOT NULL, reason TEXT NOT NULL,
               created INTEGER NOT NULL, expires INTEGER NOT NULL, decided_by TEXT, comment TEXT,
               result TEXT, correlation_id TEXT NOT NULL);
             UPDATE approvals SET status = 'abandoned', comment = 'master restarted before a decision; call again'
               WHERE status = 'pending';",
        )
        .map_err(db)?;
        // Databases made before the console have no decision time.
        let has_decided = conn
            .prepare("SELECT 1 FROM pragma_table_info('approvals') WHERE name = 'decided'")
            .and_then(|mut s| s.exists([]))
            .map_err(db)?;
        if !has_decided {
            conn.execute_batch("ALTER TABLE approvals ADD COLUMN decided INTEGER;")
                .map_err(db)?;
        }
        Ok(Self {
            cfg,
            db: Mutex::new(conn),
            calls: Mutex::new(HashMap::new()),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a pending approval and keeps the call to run once approved.
    pub fn request(
        &self,
        wire: &str,
        reason: &str,
        redacted_args: &str,
        correlation_id: &str,
        call: PendingCall,
    ) -> ApprovalRow {
        let requester = call.requester.name.clone();
        let hash = mcp_runtime::approval::args_hash(call.arguments.as_ref());
        self.insert(
            wire,
            reason,
            redacted_args,
            correlation_id,
            (requester, hash),
            Pending::Call(call),
        )
    }

    /// Records a pending approval of a held definition (`shown`: what changed, masked).
    pub fn request_pin(
        &self,
        wire: &str,
        reason: &str,
        shown: &str,
        pin: PinDecision,
    ) -> ApprovalRow {
        let hash = pin.digest.clone();
        self.insert(
            wire,
            reason,
            shown,
            "",
            (PIN_REQUESTER.to_owned(), hash),
            Pending::Pin(pin),
        )
    }

    fn insert(
        &self,
        wire: &str,
        reason: &str,
        redacted_args: &str,
        correlation_id: &str,
        (requester, args_sha256): (String, String),
        pending: Pending,
    ) -> ApprovalRow {
        let id = format!("ap-{}", uuid::Uuid::new_v4().simple());
        let created = now();
        let r = ApprovalRow {
            id: id.clone(),
            status: "pending".to_owned(),
            requester,
            tool: wire.to_owned(),
            arguments: redacted_args.to_owned(),
            args_sha256,
            reason: reason.to_owned(),
            created,
            expires: created + self.cfg.ttl_secs,
            decided_by: None,
            comment: None,
            result: None,
            correlation_id: correlation_id.to_owned(),
            decided: None,
        };
        let _ = self.conn().execute(
            &format!("INSERT INTO approvals ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, NULL, NULL, ?10, NULL)"),
            params![r.id, r.status, r.requester, r.tool, r.arguments, r.args_sha256, r.reason, r.created as i64, r.expires as i64, r.correlation_id],
        );
        if let Ok(mut c) = self.calls.lock() {
            c.insert(id, pending);
        }
        r
    }

    fn expire(&self) {
        let _ = self.conn().execute(
            "UPDATE approvals SET status = 'expired' WHERE status = 'pending' AND expires <= ?1",
            params![now() as i64],
        );
    }

    pub fn get(&self, id: &str) -> Option<ApprovalRow> {
        self.expire();
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()
            .ok()
            .flatten()
    }

    /// Newest first, optionally one status.
    pub fn list(&self, status: Option<&str>, limit: usize) -> Vec<ApprovalRow> {
        self.expire();
        let conn = self.conn();
        let Ok(mut stmt) = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE (?1 IS NULL OR status = ?1) ORDER BY created DESC, rowid DESC LIMIT ?2"
        )) else {
            return Vec::new();
        };
        stmt.query_map(params![status, limit as i64], row)
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }

    /// Whether `who` may decide approvals requested by `requester`.
    pub fn may_decide(&self, who: &Identity, requester: &str) -> bool {
        who.has_role(&self.cfg.approver_role)
            && (self.cfg.allow_self_approval || who.name != requester)
    }

    /// Approves or denies a pending approval; hands back what it decides (an approved call to
    /// run, or a held definition to accept or reject).
    pub fn decide(
        &self,
        id: &str,
        approver: &Identity,
        approve: bool,
        comment: &str,
    ) -> Result<(ApprovalRow, Option<Pending>), DecisionRefused> {
        let current = self
            .get(id)
            .ok_or_else(|| DecisionRefused(format!("no approval `{id}`")))?;
        if current.status != "pending" {
            return Err(DecisionRefused(format!(
                "approval `{id}` is {}, not pending",
                current.status
            )));
        }
        if !approver.has_role(&self.cfg.approver_role) {
            return Err(DecisionRefused(format!(
                "`{}` may not decide approvals: the `{}` role is required",
                approver.name, self.cfg.approver_role
            )));
        }
        if approver.name == current.requester && !self.cfg.allow_self_approval {
            return Err(DecisionRefused(format!(
                "`{}` requested this call and may not decide it; another approver must (master.approvals.allow_self_approval is off)",
                approver.name
            )));
        }
        let call = self.calls.lock().ok().and_then(|mut c| c.remove(id));
        let status = match (approve, &call) {
            (false, _) => "denied",
            (true, Some(_)) => "approved",
            (true, None) => {
                return Err(DecisionRefused(format!(
                    "approval `{id}` can no longer run: its call was lost (master restarted); call again"
                )));
            }
        };
        let _ = self.conn().execute(
            "UPDATE approvals SET status = ?2, decided_by = ?3, comment = ?4, decided = ?5 WHERE id = ?1 AND status = 'pending'",
            params![id, status, approver.name, mcp_runtime::redact::text(comment), now() as i64],
        );
        let row = self
            .get(id)
            .ok_or_else(|| DecisionRefused(format!("no approval `{id}`")))?;
        Ok((
            row,
            match call {
                Some(Pending::Call(_)) if !approve => None,
                other => other,
            },
        ))
    }

    /// How many approvals have this status (expired ones first marked expired).
    pub fn count(&self, status: &str) -> u64 {
        self.expire();
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM approvals WHERE status = ?1",
                params![status],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.try_into().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Approvals requested in `[from, to)` (unix seconds) and how they ended.
    pub fn summary(&self, from: u64, to: u64) -> ApprovalSummary {
        self.expire();
        let conn = self.conn();
        let mut out = ApprovalSummary::default();
        let Ok(mut stmt) = conn.prepare(
            "SELECT status, created, decided FROM approvals WHERE created >= ?1 AND created < ?2",
        ) else {
            return out;
        };
        let rows = stmt.query_map(params![from as i64, to as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        });
        let mut waits = Vec::new();
        for (status, created, decided) in rows.into_iter().flatten().flatten() {
            out.requested += 1;
            match status.as_str() {
                "approved" | "executed" | "failed" => out.approved += 1,
                "denied" => out.denied += 1,
                "expired" => out.expired += 1,
                _ => out.other += 1,
            }
            if let Some(d) = decided {
                waits.push(u64::try_from(d - created).unwrap_or(0));
            }
        }
        if !waits.is_empty() {
            out.mean_decision_secs = Some(waits.iter().sum::<u64>() as f64 / waits.len() as f64);
            out.max_decision_secs = waits.iter().copied().max();
        }
        out
    }

    /// Withdraws a pending approval (its workflow run was cancelled): it can no longer be approved.
    pub fn withdraw(&self, id: &str, reason: &str) -> bool {
        if let Ok(mut c) = self.calls.lock() {
            c.remove(id);
        }
        self.conn()
            .execute(
                "UPDATE approvals SET status = 'withdrawn', comment = ?2 WHERE id = ?1 AND status = 'pending'",
                params![id, reason],
            )
            .is_ok_and(|n| n > 0)
    }

    /// Records how the approved call ended (result redacted and bounded): a service's error text
    /// can echo the arguments, so the store masks whatever it is given.
    pub fn finish(&self, id: &str, ok: bool, result: &str) {
        let mut text = mcp_runtime::redact::text(result).into_owned();
        text.truncate(text.floor_char_boundary(16 * 1024));
        let _ = self.conn().execute(
            "UPDATE approvals SET status = ?2, result = ?3 WHERE id = ?1",
            params![id, if ok { "executed" } else { "failed" }, text],
        );
    }
}
