//! End to end over HTTP against the local runner: a WhatsApp channel is connected through edna, MessageBird
//! or Infobip against a fake of that provider's API, the provider's real payload arrives at the channel's
//! webhook URL and becomes one normalized message; without valid auth nothing is written; replies go out.

use std::sync::Arc;

use omnichat::domain::Provider;
use omnichat::ports::clock::{Clock, SystemClock};
use omnichat::providers::edna::EdnaClient;
use omnichat::providers::infobip::InfobipClient;
use omnichat::providers::messagebird::{self, MessageBirdClient};
use omnichat::secret::Secret;
use omnichat_tests::{JPEG, PNG, TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PUBLIC_BASE: &str = "https://omnichat.example.test";
const EDNA_KEY: &str = "edna-api-key-0123456789abcdef";
const MB_ACCESS: &str = "live_AccessKeyValue0123456789";
const MB_SIGNING: &str = "signingKeyValue0123456789abcdef";
const MB_CHANNEL: &str = "11a976e320d04baaa01382783727e8c5";
const IB_KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3c9a";

/// The path of a channel's webhook URL on the local runner (the URL is under the public base).
fn webhook_path(channel: &Value) -> String {
    let url = channel["webhook_url"].as_str().expect("webhook_url");
    url.strip_prefix(PUBLIC_BASE).unwrap_or_else(|| panic!("{url} is not under {PUBLIC_BASE}")).to_owned()
}

/// The same path with the secret segment replaced.
fn with_wrong_secret(path: &str) -> String {
    let (prefix, _) = path.rsplit_once('/').expect("a secret segment");
    format!("{prefix}/{}", "x".repeat(48))
}

async fn dialogs(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/v1/dialogs").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn messages(app: &TestApp, dialog_id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/dialogs/{dialog_id}/messages")).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn connect(app: &TestApp, whatsapp_provider: &str, credentials: Value) -> Value {
    let (status, channel) = app
        .post(
            "/v1/channels",
            &json!({"provider": "whatsapp", "whatsapp_provider": whatsapp_provider, "name": "WhatsApp",
                    "credentials": credentials}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["provider"], "whatsapp");
    assert_eq!(channel["whatsapp_provider"], whatsapp_provider);
    channel
}

fn bodies_to(requests: &[wiremock::Request], endpoint: &str) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.url.path() == endpoint)
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
        .collect()
}

fn now_rfc3339() -> String {
    SystemClock.now().to_string()
}

// --- edna ---

async fn fake_edna() -> MockServer {
    let edna = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/channel-profile"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 2, "name": "Shop", "subjectId": 345, "channelAttribute": "35799000000",
             "subject": "test_subject_WA", "active": true, "registrationStatus": "DONE_BUSINESS_VERIFICATION",
             "type": "WHATSAPP"}])))
        .mount(&edna)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/cascade/get-all"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 11, "name": "wa", "status": "ACTIVE", "stagesCount": 1, "stages": [
                {"order": 0, "uuid": "b", "stages": [],
                 "subject": {"id": 345, "subject": "test_subject_WA", "type": "WHATSAPP"}}]}])))
        .mount(&edna)
        .await;
    for endpoint in ["/api/callback/set", "/api/cascade/schedule"] {
        Mock::given(method("POST"))
            .and(path(endpoint))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .mount(&edna)
            .await;
    }
    edna
}

