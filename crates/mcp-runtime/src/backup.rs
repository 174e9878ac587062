//! Backup and restore of the files a service keeps (`mcp-stack backup DIR`, `mcp-master restore DIR`,
//! ...): each service names its data ([`DataFiles`], from [`crate::McpService::data`]) and this
//! module copies it consistently while the service runs, writes a manifest of checksums last, and
//! restores a verified copy only into a stopped service's places.
//!
//! - SQLite stores are copied with SQLite's online backup API in one step (a read transaction: a
//!   consistent snapshot while writers go on in WAL mode), made self-contained (no `-wal` file)
//!   and checked with `PRAGMA integrity_check`.
//! - Whole files (KeePass databases, which their service replaces by rename) are read through one
//!   open handle, so a rename during the copy cannot tear it.
//! - Append-only logs are copied up to their last complete line.
//! - Directories are copied file by file; a service may say which entries are complete (linux-cli's
//!   backups are a data file and, once it is durable, its metadata).
//!
//! A running service holds its data lock ([`DataLock`], an exclusive `flock` the kernel drops when
//! the process dies), so a second process cannot serve the same files and `restore` refuses while
//! the service runs. Restore checks every checksum before it writes anything, moves what it would
//! replace aside instead of deleting it, and writes each file through a temporary name and a rename.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's file name inside a backup directory; written last, so a backup without it is
/// incomplete.
pub const MANIFEST: &str = "manifest.json";
/// The manifest format this build writes and reads.
pub const FORMAT: &str = "mcp-suite-backup/1";

/// Says whether one file of a directory item is complete enough to copy: `(dir, name, bytes)`.
pub type EntryCheck = fn(&Path, &str, &[u8]) -> bool;

/// How an item is copied.
#[derive(Debug, Clone, Copy)]
pub enum DataKind {
    /// A SQLite database (online backup API, integrity-checked).
    Sqlite,
    /// A file replaced whole by rename (read through one handle).
    File,
    /// An append-only log of lines (copied up to the last newline).
    AppendLog,
    /// A directory of files; `complete` skips entries still being written.
    Dir { complete: Option<EntryCheck> },
}

impl DataKind {
    fn label(self) -> &'static str {
        match self {
            DataKind::Sqlite => "sqlite",
            DataKind::File => "file",
            DataKind::AppendLog => "log",
            DataKind::Dir { .. } => "dir",
        }
    }
}

/// One thing a service keeps: a stable name (the manifest's key), where it lives, how to copy it.
#[derive(Debug, Clone)]
pub struct DataItem {
    pub name: String,
    pub path: PathBuf,
    pub kind: DataKind,
}

impl DataItem {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>, kind: DataKind) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            kind,
        }
    }
}

/// What a service keeps: its items and the lock file a running instance holds.
#[derive(Debug, Clone, Default)]
pub struct DataFiles {
    pub lock: Option<PathBuf>,
    pub items: Vec<DataItem>,
}

/// One service's [`DataFiles`], under the service's name.
#[derive(Debug, Clone)]
pub struct DataSet {
    pub service: String,
    pub files: DataFiles,
}

