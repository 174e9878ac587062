//! The Azure Key Vault backend against an in-test fake speaking Key Vault's REST wire format over
//! real HTTPS (a throwaway CA the backend is told to trust via `ca_file`), with an Entra ID token
//! endpoint behind `authority_host`. No network exists here, so no real vault is reachable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use mcp_secrets::azure::{AzureConfig, AzureVault, CredentialKind};
use mcp_secrets::backend::{BackendState, SecretBackend, SecretError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

#[derive(Default)]
struct Vault {
    /// name → versions (version id, value), newest last.
    secrets: HashMap<String, Vec<(String, String)>>,
    deleted: Vec<String>,
    /// Arrival times of requests per secret name.
    arrivals: HashMap<String, Vec<Instant>>,
    unauthenticated: usize,
    tokens_issued: usize,
}

#[derive(Clone)]
struct Fake {
    base: String,
    vault: Arc<Mutex<Vault>>,
}

fn kv_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

fn secret_json(base: &str, name: &str, version: &str, value: Option<&str>) -> Value {
    let mut v = json!({
        "id": format!("{base}/secrets/{name}/{version}"),
        "attributes": { "enabled": true, "created": 1_700_000_000, "updated": 1_700_000_100, "recoveryLevel": "Recoverable+Purgeable" },
        "tags": { "env": "test" }
    });
    if let Some(value) = value {
        v["value"] = json!(value);
    }
    v
}

async fn token(State(f): State<Fake>, body: String) -> Response {
    let form: HashMap<String, String> = url_pairs(&body);
    if form.get("client_secret").map(String::as_str) == Some("good-secret")
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
    {
        f.vault.lock().unwrap().tokens_issued += 1;
        axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "good-token"})).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]})),
        )
            .into_response()
    }
}

fn url_pairs(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace('+', " ")))
        .collect()
}

async fn vault_root(
    State(f): State<Fake>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    handle(f, method, headers, String::new(), q, body)
}

async fn vault_item(
    State(f): State<Fake>,
    method: Method,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    handle(f, method, headers, rest, q, body)
}

fn handle(
    f: Fake,
    method: Method,
    headers: HeaderMap,
    rest: String,
    q: HashMap<String, String>,
    body: Bytes,
) -> Response {
    assert!(q.contains_key("api-version"), "request without api-version");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer good-token") {
        f.vault.lock().unwrap().unauthenticated += 1;
        let mut r = kv_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
        r.headers_mut().insert(
            "www-authenticate",
            "Bearer authorization=\"https://login.microsoftonline.com/tenant\", resource=\"https://vault.azure.net\""
                .parse()
                .unwrap(),
        );
        return r;
    }
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut v = f.vault.lock().unwrap();
    match (method.as_str(), parts.as_slice()) {
        ("GET", []) => {
            // Two per page, continued with nextLink, as the service pages.
            let mut names: Vec<&String> = v.secrets.keys().collect();
            names.sort();
            let skip: usize = q
                .get("$skiptoken")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = names
                .iter()
                .skip(skip)
                .take(2)
                .map(|n| {
                    let mut s = secret_json(&f.base, n, "", None);
                    s["id"] = json!(format!("{}/secrets/{n}", f.base));
                    s["contentType"] = json!("text/plain");
                    s
                })
                .collect();
            let next = (skip + 2 < names.len())
                .then(|| format!("{}/secrets?api-version=7.6&$skiptoken={}", f.base, skip + 2));
            axum::Json(json!({ "value": page, "nextLink": next })).into_response()
        }
        (m, [name, tail @ ..]) => {
            let name = (*name).to_owned();
            v.arrivals
                .entry(name.clone())
                .or_default()
                .push(Instant::now());
            if name.starts_with("forbidden") {
                return kv_error(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "The user, group or application does not have secrets get permission on key vault.",
                );
            }
            let seen = v.arrivals[&name].len();
            if name == "always-throttled" || (name == "throttled" && seen == 1) {
                let mut r = kv_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Throttled",
                    "Rate limit exceeded.",
                );
                r.headers_mut().insert("retry-after", "1".parse().unwrap());
                return r;
            }
            match m {
                "GET" => {
                    let Some(versions) = v.secrets.get(&name) else {
                        return kv_error(
                            StatusCode::NOT_FOUND,
                            "SecretNotFound",
                            &format!(
                                "A secret with (name/id) {name} was not found in this key vault."
                            ),
                        );
                    };
                    let found = match tail.first() {
                        Some(ver) => versions.iter().find(|(id, _)| id == ver),
                        None => versions.last(),
                    };
                    match found {
                        Some((ver, value)) => {
                            axum::Json(secret_json(&f.base, &name, ver, Some(value)))
                                .into_response()
                        }
                        None => {
                            kv_error(StatusCode::NOT_FOUND, "SecretNotFound", "no such version")
                        }
                    }
                }
                "PUT" => {
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    let value = body["value"].as_str().unwrap().to_owned();
                    let versions = v.secrets.entry(name.clone()).or_default();
                    let ver = format!("v{}", versions.len() + 1);
                    versions.push((ver.clone(), value.clone()));
                    axum::Json(secret_json(&f.base, &name, &ver, Some(&value))).into_response()
                }
                "DELETE" => match v.secrets.remove(&name) {
                    Some(versions) => {
                        v.deleted.push(name.clone());
                        let mut d = secret_json(&f.base, &name, &versions.last().unwrap().0, None);
                        d["recoveryId"] = json!(format!("{}/deletedsecrets/{name}", f.base));
                        d["deletedDate"] = json!(1_700_000_200);
                        d["scheduledPurgeDate"] = json!(1_707_776_200);
                        axum::Json(d).into_response()
                    }
                    None => kv_error(StatusCode::NOT_FOUND, "SecretNotFound", "not found"),
                },
                _ => kv_error(StatusCode::METHOD_NOT_ALLOWED, "BadRequest", "method"),
            }
        }
        _ => kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "unsupported request",
        ),
    }
}

