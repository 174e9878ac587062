//! What never leaves the service: Secret `data`/`stringData`, the last-applied-configuration
//! annotation (it carries whatever was applied, Secrets included), service-account tokens and
//! kubeconfig credentials in ConfigMaps; plus projections that keep answers small.

use serde_json::{Map, Value, json};

/// Replaces a hidden value.
pub const REDACTED: &str = "[redacted by mcp-k8s]";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn looks_like_credentials(s: &str) -> bool {
    [
        "client-key-data",
        "client-certificate-data",
        "token:",
        "password:",
        "-----BEGIN",
        "auth-provider",
    ]
    .iter()
    .any(|m| s.contains(m))
}

/// Redacts one object (any kind) in place.
pub fn redact(obj: &mut Value) {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut)
            && ann.contains_key(LAST_APPLIED)
        {
            ann.insert(LAST_APPLIED.to_owned(), json!(REDACTED));
        }
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match kind.as_str() {
        "Secret" => {
            for field in ["data", "stringData"] {
                if let Some(Value::Object(data)) = map.get_mut(field) {
                    for v in data.values_mut() {
                        *v = json!(REDACTED);
                    }
                }
            }
        }
        "ConfigMap" => {
            if let Some(Value::Object(data)) = map.get_mut("data") {
                for v in data.values_mut() {
                    if v.as_str().is_some_and(looks_like_credentials) {
                        *v = json!(REDACTED);
                    }
                }
            }
        }
        "ServiceAccount" | "TokenRequest" => {
            if let Some(Value::Object(status)) = map.get_mut("status")
                && status.contains_key("token")
            {
                status.insert("token".to_owned(), json!(REDACTED));
            }
        }
        _ => {}
    }
    // Lists: redact every item.
    if let Some(Value::Array(items)) = map.get_mut("items") {
        for item in items {
            redact(item);
        }
    }
}

/// The value at a dotted path (`status.phase`, `spec.containers.0.image`).
pub fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| match cur {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// Keeps only `fields` (dotted paths) of an object, as a flat map path → value.
pub fn project(v: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for f in fields {
        out.insert(f.clone(), at_path(v, f).cloned().unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// Human age of an RFC 3339 timestamp relative to now: `3d4h`, `12m`, `40s`.
pub fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| {
        time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return String::new();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    match secs {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_last_applied_tokens_and_kubeconfigs_are_hidden() {
        let mut s = json!({
            "kind": "Secret",
            "metadata": {"name": "db", "annotations": {LAST_APPLIED: "{\"data\":{\"pw\":\"aHVudGVyMg==\"}}", "keep": "me"}, "managedFields": [{}]},
            "data": {"pw": "aHVudGVyMg=="},
            "stringData": {"x": "y"}
        });
        redact(&mut s);
        assert_eq!(s["data"]["pw"], REDACTED);
        assert_eq!(s["stringData"]["x"], REDACTED);
        assert_eq!(s["metadata"]["annotations"][LAST_APPLIED], REDACTED);
        assert_eq!(s["metadata"]["annotations"]["keep"], "me");
        assert!(s["metadata"].get("managedFields").is_none());
        let mut list =
            json!({"kind": "SecretList", "items": [{"kind": "Secret", "data": {"a": "b"}}]});
        redact(&mut list);
        assert_eq!(list["items"][0]["data"]["a"], REDACTED);
        let mut cm = json!({"kind": "ConfigMap", "data": {"kubeconfig": "users:\n- user:\n    client-key-data: AAA", "plain": "x"}});
        redact(&mut cm);
        assert_eq!(cm["data"]["kubeconfig"], REDACTED);
        assert_eq!(cm["data"]["plain"], "x");
    }

    #[test]
    fn projection_and_paths() {
        let v = json!({"a": {"b": [{"c": 1}]}, "s": "x"});
        assert_eq!(at_path(&v, "a.b.0.c"), Some(&json!(1)));
        assert_eq!(
            project(&v, &["s".into(), "nope".into()]),
            json!({"s": "x", "nope": null})
        );
        assert_eq!(age(None), "");
        assert!(age(Some("2020-01-01T00:00:00Z")).ends_with('h'));
    }
}
