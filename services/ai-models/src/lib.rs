//! ai-models MCP service (port 8016, namespace `ai_models`): Gemini `generateContent` and Anthropic
//! Messages as tools over their REST APIs, with keys from files (re-read on change, never logged),
//! model allow-lists, retries that honour `Retry-After`, and per-call token and cost accounting with
//! an optional daily budget per identity.
//!
//! Over 800 lines because the four tools share one request path (allow-lists, budget, usage,
//! scrubbing) that reads best beside them; wire formats are in `providers`, keys in `keys`.

pub mod error;
pub mod keys;
pub mod providers;
pub mod usage;

use crate::error::AiError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_runtime::{BoxError, BuildContext, CallerContext, Check, HealthProbe, McpService};
use prometheus::{CounterVec, IntCounterVec, Opts};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::KeyFile;
use crate::providers::{Provider, Reply, RetryPolicy};
use crate::usage::{Ledger, Price, Totals, UsageReport};

/// One provider's settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Off: the tools of this provider answer that it is disabled, health ignores it.
    pub enabled: bool,
    /// API base URL (an OpenAI-compatible or test server can stand in).
    pub base_url: String,
    /// File with the API key (a Docker secret); re-read when it changes.
    pub api_key_file: PathBuf,
    /// The models callers may use; empty allows any.
    pub models: Vec<String>,
    pub default_model: String,
    /// USD per million input/output tokens, per model.
    pub prices: BTreeMap<String, Price>,
    /// `anthropic-version` header (Anthropic only).
    pub api_version: String,
}

fn key_file(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn prices(list: &[(&str, f64, f64)]) -> BTreeMap<String, Price> {
    list.iter()
        .map(|(m, i, o)| {
            (
                (*m).to_owned(),
                Price {
                    input_per_mtok: *i,
                    output_per_mtok: *o,
                },
            )
        })
        .collect()
}

impl ProviderConfig {
    fn gemini() -> Self {
        Self {
            enabled: true,
            base_url: "https://generativelanguage.googleapis.com".to_owned(),
            api_key_file: key_file("GEMINI_API_KEY_FILE", "/run/secrets/gemini_api_key"),
            models: vec![
                "gemini-2.5-flash".into(),
                "gemini-2.5-pro".into(),
                "gemini-2.5-flash-lite".into(),
            ],
            default_model: "gemini-2.5-flash".to_owned(),
            prices: prices(&[
                ("gemini-2.5-flash", 0.30, 2.50),
                ("gemini-2.5-pro", 1.25, 10.0),
                ("gemini-2.5-flash-lite", 0.10, 0.40),
            ]),
            api_version: String::new(),
        }
    }

    fn anthropic() -> Self {
        Self {
            enabled: true,
            base_url: "https://api.anthropic.com".to_owned(),
            api_key_file: key_file("ANTHROPIC_API_KEY_FILE", "/run/secrets/anthropic_api_key"),
            models: vec![
                "claude-sonnet-4-5".into(),
                "claude-haiku-4-5".into(),
                "claude-opus-4-1".into(),
            ],
            default_model: "claude-sonnet-4-5".to_owned(),
            prices: prices(&[
                ("claude-sonnet-4-5", 3.0, 15.0),
                ("claude-haiku-4-5", 1.0, 5.0),
                ("claude-opus-4-1", 15.0, 75.0),
            ]),
            api_version: "2023-06-01".to_owned(),
        }
    }
}

/// The `[ai_models]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AiConfig {
    pub gemini: ProviderConfig,
    pub anthropic: ProviderConfig,
    /// Deadline of one HTTP request to a provider.
    pub timeout_secs: u64,
    /// Retries of 429/500/503/529 answers and connection failures.
    pub max_retries: u32,
    /// First backoff; doubles per retry, with jitter.
    pub retry_base_ms: u64,
    /// Longest wait between attempts; a longer `Retry-After` ends the retries with its value.
    pub max_backoff_secs: u64,
    /// Daily spend per identity in USD (estimated from the price table); none = no budget.
    pub daily_budget_usd: Option<f64>,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            gemini: ProviderConfig::gemini(),
            anthropic: ProviderConfig::anthropic(),
            timeout_secs: 120,
            max_retries: 3,
            retry_base_ms: 500,
            max_backoff_secs: 30,
            daily_budget_usd: None,
        }
    }
}

