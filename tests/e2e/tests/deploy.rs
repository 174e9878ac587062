//! Deployment files checked structurally and by a real compose parser (Debian `docker-compose`,
//! `config -q`; there is no Docker engine here): ports, healthchecks, dependencies and secrets agree
//! with ports.md and the Prometheus scrape targets; the TLS override, with certificates from the
//! shipped openssl script, serves every service over HTTPS.

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

/// A copy of the project's `files` in a temporary directory, with an empty stand-in for every
/// secret file `docker-compose.yml` names (compose's `config` wants them to exist).
fn compose_project(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        let to = dir.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(f), to).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    for (_, s) in compose()["secrets"].as_object().unwrap() {
        std::fs::write(dir.path().join(s["file"].as_str().unwrap()), "").unwrap();
    }
    dir
}

/// `docker-compose <args>` in `dir`; its standard output, once it succeeded.
fn docker_compose(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("docker-compose")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn docker_compose_parses_the_file() {
    if !tool_available("docker-compose", "version") {
        skip("docker-compose (Debian package docker-compose) is not installed");
        return;
    }
    // Secrets must exist as files for `config`; use empty stand-ins in a copy of the project files.
    let dir = compose_project(&["docker-compose.yml", "ports.md"]);
    let out = docker_compose(
        dir.path(),
        &[
            "-f",
            "docker-compose.yml",
            "--profile",
            "monitoring",
            "config",
            "--services",
        ],
    );
    let listed = String::from_utf8_lossy(&out);
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
fn the_tls_override_serves_every_service_over_https_with_the_scripts_certificates() {
    if !tool_available("docker-compose", "version") {
        skip("docker-compose (Debian package docker-compose) is not installed");
        return;
    }
    if !tool_available("openssl", "version") {
        skip("openssl is not installed");
        return;
    }
    let dir = compose_project(&[
        "docker-compose.yml",
        "ports.md",
        "deploy/tls/docker-compose.tls.yml",
    ]);
    // The certificates come from the shipped script, so every file the override names must exist.
    make_certs(dir.path(), std::path::Path::new("secrets/tls"));
    let out = docker_compose(
        dir.path(),
        &[
            "-f",
            "docker-compose.yml",
            "-f",
            "deploy/tls/docker-compose.tls.yml",
            "--profile",
            "monitoring",
            "config",
        ],
    );
    let merged: Value = serde_yaml_ng::from_slice(&out).unwrap();
    for (name, secret) in merged["secrets"].as_object().unwrap() {
        let file = secret["file"].as_str().unwrap();
        assert!(
            std::path::Path::new(file).exists(),
            "secret {name}: {file} missing after make-certs.sh"
        );
    }
    let ports = ports_md();
    let services = mcp_services(&merged);
    assert_eq!(services.len(), 7, "{services:?}");
    for (name, s) in &services {
        let env = &s["environment"];
        let port = ports.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(
            env["MCP_SERVER_TLS_CERT_FILE"], "/run/secrets/tls_server_cert",
            "{name}"
        );
        let hc = s["healthcheck"]["test"].to_string();
        assert!(
            hc.contains(&format!("https://127.0.0.1:{port}/health")) && hc.contains("--cacert"),
            "{name}: {hc}"
        );
        // Every /run/secrets file the service reads is one of its secrets.
        let mounted: Vec<String> = s["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["source"].as_str().unwrap().to_owned())
            .collect();
        let used = env
            .as_object()
            .unwrap()
            .values()
            .chain(s["healthcheck"]["test"].as_array().unwrap())
            .filter_map(Value::as_str)
            .flat_map(|v| v.split(['"', ' ', ',']))
            .filter_map(|v| v.strip_prefix("/run/secrets/"))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>();
        for secret in used {
            assert!(
                mounted.contains(&secret),
                "{name} reads {secret}, not mounted"
            );
        }
        if name == "master" {
            assert_eq!(env["MCP_MASTER_REQUIRE_TLS"], "true");
            let urls: Vec<&str> = env
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with("MCP_PORT_"))
                .map(|(_, v)| v.as_str().unwrap())
                .collect();
            assert_eq!(urls.len(), 6, "{urls:?}");
            assert!(urls.iter().all(|u| u.starts_with("https://")), "{urls:?}");
            assert!(env["MCP_SERVER_TLS_CLIENT_CERT_FILE"].is_string());
        } else {
            assert_eq!(env["MCP_SERVER_TLS_CLIENT_AUTH"], "required", "{name}");
        }
    }
    let linux_ssh = merged["services"]["linux-cli"]["environment"]["MCP_LINUX_SSH"]
        .as_str()
        .unwrap();
    assert!(linux_ssh.contains("https://cmdb:8012/mcp"), "{linux_ssh}");
    // Prometheus reads the HTTPS job with the CA and its client certificate where the job says.
    let prometheus = &merged["services"]["prometheus"];
    assert!(
        prometheus["command"][0]
            .as_str()
            .unwrap()
            .ends_with("/prometheus-tls.yml")
    );
    let job =
        std::fs::read_to_string(root().join("monitoring/prometheus/prometheus-tls.yml")).unwrap();
    for target in prometheus["secrets"].as_array().unwrap() {
        let target = target["target"].as_str().unwrap();
        assert!(
            job.contains(target),
            "prometheus-tls.yml does not read {target}"
        );
    }
}

/// The YAML documents of a file.
fn yaml_docs(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn kubernetes_tls_issues_a_certificate_for_every_deployed_service() {
    let tls = yaml_docs(&root().join("deploy/kubernetes/tls/cert-manager.yaml"));
    let issuers: Vec<&str> = tls
        .iter()
        .filter(|d| d["kind"] == "Issuer")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    let mut deployed = Vec::new();
    for e in std::fs::read_dir(root().join("deploy/kubernetes")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            deployed.extend(
                yaml_docs(&p)
                    .into_iter()
                    .filter(|d| d["kind"] == "Deployment")
                    .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned()),
            );
        }
    }
    assert_eq!(deployed.len(), 7, "{deployed:?}");
    for name in &deployed {
        let cert = tls
            .iter()
            .find(|d| d["kind"] == "Certificate" && d["metadata"]["name"] == format!("{name}-tls"))
            .unwrap_or_else(|| panic!("no Certificate for {name}"));
        let spec = &cert["spec"];
        assert_eq!(spec["secretName"], format!("{name}-tls"));
        assert_eq!(
            spec["dnsNames"][0],
            name.as_str(),
            "the identity comes first"
        );
        assert!(
            spec["dnsNames"]
                .as_array()
                .unwrap()
                .contains(&Value::from(format!("{name}.mcp.svc"))),
            "{name}"
        );
        assert!(issuers.contains(&spec["issuerRef"]["name"].as_str().unwrap()));
        let usages = spec["usages"].to_string();
        assert!(usages.contains("server auth"), "{name}");
        if name == "master" || name == "linux-cli" {
            assert!(usages.contains("client auth"), "{name} calls others");
        }
    }
    let ingress = tls.iter().find(|d| d["kind"] == "Ingress").unwrap();
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], "master");
    let master_port = ports_md()
        .into_iter()
        .find(|(n, _)| n == "master")
        .unwrap()
        .1;
    assert_eq!(backend["port"]["number"], master_port);
    let notes = &ingress["metadata"]["annotations"];
    assert!(notes["cert-manager.io/cluster-issuer"].is_string());
    assert_eq!(
        notes["nginx.ingress.kubernetes.io/backend-protocol"],
        "HTTPS"
    );
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
