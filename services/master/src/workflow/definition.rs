//! Workflow definitions: parsing (YAML or JSON), validation before anything runs, and rendering a
//! step's parameters from the run's inputs and earlier results with minijinja.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workflow definition that cannot be parsed, loaded or rendered; the text says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DefinitionError(pub String);

impl From<String> for DefinitionError {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for DefinitionError {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// Most steps one definition may have.
pub const MAX_STEPS: usize = 200;

/// A workflow: inputs and steps.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The workflow's name; the seed's integration test calls it `id`.
    #[serde(alias = "id")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    pub steps: Vec<StepDef>,
}

/// One declared input.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// string, number, integer, boolean, object or array (any when absent).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Used when the caller gives none; an input without a default is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// What a failed step does to its run.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The run fails; steps not started yet never run.
    #[default]
    Fail,
    /// The run goes on; dependants run and see `steps.<id>.error`.
    Continue,
}

/// Retries of a failed step: a count of extra attempts, or `{attempts, delay_ms}`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Retry {
    Count(u32),
    Spec {
        attempts: u32,
        #[serde(default = "default_retry_delay")]
        delay_ms: u64,
    },
}

fn default_retry_delay() -> u64 {
    1000
}

impl Retry {
    /// Extra attempts after the first, and the pause between attempts.
    pub fn plan(&self) -> (u32, u64) {
        match *self {
            Retry::Count(n) => (n, default_retry_delay()),
            Retry::Spec { attempts, delay_ms } => (attempts, delay_ms),
        }
    }
}

/// One step: a tool call of a service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Unique within the workflow; steps without one (the seed's shapes) are named `step1`,
    /// `step2`, … by position.
    #[serde(default)]
    pub id: String,
    /// The service's namespace at master (`linux`, `k8s`, `secrets`, …).
    pub service: String,
    /// The service's tool (`runCommand`, `list_pods`, …).
    pub tool: String,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Seconds one attempt may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub on_error: OnError,
    /// A human approves the call before it runs.
    #[serde(default)]
    pub approval: bool,
    /// The result is a secret: kept in memory only, never checkpointed or shown; fetched again
    /// after a restart. Implied for tools named `getSecret`.
    #[serde(default)]
    pub secret_result: bool,
}

impl StepDef {
    /// Whether the step's result is a secret (never checkpointed nor shown).
    pub fn secret(&self) -> bool {
        self.secret_result || self.tool == "getSecret"
    }
}

/// What validation needs to know about a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInfo {
    /// Canonical wire name at master.
    pub wire: String,
    /// Read-only or idempotent: safe to run again after a crash.
    pub rerunnable: bool,
}

/// Parses a definition from YAML or JSON text (JSON is YAML).
pub fn parse(text: &str) -> Result<Definition, DefinitionError> {
    serde_yaml_ng::from_str(text)
        .map(with_step_ids)
        .map_err(|e| DefinitionError(format!("not a valid workflow definition: {e}")))
}

/// A definition from a JSON value (an object passed to `orchestrator_executeWorkflow`).
pub fn from_value(v: Value) -> Result<Definition, DefinitionError> {
    serde_json::from_value(v)
        .map(with_step_ids)
        .map_err(|e| DefinitionError(format!("not a valid workflow definition: {e}")))
}

/// Names steps that have no id after their position (`step1`, `step2`, …), skipping ids that
/// other steps already use.
fn with_step_ids(mut def: Definition) -> Definition {
    let mut taken: BTreeSet<String> = def.steps.iter().map(|s| s.id.clone()).collect();
    for (i, step) in def.steps.iter_mut().enumerate() {
        if step.id.is_empty() {
            let id = (i + 1..)
                .map(|n| format!("step{n}"))
                .find(|id| !taken.contains(id))
                .unwrap_or_default();
            taken.insert(id.clone());
            step.id = id;
        }
    }
    def
}

