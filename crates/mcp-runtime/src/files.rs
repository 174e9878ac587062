//! Noticing that a file changed: size, modification time (nanoseconds) and inode, so a file
//! replaced by rename counts as changed even with the same size and time; and reading a secret
//! kept in a file (a Docker or Kubernetes secret).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Errors reading a secret from a file; they name the file, never its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is empty")]
    Empty { path: String },
}

/// The secret in the file at `path`, without surrounding white space (a trailing newline); an
/// empty file is an error, not an empty secret.
pub fn read_secret(path: &Path) -> Result<String, SecretFileError> {
    let shown = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SecretFileError::Read {
        path: shown(),
        source,
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SecretFileError::Empty { path: shown() });
    }
    Ok(secret.to_owned())
}

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

impl FileStamp {
    /// The stamp of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let m = std::fs::metadata(path)?;
        Ok(Self {
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ino: m.ino(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_has_another_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "one").unwrap();
        let first = FileStamp::of(&p).unwrap();
        assert_eq!(first, FileStamp::of(&p).unwrap());
        let tmp = dir.path().join("g");
        std::fs::write(&tmp, "two").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert_ne!(first, FileStamp::of(&p).unwrap());
        assert!(FileStamp::of(&dir.path().join("missing")).is_err());
    }
}
