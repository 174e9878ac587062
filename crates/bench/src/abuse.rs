//! `--abuse-only`: what idle, many and never-reading clients cost the release CMDB, and whether an
//! ordinary client is still served beside them. 10 000 streamable-HTTP sessions opened and left
//! idle (then expired by `session_idle_secs`), 1 000 legacy SSE streams held open, and one SSE
//! client that never reads its stream while 5 000 requests are answered onto it. RSS from /proc,
//! the sessions gauge from `/metrics`, and the p50 of an ordinary client's `getHost` before,
//! during and after each.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{free_port, hot_path::rss_mb, spawn_cmdb, wait_ready};

pub(crate) const HEADING: &str = "## Resource abuse";

const IDLE_SESSIONS: usize = 10_000;
const SSE_STREAMS: usize = 1_000;
const UNREAD_ANSWERS: usize = 5_000;
const IDLE_SECS: u64 = 15;
const ACCEPT: &str = "application/json, text/event-stream";

/// The sessions gauge of one transport, from `/metrics`.
async fn sessions(http: &reqwest::Client, base: &str, transport: &str) -> f64 {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return f64::NAN,
    };
    let key = format!("mcp_sessions_active{{service=\"cmdb\",transport=\"{transport}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// RSS once it has stopped falling (freed memory goes back to the system in steps): two readings
/// 500 ms apart within 1 MB, or the last after 20 s.
async fn settled_rss(pid: u32) -> f64 {
    let mut last = rss_mb(pid).unwrap_or(f64::NAN);
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_mb(pid).unwrap_or(f64::NAN);
        if (last - now).abs() < 1.0 {
            return now;
        }
        last = now;
    }
    last
}

