//! TLS on every listener and mutual TLS between master and services: real clients (rmcp, curl, Node,
//! the Python SDK, rustls, Prometheus) against master and the CMDB serving HTTPS with certificates a
//! test CA signed.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mcp_runtime::ServerConfig;
use mcp_runtime::config::{ClientAuth, TlsVersion};
use mcp_runtime::tls::ClientTls;
use mcp_test_support::pki::Pki;
use mcp_test_support::{structured, text, tool};
use rmcp::RoleClient;
use rmcp::service::RunningService;
use serde_json::{Value, json};

fn tls_server(pki: &Pki) -> ServerConfig {
    ServerConfig {
        tls_cert_file: Some(pki.path("server.pem")),
        tls_key_file: Some(pki.path("server.key")),
        tls_ca_file: Some(pki.path("ca.pem")),
        ..server_config()
    }
}

/// Requiring client certificates signed by the test CA.
fn mutual(pki: &Pki, mode: ClientAuth) -> ServerConfig {
    ServerConfig {
        tls_client_ca_file: Some(pki.path("ca.pem")),
        tls_client_auth: mode,
        ..tls_server(pki)
    }
}

fn client_tls(pki: &Pki, cert: Option<&str>) -> ClientTls {
    ClientTls {
        ca_file: Some(pki.path("ca.pem")),
        cert_file: cert.map(|c| pki.path(&format!("{c}.pem"))),
        key_file: cert.map(|c| pki.path(&format!("{c}.key"))),
    }
}

fn http(pki: &Pki, cert: Option<&str>) -> reqwest::Client {
    client_tls(pki, cert).builder().unwrap().build().unwrap()
}

async fn mcp(url: &str, http: reqwest::Client) -> RunningService<RoleClient, ()> {
    mcp_test_support::client_over(url, http).await
}

