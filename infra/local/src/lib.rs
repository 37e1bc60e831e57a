//! `omnichat-local`: the whole bundle in one process on the embedded adapters (redb, a 0600 secrets file,
//! an in-process bus and work queue), serving the webhooks and the REST API on 127.0.0.1. The binary reads its
//! configuration from the environment; tests start it in-process with a configuration of their own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use omnichat::adapters::embedded::{
    DataDir, FileMediaStore, InProcessBus, InProcessWorkQueue, RUNNER_FILE, open_data_dir,
};
use omnichat::ports::clock::{Clock, SystemClock};
use omnichat::ports::events::DomainEvent;
use omnichat::secret::Secret;
use omnichat::usecases::{Context, Providers, auth, routing, scheduled, tenants};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

mod live;
pub mod media;
mod serve;

pub use serve::{BODY_TIMEOUT, ConnectionLimits, HEADER_TIMEOUT, MAX_CONNECTIONS};

/// Configuration, read once (docs/API.md "Local run").
#[derive(Debug, Clone)]
pub struct Config {
    /// 0 picks a free port (tests).
    pub port: u16,
    pub data_dir: PathBuf,
    /// The first tenant's admin key at first start (`OMNICHAT_ADMIN_KEY`, at least 24 characters).
    pub admin_key: Option<Secret>,
    /// The platform operator's key (`OMNICHAT_OPERATOR_KEY`, at least 24 characters): creates and lists
    /// tenants. Unset: a random key per start, never shown, which only `omnichat-admin` on this machine
    /// reads (from the 0600 secrets file) to reach a running runner.
    pub operator_key: Option<Secret>,
    /// The base of the webhook URLs registered with providers; defaults to the local address.
    pub public_base_url: Option<String>,
    /// Provider clients; `None` builds them from the environment (`TELEGRAM_API_BASE`, ...).
    pub providers: Option<Providers>,
    /// How often the scheduled jobs run (`OMNICHAT_TICK_SECONDS`, default 60).
    pub tick: Duration,
    /// Requests served at once (`OMNICHAT_MAX_CONCURRENT_REQUESTS`, default 256); more wait their turn.
    pub max_concurrent_requests: usize,
    /// Bounds on open connections and on the time a request's headers and body may take (see `serve`).
    pub connections: ConnectionLimits,
    /// The largest file kept or uploaded (`OMNICHAT_MAX_MEDIA_BYTES`, default 25 MiB).
    pub max_media_bytes: u64,
}

/// The default bound on requests served at once.
pub const MAX_CONCURRENT_REQUESTS: usize = 256;

/// Work items (mailbox polls) run at once by the runner's workers, as the one poller did before fan-out.
pub const WORKERS: usize = 4;

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let port = match std::env::var("PORT") {
            Ok(raw) => raw.parse().map_err(|_| format!("PORT must be a port number, not {raw:?}"))?,
            Err(_) => 3000,
        };
        let data_dir =
            std::env::var_os("OMNICHAT_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| ".omnichat".into());
        let admin_key = preset_key("OMNICHAT_ADMIN_KEY")?;
        let operator_key = preset_key("OMNICHAT_OPERATOR_KEY")?;
        let public_base_url = std::env::var("PUBLIC_BASE_URL").ok().filter(|u| !u.is_empty());
        let tick = match std::env::var("OMNICHAT_TICK_SECONDS") {
            Ok(raw) => match raw.parse::<u64>() {
                Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
                _ => {
                    return Err(format!(
                        "OMNICHAT_TICK_SECONDS must be a whole number of seconds > 0, not {raw:?}"
                    ));
                }
            },
            Err(_) => Duration::from_secs(60),
        };
        let max_concurrent_requests = match std::env::var("OMNICHAT_MAX_CONCURRENT_REQUESTS") {
            Ok(raw) => match raw.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(format!(
                        "OMNICHAT_MAX_CONCURRENT_REQUESTS must be a number > 0, not {raw:?}"
                    ));
                }
            },
            Err(_) => MAX_CONCURRENT_REQUESTS,
        };
        let connections = ConnectionLimits {
            header_timeout: Duration::from_secs(whole_number(
                "OMNICHAT_HEADER_TIMEOUT_SECONDS",
                HEADER_TIMEOUT.as_secs(),
                3600,
            )?),
            body_timeout: Duration::from_secs(whole_number(
                "OMNICHAT_BODY_TIMEOUT_SECONDS",
                BODY_TIMEOUT.as_secs(),
                3600,
            )?),
            max_connections: usize::try_from(whole_number(
                "OMNICHAT_MAX_CONNECTIONS",
                MAX_CONNECTIONS as u64,
                1_000_000,
            )?)
            .map_err(|_| "OMNICHAT_MAX_CONNECTIONS is too large for this machine".to_owned())?,
        };
        let max_media_bytes = omnichat::limits::max_media_bytes_from_env()?;
        Ok(Self {
            max_media_bytes,
            port,
            data_dir,
            admin_key,
            operator_key,
            public_base_url,
            providers: None,
            tick,
            max_concurrent_requests,
            connections,
        })
    }
}

