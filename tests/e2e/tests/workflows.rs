//! Workflows through master against a downstream that counts what ran: validation before anything
//! runs, parallel steps, templates over inputs and results, retries, on_error, timeouts,
//! cancellation, secret results kept out of checkpoints, templates from files and the seed's alias.

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use common::workflow_step as step;
use common::*;
use rmcp::RoleClient;
use rmcp::model::CallToolResult;
use rmcp::service::RunningService;
use serde_json::{Value, json};

async fn run(c: &RunningService<RoleClient, ()>, args: Value) -> CallToolResult {
    c.call_tool(call("orchestrator_executeWorkflow", args))
        .await
        .unwrap()
}

fn sc(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workflows_validate_first_run_in_parallel_and_keep_secrets_out_of_checkpoints() {
    let (ledger, counts) = ledger::start_ledger("workflows-basic").await;
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("pair.yaml"),
        "name: pair\ndescription: two records\ninputs:\n  tag: {type: string, default: t}\nsteps:\n  - {id: one, service: ledger, tool: record, params: {key: 'pair-{{ inputs.tag }}-1'}}\n  - {id: two, service: ledger, tool: record, needs: [one], params: {key: 'pair-{{ inputs.tag }}-{{ steps.one.result.count + 1 }}'}}\n",
    )
    .unwrap();
    let master = start_master(
        &format!(
            "[master.workflows]\ndir = {:?}\n{}",
            templates.path().display().to_string(),
            downstream("ledger", None, "http", &ledger.url("/mcp"))
        ),
        server_config(),
    )
    .await;
    let c = mcp_client(&master.url("/mcp")).await;

    // Validation reports every problem and runs nothing.
    let r = run(
        &c,
        json!({"definition": {"name": "broken", "steps": [
            {"id": "a", "service": "ledger", "tool": "nope"},
            {"id": "b", "service": "nowhere", "tool": "x", "needs": ["c"]},
            {"id": "c", "service": "ledger", "tool": "record", "needs": ["b"], "params": {"key": "{{ steps.a.result }}"}},
            {"id": "d", "service": "ledger", "tool": "record", "params": {"key": "{{ oops"}}
        ]}}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let t = text_of(&r);
    for want in [
        "nothing ran",
        "has no tool `nope`",
        "no service with namespace `nowhere`",
        "cycle",
    ] {
        assert!(t.contains(want), "{want} missing in: {t}");
    }
    let r = run(
        &c,
        json!({"definition": {"name": "tpl", "steps": [
            {"id": "c", "service": "ledger", "tool": "record", "params": {"key": "{{ steps.a.result }}"}},
            {"id": "a", "service": "ledger", "tool": "record"},
            {"id": "d", "service": "ledger", "tool": "record", "params": {"key": "{{ oops"}}
        ]}, "inputs": {"extra": 1}}),
    )
    .await;
    let t = text_of(&r);
    for want in ["does not need `a`", "bad template", "unknown input `extra`"] {
        assert!(t.contains(want), "{want} missing in: {t}");
    }
    assert_eq!(
        counts.total_records(),
        0,
        "nothing may run before validation passes"
    );

    // Parallel branches, a join templated from both results, typed expressions.
    let r = run(
        &c,
        json!({"definition": {"name": "diamond", "inputs": {"ms": {"type": "integer", "default": 400}},
            "steps": [
                {"id": "left", "service": "ledger", "tool": "slow", "params": {"key": "L", "ms": "{{ inputs.ms }}"}},
                {"id": "right", "service": "ledger", "tool": "slow", "params": {"key": "R", "ms": "{{ inputs.ms }}"}},
                {"id": "join", "service": "ledger", "tool": "record", "needs": ["left", "right"],
                 "params": {"key": "{{ steps.left.result.key }}+{{ steps.right.result.key }}:{{ steps.left.result.slept_ms }}"}}
            ]}}),
    )
    .await;
    let doc = sc(&r);
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(r.is_error, Some(false));
    let (l, rr) = (step(&doc, "left"), step(&doc, "right"));
    assert!(
        l["started"].as_i64().unwrap() < rr["finished"].as_i64().unwrap()
            && rr["started"].as_i64().unwrap() < l["finished"].as_i64().unwrap(),
        "independent steps must overlap: {doc}"
    );
    assert_eq!(step(&doc, "join")["result"]["key"], "L+R:400", "{doc}");
    assert_eq!(counts.records("L+R:400"), 1);
    assert!(text_of(&r).contains("completed"), "{}", text_of(&r));

    // Retries, then the run fails and later steps never run; on_error: continue goes on.
    let r = run(
        &c,
        json!({"definition": {"name": "flaky", "steps": [
            {"id": "soft", "service": "ledger", "tool": "fail", "on_error": "continue", "params": {"message": "soft"}},
            {"id": "after_soft", "service": "ledger", "tool": "record", "needs": ["soft"], "params": {"key": "after-soft {{ steps.soft.status }}"}},
            {"id": "hard", "service": "ledger", "tool": "fail", "needs": ["after_soft"], "retry": {"attempts": 2, "delay_ms": 10}, "params": {"message": "hard"}},
            {"id": "never", "service": "ledger", "tool": "record", "needs": ["hard"], "params": {"key": "never"}}
        ]}}),
    )
    .await;
    let doc = sc(&r);
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(r.is_error, Some(true));
    assert_eq!(counts.records("after-soft failed"), 1, "{doc}");
    assert_eq!(step(&doc, "hard")["attempts"], 3, "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("failed on purpose: hard"),
        "{doc}"
    );
    assert_eq!(step(&doc, "never")["status"], "cancelled", "{doc}");
    assert_eq!(counts.records("never"), 0);

    // A step timeout fails the step and tells the service to stop.
    let r = run(
        &c,
        json!({"definition": {"name": "slowpoke", "steps": [
            {"id": "s", "service": "ledger", "tool": "slow", "timeout": 0.3, "params": {"key": "timeout", "ms": 5000}}
        ]}}),
    )
    .await;
    let doc = sc(&r);
    assert_eq!(doc["status"], "failed", "{doc}");
    assert!(
        step(&doc, "s")["error"]
            .as_str()
            .unwrap()
            .contains("timeout of 0.3 s"),
        "{doc}"
    );

    // Without waiting: the run id at once; cancel stops the step in flight.
    let r = run(
        &c,
        json!({"wait": false, "definition": {"name": "long", "steps": [
            {"id": "s", "service": "ledger", "tool": "slow", "params": {"key": "long", "ms": 30000}},
            {"id": "t", "service": "ledger", "tool": "record", "needs": ["s"], "params": {"key": "after-long"}}
        ]}}),
    )
    .await;
    let doc = sc(&r);
    assert_eq!(doc["status"], "running", "{doc}");
    let id = doc["run_id"].as_str().unwrap().to_owned();
    let r = c
        .call_tool(call(
            "orchestrator_cancelWorkflow",
            json!({"run_id": id, "reason": "test"}),
        ))
        .await
        .unwrap();
    assert_eq!(sc(&r)["status"], "cancelled", "{}", text_of(&r));
    assert_eq!(counts.records("after-long"), 0);

    // Secret results: usable in templates, never shown, never checkpointed.
    let r = run(
        &c,
        // An ad-hoc definition may also come as YAML text.
        json!({"definition": "name: secretive\nsteps:\n  - {id: cred, service: ledger, tool: getSecret, params: {name: registry}}\n  - id: use\n    service: ledger\n    tool: record\n    needs: [cred]\n    params: {key: 'len={{ steps.cred.result.value | length }}'}\n"}),
    )
    .await;
    let doc = sc(&r);
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(counts.records(&format!("len={}", ledger::CANARY.len())), 1);
    assert!(!doc.to_string().contains(ledger::CANARY), "{doc}");
    assert_eq!(step(&doc, "cred")["withheld"], true);
    let data = master.dir.path();
    for entry in std::fs::read_dir(data).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap_or_default();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(ledger::CANARY),
            "canary found in {}",
            p.display()
        );
    }
    assert!(data.join("workflows.sqlite").exists());

    // Templates from files, by name, through the seed's alias; listing shows them and the runs.
    let r = c
        .call_tool(call(
            "execute_workflow",
            json!({"workflow": "pair", "inputs": {"tag": "x"}}),
        ))
        .await
        .unwrap();
    let doc = sc(&r);
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(counts.records("pair-x-2"), 1);
    let r = c
        .call_tool(call("orchestrator_listWorkflows", json!({})))
        .await
        .unwrap();
    let list = sc(&r);
    assert_eq!(list["templates"][0]["name"], "pair", "{list}");
    assert_eq!(
        list["templates"][0]["steps"][1]["tool"], "ledger_record",
        "{list}"
    );
    assert!(list["runs"].as_array().unwrap().len() >= 6, "{list}");
    let r = run(&c, json!({"workflow": "nope"})).await;
    assert!(
        text_of(&r).contains("no workflow template `nope`; templates: pair"),
        "{}",
        text_of(&r)
    );

    // Templates are read again when the directory changes; a broken file is reported, the
    // others keep working.
    std::fs::write(
        templates.path().join("later.yaml"),
        "name: later\nsteps:\n  - {id: one, service: ledger, tool: record, params: {key: later}}\n",
    )
    .unwrap();
    std::fs::write(
        templates.path().join("broken.yaml"),
        "name: broken\nsteps: [",
    )
    .unwrap();
    let r = run(&c, json!({"workflow": "later"})).await;
    assert_eq!(sc(&r)["status"], "completed", "{}", text_of(&r));
    assert_eq!(counts.records("later"), 1);
    let r = c
        .call_tool(call("orchestrator_listWorkflows", json!({})))
        .await
        .unwrap();
    let list = sc(&r);
    let names: Vec<&str> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["later", "pair"], "{list}");
    assert!(
        list["template_errors"][0]
            .as_str()
            .unwrap()
            .contains("broken.yaml"),
        "{list}"
    );
    let r = run(&c, json!({"workflow": "broken"})).await;
    assert!(
        text_of(&r).contains("files that do not load") && text_of(&r).contains("broken.yaml"),
        "{}",
        text_of(&r)
    );

    // A failed run resumes: completed steps stay done, the failed one runs again.
    let r = run(
        &c,
        json!({"definition": {"name": "fix-and-resume", "steps": [
            {"id": "first", "service": "ledger", "tool": "record", "params": {"key": "resume-first"}},
            {"id": "broken", "service": "ledger", "tool": "fail", "needs": ["first"]}
        ]}}),
    )
    .await;
    let id = sc(&r)["run_id"].as_str().unwrap().to_owned();
    let r = c
        .call_tool(call("orchestrator_resumeWorkflow", json!({"run_id": id})))
        .await
        .unwrap();
    let doc = sc(&r);
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(step(&doc, "broken")["attempts"], 2, "{doc}");
    assert_eq!(
        counts.records("resume-first"),
        1,
        "a completed step never runs again"
    );

    // Metrics.
    let m = mcp_test_support::metrics(&master.url("/metrics")).await;
    for want in [
        "mcp_workflows_total{status=\"completed\"}",
        "mcp_workflows_total{status=\"failed\"}",
        "mcp_workflow_step_failures_total{reason=\"tool_error\"}",
        "mcp_workflow_step_failures_total{reason=\"timeout\"}",
        "mcp_workflow_checkpoint_seconds_count",
        "mcp_workflow_duration_seconds_bucket",
    ] {
        assert!(m.contains(want), "{want} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_run_withdraws_its_pending_approval() {
    let (ledger, counts) = ledger::start_ledger("workflows-withdraw").await;
    let master = start_keyed_master(
        &[
            ("alice", &[], "alice-tok"),
            ("bob", &["approver"], "bob-tok"),
        ],
        &downstream("ledger", None, "http", &ledger.url("/mcp")),
    )
    .await;
    let alice = mcp_test_support::client(&master.url("/mcp"), Some("alice-tok")).await;
    let bob = mcp_test_support::client(&master.url("/mcp"), Some("bob-tok")).await;
    let r = run(
        &alice,
        json!({"definition": {"name": "gated", "steps": [
            {"id": "write", "service": "ledger", "tool": "record", "approval": true, "params": {"key": "gated"}}
        ]}}),
    )
    .await;
    let doc = sc(&r);
    assert_eq!(doc["status"], "waiting_approval", "{doc}");
    let approval = step(&doc, "write")["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run_id = doc["run_id"].as_str().unwrap().to_owned();
    let r = alice
        .call_tool(call(
            "orchestrator_cancelWorkflow",
            json!({"run_id": run_id}),
        ))
        .await
        .unwrap();
    assert_eq!(sc(&r)["status"], "cancelled", "{}", text_of(&r));
    let r = bob
        .call_tool(call("approvals_approve", json!({"id": approval})))
        .await
        .unwrap();
    assert!(
        text_of(&r).contains("is withdrawn, not pending"),
        "{}",
        text_of(&r)
    );
    assert_eq!(counts.records("gated"), 0);
    let doc = wait_workflow(&bob, &run_id, "cancelled").await;
    assert_eq!(step(&doc, "write")["status"], "cancelled", "{doc}");
}
