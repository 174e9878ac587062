//! Master's own metrics, beside the runtime's `mcp_tool_calls_total` (which counts calls by wire name).

use std::sync::Arc;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::downstream::{CircuitState, Downstream};

/// Gauges and counters of the gateway.
#[derive(Clone)]
pub struct MasterMetrics {
    pub downstream_up: IntGaugeVec,
    pub circuit_state: IntGaugeVec,
    pub proxied_calls: IntCounterVec,
    pub proxied_duration: HistogramVec,
    pub retries: IntCounterVec,
    pub list_changed: IntCounter,
    pub rate_limited: IntCounterVec,
    pub policy_denied: IntCounter,
    pub endpoint_tools: IntGaugeVec,
    pub endpoint_calls: IntCounterVec,
    pub approvals: IntCounterVec,
    pub approvals_pending: prometheus::IntGauge,
    pub approval_decision: prometheus::Histogram,
    pub workflows: IntCounterVec,
    pub workflows_active: IntGaugeVec,
    pub workflow_duration: HistogramVec,
    pub workflow_step_failures: IntCounterVec,
    pub workflow_checkpoint: prometheus::Histogram,
    pub workflow_checkpoint_batch: prometheus::Histogram,
    pub audit_rows: IntCounterVec,
    /// Versioned namespaces (`mcp_route_*`).
    pub routes: crate::routing::RouteMetrics,
    /// Pins and the scanner (`mcp_tool_pins_held`, `mcp_guardrail_findings_total`).
    pub guard: crate::guard::GuardMetrics,
}

/// `mcp_audit_rows_total{source,outcome}`: audit rows by what they record (`call`, `step`,
/// `approval`) and whether they reached the database: `written`; `failed` once when a write could
/// not take them (they wait in memory and are counted `written` when a later write does); `lost`
/// when they could never be (the writer gone, or more waiting than it keeps).
pub fn audit_rows() -> Result<IntCounterVec, prometheus::Error> {
    IntCounterVec::new(
        Opts::new(
            "mcp_audit_rows_total",
            "Audit rows by source (call, step, approval) and outcome (written, failed, lost).",
        ),
        &["source", "outcome"],
    )
}