/// A whole number from 1 to `max` in `variable`, or `default` when it is unset; anything else is refused
/// with the reason.
fn whole_number(variable: &str, default: u64, max: u64) -> Result<u64, String> {
    match std::env::var(variable) {
        Err(_) => Ok(default),
        Ok(raw) => match raw.trim().parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("{variable} must be a whole number from 1 to {max}, not {raw:?}")),
        },
    }
}

/// A key given in the environment: unset or empty is none; a short one is refused with the reason.
fn preset_key(variable: &str) -> Result<Option<Secret>, String> {
    match std::env::var(variable) {
        Ok(raw) if !raw.trim().is_empty() => {
            let key = Secret::new(raw);
            auth::check_preset_key(&key, variable)?;
            Ok(Some(key))
        }
        _ => Ok(None),
    }
}

/// A running bundle.
pub struct Running {
    pub address: SocketAddr,
    pub context: Arc<Context>,
    /// The admin key, on the first start only.
    pub first_admin_key: Option<Secret>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), String>>,
}

impl Running {
    /// Stops accepting, finishes the requests in flight, and releases the data dir.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let server = std::mem::replace(&mut self.server, tokio::spawn(async { Ok(()) }));
        server.await.map_err(|e| format!("server task failed: {e}"))?
    }

    /// Runs until the server ends (it ends when `shutdown` resolves).
    pub async fn wait(mut self) -> Result<(), String> {
        let server = std::mem::replace(&mut self.server, tokio::spawn(async { Ok(()) }));
        server.await.map_err(|e| format!("server task failed: {e}"))?
    }
}

