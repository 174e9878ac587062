//! The one redactor: what a secret looks like, by key and by content. Master's audit, approvals
//! and workflow checkpoints, and every service's audit and log lines, pass text through here
//! before it is stored or logged.
//!
//! By key: a value under a secret-looking name (`password`, `token`, `apiKey`, …) is replaced
//! whole. By content, in any string: HTTP auth headers (`Authorization`, `Proxy-Authorization`,
//! `X-Api-Key`, cookies), password/token flags (`--password x`, `--password=x`, `--token`,
//! `--api-key`, …, and the short flags of the programs in [`SHORT_FLAGS`]), `user:password@` in
//! URLs, `NAME=value` and `name: value` for secret-looking names (`export`, `env`, `.env` files,
//! YAML, JSON), well-known token formats (AWS access keys, GitHub/GitLab/Slack tokens, Google and
//! OpenAI/Anthropic API keys, JWTs), PEM private keys, and the `data`/`stringData` of Kubernetes
//! Secret manifests. File contents are never kept: under a content key (`content`, `contents`)
//! a string becomes its length and SHA-256, which is what an approver needs to decide.
//!
//! No crate of the field keeps such a table for Rust (the scanners — gitleaks, trufflehog — are Go
//! programs with thousands of rules aimed at repositories), so the table is small and tested here.
//! Redaction over-matches on purpose: a masked word that was not a secret costs nothing.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// What replaces a secret.
pub const MASK: &str = "[REDACTED]";

/// Programs whose short flag takes a password: `(program, flag, attached)`. `attached` means the
/// value follows the flag with no space (`mysql -psecret`); otherwise it is the next word.
pub const SHORT_FLAGS: &[(&str, &str, bool)] = &[
    ("sshpass", "-p", false),
    ("mysql", "-p", true),
    ("mysqldump", "-p", true),
    ("mysqladmin", "-p", true),
    ("mariadb", "-p", true),
    ("redis-cli", "-a", false),
    ("curl", "-b", false),
    ("smbclient", "-U", false),
];

/// Key names whose values are secrets, compared case-insensitively as substrings.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "private",
    "authorization",
    "auth",
    "cookie",
    "session",
    "key_file",
    "passphrase",
];

/// Key names whose string values are file or message contents: kept as length and SHA-256.
const CONTENT_KEYS: &[&str] = &["content", "contents", "file_content", "body"];

/// Whether a JSON key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|s| k.contains(s)) || k == "key" || k == "value"
}

/// Length and SHA-256 of a content that is never stored.
pub fn content_summary(s: &str) -> String {
    format!(
        "[content: {} bytes, sha256 {}]",
        s.len(),
        hex::encode(Sha256::digest(s.as_bytes()))
    )
}

/// A name that looks like it holds a secret (for assignments and flags).
const NAME: &str = r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|pass|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|auth(?:orization)?|cookie|session)[A-Za-z0-9_.-]*";

/// The stricter name for results ([`result_text`]): no `auth` (author), `session` or `pass`
/// (passenger) alone; results are read by people and models, where a masked ordinary word costs.
const RESULT_NAME: &str = r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|authorization|cookie)[A-Za-z0-9_.-]*";

/// A value: quoted, or one word.
const VALUE: &str = r#"(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s'";&|,}\]]+)"#;

