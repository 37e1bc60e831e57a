//! The Lambda's handler, fed API Gateway HTTP API (payload 2.0) events as Lambda delivers them: the event
//! is turned into a request by `lambda_http` and answered by the same router the function runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use http_body_util::BodyExt;
use omnichat::adapters::embedded::{FileSecretStore, InProcessBus, RedbStore};
use omnichat::domain::Provider;
use omnichat::ports::clock::SystemClock;
use omnichat::ports::{Index, Item, Key, Page, Query, SkRange, Store, StoreError, Write};
use omnichat::providers::telegram::TelegramClient;
use omnichat::secret::Secret;
use omnichat::usecases::auth::{self, Principal};
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::tenants;
use omnichat::usecases::{Context, Providers};
use serde_json::{Value, json};
use tower::ServiceExt;
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

const EVENT: &str = include_str!("../events/telegram-text.json");

/// The embedded store, which stops answering while `hangs` is set (a store call that never returns).
struct HangingStore {
    inner: RedbStore,
    hangs: Arc<AtomicBool>,
}

impl HangingStore {
    async fn maybe_hang(&self) {
        if self.hangs.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl Store for HangingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.maybe_hang().await;
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.maybe_hang().await;
        self.inner.get_many(keys).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.maybe_hang().await;
        self.inner.transact(writes).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.maybe_hang().await;
        self.inner.query(query).await
    }
    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<i64, StoreError> {
        self.maybe_hang().await;
        self.inner.increment(key, attribute, by).await
    }
}

struct Harness {
    ctx: Arc<Context>,
    store_hangs: Arc<AtomicBool>,
    admin: Principal,
    channel_id: String,
    secret: String,
    _dir: tempfile::TempDir,
    _telegram: MockServer,
}

