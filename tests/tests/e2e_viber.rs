//! End to end over HTTP against the local runner: a Viber bot is connected against a fake Viber API, a real
//! signed `message` callback becomes one normalized message in one dialog, a wrong signature writes nothing,
//! and a reply with buttons reaches `send_message` with the bot's sender name and a keyboard.

use std::sync::{Arc, Mutex};

use omnichat::domain::Provider;
use omnichat::providers::viber::{ViberClient, signature};
use omnichat::secret::Secret;
use omnichat_tests::{JPEG, PNG, TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "4a1e0f3c5d7b9a21-8f6e4d2c0b9a7f5e-3d1c0b9a8f7e6d5c";
const SIGNATURE_HEADER: &str = "X-Viber-Content-Signature";
const PUBLIC_BASE: &str = "https://omnichat.example.test";

fn sign(body: &[u8]) -> String {
    signature(body, &Secret::new(TOKEN))
}

async fn answer(fake: &MockServer, endpoint: &str, body: Value) {
    Mock::given(method("POST"))
        .and(path(format!("/{endpoint}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(fake)
        .await;
}

async fn fake_viber() -> MockServer {
    let fake = MockServer::start().await;
    answer(
        &fake,
        "get_account_info",
        json!({"status": 0, "status_message": "ok", "id": "pa:5234567890123456789", "name": "Acme Support",
            "uri": "acmesupport", "subscribers_count": 12}),
    )
    .await;
    answer(&fake, "set_webhook", json!({"status": 0, "status_message": "ok"})).await;
    answer(
        &fake,
        "send_message",
        json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721087_u64}),
    )
    .await;
    fake
}

async fn spawn(fake: &MockServer) -> TestApp {
    let base = fake.uri();
    TestApp::spawn_with(move |providers| {
        providers.with(Provider::Viber, Arc::new(ViberClient::new(omnichat::providers::http_client(), base)))
    })
    .await
}

async fn bodies(fake: &MockServer, endpoint: &str) -> Vec<Value> {
    let requests = fake.received_requests().await.unwrap_or_default();
    let wanted = format!("/{endpoint}");
    requests
        .iter()
        .filter(|r| r.url.path() == wanted)
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect()
}

async fn connect(app: &TestApp) -> (u16, Value) {
    app.post(
        "/v1/channels",
        &json!({"provider": "viber", "name": "Viber bot", "credentials": {"token": TOKEN}}),
    )
    .await
}

fn webhook_path(channel: &Value) -> String {
    format!("/webhooks/viber/{}", channel["id"].as_str().expect("channel id"))
}

async fn deliver_signed(app: &TestApp, path: &str, body: Vec<u8>) -> u16 {
    let signature = sign(&body);
    app.deliver(path, &[(SIGNATURE_HEADER, signature.as_str())], body).await
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

#[tokio::test]
async fn connecting_names_the_bot_sets_the_webhook_and_never_shows_the_token() {
    let fake = fake_viber().await;
    let app = spawn(&fake).await;
    let (status, channel) = connect(&app).await;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["provider"], "viber");
    assert_eq!(channel["account"]["name"], "Acme Support");
    assert_eq!(channel["status"], "active");
    let url = format!("{PUBLIC_BASE}{}", webhook_path(&channel));
    assert_eq!(channel["webhook_url"], url.as_str());
    assert_eq!(channel["credentials"]["token"], "****6d5c");
    assert!(!channel.to_string().contains(TOKEN), "token leaked: {channel}");
    let set = bodies(&fake, "set_webhook").await;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0]["url"], url.as_str());
    assert_eq!(
        set[0]["event_types"],
        json!(["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"])
    );
    let requests = fake.received_requests().await.unwrap_or_default();
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("x-viber-auth-token").map(|v| v.as_bytes()) == Some(TOKEN.as_bytes()))
    );
}

#[tokio::test]
async fn an_invalid_token_is_bot_not_found_and_saves_nothing() {
    let fake = MockServer::start().await;
    answer(&fake, "get_account_info", json!({"status": 2, "status_message": "invalidAuthToken"})).await;
    let app = spawn(&fake).await;
    let (status, body) = connect(&app).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.token");
    assert_eq!(body["error"]["message"], "Bot not found / Бот не найден");
    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"], json!([]));
    assert!(bodies(&fake, "set_webhook").await.is_empty());
}

