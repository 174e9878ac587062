//! Guardrails of master (issue 24): the injection scanner against a corpus of poisoned and benign
//! texts, tool pinning against a real third-party server (FastMCP from PyPI) that changes its
//! definitions, and secrets masked in results on the real stack.

mod common;

use serde_json::Value;

/// The corpus: poisoned descriptions and results written for this test, benign descriptions of
/// real servers (server-everything, this suite) and typical tool outputs.
fn corpus() -> Value {
    let path = common::crate_dir().join("tests/guardrails/corpus.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("corpus")).expect("corpus json")
}

#[test]
fn the_scanner_catches_the_poisoned_corpus_and_passes_the_benign_one() {
    use mcp_master::guard::scan::scan;
    let doc = corpus();
    let poisoned = doc["poisoned"].as_array().expect("poisoned");
    let benign = doc["benign"].as_array().expect("benign");
    assert!(
        poisoned.len() >= 40 && benign.len() >= 40,
        "corpus too small"
    );
    let text = |e: &Value| e["text"].as_str().expect("text").to_owned();
    let missed: Vec<String> = poisoned
        .iter()
        .map(text)
        .filter(|t| !scan(t).flagged())
        .collect();
    let false_positives: Vec<(String, String)> = benign
        .iter()
        .map(text)
        .filter_map(|t| {
            let v = scan(&t);
            v.flagged().then(|| (t, v.summary()))
        })
        .collect();
    let caught = poisoned.len() - missed.len();
    let catch_rate = caught as f64 / poisoned.len() as f64;
    let fp_rate = false_positives.len() as f64 / benign.len() as f64;
    println!(
        "guardrail corpus: {caught}/{} poisoned caught ({:.1} %), {}/{} benign flagged ({:.1} %)",
        poisoned.len(),
        catch_rate * 100.0,
        false_positives.len(),
        benign.len(),
        fp_rate * 100.0
    );
    // The held-out entries were written after the rules were tuned on the rest.
    let holdout = |set: &[Value], flagged: bool| {
        let h: Vec<&Value> = set.iter().filter(|e| e["holdout"] == true).collect();
        let n = h
            .iter()
            .filter(|e| scan(&text(e)).flagged() == flagged)
            .count();
        (n, h.len())
    };
    let (hp, hpn) = holdout(poisoned, true);
    let (hb, hbn) = holdout(benign, true);
    println!("  of which held out: {hp}/{hpn} poisoned caught, {hb}/{hbn} benign flagged");
    for m in &missed {
        println!("  missed: {m:?}");
    }
    for (t, why) in &false_positives {
        println!("  false positive ({why}): {t:?}");
    }
    assert!(
        catch_rate >= 0.95,
        "caught only {:.1} %",
        catch_rate * 100.0
    );
    assert!(
        fp_rate <= 0.05,
        "flagged {:.1} % of benign texts",
        fp_rate * 100.0
    );
}

/// The Python with FastMCP from PyPI (`.ci/run` makes this virtualenv), if installed.
fn fastmcp_python() -> Option<std::path::PathBuf> {
    let py = std::env::var_os("MCP_FASTMCP_PYTHON")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::Path::new(&h).join(".cache/mcp-suite/fastmcp/venv/bin/python"))
        })?;
    std::process::Command::new(&py)
        .args(["-c", "import fastmcp"])
        .status()
        .is_ok_and(|s| s.success())
        .then_some(py)
}

