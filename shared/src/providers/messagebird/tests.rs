//! Unit tests of the MessageBird module: the official signature vectors and HMAC schemes, parsing of the
//! fixtures, `receive`, and the API client against a local fake (wiremock).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::client::interpret;
use super::signature::sha256_hex;
use super::*;
use crate::domain::{
    Attachment, AttachmentKind, ChannelId, Customer, InboundKind, InboundMessage, OutStatus, Provider,
    Template,
};
use crate::ports::channel::TemplateInfo;
use crate::ports::media::MediaSink;
use crate::providers::{FetchError, OutgoingMedia, Purpose};
use crate::test_support::fixture;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS: &str = "live_AccessKeyValue0123456789";
const SIGNING: &str = "signingKeyValue0123456789abcdef";
const CHANNEL: &str = "11a976e320d04baaa01382783727e8c5";
const HOOK_SECRET: &str = "HookSecret0123456789HookSecret0123456789HookSecr";
const URL: &str = "https://omnichat.example.test/webhooks/whatsapp-messagebird/chan-1/HookSecret";

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

// --- signature ---

#[derive(Deserialize)]
struct Vector {
    name: String,
    #[serde(default)]
    secret: String,
    url: String,
    #[serde(default)]
    payload: String,
    timestamp: String,
    token: String,
    valid: bool,
    #[serde(default)]
    reason: String,
}

fn expected_error(reason: &str) -> JwtError {
    match reason.trim_start_matches("invalid jwt: ") {
        "claim nbf is in the future" => JwtError::NotYetValid,
        "claim exp is in the past" => JwtError::Expired,
        "claim url_hash is invalid" => JwtError::UrlHash,
        "claim payload_hash is invalid" => JwtError::PayloadHash,
        "signature is invalid" => JwtError::Signature,
        "claim payload_hash is set but actual payload is missing" => JwtError::UnexpectedPayloadHash,
        "claim payload_hash is not set but payload is present" => JwtError::MissingPayloadHash,
        "signing method none is invalid" => JwtError::Algorithm,
        other => panic!("a reason the test does not know: {other}"),
    }
}

#[test]
fn all_official_signature_jwt_vectors_pass() {
    let vectors: Vec<Vector> =
        serde_json::from_slice(&fixture("messagebird_signature_jwt_testvectors.json")).unwrap();
    assert_eq!(vectors.len(), 43);
    for v in &vectors {
        let outcome = verify_signature_jwt(
            &v.token,
            &Secret::new(&v.secret),
            &v.url,
            v.payload.as_bytes(),
            ts(&v.timestamp),
        );
        if v.valid {
            assert_eq!(outcome, Ok(()), "{}", v.name);
        } else {
            assert_eq!(outcome, Err(expected_error(&v.reason)), "{}", v.name);
        }
    }
}

#[test]
fn jwt_edge_cases_are_refused() {
    let now = ts("2024-01-01T00:00:00Z");
    let key = Secret::new(SIGNING);
    let token = sign_webhook(&key, URL, b"{}", now, "jti-1");
    assert_eq!(verify_signature_jwt(&token, &key, URL, b"{}", now), Ok(()));
    // One second of skew either way is tolerated, two are not.
    assert_eq!(
        verify_signature_jwt(&token, &key, URL, b"{}", now - jiff::SignedDuration::from_secs(1)),
        Ok(())
    );
    assert_eq!(
        verify_signature_jwt(&token, &key, URL, b"{}", now - jiff::SignedDuration::from_secs(2)),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(
        verify_signature_jwt(&token, &key, URL, b"{}", now + jiff::SignedDuration::from_secs(62)),
        Err(JwtError::Expired)
    );
    assert_eq!(
        verify_signature_jwt(&token, &Secret::new("other"), URL, b"{}", now),
        Err(JwtError::Signature)
    );
    assert_eq!(verify_signature_jwt(&token, &Secret::new(""), URL, b"{}", now), Err(JwtError::Signature));
    assert_eq!(verify_signature_jwt(&token, &key, "https://evil.test/", b"{}", now), Err(JwtError::UrlHash));
    assert_eq!(verify_signature_jwt(&token, &key, URL, b"{ }", now), Err(JwtError::PayloadHash));
    for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", &token.replace('.', "")] {
        assert_eq!(verify_signature_jwt(bad, &key, URL, b"{}", now), Err(JwtError::Malformed), "{bad}");
    }
    // A token whose claims are tampered with no longer matches its signature.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(
        json!({"iss": "MessageBird", "nbf": 0, "exp": i64::MAX, "jti": "x", "url_hash": sha256_hex(URL.as_bytes())})
            .to_string(),
    );
    parts[1] = &forged;
    assert_eq!(verify_signature_jwt(&parts.join("."), &key, URL, b"", now), Err(JwtError::Signature));
    // Another issuer, signed with the right key.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": "Mallory", "nbf": now.as_second(), "exp": now.as_second() + 60, "jti": "x",
               "url_hash": sha256_hex(URL.as_bytes())})
        .to_string(),
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SIGNING.as_bytes()).unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    assert_eq!(
        verify_signature_jwt(&format!("{header}.{claims}.{signature}"), &key, URL, b"", now),
        Err(JwtError::Issuer)
    );
}

