//! Auto-replies and inactivity close end to end, on the local runner with a clock the test moves: the
//! timers fire when the clock passes them, not when the test sleeps.

use std::sync::Arc;

use jiff::Timestamp;
use omnichat::ports::clock::ManualClock;
use omnichat::usecases::scheduled;
use omnichat_tests::{TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::path_regex;
use wiremock::{Mock, ResponseTemplate};

const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

struct Scene {
    app: TestApp,
    clock: Arc<ManualClock>,
    dialog_id: String,
    webhook: String,
    secret: String,
}

/// A Telegram channel with the given settings, and one customer message on it.
async fn scene(settings: Value) -> Scene {
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_800_000_000).expect("valid")));
    let app = TestApp::spawn_with_clock(clock.clone()).await;
    app.fakes.telegram_accepts_bot(888_000_111, "acme_bot").await;
    Mock::given(path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"message_id": 1, "date": 1800000000, "chat": {"id": 1111111, "type": "private"}}}),
        ))
        .mount(&app.fakes.telegram)
        .await;
    let body = json!({"provider": "telegram", "name": "bot", "settings": settings,
                      "credentials": {"token": "888000111:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}});
    let (status, channel) = app.post("/v1/channels", &body).await;
    assert_eq!(status, 201, "{channel}");
    let secret = app.fakes.telegram_webhook_secret().await;
    let path = format!("/webhooks/telegram/{}", channel["id"].as_str().expect("id"));
    assert_eq!(app.deliver(&path, &[(SECRET_HEADER, &secret)], fixture("telegram_text.json")).await, 200);
    let (_, dialogs) = app.get("/v1/dialogs").await;
    let dialog_id = dialogs["items"][0]["id"].as_str().expect("a dialog").to_owned();
    Scene { app, clock, dialog_id, webhook: path, secret }
}

impl Scene {
    /// Moves the clock and runs one tick of every scheduled job (the runner's own timer may tick too:
    /// overlapping ticks must not matter).
    async fn at(&self, seconds_after_start: i64) {
        let target = Timestamp::from_second(1_800_000_000 + seconds_after_start).expect("valid");
        let now = omnichat::ports::clock::Clock::now(self.clock.as_ref());
        self.clock.advance(target.duration_since(now));
        scheduled::run_local_tick(&self.app.running().context).await;
    }

    async fn sent_texts(&self) -> Vec<String> {
        let requests = self.app.fakes.telegram.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter(|r| r.url.path().ends_with("/sendMessage"))
            .filter_map(|r| {
                serde_json::from_slice::<Value>(&r.body).ok()?["text"].as_str().map(str::to_owned)
            })
            .collect()
    }

    async fn dialog(&self) -> Value {
        self.app.get(&format!("/v1/dialogs/{}", self.dialog_id)).await.1
    }
}

fn two_auto_replies() -> Value {
    json!({"auto_replies": [{"text": "first", "delay_seconds": 5}, {"text": "second", "delay_seconds": 15}]})
}

#[tokio::test]
async fn nobody_answering_gets_both_auto_replies_in_order_once() {
    let s = scene(two_auto_replies()).await;
    s.at(4).await;
    assert_eq!(s.sent_texts().await, Vec::<String>::new());
    s.at(5).await;
    assert_eq!(s.sent_texts().await, ["first"]);
    s.at(14).await;
    s.at(15).await;
    s.at(16).await;
    s.at(600).await;
    assert_eq!(s.sent_texts().await, ["first", "second"]);
    let (_, messages) = s.app.get(&format!("/v1/dialogs/{}/messages", s.dialog_id)).await;
    let texts: Vec<&str> =
        messages["items"].as_array().expect("items").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["/start", "first", "second"]);
}

#[tokio::test]
async fn an_employee_reply_after_seven_seconds_leaves_only_the_first() {
    let s = scene(two_auto_replies()).await;
    s.at(5).await;
    s.at(7).await;
    let (status, reply) =
        s.app.post(&format!("/v1/dialogs/{}/messages", s.dialog_id), &json!({"text": "Hi, Ann here"})).await;
    assert_eq!(status, 201, "{reply}");
    s.at(15).await;
    s.at(60).await;
    assert_eq!(s.sent_texts().await, ["first", "Hi, Ann here"]);
}

#[tokio::test]
async fn a_dialog_idle_past_auto_close_is_closed_and_the_next_message_opens_a_new_one() {
    let s = scene(json!({"auto_close": {"after": 1, "unit": "hours"}})).await;
    s.at(3599).await;
    assert_eq!(s.dialog().await["status"], "open");
    s.at(3600).await;
    assert_eq!(s.dialog().await["status"], "closed");
    let (_, dialogs) = s.app.get("/v1/dialogs?status=closed").await;
    assert_eq!(dialogs["items"].as_array().map(Vec::len), Some(1));
    let headers = [(SECRET_HEADER, s.secret.as_str())];
    assert_eq!(s.app.deliver(&s.webhook, &headers, fixture("telegram_document.json")).await, 200);
    let (_, open) = s.app.get("/v1/dialogs?status=open").await;
    assert_eq!(open["items"].as_array().map(Vec::len), Some(1));
    assert_ne!(open["items"][0]["id"], s.dialog_id.as_str());
}

#[tokio::test]
async fn activity_moves_the_inactivity_deadline() {
    let s = scene(json!({"auto_close": {"after": 1, "unit": "hours"}})).await;
    s.at(1800).await;
    let (status, _) =
        s.app.post(&format!("/v1/dialogs/{}/messages", s.dialog_id), &json!({"text": "still there?"})).await;
    assert_eq!(status, 201);
    s.at(3600).await;
    assert_eq!(s.dialog().await["status"], "open", "the reply at 30 min moved the close to 90 min");
    s.at(1800 + 3600).await;
    assert_eq!(s.dialog().await["status"], "closed");
}

#[tokio::test]
async fn a_send_that_keeps_failing_is_retried_with_backoff_then_marked_failed_with_the_reason() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_800_000_000).expect("valid")));
    let app = TestApp::spawn_with_clock(clock.clone()).await;
    app.fakes.telegram_accepts_bot(888_000_222, "acme_bot").await;
    Mock::given(path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .mount(&app.fakes.telegram)
        .await;
    let body = json!({"provider": "telegram", "name": "bot",
                      "credentials": {"token": "888000222:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}});
    let (_, channel) = app.post("/v1/channels", &body).await;
    let secret = app.fakes.telegram_webhook_secret().await;
    let path = format!("/webhooks/telegram/{}", channel["id"].as_str().expect("id"));
    assert_eq!(app.deliver(&path, &[(SECRET_HEADER, &secret)], fixture("telegram_text.json")).await, 200);
    let (_, dialogs) = app.get("/v1/dialogs").await;
    let dialog_id = dialogs["items"][0]["id"].as_str().expect("a dialog").to_owned();
    let (status, reply) =
        app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "hello?"})).await;
    assert_eq!((status, reply["status"].as_str()), (201, Some("pending")), "{reply}");
    let attempts = || async {
        let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
        requests.iter().filter(|r| r.url.path().ends_with("/sendMessage")).count()
    };
    // Not before its backoff (4 s after the first try)...
    clock.advance(jiff::SignedDuration::from_secs(3));
    scheduled::run_local_tick(&app.running().context).await;
    assert_eq!(attempts().await, 1);
    // ...then once per due retry, up to the bound.
    for _ in 0..10 {
        clock.advance(jiff::SignedDuration::from_secs(600));
        scheduled::run_local_tick(&app.running().context).await;
    }
    assert_eq!(attempts().await, omnichat::usecases::outbox::MAX_ATTEMPTS as usize);
    let (_, messages) = app.get(&format!("/v1/dialogs/{dialog_id}/messages")).await;
    let reply = &messages["items"][1];
    assert_eq!(reply["status"], "failed", "{reply}");
    assert!(reply["failure"].as_str().is_some_and(|f| f.contains("unavailable")), "{reply}");
}
