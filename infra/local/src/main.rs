//! `omnichat-local`: the whole bundle in one process on the embedded adapters (redb, a 0600 secrets file,
//! an in-process bus), serving the webhooks and the REST API on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::clock::SystemClock;
use omnichat::secret::Secret;
use omnichat::usecases::{Context, Providers, auth};
use tracing_subscriber::EnvFilter;

/// Configuration, read once from the environment (API.md "Local run").
struct Config {
    port: u16,
    data_dir: PathBuf,
    admin_key: Option<Secret>,
    public_base_url: String,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let port = match std::env::var("PORT") {
            Ok(raw) => raw.parse().map_err(|_| format!("PORT must be a port number, not {raw:?}"))?,
            Err(_) => 3000,
        };
        let data_dir =
            std::env::var_os("OMNICHAT_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| ".omnichat".into());
        let admin_key =
            std::env::var("OMNICHAT_ADMIN_KEY").ok().filter(|k| !k.trim().is_empty()).map(Secret::new);
        let public_base_url =
            std::env::var("PUBLIC_BASE_URL").unwrap_or_else(|_| format!("http://127.0.0.1:{port}"));
        Ok(Self { port, data_dir, admin_key, public_base_url })
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    if let Err(error) = run().await {
        eprintln!("omnichat-local: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let config = Config::from_env()?;
    create_private_dir(&config.data_dir)?;
    let store = RedbStore::open(&config.data_dir.join("omnichat.redb")).map_err(|e| e.to_string())?;
    let secrets = FileSecretStore::open(&config.data_dir.join("secrets.json")).map_err(|e| e.to_string())?;
    let bus = InProcessBus::new(1024);
    let ctx = Arc::new(Context::new(
        Arc::new(store),
        Arc::new(secrets),
        Arc::new(bus),
        Arc::new(SystemClock),
        Providers::from_env(),
        config.public_base_url.clone(),
    ));

    if let Some((tenant, key)) =
        auth::bootstrap_first_tenant(&ctx, config.admin_key.clone()).await.map_err(|e| e.to_string())?
    {
        // Printed once, on the first start only: the key is stored hashed and cannot be shown again.
        println!("Created tenant {} with admin API key: {}", tenant.id, key.expose());
    }

    let address = SocketAddr::from(([127, 0, 0, 1], config.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    tracing::info!(%address, data_dir = %config.data_dir.display(), "omnichat-local listening");
    axum::serve(listener, omnichat_http::app(ctx))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))
}

/// Ctrl-C or SIGTERM: stop accepting, finish the requests in flight, then exit.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
