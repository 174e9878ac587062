//! The `mcp-stack` binary: every service of the suite in one process, each on its standard port.
//! Run with `cargo run --release --bin mcp-stack`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mcp_runtime::config::ProcessEnv;
use mcp_runtime::{ConfigDoc, McpService, Running, ServerConfig, ShutdownToken};
use serde::Deserialize;

mod first_screen;

/// With auth on, master authenticates to the services behind it with a token only it holds:
/// the stack writes it here at start-up (owner-only files, made anew each start).
const INTERNAL_HEADERS: &str = "data/stack/master-to-services.headers";
const INTERNAL_TOKENS: &str = "data/stack/service-tokens.toml";
/// linux-cli's token for its CMDB lookups (SSH hosts).
const INTERNAL_LINUX_TOKEN: &str = "data/stack/linux-to-cmdb.token";

/// The identity and approval key the stack creates on its first start when none is configured:
/// master signs callers and approvals with it, the services verify with it.
const GENERATED_IDENTITY_KEY: &str = "secrets/identity_key";

/// Writes `text` to `path`, readable by the owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The server settings of the services behind master: with auth on, they accept the user's
/// static tokens plus master's own (generated per start), which master sends as its downstream
/// header. `[server.oauth]` is for master's clients: the services behind it take master's
/// internal token, so the stack works with that one setting.
fn service_server(server: &ServerConfig) -> anyhow::Result<ServerConfig> {
    if !server.auth_enabled() {
        return Ok(server.clone());
    }
    let fresh = || {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    };
    let (token, linux) = (fresh(), fresh());
    let users = match &server.auth_tokens_file {
        Some(user) => {
            std::fs::read_to_string(user).with_context(|| format!("reading {}", user.display()))?
        }
        None => String::new(),
    };
    let tokens = format!(
        "{users}\n# Added by mcp-stack: tokens of master and linux-cli for the services behind master.\n[[token]]\nidentity = \"mcp-master\"\nroles = []\nsha256 = \"{}\"\n\n[[token]]\nidentity = \"mcp-linux-cli\"\nroles = []\nsha256 = \"{}\"\n",
        mcp_runtime::auth::hash_token(&token),
        mcp_runtime::auth::hash_token(&linux)
    );
    write_private(INTERNAL_LINUX_TOKEN.as_ref(), &linux)
        .with_context(|| format!("writing {INTERNAL_LINUX_TOKEN}"))?;
    write_private(INTERNAL_TOKENS.as_ref(), &tokens)
        .with_context(|| format!("writing {INTERNAL_TOKENS}"))?;
    write_private(
        INTERNAL_HEADERS.as_ref(),
        &format!("Authorization: Bearer {token}\n"),
    )
    .with_context(|| format!("writing {INTERNAL_HEADERS}"))?;
    Ok(ServerConfig {
        auth_tokens_file: Some(INTERNAL_TOKENS.into()),
        oauth: None,
        ..server.clone()
    })
}

/// Every config section the stack reads.
const SECTIONS: &[&str] = &[
    "server",
    "ports",
    "master",
    "cmdb",
    "linux",
    "secrets",
    "k8s",
    "ai_models",
    "freqtrade",
];

#[derive(Parser, Debug)]
#[command(version, about = "Run every MCP service of the suite in one process")]
struct Cli {
    /// TOML config file (also MCP_CONFIG): `[server]` applies to every service, `[ports]` moves them,
    /// and each service has its own section (`[cmdb]`, ...).
    #[arg(long, short = 'c', env = "MCP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the SHA-256 of a bearer token read from standard input, for the tokens file.
    HashToken,
    /// Check the configuration and exit.
    CheckConfig,
    #[command(flatten)]
    Data(mcp_runtime::DataCommand),
}

/// `[ports]`: the port of each service (ports.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Ports {
    master: u16,
    linux: u16,
    cmdb: u16,
    secrets: u16,
    k8s: u16,
    ai_models: u16,
    freqtrade: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            master: mcp_master::Master::DEFAULT_PORT,
            linux: mcp_linux_cli::LinuxCli::DEFAULT_PORT,
            cmdb: mcp_cmdb::Cmdb::DEFAULT_PORT,
            secrets: mcp_secrets::Secrets::DEFAULT_PORT,
            k8s: mcp_k8s::K8s::DEFAULT_PORT,
            ai_models: mcp_ai_models::AiModels::DEFAULT_PORT,
            freqtrade: mcp_freqtrade::Freqtrade::DEFAULT_PORT,
        }
    }
}

/// What the stack loaded: the document every service reads, the shared server settings, the ports,
/// and what the first screen shows.
struct Loaded {
    doc: ConfigDoc,
    server: ServerConfig,
    ports: Ports,
    master: mcp_master::MasterConfig,
    secrets: mcp_secrets::SecretsConfig,
    /// The identity key the stack generates (on first start) because none is configured.
    generated_key: Option<PathBuf>,
}

