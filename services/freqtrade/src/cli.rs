//! The informational Freqtrade subcommands: an allow-list of subcommands and options, argv only (no
//! shell), a timeout that kills the process, capped output, and secrets redacted from `show-config`.

use crate::error::FreqtradeError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Subcommands that only read and print.
pub const SUBCOMMANDS: &[&str] = &[
    "--version",
    "list-exchanges",
    "list-timeframes",
    "list-strategies",
    "list-hyperoptloss",
    "list-freqaimodels",
    "list-data",
    "show-config",
];

/// Options allowed after the subcommand; those marked `true` take a value.
const OPTIONS: &[(&str, bool)] = &[
    ("-1", false),
    ("--one-column", false),
    ("--print-json", false),
    ("-a", false),
    ("--all", false),
    ("--no-color", false),
    ("--recursive-strategy-search", false),
    ("--show-timerange", false),
    ("-c", true),
    ("--config", true),
    ("--userdir", true),
    ("--user-data-dir", true),
    ("--strategy-path", true),
    ("--exchange", true),
    ("--trading-mode", true),
    ("--timeframe", true),
    ("-d", true),
    ("--datadir", true),
];

/// The argv (after the program) for an allowed call, or why it is refused.
pub fn argv(subcommand: &str, args: &[String]) -> Result<Vec<String>, FreqtradeError> {
    let sub = if subcommand == "version" {
        "--version"
    } else {
        subcommand
    };
    if !SUBCOMMANDS.contains(&sub) {
        return Err(FreqtradeError::Refused(format!(
            "`{subcommand}` is not an informational subcommand; allowed: {} (trading, backtesting, download and webserver commands are never run)",
            SUBCOMMANDS.join(", ")
        )));
    }
    let mut out = vec![sub.to_owned()];
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (a.as_str(), None),
        };
        let Some((_, takes_value)) = OPTIONS.iter().find(|(o, _)| *o == name) else {
            return Err(FreqtradeError::Refused(format!(
                "option `{a}` is not allowed here; allowed: {}",
                OPTIONS
                    .iter()
                    .map(|(o, _)| *o)
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        };
        out.push(a.clone());
        if *takes_value && inline.is_none() {
            let v = args
                .get(i + 1)
                .ok_or_else(|| FreqtradeError::Refused(format!("option `{a}` needs a value")))?;
            if v.starts_with('-') {
                return Err(FreqtradeError::Refused(format!(
                    "option `{a}` needs a value, not `{v}`"
                )));
            }
            out.push(v.clone());
            i += 1;
        }
        i += 1;
    }
    Ok(out)
}

/// The freqtrade executable: the configured one, else `freqtrade` on PATH.
pub fn find(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return p.is_file().then(|| p.to_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("freqtrade"))
            .find(|p| p.is_file())
    })
}

/// Masks values of secret-looking keys in command output (`"secret": "…"`, `key: …`).
pub fn redact(text: &str) -> String {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(?i)("?[\w.-]*(?:secret|password|key|token|passphrase|uid)[\w.-]*"?\s*[:=]\s*)("[^"]*"|[^\s,}]+)"#)
            .unwrap_or_else(|_| unreachable!())
    });
    let own = RE.replace_all(text, "${1}\"[redacted]\"");
    mcp_runtime::redact::text(&own).into_owned()
}

/// Runs the program with a deadline; returns exit code, output (capped, redacted) and duration.
pub async fn run(
    bin: &Path,
    argv: &[String],
    timeout: Duration,
    cap: usize,
) -> Result<Value, FreqtradeError> {
    let started = Instant::now();
    let child = tokio::process::Command::new(bin)
        .args(argv)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| FreqtradeError::Cli(format!("cannot start {}: {e}", bin.display())))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| FreqtradeError::Cli(format!("freqtrade failed: {e}")))?,
        Err(_) => {
            return Err(FreqtradeError::Cli(format!(
                "freqtrade {} did not finish in {} s and was killed",
                argv.join(" "),
                timeout.as_secs()
            )));
        }
    };
    let (stdout, out_cut) =
        mcp_runtime::output::truncate_text(&redact(&String::from_utf8_lossy(&out.stdout)), cap);
    let (stderr, err_cut) =
        mcp_runtime::output::truncate_text(&redact(&String::from_utf8_lossy(&out.stderr)), cap / 4);
    Ok(json!({
        "command": format!("freqtrade {}", argv.join(" ")),
        "exit_code": out.status.code(),
        "stdout": stdout,
        "stderr": stderr,
        "truncated": out_cut || err_cut,
        "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_informational_subcommands_and_known_options() {
        assert_eq!(argv("version", &[]).unwrap(), ["--version"]);
        assert_eq!(
            argv(
                "list-exchanges",
                &["-1".into(), "--config".into(), "c.json".into()]
            )
            .unwrap(),
            ["list-exchanges", "-1", "--config", "c.json"]
        );
        for bad in [
            "trade",
            "webserver",
            "download-data",
            "backtesting",
            "hyperopt",
            "create-userdir",
            "; rm -rf /",
        ] {
            assert!(argv(bad, &[]).is_err(), "{bad}");
        }
        assert!(argv("show-config", &["--show-sensitive".into()]).is_err());
        assert!(argv("list-data", &["--logfile".into(), "/tmp/x".into()]).is_err());
        assert!(argv("list-data", &["--datadir".into()]).is_err());
        assert_eq!(
            redact(r#""secret": "abc123", "key": "k", "name": "binance""#),
            r#""secret": "[redacted]", "key": "[redacted]", "name": "binance""#
        );
    }
}
