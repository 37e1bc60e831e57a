//! End to end over HTTP against the local runner: an Avito account is connected against a fake Avito API,
//! a buyer's message arrives at the channel's secret webhook URL, our echoes and system messages are
//! dropped, replies go into the chat, and the same account connected twice leaves only the newer effective.

use std::sync::Arc;

use omnichat::domain::Provider;
use omnichat::providers::avito::AvitoClient;
use omnichat_tests::{JPEG, PDF, PNG, TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PUBLIC_BASE: &str = "https://omnichat.example.test";
const CLIENT_ID: &str = "avito-client-id-0123";
const CLIENT_SECRET: &str = "avito-client-secret-0123456789";
const CHAT: &str = "u2i-5u1BZROboeSAFX7u00euug";

fn webhook_path(channel: &Value) -> String {
    let url = channel["webhook_url"].as_str().expect("webhook_url");
    url.strip_prefix(PUBLIC_BASE).unwrap_or_else(|| panic!("{url} is not under {PUBLIC_BASE}")).to_owned()
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

async fn fake_avito() -> MockServer {
    let avito = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "tok-e2e", "expires_in": 86400, "token_type": "Bearer"}),
            ),
        )
        .mount(&avito)
        .await;
    Mock::given(method("GET"))
        .and(path("/core/v1/accounts/self"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 375811020, "name": "Велосипеды у дома", "profile_url": "https://www.avito.ru/user/abc"})))
        .mount(&avito)
        .await;
    Mock::given(method("POST"))
        .and(path("/messenger/v3/webhook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&avito)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/messenger/v1/accounts/375811020/chats/{CHAT}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "bd7d6b5d", "created": 1712220300, "direction": "out", "type": "text",
            "content": {"text": "Да"}})))
        .mount(&avito)
        .await;
    avito
}

async fn spawn(avito: &MockServer) -> TestApp {
    let base = avito.uri();
    TestApp::spawn_with(move |providers| {
        providers.with(Provider::Avito, Arc::new(AvitoClient::new(omnichat::providers::http_client(), base)))
    })
    .await
}