fn load(cli: &Cli) -> anyhow::Result<Loaded> {
    let mut doc = ConfigDoc::load(cli.config.as_deref(), &ProcessEnv, SECTIONS)?;
    doc.deny_unknown_sections(SECTIONS)?;
    // From a fresh clone the stack must work anywhere: fall back to the built-in sample inventory.
    doc.set_default("cmdb", "sample_if_missing", toml::Value::Boolean(true));
    // ... and a demo KeePass database (password generated into secrets/) when no backend is set.
    doc.set_default("secrets", "demo_if_empty", toml::Value::Boolean(true));
    // Approvals out of the box: without a configured key the stack makes one (first start) and
    // every service uses it, so master signs callers and approvals the services verify.
    let configured = doc.server()?;
    let generated_key = configured
        .identity_key_file
        .is_none()
        .then(|| PathBuf::from(GENERATED_IDENTITY_KEY));
    if let Some(key) = &generated_key {
        doc.set_default(
            "server",
            "identity_key_file",
            key.display().to_string().into(),
        );
    }
    if !configured.auth_enabled() {
        // Auth off on loopback: the local operator is the only user. They hold the approver role
        // and decide their own calls, asked in the client when it supports elicitation.
        doc.set_default(
            "server",
            "anonymous_roles",
            toml::Value::Array(vec!["approver".into()]),
        );
        for key in ["allow_self_approval", "elicitation"] {
            doc.set_default_path(&["master", "approvals", key], toml::Value::Boolean(true));
        }
    }
    let server = doc.server()?;
    let ports: Ports = doc.section("ports")?;
    // With TLS on, every service serves HTTPS and master and linux-cli call them over it (the
    // certificate must name 127.0.0.1; `server.tls_ca_file` is the CA they trust).
    let scheme = if server.tls_enabled() {
        "https"
    } else {
        "http"
    };
    // Master fronts every service of the stack unless the config lists its own downstreams.
    let mut downstreams = toml::value::Array::new();
    // linux-cli finds SSH hosts in this stack's CMDB.
    let mut ssh = toml::Table::from_iter([(
        "cmdb_url".to_owned(),
        toml::Value::from(format!("{scheme}://127.0.0.1:{}/mcp", ports.cmdb)),
    )]);
    if server.auth_enabled() {
        ssh.insert("cmdb_token_file".to_owned(), INTERNAL_LINUX_TOKEN.into());
    }
    doc.set_default("linux", "ssh", toml::Value::Table(ssh));
    for (name, port) in [
        ("linux", ports.linux),
        ("cmdb", ports.cmdb),
        ("secrets", ports.secrets),
        ("k8s", ports.k8s),
        ("ai_models", ports.ai_models),
        ("freqtrade", ports.freqtrade),
    ] {
        let mut t = toml::Table::new();
        t.insert("name".into(), name.into());
        t.insert(
            "url".into(),
            format!("{scheme}://127.0.0.1:{port}/mcp").into(),
        );
        if server.auth_enabled() {
            t.insert("headers_from_file".into(), INTERNAL_HEADERS.into());
        }
        downstreams.push(toml::Value::Table(t));
    }
    doc.set_default("master", "downstream", toml::Value::Array(downstreams));
    // Toolsets sized for clients with tool limits (Cursor, Windsurf): see README.
    let toolset = |name: &str, namespaces: &[&str]| {
        let mut t = toml::Table::new();
        t.insert("name".into(), name.into());
        t.insert(
            "namespaces".into(),
            toml::Value::Array(namespaces.iter().map(|n| (*n).into()).collect()),
        );
        toml::Value::Table(t)
    };
    doc.set_default(
        "master",
        "toolset",
        toml::Value::Array(vec![
            toolset(
                "infra",
                &[
                    "linux",
                    "k8s",
                    "cmdb",
                    "secrets",
                    "orchestrator",
                    "approvals",
                    "master",
                ],
            ),
            toolset("knowledge", &["freqtrade", "ai_models", "cmdb"]),
        ]),
    );
    // One identity key for the whole stack: master signs with what the services verify with.
    if let Some(key) = &server.identity_key_file {
        doc.set_default(
            "master",
            "identity_key_file",
            key.display().to_string().into(),
        );
    }
    let _: mcp_cmdb::CmdbConfig = doc.section("cmdb")?;
    let _: mcp_linux_cli::LinuxConfig = doc.section("linux")?;
    let secrets: mcp_secrets::SecretsConfig = doc.section("secrets")?;
    let _: mcp_k8s::K8sConfig = doc.section("k8s")?;
    let _: mcp_ai_models::AiConfig = doc.section("ai_models")?;
    let _: mcp_freqtrade::FreqtradeConfig = doc.section("freqtrade")?;
    let master: mcp_master::MasterConfig = doc.section("master")?;
    master
        .validate()
        .map_err(|e| anyhow::anyhow!("{e} (in {})", doc.origin()))?;
    Ok(Loaded {
        doc,
        server,
        ports,
        master,
        secrets,
        generated_key,
    })
}