#[test]
fn legacy_and_bird_hmac_signatures_verify() {
    // The legacy Conversations signature of the saved real webhook (the file has a trailing newline).
    let body = fixture("messagebird_conversations_text_received.json");
    let body = body.strip_suffix(b"\n").unwrap_or(&body);
    let key = Secret::new("tN3jfxydr6DtgJhUX0zsiiGZaREoRFud");
    let signature = "it26SSv/qkoxQ5xfPe5MYF9nddcHbqMTcToqLL4+Udk=";
    assert!(verify_request_signature(signature, "1591949471", "https://example.com/hook", body, &key));
    assert!(!verify_request_signature(signature, "1591949472", "https://example.com/hook", body, &key));
    assert!(!verify_request_signature(signature, "1591949471", "https://example.com/hook?x=1", body, &key));
    assert!(!verify_request_signature(signature, "1591949471", "https://example.com/hook", b"{}", &key));
    assert!(!verify_request_signature(
        signature,
        "1591949471",
        "https://example.com/hook",
        body,
        &Secret::new("x")
    ));
    assert!(!verify_request_signature("not base64!", "1591949471", "https://example.com/hook", body, &key));
    // Bird: the full URL is signed (expected value computed independently with Python's hmac).
    let bird = fixture("messagebird_bird_whatsapp_inbound_quickreply_unverified.json");
    let url = "https://omnichat.example.test/webhooks/whatsapp-messagebird/chan/secret";
    let key = Secret::new("bird-signing-key-0123456789");
    let signature = "7zwqFy2b8IcvxHAk6XSUYHi/6HG0BiHmvvJM4jL9wLU=";
    assert!(verify_request_signature(signature, "1761279226", url, &bird, &key));
    assert!(!verify_request_signature(signature, "1761279226", "https://other.test/", &bird, &key));
    assert!(!verify_request_signature(signature, "1761279226", url, &bird, &Secret::new("")));
}

// --- parsing ---

#[test]
fn parses_the_conversations_text_fixture() {
    let parsed = parse_event(&fixture("messagebird_conversations_text_received.json")).unwrap();
    assert!(parsed.statuses.is_empty());
    assert_eq!(
        parsed.messages,
        vec![InboundMessage {
            dedup_key: "b88ff4db73be4bd58c2c56cb3bbb1004".into(),
            kind: InboundKind::Message,
            customer: Customer {
                id: "+393383342437".into(),
                name: Some("393383342437".into()),
                handle: None
            },
            provider_message_id: Some("b88ff4db73be4bd58c2c56cb3bbb1004".into()),
            text: Some("hi".into()),
            attachments: vec![],
            sent_at: Some(ts("2020-06-12T08:11:10Z")),
        }]
    );
}

#[test]
fn parses_the_bird_quick_reply_fixture() {
    let parsed =
        parse_event(&fixture("messagebird_bird_whatsapp_inbound_quickreply_unverified.json")).unwrap();
    assert_eq!(
        parsed.messages,
        vec![InboundMessage {
            dedup_key: "1ab6a0cb-f01b-4ec3-b589-ce0a8c271d32".into(),
            kind: InboundKind::ButtonReply,
            customer: Customer {
                id: "+201066101340".into(),
                name: Some("Malek&karma&Hamza".into()),
                handle: None
            },
            provider_message_id: Some("1ab6a0cb-f01b-4ec3-b589-ce0a8c271d32".into()),
            text: Some("شكر".into()),
            attachments: vec![],
            sent_at: Some(ts("2025-10-24T04:13:46.277Z")),
        }]
    );
}

fn with_message(event: &str, message: Value) -> Vec<u8> {
    json!({"type": event, "message": message, "contact": {"msisdn": 31612345678_u64, "firstName": "Jan", "lastName": "de Vries"}})
        .to_string()
        .into_bytes()
}