async fn harness() -> Harness {
    let telegram = MockServer::start().await;
    Mock::given(path_regex(r"/getMe$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"id": 42, "is_bot": true, "first_name": "Bot", "username": "acme_bot"}}),
        ))
        .mount(&telegram)
        .await;
    Mock::given(path_regex(r"/setWebhook$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(&telegram)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store_hangs = Arc::new(AtomicBool::new(false));
    let store = HangingStore {
        inner: RedbStore::open(&dir.path().join("db.redb")).expect("store"),
        hangs: store_hangs.clone(),
    };
    let ctx = Arc::new(Context::new(
        Arc::new(store),
        Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
        Arc::new(InProcessBus::new(16)),
        Arc::new(SystemClock),
        Providers::default().with(
            Provider::Telegram,
            Arc::new(TelegramClient::new(omnichat::providers::http_client(), telegram.uri())),
        ),
        "https://example.test",
    ));
    tenants::bootstrap_first_tenant(&ctx, Some(Secret::new("ock_handler_test_key_0123456789abcdef")))
        .await
        .expect("tenant");
    let admin = auth::authenticate(&ctx, Some("ock_handler_test_key_0123456789abcdef")).await.expect("admin");
    let credentials = json!({"token": "42:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"});
    let new = NewChannel {
        provider: Provider::Telegram,
        name: "bot".into(),
        credentials: credentials.as_object().cloned().unwrap_or_default(),
        settings: Default::default(),
    };
    let created = channels::create_channel(&ctx, &admin, new).await.expect("channel");
    let requests = telegram.received_requests().await.unwrap_or_default();
    let set_webhook = requests.iter().find(|r| r.url.path().ends_with("/setWebhook")).expect("setWebhook");
    let body: Value = serde_json::from_slice(&set_webhook.body).expect("json");
    Harness {
        ctx,
        store_hangs,
        admin,
        channel_id: created.channel.id.to_string(),
        secret: body["secret_token"].as_str().expect("secret").to_owned(),
        _dir: dir,
        _telegram: telegram,
    }
}

/// The fixture event for this channel; `base64` re-encodes the body the way API Gateway does for
/// binary payloads.
fn event(h: &Harness, secret: &str, base64: bool) -> Value {
    let text = EVENT.replace("CHANNEL_ID", &h.channel_id).replace("WEBHOOK_SECRET", secret);
    let mut event: Value = serde_json::from_str(&text).expect("event");
    if base64 {
        let body = event["body"].as_str().expect("body").to_owned();
        event["body"] = Value::String(base64::engine::general_purpose::STANDARD.encode(body));
        event["isBase64Encoded"] = Value::Bool(true);
    }
    event
}

async fn invoke(h: &Harness, event: &Value) -> (u16, String) {
    let (status, _, body) = invoke_until(h, event, None).await;
    (status, body)
}

/// An invocation as the runtime hands it over: with the invocation's deadline (epoch milliseconds) in the
/// Lambda context. Answers the status, the `Retry-After` header and the body.
async fn invoke_until(h: &Harness, event: &Value, deadline_ms: Option<u64>) -> (u16, Option<String>, String) {
    let mut request =
        lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
    if let Some(deadline) = deadline_ms {
        let mut context = lambda_http::Context::default();
        context.deadline = deadline;
        request.extensions_mut().insert(context);
    }
    let response = omnichat_http::webhooks_app(h.ctx.clone()).oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, retry_after, String::from_utf8_lossy(&body).into_owned())
}

fn epoch_ms_in(after: Duration) -> u64 {
    let at = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970") + after;
    u64::try_from(at.as_millis()).expect("fits")
}

/// Messages stored in all of the tenant's dialogs.
async fn stored_messages(h: &Harness) -> usize {
    let dialogs_pk = format!("T#{}#DIALOGS", h.admin.tenant_id);
    let dialogs = h.ctx.store.query(&Query::index(Index::Gsi1, dialogs_pk)).await.expect("query");
    let mut count = 0;
    for dialog in dialogs.items {
        let pk = dialog["pk"].as_str().expect("pk").to_owned();
        let messages = Query::table(pk).range(SkRange::BeginsWith("MSG#".into()));
        count += h.ctx.store.query(&messages).await.expect("query").items.len();
    }
    count
}

#[tokio::test]
async fn an_update_event_is_stored_once_plain_or_base64() {
    let h = harness().await;
    assert_eq!(invoke(&h, &event(&h, &h.secret, false)).await.0, 200);
    assert_eq!(stored_messages(&h).await, 1);
    // The same update again, base64-encoded this time: a retry, acknowledged and not stored twice.
    assert_eq!(invoke(&h, &event(&h, &h.secret, true)).await.0, 200);
    assert_eq!(stored_messages(&h).await, 1);
}

#[tokio::test]
async fn a_base64_body_is_decoded_before_parsing() {
    let h = harness().await;
    assert_eq!(invoke(&h, &event(&h, &h.secret, true)).await.0, 200);
    assert_eq!(stored_messages(&h).await, 1);
}

#[tokio::test]
async fn a_wrong_secret_is_401_and_writes_nothing() {
    let h = harness().await;
    let (status, body) = invoke(&h, &event(&h, "not-the-secret", false)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(stored_messages(&h).await, 0);
}

#[tokio::test]
async fn a_body_that_is_not_an_update_is_400_and_writes_nothing() {
    let h = harness().await;
    let mut event = event(&h, &h.secret, false);
    event["body"] = Value::String("{\"hello\": \"world\"}".into());
    let (status, body) = invoke(&h, &event).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(stored_messages(&h).await, 0);
}

/// A store that does not answer must not hold the webhook until Lambda kills it: shortly before the
/// invocation's deadline the function answers 503 with Retry-After (Telegram delivers again), nothing is
/// stored, and the delivery that follows stores the message once.
#[tokio::test]
async fn a_hanging_store_answers_a_retryable_503_before_the_deadline() {
    let h = harness().await;
    let update = event(&h, &h.secret, false);
    h.store_hangs.store(true, Ordering::SeqCst);
    let started = Instant::now();
    // Bounded here too, so that a handler without the guard fails this test instead of hanging it.
    let invocation = invoke_until(&h, &update, Some(epoch_ms_in(Duration::from_secs(2))));
    let (status, retry_after, body) =
        tokio::time::timeout(Duration::from_secs(5), invocation).await.expect("an answer, not a hang");
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(took < Duration::from_secs(2), "answered after the deadline: {took:?}");
    assert!(took >= Duration::from_millis(1_300), "gave up before it had to: {took:?}");

    h.store_hangs.store(false, Ordering::SeqCst);
    assert_eq!(stored_messages(&h).await, 0, "nothing stored");
    let (status, _, body) = invoke_until(&h, &update, Some(epoch_ms_in(Duration::from_secs(10)))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored_messages(&h).await, 1, "the redelivery stores it once");
}