/// The data every service of the stack keeps (backup, restore and the locks held while serving).
fn data_sets(
    doc: &ConfigDoc,
) -> Result<Vec<mcp_runtime::backup::DataSet>, mcp_runtime::ConfigError> {
    use mcp_runtime::data_set;
    Ok(vec![
        data_set::<mcp_master::Master>(doc)?,
        data_set::<mcp_cmdb::Cmdb>(doc)?,
        data_set::<mcp_linux_cli::LinuxCli>(doc)?,
        data_set::<mcp_secrets::Secrets>(doc)?,
        data_set::<mcp_k8s::K8s>(doc)?,
        data_set::<mcp_ai_models::AiModels>(doc)?,
        data_set::<mcp_freqtrade::Freqtrade>(doc)?,
    ])
}

/// Creates the generated identity key if it is not there yet (owner-only); true when it was made now.
fn ensure_key(path: &std::path::Path) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    // Two v4 UUIDs: 244 random bits from the OS generator, as 64 hex characters.
    let key = format!(
        "{}{}\n",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(path, &key).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

async fn start<S: McpService>(
    doc: &ConfigDoc,
    server: &ServerConfig,
    port: u16,
    shutdown: &ShutdownToken,
) -> anyhow::Result<Running> {
    let cfg = ServerConfig {
        port,
        ..server.clone()
    };
    mcp_runtime::start::<S>(doc, cfg, shutdown.clone())
        .await
        .with_context(|| format!("starting {}", S::NAME))
}

async fn run(loaded: Loaded, key_created: bool) -> anyhow::Result<()> {
    let Loaded {
        doc, server, ports, ..
    } = &loaded;
    let shutdown = ShutdownToken::new();
    let services = service_server(server)?;
    // Services first, master last, so that master finds them up.
    let mut running = vec![
        start::<mcp_cmdb::Cmdb>(doc, &services, ports.cmdb, &shutdown).await?,
        start::<mcp_linux_cli::LinuxCli>(doc, &services, ports.linux, &shutdown).await?,
        start::<mcp_secrets::Secrets>(doc, &services, ports.secrets, &shutdown).await?,
        // Without a cluster the k8s service runs degraded and its tools say why.
        start::<mcp_k8s::K8s>(doc, &services, ports.k8s, &shutdown).await?,
        // Without API keys ai-models runs degraded and its tools say where the keys go.
        start::<mcp_ai_models::AiModels>(doc, &services, ports.ai_models, &shutdown).await?,
        // Clones the Freqtrade repository in the background; degraded until it is there.
        start::<mcp_freqtrade::Freqtrade>(doc, &services, ports.freqtrade, &shutdown).await?,
    ];
    running.push(start::<mcp_master::Master>(doc, server, ports.master, &shutdown).await?);
    for r in &running {
        tracing::info!(message = "Service up.", url = %r.url("/mcp"));
    }
    eprint!("{}", first_screen::render(&loaded, key_created, &running));
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            mcp_runtime::shutdown_signal().await;
            tracing::info!(message = "Shutdown signal received; draining.");
            shutdown.cancel();
        }
    });
    for r in running {
        r.wait().await?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashToken) = cli.command {
        let mut token = String::new();
        if std::io::stdin().read_to_string(&mut token).is_err() || token.trim().is_empty() {
            eprintln!(
                "mcp-stack: pipe the token on standard input, e.g. `printf %s \"$TOKEN\" | mcp-stack hash-token`"
            );
            return ExitCode::from(64);
        }
        println!("{}", mcp_runtime::auth::hash_token(&token));
        return ExitCode::SUCCESS;
    }
    let loaded = match load(&cli) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mcp-stack: configuration error: {e:#}");
            return ExitCode::from(64);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        println!("configuration from {} is valid", loaded.doc.origin());
        return ExitCode::SUCCESS;
    }
    let data = match data_sets(&loaded.doc) {
        Ok(sets) => sets,
        Err(e) => {
            eprintln!("mcp-stack: configuration error: {e}");
            return ExitCode::from(64);
        }
    };
    if let Some(Command::Data(command)) = &cli.command {
        return mcp_runtime::run_data_command("mcp-stack", command, &data);
    }
    mcp_runtime::telemetry::init("mcp-stack", &loaded.server);
    // Held while the stack serves: a second stack on the same data, or a restore, is refused.
    let _locks = match mcp_runtime::backup::lock_all(&data) {
        Ok(locks) => locks,
        Err(e) => {
            eprintln!("mcp-stack: {e}");
            return ExitCode::FAILURE;
        }
    };
    let key_created = match loaded.generated_key.as_deref().map(ensure_key) {
        None | Some(Ok(false)) => false,
        Some(Ok(true)) => true,
        Some(Err(e)) => {
            eprintln!("mcp-stack: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(key) = &loaded.generated_key {
        tracing::info!(
            message = if key_created {
                "Created the identity and approval key (owner-only); approvals are on."
            } else {
                "Using the generated identity and approval key; approvals are on."
            },
            path = %key.display(),
        );
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-stack: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(loaded, key_created)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(message = "mcp-stack failed.", error = %format!("{e:#}"));
            eprintln!("mcp-stack: {e:#}");
            ExitCode::FAILURE
        }
    }
}
