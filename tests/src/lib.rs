//! Helpers of the integration tests: an isolated `omnichat-local` per test (its own data dir, port and
//! fake providers), fixtures from `tests/fixtures`, and small HTTP conveniences. `lambda`: the harness
//! of the webhook functions' handler tests. `browser`: headless Chromium over WebDriver, for the operator
//! workspace's tests.

pub mod browser;
pub mod lambda;
pub mod logs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use omnichat::domain::Provider;
use omnichat::net::OutboundPolicy;
use omnichat::ports::clock::{Clock, SystemClock};
use omnichat::providers::telegram::TelegramClient;
use omnichat::secret::Secret;
use omnichat::usecases::Providers;
use omnichat_local::{Config, Running};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A Telegram channel of `tenant` handled by `employee`, put straight into the store (the handler tests of
/// the router and the live function, and routing's end-to-end tests that need no provider call).
pub async fn put_telegram_channel(
    ctx: &omnichat::usecases::Context,
    tenant: &omnichat::domain::TenantId,
    employee: &omnichat::domain::EmployeeId,
) -> omnichat::domain::Channel {
    use omnichat::domain::settings::{ChannelSettings, Handling};
    use omnichat::domain::{Account, Channel, ChannelId, ChannelStatus};
    use omnichat::ports::store::{Condition, Index, Write};
    use omnichat::repo;
    let now = ctx.clock.now();
    let channel = Channel {
        id: ChannelId::generate(),
        tenant_id: tenant.clone(),
        provider: Provider::Telegram,
        name: "Support".into(),
        account: Account { id: "42".into(), name: "acme_bot".into() },
        status: ChannelStatus::Active,
        settings: ChannelSettings {
            handling: Some(Handling::Employee { employee_id: employee.clone() }),
            ..ChannelSettings::default()
        },
        webhook_url: "https://example.test/webhooks/telegram/x".into(),
        credentials_masked: std::collections::BTreeMap::new(),
        displaced_by: None,
        created_at: now,
        updated_at: now,
    };
    let item = repo::to_item(
        &channel,
        &repo::channel_key(&channel.id),
        &[(Index::Gsi1, repo::channels_of(&channel.tenant_id), channel.id.to_string())],
    )
    .expect("channel item");
    ctx.store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await.expect("channel");
    channel
}

pub const ADMIN_KEY: &str = "ock_test_admin_key_0123456789abcdefghijklmnop";
/// The platform operator's key of every test bundle.
pub const OPERATOR_KEY: &str = "ock_test_operator_key_0123456789abcdefghijkl";

/// A tiny PNG (signature and IHDR chunk): sniffed as `image/png`.
pub const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00 a tiny picture";
/// A tiny JPEG (SOI and a JFIF APP0 marker): sniffed as `image/jpeg`.
pub const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01 a customer's photo";
/// A tiny PDF: sniffed as `application/pdf`.
pub const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";

/// A real webhook payload as the provider publishes it.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The local fakes of the providers' APIs.
pub struct Fakes {
    pub telegram: MockServer,
    /// Provider modules a test added, pointed at its own fakes.
    extra: Option<Providers>,
    /// For admin-supplied URLs (chatbot webhooks): loopback allowed, as the local runner's development
    /// setting does, unless a test asks for the production policy.
    outbound: OutboundPolicy,
}

/// A customer's text message as Telegram delivers it: the fixture `telegram_text.json` with the customer's
/// chat and user id, the update's and message's id, and the text replaced.
pub fn telegram_update(customer: i64, update_id: i64, text: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixture("telegram_text.json")).expect("fixture");
    body["update_id"] = json!(update_id);
    body["message"]["message_id"] = json!(update_id);
    body["message"]["chat"]["id"] = json!(customer);
    body["message"]["from"]["id"] = json!(customer);
    body["message"]["text"] = json!(text);
    serde_json::to_vec(&body).expect("json")
}

