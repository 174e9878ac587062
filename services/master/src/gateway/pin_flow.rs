//! The gateway's side of the guardrails (`guard`): before every index rebuild, each downstream's
//! definitions are compared with their pins; what changed is logged, audited (source `pin`),
//! counted, and — when held — put to an approver (same queue and approver role as calls, the diff
//! of the accepted and the served definition shown, masked). Deciding it (`approvals_approve` /
//! `approvals_deny`, `master_acceptToolChange`) accepts or rejects the change and rebuilds the
//! index, so the tool comes back to connected clients with a list-change notification.
//!
//! The call pipeline's classify stage guards results here too ([`Gateway::guard_answer`]).

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::*;
use serde_json::{Value, json};

use super::Gateway;
use super::pipeline::Record;
use crate::approvals::PinDecision;
use crate::audit::AuditRecord;
use crate::downstream::{Catalog, Downstream};
use crate::guard::pins::{DefKind, Definition, Held, PinKey, PinRefused, Seen};
use crate::guard::{self, GuardPolicy};
use crate::namespace::{wire_name, wire_uri};

/// One downstream's served definitions, as pins see them.
fn definitions(d: &Downstream, cat: &Catalog) -> Vec<Definition> {
    fn of<T: serde::Serialize>(d: &Downstream, kind: DefKind, name: &str, item: &T) -> Definition {
        let served = serde_json::to_value(item).unwrap_or(Value::Null);
        Definition::new(d.name(), kind, name, &served)
    }
    let tools = cat.tools.iter().map(|t| of(d, DefKind::Tool, &t.name, t));
    let prompts = cat
        .prompts
        .iter()
        .map(|p| of(d, DefKind::Prompt, &p.name, p));
    let templates = cat
        .templates
        .iter()
        .map(|t| of(d, DefKind::ResourceTemplate, &t.uri_template, t));
    tools.chain(prompts).chain(templates).collect()
}

/// State of the guardrails in the gateway.
pub(super) struct GuardState {
    pub(super) pins: crate::guard::pins::Pins,
    /// By downstream index.
    pub(super) policies: Vec<GuardPolicy>,
    /// The catalog each downstream had when its definitions were last compared with the pins
    /// (by index): an unchanged catalog is not digested again at the next index rebuild.
    observed: std::sync::Mutex<Vec<Option<Arc<Catalog>>>>,
    /// The pending approval of each held definition, with the digest it decides.
    approvals: std::sync::Mutex<HashMap<PinKey, (String, String)>>,
}

