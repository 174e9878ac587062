//! The `mcp-linux-cli` binary as an operator runs it: a bad config value exits 64 naming the key,
//! and `backup DIR` copies the file backups `writeFile` made, pair by pair, with a manifest.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-linux-cli");

#[test]
fn bad_config_exits_64_naming_the_key() {
    let out = Command::new(BIN)
        .env("MCP_LINUX_MAX_TIMEOUT_SECS", "\"long\"")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`linux.max_timeout_secs`") && stderr.contains("expected u64"),
        "{stderr}"
    );
}

#[test]
fn backup_copies_the_file_backups() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("data/linux-cli/backups");
    std::fs::create_dir_all(&backups).unwrap();
    let data = b"old contents";
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(data))
    };
    std::fs::write(backups.join("1-ab-0.bin"), data).unwrap();
    std::fs::write(
        backups.join("1-ab-0.json"),
        format!(
            r#"{{"id":"1-ab-0","path":"/w/a.txt","size":{},"sha256":"{digest}","mode":"644","created":1}}"#,
            data.len()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["backup", "bk"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("linux-cli/backups: 2 file(s)"), "{stdout}");
    assert_eq!(
        std::fs::read(dir.path().join("bk/linux-cli/backups/1-ab-0.bin")).unwrap(),
        data
    );
    assert!(dir.path().join("bk/manifest.json").exists());
}
