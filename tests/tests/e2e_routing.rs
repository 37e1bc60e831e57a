//! End to end over HTTP against the local runner: customers write to a Telegram bot, the router (on the
//! in-process bus) hands the dialogs to employees, groups or a chatbot, and employees work them through
//! `/v1/me/*`, accept and transfer. Plus the sweep for a dialog whose `DialogOpened` was dropped.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use omnichat::adapters::embedded::{FileSecretStore, RedbStore};
use omnichat::domain::people::{EmployeeChanges, EmployeeStatus};
use omnichat::domain::{Customer, DialogStatus, Features, InboundKind, InboundMessage};
use omnichat::ports::clock::ManualClock;
use omnichat::ports::events::{DomainEvent, EventBus, EventError};
use omnichat::repo;
use omnichat::usecases::auth::{Principal, Role};
use omnichat::usecases::ingest::{self, IngestOutcome};
use omnichat::usecases::{Context, Providers, people, routing, tenants};
use omnichat_tests::{TestApp, read, telegram_update};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// A customer's text message, as Telegram delivers it.
struct Bot {
    channel_id: String,
    secret: String,
}

impl Bot {
    async fn connect(app: &TestApp, bot_id: i64) -> Self {
        let (channel, secret) = app.connect_telegram(bot_id, "acme_bot").await;
        app.fakes.telegram_sends().await;
        Self { channel_id: channel["id"].as_str().expect("id").to_owned(), secret }
    }

    async fn settings(&self, app: &TestApp, settings: Value) {
        let (status, body) = app
            .http_put(&format!("/v1/channels/{}", self.channel_id), &json!({ "settings": settings }))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// A customer writes; answers the dialog's id.
    async fn customer_writes(&self, app: &TestApp, customer: i64, update_id: i64, text: &str) -> String {
        let path = format!("/webhooks/telegram/{}", self.channel_id);
        let status = app
            .deliver(&path, &[(SECRET_HEADER, &self.secret)], telegram_update(customer, update_id, text))
            .await;
        assert_eq!(status, 200);
        let (_, listed) = app.get("/v1/dialogs?limit=500").await;
        listed["items"]
            .as_array()
            .and_then(|items| {
                items.iter().find(|d| d["customer"]["external_id"] == customer.to_string().as_str())
            })
            .and_then(|d| d["id"].as_str())
            .expect("the customer's dialog")
            .to_owned()
    }
}

/// The texts Telegram was asked to send, with their buttons.
async fn sent(app: &TestApp) -> Vec<(String, Vec<String>)> {
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("json");
            let buttons = body["reply_markup"]["inline_keyboard"]
                .as_array()
                .map(|rows| {
                    rows.iter().filter_map(|row| row[0]["text"].as_str().map(str::to_owned)).collect()
                })
                .unwrap_or_default();
            (body["text"].as_str().unwrap_or_default().to_owned(), buttons)
        })
        .collect()
}