#[test]
fn our_own_messages_are_not_customer_messages_and_their_updates_are_statuses() {
    let echo = with_message(
        "message.created",
        json!({"id": "m1", "direction": "sent", "status": "pending", "type": "text", "content": {"text": "hello"}}),
    );
    assert_eq!(parse_event(&echo).unwrap(), Parsed::default());
    for (status, expected) in [
        ("sent", Some(OutStatus::Sent)),
        ("delivered", Some(OutStatus::Delivered)),
        ("read", Some(OutStatus::Delivered)),
        ("failed", Some(OutStatus::Failed)),
        ("pending", None),
    ] {
        let body = with_message(
            "message.updated",
            json!({"id": "m1", "direction": "sent", "status": status, "type": "text", "content": {"text": "x"}}),
        );
        let statuses = parse_event(&body).unwrap().statuses;
        assert_eq!(statuses.first().map(|s| s.status), expected, "{status}");
        if let Some(update) = statuses.first() {
            assert_eq!(update.provider_message_id, "m1");
            assert_eq!(update.reason.is_some(), expected == Some(OutStatus::Failed));
        }
    }
    // Updates of received messages, conversation events and other Bird events are acknowledged.
    let received_update =
        with_message("message.updated", json!({"id": "m2", "direction": "received", "status": "read"}));
    assert_eq!(parse_event(&received_update).unwrap(), Parsed::default());
    assert_eq!(
        parse_event(br#"{"type":"conversation.created","conversation":{}}"#).unwrap(),
        Parsed::default()
    );
    assert_eq!(parse_event(br#"{"event":"whatsapp.outbound","payload":{}}"#).unwrap(), Parsed::default());
    let bird_out = br#"{"event":"whatsapp.inbound","payload":{"id":"x","direction":"outgoing"}}"#;
    assert_eq!(parse_event(bird_out).unwrap(), Parsed::default());
}

#[test]
fn normalizes_media_location_and_button_replies() {
    let image = with_message(
        "message.created",
        json!({"id": "m3", "direction": "received", "from": "+31612345678", "type": "image",
               "content": {"image": {"url": "https://media.messagebird.com/v1/media/abc", "caption": "look"}},
               "createdDatetime": "2024-01-01T10:00:00Z"}),
    );
    let m = parse_event(&image).unwrap().messages.remove(0);
    assert_eq!(
        m.customer,
        Customer { id: "+31612345678".into(), name: Some("Jan de Vries".into()), handle: None }
    );
    assert_eq!(m.text.as_deref(), Some("look"));
    assert_eq!(
        m.attachments,
        vec![Attachment {
            kind: AttachmentKind::Image,
            file_ref: "https://media.messagebird.com/v1/media/abc".into(),
            mime: None,
            size: None,
            name: None,
        }]
    );
    let location = with_message(
        "message.created",
        json!({"id": "m4", "direction": "received", "type": "location",
               "content": {"location": {"latitude": 52.37, "longitude": 4.89}}}),
    );
    let m = parse_event(&location).unwrap().messages.remove(0);
    assert_eq!(m.customer.id, "+31612345678", "falls back to the contact's msisdn");
    assert_eq!(m.attachments[0].kind, AttachmentKind::Location);
    assert_eq!(m.attachments[0].file_ref, "52.37,4.89");
    assert_eq!(m.sent_at, None);
    let button = with_message(
        "message.created",
        json!({"id": "m5", "direction": "received", "from": "+3161", "type": "interactive",
               "content": {"interactive": {"type": "button_reply", "reply": {"id": "yes", "text": "Yes"}}}}),
    );
    let m = parse_event(&button).unwrap().messages.remove(0);
    assert_eq!((m.kind, m.text.as_deref()), (InboundKind::ButtonReply, Some("yes")));
    let empty = with_message(
        "message.created",
        json!({"id": "m6", "direction": "received", "from": "+3161", "type": "hsm", "content": {}}),
    );
    assert_eq!(parse_event(&empty).unwrap(), Parsed::default());
}

#[test]
fn refuses_malformed_bodies() {
    for body in [
        &b"not json"[..],
        b"",
        b"[1,2]",
        br#"{"message":{"id":"x"}}"#,
        br#"{"type":"message.created"}"#,
        br#"{"type":"message.created","message":{"direction":"received"}}"#,
        br#"{"type":"message.created","message":{"id":"x","direction":"received","content":{"text":"hi"}}}"#,
        br#"{"event":"whatsapp.inbound"}"#,
        br#"{"event":"whatsapp.inbound","payload":{"direction":"incoming","body":{"type":"text","text":{"text":"x"}}}}"#,
    ] {
        match parse_event(body) {
            Err(WebhookError::Malformed { provider: "whatsapp-messagebird", .. }) => {}
            other => panic!("{}: expected Malformed, got {other:?}", String::from_utf8_lossy(body)),
        }
    }
}

// --- receive ---

fn channel_secrets() -> ChannelSecrets {
    ChannelSecrets::default()
        .with(ACCESS_KEY, Secret::new(ACCESS))
        .with(CHANNEL_ID, Secret::new(CHANNEL))
        .with(SIGNING_KEY, Secret::new(SIGNING))
        .with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET))
}

fn signed_request(body: &[u8], token: String, path_secret: Option<&str>) -> WebhookRequest {
    WebhookRequest {
        method: "POST".into(),
        headers: vec![(SIGNATURE_JWT_HEADER.into(), token)],
        body: body.to_vec(),
        path_secret: path_secret.map(str::to_owned),
        webhook_url: URL.into(),
    }
}

fn client() -> MessageBirdClient {
    MessageBirdClient::new(reqwest::Client::new(), "http://127.0.0.1:9")
}

#[test]
fn receive_checks_the_path_secret_and_the_signature_before_parsing() {
    let body = fixture("messagebird_conversations_text_received.json");
    let token = sign_webhook(&Secret::new(SIGNING), URL, &body, Timestamp::now(), "jti-1");
    let delivery =
        client().receive(&channel_secrets(), &signed_request(&body, token.clone(), Some(HOOK_SECRET)));
    let delivery = delivery.unwrap();
    assert_eq!(delivery.messages.len(), 1);
    assert_eq!(delivery.reply, Default::default());

    let refused = |request: WebhookRequest| {
        assert_eq!(client().receive(&channel_secrets(), &request), Err(WebhookError::Unauthorized));
    };
    refused(signed_request(&body, token.clone(), Some("wrong")));
    refused(signed_request(&body, token.clone(), None));
    refused(signed_request(b"{\"type\":\"message.created\"}", token.clone(), Some(HOOK_SECRET)));
    let wrong_key = sign_webhook(&Secret::new("not-the-key"), URL, &body, Timestamp::now(), "jti-1");
    refused(signed_request(&body, wrong_key, Some(HOOK_SECRET)));
    let mut no_url = signed_request(&body, token.clone(), Some(HOOK_SECRET));
    no_url.webhook_url.clear();
    refused(no_url);
    let mut unsigned = signed_request(&body, token, Some(HOOK_SECRET));
    unsigned.headers.clear();
    refused(unsigned);
    // A garbage body with a valid signature is malformed, not unauthorized.
    let garbage = b"{nope".to_vec();
    let token = sign_webhook(&Secret::new(SIGNING), URL, &garbage, Timestamp::now(), "jti-2");
    assert!(matches!(
        client().receive(&channel_secrets(), &signed_request(&garbage, token, Some(HOOK_SECRET))),
        Err(WebhookError::Malformed { .. })
    ));
    // Without a signing key nothing verifies.
    let secrets = ChannelSecrets::default().with(ChannelSecrets::WEBHOOK_SECRET, Secret::new(HOOK_SECRET));
    let token = sign_webhook(&Secret::new(""), URL, &body, Timestamp::now(), "jti-3");
    assert_eq!(
        client().receive(&secrets, &signed_request(&body, token, Some(HOOK_SECRET))),
        Err(WebhookError::Unauthorized)
    );
}

#[test]
fn receive_accepts_bird_hmac_headers() {
    let body = fixture("messagebird_bird_whatsapp_inbound_quickreply_unverified.json");
    let url = "https://omnichat.example.test/webhooks/whatsapp-messagebird/chan/secret";
    let secrets = channel_secrets().with(SIGNING_KEY, Secret::new("bird-signing-key-0123456789"));
    let mut request = WebhookRequest {
        method: "POST".into(),
        headers: vec![
            (SIGNATURE_HEADER.into(), "7zwqFy2b8IcvxHAk6XSUYHi/6HG0BiHmvvJM4jL9wLU=".into()),
            (TIMESTAMP_HEADER.into(), "1761279226".into()),
        ],
        body,
        path_secret: Some(HOOK_SECRET.into()),
        webhook_url: url.into(),
    };
    assert_eq!(client().receive(&secrets, &request).unwrap().messages.len(), 1);
    request.headers[1].1 = "1761279227".into();
    assert_eq!(client().receive(&secrets, &request), Err(WebhookError::Unauthorized));
}

#[test]
fn webhook_url_carries_the_channel_secret() {
    let channel = ChannelId::generate();
    let url =
        client().webhook_url("https://x.test", Provider::WhatsappMessagebird, &channel, &channel_secrets());
    assert_eq!(url, format!("https://x.test/webhooks/whatsapp-messagebird/{channel}/{HOOK_SECRET}"));
}

#[test]
fn a_conversation_may_start_only_with_a_namespace() {
    assert!(!can_start_conversation(&channel_secrets()));
    let error = require_namespace(&channel_secrets()).unwrap_err();
    match error {
        Error::Rule(rule) => {
            let text = format!("{rule:?}");
            assert!(
                text.contains("namespace_required") && text.contains("credentials.namespace_id"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    let with_namespace = channel_secrets().with(NAMESPACE_ID, Secret::new("ns-1"));
    assert!(can_start_conversation(&with_namespace));
    assert!(!can_start_conversation(&channel_secrets().with(NAMESPACE_ID, Secret::new(""))));
}

// --- client, against a fake Conversations API ---

fn secrets_hidden(text: &str) {
    for secret in [ACCESS, SIGNING, HOOK_SECRET] {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

fn credentials(extra: Value) -> Map<String, Value> {
    let mut base = json!({"access_key": ACCESS, "channel_id": CHANNEL, "signing_key": SIGNING});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base.as_object().cloned().unwrap()
}

fn field_of(error: &Error) -> String {
    match error {
        Error::Rule(rule) => format!("{rule:?}"),
        other => panic!("expected a rule violation, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_names_the_channel_and_keeps_every_credential() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/channels/{CHANNEL}")))
        .and(header("authorization", format!("AccessKey {ACCESS}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": CHANNEL, "name": "Acme WhatsApp", "platformId": "whatsapp", "status": "active",
            "createdDatetime": "2020-01-01T00:00:00Z"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), format!("{}/", server.uri()));
    let connection = client.connect(&credentials(json!({"namespace_id": "ns-1"}))).await.unwrap();
    assert_eq!(connection.account, Account { id: CHANNEL.into(), name: "Acme WhatsApp".into() });
    assert_eq!(connection.secrets.get(NAMESPACE_ID).map(Secret::expose), Some("ns-1"));
    assert_eq!(connection.secrets.get(SIGNING_KEY).map(Secret::expose), Some(SIGNING));
    assert_eq!(connection.masked.get(ACCESS_KEY).map(String::as_str), Some("****6789"));
    secrets_hidden(&format!("{connection:?}"));
    assert!(can_start_conversation(&connection.secrets));
}

/// Where the lookup names the channel's number, the account shows it, with the channel's name beside it.
#[tokio::test]
async fn connect_shows_the_whatsapp_number_beside_the_channel_name() {
    for (channel, shown) in [
        (
            json!({"id": CHANNEL, "name": "Acme WhatsApp", "platformId": "whatsapp", "identifier": "+447418310508"}),
            "+447418310508 (Acme WhatsApp)",
        ),
        (
            json!({"id": CHANNEL, "name": "Acme WhatsApp", "platformId": "whatsapp", "msisdn": 447418310508_u64}),
            "+447418310508 (Acme WhatsApp)",
        ),
        (json!({"id": CHANNEL, "platformId": "whatsapp", "phoneNumber": "+44 7418 310508"}), "+447418310508"),
        (
            json!({"id": CHANNEL, "name": "Acme WhatsApp", "platformId": "whatsapp", "identifier": "acme@bird"}),
            "Acme WhatsApp",
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/v1/channels/{CHANNEL}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(channel.clone()))
            .mount(&server)
            .await;
        let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
        let connection = client.connect(&credentials(json!({}))).await.unwrap();
        assert_eq!(connection.account, Account { id: CHANNEL.into(), name: shown.into() }, "{channel}");
    }
}

#[tokio::test]
async fn connect_refusals_name_the_credential_at_fault() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/channels/{CHANNEL}")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errors": [
            {"code": 2, "description": "Request not allowed (incorrect access_key)", "parameter": "access_key"}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/channels/0000"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"errors": [{"code": 404}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/channels/sms1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "sms1", "platformId": "sms"})))
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    let bad_key = client.connect(&credentials(json!({}))).await.unwrap_err();
    assert!(field_of(&bad_key).contains("credentials.access_key"), "{bad_key:?}");
    assert!(format!("{bad_key}").contains("MessageBird refused the access key"));
    let unknown = client.connect(&credentials(json!({"channel_id": "0000"}))).await.unwrap_err();
    assert!(field_of(&unknown).contains("credentials.channel_id"));
    let not_whatsapp = client.connect(&credentials(json!({"channel_id": "sms1"}))).await.unwrap_err();
    assert!(field_of(&not_whatsapp).contains("not_whatsapp"));
    let path_trick = client.connect(&credentials(json!({"channel_id": "../balance"}))).await.unwrap_err();
    assert!(field_of(&path_trick).contains("credentials.channel_id"));
    let missing = client.connect(&credentials(json!({"signing_key": ""}))).await.unwrap_err();
    assert!(field_of(&missing).contains("credentials.signing_key"));
    for error in [bad_key, unknown, not_whatsapp, missing] {
        secrets_hidden(&format!("{error} {error:?}"));
    }
}

#[tokio::test]
async fn registers_and_removes_only_this_channels_webhook() {
    let server = MockServer::start().await;
    let url = format!("https://omnichat.example.test/webhooks/whatsapp-messagebird/c1/{HOOK_SECRET}");
    Mock::given(method("POST"))
        .and(path("/v1/webhooks"))
        .and(body_json(
            json!({"channelId": CHANNEL, "events": ["message.created", "message.updated"], "url": url}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "wh1", "url": url})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/webhooks"))
        .and(query_param("offset", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "offset": 0, "limit": 20, "count": 3, "totalCount": 3, "items": [
                {"id": "wh1", "url": url, "channelId": CHANNEL, "events": ["message.created"]},
                {"id": "wh2", "url": "https://omnichat.example.test/webhooks/whatsapp-messagebird/c2/Other", "channelId": CHANNEL},
                {"id": "wh3", "url": url, "channelId": "another-channel"},
            ]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/webhooks/wh1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    client.register_webhook(&channel_secrets(), &url).await.unwrap();
    client.remove_webhook(&channel_secrets()).await.unwrap();
}

fn outgoing(buttons: &[&str]) -> Outgoing {
    Outgoing {
        attachments: Vec::new(),
        customer_id: "+31612345678".into(),
        text: "Pick one".into(),
        buttons: buttons.iter().map(|b| (*b).to_owned()).collect(),
        idempotency_key: "out-1".into(),
        thread: None,
        automatic: false,
        template: None,
    }
}

#[tokio::test]
async fn sends_text_with_options_from_the_channel() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .and(header("authorization", format!("AccessKey {ACCESS}")))
        .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "text",
                              "content": {"text": "Pick one\n\n1. Yes\n2. No"}})))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"id": "2e15efafec384e1c82e9842075e87beb", "status": "accepted"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    let sent = client.send(&channel_secrets(), &outgoing(&["Yes", "No"])).await.unwrap();
    assert_eq!(sent, Sent { provider_message_id: Some("2e15efafec384e1c82e9842075e87beb".into()) });
}

#[tokio::test]
async fn starts_a_conversation_with_a_template_only_with_a_namespace() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "hsm", "content": {"hsm": {
            "namespace": "ns-1", "templateName": "order_ready",
            "language": {"policy": "deterministic", "code": "en"},
            "params": [{"default": "Jan"}]}}})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "hsm-1", "status": "accepted"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    let template =
        Template { name: "order_ready".into(), language: "en".into(), parameters: vec!["Jan".into()] };
    let refused = client.start_conversation(&channel_secrets(), "+31612345678", &template).await.unwrap_err();
    assert!(field_of(&refused).contains("credentials.namespace_id"));
    let secrets = channel_secrets().with(NAMESPACE_ID, Secret::new("ns-1"));
    let sent = client.start_conversation(&secrets, "+31612345678", &template).await.unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some("hsm-1"));
}

#[tokio::test]
async fn a_template_goes_as_an_hsm_of_the_channels_namespace_to_the_customer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .and(header("authorization", format!("AccessKey {ACCESS}")))
        .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "hsm", "content": {"hsm": {
            "namespace": "ns-1", "templateName": "order_ready",
            "language": {"policy": "deterministic", "code": "en_US"},
            "params": [{"default": "Jan"}, {"default": "A-42"}]}}})))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"id": "6b0a7ee0f2b04b50b8d8bb6b1b1e2b0c", "status": "accepted"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    assert!(client.sends_templates());
    assert_eq!(client.service_window(), Some(jiff::SignedDuration::from_hours(24)));
    let out = Outgoing {
        text: String::new(),
        template: Some(Template {
            name: "order_ready".into(),
            language: "en_US".into(),
            parameters: vec!["Jan".into(), "A-42".into()],
        }),
        ..outgoing(&[])
    };
    let secrets = channel_secrets().with(NAMESPACE_ID, Secret::new("ns-1"));
    let sent = client.send(&secrets, &out).await.unwrap();
    assert_eq!(sent, Sent { provider_message_id: Some("6b0a7ee0f2b04b50b8d8bb6b1b1e2b0c".into()) });
    // Without a namespace nothing is sent, and the refusal is for good.
    let refused = client.send(&channel_secrets(), &out).await.unwrap_err();
    assert!(
        matches!(&refused, ProviderError::Rejected(reason) if reason.contains("Namespace ID")),
        "{refused:?}"
    );
    assert!(!refused.is_retryable());
}