struct ProviderState {
    kind: Provider,
    config: ProviderConfig,
    key: KeyFile,
}

/// The service.
pub struct AiModels {
    config: AiConfig,
    http: reqwest::Client,
    gemini: ProviderState,
    anthropic: ProviderState,
    ledger: Ledger,
    tokens: IntCounterVec,
    cost: CounterVec,
    tools: ToolRouter<AiHandler>,
}

impl McpService for AiModels {
    const NAME: &'static str = "ai-models";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "ai_models";
    const DEFAULT_PORT: u16 = 8016;
    type Config = AiConfig;
    type Handler = AiHandler;

    async fn build(config: AiConfig, ctx: BuildContext) -> Result<Self, BoxError> {
        for (name, p) in [("gemini", &config.gemini), ("anthropic", &config.anthropic)] {
            if !p.models.is_empty() && !p.models.contains(&p.default_model) {
                return Err(format!(
                    "ai_models.{name}.default_model `{}` is not in ai_models.{name}.models",
                    p.default_model
                )
                .into());
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let tokens = IntCounterVec::new(
            Opts::new(
                "mcp_llm_tokens_total",
                "LLM tokens by provider, model and kind (input/output)",
            ),
            &["provider", "model", "kind"],
        )?;
        let cost = CounterVec::new(
            Opts::new(
                "mcp_llm_cost_usd_total",
                "Estimated LLM cost in USD by provider and model",
            ),
            &["provider", "model"],
        )?;
        ctx.metrics.registry().register(Box::new(tokens.clone()))?;
        ctx.metrics.registry().register(Box::new(cost.clone()))?;
        let state = |kind, c: &ProviderConfig| ProviderState {
            kind,
            key: KeyFile::new(c.api_key_file.clone()),
            config: c.clone(),
        };
        let svc = Self {
            gemini: state(Provider::Gemini, &config.gemini),
            anthropic: state(Provider::Anthropic, &config.anthropic),
            config,
            http,
            ledger: Ledger::default(),
            tokens,
            cost,
            tools: AiHandler::tool_router(),
        };
        for p in [&svc.gemini, &svc.anthropic] {
            tracing::info!(
                message = "LLM provider configured.",
                provider = p.kind.name(),
                enabled = p.config.enabled,
                key_present = p.key.present(),
                key_file = %p.config.api_key_file.display(),
            );
        }
        Ok(svc)
    }

    fn handler(self: &Arc<Self>) -> AiHandler {
        AiHandler {
            svc: self.clone(),
            tool_router: self.tools.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }
}

impl HealthProbe for AiModels {
    fn checks(&self) -> BTreeMap<String, Check> {
        let mut checks = BTreeMap::new();
        for p in [&self.gemini, &self.anthropic] {
            if !p.config.enabled {
                continue;
            }
            let present = p.key.present();
            let details = json!({ "key_present": present, "base_url": p.config.base_url });
            checks.insert(
                p.kind.name().to_owned(),
                if present {
                    Check::healthy(details)
                } else {
                    Check::degraded(
                        format!(
                            "no API key: put it in {} (or point {}_API_KEY_FILE at a file)",
                            p.config.api_key_file.display(),
                            p.kind.name().to_ascii_uppercase()
                        ),
                        details,
                    )
                },
            );
        }
        checks
    }

    fn ready(&self) -> bool {
        true
    }
}

impl AiModels {
    fn provider(&self, kind: Provider) -> &ProviderState {
        match kind {
            Provider::Gemini => &self.gemini,
            Provider::Anthropic => &self.anthropic,
        }
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.config.max_retries,
            base: Duration::from_millis(self.config.retry_base_ms.max(1)),
            max_backoff: Duration::from_secs(self.config.max_backoff_secs),
        }
    }

    /// Checks provider, model and budget before any request; returns the model to use.
    fn precheck(
        &self,
        kind: Provider,
        model: Option<&str>,
        caller: &CallerContext,
    ) -> Result<String, AiError> {
        let p = self.provider(kind);
        if !p.config.enabled {
            return Err(AiError::Refused(format!(
                "{} is disabled (ai_models.{}.enabled = false)",
                kind.name(),
                kind.name()
            )));
        }
        let model = model
            .filter(|m| !m.is_empty())
            .unwrap_or(&p.config.default_model)
            .to_owned();
        if !p.config.models.is_empty() && !p.config.models.contains(&model) {
            return Err(AiError::Refused(format!(
                "model `{model}` is not allowed for {}; allowed: {}",
                kind.name(),
                p.config.models.join(", ")
            )));
        }
        if let Some(budget) = self.config.daily_budget_usd {
            let spent = self.ledger.spent_today(&caller.identity.name);
            if spent >= budget {
                return Err(AiError::Refused(format!(
                    "daily budget of ${budget:.2} for `{}` is spent (${spent:.4} used today, UTC); it resets at 00:00 UTC",
                    caller.identity.name
                )));
            }
        }
        Ok(model)
    }

    /// Sends a request and accounts for the reply.
    async fn generate(
        &self,
        kind: Provider,
        model: &str,
        url: String,
        headers: &[(&str, &str)],
        body: &Value,
        caller: &CallerContext,
    ) -> Result<CallToolResult, AiError> {
        let p = self.provider(kind);
        let key_path = p.config.api_key_file.display().to_string();
        let Some(key) = p.key.get() else {
            return Err(AiError::NoKey(format!(
                "no {} API key: put it in {key_path} (or set {}_API_KEY_FILE to a file holding it); the file is read on the next call",
                kind.name(),
                kind.name().to_ascii_uppercase()
            )));
        };
        let started = std::time::Instant::now();
        let to = providers::Endpoint {
            provider: kind,
            url: &url,
            key: &key,
            key_file: &key_path,
            headers,
        };
        let (json, attempts) = providers::post(&self.http, &to, body, self.policy()).await?;
        let reply: Reply = match kind {
            Provider::Gemini => providers::parse_gemini(&json, attempts),
            Provider::Anthropic => providers::parse_anthropic(&json, attempts),
        }?;
        let price = p.config.prices.get(model);
        let cost = price.map(|pr| pr.cost(reply.input_tokens, reply.output_tokens));
        let provider = kind.name();
        self.tokens
            .with_label_values(&[provider, model, "input"])
            .inc_by(reply.input_tokens);
        self.tokens
            .with_label_values(&[provider, model, "output"])
            .inc_by(reply.output_tokens);
        if let Some(c) = cost {
            self.cost.with_label_values(&[provider, model]).inc_by(c);
        }
        self.ledger.record(
            provider,
            model,
            &caller.identity.name,
            &Totals {
                calls: 1,
                input_tokens: reply.input_tokens,
                output_tokens: reply.output_tokens,
                cost_usd: cost.unwrap_or(0.0),
            },
        );
        tracing::info!(
            message = "LLM call finished.",
            provider,
            model,
            identity = %caller.identity.name,
            input_tokens = reply.input_tokens,
            output_tokens = reply.output_tokens,
            cost_usd = cost.unwrap_or(0.0),
            attempts,
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        );
        let mut body = json!({
            "provider": provider,
            "model": model,
            "text": reply.text,
            "finish_reason": reply.finish_reason,
            "usage": {
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "total_tokens": reply.input_tokens + reply.output_tokens,
            },
            "cost_usd": cost,
            "attempts": attempts,
        });
        if cost.is_none() {
            body["cost_note"] = json!(format!(
                "no price configured for {model} in ai_models.{provider}.prices"
            ));
        }
        if let Some(v) = reply.model_version {
            body["model_version"] = json!(v);
        }
        Ok(CallToolResult::structured(body))
    }
}

/// A text part (an item of Gemini's `parts`) or content block (Anthropic's `{type: "text", text}`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextPart {
    /// Anthropic's block type; only "text" is supported.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub text: String,
}

/// Anthropic's content and system prompt: a string, or a list of text blocks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a string, or a list of text blocks [{\"type\": \"text\", \"text\": \"...\"}] (only text blocks are supported)"
)]
pub enum TextOrBlocks {
    Text(String),
    Blocks(Vec<TextPart>),
}

