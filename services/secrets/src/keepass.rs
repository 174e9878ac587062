//! KeePass backend: a KDBX file (KDBX4 read/write, KDBX3 read) unlocked with a password file and/or a
//! key file. The file is re-opened when it changes on disk; a wrong key or a corrupt file leaves the
//! backend unavailable (or serving the last good version) and the file untouched. Writes go to a temp
//! file renamed over the database after a backup of the previous version.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use keepass::config::{DatabaseConfig, DatabaseVersion, KdfConfig};
use keepass::db::{EntryRef, GroupRef, fields};
use keepass::{Database, DatabaseKey};
use mcp_runtime::files::FileStamp;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};

use crate::backend::SetupError;
use crate::backend::{BackendStatus, Deleted, Fetched, SecretBackend, SecretError, SecretMeta};

/// `[[secrets.backend]]` with `kind = "keepass"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeepassConfig {
    /// The .kdbx file.
    pub path: PathBuf,
    /// File holding the master password (a Docker secret such as /run/secrets/keepass_password).
    pub password_file: Option<PathBuf>,
    /// KeePass key file (XML, 32/64-byte or hashed).
    pub key_file: Option<PathBuf>,
    /// Where the previous database is copied before each write (default: `<db dir>/backups`).
    pub backup_dir: Option<PathBuf>,
    /// Backups kept per database (oldest removed first).
    #[serde(default = "default_keep_backups")]
    pub keep_backups: usize,
    /// Refuse setSecret/deleteSecret on this backend.
    #[serde(default)]
    pub read_only: bool,
}

fn default_keep_backups() -> usize {
    20
}

#[derive(Default)]
struct State {
    db: Option<Arc<Database>>,
    /// Stamp of the file `db` was read from.
    loaded: Option<FileStamp>,
    /// Stamp of the file the last failed open saw (so a bad file is not re-read on every call).
    failed: Option<FileStamp>,
    error: Option<String>,
}

/// The key material, kept only in memory, zeroized on drop.
struct KeyMaterial {
    password: Option<SecretString>,
    key_file: Option<SecretBox<Vec<u8>>>,
}

impl KeyMaterial {
    fn read(cfg: &KeepassConfig) -> Result<Self, SetupError> {
        if cfg.password_file.is_none() && cfg.key_file.is_none() {
            return Err(SetupError::from(
                "neither password_file nor key_file is configured".to_owned(),
            ));
        }
        let password = match &cfg.password_file {
            Some(p) => {
                let raw = fs::read_to_string(p)
                    .map_err(|e| format!("cannot read password file {}: {e}", p.display()))?;
                let trimmed = raw.trim_end_matches(['\n', '\r']).to_owned();
                drop(SecretString::from(raw));
                Some(SecretString::from(trimmed))
            }
            None => None,
        };
        let key_file = match &cfg.key_file {
            Some(p) => {
                Some(SecretBox::new(Box::new(fs::read(p).map_err(|e| {
                    format!("cannot read key file {}: {e}", p.display())
                })?)))
            }
            None => None,
        };
        Ok(Self { password, key_file })
    }

    fn key(&self) -> Result<DatabaseKey, SetupError> {
        let mut key = DatabaseKey::new();
        if let Some(p) = &self.password {
            key = key.with_password(p.expose_secret());
        }
        if let Some(k) = &self.key_file {
            key = key
                .with_keyfile(&mut k.expose_secret().as_slice())
                .map_err(|e| format!("key file is not usable: {e}"))?;
        }
        Ok(key)
    }
}

/// A KeePass database as a secret backend.
pub struct Keepass {
    name: String,
    cfg: KeepassConfig,
    state: RwLock<State>,
    /// Serializes re-opens and writes.
    write: tokio::sync::Mutex<()>,
}

impl Keepass {
    /// Opens the database now; failure leaves the backend unavailable, not the service down.
    pub async fn open(name: &str, cfg: KeepassConfig) -> Arc<Self> {
        let kp = Arc::new(Self {
            name: name.to_owned(),
            cfg,
            state: RwLock::new(State::default()),
            write: tokio::sync::Mutex::new(()),
        });
        let _ = kp.refresh().await;
        kp
    }

