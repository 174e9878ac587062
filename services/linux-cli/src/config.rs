//! The `[linux]` config section and its `[linux.ssh]` table.

use std::path::PathBuf;

use mcp_security::PolicyConfig;
use serde::{Deserialize, Serialize};

/// One SSH host configured locally (takes precedence over the CMDB).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshHost {
    pub name: String,
    pub address: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    pub user: String,
    /// Private key file; default: `<key_dir>/<name>_<user>_id_ed25519` or `_id_rsa`, else `ssh.key_file`.
    pub key_file: Option<PathBuf>,
}

fn default_ssh_port() -> u16 {
    22
}

/// The `[linux.ssh]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    /// known_hosts file; hosts not in it are refused (never learned silently).
    pub known_hosts: PathBuf,
    /// Directory with per-host keys named `<host>_<user>_id_rsa` / `_id_ed25519` (the seed's layout).
    pub key_dir: PathBuf,
    /// Key used when no per-host key exists.
    pub key_file: Option<PathBuf>,
    /// CMDB MCP endpoint for host lookup (`getHost`); empty disables the lookup.
    pub cmdb_url: String,
    /// Bearer token file for the CMDB, if it requires auth.
    pub cmdb_token_file: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    /// Hosts configured here, looked up before the CMDB.
    pub host: Vec<SshHost>,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            known_hosts: PathBuf::from("secrets/known_hosts"),
            key_dir: PathBuf::from("secrets"),
            key_file: None,
            cmdb_url: "http://127.0.0.1:8012/mcp".to_owned(),
            cmdb_token_file: None,
            connect_timeout_secs: 10,
            host: Vec::new(),
        }
    }
}

/// The `[linux]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinuxConfig {
    /// Directories commands may run in and file tools may touch.
    pub allowed_roots: Vec<PathBuf>,
    /// Extra deny globs for sensitive files (added to the built-in list).
    pub deny_paths: Vec<String>,
    /// Where writeFile keeps previous versions (outside the roots).
    pub backup_dir: PathBuf,
    pub default_timeout_secs: u64,
    /// Keep below `server.tool_timeout_secs`.
    pub max_timeout_secs: u64,
    /// Cap per output stream (stdout, stderr) in bytes.
    pub max_output_bytes: usize,
    pub max_read_bytes: u64,
    pub max_write_bytes: usize,
    pub max_list_entries: usize,
    /// Command policy: categories needing approval or refused, extra commands, blocked patterns.
    pub policy: PolicyConfig,
    pub ssh: SshConfig,
}

impl Default for LinuxConfig {
    fn default() -> Self {
        Self {
            allowed_roots: vec![PathBuf::from("data/linux-cli/workspace")],
            deny_paths: Vec::new(),
            backup_dir: PathBuf::from("data/linux-cli/backups"),
            default_timeout_secs: 30,
            max_timeout_secs: 100,
            max_output_bytes: 64 * 1024,
            max_read_bytes: 1024 * 1024,
            max_write_bytes: 10 * 1024 * 1024,
            max_list_entries: 1000,
            policy: PolicyConfig::default(),
            ssh: SshConfig::default(),
        }
    }
}
