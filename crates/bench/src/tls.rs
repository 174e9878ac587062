//! TLS phase: master and the fixture serving HTTPS, master calling the fixture over HTTPS (both hops
//! TLS, certificates from a CA made for the run), beside the same pair over plain HTTP, measured in
//! interleaved rounds: p50 at one client, throughput and master's CPU per call at `--clients`.

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mcp_test_support::pki::Pki;

use crate::{
    Args, Op, Proc, cpu_seconds, free_port, load_over, median, sibling, spawn, wait_ready_over,
    write_master_config,
};

/// The report's heading of this phase.
pub(crate) const HEADING: &str = "## TLS on both hops";

/// One fixture and one master in front of it, both plain or both TLS.
struct Pair {
    name: &'static str,
    url: String,
    master: Proc,
    _fixture: Proc,
}

fn start(name: &'static str, work: &std::path::Path, pki: Option<&Pki>) -> anyhow::Result<Pair> {
    let (fixture_port, master_port) = (free_port()?, free_port()?);
    let scheme = if pki.is_some() { "https" } else { "http" };
    let mut env: Vec<(&str, String)> = vec![
        ("MCP_SERVER_LOG_LEVEL", "error".to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    if let Some(p) = pki {
        let path = |f: &str| p.path(f).display().to_string();
        env.extend([
            ("MCP_SERVER_TLS_CERT_FILE", path("server.pem")),
            ("MCP_SERVER_TLS_KEY_FILE", path("server.key")),
            ("MCP_SERVER_TLS_CA_FILE", path("ca.pem")),
        ]);
    }
    let fixture = spawn(
        "fixture",
        Command::new(sibling("mcp-conformance-fixture")?)
            .env("MCP_SERVER_PORT", fixture_port.to_string())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    )?;
    let cfg = work.join(format!("master-{name}.toml"));
    write_master_config(
        &cfg,
        &[(
            "fixture",
            format!("{scheme}://127.0.0.1:{fixture_port}/mcp"),
        )],
    )?;
    let master = spawn(
        "master",
        Command::new(sibling("mcp-master")?)
            .arg("--config")
            .arg(&cfg)
            .env("MCP_SERVER_PORT", master_port.to_string())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    )?;
    Ok(Pair {
        name,
        url: format!("{scheme}://127.0.0.1:{master_port}/mcp"),
        master,
        _fixture: fixture,
    })
}

pub(crate) async fn measure(args: &Args) -> anyhow::Result<String> {
    let work = tempfile::tempdir()?;
    let pki = Pki::new(&work.path().join("pki"));
    let plain = start("plain", work.path(), None)?;
    let tls = start("tls", work.path(), Some(&pki))?;
    let http = pki.client_builder(None).build()?;
    for p in [&plain, &tls] {
        let ready = p.url.replace("/mcp", "/ready");
        wait_ready_over(&http, &ready, p.name).await?;
    }
    // Both pairs with clients that keep their connections (rmcp's default client opens one per
    // request, which would put a TCP or TLS handshake on every call).
    let pooled = || Ok(reqwest::Client::new());
    let trusted = || Ok(pki.client_builder(None).build()?);
    let d = Duration::from_secs_f64(args.duration);
    let op = Arc::new(Op::Call("fixture_test_simple_text"));
    let rounds = args.baseline_rounds.max(1);
    let mut out = format!("{HEADING}\n\n");
    let _ = writeln!(
        out,
        "Master and the conformance fixture behind it, both serving HTTPS with certificates from a CA made for the run (rustls, TLS 1.3), master calling the fixture over HTTPS; beside the same pair over plain HTTP, in {rounds} interleaved rounds. Each client keeps its connection (one handshake per client; a reqwest client with its default pool, where rmcp's default client, used by the phases above, opens a connection per request), so the rows show what TLS costs per call once connected: 1-client p50, and throughput and master's CPU per call at {} clients.\n",
        args.clients
    );
    out.push_str("| round | hops | p50, 1 client (ms) | calls/s, N clients | errors | master CPU per call (ms) |\n|---:|---|---:|---:|---:|---:|\n");
    let mut per: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        // Alternate which pair goes first, so a drift within a round falls on both alike.
        let mut order: [(usize, &Pair, crate::MakeClient<'_>); 2] =
            [(0, &plain, &pooled), (1, &tls, &trusted)];
        if round % 2 == 0 {
            order.reverse();
        }
        for (i, pair, client) in order {
            eprintln!("[tls] round {round}, {}", pair.name);
            let one = load_over(&pair.url, Some(client), op.clone(), 1, args.calls, d).await?;
            let cpu0 = cpu_seconds(pair.master.pid());
            let many = load_over(
                &pair.url,
                Some(client),
                op.clone(),
                args.clients,
                usize::MAX,
                d,
            )
            .await?;
            let cpu1 = cpu_seconds(pair.master.pid());
            let calls = (many.calls + many.errors + args.clients).max(1);
            let cpu = match (cpu0, cpu1) {
                (Some(a), Some(b)) => (b - a) * 1000.0 / calls as f64,
                _ => f64::NAN,
            };
            per[i].push((one.p50, many.throughput(), cpu));
            let _ = writeln!(
                out,
                "| {round} | {} | {:.3} | {:.0} | {} | {cpu:.3} |",
                pair.name,
                one.p50,
                many.throughput(),
                one.errors + many.errors
            );
        }
    }
    let mut med = Vec::new();
    for (i, name) in ["plain", "tls"].iter().enumerate() {
        let p50 = median(per[i].iter().map(|r| r.0).collect());
        let tput = median(per[i].iter().map(|r| r.1).collect());
        let cpu = median(per[i].iter().map(|r| r.2).collect());
        med.push((p50, tput, cpu));
        let _ = writeln!(
            out,
            "| median | {name} | {p50:.3} | {tput:.0} | | {cpu:.3} |"
        );
    }
    if let [(p0, t0, c0), (p1, t1, c1)] = med[..] {
        let _ = writeln!(
            out,
            "\nTLS on both hops against plain: p50 at 1 client {:+.3} ms, throughput at {} clients {:.2}×, master's CPU per call {:.2}×.",
            p1 - p0,
            args.clients,
            t1 / t0,
            c1 / c0
        );
    }
    Ok(out)
}
