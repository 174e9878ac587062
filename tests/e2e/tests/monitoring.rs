//! Monitoring files checked by the real tools: promtool validates the Prometheus config and unit-tests
//! the alert rules; a real Prometheus scrapes a running master and CMDB; ports.md, the scrape targets
//! and the services' default ports agree.

mod common;
#[path = "../../../services/ai-models/tests/fake_llm/mod.rs"]
mod fake_llm;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use mcp_runtime::McpService;
use serde_json::{Value, json};

fn monitoring() -> PathBuf {
    crate_dir().join("../../monitoring/prometheus")
}

#[test]
fn promtool_accepts_the_config_and_the_alert_tests_pass() {
    if !tool_available("promtool", "--version") {
        skip("promtool (Debian package prometheus) is not installed");
        return;
    }
    for args in [
        vec!["check", "config", "prometheus.yml"],
        // Syntax only: the CA file lives in the deployment, not in the repository.
        vec!["check", "config", "--syntax-only", "prometheus-tls.yml"],
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
        vec!["check", "rules", "slo.yml"],
        vec!["test", "rules", "slo_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(monitoring())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn ports_md_scrape_targets_and_default_ports_agree() {
    let ports = ports_md();
    let port_of = |name: &str| ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
    assert_eq!(port_of("master"), Some(mcp_master::Master::DEFAULT_PORT));
    assert_eq!(port_of("cmdb"), Some(mcp_cmdb::Cmdb::DEFAULT_PORT));
    for file in ["prometheus.yml", "prometheus-tls.yml"] {
        scrape_targets_agree(file, &port_of);
    }
}

/// The targets of the shipped Prometheus config `file` agree with ports.md and compose.
fn scrape_targets_agree(file: &str, port_of: &dyn Fn(&str) -> Option<u16>) {
    let cfg = std::fs::read_to_string(monitoring().join(file)).unwrap();
    let targets: Vec<(String, u16)> = cfg
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- targets: [\""))
        .filter_map(|t| t.split('"').next())
        .filter_map(|t| t.split_once(':'))
        .map(|(h, p)| (h.to_owned(), p.parse().unwrap()))
        .collect();
    assert_eq!(targets.len(), 7, "{file}: {targets:?}");
    for (host, port) in &targets {
        assert_eq!(
            port_of(host),
            Some(*port),
            "{file}: {host}:{port} disagrees with ports.md"
        );
    }
    for service in [
        "master",
        "linux-cli",
        "k8s",
        "cmdb",
        "secrets",
        "freqtrade-knowledge",
        "ai-models",
    ] {
        assert!(
            targets.iter().any(|(h, _)| h == service),
            "{file}: {service} is not scraped"
        );
        let allowed = compose_allowed_hosts(service);
        assert!(
            allowed.iter().any(|h| h == service),
            "{service} does not accept its compose name as Host: {allowed:?}"
        );
    }
}

/// `server.allowed_hosts` of a compose service, as its environment sets it.
fn compose_allowed_hosts(service: &str) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let raw = doc["services"][service]["environment"]["MCP_SERVER_ALLOWED_HOSTS"]
        .as_str()
        .unwrap_or_else(|| panic!("{service} sets no MCP_SERVER_ALLOWED_HOSTS"));
    serde_json::from_str(raw).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_scrapes_the_running_services() {
    if !tool_available("prometheus", "--version") {
        skip("prometheus (Debian package prometheus) is not installed");
        return;
    }
    let cmdb = start_cmdb(server_config()).await;
    // A second version of the CMDB at half the callers, for the route panels and SLIs.
    let cmdb_v2 = start_cmdb(server_config()).await;
    let fake = fake_llm::start("gemini-test-key", "anthropic-test-key").await;
    let ai = start_ai_models(&fake.url).await;
    let master = start_master(
        &format!(
            "{}version = \"v1\"\nweight = 50\n{}version = \"v2\"\nweight = 50\n{}[master.rate_limit]\n[[master.rate_limit.tool]]\ntools = [\"master_hello_world\"]\nper_minute = 1\n",
            downstream("cmdb", None, "http", &cmdb.url("/mcp")),
            downstream("cmdb-v2", Some("cmdb"), "http", &cmdb_v2.url("/mcp")),
            downstream("ai_models", None, "http", &ai.url("/mcp"))
        ),
        server_config(),
    )
    .await;
    let client = mcp_client(&master.url("/mcp")).await;
    let workflow = json!({"definition": {"name": "panels", "steps": [
        {"id": "found", "service": "cmdb", "tool": "getHost", "params": {"name": "aicrusher"}},
        {"id": "missing", "service": "cmdb", "tool": "getHost", "needs": ["found"], "params": {"name": "no-such-host"}}
    ]}});
    // Traffic for every dashboard panel: successes, a tool error, a rate-limit refusal.
    let traffic = || async {
        for (name, args) in [
            ("cmdb_getHost", json!({"name": "aicrusher"})),
            ("cmdb_getHost", json!({"name": "no-such-host"})),
            ("master_hello_world", json!({})),
            ("orchestrator_executeWorkflow", workflow.clone()),
            (
                "ai_models_gemini_generateContent",
                json!({"prompt": "status"}),
            ),
        ] {
            let _ = client.call_tool(call(name, args)).await;
        }
    };
    traffic().await;

    // The shipped config, pointed at this test's ports and scraping every second.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = shipped_prometheus_config("prometheus.yml");
    let addr = |url: String| url.trim_start_matches("http://").to_owned();
    cfg = cfg
        .replace("master:8000", &addr(master.url("")))
        .replace("cmdb:8012", &addr(cmdb.url("")))
        .replace("ai-models:8016", &addr(ai.url("")));
    // Services this test does not run are left out, so `up` is about real targets only.
    let cfg: String = {
        let mut out = Vec::new();
        let mut skip_labels = false;
        for line in cfg.lines() {
            if line.trim_start().starts_with("- targets: [\"") && !line.contains("127.0.0.1") {
                skip_labels = true;
                continue;
            }
            if skip_labels && line.trim_start().starts_with("labels:") {
                skip_labels = false;
                continue;
            }
            out.push(line);
        }
        out.join("\n")
    };
    let prom = Prometheus::start(dir.path(), &cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prom
            .query("up{job=\"mcp_services\"}")
            .await
            .unwrap_or_default();
        let calls = prom.query("mcp_tool_calls_total").await.unwrap_or_default();
        let all_up = up.len() == 3 && up.iter().all(|s| s["value"][1] == "1");
        let services: Vec<String> = calls
            .iter()
            .filter_map(|s| s["metric"]["service"].as_str().map(str::to_owned))
            .collect();
        if all_up && services.iter().any(|s| s == "cmdb") && services.iter().any(|s| s == "master")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never saw the services: up={up:?} calls={calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every PromQL expression of every Grafana dashboard parses and returns data.
    let dashboards = crate_dir().join("../../monitoring/grafana/dashboards");
    let mut exprs: Vec<String> = Vec::new();
    for name in ["mcp-overview.json", "mcp-slo.json"] {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(dashboards.join(name)).unwrap()).unwrap();
        let of_this: Vec<String> = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["expr"].as_str().map(str::to_owned))
            .collect();
        assert!(of_this.len() >= 9, "{name}: {of_this:?}");
        exprs.extend(of_this);
    }
    let shipped = std::fs::read_dir(&dashboards).unwrap().count();
    assert_eq!(shipped, 2, "a new dashboard must be checked here too");
    // And the SLO rules (slo.yml) record every SLI from the live series.
    let slis = [
        "slo:sli_error:ratio_rate5m{service=\"cmdb\"}",
        "slo:sli_error:ratio_rate1h{service=\"master\"}",
        "slo:sli_slow:ratio_rate5m{service=\"master\"}",
        "slo:sli_unavailable:ratio_avg5m{service=\"cmdb\"} == 0",
        // Every client call through master left an audit row.
        "slo:sli_audit_coverage:ratio_rate5m{service=\"master\"} > 0.9 < 1.1",
        // The versioned cmdb's calls, by the version that served them.
        "slo:route_error:ratio_rate5m{namespace=\"cmdb\"}",
        "slo:route_slow:ratio_rate1h{namespace=\"cmdb\"}",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<String> = exprs
        .into_iter()
        .chain(slis.iter().map(|s| (*s).to_owned()))
        .collect();
    while !pending.is_empty() {
        traffic().await;
        let mut still = Vec::new();
        for e in pending {
            if prom.query(&e).await.is_none_or(|r| r.is_empty()) {
                still.push(e);
            }
        }
        pending = still;
        assert!(
            Instant::now() < deadline,
            "dashboard and SLO expressions without data: {pending:?}"
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    client.cancel().await.unwrap();
}
