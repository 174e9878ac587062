//! The service contract ([`McpService`]) and the bootstrap shared by every binary: command line,
//! config loading, logging, serving, shutdown. Bad config exits with code 64 before any port is bound.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rmcp::ServerHandler;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::backup::{DataFiles, DataSet};
use crate::config::{ConfigDoc, ConfigError, ENV_CONFIG, ProcessEnv, ServerConfig};
use crate::health::HealthProbe;
use crate::metrics::Metrics;
use crate::{Running, Runtime, RuntimeError};

/// Error type services return from [`McpService::build`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a service gets while building: where to register metrics and when to stop background work.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// Runtime metrics of this service; register service-specific metrics in `metrics.registry()`.
    pub metrics: Metrics,
    /// Cancelled when the service shuts down; background tasks must end then.
    pub shutdown: CancellationToken,
    /// How the service calls others over HTTPS (`[server]`'s `tls_ca_file`,
    /// `tls_client_cert_file`, `tls_client_key_file`).
    pub client_tls: crate::tls::ClientTls,
    /// The config file the service was started from, to read again when it changes (`None`
    /// when started from text or defaults).
    pub config_source: Option<crate::config::ConfigSource>,
    /// The issuer of `[server.oauth]`, when set: where master gets tokens for its downstreams
    /// (client credentials, token exchange) unless a downstream names its own.
    pub oauth_issuer: Option<String>,
}

/// An MCP service: its config section, how to build it, and the handler each session gets.
pub trait McpService: Send + Sync + Sized + 'static {
    /// Service name (`cmdb`), used in logs, metrics and `/health`.
    const NAME: &'static str;
    /// Version reported in `/health` and `initialize`.
    const VERSION: &'static str;
    /// The config table of this service (`[cmdb]`) and the `MCP_<SECTION>_` env prefix.
    const SECTION: &'static str;
    /// Port used when config sets none (see ports.md).
    const DEFAULT_PORT: u16;
    /// The service's own config section.
    type Config: DeserializeOwned + Default + Send;
    /// The handler each session gets.
    type Handler: ServerHandler;

    /// Builds the service from its config. May spawn background tasks bound to `ctx.shutdown`.
    fn build(
        config: Self::Config,
        ctx: BuildContext,
    ) -> impl Future<Output = Result<Self, BoxError>> + Send;

    /// A handler for one new session.
    fn handler(self: &Arc<Self>) -> Self::Handler;

    /// The probe behind `/health` and `/ready`.
    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe>;

    /// Extra endpoints served at `/mcp/<name>` and `/sse/<name>` (master's toolsets).
    fn endpoints(self: &Arc<Self>) -> Vec<String> {
        Vec::new()
    }

    /// A handler for one new session of endpoint `name` (one of [`McpService::endpoints`]).
    fn endpoint_handler(self: &Arc<Self>, _name: &str) -> Self::Handler {
        self.handler()
    }

    /// Extra HTTP routes, served behind the edge checks and auth of `/mcp`.
    fn api(self: &Arc<Self>) -> Option<axum::Router> {
        None
    }

    /// Pages that log their visitors in themselves (master's console at `/ui/`), behind the
    /// Host/Origin checks; see [`crate::Runtime::with_pages`].
    fn pages(self: &Arc<Self>) -> Option<axum::Router> {
        None
    }

    /// The files this service keeps, for `backup` and `restore`, and the lock a running instance
    /// holds on them (none by default: a service that keeps nothing).
    fn data(_config: &Self::Config) -> DataFiles {
        DataFiles::default()
    }
}

/// Service `S`'s data files as configured in `doc`.
pub fn data_set<S: McpService>(doc: &ConfigDoc) -> Result<DataSet, ConfigError> {
    let config: S::Config = doc.section(S::SECTION)?;
    Ok(DataSet {
        service: S::NAME.to_owned(),
        files: S::data(&config),
    })
}