    fn unavailable(&self, reason: impl Into<String>) -> SecretError {
        SecretError::Unavailable {
            backend: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn read_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        match self.state.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write_state(&self, f: impl FnOnce(&mut State)) {
        match self.state.write() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Re-opens the file if it changed since it was loaded; returns the database to use.
    async fn refresh(&self) -> Result<Arc<Database>, SecretError> {
        let current = FileStamp::of(&self.cfg.path);
        let (db, loaded, failed) = self.read_state(|s| (s.db.clone(), s.loaded, s.failed));
        if let (Some(db), Ok(now)) = (&db, &current)
            && loaded == Some(*now)
        {
            return Ok(db.clone());
        }
        let _guard = self.write.lock().await;
        self.reopen_locked(current, failed).await
    }

    /// Re-opens under the write lock (re-checking, another call may have done it).
    async fn reopen_locked(
        &self,
        current: std::io::Result<FileStamp>,
        failed: Option<FileStamp>,
    ) -> Result<Arc<Database>, SecretError> {
        let current = match current {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("cannot read {}: {e}", self.cfg.path.display());
                return self.fail(None, reason);
            }
        };
        let (db, loaded) = self.read_state(|s| (s.db.clone(), s.loaded));
        if let Some(db) = &db
            && loaded == Some(current)
        {
            return Ok(db.clone());
        }
        if failed == Some(current) {
            let reason = self.read_state(|s| s.error.clone()).unwrap_or_default();
            return match db {
                Some(db) => Ok(db),
                None => Err(self.unavailable(reason)),
            };
        }
        let cfg = self.cfg.clone();
        let opened = tokio::task::spawn_blocking(move || -> Result<Database, SetupError> {
            let key = KeyMaterial::read(&cfg)?.key()?;
            let mut file = File::open(&cfg.path)
                .map_err(|e| format!("cannot open {}: {e}", cfg.path.display()))?;
            Database::open(&mut file, key).map_err(|e| SetupError(describe_open_error(&e)))
        })
        .await
        .map_err(|e| self.unavailable(format!("open task failed: {e}")))?;
        match opened {
            Ok(db) => {
                let db = Arc::new(db);
                let version = db.config.version.to_string();
                self.write_state(|s| {
                    s.db = Some(db.clone());
                    s.loaded = Some(current);
                    s.failed = None;
                    s.error = None;
                });
                tracing::info!(
                    message = "KeePass database opened.",
                    backend = %self.name,
                    path = %self.cfg.path.display(),
                    version = %version,
                );
                Ok(db)
            }
            Err(reason) => self.fail(Some(current), reason.to_string()),
        }
    }

    fn fail(&self, seen: Option<FileStamp>, reason: String) -> Result<Arc<Database>, SecretError> {
        tracing::warn!(
            message = "KeePass database cannot be opened.",
            backend = %self.name,
            path = %self.cfg.path.display(),
            error = %reason,
        );
        let mut last_good = None;
        self.write_state(|s| {
            s.failed = seen;
            s.error = Some(reason.clone());
            last_good = s.db.clone();
        });
        last_good.ok_or_else(|| self.unavailable(reason))
    }

    /// Saves `db` over the file: backup of the current file, temp file, fsync, rename.
    fn save(&self, db: &Database) -> Result<FileStamp, SecretError> {
        if !matches!(db.config.version, DatabaseVersion::KDB4(_)) {
            return Err(SecretError::Unsupported(format!(
                "backend `{}` is a {} database, which can be read but not written; save it once as KDBX 4 in KeePassXC to enable writes",
                self.name, db.config.version
            )));
        }
        let key = KeyMaterial::read(&self.cfg)
            .and_then(|k| k.key())
            .map_err(|e| self.unavailable(e.to_string()))?;
        // The writer speaks KDBX 4.1; 4.0 files (KeePassXC 2.7 writes them) are upgraded, which
        // KeePass 2.48+ and KeePassXC 2.7+ read.
        let upgraded;
        let db = if db.config.version == DatabaseVersion::KDB4(0) {
            let mut copy = db.clone();
            copy.config.version = DatabaseVersion::KDB4(1);
            tracing::info!(message = "Writing a KDBX 4.0 database as KDBX 4.1.", backend = %self.name);
            upgraded = copy;
            &upgraded
        } else {
            db
        };
        let mut bytes = Vec::new();
        db.save(&mut bytes, key)
            .map_err(|e| SecretError::Unsupported(format!("cannot encode the database: {e}")))?;
        self.backup()?;
        let path = &self.cfg.path;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("db"),
            std::process::id()
        ));
        let result = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(SecretError::Io(e));
        }
        Ok(FileStamp::of(path)?)
    }

    fn backup_dir(&self) -> PathBuf {
        self.cfg.backup_dir.clone().unwrap_or_else(|| {
            self.cfg
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join("backups")
        })
    }

    /// Copies the current file into the backup directory (0600) and prunes old backups.
    fn backup(&self) -> Result<PathBuf, SecretError> {
        let dir = self.backup_dir();
        fs::create_dir_all(&dir)?;
        let stem = self
            .cfg
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("db")
            .to_owned();
        let now = time::OffsetDateTime::now_utc();
        let name = format!(
            "{stem}-{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z.kdbx",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.nanosecond()
        );
        let target = dir.join(name);
        let data = fs::read(&self.cfg.path)?;
        let mut f = create_private(&target)?;
        f.write_all(&data)?;
        f.sync_all()?;
        let mut backups: Vec<PathBuf> = fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{stem}-")) && n.ends_with(".kdbx"))
            })
            .collect();
        backups.sort();
        let keep = self.cfg.keep_backups.max(1);
        if backups.len() > keep {
            for old in &backups[..backups.len() - keep] {
                let _ = fs::remove_file(old);
            }
        }
        Ok(target)
    }

    /// Applies `change` to a copy of the database and writes it; the in-memory state follows only
    /// once the file is safely replaced.
    async fn modify<T: Send + 'static>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut Database) -> Result<T, SecretError> + Send + 'static,
    ) -> Result<T, SecretError> {
        if self.cfg.read_only {
            return Err(SecretError::ReadOnly(self.name.clone()));
        }
        let _guard = self.write.lock().await;
        let current = FileStamp::of(&self.cfg.path);
        let failed = self.read_state(|s| s.failed);
        let db = self.reopen_locked(current, failed).await?;
        // Never write over a file we could not read: it may be a newer version someone else saved.
        let on_disk = FileStamp::of(&self.cfg.path)?;
        if self.read_state(|s| s.loaded) != Some(on_disk) {
            let reason = self.read_state(|s| s.error.clone()).unwrap_or_default();
            return Err(self.unavailable(format!(
                "the file on disk could not be opened ({reason}); refusing to overwrite it"
            )));
        }
        let me = self.clone();
        let (out, db, new_stamp) = tokio::task::spawn_blocking(move || {
            let mut db = (*db).clone();
            let out = change(&mut db)?;
            let s = me.save(&db)?;
            Ok::<_, SecretError>((out, db, s))
        })
        .await
        .map_err(|e| self.unavailable(format!("write task failed: {e}")))??;
        self.write_state(|s| {
            s.db = Some(Arc::new(db));
            s.loaded = Some(new_stamp);
            s.failed = None;
            s.error = None;
        });
        Ok(out)
    }
}