#[tokio::test]
async fn lists_the_channels_templates_from_the_integrations_api() {
    let server = MockServer::start().await;
    let template = |name: &str, language: &str, status: &str, body: Option<&str>| {
        let mut components = vec![json!({"type": "HEADER", "format": "TEXT", "text": "Shop"})];
        if let Some(body) = body {
            components.push(json!({"type": "BODY", "text": body}));
        }
        components.push(json!({"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "OK"}]}));
        json!({"id": format!("id-{name}"), "name": name, "language": language, "status": status,
               "category": "UTILITY", "components": components, "wabaId": "waba-1", "namespace": "ns-1",
               "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-02T00:00:00Z"})
    };
    Mock::given(method("GET"))
        .and(path("/v3/platforms/whatsapp/templates"))
        .and(header("authorization", format!("AccessKey {ACCESS}")))
        .and(query_param("channelId", CHANNEL))
        .and(query_param("offset", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "offset": 0, "limit": 100, "count": 3, "totalCount": 3,
            "items": [
                template("order_ready", "en", "APPROVED", Some("Hi {{1}}, order {{2}} is ready.")),
                template("promo", "nl", "REJECTED", Some("Korting {{1}}% tot {{2}} ({{1}}%)")),
                template("welcome", "en_US", "PENDING", None),
            ],
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), "http://127.0.0.1:9")
        .with_templates_base(format!("{}/", server.uri()));
    let templates = client.list_templates(&channel_secrets()).await.unwrap().unwrap();
    assert_eq!(
        templates,
        vec![
            TemplateInfo {
                name: "order_ready".into(),
                language: "en".into(),
                status: "approved".into(),
                text: Some("Hi {{1}}, order {{2}} is ready.".into()),
                parameters: 2,
            },
            TemplateInfo {
                name: "promo".into(),
                language: "nl".into(),
                status: "rejected".into(),
                text: Some("Korting {{1}}% tot {{2}} ({{1}}%)".into()),
                parameters: 2,
            },
            TemplateInfo {
                name: "welcome".into(),
                language: "en_US".into(),
                status: "pending".into(),
                text: None,
                parameters: 0,
            },
        ]
    );
}

#[tokio::test]
async fn throttling_server_errors_and_time_outs_are_retryable_and_hide_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .respond_with(ResponseTemplate::new(503).set_body_string(format!("down, key {ACCESS}")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"errors": [
            {"code": 21, "description": format!("bad request for {ACCESS}")}]})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    let throttled = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
    assert_eq!(throttled, ProviderError::RateLimited { retry_after: Duration::from_secs(7) });
    let down = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
    assert!(matches!(down, ProviderError::Unavailable(_)) && down.is_retryable(), "{down:?}");
    let rejected = client.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
    assert!(matches!(&rejected, ProviderError::Rejected(d) if d.contains("bad request")), "{rejected:?}");
    let http = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
    let slow = MessageBirdClient::new(http, server.uri());
    let timed_out = slow.send(&channel_secrets(), &outgoing(&[])).await.unwrap_err();
    assert!(matches!(timed_out, ProviderError::Unavailable(_)), "{timed_out:?}");
    for error in [throttled, down, rejected, timed_out] {
        secrets_hidden(&format!("{error} {error:?}"));
    }
    secrets_hidden(&format!("{:?}", channel_secrets()));
}

#[test]
fn maps_responses_in_one_place() {
    let key = Secret::new(ACCESS);
    let r = |status: u16, body: &str, purpose| {
        interpret::<Value>(StatusCode::from_u16(status).unwrap(), None, body.as_bytes(), purpose, &key)
    };
    assert_eq!(r(200, r#"{"ok":1}"#, Purpose::Operation), Ok(json!({"ok": 1})));
    assert_eq!(r(204, "", Purpose::Operation), Ok(Value::Null));
    assert_eq!(
        r(401, "{}", Purpose::CredentialCheck),
        Err(ProviderError::InvalidCredentials(INVALID_KEY.into()))
    );
    assert_eq!(r(401, "{}", Purpose::Operation), Err(ProviderError::Rejected("HTTP 401".into())));
    assert_eq!(
        r(429, "{}", Purpose::Operation),
        Err(ProviderError::RateLimited { retry_after: crate::providers::DEFAULT_RETRY_AFTER })
    );
    assert!(matches!(r(200, "<html>", Purpose::Operation), Err(ProviderError::Unavailable(_))));
    assert!(matches!(r(502, "<html>", Purpose::Operation), Err(ProviderError::Unavailable(_))));
}

/// Found by fuzzing (fuzz/regressions/messagebird/): an empty message id became the dedup key, so every
/// later message with an empty id would have passed for a retry of the first.
#[test]
fn a_message_without_an_id_is_refused_and_its_status_ignored() {
    let received = br#"{"type":"message.created","contact":{"msisdn":393383342437},
        "message":{"id":"","from":"+393383342437","direction":"received","type":"text",
        "content":{"text":"hi"}}}"#;
    assert!(matches!(parse_event(received), Err(WebhookError::Malformed { .. })));
    let updated = br#"{"type":"message.updated",
        "message":{"id":"","direction":"sent","status":"delivered","content":{}}}"#;
    assert_eq!(parse_event(updated), Ok(Parsed::default()));
}

// --- media ---

#[test]
fn the_image_fixture_gives_a_fetchable_media_link_and_its_caption() {
    let parsed = parse_event(&fixture("messagebird_conversations_image_received.json")).unwrap();
    let message = &parsed.messages[0];
    assert_eq!(message.text.as_deref(), Some("jij"));
    let image = &message.attachments[0];
    assert_eq!(image.kind, AttachmentKind::Image);
    assert_eq!(image.file_ref, "https://media.messagebird.com/v1/media/ab397184-a03a-42de-a2c7-69abc4a0ceaa");
    assert!(client().fetchable(image));
}

fn media_attachment(url: String) -> Attachment {
    Attachment { kind: AttachmentKind::Image, file_ref: url, mime: None, size: None, name: None }
}

#[tokio::test]
async fn fetches_media_with_the_access_key() {
    let server = MockServer::start().await;
    let bytes = b"\xff\xd8\xff\xe0 jpeg bytes from MessageBird".to_vec();
    Mock::given(method("GET"))
        .and(path("/v1/media/ab397184-a03a-42de-a2c7-69abc4a0ceaa"))
        .and(header("authorization", format!("AccessKey {ACCESS}")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.clone(), "image/jpeg"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/media/gone"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(
                json!({"errors": [{"code": 20, "description": format!("no media {ACCESS}")}]}),
            ),
        )
        .mount(&server)
        .await;
    // The fake stands for media.messagebird.com: the client's API base is on the same host and port.
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    let attachment =
        media_attachment(format!("{}/v1/media/ab397184-a03a-42de-a2c7-69abc4a0ceaa", server.uri()));
    let mut sink = MediaSink::new(1 << 20).await.unwrap();
    let declared = client.fetch_media(&channel_secrets(), &attachment, &mut sink).await.unwrap();
    assert_eq!(declared.as_deref(), Some("image/jpeg"));
    assert_eq!(std::fs::read(sink.path()).unwrap(), bytes);

    let mut sink = MediaSink::new(1 << 20).await.unwrap();
    let gone = media_attachment(format!("{}/v1/media/gone", server.uri()));
    let error = client.fetch_media(&channel_secrets(), &gone, &mut sink).await.unwrap_err();
    assert!(matches!(&error, FetchError::Provider(ProviderError::Rejected(_))), "{error:?}");
    secrets_hidden(&format!("{error} {error:?}"));
    let no_key = client.fetch_media(&ChannelSecrets::default(), &attachment, &mut sink).await;
    assert!(matches!(no_key, Err(FetchError::Provider(ProviderError::InvalidCredentials(_)))));
}

#[tokio::test]
async fn the_access_key_goes_to_no_other_host() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/sticker.webp"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"RIFF....WEBP".to_vec(), "image/webp"))
        .mount(&elsewhere)
        .await;
    // The client's API is elsewhere (another port): a link on this server is fetched without the key.
    let client = MessageBirdClient::new(reqwest::Client::new(), "http://127.0.0.1:9");
    let attachment = media_attachment(format!("{}/sticker.webp", elsewhere.uri()));
    let mut sink = MediaSink::new(1024).await.unwrap();
    client.fetch_media(&channel_secrets(), &attachment, &mut sink).await.unwrap();
    assert_eq!(std::fs::read(sink.path()).unwrap(), b"RIFF....WEBP");
    let requests = elsewhere.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].headers.contains_key("authorization"), "the key stays with MessageBird");
}

