//! The Lambda's handler, fed API Gateway HTTP API (payload 2.0) events carrying VK's real Callback API
//! bodies, for a community connected against a fake VK API. VK sends the `secret` of our callback server in
//! the body: the event files add it to the fixtures as `WEBHOOK_SECRET`.

use std::sync::Arc;

use omnichat::domain::{Channel, Provider};
use omnichat::providers::vk::VkClient;
use omnichat::usecases::Providers;
use omnichat_tests::fixture;
use omnichat_tests::lambda::{self, WebhookHarness};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MESSAGE_NEW: &str = include_str!("../events/vk-message-new.json");
const CONFIRMATION: &str = include_str!("../events/vk-confirmation.json");
/// The community the fixture `message_new` comes from; the confirmation event is about the same one, so that
/// one connected community answers both (as in infra/lambda/try.sh).
const GROUP_ID: i64 = 214167102;
const CONFIRMATION_CODE: &str = "693d0ba9";

struct Vk {
    harness: WebhookHarness,
    channel: Channel,
    /// The `secret_key` our callback server was registered with: VK puts it in every event.
    secret: String,
    _fake: MockServer,
}

/// A community with messages on, connected against a fake VK API.
async fn connect(group_id: i64) -> Vk {
    let fake = MockServer::start().await;
    let answers = [
        (
            "groups.getById",
            json!({"response": {"groups": [{"id": group_id, "name": "Acme Support", "can_message": 1}],
                "profiles": []}}),
        ),
        ("groups.getCallbackConfirmationCode", json!({"response": {"code": CONFIRMATION_CODE}})),
        ("groups.getCallbackServers", json!({"response": {"count": 0, "items": []}})),
        ("groups.addCallbackServer", json!({"response": {"server_id": 3}})),
        ("groups.setCallbackSettings", json!({"response": 1})),
    ];
    for (vk_method, body) in answers {
        Mock::given(method("POST"))
            .and(path(format!("/method/{vk_method}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&fake)
            .await;
    }
    let vk = VkClient::new(omnichat::providers::http_client(), fake.uri());
    let harness = WebhookHarness::start(Providers::default().with(Provider::Vk, Arc::new(vk))).await;
    let credentials =
        json!({"access_token": "vk1.a.handlerTestCommunityKey_0123456789", "group_id": group_id});
    let channel = harness.connect(Provider::Vk, credentials).await;
    let requests = fake.received_requests().await.unwrap_or_default();
    let added = requests.iter().find(|r| r.url.path() == "/method/groups.addCallbackServer").expect("added");
    let form = String::from_utf8_lossy(&added.body).into_owned();
    let secret =
        form.split('&').find_map(|pair| pair.strip_prefix("secret_key=")).expect("a secret_key").to_owned();
    Vk { harness, channel, secret, _fake: fake }
}

fn event(vk: &Vk, template: &str, secret: &str) -> Value {
    lambda::event(template, &[("CHANNEL_ID", &vk.channel.id.to_string()), ("WEBHOOK_SECRET", secret)])
}

#[tokio::test]
async fn a_message_new_is_answered_ok_and_stored_once() {
    let vk = connect(GROUP_ID).await;
    let event = event(&vk, MESSAGE_NEW, &vk.secret);
    // The event carries VK's real callback, plus our secret.
    let mut sent: Value = serde_json::from_slice(&lambda::body(&event)).expect("json");
    sent.as_object_mut().and_then(|body| body.remove("secret"));
    let real: Value = serde_json::from_slice(&fixture("vk_message_new_text_callback.json")).expect("json");
    assert_eq!(sent, real);

    assert_eq!(vk.harness.invoke(&event).await, (200, "ok".to_owned()));
    assert_eq!(vk.harness.stored_messages().await, 1);
    // VK retries until it reads `ok`: acknowledged again, stored once.
    assert_eq!(vk.harness.invoke(&event).await, (200, "ok".to_owned()));
    assert_eq!(vk.harness.stored_messages().await, 1);
}

#[tokio::test]
async fn the_confirmation_event_is_answered_with_the_code() {
    let vk = connect(GROUP_ID).await;
    let event = event(&vk, CONFIRMATION, &vk.secret);
    assert_eq!(vk.harness.invoke(&event).await, (200, CONFIRMATION_CODE.to_owned()));
    assert_eq!(vk.harness.stored_messages().await, 0);
}

#[tokio::test]
async fn a_wrong_secret_is_401_and_writes_nothing() {
    for template in [MESSAGE_NEW, CONFIRMATION] {
        let vk = connect(GROUP_ID).await;
        let (status, body) = vk.harness.invoke(&event(&vk, template, "not-the-secret")).await;
        assert_eq!(status, 401, "{body}");
        assert!(!body.contains(CONFIRMATION_CODE), "{body}");
        assert_eq!(vk.harness.stored_messages().await, 0);
    }
}

#[tokio::test]
async fn a_base64_body_is_decoded_before_verifying() {
    let vk = connect(GROUP_ID).await;
    let event = lambda::base64_body(event(&vk, MESSAGE_NEW, &vk.secret));
    assert_eq!(vk.harness.invoke(&event).await, (200, "ok".to_owned()));
    assert_eq!(vk.harness.stored_messages().await, 1);
}