struct Rule {
    re: Regex,
    replace: fn(&Captures<'_>) -> String,
}

/// Every rule's pattern in one automaton: one pass tells whether any rule applies at all, so
/// ordinary text (most log lines) costs a single scan.
static ANY: LazyLock<regex::RegexSet> = LazyLock::new(|| set_of(&RULES));
static RESULT_ANY: LazyLock<regex::RegexSet> = LazyLock::new(|| set_of(&RESULT_RULES));

fn set_of(rules: &[Rule]) -> regex::RegexSet {
    regex::RegexSet::new(rules.iter().map(|r| r.re.as_str())).expect("redaction set compiles")
}

fn rule(pattern: &str, replace: fn(&Captures<'_>) -> String) -> Rule {
    Rule {
        re: Regex::new(pattern).expect("redaction pattern compiles"),
        replace,
    }
}

/// Keeps group 1 (what introduces the secret) and masks the rest of the match.
fn keep_prefix(c: &Captures<'_>) -> String {
    format!("{}{MASK}", &c[1])
}

/// Like [`keep_prefix`] for `(prefix)(value)`, but leaves a value that is already masked or is
/// an HTTP auth scheme word (its header rule masked what follows it).
fn keep_prefix_unless_done(c: &Captures<'_>) -> String {
    let v = &c[2];
    let scheme = ["bearer", "basic", "digest", "token", "negotiate"]
        .iter()
        .any(|w| v.eq_ignore_ascii_case(w));
    let masked = v
        .trim_start_matches(['"', '\''])
        .get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case("[redacted"));
    if scheme || masked {
        c[0].to_owned()
    } else {
        format!("{}{MASK}", &c[1])
    }
}

/// [`keep_prefix_unless_done`], also leaving a token count (`input_tokens: 12`,
/// `max_tokens=1024`: a plain number under a name with `tokens` in it).
fn keep_prefix_unless_done_or_number(c: &Captures<'_>) -> String {
    let v = c[2].trim_matches(['"', '\'']);
    let count = c[1].to_ascii_lowercase().contains("tokens");
    if count && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        c[0].to_owned()
    } else {
        keep_prefix_unless_done(c)
    }
}

/// Masks the whole match.
fn mask_all(_: &Captures<'_>) -> String {
    MASK.to_owned()
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| rules(NAME, keep_prefix_unless_done));
static RESULT_RULES: LazyLock<Vec<Rule>> =
    LazyLock::new(|| rules(RESULT_NAME, keep_prefix_unless_done_or_number));

