//! `sshExecuteCommand`: russh client with strict known_hosts checking and key auth. The remote
//! command is validated before any connection is made; a timeout sends KILL to the remote command
//! and closes the session.

use crate::error::LinuxError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, check_known_hosts_path, load_secret_key};
use russh::{ChannelMsg, Disconnect, Sig};

use crate::exec::{Capped, ExecOutput};

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name the caller used.
    pub host: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub key_file: PathBuf,
}

struct Verifier {
    known_hosts: PathBuf,
    names: Vec<String>,
    port: u16,
    problem: Arc<Mutex<Option<String>>>,
}

impl Verifier {
    /// Records why the host key was refused, for the error the caller sees.
    fn problem_is(&self, why: String) {
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = presented else {
            self.problem_is("the server presented a host certificate; only plain host keys listed in known_hosts are accepted".to_owned());
            return Ok(false);
        };
        let fingerprint = key.fingerprint(Default::default());
        let mut found = false;
        for name in &self.names {
            match check_known_hosts_path(name, self.port, key, &self.known_hosts) {
                Ok(true) => found = true,
                Ok(false) => {}
                Err(russh::keys::Error::KeyChanged { line }) => {
                    self.problem_is(format!(
                        "HOST KEY MISMATCH for {name}:{}: the server presented {fingerprint}, which differs from line {line} of {}; refusing to connect (possible man-in-the-middle)",
                        self.port,
                        self.known_hosts.display()
                    ));
                    return Ok(false);
                }
                Err(e) => {
                    self.problem_is(format!(
                        "cannot read known_hosts file {}: {e}",
                        self.known_hosts.display()
                    ));
                    return Ok(false);
                }
            }
        }
        if !found {
            self.problem_is(format!(
                "unknown host key for {} port {} ({fingerprint}): it is not in {}; verify the fingerprint and add it (e.g. `ssh-keyscan -p {} {}`)",
                self.names.join(" / "),
                self.port,
                self.known_hosts.display(),
                self.port,
                self.names.last().cloned().unwrap_or_default()
            ));
        }
        Ok(found)
    }
}

/// Marker of the pid line the wrapper prints first on stderr.
const PGID_MARK: &str = "\\036MCP-PGID:";
const PGID_BYTES: &[u8] = b"\x1eMCP-PGID:";

fn remote_pgid(stderr: &[u8]) -> Option<u32> {
    let rest = stderr.strip_prefix(PGID_BYTES)?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn strip_pgid(stderr: &mut Vec<u8>) {
    if let Some(rest) = stderr.strip_prefix(PGID_BYTES)
        && let Some(end) = rest.iter().position(|b| *b == b'\n')
    {
        stderr.drain(..PGID_BYTES.len() + end + 1);
    }
}

/// Runs `command` on `target`, with a deadline and output caps.
pub async fn execute(
    target: &Target,
    known_hosts: &Path,
    command: &str,
    connect_timeout: Duration,
    timeout: Duration,
    cap: usize,
) -> Result<ExecOutput, LinuxError> {
    let started = Instant::now();
    let key = load_secret_key(&target.key_file, None).map_err(|e| {
        LinuxError::Ssh(format!(
            "cannot load the private key {}: {e}",
            target.key_file.display()
        ))
    })?;
    let problem = Arc::new(Mutex::new(None));
    let verifier = Verifier {
        known_hosts: known_hosts.to_path_buf(),
        names: if target.host == target.address {
            vec![target.address.clone()]
        } else {
            vec![target.host.clone(), target.address.clone()]
        },
        port: target.port,
        problem: problem.clone(),
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(timeout + connect_timeout),
        nodelay: true,
        ..Default::default()
    });
    let addr = (target.address.as_str(), target.port);
    let connected =
        tokio::time::timeout(connect_timeout, client::connect(config, addr, verifier)).await;
    let mut session = match connected {
        Err(_) => {
            return Err(LinuxError::Ssh(format!(
                "connecting to {}:{} timed out after {} s",
                target.address,
                target.port,
                connect_timeout.as_secs()
            )));
        }
        Ok(Err(e)) => {
            let why = problem.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(LinuxError::Ssh(why.unwrap_or_else(|| {
                format!("cannot connect to {}:{}: {e}", target.address, target.port)
            })));
        }
        Ok(Ok(s)) => s,
    };
    let hash = session
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    let auth = session
        .authenticate_publickey(
            &target.user,
            PrivateKeyWithHashAlg::new(Arc::new(key), hash),
        )
        .await
        .map_err(|e| LinuxError::Ssh(format!("authentication as {} failed: {e}", target.user)))?;
    if !auth.success() {
        return Err(LinuxError::Ssh(format!(
            "the server refused key {} for user {}",
            target.key_file.display(),
            target.user
        )));
    }
    let mut channel = session
        .channel_open_session()
        .await
        .map_err(|e| LinuxError::Ssh(format!("cannot open a session channel: {e}")))?;
    // The first line reports the remote shell's pid, which leads the session's process group: a
    // timeout kills that group through a second channel. (OpenSSH refuses `signal` requests for root
    // sessions, so the signal alone is not enough.)
    let wrapped = format!("printf '{PGID_MARK}%s\\n' \"$$\" >&2\n{command}");
    channel
        .exec(true, wrapped)
        .await
        .map_err(|e| LinuxError::Ssh(format!("cannot start the command: {e}")))?;
    let mut out = Capped::default();
    let mut err = Capped::default();
    let mut exit_code = None;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut timed_out = false;
    loop {
        match tokio::time::timeout_at(deadline, channel.wait()).await {
            Err(_) => {
                timed_out = true;
                let _ = channel.signal(Sig::KILL).await;
                if let Some(pgid) = remote_pgid(&err.data)
                    && let Ok(killer) = session.channel_open_session().await
                {
                    let _ = killer
                        .exec(
                            true,
                            format!("kill -9 -- -{pgid} 2>/dev/null; kill -9 {pgid} 2>/dev/null"),
                        )
                        .await;
                    let mut killer = killer;
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while killer.wait().await.is_some() {}
                    })
                    .await;
                }
                let _ = channel.close().await;
                break;
            }
            Ok(None) => break,
            Ok(Some(msg)) => match msg {
                ChannelMsg::Data { data } => out.push(&data, cap),
                ChannelMsg::ExtendedData { data, .. } => err.push(&data, cap),
                ChannelMsg::ExitStatus { exit_status } => {
                    exit_code = i32::try_from(exit_status).ok();
                }
                _ => {}
            },
        }
    }
    let _ = session
        .disconnect(Disconnect::ByApplication, "", "en")
        .await;
    strip_pgid(&mut err.data);
    Ok(ExecOutput::assemble(
        out,
        err,
        exit_code,
        timed_out.then_some((
            timeout,
            "the remote command was sent KILL and the session closed",
        )),
        started,
    ))
}
