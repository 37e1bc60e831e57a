//! The Lambda's handler, fed API Gateway HTTP API (payload 2.0) events carrying Viber's real `message`
//! callback, signed the way Viber signs (`X-Viber-Content-Signature`: HMAC-SHA256 of the body with the bot
//! token), for a bot connected against a fake Viber API.

use std::sync::Arc;

use omnichat::domain::{Channel, Provider};
use omnichat::providers::viber::{SIGNATURE_HEADER, ViberClient, signature};
use omnichat::secret::Secret;
use omnichat::usecases::Providers;
use omnichat_tests::lambda::{self, WebhookHarness};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TEXT: &str = include_str!("../events/viber-text.json");
const TOKEN: &str = "4a1e0f3c5d7b9a21-8f6e4d2c0b9a7f5e-3d1c0b9a8f7e6d5c";

struct Viber {
    harness: WebhookHarness,
    channel: Channel,
    _fake: MockServer,
}

async fn connect() -> Viber {
    let fake = MockServer::start().await;
    let answers = [
        (
            "get_account_info",
            json!({"status": 0, "status_message": "ok", "id": "pa:5234567890123456789", "name": "Acme Support"}),
        ),
        ("set_webhook", json!({"status": 0, "status_message": "ok"})),
    ];
    for (endpoint, body) in answers {
        Mock::given(method("POST"))
            .and(path(format!("/{endpoint}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&fake)
            .await;
    }
    let viber = ViberClient::new(omnichat::providers::http_client(), fake.uri());
    let harness = WebhookHarness::start(Providers::default().with(Provider::Viber, Arc::new(viber))).await;
    let channel = harness.connect(Provider::Viber, json!({"token": TOKEN})).await;
    Viber { harness, channel, _fake: fake }
}

/// The fixture event for this channel, signed with `token`.
fn signed_event(viber: &Viber, token: &str) -> Value {
    let mut event = lambda::event(TEXT, &[("CHANNEL_ID", &viber.channel.id.to_string())]);
    let signature = signature(&lambda::body(&event), &Secret::new(token));
    lambda::set_header(&mut event, SIGNATURE_HEADER, &signature);
    event
}

#[tokio::test]
async fn a_signed_message_is_acknowledged_and_stored_once() {
    let viber = connect().await;
    let event = signed_event(&viber, TOKEN);
    lambda::assert_carries_fixture(&event, "viber_text.json");
    // Viber reads nothing in the answer to a message: a bare 200.
    assert_eq!(viber.harness.invoke(&event).await, (200, String::new()));
    assert_eq!(viber.harness.stored_messages().await, 1);
    // Viber retries while it gets no 200: acknowledged again, stored once.
    assert_eq!(viber.harness.invoke(&event).await, (200, String::new()));
    assert_eq!(viber.harness.stored_messages().await, 1);
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_401_and_writes_nothing() {
    let viber = connect().await;
    let forged = signed_event(&viber, "another-bot-token-0123456789");
    let mut unsigned = signed_event(&viber, TOKEN);
    unsigned["headers"].as_object_mut().expect("headers").remove(&SIGNATURE_HEADER.to_ascii_lowercase());
    for event in [forged, unsigned] {
        let (status, body) = viber.harness.invoke(&event).await;
        assert_eq!(status, 401, "{body}");
    }
    assert_eq!(viber.harness.stored_messages().await, 0);
}

#[tokio::test]
async fn a_base64_body_is_decoded_before_the_signature_is_checked() {
    let viber = connect().await;
    let event = lambda::base64_body(signed_event(&viber, TOKEN));
    assert_eq!(viber.harness.invoke(&event).await, (200, String::new()));
    assert_eq!(viber.harness.stored_messages().await, 1);
}
