//! freqtrade-knowledge MCP service (port 8015, namespace `freqtrade`): the Freqtrade source
//! repository, pinned to one commit and read from the git object database (sandboxed by
//! construction), with search, knowledge tools built from the repository's own docs, and the
//! informational Freqtrade CLI subcommands.

pub mod cli;
pub mod error;
pub mod repo;

use crate::error::FreqtradeError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use git2::{ObjectType, TreeWalkMode, TreeWalkResult};
use mcp_runtime::{BoxError, BuildContext, Check, HealthProbe, McpService};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::repo::{Item, Pinned, lookup};

/// The `[freqtrade]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreqtradeConfig {
    /// Repository to clone (https or file://); empty with `repo_path` set.
    pub repo_url: String,
    /// A local repository to open instead of cloning.
    pub repo_path: Option<PathBuf>,
    /// Where the bare clone lives.
    pub cache_dir: PathBuf,
    /// Branch, tag or commit to pin.
    pub git_ref: String,
    /// Seconds between fetches of `repo_url` (0 = never).
    pub fetch_interval_secs: u64,
    /// The `freqtrade` executable (default: `freqtrade` on PATH).
    pub freqtrade_bin: Option<PathBuf>,
    pub cli_timeout_secs: u64,
    /// Largest file content returned (bytes).
    pub max_file_bytes: usize,
    /// Most matches `source_search` returns.
    pub max_search_matches: usize,
    /// Files larger than this are not searched.
    pub max_search_file_bytes: usize,
    /// Largest knowledge answer (characters).
    pub max_knowledge_chars: usize,
}

impl Default for FreqtradeConfig {
    fn default() -> Self {
        Self {
            repo_url: "https://github.com/freqtrade/freqtrade.git".to_owned(),
            repo_path: None,
            cache_dir: PathBuf::from("data/freqtrade/repo.git"),
            git_ref: "stable".to_owned(),
            fetch_interval_secs: 3600,
            freqtrade_bin: None,
            cli_timeout_secs: 60,
            max_file_bytes: 256 * 1024,
            max_search_matches: 200,
            max_search_file_bytes: 1024 * 1024,
            max_knowledge_chars: 16 * 1024,
        }
    }
}

/// The service.
pub struct Freqtrade {
    config: FreqtradeConfig,
    pinned: Arc<Pinned>,
    tools: ToolRouter<FtHandler>,
}

impl McpService for Freqtrade {
    const NAME: &'static str = "freqtrade-knowledge";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "freqtrade";
    const DEFAULT_PORT: u16 = 8015;
    type Config = FreqtradeConfig;
    type Handler = FtHandler;