async fn group(app: &TestApp, members: &[&str], distribution: &str) -> String {
    let (code, body) = app
        .post(
            "/v1/groups",
            &json!({"name": "Support", "members": members, "distribution": distribution, "wait_seconds": 600}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// A request with an employee's key.
async fn as_employee(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = app.url(path);
    let request = match method {
        "GET" => app.http.get(url),
        "PUT" => app.http.put(url),
        _ => app.http.post(url),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    read(request.bearer_auth(key).send().await.expect("request")).await
}

/// Waits (bounded) until the admin's view of the dialog satisfies `done`.
async fn dialog_until(app: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, dialog) = app.get(&format!("/v1/dialogs/{id}")).await;
        assert_eq!(status, 200, "{dialog}");
        if done(&dialog) {
            return dialog;
        }
        last = dialog;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the dialog never got {what}: {last}");
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|d| d["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_new_dialog_reaches_a_member_who_works_it_from_the_workspace() {
    let app = TestApp::spawn().await;
    let bot = Bot::connect(&app, 777_100_001).await;
    let (anna, anna_key) = app.employee_with_key("Anna", "online").await;
    let (boris, boris_key) = app.employee_with_key("Boris", "online").await;
    let (carl, carl_key) = app.employee_with_key("Carl", "online").await;
    let support = group(&app, &[&anna, &boris], "round_robin").await;
    bot.settings(&app, json!({"handling": {"group_id": support}})).await;

    let id = bot.customer_writes(&app, 5001, 1, "Hello").await;
    let dialog = dialog_until(&app, &id, "an assignee", |d| d["status"] == "assigned").await;
    assert_eq!(dialog["group_id"], support.as_str());
    let (first, first_key, second, second_key) = if dialog["assignee_id"] == anna.as_str() {
        (&anna, &anna_key, &boris, &boris_key)
    } else {
        (&boris, &boris_key, &anna, &anna_key)
    };
    assert_eq!(dialog["assignee_id"], first.as_str());
    let (status, mine) = as_employee(&app, first_key, "GET", "/v1/me/dialogs", None).await;
    assert_eq!((status, ids(&mine)), (200, vec![id.clone()]), "{mine}");
    // Only the assignee (and admins) may read it; the others get 404.
    for key in [second_key, &carl_key] {
        let (status, _) = as_employee(&app, key, "GET", &format!("/v1/dialogs/{id}"), None).await;
        assert_eq!(status, 404);
    }
    let (status, accepted) =
        as_employee(&app, first_key, "POST", &format!("/v1/dialogs/{id}/accept"), None).await;
    assert_eq!((status, accepted["assignee_id"].as_str()), (200, Some(first.as_str())), "{accepted}");

    // Transferred to the group: the other member has it, not whoever passed it on.
    let (status, moved) = as_employee(
        &app,
        first_key,
        "POST",
        &format!("/v1/dialogs/{id}/transfer"),
        Some(json!({"group_id": support})),
    )
    .await;
    assert_eq!((status, moved["assignee_id"].as_str()), (200, Some(second.as_str())), "{moved}");
    let (_, mine) = as_employee(&app, first_key, "GET", "/v1/me/dialogs", None).await;
    assert!(ids(&mine).is_empty(), "{mine}");
    // Transferred to a colleague outside the group.
    let (status, moved) = as_employee(
        &app,
        second_key,
        "POST",
        &format!("/v1/dialogs/{id}/transfer"),
        Some(json!({"employee_id": carl})),
    )
    .await;
    assert_eq!((status, moved["assignee_id"].as_str()), (200, Some(carl.as_str())), "{moved}");
    let (_, mine) = as_employee(&app, &carl_key, "GET", "/v1/me/dialogs", None).await;
    assert_eq!(ids(&mine), vec![id.clone()]);

    // Bad transfers: named fields, nothing changes.
    let transfer = format!("/v1/dialogs/{id}/transfer");
    let (status, body) = app.post(&transfer, &json!({"employee_id": anna, "group_id": support})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("body")), "{body}");
    let (status, body) =
        app.post(&transfer, &json!({"group_id": "0190a6a0-0000-7000-8000-000000000000"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("group_id")), "{body}");
    let (status, body) = app.post(&transfer, &json!({"queue": "x"})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("queue")), "{body}");
    let (status, _) =
        as_employee(&app, first_key, "POST", &transfer, Some(json!({"employee_id": anna}))).await;
    assert_eq!(status, 404, "no longer the first member's dialog");
    let (_, after) = app.get(&format!("/v1/dialogs/{id}")).await;
    assert_eq!(after["assignee_id"], carl.as_str());
    // The workspace is an employee's: an admin key has no "me".
    let (status, body) = app.get("/v1/me/dialogs").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("employee_key_required")), "{body}");
}

#[tokio::test]
async fn a_queued_dialog_is_assigned_when_a_member_comes_online() {
    let app = TestApp::spawn().await;
    let bot = Bot::connect(&app, 777_100_002).await;
    let (anna, anna_key) = app.employee_with_key("Anna", "offline").await;
    let (_carl, carl_key) = app.employee_with_key("Carl", "online").await;
    let support = group(&app, &[&anna], "least_busy").await;
    bot.settings(&app, json!({"handling": {"group_id": support}})).await;

    let id = bot.customer_writes(&app, 5002, 1, "Anyone there?").await;
    let dialog = dialog_until(&app, &id, "a queue", |d| d["group_id"] == support.as_str()).await;
    assert_eq!((dialog["status"].as_str(), &dialog["assignee_id"]), (Some("open"), &Value::Null));
    let (status, queue) = as_employee(&app, &anna_key, "GET", "/v1/me/queue", None).await;
    assert_eq!((status, ids(&queue)), (200, vec![id.clone()]), "{queue}");
    let (status, _) = as_employee(&app, &anna_key, "GET", &format!("/v1/dialogs/{id}"), None).await;
    assert_eq!(status, 200, "a member reads what waits in the group's queue");
    let (_, queue) = as_employee(&app, &carl_key, "GET", "/v1/me/queue", None).await;
    assert!(ids(&queue).is_empty(), "not Carl's group: {queue}");

    let (status, body) =
        as_employee(&app, &anna_key, "PUT", "/v1/me/status", Some(json!({"status": "busy"}))).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("status")), "{body}");
    let (status, body) = as_employee(
        &app,
        &anna_key,
        "PUT",
        "/v1/me/status",
        Some(json!({"status": "online", "max_dialogs": 9})),
    )
    .await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("max_dialogs")), "{body}");
    let (status, me) =
        as_employee(&app, &anna_key, "PUT", "/v1/me/status", Some(json!({"status": "online"}))).await;
    assert_eq!((status, me["status"].as_str()), (200, Some("online")), "{me}");
    let (_, mine) = as_employee(&app, &anna_key, "GET", "/v1/me/dialogs", None).await;
    assert_eq!(ids(&mine), vec![id.clone()]);
    let (_, dialog) = app.get(&format!("/v1/dialogs/{id}")).await;
    assert_eq!(
        (dialog["status"].as_str(), dialog["assignee_id"].as_str()),
        (Some("assigned"), Some(anna.as_str()))
    );
}