#[tokio::test]
async fn edna_messages_arrive_through_the_secret_url_and_replies_go_out_with_our_request_id() {
    let edna = fake_edna().await;
    let base = edna.uri();
    let app = TestApp::spawn_with(move |providers| {
        providers
            .with(Provider::WhatsappEdna, Arc::new(EdnaClient::new(omnichat::providers::http_client(), base)))
    })
    .await;
    let channel = connect(&app, "edna", json!({"subject": "test_subject_WA", "api_key": EDNA_KEY})).await;
    assert_eq!(channel["account"]["id"], "35799000000");
    assert_eq!(channel["account"]["name"], "35799000000");
    assert!(!channel.to_string().contains(EDNA_KEY), "the key leaked: {channel}");
    let path = webhook_path(&channel);
    assert!(
        path.starts_with(&format!("/webhooks/whatsapp-edna/{}/", channel["id"].as_str().unwrap())),
        "{path}"
    );
    // Both callbacks were pointed at the channel's URL, secret included.
    let requests = edna.received_requests().await.unwrap_or_default();
    let registered = bodies_to(&requests, "/api/callback/set");
    assert_eq!(
        registered,
        vec![json!({"subjectId": 345, "inMessageCallbackUrl": channel["webhook_url"],
                    "statusCallbackUrl": channel["webhook_url"]})]
    );
    // edna's URL check.
    let check = app.http.head(app.url(&path)).send().await.expect("HEAD");
    assert_eq!(check.status().as_u16(), 200);

    // Without the secret, nothing is written.
    assert_eq!(app.deliver(&with_wrong_secret(&path), &[], fixture("edna_text.json")).await, 401);
    let bare = path.rsplit_once('/').expect("secret").0.to_owned();
    assert_eq!(app.deliver(&bare, &[], fixture("edna_text.json")).await, 401);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());

    assert_eq!(app.deliver(&path, &[], fixture("edna_text.json")).await, 200);
    assert_eq!(app.deliver(&path, &[], fixture("edna_text.json")).await, 200, "a retry is acknowledged");
    assert_eq!(app.deliver(&path, &[], Vec::new()).await, 200, "an empty probe is acknowledged");
    assert_eq!(app.deliver(&path, &[], b"{not json".to_vec()).await, 400);
    let found = dialogs(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["customer"]["external_id"], "35700000000");
    assert_eq!(found[0]["customer"]["name"], "alex");
    let dialog_id = found[0]["id"].as_str().expect("id").to_owned();
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["direction"], "in");
    assert_eq!(stored[0]["text"], "Thank you for your help");
    assert_eq!(stored[0]["provider_message_id"], "101");

    // The customer writes again now; the employee replies within the customer-service window.
    let mut fresh: Value = serde_json::from_slice(&fixture("edna_text.json")).expect("json");
    fresh["id"] = json!(102);
    fresh["messageContent"]["text"] = json!("Is my order ready?");
    fresh["receivedAt"] = json!(now_rfc3339());
    assert_eq!(app.deliver(&path, &[], fresh.to_string().into_bytes()).await, 200);
    let (status, sent) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Yes, it is"})).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["status"], "sent", "{sent}");
    let requests = edna.received_requests().await.unwrap_or_default();
    let sends = bodies_to(&requests, "/api/cascade/schedule");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["requestId"], sent["provider_message_id"]);
    assert_eq!(sends[0]["cascadeId"], 11);
    assert_eq!(sends[0]["subscriberFilter"], json!({"address": "35700000000", "type": "PHONE"}));
    assert_eq!(sends[0]["content"]["whatsappContent"], json!({"contentType": "TEXT", "text": "Yes, it is"}));

    // A status callback of that message is acknowledged and stores no customer message.
    let mut status_callback: Value =
        serde_json::from_slice(&fixture("edna_status_delivered.json")).expect("json");
    status_callback["requestId"] = sent["provider_message_id"].clone();
    assert_eq!(app.deliver(&path, &[], status_callback.to_string().into_bytes()).await, 200);
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.iter().filter(|m| m["direction"] == "in").count(), 2, "{stored:?}");
}

