//! Approval tokens: master signs, for one approved call, (tool, arguments hash, approval id, expiry)
//! with an HMAC key shared through a secret file; the service verifies the token against the call it
//! actually received, so calling a service directly — or changing one argument — cannot skip an
//! approval. A token is single-use per service process.
//!
//! Services that refuse a risky call answer with [`approval_required`], a structured tool error master
//! turns into a pending approval.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::Mac;
use rmcp::model::CallToolResult;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::assertion::{AssertionKey, now};

/// Key under `_meta` carrying the token.
pub const APPROVAL_META_KEY: &str = "io.mcp-suite/approval";
/// The `error` field of a structured approval-required tool error.
pub const APPROVAL_REQUIRED: &str = "approval_required";

/// A signed approval for one exact call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalToken {
    /// The service's own tool name (not master's wire name).
    pub tool: String,
    /// [`args_hash`] of the approved arguments.
    pub args_sha256: String,
    pub approval_id: String,
    /// Unix seconds after which the token is void.
    pub exp: u64,
    /// Hex HMAC-SHA256 over the fields above.
    pub sig: String,
}

/// A verified approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: String,
    pub expires_at: u64,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    #[error("approval token signature does not verify")]
    BadSignature,
    #[error("approval {id} expired {ago} s ago")]
    Expired { id: String, ago: u64 },
    #[error("approval {id} is for tool `{approved}`, not `{called}`")]
    WrongTool {
        id: String,
        approved: String,
        called: String,
    },
    #[error("approval {id} was given for different arguments")]
    WrongArguments { id: String },
    #[error("approval {id} has already been used")]
    Reused { id: String },
    #[error("approval token is malformed: {0}")]
    Malformed(String),
    #[error("this service has no approval key configured (server.approval_key_file)")]
    NoKey,
}

