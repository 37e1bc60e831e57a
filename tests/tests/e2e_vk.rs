//! End to end over HTTP against the local runner: a VK community is connected against a fake VK API, the
//! Callback API handshake answers the confirmation code, a real `message_new` becomes one normalized message
//! in one dialog, a wrong secret writes nothing, and a reply with buttons reaches `messages.send`.

use std::sync::Arc;

use omnichat::domain::Provider;
use omnichat::providers::vk::{VkClient, random_id};
use omnichat_tests::{JPEG, PNG, TestApp, fixture};
use serde_json::{Map, Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "vk1.a.e2eCommunityAccessKey_0123456789abcdef";
const GROUP_ID: i64 = 214167102;
const CONFIRMATION_CODE: &str = "693d0ba9";

/// The form fields of a request to the fake (VK takes form-encoded parameters).
fn form(request: &Request) -> Map<String, Value> {
    let body = String::from_utf8_lossy(&request.body);
    let url = reqwest::Url::parse(&format!("http://form.invalid/?{body}")).expect("form");
    url.query_pairs().map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect()
}

async fn answer(fake: &MockServer, vk_method: &str, body: Value) {
    Mock::given(method("POST"))
        .and(path(format!("/method/{vk_method}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(fake)
        .await;
}

/// A fake VK API that knows one community with messages switched on.
async fn fake_vk() -> MockServer {
    let fake = MockServer::start().await;
    answer(
        &fake,
        "groups.getById",
        json!({"response": {"groups": [{"id": GROUP_ID, "name": "Acme Support", "screen_name": "acme",
            "can_message": 1}], "profiles": []}}),
    )
    .await;
    answer(&fake, "groups.getCallbackConfirmationCode", json!({"response": {"code": CONFIRMATION_CODE}}))
        .await;
    answer(&fake, "groups.getCallbackServers", json!({"response": {"count": 0, "items": []}})).await;
    answer(&fake, "groups.addCallbackServer", json!({"response": {"server_id": 3}})).await;
    answer(&fake, "groups.setCallbackSettings", json!({"response": 1})).await;
    answer(&fake, "groups.deleteCallbackServer", json!({"response": 1})).await;
    answer(&fake, "messages.send", json!({"response": 4711})).await;
    fake
}

async fn spawn(fake: &MockServer) -> TestApp {
    let base = fake.uri();
    TestApp::spawn_with(move |providers| {
        providers.with(Provider::Vk, Arc::new(VkClient::new(omnichat::providers::http_client(), base)))
    })
    .await
}

/// The requests the fake got for one method, as forms.
async fn calls(fake: &MockServer, vk_method: &str) -> Vec<Map<String, Value>> {
    let requests = fake.received_requests().await.unwrap_or_default();
    let wanted = format!("/method/{vk_method}");
    requests.iter().filter(|r| r.url.path() == wanted).map(form).collect()
}

/// Connects the community and answers (channel, the secret key our callback server was given).
async fn connect(app: &TestApp, fake: &MockServer) -> (Value, String) {
    let (status, channel) = app
        .post(
            "/v1/channels",
            &json!({"provider": "vk", "name": "VK community",
                "credentials": {"access_token": TOKEN, "group_id": GROUP_ID}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let added = calls(fake, "groups.addCallbackServer").await;
    assert_eq!(added.len(), 1, "{added:?}");
    let secret = added[0]["secret_key"].as_str().expect("secret_key").to_owned();
    (channel, secret)
}

fn webhook_path(channel: &Value) -> String {
    format!("/webhooks/vk/{}", channel["id"].as_str().expect("channel id"))
}

fn with_secret(body: &[u8], secret: &str) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(body).expect("json");
    value["secret"] = json!(secret);
    serde_json::to_vec(&value).expect("json")
}

async fn post(app: &TestApp, path: &str, body: Vec<u8>) -> (u16, String) {
    let response = app
        .http
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook POST");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
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
async fn connecting_registers_a_callback_server_and_never_shows_the_key() {
    let fake = fake_vk().await;
    let app = spawn(&fake).await;
    let (channel, secret) = connect(&app, &fake).await;
    assert_eq!(channel["provider"], "vk");
    assert_eq!(channel["account"]["name"], "Acme Support");
    assert_eq!(channel["status"], "active");
    let url = format!("https://omnichat.example.test{}", webhook_path(&channel));
    assert_eq!(channel["webhook_url"], url.as_str());
    assert_eq!(channel["credentials"]["access_token"], "****cdef");
    let shown = channel.to_string();
    for hidden in [TOKEN, secret.as_str(), CONFIRMATION_CODE] {
        assert!(!shown.contains(hidden), "a secret leaked: {shown}");
    }
    let added = &calls(&fake, "groups.addCallbackServer").await[0];
    assert_eq!(added["url"], url.as_str());
    assert_eq!(added["group_id"], GROUP_ID.to_string().as_str());
    assert!(secret.len() >= 32 && secret.len() <= 50 && secret.chars().all(|c| c.is_ascii_alphanumeric()));
    let settings = &calls(&fake, "groups.setCallbackSettings").await[0];
    assert_eq!((settings["server_id"].as_str(), settings["message_new"].as_str()), (Some("3"), Some("1")));
    assert_eq!(settings["api_version"], "5.199");
}

#[tokio::test]
async fn a_community_with_messages_off_or_a_refused_key_is_a_clear_422() {
    let fake = MockServer::start().await;
    answer(
        &fake,
        "groups.getById",
        json!({"response": {"groups": [{"id": GROUP_ID, "name": "Quiet", "can_message": 0}], "profiles": []}}),
    )
    .await;
    let app = spawn(&fake).await;
    let new_channel = json!({"provider": "vk", "name": "x",
        "credentials": {"access_token": TOKEN, "group_id": GROUP_ID.to_string()}});
    let (status, body) = app.post("/v1/channels", &new_channel).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.group_id");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("switched off"), "{body}");

    fake.reset().await;
    answer(
        &fake,
        "groups.getById",
        json!({"error": {"error_code": 5, "error_msg": "User authorization failed: invalid access_token (4)."}}),
    )
    .await;
    let (status, body) = app.post("/v1/channels", &new_channel).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.access_token");
    assert!(!body.to_string().contains(TOKEN));
    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test]
async fn the_handshake_answers_the_code_and_a_real_message_becomes_one_dialog() {
    let fake = fake_vk().await;
    let app = spawn(&fake).await;
    let (channel, secret) = connect(&app, &fake).await;
    let path = webhook_path(&channel);

    // The confirmation request VK sends to a new server: the code, as plain text.
    let confirmation = json!({"type": "confirmation", "group_id": GROUP_ID, "secret": secret});
    let (status, body) = post(&app, &path, serde_json::to_vec(&confirmation).unwrap()).await;
    assert_eq!((status, body.as_str()), (200, CONFIRMATION_CODE));

    let event = with_secret(&fixture("vk_message_new_text_callback.json"), &secret);
    let (status, body) = post(&app, &path, event.clone()).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // VK retries until it gets `ok`: the retry is acknowledged and stored once.
    assert_eq!(post(&app, &path, event).await, (200, "ok".to_owned()));

    let found = dialogs(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["customer"]["external_id"], "2000000066");
    assert_eq!(found[0]["channel_id"], channel["id"]);
    let dialog_id = found[0]["id"].as_str().expect("id").to_owned();
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["direction"], "in");
    assert_eq!(stored[0]["text"], "Ок");
    assert_eq!(stored[0]["provider_message_id"], "2000000066_2169");
    assert_eq!(stored[0]["sent_at"], "2023-05-05T09:24:30Z");

    // The employee answers with quick replies: one messages.send, in VK's documented form.
    let (status, reply) = app
        .post(
            &format!("/v1/dialogs/{dialog_id}/messages"),
            &json!({"text": "Чем помочь?", "buttons": ["Да", "Нет"]}),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    assert_eq!(reply["provider_message_id"], "4711");
    let sends = calls(&fake, "messages.send").await;
    assert_eq!(sends.len(), 1, "{sends:?}");
    let send = &sends[0];
    assert_eq!(send["peer_id"], "2000000066");
    assert_eq!(send["message"], "Чем помочь?");
    assert_eq!(send["access_token"], TOKEN);
    assert_eq!(send["v"], "5.199");
    let message_id = reply["id"].as_str().expect("message id");
    assert_eq!(send["random_id"], random_id(message_id).to_string().as_str());
    let keyboard: Value = serde_json::from_str(send["keyboard"].as_str().expect("keyboard")).expect("json");
    assert_eq!(keyboard["inline"], true);
    assert_eq!(keyboard["buttons"][0][0]["action"]["type"], "text");
    assert_eq!(keyboard["buttons"][0][0]["action"]["label"], "Да");
    assert_eq!(keyboard["buttons"][1][0]["action"]["label"], "Нет");
}

#[tokio::test]
async fn wrong_secrets_foreign_communities_and_malformed_bodies_write_nothing() {
    let fake = fake_vk().await;
    let app = spawn(&fake).await;
    let (channel, secret) = connect(&app, &fake).await;
    let path = webhook_path(&channel);
    let fixture = fixture("vk_message_new_text_callback.json");

    assert_eq!(post(&app, &path, with_secret(&fixture, "wrong-secret")).await.0, 401);
    assert_eq!(post(&app, &path, fixture.clone()).await.0, 401);
    let mut foreign: Value = serde_json::from_slice(&with_secret(&fixture, &secret)).unwrap();
    foreign["group_id"] = json!(1);
    assert_eq!(post(&app, &path, serde_json::to_vec(&foreign).unwrap()).await.0, 401);
    let wrong_confirmation = json!({"type": "confirmation", "group_id": GROUP_ID, "secret": "nope"});
    assert_eq!(post(&app, &path, serde_json::to_vec(&wrong_confirmation).unwrap()).await.0, 401);
    assert_eq!(post(&app, &path, b"{not json".to_vec()).await.0, 400);
    let no_message = json!({"type": "message_new", "group_id": GROUP_ID, "event_id": "e", "secret": secret});
    assert_eq!(post(&app, &path, serde_json::to_vec(&no_message).unwrap()).await.0, 400);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());

    // An event the product does not use: `ok`, nothing stored.
    let typing = json!({"type": "message_typing_state", "group_id": GROUP_ID, "event_id": "t1", "secret": secret,
        "object": {"state": "typing", "from_id": 1, "to_id": -GROUP_ID}});
    assert_eq!(post(&app, &path, serde_json::to_vec(&typing).unwrap()).await, (200, "ok".to_owned()));
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());
}

#[tokio::test]
async fn disconnecting_removes_our_callback_server() {
    let fake = fake_vk().await;
    let app = spawn(&fake).await;
    let (channel, secret) = connect(&app, &fake).await;
    fake.reset().await;
    answer(
        &fake,
        "groups.getCallbackServers",
        json!({"response": {"count": 2, "items": [
            {"id": 2, "title": "theirs", "url": "https://elsewhere.example/cb", "secret_key": "theirs"},
            {"id": 3, "title": "omnichat", "url": channel["webhook_url"], "secret_key": secret}]}}),
    )
    .await;
    answer(&fake, "groups.deleteCallbackServer", json!({"response": 1})).await;
    let id = channel["id"].as_str().expect("id");
    let (status, body) = app.post(&format!("/v1/channels/{id}/disconnect"), &json!({"confirm": true})).await;
    assert_eq!(status, 200, "{body}");
    let deleted = calls(&fake, "groups.deleteCallbackServer").await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["server_id"], "3");
}

/// A fixture's longpoll event as a signed callback event of our community, its links on the fake
/// (`https://{host}/{path}` as `{fake}/{host}/{path}`).
fn longpoll_event(name: &str, fake: &MockServer, secret: &str) -> Vec<u8> {
    let longpoll: Value = serde_json::from_slice(&fixture(name)).expect("json");
    let mut event = longpoll["updates"][0].clone();
    event["group_id"] = json!(GROUP_ID);
    event["secret"] = json!(secret);
    let event = serde_json::to_string(&event).expect("json");
    event.replace("https://", &format!("{}/", fake.uri())).into_bytes()
}

async fn serves(fake: &MockServer, at: &str, bytes: &[u8]) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), "application/octet-stream"))
        .mount(fake)
        .await;
}

