//! Read-only backends for local development: a directory of files (Docker secrets style, one value
//! per file) and environment variables with a prefix.

use std::path::PathBuf;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::backend::{
    BackendStatus, Deleted, Fetched, SecretBackend, SecretError, SecretMeta, rfc3339,
};

/// `kind = "file"`: every regular file in `dir` is a secret named after the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub dir: PathBuf,
}

/// `kind = "env"`: variables `<prefix><NAME>` are secrets named `NAME`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    pub prefix: String,
}

/// Where a local backend reads.
#[derive(Debug, Clone)]
pub enum Source {
    Dir(PathBuf),
    Env(String),
}

/// A read-only local backend.
pub struct Local {
    name: String,
    source: Source,
}

impl Local {
    pub fn new(name: &str, source: Source) -> Self {
        Self {
            name: name.to_owned(),
            source,
        }
    }

    fn file(&self, dir: &std::path::Path, path: &str) -> Result<PathBuf, SecretError> {
        if path.is_empty()
            || path.starts_with('.')
            || path.contains('/')
            || path.contains('\\')
            || path.contains('\0')
        {
            return Err(SecretError::InvalidPath(format!(
                "`{path}`: a file name inside the directory (no `/`, not starting with `.`)"
            )));
        }
        Ok(dir.join(path))
    }
}

#[async_trait]
impl SecretBackend for Local {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        match self.source {
            Source::Dir(_) => "file",
            Source::Env(_) => "env",
        }
    }

    fn writable(&self) -> bool {
        false
    }

    fn status(&self) -> BackendStatus {
        match &self.source {
            Source::Dir(d) if !d.is_dir() => {
                BackendStatus::unavailable(format!("{} is not a directory", d.display()))
            }
            _ => BackendStatus::ready(),
        }
    }

    async fn list(&self, limit: usize) -> Result<Vec<SecretMeta>, SecretError> {
        let mut out = Vec::new();
        match &self.source {
            Source::Dir(d) => {
                for e in std::fs::read_dir(d)?.filter_map(Result::ok) {
                    let Ok(name) = e.file_name().into_string() else {
                        continue;
                    };
                    let Ok(md) = e.metadata() else { continue };
                    if name.starts_with('.') || !md.is_file() {
                        continue;
                    }
                    let mut m = SecretMeta::new(&self.name, &name);
                    m.updated = md
                        .modified()
                        .ok()
                        .map(time::OffsetDateTime::from)
                        .and_then(rfc3339);
                    out.push(m);
                }
            }
            Source::Env(prefix) => {
                for (k, _) in
                    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
                {
                    if let Some(name) = k.strip_prefix(prefix.as_str()).filter(|n| !n.is_empty()) {
                        out.push(SecretMeta::new(&self.name, name));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.truncate(limit);
        Ok(out)
    }

    async fn get(
        &self,
        path: &str,
        field: Option<&str>,
        version: Option<&str>,
    ) -> Result<Fetched, SecretError> {
        if field.is_some_and(|f| f != "value" && f != "password") || version.is_some() {
            return Err(SecretError::Unsupported(format!(
                "{} secrets have one value and no versions; omit `field` and `version`",
                self.kind()
            )));
        }
        let value = match &self.source {
            Source::Dir(d) => {
                let p = self.file(d, path)?;
                match std::fs::read_to_string(&p) {
                    Ok(s) => s.trim_end_matches(['\n', '\r']).to_owned(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(SecretError::NotFound);
                    }
                    Err(e) => return Err(SecretError::Io(e)),
                }
            }
            Source::Env(_) if path.is_empty() || path.contains('=') || path.contains('\0') => {
                return Err(SecretError::InvalidPath(format!(
                    "`{path}` is not a variable name"
                )));
            }
            Source::Env(prefix) => {
                std::env::var(format!("{prefix}{path}")).map_err(|_| SecretError::NotFound)?
            }
        };
        Ok(Fetched {
            value: SecretString::from(value),
            field: "value".to_owned(),
            version: None,
        })
    }

    async fn set(
        &self,
        _path: &str,
        _field: Option<&str>,
        _value: SecretString,
    ) -> Result<SecretMeta, SecretError> {
        Err(SecretError::ReadOnly(self.name.clone()))
    }

    async fn delete(&self, _path: &str) -> Result<Deleted, SecretError> {
        Err(SecretError::ReadOnly(self.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[tokio::test]
    async fn dir_and_env_backends_read_and_refuse_writes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db_password"), "from-file\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let files = Local::new("files", Source::Dir(dir.path().to_owned()));
        let names: Vec<String> = files
            .list(10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["files/db_password"]);
        assert_eq!(
            files
                .get("db_password", None, None)
                .await
                .unwrap()
                .value
                .expose_secret(),
            "from-file"
        );
        assert!(matches!(
            files.get("missing", None, None).await,
            Err(SecretError::NotFound)
        ));
        for bad in ["../etc/passwd", ".hidden", "a/b", ""] {
            assert!(
                matches!(
                    files.get(bad, None, None).await,
                    Err(SecretError::InvalidPath(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            files
                .set("x", None, SecretString::from("v".to_owned()))
                .await,
            Err(SecretError::ReadOnly(_))
        ));
        assert!(!files.writable());

        // Cargo sets CARGO_PKG_* for test runs; no need to change the environment.
        let env = Local::new("env", Source::Env("CARGO_PKG_".to_owned()));
        assert_eq!(
            env.get("NAME", None, None)
                .await
                .unwrap()
                .value
                .expose_secret(),
            "mcp-secrets"
        );
        assert!(
            env.list(100)
                .await
                .unwrap()
                .iter()
                .any(|m| m.name == "env/NAME")
        );
        assert!(matches!(
            env.get("NO_SUCH_SUFFIX", None, None).await,
            Err(SecretError::NotFound)
        ));
        assert!(matches!(
            env.get("", None, None).await,
            Err(SecretError::InvalidPath(_))
        ));
        assert_eq!(env.kind(), "env");
        assert!(matches!(
            env.delete("x").await,
            Err(SecretError::ReadOnly(_))
        ));
    }
}
