//! AWS adapters: DynamoDB (store), Secrets Manager (secrets), EventBridge (events), SQS (work), S3 (media),
//! API Gateway's `@connections` (live pushes).
//!
//! The only place that imports `aws_sdk_*`. Entry points build one `SdkConfig` with [`load_sdk_config`] and
//! hand it to the adapters' `from_config` constructors.

pub mod dynamodb;
pub mod eventbridge;
pub mod live;
pub mod s3;
pub mod secrets_manager;
pub mod sqs;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::BehaviorVersion;
/// What [`load_sdk_config`] answers, for callers that keep it (they need no `aws_config` of their own).
pub use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};

pub use dynamodb::{DynamoStore, create_table};
pub use eventbridge::{EventBridgeBus, create_event_bus};
pub use live::ApiGatewayConnections;
pub use s3::{S3MediaStore, create_bucket};
pub use secrets_manager::SecretsManagerStore;
pub use sqs::{SqsWorkQueue, create_queue};

/// An SDK client built at its first call. Building one parses the SDK's endpoint partition table and
/// compiles its patterns (with the client's runtime plugins, the largest part of a function's own start-up
/// work, measured with `perf` in BENCHMARKS.md §1): a function that never calls a service, or not yet,
/// does not pay for its client at start. Clones share the one client.
#[derive(Clone)]
pub struct LazyClient<C> {
    client: Arc<OnceLock<C>>,
    build: Arc<dyn Fn() -> C + Send + Sync>,
}

impl<C> LazyClient<C> {
    pub fn new(build: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Self { client: Arc::new(OnceLock::new()), build: Arc::new(build) }
    }

    /// The client `build` makes from `config` (an SDK's `Client::new`), at its first use.
    pub fn of(config: &SdkConfig, build: fn(&SdkConfig) -> C) -> Self
    where
        C: 'static,
    {
        let config = config.clone();
        Self::new(move || build(&config))
    }

    pub fn get(&self) -> &C {
        self.client.get_or_init(|| (self.build)())
    }
}

/// A client built already (a test's, or one configured by hand).
impl<C: Clone + Send + Sync + 'static> From<C> for LazyClient<C> {
    fn from(client: C) -> Self {
        Self::new(move || client.clone())
    }
}

impl<C> fmt::Debug for LazyClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyClient").field("built", &self.client.get().is_some()).finish()
    }
}

/// Connecting to an AWS endpoint: a Lambda in the same region connects in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One call with all its retries.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_ATTEMPTS: u32 = 3;
/// The function time-out assumed when none is given: the template's shortest (the webhooks' 10 s), which
/// keeps every function's calls within its time.
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The SDK's time-outs for a function that may run `function_timeout`: one call with its retries takes at
/// most half of it (and never more than 15 s), one attempt at most half of that (5 s), connecting at most
/// an attempt (3 s). So one slow call leaves the function time to answer; the invocation's own deadline
/// (`crate::deadline`) bounds what several calls add up to.
pub fn sdk_timeouts(function_timeout: Duration) -> TimeoutConfig {
    let operation = OPERATION_TIMEOUT.min(function_timeout / 2);
    let attempt = ATTEMPT_TIMEOUT.min(operation / 2);
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(attempt))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// For what runs outside a Lambda (tests against moto, benchmarks, tools): the most [`sdk_timeouts`] gives
/// (15 s a call, 5 s an attempt, 3 s to connect), as for a function of 30 s or more.
pub async fn load_sdk_config() -> SdkConfig {
    load_sdk_config_for(Duration::from_secs(30)).await
}

/// The SDK configuration every adapter shares: region and credentials from the environment (the Lambda
/// role, or `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` locally), `AWS_ENDPOINT_URL` honoured (how the
/// tests reach moto), [`sdk_timeouts`] for a function of `function_timeout`, and 3 attempts with standard
/// back-off on every call.
pub async fn load_sdk_config_for(function_timeout: Duration) -> SdkConfig {
    let variables = |name: &str| std::env::var(name).ok();
    if let Some(config) = config_from_environment(variables, function_timeout) {
        return config;
    }
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(lazy_tls_http_client())
        .timeout_config(sdk_timeouts(function_timeout))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}

/// What Lambda hands every function (the role's credentials and the region in the environment), made into
/// the configuration directly: the SDK's default chains (a profile file read, the web-identity, container
/// and instance-metadata providers set up, each tried in turn) are not built at start for an answer the
/// environment already holds. `None` when the environment lacks the credentials or the region, or names a
/// profile: then the default chains decide, as outside Lambda.
fn config_from_environment(
    variable: impl Fn(&str) -> Option<String>,
    function_timeout: Duration,
) -> Option<SdkConfig> {
    let present = |name: &str| variable(name).filter(|value| !value.is_empty());
    if present("AWS_PROFILE").is_some() {
        return None;
    }
    let region = present("AWS_REGION").or_else(|| present("AWS_DEFAULT_REGION"))?;
    let credentials = aws_sdk_dynamodb::config::Credentials::new(
        present("AWS_ACCESS_KEY_ID")?,
        present("AWS_SECRET_ACCESS_KEY")?,
        present("AWS_SESSION_TOKEN"),
        None,
        "Environment",
    );
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(credentials))
        .http_client(lazy_tls_http_client())
        .timeout_config(sdk_timeouts(function_timeout))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    builder.set_endpoint_url(present("AWS_ENDPOINT_URL"));
    Some(builder.build())
}

