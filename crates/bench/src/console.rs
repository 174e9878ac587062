//! `--console-only`: the console pages' server time with a full store. The release `mcp-master`
//! in front of the release `mcp-cmdb`, with a policy that sends `cmdb_getHost` to approval:
//! 500 calls leave 500 pending approvals, `cmdb_searchHosts` calls fill the audit trail to
//! 10 000 rows, all made through master as a client would. Then each page is fetched repeatedly
//! over loopback with an approver's session; the time is request to last byte, so it is the
//! server's time plus a loopback round trip.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use super::{free_port, sibling, spawn, spawn_cmdb, wait_ready};

pub(crate) const HEADING: &str = "## Console pages";

const PENDING: usize = 500;
const AUDIT_ROWS: usize = 10_000;
const ROUNDS: usize = 30;

fn call(name: &str, args: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(super::arguments(&args))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

pub(crate) async fn measure() -> anyhow::Result<String> {
    let work = tempfile::tempdir()?;
    let cmdb_port = free_port()?;
    let master_port = free_port()?;
    let quiet = [("MCP_SERVER_LOG_LEVEL", "error"), ("RUST_LOG", "error")];
    let _cmdb = spawn_cmdb(work.path(), cmdb_port, true, &[])?;
    let key = work.path().join("identity.key");
    std::fs::write(&key, "bench-console-identity-and-approval-key-0123")?;
    let token_hash = mcp_runtime::auth::hash_token;
    let tokens = work.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nidentity = \"alice\"\nroles = []\nsha256 = \"{}\"\n[[token]]\nidentity = \"bob\"\nroles = [\"approver\"]\nsha256 = \"{}\"\n",
            token_hash("alice-bench"),
            token_hash("bob-bench")
        ),
    )?;
    let config = work.path().join("master.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nauth_tokens_file = {:?}\n[master]\nseed_env = false\naudit_db = {:?}\nidentity_key_file = {:?}\n\
             [master.approvals]\nttl_secs = 86400\n[master.policy]\n[[master.policy.rule]]\ntools = [\"cmdb_getHost\"]\naction = \"approve\"\n\
             [[master.downstream]]\nname = \"cmdb\"\nurl = \"http://127.0.0.1:{cmdb_port}/mcp\"\n",
            tokens.display().to_string(),
            work.path().join("audit.sqlite").display().to_string(),
            key.display().to_string(),
        ),
    )?;
    wait_ready(&format!("http://127.0.0.1:{cmdb_port}/ready"), "cmdb").await?;
    let _master = spawn(
        "master",
        Command::new(sibling("mcp-master")?)
            .arg("--config")
            .arg(&config)
            .env("MCP_SERVER_PORT", master_port.to_string())
            .envs(quiet),
    )?;
    let base = format!("http://127.0.0.1:{master_port}");
    wait_ready(&format!("{base}/ready"), "master").await?;

    // Fill the stores through master, from 8 clients at once.
    let transport = || {
        StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
                .auth_header("alice-bench"),
        )
    };
    let fill = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = ().serve(transport()).await.context("alice's client")?;
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            for i in (worker..AUDIT_ROWS).step_by(8) {
                let r = if i < PENDING {
                    client.call_tool(call(
                        "cmdb_getHost",
                        serde_json::json!({"hostname": "aicrusher"}),
                    ))
                } else {
                    client.call_tool(call(
                        "cmdb_searchHosts",
                        serde_json::json!({"query": format!("web{}", i % 7)}),
                    ))
                };
                if r.await.is_ok() {
                    n += 1;
                }
            }
            let _ = client.cancel().await;
            n
        }));
    }
    let mut made = 0;
    for t in tasks {
        made += t.await?;
    }
    if made != AUDIT_ROWS {
        bail!("only {made} of {AUDIT_ROWS} calls answered");
    }
    let fill_secs = fill.elapsed().as_secs_f64();

    // bob's session.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = http
        .post(format!("{base}/ui/login"))
        .form(&[("token", "bob-bench")])
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie from /ui/login")?
        .to_owned();
    // The writer commits in batches; wait until every row is readable.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = http
            .get(format!("{base}/ui/audit"))
            .header("cookie", &cookie)
            .send()
            .await?
            .text()
            .await?;
        if page.contains(&format!("<span id=\"total\">{AUDIT_ROWS}</span>")) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the audit trail never reached {AUDIT_ROWS} rows");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pages = [
        ("approvals (500 pending)", "/ui/approvals"),
        ("pending fragment (live update)", "/ui/approvals/pending"),
        ("audit, first page of 10 000", "/ui/audit"),
        (
            "audit, filtered by identity and tool",
            "/ui/audit?identity=alice&tool=cmdb_searchHosts",
        ),
        ("audit, page 100", "/ui/audit?page=100"),
        ("audit CSV export, 10 000 rows", "/ui/audit.csv"),
        ("compliance report, last 24 h", "/ui/report"),
        ("status", "/ui/status"),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{HEADING}\n\nThe release `mcp-master` in front of `mcp-cmdb`, its stores filled through master by 8 clients ({AUDIT_ROWS} calls in {fill_secs:.1} s: {PENDING} `cmdb_getHost` calls left pending by a policy `approve` rule, the rest `cmdb_searchHosts`), so the audit trail holds {AUDIT_ROWS} rows and the approvals page {PENDING} pending approvals. Each page fetched {ROUNDS} times in a row with an approver's session over loopback; time from request to last byte. `mcp-bench --console-only` reproduces it.\n\n| page | p50 | p95 | size |\n|---|---:|---:|---:|"
    );
    for (label, path) in pages {
        let mut times = Vec::with_capacity(ROUNDS);
        let mut size = 0;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let r = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("{path} answered {}", r.status());
            }
            size = r.bytes().await?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let _ = writeln!(
            out,
            "| {label} | {:.1} ms | {:.1} ms | {} KB |",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            size / 1024
        );
    }
    Ok(out)
}
