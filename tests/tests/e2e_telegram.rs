//! End to end over HTTP against the local runner: a Telegram bot is connected against a fake Telegram,
//! its updates arrive at the webhook, and the API shows one normalized message in one dialog.

use omnichat_tests::{TestApp, fixture};
use serde_json::{Value, json};

const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

fn webhook_path(channel: &Value) -> String {
    format!("/webhooks/telegram/{}", channel["id"].as_str().expect("channel id"))
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
async fn connecting_a_bot_names_it_registers_the_webhook_and_never_shows_the_token() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(777_000_111, "acme_support_bot").await;
    assert_eq!(channel["provider"], "telegram");
    assert_eq!(channel["account"]["name"], "acme_support_bot");
    assert_eq!(channel["status"], "active");
    let url = format!("https://omnichat.example.test/webhooks/telegram/{}", channel["id"].as_str().unwrap());
    assert_eq!(channel["webhook_url"], url.as_str());
    assert_eq!(channel["credentials"]["token"], "****Dsaw");
    let text = channel.to_string();
    assert!(!text.contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"), "token leaked: {text}");
    assert!(!text.contains(&secret), "webhook secret leaked: {text}");
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    let set_webhook =
        requests.iter().find(|r| r.url.path().ends_with("/setWebhook")).expect("setWebhook called");
    let body: Value = serde_json::from_slice(&set_webhook.body).expect("json");
    assert_eq!(body["url"], url.as_str());
    assert!(secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_alphanumeric()));
    let (status, listed) = app.get("/v1/channels").await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["id"], channel["id"]);
}

#[tokio::test]
async fn a_wrong_token_is_bot_not_found_and_saves_nothing() {
    let app = TestApp::spawn().await;
    wiremock::Mock::given(wiremock::matchers::path_regex(r"^/bot.*/getMe$"))
        .respond_with(
            wiremock::ResponseTemplate::new(401)
                .set_body_json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
        .mount(&app.fakes.telegram)
        .await;
    let (status, body) = app
        .post("/v1/channels", &json!({"provider": "telegram", "name": "x", "credentials": {"token": "123:wrong-token-wrong-token-wrong-token"}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "credentials.token");
    assert!(body["error"]["message"].as_str().unwrap().contains("Bot not found"));
    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test]
async fn twenty_identical_deliveries_at_once_are_one_message_in_one_dialog_and_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(777_000_222, "acme_bot").await;
    let path = webhook_path(&channel);
    let body = fixture("telegram_text.json");
    let headers = [(SECRET_HEADER, secret.as_str())];
    let deliveries = (0..20).map(|_| app.deliver(&path, &headers, body.clone()));
    let statuses = futures::future::join_all(deliveries).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let found = dialogs(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let dialog = &found[0];
    assert_eq!(dialog["status"], "open");
    assert_eq!(dialog["customer"]["external_id"], "1111111");
    assert_eq!(dialog["customer"]["name"], "Test Firstname Test Lastname");
    let dialog_id = dialog["id"].as_str().expect("id").to_owned();
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["direction"], "in");
    assert_eq!(stored[0]["text"], "/start");
    assert_eq!(stored[0]["provider_message_id"], "1365");
    assert_eq!(stored[0]["sent_at"], "2015-09-07T17:05:32Z");

    // A second, different message of the same customer joins the same dialog.
    assert_eq!(app.deliver(&path, &[(SECRET_HEADER, &secret)], fixture("telegram_document.json")).await, 200);
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["attachments"][0]["kind"], "file");
    assert_eq!(stored[1]["attachments"][0]["name"], "Testfile.pdf");

    app.restart().await;
    let after = dialogs(&app).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], dialog_id.as_str());
    assert_eq!(messages(&app, &dialog_id).await.len(), 2);
    // The webhook secret and the token survive too: the same delivery is still recognised.
    assert_eq!(app.deliver(&path, &[(SECRET_HEADER, &secret)], body).await, 200);
    assert_eq!(messages(&app, &dialog_id).await.len(), 2);
}