#[tokio::test]
async fn a_wrong_edna_key_is_a_422_naming_it_and_saves_nothing() {
    let edna = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/channel-profile"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"detail": "Unauthorized"})))
        .mount(&edna)
        .await;
    let base = edna.uri();
    let app = TestApp::spawn_with(move |providers| {
        providers
            .with(Provider::WhatsappEdna, Arc::new(EdnaClient::new(omnichat::providers::http_client(), base)))
    })
    .await;
    let (status, body) = app
        .post(
            "/v1/channels",
            &json!({"provider": "whatsapp", "whatsapp_provider": "edna", "name": "WhatsApp",
                    "credentials": {"subject": "test_subject_WA", "api_key": "wrong-key-123456789"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.api_key");
    assert!(!body.to_string().contains("wrong-key-123456789"));
    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"], json!([]));
}

// --- MessageBird ---

async fn fake_messagebird() -> MockServer {
    let messagebird = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/channels/{MB_CHANNEL}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": MB_CHANNEL, "name": "Acme WhatsApp", "platformId": "whatsapp", "status": "active"})))
        .mount(&messagebird)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/webhooks"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "wh1"})))
        .mount(&messagebird)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"id": "2e15efafec384e1c82e9842075e87beb", "status": "accepted"})),
        )
        .mount(&messagebird)
        .await;
    messagebird
}

fn signature(channel: &Value, body: &[u8]) -> String {
    let url = channel["webhook_url"].as_str().expect("webhook_url");
    messagebird::sign_webhook(&Secret::new(MB_SIGNING), url, body, SystemClock.now(), "jti-e2e")
}

#[tokio::test]
async fn messagebird_messages_need_a_valid_jwt_and_our_echoes_are_not_customer_messages() {
    let messagebird = fake_messagebird().await;
    let base = messagebird.uri();
    let app = TestApp::spawn_with(move |providers| {
        providers.with(
            Provider::WhatsappMessagebird,
            Arc::new(MessageBirdClient::new(omnichat::providers::http_client(), base)),
        )
    })
    .await;
    let channel = connect(
        &app,
        "messagebird",
        json!({"access_key": MB_ACCESS, "channel_id": MB_CHANNEL, "signing_key": MB_SIGNING}),
    )
    .await;
    assert_eq!(channel["account"], json!({"id": MB_CHANNEL, "name": "Acme WhatsApp"}));
    for secret in [MB_ACCESS, MB_SIGNING] {
        assert!(!channel.to_string().contains(secret), "a credential leaked: {channel}");
    }
    let requests = messagebird.received_requests().await.unwrap_or_default();
    let webhooks = bodies_to(&requests, "/v1/webhooks");
    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0]["url"], channel["webhook_url"]);
    assert_eq!(webhooks[0]["channelId"], MB_CHANNEL);

    let path = webhook_path(&channel);
    let body = fixture("messagebird_conversations_text_received.json");
    let header = messagebird::SIGNATURE_JWT_HEADER;
    // Unsigned, wrongly signed, or signed for another body or URL: refused, nothing written.
    assert_eq!(app.deliver(&path, &[], body.clone()).await, 401);
    let forged = messagebird::sign_webhook(
        &Secret::new("not-the-key"),
        channel["webhook_url"].as_str().unwrap(),
        &body,
        SystemClock.now(),
        "j",
    );
    assert_eq!(app.deliver(&path, &[(header, &forged)], body.clone()).await, 401);
    let other_body = signature(&channel, b"{}");
    assert_eq!(app.deliver(&path, &[(header, &other_body)], body.clone()).await, 401);
    let valid = signature(&channel, &body);
    assert_eq!(app.deliver(&with_wrong_secret(&path), &[(header, &valid)], body.clone()).await, 401);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());

    assert_eq!(app.deliver(&path, &[(header, &valid)], body.clone()).await, 200);
    let found = dialogs(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["customer"]["external_id"], "+393383342437");
    let dialog_id = found[0]["id"].as_str().expect("id").to_owned();
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["text"], "hi");
    assert_eq!(stored[0]["provider_message_id"], "b88ff4db73be4bd58c2c56cb3bbb1004");

    // The echo of our own message (direction: sent) is acknowledged and not stored as the customer's.
    let mut echo: Value = serde_json::from_slice(&body).expect("json");
    echo["message"]["id"] = json!("c0ffee00c0ffee00c0ffee00c0ffee00");
    echo["message"]["direction"] = json!("sent");
    let echo = echo.to_string().into_bytes();
    assert_eq!(app.deliver(&path, &[(header, &signature(&channel, &echo))], echo).await, 200);
    assert_eq!(messages(&app, &dialog_id).await.len(), 1);

    // A fresh customer message, then a reply through the Conversations API.
    let mut fresh: Value = serde_json::from_slice(&body).expect("json");
    fresh["message"]["id"] = json!("d00dfeedd00dfeedd00dfeedd00dfeed");
    fresh["message"]["content"]["text"] = json!("still there?");
    fresh["message"]["createdDatetime"] = json!(now_rfc3339());
    let fresh = fresh.to_string().into_bytes();
    assert_eq!(app.deliver(&path, &[(header, &signature(&channel, &fresh))], fresh).await, 200);
    let (status, sent) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Yes!"})).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["provider_message_id"], "2e15efafec384e1c82e9842075e87beb", "{sent}");
    let requests = messagebird.received_requests().await.unwrap_or_default();
    assert_eq!(
        bodies_to(&requests, "/v1/send"),
        vec![json!({"to": "+393383342437", "from": MB_CHANNEL, "type": "text", "content": {"text": "Yes!"}})]
    );
}

