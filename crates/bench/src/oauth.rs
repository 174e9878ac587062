//! OAuth phase: what checking a caller costs per call. The release master in front of the real
//! cmdb three ways — auth off, a static bearer token (a SHA-256 lookup), and an OAuth JWT access
//! token from a real OpenID provider (`oidc-provider` on loopback: RS256 signature, `iss`, `aud`,
//! `exp` against the cached JWKS, once per token and resource) — in alternating rounds at 1 and 10
//! clients. Reports p50 and master's CPU per call for each, and what the JWT adds over the static
//! token and over auth off.

use std::fmt::Write as _;
use std::process::Command;

use mcp_test_support::oidc::Idp;

use crate::hot_path::{Phase, phase};
use crate::{Proc, free_port, median, sibling, spawn, wait_ready, write_master_config};

/// The report's heading of this phase.
pub(crate) const HEADING: &str = "## Caller authentication: static token and OAuth JWT";

const CLIENTS: [usize; 2] = [1, 10];
const STATIC_TOKEN: &str = "bench-static-token-0123456789abcdef";

pub(crate) async fn measure(args: &crate::Args) -> anyhow::Result<String> {
    let Some(idp) = Idp::start("k1").await else {
        anyhow::bail!("npx is needed for the OpenID provider (oidc-provider)");
    };
    let work = tempfile::tempdir()?;
    let cmdb_port = free_port()?;
    let cmdb = super::spawn_cmdb(work.path(), cmdb_port, false, &[])?;
    wait_ready(&format!("http://127.0.0.1:{cmdb_port}/ready"), "cmdb").await?;
    let tokens = work.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nidentity = \"bench\"\nroles = []\nsha256 = \"{}\"\n",
            mcp_runtime::auth::hash_token(STATIC_TOKEN)
        ),
    )?;
    let mut masters: Vec<(&str, Proc, String, Option<String>)> = Vec::new();
    for kind in ["auth off", "static token", "OAuth JWT"] {
        let port = free_port()?;
        let cfg = work
            .path()
            .join(format!("master-{}.toml", kind.replace(' ', "-")));
        write_master_config(
            &cfg,
            &[("cmdb", format!("http://127.0.0.1:{cmdb_port}/mcp"))],
        )?;
        let mut cmd = Command::new(sibling("mcp-master")?);
        cmd.arg("--config")
            .arg(&cfg)
            .env("MCP_SERVER_PORT", port.to_string());
        let url = format!("http://127.0.0.1:{port}/mcp");
        let token = match kind {
            "static token" => {
                cmd.env("MCP_SERVER_AUTH_TOKENS_FILE", &tokens);
                Some(STATIC_TOKEN.to_owned())
            }
            "OAuth JWT" => {
                cmd.env(
                    "MCP_SERVER_OAUTH",
                    format!("{{ issuer = \"{}\" }}", idp.issuer),
                );
                Some(
                    idp.client_credentials("machine", "machine-secret", &url, "mcp:read")
                        .await,
                )
            }
            _ => None,
        };
        let proc = spawn("master", &mut cmd)?;
        wait_ready(&format!("http://127.0.0.1:{port}/ready"), kind).await?;
        masters.push((kind, proc, url, token));
    }
    let rounds = args.baseline_rounds.max(1);
    // per[clients][master] → figures over the rounds.
    let mut per: Vec<Vec<Vec<Phase>>> = CLIENTS
        .iter()
        .map(|_| masters.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 1..=rounds {
        for (ci, &clients) in CLIENTS.iter().enumerate() {
            let mut order: Vec<usize> = (0..masters.len()).collect();
            order.rotate_left(round % masters.len());
            for i in order {
                let (kind, proc, url, token) = &masters[i];
                eprintln!("[oauth] round {round}, {clients} clients, {kind}");
                let f = phase(
                    url,
                    "cmdb_getHost",
                    clients,
                    args,
                    Some(proc),
                    &cmdb,
                    token.as_deref(),
                )
                .await?;
                per[ci][i].push(f);
            }
        }
    }
    let mut out = format!("{HEADING}\n\n");
    let _ = writeln!(
        out,
        "The release master in front of the real cmdb (`cmdb_getHost`), three ways: auth off, a static bearer token (`server.auth_tokens_file`: a SHA-256 lookup) and an OAuth access token from a real OpenID provider (`oidc-provider` 9.13.3 on loopback, an RS256 JWT: signature against the cached JWKS, `iss`, `aud`, `exp`, `nbf`, checked once per token and resource and then remembered until its `exp` or 5 minutes, see docs/perf.md). {rounds} rounds rotating which master goes first; {} calls at 1 client, {} s per phase at 10. Medians over the rounds.\n",
        args.calls, args.duration
    );
    out.push_str("| clients | caller | p50 (ms) | master CPU per call (ms) | p50 added vs auth off (ms) | CPU added vs auth off (ms) | errors |\n|---:|---|---:|---:|---:|---:|---:|\n");
    for (ci, &clients) in CLIENTS.iter().enumerate() {
        let m = |i: usize, f: fn(&Phase) -> f64| median(per[ci][i].iter().map(f).collect());
        let (off_p50, off_cpu) = (m(0, |x| x.p50), m(0, |x| x.master_cpu));
        for (i, (kind, ..)) in masters.iter().enumerate() {
            let errors: usize = per[ci][i].iter().map(|x| x.errors).sum();
            let _ = writeln!(
                out,
                "| {clients} | {kind} | {:.3} | {:.3} | {:+.3} | {:+.3} | {errors} |",
                m(i, |x| x.p50),
                m(i, |x| x.master_cpu),
                m(i, |x| x.p50) - off_p50,
                m(i, |x| x.master_cpu) - off_cpu,
            );
        }
    }
    drop(masters);
    drop(cmdb);
    drop(idp);
    Ok(out)
}
