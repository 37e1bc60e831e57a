//! Unit tests of the Telegram module: updates normalized from the fixtures, the secret header and token
//! shapes, and the Bot API client against a local fake (wiremock).

use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;

use super::client::{DEFAULT_RETRY_AFTER, Purpose, interpret, truncate_bytes};
use super::*;
use crate::domain::{Attachment, AttachmentKind, Customer, InboundMessage};
use crate::ports::media::MediaSink;
use crate::providers::{FetchError, OutgoingMedia};
use crate::test_support::fixture;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "123456:AAE-secretTokenValue_xyz";

fn parsed(body: &[u8]) -> InboundMessage {
    parse_update(body).unwrap().expect("a message")
}

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp::from_second(seconds).unwrap())
}

fn test_customer() -> Customer {
    Customer {
        id: "1111111".into(),
        name: Some("Test Firstname Test Lastname".into()),
        handle: Some("Testusername".into()),
    }
}

fn assert_malformed(body: &[u8]) {
    match parse_update(body) {
        Err(WebhookError::Malformed { provider: "telegram", .. }) => {}
        other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(body)),
    }
}

#[test]
fn parses_text_fixture() {
    let body = fixture("telegram_text.json");
    let m = parsed(&body);
    assert_eq!(m.kind, InboundKind::Message);
    assert_eq!(m.customer, test_customer());
    assert_eq!(m.provider_message_id.as_deref(), Some("1365"));
    assert_eq!(m.text.as_deref(), Some("/start"));
    assert!(m.attachments.is_empty());
    assert_eq!(m.sent_at, ts(1441645532));
    assert!(m.dedup_key.starts_with("10000:"));
    assert_eq!(m.dedup_key.len(), "10000:".len() + 16);
}

#[test]
fn parses_edited_message_fixture() {
    let m = parsed(&fixture("telegram_edited_message.json"));
    assert_eq!(m.kind, InboundKind::Edit);
    assert_eq!(m.customer, test_customer());
    assert_eq!(m.provider_message_id.as_deref(), Some("1365"));
    assert_eq!(m.text.as_deref(), Some("Edited text"));
    assert!(m.attachments.is_empty());
    assert_eq!(m.sent_at, ts(1441646600));
}

#[test]
fn parses_document_fixture() {
    let m = parsed(&fixture("telegram_document.json"));
    assert_eq!(m.kind, InboundKind::Message);
    assert_eq!(m.customer, test_customer());
    assert_eq!(m.provider_message_id.as_deref(), Some("1365"));
    assert_eq!(m.text, None);
    assert_eq!(
        m.attachments,
        vec![Attachment {
            kind: AttachmentKind::Document,
            file_ref: "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX".into(),
            mime: Some("application/pdf".into()),
            size: Some(536392),
            name: Some("Testfile.pdf".into()),
        }]
    );
    assert_eq!(m.sent_at, ts(1441645532));
}

#[test]
fn parses_callback_query_fixture() {
    let m = parsed(&fixture("telegram_callback_query.json"));
    assert_eq!(m.kind, InboundKind::ButtonReply);
    // No `message` (inline-mode button): the reply goes to the presser's private chat.
    assert_eq!(m.customer, test_customer());
    assert_eq!(m.provider_message_id.as_deref(), Some("4382bfdwdsb323b2d9"));
    assert_eq!(m.text.as_deref(), Some("Data from button callback"));
    assert!(m.attachments.is_empty());
    assert_eq!(m.sent_at, None);
}

#[test]
fn callback_query_replies_to_the_chat_of_the_message() {
    let body = br#"{"update_id":5,"callback_query":{"id":"77","from":{"id":42,"first_name":"Ann"},
        "message":{"message_id":9,"date":1700000000,"chat":{"id":-1001234567890123,"type":"supergroup","title":"Shop"}},
        "data":"yes"}}"#;
    let m = parsed(body);
    assert_eq!(
        m.customer,
        Customer { id: "-1001234567890123".into(), name: Some("Ann".into()), handle: None }
    );
    assert_eq!(m.text.as_deref(), Some("yes"));
}