// --- Infobip ---

#[tokio::test]
async fn infobip_batches_arrive_through_the_secret_url_and_replies_use_reply_buttons() {
    let infobip = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/whatsapp/2/senders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"sender": "1234", "displayName": "Acme", "connectionStatus": "CONNECTED"}]})))
        .mount(&infobip)
        .await;
    Mock::given(method("POST"))
        .and(path("/whatsapp/1/message/interactive/buttons"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"to": "385919998888", "messageCount": 1,
            "messageId": "ib-out-1", "status": {"groupName": "PENDING", "name": "PENDING_ENROUTE"}})),
        )
        .mount(&infobip)
        .await;
    let app = TestApp::spawn_with(|providers| {
        providers.with(
            Provider::WhatsappInfobip,
            Arc::new(InfobipClient::new(omnichat::providers::http_client()).allowing_loopback()),
        )
    })
    .await;
    let channel =
        connect(&app, "infobip", json!({"api_key": IB_KEY, "base_url": infobip.uri(), "sender": "1234"}))
            .await;
    assert_eq!(channel["account"]["id"], "1234");
    assert!(!channel.to_string().contains(IB_KEY), "the key leaked: {channel}");
    let path = webhook_path(&channel);

    assert_eq!(app.deliver(&with_wrong_secret(&path), &[], fixture("infobip_text.json")).await, 401);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());
    assert_eq!(app.deliver(&path, &[], fixture("infobip_text.json")).await, 200);
    assert_eq!(app.deliver(&path, &[], fixture("infobip_delivery_report.json")).await, 200);
    assert_eq!(app.deliver(&path, &[], br#"{"nope": 1}"#.to_vec()).await, 400);
    let found = dialogs(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["customer"]["external_id"], "385919998888");
    assert_eq!(found[0]["customer"]["name"], "Frank");
    let dialog_id = found[0]["id"].as_str().expect("id").to_owned();
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["text"], "Support hello");
    assert_eq!(stored[0]["provider_message_id"], "ABEGOFl3VCQoAhBalbc6rTQT6mgS29EmGZ7a");

    let mut fresh: Value = serde_json::from_slice(&fixture("infobip_text.json")).expect("json");
    fresh["results"][0]["messageId"] = json!("wamid.fresh");
    fresh["results"][0]["receivedAt"] = json!(now_rfc3339());
    assert_eq!(app.deliver(&path, &[], fresh.to_string().into_bytes()).await, 200);
    let (status, sent) = app
        .post(
            &format!("/v1/dialogs/{dialog_id}/messages"),
            &json!({"text": "Pick one", "buttons": ["Yes", "No"]}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["provider_message_id"], "ib-out-1", "{sent}");
    let requests = infobip.received_requests().await.unwrap_or_default();
    let sends = bodies_to(&requests, "/whatsapp/1/message/interactive/buttons");
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["from"], "1234");
    assert_eq!(sends[0]["to"], "385919998888");
    assert_eq!(
        sends[0]["content"],
        json!({"body": {"text": "Pick one"}, "action": {"buttons": [
            {"type": "REPLY", "id": "Yes", "title": "Yes"}, {"type": "REPLY", "id": "No", "title": "No"}]}})
    );
}