/// Opens the data dir, bootstraps the first tenant and starts serving; `shutdown` ends the server
/// gracefully (the binary passes SIGTERM / Ctrl-C; `Running::stop` works too).
pub async fn start(
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, String> {
    // Keys from outside are checked before anything is created.
    for (key, what) in [(&config.admin_key, "the admin key"), (&config.operator_key, "the operator key")] {
        if let Some(key) = key {
            auth::check_preset_key(key, what)?;
        }
    }
    let DataDir { store, secrets } = open_data_dir(&config.data_dir).map_err(|e| e.to_string())?;
    let bus = InProcessBus::new(1024);
    let events = bus.subscribe();
    let live_bus = bus.clone();
    let (stop_live, live_stopped) = tokio::sync::watch::channel(false);
    let address = SocketAddr::from(([127, 0, 0, 1], config.port));
    let listener = serve::listen(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let public_base_url = config.public_base_url.clone().unwrap_or_else(|| format!("http://{address}"));
    let work = Arc::new(InProcessWorkQueue::new());
    let media = Arc::new(open_media(&config.data_dir, &secrets, &public_base_url).await?);
    let context = Arc::new(
        Context::new(
            Arc::new(store),
            Arc::new(secrets),
            Arc::new(bus),
            Arc::clone(&clock),
            config.providers.clone().unwrap_or_else(Providers::from_env),
            public_base_url,
        )
        .with_work_queue(work.clone())
        // Media fetches wait in the same in-process queue, drained by the same workers; the fetch
        // markers in the store are what makes them durable.
        .with_media(media.clone(), work.clone())
        .with_max_media_bytes(config.max_media_bytes),
    );
    let operator_key = config.operator_key.clone().unwrap_or_else(auth::generate_key);
    context
        .secrets
        .put(auth::OPERATOR_KEY_SECRET, &operator_key)
        .await
        .map_err(|e| format!("cannot set the operator key: {e}"))?;
    // Where omnichat-admin finds this runner while it holds the data dir.
    let runner_file = config.data_dir.join(RUNNER_FILE);
    write_runner_file(&runner_file, address)?;
    let first_admin_key = tenants::bootstrap_first_tenant(&context, config.admin_key.clone())
        .await
        .map_err(|e| e.to_string())?
        .map(|(_, key)| key);

    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_timer, timer_stopped) = oneshot::channel::<()>();
    let timer = tokio::spawn(run_timer(Arc::clone(&context), config.tick, timer_stopped));
    let (stop_workers, workers_stopped) = oneshot::channel::<()>();
    let workers = tokio::spawn(run_workers(Arc::clone(&context), work, WORKERS, workers_stopped));
    // Fetches queued in memory before this start (a crash, a stop) are gone: hand out every one waiting.
    let resumed = Arc::clone(&context);
    tokio::spawn(async move {
        match omnichat::usecases::media::resume(&resumed).await {
            Ok(report) if report.handed_out > 0 => {
                tracing::info!(handed_out = report.handed_out, "media fetches resumed");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "media fetches not resumed; their markers come due"),
        }
    });
    let (stop_router, router_stopped) = oneshot::channel::<()>();
    let router = tokio::spawn(run_router(Arc::clone(&context), events, router_stopped));
    // One bound for the whole process: past it, requests queue instead of piling onto the store. Bodies
    // are read before a request takes its permit, within the body timeout (see `serve`).
    let body_first = serve::BodyFirst::new(config.connections.body_timeout, omnichat_http::max_body_bytes());
    let app = omnichat_http::app(Arc::clone(&context))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(config.max_concurrent_requests))
        .layer(axum::middleware::from_fn_with_state(body_first, serve::read_body_first))
        // Media links stream their bodies (uploads up to the media limit), outside the body-first bound.
        .merge(media::routes(media, clock))
        // The workspace's live WebSocket: long-lived, so outside the request bounds too.
        .merge(live::routes(Arc::clone(&context), live_bus, live_stopped));
    let limits = ConnectionLimits {
        max_connections: serve::fit_connection_cap(
            config.connections.max_connections,
            config.max_concurrent_requests,
        ),
        ..config.connections
    };
    let server = tokio::spawn(async move {
        let signal = async move {
            tokio::select! {
                () = shutdown => {},
                _ = stopped => {},
            }
        };
        let signal = async move {
            signal.await;
            // Live sockets are upgraded connections the server no longer tracks: close them first.
            let _ = stop_live.send(true);
        };
        serve::serve(listener, app, limits, signal).await;
        let _ = std::fs::remove_file(&runner_file);
        let _ = stop_timer.send(());
        let _ = timer.await;
        let _ = stop_workers.send(());
        let _ = workers.await;
        let _ = stop_router.send(());
        let _ = router.await;
        Ok(())
    });
    tracing::info!(
        %address,
        data_dir = %config.data_dir.display(),
        max_connections = limits.max_connections,
        header_timeout_seconds = limits.header_timeout.as_secs(),
        body_timeout_seconds = limits.body_timeout.as_secs(),
        "omnichat-local listening"
    );
    Ok(Running { address, context, first_admin_key, shutdown: Some(stop), server })
}