/// Backup and restore failures; each names what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{path} failed SQLite's integrity check: {answer}")]
    Integrity { path: String, answer: String },
    #[error("{0} exists and is not empty; back up into a new directory")]
    NotEmpty(String),
    #[error(
        "{service} is running on this data (lock {lock} is held by another process); stop it first"
    )]
    InUse { service: String, lock: String },
    #[error("{0} has no {MANIFEST}: not a backup, or one that did not finish")]
    NoManifest(String),
    #[error("{path}: {reason}")]
    Manifest { path: String, reason: String },
    #[error("{file} in the backup does not match its checksum in {MANIFEST}; nothing was restored")]
    Checksum { file: String },
    #[error(
        "the backup holds {service}/{name}, which this configuration has no place for; nothing was restored"
    )]
    UnknownItem { service: String, name: String },
    #[error(
        "these would be overwritten: {}; pass --replace to move them aside (nothing is deleted)",
        .0.join(", ")
    )]
    Exists(Vec<String>),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sql(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// The lock a running service holds on its data; released when dropped or when the process dies.
#[derive(Debug)]
pub struct DataLock {
    _file: File,
}

impl DataSet {
    /// Takes this set's lock: `Ok(None)` when it names none or its file cannot be made (a
    /// read-only mount: the service runs without one), [`BackupError::InUse`] when another process
    /// holds it.
    pub fn lock(&self) -> Result<Option<DataLock>, BackupError> {
        let Some(path) = &self.files.lock else {
            return Ok(None);
        };
        let opened = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| {
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
            });
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(message = "Cannot create the data lock; running without it.", path = %path.display(), error = %e);
                return Ok(None);
            }
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(DataLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(BackupError::InUse {
                service: self.service.clone(),
                lock: path.display().to_string(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(io(path)(e)),
        }
    }
}

/// Takes the lock of every set ([`DataSet::lock`]): all of them, or the first refusal.
pub fn lock_all(sets: &[DataSet]) -> Result<Vec<DataLock>, BackupError> {
    Ok(sets
        .iter()
        .map(DataSet::lock)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect())
}

/// One copied file in the manifest: its path inside the backup, size and SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One item in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemEntry {
    pub service: String,
    pub name: String,
    pub kind: String,
    /// Where it was read from (for people; restore writes to the configured place).
    pub source: String,
    pub files: Vec<FileEntry>,
    /// Directory entries left out because they were still being written.
    #[serde(default)]
    pub skipped_in_flight: usize,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Seconds since the Unix epoch when the backup started.
    pub created_unix: u64,
    /// The program and version that wrote it.
    pub by: String,
    pub items: Vec<ItemEntry>,
    /// Items with nothing to copy yet (never written).
    #[serde(default)]
    pub absent: Vec<String>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `path` (owner-only, new file) and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn file_entry(root: &Path, rel: &str) -> Result<FileEntry, BackupError> {
    let path = root.join(rel);
    let bytes = fs::read(&path).map_err(io(&path))?;
    Ok(FileEntry {
        path: rel.to_owned(),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
    })
}

/// `PRAGMA integrity_check` on an open database: `ok` or the first problems it reports.
fn integrity(conn: &Connection, path: &Path) -> Result<(), BackupError> {
    let answer: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sql(path))?;
    if answer == "ok" {
        Ok(())
    } else {
        Err(BackupError::Integrity {
            path: path.display().to_string(),
            answer,
        })
    }
}

/// Checks a SQLite file on disk (opened read-write so a WAL database can be read; nothing is
/// written).
pub fn check_sqlite(path: &Path) -> Result<(), BackupError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(path))?;
    integrity(&conn, path)
}

/// Copies a live SQLite database into `to` (a new file) in one backup step, self-contained.
fn copy_sqlite(from: &Path, to: &Path) -> Result<(), BackupError> {
    let src = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(from))?;
    src.busy_timeout(Duration::from_secs(10))
        .map_err(sql(from))?;
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut dst = Connection::open(to).map_err(sql(to))?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(sql(to))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            // -1: every page in one step, under one read transaction of the source.
            match backup.step(-1).map_err(sql(from))? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    return Err(BackupError::Sqlite {
                        path: from.display().to_string(),
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some("the database stayed locked for 60 s".into()),
                        ),
                    });
                }
            }
        }
    }
    // The copy keeps the source's WAL flag; a backup file stands alone.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sql(to))?;
    integrity(&dst, to)?;
    dst.close().map_err(|(_, e)| sql(to)(e))?;
    Ok(())
}

/// Reads a whole file through one handle (a rename over it during the read does not tear it).
fn read_whole(path: &Path) -> Result<Vec<u8>, BackupError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io(path))?;
    Ok(bytes)
}