    async fn build(config: FreqtradeConfig, ctx: BuildContext) -> Result<Self, BoxError> {
        if config.git_ref.trim().is_empty() {
            return Err("freqtrade.git_ref must name a branch, tag or commit".into());
        }
        let location = config
            .repo_path
            .clone()
            .unwrap_or_else(|| config.cache_dir.clone());
        let pinned = Arc::new(Pinned::new(&location, &config.git_ref));
        // First sync and retries/fetches in the background: a clone may take minutes.
        let (p, c) = (pinned.clone(), config.clone());
        let shutdown = ctx.shutdown.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let (p2, c2) = (p.clone(), c.clone());
                let result = tokio::task::spawn_blocking(move || {
                    let url = Some(c2.repo_url.as_str()).filter(|u| !u.is_empty());
                    repo::sync(
                        &p2,
                        url,
                        c2.repo_path.as_deref(),
                        &c2.cache_dir,
                        &c2.git_ref,
                    )
                })
                .await
                .unwrap_or_else(|e| Err(FreqtradeError::from(e)));
                let wait = match result {
                    Ok(()) => {
                        failures = 0;
                        if c.fetch_interval_secs == 0 || c.repo_path.is_some() {
                            break;
                        }
                        Duration::from_secs(c.fetch_interval_secs)
                    }
                    Err(e) => {
                        let wait = repo::retry_delay(failures);
                        failures += 1;
                        tracing::warn!(message = "Freqtrade repository unavailable.", error = %e, retry_in_secs = wait.as_secs());
                        p.update(|s| {
                            s.error = Some(e.to_string());
                            s.progress = None;
                        });
                        wait
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
        Ok(Self {
            config,
            pinned,
            tools: FtHandler::tool_router(),
        })
    }

    fn handler(self: &Arc<Self>) -> FtHandler {
        FtHandler {
            svc: self.clone(),
            tool_router: self.tools.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }
}

impl HealthProbe for Freqtrade {
    fn checks(&self) -> BTreeMap<String, Check> {
        let s = self.pinned.snapshot();
        let docs = self.docs_found();
        let details = json!({
            "location": s.location, "ref": s.git_ref, "commit": s.commit, "last_sync": s.last_sync,
            "docs_found": docs, "freqtrade_cli": cli::find(self.config.freqtrade_bin.as_deref()).map(|p| p.display().to_string()),
        });
        let check = match (&s.commit, &s.error) {
            (Some(_), None) => Check::healthy(details),
            (Some(_), Some(e)) => Check::degraded(
                format!("serving the pinned commit; the last fetch failed: {e}"),
                details,
            ),
            (None, Some(e)) => Check::degraded(e.clone(), details),
            (None, None) => Check::degraded(
                s.progress.map_or("opening the repository".to_owned(), |p| {
                    format!("cloning ({p})")
                }),
                details,
            ),
        };
        BTreeMap::from([("repository".to_owned(), check)])
    }

    fn ready(&self) -> bool {
        true
    }
}

/// A markdown section of a doc file.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Section {
    pub file: String,
    pub heading: String,
    /// First line of the section (1-based), for the citation.
    pub line: usize,
    pub text: String,
}

fn sections(file: &str, text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut in_code = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            out.push(Section {
                file: file.to_owned(),
                heading: line.trim_start_matches('#').trim().to_owned(),
                line: i + 1,
                text: String::new(),
            });
            continue;
        }
        if out.is_empty() {
            out.push(Section {
                file: file.to_owned(),
                heading: String::new(),
                line: 1,
                text: String::new(),
            });
        }
        if let Some(s) = out.last_mut() {
            s.text.push_str(line);
            s.text.push('\n');
        }
    }
    out.retain(|s| !s.heading.is_empty() || !s.text.trim().is_empty());
    out
}

impl Freqtrade {
    /// Runs `f` on a blocking thread with the repository and the pinned commit.
    async fn with_repo<T, F>(self: &Arc<Self>, f: F) -> Result<T, FreqtradeError>
    where
        T: Send + 'static,
        F: FnOnce(&git2::Repository, git2::Oid, &FreqtradeConfig) -> Result<T, FreqtradeError>
            + Send
            + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let (repo, commit) = me.pinned.open()?;
            f(&repo, commit, &me.config)
        })
        .await?
    }

    fn docs_found(&self) -> Option<bool> {
        let (repo, commit) = self.pinned.open().ok()?;
        Some(lookup(&repo, commit, "docs/hyperopt.md").is_ok())
    }
}

/// Doc sections matching a topic (or all), bounded, with citations.
fn knowledge(
    repo: &git2::Repository,
    commit: git2::Oid,
    files: &[String],
    topic: Option<&str>,
    max_chars: usize,
) -> Value {
    let mut found = Vec::new();
    for f in files {
        if let Ok(Item::Blob { data, .. }) = lookup(repo, commit, f) {
            found.extend(sections(f, &String::from_utf8_lossy(&data)));
        }
    }
    let words: Vec<String> = topic
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let selected: Vec<Section> = if words.is_empty() {
        found.clone()
    } else {
        found
            .iter()
            .filter(|s| {
                let hay = format!("{} {}", s.heading, s.text).to_ascii_lowercase();
                words.iter().all(|w| hay.contains(w))
            })
            .cloned()
            .collect()
    };
    let mut budget = max_chars;
    let mut out = Vec::new();
    let mut truncated = false;
    for mut s in selected {
        if budget == 0 {
            truncated = true;
            break;
        }
        if s.text.len() > budget {
            s.text.truncate(s.text.floor_char_boundary(budget));
            s.text.push_str("\n…[truncated]");
            truncated = true;
        }
        budget = budget.saturating_sub(s.text.len());
        out.push(json!({
            "heading": s.heading, "citation": format!("{}#L{} @ {}", s.file, s.line, &commit.to_string()[..12]),
            "text": s.text,
        }));
    }
    json!({
        "commit": commit.to_string(),
        "files": files,
        "sections": out,
        "table_of_contents": found.iter().filter(|s| !s.heading.is_empty()).map(|s| format!("{} — {}#L{}", s.heading, s.file, s.line)).collect::<Vec<_>>(),
        "truncated": truncated,
    })
}

