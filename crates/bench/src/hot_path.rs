//! Hot-path phase: the real cmdb's `getHost` called directly and through master, both as shipped
//! (default config and log level), at 1, 10 and 100 clients in alternating rounds, with clients
//! that keep their connections. Reports master's CPU per proxied call against the CPU cmdb itself
//! spends on the same calls (the ratio the hot-path issue sets a target for), added p50 and p95,
//! the throughput ratio, and master's RSS idle, at peak and after the bursts.

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{
    Args, Op, Proc, cpu_seconds, free_port, load_over, median, sibling, spawn, wait_ready,
    write_master_config,
};

/// The report's heading of this phase.
pub(crate) const HEADING: &str = "## Hot path: master against the server it fronts";

/// Client counts of each round.
const CLIENTS: [usize; 3] = [1, 10, 100];

/// Resident set size of a process, in MB (from /proc).
pub(crate) fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// One phase's figures.
#[derive(Clone, Copy)]
pub(crate) struct Phase {
    pub(crate) p50: f64,
    p95: f64,
    throughput: f64,
    pub(crate) errors: usize,
    /// CPU ms per call of master (proxied phases) and of cmdb.
    pub(crate) master_cpu: f64,
    cmdb_cpu: f64,
}

/// `getHost aicrusher` through `tool` at `url` by `clients` clients that keep their connections
/// (and send `Authorization: Bearer <token>` when given), with master's and cmdb's CPU per call.
pub(crate) async fn phase(
    url: &str,
    tool: &'static str,
    clients: usize,
    args: &Args,
    master: Option<&Proc>,
    cmdb: &Proc,
    token: Option<&str>,
) -> anyhow::Result<Phase> {
    let pooled = || {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))?,
            );
        }
        Ok(reqwest::Client::builder()
            .default_headers(headers)
            .build()?)
    };
    let op = Arc::new(Op::Repeat(
        tool,
        serde_json::json!({"name": "aicrusher"}),
        1,
    ));
    let max = if clients == 1 { args.calls } else { usize::MAX };
    let d = Duration::from_secs_f64(args.duration);
    let master_cpu = || master.and_then(|m| cpu_seconds(m.pid()));
    let (m0, c0) = (master_cpu(), cpu_seconds(cmdb.pid()));
    let s = load_over(url, Some(&pooled), op, clients, max, d).await?;
    let (m1, c1) = (master_cpu(), cpu_seconds(cmdb.pid()));
    let calls = (s.calls + s.errors).max(1) as f64;
    let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (b - a) * 1000.0 / calls,
        _ => f64::NAN,
    };
    Ok(Phase {
        p50: s.p50,
        p95: s.p95,
        throughput: s.throughput(),
        errors: s.errors,
        master_cpu: per(m0, m1),
        cmdb_cpu: per(c0, c1),
    })
}