/// The rule table, with `name` for secret-looking names and `assign` for their values.
fn rules(name: &str, assign: fn(&Captures<'_>) -> String) -> Vec<Rule> {
    let mut rules = vec![
        // PEM private keys, with or without their END line.
        rule(
            r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
            |c| format!("-----BEGIN {}----- {MASK} -----END {}-----", &c[1], &c[1]),
        ),
        // HTTP auth headers, in curl -H, raw requests, logs: keep the scheme word.
        rule(
            r#"(?i)((?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|digest|token|negotiate|aws4-hmac-sha256)\s+)?)(?:"[^"\n]*"|[^\s'"\\]+)"#,
            keep_prefix,
        ),
        rule(
            r#"(?i)((?:x-api-key|api-key|x-auth-token|x-vault-token|private-token|x-goog-api-key)\s*:\s*)[^\s'"\\]+"#,
            keep_prefix,
        ),
        rule(r#"(?i)((?:set-)?cookie\s*:\s*)[^\n'"\\]+"#, keep_prefix),
        // user:password@ in URLs.
        rule(
            r#"(?i)([a-z][a-z0-9+.-]*://[^\s/:@'"]*:)[^\s/@'"]+@"#,
            |c| format!("{}{MASK}@", &c[1]),
        ),
        // Long flags: --password x, --password=x, --api-key x, --token=x, ...
        rule(&format!(r"(?i)(--{name}(?:=|\s+))({VALUE})"), assign),
        // curl/wget -u user:password, --user, --proxy-user.
        rule(
            r#"((?:^|\s)(?:-u|-U|--user|--proxy-user|--http-user)(?:=|\s+)['"]?[^\s:'"]+:)[^\s'"]+"#,
            keep_prefix,
        ),
        // Assignments: export TOKEN=x, env API_KEY=x, password: x, "password": "x", token = 'x'.
        rule(
            &format!(r#"(?i)(\b{name}["']?\s*(?:=|:)\s*)({VALUE})"#),
            assign,
        ),
        // Token formats.
        rule(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b", mask_all),
        rule(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", mask_all),
        rule(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b", mask_all),
        rule(r"\bglpat-[A-Za-z0-9_-]{20,}", mask_all),
        rule(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", mask_all),
        rule(r"\bAIza[0-9A-Za-z_-]{35}", mask_all),
        rule(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}", mask_all),
        rule(r"\b[rs]k_live_[A-Za-z0-9]{16,}", mask_all),
        rule(
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
            mask_all,
        ),
    ];
    for (program, flag, attached) in SHORT_FLAGS {
        let p = regex::escape(program);
        let f = regex::escape(flag);
        let (sep, value) = if *attached {
            ("", r"[^\s';&|]+")
        } else {
            (r"\s+", VALUE)
        };
        rules.push(Rule {
            re: Regex::new(&format!(
                r"((?:^|[\s;&|(/]){p}\b[^;&|\n]*?\s{f}{sep}){value}"
            ))
            .expect("short-flag pattern compiles"),
            replace: keep_prefix,
        });
    }
    rules
}

/// Lines of Kubernetes Secret manifests (YAML) under `data:` / `stringData:`.
static SECRET_KIND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*kind:\s*['\x22]?Secret['\x22]?\s*$").expect("compiles"));

/// `text` with every secret it contains masked.
pub fn text(s: &str) -> Cow<'_, str> {
    masked(s, &RULES, &ANY)
}

/// A tool result's `text` with its secrets masked, for the person or model who reads it: the
/// same rules as [`text`] with a stricter idea of a secret-looking name ([`RESULT_NAME`]) and
/// numbers under such names left alone.
pub fn result_text(s: &str) -> Cow<'_, str> {
    masked(s, &RESULT_RULES, &RESULT_ANY)
}

fn masked<'a>(s: &'a str, rules: &[Rule], any: &regex::RegexSet) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(s);
    if SECRET_KIND.is_match(s) {
        out = Cow::Owned(yaml_secret_data(s));
    }
    if !any.is_match(&out) {
        return out;
    }
    for r in rules {
        if r.re.is_match(&out) {
            out = Cow::Owned(r.re.replace_all(&out, r.replace).into_owned());
        }
    }
    out
}

/// Masks the values under `data:`/`stringData:` in every YAML document of kind Secret.
fn yaml_secret_data(s: &str) -> String {
    let mut out = Vec::new();
    for doc in split_documents(s) {
        if !SECRET_KIND.is_match(doc) {
            out.push(doc.to_owned());
            continue;
        }
        let mut masked = Vec::new();
        let mut under: Option<usize> = None;
        for line in doc.split('\n') {
            let indent = line.len() - line.trim_start().len();
            let t = line.trim();
            if let Some(base) = under {
                if t.is_empty() || indent > base {
                    match t.split_once(':') {
                        Some((k, _)) if !t.starts_with('#') => {
                            masked.push(format!("{}{}: {MASK}", &line[..indent], k.trim()));
                        }
                        _ => masked.push(format!("{}{MASK}", &line[..indent])),
                    }
                    continue;
                }
                under = None;
            }
            if let Some((k, rest)) = t.split_once(':')
                && matches!(k.trim(), "data" | "stringData")
            {
                if rest.trim().is_empty() {
                    under = Some(indent);
                    masked.push(line.to_owned());
                } else {
                    // Flow style: data: {a: b}
                    masked.push(format!("{}{}: {MASK}", &line[..indent], k.trim()));
                }
                continue;
            }
            masked.push(line.to_owned());
        }
        out.push(masked.join("\n"));
    }
    out.concat()
}

/// Splits a YAML stream into documents, keeping the `---` separators with the following document.
fn split_documents(s: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in s.split_inclusive('\n') {
        if pos > 0 && line.trim_end() == "---" {
            docs.push(&s[start..pos]);
            start = pos;
        }
        pos += line.len();
    }
    docs.push(&s[start..]);
    docs
}

/// How [`walk`] masks.
struct Masking<'a> {
    /// The replacement of the value under a key, if that key's value is masked.
    at_key: &'a dyn Fn(&str, &Value) -> Option<Value>,
    /// What becomes of the `data`/`stringData` of a Kubernetes Secret object.
    secret_data: &'a dyn Fn(&Value) -> Value,
    /// What becomes of every other string.
    string: &'a dyn Fn(&str) -> String,
}

/// Copies `v` masked as `how` says: the one walk behind [`json`], [`document`] and
/// [`result_document`].
fn walk(v: &Value, how: &Masking<'_>) -> Value {
    match v {
        Value::Object(m) => {
            let is_secret_object = m.get("kind").and_then(Value::as_str) == Some("Secret");
            Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let v = if is_secret_object && matches!(k.as_str(), "data" | "stringData") {
                            (how.secret_data)(v)
                        } else {
                            (how.at_key)(k, v).unwrap_or_else(|| walk(v, how))
                        };
                        (k.clone(), v)
                    })
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| walk(v, how)).collect()),
        Value::String(s) => Value::String((how.string)(s)),
        other => other.clone(),
    }
}

