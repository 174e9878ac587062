//! Opening master's own SQLite files (approvals, pins): the directory is made first, and a failure
//! names the file or directory.

use std::path::Path;

use rusqlite::Connection;

/// A SQLite file could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbOpenError {
    #[error("cannot create {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
}

/// Opens (or creates) the SQLite file at `path`, making its directory first.
pub fn open(path: &Path) -> Result<Connection, DbOpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DbOpenError::Dir {
            dir: dir.display().to_string(),
            source,
        })?;
    }
    Connection::open(path).map_err(|source| DbOpenError::Open {
        path: path.display().to_string(),
        source,
    })
}
