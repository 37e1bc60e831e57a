//! A Lambda's start-up, done once per container before the first invocation: its logging, and its
//! `Context` built from the environment (AWS adapters, provider clients, public URL).
//!
//! The functions' `main`s run on tokio's current-thread runtime: a Lambda container handles one invocation
//! at a time on a fraction of a vCPU (256 MB), so worker threads add nothing to an invocation, while
//! starting them is ~0.4 ms of every cold start (`perf stat` of the api: 2.9-3.2 ms multi-threaded, 2.4-2.6
//! ms current-thread). Concurrency inside an invocation (shards in parallel, fan-outs) is futures joined on
//! the one thread; blocking work still goes to the blocking pool.

use std::sync::Arc;

use crate::adapters::aws::dynamodb::DynamoStore;
use crate::adapters::aws::eventbridge::EventBridgeBus;
use crate::adapters::aws::live::ApiGatewayConnections;
use crate::adapters::aws::s3::S3MediaStore;
use crate::adapters::aws::secrets_manager::SecretsManagerStore;
use crate::adapters::aws::sqs::SqsWorkQueue;
use crate::adapters::aws::{DEFAULT_FUNCTION_TIMEOUT, load_sdk_config_for};
use crate::ports::clock::SystemClock;
use crate::ports::events::{DomainEvent, EventBus, EventError};
use crate::repo::Retention;
use crate::usecases::{Context, Providers};

/// Logs as one JSON object per line on stdout, which Lambda sends to CloudWatch. The filter is `RUST_LOG`
/// (template.yaml sets it from the `LogLevel` parameter; `info` when unset or unreadable). No timestamps:
/// CloudWatch stamps every line itself. A second call keeps the first subscriber. Each line lists its spans
/// (`spans`): the runtime's invocation span (`requestId`), the HTTP glue's (`request_id`, the API Gateway
/// request id, echoed in `x-request-id`), a job run's or router event's (`run_id`; see `crate::logging`).
pub fn init_lambda_logging() {
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _already_set = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .try_init();
}

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set"))
}

/// `MESSAGE_RETENTION_DAYS`: whole days message records are kept before the table's TTL deletes them;
/// unset, empty or `0` keeps them for ever. Anything else stops the start-up with the reason.
pub fn message_retention_from_env() -> Result<Retention, String> {
    const NAME: &str = "MESSAGE_RETENTION_DAYS";
    match std::env::var(NAME) {
        Err(std::env::VarError::NotPresent) => Ok(Retention::FOREVER),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{NAME} is not text")),
        Ok(text) => Retention::parse(&text).map_err(|reason| format!("{NAME}: {reason}")),
    }
}

/// `OMNICHAT_FUNCTION_TIMEOUT_SECONDS`: the function's configured time-out (template.yaml's `Timeout`), which
/// the AWS SDK's time-outs are derived from; unset, the shortest of the template's (10 s).
pub fn function_timeout_from_env() -> Result<std::time::Duration, String> {
    const NAME: &str = "OMNICHAT_FUNCTION_TIMEOUT_SECONDS";
    match std::env::var(NAME) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_FUNCTION_TIMEOUT),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{NAME} is not text")),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seconds @ 1..=900) => Ok(std::time::Duration::from_secs(seconds)),
            _ => Err(format!("{NAME}: {text:?} is not a number of seconds from 1 to 900 (Lambda's limit)")),
        },
    }
}

/// `TABLE_NAME`, `EVENT_BUS_NAME`, `SECRET_PREFIX`, `PUBLIC_BASE_URL`, `MESSAGE_RETENTION_DAYS`,
/// `OMNICHAT_FUNCTION_TIMEOUT_SECONDS`, `OMNICHAT_MAX_MEDIA_BYTES`, for the function that hands out work
/// `WORK_QUEUE_URL`, and for those that store or link files `MEDIA_BUCKET` and `MEDIA_QUEUE_URL` from the
/// environment (set by template.yaml); AWS endpoint and credentials the SDK's usual way
/// (`AWS_ENDPOINT_URL` for moto).
pub async fn aws_context() -> Result<Context, String> {
    let bus = required("EVENT_BUS_NAME")?;
    let public_base_url = required("PUBLIC_BASE_URL")?;
    build_context(Some(bus), public_base_url).await
}