fn mask() -> Value {
    Value::String(MASK.to_owned())
}

/// Copies `v` with secrets masked: values under secret-looking keys, the data of Kubernetes
/// Secret objects, contents under content keys (length and SHA-256), and secrets inside strings.
pub fn json(v: &Value) -> Value {
    walk(
        v,
        &Masking {
            at_key: &|k, v| match v {
                _ if is_secret_key(k) => Some(mask()),
                Value::String(s) if is_content_key(k) => Some(Value::String(content_summary(s))),
                _ => None,
            },
            secret_data: &|_| mask(),
            string: &string,
        },
    )
}

/// Copies a result document with its secrets masked: values under secret names (`password`,
/// `token`, … but not bare `key`/`value`, which results use for ordinary data), the data of
/// Kubernetes Secret objects, and secrets inside strings. Contents are left to the caller (see
/// [`has_content`]).
pub fn document(v: &Value) -> Value {
    walk(
        v,
        &Masking {
            at_key: &|k, _| {
                let lower = k.to_ascii_lowercase();
                SECRET_KEY_PARTS
                    .iter()
                    .any(|s| lower.contains(s))
                    .then(mask)
            },
            secret_data: &|_| mask(),
            string: &|s| text(s).into_owned(),
        },
    )
}

/// Copies a tool result's structured content with its secrets masked for the reader: string
/// values (and arrays of strings) under names [`RESULT_NAME`] matches, the data of Kubernetes
/// Secret objects, and secrets inside every string ([`result_text`]). Numbers, booleans and
/// objects under such names stay (`input_tokens: 12`, `secrets: [{name: …}]`).
pub fn result_document(v: &Value) -> Value {
    static KEY: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(&format!("(?i)^{RESULT_NAME}$")).expect("compiles"));
    walk(
        v,
        &Masking {
            at_key: &|k, v| match v {
                Value::String(_) if KEY.is_match(k) => Some(mask()),
                Value::Array(a) if KEY.is_match(k) && a.iter().all(Value::is_string) => {
                    Some(Value::Array(a.iter().map(|_| mask()).collect()))
                }
                _ => None,
            },
            // The keys of a Secret's data are worth seeing; its values never. A value a service
            // masked already (k8s's own marker) stays as the service wrote it.
            secret_data: &|v| match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k, v)| {
                            let done = v.as_str().is_some_and(|s| {
                                s.get(..9)
                                    .is_some_and(|p| p.eq_ignore_ascii_case("[redacted"))
                            });
                            (k.clone(), if done { v.clone() } else { mask() })
                        })
                        .collect(),
                ),
                _ => mask(),
            },
            string: &|s| result_text(s).into_owned(),
        },
    )
}

/// Whether `v` holds a string under a content key (a file's or message's contents).
pub fn has_content(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| (is_content_key(k) && v.is_string()) || has_content(v)),
        Value::Array(a) => a.iter().any(has_content),
        _ => false,
    }
}

/// Copies `v` masking secrets inside its strings only (keys, structure, numbers and booleans
/// stay), leaving every string for which `keep` is true: for documents whose shape is code, such
/// as a workflow definition with its templates.
pub fn strings(v: &Value, keep: &dyn Fn(&str) -> bool) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), strings(v, keep)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| strings(v, keep)).collect()),
        Value::String(s) if !keep(s) => Value::String(text(s).into_owned()),
        other => other.clone(),
    }
}

fn is_content_key(k: &str) -> bool {
    CONTENT_KEYS.iter().any(|c| k.eq_ignore_ascii_case(c))
}

