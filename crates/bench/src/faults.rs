//! `--faults-only`: what one failing downstream does to master and its other namespaces, under load.
//! Master (the binary next to mcp-bench) fronts two CMDB processes: `cmdb`, which stays healthy,
//! and `victim`, reached through a fault proxy in this process. Each scenario runs a phase before,
//! during and after a fault of the victim while half the clients call `cmdb_getHost` and half
//! `victim_getHost`:
//!
//! - killed: the victim's process SIGKILLed, started again when the fault ends;
//! - hung: the proxy accepts and reads, and never answers;
//! - slow: the proxy holds every answer 5 s (master's call timeout for the victim is 2 s);
//! - flapping: the victim killed and started again every second;
//! - garbage: the proxy answers every request with HTTP 200 and a body that is not JSON-RPC.
//!
//! Reported per scenario: calls; errors that were expected (a victim call from the fault's start
//! until the victim's recovery) and unexpected (any other: on `cmdb`, or on the victim before the
//! fault); `cmdb`'s p50/p95/p99 before, during and after; the victim's p50 failure
//! time once its circuit is open; the time from the fault's end to the end of the victim's last failure; and
//! whether master's audit trail has one row per call.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Proc, free_port, spawn_cmdb, wait_ready};

pub(crate) const HEADING: &str = "## Downstream faults";

/// What the proxy in front of the victim does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Hang,
    Slow,
    Garbage,
}