#[tokio::test]
async fn e2e_vk_media_a_customers_photo_and_voice_are_fetched_kept_and_served() {
    let fake = fake_vk().await;
    // Only the largest size (w, 945x2048) and the voice message's ogg are there to fetch.
    serves(&fake, "/sun9-3.userapi.com/c857236/v857236595/124a59/nJXapHnUbeo.jpg", JPEG).await;
    let ogg = b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00 a customer's voice";
    serves(&fake, "/psv4.userapi.com/c852536//u526252082/audiomsg/d12/c02eb6b2fb.ogg", ogg).await;
    let app = spawn(&fake).await;
    let (channel, secret) = connect(&app, &fake).await;
    for name in ["vk_message_new_photo_longpoll.json", "vk_message_new_voice_longpoll.json"] {
        let (status, body) = post(&app, &webhook_path(&channel), longpoll_event(name, &fake, &secret)).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    let found = dialogs(&app).await;
    assert_eq!(found.len(), 2, "{found:?}");
    let by_peer =
        |peer: &str| found.iter().find(|d| d["customer"]["external_id"] == peer).expect(peer)["id"].clone();
    let photo = app.settled_messages(by_peer("2000000279").as_str().expect("id")).await;
    assert_eq!(photo[0]["text"], "Чувак могёт ракетами кидаться");
    let attachment = &photo[0]["attachments"][0];
    assert_eq!(attachment["kind"], "image", "{attachment}");
    app.assert_served(attachment, JPEG, "image/jpeg").await;
    let voice = app.settled_messages(by_peer("2000000053").as_str().expect("id")).await;
    let attachment = &voice[0]["attachments"][0];
    assert_eq!(attachment["kind"], "voice", "{attachment}");
    app.assert_served(attachment, ogg, "audio/ogg").await;
    let shown = serde_json::to_string(&[photo, voice]).expect("json");
    assert!(!shown.contains(TOKEN) && !shown.contains(&secret), "a secret is shown: {shown}");
}

#[tokio::test]
async fn e2e_vk_media_an_uploaded_png_goes_to_the_upload_server_and_out_as_a_photo() {
    let fake = fake_vk().await;
    answer(
        &fake,
        "photos.getMessagesUploadServer",
        json!({"response": {"upload_url": format!("{}/upload/photo?act=do_add&hash=abc", fake.uri()),
            "album_id": -64, "group_id": GROUP_ID}}),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/upload/photo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"server": 625831, "photo": "[{\"photo\":\"8d81799f90:w\"}]", "hash": "8954a4da5ba06d4e"}),
        ))
        .mount(&fake)
        .await;
    answer(
        &fake,
        "photos.saveMessagesPhoto",
        json!({"response": [{"id": 457239017, "owner_id": -GROUP_ID, "access_key": "ak1"}]}),
    )
    .await;
    let app = spawn(&fake).await;
    let (channel, secret) = connect(&app, &fake).await;
    let event = with_secret(&fixture("vk_message_new_text_callback.json"), &secret);
    assert_eq!(post(&app, &webhook_path(&channel), event).await.0, 200);
    let dialog = app.only_dialog().await;

    let id = app.upload_png("look.png").await;
    let (status, reply) = app
        .post(&format!("/v1/dialogs/{dialog}/messages"), &json!({"text": "Вот", "attachments": [id]}))
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["status"], "sent", "{reply}");
    let requests = fake.received_requests().await.unwrap_or_default();
    let uploaded =
        requests.iter().find(|r| r.url.path() == "/upload/photo").expect("the upload server's POST");
    assert!(uploaded.body.windows(PNG.len()).any(|w| w == PNG), "the PNG's bytes went to the upload server");
    let sends = calls(&fake, "messages.send").await;
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0]["attachment"], format!("photo-{GROUP_ID}_457239017_ak1").as_str());
    assert_eq!(sends[0]["message"], "Вот");
}
