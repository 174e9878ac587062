//! docker-compose.yml run for real, unchanged, under Podman (no Docker engine or registry here):
//! `deploy/local-images.sh --debug` builds every image from Debian's packages and this workspace's
//! binaries, `deploy/podman-compose.sh` runs Debian's docker-compose against a Podman API service.
//! Then, as a user would check it: every service answers `/health` on its host port from
//! ports.md; the Python SDK lists every namespace's tools through master on 8000 and calls
//! `cmdb_getHost aicrusher`; Prometheus, inside the compose network, has every scrape target
//! `up`; the CMDB container, crashed, is brought back by its restart policy and healthy again
//! while a client's session through master goes on; an audit row survives `down` and `up`.
//! Grafana, Loki and promtail have no Debian package: they are not started (README, limits).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use mcp_test_support::{client, tool};
use serde_json::{Value, json};

const PROJECT: &str = "mcpcomposetest";
const TOKEN: &str = "compose-test-token-0123456789abcdef";
/// The services master depends on (`depends_on: condition: service_healthy`).
const DOWNSTREAMS: &[&str] = &[
    "cmdb",
    "linux-cli",
    "secrets",
    "k8s",
    "ai-models",
    "freqtrade-knowledge",
];
/// Every service of the default profile, and Prometheus of the monitoring profile.
fn services() -> Vec<&'static str> {
    [&["master"][..], DOWNSTREAMS, &["prometheus"]].concat()
}

fn root() -> PathBuf {
    crate_dir().join("../..")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn checked(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `deploy/podman-compose.sh -p PROJECT <args>` in the project copy.
fn compose(dir: &Path, args: &[&str]) -> Output {
    Command::new(root().join("deploy/podman-compose.sh"))
        .args(["-p", PROJECT, "--profile", "monitoring"])
        .args(args)
        .current_dir(dir)
        // Offline: no clone of the Freqtrade repository from GitHub.
        .env("MCP_FREQTRADE_REPO_URL", "")
        .output()
        .unwrap()
}

fn podman(args: &[&str]) -> String {
    checked(
        &format!("podman {args:?}"),
        Command::new("podman")
            .args(args)
            .env(
                "CONTAINERS_CONF",
                root().join("deploy/podman/containers.conf"),
            )
            .output()
            .unwrap(),
    )
    .trim()
    .to_owned()
}

fn container(service: &str) -> String {
    format!("{PROJECT}_{service}_1")
}

/// The project as a user has it: the compose file, the files it mounts, and the secrets they
/// fill in (a token for master, an identity key; the rest empty: those services run degraded).
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in [
        "docker-compose.yml",
        "data/cmdb.csv",
        "monitoring/prometheus/prometheus.yml",
        "monitoring/prometheus/alerts.yml",
        "monitoring/prometheus/slo.yml",
    ] {
        std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
        std::fs::copy(root().join(f), d.join(f)).unwrap();
    }
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    std::fs::write(
        d.join("secrets/identity_hmac_key"),
        "compose-test-identity-key-0123456789abcdef0123456789",
    )
    .unwrap();
    std::fs::write(
        d.join("secrets/master_tokens.toml"),
        format!(
            "[[token]]\nidentity = \"ops\"\nroles = [\"approver\"]\nsha256 = \"{}\"\n",
            mcp_runtime::auth::hash_token(TOKEN)
        ),
    )
    .unwrap();
    // The user's KeePass database and its password (readable by the containers' user, uid 10001).
    mcp_secrets::ensure_demo(&d.join("vault.kdbx"), &d.join("secrets/keepass_password")).unwrap();
    std::os::unix::fs::chown(d.join("secrets/keepass_password"), Some(10001), Some(10001)).unwrap();
    for empty in [
        "known_hosts",
        "kubeconfig",
        "gemini_api_key",
        "anthropic_api_key",
    ] {
        std::fs::write(d.join("secrets").join(empty), "").unwrap();
    }
    dir
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {secs} s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn status(url: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .map_or(0, |r| r.status().as_u16())
}

fn audit_rows(dir: &Path) -> i64 {
    let mount = podman(&[
        "volume",
        "inspect",
        &format!("{PROJECT}_master-data"),
        "--format",
        "{{.Mountpoint}}",
    ]);
    let db = Path::new(&mount).join("audit.sqlite");
    let _ = dir;
    rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM audit WHERE tool = 'cmdb_getHost'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or_else(|e| panic!("{}: {e}", db.display()))
}

/// Stops everything the test started, whatever happened.
struct Teardown(PathBuf);

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = compose(&self.0, &["down", "-v"]);
        let _ = Command::new(root().join("deploy/podman-compose.sh"))
            .arg("stop-helpers")
            .output();
    }
}