/// Paths under `prefix` (e.g. `docs/`) whose file name matches `pred`.
fn files_where(
    repo: &git2::Repository,
    commit: git2::Oid,
    pred: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(tree) = repo::tree_of(repo, commit) {
        let _ = tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                let path = format!("{dir}{}", entry.name().unwrap_or_default());
                if pred(&path) {
                    out.push(path);
                }
            }
            TreeWalkResult::Ok
        });
    }
    out.sort();
    out
}

/// Arguments of `source_getFileContent`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileArgs {
    /// Path inside the repository, e.g. "freqtrade/main.py".
    pub path: String,
    /// First line (1-based).
    pub start_line: Option<usize>,
    /// Last line (inclusive).
    pub end_line: Option<usize>,
    /// Byte cap (default and maximum: the configured max_file_bytes).
    pub max_bytes: Option<usize>,
}

/// Arguments of `source_listDirectory`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirArgs {
    /// Directory inside the repository (default: the root).
    pub path: Option<String>,
}

/// Arguments of `source_search`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// Text to find (a literal unless `regex` is true).
    pub query: String,
    pub regex: Option<bool>,
    pub case_sensitive: Option<bool>,
    /// Only files matching this glob, e.g. "freqtrade/strategy/**/*.py".
    pub path_glob: Option<String>,
    /// Lines of context before and after each match (0-5).
    pub context_lines: Option<usize>,
    /// At most this many matches (default and maximum: the configured max_search_matches).
    pub max_matches: Option<usize>,
}

/// Arguments of the knowledge tools.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicArgs {
    /// Narrow to sections mentioning these words, e.g. "loss function" or "epochs".
    pub topic: Option<String>,
}

/// Arguments of `cli_runInfoCommand`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CliArgs {
    /// One of the informational subcommands: --version, list-exchanges, list-timeframes, list-strategies, list-hyperoptloss, list-freqaimodels, list-data, show-config.
    pub subcommand: String,
    /// Extra options from the allowed set (e.g. ["-1"], ["--print-json"], ["--config", "user_data/config.json"]).
    pub args: Option<Vec<String>>,
}

/// One directory entry.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DirEntry {
    pub name: String,
    /// file, dir, symlink or submodule.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
}

/// A directory listing.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Listing {
    pub path: String,
    pub commit: String,
    pub entries: Vec<DirEntry>,
}

/// The per-session handler.
#[derive(Clone)]
pub struct FtHandler {
    svc: Arc<Freqtrade>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl FtHandler {
    #[tool(
        name = "source_getFileContent",
        description = "Read a file of the Freqtrade repository at the pinned commit (from the git database; nothing outside the repository is reachable). Optional line range and byte cap; binary files are reported, not dumped.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_file(
        &self,
        Parameters(a): Parameters<FileArgs>,
    ) -> Result<CallToolResult, FreqtradeError> {
        self.svc
            .with_repo(move |repo, commit, cfg| {
                let item = lookup(repo, commit, &a.path)?;
                let Item::Blob { path, data } = item else {
                    return Err(FreqtradeError::invalid(format!(
                        "`{}` is a directory; use source_listDirectory",
                        a.path
                    )));
                };
                let size = data.len();
                if data.iter().take(8192).any(|b| *b == 0) {
                    return Ok(CallToolResult::structured(json!({
                        "path": path, "commit": commit.to_string(), "size": size, "binary": true,
                        "content": format!("[binary file, {size} bytes: not shown]"),
                    })));
                }
                let text = String::from_utf8_lossy(&data);
                let lines: Vec<&str> = text.lines().collect();
                let total = lines.len();
                let start = a.start_line.unwrap_or(1).max(1);
                let end = a.end_line.unwrap_or(total).min(total);
                if start > end && total > 0 {
                    return Err(FreqtradeError::invalid(format!(
                        "line range {start}-{end} is empty; the file has {total} lines"
                    )));
                }
                let selected = lines.get(start.saturating_sub(1)..end).unwrap_or_default().join("\n");
                let cap = a.max_bytes.unwrap_or(cfg.max_file_bytes).clamp(1, cfg.max_file_bytes);
                let (content, truncated) = mcp_runtime::output::truncate_text(&selected, cap);
                Ok(CallToolResult::structured(json!({
                    "path": path, "commit": commit.to_string(), "size": size, "total_lines": total,
                    "start_line": start, "end_line": end, "truncated": truncated, "content": content,
                })))
            })
            .await
    }

