//! Harness of the webhook Lambdas' handler tests: the router a webhook function runs, on the embedded
//! adapters, fed API Gateway HTTP API (payload 2.0) events the way Lambda delivers them (`lambda_http`
//! turns the event into the request), with a channel connected through the use case against a provider fake.

use std::sync::Arc;

use base64::Engine as _;
use http_body_util::BodyExt as _;
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::domain::{Channel, Provider};
use omnichat::ports::clock::SystemClock;
use omnichat::ports::{Index, Query, SkRange};
use omnichat::secret::Secret;
use omnichat::usecases::auth::{self, Principal};
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::{Context, Providers, tenants};
use serde_json::Value;
use tower::ServiceExt as _;

/// The stage's own URL, which is also the functions' `PUBLIC_BASE_URL` when the stack has no custom domain:
/// the host the event files name.
pub const PUBLIC_BASE_URL: &str = "https://aaaaaaaaaa.execute-api.eu-central-1.amazonaws.com";

/// One tenant with its admin, on a fresh embedded store.
pub struct WebhookHarness {
    pub ctx: Arc<Context>,
    pub admin: Principal,
    _dir: tempfile::TempDir,
}

impl WebhookHarness {
    /// `providers`: the modules under test, pointed at the test's fakes.
    pub async fn start(providers: Providers) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = Arc::new(Context::new(
            Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
            Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
            Arc::new(InProcessBus::new(16)),
            Arc::new(SystemClock),
            providers,
            PUBLIC_BASE_URL,
        ));
        let key = "ock_lambda_handler_test_key_0123456789";
        tenants::bootstrap_first_tenant(&ctx, Some(Secret::new(key))).await.expect("tenant");
        let admin = auth::authenticate(&ctx, Some(key)).await.expect("admin");
        Self { ctx, admin, _dir: dir }
    }

    /// Connects a channel the way `POST /v1/channels` does (the provider's fake sees the same calls).
    pub async fn connect(&self, provider: Provider, credentials: Value) -> Channel {
        let new = NewChannel {
            provider,
            name: format!("{} channel", provider.slug()),
            credentials: credentials.as_object().cloned().expect("credentials are an object"),
            settings: Default::default(),
        };
        channels::create_channel(&self.ctx, &self.admin, new).await.expect("channel connected").channel
    }

    /// One invocation of the webhook function: the status and body it answers.
    pub async fn invoke(&self, event: &Value) -> (u16, String) {
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
        let response =
            omnichat_http::webhooks_app(Arc::clone(&self.ctx)).oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Messages stored in all of the tenant's dialogs.
    pub async fn stored_messages(&self) -> usize {
        let dialogs_pk = format!("T#{}#DIALOGS", self.admin.tenant_id);
        let dialogs = self.ctx.store.query(&Query::index(Index::Gsi1, dialogs_pk)).await.expect("query");
        let mut count = 0;
        for dialog in dialogs.items {
            let pk = dialog["pk"].as_str().expect("pk").to_owned();
            let messages = Query::table(pk).range(SkRange::BeginsWith("MSG#".into()));
            count += self.ctx.store.query(&messages).await.expect("query").items.len();
        }
        count
    }
}

/// An event file (`include_str!("../events/...")`) with its placeholders filled in: `CHANNEL_ID`,
/// `WEBHOOK_SECRET`, ...
pub fn event(template: &str, replacements: &[(&str, &str)]) -> Value {
    let text = replacements.iter().fold(template.to_owned(), |text, (from, to)| text.replace(from, to));
    serde_json::from_str(&text).expect("an event file is JSON")
}

/// The secret path segment of a channel's webhook URL (providers that sign nothing).
pub fn path_secret(channel: &Channel) -> &str {
    channel.webhook_url.rsplit_once('/').expect("a webhook URL").1
}

/// The raw body the provider sent (what its signature covers).
pub fn body(event: &Value) -> Vec<u8> {
    event["body"].as_str().expect("a text body").as_bytes().to_vec()
}

/// The event carries the provider's real payload (`tests/fixtures/<name>`), byte for byte.
pub fn assert_carries_fixture(event: &Value, name: &str) {
    assert!(body(event) == crate::fixture(name), "the event's body is not the fixture {name}");
}

/// Sets a header the way API Gateway v2 passes them: the name in lower case.
pub fn set_header(event: &mut Value, name: &str, value: &str) {
    event["headers"][name.to_ascii_lowercase()] = Value::String(value.to_owned());
}

/// The URL check (`GET`, `HEAD`) some providers make before they send anything, at the event's URL.
pub fn url_check(mut event: Value, method: &str) -> Value {
    let route = event["routeKey"].as_str().expect("routeKey").split_once(' ').expect("METHOD /path").1;
    let route_key = Value::String(format!("{method} {route}"));
    event["routeKey"] = route_key.clone();
    event["requestContext"]["routeKey"] = route_key;
    event["requestContext"]["http"]["method"] = Value::String(method.to_owned());
    let fields = event.as_object_mut().expect("an event object");
    fields.remove("body");
    fields.insert("isBase64Encoded".into(), Value::Bool(false));
    if let Some(headers) = fields.get_mut("headers").and_then(Value::as_object_mut) {
        headers.remove("content-type");
    }
    event
}

/// The same event as API Gateway passes a body it treats as binary: base64-encoded.
pub fn base64_body(mut event: Value) -> Value {
    let encoded = base64::engine::general_purpose::STANDARD.encode(body(&event));
    event["body"] = Value::String(encoded);
    event["isBase64Encoded"] = Value::Bool(true);
    event
}