/// Gemini's system instruction: a string, or its Content object `{parts: [{text}]}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a string, or Gemini's Content {\"parts\": [{\"text\": \"...\"}]}"
)]
pub enum SystemInstruction {
    Text(String),
    Content {
        role: Option<String>,
        parts: Vec<TextPart>,
    },
}

/// A turn of a conversation: `{role, text}`, Gemini's `{role, parts: [{text}]}` or Anthropic's
/// `{role, content: "…" | [{type: "text", text}]}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Gemini: "user" or "model"; Anthropic: "user" or "assistant".
    pub role: String,
    /// The turn's text (the simple shape).
    pub text: Option<String>,
    /// Gemini's shape: text parts.
    pub parts: Option<Vec<TextPart>>,
    /// Anthropic's shape: a string or text blocks.
    pub content: Option<TextOrBlocks>,
}

/// The texts of parts or blocks; anything but text is refused with what is supported.
fn part_texts(parts: Vec<TextPart>) -> Result<Vec<String>, AiError> {
    parts
        .into_iter()
        .map(|p| match p.kind.as_deref() {
            None | Some("text") => Ok(p.text),
            Some(other) => Err(AiError::Invalid(format!(
                "content block type `{other}` is not supported; only text blocks ({{\"type\": \"text\", \"text\": …}})"
            ))),
        })
        .collect()
}