#[tokio::test]
async fn an_infobip_base_url_that_is_not_infobips_is_refused() {
    let app = TestApp::spawn_with(|providers| {
        providers
            .with(Provider::WhatsappInfobip, Arc::new(InfobipClient::new(omnichat::providers::http_client())))
    })
    .await;
    let (status, body) = app
        .post(
            "/v1/channels",
            &json!({"provider": "whatsapp", "whatsapp_provider": "infobip", "name": "WhatsApp",
                    "credentials": {"api_key": IB_KEY, "base_url": "http://169.254.169.254",
                                    "sender": "1234"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.base_url");
}

async fn fake_infobip_senders() -> MockServer {
    let infobip = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/whatsapp/2/senders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"sender": "1234", "displayName": "Acme", "connectionStatus": "CONNECTED"},
            {"sender": "5678", "displayName": "Acme 2", "connectionStatus": "CONNECTED"}]})))
        .mount(&infobip)
        .await;
    infobip
}

#[tokio::test]
async fn infobip_numbers_are_listed_to_pick_one_and_other_providers_have_nothing_to_pick() {
    let infobip = fake_infobip_senders().await;
    let app = TestApp::spawn_with(|providers| {
        providers.with(
            Provider::WhatsappInfobip,
            Arc::new(InfobipClient::new(omnichat::providers::http_client()).allowing_loopback()),
        )
    })
    .await;
    let body = json!({"provider": "whatsapp", "whatsapp_provider": "infobip",
                      "credentials": {"api_key": IB_KEY, "base_url": infobip.uri()}});
    let (status, accounts) = app.post("/v1/channels/accounts", &body).await;
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(accounts["items"], json!([{"id": "1234", "name": "+1234"}, {"id": "5678", "name": "+5678"}]));
    assert!(!accounts.to_string().contains(IB_KEY));
    let (status, answer) = app
        .post("/v1/channels/accounts", &json!({"provider": "telegram", "credentials": {"token": "1:x"}}))
        .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("nothing_to_pick")), "{answer}");
    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"], json!([]), "listing accounts saves nothing");
}

