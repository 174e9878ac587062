//! `mcp-stack` as a child process on free ports, in a directory of the test's own.

#![allow(dead_code)] // Each test binary uses its own part of these helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_mcp-stack");

/// The port of every service of one stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) master: u16,
    pub(crate) linux: u16,
    pub(crate) cmdb: u16,
    pub(crate) secrets: u16,
    pub(crate) k8s: u16,
    pub(crate) ai_models: u16,
    pub(crate) freqtrade: u16,
}

impl Ports {
    pub(crate) fn free() -> Self {
        // Seven distinct ports: one free_port() after another can return the same port twice.
        let [master, linux, cmdb, secrets, k8s, ai_models, freqtrade] =
            <[u16; 7]>::try_from(mcp_test_support::free_ports(7)).expect("seven ports");
        Self {
            master,
            linux,
            cmdb,
            secrets,
            k8s,
            ai_models,
            freqtrade,
        }
    }

    /// `mcp-stack` in `cwd` on these ports, without the Freqtrade clone (no network in tests).
    pub(crate) fn command(&self, cwd: &Path) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(cwd)
            .env("MCP_PORTS_MASTER", self.master.to_string())
            .env("MCP_PORTS_LINUX", self.linux.to_string())
            .env("MCP_PORTS_CMDB", self.cmdb.to_string())
            .env("MCP_PORTS_SECRETS", self.secrets.to_string())
            .env("MCP_PORTS_K8S", self.k8s.to_string())
            .env("MCP_PORTS_AI_MODELS", self.ai_models.to_string())
            .env("MCP_PORTS_FREQTRADE", self.freqtrade.to_string())
            .env("MCP_FREQTRADE_REPO_URL", "")
            // No cluster and no LLM keys of the machine running the tests.
            .env("KUBECONFIG", cwd.join("no-kubeconfig"))
            .env_remove("RUST_LOG");
        c
    }

    pub(crate) fn master_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.master)
    }
}

/// A running stack, killed when dropped. Its standard error (the first screen) and standard
/// output (the JSON log of every service) go to files in its directory.
pub(crate) struct Stack {
    pub(crate) child: Child,
    pub(crate) ports: Ports,
    pub(crate) stderr: PathBuf,
    pub(crate) stdout: PathBuf,
}

impl Stack {
    /// Starts the stack in `cwd` with extra environment, and waits until master is ready and the
    /// first screen is printed.
    pub(crate) fn start(cwd: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_probed(cwd, env, |ports| {
            raw_http::get_status(&ports.master_url("/ready")).is_ok_and(|code| code == 200)
        })
    }

    /// [`Stack::start`] with the probe that says master is ready (for a stack serving HTTPS).
    pub(crate) fn start_probed(
        cwd: &Path,
        env: &[(&str, &str)],
        ready: impl Fn(&Ports) -> bool,
    ) -> Self {
        let ports = Ports::free();
        let stderr = cwd.join("stack.stderr");
        let stdout = cwd.join("stack.stdout");
        let mut cmd = ports.command(cwd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stack = Self {
            child,
            ports,
            stderr,
            stdout,
        };
        // Master answers /ready once it has started, after giving every service one chance to
        // connect; the first screen follows every service's health check. Each wait says what the
        // stack printed and logged when it times out.
        stack.wait(|| ready(&ports), "master's /ready answering 200");
        stack.wait(
            || stack.first_screen().contains("mcp-stack is ready"),
            "the first screen",
        );
        stack
    }

    /// Polls `done` for 60 s at most; a timeout reports whether the stack still runs, its standard
    /// error and the tail of its log.
    fn wait(&self, mut done: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen in 60 s (stack process {}); standard error so far:\n{}\nlog tail:\n{}",
                if std::process::Command::new("kill")
                    .args(["-0", &self.child.id().to_string()])
                    .status()
                    .is_ok_and(|s| s.success())
                {
                    "still running"
                } else {
                    "gone"
                },
                self.first_screen(),
                std::fs::read_to_string(&self.stdout)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the stack printed on standard error so far.
    pub(crate) fn first_screen(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` until it holds (30 s at most).
pub(crate) fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `url` answers 200.
pub(crate) fn wait_ready(url: &str) {
    wait_for(
        || raw_http::get_status(url).is_ok_and(|code| code == 200),
        &format!("{url} ready"),
    );
}

pub(crate) mod raw_http {
    //! A tiny blocking GET over std, so tests need no async runtime for probes.
    use std::io::{Read, Write};

    pub(crate) fn get_status(url: &str) -> std::io::Result<u16> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (authority, path) = rest
            .split_once('/')
            .map(|(a, p)| (a, format!("/{p}")))
            .unwrap_or((rest, "/".into()));
        let mut s = std::net::TcpStream::connect(authority)?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    }
}