impl TextOrBlocks {
    fn texts(self) -> Result<Vec<String>, AiError> {
        match self {
            TextOrBlocks::Text(t) => Ok(vec![t]),
            TextOrBlocks::Blocks(b) => part_texts(b),
        }
    }
}

impl Turn {
    /// The turn's role and texts, from whichever of the three shapes it uses (exactly one).
    fn into_texts(self) -> Result<(String, Vec<String>), AiError> {
        let texts = match (self.text, self.parts, self.content) {
            (Some(t), None, None) => vec![t],
            (None, Some(p), None) => part_texts(p)?,
            (None, None, Some(c)) => c.texts()?,
            (None, None, None) => {
                return Err(AiError::Invalid(format!(
                    "the `{}` turn has no text: give `text`, Gemini's `parts: [{{\"text\": …}}]` or Anthropic's `content`",
                    self.role
                )));
            }
            _ => {
                return Err(AiError::Invalid(format!(
                    "the `{}` turn gives more than one of `text`, `parts` and `content`; give one",
                    self.role
                )));
            }
        };
        Ok((self.role, texts))
    }
}

/// Exactly one of two spellings of the same argument (`system_instruction` / `systemInstruction`).
fn one_of<T>(a: Option<T>, b: Option<T>, names: (&str, &str)) -> Result<Option<T>, AiError> {
    match (a, b) {
        (Some(_), Some(_)) => Err(AiError::Invalid(format!(
            "give `{}` or `{}`, not both (they are the same argument)",
            names.0, names.1
        ))),
        (a, b) => Ok(a.or(b)),
    }
}

/// Arguments of `gemini_generateContent`: the simple names, or Gemini's own request fields
/// (`contents` with `parts`, `systemInstruction`, `generationConfig`, `safetySettings`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeminiArgs {
    /// Model (default from config; see listModels).
    pub model: Option<String>,
    /// A single user prompt; or give `contents`.
    pub prompt: Option<String>,
    /// Conversation turns (role user/model): `{role, text}` or Gemini's `{role, parts: [{text}]}`.
    pub contents: Option<Vec<Turn>>,
    pub system_instruction: Option<SystemInstruction>,
    /// Gemini's name for `system_instruction`: a string or `{parts: [{text}]}`.
    #[serde(rename = "systemInstruction")]
    pub system_instruction_native: Option<SystemInstruction>,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<u32>,
    pub top_p: Option<f64>,
    pub stop_sequences: Option<Vec<String>>,
    /// Gemini's `generationConfig` as is (temperature, maxOutputTokens, topP, topK,
    /// stopSequences, …); the flat options above fill it too.
    #[serde(rename = "generationConfig")]
    pub generation_config: Option<serde_json::Map<String, Value>>,
    /// Passed through as Gemini's `safetySettings` (list of {category, threshold}).
    pub safety_settings: Option<Vec<Value>>,
    /// Gemini's name for `safety_settings`.
    #[serde(rename = "safetySettings")]
    pub safety_settings_native: Option<Vec<Value>>,
}

