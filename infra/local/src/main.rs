//! `omnichat-local`: the whole bundle in one process; see the library's docs and the README.

use omnichat_local::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    if let Err(error) = init_logging() {
        eprintln!("omnichat-local: {error}");
        std::process::exit(2);
    }
    if let Err(error) = run().await {
        eprintln!("omnichat-local: {error}");
        std::process::exit(1);
    }
}

/// Logs on stdout, filtered by `RUST_LOG` (default `info`): human-readable text, or with
/// `OMNICHAT_LOG_FORMAT=json` one JSON object per line with the span fields (`request_id`, `run_id`), as
/// the Lambdas log.
fn init_logging() -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var("OMNICHAT_LOG_FORMAT").unwrap_or_default();
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format.trim().to_ascii_lowercase().as_str() {
        // Colours only on a terminal: escape codes in a log file are noise, and cost time on every line.
        "" | "text" => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())).init(),
        "json" => builder.json().with_current_span(false).with_ansi(false).init(),
        other => return Err(format!("OMNICHAT_LOG_FORMAT must be text or json, not {other:?}")),
    }
    Ok(())
}

async fn run() -> Result<(), String> {
    let config = Config::from_env()?;
    let running = omnichat_local::start_with_system_clock(config, shutdown_signal()).await?;
    if let Some(key) = &running.first_admin_key {
        // Printed once, on the first start only: the key is stored hashed and cannot be shown again.
        println!("First start: created the tenant. Admin API key: {}", key.expose());
    }
    println!("omnichat-local listening on http://{}", running.address);
    println!("The operator workspace: http://{}/app/ (sign in with an API key)", running.address);
    running.wait().await
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
