//! The pinned repository: cloned (bare) from a URL into the cache dir or opened from a local path,
//! the configured ref resolved to one commit, fetched on an interval. Everything is read from the
//! git object database at that commit, never from a work tree, so no file outside the repository
//! is reachable by construction.

use crate::error::FreqtradeError;
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use git2::{ObjectType, Oid, Repository, Tree};
use serde::Serialize;

/// Where the repository stands.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepoStatus {
    /// Directory of the git database.
    pub location: String,
    pub git_ref: String,
    /// Resolved commit (hex), when ready.
    pub commit: Option<String>,
    /// Last successful clone/fetch/open (RFC 3339).
    pub last_sync: Option<String>,
    /// Why the repository is not usable (or the last fetch failed).
    pub error: Option<String>,
    /// Clone progress while cloning.
    pub progress: Option<String>,
}

/// The shared state behind the tools.
pub struct Pinned {
    pub status: RwLock<RepoStatus>,
}

/// Refusals and failures of repository reads.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("the repository is not ready: {0}")]
    NotReady(String),
    #[error(
        "path `{0}` is refused: use a relative path inside the repository (no `..`, no leading `/`)"
    )]
    BadPath(String),
    #[error("`{0}` does not exist at commit {1}")]
    NotFound(String, String),
    #[error("`{0}` is a symlink pointing outside the repository")]
    Escapes(String),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// Normalizes a user path into tree components; refuses anything that could leave the tree.
pub fn components(path: &str) -> Result<Vec<String>, RepoError> {
    let trimmed = path.trim();
    if trimmed.starts_with('/') || trimmed.contains('\0') || trimmed.contains('\\') {
        return Err(RepoError::BadPath(path.to_owned()));
    }
    let mut out = Vec::new();
    for c in Path::new(trimmed).components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return Err(RepoError::BadPath(path.to_owned())),
        }
    }
    Ok(out)
}

/// What a path names at the pinned commit.
pub enum Item {
    Blob { path: String, data: Vec<u8> },
    Tree { path: String, oid: Oid },
}

impl Pinned {
    pub fn new(location: &Path, git_ref: &str) -> Self {
        Self {
            status: RwLock::new(RepoStatus {
                location: location.display().to_string(),
                git_ref: git_ref.to_owned(),
                ..RepoStatus::default()
            }),
        }
    }

    pub fn snapshot(&self) -> RepoStatus {
        self.status.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn update(&self, f: impl FnOnce(&mut RepoStatus)) {
        if let Ok(mut s) = self.status.write() {
            f(&mut s);
        }
    }

    /// Opens the repository and the pinned commit's tree.
    pub fn open(&self) -> Result<(Repository, Oid), RepoError> {
        let s = self.snapshot();
        let commit = s.commit.ok_or_else(|| {
            RepoError::NotReady(
                s.error
                    .or(s.progress.map(|p| format!("cloning ({p})")))
                    .unwrap_or_else(|| "still opening".to_owned()),
            )
        })?;
        let repo = Repository::open(&s.location)?;
        Ok((repo, Oid::from_str(&commit)?))
    }
}

/// The tree of `commit`.
pub fn tree_of(repo: &Repository, commit: Oid) -> Result<Tree<'_>, RepoError> {
    Ok(repo.find_commit(commit)?.tree()?)
}

/// Looks up `path` at the commit, following symlinks that stay inside the tree (up to 8 hops).
pub fn lookup(repo: &Repository, commit: Oid, path: &str) -> Result<Item, RepoError> {
    let short = commit.to_string()[..12].to_owned();
    let root = tree_of(repo, commit)?;
    let mut parts = components(path)?;
    if parts.is_empty() {
        return Ok(Item::Tree {
            path: String::new(),
            oid: root.id(),
        });
    }
    for _ in 0..8 {
        let joined = parts.join("/");
        let entry = root
            .get_path(Path::new(&joined))
            .map_err(|_| RepoError::NotFound(path.to_owned(), short.clone()))?;
        match entry.kind() {
            Some(ObjectType::Tree) => {
                return Ok(Item::Tree {
                    path: joined,
                    oid: entry.id(),
                });
            }
            Some(ObjectType::Blob) if entry.filemode() == 0o120_000 => {
                let blob = repo.find_blob(entry.id())?;
                let target = String::from_utf8_lossy(blob.content()).into_owned();
                if target.starts_with('/') {
                    return Err(RepoError::Escapes(path.to_owned()));
                }
                // Resolve relative to the link's directory, lexically, never above the root.
                let mut resolved: Vec<String> = parts[..parts.len() - 1].to_vec();
                for c in Path::new(&target).components() {
                    match c {
                        Component::Normal(s) => resolved.push(s.to_string_lossy().into_owned()),
                        Component::CurDir => {}
                        Component::ParentDir => {
                            if resolved.pop().is_none() {
                                return Err(RepoError::Escapes(path.to_owned()));
                            }
                        }
                        _ => return Err(RepoError::Escapes(path.to_owned())),
                    }
                }
                parts = resolved;
            }
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id())?;
                return Ok(Item::Blob {
                    path: joined,
                    data: blob.content().to_vec(),
                });
            }
            _ => return Err(RepoError::NotFound(path.to_owned(), short)),
        }
    }
    Err(RepoError::Escapes(path.to_owned()))
}