/// The template files of a directory (`*.yaml`, `*.yml`, `*.json`), sorted; none when it is missing.
pub fn template_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, DefinitionError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(DefinitionError(format!(
                "workflows directory {}: {e}",
                dir.display()
            )));
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// Loads every template file of a directory, by name: the good ones, and one error per broken
/// file (or duplicate name) naming it.
pub fn load_dir_lenient(dir: &Path) -> (BTreeMap<String, Definition>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    let paths = match template_files(dir) {
        Ok(p) => p,
        Err(e) => return (out, vec![e.to_string()]),
    };
    for p in paths {
        let loaded = std::fs::read_to_string(&p)
            .map_err(|e| DefinitionError(e.to_string()))
            .and_then(|text| parse(&text))
            .and_then(|def| {
                check_static(&def)
                    .map(|()| def)
                    .map_err(|e| DefinitionError(e.join("; ")))
            });
        match loaded {
            Ok(def) if out.contains_key(&def.name) => errors.push(format!(
                "workflow {}: a second workflow named `{}`",
                p.display(),
                def.name
            )),
            Ok(def) => {
                out.insert(def.name.clone(), def);
            }
            Err(e) => errors.push(format!("workflow {}: {e}", p.display())),
        }
    }
    (out, errors)
}

/// Loads every template file of a directory, by name; a broken file is an error naming it.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Definition>, DefinitionError> {
    let (out, errors) = load_dir_lenient(dir);
    match errors.into_iter().next() {
        Some(e) => Err(DefinitionError(e)),
        None => Ok(out),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Every template string inside a parameter value, with its JSON path.
fn strings<'a>(path: String, v: &'a Value, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) if s.contains("{{") || s.contains("{%") => out.push((path, s)),
        Value::Object(m) => {
            for (k, v) in m {
                strings(format!("{path}.{k}"), v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                strings(format!("{path}[{i}]"), v, out);
            }
        }
        _ => {}
    }
}

/// The expression of a string that is exactly one `{{ … }}`, whose value keeps its JSON type.
fn whole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then(|| inner.trim())
}

/// Steps each step transitively needs.
pub(crate) fn ancestors(def: &Definition) -> HashMap<&str, BTreeSet<&str>> {
    let by_id: HashMap<&str, &StepDef> = def.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for s in &def.steps {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = s.needs.iter().map(String::as_str).collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n)
                && let Some(d) = by_id.get(n)
            {
                stack.extend(d.needs.iter().map(String::as_str));
            }
        }
        out.insert(s.id.as_str(), seen);
    }
    out
}

