//! `casebridge serve` and `casebridge migrate`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use casebridge_crm::http::HttpClient;
use casebridge_crm::registry::{self, ConnectorConfig, Deps};
use casebridge_rules::settings::Settings;
use casebridge_store::Store;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config;
use crate::pipeline::Pipeline;

/// Where the data lives.
#[derive(Args, Clone)]
pub struct DbArgs {
    /// Data folder for the embedded SQLite database.
    #[arg(long, env = "CASEBRIDGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…) instead of SQLite.
    #[arg(long, env = "CASEBRIDGE_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// Options of `serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to bind.
    #[arg(long, env = "CASEBRIDGE_BIND")]
    pub bind: Option<String>,
    /// Also serve /metrics, without a token, on this address (for a Prometheus scrape).
    #[arg(long, env = "CASEBRIDGE_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// TOML configuration file: the settings document plus a [server] table.
    #[arg(long, env = "CASEBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, env = "CASEBRIDGE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Mark console session cookies Secure even on plain HTTP (set it when a TLS proxy is in
    /// front; `X-Forwarded-Proto: https` from the proxy also does it).
    #[arg(long, env = "CASEBRIDGE_CONSOLE_SECURE_COOKIE")]
    pub console_secure_cookie: bool,
    /// Log format: text or json.
    #[arg(long, env = "CASEBRIDGE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// PEM certificate trusted for Amazon SNS message signatures instead of fetching the
    /// signing certificate from AWS (an SNS-compatible service such as LocalStack, tests);
    /// subscription links on loopback addresses are then allowed too.
    #[arg(long, env = "CASEBRIDGE_SNS_CERT_FILE")]
    pub sns_cert_file: Option<PathBuf>,
}

/// Help of `serve` about authentication.
pub const SERVE_AUTH_HELP: &str = "Authentication:
  CASEBRIDGE_API_TOKEN     bearer token every call needs (Authorization: Bearer <token>),
                           /metrics included; without it casebridge accepts unauthenticated
                           calls and binds loopback addresses only. /healthz and /readyz
                           never need it.
  CASEBRIDGE_METRICS_TOKEN read-only bearer token accepted on /metrics only.
  --metrics-bind ADDR      serves /metrics alone, without a token, on a second address.";

/// A database URL without its password.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(x) => x,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

async fn open_store(db: &DbArgs) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &db.database_url {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            tracing::info!(database_url = %redact_url(url), "Storage: PostgreSQL.");
            return Ok(casebridge_store::open(url).await?);
        }
        bail!("--database-url must start with postgres://");
    }
    let dir = db.data_dir.clone().unwrap_or_else(|| PathBuf::from("casebridge-data"));
    let shown = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
    tracing::info!(data_dir = %shown.display(), "Storage: SQLite in the data folder.");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    let path = dir.join("casebridge.db");
    casebridge_store::open(&casebridge_store::sqlite_url(&dir))
        .await
        .with_context(|| format!("cannot open {}", path.display()))
}

/// `casebridge migrate`.
pub async fn migrate(db: DbArgs) -> anyhow::Result<()> {
    let store = open_store(&db).await?;
    store.migrate().await.context("migration failed")?;
    println!("database is up to date");
    Ok(())
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    // Colour only for a person at a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" { b.json().init() } else { b.init() }
}