async fn connect(app: &TestApp, name: &str) -> Value {
    let (status, channel) = app
        .post(
            "/v1/channels",
            &json!({"provider": "avito", "name": name,
                    "credentials": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    channel
}

fn event(message_id: &str, author_id: i64, kind: &str, content: Value) -> Vec<u8> {
    json!({"id": format!("evt-{message_id}"), "version": "v3.0.0", "timestamp": 1712220290,
           "payload": {"type": "message", "value": {
               "id": message_id, "chat_id": CHAT, "user_id": 375811020, "author_id": author_id,
               "created": 1712220290, "type": kind, "chat_type": "u2i", "content": content,
               "item_id": 4073598608_u64}}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_buyers_message_arrives_through_the_secret_url_and_the_reply_goes_into_the_chat() {
    let avito = fake_avito().await;
    let app = spawn(&avito).await;
    let channel = connect(&app, "Avito shop").await;
    assert_eq!(channel["provider"], "avito");
    assert_eq!(channel["account"], json!({"id": "375811020", "name": "Велосипеды у дома"}));
    assert!(!channel.to_string().contains(CLIENT_SECRET), "the secret leaked: {channel}");
    let path = webhook_path(&channel);
    let requests = avito.received_requests().await.unwrap_or_default();
    let subscribed: Vec<Value> = requests
        .iter()
        .filter(|r| r.url.path() == "/messenger/v3/webhook")
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    assert_eq!(subscribed, vec![json!({"url": channel["webhook_url"]})]);

    // A wrong or missing secret writes nothing (Avito's own signature header proves nothing here).
    let (prefix, _) = path.rsplit_once('/').expect("a secret segment");
    let wrong = format!("{prefix}/{}", "x".repeat(48));
    let signature = [("x-avito-messenger-signature", "deadbeef")];
    assert_eq!(app.deliver(&wrong, &signature, fixture("avito_text.json")).await, 401);
    assert_eq!(app.deliver(prefix, &signature, fixture("avito_text.json")).await, 401);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());

    assert_eq!(app.deliver(&path, &signature, fixture("avito_text.json")).await, 200);
    assert_eq!(app.deliver(&path, &signature, fixture("avito_text.json")).await, 200, "a retry");
    // Our own reply echoed back and a system message: acknowledged, not stored.
    assert_eq!(app.deliver(&path, &[], event("echo-1", 375811020, "text", json!({"text": "Да"}))).await, 200);
    assert_eq!(
        app.deliver(&path, &[], event("sys-1", 0, "system", json!({"text": "Заказ оплачен"}))).await,
        200
    );
    assert_eq!(app.deliver(&path, &[], b"[]".to_vec()).await, 400);

    let found = dialogs(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["customer"]["external_id"], CHAT);
    let dialog_id = found[0]["id"].as_str().expect("id").to_owned();
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["direction"], "in");
    assert_eq!(stored[0]["text"], "есть в наличии?");
    assert_eq!(stored[0]["provider_message_id"], "4e40017827104f1c5d42c5eb0a276585");
    assert_eq!(stored[0]["sent_at"], "2024-04-04T08:44:50Z");

    let (status, sent) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Да, есть в наличии"})).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["provider_message_id"], "bd7d6b5d");
    let requests = avito.received_requests().await.unwrap_or_default();
    let replies: Vec<&wiremock::Request> =
        requests.iter().filter(|r| r.url.path().ends_with(&format!("/chats/{CHAT}/messages"))).collect();
    assert_eq!(replies.len(), 1);
    let body: Value = serde_json::from_slice(&replies[0].body).expect("json");
    assert_eq!(body, json!({"message": {"text": "Да, есть в наличии"}, "type": "text"}));
    assert_eq!(replies[0].headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer tok-e2e"));

    // Avito's limit is 1,000 characters: a longer reply is refused with the limit named, and neither
    // stored nor sent.
    let (status, answer) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "д".repeat(1_001)})).await;
    assert_eq!((status, &answer["error"]["code"]), (422, &json!("invalid_text")), "{answer}");
    assert!(
        answer["error"]["message"].as_str().is_some_and(|m| m.contains("1000 characters on avito")),
        "{answer}"
    );
    assert_eq!(messages(&app, &dialog_id).await.len(), 2);
    let requests = avito.received_requests().await.unwrap_or_default();
    assert_eq!(
        requests.iter().filter(|r| r.url.path().ends_with(&format!("/chats/{CHAT}/messages"))).count(),
        1
    );
}

#[tokio::test]
async fn refused_client_credentials_are_a_422_and_save_nothing() {
    let avito = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_client"})))
        .mount(&avito)
        .await;
    let app = spawn(&avito).await;
    let (status, body) = app
        .post(
            "/v1/channels",
            &json!({"provider": "avito", "name": "Avito",
                    "credentials": {"client_id": CLIENT_ID, "client_secret": "wrong-secret-value"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.client_secret");
    assert!(!body.to_string().contains("wrong-secret-value"));
    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test]
async fn the_same_avito_account_in_two_channels_leaves_only_the_newer_effective() {
    let avito = fake_avito().await;
    let app = spawn(&avito).await;
    let older = connect(&app, "First").await;
    let newer = connect(&app, "Second").await;
    assert_eq!(newer["displaced"], older["id"], "{newer}");
    let (status, older_now) = app.get(&format!("/v1/channels/{}", older["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(older_now["status"], "displaced", "{older_now}");
    assert_eq!(older_now["displaced_by"], newer["id"]);

    // The older channel's URL is still acknowledged (Avito stops retrying) but writes nothing.
    assert_eq!(app.deliver(&webhook_path(&older), &[], fixture("avito_text.json")).await, 200);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());
    assert_eq!(app.deliver(&webhook_path(&newer), &[], fixture("avito_text.json")).await, 200);
    let found = dialogs(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["channel_id"], newer["id"]);
}

/// An Avito channel handled by a chatbot (the seed allows it for Avito): every chat's dialog goes to the
/// chatbot and none to the online employee, each buyer gets the chatbot's answer in their own chat, and no
/// auto-reply goes out while the chatbot holds the dialog.
#[tokio::test]
async fn a_chatbot_handling_the_channel_takes_every_dialog_and_no_auto_reply_goes_out() {
    let avito = fake_avito().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path_regex(r"^/messenger/v1/accounts/375811020/chats/[^/]+/messages$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "bot-answer", "created": 1712220300, "direction": "out", "type": "text",
            "content": {"text": "ok"}})))
        .mount(&avito)
        .await;
    let app = spawn(&avito).await;
    let chatbot = MockServer::start().await;
    let answer = "Hi, I am the bot. What do you need?";
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text": answer})))
        .mount(&chatbot)
        .await;
    let (status, bot) = app
        .post("/v1/chatbots", &json!({"name": "Shop bot", "webhook_url": format!("{}/hook", chatbot.uri())}))
        .await;
    assert_eq!(status, 201, "{bot}");
    let (status, anna) = app.post("/v1/employees", &json!({"name": "Anna", "status": "online"})).await;
    assert_eq!(status, 201, "{anna}");
    let channel = connect(&app, "Avito shop").await;
    let id = channel["id"].as_str().expect("id");
    let settings = json!({"handling": {"chatbot_id": bot["id"]},
                          "auto_replies": [{"text": "We will answer soon", "delay_seconds": 1}]});
    let (status, body) = app.http_put(&format!("/v1/channels/{id}"), &json!({"settings": settings})).await;
    assert_eq!(status, 200, "{body}");

    let chats = ["u2i-chatbot-first", "u2i-chatbot-second", "u2i-chatbot-third"];
    for (i, chat) in chats.iter().enumerate() {
        let mut body: Value =
            serde_json::from_slice(&event(&format!("m{i}"), 94235311, "text", json!({"text": "Hello"})))
                .expect("json");
        body["payload"]["value"]["chat_id"] = json!(chat);
        let status =
            app.deliver(&webhook_path(&channel), &[], serde_json::to_vec(&body).expect("json")).await;
        assert_eq!(status, 200);
    }
    let mut held = Vec::new();
    for _ in 0..100 {
        held = dialogs(&app).await;
        if held.len() == chats.len() && held.iter().all(|d| d["chatbot_id"] == bot["id"]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(held.len(), chats.len(), "{held:?}");
    for dialog in &held {
        assert_eq!((&dialog["chatbot_id"], &dialog["assignee_id"]), (&bot["id"], &Value::Null), "{dialog}");
    }
    // The auto-reply's delay (1 s) passes over several ticks: only the chatbot's answers go out, one per chat.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let forwarded = chatbot.received_requests().await.unwrap_or_default();
    assert_eq!(forwarded.len(), chats.len(), "each message forwarded once");
    let requests = avito.received_requests().await.unwrap_or_default();
    let mut sent: Vec<(String, String)> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("/messages") && r.method.as_str() == "POST")
        .filter_map(|r| {
            let chat = r.url.path().split('/').nth_back(1)?.to_owned();
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            Some((chat, body["message"]["text"].as_str()?.to_owned()))
        })
        .collect();
    sent.sort();
    let expected: Vec<(String, String)> = chats.iter().map(|c| (c.to_string(), answer.to_owned())).collect();
    assert_eq!(sent, expected, "the chatbot's answers and nothing else");
    let anna_id = anna["id"].as_str().expect("id");
    let (_, mine) = app.get(&format!("/v1/dialogs?assignee={anna_id}")).await;
    assert_eq!(mine["items"], json!([]), "the online employee got none: {mine}");
}

/// Delivers the fixture `name` to the channel's webhook, its `img.k.avito.ru` links on the fake.
async fn buyer_sends(app: &TestApp, channel: &Value, avito: &MockServer, name: &str) {
    let event = String::from_utf8(fixture(name)).expect("utf-8");
    let event = event.replace("https://img.k.avito.ru/", &format!("{}/", avito.uri()));
    assert_eq!(app.deliver(&webhook_path(channel), &[], event.into_bytes()).await, 200);
}

#[tokio::test]
async fn e2e_avito_media_a_buyers_image_and_voice_are_fetched_kept_and_served() {
    let avito = fake_avito().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/chat/[0-9x]+/5083651369\.[0-9a-f]+\.jpg$"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JPEG.to_vec(), "image/jpeg"))
        .mount(&avito)
        .await;
    let voice_id = "6f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8";
    Mock::given(method("GET"))
        .and(path("/messenger/v1/accounts/375811020/getVoiceFiles"))
        .and(query_param("voice_ids", voice_id))
        .and(header("authorization", "Bearer tok-e2e"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"voices_urls": {voice_id: format!("{}/voices/6f3e2d1c.m4a", avito.uri())}}),
        ))
        .mount(&avito)
        .await;
    let audio = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isomthe buyer's voice";
    Mock::given(method("GET"))
        .and(path("/voices/6f3e2d1c.m4a"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(audio.to_vec(), "audio/mp4"))
        .mount(&avito)
        .await;
    let app = spawn(&avito).await;
    let channel = connect(&app, "Avito shop").await;
    buyer_sends(&app, &channel, &avito, "avito_image.json").await;
    buyer_sends(&app, &channel, &avito, "avito_voice.json").await;
    let dialog = app.only_dialog().await;
    let messages = app.settled_messages(&dialog).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    let image = &messages[0]["attachments"][0];
    assert_eq!(image["kind"], "image", "{image}");
    app.assert_served(image, JPEG, "image/jpeg").await;
    let voice = &messages[1]["attachments"][0];
    assert_eq!(
        (voice["kind"].as_str(), voice["status"].as_str()),
        (Some("voice"), Some("stored")),
        "{voice}"
    );
    assert!(voice["mime_type"].as_str().is_some_and(|m| m.starts_with("audio/")), "{voice}");
    let served = app.follow(voice["url"].as_str().expect("a link")).await;
    assert_eq!(served.bytes().await.expect("body").as_ref(), audio);
    let shown = serde_json::to_string(&messages).expect("json");
    assert!(!shown.contains(CLIENT_SECRET) && !shown.contains("tok-e2e"), "a secret is shown: {shown}");
}

#[tokio::test]
async fn e2e_avito_media_an_uploaded_png_is_sent_by_upload_images_and_a_pdf_is_refused() {
    let avito = fake_avito().await;
    Mock::given(method("POST"))
        .and(path("/messenger/v1/accounts/375811020/uploadImages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"12345.abcdef": {"1280x960": "https://img.k.avito.ru/chat/1280x960/12345.abcdef.jpg"}}),
        ))
        .mount(&avito)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/messenger/v1/accounts/375811020/chats/{CHAT}/messages/image")))
        .and(body_json(json!({"image_id": "12345.abcdef"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "img-1", "type": "image"})))
        .mount(&avito)
        .await;
    let app = spawn(&avito).await;
    let channel = connect(&app, "Avito shop").await;
    buyer_sends(&app, &channel, &avito, "avito_text.json").await;
    let dialog = app.only_dialog().await;

    let id = app.upload_png("photo.png").await;
    let (status, reply) =
        app.post(&format!("/v1/dialogs/{dialog}/messages"), &json!({"attachments": [id]})).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    assert_eq!(reply["provider_message_id"], "img-1", "{reply}");
    let requests = avito.received_requests().await.unwrap_or_default();
    let upload = requests.iter().find(|r| r.url.path().ends_with("/uploadImages")).expect("uploadImages");
    assert!(upload.body.windows(PNG.len()).any(|w| w == PNG), "the PNG's bytes went to uploadImages");
    let sent_before = requests.len();

    // Avito's chats take images only: a PDF is refused naming it, and nothing goes out.
    let pdf = app
        .upload(json!({"name": "invoice.pdf", "mime_type": "application/pdf", "size": PDF.len()}), PDF)
        .await;
    let (status, body) = app
        .post(&format!("/v1/dialogs/{dialog}/messages"), &json!({"text": "x", "attachments": [pdf]}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "attachments[0]", "{body}");
    assert_eq!(avito.received_requests().await.unwrap_or_default().len(), sent_before, "nothing sent");
    assert_eq!(app.settled_messages(&dialog).await.len(), 2, "the buyer's message and the one reply");
}