    #[tool(
        name = "source_listDirectory",
        description = "List a directory of the Freqtrade repository at the pinned commit: name, kind (file/dir/symlink/submodule), size.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_dir(
        &self,
        Parameters(a): Parameters<DirArgs>,
    ) -> Result<Json<Listing>, FreqtradeError> {
        self.svc
            .with_repo(move |repo, commit, _| {
                let p = a.path.unwrap_or_default();
                let Item::Tree { path, oid } = lookup(repo, commit, &p)? else {
                    return Err(FreqtradeError::invalid(format!(
                        "`{p}` is a file; use source_getFileContent"
                    )));
                };
                let tree = repo.find_tree(oid)?;
                let mut entries: Vec<DirEntry> = tree
                    .iter()
                    .map(|e| {
                        let kind = match (e.kind(), e.filemode()) {
                            (_, 0o120_000) => "symlink",
                            (Some(ObjectType::Tree), _) => "dir",
                            (Some(ObjectType::Commit), _) => "submodule",
                            _ => "file",
                        };
                        let size = (kind == "file")
                            .then(|| repo.find_blob(e.id()).map(|b| b.size()).ok())
                            .flatten();
                        DirEntry {
                            name: e.name().unwrap_or_default().to_owned(),
                            kind: kind.to_owned(),
                            size,
                        }
                    })
                    .collect();
                entries.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
                Ok(Json(Listing {
                    path,
                    commit: commit.to_string(),
                    entries,
                }))
            })
            .await
    }

    #[tool(
        name = "source_search",
        description = "Search the Freqtrade repository at the pinned commit: a literal (or regex) over file paths and contents, optional path glob, context lines, match limit. E.g. query \"class IStrategy\".",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn search(
        &self,
        Parameters(a): Parameters<SearchArgs>,
    ) -> Result<CallToolResult, FreqtradeError> {
        if a.query.is_empty() {
            return Err(FreqtradeError::invalid("`query` must not be empty"));
        }
        let pattern = if a.regex.unwrap_or(false) {
            a.query.clone()
        } else {
            regex::escape(&a.query)
        };
        let re = regex::RegexBuilder::new(&pattern)
            .case_insensitive(!a.case_sensitive.unwrap_or(true))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| FreqtradeError::invalid(format!("invalid regex: {e}")))?;
        let glob = match &a.path_glob {
            Some(g) => Some(
                globset::Glob::new(g)
                    .map_err(|e| FreqtradeError::invalid(format!("invalid path_glob: {e}")))?
                    .compile_matcher(),
            ),
            None => None,
        };
        self.svc
            .with_repo(move |repo, commit, cfg| {
                let max = a.max_matches.unwrap_or(cfg.max_search_matches).clamp(1, cfg.max_search_matches);
                let ctx = a.context_lines.unwrap_or(0).min(5);
                let tree = repo::tree_of(repo, commit)?;
                let mut matches = Vec::new();
                let mut path_matches = Vec::new();
                let mut files_searched = 0usize;
                let mut truncated = false;
                let walked = tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
                    if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120_000 {
                        return TreeWalkResult::Ok;
                    }
                    let path = format!("{dir}{}", entry.name().unwrap_or_default());
                    if glob.as_ref().is_some_and(|g| !g.is_match(&path)) {
                        return TreeWalkResult::Ok;
                    }
                    if re.is_match(&path) && path_matches.len() < max {
                        path_matches.push(path.clone());
                    }
                    let Ok(blob) = repo.find_blob(entry.id()) else { return TreeWalkResult::Ok };
                    let data = blob.content();
                    if data.len() > cfg.max_search_file_bytes || data.iter().take(8192).any(|b| *b == 0) {
                        return TreeWalkResult::Ok;
                    }
                    files_searched += 1;
                    let text = String::from_utf8_lossy(data);
                    let lines: Vec<&str> = text.lines().collect();
                    for (i, line) in lines.iter().enumerate() {
                        if re.is_match(line) {
                            if matches.len() >= max {
                                truncated = true;
                                return TreeWalkResult::Abort;
                            }
                            let mut m = json!({"path": path, "line": i + 1, "text": line.chars().take(400).collect::<String>()});
                            if ctx > 0 {
                                m["before"] = json!(lines[i.saturating_sub(ctx)..i]);
                                m["after"] = json!(lines[i + 1..(i + 1 + ctx).min(lines.len())]);
                            }
                            matches.push(m);
                        }
                    }
                    TreeWalkResult::Ok
                });
                // Stopping at the match limit surfaces as an error from libgit2; only others count.
                if let Err(e) = walked
                    && !truncated
                {
                    return Err(e.into());
                }
                Ok(CallToolResult::structured(json!({
                    "query": a.query, "commit": commit.to_string(), "files_searched": files_searched,
                    "path_matches": path_matches, "matches": matches, "truncated": truncated,
                })))
            })
            .await
    }

    #[tool(
        name = "hyperoptBestPractices",
        description = "Hyperopt guidance assembled from the repository's own docs/hyperopt.md (sections with file, line and commit citations); `topic` narrows to matching sections. When the docs are absent, says so and points to the relevant source files.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn hyperopt(
        &self,
        Parameters(a): Parameters<TopicArgs>,
    ) -> Result<CallToolResult, FreqtradeError> {
        self.svc
            .with_repo(move |repo, commit, cfg| {
                let files: Vec<String> = files_where(repo, commit, |p| {
                    p == "docs/hyperopt.md" || p.starts_with("docs/advanced-hyperopt")
                });
                Ok(answer(
                    repo,
                    commit,
                    files,
                    a.topic.as_deref(),
                    cfg,
                    "hyperopt",
                ))
            })
            .await
    }

    #[tool(
        name = "freqAiOverview",
        description = "FreqAI overview assembled from the repository's own docs/freqai*.md (sections with file, line and commit citations); `topic` narrows to matching sections. When the docs are absent, says so and points to the relevant source files.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn freqai(
        &self,
        Parameters(a): Parameters<TopicArgs>,
    ) -> Result<CallToolResult, FreqtradeError> {
        self.svc
            .with_repo(move |repo, commit, cfg| {
                let files = files_where(repo, commit, |p| {
                    p.starts_with("docs/freqai") && p.ends_with(".md")
                });
                Ok(answer(
                    repo,
                    commit,
                    files,
                    a.topic.as_deref(),
                    cfg,
                    "freqai",
                ))
            })
            .await
    }

    #[tool(
        name = "cli_runInfoCommand",
        description = "Run an informational Freqtrade subcommand (no shell, allow-listed, timeout, capped output): --version, list-exchanges, list-timeframes, list-strategies, list-hyperoptloss, list-freqaimodels, list-data, show-config (secrets redacted). Trading and data-changing commands are refused without running.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn run_info(
        &self,
        Parameters(a): Parameters<CliArgs>,
    ) -> Result<CallToolResult, FreqtradeError> {
        let cfg = &self.svc.config;
        let argv = cli::argv(&a.subcommand, a.args.as_deref().unwrap_or_default())?;
        let bin = cli::find(cfg.freqtrade_bin.as_deref()).ok_or_else(|| {
            FreqtradeError::Cli("freqtrade is not installed: install it (pip install freqtrade) or set freqtrade.freqtrade_bin".to_owned())
        })?;
        let out = cli::run(
            &bin,
            &argv,
            Duration::from_secs(cfg.cli_timeout_secs.max(1)),
            64 * 1024,
        )
        .await?;
        let mut r = CallToolResult::structured(out.clone());
        if out["exit_code"] != json!(0) {
            r.is_error = Some(true);
        }
        Ok(r)
    }
}

