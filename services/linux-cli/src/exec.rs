//! Running a process with a deadline and bounded output. The child leads its own process group, so a
//! timeout (or the end of the call) kills everything it started, background jobs included.

use crate::error::LinuxError;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// What ran and what it produced.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExecOutput {
    /// Exit code; absent when killed by a signal or on timeout.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// True when stdout or stderr was cut at the output cap (a marker shows where).
    pub truncated: bool,
    /// True when the deadline passed and the process group was killed.
    pub timed_out: bool,
    pub duration_ms: u64,
}

impl ExecOutput {
    /// The result of a command that ended (`timeout: None`) or was killed after `timeout`, in which
    /// case `killed` says how and stderr ends with that note.
    pub(crate) fn assemble(
        stdout: Capped,
        stderr: Capped,
        exit_code: Option<i32>,
        timeout: Option<(Duration, &str)>,
        started: Instant,
    ) -> Self {
        let (stdout, t1) = stdout.finish();
        let (mut stderr, t2) = stderr.finish();
        if let Some((after, killed)) = timeout {
            stderr.push_str(&format!(
                "\n[timed out after {} s; {killed}]",
                after.as_secs_f64()
            ));
        }
        Self {
            exit_code: if timeout.is_some() { None } else { exit_code },
            stdout,
            stderr,
            truncated: t1 || t2,
            timed_out: timeout.is_some(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Keeps the first `cap` bytes of a stream and counts the rest.
#[derive(Default)]
pub(crate) struct Capped {
    pub(crate) data: Vec<u8>,
    pub(crate) dropped: u64,
}

impl Capped {
    pub(crate) fn push(&mut self, chunk: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.data.len());
        let take = room.min(chunk.len());
        self.data.extend_from_slice(&chunk[..take]);
        self.dropped += (chunk.len() - take) as u64;
    }

    /// Text with a visible marker when bytes were dropped.
    pub(crate) fn finish(self) -> (String, bool) {
        let mut s = String::from_utf8_lossy(&self.data).into_owned();
        if self.dropped > 0 {
            s.push_str(&format!(
                "\n[... output truncated: {} more bytes not shown ...]",
                self.dropped
            ));
        }
        (s, self.dropped > 0)
    }
}

async fn drain(mut r: impl AsyncRead + Unpin, cap: usize) -> Capped {
    let mut out = Capped::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.push(&buf[..n], cap),
        }
    }
}

/// Runs `argv` (no shell unless argv names one) in `cwd` with a deadline and output caps.
pub async fn run(
    argv: &[String],
    cwd: &Path,
    timeout: Duration,
    cap: usize,
) -> Result<ExecOutput, LinuxError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| LinuxError::invalid("empty command"))?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("BASH_ENV")
        .env_remove("ENV")
        .env("PAGER", "cat")
        .env("GIT_PAGER", "cat")
        .env("GIT_TERMINAL_PROMPT", "0")
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LinuxError::Exec(format!("cannot start `{program}`: {e}")))?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let out = tokio::spawn(drain(
        child
            .stdout
            .take()
            .ok_or_else(|| LinuxError::Exec("no stdout".into()))?,
        cap,
    ));
    let err = tokio::spawn(drain(
        child
            .stderr
            .take()
            .ok_or_else(|| LinuxError::Exec("no stderr".into()))?,
        cap,
    ));
    let kill_group = || {
        if let Some(pg) = pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
    };
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (status.ok(), false),
        Err(_) => {
            kill_group();
            (child.wait().await.ok(), true)
        }
    };
    // Whatever the command left running in its group (`cmd &`) ends with the call.
    kill_group();
    let grace = Duration::from_secs(2);
    let stdout = tokio::time::timeout(grace, out)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = tokio::time::timeout(grace, err)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Ok(ExecOutput::assemble(
        stdout,
        stderr,
        status.and_then(|s| s.code()),
        timed_out.then_some((timeout, "the process group was killed")),
        started,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str) -> Vec<String> {
        vec!["/bin/bash".into(), "-c".into(), cmd.into()]
    }

    #[tokio::test]
    async fn exit_codes_output_and_caps() {
        let dir = std::env::temp_dir();
        let r = run(
            &sh("echo out; echo err >&2; exit 3"),
            &dir,
            Duration::from_secs(10),
            1024,
        )
        .await
        .unwrap();
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.stdout, "out\n");
        assert_eq!(r.stderr, "err\n");
        let r = run(
            &sh("head -c 100000 /dev/zero | tr '\\0' x"),
            &dir,
            Duration::from_secs(10),
            1000,
        )
        .await
        .unwrap();
        assert!(r.truncated);
        assert!(r.stdout.starts_with(&"x".repeat(1000)));
        assert!(
            r.stdout.contains("99000 more bytes"),
            "{}",
            &r.stdout[1000..]
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("still-running");
        let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let r = run(&sh(&cmd), dir.path(), Duration::from_millis(300), 1024)
            .await
            .unwrap();
        assert!(r.timed_out);
        assert_eq!(r.exit_code, None);
        assert!(r.stderr.contains("timed out"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            !marker.exists(),
            "a background job of the timed-out command survived"
        );
    }
}
