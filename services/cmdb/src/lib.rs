//! CMDB MCP service (port 8012, namespace `cmdb`): hosts from a CSV file, indexed in SQLite,
//! hot-reloaded when the file changes, with malformed rows reported rather than dropped silently.

pub mod error;
pub mod store;

use crate::error::CmdbError;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_runtime::backup::{DataFiles, DataItem, DataKind};
use mcp_runtime::{BoxError, BuildContext, Check, HealthProbe, McpService};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use store::{Store, StoreError};

/// The sample inventory shipped with the repository, used by the stack when no CSV file is present.
pub const SAMPLE_CSV: &str = include_str!("../../../data/cmdb.csv");

/// Largest page a caller may ask for.
pub const MAX_LIMIT: u32 = 500;
const DEFAULT_LIMIT: u32 = 50;

/// The `[cmdb]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmdbConfig {
    /// CSV file with one host per row; `name` is required, see data/cmdb.csv for the columns.
    pub csv_path: PathBuf,
    /// How often to check the file for changes, in milliseconds.
    pub reload_interval_ms: u64,
    /// Serve the built-in sample inventory when `csv_path` does not exist (the stack's default).
    pub sample_if_missing: bool,
}

impl Default for CmdbConfig {
    fn default() -> Self {
        Self {
            csv_path: PathBuf::from("data/cmdb.csv"),
            reload_interval_ms: 500,
            sample_if_missing: false,
        }
    }
}

/// The CMDB service: one inventory shared by every session.
pub struct Cmdb {
    store: Arc<Store>,
    tools: ToolRouter<CmdbHandler>,
    sample: bool,
}

impl Cmdb {
    /// The inventory (for tests and embedding).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl McpService for Cmdb {
    const NAME: &'static str = "cmdb";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "cmdb";
    const DEFAULT_PORT: u16 = 8012;
    type Config = CmdbConfig;
    type Handler = CmdbHandler;

    async fn build(config: CmdbConfig, ctx: BuildContext) -> Result<Self, BoxError> {
        if config.reload_interval_ms < 50 {
            return Err("cmdb.reload_interval_ms must be at least 50".into());
        }
        let (store, sample) = if !config.csv_path.exists() && config.sample_if_missing {
            tracing::warn!(
                message = "CMDB file not found; serving the built-in sample inventory.",
                path = %config.csv_path.display()
            );
            (
                Store::from_text(SAMPLE_CSV, "built-in sample (data/cmdb.csv)")?,
                true,
            )
        } else {
            (Store::open(&config.csv_path)?, false)
        };
        let store = Arc::new(store);
        if !sample {
            let watched = store.clone();
            let interval = Duration::from_millis(config.reload_interval_ms);
            let shutdown = ctx.shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let s = watched.clone();
                            // File IO and parsing are blocking; keep them off the async workers.
                            let _ = tokio::task::spawn_blocking(move || s.reload_if_changed()).await;
                        }
                        () = shutdown.cancelled() => break,
                    }
                }
            });
        }
        Ok(Self {
            store,
            tools: CmdbHandler::tool_router(),
            sample,
        })
    }

    fn handler(self: &Arc<Self>) -> CmdbHandler {
        CmdbHandler {
            store: self.store.clone(),
            tool_router: self.tools.clone(),
        }
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        self.clone()
    }

    /// The inventory file (the service only reads it, so it takes no lock).
    fn data(config: &CmdbConfig) -> DataFiles {
        DataFiles {
            lock: None,
            items: vec![DataItem::new("inventory", &config.csv_path, DataKind::File)],
        }
    }
}

impl HealthProbe for Cmdb {
    fn checks(&self) -> BTreeMap<String, Check> {
        let status = self.store.status();
        let details = serde_json::to_value(&status).unwrap_or(Value::Null);
        let check = if let Some(err) = &status.last_reload_error {
            Check::degraded(format!("last reload failed: {err}"), details)
        } else if !status.invalid_rows.is_empty() {
            Check::degraded(
                format!(
                    "{} invalid row(s) in {} were not loaded",
                    status.invalid_rows.len(),
                    status.path
                ),
                details,
            )
        } else if self.sample {
            Check::degraded(
                "serving the built-in sample inventory; set cmdb.csv_path to your own CSV",
                details,
            )
        } else {
            Check::healthy(details)
        };
        BTreeMap::from([("inventory".to_owned(), check)])
    }

