//! What `mcp-stack` prints once every service is up: where to point a client, where the generated
//! files are, and which services are degraded, why, and the one-line fix for each.

use std::fmt::Write as _;

use mcp_runtime::{HealthStatus, Running};

use crate::Loaded;

/// The one-line fix for a degraded check, where its own message does not already say it.
fn fix(service: &str, check: &str) -> Option<&'static str> {
    Some(match (service, check) {
        ("k8s", _) => {
            "start with MCP_K8S_KUBECONFIG=/path/to/kubeconfig (or set k8s.api_server + k8s.token_file)"
        }
        ("freqtrade-knowledge", _) => {
            "the clone needs network access to the repository; offline, set MCP_FREQTRADE_REPO_PATH to a local Freqtrade checkout"
        }
        ("linux-cli", "ssh") => {
            "add your hosts' keys to that file (e.g. from `ssh-keyscan HOST`, checked against the host)"
        }
        _ => return None,
    })
}

/// The first screen, as text (printed on standard error; standard output carries the JSON log).
pub(crate) fn render(loaded: &Loaded, key_created: bool, running: &[Running]) -> String {
    let mut out = String::new();
    let master = running
        .iter()
        .find(|r| r.name() == "master")
        .map(|r| r.url(""))
        .unwrap_or_default();
    let _ = writeln!(out, "\nmcp-stack is ready.\n");
    let _ = writeln!(
        out,
        "  Master, every tool:  {master}/mcp   (legacy SSE: {master}/sse)"
    );
    let mut toolsets: Vec<String> = loaded
        .master
        .toolset
        .iter()
        .map(|t| format!("{master}/mcp/{}", t.name))
        .collect();
    if loaded.master.discovery {
        toolsets.push(format!("{master}/mcp/discover (search, describe, call)"));
    }
    if loaded.master.per_namespace_toolsets {
        toolsets.push(format!("one per namespace: {master}/mcp/<namespace>"));
    }
    for (i, t) in toolsets.iter().enumerate() {
        let label = if i == 0 { "Toolsets:" } else { "" };
        let _ = writeln!(out, "  {label:<20} {t}");
    }
    if loaded.master.console.enabled {
        let _ = writeln!(
            out,
            "  {:<20} {master}/ui/   (approvals, workflow runs, audit, compliance report)",
            "Console:"
        );
    }
    for r in running.iter().filter(|r| r.name() != "master") {
        let _ = writeln!(out, "  {:<20} {}", format!("{}:", r.name()), r.url("/mcp"));
    }

    let _ = writeln!(out);
    let key = loaded
        .generated_key
        .as_ref()
        .map(|k| {
            let made = if key_created {
                "created now"
            } else {
                "kept from an earlier start"
            };
            format!("{} ({made}, owner-only)", k.display())
        })
        .or_else(|| {
            loaded
                .server
                .identity_key_file
                .as_ref()
                .map(|k| format!("{} (configured)", k.display()))
        })
        .unwrap_or_default();
    let _ = writeln!(out, "  Approvals:  on; identity and approval key {key}");
    if !loaded.server.auth_enabled() {
        let _ = writeln!(
            out,
            "              auth is off, so you are the only user and approve your own risky calls:\n              your client asks you (MCP elicitation), the console's Approve button, or approvals_approve"
        );
    } else {
        let _ = writeln!(
            out,
            "              auth is on: approvers need the `{}` role{}",
            loaded.master.approvals.approver_role,
            if loaded.master.approvals.allow_self_approval {
                ""
            } else {
                " and may not approve their own calls"
            }
        );
    }
    let server = &loaded.server;
    if let Some(oauth) = &server.oauth {
        let _ = writeln!(
            out,
            "  OAuth:      master takes access tokens from {} (clients discover it at /.well-known/oauth-protected-resource/mcp){}",
            oauth.issuer,
            if server.auth_tokens_file.is_some() {
                "; static tokens work too"
            } else {
                ""
            }
        );
    }
    if let Some(cert) = &server.tls_cert_file {
        let ca = server.tls_ca_file.as_ref().map_or_else(
            || "the CA that signed it".to_owned(),
            |c| c.display().to_string(),
        );
        let _ = writeln!(
            out,
            "  TLS:        every service serves HTTPS only with {}; clients trust {ca}\n              (curl --cacert, SSL_CERT_FILE for the Python SDK, NODE_EXTRA_CA_CERTS for Cursor and Claude Desktop)",
            cert.display()
        );
        if server.tls_client_auth != mcp_runtime::config::ClientAuth::Off {
            let _ = writeln!(
                out,
                "              client certificates {}: from the CA in {}",
                if server.tls_client_auth == mcp_runtime::config::ClientAuth::Required {
                    "required"
                } else {
                    "accepted"
                },
                server
                    .tls_client_ca_file
                    .as_ref()
                    .map_or_else(String::new, |c| c.display().to_string())
            );
        }
    }
    let s = &loaded.secrets;
    if s.backend.is_empty() && s.demo_if_empty {
        let _ = writeln!(
            out,
            "  Secrets:    demo KeePass database {}, its password in {}",
            s.demo_path.display(),
            s.demo_password_file.display()
        );
    }

    let _ = writeln!(out, "\n  Cursor (~/.cursor/mcp.json):");
    let _ = writeln!(
        out,
        "    {{ \"mcpServers\": {{ \"infra\": {{ \"url\": \"{master}/mcp/infra\" }} }} }}"
    );
    let _ = writeln!(out, "  Claude Desktop (claude_desktop_config.json):");
    let _ = writeln!(
        out,
        "    {{ \"mcpServers\": {{ \"infra\": {{ \"command\": \"npx\", \"args\": [\"-y\", \"mcp-remote\", \"{master}/mcp\"] }} }} }}"
    );

    let mut degraded = String::new();
    for r in running.iter().filter(|r| r.name() != "master") {
        let report = r.health();
        for (check, c) in report
            .checks
            .iter()
            .filter(|(_, c)| c.status != HealthStatus::Healthy)
        {
            let why = c.message.as_deref().unwrap_or("no reason given");
            let _ = writeln!(degraded, "    - {} ({check}): {why}", r.name());
            if let Some(f) = fix(r.name(), check) {
                let _ = writeln!(degraded, "      fix: {f}");
            }
        }
    }
    if degraded.is_empty() {
        let _ = writeln!(out, "\n  Every service is healthy.");
    } else {
        let _ = write!(
            out,
            "\n  Degraded (the rest of the suite works):\n{degraded}"
        );
    }
    let _ = writeln!(out);
    out
}
