//! Request limits end to end (issue 10): bodies over the limit get 413 before parsing, bodies nested deeper
//! than the limit get 400 before anything reads the store, and a stop lets the requests in flight finish.

use std::time::Duration;

use omnichat::limits::MAX_JSON_DEPTH;
use omnichat_tests::{ADMIN_KEY, TestApp, fixture};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

async fn channel_count(app: &TestApp) -> usize {
    let (status, body) = app.get("/v1/channels").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().map_or(0, Vec::len)
}

async fn dialog_count(app: &TestApp) -> usize {
    let (status, body) = app.get("/v1/dialogs").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().map_or(0, Vec::len)
}

async fn post_raw(app: &TestApp, path: &str, body: String) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    omnichat_tests::read(response).await
}

#[tokio::test]
async fn api_bodies_too_deep_or_too_big_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let deep =
        format!(r#"{{"provider":"telegram","name":"x","credentials":{}}}"#, nested(MAX_JSON_DEPTH + 5));
    let (status, body) = post_raw(&app, "/v1/channels", deep).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("json_too_deep")), "{body}");

    let big = format!(r#"{{"provider":"telegram","name":"{}"}}"#, "x".repeat(1024 * 1024));
    let (status, body) = post_raw(&app, "/v1/channels", big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["code"].is_string(), "a JSON error body: {body}");
    assert_eq!(channel_count(&app).await, 0);

    // Without a key the caller is refused (401, not 413) before its body is parsed.
    let big = format!(r#"{{"provider":"telegram","name":"{}"}}"#, "x".repeat(1024 * 1024));
    let response = app
        .http
        .post(app.url("/v1/channels"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("POST");
    let (status, body) = omnichat_tests::read(response).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(channel_count(&app).await, 0);
}

#[tokio::test]
async fn a_webhook_nested_too_deep_is_refused_before_it_is_stored() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(777_000_222, "limits_bot").await;
    let path = format!("/webhooks/telegram/{}", channel["id"].as_str().expect("id"));
    let headers = [("X-Telegram-Bot-Api-Secret-Token", secret.as_str())];

    let mut update: Value = serde_json::from_slice(&fixture("telegram_text.json")).expect("fixture");
    update["message"]["reply_markup"] = serde_json::from_str(&nested(MAX_JSON_DEPTH + 1)).expect("JSON");
    let status = app.deliver(&path, &headers, serde_json::to_vec(&update).expect("body")).await;
    assert_eq!(status, 400);
    assert_eq!(dialog_count(&app).await, 0, "nothing stored");

    // The same update within the limit is taken.
    update["message"]["reply_markup"] = json!({"inline_keyboard": []});
    let status = app.deliver(&path, &headers, serde_json::to_vec(&update).expect("body")).await;
    assert_eq!(status, 200);
    assert_eq!(dialog_count(&app).await, 1);
}

/// A request still arriving when the bundle is told to stop gets its answer; the stop waits for it.
#[tokio::test]
async fn stopping_finishes_the_requests_in_flight() {
    let mut app = TestApp::spawn().await;
    let address = app.running().address;
    let body = br#"{"provider":"telegram"}"#;
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST /v1/channels HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {ADMIN_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body[..5]).await.expect("first part");
    // Give the server time to take the request in, then stop it while the body is still arriving.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restart = tokio::spawn(async move {
        app.restart().await;
        app
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!restart.is_finished(), "the stop waits for the request in flight");
    stream.write_all(&body[5..]).await.expect("rest of the body");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "the request got its (refusal) answer: {answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    let app = tokio::time::timeout(Duration::from_secs(10), restart).await.expect("stopped").expect("task");
    assert_eq!(channel_count(&app).await, 0);
}
