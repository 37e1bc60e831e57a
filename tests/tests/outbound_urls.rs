//! The outbound address policy end to end: a chatbot webhook on this machine (127.0.0.1) is refused when
//! saved and never called without the development setting (`OMNICHAT_ALLOW_LOOPBACK_PROVIDERS=1`, which
//! `TestApp` turns on like the local runner's setting does), and works with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use omnichat::domain::{ChatbotId, TenantId};
use omnichat::net::OutboundPolicy;
use omnichat::ports::store::{Condition, Write};
use omnichat::repo;
use omnichat_tests::{TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// A chatbot service that answers every forwarded message.
async fn chatbot_service() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text": "Hello from the bot"})))
        .mount(&server)
        .await;
    server
}

/// A Telegram channel whose dialogs the chatbot handles; answers (channel id, webhook secret).
async fn channel_handled_by(app: &TestApp, chatbot_id: &str, bot_id: i64) -> (String, String) {
    let (channel, secret) = app.connect_telegram(bot_id, "outbound_bot").await;
    Mock::given(path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"message_id": 9001, "date": 1700000000, "chat": {"id": 1, "type": "private"}}}),
        ))
        .mount(&app.fakes.telegram)
        .await;
    let id = channel["id"].as_str().expect("id").to_owned();
    // Off hours all week, the chatbot takes the dialogs (a chatbot cannot handle Telegram dialogs in hours).
    let (status, body) = app.http_put("/v1/working-hours", &json!({"time_zone": "UTC", "weekly": {}})).await;
    assert_eq!(status, 200, "{body}");
    let (status, anna) = app.post("/v1/employees", &json!({"name": "Anna", "status": "online"})).await;
    assert_eq!(status, 201, "{anna}");
    let settings = json!({
        "handling": {"employee_id": anna["id"]},
        "off_hours": {"chatbot_id": chatbot_id, "auto_replies": false}
    });
    let (status, body) = app.http_put(&format!("/v1/channels/{id}"), &json!({ "settings": settings })).await;
    assert_eq!(status, 200, "{body}");
    (id, secret)
}

async fn customer_writes(app: &TestApp, channel_id: &str, secret: &str) {
    let status = app
        .deliver(
            &format!("/webhooks/telegram/{channel_id}"),
            &[(SECRET_HEADER, secret)],
            fixture("telegram_text.json"),
        )
        .await;
    assert_eq!(status, 200);
}

async fn sent_texts(app: &TestApp) -> Vec<String> {
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok()?["text"].as_str().map(str::to_owned))
        .collect()
}

/// The reasons of the failed chatbot calls logged for one dialog (the log capture is shared by the tests
/// of this binary; the dialog id tells this test's lines apart).
fn refusals_logged_for(dialog_id: &str) -> Vec<String> {
    omnichat_tests::logs::captured()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["fields"]["message"] == "chatbot call failed" && line["fields"]["dialog"] == dialog_id
        })
        .filter_map(|line| line["fields"]["reason"].as_str().map(str::to_owned))
        .collect()
}

fn assert_refused(status: u16, body: &Value, url: &str) {
    assert_eq!(status, 422, "{url}: {body}");
    assert_eq!(body["error"]["field"], "webhook_url", "{url}: {body}");
    let message = body["error"]["message"].as_str().expect("a message");
    let (english, russian) = message.split_once(" / ").expect("English / Russian");
    assert!(english.is_ascii() && russian.chars().any(|c| ('а'..='я').contains(&c)), "{message}");
}