fn image_media(url: &str) -> OutgoingMedia {
    crate::test_support::linked_file(AttachmentKind::Image, "image/jpeg", "receipt.jpg", 4096, url)
}

#[tokio::test]
async fn sends_an_image_by_its_link_with_the_text_as_caption() {
    let server = MockServer::start().await;
    let link = "https://media.example.test/o/receipt.jpg?X-Amz-Signature=abc";
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .and(header("authorization", format!("AccessKey {ACCESS}")))
        .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "image",
                              "content": {"image": {"url": link, "caption": "Your receipt"}}})))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"id": "9f1c0f3ab1d94fd2a6e1c1d2e3f4a5b6", "status": "accepted"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    let mut out = outgoing(&[]);
    out.text = "Your receipt".into();
    out.attachments = vec![image_media(link)];
    let sent = client.send(&channel_secrets(), &out).await.unwrap();
    assert_eq!(sent, Sent { provider_message_id: Some("9f1c0f3ab1d94fd2a6e1c1d2e3f4a5b6".into()) });
}

#[tokio::test]
async fn audio_takes_no_caption_so_the_text_goes_first_and_files_without_text_go_alone() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "text",
                              "content": {"text": "Listen"}})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "text-1"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "audio",
                              "content": {"audio": {"url": "https://m.test/a.ogg"}}})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "audio-1"})))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send"))
        .and(body_json(json!({"to": "+31612345678", "from": CHANNEL, "type": "file",
                              "content": {"file": {"url": "https://m.test/a.webm"}}})))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "file-1"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = MessageBirdClient::new(reqwest::Client::new(), server.uri());
    let audio = OutgoingMedia {
        kind: AttachmentKind::Audio,
        mime: "audio/ogg".into(),
        ..image_media("https://m.test/a.ogg")
    };
    let mut out = outgoing(&[]);
    out.text = "Listen".into();
    out.attachments = vec![audio.clone()];
    let sent = client.send(&channel_secrets(), &out).await.unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some("text-1"), "the first message's id");
    // No text: only the files, a video WhatsApp does not play as a document.
    let webm = OutgoingMedia {
        kind: AttachmentKind::Video,
        mime: "video/webm".into(),
        ..image_media("https://m.test/a.webm")
    };
    out.text = String::new();
    out.attachments = vec![audio, webm];
    let sent = client.send(&channel_secrets(), &out).await.unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some("audio-1"));
}

#[test]
fn media_limits_are_whatsapps_and_files_are_sent_by_link() {
    let client = client();
    assert_eq!(client.media_limit(AttachmentKind::Image), Some(5_000_000));
    assert_eq!(client.media_limit(AttachmentKind::Video), Some(16_000_000));
    assert_eq!(client.media_limit(AttachmentKind::Document), Some(100_000_000));
    assert_eq!(client.media_limit(AttachmentKind::Sticker), None);
    assert!(!client.sends_media_from_file());
}
