//! Shared harness: services on `127.0.0.1:0`, MCP clients, and the skip-or-fail rule for external tools.

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset of the helpers.

use std::path::{Path, PathBuf};

use mcp_runtime::{ConfigDoc, Running, ServerConfig, ShutdownToken};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};

/// A service started in-process for one test; stops when dropped.
pub struct TestService {
    pub running: Option<Running>,
    pub shutdown: ShutdownToken,
    pub dir: tempfile::TempDir,
}

impl TestService {
    pub fn url(&self, path: &str) -> String {
        self.running.as_ref().expect("running").url(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Server settings for tests: loopback, free port, everything else default.
pub fn server_config() -> ServerConfig {
    ServerConfig::default()
}

/// Starts the CMDB on a free port with a copy of the sample CSV in a temp dir.
pub async fn start_cmdb(server: ServerConfig) -> TestService {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("cmdb.csv");
    std::fs::write(&csv, mcp_cmdb::SAMPLE_CSV).expect("write csv");
    start_cmdb_with(server, dir, &csv, 100).await
}

pub async fn start_cmdb_with(
    server: ServerConfig,
    dir: tempfile::TempDir,
    csv: &Path,
    reload_ms: u64,
) -> TestService {
    let doc = ConfigDoc::from_str(
        &format!(
            "[cmdb]\ncsv_path = {:?}\nreload_interval_ms = {reload_ms}\n",
            csv.display().to_string()
        ),
        "test",
    )
    .expect("config");
    let shutdown = ShutdownToken::new();
    let running = mcp_runtime::start::<mcp_cmdb::Cmdb>(&doc, server, shutdown.clone())
        .await
        .expect("start cmdb");
    TestService {
        running: Some(running),
        shutdown,
        dir,
    }
}

/// Starts the conformance fixture on a free port.
pub async fn start_fixture() -> TestService {
    let doc = ConfigDoc::from_str("", "test").expect("config");
    let shutdown = ShutdownToken::new();
    let running = mcp_runtime::start::<mcp_conformance_fixture::Fixture>(
        &doc,
        server_config(),
        shutdown.clone(),
    )
    .await
    .expect("start fixture");
    TestService {
        running: Some(running),
        shutdown,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

/// An rmcp client over streamable HTTP.
pub async fn mcp_client(url: &str) -> RunningService<RoleClient, ()> {
    let transport = StreamableHttpClientTransport::from_uri(url.to_owned());
    ().serve(transport).await.expect("client connects")
}

// Shared with the service packages' own tests.
#[allow(unused_imports)]
pub use mcp_test_support::{
    call, free_port, python_mcp_available, required, skip, text as text_of,
};

/// `(service, port)` rows of the table in ports.md.
pub fn ports_md() -> Vec<(String, u16)> {
    let text = std::fs::read_to_string(crate_dir().join("../../ports.md")).expect("ports.md");
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cells.get(1)?.to_string(), cells.get(2)?.parse().ok()?))
        })
        .collect()
}

/// Whether `program arg` runs and succeeds (a cheap "is this tool installed" probe).
pub fn tool_available(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether `npx` is on PATH.
pub fn npx_available() -> bool {
    tool_available("npx", "--version")
}

/// A binary of another workspace package, built by `cargo test --workspace` beside this test's
/// own executable (`target/<profile>/`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first, or `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Directory of this crate (for scripts and data files).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts master in-process with the given `[master]` TOML (audit db in a temp dir unless set).
pub async fn start_master(master_toml: &str, server: ServerConfig) -> TestService {
    start_master_in(tempfile::tempdir().expect("tempdir"), master_toml, server).await
}

/// Master with an identity (and approval) key of its own and bearer tokens for `users` (identity,
/// roles, token), plus `master_toml`.
pub async fn start_keyed_master(users: &[(&str, &[&str], &str)], master_toml: &str) -> TestService {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("identity.key");
    std::fs::write(&key, "test-identity-and-approval-key-0123456789").expect("key");
    keyed_master_in(dir, &key, users, master_toml).await
}

/// Master signing identities and approval tokens with `key`, the key file the services under test
/// trust, and bearer tokens for `users`, plus `master_toml`.
pub async fn start_master_trusting(
    key: &Path,
    users: &[(&str, &[&str], &str)],
    master_toml: &str,
) -> TestService {
    keyed_master_in(
        tempfile::tempdir().expect("tempdir"),
        key,
        users,
        master_toml,
    )
    .await
}

pub async fn keyed_master_in(
    dir: tempfile::TempDir,
    key: &Path,
    users: &[(&str, &[&str], &str)],
    master_toml: &str,
) -> TestService {
    let tokens = tokens_file(dir.path(), users);
    start_master_in(
        dir,
        &format!(
            "identity_key_file = {:?}\n{master_toml}",
            key.display().to_string()
        ),
        ServerConfig {
            auth_tokens_file: Some(tokens),
            ..server_config()
        },
    )
    .await
}

/// [`start_master`] keeping its data in `dir`.
pub async fn start_master_in(
    dir: tempfile::TempDir,
    master_toml: &str,
    server: ServerConfig,
) -> TestService {
    let audit = dir.path().join("audit.sqlite");
    let text = format!(
        "[master]\nseed_env = false\naudit_db = {:?}\nhealth_interval_ms = 200\nreconnect_max_ms = 300\n{master_toml}",
        audit.display().to_string()
    );
    let doc = ConfigDoc::from_str(&text, "test master config").expect("config");
    let shutdown = ShutdownToken::new();
    let running = mcp_runtime::start::<mcp_master::Master>(&doc, server, shutdown.clone())
        .await
        .expect("start master");
    TestService {
        running: Some(running),
        shutdown,
        dir,
    }
}

/// The step `id` of a workflow run document (`orchestrator_getWorkflow`).
pub fn workflow_step<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step {id} in {doc}"))
}

/// `orchestrator_getWorkflow` of a run: its structured document.
pub async fn get_workflow(c: &RunningService<RoleClient, ()>, run_id: &str) -> serde_json::Value {
    c.call_tool(call(
        "orchestrator_getWorkflow",
        serde_json::json!({"run_id": run_id}),
    ))
    .await
    .expect("getWorkflow")
    .structured_content
    .unwrap_or_default()
}

/// Polls a run until it has `status` (30 s at most).
pub async fn wait_workflow(
    c: &RunningService<RoleClient, ()>,
    run_id: &str,
    status: &str,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let doc = get_workflow(c, run_id).await;
        if doc["status"] == status {
            return doc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run never became {status}: {doc}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A `[[master.downstream]]` table.
pub fn downstream(name: &str, namespace: Option<&str>, transport: &str, url: &str) -> String {
    let ns = namespace
        .map(|n| format!("namespace = {n:?}\n"))
        .unwrap_or_default();
    format!(
        "[[master.downstream]]\nname = {name:?}\n{ns}transport = {transport:?}\nurl = {url:?}\ntimeout_secs = 10\n"
    )
}

/// The pinned conformance suite; bump deliberately and re-check the expected failures.
pub const CONFORMANCE: &str = "@modelcontextprotocol/conformance@0.1.16";

/// How many checks `server --suite all` of [`CONFORMANCE`] makes: every one must pass.
pub const CONFORMANCE_CHECKS: u32 = 46;

/// Runs `conformance server --suite all` against `url` with a baseline from `conformance/` and
/// asserts that it passed and really exercised the server.
pub async fn assert_conformance_passes(url: &str, baseline: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new("npx")
        .args([
            "-y",
            "-p",
            "node@22",
            "-p",
            CONFORMANCE,
            "conformance",
            "server",
            "--url",
            url,
        ])
        .args(["--suite", "all", "--expected-failures"])
        .arg(crate_dir().join("conformance").join(baseline))
        .current_dir(work.path())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run npx");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .split("=== SUMMARY ===")
        .nth(1)
        .unwrap_or(&stdout)
        .to_owned();
    eprintln!("{summary}");
    assert!(
        out.status.success(),
        "conformance suite failed against {url} (exit {:?}):\n{summary}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every scenario ran and passed every check; the totals are those of the pinned suite.
    let failing: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains(" passed, ") && !l.starts_with("Total:"))
        .filter(|l| !l.starts_with('✓') || !l.trim_end().ends_with(" 0 failed"))
        .collect();
    assert!(
        failing.is_empty(),
        "scenarios with failures: {failing:?}\n{summary}"
    );
    let total = summary
        .lines()
        .find_map(|l| l.strip_prefix("Total: "))
        .unwrap_or_default();
    assert_eq!(
        total.trim(),
        format!("{CONFORMANCE_CHECKS} passed, 0 failed"),
        "every check of {CONFORMANCE} must run and pass:\n{summary}"
    );
}

/// ai-models against fake providers at `url` (keys `gemini-test-key`, `anthropic-test-key`; a
/// price for gemini-2.5-flash only).
pub async fn start_ai_models(url: &str) -> TestService {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("g"), "gemini-test-key").expect("key");
    std::fs::write(dir.path().join("a"), "anthropic-test-key").expect("key");
    let text = format!(
        "[ai_models.gemini]\nenabled = true\nbase_url = {url:?}\napi_key_file = {g:?}\nmodels = []\ndefault_model = \"gemini-2.5-flash\"\napi_version = \"\"\nprices = {{ \"gemini-2.5-flash\" = {{ input_per_mtok = 0.30, output_per_mtok = 2.50 }} }}\n\n[ai_models.anthropic]\nenabled = true\nbase_url = {url:?}\napi_key_file = {a:?}\nmodels = []\ndefault_model = \"claude-haiku-4-5\"\napi_version = \"2023-06-01\"\nprices = {{}}\n",
        g = dir.path().join("g").display().to_string(),
        a = dir.path().join("a").display().to_string(),
    );
    let doc = ConfigDoc::from_str(&text, "test ai-models config").expect("config");
    let shutdown = ShutdownToken::new();
    let running =
        mcp_runtime::start::<mcp_ai_models::AiModels>(&doc, server_config(), shutdown.clone())
            .await
            .expect("start ai-models");
    TestService {
        running: Some(running),
        shutdown,
        dir,
    }
}

/// Writes a tokens file for `users` (identity, roles, token) into `dir`.
pub fn tokens_file(dir: &Path, users: &[(&str, &[&str], &str)]) -> PathBuf {
    let text: String = users
        .iter()
        .map(|(name, roles, token)| {
            format!(
                "[[token]]\nidentity = {name:?}\nroles = {roles:?}\nsha256 = \"{}\"\n\n",
                mcp_runtime::auth::hash_token(token)
            )
        })
        .collect();
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text).expect("tokens file");
    path
}

/// The secrets service with its demo KeePass database, trusting master's identity (and approval)
/// key, with extra `[[secrets.rule]]` TOML.
pub async fn start_secrets_demo(key: &Path, rules: &str) -> TestService {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[secrets]\naudit_file = \"\"\ndemo_if_empty = true\ndemo_path = {:?}\ndemo_password_file = {:?}\n{rules}\n",
        dir.path().join("demo.kdbx").display().to_string(),
        dir.path().join("demo_pw").display().to_string(),
    );
    let doc = ConfigDoc::from_str(&text, "test secrets config").expect("config");
    let shutdown = ShutdownToken::new();
    let running = mcp_runtime::start::<mcp_secrets::Secrets>(
        &doc,
        ServerConfig {
            identity_key_file: Some(key.to_owned()),
            ..server_config()
        },
        shutdown.clone(),
    )
    .await
    .expect("start secrets");
    TestService {
        running: Some(running),
        shutdown,
        dir,
    }
}