/// A string value: a JSON document inside it is redacted as JSON, anything else as text.
fn string(s: &str) -> String {
    let t = s.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(s)
    {
        let r = json(&v);
        if r != v {
            return r.to_string();
        }
    }
    text(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_counts_authors_and_sessions_but_not_secrets() {
        for (input, want) in [
            (
                "input_tokens: 12, max_tokens=1024",
                "input_tokens: 12, max_tokens=1024",
            ),
            (
                "Author: Dev <dev@example.com>",
                "Author: Dev <dev@example.com>",
            ),
            ("session_id: abc", "session_id: abc"),
            ("API_TOKEN=canary-x", "API_TOKEN=[REDACTED]"),
            ("password: 1234", "password: [REDACTED]"),
            ("db_password=hunter2", "db_password=[REDACTED]"),
        ] {
            assert_eq!(result_text(input), want, "{input}");
        }
        let gh = format!("ghp_{}", "a".repeat(36));
        assert_eq!(result_text(&format!("echo {gh}")), "echo [REDACTED]");
        let doc = serde_json::json!({
            "usage": {"input_tokens": 12}, "session": "s1", "api_key": "k-1",
            "tokens": ["t1", "t2"], "secrets": [{"name": "keepass/a"}], "note": "token=zzz"
        });
        let r = result_document(&doc);
        let secret = result_document(&serde_json::json!({
            "kind": "Secret", "data": {"password": "[redacted by mcp-k8s]", "user": "YWRtaW4="}
        }));
        assert_eq!(secret["data"]["password"], "[redacted by mcp-k8s]");
        assert_eq!(secret["data"]["user"], MASK);
        assert_eq!(r["usage"]["input_tokens"], 12);
        assert_eq!(r["session"], "s1");
        assert_eq!(r["api_key"], MASK);
        assert_eq!(r["tokens"], serde_json::json!([MASK, MASK]));
        assert_eq!(r["secrets"][0]["name"], "keepass/a");
        assert_eq!(r["note"], format!("token={MASK}"));
    }
    use serde_json::json as j;

    const C: &str = "c4n4ryS3cr3t";

    fn masked(s: &str) -> String {
        let r = text(s).into_owned();
        assert!(!r.contains(C), "{s:?} leaked: {r:?}");
        r
    }

    #[test]
    fn http_headers_keep_the_scheme() {
        assert_eq!(
            masked(&format!("curl -H 'Authorization: Bearer {C}' https://x")),
            "curl -H 'Authorization: Bearer [REDACTED]' https://x"
        );
        masked(&format!("curl -H \"Proxy-Authorization: Basic {C}\" x"));
        masked(&format!("curl -H 'X-Api-Key: {C}' x"));
        masked(&format!("curl -H 'x-api-key:{C}' x"));
        masked(&format!(
            "curl --cookie 'session={C}' -H 'Cookie: a={C}; b=2' x"
        ));
        masked(&format!("Authorization: token {C}"));
    }

    #[test]
    fn flags_in_every_spelling() {
        assert_eq!(
            masked(&format!("psql --password {C} -h db")),
            "psql --password [REDACTED] -h db"
        );
        assert_eq!(
            masked(&format!("tool --password={C} x")),
            "tool --password=[REDACTED] x"
        );
        masked(&format!("tool --token {C}"));
        masked(&format!("tool --api-key=\"{C} with space\""));
        masked(&format!("tool --client-secret '{C}'"));
        masked(&format!("tool --db-pass {C}"));
        // Already masked (by a service's own redactor): left as it is.
        assert_eq!(
            text("\"secret\": \"[redacted]\""),
            "\"secret\": \"[redacted]\""
        );
        assert_eq!(
            masked(&format!("sshpass -p {C} ssh host")),
            "sshpass -p [REDACTED] ssh host"
        );
        assert_eq!(
            masked(&format!("mysql -u root -p{C} db")),
            "mysql -u root -p[REDACTED] db"
        );
        masked(&format!("redis-cli -h r -a {C} ping"));
        masked(&format!("cd /x; /usr/bin/mysqldump -p{C} db > out.sql"));
        // Not a password flag: left alone.
        assert_eq!(text("ls -p /tmp"), "ls -p /tmp");
        assert_eq!(text("grep -p x"), "grep -p x");
    }

    #[test]
    fn urls_assignments_and_tokens() {
        assert_eq!(
            masked(&format!("git clone https://bob:{C}@git.example/r.git")),
            "git clone https://bob:[REDACTED]@git.example/r.git"
        );
        masked(&format!("psql postgres://app:{C}@db:5432/x"));
        assert_eq!(
            masked(&format!("export DB_PASSWORD={C}; run")),
            "export DB_PASSWORD=[REDACTED]; run"
        );
        masked(&format!("env GITHUB_TOKEN='{C}' gh"));
        masked(&format!("password: {C}\nuser: x"));
        masked(&format!("{{\"api_key\": \"{C}\"}}"));
        masked(&format!("aws_secret_access_key = {C}"));
        for t in [
            "AKIAIOSFODNN7EXAMPLE".to_owned(),
            format!("ghp_{}", "a".repeat(36)),
            format!("github_pat_{}", "B".repeat(40)),
            format!("glpat-{}", "x".repeat(20)),
            "xoxb-1234567890-abcdefghij".to_owned(),
            format!("AIza{}", "Z".repeat(35)),
            format!("sk-ant-{}", "q".repeat(40)),
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlXzEyMw".to_owned(),
        ] {
            let line = format!("echo {t} done");
            assert_eq!(text(&line), "echo [REDACTED] done", "{t}");
        }
        // Ordinary text passes unchanged and unallocated.
        assert!(matches!(
            text("uptime && df -h /var"),
            Cow::Borrowed("uptime && df -h /var")
        ));
    }

    #[test]
    fn pem_keys_and_secret_manifests() {
        let pem = format!(
            "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn{C}\n-----END OPENSSH PRIVATE KEY-----\nafter"
        );
        let r = masked(&pem);
        assert!(
            r.ends_with("after") && r.contains("BEGIN OPENSSH PRIVATE KEY"),
            "{r}"
        );
        masked(&format!("-----BEGIN RSA PRIVATE KEY-----\n{C}"));
        let manifest = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\ndata: keep\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  url: {C}\n  multi: |\n    {C}\ndata:\n  pw: YQ==\ntype: Opaque\n"
        );
        let r = masked(&manifest);
        assert!(r.contains("data: keep"), "other kinds untouched: {r}");
        assert!(
            r.contains("  url: [REDACTED]") && r.contains("type: Opaque"),
            "{r}"
        );
        assert!(r.contains("name: db"), "{r}");
        let v = j!({"manifest": {"kind": "Secret", "stringData": {"a": C}, "metadata": {"name": "db"}}});
        let r = json(&v);
        assert_eq!(r["manifest"]["stringData"], MASK);
        assert_eq!(r["manifest"]["metadata"]["name"], "db");
        let s = j!({"manifest": format!("{{\"kind\":\"Secret\",\"data\":{{\"a\":\"{C}\"}}}}")});
        assert!(!json(&s).to_string().contains(C));
    }

    #[test]
    fn json_keys_contents_and_strings() {
        let v = j!({
            "host": "a", "password": C,
            "nested": {"apiKey": C, "list": [{"token": C, "n": 1}]},
            "path": "/etc/app.conf", "content": format!("line\npw={C}\n"),
            "command": format!("curl -u bob:{C} https://bob:{C}@x"),
        });
        let r = json(&v);
        let s = r.to_string();
        assert!(!s.contains(C), "{s}");
        assert_eq!(r["host"], "a");
        assert_eq!(r["nested"]["list"][0]["n"], 1);
        assert_eq!(r["path"], "/etc/app.conf");
        let content = format!("line\npw={C}\n");
        assert_eq!(r["content"], content_summary(&content));
        assert!(
            r["content"]
                .as_str()
                .unwrap()
                .contains(&format!("{} bytes", content.len()))
        );
    }

    #[test]
    fn documents_keep_ordinary_keys_and_contents_are_found() {
        let v = j!({"key": "L", "value": 3, "token": C, "items": [{"note": format!("export API_TOKEN={C}")}]});
        let r = document(&v);
        assert_eq!(r["key"], "L");
        assert_eq!(r["value"], 3);
        assert!(!r.to_string().contains(C), "{r}");
        assert!(!has_content(&v));
        assert!(has_content(&j!({"result": {"path": "/a", "content": "x"}})));
    }

    #[test]
    fn strings_keeps_shape_and_kept_strings() {
        let v = j!({"secret_result": true, "key": "k", "params": {"command": format!("curl -H 'Authorization: Bearer {C}' x"), "name": "{{ inputs.token }}"}});
        let r = strings(&v, &|s| s.contains("{{"));
        assert_eq!(r["secret_result"], true);
        assert_eq!(r["key"], "k");
        assert_eq!(r["params"]["name"], "{{ inputs.token }}");
        assert!(!r.to_string().contains(C), "{r}");
    }

    #[test]
    fn curl_user_flag_is_masked() {
        // curl -u user:password is the common basic-auth spelling.
        masked(&format!("curl -u bob:{C} https://x"));
        masked(&format!("curl --user bob:{C} https://x"));
    }
}