/// Checks that need no gateway: names, ids, needs, cycles, templates and what they refer to.
pub fn check_static(def: &Definition) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if def.name.trim().is_empty() {
        errors.push("`name` is empty".to_owned());
    }
    if def.steps.is_empty() {
        errors.push("a workflow needs at least one step".to_owned());
    }
    if def.steps.len() > MAX_STEPS {
        errors.push(format!(
            "{} steps; at most {MAX_STEPS} are allowed",
            def.steps.len()
        ));
    }
    for name in def.inputs.keys() {
        if !is_identifier(name) {
            errors.push(format!(
                "input `{name}`: use letters, digits and `_` (templates read it as inputs.{name})"
            ));
        }
        if mcp_runtime::redact::is_secret_key(name) {
            errors.push(format!(
                "input `{name}` looks like a secret; inputs are checkpointed, so fetch it in a step (secrets getSecret) instead"
            ));
        }
    }
    for (name, spec) in &def.inputs {
        if let Some(kind) = &spec.kind
            && !matches!(
                kind.as_str(),
                "string" | "number" | "integer" | "boolean" | "object" | "array"
            )
        {
            errors.push(format!(
                "input `{name}`: unknown type `{kind}` (string, number, integer, boolean, object, array)"
            ));
        }
    }
    let mut ids = BTreeSet::new();
    for s in &def.steps {
        if !is_identifier(&s.id) {
            errors.push(format!(
                "step id `{}`: use letters, digits and `_`, starting with a letter (templates read it as steps.{})",
                s.id, s.id
            ));
        }
        if !ids.insert(s.id.as_str()) {
            errors.push(format!("step id `{}` is used twice", s.id));
        }
        if let Some(t) = s.timeout
            && !(t > 0.0 && t <= 86_400.0)
        {
            errors.push(format!(
                "step `{}`: timeout must be between 0 and 86400 seconds",
                s.id
            ));
        }
        if let Some(r) = s.retry
            && r.plan().0 > 20
        {
            errors.push(format!("step `{}`: at most 20 retries", s.id));
        }
    }
    for s in &def.steps {
        for n in &s.needs {
            if n == &s.id {
                errors.push(format!("step `{}` needs itself", s.id));
            } else if !ids.contains(n.as_str()) {
                errors.push(format!("step `{}` needs `{n}`, which is not a step", s.id));
            }
        }
    }
    if let Some(cycle) = find_cycle(def) {
        errors.push(format!("the steps form a cycle: {}", cycle.join(" → ")));
    }
    if errors.is_empty() {
        let anc = ancestors(def);
        let env = env();
        for s in &def.steps {
            let mut found = Vec::new();
            let params = Value::Object(s.params.clone());
            strings(format!("steps.{}.params", s.id), &params, &mut found);
            for (path, text) in found {
                let vars = match whole_expression(text) {
                    Some(expr) => env
                        .compile_expression(expr)
                        .map(|e| e.undeclared_variables(true)),
                    None => env
                        .template_from_str(text)
                        .map(|t| t.undeclared_variables(true)),
                };
                let vars = match vars {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(format!("{path}: bad template: {e}"));
                        continue;
                    }
                };
                for v in vars {
                    let mut parts = v.split('.');
                    match (parts.next(), parts.next()) {
                        (Some("inputs"), Some(name)) if def.inputs.contains_key(name) => {}
                        (Some("inputs"), Some(name)) => errors.push(format!(
                            "{path}: uses inputs.{name}, which the workflow does not declare"
                        )),
                        (Some("inputs"), None) => {}
                        (Some("steps"), Some(id)) if anc[s.id.as_str()].contains(id) => {}
                        (Some("steps"), Some(id)) if ids.contains(id) => errors.push(format!(
                            "{path}: uses steps.{id}, but step `{}` does not need `{id}` (add it to needs)",
                            s.id
                        )),
                        (Some("steps"), Some(id)) => {
                            errors.push(format!("{path}: uses steps.{id}, which is not a step"))
                        }
                        (Some("steps"), None) => errors.push(format!(
                            "{path}: use steps.<id>, not the whole steps map"
                        )),
                        (Some(other), _) => errors.push(format!(
                            "{path}: unknown variable `{other}` (templates see inputs.<name> and steps.<id>.result/.text/.status/.error)"
                        )),
                        (None, _) => {}
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// One cycle among the steps, if any (ids in order, the first repeated at the end).
fn find_cycle(def: &Definition) -> Option<Vec<String>> {
    let by_id: HashMap<&str, &StepDef> = def.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    // 0 unvisited, 1 on the stack, 2 done.
    let mut state: HashMap<&str, u8> = HashMap::new();
    fn visit<'a>(
        id: &'a str,
        by_id: &HashMap<&'a str, &'a StepDef>,
        state: &mut HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(id) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| *p == id).unwrap_or(0);
                let mut c: Vec<String> = path[start..].iter().map(|s| (*s).to_owned()).collect();
                c.push(id.to_owned());
                return Some(c);
            }
            _ => {}
        }
        state.insert(id, 1);
        path.push(id);
        if let Some(s) = by_id.get(id) {
            for n in &s.needs {
                if by_id.contains_key(n.as_str())
                    && let Some(c) = visit(n, by_id, state, path)
                {
                    return Some(c);
                }
            }
        }
        path.pop();
        state.insert(id, 2);
        None
    }
    for s in &def.steps {
        if let Some(c) = visit(&s.id, &by_id, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// The inputs of a run: given values checked against the declaration, defaults filled in.
pub fn bind_inputs(
    def: &Definition,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = Map::new();
    for k in given.keys() {
        if !def.inputs.contains_key(k) {
            let known: Vec<&str> = def.inputs.keys().map(String::as_str).collect();
            errors.push(format!(
                "unknown input `{k}` (this workflow takes: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    for (name, spec) in &def.inputs {
        let v = match (given.get(name), &spec.default) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => {
                errors.push(format!("input `{name}` is required"));
                continue;
            }
        };
        let ok = match spec.kind.as_deref() {
            Some("string") => v.is_string(),
            Some("number") => v.is_number(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("boolean") => v.is_boolean(),
            Some("object") => v.is_object(),
            Some("array") => v.is_array(),
            _ => true,
        };
        if !ok {
            errors.push(format!(
                "input `{name}` must be a {}, got {v}",
                spec.kind.as_deref().unwrap_or("value")
            ));
        }
        out.insert(name.clone(), v);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Renders every template string of `params` against `ctx` (`{inputs, steps}`); a string that is
/// exactly one `{{ expression }}` keeps the expression's JSON type.
pub fn render(
    params: &Map<String, Value>,
    ctx: &Value,
) -> Result<Map<String, Value>, DefinitionError> {
    let env = env();
    fn walk(
        env: &Environment<'_>,
        path: &str,
        v: &Value,
        ctx: &Value,
    ) -> Result<Value, DefinitionError> {
        Ok(match v {
            Value::String(s) if s.contains("{{") || s.contains("{%") => {
                if let Some(expr) = whole_expression(s) {
                    let e = env
                        .compile_expression(expr)
                        .map_err(|e| format!("{path}: {e}"))?;
                    let out = e.eval(ctx).map_err(|e| format!("{path}: {e}"))?;
                    if out.is_undefined() {
                        return Err(DefinitionError::from(format!(
                            "{path}: `{expr}` is undefined"
                        )));
                    }
                    serde_json::to_value(&out).map_err(|e| format!("{path}: {e}"))?
                } else {
                    Value::String(env.render_str(s, ctx).map_err(|e| format!("{path}: {e}"))?)
                }
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), walk(env, &format!("{path}.{k}"), v, ctx)?)))
                    .collect::<Result<_, DefinitionError>>()?,
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| walk(env, &format!("{path}[{i}]"), v, ctx))
                    .collect::<Result<_, DefinitionError>>()?,
            ),
            other => other.clone(),
        })
    }
    match walk(&env, "params", &Value::Object(params.clone()), ctx)? {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(yaml: &str) -> Definition {
        parse(yaml).expect("parses")
    }

    #[test]
    fn shipped_templates_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
        let all = load_dir(&dir).expect("the shipped workflows load");
        assert!(all.contains_key("deploy_application"));
        assert!(all.contains_key("uptime_list_pods"));
    }

    #[test]
    fn the_seeds_shapes_parse_with_ids_by_position() {
        let d = from_value(json!({"id": "test-workflow", "steps": [
            {"service": "linux", "tool": "runCommand", "params": {"command": "uptime"}},
            {"id": "step1", "service": "cmdb", "tool": "listHosts"},
            {"service": "cmdb", "tool": "getHost", "params": {"name": "aicrusher"}}
        ]}))
        .unwrap();
        assert_eq!(d.name, "test-workflow");
        let ids: Vec<&str> = d.steps.iter().map(|s| s.id.as_str()).collect();
        // An id given by the definition is kept; the others take the next free `step<n>`.
        assert_eq!(ids, ["step2", "step1", "step3"]);
        assert!(check_static(&d).is_ok());
        let t = def(
            "name: seed-template\ndescription: the seed's template shape\nsteps:\n - {service: linux, tool: runCommand, params: {command: uptime}}",
        );
        assert_eq!(t.steps[0].id, "step1");
        assert_eq!(t.description, "the seed's template shape");
        let both = from_value(json!({"id": "a", "name": "b", "steps": []}))
            .unwrap_err()
            .to_string();
        assert!(both.contains("duplicate field `name`"), "{both}");
    }

    #[test]
    fn static_errors_are_all_reported() {
        let table: &[(&str, &str)] = &[
            ("name: x\nsteps: []", "at least one step"),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t}\n - {id: a, service: s, tool: t}",
                "used twice",
            ),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t, needs: [b]}",
                "`b`, which is not a step",
            ),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t, needs: [b]}\n - {id: b, service: s, tool: t, needs: [a]}",
                "cycle",
            ),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t, needs: [a]}",
                "needs itself",
            ),
            (
                "name: x\nsteps:\n - {id: a-b, service: s, tool: t}",
                "step id `a-b`",
            ),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t, params: {x: '{{ inputs.nope }}'}}",
                "does not declare",
            ),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t, params: {x: '{{ steps.b.result }}'}}\n - {id: b, service: s, tool: t}",
                "does not need `b`",
            ),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t, params: {x: '{{ unclosed'}}",
                "bad template",
            ),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t, params: {x: '{{ env.HOME }}'}}",
                "unknown variable `env`",
            ),
            (
                "name: x\ninputs: {api_token: {type: string}}\nsteps:\n - {id: a, service: s, tool: t}",
                "looks like a secret",
            ),
            (
                "name: x\nsteps:\n - {id: a, service: s, tool: t, timeout: -1}",
                "timeout",
            ),
        ];
        for (yaml, want) in table {
            let errors = check_static(&def(yaml)).expect_err(yaml);
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{yaml}: {errors:?}"
            );
        }
        assert!(parse("name: x\nsteps:\n - {id: a, service: s, tool: t, bogus: 1}").is_err());
        // A transitive need is enough to read a step's result.
        let ok = def(
            "name: x\nsteps:\n - {id: a, service: s, tool: t}\n - {id: b, service: s, tool: t, needs: [a]}\n - {id: c, service: s, tool: t, needs: [b], params: {x: '{{ steps.a.text }}'}}",
        );
        check_static(&ok).expect("valid");
    }

    #[test]
    fn inputs_bind_with_defaults_and_types() {
        let d = def(
            "name: x\ninputs:\n  ns: {type: string, default: default}\n  n: {type: integer}\nsteps:\n - {id: a, service: s, tool: t}",
        );
        let bound = bind_inputs(&d, json!({"n": 3}).as_object().unwrap()).unwrap();
        assert_eq!(Value::Object(bound), json!({"ns": "default", "n": 3}));
        let errors = bind_inputs(&d, json!({"n": "3", "x": 1}).as_object().unwrap()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("must be a integer")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("unknown input `x`")),
            "{errors:?}"
        );
        assert!(bind_inputs(&d, &Map::new()).unwrap_err()[0].contains("`n` is required"));
    }

    #[test]
    fn render_keeps_types_of_whole_expressions() {
        let ctx = json!({"inputs": {"ns": "prod", "n": 3}, "steps": {"a": {"result": {"rows": [1, 2]}, "text": "up 3 days"}}});
        let params = json!({
            "namespace": "{{ inputs.ns }}",
            "replicas": "{{ inputs.n }}",
            "rows": "{{ steps.a.result.rows }}",
            "msg": "host says: {{ steps.a.text }} in {{ inputs.ns }}",
            "nested": [{"x": "{{ inputs.n + 1 }}"}],
            "plain": 7
        });
        let out = render(params.as_object().unwrap(), &ctx).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"namespace": "prod", "replicas": 3, "rows": [1, 2], "msg": "host says: up 3 days in prod", "nested": [{"x": 4}], "plain": 7})
        );
        let err = render(
            json!({"x": "{{ steps.b.text }}"}).as_object().unwrap(),
            &ctx,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("params.x"), "{err}");
    }
}