/// p50 in ms of 100 `getHost` calls of one ordinary client.
async fn probe(url: &str) -> anyhow::Result<f64> {
    let c = ().serve(StreamableHttpClientTransport::from_uri(url.to_owned())).await?;
    let mut times = Vec::with_capacity(100);
    for _ in 0..100 {
        let t = Instant::now();
        c.call_tool(
            CallToolRequestParams::new("getHost").with_arguments(super::arguments(
                &serde_json::json!({"hostname": "aicrusher"}),
            )),
        )
        .await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = c.cancel().await;
    Ok(super::median(times))
}

pub(crate) async fn measure() -> anyhow::Result<String> {
    let work = tempfile::tempdir()?;
    let port = free_port()?;
    // A short idle expiry, so that the expiry is seen in the run.
    let idle = IDLE_SECS.to_string();
    let cmdb = spawn_cmdb(
        work.path(),
        port,
        true,
        &[("MCP_SERVER_SESSION_IDLE_SECS", idle.as_str())],
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let mcp = format!("{base}/mcp");
    wait_ready(&format!("{base}/ready"), "cmdb").await?;
    let pid = cmdb.pid();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let mut rows: Vec<String> = Vec::new();
    let rss = || rss_mb(pid).unwrap_or(f64::NAN);
    let before = (rss(), probe(&mcp).await?);
    rows.push(format!(
        "| start | {:.1} MB | – | {:.2} ms | |",
        before.0, before.1
    ));

    // 10 000 sessions: initialize, then nothing.
    let t = Instant::now();
    let ids: Vec<Option<String>> = futures::stream::iter(0..IDLE_SESSIONS)
        .map(|_| {
            let http = http.clone();
            let mcp = mcp.clone();
            async move {
                let r = http
                    .post(&mcp)
                    .header("accept", ACCEPT)
                    .json(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"idle","version":"1"}}}))
                    .send()
                    .await
                    .ok()?;
                let id = r.headers().get("mcp-session-id")?.to_str().ok()?.to_owned();
                let _ = r.bytes().await;
                Some(id)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let opened = ids.iter().flatten().count();
    let open_secs = t.elapsed().as_secs_f64();
    if opened != IDLE_SESSIONS {
        bail!("only {opened} of {IDLE_SESSIONS} sessions opened");
    }
    let during = (rss(), probe(&mcp).await?);
    let gauge = sessions(&http, &base, "streamable_http").await;
    rows.push(format!(
        "| {IDLE_SESSIONS} idle sessions open ({open_secs:.1} s to open) | {:.1} MB | {gauge} | {:.2} ms | {:.1} KB per session |",
        during.0,
        during.1,
        (during.0 - before.0) * 1024.0 / IDLE_SESSIONS as f64
    ));
    // They expire after session_idle_secs.
    let t = Instant::now();
    while sessions(&http, &base, "streamable_http").await > 0.0 {
        if t.elapsed() > Duration::from_secs(IDLE_SECS + 60) {
            bail!("idle sessions never expired");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let expired_after = t.elapsed().as_secs_f64();
    let mut gone = 0;
    for id in ids.iter().flatten().take(100) {
        let r = http
            .post(&mcp)
            .header("accept", ACCEPT)
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&serde_json::json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
            .send()
            .await?;
        if r.status() == 404 {
            gone += 1;
        }
    }
    let at_expiry = (rss(), probe(&mcp).await?);
    rows.push(format!(
        "| sessions expired ({expired_after:.1} s after the last opened, `session_idle_secs` = {IDLE_SECS}) | {:.1} MB | 0 | {:.2} ms | {gone} of 100 old ids answer 404 |",
        at_expiry.0, at_expiry.1
    ));
    // Their memory goes back to the system some time after: wait for it (bounded).
    let t = Instant::now();
    while rss() > before.0 + 100.0 && t.elapsed() < Duration::from_secs(150) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let returned = rss() <= before.0 + 100.0;
    let waited = t.elapsed().as_secs_f64();
    let after = (settled_rss(pid).await, probe(&mcp).await?);
    rows.push(if returned {
        format!(
            "| memory returned ({waited:.0} s after the expiry) | {:.1} MB | 0 | {:.2} ms | |",
            after.0, after.1
        )
    } else {
        format!(
            "| {waited:.0} s after the expiry | {:.1} MB | 0 | {:.2} ms | freed but not yet returned to the system by the allocator |",
            after.0, after.1
        )
    });

    // 1 000 legacy SSE streams held open.
    let mut streams = Vec::with_capacity(SSE_STREAMS);
    for _ in 0..SSE_STREAMS {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(
            format!(
                "GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        streams.push(s);
    }
    let t = Instant::now();
    while sessions(&http, &base, "sse").await < SSE_STREAMS as f64 {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("{SSE_STREAMS} SSE streams never all opened");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sse = (rss(), probe(&mcp).await?);
    rows.push(format!(
        "| {SSE_STREAMS} SSE streams open | {:.1} MB | {SSE_STREAMS} | {:.2} ms | at most {:.1} KB per stream (RSS above the start) |",
        sse.0,
        sse.1,
        (sse.0 - before.0).max(0.0) * 1024.0 / SSE_STREAMS as f64
    ));
    drop(streams);
    let t = Instant::now();
    while sessions(&http, &base, "sse").await > 0.0 && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One SSE client that never reads its stream, while 5 000 answers go onto it.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!("GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut head = vec![0u8; 4096];
    let mut got = 0;
    let endpoint = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head[got..]))
            .await
            .context("no endpoint event")??;
        got += n;
        let text = String::from_utf8_lossy(&head[..got]);
        if let Some(i) = text.find("data: ") {
            let rest = &text[i + 6..];
            if let Some(end) = rest.find('\n') {
                break rest[..end].trim().to_owned();
            }
        }
        if n == 0 || got == head.len() {
            bail!("no endpoint event in {text}");
        }
    };
    let post_url = format!("{base}{endpoint}");
    let init = |id: u64, method: &str| {
        serde_json::json!({"jsonrpc":"2.0","id":id,"method":method,"params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"unread","version":"1"}}})
    };
    http.post(&post_url)
        .json(&init(1, "initialize"))
        .send()
        .await?;
    http.post(&post_url)
        .json(&serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .send()
        .await?;
    let unread_before = settled_rss(pid).await;
    let t = Instant::now();
    let (mut accepted, mut refused, mut stalled) = (0usize, 0usize, 0usize);
    for i in 0..UNREAD_ANSWERS {
        let sent = http
            .post(&post_url)
            .timeout(Duration::from_secs(2))
            .json(&serde_json::json!({"jsonrpc":"2.0","id": 10 + i,"method":"tools/list"}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => accepted += 1,
            Ok(_) => refused += 1,
            Err(_) => stalled += 1,
        }
        if stalled >= 3 {
            break;
        }
    }
    let unread_secs = t.elapsed().as_secs_f64();
    let unread = (rss(), probe(&mcp).await?);
    rows.push(format!(
        "| one SSE client never reading, {UNREAD_ANSWERS} `tools/list` posted ({unread_secs:.1} s) | {:.1} MB | – | {:.2} ms | {accepted} accepted, {refused} refused, {stalled} timed out (2 s); RSS {:+.1} MB against {unread_before:.1} MB before |",
        unread.0,
        unread.1,
        unread.0 - unread_before
    ));
    drop(s);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{HEADING}\n\nThe release `mcp-cmdb` alone (`session_idle_secs` = {IDLE_SECS}), driven over loopback by `mcp-bench --abuse-only`. Each row: the server's RSS, the sessions gauge, and the p50 of 100 `getHost` calls of an ordinary client made at that point.\n\n| state | RSS | sessions | ordinary client p50 | notes |\n|---|---:|---:|---:|---|"
    );
    for r in rows {
        let _ = writeln!(out, "{r}");
    }
    Ok(out)
}