#[tokio::test]
async fn all_at_once_the_first_member_to_accept_has_the_dialog() {
    let app = TestApp::spawn().await;
    let bot = Bot::connect(&app, 777_100_003).await;
    let mut members = Vec::new();
    for name in ["Anna", "Boris", "Vera"] {
        members.push(app.employee_with_key(name, "online").await);
    }
    let member_ids: Vec<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
    let support = group(&app, &member_ids, "all_at_once").await;
    bot.settings(&app, json!({"handling": {"group_id": support}})).await;
    let id = bot.customer_writes(&app, 5003, 1, "Hi").await;
    dialog_until(&app, &id, "an offer", |d| d["group_id"] == support.as_str()).await;
    for (_, key) in &members {
        let (_, queue) = as_employee(&app, key, "GET", "/v1/me/queue", None).await;
        assert_eq!(ids(&queue), vec![id.clone()], "offered to everyone");
    }
    let accept = format!("/v1/dialogs/{id}/accept");
    let accepts = members.iter().map(|(_, key)| as_employee(&app, key, "POST", &accept, None));
    let answers = futures::future::join_all(accepts).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409, 409], "{answers:?}");
    let (_, winner) = answers.iter().find(|(status, _)| *status == 200).expect("a winner");
    let (_, dialog) = app.get(&format!("/v1/dialogs/{id}")).await;
    assert_eq!(dialog["assignee_id"], winner["assignee_id"]);
}

/// A chatbot service: answers each forwarded message in turn, then keeps answering the last.
async fn chatbot(app: &TestApp, answers: &[Value]) -> (MockServer, String) {
    let (server, id, _) = signed_chatbot(app, answers).await;
    (server, id)
}

