//! Noticing that a file changed: size, modification time (nanoseconds) and inode, so a file
//! replaced by rename counts as changed even with the same size and time.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