    fn ready(&self) -> bool {
        true
    }
}

/// Arguments of `listHosts`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListHostsArgs {
    /// Maximum number of hosts to return (1-500, default 50).
    pub limit: Option<u32>,
    /// Number of hosts to skip, for paging (default 0).
    pub offset: Option<u32>,
    /// Return only these fields of each host (for example ["name","ip"]). Default: all fields.
    pub fields: Option<Vec<String>>,
}

/// Arguments of `getHost`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetHostArgs {
    /// Host name, FQDN or IP address (case-insensitive), for example "aicrusher".
    pub name: String,
    /// Return only these fields. Default: all fields.
    pub fields: Option<Vec<String>>,
}

/// Arguments of `searchHosts`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchHostsArgs {
    /// Free text matched (case-insensitive substring) against name, fqdn, ip, role, os, owner, location, tags and description.
    pub query: Option<String>,
    /// Exact, case-insensitive matches by column, for example {"environment":"production","role":"database"}. `tags` matches one tag.
    pub filters: Option<BTreeMap<String, String>>,
    /// Shortcut for filters.environment (production, staging, development, lab, ...).
    pub environment: Option<String>,
    /// Shortcut for filters.role.
    pub role: Option<String>,
    /// Shortcut for filters.ci_type (server, vm, container, network, storage, ...).
    pub ci_type: Option<String>,
    /// Shortcut for filters.owner.
    pub owner: Option<String>,
    /// Hosts carrying this tag.
    pub tag: Option<String>,
    /// Return only these fields. Default: all fields.
    pub fields: Option<Vec<String>>,
    /// Maximum number of hosts to return (1-500, default 50).
    pub limit: Option<u32>,
    /// Number of hosts to skip, for paging (default 0).
    pub offset: Option<u32>,
}

/// A page of hosts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HostPage {
    /// Hosts matching in total (across all pages).
    pub total: usize,
    /// Offset of this page.
    pub offset: usize,
    /// Hosts on this page.
    pub count: usize,
    /// The hosts, ordered by name.
    pub hosts: Vec<Map<String, Value>>,
}

impl HostPage {
    /// A store page with each host cut down to `fields` (all fields when `None`).
    fn project(page: store::Page, fields: Option<&[String]>) -> Self {
        Self {
            total: page.total,
            offset: page.offset,
            count: page.count,
            hosts: page.hosts.into_iter().map(|h| project(h, fields)).collect(),
        }
    }
}

/// One host.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HostRecord {
    pub host: Map<String, Value>,
}

/// A value and how many hosts have it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Count {
    pub value: String,
    pub hosts: usize,
}

/// Configuration-item types and other facets of the inventory.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CiTypes {
    /// Host counts per CI type.
    pub ci_types: Vec<Count>,
    /// Host counts per environment.
    pub environments: Vec<Count>,
    /// Host counts per role.
    pub roles: Vec<Count>,
    /// Every field a filter or projection may name.
    pub fields: Vec<String>,
    /// Total hosts in the inventory.
    pub total_hosts: usize,
}

/// The per-session MCP handler of the CMDB.
#[derive(Clone)]
pub struct CmdbHandler {
    store: Arc<Store>,
    tool_router: ToolRouter<Self>,
}

fn page_bounds(limit: Option<u32>, offset: Option<u32>) -> Result<(usize, usize), CmdbError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(CmdbError::Invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    Ok((limit as usize, offset.unwrap_or(0) as usize))
}

fn project(host: Map<String, Value>, fields: Option<&[String]>) -> Map<String, Value> {
    match fields {
        None => host,
        Some(f) => host.into_iter().filter(|(k, _)| f.contains(k)).collect(),
    }
}

