//! An in-test Kubernetes API server (axum, plain HTTP) speaking the real wire format for what the k8s
//! service and `kubectl get` use: discovery (`/version`, `/api`, `/apis`, resource lists), list/get of
//! any stored object with label and field selectors, pod logs, server-side apply
//! (`application/apply-patch+yaml`, `dryRun=All`, `force`), JSON merge patches, the deployment scale
//! subresource, delete, `Status` errors, bearer-token auth and injected failures.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const TOKEN: &str = "fake-cluster-token";

/// (api prefix, plural, kind, namespaced)
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("api/v1", "pods", "Pod", true),
    ("api/v1", "namespaces", "Namespace", false),
    ("api/v1", "events", "Event", true),
    ("api/v1", "secrets", "Secret", true),
    ("api/v1", "configmaps", "ConfigMap", true),
    ("api/v1", "services", "Service", true),
    ("api/v1", "nodes", "Node", false),
    ("apis/apps/v1", "deployments", "Deployment", true),
    ("apis/apps/v1", "statefulsets", "StatefulSet", true),
];

#[derive(Default)]
pub struct Cluster {
    /// (prefix, plural, namespace, name) → object
    pub objects: BTreeMap<(String, String, String, String), Value>,
    /// (namespace, pod) → (current log, previous log)
    pub logs: HashMap<(String, String), (String, String)>,
    pub resource_version: u64,
    /// (path fragment, status code): requests whose path contains the fragment fail so.
    pub fail: Option<(String, u16)>,
    /// Every request: method and path with query.
    pub requests: Vec<String>,
}

#[derive(Clone)]
pub struct Fake {
    pub cluster: Arc<Mutex<Cluster>>,
    pub url: String,
    pub ca_pem: String,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code
        })),
    )
        .into_response()
}

fn reason_of(code: u16) -> &'static str {
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        _ => "InternalError",
    }
}

fn api_version_of(prefix: &str) -> String {
    prefix
        .trim_start_matches("apis/")
        .trim_start_matches("api/")
        .to_owned()
}

/// JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn matches_labels(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let labels = &obj["metadata"]["labels"];
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k.trim_end_matches('=')].as_str() == Some(v)
        } else {
            !labels[term].is_null()
        }
    })
}

fn matches_fields(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (path, want, negate) = match term.split_once("!=") {
            Some((p, v)) => (p, v, true),
            None => match term.split_once('=') {
                Some((p, v)) => (p.trim_end_matches('='), v, false),
                None => return true,
            },
        };
        let got = path
            .split('.')
            .try_fold(obj, |cur, k| cur.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default();
        (got == want) != negate
    })
}

impl Fake {
    pub fn put(&self, prefix: &str, plural: &str, ns: &str, mut obj: Value) {
        let mut c = self.cluster.lock().unwrap();
        c.resource_version += 1;
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        obj["metadata"]["resourceVersion"] = json!(c.resource_version.to_string());
        if obj["metadata"]["creationTimestamp"].is_null() {
            obj["metadata"]["creationTimestamp"] = json!("2026-11-20T10:00:00Z");
        }
        if !ns.is_empty() {
            obj["metadata"]["namespace"] = json!(ns);
        }
        c.objects.insert(
            (prefix.to_owned(), plural.to_owned(), ns.to_owned(), name),
            obj,
        );
    }

    pub fn get(&self, prefix: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.cluster
            .lock()
            .unwrap()
            .objects
            .get(&(
                prefix.to_owned(),
                plural.to_owned(),
                ns.to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }

    pub fn fail(&self, fragment: &str, code: u16) {
        self.cluster.lock().unwrap().fail = Some((fragment.to_owned(), code));
    }

    pub fn heal(&self) {
        self.cluster.lock().unwrap().fail = None;
    }

    /// A kubeconfig (with the bearer token) for this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: tester\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: default\ncurrent-context: fake\n",
            self.url,
            base64(self.ca_pem.as_bytes())
        )
    }

