//! File tools behind the path sandbox. Paths are resolved and checked by [`PathSandbox`], then opened
//! relative to the root's directory handle with cap-std, which refuses any escape (a symlink swapped
//! in after the check included) at open time. Writes are atomic (temp file in the same directory,
//! fsync, rename) and back up the previous version first.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use mcp_security::{PathSandbox, Resolved};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors of the file tools; each names what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error(transparent)]
    Sandbox(#[from] mcp_security::SandboxError),
    #[error("`{path}` does not exist")]
    NotFound { path: String },
    #[error("`{path}` is a directory; use listDirectory")]
    IsDirectory { path: String },
    #[error("`{path}` is not a directory")]
    NotDirectory { path: String },
    #[error(
        "`{path}` is {size} bytes, over the {limit}-byte limit; read it in parts with offset/length"
    )]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("content is {size} bytes, over the {limit}-byte write limit")]
    WriteTooLarge { size: usize, limit: usize },
    #[error("backup `{id}` does not exist; use listBackups")]
    NoBackup { id: String },
    #[error("{action} `{path}` failed: {message}")]
    Io {
        action: &'static str,
        path: String,
        message: String,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> FileError + 'a {
    move |e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            FileError::NotFound {
                path: path.display().to_string(),
            }
        } else {
            FileError::Io {
                action,
                path: path.display().to_string(),
                message: e.to_string(),
            }
        }
    }
}

/// A file's content, or part of it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileContent {
    pub path: String,
    pub size: u64,
    pub offset: u64,
    /// Bytes returned.
    pub length: u64,
    /// True when the file continues after this part.
    pub more: bool,
    /// True when the file looks binary; `content` is then base64.
    pub binary: bool,
    pub encoding: String,
    pub content: String,
}

/// Result of a write.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteResult {
    pub path: String,
    pub bytes_written: usize,
    pub sha256: String,
    /// Backup of the previous version, if the file existed.
    pub backup_id: Option<String>,
    pub created: bool,
}

/// One directory entry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Entry {
    pub name: String,
    /// file, dir, symlink or other.
    pub kind: String,
    pub size: u64,
    /// Octal permission bits, e.g. "644".
    pub mode: String,
    /// Unix seconds.
    pub modified: Option<u64>,
}

/// A directory listing.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Listing {
    pub path: String,
    pub entries: Vec<Entry>,
    pub total: usize,
    pub truncated: bool,
}

/// Metadata of one backup.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupInfo {
    pub id: String,
    /// Absolute path of the file it came from.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Octal permission bits of the original.
    pub mode: String,
    /// Unix seconds when taken.
    pub created: u64,
}

/// Whether one file of the backup directory is complete, for `mcp_runtime::backup`: a backup
/// is `<id>.bin`, written and synced before its `<id>.json` is created, so a pair is taken when
/// `<id>.json` parses and `<id>.bin` matches the size and digest it records (both files, or
/// neither).
pub fn backup_entry_complete(dir: &Path, name: &str, bytes: &[u8]) -> bool {
    let meta_of = |json: &[u8]| serde_json::from_slice::<BackupInfo>(json).ok();
    let matches = |info: BackupInfo, data: &[u8]| {
        info.size == data.len() as u64 && info.sha256 == sha256_hex(data)
    };
    if let Some(id) = name.strip_suffix(".json") {
        meta_of(bytes).is_some_and(|info| {
            std::fs::read(dir.join(format!("{id}.bin"))).is_ok_and(|data| matches(info, &data))
        })
    } else if let Some(id) = name.strip_suffix(".bin") {
        std::fs::read(dir.join(format!("{id}.json")))
            .ok()
            .and_then(|json| meta_of(&json))
            .is_some_and(|info| matches(info, bytes))
    } else {
        false
    }
}