/// The SDK's default HTTP client (hyper 1, rustls with aws-lc, the system's certificate roots, the proxy
/// from the environment) but for when its TLS connector is built. The SDK builds one as each service client
/// is constructed, on purpose, "so that native certs load at client initialization time": at a Lambda's
/// start that reads every root certificate of the system (146 files on a Debian host) before the function
/// has asked for its first event, even in an invocation that never calls AWS over TLS. Here the connector
/// built for that check at construction is a plain-HTTP one, thrown away; the TLS connector, and the roots
/// (read once per process), come with the first request.
fn lazy_tls_http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    lazy_tls_http_client_observed(|| {})
}

/// [`lazy_tls_http_client`], calling `on_tls_connector` each time it builds a TLS connector.
fn lazy_tls_http_client_observed(
    on_tls_connector: impl Fn() + Send + Sync + 'static,
) -> aws_sdk_dynamodb::config::SharedHttpClient {
    Builder::new().build_with_connector_fn(move |settings, components| {
        let Some(components) = components else {
            // The construction-time check (`validate_base_client_config`): nothing is ever sent through it.
            return ConnectorBuilder::default().build_http();
        };
        on_tls_connector();
        let mut builder = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        builder.set_connector_settings(settings.cloned());
        builder.set_sleep_impl(components.sleep_impl());
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_client_is_built_at_its_first_use_and_once_for_all_its_clones() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        let builds = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&builds);
        let lazy = LazyClient::new(move || counted.fetch_add(1, Ordering::SeqCst) + 100);
        let clone = lazy.clone();
        assert_eq!(builds.load(Ordering::SeqCst), 0, "built before any use");
        assert!(format!("{lazy:?}").contains("built: false"));
        assert_eq!(*clone.get(), 100);
        assert_eq!(*lazy.get(), 100, "the clone's client is the original's");
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert!(format!("{lazy:?}").contains("built: true"));
        assert_eq!(*LazyClient::from(7_u8).get(), 7);
    }

    #[test]
    fn every_call_fits_well_within_the_functions_time() {
        for seconds in [1, 3, 10, 29, 60, 180, 900] {
            let function = Duration::from_secs(seconds);
            let timeouts = sdk_timeouts(function);
            let operation = timeouts.operation_timeout().expect("operation time-out");
            let attempt = timeouts.operation_attempt_timeout().expect("attempt time-out");
            let connect = timeouts.connect_timeout().expect("connect time-out");
            assert!(operation <= function / 2, "{seconds} s: a call may take {operation:?}");
            assert!(attempt <= operation && connect <= attempt, "{seconds} s: {timeouts:?}");
        }
        // The webhooks (10 s): 5 s a call, 2.5 s an attempt. The poller (180 s): 15 s, 5 s, 3 s as before.
        let webhook = sdk_timeouts(Duration::from_secs(10));
        assert_eq!(webhook.operation_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(webhook.operation_attempt_timeout(), Some(Duration::from_millis(2_500)));
        let poller = sdk_timeouts(Duration::from_secs(180));
        assert_eq!(poller.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert_eq!(poller.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(poller.connect_timeout(), Some(CONNECT_TIMEOUT));
    }

    #[test]
    fn lambdas_environment_is_the_configuration_when_it_holds_credentials_and_region() {
        let lambda = |name: &str| match name {
            "AWS_REGION" => Some("eu-central-1".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_owned()),
            "AWS_SESSION_TOKEN" => Some("token".to_owned()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:5000".to_owned()),
            _ => None,
        };
        let config = config_from_environment(lambda, Duration::from_secs(10)).expect("configured");
        assert_eq!(config.region().map(|region| region.as_ref()), Some("eu-central-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(config.credentials_provider().is_some());
        assert_eq!(config.timeout_config().and_then(|t| t.operation_timeout()), Some(Duration::from_secs(5)));
        assert_eq!(config.retry_config().map(|retry| retry.max_attempts()), Some(MAX_ATTEMPTS));

        // Without the secret, without a region, or with a profile named: the SDK's default chains decide.
        let without =
            |missing: &'static str| move |name: &str| (name != missing).then(|| lambda(name)).flatten();
        assert!(config_from_environment(without("AWS_SECRET_ACCESS_KEY"), Duration::from_secs(10)).is_none());
        assert!(config_from_environment(without("AWS_REGION"), Duration::from_secs(10)).is_none());
        let profile = |name: &str| if name == "AWS_PROFILE" { Some("dev".to_owned()) } else { lambda(name) };
        assert!(config_from_environment(profile, Duration::from_secs(10)).is_none());
    }

    #[tokio::test]
    async fn the_loaded_configuration_carries_them() {
        let config = load_sdk_config_for(Duration::from_secs(10)).await;
        let timeouts = config.timeout_config().expect("time-outs");
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(5)));
    }

    /// What keeps a Lambda's start free of the certificate roots: building the config and a client builds no
    /// TLS connector; the first request does, once.
    #[tokio::test]
    async fn the_tls_connector_comes_with_the_first_request_not_with_the_client() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            // Every request gets a 400: not retried, so one request reaches the connector.
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let built = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&built);
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(lazy_tls_http_client_observed(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }))
            .region(aws_config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "id", "secret", None, None, "test",
            ))
            .endpoint_url(format!("http://{address}"))
            .load()
            .await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        assert_eq!(built.load(Ordering::SeqCst), 0, "no TLS connector (no roots read) before a request");
        let answer = client.list_tables().send().await;
        assert!(answer.is_err(), "the listener answers 400");
        assert_eq!(built.load(Ordering::SeqCst), 1, "the first request builds the TLS connector, once");
        let _ = client.list_tables().send().await;
        assert_eq!(built.load(Ordering::SeqCst), 1, "and it is kept");
    }
}