/// Canonical JSON (object keys sorted at every level, no whitespace).
pub fn canonical_json(value: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&map[*k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// SHA-256 (hex) of the canonical JSON of a call's arguments (`{}` when absent).
pub fn args_hash(args: Option<&Map<String, Value>>) -> String {
    let value = Value::Object(args.cloned().unwrap_or_default());
    hex::encode(Sha256::digest(canonical_json(&value).as_bytes()))
}

impl AssertionKey {
    fn approval_mac(
        &self,
        tool: &str,
        args_sha256: &str,
        id: &str,
        exp: u64,
    ) -> hmac::Hmac<Sha256> {
        self.mac_parts(&["approval", tool, args_sha256, id, &exp.to_string()])
    }

    /// Signs an approval of `tool` with `args`, valid for `ttl_secs`.
    pub fn sign_approval(
        &self,
        tool: &str,
        args: Option<&Map<String, Value>>,
        approval_id: &str,
        ttl_secs: u64,
    ) -> ApprovalToken {
        let args_sha256 = args_hash(args);
        let exp = now() + ttl_secs;
        let sig = hex::encode(
            self.approval_mac(tool, &args_sha256, approval_id, exp)
                .finalize()
                .into_bytes(),
        );
        ApprovalToken {
            tool: tool.to_owned(),
            args_sha256,
            approval_id: approval_id.to_owned(),
            exp,
            sig,
        }
    }

    /// Checks a token against the call actually received (not yet against reuse: see [`ApprovalLedger`]).
    pub fn verify_approval(
        &self,
        token: &ApprovalToken,
        tool: &str,
        args: Option<&Map<String, Value>>,
    ) -> Result<Approval, ApprovalError> {
        let sig = hex::decode(&token.sig).map_err(|_| ApprovalError::BadSignature)?;
        self.approval_mac(
            &token.tool,
            &token.args_sha256,
            &token.approval_id,
            token.exp,
        )
        .verify_slice(&sig)
        .map_err(|_| ApprovalError::BadSignature)?;
        let id = token.approval_id.clone();
        let t = now();
        if t > token.exp {
            return Err(ApprovalError::Expired {
                id,
                ago: t - token.exp,
            });
        }
        if token.tool != tool {
            return Err(ApprovalError::WrongTool {
                id,
                approved: token.tool.clone(),
                called: tool.to_owned(),
            });
        }
        if token.args_sha256 != args_hash(args) {
            return Err(ApprovalError::WrongArguments { id });
        }
        Ok(Approval {
            id,
            expires_at: token.exp,
        })
    }
}

/// Approval ids already used in this process (kept until they expire).
#[derive(Debug, Default)]
pub struct ApprovalLedger {
    used: Mutex<HashMap<String, u64>>,
}

impl ApprovalLedger {
    /// Marks an approval used; fails if it was used before.
    pub fn consume(&self, approval: &Approval) -> Result<(), ApprovalError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let t = now();
        used.retain(|_, exp| *exp >= t);
        if used.contains_key(&approval.id) {
            return Err(ApprovalError::Reused {
                id: approval.id.clone(),
            });
        }
        used.insert(approval.id.clone(), approval.expires_at);
        Ok(())
    }
}

/// The structured tool error a service returns when a call needs an approval it does not carry.
/// `details` (category, reason, the validated command, …) is merged into the structured content.
pub fn approval_required(tool: &str, reason: &str, details: Map<String, Value>) -> CallToolResult {
    let mut body = Map::new();
    body.insert("error".into(), Value::String(APPROVAL_REQUIRED.into()));
    body.insert("tool".into(), Value::String(tool.into()));
    body.insert("reason".into(), Value::String(reason.into()));
    body.extend(details);
    let text = format!(
        "approval_required: {reason}. Ask an approver to approve this exact call (through master's approvals), then repeat it with the approval token."
    );
    crate::output::structured_error(text, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(b: u8) -> AssertionKey {
        AssertionKey::from_bytes(&[b; 32]).unwrap()
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn canonical_hash_ignores_key_order() {
        let a = args(json!({"b": 1, "a": {"y": [1, {"q": 2, "p": 1}], "x": null}}));
        let b = args(json!({"a": {"x": null, "y": [1, {"p": 1, "q": 2}]}, "b": 1}));
        assert_eq!(args_hash(Some(&a)), args_hash(Some(&b)));
        assert_ne!(args_hash(Some(&a)), args_hash(None));
    }

    #[test]
    fn tokens_bind_tool_arguments_and_expiry() {
        let a = args(json!({"command": "rm x"}));
        let t = key(1).sign_approval("runCommand", Some(&a), "ap-1", 60);
        assert_eq!(
            key(1)
                .verify_approval(&t, "runCommand", Some(&a))
                .unwrap()
                .id,
            "ap-1"
        );
        assert_eq!(
            key(2).verify_approval(&t, "runCommand", Some(&a)),
            Err(ApprovalError::BadSignature)
        );
        assert!(matches!(
            key(1).verify_approval(&t, "writeFile", Some(&a)),
            Err(ApprovalError::WrongTool { .. })
        ));
        let other = args(json!({"command": "rm -rf y"}));
        assert!(matches!(
            key(1).verify_approval(&t, "runCommand", Some(&other)),
            Err(ApprovalError::WrongArguments { .. })
        ));
        let forged = ApprovalToken {
            exp: t.exp + 1000,
            ..t.clone()
        };
        assert_eq!(
            key(1).verify_approval(&forged, "runCommand", Some(&a)),
            Err(ApprovalError::BadSignature)
        );
        let expired = ApprovalToken {
            exp: 10,
            ..t.clone()
        };
        let expired = ApprovalToken {
            sig: hex::encode(
                key(1)
                    .approval_mac(&expired.tool, &expired.args_sha256, "ap-1", 10)
                    .finalize()
                    .into_bytes(),
            ),
            ..expired
        };
        assert!(matches!(
            key(1).verify_approval(&expired, "runCommand", Some(&a)),
            Err(ApprovalError::Expired { .. })
        ));
    }

    #[test]
    fn ledger_refuses_reuse() {
        let ledger = ApprovalLedger::default();
        let ap = Approval {
            id: "x".into(),
            expires_at: now() + 60,
        };
        ledger.consume(&ap).unwrap();
        assert!(matches!(
            ledger.consume(&ap),
            Err(ApprovalError::Reused { .. })
        ));
    }
}
