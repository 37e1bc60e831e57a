//! The Lambda's handler, fed API Gateway HTTP API (payload 2.0) events carrying the real payloads of the
//! three WhatsApp providers, each for a channel connected against a fake of that provider's API: edna and
//! Infobip sign nothing (the secret path segment authenticates them), MessageBird also signs a JWT.

use std::sync::Arc;

use omnichat::domain::{Channel, Provider};
use omnichat::ports::clock::{Clock, SystemClock};
use omnichat::providers::edna::EdnaClient;
use omnichat::providers::infobip::InfobipClient;
use omnichat::providers::messagebird::{self, MessageBirdClient};
use omnichat::secret::Secret;
use omnichat::usecases::Providers;
use omnichat_tests::lambda::{self, WebhookHarness};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EDNA_TEXT: &str = include_str!("../events/edna-text.json");
const MESSAGEBIRD_TEXT: &str = include_str!("../events/messagebird-text.json");
const INFOBIP_TEXT: &str = include_str!("../events/infobip-text.json");
const MB_SIGNING_KEY: &str = "signingKeyValue0123456789abcdef";
const MB_CHANNEL: &str = "11a976e320d04baaa01382783727e8c5";

/// One WhatsApp provider's channel, with the event file of its real text message.
struct WhatsApp {
    provider: Provider,
    fixture: &'static str,
    template: &'static str,
    harness: WebhookHarness,
    channel: Channel,
    _fake: MockServer,
}

async fn answer(fake: &MockServer, http_method: &str, endpoint: &str, status: u16, body: Value) {
    Mock::given(method(http_method))
        .and(path(endpoint))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(fake)
        .await;
}

async fn edna() -> WhatsApp {
    let fake = MockServer::start().await;
    let profile = json!([{"id": 2, "name": "Shop", "subjectId": 345, "channelAttribute": "35799000000",
        "subject": "test_subject_WA", "active": true, "type": "WHATSAPP"}]);
    answer(&fake, "GET", "/api/channel-profile", 200, profile).await;
    let cascades = json!([{"id": 11, "name": "wa", "status": "ACTIVE", "stagesCount": 1, "stages": [
        {"order": 0, "uuid": "b", "stages": [], "subject": {"id": 345, "subject": "test_subject_WA", "type": "WHATSAPP"}}]}]);
    answer(&fake, "POST", "/api/cascade/get-all", 200, cascades).await;
    answer(&fake, "POST", "/api/callback/set", 200, json!({})).await;
    let module = EdnaClient::new(omnichat::providers::http_client(), fake.uri());
    let harness =
        WebhookHarness::start(Providers::default().with(Provider::WhatsappEdna, Arc::new(module))).await;
    let credentials = json!({"subject": "test_subject_WA", "api_key": "edna-api-key-0123456789abcdef"});
    let channel = harness.connect(Provider::WhatsappEdna, credentials).await;
    let (provider, fixture, template) = (Provider::WhatsappEdna, "edna_text.json", EDNA_TEXT);
    WhatsApp { provider, fixture, template, harness, channel, _fake: fake }
}

async fn messagebird() -> WhatsApp {
    let fake = MockServer::start().await;
    let info =
        json!({"id": MB_CHANNEL, "name": "Acme WhatsApp", "platformId": "whatsapp", "status": "active"});
    answer(&fake, "GET", &format!("/v1/channels/{MB_CHANNEL}"), 200, info).await;
    answer(&fake, "POST", "/v1/webhooks", 201, json!({"id": "wh1"})).await;
    let module = MessageBirdClient::new(omnichat::providers::http_client(), fake.uri());
    let harness =
        WebhookHarness::start(Providers::default().with(Provider::WhatsappMessagebird, Arc::new(module)))
            .await;
    let credentials = json!({"access_key": "live_AccessKeyValue0123456789", "channel_id": MB_CHANNEL,
        "signing_key": MB_SIGNING_KEY});
    let channel = harness.connect(Provider::WhatsappMessagebird, credentials).await;
    let (provider, fixture, template) =
        (Provider::WhatsappMessagebird, "messagebird_conversations_text_received.json", MESSAGEBIRD_TEXT);
    WhatsApp { provider, fixture, template, harness, channel, _fake: fake }
}