struct Running {
    base: String,
    vault: Arc<Mutex<Vault>>,
    ca_file: tempfile::NamedTempFile,
    secret_file: tempfile::NamedTempFile,
}

/// Starts the fake on an HTTPS port with a fresh self-signed certificate.
async fn start_fake() -> Running {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_der = certified.cert.der().clone();
    let key_der =
        rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base = format!("https://127.0.0.1:{}", addr.port());
    let vault = Arc::new(Mutex::new(Vault::default()));
    let fake = Fake {
        base: base.clone(),
        vault: vault.clone(),
    };
    let app = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/secrets", any(vault_root))
        .route("/secrets/{*rest}", any(vault_item))
        .with_state(fake);
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
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), certified.cert.pem()).unwrap();
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "good-secret\n").unwrap();
    Running {
        base,
        vault,
        ca_file,
        secret_file,
    }
}

impl Running {
    fn config(&self) -> AzureConfig {
        AzureConfig {
            vault_url: self.base.clone(),
            credential: CredentialKind::ClientSecret,
            tenant_id: Some("tenant".to_owned()),
            client_id: Some("client".to_owned()),
            client_secret_file: Some(self.secret_file.path().to_owned()),
            authority_host: Some(self.base.clone()),
            ca_file: Some(self.ca_file.path().to_owned()),
            max_retries: 2,
            max_retry_secs: 30,
            verify_challenge_resource: false,
            read_only: false,
        }
    }

    fn seed(&self, name: &str, versions: &[&str]) {
        let mut v = self.vault.lock().unwrap();
        v.secrets.insert(
            name.to_owned(),
            versions
                .iter()
                .enumerate()
                .map(|(i, val)| (format!("v{}", i + 1), (*val).to_owned()))
                .collect(),
        );
    }
}

async fn get(b: &AzureVault, name: &str, version: Option<&str>) -> Result<String, SecretError> {
    b.get(name, None, version)
        .await
        .map(|f| f.value.expose_secret().to_owned())
}

