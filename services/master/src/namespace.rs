//! Wire names: `<namespace><sep><tool>` for tools and prompts, `<namespace>+<uri>` for resources.
//! Pure functions, so the rules are testable without any network.

/// Characters allowed in a wire name (what Cursor, Claude and OpenAI accept).
pub fn is_valid_wire_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The wire name of `tool` in `namespace` (an empty namespace leaves the name unprefixed).
pub fn wire_name(namespace: &str, sep: &str, tool: &str) -> String {
    if namespace.is_empty() {
        tool.to_owned()
    } else {
        format!("{namespace}{sep}{tool}")
    }
}

/// Why a name cannot be exposed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("`{name}` is {len} characters, over the limit of {max}")]
    TooLong {
        name: String,
        len: usize,
        max: usize,
    },
    #[error("`{name}` contains characters other than A-Z, a-z, 0-9, `_` and `-`")]
    BadCharacters { name: String },
}

/// Checks a wire name against the character set and `max` length.
pub fn check_wire_name(name: &str, max: usize) -> Result<(), NameError> {
    if !is_valid_wire_name(name) {
        return Err(NameError::BadCharacters {
            name: name.to_owned(),
        });
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            name: name.to_owned(),
            len: name.len(),
            max,
        });
    }
    Ok(())
}

/// Seed names that do not follow the dotted rule.
const FIXED_ALIASES: &[(&str, &str, &str)] = &[
    ("execute_workflow", "orchestrator", "executeWorkflow"),
    ("get_system_status", "master", "getSystemStatus"),
];

/// The canonical wire name a call alias stands for, if `name` is an alias. Dotted seed names
/// (`linux.sshExecuteCommand`, `freqtrade.source.getFileContent`) map by replacing dots with `sep`.
pub fn resolve_alias(name: &str, sep: &str) -> Option<String> {
    if let Some((_, ns, tool)) = FIXED_ALIASES.iter().find(|(from, _, _)| *from == name) {
        return Some(wire_name(ns, sep, tool));
    }
    if name.contains('.') {
        let mapped = name.replace('.', sep);
        return is_valid_wire_name(&mapped).then_some(mapped);
    }
    None
}

/// The wire URI of a downstream resource: `<namespace>+<uri>`; unchanged for an empty namespace.
/// `+` is legal in a URI scheme, so the result is still a URI, and the mapping is reversible.
pub fn wire_uri(namespace: &str, uri: &str) -> String {
    if namespace.is_empty() {
        uri.to_owned()
    } else {
        format!("{namespace}+{uri}")
    }
}

/// Splits a wire URI into `(namespace, original uri)` when it starts with a namespace prefix.
pub fn split_wire_uri(uri: &str) -> Option<(&str, &str)> {
    let (ns, rest) = uri.split_once('+')?;
    // A namespace is a plain word; a `+` further into the scheme or path is not ours.
    (!ns.is_empty() && is_valid_wire_name(ns) && !rest.is_empty()).then_some((ns, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names() {
        assert_eq!(wire_name("cmdb", "_", "getHost"), "cmdb_getHost");
        assert_eq!(wire_name("", "_", "getHost"), "getHost");
        assert_eq!(
            wire_name("ai_models", "-", "listModels"),
            "ai_models-listModels"
        );
    }

    #[test]
    fn name_checks() {
        for (name, max, ok) in [
            ("cmdb_getHost", 64, true),
            ("a-b_c9", 64, true),
            ("linux.runCommand", 64, false),
            ("has space", 64, false),
            ("", 64, false),
            ("x".repeat(49).as_str(), 48, false),
            ("x".repeat(48).as_str(), 48, true),
        ] {
            assert_eq!(check_wire_name(name, max).is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn aliases() {
        for (alias, sep, wire) in [
            (
                "linux.sshExecuteCommand",
                "_",
                Some("linux_sshExecuteCommand"),
            ),
            (
                "freqtrade.source.getFileContent",
                "_",
                Some("freqtrade_source_getFileContent"),
            ),
            (
                "ai.models.gemini.generateContent",
                "_",
                Some("ai_models_gemini_generateContent"),
            ),
            (
                "orchestrator.executeWorkflow",
                "_",
                Some("orchestrator_executeWorkflow"),
            ),
            (
                "execute_workflow",
                "_",
                Some("orchestrator_executeWorkflow"),
            ),
            ("get_system_status", "_", Some("master_getSystemStatus")),
            ("cmdb_getHost", "_", None),
            ("bad.na me", "_", None),
        ] {
            assert_eq!(resolve_alias(alias, sep).as_deref(), wire, "{alias}");
        }
    }

    #[test]
    fn uris_round_trip() {
        for (ns, uri) in [("fixture", "test://static-text"), ("cmdb", "file:///a+b")] {
            let w = wire_uri(ns, uri);
            assert_eq!(split_wire_uri(&w), Some((ns, uri)));
        }
        assert_eq!(wire_uri("", "test://x"), "test://x");
        assert_eq!(split_wire_uri("test://x"), None);
    }
}