/// The data dir's media store: files under `media/`, links under the runner's public address, signed with
/// a key kept in the data dir's secrets (made at the first start).
async fn open_media(
    data_dir: &std::path::Path,
    secrets: &omnichat::adapters::embedded::FileSecretStore,
    public_base_url: &str,
) -> Result<FileMediaStore, String> {
    use omnichat::adapters::embedded::media::{LINK_KEY_SECRET, MEDIA_DIR};
    use omnichat::ports::SecretStore;
    let key = match secrets.get(LINK_KEY_SECRET).await.map_err(|e| e.to_string())? {
        Some(key) => key,
        None => {
            let key = auth::generate_key();
            secrets
                .put(LINK_KEY_SECRET, &key)
                .await
                .map_err(|e| format!("cannot keep the media link key: {e}"))?;
            key
        }
    };
    FileMediaStore::open(&data_dir.join(MEDIA_DIR), public_base_url, key).map_err(|e| e.to_string())
}

/// `runner.json` in the data dir: this runner's address, for `omnichat-admin` (0600, like the secrets).
fn write_runner_file(path: &std::path::Path, address: SocketAddr) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let body = serde_json::json!({"address": address.to_string(), "pid": std::process::id()}).to_string();
    let temporary = path.with_extension("tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| file.write_all(body.as_bytes()))
        .and_then(|()| std::fs::rename(&temporary, path));
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The bundle with the wall clock (the binary's way).
pub async fn start_with_system_clock(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, String> {
    start(config, Arc::new(SystemClock), shutdown).await
}

/// The local stand-in for the EventBridge schedules: one tick of every scheduled job per period, never
/// two at once, stopped with the server.
async fn run_timer(context: Arc<Context>, period: Duration, mut stop: oneshot::Receiver<()>) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = interval.tick() => scheduled::run_local_tick(&context).await,
        }
    }
}

/// The local stand-in for the SQS event source that drives the e-mail poller: the items of the in-process
/// work queue, `workers` at a time, each through `scheduled::run_work` (what the Lambda runs per SQS record).
/// A failed item is logged and dropped: the next tick hands the work out again. On stop, the items in
/// flight finish first.
pub async fn run_workers(
    context: Arc<Context>,
    queue: Arc<InProcessWorkQueue>,
    workers: usize,
    mut stop: oneshot::Receiver<()>,
) {
    let mut running = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = running.join_next(), if !running.is_empty() => {}
            work = queue.next(), if running.len() < workers.max(1) => {
                let context = Arc::clone(&context);
                running.spawn(async move {
                    if let Err(error) = scheduled::run_work(&context, &work, None).await {
                        tracing::warn!(%error, work = %work.key(), "work item failed; the next tick hands it out again");
                    }
                });
            }
        }
    }
    while running.join_next().await.is_some() {}
}

/// The local stand-in for the EventBridge rules that drive the router: every event they match
/// (`DomainEvent::for_router`) goes to `routing::handle_event`, each in its own task; on stop, the tasks in flight finish first. An event
/// missed here (the subscriber fell behind) is what the routing sweep is for.
async fn run_router(
    context: Arc<Context>,
    mut events: broadcast::Receiver<DomainEvent>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut running = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            received = events.recv() => match received {
                Ok(event) if !event.for_router() => {}
                Ok(event) => {
                    let context = Arc::clone(&context);
                    let span = omnichat::logging::event_span(event.detail_type(), None);
                    running.spawn(tracing::Instrument::instrument(async move {
                        if let Err(error) = routing::handle_event(&context, &event).await {
                            tracing::warn!(%error, event = event.detail_type(), "router failed; the sweep retries");
                        }
                    }, span));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "router fell behind; the sweep routes what it missed");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    while running.join_next().await.is_some() {}
}
