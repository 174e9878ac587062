//! The lock file of pins (`master.pins_file`): `[downstream]` tables of `"kind:name" = "sha256"`,
//! as `master_exportToolPins` writes it.

use std::collections::BTreeMap;
use std::path::Path;

use super::{DefKind, PinKey, PinsError};

/// Reads a lock file: `[downstream]` tables of `"kind:name" = "sha256 hex"`.
pub(super) fn read(path: &Path) -> Result<Vec<(PinKey, String)>, PinsError> {
    let err = |why: String| PinsError::LockFile {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let doc: BTreeMap<String, BTreeMap<String, String>> =
        toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for (downstream, entries) in doc {
        for (k, digest) in entries {
            let Some((kind, name)) = k.split_once(':') else {
                return Err(err(format!(
                    "entry `{k}` of [{downstream}] must be `kind:name` (tool:, prompt:, resource_template:)"
                )));
            };
            let kind = DefKind::parse(kind).ok_or_else(|| {
                err(format!(
                    "entry `{k}` of [{downstream}]: kind `{kind}` is not tool, prompt or resource_template"
                ))
            })?;
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(format!(
                    "entry `{k}` of [{downstream}]: `{digest}` is not a SHA-256 hex digest"
                )));
            }
            out.push((
                PinKey {
                    downstream: downstream.clone(),
                    kind,
                    name: name.to_owned(),
                },
                digest.to_ascii_lowercase(),
            ));
        }
    }
    Ok(out)
}
