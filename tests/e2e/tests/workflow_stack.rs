//! The acceptance on the running stack (`mcp-stack` as a process, with auth and an identity
//! key): the seed's integration workflow (linux `uptime` → k8s `list_pods default`, against the
//! in-test Kubernetes API) completes through master; the deployment template pauses at its
//! approval, self-approval is refused, a second identity's approval completes it, denial fails it.

mod common;
mod fake_k8s;

use common::workflow_step as step;
use common::*;
use mcp_test_support::ServiceProcess;
use rmcp::RoleClient;
use rmcp::service::RunningService;
use serde_json::{Value, json};

const MANIFEST: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  replicas: 4\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.29\n";

async fn tool(
    c: &RunningService<RoleClient, ()>,
    name: &str,
    args: Value,
) -> rmcp::model::CallToolResult {
    c.call_tool(call(name, args)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_workflows_on_the_stack_with_a_second_approver() {
    let bin = workspace_bin("mcp-stack");
    let fake = fake_k8s::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("identity.key"),
        "stack-identity-key-0123456789abcdef0123",
    )
    .unwrap();
    std::fs::write(d.join("kubeconfig"), fake.kubeconfig()).unwrap();
    tokens_file(
        d,
        &[
            ("alice", &["approver"], "alice-tok"),
            ("bob", &["approver"], "bob-tok"),
        ],
    );
    let port = free_port();
    let workflows = crate_dir().join("../../workflows");
    let config = format!(
        "[server]\nidentity_key_file = {:?}\nauth_tokens_file = {:?}\n[ports]\nmaster = {port}\nlinux = {}\ncmdb = {}\nsecrets = {}\nk8s = {}\nai_models = {}\nfreqtrade = {}\n[k8s]\nkubeconfig = {:?}\n[freqtrade]\nrepo_url = \"\"\n[master.workflows]\ndir = {:?}\n",
        d.join("identity.key").display().to_string(),
        d.join("tokens.toml").display().to_string(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        d.join("kubeconfig").display().to_string(),
        workflows.display().to_string(),
    );
    let stack = ServiceProcess::spawn(bin.to_str().unwrap(), dir, port, &config).await;
    let url = stack.url("/mcp");
    let alice = mcp_test_support::client(&url, Some("alice-tok")).await;
    let bob = mcp_test_support::client(&url, Some("bob-tok")).await;

    // The seed's integration workflow, by its seed name.
    let r = tool(
        &alice,
        "execute_workflow",
        json!({"workflow": "uptime_list_pods", "inputs": {"namespace": "default"}}),
    )
    .await;
    let doc = r.structured_content.clone().unwrap();
    assert_eq!(doc["status"], "completed", "{doc}\n{}", stack.log());
    let uptime = step(&doc, "uptime")["result"].to_string();
    assert!(uptime.contains("load average"), "{uptime}");
    let pods = &step(&doc, "pods")["result"];
    assert_eq!(pods["count"], 3, "{pods}");
    assert!(pods.to_string().contains("web-1"), "{pods}");

    // The deployment template: credential (withheld), dry run, then an approval.
    let r = tool(
        &alice,
        "orchestrator_executeWorkflow",
        json!({"workflow": "deploy_application", "inputs": {"manifest": MANIFEST, "namespace": "default"}}),
    )
    .await;
    let doc = r.structured_content.clone().unwrap();
    assert_eq!(doc["status"], "waiting_approval", "{doc}\n{}", stack.log());
    assert_eq!(step(&doc, "registry_credential")["withheld"], true, "{doc}");
    assert_eq!(step(&doc, "dry_run")["status"], "completed", "{doc}");
    let apply = step(&doc, "apply");
    assert_eq!(apply["status"], "waiting_approval", "{doc}");
    let approval = apply["approval_id"].as_str().unwrap().to_owned();
    let run_id = doc["run_id"].as_str().unwrap().to_owned();
    assert!(
        !doc.to_string().contains("\"deploy\""),
        "the registry username leaked: {doc}"
    );
    assert_eq!(
        fake.get("apis/apps/v1", "deployments", "default", "web")
            .unwrap()["spec"]["replicas"],
        2,
        "nothing applied before the approval"
    );

    let r = tool(&alice, "approvals_approve", json!({"id": approval})).await;
    assert!(
        mcp_test_support::text(&r).contains("may not decide it"),
        "{}",
        mcp_test_support::text(&r)
    );
    let r = tool(
        &bob,
        "approvals_approve",
        json!({"id": approval, "comment": "ship it"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", mcp_test_support::text(&r));
    let doc = wait_workflow(&alice, &run_id, "completed").await;
    assert_eq!(step(&doc, "apply")["status"], "completed", "{doc}");
    assert_eq!(step(&doc, "check_host")["status"], "completed", "{doc}");
    assert_eq!(
        fake.get("apis/apps/v1", "deployments", "default", "web")
            .unwrap()["spec"]["replicas"],
        4
    );

    // Denied: the run fails with the approver's reason and nothing is applied.
    let other = MANIFEST.replace("replicas: 4", "replicas: 9");
    let r = tool(
        &alice,
        "orchestrator_executeWorkflow",
        json!({"workflow": "deploy_application", "inputs": {"manifest": other}}),
    )
    .await;
    let doc = r.structured_content.clone().unwrap();
    let approval = step(&doc, "apply")["approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run_id = doc["run_id"].as_str().unwrap().to_owned();
    let r = tool(
        &bob,
        "approvals_deny",
        json!({"id": approval, "reason": "freeze week"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", mcp_test_support::text(&r));
    let doc = wait_workflow(&alice, &run_id, "failed").await;
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("denied by bob: freeze week"),
        "{doc}"
    );
    assert_eq!(step(&doc, "check_host")["status"], "cancelled", "{doc}");
    assert_eq!(
        fake.get("apis/apps/v1", "deployments", "default", "web")
            .unwrap()["spec"]["replicas"],
        4
    );

    // bob (an approver) sees alice's runs; the audit trail has the request and both decisions.
    let r = tool(
        &bob,
        "orchestrator_listWorkflows",
        json!({"status": "failed"}),
    )
    .await;
    assert_eq!(r.structured_content.unwrap()["runs"][0]["owner"], "alice");
    let m = mcp_test_support::metrics(&stack.url("/metrics")).await;
    assert!(
        m.contains("mcp_approvals_total{decision=\"approved\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("mcp_approvals_total{decision=\"denied\"} 1"),
        "{m}"
    );
    assert!(m.contains("mcp_approval_decision_seconds_count 2"), "{m}");
    assert!(m.contains("mcp_approvals_pending 0"), "{m}");

    // A service's own approval_required (linux-cli, a write) keeps the service's category.
    let r = tool(
        &alice,
        "linux_runCommand",
        json!({"command": "touch stack-marker"}),
    )
    .await;
    let s = r.structured_content.unwrap();
    assert_eq!(s["status"], "pending_approval", "{s}");
    assert!(
        s["reason"].as_str().unwrap().contains("(category: write)"),
        "{s}"
    );
}