/// The regular files under `dir`, as paths relative to it, sorted.
fn walk(dir: &Path) -> Result<Vec<String>, BackupError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        for entry in fs::read_dir(&here).map_err(io(&here))? {
            let entry = entry.map_err(io(&here))?;
            let kind = entry.file_type().map_err(io(&entry.path()))?;
            let name = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(name);
            } else if kind.is_file() {
                out.push(name.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Takes a consistent copy of every item of `sets` into `dir` (new or empty) while the services
/// may be serving, and writes the manifest last.
pub fn backup(sets: &[DataSet], dir: &Path, by: &str) -> Result<Manifest, BackupError> {
    if dir.exists() {
        let mut entries = fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(dir.display().to_string()));
        }
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        created_unix: now_unix(),
        by: by.to_owned(),
        items: Vec::new(),
        absent: Vec::new(),
    };
    for set in sets {
        for item in &set.files.items {
            let key = format!("{}/{}", set.service, item.name);
            if !item.path.exists() {
                manifest.absent.push(key);
                continue;
            }
            let mut entry = ItemEntry {
                service: set.service.clone(),
                name: item.name.clone(),
                kind: item.kind.label().to_owned(),
                source: item.path.display().to_string(),
                files: Vec::new(),
                skipped_in_flight: 0,
            };
            match item.kind {
                DataKind::Sqlite => {
                    copy_sqlite(&item.path, &dir.join(&key))?;
                    entry.files.push(file_entry(dir, &key)?);
                }
                DataKind::File => {
                    write_new(&dir.join(&key), &read_whole(&item.path)?)?;
                    entry.files.push(file_entry(dir, &key)?);
                }
                DataKind::AppendLog => {
                    let bytes = read_whole(&item.path)?;
                    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                    write_new(&dir.join(&key), &bytes[..whole])?;
                    entry.files.push(file_entry(dir, &key)?);
                }
                DataKind::Dir { complete } => {
                    for rel in walk(&item.path)? {
                        let source = item.path.join(&rel);
                        // A file may vanish between the listing and the read (pruned backups).
                        let bytes = match fs::read(&source) {
                            Ok(b) => b,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(io(&source)(e)),
                        };
                        if complete.is_some_and(|ok| !ok(&item.path, &rel, &bytes)) {
                            entry.skipped_in_flight += 1;
                            continue;
                        }
                        let inside = format!("{key}/{rel}");
                        write_new(&dir.join(&inside), &bytes)?;
                        entry.files.push(FileEntry {
                            path: inside,
                            bytes: bytes.len() as u64,
                            sha256: sha256_hex(&bytes),
                        });
                    }
                }
            }
            manifest.items.push(entry);
        }
    }
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Manifest {
        path: dir.join(MANIFEST).display().to_string(),
        reason: e.to_string(),
    })?;
    // The manifest last, through a rename: present means complete.
    let tmp = dir.join(format!(".{MANIFEST}.tmp"));
    write_new(&tmp, &text)?;
    fs::rename(&tmp, dir.join(MANIFEST)).map_err(io(dir))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(manifest)
}

/// Reads a backup's manifest and checks every file against it (size, SHA-256, no path leaving
/// the backup).
pub fn verify(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST);
    if !path.exists() {
        return Err(BackupError::NoManifest(dir.display().to_string()));
    }
    let bad = |reason: String| BackupError::Manifest {
        path: path.display().to_string(),
        reason,
    };
    let manifest: Manifest = serde_json::from_slice(&fs::read(&path).map_err(io(&path))?)
        .map_err(|e| bad(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "format `{}`, this build reads `{FORMAT}`",
            manifest.format
        )));
    }
    for item in &manifest.items {
        for f in &item.files {
            if !inside(&f.path) {
                return Err(bad(format!("`{}` leaves the backup directory", f.path)));
            }
            let actual = fs::read(dir.join(&f.path)).map_err(io(&dir.join(&f.path)))?;
            if actual.len() as u64 != f.bytes || sha256_hex(&actual) != f.sha256 {
                return Err(BackupError::Checksum {
                    file: f.path.clone(),
                });
            }
        }
    }
    Ok(manifest)
}

/// A relative path of plain components only.
fn inside(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    /// `service/name` of each item written.
    pub items: Vec<String>,
    /// Items of services this program does not run (left alone).
    pub not_ours: Vec<String>,
    /// Existing files or directories moved aside (`--replace`), as `from -> to`.
    pub moved_aside: Vec<String>,
}