    /// Seeds namespaces, pods (with logs), events, a Secret, a ConfigMap and a Deployment.
    pub fn seed(&self) {
        for ns in ["default", "kube-system", "team-a"] {
            self.put(
                "api/v1",
                "namespaces",
                "",
                json!({"metadata": {"name": ns}, "status": {"phase": "Active"}}),
            );
        }
        let pod = |name: &str, phase: &str, ready: bool, restarts: i32, node: &str| {
            json!({
                "metadata": {"name": name, "labels": {"app": name.split('-').next().unwrap()}},
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nginx:1.27"}]},
                "status": {"phase": phase, "podIP": "10.0.0.7",
                    "containerStatuses": [{"name": "main", "ready": ready, "restartCount": restarts, "image": "nginx:1.27", "imageID": "", "started": ready}]}
            })
        };
        self.put(
            "api/v1",
            "pods",
            "default",
            pod("web-1", "Running", true, 2, "node-a"),
        );
        self.put(
            "api/v1",
            "pods",
            "default",
            pod("web-2", "Pending", false, 0, "node-b"),
        );
        self.put(
            "api/v1",
            "pods",
            "default",
            pod("db-1", "Running", true, 0, "node-a"),
        );
        self.put(
            "api/v1",
            "pods",
            "kube-system",
            pod("coredns-1", "Running", true, 0, "node-a"),
        );
        {
            let mut c = self.cluster.lock().unwrap();
            c.logs.insert(
                ("default".into(), "web-1".into()),
                (
                    (1..=50)
                        .map(|i| {
                            format!(
                                "line {i} GET /index{}\n",
                                if i % 10 == 0 { " ERROR" } else { "" }
                            )
                        })
                        .collect(),
                    "previous instance crashed\n".into(),
                ),
            );
        }
        self.put("api/v1", "events", "default", json!({
            "metadata": {"name": "web-2.1"}, "type": "Warning", "reason": "FailedScheduling",
            "message": "0/2 nodes are available", "count": 3, "lastTimestamp": "2026-11-25T10:00:00Z",
            "involvedObject": {"kind": "Pod", "name": "web-2", "namespace": "default"}
        }));
        self.put("api/v1", "events", "default", json!({
            "metadata": {"name": "web-1.1"}, "type": "Normal", "reason": "Started",
            "message": "Started container main", "count": 1, "lastTimestamp": "2026-11-25T09:00:00Z",
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"}
        }));
        self.put("api/v1", "secrets", "default", json!({
            "metadata": {"name": "db-creds", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"stringData\":{\"password\":\"hunter2-canary\"}}"}},
            "type": "Opaque", "data": {"password": "aHVudGVyMi1jYW5hcnk="}
        }));
        self.put("apis/apps/v1", "deployments", "default", json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1}
        }));
        self.put("apis/apps/v1", "deployments", "kube-system", json!({
            "metadata": {"name": "coredns"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "dns"}}, "template": {"metadata": {"labels": {"app": "dns"}}, "spec": {"containers": [{"name": "dns", "image": "coredns"}]}}}
        }));
    }
}

