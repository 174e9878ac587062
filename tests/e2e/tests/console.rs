//! The operator console (`/ui/`) in a real browser: Debian's headless Chromium driven over
//! WebDriver (the system `chromedriver`, path given explicitly; fantoccini) against master with
//! bearer tokens, linux-cli and a ledger behind it. A risky `linux_writeFile` appears on the
//! approvals page without a reload; Approve runs it exactly once, Deny never; a workflow paused at
//! an approval continues after the click; the audit search and its CSV export hold exactly the
//! filtered rows; requests without the session or the CSRF token are refused. Over plain HTTP:
//! the compliance report's counts for known activity, the tools' rules (no self-approval) and no
//! secret argument on any page or export, log-out, and the open console of auth-off master.
//! Screenshots of each page go to `target/console-screenshots/` (README's come from there).

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use mcp_runtime::ServerConfig;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The system chromedriver on a free loopback port, ended when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Option<Driver> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        skip("Debian's chromium and chromium-driver are not installed");
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver { child, url };
    // Ready when its /status says so.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            return Some(driver);
        }
        assert!(Instant::now() < deadline, "chromedriver never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn browser(driver: &Driver, profile: &Path, width: u32, height: u32) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-extensions", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-default-apps",
                     format!("--user-data-dir={}", profile.display()),
                     format!("--window-size={width},{height}")],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

