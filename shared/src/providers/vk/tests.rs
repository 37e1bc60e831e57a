//! Unit tests of the VK module: Callback API fixtures through `receive`, the keyboard and `random_id`,
//! and the API client against a local fake (wiremock).

use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use serde_json::json;

use super::client::{
    FLOOD_CONTROL_RETRY, INLINE_MAX_BUTTONS, INLINE_MAX_ROWS, LABEL_MAX_CHARS, PAYLOAD_MAX_BYTES, interpret,
};
use super::*;
use crate::domain::{Attachment, AttachmentKind, Customer, InboundKind, InboundMessage};
use crate::ports::media::MediaSink;
use crate::providers::OutgoingMedia;
use crate::test_support::fixture;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "vk1.a.communityKeySecretValue_0123456789";
const HOOK_SECRET: &str = "HookSecret0123456789abcdefghijklmnopqrstuvwxyzABCD";

/// A Bots Long Poll item has the shape of a Callback API body minus `secret`: add it, as VK does for
/// servers with a secret key.
fn longpoll_as_callback(name: &str, secret: &str) -> Vec<u8> {
    let poll: Value = serde_json::from_slice(&fixture(name)).unwrap();
    let mut event = poll["updates"][0].clone();
    event["secret"] = json!(secret);
    serde_json::to_vec(&event).unwrap()
}

fn with_secret(body: &[u8], secret: &str) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(body).unwrap();
    value["secret"] = json!(secret);
    serde_json::to_vec(&value).unwrap()
}

fn secrets(group_id: i64) -> ChannelSecrets {
    ChannelSecrets::default()
        .with(ACCESS_TOKEN, Secret::new(TOKEN))
        .with(GROUP_ID, Secret::new(group_id.to_string()))
        .with(CONFIRMATION_CODE, Secret::new("693d0ba9"))
        .with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET))
}

fn request(body: Vec<u8>) -> WebhookRequest {
    WebhookRequest { method: "POST".into(), body, ..WebhookRequest::default() }
}

fn client() -> VkClient {
    VkClient::new(reqwest::Client::new(), "http://unused.invalid")
}

fn receive(group_id: i64, body: Vec<u8>) -> Result<Delivery, WebhookError> {
    client().receive(&secrets(group_id), &request(body))
}

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp::from_second(seconds).unwrap())
}

#[test]
fn parses_the_text_callback_fixture() {
    let body = with_secret(&fixture("vk_message_new_text_callback.json"), HOOK_SECRET);
    let delivery = receive(214167102, body).unwrap();
    assert_eq!(delivery.reply, Reply::text("ok"));
    assert!(delivery.statuses.is_empty());
    assert_eq!(
        delivery.messages,
        vec![InboundMessage {
            dedup_key: "da1b15e9f6d0c3c8a0c937e048cdd3e2b43794d0".into(),
            kind: InboundKind::Message,
            customer: Customer { id: "2000000066".into(), name: None, handle: None },
            provider_message_id: Some("2000000066_2169".into()),
            text: Some("Ок".into()),
            attachments: vec![],
            sent_at: ts(1683278670),
        }]
    );
}

#[test]
fn parses_the_photo_fixture_with_the_largest_size() {
    let body = longpoll_as_callback("vk_message_new_photo_longpoll.json", HOOK_SECRET);
    let delivery = receive(183287114, body).unwrap();
    assert_eq!(delivery.reply, Reply::text("ok"));
    assert_eq!(
        delivery.messages,
        vec![InboundMessage {
            dedup_key: "2bc491893831d3b0d801f2bc122af6697aa4369a".into(),
            kind: InboundKind::Message,
            customer: Customer { id: "2000000279".into(), name: None, handle: None },
            provider_message_id: Some("2000000279_241661".into()),
            text: Some("Чувак могёт ракетами кидаться".into()),
            attachments: vec![Attachment {
                kind: AttachmentKind::Image,
                file_ref: "https://sun9-3.userapi.com/c857236/v857236595/124a59/nJXapHnUbeo.jpg".into(),
                mime: None,
                size: None,
                name: None,
            }],
            sent_at: ts(1584566394),
        }]
    );
}

#[test]
fn parses_the_voice_fixture() {
    let body = longpoll_as_callback("vk_message_new_voice_longpoll.json", HOOK_SECRET);
    let delivery = receive(183287114, body).unwrap();
    assert_eq!(
        delivery.messages,
        vec![InboundMessage {
            dedup_key: "ccb98c9b065a00f21971a50830751a274f59f515".into(),
            kind: InboundKind::Message,
            customer: Customer { id: "2000000053".into(), name: None, handle: None },
            provider_message_id: Some("2000000053_518107".into()),
            text: None,
            attachments: vec![Attachment {
                kind: AttachmentKind::Voice,
                file_ref: "https://psv4.userapi.com/c852536//u526252082/audiomsg/d12/c02eb6b2fb.ogg".into(),
                mime: Some("audio/ogg".into()),
                size: None,
                name: None,
            }],
            sent_at: ts(1584565364),
        }]
    );
}

