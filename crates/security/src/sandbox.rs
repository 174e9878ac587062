//! [`PathSandbox`]: every path a tool touches is resolved (symlinks and `..` included) and must stay
//! inside an allowed root and outside the deny-list of sensitive files, whether it exists yet or not.
//!
//! Resolution alone cannot stop a symlink swapped in after the check; callers open files relative to
//! the root they got back (see [`Resolved::relative`]) with an API that refuses escapes at open time.

use std::path::{Component, Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};

/// Sensitive files refused even inside an allowed root (globs on the resolved absolute path).
pub const DEFAULT_DENY: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d/**",
    "/etc/ssh/ssh_host_*_key",
    "/root/.ssh/**",
    "**/.ssh/id_*",
    "**/.ssh/authorized_keys",
    "**/*.pem",
    "**/*.key",
    "**/*_id_rsa",
    "**/*_id_ed25519",
    "**/*_id_ecdsa",
    "**/.gnupg/**",
    "**/.aws/credentials",
    "**/.kube/config",
    "**/.docker/config.json",
    "**/.netrc",
    "**/.git-credentials",
    "**/.pgpass",
    "/run/secrets/**",
    "/proc/*/environ",
    "/proc/*/mem",
    "**/*.kdbx",
];

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    #[error("path `{path}` is outside the allowed roots ({roots})")]
    OutsideRoots { path: String, roots: String },
    #[error(
        "path `{path}` is a sensitive file (matches deny rule `{rule}`) and is never accessible"
    )]
    Denied { path: String, rule: String },
    #[error("path `{path}` contains `..` after a component that does not exist yet")]
    DotDotInNewPath { path: String },
    #[error("path must not be empty")]
    Empty,
    #[error("path `{path}` contains a NUL byte")]
    Nul { path: String },
    #[error("allowed root `{path}` is unusable: {message}")]
    BadRoot { path: String, message: String },
    #[error("invalid deny rule `{rule}`: {message}")]
    BadRule { rule: String, message: String },
    #[error("cannot resolve `{path}`: {message}")]
    Io { path: String, message: String },
}

/// Globs of sensitive files: [`DEFAULT_DENY`] plus configured extras.
#[derive(Debug, Clone)]
pub(crate) struct DenyList {
    set: GlobSet,
    rules: Vec<String>,
}

impl DenyList {
    fn new(extra: &[String]) -> Result<Self, SandboxError> {
        let mut builder = GlobSetBuilder::new();
        let mut rules = Vec::new();
        for rule in DEFAULT_DENY
            .iter()
            .map(|s| (*s).to_owned())
            .chain(extra.iter().cloned())
        {
            let glob = globset::GlobBuilder::new(&rule)
                .literal_separator(true)
                .build()
                .map_err(|e| SandboxError::BadRule {
                    rule: rule.clone(),
                    message: e.to_string(),
                })?;
            builder.add(glob);
            rules.push(rule);
        }
        let set = builder.build().map_err(|e| SandboxError::BadRule {
            rule: "(set)".to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self { set, rules })
    }

    /// The built-in list alone, for validators without a sandbox (remote commands).
    pub(crate) fn defaults() -> &'static Self {
        static DEFAULTS: std::sync::LazyLock<DenyList> = std::sync::LazyLock::new(|| {
            DenyList::new(&[])
                .unwrap_or_else(|_| unreachable!("the built-in rules are valid globs"))
        });
        &DEFAULTS
    }

    /// The first rule `path` matches.
    pub(crate) fn matching(&self, path: &Path) -> Option<&str> {
        self.set
            .matches(path)
            .first()
            .map(|i| self.rules[*i].as_str())
    }
}

/// Allowed roots plus a deny-list of sensitive files.
#[derive(Debug, Clone)]
pub struct PathSandbox {
    roots: Vec<PathBuf>,
    deny: DenyList,
}

/// A path that passed the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The canonical root it lies under.
    pub root: PathBuf,
    /// The resolved absolute path (symlinks of existing components followed).
    pub absolute: PathBuf,
}

impl Resolved {
    /// The path relative to its root (empty for the root itself).
    pub fn relative(&self) -> &Path {
        self.absolute
            .strip_prefix(&self.root)
            .unwrap_or(Path::new(""))
    }
}

impl PathSandbox {
    /// A sandbox over `roots` (created if missing, then canonicalized), refusing `deny` globs
    /// in addition to [`DEFAULT_DENY`].
    pub fn new(roots: &[PathBuf], deny: &[String]) -> Result<Self, SandboxError> {
        let mut canonical = Vec::new();
        for root in roots {
            let bad = |message: String| SandboxError::BadRoot {
                path: root.display().to_string(),
                message,
            };
            std::fs::create_dir_all(root).map_err(|e| bad(e.to_string()))?;
            let c = std::fs::canonicalize(root).map_err(|e| bad(e.to_string()))?;
            if c == Path::new("/") {
                return Err(bad("`/` cannot be an allowed root".to_owned()));
            }
            canonical.push(c);
        }
        Ok(Self {
            roots: canonical,
            deny: DenyList::new(deny)?,
        })
    }