/// The shipped Prometheus config `file` (in `monitoring/prometheus`), scraping and evaluating every
/// second, with its rule files by absolute path so it runs from any directory.
pub fn shipped_prometheus_config(file: &str) -> String {
    let dir = crate_dir().join("../../monitoring/prometheus");
    let mut cfg = std::fs::read_to_string(dir.join(file))
        .expect("shipped Prometheus config")
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    for rules in ["alerts.yml", "slo.yml"] {
        cfg = cfg.replace(
            &format!("- {rules}"),
            &format!("- {}", dir.join(rules).display()),
        );
    }
    cfg
}

/// A real Prometheus (Debian's `prometheus`) on a free loopback port with config `cfg`, keeping
/// its data in `dir`; killed when dropped.
pub struct Prometheus {
    child: std::process::Child,
    port: u16,
}

impl Prometheus {
    pub fn start(dir: &Path, cfg: &str) -> Self {
        let cfg_path = dir.join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).expect("write prometheus.yml");
        let port = free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Self { child, port }
    }

    /// The result vector of an instant query (`None` while Prometheus is not answering yet).
    pub async fn query(&self, q: &str) -> Option<Vec<serde_json::Value>> {
        let url = reqwest::Url::parse_with_params(
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
            &[("query", q)],
        )
        .ok()?;
        let v: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        v["data"]["result"].as_array().cloned()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `deploy/tls/make-certs.sh` (real openssl) with `dir` as its output directory, from `cwd`.
pub fn make_certs(cwd: &Path, dir: &Path) {
    let out = std::process::Command::new("sh")
        .arg(crate_dir().join("../../deploy/tls/make-certs.sh"))
        .arg(dir)
        .current_dir(cwd)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "make-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// linux-cli started in-process with its root (`work/`, canonical) and backups in a temp dir.
pub struct Linux {
    pub svc: TestService,
    pub root: std::path::PathBuf,
}

/// Starts linux-cli with `extra` `[linux]` TOML and `server` settings.
pub async fn start_linux(extra: &str, server: ServerConfig) -> Linux {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("work");
    let text = format!(
        "[linux]\nallowed_roots = [{:?}]\nbackup_dir = {:?}\ndefault_timeout_secs = 10\n{extra}",
        root.display().to_string(),
        dir.path().join("backups").display().to_string(),
    );
    let doc = ConfigDoc::from_str(&text, "test linux config").expect("config");
    let shutdown = ShutdownToken::new();
    let running = mcp_runtime::start::<mcp_linux_cli::LinuxCli>(&doc, server, shutdown.clone())
        .await
        .expect("start linux-cli");
    let root = std::fs::canonicalize(&root).expect("root");
    Linux {
        svc: TestService {
            running: Some(running),
            shutdown,
            dir,
        },
        root,
    }
}
