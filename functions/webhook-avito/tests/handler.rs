//! The Lambda's handler, fed API Gateway HTTP API (payload 2.0) events carrying Avito's real Messenger
//! webhook (a buyer's text message), for an account connected against a fake Avito API. Avito's requests
//! prove nothing by themselves: the secret path segment of the channel's URL authenticates them.

use std::sync::Arc;

use omnichat::domain::{Channel, Provider};
use omnichat::providers::avito::AvitoClient;
use omnichat::usecases::Providers;
use omnichat_tests::lambda::{self, WebhookHarness};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TEXT: &str = include_str!("../events/avito-text.json");

struct Avito {
    harness: WebhookHarness,
    channel: Channel,
    _fake: MockServer,
}

/// The account the fixture's message was sent to (`user_id` 375811020), connected against a fake.
async fn connect() -> Avito {
    let fake = MockServer::start().await;
    let answers = [
        ("POST", "/token", json!({"access_token": "tok-test", "expires_in": 86400, "token_type": "Bearer"})),
        ("GET", "/core/v1/accounts/self", json!({"id": 375811020, "name": "Велосипеды у дома"})),
        ("POST", "/messenger/v3/webhook", json!({"ok": true})),
    ];
    for (http_method, endpoint, body) in answers {
        Mock::given(method(http_method))
            .and(path(endpoint))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&fake)
            .await;
    }
    let avito = AvitoClient::new(omnichat::providers::http_client(), fake.uri());
    let harness = WebhookHarness::start(Providers::default().with(Provider::Avito, Arc::new(avito))).await;
    let credentials =
        json!({"client_id": "avito-client-id-0123", "client_secret": "avito-client-secret-0123456789"});
    let channel = harness.connect(Provider::Avito, credentials).await;
    Avito { harness, channel, _fake: fake }
}

fn event(avito: &Avito, secret: &str) -> Value {
    lambda::event(TEXT, &[("CHANNEL_ID", &avito.channel.id.to_string()), ("WEBHOOK_SECRET", secret)])
}

fn valid_event(avito: &Avito) -> Value {
    event(avito, lambda::path_secret(&avito.channel))
}

#[tokio::test]
async fn a_buyers_message_is_acknowledged_and_stored_once() {
    let avito = connect().await;
    let event = valid_event(&avito);
    lambda::assert_carries_fixture(&event, "avito_text.json");
    assert_eq!(avito.harness.invoke(&event).await, (200, String::new()));
    assert_eq!(avito.harness.stored_messages().await, 1);
    assert_eq!(avito.harness.invoke(&event).await, (200, String::new()), "a retry");
    assert_eq!(avito.harness.stored_messages().await, 1);
}

#[tokio::test]
async fn a_wrong_secret_is_401_and_writes_nothing() {
    let avito = connect().await;
    let (status, body) = avito.harness.invoke(&event(&avito, &"x".repeat(48))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(avito.harness.stored_messages().await, 0);
}

#[tokio::test]
async fn a_base64_body_is_decoded_before_it_is_parsed() {
    let avito = connect().await;
    let event = lambda::base64_body(valid_event(&avito));
    assert_eq!(avito.harness.invoke(&event).await, (200, String::new()));
    assert_eq!(avito.harness.stored_messages().await, 1);
}

#[tokio::test]
async fn get_on_the_secret_url_answers_the_url_check() {
    let avito = connect().await;
    let (status, body) = avito.harness.invoke(&lambda::url_check(valid_event(&avito), "GET")).await;
    assert_eq!((status, body.as_str()), (200, ""));
}