#[tokio::test]
async fn without_the_development_setting_a_chatbot_webhook_on_this_machine_is_refused_and_never_called() {
    let app = TestApp::spawn_with_outbound_policy(OutboundPolicy::strict()).await;
    let service = chatbot_service().await;
    let port = service.address().port();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://localhost:{port}/hook"),
        format!("https://[::1]:{port}/hook"),
        format!("https://[::ffff:127.0.0.1]:{port}/hook"),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://[::ffff:169.254.169.254]/".to_owned(),
        "https://10.0.0.1/hook".to_owned(),
        "https://100.64.0.1/hook".to_owned(),
        "https://[fd00::1]/hook".to_owned(),
        "https://0.0.0.0/hook".to_owned(),
    ] {
        let (status, body) = app.post("/v1/chatbots", &json!({"name": "Bot", "webhook_url": url})).await;
        assert_refused(status, &body, &url);
    }
    // A public-looking name is accepted (it does not resolve here; the call-time check guards it) ...
    let (status, bot) =
        app.post("/v1/chatbots", &json!({"name": "Bot", "webhook_url": "https://bots.example/hook"})).await;
    assert_eq!(status, 201, "{bot}");
    let chatbot_id = bot["id"].as_str().expect("id").to_owned();
    // ... and cannot be changed to this machine.
    let loopback = format!("http://127.0.0.1:{port}/hook");
    let (status, body) =
        app.http_put(&format!("/v1/chatbots/{chatbot_id}"), &json!({"webhook_url": loopback})).await;
    assert_refused(status, &body, &loopback);

    // Call time: a URL on this machine that got into the store anyway (saved before the policy, restored
    // from a backup; or a name whose DNS answer changed since it was saved) is never even connected to.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let listening = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let ctx = &app.running().context;
    let (_, tenant) = app.get("/v1/tenant").await;
    let tenant = TenantId::parse(tenant["id"].as_str().expect("tenant id")).expect("tenant id");
    let id = ChatbotId::parse(&chatbot_id).expect("chatbot id");
    let mut chatbot =
        repo::get_chatbot(ctx.store.as_ref(), &tenant, &id).await.expect("read").expect("the chatbot");
    chatbot.webhook_url = format!("https://localhost:{listening}/hook");
    let item = repo::to_item(&chatbot, &repo::chatbot_key(&tenant, &id), &[]).expect("item");
    ctx.store.transact(vec![Write::Put { item, condition: Condition::Always }]).await.expect("planted");

    let (channel_id, secret) = channel_handled_by(&app, &chatbot_id, 777_300_001).await;
    customer_writes(&app, &channel_id, &secret).await;
    let (status, dialogs) = app.get("/v1/dialogs").await;
    assert_eq!(status, 200, "{dialogs}");
    let dialog_id = dialogs["items"][0]["id"].as_str().expect("the customer's dialog").to_owned();
    // The call was attempted and refused by the outbound policy: forwarding logs the refusal for this
    // dialog. Without this, "never called" would also hold for a flow that never tries to call.
    let mut refusals = Vec::new();
    for _ in 0..100 {
        refusals = refusals_logged_for(&dialog_id);
        if !refusals.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!refusals.is_empty(), "no chatbot call was attempted for dialog {dialog_id}");
    assert!(refusals.iter().all(|reason| reason.contains("outbound policy")), "{refusals:?}");
    // Forwarding runs on the router's event and again on the ticks (1 s): give it a few more.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a connection to the refused address");
    assert!(service.received_requests().await.unwrap_or_default().is_empty(), "the chatbot was called");
    assert!(sent_texts(&app).await.is_empty());
}

#[tokio::test]
async fn with_the_development_setting_a_chatbot_on_this_machine_gets_the_messages_and_answers() {
    let app = TestApp::spawn().await;
    let service = chatbot_service().await;
    let url = format!("http://127.0.0.1:{}/hook", service.address().port());
    let (status, bot) = app.post("/v1/chatbots", &json!({"name": "Bot", "webhook_url": url})).await;
    assert_eq!(status, 201, "{bot}");
    // Other internal ranges stay refused even so.
    let (status, body) =
        app.post("/v1/chatbots", &json!({"name": "Bot", "webhook_url": "https://169.254.169.254/x"})).await;
    assert_refused(status, &body, "https://169.254.169.254/x");

    let (channel_id, secret) = channel_handled_by(&app, bot["id"].as_str().expect("id"), 777_300_002).await;
    customer_writes(&app, &channel_id, &secret).await;
    for _ in 0..100 {
        if !sent_texts(&app).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent_texts(&app).await, vec!["Hello from the bot".to_owned()]);
    let forwarded = service.received_requests().await.unwrap_or_default();
    assert_eq!(forwarded.len(), 1);
}