/// The FastMCP server of `python/third_party_server.py` serving `variant`, answering MCP.
async fn third_party(py: &std::path::Path, port: u16, variant: &str) -> tokio::process::Child {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("third-party-{port}.log")))
        .expect("log");
    let child = tokio::process::Command::new(py)
        .arg(common::crate_dir().join("python/third_party_server.py"))
        .args([port.to_string(), variant.to_owned()])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the FastMCP server");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let up = http
            .post(format!("http://127.0.0.1:{port}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return child;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the FastMCP server did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn stop(mut child: tokio::process::Child) {
    let _ = child.kill().await;
    let _ = child.wait().await;
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

async fn tool_names(c: &Client) -> Vec<String> {
    c.list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

/// Polls `cond` (a readiness probe on the system under test) for up to 30 s.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Whether master's `/health` names `wire` as held.
async fn held_on_health(master: &common::TestService, wire: &str) -> bool {
    let Ok(r) = reqwest::get(master.url("/health")).await else {
        return false;
    };
    let health: serde_json::Value = r.json().await.unwrap_or_default();
    health["checks"]["pins"]["message"]
        .as_str()
        .is_some_and(|m| m.contains(wire))
}

/// The pending approval of `tool`, once master has asked for it (right after holding it).
async fn pending_approval(approver: &Client, tool: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pending = mcp_test_support::structured(
            &mcp_test_support::tool(
                approver,
                "approvals_list",
                serde_json::json!({"status": "pending"}),
            )
            .await,
        );
        if let Some(row) = pending["approvals"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["tool"] == tool))
        {
            return row.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pending approval for {tool}: {pending}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

const USERS: &[(&str, &[&str], &str)] = &[
    ("alice", &["user"], "alice-token-0123456789"),
    ("bob", &["approver"], "bob-token-0123456789"),
    ("carol", &["admin"], "carol-token-0123456789"),
];

const CANARY: &str = "canary-3rdparty-0f1e2d3c4b5a69788796a5b4c3d2e1f0";

async fn keyed_master(dir: tempfile::TempDir, port: u16) -> common::TestService {
    let key = dir.path().join("identity.key");
    if !key.exists() {
        std::fs::write(&key, "test-identity-and-approval-key-0123456789").expect("key");
    }
    common::keyed_master_in(
        dir,
        &key,
        USERS,
        &format!(
            "[[master.downstream]]\nname = \"third\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ntimeout_secs = 10\n"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_third_party_tool_is_held_until_an_approver_accepts_it() {
    let Some(py) = fastmcp_python() else {
        mcp_test_support::skip(
            "FastMCP (PyPI fastmcp 4.1.6 in ~/.cache/mcp-suite/fastmcp/venv) is not installed",
        );
        return;
    };
    let port = mcp_test_support::free_port();
    let server = third_party(&py, port, "v1").await;
    let master = keyed_master(tempfile::tempdir().expect("tempdir"), port).await;
    let url = master.url("/mcp");
    let alice = mcp_test_support::client(&url, Some(USERS[0].2)).await;
    let bob = mcp_test_support::client(&url, Some(USERS[1].2)).await;
    let names = tool_names(&alice).await;
    for t in ["third_echo", "third_add", "third_leak"] {
        assert!(names.contains(&t.to_owned()), "{t} in {names:?}");
    }

    // A third-party result: the token is masked, the injection too (scan.results = mask).
    let r = mcp_test_support::tool(&alice, "third_leak", serde_json::json!({"name": "cfg"})).await;
    let shown = mcp_test_support::text(&r);
    assert!(!shown.contains(CANARY), "{shown}");
    assert!(shown.contains("API_TOKEN=[REDACTED]"), "{shown}");
    assert!(
        !shown.contains("Ignore all previous instructions")
            && shown.contains(mcp_master::guard::scan::FLAG_MASK),
        "{shown}"
    );

    // The server restarts with a poisoned description of `echo`: held, `add` keeps working in
    // the same session.
    stop(server).await;
    let server = third_party(&py, port, "poisoned").await;
    until("echo held", || held_on_health(&master, "third_echo")).await;
    until("the server back", || async {
        tool_names(&alice).await.contains(&"third_add".to_owned())
    })
    .await;
    assert!(!tool_names(&alice).await.contains(&"third_echo".to_owned()));
    let r = mcp_test_support::tool(&alice, "third_add", serde_json::json!({"a": 2, "b": 3})).await;
    assert_eq!(mcp_test_support::text(&r), "5");
    let r =
        mcp_test_support::tool(&alice, "third_echo", serde_json::json!({"message": "hi"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        mcp_test_support::text(&r).contains("held: definition changed, waiting for approval"),
        "{}",
        mcp_test_support::text(&r)
    );
    let health: serde_json::Value = reqwest::get(master.url("/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    let pins = health["checks"]["pins"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(pins.contains("third_echo"), "{health}");
    let metrics = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert!(
        metrics.contains("mcp_tool_pins_held{downstream=\"third\"} 1"),
        "{metrics}"
    );

    // The approver sees the diff and what the scanner found; alice may not decide.
    let row = pending_approval(&bob, "third_echo").await;
    let change: serde_json::Value =
        serde_json::from_str(row["arguments"].as_str().expect("arguments")).expect("json");
    let diff = change["diff"].as_str().expect("diff");
    assert!(
        diff.contains("-  \"description\": \"Echo the message back.\""),
        "{diff}"
    );
    assert!(
        diff.contains("+  \"description\": \"Echo the message back. <IMPORTANT>"),
        "{diff}"
    );
    assert!(
        change["findings"]
            .as_str()
            .is_some_and(|f| f.contains("concealment")),
        "{change}"
    );
    let id = row["id"].as_str().expect("id");
    let r =
        mcp_test_support::tool(&alice, "approvals_approve", serde_json::json!({"id": id})).await;
    assert_eq!(r.is_error, Some(true), "alice is no approver");
    let r = mcp_test_support::tool(&bob, "approvals_approve", serde_json::json!({"id": id})).await;
    assert_eq!(
        mcp_test_support::structured(&r)["definition"]["decision"],
        "accepted",
        "{}",
        mcp_test_support::text(&r)
    );
    assert!(tool_names(&alice).await.contains(&"third_echo".to_owned()));
    let r =
        mcp_test_support::tool(&alice, "third_echo", serde_json::json!({"message": "hi"})).await;
    assert_eq!(mcp_test_support::text(&r), "hi");

    // Another change, rejected: held, and still held after master restarts.
    stop(server).await;
    let server = third_party(&py, port, "v3").await;
    until("echo held again, and the new tool", || async {
        held_on_health(&master, "third_echo").await && held_on_health(&master, "third_extra").await
    })
    .await;
    let id = pending_approval(&bob, "third_echo").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = mcp_test_support::tool(
        &bob,
        "approvals_deny",
        serde_json::json!({"id": id, "reason": "not reviewed"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", mcp_test_support::text(&r));
    let r =
        mcp_test_support::tool(&alice, "third_echo", serde_json::json!({"message": "hi"})).await;
    assert!(
        mcp_test_support::text(&r).contains("rejected"),
        "{}",
        mcp_test_support::text(&r)
    );
    for c in [alice, bob] {
        c.cancel().await.expect("cancel");
    }
    let mut master = master;
    let dir = std::mem::replace(&mut master.dir, tempfile::tempdir().expect("tempdir"));
    drop(master);
    let master = keyed_master(dir, port).await;
    let alice = mcp_test_support::client(&master.url("/mcp"), Some(USERS[0].2)).await;
    until("the restarted master sees the server", || async {
        tool_names(&alice).await.contains(&"third_add".to_owned())
    })
    .await;
    assert!(!tool_names(&alice).await.contains(&"third_echo".to_owned()));
    let r =
        mcp_test_support::tool(&alice, "third_echo", serde_json::json!({"message": "hi"})).await;
    assert!(
        mcp_test_support::text(&r).contains("an approver rejected the change"),
        "{}",
        mcp_test_support::text(&r)
    );

    // The lock file of the accepted pins: admin only; `add` is pinned, the rejected `echo` keeps
    // the definition accepted before.
    let r = mcp_test_support::tool(&alice, "master_exportToolPins", serde_json::json!({})).await;
    assert_eq!(r.is_error, Some(true), "alice is no admin");
    let carol = mcp_test_support::client(&master.url("/mcp"), Some(USERS[2].2)).await;
    let r = mcp_test_support::tool(&carol, "master_exportToolPins", serde_json::json!({})).await;
    let lock = mcp_test_support::text(&r);
    let parsed: toml::Table = toml::from_str(&lock).unwrap_or_else(|e| panic!("{e}: {lock}"));
    let third = parsed["third"].as_table().expect("[third]");
    for k in ["tool:add", "tool:echo", "tool:leak"] {
        assert_eq!(third[k].as_str().map(str::len), Some(64), "{k}: {lock}");
    }
    carol.cancel().await.expect("cancel");
    // An approver may still accept the rejected change, without the queue.
    let bob = mcp_test_support::client(&master.url("/mcp"), Some(USERS[1].2)).await;
    let r = mcp_test_support::tool(
        &alice,
        "master_acceptToolChange",
        serde_json::json!({"tool": "third_echo"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true), "alice is no approver");
    let r = mcp_test_support::tool(
        &bob,
        "master_acceptToolChange",
        serde_json::json!({"tool": "third_echo", "accept": true, "reason": "reviewed now"}),
    )
    .await;
    assert_eq!(
        mcp_test_support::structured(&r)["decision"],
        "accepted",
        "{}",
        mcp_test_support::text(&r)
    );
    let r =
        mcp_test_support::tool(&alice, "third_echo", serde_json::json!({"message": "hi"})).await;
    assert_eq!(mcp_test_support::text(&r), "HI", "v3 answers in upper case");
    // The tool v3 added is held as new (new_tools = hold for a third-party server).
    let r = mcp_test_support::tool(&alice, "third_extra", serde_json::json!({})).await;
    assert!(
        mcp_test_support::text(&r).contains("held: new definition of an already pinned server"),
        "{}",
        mcp_test_support::text(&r)
    );
    bob.cancel().await.expect("cancel");

    // Every change seen and every decision has its audit row; no store holds the token.
    let audit = master.path("audit.sqlite");
    let rows = || -> Vec<(String, String)> {
        let conn = rusqlite::Connection::open(&audit).expect("audit db");
        let mut stmt = conn
            .prepare("SELECT decision, identity FROM audit WHERE decision LIKE 'pin_%' ORDER BY id")
            .expect("query");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect()
    };
    until("the audit rows", || async {
        rows().iter().filter(|(d, _)| d == "pin_accepted").count() == 2
    })
    .await;
    let rows = rows();
    let count = |d: &str, who: &str| rows.iter().filter(|(x, w)| x == d && w == who).count();
    assert_eq!(count("pin_recorded", "master"), 1, "{rows:?}");
    assert_eq!(
        count("pin_held", "master"),
        3,
        "echo twice, extra once: {rows:?}"
    );
    assert_eq!(count("pin_accepted", "bob"), 2, "{rows:?}");
    assert_eq!(count("pin_rejected", "bob"), 1, "{rows:?}");
    let findings: String = rusqlite::Connection::open(&audit)
        .expect("db")
        .query_row(
            "SELECT findings FROM audit WHERE tool = 'third_leak'",
            [],
            |r| r.get(0),
        )
        .expect("the leak call's row");
    assert!(
        findings.contains("secret") && findings.contains("override"),
        "{findings}"
    );
    for entry in std::fs::read_dir(master.dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "{} holds the token",
            path.display()
        );
    }
    alice.cancel().await.expect("cancel");
    stop(server).await;
}

/// The third-party recipes of `deploy/third-party/`.
fn recipes() -> Vec<(String, String)> {
    let dir = common::crate_dir().join("../../deploy/third-party");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("deploy/third-party")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).expect("read"),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_third_party_recipe_is_a_valid_config_that_holds_by_default() {
    let recipes = recipes();
    let names: Vec<&str> = recipes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "browser.toml",
            "everything.toml",
            "filesystem.toml",
            "web-search.toml"
        ]
    );
    for (name, text) in &recipes {
        let doc = mcp_runtime::ConfigDoc::from_str(text, name).expect("toml");
        let cfg: mcp_master::MasterConfig = doc.section("master").expect("[master]");
        cfg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let [d] = &cfg.downstream[..] else {
            panic!("{name}: one downstream per recipe")
        };
        let policy = mcp_master::guard::GuardPolicy::of(d);
        assert!(policy.third_party, "{name}");
        assert!(policy.pins.hold_new && policy.pins.hold_changes, "{name}");
        assert_eq!(
            policy.descriptions,
            mcp_master::guard::DescriptionScan::Hold,
            "{name}"
        );
        assert_ne!(policy.results, mcp_master::guard::ResultScan::Off, "{name}");
        // Secrets come from files, never from the recipe itself.
        assert!(d.env.is_empty(), "{name}: use env_from_files");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_everything_behind_its_recipe_is_pinned_scanned_and_masked() {
    if !common::npx_available() {
        mcp_test_support::skip("npx is not installed; server-everything cannot run");
        return;
    }
    let token = "canary-recipe-7d1c0f9e8b2a4c6e";
    let recipe = recipes()
        .into_iter()
        .find(|(n, _)| n == "everything.toml")
        .expect("recipe")
        .1
        .replace(
            "timeout_secs = 30\n",
            &format!("timeout_secs = 30\nenv = {{ MCP_RECIPE_API_TOKEN = \"{token}\" }}\n"),
        );
    let master = common::start_master(&recipe, common::server_config()).await;
    let c = mcp_test_support::client(&master.url("/mcp"), None).await;
    until("server-everything's tools", || async {
        tool_names(&c).await.contains(&"everything_echo".to_owned())
    })
    .await;
    let names = tool_names(&c).await;
    assert!(
        names.contains(&"everything_get-env".to_owned()),
        "{names:?}"
    );
    // Its real descriptions pass the scanner: nothing held.
    let metrics = mcp_test_support::metrics(&master.url("/metrics")).await;
    assert!(
        metrics.contains("mcp_tool_pins_held{downstream=\"everything\"} 0"),
        "{metrics}"
    );
    let r = mcp_test_support::tool(
        &c,
        "everything_echo",
        serde_json::json!({"message": "hello"}),
    )
    .await;
    assert!(
        mcp_test_support::text(&r).contains("hello"),
        "{}",
        mcp_test_support::text(&r)
    );
    // Its environment dump is a result like any: the token is masked for the caller.
    let r = mcp_test_support::tool(&c, "everything_get-env", serde_json::json!({})).await;
    let shown = serde_json::to_string(&r).expect("json");
    assert!(shown.contains("MCP_RECIPE_API_TOKEN"), "{shown}");
    assert!(!shown.contains(token), "{shown}");
    // Every definition was pinned in one recorded row.
    let audit = master.path("audit.sqlite");
    let pinned = || {
        rusqlite::Connection::open(&audit)
            .and_then(|conn| {
                conn.query_row(
                    "SELECT arguments FROM audit WHERE decision = 'pin_recorded'",
                    [],
                    |r| r.get::<_, String>(0),
                )
            })
            .ok()
    };
    until("the pin row", || async { pinned().is_some() }).await;
    let row: serde_json::Value = serde_json::from_str(&pinned().expect("row")).expect("json");
    assert_eq!(row["downstream"], "everything");
    let tools = names
        .iter()
        .filter(|n| n.starts_with("everything_"))
        .count();
    let prompts = c.list_all_prompts().await.expect("prompts").len();
    let templates = c
        .list_all_resource_templates()
        .await
        .expect("templates")
        .len();
    assert_eq!(
        row["pinned"].as_u64(),
        Some((tools + prompts + templates) as u64),
        "{row}: {tools} tools, {prompts} prompts, {templates} templates"
    );
    c.cancel().await.expect("cancel");
}