/// Waits until master lists `name` (its downstream connected), or fails with master's view of
/// its downstreams (`master_getSystemStatus`, asked over the same client).
async fn wait_for_tool(c: &RunningService<RoleClient, ()>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tools = c.list_all_tools().await.unwrap();
        if tools.iter().any(|t| t.name == name) {
            return;
        }
        if Instant::now() >= deadline {
            let status = tool(c, "master_getSystemStatus", json!({})).await;
            panic!("{name} never listed; master: {}", structured(&status));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until master lists `cmdb_getHost`, then checks that a call reaches the CMDB.
async fn assert_reaches_cmdb(c: &RunningService<RoleClient, ()>) {
    wait_for_tool(c, "cmdb_getHost").await;
    let r = tool(c, "cmdb_getHost", json!({"name": "aicrusher"})).await;
    assert_eq!(structured(&r)["host"]["name"], "aicrusher", "{}", text(&r));
}

/// Master's `/health`, over HTTPS with the test CA.
async fn health_of(master: &TestService, pki: &Pki) -> Value {
    http(pki, None)
        .get(master.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_serves_https_and_reaches_the_cmdb_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let cmdb = start_cmdb(tls_server(&pki)).await;
    assert!(cmdb.url("").starts_with("https://"), "{}", cmdb.url(""));
    let master = start_master(
        &downstream("cmdb", None, "http", &cmdb.url("/mcp")),
        tls_server(&pki),
    )
    .await;

    // rmcp over HTTPS, both hops TLS: the call reaches the CMDB.
    let c = mcp(&master.url("/mcp"), http(&pki, None)).await;
    assert_reaches_cmdb(&c).await;
    let health = health_of(&master, &pki).await;
    assert_eq!(
        health["checks"]["downstream:cmdb"]["status"], "healthy",
        "{health}"
    );

    // The legacy SSE transport to a TLS service verifies it the same way.
    let over_sse = start_master(
        &downstream("cmdb", None, "sse", &cmdb.url("/sse")),
        tls_server(&pki),
    )
    .await;
    let c2 = mcp(&over_sse.url("/mcp"), http(&pki, None)).await;
    assert_reaches_cmdb(&c2).await;

    // /health, /ready and /metrics are HTTPS too.
    for path in ["/health", "/ready", "/metrics"] {
        let r = http(&pki, None).get(master.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }

    // Without the CA a client refuses the certificate.
    let untrusting = reqwest::Client::new()
        .get(master.url("/health"))
        .send()
        .await;
    let e = untrusting.expect_err("a client without the CA must refuse master's certificate");
    assert!(e.is_connect(), "{e:?}");

    // Plain HTTP on the TLS port: a readable 400, never a served request.
    let plain = master.url("/health").replacen("https://", "http://", 1);
    let r = reqwest::get(&plain).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("serves HTTPS only"));

    if !tool_available("curl", "--version") {
        skip("curl is not installed");
        return;
    }
    let ca = pki.path("ca.pem").display().to_string();
    let (code, out) = curl(&["--cacert", &ca, &master.url("/health")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"status\""), "{out}");
    // curl's exit code 60: the peer certificate cannot be verified with the known CAs.
    let (code, out) = curl(&[&master.url("/health")]);
    assert_eq!(code, 60, "{out}");
    let (code, out) = curl(&["-o", "/dev/null", "-w", "%{http_code}", &plain]);
    assert_eq!((code, out.as_str()), (0, "400"));

    if !python_mcp_available() {
        skip("the Python mcp SDK is not installed");
        return;
    }
    // The official Python SDK (httpx) over both transports, with the CA and without.
    let python = |ca: Option<&Path>| {
        let mut cmd = Command::new("python3");
        cmd.arg(crate_dir().join("python/check_client.py"))
            .arg(master.url(""))
            .env("MCP_TOOL_PREFIX", "cmdb_")
            .env_remove("SSL_CERT_DIR")
            .stdin(Stdio::null());
        match ca {
            Some(ca) => cmd.env("SSL_CERT_FILE", ca),
            None => cmd.env_remove("SSL_CERT_FILE"),
        };
        cmd.output().unwrap()
    };
    let out = python(Some(&pki.path("ca.pem")));
    assert!(
        out.status.success(),
        "python over HTTPS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for transport in ["sse", "streamable_http"] {
        assert_eq!(report[transport]["host"], "aicrusher", "{report}");
    }
    let out = python(None);
    assert!(!out.status.success(), "python without the CA must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CERTIFICATE_VERIFY_FAILED"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_client_trusts_the_ca_through_node_extra_ca_certs() {
    if !npx_available() {
        skip("npx is not installed (the MCP Inspector CLI, a Node client)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let cmdb = start_cmdb(tls_server(&pki)).await;
    let master = start_master(
        &downstream("cmdb", None, "http", &cmdb.url("/mcp")),
        tls_server(&pki),
    )
    .await;
    let c = mcp(&master.url("/mcp"), http(&pki, None)).await;
    wait_for_tool(&c, "cmdb_getHost").await;
    // The Inspector CLI runs on Node, like Cursor's and Claude Desktop's MCP clients.
    let inspector = |ca: Option<&Path>| {
        let mut cmd = Command::new("npx");
        cmd.args([
            "-y",
            "-p",
            "node@22",
            "-p",
            "@modelcontextprotocol/inspector@2.12.0",
        ])
        .args(["mcp-inspector", "--cli", &master.url("/mcp")])
        .args(["--transport", "http", "--method", "tools/list"])
        .current_dir(dir.path())
        .stdin(Stdio::null());
        match ca {
            Some(ca) => cmd.env("NODE_EXTRA_CA_CERTS", ca),
            None => cmd.env_remove("NODE_EXTRA_CA_CERTS"),
        };
        cmd.output().unwrap()
    };
    let out = inspector(Some(&pki.path("ca.pem")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspector with NODE_EXTRA_CA_CERTS: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        list["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "cmdb_getHost"),
        "{list}"
    );
    let out = inspector(None);
    assert!(
        !out.status.success(),
        "a Node client without the CA must refuse master's certificate: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_requiring_client_certificates_refuses_master_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.issue("master", &["master"]);
    pki.issue_untrusted("impostor", &["master"]);
    let cmdb = start_cmdb(mutual(&pki, ClientAuth::Required)).await;

    // Straight at the CMDB: no certificate, or one from another CA, fails the handshake.
    for cert in [None, Some("impostor")] {
        let r = http(&pki, cert).get(cmdb.url("/health")).send().await;
        assert!(r.is_err(), "{cert:?} must be refused: {r:?}");
    }
    let r = http(&pki, Some("master"))
        .get(cmdb.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Master without a client certificate never connects; its health says why.
    let without = start_master(
        &downstream("cmdb", None, "http", &cmdb.url("/mcp")),
        tls_server(&pki),
    )
    .await;
    // With one (per downstream), it does, and calls go through.
    let with = start_master(
        &format!(
            "{}client_cert_file = {:?}\nclient_key_file = {:?}\n",
            downstream("cmdb", None, "http", &cmdb.url("/mcp")),
            pki.path("master.pem").display().to_string(),
            pki.path("master.key").display().to_string()
        ),
        tls_server(&pki),
    )
    .await;
    let c = mcp(&with.url("/mcp"), http(&pki, None)).await;
    assert_reaches_cmdb(&c).await;

    let health = health_of(&without, &pki).await;
    let check = &health["checks"]["downstream:cmdb"];
    assert_eq!(check["status"], "degraded", "{health}");
    let message = check["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("requires a client certificate") && message.contains("client_cert_file"),
        "{health}"
    );
    let c = mcp(&without.url("/mcp"), http(&pki, None)).await;
    let tools = c.list_all_tools().await.unwrap();
    assert!(!tools.iter().any(|t| t.name == "cmdb_getHost"));
}

/// Master's health message for its one downstream, once it has tried to connect.
async fn downstream_message(master: &TestService, pki: &Pki) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = health_of(master, pki).await;
        let check = &health["checks"]["downstream:cmdb"];
        if let Some(m) = check["message"].as_str()
            && m != "down: not connected yet"
        {
            assert_eq!(check["status"], "degraded", "{health}");
            return m.to_owned();
        }
        assert!(Instant::now() < deadline, "no connect attempt: {health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_says_what_to_fix_when_a_tls_downstream_does_not_connect() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let tls_cmdb = start_cmdb(tls_server(&pki)).await;
    let plain_cmdb = start_cmdb(server_config()).await;
    let https_url = tls_cmdb.url("/mcp");
    let plain_url = plain_cmdb.url("/mcp");
    for (url, server, expected) in [
        // Master does not trust the CA that signed the service's certificate.
        (
            https_url.clone(),
            ServerConfig {
                tls_ca_file: None,
                ..tls_server(&pki)
            },
            "not trusted: set the downstream's ca_file",
        ),
        // https:// to a service that serves plain HTTP.
        (
            plain_url.replacen("http://", "https://", 1),
            tls_server(&pki),
            "does the service serve HTTPS",
        ),
        // http:// to a service that serves HTTPS.
        (
            https_url.replacen("https://", "http://", 1),
            tls_server(&pki),
            "serves HTTPS: use an https:// url",
        ),
    ] {
        let master = start_master(&downstream("cmdb", None, "http", &url), server).await;
        let message = downstream_message(&master, &pki).await;
        assert!(message.contains(expected), "{url}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_certificate_names_the_caller_in_policy_rules() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.issue("ops-bot", &["ops-bot"]);
    let cmdb = start_cmdb(server_config()).await;
    let tokens = tokens_file(dir.path(), &[("alice", &[], "alice-token-0123456789")]);
    let master = start_master(
        &format!(
            "{}[[master.policy.rule]]\ntools = [\"cmdb_getHost\"]\nidentities = [\"ops-bot\"]\naction = \"deny\"\n",
            downstream("cmdb", None, "http", &cmdb.url("/mcp"))
        ),
        ServerConfig {
            auth_tokens_file: Some(tokens),
            ..mutual(&pki, ClientAuth::Optional)
        },
    )
    .await;
    // Neither a token nor a certificate: 401.
    let r = http(&pki, None)
        .post(master.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The certificate alone is the caller `ops-bot`, whom the rule names: the denied tool is
    // neither listed nor callable for it.
    let bot = mcp(&master.url("/mcp"), http(&pki, Some("ops-bot"))).await;
    wait_for_tool(&bot, "cmdb_listHosts").await;
    let listed = bot.list_all_tools().await.unwrap();
    assert!(!listed.iter().any(|t| t.name == "cmdb_getHost"));
    let e = bot
        .call_tool(mcp_test_support::call(
            "cmdb_getHost",
            json!({"name": "aicrusher"}),
        ))
        .await
        .expect_err("denied to ops-bot");
    assert!(e.to_string().contains("unknown tool"), "{e}");
    let r = tool(&bot, "cmdb_listHosts", json!({})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));

    // Alice's token (no certificate) is not denied.
    let alice = mcp(
        &master.url("/mcp"),
        client_tls(&pki, None)
            .builder()
            .unwrap()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    "Bearer alice-token-0123456789".parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
    )
    .await;
    let r = tool(&alice, "cmdb_getHost", json!({"name": "aicrusher"})).await;
    assert_eq!(structured(&r)["host"]["name"], "aicrusher", "{}", text(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shipped_openssl_script_makes_certificates_the_suite_accepts() {
    if !tool_available("openssl", "version") {
        skip("openssl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), dir.path());
    let f = |name: &str| Some(dir.path().join(name));
    // A service requiring client certificates, serving the script's server certificate.
    let cmdb = start_cmdb(ServerConfig {
        tls_cert_file: f("server.pem"),
        tls_key_file: f("server.key"),
        tls_client_ca_file: f("ca.pem"),
        tls_client_auth: ClientAuth::Required,
        ..server_config()
    })
    .await;
    // Master presenting the script's master certificate, trusting its CA.
    let master = start_master(
        &downstream("cmdb", None, "http", &cmdb.url("/mcp")),
        ServerConfig {
            tls_ca_file: f("ca.pem"),
            tls_client_cert_file: f("master.pem"),
            tls_client_key_file: f("master.key"),
            ..server_config()
        },
    )
    .await;
    let c = mcp_test_support::client(&master.url("/mcp"), None).await;
    assert_reaches_cmdb(&c).await;
    // The probe certificate (health checks, Prometheus) is accepted as a client too.
    let probe = ClientTls {
        ca_file: f("ca.pem"),
        cert_file: f("probe.pem"),
        key_file: f("probe.key"),
    };
    let r = probe
        .builder()
        .unwrap()
        .build()
        .unwrap()
        .get(cmdb.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The certificate a fresh TLS connection to `addr` is served, as DER.
async fn served_certificate(addr: std::net::SocketAddr, pki: &Pki) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.path("ca.pem")).unwrap();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn pem_der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).unwrap();
    let c: rustls::pki_types::CertificateDer<'_> =
        rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    c.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    for f in ["server.pem", "server.key"] {
        std::fs::copy(pki.path(f), served.join(f)).unwrap();
    }
    let cmdb = start_cmdb(ServerConfig {
        tls_cert_file: Some(served.join("server.pem")),
        tls_key_file: Some(served.join("server.key")),
        ..server_config()
    })
    .await;
    let addr = cmdb.running.as_ref().unwrap().local_addr();
    assert_eq!(
        served_certificate(addr, &pki).await,
        pem_der(&pki.path("server.pem"))
    );
    // A client that keeps its connection is not disturbed by the renewal.
    let kept = http(&pki, None);
    assert_eq!(
        kept.get(cmdb.url("/health")).send().await.unwrap().status(),
        200
    );

    // Renewal the way cert-manager or certbot does it: new files moved into place.
    pki.issue("renewed", &["localhost", "127.0.0.1"]);
    for (from, to) in [("renewed.pem", "server.pem"), ("renewed.key", "server.key")] {
        let tmp = served.join(format!("{to}.tmp"));
        std::fs::copy(pki.path(from), &tmp).unwrap();
        std::fs::rename(&tmp, served.join(to)).unwrap();
    }
    assert_eq!(
        served_certificate(addr, &pki).await,
        pem_der(&pki.path("renewed.pem")),
        "the next handshake serves the renewed certificate"
    );
    assert_eq!(
        kept.get(cmdb.url("/health")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http(&pki, None)
            .get(cmdb.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_min_version_1_3_refuses_a_tls_1_2_client() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let cmdb = start_cmdb(ServerConfig {
        tls_min_version: TlsVersion::V1_3,
        ..tls_server(&pki)
    })
    .await;
    let client = |v: reqwest::tls::Version| {
        client_tls(&pki, None)
            .builder()
            .unwrap()
            .tls_version_max(v)
            .build()
            .unwrap()
    };
    let old = client(reqwest::tls::Version::TLS_1_2)
        .get(cmdb.url("/health"))
        .send()
        .await;
    assert!(old.is_err(), "TLS 1.2 must be refused: {old:?}");
    let new = client(reqwest::tls::Version::TLS_1_3)
        .get(cmdb.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tls_files_stop_the_start_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let csv = dir.path().join("cmdb.csv");
    std::fs::write(&csv, mcp_cmdb::SAMPLE_CSV).unwrap();
    let doc = mcp_runtime::ConfigDoc::from_str(
        &format!("[cmdb]\ncsv_path = {:?}\n", csv.display().to_string()),
        "t",
    )
    .unwrap();
    for (server, expected) in [
        (
            ServerConfig {
                tls_cert_file: Some(junk.clone()),
                ..tls_server(&pki)
            },
            "tls_cert_file",
        ),
        (
            ServerConfig {
                tls_key_file: Some(pki.path("ca.pem")),
                ..tls_server(&pki)
            },
            "tls_key_file",
        ),
        (
            ServerConfig {
                tls_client_ca_file: Some(junk.clone()),
                ..mutual(&pki, ClientAuth::Required)
            },
            "tls_client_ca_file",
        ),
    ] {
        let e = mcp_runtime::start::<mcp_cmdb::Cmdb>(&doc, server, Default::default())
            .await
            .expect_err("bad TLS files must stop the start");
        assert!(e.to_string().contains(expected), "{expected}: {e}");
    }
    // Master checks its downstreams' client files at start-up too.
    let doc = mcp_runtime::ConfigDoc::from_str(
        &format!(
            "[master]\nseed_env = false\naudit_db = {:?}\n{}ca_file = {:?}\n",
            dir.path().join("a.sqlite").display().to_string(),
            downstream("cmdb", None, "http", "https://127.0.0.1:1/mcp"),
            junk.display().to_string()
        ),
        "t",
    )
    .unwrap();
    let e = mcp_runtime::start::<mcp_master::Master>(&doc, server_config(), Default::default())
        .await
        .expect_err("a bad downstream CA must stop master");
    assert!(e.to_string().contains("ca_file"), "{e}");
    // And with require_tls, a plain-HTTP downstream.
    let doc = mcp_runtime::ConfigDoc::from_str(
        &format!(
            "[master]\nseed_env = false\nrequire_tls = true\naudit_db = {:?}\n{}",
            dir.path().join("b.sqlite").display().to_string(),
            downstream("cmdb", None, "http", "http://127.0.0.1:1/mcp"),
        ),
        "t",
    )
    .unwrap();
    let e = mcp_runtime::start::<mcp_master::Master>(&doc, server_config(), Default::default())
        .await
        .expect_err("require_tls must refuse http://");
    assert!(e.to_string().contains("require_tls"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_scrapes_an_https_target_with_the_shipped_job() {
    if !tool_available("prometheus", "--version") {
        skip("prometheus (Debian package prometheus) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    pki.issue("probe", &["probe"]);
    // A service requiring client certificates: Prometheus presents the shipped job's.
    let cmdb = start_cmdb(mutual(&pki, ClientAuth::Required)).await;
    // The shipped HTTPS job, pointed at this CMDB and this CA, scraping every second.
    let addr = cmdb.url("").trim_start_matches("https://").to_owned();
    let cfg = shipped_prometheus_config("prometheus-tls.yml")
        .replace(
            "/etc/prometheus/tls/",
            &format!("{}/", dir.path().display()),
        )
        .replace("cmdb:8012", &addr);
    assert!(cfg.contains(&addr), "the shipped job must list cmdb:8012");
    let prom = Prometheus::start(dir.path(), &cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prom
            .query(&format!("up{{instance=\"{addr}\"}}"))
            .await
            .unwrap_or_default();
        let scraped = prom
            .query(&format!(
                "scrape_samples_scraped{{instance=\"{addr}\"}} > 0"
            ))
            .await
            .unwrap_or_default();
        if up.iter().any(|s| s["value"][1] == "1") && !scraped.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the HTTPS target: up={up:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_console_cookie_is_secure_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let master = start_master(
        "",
        ServerConfig {
            anonymous_roles: vec!["approver".into()],
            ..tls_server(&pki)
        },
    )
    .await;
    let r = http(&pki, None)
        .get(master.url("/ui/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}
