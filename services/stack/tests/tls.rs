//! `mcp-stack` with TLS configured: every service serves HTTPS only and requires a client
//! certificate; master and linux-cli reach the services over TLS with master's certificate.

mod common;

use std::process::Command;

use common::*;
use mcp_test_support::pki::Pki;
use mcp_test_support::{call, client_over, skip, structured, text, tool};
use serde_json::json;

/// An HTTPS client trusting the test CA, presenting the certificate `cert` when given.
fn https(pki: &Pki, cert: Option<&str>) -> reqwest::Client {
    pki.client_builder(cert).build().unwrap()
}

/// `curl` status of an HTTPS GET with the CA and the operator's certificate (master's readiness).
fn curl_status(pki: &Pki, url: &str) -> Option<u16> {
    let p = |f: &str| pki.path(f).display().to_string();
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(["--cacert", &p("ca.pem"), "--cert", &p("operator.pem")])
        .args(["--key", &p("operator.key"), url])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).parse().ok()
}

fn https_url(port: u16, path: &str) -> String {
    format!("https://127.0.0.1:{port}{path}")
}

#[test]
fn every_service_serves_https_and_master_reaches_them_with_its_certificate() {
    if Command::new("curl").arg("--version").output().is_err() {
        skip("curl is not installed (master's readiness probe over HTTPS)");
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let tls_dir = cwd.path().join("tls");
    let pki = Pki::new(&tls_dir);
    pki.issue("master", &["master"]);
    pki.issue("operator", &["operator"]);
    let file = |f: &str| tls_dir.join(f).display().to_string();
    let env = [
        ("MCP_SERVER_TLS_CERT_FILE", file("server.pem")),
        ("MCP_SERVER_TLS_KEY_FILE", file("server.key")),
        ("MCP_SERVER_TLS_CA_FILE", file("ca.pem")),
        ("MCP_SERVER_TLS_CLIENT_CA_FILE", file("ca.pem")),
        ("MCP_SERVER_TLS_CLIENT_AUTH", "required".to_owned()),
        ("MCP_SERVER_TLS_CLIENT_CERT_FILE", file("master.pem")),
        ("MCP_SERVER_TLS_CLIENT_KEY_FILE", file("master.key")),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stack = Stack::start_probed(cwd.path(), &env, |ports| {
        curl_status(&pki, &https_url(ports.master, "/ready")) == Some(200)
    });
    let ports = stack.ports;
    let master = https_url(ports.master, "/mcp");
    let screen = stack.first_screen();
    for line in [
        master.as_str(),
        &format!("serves HTTPS only with {}", file("server.pem")),
        &format!("clients trust {}", file("ca.pem")),
        "client certificates required",
    ] {
        assert!(screen.contains(line), "{line}: {screen}");
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Every port: HTTPS only, and a client certificate from the CA is required.
        for port in [
            ports.master,
            ports.linux,
            ports.cmdb,
            ports.secrets,
            ports.k8s,
            ports.ai_models,
            ports.freqtrade,
        ] {
            let health = https_url(port, "/health");
            let r = https(&pki, Some("operator")).get(&health).send().await;
            assert_eq!(r.unwrap().status(), 200, "{health}");
            let without = https(&pki, None).get(&health).send().await;
            assert!(
                without.is_err(),
                "{health} without a certificate: {without:?}"
            );
            let plain = reqwest::get(health.replacen("https://", "http://", 1))
                .await
                .unwrap();
            assert_eq!(plain.status(), 400, "{health} over plain HTTP");
        }

        let c = client_over(&master, https(&pki, Some("operator"))).await;
        // Master reached every service over TLS with its certificate: each one's tools are listed.
        let expected = [
            "cmdb_getHost",
            "linux_runCommand",
            "secrets_listSecrets",
            "k8s_list_pods",
            "freqtrade_source_search",
            "ai_models_gemini_generateContent",
        ];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let tools = c.list_all_tools().await.unwrap();
            let missing: Vec<&str> = expected
                .iter()
                .filter(|t| !tools.iter().any(|n| n.name == **t))
                .copied()
                .collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not listed through master: {missing:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let r = tool(&c, "cmdb_getHost", json!({"name": "aicrusher"})).await;
        assert_eq!(structured(&r)["host"]["name"], "aicrusher", "{}", text(&r));
        // linux-cli looks the SSH host up in the CMDB over TLS: the lookup succeeds (the record's
        // user is known) and the call stops at the missing key, not at the CMDB.
        let r = c
            .call_tool(call(
                "linux_sshExecuteCommand",
                json!({"host": "aicrusher", "command": "uptime"}),
            ))
            .await
            .unwrap();
        let t = text(&r);
        assert_eq!(r.is_error, Some(true), "{t}");
        assert!(t.contains("no private key for"), "{t}");
        assert!(!t.contains("CMDB"), "{t}");
    });
}