/// `chatbot`, and the signing secret the 201 showed.
async fn signed_chatbot(app: &TestApp, answers: &[Value]) -> (MockServer, String, String) {
    let server = MockServer::start().await;
    for (i, answer) in answers.iter().enumerate() {
        let mock = Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer));
        let mock = if i + 1 < answers.len() { mock.up_to_n_times(1) } else { mock };
        mock.mount(&server).await;
    }
    let (status, body) = app
        .post("/v1/chatbots", &json!({"name": "Night bot", "webhook_url": format!("{}/hook", server.uri())}))
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["signing_secret"].as_str().expect("the signing secret, shown once").to_owned();
    omnichat_tests::logs::register_secret(secret.clone());
    (server, body["id"].as_str().expect("id").to_owned(), secret)
}

/// Checks a received call the Standard Webhooks way with `secret`: the three headers, the timestamp within
/// a minute of now, and one `v1,` signature of `{id}.{timestamp}.{body}` keyed with the decoded secret.
/// Answers whether the signature verifies (the headers' shape is asserted).
fn verifies(request: &wiremock::Request, secret: &str) -> bool {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_owned()
    };
    let id = header("webhook-id");
    assert!(!id.is_empty() && !id.contains('.'), "webhook-id {id}");
    let timestamp = header("webhook-timestamp");
    let seconds: i64 = timestamp.parse().expect("unix seconds");
    assert!((Timestamp::now().as_second() - seconds).abs() <= 60, "timestamp {seconds} is not now");
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("whsec_")).expect("base64");
    assert!((24..=64).contains(&key.len()), "{} bytes of key", key.len());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header("webhook-signature").split(' ').any(|signature| signature == expected)
}

async fn closed_all_week(app: &TestApp) {
    let (status, body) = app.http_put("/v1/working-hours", &json!({"time_zone": "UTC", "weekly": {}})).await;
    assert_eq!(status, 200, "{body}");
}

async fn forwarded(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().map(|r| serde_json::from_slice(&r.body).expect("json")).collect()
}

async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(found) = probe().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn off_hours_the_chatbot_answers_with_buttons_no_auto_reply_goes_out_and_it_hands_over() {
    let app = TestApp::spawn().await;
    let bot = Bot::connect(&app, 777_100_004).await;
    let (anna, _) = app.employee_with_key("Anna", "online").await;
    let (server, chatbot_id) = chatbot(
        &app,
        &[
            json!({"text": "We are closed. Shall a person call you back?", "buttons": ["Yes", "No"]}),
            json!({"text": "Passing you to a person.", "handoff": true}),
        ],
    )
    .await;
    closed_all_week(&app).await;
    bot.settings(
        &app,
        json!({
            "handling": {"employee_id": anna},
            "auto_replies": [{"text": "We will answer soon", "delay_seconds": 1}],
            "off_hours": {"chatbot_id": chatbot_id, "auto_replies": false}
        }),
    )
    .await;

    let id = bot.customer_writes(&app, 5004, 1, "Are you open?").await;
    let dialog = dialog_until(&app, &id, "the chatbot", |d| d["chatbot_id"] == chatbot_id.as_str()).await;
    assert_eq!(dialog["assignee_id"], Value::Null);
    let first = until("the chatbot's answer sent", async || {
        let sent = sent(&app).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(
        first,
        vec![(
            "We are closed. Shall a person call you back?".to_owned(),
            vec!["Yes".to_owned(), "No".to_owned()]
        )]
    );
    let calls = forwarded(&server).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0]["event"].as_str(), calls[0]["dialog_id"].as_str()),
        (Some("message"), Some(id.as_str()))
    );
    assert_eq!(calls[0]["message"]["text"], "Are you open?");
    assert_eq!(calls[0]["customer"]["id"], "5004");
    // The auto-reply's delay (1 s) passes over several ticks: with the chatbot on, nothing else goes out.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(sent(&app).await.len(), 1, "{:?}", sent(&app).await);

    // The customer presses "Yes"; the chatbot hands over: Anna has the dialog, even off hours.
    bot.customer_writes(&app, 5004, 2, "Yes").await;
    let dialog = dialog_until(&app, &id, "a person", |d| d["status"] == "assigned").await;
    assert_eq!((dialog["assignee_id"].as_str(), &dialog["chatbot_id"]), (Some(anna.as_str()), &Value::Null));
    let calls = forwarded(&server).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["message"]["text"], "Yes");
    let texts: Vec<String> = sent(&app).await.into_iter().map(|(text, _)| text).collect();
    assert_eq!(texts[1], "Passing you to a person.");
    // Once with people, the chatbot sees nothing more.
    bot.customer_writes(&app, 5004, 3, "Thanks").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(forwarded(&server).await.len(), 2);
}