impl Fakes {
    /// The fake Telegram takes every `sendMessage` as Telegram does (the sent message's id is 9001).
    pub async fn telegram_sends(&self) {
        Mock::given(path_regex(r"^/bot[^/]+/sendMessage$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "result": {"message_id": 9001, "date": 1700000000, "chat": {"id": 1, "type": "private"}}}),
            ))
            .mount(&self.telegram)
            .await;
    }

    pub async fn start() -> Self {
        Self {
            telegram: MockServer::start().await,
            extra: None,
            outbound: OutboundPolicy::allowing_loopback(),
        }
    }

    fn providers(&self) -> Providers {
        let http = omnichat::providers::http_client();
        let providers = self.extra.clone().unwrap_or_default().with_outbound_policy(self.outbound);
        providers.with(Provider::Telegram, Arc::new(TelegramClient::new(http, self.telegram.uri())))
    }

    /// Telegram accepts the token, names the bot, and takes webhooks and messages.
    pub async fn telegram_accepts_bot(&self, bot_id: i64, username: &str) {
        Mock::given(method("POST"))
            .and(path_regex(r"^/bot[^/]+/getMe$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": true,
                "result": {"id": bot_id, "is_bot": true, "first_name": "Support", "username": username}
            })))
            .mount(&self.telegram)
            .await;
        for call in ["setWebhook", "deleteWebhook"] {
            Mock::given(method("POST"))
                .and(path_regex(format!(r"^/bot[^/]+/{call}$")))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
                .mount(&self.telegram)
                .await;
        }
    }

    /// The `secret_token` of the last `setWebhook` call: what Telegram would send back in its header.
    pub async fn telegram_webhook_secret(&self) -> String {
        let requests = self.telegram.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .rev()
            .filter(|r| r.url.path().ends_with("/setWebhook"))
            .find_map(|r| {
                serde_json::from_slice::<Value>(&r.body).ok()?["secret_token"].as_str().map(str::to_owned)
            })
            .inspect(|secret| logs::register_secret(secret.clone()))
            .expect("setWebhook was called with a secret_token")
    }
}