impl GuardState {
    pub(super) fn new(pins: crate::guard::pins::Pins, cfg: &crate::config::MasterConfig) -> Self {
        Self {
            pins,
            policies: cfg.downstream.iter().map(GuardPolicy::of).collect(),
            observed: std::sync::Mutex::new(vec![None; cfg.downstream.len()]),
            approvals: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn approvals(&self) -> std::sync::MutexGuard<'_, HashMap<PinKey, (String, String)>> {
        self.approvals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Gateway {
    /// The wire name of a pinned thing (a template's wire URI).
    pub(super) fn pin_wire(&self, key: &PinKey) -> String {
        let ns = self
            .downstreams
            .iter()
            .find(|d| d.name() == key.downstream)
            .map_or(key.downstream.as_str(), |d| d.namespace());
        match key.kind {
            DefKind::ResourceTemplate => wire_uri(ns, &key.name),
            _ => wire_name(ns, &self.cfg.separator, &key.name),
        }
    }

    /// Compares every connected downstream's definitions with the pins and acts on what changed
    /// (called before each index rebuild; an unchanged catalog costs a digest per definition).
    pub(super) fn observe_pins(&self) {
        let g = &self.guard;
        for d in &self.downstreams {
            if !d.is_up() {
                continue;
            }
            let cat = d.catalog();
            {
                let mut observed = g
                    .observed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if observed[d.index]
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &cat))
                {
                    continue;
                }
                observed[d.index] = Some(cat.clone());
            }
            let policy = &g.policies[d.index];
            let metrics = &self.metrics.guard;
            let seen = g
                .pins
                .observe(d.name(), policy.pins, definitions(d, &cat), &|def| {
                    guard::scan_definition(def, policy.descriptions, metrics)
                });
            let mut pinned = 0usize;
            for s in seen {
                match s {
                    Seen::Pinned { def, findings } => {
                        pinned += 1;
                        if let Some(f) = findings {
                            tracing::warn!(message = "Definition flagged by the scanner (pinned: scan.descriptions = warn).", downstream = %d.name(), name = %def.key.name, findings = %f);
                            self.audit_pin(
                                "master",
                                &def.key,
                                "pin_flagged",
                                "warned",
                                None,
                                Some(f),
                                None,
                            );
                        }
                    }
                    Seen::Accepted {
                        def,
                        accepted,
                        findings,
                    } => {
                        tracing::info!(target: "audit", message = "Definition changed; accepted (on_change = accept).", downstream = %d.name(), name = %def.key.name);
                        let diff = crate::guard::pins::diff(accepted.as_ref(), &def.json);
                        self.audit_pin(
                            "master",
                            &def.key,
                            "pin_changed",
                            "accepted",
                            Some("changed; accepted at once (on_change = accept)"),
                            findings,
                            Some(&diff),
                        );
                    }
                    Seen::Held {
                        def,
                        held,
                        accepted,
                    } => {
                        tracing::warn!(message = "Definition held.", downstream = %d.name(), name = %def.key.name, why = ?held.why, findings = held.findings.as_deref().unwrap_or(""));
                        let diff = crate::guard::pins::diff(accepted.as_ref(), &def.json);
                        self.audit_pin(
                            "master",
                            &def.key,
                            "pin_held",
                            "held",
                            Some(&held.refusal()),
                            held.findings.clone(),
                            Some(&diff),
                        );
                        self.ask_pin_approval(&def, &held, &diff);
                    }
                    Seen::StillHeld {
                        def,
                        held,
                        accepted,
                    } => {
                        let asked = g.approvals().get(&def.key).is_some_and(|(id, digest)| {
                            digest == &held.digest
                                && self.approval(id).is_some_and(|r| r.status == "pending")
                        });
                        if held.state == "pending" && !asked {
                            let diff = crate::guard::pins::diff(accepted.as_ref(), &def.json);
                            self.ask_pin_approval(&def, &held, &diff);
                        }
                    }
                    Seen::Restored(key) => {
                        tracing::info!(target: "audit", message = "Held definition served as pinned again; released.", downstream = %key.downstream, name = %key.name);
                        self.audit_pin(
                            "master",
                            &key,
                            "pin_restored",
                            "released",
                            Some("served as pinned again"),
                            None,
                            None,
                        );
                        if let Some((id, _)) = g.approvals().remove(&key) {
                            self.withdraw_approval(
                                &id,
                                "the server serves the pinned definition again",
                            );
                        }
                    }
                }
            }
            if pinned > 0 {
                tracing::info!(message = "Definitions pinned.", downstream = %d.name(), pinned);
                self.audit.record(AuditRecord::event(
                    "master",
                    format!("{}{}*", d.namespace(), self.cfg.separator),
                    json!({"downstream": d.name(), "pinned": pinned}).to_string(),
                    "pin_recorded",
                    "pinned",
                    "pin",
                ));
            }
        }
        self.refresh_held_gauge();
    }

    fn refresh_held_gauge(&self) {
        let mut by: HashMap<&str, i64> = self.downstreams.iter().map(|d| (d.name(), 0)).collect();
        for h in self.guard.pins.all_held() {
            if let Some(n) = by.get_mut(h.downstream.as_str()) {
                *n += 1;
            }
        }
        for (d, n) in by {
            self.metrics.guard.held.with_label_values(&[d]).set(n);
        }
    }

    /// The audit row of something that happened to a pin, done by `by` (`master`, or the
    /// approver who decided).
    #[allow(clippy::too_many_arguments)] // one audit row's fields
    fn audit_pin(
        &self,
        by: &str,
        key: &PinKey,
        decision: &str,
        status: &str,
        why: Option<&str>,
        findings: Option<String>,
        diff: Option<&str>,
    ) {
        let mut args =
            json!({"downstream": key.downstream, "kind": key.kind.as_str(), "name": key.name});
        if let Some(d) = diff {
            args["diff"] = Value::String(d.to_owned());
        }
        self.audit.record(AuditRecord {
            error: why.map(str::to_owned),
            findings,
            ..AuditRecord::event(
                by,
                self.pin_wire(key),
                args.to_string(),
                decision,
                status,
                "pin",
            )
        });
    }

    /// Puts a held definition to an approver (when approvals are on), replacing an older request
    /// for the same definition.
    fn ask_pin_approval(&self, def: &Definition, held: &Held, diff: &str) {
        let Some((ap, _)) = &self.approvals else {
            return;
        };
        let wire = self.pin_wire(&def.key);
        let shown = json!({
            "change": held.why,
            "kind": def.key.kind.as_str(),
            "downstream": def.key.downstream,
            "digest": held.digest,
            "findings": held.findings,
            "diff": diff,
        })
        .to_string();
        let row = ap.request_pin(
            &wire,
            &held.refusal(),
            &shown,
            PinDecision {
                key: def.key.clone(),
                digest: held.digest.clone(),
            },
        );
        self.metrics
            .approvals
            .with_label_values(&["requested"])
            .inc();
        let old = self
            .guard
            .approvals()
            .insert(def.key.clone(), (row.id.clone(), held.digest.clone()));
        if let Some((old, _)) = old {
            self.withdraw_approval(
                &old,
                "the definition changed again; a newer approval is pending",
            );
        }
        self.refresh_pending();
        tracing::info!(target: "audit", message = "Approval requested for a held definition.", approval_id = %row.id, tool = %wire);
    }

    /// Accepts or rejects a held definition (an approver's decision, by approval or by
    /// `master_acceptToolChange`); an acceptance lists it again.
    pub(super) fn decide_pin(
        &self,
        pin: &PinDecision,
        accept: bool,
        by: &str,
        comment: &str,
    ) -> Result<Value, PinRefused> {
        let pins = &self.guard.pins;
        if accept {
            pins.accept(&pin.key, &pin.digest)?;
        } else {
            pins.reject(&pin.key, &pin.digest)?;
        }
        let (decision, status) = if accept {
            ("pin_accepted", "accepted")
        } else {
            ("pin_rejected", "rejected")
        };
        tracing::info!(target: "audit", message = "Held definition decided.", downstream = %pin.key.downstream, name = %pin.key.name, decision = status, by);
        let why = (!comment.is_empty()).then_some(comment);
        self.audit_pin(by, &pin.key, decision, status, why, None, None);
        let mut approvals = self.guard.approvals();
        if approvals
            .get(&pin.key)
            .is_some_and(|(_, d)| d == &pin.digest)
        {
            approvals.remove(&pin.key);
        }
        drop(approvals);
        // The index carries the held state callers are told: rebuilt either way.
        self.catalog_changed();
        Ok(json!({
            "tool": self.pin_wire(&pin.key),
            "kind": pin.key.kind.as_str(),
            "downstream": pin.key.downstream,
            "digest": pin.digest,
            "decision": status,
        }))
    }

    /// `master_acceptToolChange`: decide a held definition by its wire name without the approval
    /// queue (its pending approval, if any, is withdrawn).
    pub(super) fn accept_tool_change(
        &self,
        wire: &str,
        accept: bool,
        by: &mcp_runtime::auth::Identity,
        comment: &str,
    ) -> Result<Value, PinRefused> {
        let role = &self.cfg.approvals.approver_role;
        if !by.has_role(role) {
            return Err(PinRefused(format!(
                "deciding a held definition needs the `{role}` role (master.approvals.approver_role), which {} does not have; ask an approver",
                by.name
            )));
        }
        if !accept && comment.trim().is_empty() {
            return Err(PinRefused(
                "`reason` is required to reject a change".to_owned(),
            ));
        }
        let Some(held) = self
            .guard
            .pins
            .all_held()
            .into_iter()
            .find(|h| self.pin_wire(&held_key(h)) == wire)
        else {
            return Err(PinRefused(format!(
                "`{wire}` is not held (master_getSystemStatus lists held definitions under `held`)"
            )));
        };
        let pin = PinDecision {
            key: held_key(&held),
            digest: held.digest.clone(),
        };
        let pending = self.guard.approvals().get(&pin.key).cloned();
        let out = self.decide_pin(&pin, accept, &by.name, comment)?;
        if let Some((id, _)) = pending {
            self.withdraw_approval(
                &id,
                &format!("decided with master_acceptToolChange by {}", by.name),
            );
        }
        Ok(out)
    }

    /// Every held definition, with its wire name and the refusal callers get.
    pub fn held_definitions(&self) -> Vec<Value> {
        self.guard
            .pins
            .all_held()
            .into_iter()
            .map(|h| {
                let wire = self.pin_wire(&held_key(&h));
                let refusal = h.refusal();
                let mut v = serde_json::to_value(&h).unwrap_or(Value::Null);
                v["wire"] = Value::String(wire);
                v["refusal"] = Value::String(refusal);
                v
            })
            .collect()
    }

    /// The held definition of downstream `index` named `name`, if held.
    pub(super) fn held(&self, index: usize, kind: DefKind, name: &str) -> Option<Held> {
        self.guard.pins.held(&PinKey {
            downstream: self.downstreams[index].name().to_owned(),
            kind,
            name: name.to_owned(),
        })
    }

    /// The pins as a lock file (`master_exportToolPins`).
    pub fn pins_lock_text(&self) -> String {
        self.guard.pins.lock_text()
    }

    /// Guards a result of downstream `index`'s tool `name` in place (see [`guard::guard_result`]).
    pub(super) fn guard_result(
        &self,
        index: usize,
        name: &str,
        wire: &str,
        secret_result: bool,
        r: &mut CallToolResult,
    ) -> guard::Guarded {
        let policy = &self.guard.policies[index];
        let secret = secret_result || policy.secret_tools.iter().any(|t| t == name);
        guard::guard_result(r, secret, policy.results, wire, &self.metrics.guard)
    }

    /// Stage 6 for a downstream's answer: secrets masked unless the tool returns secrets, the
    /// scanner per the downstream's `scan.results`; findings go to the call's audit row.
    pub(super) fn guard_answer(
        &self,
        index: usize,
        name: &str,
        wire: &str,
        secret_result: bool,
        answer: CallToolResponse,
        record: &mut Record<'_>,
    ) -> CallToolResponse {
        let CallToolResponse::Complete(mut r) = answer else {
            return answer;
        };
        let g = self.guard_result(index, name, wire, secret_result, &mut r);
        record.findings = g.summary(self.guard.policies[index].results);
        if let Some(blocked) = g.blocked {
            record.set("guardrail_blocked", "refused", Some(blocked.clone()));
            return super::tool_error(blocked);
        }
        let answer = r.into();
        record.answered("allow", &answer);
        answer
    }
}

fn held_key(h: &Held) -> PinKey {
    PinKey {
        downstream: h.downstream.clone(),
        kind: h.kind,
        name: h.name.clone(),
    }
}