/// Arguments of `anthropic_createMessage`: the simple names, or the Messages API's own fields
/// (`messages` with string or block content, `system` as string or blocks).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnthropicArgs {
    pub model: Option<String>,
    /// A single user prompt; or give `messages`.
    pub prompt: Option<String>,
    /// Conversation turns (role user/assistant): `{role, text}` or the Messages API's
    /// `{role, content: "…" | [{type: "text", text}]}`.
    pub messages: Option<Vec<Turn>>,
    /// System prompt: a string or text blocks.
    pub system: Option<TextOrBlocks>,
    /// Output token limit (default 1024).
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub stop_sequences: Option<Vec<String>>,
}

/// Arguments of `getUsage`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageArgs {
    /// "gemini" or "anthropic".
    pub provider: Option<String>,
    pub identity: Option<String>,
    /// A day, YYYY-MM-DD (UTC).
    pub day: Option<String>,
}

/// One provider in listModels.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProviderModels {
    pub provider: String,
    pub enabled: bool,
    pub key_present: bool,
    pub default_model: String,
    pub models: Vec<String>,
    pub prices: BTreeMap<String, Price>,
}

/// listModels result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelList {
    pub providers: Vec<ProviderModels>,
}

fn turns(
    prompt: Option<String>,
    turns: Option<Vec<Turn>>,
    allowed: &[&str],
) -> Result<Vec<(String, Vec<String>)>, AiError> {
    let mut out = turns
        .unwrap_or_default()
        .into_iter()
        .map(Turn::into_texts)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(p) = prompt {
        out.push(("user".to_owned(), vec![p]));
    }
    if out.is_empty() {
        return Err(AiError::Invalid(
            "give `prompt` or at least one turn".to_owned(),
        ));
    }
    if let Some((role, _)) = out.iter().find(|(r, _)| !allowed.contains(&r.as_str())) {
        return Err(AiError::Invalid(format!(
            "role `{role}` is not one of {}",
            allowed.join(", ")
        )));
    }
    if out
        .iter()
        .any(|(_, t)| t.is_empty() || t.iter().all(String::is_empty))
    {
        return Err(AiError::Invalid("turns must not be empty".to_owned()));
    }
    Ok(out)
}