async fn infobip() -> WhatsApp {
    let fake = MockServer::start().await;
    let senders =
        json!({"results": [{"sender": "1234", "displayName": "Acme", "connectionStatus": "CONNECTED"}]});
    answer(&fake, "GET", "/whatsapp/2/senders", 200, senders).await;
    // The fake listens on 127.0.0.1, which a real channel's base URL may not name.
    let module = InfobipClient::new(omnichat::providers::http_client()).allowing_loopback();
    let harness =
        WebhookHarness::start(Providers::default().with(Provider::WhatsappInfobip, Arc::new(module))).await;
    let credentials = json!({"api_key": "003026bbc133714df1834b8638bb496e-8f4b3c9a", "base_url": fake.uri(),
        "sender": "1234"});
    let channel = harness.connect(Provider::WhatsappInfobip, credentials).await;
    let (provider, fixture, template) = (Provider::WhatsappInfobip, "infobip_text.json", INFOBIP_TEXT);
    WhatsApp { provider, fixture, template, harness, channel, _fake: fake }
}

async fn every_provider() -> [WhatsApp; 3] {
    [edna().await, messagebird().await, infobip().await]
}

impl WhatsApp {
    /// The fixture event for this channel at the URL with `secret`, signed with `signing_key` where the
    /// provider signs (MessageBird signs the URL it calls, so a wrong secret is also a wrong signature).
    fn event_with(&self, secret: &str, signing_key: &str) -> Value {
        let id = self.channel.id.to_string();
        let mut event = lambda::event(self.template, &[("CHANNEL_ID", &id), ("WEBHOOK_SECRET", secret)]);
        if self.provider == Provider::WhatsappMessagebird {
            let url = self.channel.webhook_url.replace(lambda::path_secret(&self.channel), secret);
            let now = SystemClock.now();
            let jwt =
                messagebird::sign_webhook(&Secret::new(signing_key), &url, &lambda::body(&event), now, "j1");
            lambda::set_header(&mut event, messagebird::SIGNATURE_JWT_HEADER, &jwt);
        }
        event
    }

    fn event(&self) -> Value {
        self.event_with(lambda::path_secret(&self.channel), MB_SIGNING_KEY)
    }
}

#[tokio::test]
async fn a_text_message_is_acknowledged_and_stored_once() {
    for whatsapp in every_provider().await {
        let event = whatsapp.event();
        lambda::assert_carries_fixture(&event, whatsapp.fixture);
        let slug = whatsapp.provider.slug();
        // None of the three reads the answer's body: a bare 200.
        assert_eq!(whatsapp.harness.invoke(&event).await, (200, String::new()), "{slug}");
        assert_eq!(whatsapp.harness.stored_messages().await, 1, "{slug}");
        assert_eq!(whatsapp.harness.invoke(&event).await, (200, String::new()), "{slug}: a retry");
        assert_eq!(whatsapp.harness.stored_messages().await, 1, "{slug}: a retry is stored once");
    }
}

#[tokio::test]
async fn a_wrong_secret_or_signature_is_401_and_writes_nothing() {
    for whatsapp in every_provider().await {
        let slug = whatsapp.provider.slug();
        let wrong_secret = whatsapp.event_with(&"x".repeat(48), MB_SIGNING_KEY);
        let (status, body) = whatsapp.harness.invoke(&wrong_secret).await;
        assert_eq!(status, 401, "{slug}: {body}");
        if whatsapp.provider == Provider::WhatsappMessagebird {
            let forged = whatsapp.event_with(lambda::path_secret(&whatsapp.channel), "not-the-signing-key");
            let (status, body) = whatsapp.harness.invoke(&forged).await;
            assert_eq!(status, 401, "{slug}: {body}");
        }
        assert_eq!(whatsapp.harness.stored_messages().await, 0, "{slug}");
    }
}

#[tokio::test]
async fn a_base64_body_is_decoded_before_it_is_parsed() {
    for whatsapp in every_provider().await {
        let slug = whatsapp.provider.slug();
        let event = lambda::base64_body(whatsapp.event());
        assert_eq!(whatsapp.harness.invoke(&event).await, (200, String::new()), "{slug}");
        assert_eq!(whatsapp.harness.stored_messages().await, 1, "{slug}");
    }
}

#[tokio::test]
async fn get_and_head_on_the_secret_url_answer_the_url_checks() {
    for whatsapp in every_provider().await {
        let slug = whatsapp.provider.slug();
        for check in ["GET", "HEAD"] {
            let (status, body) = whatsapp.harness.invoke(&lambda::url_check(whatsapp.event(), check)).await;
            assert_eq!((status, body.as_str()), (200, ""), "{slug}: {check}");
        }
        assert_eq!(whatsapp.harness.stored_messages().await, 0, "{slug}");
    }
}
