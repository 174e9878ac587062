//! No secret in any store, log or metric: canary secrets in every form the redactor knows, sent
//! through every tool that takes free text (linux, k8s, secrets, ai-models prompts, workflow
//! inputs and literal step arguments) over `/mcp`, `/mcp/infra` and `/mcp/discover`, on the stack
//! running at `debug` log level. Afterwards no file master or a service wrote under `data/`
//! (SQLite databases and their WAL included), no log line and no `/metrics` page holds a canary,
//! and the pending approval shows the command with the secret masked.

mod common;

use std::path::Path;

use common::Stack;
use mcp_test_support::{client, structured, text, tool};
use serde_json::json;

/// One canary per form; each is the secret part only, so finding it anywhere is a leak.
struct Canaries {
    bearer: &'static str,
    short_flag: &'static str,
    long_flag: &'static str,
    url_password: &'static str,
    export: &'static str,
    github: String,
    jwt: &'static str,
    pem: &'static str,
    file_plain: &'static str,
    k8s_secret: &'static str,
    secret_value: &'static str,
    prompt_key: String,
    workflow_input: &'static str,
    workflow_literal: &'static str,
    discovery: &'static str,
    toolset: &'static str,
}

impl Canaries {
    fn new() -> Self {
        Self {
            bearer: "cnry01bearer7Hq2",
            short_flag: "cnry02mysql9Zk4",
            long_flag: "cnry03flag3Vb8",
            url_password: "cnry04url5Rt1",
            export: "cnry05export2Wd6",
            github: format!("ghp_cnry06{}", "G7".repeat(15)),
            jwt: "eyJhbGciOiJIUzI1NiJ9.eyJjbnJ5MDcifQ.cnry07sigX4Lm9",
            pem: "cnry08pemBodyK3s0",
            file_plain: "cnry09filecontent5Np",
            k8s_secret: "cnry10k8sdata8Fg2",
            secret_value: "cnry11value6Tj7",
            prompt_key: format!("sk-ant-cnry12{}", "p".repeat(24)),
            workflow_input: "cnry13input4Qe5",
            workflow_literal: "cnry14literal1Yu3",
            discovery: "cnry15disc9Oa6",
            toolset: "cnry16set2Pi4",
        }
    }

    fn all(&self) -> Vec<String> {
        vec![
            self.bearer.into(),
            self.short_flag.into(),
            self.long_flag.into(),
            self.url_password.into(),
            self.export.into(),
            self.github.clone(),
            self.jwt.into(),
            self.pem.into(),
            self.file_plain.into(),
            self.k8s_secret.into(),
            self.secret_value.into(),
            self.prompt_key.clone(),
            self.workflow_input.into(),
            self.workflow_literal.into(),
            self.discovery.into(),
            self.toolset.into(),
        ]
    }
}

/// Every file under `dir` (recursively), except the linux sandbox's workspace, where a file the
/// user asks to write holds what the user wrote.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.ends_with("linux-cli/workspace") {
            continue;
        }
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn find_leaks(haystack: &[u8], canaries: &[String]) -> Vec<String> {
    canaries
        .iter()
        .filter(|c| haystack.windows(c.len()).any(|w| w == c.as_bytes()))
        .cloned()
        .collect()
}