fn answer(
    repo: &git2::Repository,
    commit: git2::Oid,
    files: Vec<String>,
    topic: Option<&str>,
    cfg: &FreqtradeConfig,
    subject: &str,
) -> CallToolResult {
    if files.is_empty() {
        let sources = files_where(repo, commit, |p| {
            p.to_ascii_lowercase().contains(subject) && p.ends_with(".py")
        });
        return CallToolResult::structured(json!({
            "docs_found": false,
            "commit": commit.to_string(),
            "message": format!("this repository has no {subject} documentation under docs/ at commit {}; nothing is invented here — read the source files below (source_getFileContent) instead", &commit.to_string()[..12]),
            "sources": sources.into_iter().take(30).collect::<Vec<_>>(),
        }));
    }
    let mut v = knowledge(repo, commit, &files, topic, cfg.max_knowledge_chars);
    v["docs_found"] = json!(true);
    if topic.is_some() && v["sections"].as_array().is_some_and(Vec::is_empty) {
        v["message"] = json!("no section mentions every word of the topic; see table_of_contents");
    }
    CallToolResult::structured(v)
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for FtHandler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("freqtrade-knowledge", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "The Freqtrade source at a pinned commit: read, list and search files; hyperopt and FreqAI guidance from the repository's own docs with citations; informational freqtrade CLI subcommands."
                .to_owned(),
        );
        info
    }
}