#[test]
fn compose_up_under_podman_serves_the_suite() {
    if !is_root()
        || !tool_available("podman", "--version")
        || !tool_available("docker-compose", "version")
        || !Path::new("/usr/sbin/debootstrap").exists()
    {
        skip(
            "Podman, runc, debootstrap and docker-compose, as root, are needed to run the compose file",
        );
        return;
    }
    let built = Command::new(root().join("deploy/local-images.sh"))
        .arg("--debug")
        .output()
        .unwrap();
    eprintln!("{}", checked("deploy/local-images.sh --debug", built));

    let dir = project();
    let d = dir.path().to_owned();
    let _teardown = Teardown(d.clone());
    let _ = compose(&d, &["down", "-v"]);
    let started = Instant::now();
    checked(
        "compose up",
        compose(&d, &[&["up", "-d"][..], &services()].concat()),
    );
    eprintln!("compose up: {:.1} s", started.elapsed().as_secs_f64());
    // depends_on: condition: service_healthy: compose created master only once every service it
    // depends on had passed its health check (run by podman-compose.sh's checker every 2 s).
    for dep in DOWNSTREAMS {
        let health = podman(&[
            "inspect",
            &container(dep),
            "--format",
            "{{.State.Health.Status}}",
        ]);
        assert_eq!(health, "healthy", "{dep} when master was created");
    }

    // Every MCP service on its host port, as ports.md gives it.
    let ports = ports_md();
    for service in std::iter::once(&"master").chain(DOWNSTREAMS) {
        let port = ports
            .iter()
            .find(|(name, _)| name == service)
            .unwrap_or_else(|| panic!("{service} is not in ports.md"))
            .1;
        wait_until(
            &format!("{service}: /health 200 on {port} and its healthcheck healthy"),
            60,
            || {
                status(&format!("http://127.0.0.1:{port}/health")) == 200
                    && podman(&[
                        "inspect",
                        &container(service),
                        "--format",
                        "{{.State.Health.Status}}",
                    ]) == "healthy"
            },
        );
    }
    // The Python SDK through master, with the user's token: every namespace, and a call.
    let out = Command::new("python3")
        .arg(crate_dir().join("python/check_client.py"))
        .arg("http://127.0.0.1:8000")
        .arg(TOKEN)
        .env("MCP_TOOL_PREFIX", "cmdb_")
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(
        checked("the Python SDK", out)
            .lines()
            .last()
            .unwrap_or_default(),
    )
    .unwrap();
    for transport in ["sse", "streamable_http"] {
        let r = &report[transport];
        let tools: Vec<&str> = r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for ns in [
            "linux_",
            "k8s_",
            "cmdb_",
            "secrets_",
            "ai_models_",
            "freqtrade_",
            "orchestrator_",
            "master_",
        ] {
            assert!(
                tools.iter().any(|t| t.starts_with(ns)),
                "{transport}: no {ns}* in {tools:?}"
            );
        }
        assert_eq!(r["host"], "aicrusher", "{transport}: {r}");
    }

    // Prometheus inside the compose network: every scrape target up.
    wait_until("every Prometheus target up", 90, || {
        let Ok(r) = reqwest::blocking::get("http://127.0.0.1:9090/api/v1/targets") else {
            return false;
        };
        let v: Value = r.json().unwrap_or_default();
        let targets = v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        targets.len() == 7 && targets.iter().all(|t| t["health"] == "up")
    });

    // The KeePass database copied into the secrets-data volume as the README says.
    podman(&[
        "cp",
        &d.join("vault.kdbx").display().to_string(),
        &format!("{}:/app/data/secrets/vault.kdbx", container("secrets")),
    ]);
    checked(
        "give the database to the service's user",
        compose(
            &d,
            &[
                "exec",
                "-T",
                "-u",
                "root",
                "secrets",
                "chown",
                "10001:10001",
                "/app/data/secrets/vault.kdbx",
            ],
        ),
    );
    checked("restart secrets", compose(&d, &["restart", "secrets"]));

    // A client session through master before, during and after the CMDB crashes.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(client("http://127.0.0.1:8000/mcp", Some(TOKEN)));
    let get_host = |c: &rmcp::service::RunningService<rmcp::RoleClient, ()>| {
        rt.block_on(tool(c, "cmdb_getHost", json!({"name": "aicrusher"})))
    };
    assert_ne!(get_host(&c).is_error, Some(true));
    // `podman kill` is a stop by the user (no restart, as with Docker); a crash is the process
    // dying under it.
    let pid = podman(&["inspect", &container("cmdb"), "--format", "{{.State.Pid}}"]);
    checked(
        "kill -9 the CMDB's process",
        Command::new("kill").args(["-9", &pid]).output().unwrap(),
    );
    let crashed = Instant::now();
    wait_until("the CMDB restarted and healthy", 60, || {
        podman(&[
            "inspect",
            &container("cmdb"),
            "--format",
            "{{.RestartCount}} {{.State.Health.Status}}",
        ]) == "1 healthy"
    });
    wait_until(
        "master serving the CMDB again in the same session",
        60,
        || get_host(&c).is_error != Some(true),
    );
    eprintln!(
        "CMDB back and served through master {:.1} s after the crash",
        crashed.elapsed().as_secs_f64()
    );
    // The secrets service opened the copied database with the mounted password.
    wait_until("the KeePass database served through master", 60, || {
        let r = rt.block_on(tool(&c, "secrets_listSecrets", json!({})));
        r.is_error != Some(true) && format!("{:?}", r.content).contains("docker-registry")
    });
    drop(c);

    // The audit trail is on a named volume: still there after down and up.
    let before = audit_rows(&d);
    assert!(before >= 3, "{before}");
    checked("compose down", compose(&d, &["down"]));
    checked(
        "compose up again",
        compose(&d, &[&["up", "-d"][..], &services()].concat()),
    );
    assert_eq!(audit_rows(&d), before);
    wait_until("master healthy again", 60, || {
        status("http://127.0.0.1:8000/health") == 200
    });
    // ... and the KeePass database in its volume: served again after down and up.
    let c = rt.block_on(client("http://127.0.0.1:8000/mcp", Some(TOKEN)));
    wait_until("the KeePass database served after down and up", 60, || {
        let r = rt.block_on(tool(&c, "secrets_listSecrets", json!({})));
        r.is_error != Some(true) && format!("{:?}", r.content).contains("docker-registry")
    });
}