/// Sandboxed file access plus the backup store.
#[derive(Debug)]
pub struct Files {
    sandbox: PathSandbox,
    backup_dir: PathBuf,
    counter: AtomicU64,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Files {
    pub fn new(sandbox: PathSandbox, backup_dir: PathBuf) -> Result<Self, FileError> {
        std::fs::create_dir_all(&backup_dir).map_err(io("create backup directory", &backup_dir))?;
        Ok(Self {
            sandbox,
            backup_dir,
            counter: AtomicU64::new(0),
        })
    }

    pub fn sandbox(&self) -> &PathSandbox {
        &self.sandbox
    }

    fn root_dir(&self, r: &Resolved) -> Result<Dir, FileError> {
        Dir::open_ambient_dir(&r.root, ambient_authority()).map_err(io("open root", &r.root))
    }

    /// Resolves a user path against the sandbox.
    pub fn resolve(&self, path: &str) -> Result<Resolved, FileError> {
        Ok(self.sandbox.resolve(Path::new(path), None)?)
    }

    /// Reads `length` bytes (default: up to `max`) from `offset`.
    pub fn read(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
        max: u64,
    ) -> Result<FileContent, FileError> {
        let r = self.resolve(path)?;
        let dir = self.root_dir(&r)?;
        let rel = r.relative();
        let file = dir.open(rel).map_err(io("open", &r.absolute))?.into_std();
        let meta = file.metadata().map_err(io("stat", &r.absolute))?;
        if meta.is_dir() {
            return Err(FileError::IsDirectory {
                path: r.absolute.display().to_string(),
            });
        }
        let size = meta.len();
        let want = length.unwrap_or(max);
        if want > max {
            return Err(FileError::TooLarge {
                path: r.absolute.display().to_string(),
                size: want,
                limit: max,
            });
        }
        let mut file = file;
        file.seek(SeekFrom::Start(offset))
            .map_err(io("seek", &r.absolute))?;
        let mut buf = Vec::new();
        file.take(want)
            .read_to_end(&mut buf)
            .map_err(io("read", &r.absolute))?;
        let length = buf.len() as u64;
        // Text unless it has NUL bytes or is not UTF-8; binary comes back base64-encoded.
        let text = if buf.iter().take(8192).any(|b| *b == 0) {
            Err(buf)
        } else {
            String::from_utf8(buf).map_err(std::string::FromUtf8Error::into_bytes)
        };
        let (binary, encoding, content) = match text {
            Ok(s) => (false, "utf-8", s),
            Err(bytes) => (true, "base64", base64(&bytes)),
        };
        Ok(FileContent {
            path: r.absolute.display().to_string(),
            size,
            offset,
            length,
            more: offset + length < size,
            binary,
            encoding: encoding.to_owned(),
            content,
        })
    }

    /// Writes `data` atomically, backing up the previous version first.
    pub fn write(&self, path: &str, data: &[u8], max: usize) -> Result<WriteResult, FileError> {
        self.write_with(path, data, max, || Ok(()))
    }

    /// [`Files::write`] with a hook run after the temp file is durable and before the rename (tests
    /// use it to simulate a crash at the worst moment).
    pub fn write_with(
        &self,
        path: &str,
        data: &[u8],
        max: usize,
        before_rename: impl FnOnce() -> std::io::Result<()>,
    ) -> Result<WriteResult, FileError> {
        if data.len() > max {
            return Err(FileError::WriteTooLarge {
                size: data.len(),
                limit: max,
            });
        }
        let r = self.resolve(path)?;
        let dir = self.root_dir(&r)?;
        let rel = r.relative().to_path_buf();
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Err(FileError::IsDirectory {
                path: r.absolute.display().to_string(),
            });
        };
        let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(p) = parent {
            dir.create_dir_all(p)
                .map_err(io("create directories for", &r.absolute))?;
        }
        let pdir = match parent {
            Some(p) => dir
                .open_dir(p)
                .map_err(io("open directory of", &r.absolute))?,
            None => dir.try_clone().map_err(io("open", &r.root))?,
        };
        // Previous version: backed up first, mode kept.
        let (backup_id, mode) = match pdir.open(&name) {
            Ok(f) => {
                let mut f = f.into_std();
                let meta = f.metadata().map_err(io("stat", &r.absolute))?;
                if meta.is_dir() {
                    return Err(FileError::IsDirectory {
                        path: r.absolute.display().to_string(),
                    });
                }
                let mut old = Vec::new();
                f.read_to_end(&mut old).map_err(io("read", &r.absolute))?;
                let mode = meta.permissions().mode() & 0o7777;
                (Some(self.backup(&r.absolute, &old, mode)?.id), mode)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0o644),
            Err(e) => return Err(io("open", &r.absolute)(e)),
        };
        let tmp = format!(
            ".{name}.mcp-tmp-{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let result = (|| {
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            let f = pdir.open_with(&tmp, &opts)?;
            let mut f = f.into_std();
            f.write_all(data)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.sync_all()?;
            before_rename()?;
            pdir.rename(&tmp, &pdir, &name)?;
            // Make the rename itself durable.
            pdir.open(".").map(|d| d.into_std().sync_all()).ok();
            Ok(())
        })();
        if let Err(e) = result {
            let _ = pdir.remove_file(&tmp);
            return Err(io("write", &r.absolute)(e));
        }
        Ok(WriteResult {
            path: r.absolute.display().to_string(),
            bytes_written: data.len(),
            sha256: sha256_hex(data),
            created: backup_id.is_none(),
            backup_id,
        })
    }

    fn backup(&self, absolute: &Path, data: &[u8], mode: u32) -> Result<BackupInfo, FileError> {
        let created = now_secs();
        let id = format!(
            "{}-{}-{}",
            created,
            &sha256_hex(absolute.to_string_lossy().as_bytes())[..8],
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let info = BackupInfo {
            id: id.clone(),
            path: absolute.display().to_string(),
            size: data.len() as u64,
            sha256: sha256_hex(data),
            mode: format!("{mode:o}"),
            created,
        };
        let bin = self.backup_dir.join(format!("{id}.bin"));
        let meta = self.backup_dir.join(format!("{id}.json"));
        let write = |p: &Path, bytes: &[u8]| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        write(&bin, data).map_err(io("write backup", &bin))?;
        let json = serde_json::to_vec_pretty(&info).unwrap_or_default();
        write(&meta, &json).map_err(io("write backup metadata", &meta))?;
        Ok(info)
    }

    /// Backups, newest first; only those of `path` when given.
    pub fn list_backups(&self, path: Option<&str>) -> Result<Vec<BackupInfo>, FileError> {
        let filter = match path {
            Some(p) => Some(self.resolve(p)?.absolute.display().to_string()),
            None => None,
        };
        let mut out = Vec::new();
        let entries =
            std::fs::read_dir(&self.backup_dir).map_err(io("list backups in", &self.backup_dir))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Ok(info) = std::fs::read(&p)
                    .map_err(|_| ())
                    .and_then(|b| serde_json::from_slice::<BackupInfo>(&b).map_err(|_| ()))
                && filter.as_ref().is_none_or(|f| *f == info.path)
            {
                out.push(info);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Restores a backup over its original path (through the sandbox; the current version is backed
    /// up first). Returns the write result.
    pub fn restore(&self, id: &str, max: usize) -> Result<(BackupInfo, WriteResult), FileError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(FileError::NoBackup { id: id.to_owned() });
        }
        let meta = self.backup_dir.join(format!("{id}.json"));
        let info: BackupInfo = std::fs::read(&meta)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| FileError::NoBackup { id: id.to_owned() })?;
        let data = std::fs::read(self.backup_dir.join(format!("{id}.bin")))
            .map_err(|_| FileError::NoBackup { id: id.to_owned() })?;
        let written = self.write(&info.path, &data, max.max(data.len()))?;
        if let Ok(mode) = u32::from_str_radix(&info.mode, 8) {
            let _ = std::fs::set_permissions(&written.path, std::fs::Permissions::from_mode(mode));
        }
        Ok((info, written))
    }

    /// Lists a directory (at most `max` entries, sorted by name).
    pub fn list(&self, path: &str, max: usize) -> Result<Listing, FileError> {
        let r = self.resolve(path)?;
        let dir = self.root_dir(&r)?;
        let rel = r.relative();
        let target = if rel.as_os_str().is_empty() {
            dir
        } else {
            dir.open_dir(rel).map_err(|e| {
                if e.raw_os_error() == Some(20) {
                    FileError::NotDirectory {
                        path: r.absolute.display().to_string(),
                    }
                } else {
                    io("open directory", &r.absolute)(e)
                }
            })?
        };
        let mut entries = Vec::new();
        for e in target.entries().map_err(io("list", &r.absolute))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ft = e.file_type().ok();
            let kind = match ft {
                Some(t) if t.is_symlink() => "symlink",
                Some(t) if t.is_dir() => "dir",
                Some(t) if t.is_file() => "file",
                _ => "other",
            };
            let meta = target.symlink_metadata(&name).ok();
            entries.push(Entry {
                name,
                kind: kind.to_owned(),
                size: meta.as_ref().map_or(0, |m| m.len()),
                mode: meta.as_ref().map_or_else(String::new, |m| {
                    use cap_std::fs::PermissionsExt as _;
                    format!("{:o}", m.permissions().mode() & 0o7777)
                }),
                modified: meta
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let total = entries.len();
        entries.truncate(max);
        Ok(Listing {
            path: r.absolute.display().to_string(),
            truncated: total > entries.len(),
            total,
            entries,
        })
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(tmp: &Path) -> Files {
        let sb = PathSandbox::new(&[tmp.join("root")], &[]).unwrap();
        Files::new(sb, tmp.join("backups")).unwrap()
    }

    #[test]
    fn a_stack_backup_takes_complete_file_backups_and_restores_them_usable() {
        use mcp_runtime::backup::{DataFiles, DataItem, DataKind, DataSet, backup, restore};
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        f.write("a.txt", b"one", 100).unwrap();
        let id = f.write("a.txt", b"two", 100).unwrap().backup_id.unwrap();
        // A backup caught half way: its data file is there, its metadata not yet.
        std::fs::write(tmp.path().join("backups/999-x-0.bin"), b"partial").unwrap();
        // Metadata whose data file does not match it.
        std::fs::write(tmp.path().join("backups/998-x-0.bin"), b"bytes").unwrap();
        std::fs::write(
            tmp.path().join("backups/998-x-0.json"),
            br#"{"id":"998-x-0","path":"/x","size":5,"sha256":"00","mode":"600","created":1}"#,
        )
        .unwrap();
        let set = [DataSet {
            service: "linux-cli".into(),
            files: DataFiles {
                lock: None,
                items: vec![DataItem::new(
                    "backups",
                    tmp.path().join("backups"),
                    DataKind::Dir {
                        complete: Some(backup_entry_complete),
                    },
                )],
            },
        }];
        let m = backup(&set, &tmp.path().join("bk"), "test").unwrap();
        let copied: Vec<&str> = m.items[0].files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            copied,
            [
                format!("linux-cli/backups/{id}.bin"),
                format!("linux-cli/backups/{id}.json")
            ]
        );
        assert_eq!(
            m.items[0].skipped_in_flight, 3,
            "the partial .bin, and the pair that does not match"
        );
        std::fs::remove_dir_all(tmp.path().join("backups")).unwrap();
        restore(&set, &tmp.path().join("bk"), false).unwrap();
        f.restore(&id, 100).unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("root/a.txt")).unwrap(),
            b"one"
        );
    }

    #[test]
    fn write_backup_restore_is_byte_identical() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        let v1: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let w1 = f.write("dir/data.bin", &v1, 1 << 20).unwrap();
        assert!(w1.created && w1.backup_id.is_none());
        let abs = PathBuf::from(&w1.path);
        std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(0o640)).unwrap();
        let w2 = f.write("dir/data.bin", b"version two", 1 << 20).unwrap();
        let id = w2.backup_id.unwrap();
        assert_eq!(std::fs::read(&abs).unwrap(), b"version two");
        assert_eq!(
            std::fs::metadata(&abs).unwrap().permissions().mode() & 0o777,
            0o640,
            "mode kept"
        );
        let backups = f.list_backups(Some("dir/data.bin")).unwrap();
        assert_eq!(backups.len(), 1);
        assert_eq!(backups[0].sha256, sha256_hex(&v1));
        let (_, restored) = f.restore(&id, 1 << 20).unwrap();
        assert_eq!(std::fs::read(&abs).unwrap(), v1);
        assert!(
            restored.backup_id.is_some(),
            "the overwritten version was backed up too"
        );
        assert!(matches!(
            f.restore("nope", 10),
            Err(FileError::NoBackup { .. })
        ));
        assert!(matches!(
            f.restore("../../etc/passwd", 10),
            Err(FileError::NoBackup { .. })
        ));
    }

    #[test]
    fn a_crash_before_rename_leaves_the_old_file_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        let w = f.write("a.txt", b"original content", 1024).unwrap();
        let err = f
            .write_with("a.txt", &vec![b'x'; 500], 1024, || {
                Err(std::io::Error::other("simulated crash"))
            })
            .unwrap_err();
        assert!(err.to_string().contains("simulated crash"));
        assert_eq!(std::fs::read(&w.path).unwrap(), b"original content");
        let leftovers: Vec<_> = std::fs::read_dir(Path::new(&w.path).parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "temp file removed: {leftovers:?}");
    }

    #[test]
    fn reads_parts_detects_binary_and_refuses_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        f.write("t.txt", b"0123456789", 1024).unwrap();
        let part = f.read("t.txt", 2, Some(3), 1024).unwrap();
        assert_eq!(
            (part.content.as_str(), part.more, part.size),
            ("234", true, 10)
        );
        f.write("b.bin", &[0, 1, 2, 255], 1024).unwrap();
        let bin = f.read("b.bin", 0, None, 1024).unwrap();
        assert!(bin.binary);
        assert_eq!(bin.content, "AAEC/w==");
        let root = f.sandbox().roots()[0].clone();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        for bad in ["../x", "/etc/passwd", "out/hostname", "sub/../../x"] {
            assert!(f.read(bad, 0, None, 1024).is_err(), "{bad}");
            assert!(f.write(bad, b"x", 1024).is_err(), "{bad}");
        }
        assert!(f.list("out", 10).is_err());
        let l = f.list(".", 10).unwrap();
        assert!(
            l.entries
                .iter()
                .any(|e| e.name == "t.txt" && e.kind == "file")
        );
    }

    #[test]
    fn symlink_swapped_in_after_the_check_is_refused_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        let root = f.sandbox().roots()[0].clone();
        std::fs::create_dir(root.join("d")).unwrap();
        // Checked while `d` is a real directory...
        let r = f.resolve("d/hostname").unwrap();
        // ...then swapped for a link out of the root before the open.
        std::fs::remove_dir(root.join("d")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("d")).unwrap();
        let dir = Dir::open_ambient_dir(&r.root, ambient_authority()).unwrap();
        assert!(
            dir.open(r.relative()).is_err(),
            "cap-std must refuse the escape"
        );
        assert!(f.read("d/hostname", 0, None, 1024).is_err());
    }
}
