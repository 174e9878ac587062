//! Versions of a downstream behind master, as a user rolls out a canary: two real cmdb processes
//! with different data as v1/v2 of `cmdb` at 80/20; 50 identities making 1 000 calls split by the
//! weights, each staying on one version; the header, `_meta` and role overrides; weights changed
//! by an admin (`master_setRoute`) and by editing the config file; and a v2 that fails (an
//! in-test downstream answering errors with cmdb's own tool schemas) rolled back to weight 0
//! within its window, with an audit row and the rollback metric the alert reads.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mcp_test_support::{client, client_over, metrics, structured, tool};
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// What v2's copy of the CMDB says about `aicrusher`, so each answer shows which version served it.
const V2_MARK: &str = "served by cmdb v2";
const V1_TEXT: &str = "GPU workstation for local LLMs and Freqtrade backtests";

/// A cmdb whose data says `V2_MARK` where the sample says `V1_TEXT`.
async fn start_cmdb_v2() -> TestService {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cmdb.csv");
    assert!(mcp_cmdb::SAMPLE_CSV.contains(V1_TEXT));
    std::fs::write(&csv, mcp_cmdb::SAMPLE_CSV.replace(V1_TEXT, V2_MARK)).unwrap();
    start_cmdb_with(server_config(), dir, &csv, 100).await
}

/// The real cmdb's tools, for an in-test candidate that lists the same.
async fn tools_of(cmdb: &TestService) -> Vec<Tool> {
    mcp_client(&cmdb.url("/mcp"))
        .await
        .list_all_tools()
        .await
        .unwrap()
}

/// An in-test candidate version serving `handler` on a free loopback port.
async fn start_candidate<H>(name: &str, handler: H) -> mcp_runtime::Running
where
    H: ServerHandler + Clone + Send + Sync + 'static,
{
    mcp_runtime::Runtime::new(name, "0", move || handler.clone())
        .with_config(server_config())
        .bind()
        .await
        .unwrap()
}

/// `[[master.downstream]]` of one version of `cmdb`.
fn version(name: &str, v: &str, weight: u32, url: &str) -> String {
    format!(
        "[[master.downstream]]\nname = {name:?}\nnamespace = \"cmdb\"\nversion = {v:?}\nweight = {weight}\nurl = {url:?}\ntimeout_secs = 10\n"
    )
}

fn users() -> Vec<(String, String)> {
    (0..50)
        .map(|i| (format!("user{i:02}"), format!("tok-user{i:02}")))
        .collect()
}

/// Tokens of the 50 users, an admin and a beta tester.
fn all_tokens() -> Vec<(String, Vec<&'static str>, String)> {
    users()
        .into_iter()
        .map(|(u, t)| (u, vec![], t))
        .chain([
            (
                "ops-admin".to_owned(),
                vec!["admin"],
                "tok-admin".to_owned(),
            ),
            ("tester".to_owned(), vec!["beta"], "tok-beta".to_owned()),
        ])
        .collect()
}

async fn keyed(toml: &str) -> TestService {
    let tokens = all_tokens();
    let users: Vec<(&str, &[&str], &str)> = tokens
        .iter()
        .map(|(u, r, t)| (u.as_str(), r.as_slice(), t.as_str()))
        .collect();
    start_keyed_master(&users, toml).await
}

fn get_aicrusher() -> CallToolRequestParams {
    call(
        "cmdb_getHost",
        json!({"name": "aicrusher", "fields": ["description"]}),
    )
}

/// Which version answered a `get_aicrusher` call.
fn version_of(r: &CallToolResult) -> &'static str {
    assert_ne!(r.is_error, Some(true), "{}", text_of(r));
    match r.structured_content.as_ref().unwrap()["host"]["description"].as_str() {
        Some(V2_MARK) => "v2",
        Some(V1_TEXT) => "v1",
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn served_by(c: &Client) -> &'static str {
    version_of(&c.call_tool(get_aicrusher()).await.unwrap())
}

/// A client whose every request carries `x-mcp-route: <route>`.
async fn routed_client(url: &str, token: &str, route: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("x-mcp-route", route.parse().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    client_over(url, http).await
}

fn route_of<'a>(status: &'a Value, ns: &str) -> &'a Value {
    status["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["namespace"] == ns))
        .unwrap_or_else(|| panic!("no route {ns} in {status}"))
}

