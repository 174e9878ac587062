//! API keys read from files (Docker secrets), re-read when the file changes, held as
//! [`SecretString`] and scrubbed from anything a provider sends back.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mcp_runtime::files::FileStamp;
use secrecy::{ExposeSecret, SecretString};

/// One provider's key file.
pub struct KeyFile {
    path: PathBuf,
    cached: Mutex<Option<(FileStamp, SecretString)>>,
}

impl KeyFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key, re-read when the file changed; `None` when the file is missing or empty.
    pub fn get(&self) -> Option<SecretString> {
        let stamp = FileStamp::of(&self.path).ok()?;
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, key)) = cached.as_ref()
            && *s == stamp
        {
            return Some(key.clone());
        }
        let raw = SecretString::from(std::fs::read_to_string(&self.path).ok()?);
        let key = raw.expose_secret().trim();
        if key.is_empty() {
            *cached = None;
            return None;
        }
        let key = SecretString::from(key.to_owned());
        *cached = Some((stamp, key.clone()));
        Some(key)
    }

    pub fn present(&self) -> bool {
        self.get().is_some()
    }
}

/// Removes every occurrence of `key` from a provider's text.
pub fn scrub(text: &str, key: Option<&SecretString>) -> String {
    match key {
        Some(k) if k.expose_secret().len() >= 4 => {
            text.replace(k.expose_secret(), "[redacted key]")
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_reads_on_change_and_scrubs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let kf = KeyFile::new(p.clone());
        assert!(kf.get().is_none());
        std::fs::write(&p, "first-key\n").unwrap();
        assert_eq!(kf.get().unwrap().expose_secret(), "first-key");
        std::fs::write(&p, "second-key-longer\n").unwrap();
        assert_eq!(kf.get().unwrap().expose_secret(), "second-key-longer");
        std::fs::write(&p, "  \n").unwrap();
        assert!(!kf.present());
        let k = SecretString::from("abcd1234".to_owned());
        assert_eq!(
            scrub("bad key abcd1234!", Some(&k)),
            "bad key [redacted key]!"
        );
    }
}