#[test]
fn photo_in_a_supergroup_with_a_big_update_id() {
    let body = br#"{"update_id":9007199254740993,"message":{"message_id":77,"date":1700000000,
        "chat":{"id":-1001234567890123,"type":"supergroup","title":"Support"},
        "from":{"id":5,"is_bot":false,"first_name":"","username":"jdoe"},
        "photo":[{"file_id":"small","file_unique_id":"s","width":90,"height":90,"file_size":1000},
                 {"file_id":"large","file_unique_id":"l","width":1280,"height":960,"file_size":98765}],
        "caption":"look"}}"#;
    let m = parsed(body);
    assert!(m.dedup_key.starts_with("9007199254740993:"));
    assert_eq!(
        m.customer,
        Customer { id: "-1001234567890123".into(), name: Some("jdoe".into()), handle: None }
    );
    assert_eq!(m.text.as_deref(), Some("look"));
    assert_eq!(
        m.attachments,
        vec![Attachment {
            kind: AttachmentKind::Image,
            file_ref: "large".into(),
            mime: Some("image/jpeg".into()),
            size: Some(98765),
            name: None,
        }]
    );
    assert_eq!(m.sent_at, ts(1700000000));
}

#[test]
fn location_contact_voice_and_sticker() {
    let cases: [(&[u8], Attachment); 4] = [
        (
            br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"location":{"latitude":55.75,"longitude":37.6175}}}"#,
            Attachment {
                kind: AttachmentKind::Location,
                file_ref: "55.75,37.6175".into(),
                mime: None,
                size: None,
                name: None,
            },
        ),
        (
            br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"contact":{"phone_number":"+79001234567","first_name":"Ivan"}}}"#,
            Attachment {
                kind: AttachmentKind::Contact,
                file_ref: "+79001234567".into(),
                mime: None,
                size: None,
                name: Some("Ivan".into()),
            },
        ),
        (
            br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"voice":{"file_id":"v1","file_unique_id":"u","duration":3,"mime_type":"audio/ogg","file_size":4000}}}"#,
            Attachment {
                kind: AttachmentKind::Voice,
                file_ref: "v1".into(),
                mime: Some("audio/ogg".into()),
                size: Some(4000),
                name: None,
            },
        ),
        (
            br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"sticker":{"file_id":"st","file_unique_id":"u","width":512,"height":512,"is_animated":false,"is_video":false,"type":"regular"}}}"#,
            Attachment {
                kind: AttachmentKind::Sticker,
                file_ref: "st".into(),
                mime: None,
                size: None,
                name: None,
            },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parsed(body).attachments, vec![expected]);
    }
}

