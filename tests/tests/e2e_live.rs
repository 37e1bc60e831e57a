//! The workspace's live stream on the local runner (`/v1/stream`, docs/API.md "The operator workspace"):
//! a one-time ticket opens a WebSocket, what happens reaches an open page within 2 seconds, and each
//! viewer is told only of what they may see.

use std::time::Duration;

use futures::StreamExt;
use omnichat_tests::{TestApp, read, telegram_update};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn ticket(app: &TestApp, key: &str) -> String {
    let (status, body) = app.with_key(key, Method::POST, "/v1/stream/tickets", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["url"], Value::Null, "locally the stream is this origin's /v1/stream: {body}");
    body["ticket"].as_str().expect("ticket").to_owned()
}

fn stream_url(app: &TestApp, ticket: &str) -> String {
    format!("{}/v1/stream?ticket={ticket}", app.base.replacen("http://", "ws://", 1))
}

async fn open(app: &TestApp, key: &str) -> Socket {
    let url = stream_url(app, &ticket(app, key).await);
    let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("the live stream opens");
    socket
}

/// The pushes received within `window` (pings and the like skipped).
async fn drain(socket: &mut Socket, window: Duration) -> Vec<Value> {
    let mut pushes = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let Ok(Message::Text(text)) = frame {
            pushes.push(serde_json::from_str(text.as_str()).expect("a push is JSON"));
        }
    }
    pushes
}

/// Reads pushes until one satisfies `wanted`, at most `within`; answers every push read.
async fn until(socket: &mut Socket, within: Duration, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut pushes = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(other) => panic!("the stream ended: {other:?}; pushes so far {pushes:?}"),
            Err(_) => panic!("nothing wanted within {within:?}; pushes {pushes:?}"),
        };
        if let Message::Text(text) = frame {
            let push: Value = serde_json::from_str(text.as_str()).expect("a push is JSON");
            let done = wanted(&push);
            pushes.push(push);
            if done {
                return pushes;
            }
        }
    }
}