#[tokio::test]
async fn get_list_set_delete_and_versions_over_the_wire_format() {
    let fake = start_fake().await;
    fake.seed("db-password", &["old-pass", "new-pass"]);
    fake.seed("api-key", &["k1"]);
    fake.seed("third", &["t"]);
    let b = AzureVault::new("azure", fake.config());
    assert_eq!(b.status().state, BackendState::Ready, "{:?}", b.status());

    assert_eq!(get(&b, "db-password", None).await.unwrap(), "new-pass");
    assert_eq!(
        get(&b, "db-password", Some("v1")).await.unwrap(),
        "old-pass"
    );
    let fetched = b.get("db-password", None, None).await.unwrap();
    assert_eq!(fetched.version.as_deref(), Some("v2"));

    // Listing follows nextLink across pages and carries metadata, never values.
    let list = b.list(100).await.unwrap();
    let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["azure/api-key", "azure/db-password", "azure/third"]);
    assert_eq!(list[0].enabled, Some(true));
    assert_eq!(list[0].content_type.as_deref(), Some("text/plain"));
    assert_eq!(list[0].created.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(list[0].tags, ["env=test"]);
    let json = serde_json::to_string(&list).unwrap();
    assert!(
        !json.contains("new-pass") && !json.contains("k1\""),
        "{json}"
    );
    assert_eq!(b.list(2).await.unwrap().len(), 2);

    let meta = b
        .set("db-password", None, SecretString::from("rotated"))
        .await
        .unwrap();
    assert_eq!(meta.version.as_deref(), Some("v3"));
    assert_eq!(get(&b, "db-password", None).await.unwrap(), "rotated");
    b.set("brand-new", None, SecretString::from("n"))
        .await
        .unwrap();
    assert_eq!(get(&b, "brand-new", None).await.unwrap(), "n");

    let d = b.delete("api-key").await.unwrap();
    assert_eq!(d.outcome, "soft_deleted");
    assert_eq!(
        d.recovery_id.as_deref(),
        Some(format!("{}/deletedsecrets/api-key", fake.base).as_str())
    );
    assert!(d.scheduled_purge_date.is_some());
    assert!(matches!(
        get(&b, "api-key", None).await,
        Err(SecretError::NotFound)
    ));
    assert!(matches!(
        b.delete("api-key").await,
        Err(SecretError::NotFound)
    ));

    // Bad names never leave the process.
    let err = get(&b, "bad/name", None).await.unwrap_err();
    assert!(err.to_string().contains("letters, digits and '-'"), "{err}");
    let v = fake.vault.lock().unwrap();
    assert!(
        v.unauthenticated >= 1,
        "the SDK's challenge round trip did not happen"
    );
    assert_eq!(v.tokens_issued, 1, "the token should be cached");
}

#[tokio::test]
async fn http_errors_become_actionable_texts() {
    let fake = start_fake().await;
    let b = AzureVault::new("azure", fake.config());
    let err = get(&b, "forbidden-one", None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("403") && text.contains("access policy"),
        "{text}"
    );

    // Wrong client secret: Entra ID answers 401.
    std::fs::write(fake.secret_file.path(), "wrong-secret").unwrap();
    let bad = AzureVault::new("azure", fake.config());
    let text = get(&bad, "anything", None).await.unwrap_err().to_string();
    assert!(
        text.contains("401") && text.contains("credentials"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret"), "{text}");

    // Missing credentials: the backend is unavailable, not the service.
    let mut cfg = fake.config();
    cfg.client_secret_file = Some("/nonexistent/secret".into());
    let missing = AzureVault::new("azure", cfg);
    assert_eq!(missing.status().state, BackendState::Unavailable);
    assert!(
        missing
            .status()
            .detail
            .unwrap()
            .contains("/nonexistent/secret")
    );
}

#[tokio::test]
async fn throttling_honours_retry_after_then_gives_up_with_a_clear_error() {
    let fake = start_fake().await;
    fake.seed("throttled", &["eventually"]);
    fake.seed("always-throttled", &["never"]);
    let b = AzureVault::new("azure", fake.config());
    assert_eq!(get(&b, "throttled", None).await.unwrap(), "eventually");
    {
        let v = fake.vault.lock().unwrap();
        let t = &v.arrivals["throttled"];
        assert_eq!(t.len(), 2, "one 429, then the retry");
        let gap = t[1] - t[0];
        assert!(
            gap >= Duration::from_millis(990),
            "retried after {gap:?}, before Retry-After: 1"
        );
    }
    let mut cfg = fake.config();
    cfg.max_retries = 1;
    let b = AzureVault::new("azure", cfg);
    let text = get(&b, "always-throttled", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("429") && text.contains("throttling"),
        "{text}"
    );
}