#[tokio::test]
async fn a_real_signed_message_becomes_one_dialog_and_the_reply_goes_out_with_a_keyboard() {
    let fake = fake_viber().await;
    let app = spawn(&fake).await;
    let (status, channel) = connect(&app).await;
    assert_eq!(status, 201, "{channel}");
    let path = webhook_path(&channel);

    // The callbacks that are only acknowledged.
    assert_eq!(deliver_signed(&app, &path, fixture("viber_webhook_verification.json")).await, 200);
    assert_eq!(deliver_signed(&app, &path, fixture("viber_conversation_started.json")).await, 200);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());

    let body = fixture("viber_text.json");
    assert_eq!(deliver_signed(&app, &path, body.clone()).await, 200);
    // Viber retries for about an hour while it gets no 200: a retry is stored once.
    assert_eq!(deliver_signed(&app, &path, body).await, 200);
    let found = dialogs(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["customer"]["external_id"], "01234567890A=");
    assert_eq!(found[0]["customer"]["name"], "John McClane");
    let dialog_id = found[0]["id"].as_str().expect("id").to_owned();
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["direction"], "in");
    assert_eq!(stored[0]["text"], "a message to the service");
    // 4912661846655238145 > 2^53: kept exact.
    assert_eq!(stored[0]["provider_message_id"], "4912661846655238145");
    assert_eq!(stored[0]["sent_at"], "2016-03-12T06:29:57.627Z");
    assert_eq!(stored[0]["attachments"], json!([]));

    let (status, reply) = app
        .post(
            &format!("/v1/dialogs/{dialog_id}/messages"),
            &json!({"text": "How can we help?", "buttons": ["Order status", "Talk to a human"]}),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    assert_eq!(reply["provider_message_id"], "5741311803571721087");
    let sent = bodies(&fake, "send_message").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0],
        json!({
            "receiver": "01234567890A=",
            "min_api_version": 1,
            "sender": {"name": "Acme Support"},
            "type": "text",
            "text": "How can we help?",
            "keyboard": {"Type": "keyboard", "DefaultHeight": false, "Buttons": [
                {"ActionType": "reply", "ActionBody": "Order status", "Text": "Order status", "Columns": 6, "Rows": 1},
                {"ActionType": "reply", "ActionBody": "Talk to a human", "Text": "Talk to a human", "Columns": 6, "Rows": 1},
            ]},
        })
    );
    // Viber's receipt for that message marks it delivered; a late "failed" does not move it back.
    let delivered = json!({"event": "delivered", "timestamp": 1595324677891_i64,
        "message_token": 5741311803571721087_u64, "user_id": "01234567890A="});
    assert_eq!(deliver_signed(&app, &path, serde_json::to_vec(&delivered).unwrap()).await, 200);
    let failed = json!({"event": "failed", "timestamp": 1595324677999_i64, "desc": "late",
        "message_token": 5741311803571721087_u64, "user_id": "01234567890A="});
    assert_eq!(deliver_signed(&app, &path, serde_json::to_vec(&failed).unwrap()).await, 200);
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored[1]["status"], "delivered", "{stored:?}");

    // Viber takes 7,000 characters: longer than elsewhere's 4,096 goes out, past 7,000 is refused with
    // the limit named and nothing stored or sent.
    let path = format!("/v1/dialogs/{dialog_id}/messages");
    let (status, answer) = app.post(&path, &json!({"text": "v".repeat(7_001)})).await;
    assert_eq!((status, &answer["error"]["code"]), (422, &json!("invalid_text")), "{answer}");
    assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("7000")), "{answer}");
    assert_eq!((messages(&app, &dialog_id).await.len(), bodies(&fake, "send_message").await.len()), (2, 1));
    let (status, answer) = app.post(&path, &json!({"text": "v".repeat(7_000)})).await;
    assert_eq!(status, 201, "{answer}");
    let sent = bodies(&fake, "send_message").await;
    assert_eq!(sent.last().and_then(|b| b["text"].as_str()).map(|t| t.chars().count()), Some(7_000));
}

#[tokio::test]
async fn wrong_or_missing_signatures_and_malformed_bodies_write_nothing() {
    let fake = fake_viber().await;
    let app = spawn(&fake).await;
    let (_, channel) = connect(&app).await;
    let path = webhook_path(&channel);
    let body = fixture("viber_text.json");
    let wrong = signature(&body, &Secret::new("another-bot-token-0123456789"));
    assert_eq!(app.deliver(&path, &[(SIGNATURE_HEADER, wrong.as_str())], body.clone()).await, 401);
    assert_eq!(app.deliver(&path, &[], body.clone()).await, 401);
    // The signature of the original bytes does not cover altered ones.
    let mut altered = body.clone();
    altered.extend_from_slice(b"\n");
    let original = sign(&body);
    assert_eq!(app.deliver(&path, &[(SIGNATURE_HEADER, original.as_str())], altered).await, 401);
    assert_eq!(deliver_signed(&app, &path, b"{not json".to_vec()).await, 400);
    assert_eq!(deliver_signed(&app, &path, br#"{"event":"message","message_token":1}"#.to_vec()).await, 400);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());
}

#[tokio::test]
async fn disconnecting_clears_the_webhook() {
    let fake = fake_viber().await;
    let app = spawn(&fake).await;
    let (_, channel) = connect(&app).await;
    let id = channel["id"].as_str().expect("id");
    let (status, body) = app.post(&format!("/v1/channels/{id}/disconnect"), &json!({"confirm": true})).await;
    assert_eq!(status, 200, "{body}");
    let set = bodies(&fake, "set_webhook").await;
    assert_eq!(set.last(), Some(&json!({"url": ""})), "{set:?}");
}

/// Viber's `set_webhook` as it really behaves: before answering, it POSTs a signed `webhook` event to the
/// URL and answers status 1 (invalidUrl) unless that request got a 200.
struct ChecksTheUrlFirst {
    app_base: Arc<Mutex<Option<String>>>,
}

impl Respond for ChecksTheUrlFirst {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let url = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|body| body["url"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let base = self.app_base.lock().map(|b| b.clone()).ok().flatten().unwrap_or_default();
        if url.is_empty() {
            return ResponseTemplate::new(200).set_body_json(json!({"status": 0, "status_message": "ok"}));
        }
        let local = url.replace(PUBLIC_BASE, &base);
        let event = fixture("viber_webhook_verification.json");
        let signature = sign(&event);
        // The fake answers from its own thread; the check is a blocking round trip to the app, as Viber's is.
        let status = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let response = reqwest::Client::new()
                    .post(local)
                    .header(SIGNATURE_HEADER, signature)
                    .header("content-type", "application/json")
                    .body(event)
                    .send()
                    .await
                    .ok()?;
                Some(response.status().as_u16())
            })
        })
        .join()
        .ok()
        .flatten();
        if status == Some(200) {
            ResponseTemplate::new(200).set_body_json(json!({"status": 0, "status_message": "ok"}))
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"status": 1, "status_message": "invalidUrl"}))
        }
    }
}