const SLOW: Duration = Duration::from_secs(5);
/// Master's call timeout for the victim (`timeout_secs`).
const VICTIM_TIMEOUT: Duration = Duration::from_secs(2);
const GARBAGE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 29\r\nconnection: close\r\n\r\n{\"jsonrpc\": \"2.0\", \"id\": ,,}";

/// The fault proxy: every change of mode closes the connections of the previous one, so pooled
/// connections see the new fault at once.
async fn proxy(listener: TcpListener, backend: u16, mode: watch::Receiver<Mode>) {
    while let Ok((client, _)) = listener.accept().await {
        let mut mode = mode.clone();
        let now = *mode.borrow_and_update();
        tokio::spawn(async move {
            tokio::select! {
                () = serve(client, backend, now) => {}
                _ = mode.changed() => {}
            }
        });
    }
}

async fn serve(mut client: TcpStream, backend: u16, mode: Mode) {
    let mut buf = vec![0u8; 64 * 1024];
    match mode {
        Mode::Hang => while client.read(&mut buf).await.is_ok_and(|n| n > 0) {},
        Mode::Garbage => {
            if client.read(&mut buf).await.is_ok_and(|n| n > 0) {
                let _ = client.write_all(GARBAGE).await;
            }
        }
        Mode::Pass | Mode::Slow => {
            let Ok(server) = TcpStream::connect(("127.0.0.1", backend)).await else {
                return;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            // Slow: the first bytes of every answer wait, once per request sent.
            let asked = Arc::new(AtomicBool::new(false));
            let up = {
                let asked = asked.clone();
                async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        asked.store(true, Ordering::Release);
                    }
                }
            };
            let down = async move {
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if mode == Mode::Slow && asked.swap(false, Ordering::AcqRel) {
                        tokio::time::sleep(SLOW).await;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            };
            tokio::join!(up, down);
        }
    }
}

/// One call a client made.
struct Sample {
    victim: bool,
    start: Instant,
    end: Instant,
    ok: bool,
}

/// The victim's backend: a CMDB on a fixed port, started and killed at will.
struct Victim {
    dir: std::path::PathBuf,
    port: u16,
    proc: Option<Proc>,
}

impl Victim {
    async fn start(&mut self) -> anyhow::Result<()> {
        self.proc = Some(spawn_cmdb(&self.dir, self.port, true, &[])?);
        wait_ready(&format!("http://127.0.0.1:{}/ready", self.port), "victim").await
    }

    fn kill(&mut self) {
        self.proc = None;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The result of one scenario.
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) calls: usize,
    pub(crate) expected: usize,
    pub(crate) unexpected: usize,
    /// `cmdb`'s p50/p95/p99 in ms before, during and after.
    pub(crate) other: [[f64; 3]; 3],
    pub(crate) fail_fast_p50: f64,
    /// The longest victim call: bounded by the victim's timeout whatever the fault.
    pub(crate) longest_victim_ms: f64,
    pub(crate) recovery_s: f64,
}

/// Runs the scenarios with `clients` clients and phases of `phase` each; the report section and
/// whether every row held (0 unexpected errors, audit rows == calls).
pub(crate) async fn measure(clients: usize, phase: Duration) -> anyhow::Result<(String, bool)> {
    let work = tempfile::tempdir()?;
    let cmdb_port = free_port()?;
    let _cmdb = spawn_cmdb(work.path(), cmdb_port, true, &[])?;
    wait_ready(&format!("http://127.0.0.1:{cmdb_port}/ready"), "cmdb").await?;
    let victim_dir = work.path().join("victim");
    std::fs::create_dir_all(&victim_dir)?;
    let mut victim = Victim {
        dir: victim_dir,
        port: free_port()?,
        proc: None,
    };
    victim.start().await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_port = listener.local_addr()?.port();
    let (mode, mode_rx) = watch::channel(Mode::Pass);
    tokio::spawn(proxy(listener, victim.port, mode_rx));

    let audit = work.path().join("audit.sqlite");
    let cfg = work.path().join("master.toml");
    std::fs::write(
        &cfg,
        format!(
            "[master]\nseed_env = false\naudit_db = {:?}\nhealth_interval_ms = 250\nreconnect_max_ms = 500\n\
             [master.circuit]\nfailure_threshold = 5\nopen_secs = 1\n\
             [[master.downstream]]\nname = \"cmdb\"\nurl = \"http://127.0.0.1:{cmdb_port}/mcp\"\n\
             [[master.downstream]]\nname = \"victim\"\nurl = \"http://127.0.0.1:{proxy_port}/mcp\"\ntimeout_secs = {}\n",
            audit.display().to_string(),
            VICTIM_TIMEOUT.as_secs()
        ),
    )?;
    let master_port = free_port()?;
    let _master = super::spawn_master(&cfg, master_port).await?;
    let url = format!("http://127.0.0.1:{master_port}/mcp");

    let mut rows = Vec::new();
    let mut total_calls = 0;
    for name in ["killed", "hung", "slow", "flapping", "garbage"] {
        let row = scenario(name, &url, clients, phase, &mode, &mut victim).await?;
        total_calls += row.calls;
        rows.push(row);
    }
    let rows_in_audit = audit_rows(&audit, total_calls).await;
    let audit_ok = rows_in_audit == total_calls as i64;
    let bound = ms(VICTIM_TIMEOUT + Duration::from_millis(750));
    let held = audit_ok
        && rows
            .iter()
            .all(|r| r.unexpected == 0 && r.longest_victim_ms < bound);
    Ok((
        section(&rows, clients, phase, total_calls, rows_in_audit),
        held,
    ))
}

async fn audit_rows(db: &Path, want: usize) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = rusqlite_count(db);
        if n == want as i64 || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rusqlite_count(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM audit WHERE tool IN ('cmdb_getHost', 'victim_getHost')",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(-1)
}

async fn scenario(
    name: &'static str,
    url: &str,
    clients: usize,
    phase: Duration,
    mode: &watch::Sender<Mode>,
    victim: &mut Victim,
) -> anyhow::Result<Row> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    // Half the clients call the victim, half the healthy CMDB: a client waiting on the victim
    // must not hide what happens to the other namespace.
    for i in 0..clients {
        let c = ().serve(StreamableHttpClientTransport::from_uri(url.to_owned())).await?;
        let stop = stop.clone();
        let victim_turn = i % 2 == 0;
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let tool = if victim_turn {
                    "victim_getHost"
                } else {
                    "cmdb_getHost"
                };
                let start = Instant::now();
                let r = c
                    .call_tool(
                        CallToolRequestParams::new(tool).with_arguments(super::arguments(
                            &serde_json::json!({"name": "aicrusher"}),
                        )),
                    )
                    .await;
                let ok = r.is_ok_and(|r| r.is_error != Some(true));
                samples.push(Sample {
                    victim: victim_turn,
                    start,
                    end: Instant::now(),
                    ok,
                });
                if !ok {
                    // A failed call is answered at once once the circuit is open; do not spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let _ = c.cancel().await;
            samples
        }));
    }
    tokio::time::sleep(phase).await;
    let fault_start = Instant::now();
    match name {
        "killed" => victim.kill(),
        "hung" => {
            mode.send_replace(Mode::Hang);
        }
        "slow" => {
            mode.send_replace(Mode::Slow);
        }
        "garbage" => {
            mode.send_replace(Mode::Garbage);
        }
        _ => {}
    }
    if name == "flapping" {
        let end = fault_start + phase;
        while Instant::now() < end {
            victim.kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
            victim.start().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    } else {
        tokio::time::sleep(phase).await;
    }
    let fault_end = Instant::now();
    mode.send_replace(Mode::Pass);
    if victim.proc.is_none() {
        victim.start().await?;
    }
    tokio::time::sleep(phase).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await?);
    }
    let after_end = Instant::now();
    // Recovery: from the end of the fault to the end of the victim's last failed call (after it,
    // every victim call succeeded), so a relapse after a first success counts as not recovered.
    let recovered = samples
        .iter()
        .filter(|s| s.victim && !s.ok && s.end >= fault_end)
        .map(|s| s.end)
        .max()
        .unwrap_or(fault_end)
        .min(after_end);
    let mut expected = 0;
    let mut unexpected = 0;
    for s in samples.iter().filter(|s| !s.ok) {
        // A victim call overlapping the fault or the victim's recovery was expected to fail;
        // anything else (the healthy namespace, the victim before the fault) was not.
        if s.victim && s.end >= fault_start {
            expected += 1;
        } else {
            unexpected += 1;
        }
    }
    let other = [
        (None, Some(fault_start)),
        (Some(fault_start), Some(fault_end)),
        (Some(fault_end), None),
    ]
    .map(|(from, to)| {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|s| {
                !s.victim && from.is_none_or(|f| s.start >= f) && to.is_none_or(|t| s.start < t)
            })
            .map(|s| ms(s.end - s.start))
            .collect();
        v.sort_by(f64::total_cmp);
        [
            percentile(&v, 0.5),
            percentile(&v, 0.95),
            percentile(&v, 0.99),
        ]
    });
    // Fail-fast: victim failures in the second half of the fault (the circuit open by then).
    let half = fault_start + (fault_end - fault_start) / 2;
    let mut fast: Vec<f64> = samples
        .iter()
        .filter(|s| s.victim && !s.ok && s.start >= half && s.end <= fault_end)
        .map(|s| ms(s.end - s.start))
        .collect();
    fast.sort_by(f64::total_cmp);
    let longest = samples
        .iter()
        .filter(|s| s.victim)
        .map(|s| ms(s.end - s.start))
        .fold(0.0, f64::max);
    Ok(Row {
        name,
        calls: samples.len(),
        expected,
        unexpected,
        other,
        fail_fast_p50: percentile(&fast, 0.5),
        longest_victim_ms: longest,
        recovery_s: (recovered - fault_end).as_secs_f64(),
    })
}