#[test]
fn answers_the_confirmation_fixture_with_the_code() {
    let mut secrets = secrets(123456);
    // The fixture carries the secret of the test it was taken from.
    secrets = secrets.with(ChannelSecrets::WEBHOOK_SECRET, Secret::new("secret_123456"));
    let delivery = client().receive(&secrets, &request(fixture("vk_confirmation.json"))).unwrap();
    assert_eq!(delivery.reply, Reply::text("693d0ba9"));
    assert_eq!(delivery.reply.content_type, "text/plain; charset=utf-8");
    assert!(delivery.messages.is_empty() && delivery.statuses.is_empty());
    // Without a secret (a server set up before it had one) the code is still given to the community.
    let bare = br#"{"type":"confirmation","group_id":123456}"#.to_vec();
    assert_eq!(client().receive(&secrets, &request(bare)).unwrap().reply, Reply::text("693d0ba9"));
}

#[test]
fn refuses_a_confirmation_for_another_community_or_with_a_wrong_secret() {
    let secrets = secrets(123456);
    for body in [
        br#"{"type":"confirmation","group_id":654321}"#.to_vec(),
        br#"{"type":"confirmation","group_id":123456,"secret":"nope"}"#.to_vec(),
    ] {
        assert_eq!(client().receive(&secrets, &request(body)), Err(WebhookError::Unauthorized));
    }
}

#[test]
fn refuses_wrong_missing_or_foreign_secrets() {
    let fixture = fixture("vk_message_new_text_callback.json");
    let wrong = with_secret(&fixture, "HookSecret0123456789abcdefghijklmnopqrstuvwxyzABCE");
    assert_eq!(receive(214167102, wrong), Err(WebhookError::Unauthorized));
    assert_eq!(receive(214167102, fixture.clone()), Err(WebhookError::Unauthorized));
    assert_eq!(receive(214167102, with_secret(&fixture, "")), Err(WebhookError::Unauthorized));
    // The right secret, but the event is about another community.
    assert_eq!(receive(1, with_secret(&fixture, HOOK_SECRET)), Err(WebhookError::Unauthorized));
    // A channel without a webhook secret accepts nothing.
    let bare = secrets(214167102).with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(""));
    let body = with_secret(&fixture, "");
    assert_eq!(client().receive(&bare, &request(body)), Err(WebhookError::Unauthorized));
}

#[test]
fn verifies_secrets() {
    let expected = Secret::new(HOOK_SECRET);
    assert_eq!(verify_secret(Some(HOOK_SECRET), &expected), Ok(()));
    assert_eq!(verify_secret(Some("x"), &expected), Err(WebhookError::Unauthorized));
    assert_eq!(verify_secret(None, &expected), Err(WebhookError::Unauthorized));
    assert_eq!(verify_secret(Some(""), &Secret::new("")), Err(WebhookError::Unauthorized));
}

#[test]
fn acknowledges_events_it_does_not_use() {
    for kind in ["message_reply", "message_typing_state", "wall_post_new", "message_edit", "group_join"] {
        let body = json!({"type": kind, "group_id": 42, "event_id": "e1", "secret": HOOK_SECRET,
            "object": {"id": 1}});
        let delivery = receive(42, serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(delivery, Delivery { reply: Reply::text("ok"), ..Delivery::default() }, "{kind}");
    }
    // A service message in a chat (someone joined): nothing to show.
    let body = json!({"type": "message_new", "group_id": 42, "event_id": "e2", "secret": HOOK_SECRET,
        "object": {"message": {"id": 0, "date": 1, "peer_id": 2000000001, "from_id": 5, "text": "",
        "conversation_message_id": 7, "action": {"type": "chat_invite_user", "member_id": 5}}}});
    let delivery = receive(42, serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(delivery, Delivery { reply: Reply::text("ok"), ..Delivery::default() });
}

#[test]
fn refuses_malformed_bodies() {
    let bodies: [&[u8]; 7] = [
        b"not json",
        b"",
        br#"["message_new", 42]"#,
        br#"{"group_id": 42, "secret": "x"}"#,
        br#"{"type": "message_new", "group_id": "42"}"#,
        br#"{"type": "message_new", "group_id": 42, "event_id": "e", "object": {"message": {"text": "x"}}}"#,
        br#"{"type": "message_new", "group_id": 42, "event_id": "e"}"#,
    ];
    for body in bodies {
        // The secret is checked before the message is read: add it where an envelope exists.
        let body = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut map)) => {
                map.insert("secret".into(), json!(HOOK_SECRET));
                serde_json::to_vec(&map).unwrap()
            }
            _ => body.to_vec(),
        };
        match receive(42, body.clone()) {
            Err(WebhookError::Malformed { provider: "vk", .. }) => {}
            other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(&body)),
        }
    }
}