#[test]
fn ignores_other_update_types_and_service_messages() {
    let ignored: [&[u8]; 4] = [
        br#"{"update_id":1,"channel_post":{"message_id":1,"date":1,"chat":{"id":-100123,"type":"channel"},"text":"hi"}}"#,
        br#"{"update_id":2,"my_chat_member":{"chat":{"id":1},"from":{"id":1},"date":1}}"#,
        br#"{"update_id":3,"poll":{"id":"p","question":"?","options":[]}}"#,
        br#"{"update_id":4,"message":{"message_id":1,"date":1,"chat":{"id":-100123},"new_chat_members":[{"id":9,"first_name":"X"}]}}"#,
    ];
    for body in ignored {
        assert_eq!(parse_update(body), Ok(None), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn refuses_malformed_bodies() {
    assert_malformed(b"not json");
    assert_malformed(b"");
    assert_malformed(b"[10000, null, null, null]");
    assert_malformed(br#"{"message":{"message_id":1,"date":1,"chat":{"id":1},"text":"x"}}"#);
    assert_malformed(
        br#"{"update_id":"10000","message":{"message_id":1,"date":1,"chat":{"id":1},"text":"x"}}"#,
    );
    assert_malformed(br#"{"update_id":1.5}"#);
    assert_malformed(
        br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":"abc"},"text":"x"}}"#,
    );
}

#[test]
fn a_retry_has_the_same_key_and_different_updates_do_not() {
    let original = fixture("telegram_text.json");
    let value: Value = serde_json::from_slice(&original).unwrap();
    let compact = serde_json::to_vec(&value).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    let reordered = br#"{"message":{"text":"/start","message_id":1365,"from":{"username":"Testusername","first_name":"Test Firstname","id":1111111,"last_name":"Test Lastname"},"date":1441645532,"chat":{"username":"Testusername","first_name":"Test Firstname","type":"private","id":1111111,"last_name":"Test Lastname"}},"update_id":10000}"#;
    let key = parsed(&original).dedup_key;
    assert_eq!(parsed(&compact).dedup_key, key);
    assert_eq!(parsed(&pretty).dedup_key, key);
    assert_eq!(parsed(reordered).dedup_key, key);

    let mut keys: Vec<String> = [
        "telegram_text.json",
        "telegram_edited_message.json",
        "telegram_document.json",
        "telegram_callback_query.json",
    ]
    .iter()
    .map(|name| parsed(&fixture(name)).dedup_key)
    .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

#[test]
fn verifies_the_secret_header() {
    let secret = Secret::new("s3cr3t-Token_1");
    assert_eq!(verify(Some("s3cr3t-Token_1"), &secret), Ok(()));
    assert_eq!(verify(Some("s3cr3t-Token_2"), &secret), Err(WebhookError::Unauthorized));
    assert_eq!(verify(Some(""), &secret), Err(WebhookError::Unauthorized));
    assert_eq!(verify(None, &secret), Err(WebhookError::Unauthorized));
    assert_eq!(verify(Some(""), &Secret::new("")), Err(WebhookError::Unauthorized));
}

#[test]
fn recognizes_token_shapes() {
    assert!(is_plausible_token("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));
    assert!(is_plausible_token(TOKEN));
    for bad in [
        "",
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        ":AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "12a:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "123456789:short",
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5/../x",
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5?x=1",
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL saw",
    ] {
        assert!(!is_plausible_token(bad), "{bad}");
    }
}

#[test]
fn answers_a_callback_in_the_webhook_reply() {
    let reply: Value = serde_json::from_str(&answer_callback_in_reply("4382\"bfd")).unwrap();
    assert_eq!(reply, json!({"method": "answerCallbackQuery", "callback_query_id": "4382\"bfd"}));
}

#[test]
fn truncates_callback_data_on_a_char_boundary() {
    let cyrillic = "д".repeat(40); // 80 bytes
    let cut = truncate_bytes(&cyrillic, 64);
    assert_eq!(cut.len(), 64);
    let odd = format!("a{cyrillic}"); // 81 bytes: byte 64 falls inside a character
    assert_eq!(truncate_bytes(&odd, 64).len(), 63);
    assert_eq!(truncate_bytes("short", 64), "short");
}

// --- client, against a fake Bot API ---

fn token() -> Secret {
    Secret::new(TOKEN)
}

fn api_path(method: &str) -> String {
    format!("/bot{TOKEN}/{method}")
}

async fn client_for(server: &MockServer) -> TelegramClient {
    TelegramClient::new(reqwest::Client::new(), format!("{}/", server.uri()))
}

fn assert_token_hidden(error: &ProviderError) {
    assert!(!format!("{error}").contains(TOKEN), "Display leaks the token: {error}");
    assert!(!format!("{error:?}").contains(TOKEN), "Debug leaks the token: {error:?}");
    assert!(!format!("{error}").contains("secretTokenValue"));
}

async fn respond(server: &MockServer, api_method: &str, template: ResponseTemplate) {
    Mock::given(method("POST")).and(path(api_path(api_method))).respond_with(template).mount(server).await;
}

#[tokio::test]
async fn get_me_names_the_bot() {
    let server = MockServer::start().await;
    let body = json!({
        "ok": true,
        "result": {"id": 987654321, "is_bot": true, "first_name": "Shop", "username": "shop_bot"},
    });
    respond(&server, "getMe", ResponseTemplate::new(200).set_body_json(body)).await;
    let bot = client_for(&server).await.get_me(&token()).await.unwrap();
    assert_eq!(bot, BotAccount { id: 987654321, username: "shop_bot".into(), first_name: "Shop".into() });
}

#[tokio::test]
async fn get_me_with_a_bad_token_is_invalid_credentials() {
    for (status, body) in [
        (401, json!({"ok":false,"error_code":401,"description":"Unauthorized"})),
        (404, json!({"ok":false,"error_code":404,"description":"Not Found"})),
    ] {
        let server = MockServer::start().await;
        respond(&server, "getMe", ResponseTemplate::new(status).set_body_json(body)).await;
        let error = client_for(&server).await.get_me(&token()).await.unwrap_err();
        assert_eq!(error, ProviderError::InvalidCredentials("Bot not found / Бот не найден".into()));
        assert_token_hidden(&error);
    }
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let server = MockServer::start().await;
    let body = json!({
        "ok": false,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    });
    respond(&server, "sendMessage", ResponseTemplate::new(429).set_body_json(body)).await;
    let out = Outgoing {
        attachments: Vec::new(),
        customer_id: "1".into(),
        text: "hi".into(),
        buttons: vec![],
        idempotency_key: "k".into(),
        thread: None,
        automatic: false,
        template: None,
    };
    let error = client_for(&server).await.send_message(&token(), &out).await.unwrap_err();
    assert_eq!(error, ProviderError::RateLimited { retry_after: Duration::from_secs(7) });
    assert!(error.is_retryable());
    assert_token_hidden(&error);
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let server = MockServer::start().await;
    respond(&server, "getMe", ResponseTemplate::new(500).set_body_string("oops")).await;
    let error = client_for(&server).await.get_me(&token()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert_token_hidden(&error);
}

#[tokio::test]
async fn a_time_out_is_unavailable() {
    let server = MockServer::start().await;
    let body = json!({"ok":true,"result":{"id":1,"is_bot":true,"first_name":"Slow","username":"slow_bot"}});
    respond(
        &server,
        "getMe",
        ResponseTemplate::new(200).set_body_json(body).set_delay(Duration::from_secs(2)),
    )
    .await;
    let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
    let client = TelegramClient::new(http, server.uri());
    let error = client.get_me(&token()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert_token_hidden(&error);
}

#[tokio::test]
async fn a_connection_failure_does_not_leak_the_token() {
    // A port that was free a moment ago: nothing listens there, so the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = TelegramClient::new(reqwest::Client::new(), format!("http://127.0.0.1:{port}"));
    let error = client.get_me(&token()).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert_token_hidden(&error);
}

#[tokio::test]
async fn send_message_sends_chat_id_text_and_inline_keyboard() {
    let server = MockServer::start().await;
    let long = "x".repeat(70);
    let expected = json!({
        "chat_id": -1001234567890123_i64,
        "text": "Pick one",
        "reply_markup": {"inline_keyboard": [
            [{"text": "Yes", "callback_data": "Yes"}],
            [{"text": long, "callback_data": "x".repeat(64)}],
        ]},
    });
    Mock::given(method("POST"))
        .and(path(api_path("sendMessage")))
        .and(body_partial_json(expected))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": {
                "message_id": 4242,
                "date": 1700000000,
                "chat": {"id": -1001234567890123_i64, "type": "supergroup"},
                "text": "Pick one",
            },
        })))
        .expect(1)
        .mount(&server)
        .await;
    let out = Outgoing {
        attachments: Vec::new(),
        customer_id: "-1001234567890123".into(),
        text: "Pick one".into(),
        buttons: vec!["Yes".into(), long.clone()],
        idempotency_key: "k".into(),
        thread: None,
        automatic: false,
        template: None,
    };
    let sent = client_for(&server).await.send_message(&token(), &out).await.unwrap();
    assert_eq!(sent, Sent { provider_message_id: Some("4242".into()) });
}

#[tokio::test]
async fn send_message_refusals_are_rejected_without_the_token() {
    let server = MockServer::start().await;
    // A description that echoes the token must not carry it into our errors.
    let body = json!({
        "ok": false,
        "error_code": 403,
        "description": format!("Forbidden: bot{TOKEN} was blocked by the user"),
    });
    respond(&server, "sendMessage", ResponseTemplate::new(403).set_body_json(body)).await;
    let out = Outgoing {
        attachments: Vec::new(),
        customer_id: "@some_channel".into(),
        text: "hi".into(),
        buttons: vec![],
        idempotency_key: "k".into(),
        thread: None,
        automatic: false,
        template: None,
    };
    let error = client_for(&server).await.send_message(&token(), &out).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected(d) if d.contains("blocked by the user")), "{error:?}");
    assert!(!error.is_retryable());
    assert_token_hidden(&error);
}

#[tokio::test]
async fn set_webhook_registers_url_secret_and_update_types() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(api_path("setWebhook")))
        .and(body_partial_json(json!({
            "url": "https://example.com/wh/telegram/abc",
            "secret_token": "hook-secret_123",
            "allowed_updates": ["message", "edited_message", "callback_query"],
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok":true,"result":true,"description":"Webhook was set"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    client_for(&server)
        .await
        .set_webhook(&token(), "https://example.com/wh/telegram/abc", &Secret::new("hook-secret_123"))
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_webhook_and_answer_callback_query() {
    let server = MockServer::start().await;
    respond(
        &server,
        "deleteWebhook",
        ResponseTemplate::new(200).set_body_json(json!({"ok":true,"result":true})),
    )
    .await;
    Mock::given(method("POST"))
        .and(path(api_path("answerCallbackQuery")))
        .and(body_partial_json(json!({"callback_query_id": "4382bfdwdsb323b2d9"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok":true,"result":true})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server).await;
    client.delete_webhook(&token()).await.unwrap();
    client.answer_callback_query(&token(), "4382bfdwdsb323b2d9").await.unwrap();
}

#[test]
fn maps_responses_in_one_place() {
    let t = token();
    let op = Purpose::Operation;
    let r = |status: u16, body: &str| {
        interpret::<Value>(StatusCode::from_u16(status).unwrap(), body.as_bytes(), op, &t)
    };
    assert_eq!(r(200, r#"{"ok":true,"result":true}"#), Ok(json!(true)));
    // A proxy that answers 200 but passes Telegram's error through.
    assert_eq!(
        r(200, r#"{"ok":false,"error_code":429,"description":"Too Many Requests"}"#),
        Err(ProviderError::RateLimited { retry_after: DEFAULT_RETRY_AFTER })
    );
    assert_eq!(r(200, r#"{"ok":false,"description":"nope"}"#), Err(ProviderError::Rejected("nope".into())));
    assert_eq!(
        r(400, r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#),
        Err(ProviderError::Rejected("Bad Request: chat not found".into()))
    );
    assert_eq!(r(401, r#"{"ok":false,"error_code":401}"#), Err(ProviderError::Rejected("HTTP 401".into())));
    assert_eq!(r(502, "<html>Bad Gateway</html>"), Err(ProviderError::Unavailable("HTTP 502".into())));
    assert!(matches!(r(200, "garbage"), Err(ProviderError::Unavailable(_))));
    assert_eq!(
        interpret::<BotAccount>(
            StatusCode::OK,
            br#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
            Purpose::CredentialCheck,
            &t
        ),
        Err(ProviderError::InvalidCredentials(INVALID_TOKEN.into()))
    );
}

#[test]
fn base_url_loses_its_trailing_slash() {
    let client = TelegramClient::new(reqwest::Client::new(), "http://localhost:9000/");
    assert_eq!(client.base, "http://localhost:9000");
}

// --- media, against a fake Bot API and file server ---

/// Whether `needle` occurs in `haystack` (a multipart body holds the file's bytes as they are).
fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn channel_secrets() -> ChannelSecrets {
    ChannelSecrets::default().with("token", token())
}

fn document_of_the_fixture() -> Attachment {
    parsed(&fixture("telegram_document.json")).attachments.remove(0)
}

async fn get_file_answers(server: &MockServer, file_id: &str, size: u64, file_path: &str) {
    Mock::given(method("POST"))
        .and(path(api_path("getFile")))
        .and(body_partial_json(json!({ "file_id": file_id })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": {"file_id": file_id, "file_unique_id": "u1", "file_size": size, "file_path": file_path},
        })))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_document_of_the_fixture_is_fetched_through_get_file() {
    let attachment = document_of_the_fixture();
    let server = MockServer::start().await;
    let client = client_for(&server).await;
    assert!(client.fetchable(&attachment));
    let bytes = b"%PDF-1.4 the customer's receipt".to_vec();
    get_file_answers(&server, "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX", bytes.len() as u64, "documents/file_7.pdf")
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/file/bot{TOKEN}/documents/file_7.pdf")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.clone(), "application/octet-stream"))
        .expect(1)
        .mount(&server)
        .await;
    let mut sink = MediaSink::new(1024 * 1024).await.unwrap();
    let declared = client.fetch_media(&channel_secrets(), &attachment, &mut sink).await.unwrap();
    // The update's type, not the file server's octet-stream.
    assert_eq!(declared.as_deref(), Some("application/pdf"));
    assert_eq!(std::fs::read(sink.path()).unwrap(), bytes);
}

#[tokio::test]
async fn a_file_past_the_download_limit_is_too_large_without_being_downloaded() {
    let server = MockServer::start().await;
    get_file_answers(&server, "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX", DOWNLOAD_LIMIT + 1, "documents/big.mp4")
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/file/bot{TOKEN}/documents/big.mp4")))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(&server).await;
    let mut sink = MediaSink::new(100 * 1024 * 1024).await.unwrap();
    let outcome = client.fetch_media(&channel_secrets(), &document_of_the_fixture(), &mut sink).await;
    assert_eq!(outcome, Err(FetchError::TooLarge { limit: DOWNLOAD_LIMIT }));

    // getFile itself refuses files past the limit.
    let server = MockServer::start().await;
    respond(
        &server,
        "getFile",
        ResponseTemplate::new(400).set_body_json(
            json!({"ok": false, "error_code": 400, "description": "Bad Request: file is too big"}),
        ),
    )
    .await;
    let client = client_for(&server).await;
    let outcome = client.fetch_media(&channel_secrets(), &document_of_the_fixture(), &mut sink).await;
    assert_eq!(outcome, Err(FetchError::TooLarge { limit: DOWNLOAD_LIMIT }));
}

#[tokio::test]
async fn a_failing_file_server_is_a_retryable_error_without_the_token() {
    let server = MockServer::start().await;
    get_file_answers(&server, "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX", 10, "documents/file_8.pdf").await;
    Mock::given(method("GET"))
        .and(path(format!("/file/bot{TOKEN}/documents/file_8.pdf")))
        .respond_with(ResponseTemplate::new(500).set_body_string(format!("boom at /file/bot{TOKEN}/")))
        .mount(&server)
        .await;
    let client = client_for(&server).await;
    let mut sink = MediaSink::new(1024).await.unwrap();
    let outcome = client.fetch_media(&channel_secrets(), &document_of_the_fixture(), &mut sink).await;
    let Err(FetchError::Provider(error)) = outcome else { panic!("{outcome:?}") };
    assert!(error.is_retryable(), "{error:?}");
    assert_token_hidden(&error);

    // A getFile that fails the same way.
    let server = MockServer::start().await;
    respond(&server, "getFile", ResponseTemplate::new(502)).await;
    let client = client_for(&server).await;
    let outcome = client.fetch_media(&channel_secrets(), &document_of_the_fixture(), &mut sink).await;
    assert!(matches!(&outcome, Err(FetchError::Provider(error)) if error.is_retryable()), "{outcome:?}");
}

#[test]
fn stickers_and_files_are_fetchable_places_and_contacts_are_not() {
    let client = TelegramClient::new(reqwest::Client::new(), "http://unused.invalid");
    let attachment = |kind, file_ref: &str| Attachment {
        kind,
        file_ref: file_ref.into(),
        mime: None,
        size: None,
        name: None,
    };
    assert!(client.fetchable(&attachment(AttachmentKind::Sticker, "CAACAgIAAxkBAAIC")));
    assert!(client.fetchable(&attachment(AttachmentKind::Voice, "AwACAgIAAxkBAAIB")));
    assert!(!client.fetchable(&attachment(AttachmentKind::Document, " ")));
    assert!(!client.fetchable(&attachment(AttachmentKind::Location, "55.75,37.6175")));
    assert!(!client.fetchable(&attachment(AttachmentKind::Contact, "+79001234567")));
}

#[test]
fn media_limits_follow_the_bot_api() {
    let client = TelegramClient::new(reqwest::Client::new(), "http://unused.invalid");
    assert!(client.sends_media_from_file());
    assert_eq!(client.media_limit(AttachmentKind::Image), Some(10 * 1024 * 1024));
    for kind in
        [AttachmentKind::Document, AttachmentKind::Video, AttachmentKind::Audio, AttachmentKind::Voice]
    {
        assert_eq!(client.media_limit(kind), Some(50 * 1024 * 1024), "{kind:?}");
    }
    for kind in
        [AttachmentKind::Sticker, AttachmentKind::Location, AttachmentKind::Contact, AttachmentKind::Other]
    {
        assert_eq!(client.media_limit(kind), None, "{kind:?}");
    }
}

/// A file of ours in a temporary directory, as the outbox hands it to a provider that uploads.
fn outgoing_file(
    dir: &tempfile::TempDir,
    kind: AttachmentKind,
    mime: &str,
    name: &str,
    bytes: &[u8],
) -> OutgoingMedia {
    crate::test_support::file_in(dir.path(), kind, mime, name, bytes)
}

fn sent_message(id: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "result": {"message_id": id, "date": 1700000000, "chat": {"id": 1111111, "type": "private"}},
    }))
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR a tiny picture";

#[tokio::test]
async fn a_photo_goes_with_its_caption_and_buttons_as_one_upload() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(api_path("sendPhoto")))
        .respond_with(sent_message(4243))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = Outgoing {
        attachments: vec![outgoing_file(&dir, AttachmentKind::Image, "image/png", "look.png", PNG)],
        customer_id: "1111111".into(),
        text: "Here is the label".into(),
        buttons: vec!["Thanks".into()],
        idempotency_key: "k".into(),
        thread: None,
        automatic: false,
        template: None,
    };
    let sent = client_for(&server).await.send(&channel_secrets(), &out).await.unwrap();
    assert_eq!(sent, Sent { provider_message_id: Some("4243".into()) });
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    let content_type = requests[0].headers.get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("multipart/form-data; boundary="), "{content_type}");
    assert!(holds(body, PNG));
    assert!(holds(body, b"name=\"photo\"; filename=\"look.png\""));
    assert!(holds(body, b"name=\"chat_id\"\r\n\r\n1111111\r\n"));
    assert!(holds(body, b"name=\"caption\"\r\n\r\nHere is the label\r\n"));
    assert!(holds(body, br#"{"inline_keyboard":[[{"callback_data":"Thanks","text":"Thanks"}]]}"#));
}

#[tokio::test]
async fn a_text_too_long_for_a_caption_goes_first_and_buttons_go_last() {
    let server = MockServer::start().await;
    let long = "a".repeat(1025);
    Mock::given(method("POST"))
        .and(path(api_path("sendMessage")))
        .and(body_partial_json(json!({"chat_id": 1111111, "text": long})))
        .respond_with(sent_message(10))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(api_path("sendDocument")))
        .respond_with(sent_message(11))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(api_path("sendVideo")))
        .respond_with(sent_message(12))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = Outgoing {
        attachments: vec![
            outgoing_file(&dir, AttachmentKind::Document, "application/pdf", "a.pdf", b"%PDF-1.7 first"),
            outgoing_file(&dir, AttachmentKind::Video, "video/mp4", "b.mp4", b"....ftypmp42 second"),
        ],
        customer_id: "1111111".into(),
        text: long.clone(),
        buttons: vec!["OK".into()],
        idempotency_key: "k".into(),
        thread: None,
        automatic: false,
        template: None,
    };
    let sent = client_for(&server).await.send(&channel_secrets(), &out).await.unwrap();
    assert_eq!(sent, Sent { provider_message_id: Some("12".into()) });
    let requests = server.received_requests().await.unwrap();
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, [api_path("sendMessage"), api_path("sendDocument"), api_path("sendVideo")]);
    let text: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert!(text.get("reply_markup").is_none(), "{text}");
    assert!(holds(&requests[1].body, b"%PDF-1.7 first") && !holds(&requests[1].body, b"name=\"caption\""));
    assert!(!holds(&requests[1].body, b"reply_markup"));
    assert!(holds(&requests[2].body, b"second") && holds(&requests[2].body, b"name=\"reply_markup\""));
}

#[tokio::test]
async fn a_refused_upload_is_rejected_without_the_token() {
    let server = MockServer::start().await;
    let body =
        json!({"ok": false, "error_code": 400, "description": "Bad Request: PHOTO_INVALID_DIMENSIONS"});
    respond(&server, "sendPhoto", ResponseTemplate::new(400).set_body_json(body)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = Outgoing {
        attachments: vec![outgoing_file(&dir, AttachmentKind::Image, "image/jpeg", "x.jpg", b"\xff\xd8\xff")],
        customer_id: "1".into(),
        text: String::new(),
        buttons: vec![],
        idempotency_key: "k".into(),
        thread: None,
        automatic: false,
        template: None,
    };
    let error = client_for(&server).await.send(&channel_secrets(), &out).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected(d) if d.contains("PHOTO_INVALID")), "{error:?}");
    assert_token_hidden(&error);
}

#[test]
fn each_kind_of_file_goes_with_its_method() {
    let media = |kind, mime: &str| OutgoingMedia {
        kind,
        name: None,
        mime: mime.into(),
        size: 1,
        url: String::new(),
        path: None,
    };
    let cases = [
        (AttachmentKind::Image, "image/jpeg", ("sendPhoto", "photo")),
        (AttachmentKind::Image, "image/png", ("sendPhoto", "photo")),
        (AttachmentKind::Image, "image/gif", ("sendDocument", "document")),
        (AttachmentKind::Video, "video/mp4", ("sendVideo", "video")),
        (AttachmentKind::Video, "video/quicktime", ("sendDocument", "document")),
        (AttachmentKind::Audio, "audio/ogg", ("sendVoice", "voice")),
        (AttachmentKind::Voice, "audio/ogg", ("sendVoice", "voice")),
        (AttachmentKind::Audio, "audio/mpeg", ("sendAudio", "audio")),
        (AttachmentKind::Audio, "audio/x-wav", ("sendDocument", "document")),
        (AttachmentKind::Document, "application/pdf", ("sendDocument", "document")),
    ];
    for (kind, mime, expected) in cases {
        assert_eq!(super::client::upload_method(&media(kind, mime)), expected, "{kind:?} {mime}");
    }
}

#[tokio::test]
async fn a_file_the_update_says_is_too_large_is_not_even_looked_up() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
    let big = Attachment { size: Some(DOWNLOAD_LIMIT + 1), ..document_of_the_fixture() };
    let mut sink = MediaSink::new(100 * 1024 * 1024).await.unwrap();
    let outcome = client_for(&server).await.fetch_media(&channel_secrets(), &big, &mut sink).await;
    assert_eq!(outcome, Err(FetchError::TooLarge { limit: DOWNLOAD_LIMIT }));
}
