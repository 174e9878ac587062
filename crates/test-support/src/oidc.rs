//! A real OpenID provider for tests: `oidc-provider` (a certified OpenID Connect implementation)
//! run with Node 22 by npx on loopback, from the script `oidc/provider.mjs` beside this file.
//! Clients `machine` (roles `admin`), `reader`, `opaque-machine` (opaque tokens), `mcp-master`
//! (client credentials and token exchange) and `mcp-resource` (introspection); users log in with
//! any name through its development login form (`alice` holds `approver`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PROVIDER: &str = include_str!("oidc/provider.mjs");

/// The provider, pinned; `.ci/run` fetches it into the npx cache.
const OIDC_PROVIDER: &str = "oidc-provider@9.13.3";

/// The npx directory holding Node 22 and the provider (`…/node_modules`), resolved once.
async fn provider_modules() -> PathBuf {
    let out = tokio::process::Command::new("npx")
        .args(["-y", "-p", "node@22", "-p", OIDC_PROVIDER, "sh", "-c"])
        .arg(r#"dirname "$(dirname "$(command -v node)")""#)
        .output()
        .await
        .expect("run npx");
    assert!(
        out.status.success(),
        "npx could not fetch {OIDC_PROVIDER}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A running `oidc-provider` on loopback (see `oauth/provider.mjs`).
pub struct Idp {
    pub child: tokio::process::Child,
    modules: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
    http: reqwest::Client,
}

impl Idp {
    /// Starts the provider publishing `keys` (comma-separated ids, the first signs); `None` (and a
    /// skip) when npx is missing.
    pub async fn start(keys: &str) -> Option<Self> {
        let npx = std::process::Command::new("npx")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !npx {
            crate::skip("npx is not installed; the OpenID provider (oidc-provider) cannot run");
            return None;
        }
        let modules = provider_modules().await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("provider.mjs"), PROVIDER).expect("write provider script");
        std::os::unix::fs::symlink(&modules, dir.path().join("node_modules"))
            .expect("link node_modules");
        std::fs::create_dir(dir.path().join("keys")).expect("keys dir");
        let port = crate::free_port();
        let child = Self::spawn(&modules, dir.path(), port, keys);
        let idp = Self {
            child,
            modules,
            dir,
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        idp.ready().await;
        Some(idp)
    }

    fn spawn(modules: &Path, dir: &Path, port: u16, keys: &str) -> tokio::process::Child {
        let log = std::fs::File::create(dir.join(format!("provider-{keys}.log"))).expect("log");
        tokio::process::Command::new(modules.join(".bin/node"))
            .arg("provider.mjs")
            .current_dir(dir)
            .env("PORT", port.to_string())
            .env("KEY_DIR", dir.join("keys"))
            .env("KEYS", keys)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("start oidc-provider")
    }

    /// Waits until the provider serves its metadata.
    async fn ready(&self) {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "oidc-provider did not come up: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect()
    }

    /// Stops the provider and starts it again on the same port publishing `keys` (a rotation).
    pub async fn restart(&mut self, keys: &str) {
        self.child.kill().await.expect("stop provider");
        self.child = Self::spawn(&self.modules, self.dir.path(), self.port, keys);
        self.ready().await;
    }

    /// A client-credentials access token for `resource`.
    pub async fn client_credentials(
        &self,
        client: &str,
        secret: &str,
        resource: &str,
        scope: &str,
    ) -> String {
        let r = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", resource),
            ])
            .send()
            .await
            .expect("token request");
        let body: Value = r.json().await.expect("token answer");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {body}"))
            .to_owned()
    }

    /// A JWT with `claims` signed by key `kid` (`stranger`: a key the JWKS never published).
    pub async fn sign(&self, kid: &str, claims: Value) -> String {
        self.http
            .post(format!("{}/test/sign", self.issuer))
            .json(&json!({ "kid": kid, "claims": claims }))
            .send()
            .await
            .expect("sign")
            .text()
            .await
            .expect("signed token")
    }
}

/// Runs the official Python MCP SDK's own OAuth clients (`oidc/sdk_oauth.py`) with `args`:
/// `<mcp-url> user <login> <calls-json>` (authorization code with PKCE through the provider's
/// login form) or `<mcp-url> machine <client-id> <secret-file> <calls-json>` (client
/// credentials). Returns its report: `tools` listed and each call's `is_error`, `text`,
/// `structured`.
pub async fn python_sdk(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/oidc/sdk_oauth.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .await
        .expect("python3");
    assert!(
        out.status.success(),
        "sdk_oauth.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("report")
}