async fn status(c: &Client) -> Value {
    structured(&tool(c, "master_getSystemStatus", json!({})).await)
}

fn weights(route: &Value) -> Vec<(String, u64)> {
    route["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_owned(),
                v["weight"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Audit rows of `master_setRoute`: identity, decision, arguments, error.
fn route_rows(db: &std::path::Path) -> Vec<[String; 4]> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT identity, decision, arguments, COALESCE(error, '') FROM audit WHERE tool = 'master_setRoute' ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Polls until `cond` holds on master's status (the audit writer and reload run in the background).
async fn wait_status(c: &Client, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = status(c).await;
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never {what}: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weighted_versions_split_callers_and_each_stays_on_one() {
    let v1 = start_cmdb(server_config()).await;
    let v2 = start_cmdb_v2().await;
    let master = keyed(&format!(
        "{}{}[[master.route]]\nnamespace = \"cmdb\"\n[[master.route.rule]]\nroles = [\"beta\"]\nversion = \"v2\"\n",
        version("cmdb-v1", "v1", 80, &v1.url("/mcp")),
        version("cmdb-v2", "v2", 20, &v2.url("/mcp")),
    ))
    .await;
    let url = master.url("/mcp");
    let admin = client(&url, Some("tok-admin")).await;

    // One namespace, listed once: the stable version's tools.
    let direct = mcp_client(&v1.url("/mcp")).await;
    let stable: BTreeSet<String> = direct
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| format!("cmdb_{}", t.name))
        .collect();
    let listed: Vec<String> = admin
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .filter(|n| n.starts_with("cmdb_"))
        .collect();
    assert_eq!(listed.len(), stable.len(), "{listed:?}");
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), stable);

    // 50 identities, 20 calls each, all at once.
    let runs = users().into_iter().map(|(user, token)| {
        let url = url.clone();
        tokio::spawn(async move {
            let c = client(&url, Some(&token)).await;
            let mut seen = Vec::new();
            for _ in 0..20 {
                seen.push(served_by(&c).await);
            }
            (user, seen)
        })
    });
    let mut per_user = Vec::new();
    for r in futures_join(runs).await {
        per_user.push(r);
    }
    let calls: Vec<&str> = per_user
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .collect();
    assert_eq!(calls.len(), 1000);
    let on_v2 = calls.iter().filter(|v| **v == "v2").count();
    assert!(
        (150..=250).contains(&on_v2),
        "{on_v2} of 1000 calls on v2, not 20 % ± 5 %"
    );
    for (user, seen) in &per_user {
        let distinct: BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), 1, "{user} saw {distinct:?}");
    }
    let users_on_v2: Vec<&String> = per_user
        .iter()
        .filter(|(_, s)| s[0] == "v2")
        .map(|(u, _)| u)
        .collect();
    assert_eq!(
        users_on_v2.len(),
        10,
        "whole callers follow 80/20: {users_on_v2:?}"
    );
    let on_v1 = per_user
        .iter()
        .find(|(_, s)| s[0] == "v1")
        .map(|(u, _)| u.clone())
        .unwrap();
    let token_v1 = format!("tok-{on_v1}");

    // The header override reaches v2 for a caller assigned to v1, on every call.
    let routed = routed_client(&url, &token_v1, "linux=v1, cmdb=v2").await;
    for _ in 0..5 {
        assert_eq!(served_by(&routed).await, "v2");
    }
    // So does the same text in `_meta`, and it beats the header.
    let plain = client(&url, Some(&token_v1)).await;
    assert_eq!(served_by(&plain).await, "v1");
    let with_meta = |route: &str| {
        let mut p = get_aicrusher();
        let mut meta = serde_json::Map::new();
        meta.insert("x-mcp-route".to_owned(), json!(route));
        p.meta = Some(RequestMetaObject(MetaObject(meta)));
        p
    };
    assert_eq!(
        version_of(&plain.call_tool(with_meta("cmdb=v2")).await.unwrap()),
        "v2"
    );
    assert_eq!(
        version_of(&routed.call_tool(with_meta("cmdb=v1")).await.unwrap()),
        "v1"
    );
    // A version that does not exist is refused with the ones that do.
    let bad = routed_client(&url, &token_v1, "cmdb=v9").await;
    let r = bad.call_tool(get_aicrusher()).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("version `v9` of `cmdb`, which has versions v1, v2"),
        "{}",
        text_of(&r)
    );
    // A rule sends the beta role to v2.
    let tester = client(&url, Some("tok-beta")).await;
    for _ in 0..3 {
        assert_eq!(served_by(&tester).await, "v2");
    }

    // Weights change at runtime, by an admin only; callers follow.
    let user = client(&url, Some("tok-user00")).await;
    let r = user
        .call_tool(call(
            "master_setRoute",
            json!({"namespace": "cmdb", "weights": {"v2": 100}}),
        ))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("needs the `admin` role"),
        "{}",
        text_of(&r)
    );
    let r = admin
        .call_tool(call(
            "master_setRoute",
            json!({"namespace": "cmdb", "weights": {"v3": 1}}),
        ))
        .await
        .unwrap();
    assert!(text_of(&r).contains("no version `v3`"), "{}", text_of(&r));
    let r = admin
        .call_tool(call(
            "master_setRoute",
            json!({"namespace": "cmdb", "weights": {"v1": 0, "v2": 100}}),
        ))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(
        weights(&structured(&r)),
        vec![("v1".to_owned(), 0), ("v2".to_owned(), 100)]
    );
    assert_eq!(served_by(&plain).await, "v2");
    assert_eq!(served_by(&user).await, "v2");
    let s = status(&admin).await;
    assert_eq!(route_of(&s, "cmdb")["stable"], "v1");

    // The change is audited with who made it; refusals too.
    let db = master.path("audit.sqlite");
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = route_rows(&db);
        if rows.len() >= 3 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][0], "user00");
    assert_eq!(rows[2][0], "ops-admin");
    assert!(rows[2][2].contains("\"v2\":100"), "{:?}", rows[2]);

    // Per-version metrics for the SLO rules.
    let m = metrics(&master.url("/metrics")).await;
    let line = |needle: &str| {
        m.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle} in metrics"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert!(
        line(r#"mcp_route_calls_total{namespace="cmdb",status="success",version="v2"}"#) >= 200.0
    );
    assert_eq!(
        line(r#"mcp_route_weight{namespace="cmdb",version="v2"}"#),
        100.0
    );
    assert_eq!(
        line(r#"mcp_route_weight{namespace="cmdb",version="v1"}"#),
        0.0
    );
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

/// A v2 that answers every call with an error, listing the real cmdb's tools (so its schemas are
/// compatible and it takes its share of calls).
#[derive(Clone)]
struct Failing {
    tools: Arc<Vec<Tool>>,
}

impl ServerHandler for Failing {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
    }

    async fn list_prompts(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "v2-only-prompt",
            Some("only the candidate has it"),
            None,
        )]))
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            "file:///v2-only",
            "v2-only",
        )]))
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    async fn call_tool(
        &self,
        _r: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(
            "v2 is broken: database unreachable",
        )])
        .into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_candidate_is_rolled_back_within_its_window() {
    let v1 = start_cmdb(server_config()).await;
    let tools = tools_of(&v1).await;
    let failing = Failing {
        tools: Arc::new(tools),
    };
    let v2 = start_candidate("cmdb-v2-broken", failing).await;
    let master = keyed(&format!(
        "{}{}[[master.route]]\nnamespace = \"cmdb\"\n[master.route.rollback]\nwindow_secs = 60\nmin_calls = 10\nmax_error_rate = 0.2\n",
        version("cmdb-v1", "v1", 50, &v1.url("/mcp")),
        version("cmdb-v2", "v2", 50, &v2.url("/mcp")),
    ))
    .await;
    let url = master.url("/mcp");
    let admin = client(&url, Some("tok-admin")).await;

    // 50 callers, half on v2: the first 10 calls v2 gets fail, then it is out.
    let mut failures = 0;
    let mut last = Vec::new();
    for (_, token) in users() {
        let c = client(&url, Some(&token)).await;
        let mut answers = Vec::new();
        for _ in 0..2 {
            let r = c.call_tool(get_aicrusher()).await.unwrap();
            if r.is_error == Some(true) {
                assert!(text_of(&r).contains("v2 is broken"), "{}", text_of(&r));
                failures += 1;
                answers.push("failed");
            } else {
                answers.push(version_of(&r));
            }
        }
        last.push(*answers.last().unwrap());
    }
    assert_eq!(
        failures, 10,
        "exactly min_calls failed calls before the rollback"
    );
    // Every caller after the rollback is served by v1, and so are those assigned to v2 before.
    assert!(last[10..].iter().all(|v| *v == "v1"), "{last:?}");
    let before = client(&url, Some("tok-user01")).await;
    assert_eq!(served_by(&before).await, "v1");
    let s = status(&admin).await;
    let route = route_of(&s, "cmdb");
    assert_eq!(
        weights(route),
        vec![("v1".to_owned(), 50), ("v2".to_owned(), 0)]
    );
    let why = route["versions"][1]["rolled_back"].as_str().unwrap();
    assert!(
        why.contains("error rate 100.0 % (10 of the last 10 calls within 60 s) is above rollback.max_error_rate 20.0 %"),
        "{why}"
    );
    // Audited as master's own route change, with the reason.
    let db = master.path("audit.sqlite");
    let deadline = Instant::now() + Duration::from_secs(10);
    while route_rows(&db).is_empty() {
        assert!(Instant::now() < deadline, "no audit row for the rollback");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = route_rows(&db);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "master");
    assert_eq!(rows[0][1], "rollback");
    assert!(rows[0][2].contains(r#""v2":0"#), "{:?}", rows[0]);
    assert!(rows[0][3].contains("max_error_rate"), "{:?}", rows[0]);
    // The metric the RouteRolledBack alert reads.
    let m = metrics(&master.url("/metrics")).await;
    assert!(
        m.lines()
            .any(|l| l == r#"mcp_route_rollbacks_total{namespace="cmdb",version="v2"} 1"#),
        "{}",
        m.lines()
            .filter(|l| l.starts_with("mcp_route"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // It stays out until an admin raises it again; an override still reaches it for debugging.
    let probe = routed_client(&url, "tok-user00", "cmdb=v2").await;
    let r = probe.call_tool(get_aicrusher()).await.unwrap();
    assert!(text_of(&r).contains("v2 is broken"), "{}", text_of(&r));
    let r = admin
        .call_tool(call(
            "master_setRoute",
            json!({"namespace": "cmdb", "weights": {"v2": 50}}),
        ))
        .await
        .unwrap();
    assert!(
        structured(&r)["versions"][1]["rolled_back"].is_null(),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn route_weights_follow_the_config_file() {
    let v1 = start_cmdb(server_config()).await;
    let v2 = start_cmdb_v2().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, "test-identity-and-approval-key-0123456789").unwrap();
    let tokens = all_tokens();
    let users: Vec<(&str, &[&str], &str)> = tokens
        .iter()
        .map(|(u, r, t)| (u.as_str(), r.as_slice(), t.as_str()))
        .collect();
    let tokens_path = tokens_file(dir.path(), &users);
    let file = dir.path().join("master.toml");
    let config = |v1_weight: u32, v2_weight: u32| {
        format!(
            "[server]\nauth_tokens_file = {:?}\n[master]\nseed_env = false\naudit_db = {:?}\nidentity_key_file = {:?}\nhealth_interval_ms = 200\n{}{}",
            tokens_path.display().to_string(),
            dir.path().join("audit.sqlite").display().to_string(),
            key.display().to_string(),
            version("cmdb-v1", "v1", v1_weight, &v1.url("/mcp")),
            version("cmdb-v2", "v2", v2_weight, &v2.url("/mcp")),
        )
    };
    std::fs::write(&file, config(100, 0)).unwrap();
    let doc = mcp_runtime::ConfigDoc::load(
        Some(&file),
        &mcp_runtime::config::ProcessEnv,
        &["server", "master"],
    )
    .unwrap();
    let shutdown = mcp_runtime::ShutdownToken::new();
    let running =
        mcp_runtime::start::<mcp_master::Master>(&doc, doc.server().unwrap(), shutdown.clone())
            .await
            .unwrap();
    let _stop = shutdown.clone().drop_guard();
    let url = running.url("/mcp");
    let admin = client(&url, Some("tok-admin")).await;
    let user = client(&url, Some("tok-user00")).await;
    assert_eq!(served_by(&user).await, "v1", "v2 starts dark (weight 0)");

    // Everything to v2: the assigned caller moves.
    std::fs::write(&file, config(0, 100)).unwrap();
    wait_status(&admin, "read the new weights", |s| {
        weights(route_of(s, "cmdb")) == [("v1".to_owned(), 0), ("v2".to_owned(), 100)]
    })
    .await;
    assert_eq!(served_by(&user).await, "v2");
    let db = dir.path().join("audit.sqlite");
    let deadline = Instant::now() + Duration::from_secs(10);
    while route_rows(&db).is_empty() {
        assert!(Instant::now() < deadline, "no audit row for the reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = route_rows(&db);
    assert_eq!(rows[0][0], "config");
    assert_eq!(rows[0][1], "config_reload");
    assert!(rows[0][2].contains(r#""v1":0,"v2":100"#), "{:?}", rows[0]);
}

/// The value of the metric line starting with `prefix` (0 when absent).
fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_only_calls_are_mirrored_to_a_dark_candidate_and_compared() {
    let v1 = start_cmdb(server_config()).await;
    let v2 = start_cmdb_v2().await;
    let master = keyed(&format!(
        "{}{}[[master.route]]\nnamespace = \"cmdb\"\nmirror = true\n",
        version("cmdb-v1", "v1", 100, &v1.url("/mcp")),
        version("cmdb-v2", "v2", 0, &v2.url("/mcp")),
    ))
    .await;
    let user = client(&master.url("/mcp"), Some("tok-user07")).await;
    // v2 has different data about aicrusher only.
    for _ in 0..3 {
        assert_eq!(
            served_by(&user).await,
            "v1",
            "mirrored answers are discarded"
        );
    }
    for _ in 0..2 {
        let r = user
            .call_tool(call("cmdb_getHost", json!({"name": "k8s-cp-01"})))
            .await
            .unwrap();
        assert_ne!(r.is_error, Some(true));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let prefix = |outcome: &str| {
        format!(r#"mcp_route_mirror_total{{namespace="cmdb",outcome="{outcome}",version="v2"}}"#)
    };
    loop {
        let m = metrics(&master.url("/metrics")).await;
        let (differ, matched) = (
            metric_value(&m, &prefix("differ")),
            metric_value(&m, &prefix("match")),
        );
        if (differ, matched) == (3.0, 2.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mirrors differ={differ} match={matched}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The candidate really served them; nothing was counted against its rollback window.
    let served = metrics(&v2.url("/metrics")).await;
    assert_eq!(
        metric_value(
            &served,
            r#"mcp_tool_calls_total{service="cmdb",status="success",tool="getHost"}"#
        ),
        5.0
    );
    let m = metrics(&master.url("/metrics")).await;
    assert_eq!(
        metric_value(
            &m,
            r#"mcp_route_calls_total{namespace="cmdb",status="success",version="v2"}"#
        ),
        0.0
    );
    assert_eq!(
        metric_value(
            &m,
            r#"mcp_route_calls_total{namespace="cmdb",status="success",version="v1"}"#
        ),
        5.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tool_whose_schema_changed_incompatibly_is_not_split() {
    let v1 = start_cmdb(server_config()).await;
    let mut tools = tools_of(&v1).await;
    // v2's getHost requires an argument v1's does not know.
    let get = tools.iter_mut().find(|t| t.name == "getHost").unwrap();
    let mut schema = (*get.input_schema).clone();
    schema["properties"]
        .as_object_mut()
        .unwrap()
        .insert("zone".to_owned(), json!({"type": "string"}));
    schema["required"] = json!(["name", "zone"]);
    get.input_schema = Arc::new(schema);
    let failing = Failing {
        tools: Arc::new(tools),
    };
    let v2 = start_candidate("cmdb-v2-changed", failing).await;
    // Everybody on v2, which answers errors: only the incompatible tool stays on v1.
    let master = keyed(&format!(
        "{}{}",
        version("cmdb-v1", "v1", 0, &v1.url("/mcp")),
        version("cmdb-v2", "v2", 100, &v2.url("/mcp")),
    ))
    .await;
    let url = master.url("/mcp");
    let user = client(&url, Some("tok-user01")).await;
    assert_eq!(served_by(&user).await, "v1");
    // Prompts and resources come from the stable version (cmdb has none).
    assert!(user.list_all_prompts().await.unwrap().is_empty());
    assert!(user.list_all_resources().await.unwrap().is_empty());
    let r = user
        .call_tool(call("cmdb_listHosts", json!({})))
        .await
        .unwrap();
    assert!(text_of(&r).contains("v2 is broken"), "{}", text_of(&r));
    let s = status(&user).await;
    let problems = route_of(&s, "cmdb")["problems"].to_string();
    assert!(
        problems.contains("`getHost` of cmdb version v2 is not routed there")
            && problems.contains("it requires `zone`, which the stable version does not"),
        "{problems}"
    );
    // The override cannot force it either: the refusal says why.
    let forced = routed_client(&url, "tok-user01", "cmdb=v2").await;
    let r = forced.call_tool(get_aicrusher()).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("which has no tool `getHost` compatible with version v1"),
        "{}",
        text_of(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_auth_each_session_keeps_one_version() {
    let v1 = start_cmdb(server_config()).await;
    let v2 = start_cmdb_v2().await;
    let master = start_master(
        &format!(
            "{}{}",
            version("cmdb-v1", "v1", 50, &v1.url("/mcp")),
            version("cmdb-v2", "v2", 50, &v2.url("/mcp")),
        ),
        server_config(),
    )
    .await;
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        let c = mcp_client(&master.url("/mcp")).await;
        let first = served_by(&c).await;
        for _ in 0..5 {
            assert_eq!(served_by(&c).await, first, "one session, one version");
        }
        seen.insert(first);
    }
    assert_eq!(
        seen.len(),
        2,
        "anonymous sessions are split by the weights: {seen:?}"
    );
}

/// A candidate whose calls wait until the test opens the gate.
#[derive(Clone)]
struct Gated {
    tools: Arc<Vec<Tool>>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl ServerHandler for Gated {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    async fn call_tool(
        &self,
        _r: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let _pass = self.gate.acquire().await;
        Ok(CallToolResult::success(vec![ContentBlock::text("late")]).into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_past_64_in_flight_are_skipped_not_queued() {
    let v1 = start_cmdb(server_config()).await;
    let tools = tools_of(&v1).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gated = Gated {
        tools: Arc::new(tools),
        gate: gate.clone(),
    };
    let v2 = start_candidate("cmdb-v2-gated", gated).await;
    let master = keyed(&format!(
        "{}{}[[master.route]]\nnamespace = \"cmdb\"\nmirror = true\n",
        version("cmdb-v1", "v1", 100, &v1.url("/mcp")),
        version("cmdb-v2", "v2", 0, &v2.url("/mcp")),
    ))
    .await;
    let user = client(&master.url("/mcp"), Some("tok-user03")).await;
    // The stable answers at once while every mirror waits at v2.
    for _ in 0..70 {
        assert_eq!(served_by(&user).await, "v1");
    }
    let m = metrics(&master.url("/metrics")).await;
    let mirror = |m: &str, outcome: &str| {
        metric_value(
            m,
            &format!(
                r#"mcp_route_mirror_total{{namespace="cmdb",outcome="{outcome}",version="v2"}}"#
            ),
        )
    };
    assert_eq!(mirror(&m, "skipped"), 6.0);
    assert_eq!(mirror(&m, "differ"), 0.0);
    gate.add_permits(1000);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics(&master.url("/metrics")).await;
        if mirror(&m, "differ") == 64.0 {
            assert_eq!(
                metric_value(
                    &m,
                    r#"mcp_route_mirror_duration_seconds_count{namespace="cmdb",version="v2"}"#
                ),
                64.0
            );
            break;
        }
        assert!(Instant::now() < deadline, "mirrors never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