pub(crate) async fn measure(args: &Args) -> anyhow::Result<String> {
    let work = tempfile::tempdir()?;
    let cmdb_port = free_port()?;
    let cmdb = super::spawn_cmdb(work.path(), cmdb_port, false, &[])?;
    wait_ready(&format!("http://127.0.0.1:{cmdb_port}/ready"), "cmdb").await?;
    // The current master, and the baseline build when one is given, in front of the same cmdb.
    let mut masters: Vec<(&str, Proc, String)> = Vec::new();
    let mut bins = vec![("current", sibling("mcp-master")?)];
    if let Some(b) = &args.baseline_master {
        bins.push(("baseline", b.clone()));
    }
    for (name, bin) in bins {
        let port = free_port()?;
        let cfg = work.path().join(format!("master-hot-{name}.toml"));
        write_master_config(
            &cfg,
            &[("cmdb", format!("http://127.0.0.1:{cmdb_port}/mcp"))],
        )?;
        let proc = spawn(
            "master",
            Command::new(bin)
                .arg("--config")
                .arg(&cfg)
                .env("MCP_SERVER_PORT", port.to_string()),
        )?;
        wait_ready(&format!("http://127.0.0.1:{port}/ready"), name).await?;
        masters.push((name, proc, format!("http://127.0.0.1:{port}/mcp")));
    }
    let direct = format!("http://127.0.0.1:{cmdb_port}/mcp");
    let master = &masters[0].1;
    let idle = rss_mb(master.pid()).unwrap_or(f64::NAN);
    // Master's peak RSS, sampled every 100 ms while the rounds run.
    let peak = Arc::new(AtomicU64::new(idle.to_bits()));
    let sampler = {
        let (peak, pid) = (peak.clone(), master.pid());
        tokio::spawn(async move {
            loop {
                if let Some(mb) = rss_mb(pid)
                    && mb > f64::from_bits(peak.load(Ordering::Relaxed))
                {
                    peak.store(mb.to_bits(), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let rounds = args.baseline_rounds.max(1);
    let mut rows = String::new();
    // Paths: direct, then each master. per[clients][path] → phases over the rounds.
    let paths: Vec<(&str, &str, &'static str, Option<&Proc>)> =
        std::iter::once(("direct", direct.as_str(), "getHost", None))
            .chain(
                masters
                    .iter()
                    .map(|(name, p, url)| (*name, url.as_str(), "cmdb_getHost", Some(p))),
            )
            .collect();
    let mut per: Vec<Vec<Vec<Phase>>> = CLIENTS
        .iter()
        .map(|_| paths.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 1..=rounds {
        for (ci, &clients) in CLIENTS.iter().enumerate() {
            // Rotate which path goes first, so a drift within a round falls on all alike.
            let mut order: Vec<usize> = (0..paths.len()).collect();
            order.rotate_left(round % paths.len());
            for i in order {
                let (name, url, tool, master) = paths[i];
                eprintln!("[hot path] round {round}, {clients} clients, {name}");
                let p = phase(url, tool, clients, args, master, &cmdb, None).await?;
                let _ = writeln!(
                    rows,
                    "| {round} | {clients} | {name} | {:.3} | {:.3} | {:.0} | {} | {} | {:.3} |",
                    p.p50,
                    p.p95,
                    p.throughput,
                    p.errors,
                    if master.is_some() {
                        format!("{:.3}", p.master_cpu)
                    } else {
                        String::new()
                    },
                    p.cmdb_cpu
                );
                per[ci][i].push(p);
            }
        }
    }
    sampler.abort();
    // After the bursts: every session closed; master's RSS once it settles (10 s).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = rss_mb(master.pid()).unwrap_or(f64::NAN);
    let peak = f64::from_bits(peak.load(Ordering::Relaxed));

    let mut out = format!("{HEADING}\n\n");
    let _ = writeln!(
        out,
        "The real cmdb's `getHost` (one host, all fields) directly and through `mcp-master`, both as shipped (default config and log level, stdout to /dev/null; audit rows in SQLite), {rounds} rounds rotating which path goes first, at 1, 10 and 100 clients ({} calls at 1 client, {} s per phase otherwise). Each client is an rmcp session over a reqwest client that keeps its connection. CPU per call is the process's user + system time over the phase ÷ calls; \"cmdb CPU\" in a proxied row is what cmdb spent on the same calls, so master ÷ cmdb is the gateway's cost relative to the server it fronts.\n",
        args.calls, args.duration
    );
    out.push_str("| master | clients | added p50 (ms) | added p95 (ms) | proxied / direct throughput | master CPU per call (ms) | cmdb CPU per call (ms) | master ÷ cmdb | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (mi, (name, _, _)) in masters.iter().enumerate() {
        for (ci, &clients) in CLIENTS.iter().enumerate() {
            let (d, p) = (&per[ci][0], &per[ci][mi + 1]);
            let m = |v: &[Phase], f: fn(&Phase) -> f64| median(v.iter().map(f).collect());
            let master_cpu = m(p, |x| x.master_cpu);
            let cmdb_cpu = m(p, |x| x.cmdb_cpu);
            let errors: usize = d.iter().chain(p).map(|x| x.errors).sum();
            let _ = writeln!(
                out,
                "| {name} | {clients} | {:+.3} | {:+.3} | {:.2}× | {master_cpu:.3} | {cmdb_cpu:.3} | {:.2} | {errors} |",
                m(p, |x| x.p50) - m(d, |x| x.p50),
                m(p, |x| x.p95) - m(d, |x| x.p95),
                m(p, |x| x.throughput) / m(d, |x| x.throughput),
                master_cpu / cmdb_cpu,
            );
        }
    }
    if masters.len() > 1 {
        out.push_str("\n\"baseline\" is the `--baseline-master` build, measured in the same rounds in front of the same cmdb; RSS figures are the current master's.\n");
    }
    let _ = writeln!(
        out,
        "\nMaster's RSS: {idle:.1} MB idle, {peak:.1} MB at peak, {after:.1} MB 10 s after the last burst ({:+.0} % of idle).\n\nEvery phase (medians above are over these):\n",
        (after / idle - 1.0) * 100.0
    );
    out.push_str("| round | clients | path | p50 (ms) | p95 (ms) | calls/s | errors | master CPU per call (ms) | cmdb CPU per call (ms) |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&rows);
    drop(masters);
    drop(cmdb);
    Ok(out)
}