#[tokio::test]
async fn changing_provider_keeps_the_channel_and_its_settings_and_moves_the_webhook() {
    let edna = fake_edna().await;
    let infobip = fake_infobip_senders().await;
    let edna_base = edna.uri();
    let app = TestApp::spawn_with(move |providers| {
        providers
            .with(
                Provider::WhatsappEdna,
                Arc::new(EdnaClient::new(omnichat::providers::http_client(), edna_base)),
            )
            .with(
                Provider::WhatsappInfobip,
                Arc::new(InfobipClient::new(omnichat::providers::http_client()).allowing_loopback()),
            )
    })
    .await;
    let edna_channel =
        connect(&app, "edna", json!({"subject": "test_subject_WA", "api_key": EDNA_KEY})).await;
    let id = edna_channel["id"].as_str().expect("id").to_owned();
    let settings = json!({"settings": {"auto_close": {"after": 3, "unit": "days"}}});
    assert_eq!(app.http_put(&format!("/v1/channels/{id}"), &settings).await.0, 200);
    let old_path = webhook_path(&edna_channel);

    // Wrong new credentials change nothing.
    let bad = json!({"whatsapp_provider": "infobip", "credentials": {"api_key": IB_KEY, "base_url": infobip.uri(), "sender": "9999"}});
    let (status, answer) = app.post(&format!("/v1/channels/{id}/provider"), &bad).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("credentials.sender")), "{answer}");
    let (_, unchanged) = app.get(&format!("/v1/channels/{id}")).await;
    assert_eq!(unchanged["whatsapp_provider"], "edna");

    let good = json!({"whatsapp_provider": "infobip", "credentials": {"api_key": IB_KEY, "base_url": infobip.uri(), "sender": "1234"}});
    let (status, moved) = app.post(&format!("/v1/channels/{id}/provider"), &good).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["id"].as_str(), moved["whatsapp_provider"].as_str()),
        (Some(id.as_str()), Some("infobip"))
    );
    assert_eq!(moved["account"]["id"], "1234");
    assert_eq!(moved["settings"]["auto_close"], json!({"after": 3, "unit": "days"}));
    assert!(!moved.to_string().contains(IB_KEY) && !moved.to_string().contains(EDNA_KEY));
    let new_path = webhook_path(&moved);
    assert!(new_path.starts_with(&format!("/webhooks/whatsapp-infobip/{id}/")), "{new_path}");
    // edna's callbacks were cleared; its URL no longer reaches the channel; Infobip's does.
    let requests = edna.received_requests().await.unwrap_or_default();
    assert_eq!(bodies_to(&requests, "/api/callback/set").len(), 2, "registered once, cleared once");
    assert_eq!(app.deliver(&old_path, &[], fixture("edna_text.json")).await, 404);
    assert_eq!(app.deliver(&new_path, &[], fixture("infobip_text.json")).await, 200);
    assert_eq!(dialogs(&app).await.len(), 1);
    // Only WhatsApp channels change provider, and only to another one.
    let (status, answer) = app.post(&format!("/v1/channels/{id}/provider"), &good).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("whatsapp_provider")));
}

// --- media ---

async fn spawn_edna(edna: &MockServer) -> TestApp {
    let base = edna.uri();
    TestApp::spawn_with(move |providers| {
        providers
            .with(Provider::WhatsappEdna, Arc::new(EdnaClient::new(omnichat::providers::http_client(), base)))
    })
    .await
}

async fn spawn_messagebird(messagebird: &MockServer) -> TestApp {
    let base = messagebird.uri();
    TestApp::spawn_with(move |providers| {
        providers.with(
            Provider::WhatsappMessagebird,
            Arc::new(MessageBirdClient::new(omnichat::providers::http_client(), base)),
        )
    })
    .await
}

async fn spawn_infobip() -> TestApp {
    TestApp::spawn_with(|providers| {
        providers.with(
            Provider::WhatsappInfobip,
            Arc::new(InfobipClient::new(omnichat::providers::http_client()).allowing_loopback()),
        )
    })
    .await
}

/// `fake` serves `bytes` at `at` (only with the `authorization` header given, if any).
async fn serves(fake: &MockServer, at: &str, authorization: Option<&str>, bytes: &[u8]) {
    let mock = Mock::given(method("GET")).and(path(at));
    let mock = match authorization {
        Some(value) => mock.and(header("authorization", value)),
        None => mock,
    };
    mock.respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), "application/octet-stream"))
        .mount(fake)
        .await;
}

/// The customer's attachment, settled, served by its link as `bytes`; no secret in the API's JSON.
async fn assert_inbound_media(app: &TestApp, bytes: &[u8], mime: &str, secrets: &[&str]) {
    let dialog = app.only_dialog().await;
    let messages = app.settled_messages(&dialog).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let attachment = &messages[0]["attachments"][0];
    assert_eq!(attachment["kind"], "image", "{attachment}");
    app.assert_served(attachment, bytes, mime).await;
    let shown = messages[0].to_string();
    assert!(secrets.iter().all(|secret| !shown.contains(secret)), "a secret is shown: {shown}");
}