/// The seed's KPIs for what callers of the healthy namespace and the unexpected failures saw:
/// error rate under 1 %, p95 under 500 ms during the fault.
fn kpis(r: &Row) -> &'static str {
    let errors = r.unexpected as f64 / r.calls.max(1) as f64;
    if errors < 0.01 && r.other[1][1] < 500.0 {
        "met (errors < 1 %, p95 < 500 ms)"
    } else {
        "MISSED"
    }
}

fn section(rows: &[Row], clients: usize, phase: Duration, calls: usize, audit: i64) -> String {
    let mut out = format!(
        "{HEADING}\n\n`target/release/mcp-bench --faults-only --fault-clients {clients} --fault-phase-secs {}` \
         (one release master in front of two release CMDBs, `cmdb` and `victim`, the victim behind a \
         fault proxy; {clients} clients, half calling `cmdb_getHost`, half `victim_getHost`; phases of \
         {} s before, during and after each fault; victim `timeout_secs = 2`, circuit \
         `failure_threshold = 5`, `open_secs = 1`):\n\n\
         | fault | calls | expected errors | unexpected errors | `cmdb` p50/p95/p99 before (ms) | during | after | victim failure p50, circuit open (ms) | longest victim call (ms) | victim back after (s) | KPIs |\n\
         |---|---:|---:|---:|---|---|---|---:|---:|---:|---|\n",
        phase.as_secs(),
        phase.as_secs()
    );
    let fmt = |p: [f64; 3]| format!("{:.1} / {:.1} / {:.1}", p[0], p[1], p[2]);
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.0} | {:.2} | {} |",
            r.name,
            r.calls,
            r.expected,
            r.unexpected,
            fmt(r.other[0]),
            fmt(r.other[1]),
            fmt(r.other[2]),
            r.fail_fast_p50,
            r.longest_victim_ms,
            r.recovery_s,
            kpis(r)
        );
    }
    let _ = writeln!(
        out,
        "\nAudit: {audit} rows for {calls} calls ({}).",
        if audit == calls as i64 {
            "one per call"
        } else {
            "MISMATCH"
        }
    );
    out
}