#[tool_router]
impl CmdbHandler {
    /// All hosts, a page at a time, ordered by name.
    #[tool(
        name = "listHosts",
        description = "List hosts in the CMDB, ordered by name, a page at a time (limit/offset). Use `fields` to return only some columns, e.g. [\"name\",\"ip\",\"environment\"].",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_hosts(
        &self,
        Parameters(args): Parameters<ListHostsArgs>,
    ) -> Result<Json<HostPage>, CmdbError> {
        let (limit, offset) = page_bounds(args.limit, args.offset)?;
        if let Some(f) = &args.fields {
            self.store.check_fields(f)?;
        }
        let page = self.store.search(&store::Query {
            limit,
            offset,
            ..Default::default()
        })?;
        Ok(Json(HostPage::project(page, args.fields.as_deref())))
    }

    /// One host by name, FQDN or IP.
    #[tool(
        name = "getHost",
        description = "Get one host from the CMDB by name, FQDN or IP address (case-insensitive): address, environment, role, OS, owner, SSH user and port, tags.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_host(
        &self,
        Parameters(args): Parameters<GetHostArgs>,
    ) -> Result<Json<HostRecord>, CmdbError> {
        let key = args.name.trim();
        if key.is_empty() {
            return Err(CmdbError::Invalid("`name` must not be empty".to_owned()));
        }
        if let Some(f) = &args.fields {
            self.store.check_fields(f)?;
        }
        match self.store.get(key)? {
            Some(host) => Ok(Json(HostRecord {
                host: project(host, args.fields.as_deref()),
            })),
            None => {
                let similar = self.store.similar(key, 5).unwrap_or_default();
                let suggestion = if similar.is_empty() {
                    "use searchHosts or listHosts to find it".to_owned()
                } else {
                    format!("did you mean: {}?", similar.join(", "))
                };
                Err(CmdbError::UnknownHost {
                    host: key.to_owned(),
                    suggestion,
                })
            }
        }
    }

    /// Hosts matching filters and free text.
    #[tool(
        name = "searchHosts",
        description = "Search hosts by exact column filters (environment, role, ci_type, owner, os, location, ssh_user, tag, or any column via `filters`) and/or free text (`query`), with field projection and paging.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn search_hosts(
        &self,
        Parameters(args): Parameters<SearchHostsArgs>,
    ) -> Result<Json<HostPage>, CmdbError> {
        let (limit, offset) = page_bounds(args.limit, args.offset)?;
        let mut filters = args.filters.clone().unwrap_or_default();
        for (col, val) in [
            ("environment", &args.environment),
            ("role", &args.role),
            ("ci_type", &args.ci_type),
            ("owner", &args.owner),
            ("tags", &args.tag),
        ] {
            if let Some(v) = val {
                if let Some(prev) = filters.get(col).filter(|p| *p != v) {
                    return Err(CmdbError::Invalid(format!(
                        "conflicting values for `{col}`: `{prev}` in filters and `{v}` as argument"
                    )));
                }
                filters.insert(col.to_owned(), v.clone());
            }
        }
        if let Some(f) = &args.fields {
            self.store.check_fields(f)?;
        }
        let page = self.store.search(&store::Query {
            filters,
            text: args.query.clone(),
            limit,
            offset,
        })?;
        Ok(Json(HostPage::project(page, args.fields.as_deref())))
    }

    /// Configuration-item types and facets.
    #[tool(
        name = "listCiTypes",
        description = "List the configuration-item types in the CMDB (server, vm, container, network, storage, ...) with host counts, plus counts per environment and role and the fields usable in filters.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_ci_types(&self) -> Result<Json<CiTypes>, CmdbError> {
        let to_counts = |v: Vec<(String, usize)>| {
            v.into_iter()
                .map(|(value, hosts)| Count { value, hosts })
                .collect::<Vec<_>>()
        };
        let ci_types = to_counts(self.store.counts("ci_type")?);
        Ok(Json(CiTypes {
            total_hosts: ci_types.iter().map(|c| c.hosts).sum(),
            ci_types,
            environments: to_counts(self.store.counts("environment")?),
            roles: to_counts(self.store.counts("role")?),
            fields: self.store.fields(),
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CmdbHandler {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("cmdb", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Configuration management database of hosts. Use getHost for one host (name, FQDN or IP), searchHosts to filter, listCiTypes to see what exists."
                .to_owned(),
        );
        info
    }
}