#[tokio::test]
async fn unverified_or_malformed_deliveries_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(777_000_333, "acme_bot").await;
    let path = webhook_path(&channel);
    let body = fixture("telegram_text.json");
    assert_eq!(app.deliver(&path, &[(SECRET_HEADER, "wrong")], body.clone()).await, 401);
    assert_eq!(app.deliver(&path, &[], body.clone()).await, 401);
    assert_eq!(app.deliver(&path, &[(SECRET_HEADER, &secret)], b"{not json".to_vec()).await, 400);
    assert_eq!(app.deliver(&path, &[(SECRET_HEADER, &secret)], br#"{"message": {}}"#.to_vec()).await, 400);
    // Another bot's channel id, an unknown channel, an unknown provider: not found.
    let unknown = "/webhooks/telegram/0190a6a0-0000-7000-8000-000000000000";
    assert_eq!(app.deliver(unknown, &[(SECRET_HEADER, &secret)], body.clone()).await, 404);
    let other_provider = path.replace("/telegram/", "/viber/");
    assert_eq!(app.deliver(&other_provider, &[(SECRET_HEADER, &secret)], body.clone()).await, 404);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());
    // An update type the product does not use is acknowledged and ignored.
    let poll = br#"{"update_id": 5, "poll": {"id": "1", "question": "?", "options": []}}"#.to_vec();
    assert_eq!(app.deliver(&path, &[(SECRET_HEADER, &secret)], poll).await, 200);
    assert_eq!(dialogs(&app).await, Vec::<Value>::new());
}

#[tokio::test]
async fn the_api_needs_a_key_and_answers_errors_in_its_shape() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/v1/dialogs")).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 401);
    let response = app.http.get(app.url("/v1/dialogs")).bearer_auth("ock_wrong").send().await.expect("GET");
    let (status, body) = omnichat_tests::read(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = app.get("/v1/dialogs/not-an-id").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let response = app
        .http
        .post(app.url("/v1/channels"))
        .bearer_auth(omnichat_tests::ADMIN_KEY)
        .body("{oops")
        .send()
        .await
        .expect("POST");
    let (status, body) = omnichat_tests::read(response).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("malformed_json")));
    let (status, body) = app.get("/v1/dialogs?limit=100000").await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("limit")));
}

#[tokio::test]
async fn an_employee_reply_goes_out_through_send_message_with_buttons() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(777_000_444, "acme_bot").await;
    wiremock::Mock::given(wiremock::matchers::path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"message_id": 9001, "date": 1700000000, "chat": {"id": 1111111, "type": "private"}}}),
        ))
        .mount(&app.fakes.telegram)
        .await;
    assert_eq!(
        app.deliver(&webhook_path(&channel), &[(SECRET_HEADER, &secret)], fixture("telegram_text.json"))
            .await,
        200
    );
    let dialog_id = dialogs(&app).await[0]["id"].as_str().expect("id").to_owned();
    let (status, sent) = app
        .post(
            &format!("/v1/dialogs/{dialog_id}/messages"),
            &json!({"text": "Hello! How can we help?", "buttons": ["Order", "Delivery"]}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["direction"], "out");
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["provider_message_id"], "9001");
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    let sends: Vec<Value> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["chat_id"], 1111111);
    assert_eq!(sends[0]["text"], "Hello! How can we help?");
    assert_eq!(sends[0]["reply_markup"]["inline_keyboard"][0][0]["text"], "Order");
    assert_eq!(sends[0]["reply_markup"]["inline_keyboard"][1][0]["callback_data"], "Delivery");
    let stored = messages(&app, &dialog_id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["status"], "sent");
}

#[tokio::test]
async fn a_throttled_reply_stays_pending_and_goes_out_once_after_retry_after() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(777_000_555, "acme_bot").await;
    wiremock::Mock::given(wiremock::matchers::path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(wiremock::ResponseTemplate::new(429).set_body_json(
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 2", "parameters": {"retry_after": 2}}),
        ))
        .up_to_n_times(1)
        .mount(&app.fakes.telegram)
        .await;
    wiremock::Mock::given(wiremock::matchers::path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"message_id": 9002, "date": 1700000000, "chat": {"id": 1111111, "type": "private"}}}),
        ))
        .mount(&app.fakes.telegram)
        .await;
    assert_eq!(
        app.deliver(&webhook_path(&channel), &[(SECRET_HEADER, &secret)], fixture("telegram_text.json"))
            .await,
        200
    );
    let dialog_id = dialogs(&app).await[0]["id"].as_str().expect("id").to_owned();
    let (status, sent) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "One moment"})).await;
    let answered = std::time::Instant::now();
    assert_eq!((status, sent["status"].as_str()), (201, Some("pending")), "{sent}");
    // The local timer ticks every second; Telegram asked for 2 s; bounded wait.
    let mut status = String::new();
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = messages(&app, &dialog_id).await[1]["status"].as_str().unwrap_or_default().to_owned();
        if status == "sent" {
            break;
        }
    }
    assert_eq!(status, "sent");
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    let sends: Vec<_> = requests.iter().filter(|r| r.url.path().ends_with("/sendMessage")).collect();
    assert_eq!(sends.len(), 2, "one throttled try, one successful send, nothing more");
    let waited = answered.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(1900),
        "sent again after {waited:?}, before retry_after"
    );
}