fn describe_open_error(e: &keepass::db::DatabaseOpenError) -> String {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("key") || lower.contains("hmac") || lower.contains("credentials") {
        format!("wrong password or key file ({text})")
    } else {
        format!("the file is not a readable KeePass database ({text})")
    }
}

/// Splits `Group/Sub/Title` into the group path and the title.
fn split_path(path: &str) -> Result<(Vec<&str>, &str), SecretError> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(SecretError::InvalidPath(format!(
            "`{path}`: use Group/Sub/Title with no empty parts"
        )));
    }
    let (title, groups) = parts
        .split_last()
        .ok_or_else(|| SecretError::InvalidPath("empty path".to_owned()))?;
    Ok((groups.to_vec(), title))
}

fn find_entry<'a>(db: &'a Database, path: &str) -> Result<EntryRef<'a>, SecretError> {
    let (groups, title) = split_path(path)?;
    let root = db.root();
    let group = root.group_by_path(&groups).ok_or(SecretError::NotFound)?;
    if is_recycle_bin(db, &group) {
        return Err(SecretError::NotFound);
    }
    let mut exact = None;
    let mut folded = None;
    for e in group.entries() {
        match e.get_title() {
            Some(t) if t == title => exact = Some(e.id()),
            Some(t) if t.eq_ignore_ascii_case(title) && folded.is_none() => folded = Some(e.id()),
            _ => {}
        }
    }
    exact
        .or(folded)
        .and_then(|id| db.entry(id))
        .ok_or(SecretError::NotFound)
}

fn is_recycle_bin(db: &Database, g: &GroupRef<'_>) -> bool {
    db.meta.recyclebin_uuid.is_some_and(|u| g.id().uuid() == u)
}

/// The KeePass field behind a user-facing field name.
fn field_key(entry: &EntryRef<'_>, field: &str) -> Option<String> {
    let known = match field.to_ascii_lowercase().as_str() {
        "password" => Some(fields::PASSWORD),
        "username" | "user" => Some(fields::USERNAME),
        "url" => Some(fields::URL),
        "notes" => Some(fields::NOTES),
        "title" => Some(fields::TITLE),
        _ => None,
    };
    if let Some(k) = known {
        return Some(k.to_owned());
    }
    entry
        .fields
        .keys()
        .find(|k| k.as_str() == field)
        .or_else(|| entry.fields.keys().find(|k| k.eq_ignore_ascii_case(field)))
        .cloned()
}

