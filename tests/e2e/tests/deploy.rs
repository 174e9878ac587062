//! Deployment files checked structurally and by a real compose parser (Debian `docker-compose`,
//! `config -q`; there is no Docker engine here): ports, healthchecks, dependencies and secrets agree
//! with ports.md and the Prometheus scrape targets.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

fn root() -> PathBuf {
    crate_dir().join("../..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// MCP services in the compose file (those built from our Dockerfile).
fn mcp_services(c: &Value) -> Vec<(String, Value)> {
    c["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| {
            s["command"][0]
                .as_str()
                .is_some_and(|c| c.starts_with("mcp-"))
        })
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect()
}

#[test]
fn compose_services_match_ports_healthchecks_and_secrets() {
    let c = compose();
    let ports = ports_md();
    let services = mcp_services(&c);
    assert!(services.len() >= 2, "{services:?}");
    let prometheus =
        std::fs::read_to_string(root().join("monitoring/prometheus/prometheus.yml")).unwrap();
    for (name, s) in &services {
        let port = ports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("{name} is not in ports.md"));
        assert_eq!(
            s["environment"]["MCP_SERVER_PORT"],
            port.to_string(),
            "{name}"
        );
        assert_eq!(
            s["ports"][0],
            format!("127.0.0.1:{port}:{port}"),
            "{name}: publish on loopback"
        );
        let hc = s["healthcheck"]["test"].to_string();
        assert!(
            hc.contains(&format!("127.0.0.1:{port}/health")),
            "{name}: {hc}"
        );
        assert!(
            prometheus.contains(&format!("\"{name}:{port}\"")),
            "{name} not scraped"
        );
        for secret in s["secrets"].as_array().into_iter().flatten() {
            let secret = secret.as_str().unwrap();
            let file = c["secrets"][secret]["file"]
                .as_str()
                .unwrap_or_else(|| panic!("secret {secret} undefined"));
            assert!(file.starts_with("./secrets/"), "{secret}: {file}");
        }
    }
    let master = &c["services"]["master"];
    for (name, _) in services.iter().filter(|(n, _)| n != "master") {
        assert_eq!(
            master["depends_on"][name]["condition"], "service_healthy",
            "master must wait for {name}"
        );
    }
    for tool in ["prometheus", "grafana", "loki", "promtail"] {
        assert_eq!(c["services"][tool]["profiles"][0], "monitoring", "{tool}");
    }
    // promtail ships exactly the suite's services to this compose file's Loki.
    let promtail: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("monitoring/promtail/promtail.yml")).unwrap(),
    )
    .unwrap();
    let loki_port = c["services"]["loki"]["ports"][0]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        promtail["clients"][0]["url"].as_str().unwrap(),
        format!("http://loki:{loki_port}/loki/api/v1/push")
    );
    let keep = promtail["scrape_configs"][0]["relabel_configs"][0]["regex"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept: Vec<&str> = keep.split('|').collect();
    let mut shipped: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    shipped.sort_unstable();
    let mut kept_sorted = kept.clone();
    kept_sorted.sort_unstable();
    assert_eq!(kept_sorted, shipped, "promtail must keep every MCP service");
    for mount in [
        "./monitoring/promtail/promtail.yml:",
        "/var/run/docker.sock:",
    ] {
        assert!(
            c["services"]["promtail"]["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v.as_str().unwrap().starts_with(mount)),
            "{mount}"
        );
    }
    assert!(root().join("monitoring/loki/loki.yml").exists());
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    // The dependency stage sees every workspace manifest, or `cargo fetch --locked` fails.
    for group in ["crates", "services"] {
        for e in std::fs::read_dir(root().join(group)).unwrap() {
            let dir = e.unwrap().path();
            if dir.join("Cargo.toml").exists() {
                let rel = format!(
                    "{group}/{}/Cargo.toml",
                    dir.file_name().unwrap().to_string_lossy()
                );
                assert!(
                    dockerfile.contains(&format!("COPY {rel} {rel}")),
                    "Dockerfile misses {rel}"
                );
            }
        }
    }
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("USER mcp"));
    assert!(root().join("secrets/README.md").exists());
}

#[test]
fn docker_compose_parses_the_file() {
    if !tool_available("docker-compose", "version") {
        skip("docker-compose (Debian package docker-compose) is not installed");
        return;
    }
    // Secrets must exist as files for `config`; use empty stand-ins in a copy of the project files.
    let dir = tempfile::tempdir().unwrap();
    for f in ["docker-compose.yml", "ports.md"] {
        std::fs::copy(root().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    let c = compose();
    for (_, s) in c["secrets"].as_object().unwrap() {
        let file = s["file"].as_str().unwrap();
        std::fs::write(dir.path().join(file), "").unwrap();
    }
    let out = Command::new("docker-compose")
        .args([
            "-f",
            "docker-compose.yml",
            "--profile",
            "monitoring",
            "config",
            "--services",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    for s in [
        "master",
        "cmdb",
        "prometheus",
        "grafana",
        "loki",
        "promtail",
    ] {
        assert!(listed.lines().any(|l| l == s), "{s} missing: {listed}");
    }
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas_and_ports_md() {
    let dir = root().join("deploy/kubernetes");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    // Structure: every container port is the service's port in ports.md, probes hit /ready and /health.
    let ports = ports_md();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if v["kind"] != "Deployment" {
                continue;
            }
            let name = v["metadata"]["name"].as_str().unwrap();
            let c = &v["spec"]["template"]["spec"]["containers"][0];
            let port = ports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .unwrap();
            assert_eq!(c["ports"][0]["containerPort"], port, "{name}");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready", "{name}");
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health", "{name}");
            assert!(c["resources"]["limits"].is_object(), "{name}");
        }
    }
    // Every service compose runs has a Deployment here too.
    let deployed: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            serde_yaml_ng::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .filter(|v: &Value| v["kind"] == "Deployment")
                .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    for (name, _) in mcp_services(&compose()) {
        assert!(
            deployed.contains(&name),
            "{name} has no Deployment in deploy/kubernetes"
        );
    }
    if !tool_available("kubernetes-validate", "--version") {
        skip("kubernetes-validate (pip install kubernetes-validate) is not installed");
        return;
    }
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