fn screenshots() -> PathBuf {
    let dir = crate_dir().join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shot(b: &Client, name: &str) {
    let png = b.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text_of_css(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Types `text` into the element `css`.
async fn fill(b: &Client, css: &str, text: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

/// Clicks the element `css`.
async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Waits (a bounded number of DOM checks, no reload) for `css` to exist.
async fn wait_for(b: &Client, css: &str, within: Duration) -> fantoccini::elements::Element {
    match b
        .wait()
        .at_most(within)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(el) => el,
        Err(e) => {
            let url = b
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let page = b.source().await.unwrap_or_default();
            panic!("{css} did not appear within {within:?} ({e}) on {url}:\n{page}")
        }
    }
}

/// Audit ids matching a filter, read from the database itself.
fn audit_ids(db: &Path, sql_where: &str) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id FROM audit WHERE {sql_where} ORDER BY id DESC"
        ))
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Waits until the audit writer has committed `n` rows matching `sql_where`.
async fn audit_settles(db: &Path, sql_where: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while audit_ids(db, sql_where).len() < n {
        assert!(
            Instant::now() < deadline,
            "audit rows for {sql_where} never reached {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvers_decide_follow_runs_and_export_audit_in_a_real_browser() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("shared.key");
    std::fs::write(&key, "console-approval-and-identity-key-0123456789").unwrap();
    let linux = start_linux(
        "",
        ServerConfig {
            identity_key_file: Some(key.clone()),
            ..ServerConfig::default()
        },
    )
    .await;
    let master = start_master_trusting(
        &key,
        &[
            ("alice", &[], "alice-tok"),
            ("bob", &["approver"], "bob-tok"),
        ],
        &downstream("linux", Some("linux"), "http", &linux.svc.url("/mcp")),
    )
    .await;
    let base = master.url("");
    let audit_db = master.path("audit.sqlite");
    let alice = mcp_test_support::client(&master.url("/mcp"), Some("alice-tok")).await;

    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path(), 1280, 800).await;

    // Not logged in: the login page; a wrong token is refused there.
    b.goto(&format!("{base}/ui/approvals")).await.unwrap();
    assert!(b.current_url().await.unwrap().path().ends_with("/ui/login"));
    shot(&b, "login").await;
    fill(&b, "#token", "not-a-token").await;
    click(&b, "#login").await;
    let problem = wait_for(&b, "#problem", Duration::from_secs(5)).await;
    assert_eq!(
        problem.text().await.unwrap(),
        "That token is not recognised."
    );
    fill(&b, "#token", "bob-tok").await;
    click(&b, "#login").await;
    wait_for(&b, "#pending", Duration::from_secs(5)).await;
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/ui/approvals")
    );
    assert_eq!(text_of_css(&b, "#who").await, "bob");
    assert_eq!(text_of_css(&b, "#pending .count").await, "0");

    // Alice's risky write appears without a reload, within 2 s.
    let target = linux.root.join("approved.txt");
    let r = alice
        .call_tool(call(
            "linux_writeFile",
            json!({"path": "approved.txt", "content": "written-after-approval"}),
        ))
        .await
        .unwrap();
    let pending = r.structured_content.clone().unwrap_or_default();
    assert_eq!(pending["status"], "pending_approval", "{pending}");
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    let appeared = Instant::now();
    let card = wait_for(&b, &format!("#approval-{id}"), Duration::from_secs(2)).await;
    eprintln!("pending approval shown after {:?}", appeared.elapsed());
    let card_text = card.text().await.unwrap();
    assert!(
        card_text.contains("linux_writeFile") && card_text.contains("alice"),
        "{card_text}"
    );
    assert!(
        !card_text.contains("written-after-approval"),
        "file contents never reach a page: {card_text}"
    );
    assert!(!target.exists());
    shot(&b, "approvals").await;

    // Approve: the write runs once; the audit row names bob.
    fill(&b, &format!("#comment-{id}"), "looks fine").await;
    click(&b, &format!("#approval-{id} button.approve")).await;
    let note = wait_for(&b, "#note", Duration::from_secs(10))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(note, format!("Approval {id} executed."));
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "written-after-approval"
    );
    let decided = text_of_css(&b, &format!("#decided tr[data-id='{id}']")).await;
    assert!(
        decided.contains("executed") && decided.contains("bob") && decided.contains("looks fine"),
        "{decided}"
    );
    audit_settles(
        &audit_db,
        "decision = 'approval_approved' AND identity = 'bob'",
        1,
    )
    .await;
    let backups = std::fs::read_dir(linux.svc.dir.path().join("backups"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        backups, 0,
        "a new file has nothing to back up; a second run would have made one"
    );
    // The same approval cannot run twice, even by replaying the form.
    let replay = b
        .execute(
            "const f = document.createElement('form'); f.method='post'; f.action=arguments[0];
             const c = document.createElement('input'); c.name='csrf'; c.value=document.querySelector('input[name=csrf]').value;
             f.appendChild(c); document.body.appendChild(f); f.submit(); return true;",
            vec![json!(format!("/ui/approvals/{id}/approve"))],
        )
        .await;
    assert!(replay.is_ok());
    let problem = wait_for(&b, "#problem", Duration::from_secs(5))
        .await
        .text()
        .await
        .unwrap();
    assert!(problem.contains("is executed, not pending"), "{problem}");

    // Deny with a reason: the call never runs.
    let denied_target = linux.root.join("denied.txt");
    let r = alice
        .call_tool(call(
            "linux_writeFile",
            json!({"path": "denied.txt", "content": "never-written"}),
        ))
        .await
        .unwrap();
    let id2 = r.structured_content.unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for(&b, &format!("#approval-{id2}"), Duration::from_secs(2)).await;
    // From the keyboard alone: the reason, then Enter submits the Deny form.
    fill(
        &b,
        &format!("#reason-{id2}"),
        &format!("not on a Friday{}", char::from(fantoccini::key::Key::Enter)),
    )
    .await;
    let note = wait_for(&b, "#note", Duration::from_secs(10))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(note, format!("Approval {id2} denied."));
    let row = text_of_css(&b, &format!("#decided tr[data-id='{id2}']")).await;
    assert!(
        row.contains("denied") && row.contains("not on a Friday"),
        "{row}"
    );
    assert!(!denied_target.exists(), "a denied call never runs");

    // A workflow paused at an approval continues after the click; its page shows every step.
    let r = alice
        .call_tool(call(
            "orchestrator_executeWorkflow",
            json!({"definition": {"name": "gated-note", "steps": [
                {"id": "write", "service": "linux", "tool": "writeFile", "approval": true,
                 "params": {"path": "flow.txt", "content": "from-the-workflow"}},
                {"id": "read", "service": "linux", "tool": "readFile", "needs": ["write"],
                 "params": {"path": "flow.txt"}}
            ]}}),
        ))
        .await
        .unwrap();
    let doc = r.structured_content.unwrap();
    assert_eq!(doc["status"], "waiting_approval", "{doc}");
    let run_id = doc["run_id"].as_str().unwrap().to_owned();
    let step_approval = workflow_step(&doc, "write")["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.goto(&format!("{base}/ui/runs")).await.unwrap();
    shot(&b, "runs").await;
    b.find(Locator::LinkText(&run_id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = wait_for(&b, "#run-status", Duration::from_secs(5)).await;
    assert_eq!(status.text().await.unwrap(), "waiting_approval");
    wait_for(
        &b,
        &format!("#approval-{step_approval}"),
        Duration::from_secs(2),
    )
    .await;
    shot(&b, "run-waiting").await;
    click(&b, &format!("#approval-{step_approval} button.approve")).await;
    wait_for(&b, "#note", Duration::from_secs(10)).await;
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with(&format!("/ui/runs/{run_id}"))
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The page reloads itself while the run is in progress.
        if let Ok(el) = b.find(Locator::Css("#run-status")).await
            && el.text().await.unwrap_or_default() == "completed"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never completed on its page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for step in ["write", "read"] {
        let s = text_of_css(&b, &format!("#step-{step} .state")).await;
        assert_eq!(s, "completed", "step {step}");
    }
    assert_eq!(
        std::fs::read_to_string(linux.root.join("flow.txt")).unwrap(),
        "from-the-workflow"
    );
    shot(&b, "run").await;

    // Audit search: alice's writes; the CSV holds exactly those rows.
    let filter = "identity = 'alice' AND tool = 'linux_writeFile'";
    audit_settles(&audit_db, filter, 2).await;
    b.goto(&format!(
        "{base}/ui/audit?identity=alice&tool=linux_writeFile"
    ))
    .await
    .unwrap();
    let want = audit_ids(&audit_db, filter);
    let shown: Vec<i64> = {
        let mut ids = Vec::new();
        for row in b
            .find_all(Locator::Css("#audit tbody tr[data-id]"))
            .await
            .unwrap()
        {
            ids.push(row.attr("data-id").await.unwrap().unwrap().parse().unwrap());
        }
        ids
    };
    assert_eq!(shown, want, "the page shows exactly the filtered rows");
    assert_eq!(text_of_css(&b, "#total").await, want.len().to_string());
    let page = b.source().await.unwrap();
    assert!(
        !page.contains("written-after-approval") && !page.contains("never-written"),
        "no file contents on the audit page"
    );
    shot(&b, "audit").await;
    let cookie = b.get_named_cookie("mcp_console").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let session = format!("mcp_console={}", cookie.value());
    let csv_href = b
        .find(Locator::Css("#export-csv"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let http = reqwest::Client::new();
    let csv_text = http
        .get(format!("{base}{csv_href}"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let exported: Vec<i64> = rd
        .records()
        .map(|r| r.unwrap()[0].parse().unwrap())
        .collect();
    assert_eq!(exported, want, "the CSV holds exactly the filtered rows");
    assert!(!csv_text.contains("written-after-approval"));
    let json_doc: Value = http
        .get(format!(
            "{base}/ui/audit.json?identity=alice&tool=linux_writeFile"
        ))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json_doc["total"], want.len());

    // The other pages render for bob: report, status.
    b.goto(&format!("{base}/ui/report")).await.unwrap();
    assert!(
        text_of_css(&b, "#report-approvals")
            .await
            .contains("Requested")
    );
    shot(&b, "report").await;
    b.goto(&format!("{base}/ui/status")).await.unwrap();
    assert!(text_of_css(&b, "#downstreams").await.contains("linux"));
    shot(&b, "status").await;
    // Readable at phone width: the approvals page has no horizontal scroll.
    b.set_window_size(390, 844).await.unwrap();
    b.goto(&format!("{base}/ui/approvals")).await.unwrap();
    let overflow = b
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        json!(true),
        "no horizontal scrolling at phone width"
    );
    shot(&b, "approvals-phone").await;

    // Without the session, or without the CSRF token, an action is refused and nothing runs.
    let r = alice
        .call_tool(call(
            "linux_writeFile",
            json!({"path": "csrf.txt", "content": "x"}),
        ))
        .await
        .unwrap();
    let id3 = r.structured_content.unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{base}/ui/approvals/{id3}/approve");
    let no_session = http.post(&url).form(&[("csrf", "x")]).send().await.unwrap();
    assert_eq!(no_session.status(), 401);
    let no_csrf = http
        .post(&url)
        .header("cookie", &session)
        .form(&[("comment", "sneaky")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let csp = no_csrf.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(no_csrf.headers()["x-frame-options"], "DENY");
    let wrong_csrf = http
        .post(&url)
        .header("cookie", &session)
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_csrf.status(), 403);
    assert!(!linux.root.join("csrf.txt").exists());
    let r = http
        .get(format!("{base}/ui/approvals"))
        .header("cookie", "mcp_console=forged")
        .send()
        .await
        .unwrap();
    assert!(
        r.url().path().ends_with("/ui/login"),
        "a forged cookie is no session"
    );
    // Alice may not use the console at all.
    let r = http
        .post(format!("{base}/ui/login"))
        .form(&[("token", "alice-tok")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let _ = b.close().await;
}

/// A console session over plain HTTP, as a browser without script: its cookie, and redirects
/// followed with it.
struct Session {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Session {
    fn new(base: &str, set_cookie: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookie: set_cookie.split(';').next().unwrap().to_owned(),
        }
    }

    async fn login(base: &str, token: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = http
            .post(format!("{base}/ui/login"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
        Self::new(base, r.headers()["set-cookie"].to_str().unwrap())
    }

    /// The answer to `req`, after one redirect followed with the cookie.
    async fn follow(&self, r: reqwest::Response) -> reqwest::Response {
        if r.status() != 303 {
            return r;
        }
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        self.get(&to).await
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        Box::pin(self.follow(r)).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        self.follow(r).await
    }

    async fn post_text(&self, path: &str, form: &[(&str, &str)]) -> String {
        self.post(path, form).await.text().await.unwrap()
    }

    async fn text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// The CSRF token of the session's forms (every page's log-out form has it).
    async fn csrf(&self) -> String {
        let page = self.text("/ui/status").await;
        page.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no csrf field in {page}"))
            .to_owned()
    }
}

/// The report's CSV as (section, identity, tool, metric) → value.
fn report_cells(
    csv_text: &str,
) -> std::collections::BTreeMap<(String, String, String, String), String> {
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    rd.records()
        .map(|r| {
            let r = r.unwrap();
            (
                (
                    r[0].to_owned(),
                    r[1].to_owned(),
                    r[2].to_owned(),
                    r[3].to_owned(),
                ),
                r[4].to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compliance_report_counts_known_activity() {
    let (ledger, counts) = ledger::start_ledger("console-report").await;
    let master = start_keyed_master(
        &[
            ("alice", &[], "alice-tok"),
            ("carol", &[], "carol-tok"),
            ("bob", &["approver"], "bob-tok"),
        ],
        &format!(
            "[master.policy]\ndefault_action = \"allow\"\n\
             [[master.policy.rule]]\ntools = [\"ledger_slow\"]\nidentities = [\"carol\"]\naction = \"deny\"\n\
             [master.rate_limit]\n[[master.rate_limit.tool]]\ntools = [\"ledger_fail\"]\nper_minute = 2\n{}",
            downstream("ledger", None, "http", &ledger.url("/mcp"))
        ),
    )
    .await;
    let base = master.url("");
    let start = mcp_runtime_now() - 1;
    let alice = mcp_test_support::client(&master.url("/mcp"), Some("alice-tok")).await;
    let carol = mcp_test_support::client(&master.url("/mcp"), Some("carol-tok")).await;
    let bob_mcp = mcp_test_support::client(&master.url("/mcp"), Some("bob-tok")).await;

    // alice: 3 records (success), ledger_fail 3 times (2 errors, then rate limited).
    for i in 0..3 {
        let r = alice
            .call_tool(call("ledger_record", json!({"key": format!("k{i}")})))
            .await
            .unwrap();
        assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    }
    for _ in 0..3 {
        alice
            .call_tool(call("ledger_fail", json!({"key": "f"})))
            .await
            .unwrap();
    }
    // carol: denied twice.
    for _ in 0..2 {
        let r = carol
            .call_tool(call("ledger_slow", json!({"key": "c"})))
            .await;
        assert!(r.is_err(), "a denied tool is an unknown tool: {r:?}");
    }
    // Workflows: one approved and completed, one denied (failed), one failing outright.
    let gated = |key: &str| {
        json!({"definition": {"name": "gated", "steps": [
            {"id": "write", "service": "ledger", "tool": "record", "approval": true, "params": {"key": key}}
        ]}})
    };
    let mut approvals = Vec::new();
    for key in ["approve-me", "deny-me"] {
        let r = alice
            .call_tool(call("orchestrator_executeWorkflow", gated(key)))
            .await
            .unwrap();
        let doc = r.structured_content.unwrap();
        approvals.push((
            doc["run_id"].as_str().unwrap().to_owned(),
            workflow_step(&doc, "write")["approval_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    let r = carol
        .call_tool(call(
            "orchestrator_executeWorkflow",
            json!({"definition": {"name": "broken", "steps": [
                {"id": "boom", "service": "ledger", "tool": "fail", "params": {"key": "b"}}
            ]}}),
        ))
        .await
        .unwrap();
    let broken_run = r.structured_content.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // bob decides in the console (plain forms, as a browser without script would).
    let bob = Session::login(&base, "bob-tok").await;
    let csrf = bob.csrf().await;
    for (i, (_, id)) in approvals.iter().enumerate() {
        let (path, field, text) = if i == 0 {
            ("approve", "comment", "ok")
        } else {
            ("deny", "reason", "not today")
        };
        let r = bob
            .post(
                &format!("/ui/approvals/{id}/{path}"),
                &[("csrf", csrf.as_str()), (field, text)],
            )
            .await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains(&format!("Approval {id}")), "{page}");
    }
    wait_workflow(&bob_mcp, &approvals[0].0, "completed").await;
    wait_workflow(&bob_mcp, &approvals[1].0, "failed").await;
    wait_workflow(&bob_mcp, &broken_run, "failed").await;
    assert_eq!(counts.records("approve-me"), 1);
    assert_eq!(counts.records("deny-me"), 0);
    let audit_db = master.path("audit.sqlite");
    audit_settles(&audit_db, "decision LIKE 'approval_%'", 2).await;
    audit_settles(
        &audit_db,
        "tool = 'ledger_record' AND identity = 'alice'",
        4,
    )
    .await;

    let to = mcp_runtime_now() + 2;
    let csv_text = bob
        .text(&format!("/ui/report.csv?from={start}&to={to}"))
        .await;
    let cells = report_cells(&csv_text);
    let get = |s: &str, i: &str, t: &str, m: &str| {
        cells
            .get(&(s.into(), i.into(), t.into(), m.into()))
            .cloned()
            .unwrap_or_else(|| panic!("no {s}/{i}/{t}/{m} in\n{csv_text}"))
    };
    // 3 calls, and the 2 gated steps' requests (`approval_pending` rows); the approved step ran
    // under bob's `approval_approved` row.
    assert_eq!(
        get("calls", "alice", "ledger_record", "calls"),
        "5",
        "{csv_text}"
    );
    assert_eq!(get("calls", "alice", "ledger_record", "errors"), "0");
    assert_eq!(
        get("calls", "alice", "ledger_record", "pending_approval"),
        "2"
    );
    assert_eq!(get("calls", "alice", "ledger_fail", "calls"), "3");
    assert_eq!(get("calls", "alice", "ledger_fail", "errors"), "2");
    assert_eq!(get("calls", "alice", "ledger_fail", "refused"), "1");
    assert_eq!(get("calls", "carol", "ledger_slow", "refused"), "2");
    assert_eq!(get("refusals", "carol", "", "deny"), "2");
    assert_eq!(get("refusals", "alice", "", "rate_limited"), "1");
    assert_eq!(get("approvals", "", "", "requested"), "2");
    assert_eq!(get("approvals", "", "", "approved"), "1");
    assert_eq!(get("approvals", "", "", "denied"), "1");
    assert_eq!(get("approvals", "", "", "expired"), "0");
    assert!(
        get("approvals", "", "", "max_decision_secs")
            .parse::<f64>()
            .unwrap()
            < 60.0
    );
    assert_eq!(get("workflows", "", "", "completed"), "1");
    assert_eq!(get("workflows", "", "", "failed"), "2");
    assert_eq!(
        get("calls", "bob", "ledger_record", "calls"),
        "2",
        "bob's two decisions are rows of his: {csv_text}"
    );
    // The page shows the same figures.
    let page = bob.text(&format!("/ui/report?from={start}&to={to}")).await;
    assert!(
        page.contains("<tr><th>Requested</th><td>2</td></tr>"),
        "{page}"
    );
    // A period that ends before the activity is empty.
    let csv_text = bob
        .text(&format!("/ui/report.csv?from={}&to={start}", start - 3600))
        .await;
    assert_eq!(
        report_cells(&csv_text)
            .keys()
            .filter(|k| k.0 == "calls")
            .count(),
        0
    );
    // A period that makes no sense says so.
    let r = bob.get("/ui/report.csv?from=tomorrow").await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("`from` must be a UTC time")
    );
}

fn mcp_runtime_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn with_auth_off_the_local_operator_needs_no_login() {
    let master = start_master(
        "",
        ServerConfig {
            anonymous_roles: vec!["approver".into()],
            ..ServerConfig::default()
        },
    )
    .await;
    let base = master.url("");
    let r = reqwest::get(format!("{base}/ui/status")).await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let operator = Session::new(&base, &cookie);
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/ui"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    let page = r.text().await.unwrap();
    assert!(page.contains("<span id=\"who\">anonymous</span>"), "{page}");
    assert!(!page.contains("Log out"), "nothing to log out of");
    // An action still needs the session's CSRF token, and a session made by a page.
    let r = operator
        .post("/ui/runs/r-1/cancel", &[("reason", "x")])
        .await;
    assert_eq!(r.status(), 403);
    let r = reqwest::Client::new()
        .post(format!("{base}/ui/runs/r-1/cancel"))
        .form(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no session, no action");
    // A good token reaches the engine, whose answer comes back as the page's notice.
    let csrf = operator.csrf().await;
    let page = operator
        .post_text(
            "/ui/runs/r-1/cancel",
            &[("csrf", csrf.as_str()), ("reason", "x")],
        )
        .await;
    assert!(page.contains("id=\"problem\""), "{page}");
    // The console's action is audited like the tool that does the same.
    audit_settles(
        &master.path("audit.sqlite"),
        "identity = 'anonymous' AND tool = 'orchestrator_cancelWorkflow' AND status = 'error' AND error LIKE '%r-1%'",
        1,
    )
    .await;
    // Another site's page cannot post to it (the edge's Origin check).
    let r = reqwest::Client::new()
        .post(format!("{base}/ui/runs/r-1/cancel"))
        .header("cookie", &operator.cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("allowed_origins"));
    // Without approvals the console opens on the status page.
    let r = reqwest::get(format!("{base}/ui/")).await.unwrap();
    assert!(r.url().path().ends_with("/ui/status"), "{}", r.url());
    // An identity without the approver or admin role gets no console.
    let plain = start_master("", ServerConfig::default()).await;
    let r = reqwest::get(plain.url("/ui/approvals")).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("holds neither the `approver` nor the `admin` role")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_keeps_the_tools_rules_and_shows_no_secret() {
    const CANARY: &str = "canary-console-7f3a9d0c";
    let (ledger, counts) = ledger::start_ledger("console-rules").await;
    let master = start_keyed_master(
        &[
            ("bob", &["approver"], "bob-tok"),
            ("dana", &["approver"], "dana-tok"),
        ],
        &format!(
            "[master.console]\nmax_export_rows = 2\n{}",
            downstream("ledger", None, "http", &ledger.url("/mcp"))
        ),
    )
    .await;
    let base = master.url("");
    let bob_mcp = mcp_test_support::client(&master.url("/mcp"), Some("bob-tok")).await;
    let r = bob_mcp
        .call_tool(call(
            "orchestrator_executeWorkflow",
            json!({"definition": {"name": "mine", "steps": [
                {"id": "write", "service": "ledger", "tool": "record", "approval": true,
                 "params": {"key": "mine", "message": format!("password={CANARY}")}}
            ]}}),
        ))
        .await
        .unwrap();
    let doc = r.structured_content.unwrap();
    let run_id = doc["run_id"].as_str().unwrap().to_owned();
    let id = workflow_step(&doc, "write")["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // bob asked for it: his page says why he may not decide, and the decision is refused.
    let bob = Session::login(&base, "bob-tok").await;
    let page = bob.text("/ui/approvals").await;
    assert!(
        page.contains("You asked for this call; another approver decides it"),
        "{page}"
    );
    assert!(
        !page.contains(&format!("/ui/approvals/{id}/approve")),
        "no Approve button for bob"
    );
    let csrf = bob.csrf().await;
    let page = bob
        .post_text(
            &format!("/ui/approvals/{id}/approve"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert!(
        page.contains("requested this call and may not decide it"),
        "{page}"
    );
    assert_eq!(counts.records("mine"), 0);
    // Nowhere in the console does the secret argument show.
    audit_settles(&master.path("audit.sqlite"), "tool = 'ledger_record'", 1).await;
    for path in [
        "/ui/approvals".to_owned(),
        format!("/ui/runs/{run_id}"),
        "/ui/audit".to_owned(),
        "/ui/audit.csv".to_owned(),
        "/ui/audit.json".to_owned(),
        "/ui/report.csv".to_owned(),
    ] {
        let body = bob.text(&path).await;
        assert!(
            body.contains("ledger_record"),
            "{path} shows the call: {body}"
        );
        assert!(!body.contains(CANARY), "{path} shows the secret: {body}");
    }
    // dana decides it; the run goes on.
    let dana = Session::login(&base, "dana-tok").await;
    let csrf = dana.csrf().await;
    let page = dana
        .post_text(
            &format!("/ui/approvals/{id}/approve"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert!(page.contains(&format!("Approval {id} executed.")), "{page}");
    wait_workflow(&bob_mcp, &run_id, "completed").await;
    assert_eq!(counts.records("mine"), 1);
    // An export past master.console.max_export_rows says it is cut.
    audit_settles(&master.path("audit.sqlite"), "1 = 1", 3).await;
    let r = dana.get("/ui/audit.csv").await;
    assert_eq!(r.headers()["x-export-truncated"], "true");
    let csv_text = r.text().await.unwrap();
    assert_eq!(
        csv::Reader::from_reader(csv_text.as_bytes())
            .records()
            .count(),
        2,
        "{csv_text}"
    );
    let doc: Value = serde_json::from_str(&dana.text("/ui/audit.json").await).unwrap();
    assert_eq!(doc["truncated"], true);
    assert_eq!(doc["rows"].as_array().unwrap().len(), 2);
    assert!(doc["total"].as_u64().unwrap() >= 3, "{doc}");
    // Logging out ends the session: the cookie no longer opens a page.
    let csrf = dana.csrf().await;
    let r = dana.post("/ui/logout", &[("csrf", csrf.as_str())]).await;
    assert!(
        r.text().await.unwrap().contains("Bearer token"),
        "the login page after log-out"
    );
    let r = dana
        .http
        .get(format!("{base}/ui/approvals"))
        .header("cookie", &dana.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
}