#[tokio::test]
async fn off_hours_with_auto_replies_the_customer_gets_them_and_no_chatbot_is_called() {
    let app = TestApp::spawn().await;
    let bot = Bot::connect(&app, 777_100_005).await;
    let (anna, _) = app.employee_with_key("Anna", "offline").await;
    let (server, _chatbot_id) = chatbot(&app, &[json!({"text": "never"})]).await;
    closed_all_week(&app).await;
    bot.settings(
        &app,
        json!({
            "handling": {"employee_id": anna},
            "auto_replies": [{"text": "We will answer in the morning", "delay_seconds": 1}],
            "off_hours": {"chatbot_id": null, "auto_replies": true}
        }),
    )
    .await;
    let id = bot.customer_writes(&app, 5005, 1, "Hello?").await;
    let texts = until("the auto-reply", async || {
        let texts: Vec<String> = sent(&app).await.into_iter().map(|(text, _)| text).collect();
        (!texts.is_empty()).then_some(texts)
    })
    .await;
    assert_eq!(texts, vec!["We will answer in the morning".to_owned()]);
    assert!(forwarded(&server).await.is_empty(), "no chatbot off hours without one configured");
    // People get it when they are back: it waits in Anna's queue.
    let (_, dialog) = app.get(&format!("/v1/dialogs/{id}")).await;
    assert_eq!((dialog["status"].as_str(), &dialog["chatbot_id"]), (Some("open"), &Value::Null));
}