impl MasterMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            downstream_up: IntGaugeVec::new(
                Opts::new(
                    "mcp_downstream_up",
                    "1 when master is connected to the downstream.",
                ),
                &["downstream"],
            )?,
            circuit_state: IntGaugeVec::new(
                Opts::new(
                    "mcp_downstream_circuit_state",
                    "Circuit breaker state per downstream: 0 closed, 1 half-open, 2 open.",
                ),
                &["downstream"],
            )?,
            proxied_calls: IntCounterVec::new(
                Opts::new("mcp_proxied_calls_total", "Calls forwarded to downstreams."),
                &["downstream", "tool", "status"],
            )?,
            proxied_duration: HistogramVec::new(
                HistogramOpts::new(
                    "mcp_proxied_call_duration_seconds",
                    "Duration of forwarded calls, including retries.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0,
                ]),
                &["downstream", "tool"],
            )?,
            retries: IntCounterVec::new(
                Opts::new(
                    "mcp_downstream_retries_total",
                    "Retries after connection failures.",
                ),
                &["downstream"],
            )?,
            list_changed: IntCounter::new(
                "mcp_list_changed_total",
                "notifications/tools/list_changed rounds sent to clients.",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new("mcp_rate_limited_total", "Calls refused by a rate limit."),
                &["scope"],
            )?,
            policy_denied: IntCounter::new("mcp_policy_denied_total", "Calls refused by policy.")?,
            endpoint_tools: IntGaugeVec::new(
                Opts::new(
                    "mcp_endpoint_tools",
                    "Tools an endpoint lists (before role filtering).",
                ),
                &["endpoint"],
            )?,
            endpoint_calls: IntCounterVec::new(
                Opts::new(
                    "mcp_endpoint_calls_total",
                    "tools/call requests by endpoint.",
                ),
                &["endpoint"],
            )?,
            approvals: IntCounterVec::new(
                Opts::new(
                    "mcp_approvals_total",
                    "Approvals by decision: requested, approved, denied.",
                ),
                &["decision"],
            )?,
            approvals_pending: prometheus::IntGauge::new(
                "mcp_approvals_pending",
                "Approvals waiting for a decision.",
            )?,
            approval_decision: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "mcp_approval_decision_seconds",
                    "Time from an approval request to its decision.",
                )
                .buckets(vec![
                    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
                ]),
            )?,
            workflows: IntCounterVec::new(
                Opts::new(
                    "mcp_workflows_total",
                    "Workflow runs by status: started, completed, failed, cancelled, needs_attention.",
                ),
                &["status"],
            )?,
            workflows_active: IntGaugeVec::new(
                Opts::new(
                    "mcp_workflows_active",
                    "Workflow runs not ended: running, waiting_approval, needs_attention.",
                ),
                &["status"],
            )?,
            workflow_duration: HistogramVec::new(
                HistogramOpts::new(
                    "mcp_workflow_duration_seconds",
                    "Duration of workflow runs (in this master process), by final status.",
                )
                .buckets(vec![
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                    3600.0,
                ]),
                &["status"],
            )?,
            workflow_step_failures: IntCounterVec::new(
                Opts::new(
                    "mcp_workflow_step_failures_total",
                    "Failed workflow step attempts by reason: tool_error, error, timeout, denied, expired, template, protocol, approval.",
                ),
                &["reason"],
            )?,
            workflow_checkpoint: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "mcp_workflow_checkpoint_seconds",
                    "Time a workflow checkpoint waits until it is durable (SQLite, WAL, synchronous=FULL, group commit).",
                )
                .buckets(vec![
                    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                ]),
            )?,
            workflow_checkpoint_batch: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "mcp_workflow_checkpoint_batch_size",
                    "Checkpoints committed together in one transaction (one fsync).",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]),
            )?,
            audit_rows: audit_rows()?,
            routes: crate::routing::RouteMetrics::new(registry)?,
            guard: crate::guard::GuardMetrics::new(registry)?,
        };
        registry.register(Box::new(m.downstream_up.clone()))?;
        registry.register(Box::new(m.circuit_state.clone()))?;
        registry.register(Box::new(m.proxied_calls.clone()))?;
        registry.register(Box::new(m.proxied_duration.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.list_changed.clone()))?;
        registry.register(Box::new(m.rate_limited.clone()))?;
        registry.register(Box::new(m.policy_denied.clone()))?;
        registry.register(Box::new(m.endpoint_tools.clone()))?;
        registry.register(Box::new(m.endpoint_calls.clone()))?;
        registry.register(Box::new(m.approvals.clone()))?;
        registry.register(Box::new(m.approvals_pending.clone()))?;
        registry.register(Box::new(m.approval_decision.clone()))?;
        registry.register(Box::new(m.workflows.clone()))?;
        registry.register(Box::new(m.workflows_active.clone()))?;
        registry.register(Box::new(m.workflow_duration.clone()))?;
        registry.register(Box::new(m.workflow_step_failures.clone()))?;
        registry.register(Box::new(m.workflow_checkpoint.clone()))?;
        registry.register(Box::new(m.workflow_checkpoint_batch.clone()))?;
        registry.register(Box::new(m.audit_rows.clone()))?;
        for status in [
            "started",
            "completed",
            "failed",
            "cancelled",
            "needs_attention",
        ] {
            m.workflows.with_label_values(&[status]);
        }
        for status in ["running", "waiting_approval", "needs_attention"] {
            m.workflows_active.with_label_values(&[status]);
        }
        for decision in ["requested", "approved", "denied"] {
            m.approvals.with_label_values(&[decision]);
        }
        for source in ["call", "step", "approval", "route"] {
            for outcome in ["written", "failed", "lost"] {
                m.audit_rows.with_label_values(&[source, outcome]);
            }
        }
        Ok(m)
    }

    /// Sets the per-downstream gauges from current state.
    pub fn refresh_downstreams(&self, downstreams: &[Arc<Downstream>]) {
        for d in downstreams {
            self.downstream_up
                .with_label_values(&[d.name()])
                .set(i64::from(d.is_up()));
            let state = match d.circuit_state() {
                CircuitState::Closed => 0,
                CircuitState::HalfOpen => 1,
                CircuitState::Open => 2,
            };
            self.circuit_state.with_label_values(&[d.name()]).set(state);
        }
    }
}
