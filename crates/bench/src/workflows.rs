//! Workflow phase: `mcp-stack` as a process, N clients each running one 3-step workflow
//! (`cmdb_getHost` three times, each step templated from the one before) at the same time, against
//! the same three calls made by the clients themselves; checkpoint cost from master's histogram.

use std::fmt::Write as _;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Op, Stats, free_port, load, sibling, spawn, wait_ready};

fn definition() -> Value {
    json!({"name": "bench3", "steps": [
        {"id": "a", "service": "cmdb", "tool": "getHost", "params": {"name": "aicrusher"}},
        {"id": "b", "service": "cmdb", "tool": "getHost", "needs": ["a"], "params": {"name": "{{ steps.a.result.host.name }}"}},
        {"id": "c", "service": "cmdb", "tool": "getHost", "needs": ["b"], "params": {"name": "{{ steps.b.result.host.name }}"}}
    ]})
}

/// What the phase measured.
pub(crate) struct WorkflowStats {
    pub runs: Stats,
    pub direct: Stats,
    pub checkpoints: u64,
    pub checkpoint_mean_ms: f64,
    /// Transactions (fsyncs) that committed them.
    pub transactions: u64,
    pub steps: u64,
    pub clients: usize,
}

/// Sum and count of a histogram in a Prometheus text page.
fn histogram(page: &str, name: &str) -> (f64, f64) {
    let get = |suffix: &str| {
        page.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix} ")))
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (get("sum"), get("count"))
}

/// `clients` sessions, each running `op` `per_client` times.
async fn rounds(url: &str, op: Op, clients: usize, per_client: usize) -> anyhow::Result<Stats> {
    load(
        url,
        Arc::new(op),
        clients,
        per_client,
        Duration::from_secs(3600),
    )
    .await
}

fn workflow() -> Op {
    Op::Workflow(definition())
}

fn three_calls() -> Op {
    Op::Repeat("cmdb_getHost", json!({"name": "aicrusher"}), 3)
}

pub(crate) async fn measure(clients: usize, per_client: usize) -> anyhow::Result<WorkflowStats> {
    let work = tempfile::tempdir()?;
    let master = free_port()?;
    let mut cmd = std::process::Command::new(sibling("mcp-stack")?);
    cmd.current_dir(work.path())
        .env("MCP_SERVER_LOG_LEVEL", "error")
        .env("RUST_LOG", "error")
        .env("MCP_FREQTRADE_REPO_URL", "")
        .env("MCP_PORTS_MASTER", master.to_string());
    for name in ["LINUX", "CMDB", "SECRETS", "K8S", "AI_MODELS", "FREQTRADE"] {
        cmd.env(format!("MCP_PORTS_{name}"), free_port()?.to_string());
    }
    let _stack = spawn("mcp-stack", &mut cmd)?;
    wait_ready(&format!("http://127.0.0.1:{master}/ready"), "mcp-stack").await?;
    let url = format!("http://127.0.0.1:{master}/mcp");
    // `load` warms every session up with one operation first.
    let metrics = format!("http://127.0.0.1:{master}/metrics");
    let before = reqwest::get(&metrics).await?.text().await?;
    let runs = rounds(&url, workflow(), clients, per_client).await?;
    let after = reqwest::get(&metrics).await?.text().await?;
    let direct = rounds(&url, three_calls(), clients, per_client).await?;
    let (s0, c0) = histogram(&before, "mcp_workflow_checkpoint_seconds");
    let (s1, c1) = histogram(&after, "mcp_workflow_checkpoint_seconds");
    let checkpoints = (c1 - c0).max(0.0);
    let (_, b0) = histogram(&before, "mcp_workflow_checkpoint_batch_size");
    let (_, b1) = histogram(&after, "mcp_workflow_checkpoint_batch_size");
    // Runs in the window, warm-up included (the checkpoints count them too).
    let started = |page: &str| {
        page.lines()
            .find(|l| l.starts_with("mcp_workflows_total{status=\"started\"} "))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let steps = ((started(&after) - started(&before)) * 3.0).max(0.0);
    Ok(WorkflowStats {
        checkpoint_mean_ms: if checkpoints > 0.0 {
            (s1 - s0) / checkpoints * 1000.0
        } else {
            0.0
        },
        checkpoints: checkpoints as u64,
        transactions: (b1 - b0).max(0.0) as u64,
        steps: steps as u64,
        runs,
        direct,
        clients,
    })
}

/// The `## Workflows` section of the report.
/// The report's heading of this phase.
pub(crate) const HEADING: &str = "## Workflows";

pub(crate) fn section(w: &WorkflowStats) -> String {
    let mut out = format!("{HEADING}\n\n");
    let _ = writeln!(
        out,
        "{} clients at once, each running a 3-step workflow (`cmdb_getHost` three times, each step's `name` templated from the previous result) through `mcp-stack` with `orchestrator_executeWorkflow` and waiting for it, against the same three calls made by each client itself. Checkpoints are SQLite writes in WAL mode with `synchronous=FULL`, group-committed by one writer thread (each write in its own savepoint; a step goes on only once its write is durable); figures from master's `mcp_workflow_checkpoint_seconds` and `mcp_workflow_checkpoint_batch_size` histograms.\n",
        w.clients
    );
    out.push_str("| scenario | runs | errors | p50 ms | p95 ms | p99 ms | runs/s |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (name, s) in [
        ("workflow (3 steps)", &w.runs),
        ("client makes the 3 calls", &w.direct),
    ] {
        let _ = writeln!(out, "| {name} | {} |", s.cells());
    }
    let per_step = if w.steps > 0 {
        w.checkpoints as f64 / w.steps as f64
    } else {
        0.0
    };
    let per_fsync = if w.transactions > 0 {
        w.checkpoints as f64 / w.transactions as f64
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "\nCheckpoints: {} writes for {} steps ({per_step:.2} per step: running and finished, plus the run's start and end), committed in {} transactions (fsyncs), {per_fsync:.1} writes per fsync. A write waited {:.3} ms on average until durable, so a step spends about {:.3} ms waiting for its checkpoints (latency, not CPU: other runs go on meanwhile). The difference between the two rows is the engine's whole cost (validation, templating, checkpoints, scheduling) while {} runs compete for the machine's cores.",
        w.checkpoints,
        w.steps,
        w.transactions,
        w.checkpoint_mean_ms,
        w.checkpoint_mean_ms * per_step,
        w.clients
    );
    out
}