#[tokio::test]
async fn every_chatbot_call_is_signed_with_the_secret_shown_once_and_a_rotation_replaces_it() {
    let app = TestApp::spawn().await;
    let bot = Bot::connect(&app, 777_100_006).await;
    let (anna, employee_key) = app.employee_with_key("Anna", "online").await;
    let (server, chatbot_id, secret) = signed_chatbot(&app, &[json!({"text": "Hi from the bot"})]).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    closed_all_week(&app).await;
    let off_hours = |chatbot: Value| json!({"handling": {"employee_id": anna}, "off_hours": {"chatbot_id": chatbot, "auto_replies": false}});
    bot.settings(&app, off_hours(json!(chatbot_id))).await;

    let calls = async |n: usize| {
        until("the chatbot called", async || {
            let requests = server.received_requests().await.unwrap_or_default();
            (requests.len() >= n).then_some(requests)
        })
        .await
    };
    let id = bot.customer_writes(&app, 5006, 1, "Hello").await;
    let first = calls(1).await;
    assert!(verifies(&first[0], &secret), "the first call verifies with the secret of the 201");
    let body: Value = serde_json::from_slice(&first[0].body).expect("json");
    assert_eq!(
        (body["dialog_id"].as_str(), body["message"]["text"].as_str()),
        (Some(id.as_str()), Some("Hello"))
    );
    let header = |r: &wiremock::Request, name: &str| {
        r.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    assert_eq!(header(&first[0], "webhook-id"), body["message"]["id"].as_str().map(|m| format!("msg_{m}")));

    // The secret is never shown again.
    let (status, read) = app.get(&format!("/v1/chatbots/{chatbot_id}")).await;
    assert_eq!(status, 200, "{read}");
    let (status, listed) = app.get("/v1/chatbots").await;
    assert_eq!(status, 200, "{listed}");
    let (status, changed) =
        app.http_put(&format!("/v1/chatbots/{chatbot_id}"), &json!({"name": "Day bot"})).await;
    assert_eq!(status, 200, "{changed}");
    for shown in [&read, &listed["items"][0], &changed] {
        assert_eq!(shown["signing_secret"], Value::Null, "{shown}");
        assert!(!shown.to_string().contains(&secret[6..]), "{shown}");
    }

    // An employee cannot rotate: "not found", and calls still verify with the same secret.
    let rotate = format!("/v1/chatbots/{chatbot_id}/rotate-secret");
    let (status, refused) = as_employee(&app, &employee_key, "POST", &rotate, None).await;
    assert_eq!(status, 404, "{refused}");
    assert_eq!(refused["signing_secret"], Value::Null);
    bot.customer_writes(&app, 5006, 2, "Still there?").await;
    let second = calls(2).await;
    assert!(verifies(&second[1], &secret), "unchanged by the refused rotation");

    // The admin rotates: the new secret is shown once, the next call verifies with it and not the old one.
    let (status, rotated) = app.post(&rotate, &json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["signing_secret"].as_str().expect("the new secret").to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret, "{new_secret}");
    bot.customer_writes(&app, 5006, 3, "And now?").await;
    let third = calls(3).await;
    assert!(verifies(&third[2], &new_secret), "the call after the rotation verifies with the new secret");
    assert!(!verifies(&third[2], &secret), "and not with the old one");
    let (_, read) = app.get(&format!("/v1/chatbots/{chatbot_id}")).await;
    assert_eq!(read["signing_secret"], Value::Null, "{read}");

    // Deleting the chatbot deletes its secret.
    let kept = || std::fs::read_to_string(app.data_dir().join("secrets.json")).unwrap_or_default();
    assert!(kept().contains(&chatbot_id), "the secret store keeps the chatbot's secret");
    bot.settings(&app, off_hours(Value::Null)).await;
    let response = app
        .http
        .delete(app.url(&format!("/v1/chatbots/{chatbot_id}")))
        .bearer_auth(omnichat_tests::ADMIN_KEY)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 204);
    assert!(!kept().contains(&chatbot_id), "the chatbot's secret is deleted with it");
    assert!(!kept().contains(&new_secret[6..]));
}

struct DropEverything;

#[async_trait::async_trait]
impl EventBus for DropEverything {
    async fn publish(&self, _events: &[DomainEvent]) -> Result<(), EventError> {
        Ok(())
    }
}