/// `backup DIR` and `restore DIR`: what the binaries print and the exit code (0 done, 1 failed).
pub fn run_data_command(program: &str, command: &DataCommand, sets: &[DataSet]) -> ExitCode {
    match command {
        DataCommand::Backup { dir } => {
            match crate::backup::backup(
                sets,
                dir,
                &format!("{program} {}", env!("CARGO_PKG_VERSION")),
            ) {
                Ok(m) => {
                    for item in &m.items {
                        let bytes: u64 = item.files.iter().map(|f| f.bytes).sum();
                        println!(
                            "{}/{}: {} file(s), {bytes} bytes{}",
                            item.service,
                            item.name,
                            item.files.len(),
                            if item.skipped_in_flight > 0 {
                                format!(", {} being written left out", item.skipped_in_flight)
                            } else {
                                String::new()
                            }
                        );
                    }
                    for absent in &m.absent {
                        println!("{absent}: nothing yet");
                    }
                    println!(
                        "backup complete in {} ({})",
                        dir.display(),
                        crate::backup::MANIFEST
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{program}: backup failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        DataCommand::Restore { dir, replace } => {
            match crate::backup::restore(sets, dir, *replace) {
                Ok(r) => {
                    for moved in &r.moved_aside {
                        println!("moved aside: {moved}");
                    }
                    for item in &r.items {
                        println!("{item}: restored");
                    }
                    for item in &r.not_ours {
                        println!("{item}: not restored ({program} does not run it)");
                    }
                    println!("restore complete from {}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{program}: restore refused: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The data subcommands every binary has.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum DataCommand {
    /// Copy this program's stores into DIR (new or empty) while it serves, with a manifest of
    /// checksums.
    Backup { dir: PathBuf },
    /// Restore the backup in DIR into the configured places; refused while the program runs.
    Restore {
        dir: PathBuf,
        /// Move existing data aside (renamed `*.before-restore-<time>`) instead of refusing.
        #[arg(long)]
        replace: bool,
    },
}

/// Builds service `S` from the `[S::SECTION]` table of `doc` and serves it with `server` settings.
pub async fn start<S: McpService>(
    doc: &ConfigDoc,
    server: ServerConfig,
    shutdown: CancellationToken,
) -> Result<Running, RuntimeError> {
    let config: S::Config = doc.section(S::SECTION)?;
    let metrics = Metrics::new(S::NAME, &prometheus::Registry::new())?;
    let ctx = BuildContext {
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        client_tls: crate::tls::ClientTls::from_server(&server),
        config_source: doc.source().cloned(),
        oauth_issuer: server.oauth.as_ref().map(|o| o.issuer.clone()),
    };
    let svc = Arc::new(
        S::build(config, ctx)
            .await
            .map_err(|source| RuntimeError::Build {
                service: S::NAME.to_owned(),
                source,
            })?,
    );
    let health = svc.health();
    let endpoints = svc.endpoints();
    let api = svc.api();
    let pages = svc.pages();
    let named = {
        let svc = svc.clone();
        Arc::new(move |name: &str| svc.endpoint_handler(name))
    };
    let factory = move || svc.handler();
    Runtime::new(S::NAME, S::VERSION, factory)
        .with_endpoints(endpoints, named)
        .with_api(api)
        .with_pages(pages)
        .with_config(server)
        .with_health(health)
        .with_metrics(metrics)
        .with_shutdown(shutdown)
        .bind()
        .await
}

#[derive(Parser, Debug)]
struct Cli {
    /// TOML config file (also MCP_CONFIG). Without one, defaults plus MCP_* environment overrides apply.
    #[arg(long, short = 'c', env = ENV_CONFIG)]
    config: Option<PathBuf>,
    /// Print the effective configuration (server and service sections) and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    data: Option<DataCommand>,
}

/// The whole `main` of a service binary: parse the command line, load config, log, serve until SIGTERM.
pub fn main_for<S: McpService>() -> ExitCode {
    let cli = Cli::parse();
    let loaded = ConfigDoc::load(cli.config.as_deref(), &ProcessEnv, &["server", S::SECTION])
        .and_then(|mut doc| {
            doc.deny_unknown_sections(&["server", S::SECTION])?;
            doc.set_default(
                "server",
                "port",
                toml::Value::Integer(i64::from(S::DEFAULT_PORT)),
            );
            let server = doc.server()?;
            // Parse the service section now so a bad value exits 64 before anything starts.
            let _: S::Config = doc.section(S::SECTION)?;
            Ok((doc, server))
        });
    let (doc, server) = match loaded {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", S::NAME);
            return ExitCode::from(64);
        }
    };
    if cli.check_config {
        println!("configuration from {} is valid", doc.origin());
        return ExitCode::SUCCESS;
    }
    let data = match data_set::<S>(&doc) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", S::NAME);
            return ExitCode::from(64);
        }
    };
    if let Some(command) = &cli.data {
        return run_data_command(S::NAME, command, &[data]);
    }
    crate::telemetry::init(S::NAME, &server);
    // Held while serving: a second process on the same files, or a restore, is refused.
    let _lock = match data.lock() {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("{}: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let running = match start::<S>(&doc, server, shutdown.clone()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(message = "Startup failed.", error = %e);
                eprintln!("{}: {e}", S::NAME);
                return ExitCode::from(match e {
                    RuntimeError::Config(_)
                    | RuntimeError::Auth(_)
                    | RuntimeError::InsecureBind { .. } => 64,
                    _ => 1,
                });
            }
        };
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                crate::shutdown_signal().await;
                tracing::info!(message = "Shutdown signal received; draining.");
                shutdown.cancel();
            }
        });
        let code = match running.wait().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(message = "Server failed.", error = %e);
                ExitCode::FAILURE
            }
        };
        crate::telemetry::flush();
        code
    })
}