/// Resolves a ref name (branch, tag, remote branch, commit id) to a commit.
pub fn resolve(repo: &Repository, git_ref: &str) -> Result<Oid, git2::Error> {
    let candidates = [
        git_ref.to_owned(),
        format!("refs/tags/{git_ref}"),
        format!("refs/heads/{git_ref}"),
        format!("refs/remotes/origin/{git_ref}"),
        format!("origin/{git_ref}"),
    ];
    let mut last = None;
    for c in &candidates {
        match repo.revparse_single(c).and_then(|o| o.peel_to_commit()) {
            Ok(commit) => return Ok(commit.id()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| git2::Error::from_str("no such ref")))
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Clones `url` (bare) into `dir`, or fetches when it is already there.
fn clone_or_fetch(url: &str, dir: &Path, pinned: &Pinned) -> Result<Repository, git2::Error> {
    let mut callbacks = git2::RemoteCallbacks::new();
    let mut last_logged = 0usize;
    callbacks.transfer_progress(|p| {
        let pct = if p.total_objects() > 0 {
            p.received_objects() * 100 / p.total_objects()
        } else {
            0
        };
        if pct >= last_logged + 10 || pct == 100 && last_logged != 100 {
            last_logged = pct;
            tracing::info!(
                message = "Cloning the Freqtrade repository.",
                percent = pct,
                objects = p.received_objects(),
                total = p.total_objects()
            );
            pinned.update(|s| s.progress = Some(format!("{pct}%")));
        }
        true
    });
    let mut fo = git2::FetchOptions::new();
    fo.remote_callbacks(callbacks);
    fo.download_tags(git2::AutotagOption::All);
    if dir.join("HEAD").exists() {
        let repo = Repository::open_bare(dir)?;
        {
            let mut remote = repo.find_remote("origin")?;
            remote.fetch(
                &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                Some(&mut fo),
                None,
            )?;
        }
        Ok(repo)
    } else {
        if let Some(parent) = dir.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        git2::build::RepoBuilder::new()
            .bare(true)
            .fetch_options(fo)
            .clone(url, dir)
    }
}

/// One synchronisation: open or clone/fetch, then resolve the ref.
pub fn sync(
    pinned: &Pinned,
    url: Option<&str>,
    local: Option<&Path>,
    cache: &Path,
    git_ref: &str,
) -> Result<(), FreqtradeError> {
    let repo = match (local, url) {
        (Some(path), _) => Repository::open(path)
            .map_err(|e| FreqtradeError::Sync(format!("cannot open {}: {e}", path.display())))?,
        (None, Some(url)) => clone_or_fetch(url, cache, pinned).map_err(|e| {
            FreqtradeError::Sync(format!("cannot clone/fetch {url}: {}", e.message()))
        })?,
        (None, None) => {
            return Err(FreqtradeError::Sync(
                "no repository configured: set freqtrade.repo_url or freqtrade.repo_path"
                    .to_owned(),
            ));
        }
    };
    let location: PathBuf = if repo.is_bare() {
        repo.path().to_owned()
    } else {
        repo.workdir().unwrap_or(repo.path()).to_owned()
    };
    let commit = resolve(&repo, git_ref)
        .map_err(|e| FreqtradeError::Sync(format!("ref `{git_ref}` not found: {}", e.message())))?;
    pinned.update(|s| {
        s.location = location.display().to_string();
        s.commit = Some(commit.to_string());
        s.last_sync = Some(now());
        s.error = None;
        s.progress = None;
    });
    tracing::info!(message = "Freqtrade repository ready.", git_ref, commit = %commit, location = %location.display());
    Ok(())
}

/// Backoff for retries after a failed sync: 10 s doubling to 10 min.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs((10u64 << failures.min(6)).min(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_tree() {
        assert_eq!(components("a/./b").unwrap(), ["a", "b"]);
        assert!(components("").unwrap().is_empty());
        for bad in ["../x", "a/../../b", "/etc/passwd", "a\\b", "a/../b"] {
            assert!(components(bad).is_err(), "{bad}");
        }
        assert_eq!(retry_delay(0), Duration::from_secs(10));
        assert_eq!(retry_delay(20), Duration::from_secs(600));
    }
}