/// docs/ARCHITECTURE.md invariant 3 on the real ingest path: the bus loses `DialogOpened`, the sweep routes.
#[tokio::test]
async fn a_dialog_whose_opened_event_was_dropped_is_routed_by_the_sweep() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_767_268_800).expect("valid")));
    let ctx = Context::new(
        Arc::new(RedbStore::open(&dir.path().join("db.redb")).expect("store")),
        Arc::new(FileSecretStore::open(&dir.path().join("secrets.json")).expect("secrets")),
        Arc::new(DropEverything),
        clock.clone(),
        Providers::default(),
        "https://example.test",
    );
    let (tenant, _) = tenants::create_tenant(&ctx, "Acme", Features::default()).await.expect("tenant");
    let admin = Principal { tenant_id: tenant.id.clone(), role: Role::Admin, employee_id: None };
    let changes = EmployeeChanges {
        name: Some("Anna".into()),
        status: Some(EmployeeStatus::Online),
        max_dialogs: Some(5),
    };
    let anna = people::create_employee(&ctx, &admin, changes).await.expect("employee").id;
    let channel = omnichat_tests::put_telegram_channel(&ctx, &tenant.id, &anna).await;
    let inbound = InboundMessage {
        dedup_key: "update-1".into(),
        kind: InboundKind::Message,
        customer: Customer { id: "1111".into(), name: None, handle: None },
        provider_message_id: Some("1".into()),
        text: Some("Hello".into()),
        attachments: Vec::new(),
        sent_at: None,
    };
    let IngestOutcome::Stored { dialog_id, .. } =
        ingest::ingest(&ctx, &channel, &inbound).await.expect("stored")
    else {
        panic!("stored")
    };
    let read = async |ctx: &Context| {
        let item = ctx.store.get(&repo::dialog_key(&dialog_id)).await.expect("read").expect("exists");
        repo::from_item::<omnichat::domain::Dialog>(item).expect("dialog")
    };
    assert_eq!(read(&ctx).await.status, DialogStatus::Open);
    assert_eq!(
        routing::sweep(&ctx, omnichat::usecases::due::Run::to_the_end()).await.expect("sweep").dialogs,
        0,
        "not due yet"
    );
    clock.advance(routing::UNROUTED_AFTER + SignedDuration::from_secs(1));
    assert_eq!(
        routing::sweep(&ctx, omnichat::usecases::due::Run::to_the_end()).await.expect("sweep").dialogs,
        1
    );
    let dialog = read(&ctx).await;
    assert_eq!((dialog.status, dialog.assignee_id.as_ref()), (DialogStatus::Assigned, Some(&anna)));
}

/// What a refused reply must leave as it was: the dialog, its messages, and what Telegram was asked.
async fn reply_state(app: &TestApp, dialog: &str) -> (Value, Value, usize) {
    let (status, shown) = app.get(&format!("/v1/dialogs/{dialog}")).await;
    assert_eq!(status, 200, "{shown}");
    let (status, messages) = app.get(&format!("/v1/dialogs/{dialog}/messages")).await;
    assert_eq!(status, 200, "{messages}");
    (shown, messages, sent(app).await.len())
}