/// Replies to the only dialog with an uploaded PNG; answers the reply.
async fn reply_with_png(app: &TestApp) -> Value {
    let dialog = app.only_dialog().await;
    let id = app.upload_png("receipt.png").await;
    let (status, reply) = app
        .post(
            &format!("/v1/dialogs/{dialog}/messages"),
            &json!({"text": "Your receipt", "attachments": [id]}),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    reply
}

/// A link the runner made for a provider to fetch an upload from, serving the PNG.
async fn assert_upload_link(app: &TestApp, link: &Value) {
    let url = reqwest::Url::parse(link.as_str().expect("a media link")).expect("a URL");
    assert!(url.path().starts_with("/media/uploads/"), "{url}");
    let served = app.follow(url.as_str()).await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.expect("body").as_ref(), PNG);
}

#[tokio::test]
async fn e2e_whatsapp_media_edna_image_is_fetched_kept_and_served_by_its_link() {
    let edna = fake_edna().await;
    serves(&edna, "/imfiles4s/ednapulse_prodbot/Q8PJu5KqTCCbMvPjm9KG9g.webp", None, JPEG).await;
    let app = spawn_edna(&edna).await;
    let channel = connect(&app, "edna", json!({"subject": "test_subject_WA", "api_key": EDNA_KEY})).await;
    let image = String::from_utf8(fixture("edna_image_unverified.json")).expect("utf-8");
    let image = image.replace("https://files.mfms.ru/imfiles4s/", &format!("{}/imfiles4s/", edna.uri()));
    assert_eq!(app.deliver(&webhook_path(&channel), &[], image.into_bytes()).await, 200);
    assert_inbound_media(&app, JPEG, "image/jpeg", &[EDNA_KEY]).await;
}

#[tokio::test]
async fn e2e_whatsapp_media_edna_reply_sends_the_upload_by_its_link() {
    let edna = fake_edna().await;
    let app = spawn_edna(&edna).await;
    let channel = connect(&app, "edna", json!({"subject": "test_subject_WA", "api_key": EDNA_KEY})).await;
    let mut fresh: Value = serde_json::from_slice(&fixture("edna_text.json")).expect("json");
    fresh["receivedAt"] = json!(now_rfc3339());
    assert_eq!(app.deliver(&webhook_path(&channel), &[], fresh.to_string().into_bytes()).await, 200);
    reply_with_png(&app).await;
    let requests = edna.received_requests().await.unwrap_or_default();
    let sends = bodies_to(&requests, "/api/cascade/schedule");
    let content = &sends.last().expect("a send")["content"]["whatsappContent"];
    assert_eq!(content["contentType"], "IMAGE", "{sends:?}");
    assert_upload_link(&app, &content["attachment"]["url"]).await;
}

#[tokio::test]
async fn e2e_whatsapp_media_messagebird_image_is_fetched_with_the_access_key() {
    let messagebird = fake_messagebird().await;
    let at = "/v1/media/ab397184-a03a-42de-a2c7-69abc4a0ceaa";
    serves(&messagebird, at, Some(&format!("AccessKey {MB_ACCESS}")), JPEG).await;
    let app = spawn_messagebird(&messagebird).await;
    let channel = connect(
        &app,
        "messagebird",
        json!({"access_key": MB_ACCESS, "channel_id": MB_CHANNEL, "signing_key": MB_SIGNING}),
    )
    .await;
    let image = String::from_utf8(fixture("messagebird_conversations_image_received.json")).expect("utf-8");
    let image = image
        .replace("https://media.messagebird.com/v1/media/", &format!("{}/v1/media/", messagebird.uri()))
        .replace("f457361cf59348129ca387a52d4d7fe2", MB_CHANNEL);
    let signed = signature(&channel, image.as_bytes());
    let header = messagebird::SIGNATURE_JWT_HEADER;
    assert_eq!(app.deliver(&webhook_path(&channel), &[(header, &signed)], image.into_bytes()).await, 200);
    assert_inbound_media(&app, JPEG, "image/jpeg", &[MB_ACCESS, MB_SIGNING]).await;
}