fn user_field_name(key: &str) -> String {
    match key {
        fields::PASSWORD => "password".to_owned(),
        fields::USERNAME => "username".to_owned(),
        fields::URL => "url".to_owned(),
        fields::NOTES => "notes".to_owned(),
        fields::TITLE => "title".to_owned(),
        other => other.to_owned(),
    }
}

fn naive(t: Option<chrono::NaiveDateTime>) -> Option<String> {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn meta_of(backend: &str, path: &str, e: &EntryRef<'_>) -> SecretMeta {
    let mut m = SecretMeta::new(backend, path);
    let mut names: Vec<String> = e
        .fields
        .iter()
        .filter(|(k, v)| k.as_str() != fields::TITLE && !v.get().is_empty())
        .map(|(k, _)| user_field_name(k))
        .collect();
    names.sort();
    m.fields = names;
    m.created = naive(e.times.creation);
    m.updated = naive(e.times.last_modification);
    m.tags = e.tags.clone();
    m
}

fn walk(
    db: &Database,
    g: GroupRef<'_>,
    prefix: &str,
    backend: &str,
    out: &mut Vec<SecretMeta>,
    limit: usize,
) {
    for e in g.entries() {
        if out.len() >= limit {
            return;
        }
        if let Some(title) = e.get_title().filter(|t| !t.is_empty() && !t.contains('/')) {
            let path = if prefix.is_empty() {
                title.to_owned()
            } else {
                format!("{prefix}/{title}")
            };
            out.push(meta_of(backend, &path, &e));
        }
    }
    for sub in g.groups() {
        if is_recycle_bin(db, &sub) || sub.name.contains('/') {
            continue;
        }
        let p = if prefix.is_empty() {
            sub.name.clone()
        } else {
            format!("{prefix}/{}", sub.name)
        };
        walk(db, sub, &p, backend, out, limit);
    }
}

#[async_trait]
impl SecretBackend for Arc<Keepass> {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "keepass"
    }

    fn writable(&self) -> bool {
        !self.cfg.read_only
    }

    fn status(&self) -> BackendStatus {
        self.read_state(|s| match (&s.db, &s.error) {
            (Some(_), None) => BackendStatus::ready(),
            (Some(_), Some(e)) => BackendStatus::degraded(format!(
                "serving the last version that opened; re-opening the changed file failed: {e}"
            )),
            (None, Some(e)) => BackendStatus::unavailable(e.clone()),
            (None, None) => BackendStatus::unavailable("not opened yet"),
        })
    }

    async fn list(&self, limit: usize) -> Result<Vec<SecretMeta>, SecretError> {
        let db = self.refresh().await?;
        let mut out = Vec::new();
        walk(&db, db.root(), "", &self.name, &mut out, limit);
        Ok(out)
    }

    async fn get(
        &self,
        path: &str,
        field: Option<&str>,
        version: Option<&str>,
    ) -> Result<Fetched, SecretError> {
        if version.is_some() {
            return Err(SecretError::Unsupported(
                "KeePass entries have no addressable versions; omit `version`".to_owned(),
            ));
        }
        let db = self.refresh().await?;
        let e = find_entry(&db, path)?;
        let asked = field.unwrap_or("password");
        let key = field_key(&e, asked).filter(|k| e.fields.contains_key(k));
        let Some(key) = key else {
            let mut available: Vec<String> = e.fields.keys().map(|k| user_field_name(k)).collect();
            available.sort();
            return Err(SecretError::NoField {
                field: asked.to_owned(),
                available: available.join(", "),
            });
        };
        let value = e.get(&key).unwrap_or_default().to_owned();
        Ok(Fetched {
            value: SecretString::from(value),
            field: user_field_name(&key),
            version: None,
        })
    }

    async fn set(
        &self,
        path: &str,
        field: Option<&str>,
        value: SecretString,
    ) -> Result<SecretMeta, SecretError> {
        let (groups, title) = split_path(path)?;
        let groups: Vec<String> = groups.iter().map(|s| (*s).to_owned()).collect();
        let title = title.to_owned();
        let field = field.unwrap_or("password").to_owned();
        let backend = self.name.clone();
        let full = path.to_owned();
        self.modify(move |db| {
            // Create the groups along the path.
            let gid = ensure_groups(db, &groups);
            let existing = db.group(gid).and_then(|g| {
                g.entries()
                    .find(|e| e.get_title() == Some(title.as_str()))
                    .map(|e| e.id())
            });
            let eid = match existing {
                Some(id) => id,
                None => {
                    let mut g = db.group_mut(gid).ok_or(SecretError::NotFound)?;
                    let mut e = g.add_entry();
                    e.set_unprotected(fields::TITLE, title.clone());
                    e.id()
                }
            };
            let mut entry = db.entry_mut(eid).ok_or(SecretError::NotFound)?;
            let key = field_key(&entry.as_ref(), &field).unwrap_or_else(|| field.clone());
            let protected = !matches!(key.as_str(), fields::TITLE | fields::USERNAME | fields::URL);
            let secret = value.expose_secret().to_owned();
            entry.edit_tracking(|t| {
                if protected {
                    t.set_protected(key.clone(), secret);
                } else {
                    t.set_unprotected(key.clone(), secret);
                }
            });
            let e = db.entry(eid).ok_or(SecretError::NotFound)?;
            Ok(meta_of(&backend, &full, &e))
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<Deleted, SecretError> {
        let full = format!("{}/{path}", self.name);
        let path = path.to_owned();
        self.modify(move |db| {
            let eid = find_entry(db, &path)?.id();
            let bin = db.recycle_bin().map(|g| g.id());
            let mut entry = db.entry_mut(eid).ok_or(SecretError::NotFound)?;
            let outcome = match bin {
                Some(bin) => {
                    entry
                        .move_to(bin)
                        .map_err(|e| SecretError::Unsupported(e.to_string()))?;
                    "recycle_bin"
                }
                None => {
                    entry.remove();
                    "removed"
                }
            };
            Ok(Deleted {
                name: full,
                outcome: outcome.to_owned(),
                recovery_id: None,
                scheduled_purge_date: None,
            })
        })
        .await
    }
}

/// The group at `path` under the root (names matched case-insensitively), created as needed.
fn ensure_groups<S: AsRef<str>>(db: &mut Database, path: &[S]) -> keepass::db::GroupId {
    let mut gid = db.root().id();
    for name in path {
        let name = name.as_ref();
        let existing = db.group(gid).and_then(|g| {
            g.groups()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .map(|c| c.id())
        });
        gid = match existing {
            Some(id) => id,
            None => match db.group_mut(gid) {
                Some(mut parent) => {
                    let mut child = parent.add_group();
                    child.name = name.to_owned();
                    child.id()
                }
                None => return gid,
            },
        };
    }
    gid
}

/// Creates `path` (and its directory) for writing, readable only by the owner; never overwrites.
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// KDF settings for databases this service creates (the demo database, tests): Argon2id at 32 MiB,
/// strong enough for a local file and quick to open.
pub fn new_database_config() -> DatabaseConfig {
    let mut config = DatabaseConfig::default();
    config.kdf_config = KdfConfig::Argon2id {
        iterations: 3,
        memory: 32 * 1024 * 1024,
        parallelism: 2,
        version: argon2::Version::Version13,
    };
    config
}

/// One entry of a new database.
pub struct NewEntry<'a> {
    pub group: &'a [&'a str],
    pub title: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub url: &'a str,
    pub notes: &'a str,
    pub custom: &'a [(&'a str, &'a str)],
}

/// Writes a new KDBX4 database with `entries` (0600, refusing to overwrite an existing file).
pub fn create_database(
    path: &Path,
    config: DatabaseConfig,
    key: DatabaseKey,
    entries: &[NewEntry<'_>],
) -> Result<(), SetupError> {
    let mut db = Database::with_config(config);
    db.root_mut().name = "Root".to_owned();
    for e in entries {
        let gid = ensure_groups(&mut db, e.group);
        let mut g = db.group_mut(gid).ok_or("group vanished")?;
        let mut entry = g.add_entry();
        entry.set_unprotected(fields::TITLE, e.title);
        entry.set_unprotected(fields::USERNAME, e.username);
        entry.set_protected(fields::PASSWORD, e.password);
        entry.set_unprotected(fields::URL, e.url);
        entry.set_protected(fields::NOTES, e.notes);
        for (k, v) in e.custom {
            entry.set_protected(*k, *v);
        }
    }
    let mut f =
        create_private(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    db.save(&mut f, key)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.sync_all()
        .map_err(|e| SetupError(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_groups_and_title() {
        let (g, t) = split_path("Infra/Registry/docker").unwrap();
        assert_eq!(g, vec!["Infra", "Registry"]);
        assert_eq!(t, "docker");
        let (g, t) = split_path("top").unwrap();
        assert!(g.is_empty());
        assert_eq!(t, "top");
        assert!(split_path("Infra//x").is_err());
        assert!(split_path("").is_err());
        assert!(split_path("Infra/").is_err());
    }
}