/// The per-session handler.
#[derive(Clone)]
pub struct AiHandler {
    svc: Arc<AiModels>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl AiHandler {
    #[tool(
        name = "gemini_generateContent",
        description = "Generate text with Google Gemini (generateContent): `prompt` or `contents` turns (user/model; `{role, text}` or Gemini's own `{role, parts: [{text}]}`), optional system instruction, temperature, max_output_tokens, top_p, stop sequences, safety settings; Gemini's request fields `systemInstruction`, `generationConfig` and `safetySettings` work as they are. Returns text, finish reason, token usage and the estimated cost in USD.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn gemini_generate(
        &self,
        Parameters(a): Parameters<GeminiArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AiError> {
        let caller = CallerContext::from_request(&ctx);
        let model = self
            .svc
            .precheck(Provider::Gemini, a.model.as_deref(), &caller)?;
        let contents = turns(a.prompt, a.contents, &["user", "model"])?;
        let system = one_of(
            a.system_instruction,
            a.system_instruction_native,
            ("system_instruction", "systemInstruction"),
        )?
        .map(|s| match s {
            SystemInstruction::Text(t) => Ok(vec![t]),
            SystemInstruction::Content { parts, .. } => part_texts(parts),
        })
        .transpose()?;
        let mut generation = a.generation_config.unwrap_or_default();
        for (flat, native, v) in [
            (
                "temperature",
                "temperature",
                a.temperature.map(|t| json!(t)),
            ),
            (
                "max_output_tokens",
                "maxOutputTokens",
                a.max_output_tokens.map(|m| json!(m)),
            ),
            ("top_p", "topP", a.top_p.map(|p| json!(p))),
            (
                "stop_sequences",
                "stopSequences",
                a.stop_sequences.map(|s| json!(s)),
            ),
        ] {
            if let Some(v) = v {
                if generation.contains_key(native) {
                    return Err(AiError::Invalid(format!(
                        "give `{flat}` or `generationConfig.{native}`, not both (they are the same setting)"
                    )));
                }
                generation.insert(native.into(), v);
            }
        }
        let safety = one_of(
            a.safety_settings,
            a.safety_settings_native,
            ("safety_settings", "safetySettings"),
        )?;
        let body = providers::gemini_body(
            contents,
            system,
            Value::Object(generation),
            safety.map(Value::Array),
        );
        let base = self.svc.gemini.config.base_url.trim_end_matches('/');
        let url = format!("{base}/v1beta/models/{model}:generateContent");
        self.svc
            .generate(Provider::Gemini, &model, url, &[], &body, &caller)
            .await
    }

    #[tool(
        name = "anthropic_createMessage",
        description = "Generate text with Anthropic Claude (Messages API): `prompt` or `messages` turns (user/assistant; `{role, text}` or the API's own `{role, content}` with a string or text blocks), optional `system` (string or text blocks), max_tokens (default 1024), temperature, top_p, top_k, stop sequences. Returns text, stop reason, token usage and the estimated cost in USD.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn anthropic_create(
        &self,
        Parameters(a): Parameters<AnthropicArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AiError> {
        let caller = CallerContext::from_request(&ctx);
        let model = self
            .svc
            .precheck(Provider::Anthropic, a.model.as_deref(), &caller)?;
        let messages = turns(a.prompt, a.messages, &["user", "assistant"])?;
        let mut body = json!({
            "model": model,
            "max_tokens": a.max_tokens.unwrap_or(1024),
            "messages": messages.into_iter().map(|(role, texts)| json!({"role": role, "content": providers::anthropic_content(texts)})).collect::<Vec<_>>(),
        });
        if let Some(s) = a.system {
            body["system"] = providers::anthropic_content(s.texts()?);
        }
        if let Some(t) = a.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = a.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(k) = a.top_k {
            body["top_k"] = json!(k);
        }
        if let Some(s) = a.stop_sequences {
            body["stop_sequences"] = json!(s);
        }
        let cfg = &self.svc.anthropic.config;
        let url = format!("{}/v1/messages", cfg.base_url.trim_end_matches('/'));
        let version = cfg.api_version.clone();
        self.svc
            .generate(
                Provider::Anthropic,
                &model,
                url,
                &[("anthropic-version", version.as_str())],
                &body,
                &caller,
            )
            .await
    }

    #[tool(
        name = "listModels",
        description = "The models callers may use per provider, the default model, the price table (USD per million input/output tokens) and whether an API key is present.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_models(&self) -> Result<Json<ModelList>, AiError> {
        Ok(Json(ModelList {
            providers: [&self.svc.gemini, &self.svc.anthropic]
                .iter()
                .map(|p| ProviderModels {
                    provider: p.kind.name().to_owned(),
                    enabled: p.config.enabled,
                    key_present: p.key.present(),
                    default_model: p.config.default_model.clone(),
                    models: p.config.models.clone(),
                    prices: p.config.prices.clone(),
                })
                .collect(),
        }))
    }

    #[tool(
        name = "getUsage",
        description = "Tokens and estimated cost since the service started: total, per provider, per day, and rows per day/provider/model/identity; filter by provider, identity or day.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_usage(
        &self,
        Parameters(a): Parameters<UsageArgs>,
    ) -> Result<Json<UsageReport>, AiError> {
        Ok(Json(self.svc.ledger.report(
            a.provider.as_deref(),
            a.identity.as_deref(),
            a.day.as_deref(),
        )))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AiHandler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("ai-models", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Gemini and Anthropic text generation with token usage and estimated cost per call; listModels shows allowed models and prices, getUsage the running totals."
                .to_owned(),
        );
        info
    }
}