#[tokio::test]
async fn e2e_whatsapp_media_messagebird_reply_sends_the_upload_by_its_link() {
    let messagebird = fake_messagebird().await;
    let app = spawn_messagebird(&messagebird).await;
    let channel = connect(
        &app,
        "messagebird",
        json!({"access_key": MB_ACCESS, "channel_id": MB_CHANNEL, "signing_key": MB_SIGNING}),
    )
    .await;
    let mut fresh: Value =
        serde_json::from_slice(&fixture("messagebird_conversations_text_received.json")).expect("json");
    fresh["message"]["createdDatetime"] = json!(now_rfc3339());
    let fresh = fresh.to_string().into_bytes();
    let signed = signature(&channel, &fresh);
    let header = messagebird::SIGNATURE_JWT_HEADER;
    assert_eq!(app.deliver(&webhook_path(&channel), &[(header, &signed)], fresh).await, 200);
    reply_with_png(&app).await;
    let requests = messagebird.received_requests().await.unwrap_or_default();
    let sends = bodies_to(&requests, "/v1/send");
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0]["type"], "image");
    assert_upload_link(&app, &sends[0]["content"]["image"]["url"]).await;
}

#[tokio::test]
async fn e2e_whatsapp_media_infobip_image_is_fetched_with_the_api_key() {
    let infobip = fake_infobip_senders().await;
    let at = "/whatsapp/1/senders/447860099299/media/3966813530218966";
    serves(&infobip, at, Some(&format!("App {IB_KEY}")), PNG).await;
    let app = spawn_infobip().await;
    let channel =
        connect(&app, "infobip", json!({"api_key": IB_KEY, "base_url": infobip.uri(), "sender": "1234"}))
            .await;
    let image = String::from_utf8(fixture("infobip_image.json")).expect("utf-8");
    let image = image.replace("https://api.infobip.com/", &format!("{}/", infobip.uri()));
    assert_eq!(app.deliver(&webhook_path(&channel), &[], image.into_bytes()).await, 200);
    assert_inbound_media(&app, PNG, "image/png", &[IB_KEY]).await;
}

#[tokio::test]
async fn e2e_whatsapp_media_infobip_reply_sends_the_upload_by_its_link() {
    let infobip = fake_infobip_senders().await;
    Mock::given(method("POST"))
        .and(path("/whatsapp/1/message/image"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"to": "385919998888", "messageCount": 1,
            "messageId": "ib-out-img", "status": {"groupName": "PENDING", "name": "PENDING_ENROUTE"}})),
        )
        .mount(&infobip)
        .await;
    let app = spawn_infobip().await;
    let channel =
        connect(&app, "infobip", json!({"api_key": IB_KEY, "base_url": infobip.uri(), "sender": "1234"}))
            .await;
    let mut fresh: Value = serde_json::from_slice(&fixture("infobip_text.json")).expect("json");
    fresh["results"][0]["receivedAt"] = json!(now_rfc3339());
    assert_eq!(app.deliver(&webhook_path(&channel), &[], fresh.to_string().into_bytes()).await, 200);
    let reply = reply_with_png(&app).await;
    assert_eq!(reply["provider_message_id"], "ib-out-img", "{reply}");
    let requests = infobip.received_requests().await.unwrap_or_default();
    let sends = bodies_to(&requests, "/whatsapp/1/message/image");
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0]["content"]["caption"], "Your receipt");
    assert_upload_link(&app, &sends[0]["content"]["mediaUrl"]).await;
}
