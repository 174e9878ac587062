//! A downstream for workflow tests that counts what really ran: `record` (not idempotent) counts
//! executions per key, `slow` (read-only) counts starts and sleeps, `getSecret` returns a canary,
//! `fail` always fails. Each started ledger has its own counters, found by its `id`.
#![allow(unreachable_pub, dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mcp_runtime::health::AlwaysHealthy;
use mcp_runtime::{BoxError, BuildContext, ConfigDoc, HealthProbe, McpService, ShutdownToken};
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::TestService;

/// The secret `getSecret` returns: must never reach a checkpoint.
pub const CANARY: &str = "canary-secret-7f3a9d0c41be";

/// Counters of one ledger.
#[derive(Debug, Default)]
pub struct Counts {
    pub records: Mutex<HashMap<String, u64>>,
    pub slow_starts: Mutex<HashMap<String, u64>>,
    /// Idempotency keys master sent with `record` calls.
    pub keys: Mutex<Vec<String>>,
    /// `slow` calls that ended because the caller cancelled them.
    pub slow_cancelled: std::sync::atomic::AtomicU64,
    /// Set by `grow`: the ledger then lists one more tool, `grown`.
    pub grown: std::sync::atomic::AtomicBool,
}

impl Counts {
    pub fn records(&self, key: &str) -> u64 {
        self.records.lock().unwrap().get(key).copied().unwrap_or(0)
    }
    pub fn total_records(&self) -> u64 {
        self.records.lock().unwrap().values().sum()
    }
    pub fn slow_started(&self) -> u64 {
        self.slow_starts.lock().unwrap().values().sum()
    }
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Counts>>> {
    static R: OnceLock<Mutex<HashMap<String, Arc<Counts>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

pub struct Ledger {
    counts: Arc<Counts>,
}

impl McpService for Ledger {
    const NAME: &'static str = "ledger";
    const VERSION: &'static str = "0.0.0";
    const SECTION: &'static str = "ledger";
    const DEFAULT_PORT: u16 = 8098;
    type Config = BTreeMap<String, Value>;
    type Handler = LedgerHandler;

    async fn build(cfg: Self::Config, _ctx: BuildContext) -> Result<Self, BoxError> {
        let id = cfg.get("id").and_then(Value::as_str).unwrap_or("default");
        let counts = registry()
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_default()
            .clone();
        Ok(Self { counts })
    }

    fn handler(self: &Arc<Self>) -> LedgerHandler {
        LedgerHandler {
            counts: self.counts.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        Arc::new(AlwaysHealthy)
    }
}

#[derive(Clone)]
pub struct LedgerHandler {
    counts: Arc<Counts>,
}

fn schema(v: Value) -> Arc<JsonObject> {
    Arc::new(v.as_object().cloned().unwrap_or_default())
}

fn tools() -> Vec<Tool> {
    let key = json!({"type": "object", "properties": {"key": {"type": "string"}, "ms": {"type": "integer"}, "name": {"type": "string"}, "message": {"type": "string"}}});
    let ro = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false);
    let write = ToolAnnotations::new()
        .read_only(false)
        .destructive(false)
        .idempotent(false)
        .open_world(false);
    vec![
        Tool::new(
            "record",
            "Count one execution of key (not idempotent)",
            schema(key.clone()),
        )
        .annotate(write.clone()),
        Tool::new(
            "slow",
            "Sleep ms milliseconds (read-only)",
            schema(key.clone()),
        )
        .annotate(ro.clone()),
        Tool::new(
            "getSecret",
            "A canary secret (read-only)",
            schema(key.clone()),
        )
        .annotate(ro),
        Tool::new("fail", "Always fails", schema(key.clone())).annotate(write.clone()),
        Tool::new(
            "grow",
            "List one more tool (`grown`) and tell the client the list changed",
            schema(key),
        )
        .annotate(write),
    ]
}

fn grown_tool() -> Tool {
    Tool::new(
        "grown",
        "Exists once `grow` ran",
        std::sync::Arc::new(serde_json::Map::new()),
    )
}

impl ServerHandler for LedgerHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut all = tools();
        if self.counts.grown.load(std::sync::atomic::Ordering::SeqCst) {
            all.push(grown_tool());
        }
        Ok(ListToolsResult::with_all_items(all))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let key = args
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let r = match request.name.as_ref() {
            "record" => {
                if let Some(k) = cx
                    .meta
                    .get("io.mcp-suite/idempotencyKey")
                    .and_then(Value::as_str)
                {
                    self.counts.keys.lock().unwrap().push(k.to_owned());
                }
                let n = {
                    let mut m = self.counts.records.lock().unwrap();
                    let e = m.entry(key.clone()).or_default();
                    *e += 1;
                    *e
                };
                // Counted at the start, like a side effect that happened before a crash.
                if let Some(ms) = args.get("ms").and_then(Value::as_u64) {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                CallToolResult::structured(json!({"key": key, "count": n}))
            }
            "slow" => {
                *self
                    .counts
                    .slow_starts
                    .lock()
                    .unwrap()
                    .entry(key.clone())
                    .or_default() += 1;
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(100);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = cx.ct.cancelled() => {
                        self.counts.slow_cancelled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return Err(ErrorData::internal_error("cancelled", None));
                    }
                }
                CallToolResult::structured(json!({"key": key, "slept_ms": ms}))
            }
            "grow" => {
                self.counts
                    .grown
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = cx.peer.notify_tool_list_changed().await;
                CallToolResult::structured(json!({"grown": true}))
            }
            "getSecret" => {
                CallToolResult::structured(json!({"name": args.get("name"), "value": CANARY}))
            }
            "fail" => CallToolResult::error(vec![ContentBlock::text(format!(
                "failed on purpose: {}",
                args.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
            ))]),
            other => return Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        };
        Ok(r.into())
    }
}

/// Starts a ledger with its own counters.
pub async fn start_ledger(id: &str) -> (TestService, Arc<Counts>) {
    let doc = ConfigDoc::from_str(&format!("[ledger]\nid = {id:?}\n"), "ledger").expect("config");
    let shutdown = ShutdownToken::new();
    let running = mcp_runtime::start::<Ledger>(&doc, super::server_config(), shutdown.clone())
        .await
        .expect("start ledger");
    let counts = registry().lock().unwrap().get(id).cloned().expect("counts");
    (
        TestService {
            running: Some(running),
            shutdown,
            dir: tempfile::tempdir().expect("tempdir"),
        },
        counts,
    )
}
