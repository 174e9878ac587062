//! The freqtrade-knowledge service over a real git repository built from Freqtrade's source
//! distribution on PyPI (which has no docs/, so a small docs set is added), with three commits and
//! tags; a real git2 clone over file://; and a real `freqtrade` from PyPI for the CLI tool.
//! `.ci/run` downloads both into ~/.cache/mcp-suite/freqtrade.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mcp_runtime::{ConfigDoc, Running, ServerConfig, ShutdownToken};
use mcp_test_support::{skip, structured as sc, text, tool};
use rmcp::RoleClient;
use rmcp::service::RunningService;
use serde_json::{Value, json};

fn cache() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/mcp-suite/freqtrade")
}

fn sdist() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MCP_FREQTRADE_SDIST") {
        return Some(PathBuf::from(p));
    }
    std::fs::read_dir(cache())
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
}

fn freqtrade_bin() -> Option<PathBuf> {
    std::env::var_os("MCP_FREQTRADE_BIN")
        .map(PathBuf::from)
        .or_else(|| Some(cache().join("venv/bin/freqtrade")))
        .filter(|p| p.is_file())
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const HYPEROPT_MD: &str = "# Hyperopt\n\nHyperopt finds good strategy parameters.\n\n## Loss functions\n\nPick a loss function such as SharpeHyperOptLoss; the loss decides what \"good\" means.\n\n## Epochs\n\nRun at least 500 epochs; results with fewer epochs are noisy.\n\n```\n# not a heading inside code\nfreqtrade hyperopt --epochs 500\n```\n\n## Reproducible results\n\nSet --random-state to repeat a run.\n";
const FREQAI_MD: &str = "# FreqAI\n\nFreqAI trains models on features.\n\n## Feature engineering\n\nDefine features in feature_engineering_expand_all.\n";

/// Builds the fixture repository: `nodocs` (the sdist), `v-fixture` (+docs, symlinks), then a
/// second change on `main` that the tag must hide.
fn fixture() -> Option<(tempfile::TempDir, PathBuf)> {
    let Some(sdist) = sdist() else {
        skip(
            "the Freqtrade sdist is not downloaded (pip download --no-deps --no-binary :all: freqtrade)",
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("--no-same-owner")
        .arg("-xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let top = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let repo = dir.path().join("repo");
    std::fs::rename(&top, &repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "freqtrade sources"]);
    git(&repo, &["tag", "nodocs"]);
    std::fs::create_dir_all(repo.join("docs")).unwrap();
    std::fs::write(repo.join("docs/hyperopt.md"), HYPEROPT_MD).unwrap();
    std::fs::write(repo.join("docs/freqai.md"), FREQAI_MD).unwrap();
    std::os::unix::fs::symlink("../../../../etc/passwd", repo.join("freqtrade/escape")).unwrap();
    std::os::unix::fs::symlink("main.py", repo.join("freqtrade/main_link.py")).unwrap();
    std::fs::write(repo.join("freqtrade/binary.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "docs"]);
    git(&repo, &["tag", "v-fixture"]);
    let mut main = std::fs::read_to_string(repo.join("freqtrade/main.py")).unwrap();
    main.push_str("\n# SECOND_COMMIT_MARKER\n");
    std::fs::write(repo.join("freqtrade/main.py"), main).unwrap();
    git(&repo, &["commit", "-q", "-am", "second change"]);
    Some((dir, repo))
}

struct Svc {
    running: Option<Running>,
    shutdown: ShutdownToken,
    _dir: tempfile::TempDir,
}

impl Drop for Svc {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Svc {
    fn url(&self, p: &str) -> String {
        self.running.as_ref().unwrap().url(p)
    }
}

async fn start(extra: &str) -> Svc {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[freqtrade]\ncache_dir = {:?}\nfetch_interval_secs = 0\n{extra}\n",
        dir.path().join("clone.git").display().to_string()
    );
    let doc = ConfigDoc::from_str(&text, "test").unwrap();
    let shutdown = ShutdownToken::new();
    let running = mcp_runtime::start::<mcp_freqtrade::Freqtrade>(
        &doc,
        ServerConfig::default(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    Svc {
        running: Some(running),
        shutdown,
        _dir: dir,
    }
}

/// Waits until /health says the repository is ready (or returns the last health body).
async fn ready(svc: &Svc) -> Value {
    let mut h = Value::Null;
    for _ in 0..200 {
        h = reqwest_get(&svc.url("/health")).await;
        if h["checks"]["repository"]["status"] == "healthy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h
}

async fn reqwest_get(url: &str) -> Value {
    let body = tokio::task::spawn_blocking({
        let url = url.to_owned();
        move || {
            use std::io::{Read, Write};
            let rest = url.strip_prefix("http://").unwrap();
            let (authority, path) = rest.split_once('/').unwrap();
            let mut s = std::net::TcpStream::connect(authority).unwrap();
            write!(
                s,
                "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut buf = String::new();
            s.read_to_string(&mut buf).unwrap();
            buf
        }
    })
    .await
    .unwrap();
    let json = body.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(json).unwrap_or(Value::Null)
}

async fn client(svc: &Svc) -> RunningService<RoleClient, ()> {
    mcp_test_support::client(&svc.url("/mcp"), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_sandboxed_source_tools_and_cited_knowledge() {
    let Some((_dir, repo)) = fixture() else {
        return;
    };
    let tag_commit = git(&repo, &["rev-parse", "v-fixture^{commit}"]);
    let svc = start(&format!(
        "repo_path = {:?}\ngit_ref = \"v-fixture\"",
        repo.display().to_string()
    ))
    .await;
    let h = ready(&svc).await;
    assert_eq!(
        h["checks"]["repository"]["details"]["commit"],
        tag_commit.as_str(),
        "{h}"
    );
    assert_eq!(h["checks"]["repository"]["details"]["docs_found"], true);
    let c = client(&svc).await;

    // The tag hides the later commit, although the work tree has it.
    let r = tool(
        &c,
        "source_getFileContent",
        json!({"path": "freqtrade/main.py"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        sc(&r)["content"].as_str().unwrap().contains("def main"),
        "{}",
        text(&r)
    );
    assert!(!text(&r).contains("SECOND_COMMIT_MARKER"));
    assert!(
        std::fs::read_to_string(repo.join("freqtrade/main.py"))
            .unwrap()
            .contains("SECOND_COMMIT_MARKER")
    );
    let r = tool(
        &c,
        "source_getFileContent",
        json!({"path": "freqtrade/main.py", "start_line": 1, "end_line": 3}),
    )
    .await;
    assert_eq!(sc(&r)["content"].as_str().unwrap().lines().count(), 3);
    let r = tool(
        &c,
        "source_getFileContent",
        json!({"path": "freqtrade/strategy/interface.py", "max_bytes": 100}),
    )
    .await;
    assert_eq!(sc(&r)["truncated"], true);
    let r = tool(
        &c,
        "source_getFileContent",
        json!({"path": "freqtrade/binary.bin"}),
    )
    .await;
    assert_eq!(sc(&r)["binary"], true);

    // Nothing outside the repository is reachable.
    for bad in [
        "../../../../etc/passwd",
        "/etc/passwd",
        "freqtrade/../../x",
        "freqtrade/escape",
    ] {
        let r = tool(&c, "source_getFileContent", json!({"path": bad})).await;
        assert_eq!(r.is_error, Some(true), "{bad}: {}", text(&r));
        assert!(
            text(&r).contains("refused") || text(&r).contains("outside the repository"),
            "{bad}: {}",
            text(&r)
        );
    }
    let r = tool(
        &c,
        "source_getFileContent",
        json!({"path": "freqtrade/main_link.py"}),
    )
    .await;
    assert!(
        sc(&r)["content"].as_str().unwrap().contains("def main"),
        "a link inside the tree is followed"
    );

    let r = tool(&c, "source_listDirectory", json!({"path": "freqtrade"})).await;
    let entries = sc(&r)["entries"].as_array().unwrap().clone();
    assert!(
        entries
            .iter()
            .any(|e| e["name"] == "strategy" && e["kind"] == "dir")
    );
    assert!(
        entries.iter().any(|e| e["name"] == "main.py"
            && e["kind"] == "file"
            && e["size"].as_u64().unwrap() > 0)
    );
    assert!(
        entries
            .iter()
            .any(|e| e["name"] == "escape" && e["kind"] == "symlink")
    );

    let r = tool(
        &c,
        "source_search",
        json!({"query": "class IStrategy", "context_lines": 1, "path_glob": "freqtrade/**/*.py"}),
    )
    .await;
    let m = sc(&r)["matches"].as_array().unwrap().clone();
    assert!(
        m.iter()
            .any(|x| x["path"] == "freqtrade/strategy/interface.py"),
        "{}",
        text(&r)
    );
    assert!(m[0]["before"].is_array());
    let r = tool(
        &c,
        "source_search",
        json!({"query": "def \\w+_hyperopt", "regex": true, "max_matches": 3}),
    )
    .await;
    assert!(sc(&r)["matches"].as_array().unwrap().len() <= 3);
    let r = tool(&c, "source_search", json!({"query": "(", "regex": true})).await;
    assert!(text(&r).contains("invalid regex"));

    // Knowledge from the repository's docs, cited; a topic narrows it.
    let r = tool(&c, "hyperoptBestPractices", json!({})).await;
    let k = sc(&r);
    assert_eq!(k["docs_found"], true);
    assert_eq!(k["commit"], tag_commit.as_str());
    let headings: Vec<&str> = k["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["heading"].as_str().unwrap())
        .collect();
    assert_eq!(
        headings,
        [
            "Hyperopt",
            "Loss functions",
            "Epochs",
            "Reproducible results"
        ]
    );
    assert!(
        k["sections"][2]["citation"]
            .as_str()
            .unwrap()
            .starts_with("docs/hyperopt.md#L9 @ "),
        "{k}"
    );
    let r = tool(&c, "hyperoptBestPractices", json!({"topic": "epochs"})).await;
    let k = sc(&r);
    assert_eq!(k["sections"].as_array().unwrap().len(), 1, "{k}");
    assert!(
        k["sections"][0]["text"]
            .as_str()
            .unwrap()
            .contains("500 epochs")
    );
    let r = tool(&c, "freqAiOverview", json!({})).await;
    assert_eq!(sc(&r)["sections"][1]["heading"], "Feature engineering");
    c.cancel().await.unwrap();

    // Pinned to the commit without docs: said plainly, with source files instead.
    let nodocs = start(&format!(
        "repo_path = {:?}\ngit_ref = \"nodocs\"",
        repo.display().to_string()
    ))
    .await;
    ready(&nodocs).await;
    let c = client(&nodocs).await;
    let r = tool(&c, "hyperoptBestPractices", json!({})).await;
    let k = sc(&r);
    assert_eq!(k["docs_found"], false, "{k}");
    assert!(
        k["message"]
            .as_str()
            .unwrap()
            .contains("no hyperopt documentation")
    );
    assert!(
        k["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("hyperopt"))
    );
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_over_file_urls_and_degrades_on_unreachable_ones() {
    let Some((_dir, repo)) = fixture() else {
        return;
    };
    let head = git(&repo, &["rev-parse", "main"]);
    let svc = start(&format!(
        "repo_url = \"file://{}\"\ngit_ref = \"main\"",
        repo.display()
    ))
    .await;
    let h = ready(&svc).await;
    assert_eq!(h["checks"]["repository"]["status"], "healthy", "{h}");
    assert_eq!(
        h["checks"]["repository"]["details"]["commit"],
        head.as_str()
    );
    let c = client(&svc).await;
    let r = tool(
        &c,
        "source_getFileContent",
        json!({"path": "freqtrade/main.py"}),
    )
    .await;
    assert!(
        text(&r).contains("SECOND_COMMIT_MARKER"),
        "main is pinned: {}",
        text(&r)
    );
    c.cancel().await.unwrap();

    let bad = start("repo_url = \"file:///nonexistent/freqtrade.git\"\ngit_ref = \"main\"").await;
    let mut h = Value::Null;
    for _ in 0..100 {
        h = reqwest_get(&bad.url("/health")).await;
        if h["checks"]["repository"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot clone"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        h["checks"]["repository"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/freqtrade.git"),
        "{h}"
    );
    let c = client(&bad).await;
    let r = tool(&c, "source_listDirectory", json!({})).await;
    assert!(
        text(&r).contains("not ready") && text(&r).contains("cannot clone"),
        "{}",
        text(&r)
    );
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_cli_runs_and_everything_else_is_refused() {
    let Some(bin) = freqtrade_bin() else {
        skip(
            "freqtrade is not installed in ~/.cache/mcp-suite/freqtrade/venv (pip install freqtrade)",
        );
        return;
    };
    let svc = start(&format!(
        "repo_url = \"\"\nfreqtrade_bin = {:?}\ncli_timeout_secs = 120",
        bin.display().to_string()
    ))
    .await;
    let c = client(&svc).await;
    let r = tool(&c, "cli_runInfoCommand", json!({"subcommand": "--version"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        sc(&r)["stdout"].as_str().unwrap().contains("freqtrade"),
        "{}",
        text(&r)
    );
    let r = tool(
        &c,
        "cli_runInfoCommand",
        json!({"subcommand": "list-exchanges", "args": ["-1"]}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        sc(&r)["stdout"]
            .as_str()
            .unwrap()
            .lines()
            .any(|l| l.trim() == "binance"),
        "{}",
        text(&r)
    );
    for (sub, args) in [
        ("trade", json!([])),
        ("webserver", json!([])),
        ("download-data", json!([])),
        ("show-config", json!(["--show-sensitive"])),
    ] {
        let r = tool(
            &c,
            "cli_runInfoCommand",
            json!({"subcommand": sub, "args": args}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{sub}");
        assert!(
            text(&r).contains("not an informational subcommand")
                || text(&r).contains("not allowed"),
            "{sub}: {}",
            text(&r)
        );
    }
    c.cancel().await.unwrap();
    // Without an executable: a clear error.
    let none = start("repo_url = \"\"\nfreqtrade_bin = \"/nonexistent/freqtrade\"").await;
    let c = client(&none).await;
    let r = tool(&c, "cli_runInfoCommand", json!({"subcommand": "--version"})).await;
    assert!(text(&r).contains("not installed"), "{}", text(&r));
    c.cancel().await.unwrap();
}