/// `casebridge serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(&args.log_format);
    let file = match &args.config {
        Some(p) => config::load(p)?,
        None => config::ConfigFile::default(),
    };
    for w in &file.warnings {
        tracing::warn!(field = %w.field, "Setting has no effect: {}", w.message);
    }
    let bind = args.bind.clone().or(file.server.bind.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let what = if args.bind.is_some() { "--bind" } else { "server.bind" };
    let addr: SocketAddr = bind.parse().with_context(|| config::bad_bind(what, &bind))?;
    let token = std::env::var("CASEBRIDGE_API_TOKEN").ok().filter(|t| !t.is_empty()).or(file.server.api_token.clone());
    let metrics_token = std::env::var("CASEBRIDGE_METRICS_TOKEN").ok().filter(|t| !t.is_empty());
    let metrics_addr: Option<SocketAddr> = match &args.metrics_bind {
        Some(m) => {
            Some(m.parse().with_context(|| format!("--metrics-bind {m:?} is not an address such as 127.0.0.1:9090"))?)
        }
        None => None,
    };
    if token.is_none() && !addr.ip().is_loopback() {
        bail!(
            "refusing to bind {addr} without a token: set CASEBRIDGE_API_TOKEN, or bind a loopback address such as 127.0.0.1"
        );
    }
    let db = DbArgs {
        data_dir: args.db.data_dir.clone().or(file.server.data_dir.clone()),
        database_url: args.db.database_url.clone().or(file.server.database_url.clone()),
    };
    let store = open_store(&db).await?;
    store.migrate().await.context("migration failed")?;
    let sealer = Arc::new(crate::secrets::Sealer::new(std::env::var("CASEBRIDGE_SECRET_KEY").ok().as_deref()));
    let settings = match file.settings.clone() {
        Some(s) => {
            let mut doc = serde_json::to_value(&s)?;
            sealer.seal(&mut doc);
            store.settings_put(&doc.to_string()).await?;
            s
        }
        None => match store.settings_get().await? {
            Some(doc) => crate::secrets::stored_settings(&sealer, &doc)?,
            None => Settings::default(),
        },
    };
    if sealer.enabled() {
        tracing::info!("Secrets in the stored settings are sealed (CASEBRIDGE_SECRET_KEY).");
    } else if settings.crm.kind != "builtin" {
        tracing::warn!("CRM credentials are stored unsealed: set CASEBRIDGE_SECRET_KEY to seal them at rest.");
    }
    let (connector, _) = ConnectorConfig::parse(&settings.crm)
        .map_err(|e| anyhow::anyhow!("the crm settings are invalid: {}", crate::config::describe(&e)))?;
    tracing::info!(crm = connector.kind(), "CRM connector: {}.", connector.kind());
    let http = HttpClient::with_timeout(
        millis_env("CASEBRIDGE_CRM_TIMEOUT_MS")?.unwrap_or(casebridge_crm::http::REQUEST_TIMEOUT),
    )?
    // Several nodes on one database keep the CRM's rate limit together.
    .with_cluster(store.pace_ledger().map(|ledger| casebridge_crm::pacing::Cluster {
        ledger,
        alone: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    }));
    let crm = registry::connect(&connector, &Deps { builtin: store.clone(), http: http.clone() });
    let mut pipeline = Pipeline::new(store.clone(), crm, http, settings);
    if let Some(base) = millis_env("CASEBRIDGE_RETRY_BASE_MS")?
        && let Some(p) = Arc::get_mut(&mut pipeline)
    {
        p.retry_base = base;
    }
    pipeline.load_fields().await?;
    pipeline.node.saw_settings(store.settings_get().await?);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("casebridge_event_to_crm_write_seconds".into()),
            crate::pipeline::LATENCY_BUCKETS,
        )
        .ok()
        .and_then(|b| b.install_recorder().ok());
    let sns_cert = match &args.sns_cert_file {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read --sns-cert-file {}", p.display()))?),
        None => None,
    };
    if sns_cert.is_some() {
        tracing::warn!("SNS signatures are checked with the local certificate of --sns-cert-file, not AWS's.");
    }
    let native = crate::native::NativeIngest::new(sns_cert.as_deref())?;
    let backlog = crate::backlog::Backlog::new(match std::env::var("CASEBRIDGE_MAX_BACKLOG") {
        Ok(v) => Some(
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("CASEBRIDGE_MAX_BACKLOG={v:?} is not a whole number of events above 0"))?,
        ),
        Err(_) => None,
    });
    backlog.watch(store.clone());
    let state = AppState::new(crate::api::state::Shared {
        native,
        pipeline: pipeline.clone(),
        store: store.clone(),
        intake: crate::intake::Intake::start(store.clone(), backlog),
        token: token.map(Into::into),
        metrics_token: metrics_token.map(Into::into),
        metrics,
        max_body_bytes: args.max_body_bytes.or(file.server.max_body_bytes).unwrap_or(4 * 1024 * 1024),
        sealer: sealer.clone(),
    });
    let open_mode = state.token.is_none();
    let metrics_token_set = state.metrics_token.is_some();
    let metrics_app = api::metrics_router(state.clone());
    let console = crate::console::Console::new(state.clone(), args.console_secure_cookie);
    // The console's pages first; the API (and its JSON 404 for anything else) after.
    let app = crate::console::router(console).merge(api::router(state));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot bind {addr}"))?;
    let local = listener.local_addr()?;
    let stop = CancellationToken::new();
    let metrics_server = match metrics_addr {
        Some(m) => {
            let l = tokio::net::TcpListener::bind(m).await.with_context(|| format!("cannot bind {m}"))?;
            let at = l.local_addr()?;
            let shutdown = stop.clone();
            let server = axum::serve(l, metrics_app).with_graceful_shutdown(async move { shutdown.cancelled().await });
            Some((at, tokio::spawn(async move { server.await })))
        }
        None => None,
    };
    if let Some(lease) = millis_env("CASEBRIDGE_LEASE_MS")? {
        crate::node::configure(lease);
    }
    pipeline.node.set_address(local);
    // Joins the others (shards, liveness) before working.
    crate::cluster::beat(&pipeline, &sealer).await.context("cannot join the nodes on this database")?;
    crate::cluster::join(&pipeline).await.context("cannot join the nodes on this database")?;
    let heart = tokio::spawn(crate::cluster::run(pipeline.clone(), sealer.clone(), stop.clone()));
    let workers = tokio::spawn(crate::workers::run(pipeline.clone(), stop.clone()));
    println!("casebridge listening on http://{local} (API reference: http://{local}/openapi.json)");
    if open_mode {
        println!("console: http://{local}/ (open on loopback: no token set)");
    } else {
        println!("console: http://{local}/ (sign in with the API token)");
    }
    if open_mode {
        println!("no CASEBRIDGE_API_TOKEN set: accepting unauthenticated calls on loopback only");
    }
    if let Some((at, _)) = &metrics_server {
        println!("metrics without a token on http://{at}/metrics");
    }
    let auth = if open_mode { "none (loopback open mode)" } else { "bearer token" };
    tracing::info!(bind = %local, auth, console = %format!("http://{local}/"), api = %format!("http://{local}/v1"), docs = %format!("http://{local}/openapi.json"), "Listening.");
    match &metrics_server {
        Some((at, _)) => {
            tracing::info!(metrics = %format!("http://{at}/metrics"), "Metrics without a token on a separate listener.")
        }
        None if metrics_token_set => {
            tracing::info!("Metrics: /metrics takes the API token or CASEBRIDGE_METRICS_TOKEN.")
        }
        None if !open_mode => {
            tracing::info!("Metrics: /metrics takes the API token (see --metrics-bind, CASEBRIDGE_METRICS_TOKEN).")
        }
        None => {}
    }
    tracing::info!(%local, "Ready.");
    let shutdown = stop.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("Shutting down: finishing requests in flight.");
            shutdown.cancel();
        })
        .await?;
    stop.cancel();
    let _ = workers.await;
    let _ = heart.await;
    crate::cluster::leave(&store, &pipeline.node).await;
    if let Some((_, m)) = metrics_server {
        let _ = m.await;
    }
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// A duration in milliseconds from the environment (tuning knobs for operators and tests).
fn millis_env(name: &str) -> anyhow::Result<Option<std::time::Duration>> {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Some(std::time::Duration::from_millis(ms))),
            _ => bail!("{name}={v:?} is not a whole number of milliseconds above 0"),
        },
        Err(_) => Ok(None),
    }
}