/// Viber checks the URL during `set_webhook`, before `POST /v1/channels` has written the channel: the
/// webhook route answers 404 for a channel it does not know yet, so Viber refuses the URL. Connecting works
/// once the use case writes the channel (not yet active, say "pending") before registering the webhook and
/// the webhook route lets a verified `webhook` event of such a channel through.
#[tokio::test]
async fn connecting_survives_viber_checking_the_url_during_set_webhook() {
    let fake = MockServer::start().await;
    answer(
        &fake,
        "get_account_info",
        json!({"status": 0, "status_message": "ok", "id": "pa:1", "name": "Acme Support"}),
    )
    .await;
    let app_base = Arc::new(Mutex::new(None));
    Mock::given(method("POST"))
        .and(path("/set_webhook"))
        .respond_with(ChecksTheUrlFirst { app_base: Arc::clone(&app_base) })
        .mount(&fake)
        .await;
    let app = spawn(&fake).await;
    *app_base.lock().expect("lock") = Some(app.base.clone());
    let (status, channel) = connect(&app).await;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["status"], "active");
}

/// The dialog of a customer who sent the fixture's text.
async fn customer_writes(app: &TestApp) -> (String, String) {
    let (status, channel) = connect(app).await;
    assert_eq!(status, 201, "{channel}");
    let path = webhook_path(&channel);
    assert_eq!(deliver_signed(app, &path, fixture("viber_text.json")).await, 200);
    (app.only_dialog().await, path)
}

#[tokio::test]
async fn e2e_viber_media_a_customers_picture_is_fetched_kept_and_served_by_its_link() {
    let fake = fake_viber().await;
    Mock::given(method("GET"))
        .and(path("/img.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JPEG.to_vec(), "image/jpeg"))
        .mount(&fake)
        .await;
    let app = spawn(&fake).await;
    let (status, channel) = connect(&app).await;
    assert_eq!(status, 201, "{channel}");
    let picture = String::from_utf8(fixture("viber_picture.json")).expect("utf-8");
    let picture = picture.replace("http://www.images.com/img.jpg", &format!("{}/img.jpg", fake.uri()));
    assert_eq!(deliver_signed(&app, &webhook_path(&channel), picture.into_bytes()).await, 200);
    let dialog = app.only_dialog().await;
    let messages = app.settled_messages(&dialog).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let attachment = &messages[0]["attachments"][0];
    assert_eq!(attachment["kind"], "image", "{attachment}");
    app.assert_served(attachment, JPEG, "image/jpeg").await;
    assert!(!messages[0].to_string().contains(TOKEN), "the token is shown: {}", messages[0]);
}

#[tokio::test]
async fn e2e_viber_media_an_uploaded_png_goes_out_as_a_picture_link() {
    let fake = fake_viber().await;
    let app = spawn(&fake).await;
    let (dialog, _) = customer_writes(&app).await;
    let id = app.upload_png("look.png").await;
    let (status, reply) = app
        .post(&format!("/v1/dialogs/{dialog}/messages"), &json!({"text": "Look", "attachments": [id]}))
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    let sent = bodies(&fake, "send_message").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0]["type"].as_str(), sent[0]["text"].as_str()), (Some("picture"), Some("Look")));
    let link = reqwest::Url::parse(sent[0]["media"].as_str().expect("a media link")).expect("a URL");
    assert!(link.path().starts_with("/media/uploads/"), "{link}");
    // The link serves the upload's bytes to Viber.
    let served = app.follow(link.as_str()).await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.expect("body").as_ref(), PNG);
}