/// Restores the backup in `dir` into the places `sets` configure: refuses while any of them runs
/// (their locks held), checks every checksum first, refuses to overwrite unless `replace` (then
/// moves what is there aside), and integrity-checks every restored SQLite store.
pub fn restore(sets: &[DataSet], dir: &Path, replace: bool) -> Result<Restored, BackupError> {
    let manifest = verify(dir)?;
    let _locks = lock_all(sets)?;
    let mut plan = Vec::new();
    let mut out = Restored::default();
    for entry in &manifest.items {
        let Some(set) = sets.iter().find(|s| s.service == entry.service) else {
            out.not_ours
                .push(format!("{}/{}", entry.service, entry.name));
            continue;
        };
        let Some(item) = set.files.items.iter().find(|i| i.name == entry.name) else {
            return Err(BackupError::UnknownItem {
                service: entry.service.clone(),
                name: entry.name.clone(),
            });
        };
        plan.push((entry, item));
    }
    let occupied: Vec<&DataItem> = plan
        .iter()
        .map(|(_, item)| *item)
        .filter(|item| occupied(item))
        .collect();
    if !occupied.is_empty() && !replace {
        return Err(BackupError::Exists(
            occupied
                .iter()
                .map(|i| i.path.display().to_string())
                .collect(),
        ));
    }
    let stamp = now_unix();
    for item in occupied {
        for (from, to) in aside(&item.path, stamp) {
            fs::rename(&from, &to).map_err(io(&from))?;
            out.moved_aside
                .push(format!("{} -> {}", from.display(), to.display()));
        }
    }
    for (entry, item) in plan {
        let key = format!("{}/{}", entry.service, entry.name);
        match item.kind {
            DataKind::Dir { .. } => {
                let staging = sibling(&item.path, ".restoring");
                if staging.exists() {
                    fs::remove_dir_all(&staging).map_err(io(&staging))?;
                }
                let prefix = format!("{key}/");
                for f in &entry.files {
                    let rel = f.path.strip_prefix(&prefix).unwrap_or(&f.path);
                    let bytes = fs::read(dir.join(&f.path)).map_err(io(&dir.join(&f.path)))?;
                    write_new(&staging.join(rel), &bytes)?;
                }
                fs::create_dir_all(&staging).map_err(io(&staging))?;
                // An empty directory the service made counts as not there.
                if item.path.exists() {
                    fs::remove_dir(&item.path).map_err(io(&item.path))?;
                }
                fs::rename(&staging, &item.path).map_err(io(&item.path))?;
            }
            _ => {
                let f = entry.files.first().ok_or_else(|| BackupError::Manifest {
                    path: dir.join(MANIFEST).display().to_string(),
                    reason: format!("{key} lists no file"),
                })?;
                let bytes = fs::read(dir.join(&f.path)).map_err(io(&dir.join(&f.path)))?;
                let staging = sibling(&item.path, ".restoring");
                let _ = fs::remove_file(&staging);
                write_new(&staging, &bytes)?;
                fs::rename(&staging, &item.path).map_err(io(&item.path))?;
                if matches!(item.kind, DataKind::Sqlite) {
                    check_sqlite(&item.path)?;
                }
            }
        }
        if let Some(parent) = item.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io(parent))?;
        }
        out.items.push(key);
    }
    Ok(out)
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Something is where a restore would write (an empty directory is not): for a file, also a
/// left-over `-wal`, which SQLite would otherwise replay onto the restored database.
fn occupied(item: &DataItem) -> bool {
    match item.kind {
        DataKind::Dir { .. } => match fs::read_dir(&item.path) {
            Ok(mut entries) => entries.next().is_some(),
            Err(_) => item.path.exists(),
        },
        _ => !aside(&item.path, 0).is_empty(),
    }
}