/// One isolated bundle: its own data dir, port and fakes.
pub struct TestApp {
    pub base: String,
    pub fakes: Fakes,
    pub http: reqwest::Client,
    running: Option<Running>,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
    clock: Arc<dyn Clock>,
    /// The request id of the probe request made at spawn: its debug line proves the log capture works.
    log_probe: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with_clock(Arc::new(SystemClock)).await
    }

    pub async fn spawn_with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::spawn_with_clock_and(clock, |providers| providers).await
    }

    /// A bundle with more provider modules (each test brings its own fakes for them).
    pub async fn spawn_with(extra: impl FnOnce(Providers) -> Providers) -> Self {
        Self::spawn_with_clock_and(Arc::new(SystemClock), extra).await
    }

    pub async fn spawn_with_clock_and(
        clock: Arc<dyn Clock>,
        extra: impl FnOnce(Providers) -> Providers,
    ) -> Self {
        Self::spawn_with_everything(clock, extra, OutboundPolicy::allowing_loopback()).await
    }

    /// A bundle with the given policy for admin-supplied URLs (`OutboundPolicy::strict()`: production's,
    /// without the local runner's development setting).
    pub async fn spawn_with_outbound_policy(policy: OutboundPolicy) -> Self {
        Self::spawn_with_everything(Arc::new(SystemClock), |providers| providers, policy).await
    }

    async fn spawn_with_everything(
        clock: Arc<dyn Clock>,
        extra: impl FnOnce(Providers) -> Providers,
        outbound: OutboundPolicy,
    ) -> Self {
        logs::install();
        logs::register_secret(ADMIN_KEY);
        logs::register_secret(OPERATOR_KEY);
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let mut fakes = Fakes::start().await;
        fakes.extra = Some(extra(Providers::default()));
        fakes.outbound = outbound;
        let running = start(&data_dir, &fakes, Arc::clone(&clock)).await;
        let app = Self {
            base: format!("http://{}", running.address),
            fakes,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client"),
            running: Some(running),
            data_dir,
            _dir: dir,
            clock,
            log_probe: format!("log-probe-{}", uuid::Uuid::now_v7()),
        };
        let probe =
            app.http.get(app.url("/openapi.json")).header("x-request-id", &app.log_probe).send().await;
        let echoed = probe.ok().and_then(|r| r.headers().get("x-request-id").cloned());
        assert_eq!(
            echoed.as_ref().and_then(|v| v.to_str().ok()),
            Some(app.log_probe.as_str()),
            "the request id is echoed"
        );
        app
    }

    /// The secrets-in-logs check (also run when the app is dropped): the secrets this test handed the
    /// bundle, and those in its secret file, appear in no captured log line.
    pub fn assert_no_secret_logged(&self) {
        logs::register_secrets_in_file(&self.data_dir.join("secrets.json"));
        let logs = logs::captured();
        assert!(
            logs.lines().any(|line| line.contains(&self.log_probe) && line.contains("request started")),
            "the debug line of this app's probe request was not captured: the log check would be vacuous"
        );
        logs::assert_no_secret_logged(&["omnichat-local listening"]);
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// Stops the bundle and starts it again on the same data dir (a new port).
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean stop");
        }
        let running = start(&self.data_dir, &self.fakes, Arc::clone(&self.clock)).await;
        self.base = format!("http://{}", running.address);
        self.running = Some(running);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).bearer_auth(ADMIN_KEY).send().await.expect("GET");
        read(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        logs::register_secrets_in(body);
        let response =
            self.http.post(self.url(path)).bearer_auth(ADMIN_KEY).json(body).send().await.expect("POST");
        let (status, answer) = read(response).await;
        // A new API key is shown once, in the answer: a secret from then on.
        if path == "/v1/api-keys"
            && let Some(key) = answer["key"].as_str()
        {
            logs::register_secret(key);
        }
        // So is a chatbot's signing secret (on creation and rotation).
        if let Some(secret) = answer["signing_secret"].as_str() {
            logs::register_secret(secret);
        }
        (status, answer)
    }

    pub async fn http_put(&self, path: &str, body: &Value) -> (u16, Value) {
        logs::register_secrets_in(body);
        let response =
            self.http.put(self.url(path)).bearer_auth(ADMIN_KEY).json(body).send().await.expect("PUT");
        read(response).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self.http.delete(self.url(path)).bearer_auth(ADMIN_KEY).send().await.expect("DELETE");
        read(response).await
    }

    /// A request with the given key (and a JSON body, if any).
    pub async fn with_key(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await.expect("request")).await
    }

    /// A request with the platform operator's key.
    pub async fn as_operator(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.with_key(OPERATOR_KEY, method, path, body).await
    }

    /// Makes an employee (`status`, room for 5 dialogs) and their API key: answers (employee id, key).
    pub async fn employee_with_key(&self, name: &str, status: &str) -> (String, String) {
        let (code, body) =
            self.post("/v1/employees", &json!({"name": name, "status": status, "max_dialogs": 5})).await;
        assert_eq!(code, 201, "{body}");
        let id = body["id"].as_str().expect("employee id").to_owned();
        let (code, key) = self.post("/v1/api-keys", &json!({"role": "employee", "employee_id": id})).await;
        assert_eq!(code, 201, "{key}");
        (id, key["key"].as_str().expect("key").to_owned())
    }

    /// Connects a Telegram bot against the fake and answers (channel, webhook secret).
    pub async fn connect_telegram(&self, bot_id: i64, username: &str) -> (Value, String) {
        self.fakes.telegram_accepts_bot(bot_id, username).await;
        let (status, channel) = self
            .post(
                "/v1/channels",
                &json!({"provider": "telegram", "name": "Support bot", "credentials": {"token": format!("{bot_id}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")}}),
            )
            .await;
        assert_eq!(status, 201, "{channel}");
        (channel, self.fakes.telegram_webhook_secret().await)
    }

    /// The dialog's messages once no attachment is pending any more (polls at most 10 s).
    pub async fn settled_messages(&self, dialog: &str) -> Vec<Value> {
        for _ in 0..100 {
            let (status, body) = self.get(&format!("/v1/dialogs/{dialog}/messages")).await;
            assert_eq!(status, 200, "{body}");
            let messages = body["items"].as_array().cloned().unwrap_or_default();
            let pending = messages
                .iter()
                .flat_map(|m| m["attachments"].as_array().cloned().unwrap_or_default())
                .any(|a| a["status"] == "pending");
            if !pending {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("an attachment is still pending after 10 s");
    }

    /// A link the runner made (it names the public base URL, which tests do not serve) on the runner itself.
    pub fn local(&self, link: &str) -> String {
        let url = reqwest::Url::parse(link).expect("a URL");
        format!("{}{}?{}", self.base, url.path(), url.query().unwrap_or_default())
    }

    /// GETs a media link on the runner itself, without an API key.
    pub async fn follow(&self, link: &str) -> reqwest::Response {
        self.http.get(self.local(link)).send().await.expect("GET the link")
    }

    /// Creates the upload described by `body` (`POST /v1/uploads`), PUTs `bytes` to its link; answers its id.
    pub async fn upload(&self, body: Value, bytes: &[u8]) -> String {
        let (status, created) = self.post("/v1/uploads", &body).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["method"], "PUT");
        let link = created["upload_url"].as_str().expect("link");
        let mut request = self.http.put(self.local(link)).body(bytes.to_vec());
        for (name, value) in created["headers"].as_object().expect("headers") {
            request = request.header(name.as_str(), value.as_str().expect("a header value"));
        }
        let answer = request.send().await.expect("PUT");
        assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
        created["id"].as_str().expect("upload id").to_owned()
    }

    /// Uploads [`PNG`] as `name` and answers the upload's id.
    pub async fn upload_png(&self, name: &str) -> String {
        self.upload(json!({"name": name, "mime_type": "image/png", "size": PNG.len()}), PNG).await
    }

    /// Asserts an inbound attachment ended `stored` and its link serves exactly `bytes` as `mime`, without
    /// an API key.
    pub async fn assert_served(&self, attachment: &Value, bytes: &[u8], mime: &str) {
        assert_eq!(attachment["status"], "stored", "{attachment}");
        assert_eq!(attachment["mime_type"], mime, "{attachment}");
        assert_eq!(attachment["size"], bytes.len(), "{attachment}");
        let answer = self.follow(attachment["url"].as_str().expect("a link once stored")).await;
        assert_eq!(answer.status(), 200);
        let served = answer.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(served.as_deref(), Some(mime));
        assert_eq!(answer.bytes().await.expect("body").as_ref(), bytes);
    }

    /// The only dialog's id.
    pub async fn only_dialog(&self) -> String {
        let (status, body) = self.get("/v1/dialogs").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
        body["items"][0]["id"].as_str().expect("dialog id").to_owned()
    }

    /// Delivers a webhook the way the provider does.
    pub async fn deliver(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
        let mut request =
            self.http.post(self.url(path)).header("content-type", "application/json").body(body);
        for (name, value) in headers {
            if logs::is_secret_name(name) {
                logs::register_secret(*value);
            }
            request = request.header(*name, *value);
        }
        request.send().await.expect("webhook POST").status().as_u16()
    }
}

impl Drop for TestApp {
    /// Every test that spawns a bundle ends with the secrets-in-logs check (unless it failed already).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_no_secret_logged();
        }
    }
}

async fn start(data_dir: &Path, fakes: &Fakes, clock: Arc<dyn Clock>) -> Running {
    let config = Config {
        port: 0,
        data_dir: data_dir.to_owned(),
        admin_key: Some(Secret::new(ADMIN_KEY)),
        operator_key: Some(Secret::new(OPERATOR_KEY)),
        public_base_url: Some("https://omnichat.example.test".into()),
        providers: Some(fakes.providers()),
        tick: Duration::from_secs(1),
        max_concurrent_requests: omnichat_local::MAX_CONCURRENT_REQUESTS,
        max_media_bytes: omnichat::ports::media::DEFAULT_MAX_MEDIA_BYTES,
        connections: omnichat_local::ConnectionLimits::default(),
    };
    omnichat_local::start(config, clock, std::future::pending()).await.expect("omnichat-local starts")
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
