//! The demo KeePass database the stack creates on first run (a random password kept in a 0600 file).

use std::io::Write;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use crate::error::SecretsError;
use crate::{BackendConfig, BackendKind, keepass};

pub(crate) fn valid_backend_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A random password for the demo database.
pub(crate) fn generate_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

pub(crate) fn write_private(path: &Path, data: &str) -> std::io::Result<()> {
    let mut f = keepass::create_private(path)?;
    f.write_all(data.as_bytes())?;
    f.sync_all()
}

/// Creates the demo KeePass database and its password file unless they exist; returns the backend
/// config for it.
pub fn ensure_demo(db: &Path, password_file: &Path) -> Result<BackendConfig, SecretsError> {
    let cfg = BackendConfig {
        name: "keepass".to_owned(),
        store: BackendKind::Keepass(keepass::KeepassConfig {
            path: db.to_owned(),
            password_file: Some(password_file.to_owned()),
            key_file: None,
            backup_dir: None,
            keep_backups: 20,
            read_only: false,
        }),
    };
    if db.exists() {
        return Ok(cfg);
    }
    if password_file.exists() {
        return Err(SecretsError::Demo(format!(
            "demo password file {} exists but the demo database {} does not; remove the password file to start afresh",
            password_file.display(),
            db.display()
        )));
    }
    let password = SecretString::from(generate_password());
    write_private(password_file, password.expose_secret()).map_err(|e| {
        SecretsError::Demo(format!("cannot write {}: {e}", password_file.display()))
    })?;
    let demo_pw = SecretString::from(generate_password());
    let entries = [
        keepass::NewEntry {
            group: &["Infra"],
            title: "docker-registry",
            username: "deploy",
            password: demo_pw.expose_secret(),
            url: "https://registry.example.internal",
            notes: "Push credentials for the internal registry (demo).",
            custom: &[],
        },
        keepass::NewEntry {
            group: &["Infra"],
            title: "postgres",
            username: "app",
            password: "demo-postgres-password",
            url: "postgres://db.example.internal:5432/app",
            notes: "Demo database account.",
            custom: &[("port", "5432")],
        },
        keepass::NewEntry {
            group: &["Cloud", "Azure"],
            title: "service-principal",
            username: "00000000-0000-0000-0000-000000000000",
            password: "demo-client-secret",
            url: "https://portal.azure.com",
            notes: "Demo service principal.",
            custom: &[("tenant_id", "11111111-1111-1111-1111-111111111111")],
        },
    ];
    let key = ::keepass::DatabaseKey::new().with_password(password.expose_secret());
    keepass::create_database(db, keepass::new_database_config(), key, &entries)
        .map_err(|e| SecretsError::Demo(e.to_string()))?;
    tracing::warn!(
        message = "Created a demo KeePass database; its generated password is in the password file (0600). Configure [[secrets.backend]] for real use.",
        database = %db.display(),
        password_file = %password_file.display(),
    );
    Ok(cfg)
}