#[test]
fn a_private_dialog_with_doc_sticker_geo_and_a_button_payload() {
    let body = json!({"type": "message_new", "group_id": 42, "secret": HOOK_SECRET, "object": {"message": {
        "id": 9001, "date": 1700000000, "peer_id": 612444319, "from_id": 612444319, "text": "Да",
        "conversation_message_id": 12, "payload": "{\"button\":\"Да\"}",
        "geo": {"type": "point", "coordinates": {"latitude": 55.75, "longitude": 37.6175}},
        "attachments": [
            {"type": "doc", "doc": {"id": 5, "owner_id": 612444319, "title": "invoice.pdf", "size": 1234,
                "ext": "pdf", "url": "https://vk.com/doc612444319_5"}},
            {"type": "sticker", "sticker": {"product_id": 1, "sticker_id": 77, "images": [
                {"url": "https://vk.com/s/64.png", "width": 64, "height": 64},
                {"url": "https://vk.com/s/512.png", "width": 512, "height": 512}]}},
            {"type": "video", "video": {"id": 3, "owner_id": -42, "title": "clip"}},
            {"type": "wall", "wall": {"id": 8, "owner_id": -42}},
            {"type": "photo", "photo": "unexpected shape"}
        ]}, "client_info": {}}});
    let delivery = receive(42, serde_json::to_vec(&body).unwrap()).unwrap();
    let message = &delivery.messages[0];
    // No event_id: the conversation's counter makes the key.
    assert_eq!(message.dedup_key, "612444319:12");
    assert_eq!(message.kind, InboundKind::ButtonReply);
    assert_eq!(message.provider_message_id.as_deref(), Some("9001"));
    assert_eq!(message.text.as_deref(), Some("Да"));
    let refs: Vec<(AttachmentKind, &str)> =
        message.attachments.iter().map(|a| (a.kind, a.file_ref.as_str())).collect();
    assert_eq!(
        refs,
        vec![
            (AttachmentKind::Document, "https://vk.com/doc612444319_5"),
            (AttachmentKind::Sticker, "https://vk.com/s/512.png"),
            (AttachmentKind::Video, "video-42_3"),
            (AttachmentKind::Other, "wall-42_8"),
            (AttachmentKind::Other, "photo"),
            (AttachmentKind::Location, "55.75,37.6175"),
        ]
    );
    assert_eq!(message.attachments[0].name.as_deref(), Some("invoice.pdf"));
    assert_eq!(message.attachments[0].size, Some(1234));
}

#[test]
fn random_id_is_a_stable_positive_int32_per_key() {
    let a = random_id("0190a6a0-0000-7000-8000-000000000001");
    assert_eq!(a, random_id("0190a6a0-0000-7000-8000-000000000001"));
    assert_ne!(a, random_id("0190a6a0-0000-7000-8000-000000000002"));
    for key in ["", "k", "another key", "0190a6a0-0000-7000-8000-000000000003"] {
        assert!(random_id(key) > 0, "{key}");
    }
}

#[test]
fn keyboards_are_inline_text_buttons_within_vks_limits() {
    assert_eq!(keyboard(&[]), None);
    let three: Vec<String> = ["Yes", "No", "Call me"].map(String::from).to_vec();
    let parsed: Value = serde_json::from_str(&keyboard(&three).unwrap()).unwrap();
    assert_eq!(
        parsed,
        json!({"inline": true, "buttons": [
            [{"action": {"type": "text", "label": "Yes", "payload": "{\"button\":\"Yes\"}"}}],
            [{"action": {"type": "text", "label": "No", "payload": "{\"button\":\"No\"}"}}],
            [{"action": {"type": "text", "label": "Call me", "payload": "{\"button\":\"Call me\"}"}}],
        ]})
    );
    let many: Vec<String> = (1..=12).map(|n| format!("Option {n}")).collect();
    let parsed: Value = serde_json::from_str(&keyboard(&many).unwrap()).unwrap();
    let rows = parsed["buttons"].as_array().unwrap();
    assert!(rows.len() <= INLINE_MAX_ROWS);
    assert_eq!(rows.iter().map(|r| r.as_array().unwrap().len()).sum::<usize>(), INLINE_MAX_BUTTONS);
    let long = vec!["д".repeat(200)];
    let parsed: Value = serde_json::from_str(&keyboard(&long).unwrap()).unwrap();
    let action = &parsed["buttons"][0][0]["action"];
    assert_eq!(action["label"].as_str().unwrap().chars().count(), LABEL_MAX_CHARS);
    assert!(action["payload"].as_str().unwrap().len() <= PAYLOAD_MAX_BYTES);
}

#[test]
fn reads_group_ids_in_every_usual_form() {
    let read = |value: Value| group_id_credential(json!({ "group_id": value }).as_object().unwrap());
    for good in [json!(123), json!("123"), json!(" club123 "), json!("public123"), json!("-123"), json!(-123)]
    {
        assert_eq!(read(good.clone()).ok(), Some(123), "{good}");
    }
    for bad in
        [json!(0), json!(1.5), json!("-0"), json!("abc"), json!("12a"), json!(""), json!(null), json!("--1")]
    {
        let error = read(bad.clone()).unwrap_err();
        assert!(matches!(&error, Error::Rule(r) if r.field == "credentials.group_id"), "{bad}: {error:?}");
    }
}

// --- client, against a fake VK API ---

fn token() -> Secret {
    Secret::new(TOKEN)
}