/// The live function's pushes: `LIVE_CALLBACK_URL`, the WebSocket API stage's management endpoint
/// (template.yaml sets it; a test or the dev stack sets a fake's), with the SDK configuration of
/// [`aws_context`] (the function's time-out, the role's credentials).
pub async fn live_connections_from_env() -> Result<ApiGatewayConnections, String> {
    let callback_url = required("LIVE_CALLBACK_URL")?;
    let sdk = load_sdk_config_for(function_timeout_from_env()?).await;
    Ok(ApiGatewayConnections::from_config(&sdk, callback_url))
}

/// The context of platform work outside the request paths (the first-tenant custom resource, the
/// operator's CLI): `TABLE_NAME` is required, `SECRET_PREFIX` defaults to `omnichat/`, and
/// `EVENT_BUS_NAME` and `PUBLIC_BASE_URL` are optional. Without a bus, publishing an event is refused
/// with an error naming `EVENT_BUS_NAME` (none of that work publishes any); without a public URL the
/// context's is empty, which the work that needs one refuses.
pub async fn aws_platform_context() -> Result<Context, String> {
    let bus = std::env::var("EVENT_BUS_NAME").ok().filter(|v| !v.is_empty());
    let public_base_url = std::env::var("PUBLIC_BASE_URL").unwrap_or_default();
    build_context(bus, public_base_url).await
}

async fn build_context(bus: Option<String>, public_base_url: String) -> Result<Context, String> {
    let table = required("TABLE_NAME")?;
    let secret_prefix = std::env::var("SECRET_PREFIX").unwrap_or_else(|_| "omnichat/".into());
    let retention = message_retention_from_env()?;
    let function_timeout = function_timeout_from_env()?;
    // Cheap: the provider clients share one TLS configuration whose certificate roots are read at the first
    // handshake (`crate::tls`), so a function that never calls a provider never reads them.
    let providers = Providers::from_env();
    let sdk = load_sdk_config_for(function_timeout).await;
    let bus: Arc<dyn EventBus> = match bus {
        Some(bus) => Arc::new(EventBridgeBus::from_config(&sdk, bus)),
        None => Arc::new(NoEventBus),
    };
    let work_queue = std::env::var("WORK_QUEUE_URL").ok().filter(|url| !url.is_empty());
    let media_bucket = std::env::var("MEDIA_BUCKET").ok().filter(|bucket| !bucket.is_empty());
    let media_queue = std::env::var("MEDIA_QUEUE_URL").ok().filter(|url| !url.is_empty());
    let max_media_bytes = crate::limits::max_media_bytes_from_env()?;
    let context = Context::new(
        Arc::new(DynamoStore::from_config(&sdk, table)),
        Arc::new(SecretsManagerStore::from_config(&sdk, secret_prefix)),
        bus,
        Arc::new(SystemClock),
        providers,
        public_base_url,
    )
    .with_message_retention(retention)
    .with_max_media_bytes(max_media_bytes);
    // Without it the context refuses to hand out work, saying which variable is missing.
    let context = match work_queue {
        Some(url) => context.with_work_queue(Arc::new(SqsWorkQueue::from_config(&sdk, url))),
        None => context,
    };
    // Without a bucket nothing is fetched or linked (the fetches stay pending, saying why); without the
    // queue the fetch markers' sweep is what hands the fetches out.
    Ok(match media_bucket {
        Some(bucket) => {
            let queue: Arc<dyn crate::ports::WorkQueue> = match media_queue {
                Some(url) => Arc::new(SqsWorkQueue::from_config(&sdk, url)),
                None => Arc::new(crate::ports::work::NoWorkQueue),
            };
            context.with_media(Arc::new(S3MediaStore::from_config(&sdk, bucket)), queue)
        }
        None => context,
    })
}

/// The bus of a context built without `EVENT_BUS_NAME`: every publish is refused, saying why.
struct NoEventBus;

#[async_trait::async_trait]
impl EventBus for NoEventBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        if events.is_empty() {
            return Ok(());
        }
        Err(EventError::Unavailable("no event bus configured (EVENT_BUS_NAME is not set)".into()))
    }
}