/// The renames that move `path` (and a SQLite database's `-wal` and `-shm`) out of the way.
fn aside(path: &Path, stamp: u64) -> Vec<(PathBuf, PathBuf)> {
    let suffix = format!(".before-restore-{stamp}");
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|ext| sibling(path, ext))
        .filter(|p| p.exists())
        .map(|p| {
            let to = sibling(&p, &suffix);
            (p, to)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(dir: &Path) -> DataSet {
        DataSet {
            service: "svc".into(),
            files: DataFiles {
                lock: Some(dir.join("data/.lock")),
                items: vec![
                    DataItem::new("db", dir.join("data/db.sqlite"), DataKind::Sqlite),
                    DataItem::new("kdbx", dir.join("data/x.kdbx"), DataKind::File),
                    DataItem::new("log", dir.join("data/audit.jsonl"), DataKind::AppendLog),
                    DataItem::new(
                        "files",
                        dir.join("data/files"),
                        DataKind::Dir {
                            complete: Some(|_, name, _| !name.ends_with(".partial")),
                        },
                    ),
                    DataItem::new("never", dir.join("data/never"), DataKind::File),
                ],
            },
        }
    }

    fn seed(dir: &Path) -> Connection {
        fs::create_dir_all(dir.join("data/files/sub")).unwrap();
        let db = Connection::open(dir.join("data/db.sqlite")).unwrap();
        db.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1),(2),(3);",
        )
        .unwrap();
        fs::write(dir.join("data/x.kdbx"), b"kdbx bytes").unwrap();
        fs::write(
            dir.join("data/audit.jsonl"),
            b"{\"a\":1}\n{\"a\":2}\n{\"a\"",
        )
        .unwrap();
        fs::write(dir.join("data/files/one.bin"), b"one").unwrap();
        fs::write(dir.join("data/files/sub/two.json"), b"{}").unwrap();
        fs::write(dir.join("data/files/three.partial"), b"half").unwrap();
        db
    }

    #[test]
    fn backup_wipe_restore_gives_the_same_data() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let db = seed(root);
        let sets = [set(root)];
        // Online: the writer keeps its connection (and an uncheckpointed WAL) open.
        let m = backup(&sets, &root.join("bk"), "test").unwrap();
        assert_eq!(m.absent, vec!["svc/never".to_owned()]);
        assert_eq!(m.items.len(), 4);
        assert_eq!(m.items[3].skipped_in_flight, 1);
        db.execute("INSERT INTO t VALUES (4)", []).unwrap();
        drop(db);
        // Occupied places are not overwritten without --replace, and nothing is written.
        let e = restore(&sets, &root.join("bk"), false).unwrap_err();
        assert!(
            matches!(e, BackupError::Exists(ref v) if v.len() == 4),
            "{e}"
        );
        fs::remove_dir_all(root.join("data")).unwrap();
        let r = restore(&sets, &root.join("bk"), false).unwrap();
        assert_eq!(r.items.len(), 4);
        let db = Connection::open(root.join("data/db.sqlite")).unwrap();
        let n: i64 = db
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3, "the rows at backup time, not the later one");
        assert_eq!(fs::read(root.join("data/x.kdbx")).unwrap(), b"kdbx bytes");
        assert_eq!(
            fs::read(root.join("data/audit.jsonl")).unwrap(),
            b"{\"a\":1}\n{\"a\":2}\n",
            "the log up to its last whole line"
        );
        assert_eq!(
            fs::read(root.join("data/files/sub/two.json")).unwrap(),
            b"{}"
        );
        assert!(!root.join("data/files/three.partial").exists());
        assert!(!root.join("data/never").exists());
    }

    #[test]
    fn replace_moves_aside_and_a_tampered_backup_restores_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        drop(seed(root));
        let sets = [set(root)];
        backup(&sets, &root.join("bk"), "test").unwrap();
        fs::write(root.join("data/x.kdbx"), b"newer").unwrap();
        let r = restore(&sets, &root.join("bk"), true).unwrap();
        assert_eq!(fs::read(root.join("data/x.kdbx")).unwrap(), b"kdbx bytes");
        let moved = r
            .moved_aside
            .iter()
            .find(|m| m.contains("x.kdbx -> "))
            .unwrap();
        let to = moved.split(" -> ").nth(1).unwrap();
        assert_eq!(fs::read(to).unwrap(), b"newer", "nothing is deleted");

        fs::write(root.join("bk/svc/kdbx"), b"tampered!!").unwrap();
        fs::write(root.join("data/x.kdbx"), b"current").unwrap();
        let e = restore(&sets, &root.join("bk"), true).unwrap_err();
        assert!(
            matches!(e, BackupError::Checksum { ref file } if file == "svc/kdbx"),
            "{e}"
        );
        assert_eq!(fs::read(root.join("data/x.kdbx")).unwrap(), b"current");
    }

    #[test]
    fn a_held_lock_refuses_restore_and_a_second_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        drop(seed(root));
        let sets = [set(root)];
        backup(&sets, &root.join("bk"), "test").unwrap();
        let held = sets[0].lock().unwrap().expect("a lock");
        assert!(matches!(sets[0].lock(), Err(BackupError::InUse { .. })));
        fs::remove_dir_all(root.join("data/files")).unwrap();
        let e = restore(&sets, &root.join("bk"), true).unwrap_err();
        assert!(matches!(e, BackupError::InUse { .. }), "{e}");
        assert!(!root.join("data/files").exists(), "nothing restored");
        drop(held);
        restore(&sets, &root.join("bk"), true).unwrap();
        assert!(root.join("data/files/one.bin").exists());
    }

    #[test]
    fn backups_go_into_new_directories_and_manifests_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        drop(seed(root));
        let sets = [set(root)];
        fs::create_dir_all(root.join("bk")).unwrap();
        fs::write(root.join("bk/other"), b"x").unwrap();
        assert!(matches!(
            backup(&sets, &root.join("bk"), "t"),
            Err(BackupError::NotEmpty(_))
        ));
        assert!(matches!(
            restore(&sets, &root.join("bk"), true),
            Err(BackupError::NoManifest(_))
        ));
        let m = backup(&sets, &root.join("bk2"), "t").unwrap();
        let mut evil = m.clone();
        evil.items[1].files[0].path = "../data/x.kdbx".into();
        fs::write(
            root.join("bk2").join(MANIFEST),
            serde_json::to_vec(&evil).unwrap(),
        )
        .unwrap();
        let e = verify(&root.join("bk2")).unwrap_err();
        assert!(e.to_string().contains("leaves the backup directory"), "{e}");
    }
}