    /// The canonical allowed roots.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The deny rule a path matches, if any (checked on the path as given and as resolved).
    pub fn denied_by(&self, path: &Path) -> Option<&str> {
        self.deny.matching(path)
    }

    pub(crate) fn deny_list(&self) -> &DenyList {
        &self.deny
    }

    /// Resolves `path` (relative paths against `base`, else the first root) and checks it.
    /// Works for paths that do not exist yet: the longest existing ancestor is canonicalized and the
    /// rest must be plain names.
    pub fn resolve(&self, path: &Path, base: Option<&Path>) -> Result<Resolved, SandboxError> {
        let shown = path.display().to_string();
        if path.as_os_str().is_empty() {
            return Err(SandboxError::Empty);
        }
        if shown.contains('\0') {
            return Err(SandboxError::Nul { path: shown });
        }
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.map(Path::to_path_buf)
                .or_else(|| self.roots.first().cloned())
                .unwrap_or_else(|| PathBuf::from("/"))
                .join(path)
        };
        if let Some(rule) = self.denied_by(&lexical(&joined)) {
            return Err(SandboxError::Denied {
                path: shown,
                rule: rule.to_owned(),
            });
        }
        let absolute = resolve_existing(&joined).map_err(|e| match e {
            Resolve::DotDot => SandboxError::DotDotInNewPath {
                path: shown.clone(),
            },
            Resolve::Io(message) => SandboxError::Io {
                path: shown.clone(),
                message,
            },
        })?;
        if let Some(rule) = self.denied_by(&absolute) {
            return Err(SandboxError::Denied {
                path: shown,
                rule: rule.to_owned(),
            });
        }
        let root = self
            .roots
            .iter()
            .filter(|r| absolute.starts_with(r))
            .max_by_key(|r| r.components().count())
            .cloned()
            .ok_or_else(|| SandboxError::OutsideRoots {
                path: shown,
                roots: self
                    .roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(Resolved { root, absolute })
    }
}

/// Lexical normalization (no filesystem): drops `.`, applies `..`. Used only for deny checks of the
/// path as written.
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

enum Resolve {
    DotDot,
    Io(String),
}

/// Canonicalizes the longest existing prefix of an absolute path and appends the rest, which must not
/// contain `..`.
fn resolve_existing(path: &Path) -> Result<PathBuf, Resolve> {
    let mut existing = path.to_path_buf();
    let mut tail: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(c) => {
                let mut out = c;
                for part in tail.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A dangling symlink is not "missing": refuse to write through it.
                if std::fs::symlink_metadata(&existing).is_ok() {
                    return Err(Resolve::Io(
                        "it is a symbolic link whose target does not exist".to_owned(),
                    ));
                }
                match existing.components().next_back() {
                    Some(Component::Normal(name)) => {
                        tail.push(name.to_os_string());
                        existing.pop();
                    }
                    Some(Component::CurDir) => {
                        existing.pop();
                    }
                    Some(Component::ParentDir) => return Err(Resolve::DotDot),
                    _ => return Err(Resolve::Io(e.to_string())),
                }
            }
            Err(e) => return Err(Resolve::Io(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(dir: &Path) -> PathSandbox {
        PathSandbox::new(&[dir.join("root")], &[]).unwrap()
    }

    #[test]
    fn inside_outside_and_new_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let sb = sandbox(tmp.path());
        let root = sb.roots()[0].clone();
        std::fs::write(root.join("a.txt"), "x").unwrap();
        assert_eq!(
            sb.resolve(Path::new("a.txt"), None).unwrap().absolute,
            root.join("a.txt")
        );
        // Does not exist yet: fine, for writes.
        let r = sb.resolve(Path::new("new/dir/file.txt"), None).unwrap();
        assert_eq!(r.relative(), Path::new("new/dir/file.txt"));
        for bad in ["../x", "/etc/passwd", "a/../../x", "new/../../x"] {
            assert!(
                sb.resolve(Path::new(bad), None).is_err(),
                "{bad} must be refused"
            );
        }
        assert!(matches!(
            sb.resolve(Path::new("new/../../x"), None),
            Err(SandboxError::DotDotInNewPath { .. })
        ));
    }

    #[test]
    fn symlinks_out_are_refused_and_deny_list_applies_inside_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let sb = sandbox(tmp.path());
        let root = sb.roots()[0].clone();
        std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
        assert!(matches!(
            sb.resolve(Path::new("etc-link/hostname"), None),
            Err(SandboxError::OutsideRoots { .. })
        ));
        assert!(sb.resolve(Path::new("dangling"), None).is_err());
        std::fs::create_dir_all(root.join(".ssh")).unwrap();
        assert!(matches!(
            sb.resolve(Path::new(".ssh/id_ed25519"), None),
            Err(SandboxError::Denied { .. })
        ));
        assert!(matches!(
            sb.resolve(Path::new("server.pem"), None),
            Err(SandboxError::Denied { .. })
        ));
        assert!(matches!(
            sb.resolve(Path::new("/etc/shadow"), None),
            Err(SandboxError::Denied { .. })
        ));
    }

    #[test]
    fn root_slash_is_refused() {
        assert!(PathSandbox::new(&[PathBuf::from("/")], &[]).is_err());
    }
}