#[tokio::test]
async fn every_refused_reply_names_its_rule_and_stores_and_sends_nothing_and_the_owner_closes() {
    let app = TestApp::spawn().await;
    let bot = Bot::connect(&app, 777_100_090).await;
    let (anna, anna_key) = app.employee_with_key("Anna", "away").await;
    let (boris, boris_key) = app.employee_with_key("Boris", "away").await;
    let support = group(&app, &[&anna, &boris], "round_robin").await;
    bot.settings(&app, json!({"handling": {"group_id": support}})).await;
    let dialog = bot.customer_writes(&app, 4242, 1, "Hello, is anyone there?").await;
    // Nobody is online: the dialog waits in the group's queue, which both members see.
    dialog_until(&app, &dialog, "the queue", |d| d["status"] == "open" && d["group_id"] == support.as_str())
        .await;
    let reply = format!("/v1/dialogs/{dialog}/messages");
    let close = format!("/v1/dialogs/{dialog}/close");

    let refused = |key: &'static str, body: Value, status: u16, code: &'static str, field: &'static str| {
        (key, body, status, code, field)
    };
    let (a, b) = ("anna", "boris");
    let before = reply_state(&app, &dialog).await;
    for (who, body, status, code, field) in [
        refused(b, json!({"text": "Let me see"}), 422, "not_assignee", "dialog"),
        refused(a, json!({"text": "Let me see"}), 422, "not_assignee", "dialog"),
    ] {
        let key = if who == a { &anna_key } else { &boris_key };
        let (got, answer) = as_employee(&app, key, "POST", &reply, Some(body)).await;
        assert_eq!(
            (got, &answer["error"]["code"], &answer["error"]["field"]),
            (status, &json!(code), &json!(field)),
            "{answer}"
        );
    }
    let (got, answer) = as_employee(&app, &boris_key, "POST", &close, None).await;
    assert_eq!((got, &answer["error"]["code"]), (422, &json!("not_assignee")), "{answer}");
    assert_eq!(reply_state(&app, &dialog).await, before, "a refused reply or close changed something");

    let (got, accepted) =
        as_employee(&app, &boris_key, "POST", &format!("/v1/dialogs/{dialog}/accept"), None).await;
    assert_eq!((got, accepted["assignee_id"].as_str()), (200, Some(boris.as_str())), "{accepted}");
    let before = reply_state(&app, &dialog).await;
    let eleven: Vec<String> = (1..=11).map(|i| format!("Option {i}")).collect();
    for (key, body, status, code, field) in [
        // Anna no longer sees a dialog that is Boris's.
        (&anna_key, json!({"text": "Mine?"}), 404, "not_found", Value::Null),
        (&boris_key, json!({"text": "   "}), 422, "invalid_text", json!("text")),
        (&boris_key, json!({"text": "x".repeat(4097)}), 422, "invalid_text", json!("text")),
        (
            &boris_key,
            json!({"text": "Pick one", "buttons": eleven}),
            422,
            "too_many_buttons",
            json!("buttons"),
        ),
        (
            &boris_key,
            json!({"text": "Pick one", "buttons": ["Yes", " "]}),
            422,
            "invalid_button",
            json!("buttons[1]"),
        ),
        (
            &boris_key,
            json!({"text": "Pick one", "buttons": ["Yes", "y".repeat(65)]}),
            422,
            "invalid_button",
            json!("buttons[1]"),
        ),
    ] {
        let (got, answer) = as_employee(&app, key, "POST", &reply, Some(body)).await;
        assert_eq!(
            (got, &answer["error"]["code"], &answer["error"]["field"]),
            (status, &json!(code), &field),
            "{answer}"
        );
        assert_eq!(reply_state(&app, &dialog).await, before, "a refused reply changed something: {answer}");
    }
    // The longest text and the most buttons the rules allow go out.
    let (got, answer) = as_employee(
        &app,
        &boris_key,
        "POST",
        &reply,
        Some(json!({"text": "y".repeat(4096), "buttons": (1..=10).map(|i| format!("{i}")).collect::<Vec<_>>()})),
    )
    .await;
    assert!(matches!(got, 201 | 202), "{answer}");
    assert_eq!(reply_state(&app, &dialog).await.2, before.2 + 1, "the accepted reply was sent once");

    // A disconnected channel takes no reply; its dialog stays as it was.
    let (got, disconnected) =
        app.post(&format!("/v1/channels/{}/disconnect", bot.channel_id), &json!({"confirm": true})).await;
    assert_eq!(got, 200, "{disconnected}");
    let before = reply_state(&app, &dialog).await;
    let (got, answer) =
        as_employee(&app, &boris_key, "POST", &reply, Some(json!({"text": "Still there?"}))).await;
    assert_eq!((got, &answer["error"]["code"]), (422, &json!("channel_inactive")), "{answer}");
    assert_eq!(
        reply_state(&app, &dialog).await,
        before,
        "a reply on a disconnected channel changed something"
    );

    // Its owner closes it; a reply to the closed dialog (which would reopen it) is refused on the
    // disconnected channel and changes nothing.
    let (got, closed) = as_employee(&app, &boris_key, "POST", &close, None).await;
    assert_eq!((got, &closed["status"]), (200, &json!("closed")), "{closed}");
    let before = reply_state(&app, &dialog).await;
    assert_eq!(before.0["status"], "closed");
    let (got, answer) =
        as_employee(&app, &boris_key, "POST", &reply, Some(json!({"text": "One more thing"}))).await;
    assert_eq!((got, &answer["error"]["code"]), (422, &json!("channel_inactive")), "{answer}");
    assert_eq!(reply_state(&app, &dialog).await, before, "a reply to a closed dialog changed something");
}