#[tokio::test]
async fn a_customers_message_reaches_an_open_page_within_two_seconds_by_a_ticket_good_once() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(700_100_200, "acme_live_bot").await;
    let admin_key = omnichat_tests::ADMIN_KEY;
    let used = ticket(&app, admin_key).await;
    let (mut page, _) = tokio_tungstenite::connect_async(stream_url(&app, &used)).await.expect("opens");

    let path = format!("/webhooks/telegram/{}", channel["id"].as_str().expect("id"));
    let sent_at = tokio::time::Instant::now();
    let status =
        app.deliver(&path, &[(SECRET_HEADER, &secret)], telegram_update(4242, 1, "Where is my order?")).await;
    assert_eq!(status, 200);
    let pushes = until(&mut page, Duration::from_secs(2), |p| p["type"] == "message_received").await;
    let took = sent_at.elapsed();
    let received = pushes.last().expect("the push");
    let dialog = app.only_dialog().await;
    assert_eq!(received["dialog_id"], dialog.as_str(), "{pushes:?}");
    assert!(received["message_id"].is_string(), "{received}");
    assert!(
        pushes.iter().any(|p| p["type"] == "dialog_opened" && p["dialog_id"] == dialog.as_str()),
        "{pushes:?}"
    );
    // What changed, never its content: the page reads that through the API with its key.
    let text = serde_json::to_string(&pushes).expect("json");
    assert!(!text.contains("Where is my order") && !text.contains("tenant_id"), "{text}");
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // The ticket is used up; none, an unknown one, or a request that is no WebSocket are refused.
    match tokio_tungstenite::connect_async(stream_url(&app, &used)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a used ticket opened the stream: {:?}", other.map(|(_, r)| r.status())),
    }
    let (status, body) = read(app.http.get(app.url("/v1/stream")).send().await.expect("GET")).await;
    assert_eq!(status, 401, "{body}");
    let fresh = ticket(&app, admin_key).await;
    let plain = app.http.get(app.url(&format!("/v1/stream?ticket={fresh}"))).send().await.expect("GET");
    assert_eq!(plain.status().as_u16(), 426, "a plain GET uses the ticket up and asks for a WebSocket");
    let (status, _) = app.with_key("not-a-key", Method::POST, "/v1/stream/tickets", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_employee_is_told_only_of_the_dialogs_they_may_see_and_nobody_of_another_tenants() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(700_100_300, "acme_live_bot").await;
    let channel_id = channel["id"].as_str().expect("id").to_owned();
    app.fakes.telegram_sends().await;
    let (anna, anna_key) = app.employee_with_key("Anna", "online").await;
    let (_boris, boris_key) = app.employee_with_key("Boris", "online").await;
    let (status, body) = app
        .http_put(
            &format!("/v1/channels/{channel_id}"),
            &json!({"settings": {"handling": {"employee_id": anna}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, other) =
        app.as_operator(Method::POST, "/v1/tenants", Some(&json!({"name": "Other business"}))).await;
    assert_eq!(status, 201, "{other}");
    let other_admin = other["admin_key"].as_str().expect("admin key").to_owned();

    let mut anna_page = open(&app, &anna_key).await;
    let mut boris_page = open(&app, &boris_key).await;
    let mut other_page = open(&app, &other_admin).await;

    let path = format!("/webhooks/telegram/{channel_id}");
    let status = app.deliver(&path, &[(SECRET_HEADER, &secret)], telegram_update(5151, 1, "Hello")).await;
    assert_eq!(status, 200);
    // The dialog's first message came before it was Anna's: she is told it is hers, and reads it then.
    let pushes = until(&mut anna_page, Duration::from_secs(2), |p| p["type"] == "dialog_assigned").await;
    let dialog = app.only_dialog().await;
    assert_eq!(pushes.last().expect("push")["employee_id"], anna.as_str(), "{pushes:?}");
    assert_eq!(pushes.last().expect("push")["dialog_id"], dialog.as_str(), "{pushes:?}");
    assert!(
        pushes.iter().all(|p| p["type"] != "dialog_opened"),
        "employees are not told of unrouted dialogs"
    );
    let status =
        app.deliver(&path, &[(SECRET_HEADER, &secret)], telegram_update(5151, 2, "Are you there?")).await;
    assert_eq!(status, 200);
    let pushes = until(&mut anna_page, Duration::from_secs(2), |p| p["type"] == "message_received").await;
    assert_eq!(pushes.last().expect("push")["dialog_id"], dialog.as_str(), "{pushes:?}");

    // Anna replies: the send's outcome reaches her page too.
    let (status, reply) = app
        .with_key(
            &anna_key,
            Method::POST,
            &format!("/v1/dialogs/{dialog}/messages"),
            Some(&json!({"text": "Hi!"})),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    let sent = until(&mut anna_page, Duration::from_secs(2), |p| p["type"] == "message_sent").await;
    assert_eq!(sent.last().expect("push")["message_id"], reply["id"]);
    // What the page reads then: the dialog's newest message first, for the list's preview.
    let (status, newest) = app
        .with_key(&anna_key, Method::GET, &format!("/v1/dialogs/{dialog}/messages?order=desc&limit=1"), None)
        .await;
    assert_eq!(status, 200, "{newest}");
    assert_eq!(newest["items"].as_array().map(Vec::len), Some(1), "{newest}");
    assert_eq!(
        (newest["items"][0]["id"].clone(), newest["items"][0]["status"].as_str()),
        (reply["id"].clone(), Some("sent"))
    );
    let (status, _) = app.get(&format!("/v1/dialogs/{dialog}/messages?order=sideways")).await;
    assert_eq!(status, 400);

    let boris_saw = drain(&mut boris_page, Duration::from_millis(500)).await;
    assert!(
        boris_saw.iter().all(|p| p.get("dialog_id").is_none() && p["type"] == "queue_changed"),
        "Boris may not see Anna's dialog: {boris_saw:?}"
    );
    let other_saw = drain(&mut other_page, Duration::from_millis(200)).await;
    assert!(other_saw.is_empty(), "another tenant's admin was told: {other_saw:?}");
}