fn discovery_list(prefix: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|(p, ..)| *p == prefix)
        .flat_map(|(_, plural, kind, namespaced)| {
            let mut v = vec![json!({
                "name": plural, "singularName": kind.to_ascii_lowercase(), "namespaced": namespaced, "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]
            })];
            if *plural == "pods" {
                v.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
            }
            if *plural == "deployments" {
                v.push(json!({"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
            }
            v
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version_of(prefix), "resources": resources})
}

async fn handle(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_matches('/').to_owned();
    {
        let mut c = fake.cluster.lock().unwrap();
        c.requests.push(format!("{method} {uri}"));
        if let Some((fragment, code)) = c.fail.clone()
            && uri.path().contains(&fragment)
        {
            return status(code, reason_of(code), &format!("injected failure {code}"));
        }
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !authorized {
        return status(401, "Unauthorized", "Unauthorized");
    }
    match path.as_str() {
        "version" => {
            return axum::Json(json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"})).into_response();
        }
        "api" => {
            return axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}]})).into_response();
        }
        "apis" => {
            return axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}
            ]})).into_response();
        }
        "api/v1" | "apis/apps/v1" => return axum::Json(discovery_list(&path)).into_response(),
        _ => {}
    }
    let (prefix, rest) = if let Some(r) = path.strip_prefix("api/v1/") {
        ("api/v1", r)
    } else if let Some(r) = path.strip_prefix("apis/apps/v1/") {
        ("apis/apps/v1", r)
    } else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        );
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (ns, parts) = if parts.len() >= 3 && parts[0] == "namespaces" {
        (parts[1].to_owned(), parts[2..].to_vec())
    } else {
        (String::new(), parts)
    };
    let plural = parts[0];
    let Some(&(_, _, kind, _)) = RESOURCES
        .iter()
        .find(|(p, pl, ..)| *p == prefix && *pl == plural)
    else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({plural})"),
        );
    };
    let name = parts.get(1).copied();
    let sub = parts.get(2).copied();
    // Patches carry dryRun in the query, deletes in the DeleteOptions body.
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All")
        || (method == Method::DELETE
            && serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|b| b.get("dryRun").cloned())
                .is_some_and(|d| d.as_array().is_some_and(|a| a.iter().any(|x| x == "All"))));
    let key = |n: &str| {
        (
            prefix.to_owned(),
            plural.to_owned(),
            ns.clone(),
            n.to_owned(),
        )
    };
    let not_found = |n: &str| status(404, "NotFound", &format!("{plural} \"{n}\" not found"));
    match (method.as_str(), name, sub) {
        ("GET", None, None) => {
            let c = fake.cluster.lock().unwrap();
            let labels = q.get("labelSelector").cloned().unwrap_or_default();
            let fields = q.get("fieldSelector").cloned().unwrap_or_default();
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(usize::MAX);
            let items: Vec<Value> = c
                .objects
                .iter()
                .filter(|((p, pl, n, _), _)| {
                    p == prefix && pl == plural && (ns.is_empty() || *n == ns)
                })
                .map(|(_, v)| v.clone())
                .filter(|v| matches_labels(v, &labels) && matches_fields(v, &fields))
                .take(limit)
                .collect();
            axum::Json(json!({"kind": format!("{kind}List"), "apiVersion": api_version_of(prefix), "metadata": {"resourceVersion": c.resource_version.to_string()}, "items": items})).into_response()
        }
        ("GET", Some(n), None) => match fake.get(prefix, plural, &ns, n) {
            Some(mut v) => {
                v["kind"] = json!(kind);
                v["apiVersion"] = json!(api_version_of(prefix));
                axum::Json(v).into_response()
            }
            None => not_found(n),
        },
        ("GET", Some(n), Some("log")) => {
            let c = fake.cluster.lock().unwrap();
            let Some((current, previous)) = c.logs.get(&(ns.clone(), n.to_owned())) else {
                return not_found(n);
            };
            let text = if q.get("previous").is_some_and(|v| v == "true") {
                previous
            } else {
                current
            };
            let mut lines: Vec<&str> = text.lines().collect();
            if let Some(t) = q.get("tailLines").and_then(|t| t.parse::<usize>().ok()) {
                lines = lines[lines.len().saturating_sub(t)..].to_vec();
            }
            let mut out: String = lines.iter().map(|l| format!("{l}\n")).collect();
            if let Some(b) = q.get("limitBytes").and_then(|b| b.parse::<usize>().ok()) {
                out.truncate(b);
            }
            out.into_response()
        }
        ("PATCH", Some(n), sub) => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let patch: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return status(422, "Invalid", &format!("body is not JSON: {e}")),
            };
            let existing = fake.get(prefix, plural, &ns, n);
            if sub == Some("scale") {
                let Some(mut obj) = existing else {
                    return not_found(n);
                };
                let old = obj["spec"]["replicas"].clone();
                let replicas = patch["spec"]["replicas"].clone();
                if !dry_run {
                    obj["spec"]["replicas"] = replicas.clone();
                    fake.put(prefix, plural, &ns, obj);
                }
                return axum::Json(json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": n, "namespace": ns}, "spec": {"replicas": replicas}, "status": {"replicas": old}})).into_response();
            }
            let merged = if ct.starts_with("application/apply-patch") {
                if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
                    return status(422, "Invalid", "fieldManager is required for apply patch");
                }
                if let Some(e) = &existing
                    && e["metadata"]["annotations"]["fake/owned-by-other"] == "true"
                    && q.get("force").is_none_or(|f| f != "true")
                {
                    return status(
                        409,
                        "Conflict",
                        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas",
                    );
                }
                let mut m = existing
                    .clone()
                    .unwrap_or_else(|| json!({"metadata": {"name": n}}));
                for k in ["spec", "data", "stringData", "type"] {
                    if let Some(v) = patch.get(k) {
                        m[k] = v.clone();
                    }
                }
                if let Some(l) = patch["metadata"].get("labels") {
                    m["metadata"]["labels"] = l.clone();
                }
                m
            } else if ct.starts_with("application/merge-patch") {
                let Some(mut m) = existing.clone() else {
                    return not_found(n);
                };
                merge(&mut m, &patch);
                m
            } else {
                return status(
                    415,
                    "UnsupportedMediaType",
                    &format!("unsupported patch type {ct}"),
                );
            };
            let changed = existing.as_ref().is_none_or(|e| {
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    v["metadata"]["resourceVersion"] = Value::Null;
                    v
                };
                strip(e) != strip(&merged)
            });
            let mut out = merged.clone();
            if !dry_run && changed {
                fake.put(prefix, plural, &ns, merged);
                out = fake.get(prefix, plural, &ns, n).unwrap();
            }
            out["kind"] = json!(kind);
            out["apiVersion"] = json!(api_version_of(prefix));
            let code = if existing.is_none() && !dry_run {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, axum::Json(out)).into_response()
        }
        ("DELETE", Some(n), None) => {
            let existing = fake.get(prefix, plural, &ns, n);
            let Some(mut obj) = existing else {
                return not_found(n);
            };
            if !dry_run {
                fake.cluster.lock().unwrap().objects.remove(&key(n));
            }
            obj["kind"] = json!(kind);
            obj["apiVersion"] = json!(api_version_of(prefix));
            axum::Json(obj).into_response()
        }
        _ => status(
            405,
            "MethodNotAllowed",
            &format!("{method} not supported on {path}"),
        ),
    }
}

/// Starts the fake on a free loopback port over HTTPS with a fresh self-signed certificate
/// (client-go sends bearer tokens only over TLS; the kubeconfig carries the CA).
pub async fn start() -> Fake {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let fake = Fake {
        cluster: Arc::new(Mutex::new(Cluster::default())),
        url,
        ca_pem: certified.cert.pem(),
    };
    let app = Router::new().fallback(handle).with_state(fake.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(
                    hyper_util::rt::TokioIo::new(tls),
                    hyper_util::service::TowerToHyperService::new(app),
                )
                .await;
            });
        }
    });
    fake.seed();
    fake
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
