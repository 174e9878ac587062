//! The k8s service through the real kube client against an in-test Kubernetes API server (no real
//! API server can run here): tables, namespace rules on every tool, approvals, dry runs, read-only
//! mode, redaction, API errors, and `kubectl` agreeing with what the tools report.

mod common;
mod fake_k8s;

use std::collections::BTreeSet;

use common::*;
use mcp_runtime::approval::{APPROVAL_META_KEY, ApprovalToken};
use mcp_runtime::assertion::AssertionKey;
use mcp_runtime::{ConfigDoc, ServerConfig, ShutdownToken};
use rmcp::RoleClient;
use rmcp::model::{CallToolResult, MetaObject, RequestMetaObject};
use rmcp::service::RunningService;
use serde_json::{Value, json};

const APPROVAL_KEY: &str = "k8s-approval-key-0123456789abcdef0123456789";

async fn start_k8s(fake: &fake_k8s::Fake, extra: &str) -> TestService {
    start_k8s_with(fake, extra, server_config()).await
}

async fn start_k8s_with(fake: &fake_k8s::Fake, extra: &str, server: ServerConfig) -> TestService {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    let key = dir.path().join("approval.key");
    std::fs::write(&key, APPROVAL_KEY).unwrap();
    let text = format!(
        "[k8s]\nkubeconfig = {:?}\nhealth_interval_secs = 1\n{extra}\n",
        kubeconfig.display().to_string()
    );
    let doc = ConfigDoc::from_str(&text, "test").unwrap();
    let shutdown = ShutdownToken::new();
    let running = mcp_runtime::start::<mcp_k8s::K8s>(
        &doc,
        ServerConfig {
            approval_key_file: Some(key),
            ..server
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    TestService {
        running: Some(running),
        shutdown,
        dir,
    }
}

async fn tool(c: &RunningService<RoleClient, ()>, name: &str, args: Value) -> CallToolResult {
    c.call_tool(call(name, args)).await.unwrap()
}

fn approved(tool: &str, args: Value, id: &str) -> rmcp::model::CallToolRequestParams {
    let key = AssertionKey::from_bytes(APPROVAL_KEY.as_bytes()).unwrap();
    let token: ApprovalToken = key.sign_approval(tool, args.as_object(), id, 60);
    let mut p = call(tool, args);
    let mut meta = serde_json::Map::new();
    meta.insert(
        APPROVAL_META_KEY.to_owned(),
        serde_json::to_value(token).unwrap(),
    );
    p.meta = Some(RequestMetaObject(MetaObject(meta)));
    p
}

fn sc(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_pods_through_master_is_a_table_and_namespaces_are_enforced_on_every_tool() {
    let fake = fake_k8s::start().await;
    let k8s = start_k8s(&fake, "allowed_namespaces = [\"default\", \"team-*\"]").await;
    let master = start_master(
        &downstream("k8s", None, "http", &k8s.url("/mcp")),
        server_config(),
    )
    .await;
    let c = mcp_client(&master.url("/mcp")).await;

    let r = tool(&c, "k8s_list_pods", json!({"namespace": "default"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let table = text_of(&r);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("READY") && header.contains("RESTARTS"),
        "{table}"
    );
    let web1 = table
        .lines()
        .find(|l| l.starts_with("web-1"))
        .unwrap_or_else(|| panic!("{table}"));
    for cell in ["1/1", "Running", "2", "node-a", "10.0.0.7"] {
        assert!(web1.contains(cell), "{web1}");
    }
    let s = sc(&r);
    assert_eq!(s["count"], 3);
    let pods: Vec<&str> = s["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(pods, ["db-1", "web-1", "web-2"]);
    let r = tool(
        &c,
        "k8s_list_pods",
        json!({"namespace": "default", "label_selector": "app=web"}),
    )
    .await;
    assert_eq!(sc(&r)["count"], 2);
    // Every namespace you may see, and no other.
    let r = tool(&c, "k8s_list_pods", json!({"namespace": "*"})).await;
    assert!(!text_of(&r).contains("coredns"), "{}", text_of(&r));

    // kube-system is outside the allow-list, whatever the tool.
    for (name, args) in [
        ("k8s_list_pods", json!({"namespace": "kube-system"})),
        (
            "k8s_get_pod_logs",
            json!({"namespace": "kube-system", "pod": "coredns-1"}),
        ),
        (
            "k8s_get_resource",
            json!({"kind": "deployment", "name": "coredns", "namespace": "kube-system"}),
        ),
        (
            "k8s_list_resources",
            json!({"kind": "deployments", "namespace": "kube-system"}),
        ),
        ("k8s_list_events", json!({"namespace": "kube-system"})),
        (
            "k8s_scale_deployment",
            json!({"namespace": "kube-system", "name": "coredns", "replicas": 0}),
        ),
        (
            "k8s_delete_resource",
            json!({"kind": "deployment", "namespace": "kube-system", "name": "coredns"}),
        ),
        (
            "k8s_apply_manifest",
            json!({"manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-system\n", "dry_run": true}),
        ),
    ] {
        let r = tool(&c, name, args).await;
        assert_eq!(r.is_error, Some(true), "{name}: {}", text_of(&r));
        assert!(
            text_of(&r).contains("not in k8s.allowed_namespaces"),
            "{name}: {}",
            text_of(&r)
        );
    }
    let r = tool(&c, "k8s_list_namespaces", json!({})).await;
    let listed = sc(&r);
    let names: Vec<&str> = listed["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "team-a"]);

    // Logs: tail, grep, previous.
    let r = tool(
        &c,
        "k8s_get_pod_logs",
        json!({"pod": "web-1", "tail_lines": 5}),
    )
    .await;
    assert_eq!(sc(&r)["lines"], 5, "{}", text_of(&r));
    assert!(text_of(&r).starts_with("line 46"), "{}", text_of(&r));
    let r = tool(
        &c,
        "k8s_get_pod_logs",
        json!({"pod": "web-1", "tail_lines": 50, "grep": "ERROR"}),
    )
    .await;
    assert_eq!(sc(&r)["lines"], 5);
    let r = tool(
        &c,
        "k8s_get_pod_logs",
        json!({"pod": "web-1", "previous": true}),
    )
    .await;
    assert!(text_of(&r).contains("crashed"));

    // Events newest first; any kind through discovery with a projection.
    let r = tool(&c, "k8s_list_events", json!({})).await;
    assert_eq!(
        sc(&r)["events"][0]["reason"],
        "FailedScheduling",
        "{}",
        text_of(&r)
    );
    let r = tool(
        &c,
        "k8s_list_resources",
        json!({"kind": "deploy", "fields": ["spec.replicas", "status.readyReplicas"]}),
    )
    .await;
    assert_eq!(sc(&r)["items"][0]["name"], "web", "{}", text_of(&r));
    assert_eq!(sc(&r)["items"][0]["fields"]["spec.replicas"], 2);
    let r = tool(
        &c,
        "k8s_get_resource",
        json!({"kind": "nosuchkind", "name": "x"}),
    )
    .await;
    assert!(text_of(&r).contains("unknown kind"), "{}", text_of(&r));

    // Secret values never come back.
    let r = tool(
        &c,
        "k8s_get_resource",
        json!({"kind": "Secret", "name": "db-creds"}),
    )
    .await;
    let all = serde_json::to_string(&r).unwrap();
    assert!(
        !all.contains("aHVudGVyMi1jYW5hcnk=") && !all.contains("hunter2-canary"),
        "{all}"
    );
    assert_eq!(sc(&r)["data"]["password"], mcp_k8s::redact::REDACTED);
    let r = tool(
        &c,
        "k8s_list_resources",
        json!({"kind": "secrets", "fields": ["data"]}),
    )
    .await;
    assert!(
        !serde_json::to_string(&r)
            .unwrap()
            .contains("aHVudGVyMi1jYW5hcnk=")
    );
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutations_need_approval_dry_runs_change_nothing_and_each_document_is_reported() {
    let fake = fake_k8s::start().await;
    let k8s = start_k8s(&fake, "").await;
    let c = mcp_client(&k8s.url("/mcp")).await;
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  mode: blue\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.28\n";
    let args = json!({"manifest": manifest});
    let r = tool(&c, "apply_manifest", args.clone()).await;
    assert_eq!(sc(&r)["error"], "approval_required", "{}", text_of(&r));

    let r = tool(
        &c,
        "apply_manifest",
        json!({"manifest": manifest, "dry_run": true}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let docs = sc(&r)["documents"].clone();
    assert_eq!(docs[0]["status"], "would be created", "{docs}");
    assert_eq!(docs[1]["status"], "would be configured", "{docs}");
    assert_eq!(docs[1]["server_result"]["spec"]["replicas"], 3);
    assert!(
        fake.get("api/v1", "configmaps", "default", "app-config")
            .is_none(),
        "dry run created it"
    );
    assert_eq!(
        fake.get("apis/apps/v1", "deployments", "default", "web")
            .unwrap()["spec"]["replicas"],
        2
    );

    let r = c
        .call_tool(approved("apply_manifest", args.clone(), "ap-1"))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let docs = sc(&r)["documents"].clone();
    assert_eq!(
        (docs[0]["status"].as_str(), docs[1]["status"].as_str()),
        (Some("created"), Some("configured")),
        "{docs}"
    );
    assert!(text_of(&r).contains("app-config") && text_of(&r).contains("configured"));
    assert_eq!(
        fake.get("api/v1", "configmaps", "default", "app-config")
            .unwrap()["data"]["mode"],
        "blue"
    );
    assert_eq!(
        fake.get("apis/apps/v1", "deployments", "default", "web")
            .unwrap()["spec"]["replicas"],
        3
    );
    let r = c
        .call_tool(approved("apply_manifest", args.clone(), "ap-2"))
        .await
        .unwrap();
    assert_eq!(
        sc(&r)["documents"][0]["status"],
        "unchanged",
        "{}",
        text_of(&r)
    );
    // A used token does not work twice.
    let r = c
        .call_tool(approved("apply_manifest", args.clone(), "ap-2"))
        .await
        .unwrap();
    assert_eq!(sc(&r)["error"], "approval_required");

    let scale = json!({"name": "web", "replicas": 5});
    let r = c
        .call_tool(approved("scale_deployment", scale, "ap-3"))
        .await
        .unwrap();
    assert_eq!(sc(&r)["replicas"], 5, "{}", text_of(&r));
    assert_eq!(
        fake.get("apis/apps/v1", "deployments", "default", "web")
            .unwrap()["spec"]["replicas"],
        5
    );
    let restart = json!({"name": "web"});
    let r = c
        .call_tool(approved("rollout_restart", restart, "ap-4"))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let web = fake
        .get("apis/apps/v1", "deployments", "default", "web")
        .unwrap();
    assert!(
        web["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{web}"
    );
    let del = json!({"kind": "cm", "name": "app-config", "dry_run": true});
    tool(&c, "delete_resource", del).await;
    assert!(
        fake.get("api/v1", "configmaps", "default", "app-config")
            .is_some()
    );
    let del = json!({"kind": "cm", "name": "app-config"});
    let r = c
        .call_tool(approved("delete_resource", del, "ap-5"))
        .await
        .unwrap();
    assert_eq!(sc(&r)["deleted"], true, "{}", text_of(&r));
    assert!(
        fake.get("api/v1", "configmaps", "default", "app-config")
            .is_none()
    );

    // A field conflict is reported per document, with the remedy.
    let mut web = fake
        .get("apis/apps/v1", "deployments", "default", "web")
        .unwrap();
    web["metadata"]["annotations"] = json!({"fake/owned-by-other": "true"});
    fake.put("apis/apps/v1", "deployments", "default", web);
    let r = c
        .call_tool(approved("apply_manifest", args.clone(), "ap-6"))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let docs = sc(&r)["documents"].clone();
    assert_eq!(docs[0]["status"], "created", "{docs}");
    assert_eq!(docs[1]["status"], "error", "{docs}");
    assert!(
        docs[1]["error"].as_str().unwrap().contains("409")
            && docs[1]["error"].as_str().unwrap().contains("force=true"),
        "{docs}"
    );
    let bad = tool(
        &c,
        "apply_manifest",
        json!({"manifest": "kind: ConfigMap\nmetadata:\n  name: x\n", "dry_run": true}),
    )
    .await;
    assert!(
        text_of(&bad).contains("document 1: no apiVersion"),
        "{}",
        text_of(&bad)
    );
    c.cancel().await.unwrap();

    // read_only refuses every mutation, approved or not; dry runs still work.
    let ro = start_k8s(&fake, "read_only = true").await;
    let c = mcp_client(&ro.url("/mcp")).await;
    for (name, args) in [
        ("apply_manifest", args.clone()),
        ("scale_deployment", json!({"name": "web", "replicas": 1})),
        ("rollout_restart", json!({"name": "web"})),
        (
            "delete_resource",
            json!({"kind": "deployment", "name": "web"}),
        ),
    ] {
        let r = c
            .call_tool(approved(name, args, &format!("ro-{name}")))
            .await
            .unwrap();
        assert!(text_of(&r).contains("read_only"), "{name}: {}", text_of(&r));
    }
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ro-check\ndata:\n  a: b\n";
    let r = tool(
        &c,
        "apply_manifest",
        json!({"manifest": cm, "dry_run": true}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(sc(&r)["documents"][0]["status"], "would be created");
    assert!(
        fake.get("api/v1", "configmaps", "default", "ro-check")
            .is_none()
    );
    assert_eq!(
        fake.get("apis/apps/v1", "deployments", "default", "web")
            .unwrap()["spec"]["replicas"],
        5
    );
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_errors_become_clear_texts_and_no_cluster_means_degraded() {
    let fake = fake_k8s::start().await;
    let k8s = start_k8s(&fake, "").await;
    let c = mcp_client(&k8s.url("/mcp")).await;
    for (code, words) in [
        (401, &["401", "credentials"][..]),
        (403, &["403", "RBAC"][..]),
        (409, &["409", "conflict"][..]),
        (500, &["500", "retry later"][..]),
    ] {
        fake.fail("pods", code);
        let r = tool(&c, "list_pods", json!({})).await;
        assert_eq!(r.is_error, Some(true));
        let t = text_of(&r);
        for w in words {
            assert!(t.contains(w), "{code}: {t}");
        }
    }
    fake.heal();
    let r = tool(&c, "get_resource", json!({"kind": "pod", "name": "nope"})).await;
    assert!(text_of(&r).contains("404"), "{}", text_of(&r));
    // Health reports the server version once checked.
    let mut health = Value::Null;
    for _ in 0..50 {
        health = reqwest::get(k8s.url("/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["checks"]["cluster"]["details"]["server_version"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        health["checks"]["cluster"]["details"]["server_version"], "v1.31.0-fake",
        "{health}"
    );
    c.cancel().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let doc = ConfigDoc::from_str(
        &format!(
            "[k8s]\nkubeconfig = {:?}\n",
            dir.path().join("missing").display().to_string()
        ),
        "test",
    )
    .unwrap();
    let shutdown = ShutdownToken::new();
    let none = mcp_runtime::start::<mcp_k8s::K8s>(&doc, server_config(), shutdown.clone())
        .await
        .unwrap();
    let health: Value = reqwest::get(none.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let c = mcp_client(&none.url("/mcp")).await;
    let r = tool(&c, "list_pods", json!({})).await;
    assert!(
        text_of(&r).contains("no cluster") && text_of(&r).contains("missing"),
        "{}",
        text_of(&r)
    );
    c.cancel().await.unwrap();
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_agrees_with_list_pods() {
    if !tool_available("kubectl", "--help") {
        skip("kubectl is not installed (Debian package kubernetes-client)");
        return;
    }
    let fake = fake_k8s::start().await;
    let k8s = start_k8s(&fake, "").await;
    let kubeconfig = k8s.dir.path().join("kubeconfig");
    let out = tokio::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "pods",
            "-n",
            "default",
            "-o",
            "json",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kubectl: BTreeSet<(String, String)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                p["status"]["phase"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let c = mcp_client(&k8s.url("/mcp")).await;
    let r = tool(&c, "list_pods", json!({"namespace": "default"})).await;
    let ours: BTreeSet<(String, String)> = sc(&r)["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["phase"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(kubectl, ours);
    assert_eq!(ours.len(), 3);
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_identity_namespace_rules_follow_the_identity_master_asserts() {
    let fake = fake_k8s::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.key");
    std::fs::write(&key, "identity-key-0123456789abcdef0123456789abcdef").unwrap();
    let k8s = start_k8s_with(
        &fake,
        "[[k8s.rule]]\nroles = [\"dev\"]\nnamespaces = [\"team-*\"]\nverbs = [\"read\"]\n",
        ServerConfig {
            identity_key_file: Some(key.clone()),
            ..server_config()
        },
    )
    .await;
    let master = start_master_trusting(
        &key,
        &[
            ("dana", &["dev"], "dana-tok"),
            ("otto", &["ops"], "otto-tok"),
        ],
        &downstream("k8s", None, "http", &k8s.url("/mcp")),
    )
    .await;
    let connect = |token: &'static str| {
        let url = master.url("/mcp");
        async move {
            let cfg = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url)
                .auth_header(token.to_owned());
            use rmcp::ServiceExt;
            ().serve(rmcp::transport::StreamableHttpClientTransport::from_config(
                cfg,
            ))
            .await
            .unwrap()
        }
    };
    let dana = connect("dana-tok").await;
    let otto = connect("otto-tok").await;
    let r = tool(&dana, "k8s_list_pods", json!({"namespace": "team-a"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let r = tool(&dana, "k8s_list_pods", json!({"namespace": "default"})).await;
    assert!(
        text_of(&r).contains("no k8s.rule lets `dana` read in namespace `default`"),
        "{}",
        text_of(&r)
    );
    let r = tool(&dana, "k8s_list_namespaces", json!({})).await;
    assert_eq!(
        sc(&r)["namespaces"],
        json!([{"name": "team-a", "phase": "Active", "age": sc(&r)["namespaces"][0]["age"]}])
    );
    // Every namespace: only those the rules show (team-a has no pods in the fake).
    let r = tool(&dana, "k8s_list_pods", json!({"namespace": "*"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(sc(&r)["count"], 0, "{}", text_of(&r));
    let r = tool(&otto, "k8s_list_pods", json!({"namespace": "team-a"})).await;
    assert!(
        text_of(&r).contains("no k8s.rule lets `otto`"),
        "{}",
        text_of(&r)
    );
    dana.cancel().await.unwrap();
    otto.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_server_with_a_token_file_and_ca_file_works_without_a_kubeconfig() {
    let fake = fake_k8s::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{}\n", fake_k8s::TOKEN)).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &fake.ca_pem).unwrap();
    let d = dir.path().display().to_string();
    // A k8s service from `[k8s]` TOML alone, asked for the pods once.
    let list_pods = |text: String| async move {
        let doc = ConfigDoc::from_str(&text, "test").unwrap();
        let shutdown = ShutdownToken::new();
        let svc = mcp_runtime::start::<mcp_k8s::K8s>(&doc, server_config(), shutdown.clone())
            .await
            .unwrap();
        let c = mcp_client(&svc.url("/mcp")).await;
        let r = tool(&c, "list_pods", json!({})).await;
        c.cancel().await.unwrap();
        shutdown.cancel();
        r
    };
    let with_ca = format!(
        "[k8s]\napi_server = {:?}\ntoken_file = \"{d}/token\"\nca_file = \"{d}/ca.pem\"\n",
        fake.url
    );
    let r = list_pods(with_ca.clone()).await;
    assert_eq!(sc(&r)["count"], 3, "{}", text_of(&r));
    // A token file without the newline is handed to the client to re-read (rotation).
    std::fs::write(dir.path().join("token"), fake_k8s::TOKEN).unwrap();
    let r = list_pods(with_ca).await;
    assert_eq!(sc(&r)["count"], 3, "{}", text_of(&r));

    // Without the CA the server's certificate is not trusted: TLS verification is on.
    let r = list_pods(format!(
        "[k8s]\napi_server = {:?}\ntoken_file = \"{d}/token\"\n",
        fake.url
    ))
    .await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_own_api_version_spelling_works_beside_the_snake_case_one() {
    let fake = fake_k8s::start().await;
    let k8s = start_k8s(&fake, "").await;
    let master = start_master(
        &downstream("k8s", None, "http", &k8s.url("/mcp")),
        server_config(),
    )
    .await;
    let c = mcp_client(&master.url("/mcp")).await;
    let tools = c.list_all_tools().await.unwrap();
    for name in [
        "k8s_get_resource",
        "k8s_list_resources",
        "k8s_delete_resource",
    ] {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        let props = t.input_schema["properties"].as_object().unwrap();
        assert!(
            props.contains_key("apiVersion") && props.contains_key("api_version"),
            "{name}: {props:?}"
        );
    }
    for args in [
        json!({"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}),
        json!({"kind": "Deployment", "name": "web", "api_version": "apps/v1"}),
        json!({"kind": "Deployment", "name": "web", "api_version": "apps/v1", "apiVersion": "apps/v1"}),
    ] {
        let r = tool(&c, "k8s_get_resource", args.clone()).await;
        assert_ne!(r.is_error, Some(true), "{args}: {}", text_of(&r));
        assert_eq!(sc(&r)["apiVersion"], "apps/v1", "{args}");
        assert_eq!(sc(&r)["spec"]["replicas"], 2, "{args}");
    }
    // The version is honoured, not ignored: Deployments are not in the core v1 group.
    let r = tool(
        &c,
        "k8s_get_resource",
        json!({"kind": "Deployment", "name": "web", "apiVersion": "v1"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text_of(&r).contains("unknown kind `Deployment` in v1"),
        "{}",
        text_of(&r)
    );
    let r = tool(
        &c,
        "k8s_list_resources",
        json!({"kind": "deployments", "apiVersion": "apps/v1"}),
    )
    .await;
    assert_eq!(sc(&r)["count"], 1, "{}", text_of(&r));
    let r = tool(
        &c,
        "k8s_get_resource",
        json!({"kind": "Deployment", "name": "web", "api_version": "apps/v1", "apiVersion": "v1"}),
    )
    .await;
    assert!(
        text_of(&r).contains("`api_version` (apps/v1) and `apiVersion` (v1) disagree"),
        "{}",
        text_of(&r)
    );
}