#[test]
fn canary_secrets_reach_no_store_log_or_metric() {
    let cwd = tempfile::tempdir().unwrap();
    let stack = Stack::start(cwd.path(), &[("MCP_SERVER_LOG_LEVEL", "debug")]);
    let k = Canaries::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (approval_view, secret_value) = rt.block_on(async {
        let all = client(&stack.ports.master_url("/mcp"), None).await;
        // Every suite definition was pinned and scanned at start: none held, none flagged.
        let m = mcp_test_support::metrics(&stack.ports.master_url("/metrics")).await;
        for d in ["linux", "cmdb", "secrets", "k8s", "ai_models", "freqtrade"] {
            assert!(
                m.contains(&format!("mcp_tool_pins_held{{downstream=\"{d}\"}} 0")),
                "{d}: {m}"
            );
        }
        assert!(!m.contains("mcp_guardrail_findings_total{"), "{m}");
        let infra = client(&stack.ports.master_url("/mcp/infra"), None).await;
        let disc = client(&stack.ports.master_url("/mcp/discover"), None).await;

        // linux: commands with secrets in every shell form; one writes a file, so it waits for
        // an approval that shows what it would run.
        let commands = [
            format!(
                "curl -s -H 'Authorization: Bearer {}' http://127.0.0.1:9/ | tee fetched.txt",
                k.bearer
            ),
            format!("mysql -u root -p{} -e 'select 1'", k.short_flag),
            format!("echo --password {} --token={}", k.long_flag, k.long_flag),
            format!("git ls-remote https://deploy:{}@127.0.0.1:9/r.git", k.url_password),
            format!("export API_TOKEN={}; uptime", k.export),
            format!("echo {} {}", k.github, k.jwt),
        ];
        for c in &commands {
            let r = tool(&all, "linux_runCommand", json!({"command": c})).await;
            assert!(!text(&r).is_empty());
        }
        // A command that prints a token: the caller gets it masked (the result guard).
        let r = tool(
            &all,
            "linux_runCommand",
            json!({"command": format!("printf 'GITHUB_TOKEN=%s\\n' {}", k.github)}),
        )
        .await;
        assert_eq!(
            structured(&r)["stdout"],
            "GITHUB_TOKEN=[REDACTED]\n",
            "{}",
            text(&r)
        );
        assert!(!serde_json::to_string(&r).unwrap().contains(&k.github));
        let r = tool(
            &infra,
            "linux_runCommand",
            json!({"command": format!("echo --api-key {}", k.toolset)}),
        )
        .await;
        assert!(
            !text(&r).contains(k.toolset) && text(&r).contains("--api-key [REDACTED]"),
            "secrets in results are masked: {}",
            text(&r)
        );
        let r = tool(
            &all,
            "linux_writeFile",
            json!({"path": "notes.txt", "content": format!(
                "plain {}\n-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                k.file_plain, k.pem
            )}),
        )
        .await;
        assert_eq!(structured(&r)["status"], "pending_approval", "{}", text(&r));

        // k8s: a Secret manifest (no cluster here: refused, but still audited).
        let manifest = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\nstringData:\n  password: {}\n",
            k.k8s_secret
        );
        tool(&all, "k8s_apply_manifest", json!({"manifest": manifest})).await;
        // secrets: a value to store.
        let r = tool(
            &all,
            "secrets_setSecret",
            json!({"name": "keepass/Infra/postgres", "value": k.secret_value}),
        )
        .await;
        assert_eq!(structured(&r)["status"], "pending_approval", "{}", text(&r));
        // ai-models: a prompt quoting a key (no provider key here: refused before any request).
        tool(
            &all,
            "ai_models_gemini_generateContent",
            json!({"prompt": format!("rotate this key: {}", k.prompt_key)}),
        )
        .await;
        // A workflow: a secret input and a secret literal argument.
        let r = tool(
            &all,
            "orchestrator_executeWorkflow",
            json!({
                "definition": {"name": "canary", "inputs": {"flag": {"type": "string"}}, "steps": [
                    {"id": "a", "service": "linux", "tool": "runCommand",
                     "params": {"command": "echo {{ inputs.flag }}"}},
                    {"id": "b", "service": "linux", "tool": "runCommand", "needs": ["a"],
                     "params": {"command": format!("echo export DB_PASSWORD={}", k.workflow_literal)}}
                ]},
                "inputs": {"flag": format!("--password={}", k.workflow_input)},
            }),
        )
        .await;
        assert_eq!(structured(&r)["status"], "completed", "{}", text(&r));
        // Discovery: the wrapped call.
        let r = tool(
            &disc,
            "master_callTool",
            json!({"name": "linux_runCommand", "arguments": {"command": format!("echo --secret {}", k.discovery)}}),
        )
        .await;
        assert!(
            !text(&r).contains(k.discovery) && text(&r).contains("[REDACTED]"),
            "{}",
            text(&r)
        );
        // A tool that returns secrets returns them (secret_tools), and they reach no store or log.
        let r = tool(
            &all,
            "secrets_getSecret",
            json!({"name": "keepass/Infra/docker-registry"}),
        )
        .await;
        let secret_value = structured(&r)["value"].as_str().unwrap_or_default().to_owned();
        assert_eq!(secret_value.len(), 32, "{}", text(&r));

        let list = structured(
            &tool(&all, "approvals_list", json!({"status": "pending"})).await,
        );
        // The sentinel: once its audit row is in, every earlier row is.
        tool(&all, "master_getSystemStatus", json!({})).await;
        for c in [all, infra, disc] {
            c.cancel().await.unwrap();
        }
        (list, secret_value)
    });

    // The approver sees what they decide on: the file's path, size and hash, the masked value.
    let shown = approval_view.to_string();
    assert!(
        shown.contains("notes.txt") && shown.contains("sha256"),
        "{shown}"
    );
    assert!(
        shown.contains("Authorization: Bearer [REDACTED]"),
        "the approval shows the masked command: {shown}"
    );

    let master_db = cwd.path().join("data/master/audit.sqlite");
    common::wait_for(
        || {
            rusqlite::Connection::open(&master_db)
                .and_then(|c| {
                    c.query_row(
                        "SELECT count(*) FROM audit WHERE tool = 'master_getSystemStatus'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .is_ok_and(|n| n >= 1)
        },
        "the sentinel's audit row",
    );
    // The audit saw every call, with the secrets masked: the curl command is recognisable.
    let conn = rusqlite::Connection::open(&master_db).unwrap();
    let curl: String = conn
        .query_row(
            "SELECT arguments FROM audit WHERE arguments LIKE '%fetched.txt%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(curl.contains("Authorization: Bearer [REDACTED]"), "{curl}");

    let mut canaries = k.all();
    canaries.push(secret_value);
    let mut files = Vec::new();
    files_under(&cwd.path().join("data"), &mut files);
    assert!(
        files.iter().any(|f| f.to_string_lossy().ends_with("-wal")),
        "the scan covers SQLite WAL files: {files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let leaks = find_leaks(&bytes, &canaries);
        assert!(leaks.is_empty(), "{} holds {leaks:?}", f.display());
    }
    let log = std::fs::read(&stack.stdout).unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("\"level\":\"DEBUG\""),
        "the log is at debug level"
    );
    let leaks = find_leaks(&log, &canaries);
    let lines: Vec<&str> = std::str::from_utf8(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| leaks.iter().any(|c| l.contains(c.as_str())))
        .take(8)
        .collect();
    assert!(
        leaks.is_empty(),
        "the log holds {leaks:?} in:\n{}",
        lines.join("\n")
    );
    let p = stack.ports;
    for port in [
        p.master,
        p.linux,
        p.cmdb,
        p.secrets,
        p.k8s,
        p.ai_models,
        p.freqtrade,
    ] {
        let m = rt.block_on(mcp_test_support::metrics(&format!(
            "http://127.0.0.1:{port}/metrics"
        )));
        assert!(m.contains("# TYPE mcp_http_requests_total"), "{port}: {m}");
        let leaks = find_leaks(m.as_bytes(), &canaries);
        assert!(leaks.is_empty(), "/metrics on {port} holds {leaks:?}");
    }
}