/// The form fields of a request (VK takes form-encoded parameters).
fn form(request: &Request) -> Map<String, Value> {
    let body = String::from_utf8_lossy(&request.body);
    let url = reqwest::Url::parse(&format!("http://form.invalid/?{body}")).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect()
}

/// Matches a form-encoded request having these fields (and maybe others).
struct FormHas(Vec<(&'static str, String)>);

impl wiremock::Match for FormHas {
    fn matches(&self, request: &Request) -> bool {
        let form = form(request);
        self.0.iter().all(|(k, v)| form.get(*k).and_then(Value::as_str) == Some(v.as_str()))
    }
}

fn answer(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

async fn respond(server: &MockServer, vk_method: &str, template: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(format!("/method/{vk_method}")))
        .and(FormHas(vec![("access_token", TOKEN.into()), ("v", API_VERSION.into())]))
        .respond_with(template)
        .mount(server)
        .await;
}

fn vk_error(code: i64, message: &str) -> ResponseTemplate {
    answer(json!({"error": {"error_code": code, "error_msg": message, "request_params": []}}))
}

fn assert_secret_hidden(error: &impl std::fmt::Debug, display: &str) {
    let debug = format!("{error:?}");
    for secret in [TOKEN, HOOK_SECRET, "693d0ba9"] {
        assert!(!display.contains(secret), "Display leaks a secret: {display}");
        assert!(!debug.contains(secret), "Debug leaks a secret: {debug}");
    }
}

fn credentials(group_id: Value) -> Map<String, Value> {
    json!({"access_token": TOKEN, "group_id": group_id}).as_object().unwrap().clone()
}

fn community(id: i64, can_message: i64) -> Value {
    json!({"response": {"groups": [{"id": id, "name": "Acme Support", "screen_name": "acme",
        "is_closed": 0, "type": "group", "can_message": can_message}], "profiles": []}})
}

#[tokio::test]
async fn connect_names_the_community_and_keeps_its_confirmation_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/method/groups.getById"))
        .and(FormHas(vec![("group_id", "214167102".into()), ("fields", "can_message".into())]))
        .respond_with(answer(community(214167102, 1)))
        .expect(1)
        .mount(&server)
        .await;
    respond(&server, "groups.getCallbackConfirmationCode", answer(json!({"response": {"code": "693d0ba9"}})))
        .await;
    let client = VkClient::new(reqwest::Client::new(), format!("{}/", server.uri()));
    let connection = client.connect(&credentials(json!("club214167102"))).await.unwrap();
    assert_eq!(connection.account, Account { id: "214167102".into(), name: "Acme Support".into() });
    assert_eq!(connection.secrets.get(ACCESS_TOKEN).map(Secret::expose), Some(TOKEN));
    assert_eq!(connection.secrets.get(GROUP_ID).map(Secret::expose), Some("214167102"));
    assert_eq!(connection.secrets.get(CONFIRMATION_CODE).map(Secret::expose), Some("693d0ba9"));
    assert_eq!(connection.masked.get(ACCESS_TOKEN).map(String::as_str), Some("****6789"));
    let shown = format!("{connection:?}");
    assert!(!shown.contains(TOKEN) && !shown.contains("693d0ba9"), "{shown}");
}

#[tokio::test]
async fn connect_accepts_the_pre_5_139_list_shape() {
    let server = MockServer::start().await;
    respond(&server, "groups.getById", answer(json!({"response": [{"id": 7, "name": "Old"}]}))).await;
    respond(&server, "groups.getCallbackConfirmationCode", answer(json!({"response": {"code": "c"}}))).await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    let connection = client.connect(&credentials(json!(7))).await.unwrap();
    assert_eq!(connection.account.name, "Old");
}

async fn connect_error_for(get_by_id: ResponseTemplate, code: ResponseTemplate) -> Error {
    let server = MockServer::start().await;
    respond(&server, "groups.getById", get_by_id).await;
    respond(&server, "groups.getCallbackConfirmationCode", code).await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    client.connect(&credentials(json!(214167102))).await.unwrap_err()
}

fn rule(error: &Error) -> (&'static str, &str) {
    match error {
        Error::Rule(r) => (r.code, r.field.as_str()),
        other => panic!("expected a rule violation, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_refusals_name_the_credential_at_fault() {
    let ok_code = || answer(json!({"response": {"code": "693d0ba9"}}));
    let refused =
        connect_error_for(vk_error(5, "User authorization failed: invalid access_token (4)."), ok_code())
            .await;
    assert_eq!(rule(&refused), ("invalid_access_token", "credentials.access_token"));
    assert!(refused.to_string().contains("ВКонтакте не принял ключ доступа"), "{refused}");
    assert_secret_hidden(&refused, &refused.to_string());

    let off = connect_error_for(answer(community(214167102, 0)), ok_code()).await;
    assert_eq!(rule(&off), ("messages_disabled", "credentials.group_id"));
    assert!(off.to_string().contains("switched off"), "{off}");

    let other = connect_error_for(answer(community(1, 1)), ok_code()).await;
    assert_eq!(rule(&other), ("community_not_found", "credentials.group_id"));

    let unknown =
        connect_error_for(vk_error(100, "One of the parameters specified was missing"), ok_code()).await;
    assert_eq!(rule(&unknown), ("community_not_found", "credentials.group_id"));

    // A key of another community (or without the manage right) cannot read this one's code.
    let foreign =
        connect_error_for(answer(community(214167102, 1)), vk_error(27, "Group authorization failed")).await;
    assert_eq!(rule(&foreign), ("insufficient_rights", "credentials.access_token"));

    let no_token = VkClient::new(reqwest::Client::new(), "http://unused.invalid")
        .connect(json!({"access_token": "short", "group_id": 1}).as_object().unwrap())
        .await
        .unwrap_err();
    assert_eq!(rule(&no_token), ("invalid_access_token", "credentials.access_token"));
}

#[tokio::test]
async fn register_webhook_adds_a_server_with_our_secret_and_subscribes_it_to_messages() {
    let server = MockServer::start().await;
    let url = "https://omnichat.example.test/webhooks/vk/0190a6a0-0000-7000-8000-000000000001";
    // A leftover of a failed attempt with the same URL goes first.
    respond(
        &server,
        "groups.getCallbackServers",
        answer(json!({"response": {"count": 2, "items": [
            {"id": 3, "title": "other", "url": "https://elsewhere.example/cb", "secret_key": "x", "status": "ok"},
            {"id": 4, "title": "omnichat", "url": url, "secret_key": "old", "status": "failed"}]}})),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/method/groups.deleteCallbackServer"))
        .and(FormHas(vec![("group_id", "42".into()), ("server_id", "4".into())]))
        .respond_with(answer(json!({"response": 1})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/method/groups.addCallbackServer"))
        .and(FormHas(vec![
            ("group_id", "42".into()),
            ("url", url.into()),
            ("title", "omnichat".into()),
            ("secret_key", HOOK_SECRET.into()),
            ("access_token", TOKEN.into()),
            ("v", "5.199".into()),
        ]))
        .respond_with(answer(json!({"response": {"server_id": 5}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/method/groups.setCallbackSettings"))
        .and(FormHas(vec![
            ("group_id", "42".into()),
            ("server_id", "5".into()),
            ("api_version", "5.199".into()),
            ("message_new", "1".into()),
        ]))
        .respond_with(answer(json!({"response": 1})))
        .expect(1)
        .mount(&server)
        .await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    client.register_webhook(&secrets(42), url).await.unwrap();
}

#[tokio::test]
async fn register_webhook_explains_the_server_limit() {
    let server = MockServer::start().await;
    respond(&server, "groups.getCallbackServers", answer(json!({"response": {"count": 0, "items": []}})))
        .await;
    respond(&server, "groups.addCallbackServer", vk_error(2000, "Servers number limit is reached")).await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    let error = client.register_webhook(&secrets(42), "https://x.example/cb").await.unwrap_err();
    assert_eq!(rule(&error), ("callback_servers_limit", "credentials.group_id"));
}

#[tokio::test]
async fn remove_webhook_deletes_only_the_server_with_our_secret() {
    let server = MockServer::start().await;
    respond(
        &server,
        "groups.getCallbackServers",
        answer(json!({"response": {"count": 2, "items": [
            {"id": 3, "title": "other", "url": "https://elsewhere.example/cb", "secret_key": "theirs"},
            {"id": 9, "title": "omnichat", "url": "https://o.example/webhooks/vk/x", "secret_key": HOOK_SECRET}]}})),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/method/groups.deleteCallbackServer"))
        .and(FormHas(vec![("group_id", "42".into()), ("server_id", "9".into())]))
        .respond_with(answer(json!({"response": 1})))
        .expect(1)
        .mount(&server)
        .await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    client.remove_webhook(&secrets(42)).await.unwrap();
}

fn outgoing(buttons: &[&str]) -> Outgoing {
    Outgoing {
        attachments: Vec::new(),
        customer_id: "2000000066".into(),
        text: "Здравствуйте! Чем помочь?".into(),
        buttons: buttons.iter().map(|b| b.to_string()).collect(),
        idempotency_key: "0190a6a0-0000-7000-8000-0000000000aa".into(),
        thread: None,
        automatic: false,
        template: None,
    }
}

#[tokio::test]
async fn send_posts_peer_text_random_id_and_keyboard() {
    let server = MockServer::start().await;
    let out = outgoing(&["Да", "Нет"]);
    Mock::given(method("POST"))
        .and(path("/method/messages.send"))
        .and(FormHas(vec![
            ("peer_id", "2000000066".into()),
            ("message", "Здравствуйте! Чем помочь?".into()),
            ("random_id", random_id(&out.idempotency_key).to_string()),
            ("access_token", TOKEN.into()),
            ("v", "5.199".into()),
        ]))
        .respond_with(answer(json!({"response": 4711})))
        .expect(1)
        .mount(&server)
        .await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    let sent = client.send(&secrets(42), &out).await.unwrap();
    assert_eq!(sent, Sent { provider_message_id: Some("4711".into()) });
    let requests = server.received_requests().await.unwrap();
    let keyboard: Value = serde_json::from_str(form(&requests[0])["keyboard"].as_str().unwrap()).unwrap();
    assert_eq!(
        keyboard,
        json!({"inline": true, "buttons": [
            [{"action": {"type": "text", "label": "Да", "payload": "{\"button\":\"Да\"}"}}],
            [{"action": {"type": "text", "label": "Нет", "payload": "{\"button\":\"Нет\"}"}}],
        ]})
    );
    // Without buttons, no keyboard.
    server.reset().await;
    respond(&server, "messages.send", answer(json!({"response": 4712}))).await;
    client.send(&secrets(42), &outgoing(&[])).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert!(!form(&requests[0]).contains_key("keyboard"));
}

#[tokio::test]
async fn errors_in_a_200_are_mapped_in_one_place() {
    let cases = [
        (6, ProviderError::RateLimited { retry_after: Duration::from_secs(1) }),
        (9, ProviderError::RateLimited { retry_after: FLOOD_CONTROL_RETRY }),
        (5, ProviderError::InvalidCredentials(INVALID_TOKEN.into())),
        (10, ProviderError::Unavailable("VK error 10: boom".into())),
        (901, ProviderError::Rejected("VK error 901: boom".into())),
    ];
    for (code, expected) in cases {
        let server = MockServer::start().await;
        respond(&server, "messages.send", vk_error(code, "boom")).await;
        let client = VkClient::new(reqwest::Client::new(), server.uri());
        let error = client.send(&secrets(42), &outgoing(&[])).await.unwrap_err();
        assert_eq!(error, expected, "code {code}");
        assert_secret_hidden(&error, &error.to_string());
    }
}

#[tokio::test]
async fn http_throttling_server_errors_and_time_outs() {
    let server = MockServer::start().await;
    respond(&server, "messages.send", ResponseTemplate::new(429).insert_header("Retry-After", "7")).await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    let error = client.send(&secrets(42), &outgoing(&[])).await.unwrap_err();
    assert_eq!(error, ProviderError::RateLimited { retry_after: Duration::from_secs(7) });

    let server = MockServer::start().await;
    respond(&server, "messages.send", ResponseTemplate::new(502).set_body_string("<html>")).await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    let error = client.send(&secrets(42), &outgoing(&[])).await.unwrap_err();
    assert_eq!(error, ProviderError::Unavailable("HTTP 502".into()));
    assert!(error.is_retryable());

    let server = MockServer::start().await;
    respond(&server, "messages.send", answer(json!({"response": 1})).set_delay(Duration::from_secs(2))).await;
    let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
    let error = VkClient::new(http, server.uri()).send(&secrets(42), &outgoing(&[])).await.unwrap_err();
    assert_eq!(error, ProviderError::Unavailable("timed out".into()));
    assert_secret_hidden(&error, &error.to_string());

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = VkClient::new(reqwest::Client::new(), format!("http://127.0.0.1:{port}"));
    let error = client.send(&secrets(42), &outgoing(&[])).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert_secret_hidden(&error, &error.to_string());
}

#[test]
fn interpret_redacts_and_reads_unexpected_answers() {
    let t = token();
    let ok = |body: &str| interpret::<Value>(StatusCode::OK, body.as_bytes(), None, &t);
    assert_eq!(ok(r#"{"response": 1}"#), Ok(json!(1)));
    let echoed = format!(r#"{{"error": {{"error_code": 100, "error_msg": "bad {TOKEN}"}}}}"#);
    let failure = ok(&echoed).unwrap_err();
    assert_eq!(failure.code, Some(100));
    assert_eq!(failure.error, ProviderError::Rejected("VK error 100: bad ****".into()));
    assert_eq!(
        ok("garbage").unwrap_err().error,
        ProviderError::Unavailable("unreadable answer from VK".into())
    );
    assert_eq!(ok("{}").unwrap_err().code, None);
    let not_found = interpret::<Value>(StatusCode::NOT_FOUND, b"", None, &t).unwrap_err();
    assert_eq!(not_found.error, ProviderError::Rejected("HTTP 404".into()));
}

#[test]
fn sends_are_idempotent_through_random_id() {
    assert!(client().idempotent_sends());
}

#[test]
fn the_community_key_is_read_from_either_answer_shape() {
    let flat = json!({"access_token_42": "key42", "expires_in": 0});
    assert_eq!(
        community_token(flat.as_object().unwrap(), 42).map(|k| k.expose().to_owned()),
        Some("key42".into())
    );
    assert!(community_token(flat.as_object().unwrap(), 7).is_none());
    let listed = json!({"groups": [{"group_id": 7, "access_token": "key7"}]});
    assert_eq!(
        community_token(listed.as_object().unwrap(), 7).map(|k| k.expose().to_owned()),
        Some("key7".into())
    );
    assert!(community_token(listed.as_object().unwrap(), 42).is_none());
}

#[test]
fn base_url_loses_its_trailing_slash() {
    assert_eq!(VkClient::new(reqwest::Client::new(), "http://localhost:9000/").base, "http://localhost:9000");
}

// --- media ---

/// Whether `needle` occurs in `haystack` (a multipart body holds the file's bytes as they are).
fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The link of an attachment moved onto the fake: same path, the fake's scheme and host.
fn on_fake(server: &MockServer, link: &str) -> String {
    let url = reqwest::Url::parse(link).unwrap();
    format!("{}{}", server.uri(), url.path())
}

async fn fetched_from_fake(
    attachment: &Attachment,
    bytes: &[u8],
    served_as: &str,
) -> (Option<String>, Vec<u8>) {
    let server = MockServer::start().await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    assert!(client.fetchable(attachment), "{attachment:?}");
    let link = reqwest::Url::parse(&attachment.file_ref).unwrap();
    Mock::given(method("GET"))
        .and(path(link.path()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), served_as))
        .expect(1)
        .mount(&server)
        .await;
    let moved = Attachment { file_ref: on_fake(&server, &attachment.file_ref), ..attachment.clone() };
    let mut sink = MediaSink::new(1024 * 1024).await.unwrap();
    let declared = client.fetch_media(&secrets(42), &moved, &mut sink).await.unwrap();
    (declared, std::fs::read(sink.path()).unwrap())
}

#[tokio::test]
async fn the_photo_and_the_voice_message_of_the_fixtures_are_fetched_from_their_links() {
    let photo = receive(183287114, longpoll_as_callback("vk_message_new_photo_longpoll.json", HOOK_SECRET))
        .unwrap()
        .messages
        .remove(0)
        .attachments
        .remove(0);
    let jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF the largest size";
    let (declared, bytes) = fetched_from_fake(&photo, jpeg, "image/jpeg").await;
    assert_eq!((declared.as_deref(), bytes.as_slice()), (Some("image/jpeg"), jpeg.as_slice()));

    let voice = receive(183287114, longpoll_as_callback("vk_message_new_voice_longpoll.json", HOOK_SECRET))
        .unwrap()
        .messages
        .remove(0)
        .attachments
        .remove(0);
    let ogg = b"OggS\x00\x02 a voice message";
    let (declared, bytes) = fetched_from_fake(&voice, ogg, "application/octet-stream").await;
    // The event's type (the ogg link), not the server's octet-stream.
    assert_eq!((declared.as_deref(), bytes.as_slice()), (Some("audio/ogg"), ogg.as_slice()));
}

#[test]
fn references_without_a_link_are_not_fetchable() {
    let attachment = |kind, file_ref: &str| Attachment {
        kind,
        file_ref: file_ref.into(),
        mime: None,
        size: None,
        name: None,
    };
    assert!(!client().fetchable(&attachment(AttachmentKind::Document, "doc-1_2")));
    assert!(!client().fetchable(&attachment(AttachmentKind::Sticker, "sticker9")));
    assert!(!client().fetchable(&attachment(AttachmentKind::Location, "https://maps.example/1")));
}

#[test]
fn media_limits_are_vks_photo_and_document_limits() {
    assert!(client().sends_media_from_file());
    assert_eq!(client().media_limit(AttachmentKind::Image), Some(50 * 1024 * 1024));
    for kind in
        [AttachmentKind::Document, AttachmentKind::Video, AttachmentKind::Audio, AttachmentKind::Voice]
    {
        assert_eq!(client().media_limit(kind), Some(200 * 1024 * 1024), "{kind:?}");
    }
    for kind in
        [AttachmentKind::Sticker, AttachmentKind::Location, AttachmentKind::Contact, AttachmentKind::Other]
    {
        assert_eq!(client().media_limit(kind), None, "{kind:?}");
    }
}

fn outgoing_file(
    dir: &tempfile::TempDir,
    kind: AttachmentKind,
    mime: &str,
    name: &str,
    bytes: &[u8],
) -> OutgoingMedia {
    crate::test_support::file_in(dir.path(), kind, mime, name, bytes)
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR a tiny picture";
const PDF: &[u8] = b"%PDF-1.7 the invoice";

async fn upload_servers(server: &MockServer) {
    let upload_url = |kind: &str| format!("{}/upload/{kind}?act=do_add&hash=abc", server.uri());
    Mock::given(method("POST"))
        .and(path("/method/photos.getMessagesUploadServer"))
        .and(FormHas(vec![("peer_id", "2000000066".into()), ("access_token", TOKEN.into())]))
        .respond_with(answer(
            json!({"response": {"upload_url": upload_url("photo"), "album_id": -64, "group_id": 42}}),
        ))
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/method/docs.getMessagesUploadServer"))
        .and(FormHas(vec![("peer_id", "2000000066".into()), ("type", "doc".into())]))
        .respond_with(answer(json!({"response": {"upload_url": upload_url("doc")}})))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_photo_and_a_document_are_uploaded_saved_and_attached_to_one_message() {
    let server = MockServer::start().await;
    upload_servers(&server).await;
    Mock::given(method("POST"))
        .and(path("/upload/photo"))
        .respond_with(answer(
            json!({"server": 625831, "photo": "[{\"photo\":\"8d81799f90:w\"}]", "hash": "8954a4da5ba06d4e"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/method/photos.saveMessagesPhoto"))
        .and(FormHas(vec![
            ("photo", "[{\"photo\":\"8d81799f90:w\"}]".into()),
            ("server", "625831".into()),
            ("hash", "8954a4da5ba06d4e".into()),
        ]))
        .respond_with(answer(json!({"response": [{"id": 457239017, "owner_id": -42, "access_key": "ak1"}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload/doc"))
        .respond_with(answer(json!({"file": "743784474|0|0|240331|e24cd4aa3c|pdf|14854|invoice.pdf"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/method/docs.save"))
        .and(FormHas(vec![
            ("file", "743784474|0|0|240331|e24cd4aa3c|pdf|14854|invoice.pdf".into()),
            ("title", "invoice.pdf".into()),
        ]))
        .respond_with(answer(
            json!({"response": {"type": "doc", "doc": {"id": 5, "owner_id": -42, "title": "invoice.pdf"}}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut out = outgoing(&[]);
    out.attachments = vec![
        outgoing_file(&dir, AttachmentKind::Image, "image/png", "look.png", PNG),
        outgoing_file(&dir, AttachmentKind::Document, "application/pdf", "invoice.pdf", PDF),
    ];
    Mock::given(method("POST"))
        .and(path("/method/messages.send"))
        .and(FormHas(vec![
            ("peer_id", "2000000066".into()),
            ("message", "Здравствуйте! Чем помочь?".into()),
            ("attachment", "photo-42_457239017_ak1,doc-42_5".into()),
            ("random_id", random_id(&out.idempotency_key).to_string()),
        ]))
        .respond_with(answer(json!({"response": 4713})))
        .expect(1)
        .mount(&server)
        .await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    let sent = client.send(&secrets(42), &out).await.unwrap();
    assert_eq!(sent, Sent { provider_message_id: Some("4713".into()) });
    let requests = server.received_requests().await.unwrap();
    let upload = |kind: &str| requests.iter().find(|r| r.url.path() == format!("/upload/{kind}")).unwrap();
    assert!(
        holds(&upload("photo").body, PNG)
            && holds(&upload("photo").body, b"name=\"photo\"; filename=\"look.png\"")
    );
    assert!(
        holds(&upload("doc").body, PDF)
            && holds(&upload("doc").body, b"name=\"file\"; filename=\"invoice.pdf\"")
    );
    // The key never goes to the upload server.
    assert!(!holds(&upload("photo").body, TOKEN.as_bytes()));
}

#[tokio::test]
async fn files_only_go_with_an_empty_message_and_a_refused_upload_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/method/docs.getMessagesUploadServer"))
        .respond_with(answer(json!({"response": {"upload_url": format!("{}/upload/doc", server.uri())}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload/doc"))
        .respond_with(answer(json!({"error": "ERR_UPLOAD_BAD_FILE_TYPE: mp3 not allowed"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/method/messages.send"))
        .respond_with(answer(json!({"response": 1})))
        .expect(0)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut out = outgoing(&[]);
    out.text = String::new();
    out.attachments =
        vec![outgoing_file(&dir, AttachmentKind::Audio, "audio/mpeg", "song.mp3", b"ID3 a song")];
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    let error = client.send(&secrets(42), &out).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected(reason) if reason.contains("mp3 not allowed")),
        "{error:?}"
    );
    assert_secret_hidden(&error, &error.to_string());

    // More than VK attaches to one message: refused before any upload.
    out.attachments = (0..11)
        .map(|i| outgoing_file(&dir, AttachmentKind::Document, "application/pdf", &format!("{i}.pdf"), PDF))
        .collect();
    let error = client.send(&secrets(42), &out).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected(reason) if reason.contains("at most 10")), "{error:?}");
}

#[tokio::test]
async fn names_a_user_with_users_get_and_no_group_chat_or_community() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/method/users.get"))
        .and(FormHas(vec![("user_ids", "123456".into()), ("access_token", TOKEN.into()), ("v", "5.199".into())]))
        .respond_with(answer(json!({"response": [
            {"id": 123456, "first_name": "Иван", "last_name": "Петров", "can_access_closed": true, "is_closed": false}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/method/users.get"))
        .and(FormHas(vec![("user_ids", "777".into())]))
        .respond_with(answer(json!({"response": [
            {"id": 777, "first_name": "DELETED", "last_name": "", "deactivated": "deleted"}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    assert!(client.looks_up_names());
    assert_eq!(client.customer_name(&secrets(42), "123456").await.unwrap().as_deref(), Some("Иван Петров"));
    assert_eq!(client.customer_name(&secrets(42), "777").await.unwrap(), None);
    // A group chat, a community, no id at all: nothing to ask (only the two calls above were made).
    for peer in ["2000000066", "-42", "0", "abc"] {
        assert_eq!(client.customer_name(&secrets(42), peer).await.unwrap(), None, "{peer}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_name_look_up_is_the_providers_error() {
    let server = MockServer::start().await;
    respond(&server, "users.get", vk_error(5, "User authorization failed: invalid access_token (4).")).await;
    let client = VkClient::new(reqwest::Client::new(), server.uri());
    let error = client.customer_name(&secrets(42), "123456").await.unwrap_err();
    assert!(matches!(error, ProviderError::InvalidCredentials(_)), "{error:?}");
}
