//! Argument errors a person can act on: when a tool's arguments do not deserialize, rmcp answers
//! "failed to deserialize parameters: …"; the runtime turns that into a sentence naming the tool,
//! what was wrong, and the shape the tool expects, drawn from its input schema.

use serde_json::{Map, Value};

/// The prefix rmcp puts before a serde error when a tool's arguments do not fit its type.
pub(crate) const RMCP_ARGUMENT_ERROR: &str = "failed to deserialize parameters:";

/// Longest shape outline put into an error text.
const MAX_OUTLINE: usize = 2000;
/// How deep nested objects are spelled out.
const MAX_DEPTH: usize = 10;

/// The error text for arguments of `tool` that did not deserialize (`detail`: serde's message).
pub(crate) fn explain(tool: &str, detail: &str, schema: &Map<String, Value>) -> String {
    let detail = detail.trim().trim_end_matches('.');
    let mut outline = outline(&Value::Object(schema.clone()), schema, 0);
    if outline.len() > MAX_OUTLINE {
        outline.truncate(outline.floor_char_boundary(MAX_OUTLINE));
        outline.push_str(" …");
    }
    format!(
        "invalid arguments for `{tool}`: {detail}. Expected arguments: {outline} (`?` marks optional fields; tools/list has the full schema)"
    )
}

/// A compact TypeScript-like outline of a JSON schema: `{name: string, limit?: integer}`.
fn outline(node: &Value, root: &Map<String, Value>, depth: usize) -> String {
    let Some(obj) = node.as_object() else {
        return "any".to_owned();
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix("#/$defs/")
            .and_then(|n| root.get("$defs")?.get(n))
            .or_else(|| {
                r.strip_prefix("#/definitions/")
                    .and_then(|n| root.get("definitions")?.get(n))
            });
        return match target {
            Some(t) if depth < MAX_DEPTH => outline(t, root, depth + 1),
            _ => "object".to_owned(),
        };
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = obj.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .map(|a| outline(a, root, depth))
                .collect();
            return parts.join(" | ");
        }
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ if obj.contains_key("properties") => vec!["object"],
        _ => vec![],
    };
    if types.is_empty() {
        return "any".to_owned();
    }
    types
        .iter()
        .map(|t| match *t {
            "object" => object_outline(obj, root, depth),
            "array" => match obj.get("items") {
                Some(items) if depth < MAX_DEPTH => {
                    format!("[{}]", outline(items, root, depth + 1))
                }
                _ => "array".to_owned(),
            },
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn object_outline(obj: &Map<String, Value>, root: &Map<String, Value>, depth: usize) -> String {
    let Some(props) = obj.get("properties").and_then(Value::as_object) else {
        return "object".to_owned();
    };
    if depth >= MAX_DEPTH {
        return "{…}".to_owned();
    }
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Required fields first, then the optional ones, each by name: the same order whatever map
    // the schema came in.
    let mut entries: Vec<(&String, &Value)> = props.iter().collect();
    entries.sort_by_key(|(name, _)| (!required.contains(&name.as_str()), name.as_str()));
    let fields: Vec<String> = entries
        .into_iter()
        .map(|(name, s)| {
            let mark = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            format!("{name}{mark}: {}", outline(s, root, depth + 1))
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn outlines_required_optional_nested_and_refs() {
        let s = schema(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "limit": {"type": ["integer", "null"]},
                "turns": {"type": "array", "items": {"$ref": "#/$defs/Turn"}},
                "mode": {"enum": ["a", "b"]},
                "system": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}]}
            },
            "required": ["name"],
            "$defs": {"Turn": {"type": "object", "properties": {"role": {"type": "string"}, "text": {"type": "string"}}, "required": ["role"]}}
        }));
        let text = explain("t_x", "unknown field `foo`.", &s);
        assert_eq!(
            text,
            "invalid arguments for `t_x`: unknown field `foo`. Expected arguments: {name: string, limit?: integer, mode?: \"a\" | \"b\", system?: string | [{text: string}], turns?: [{role: string, text?: string}]} (`?` marks optional fields; tools/list has the full schema)"
        );
    }

    #[test]
    fn a_huge_schema_is_cut_visibly() {
        let props: Map<String, Value> = (0..500)
            .map(|i| (format!("field_{i}"), json!({"type": "string"})))
            .collect();
        let text = explain(
            "t",
            "x",
            &schema(json!({"type": "object", "properties": props})),
        );
        assert!(text.len() < MAX_OUTLINE + 300, "{}", text.len());
        assert!(text.contains(" …"), "{text}");
    }
}
