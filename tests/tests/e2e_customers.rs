//! Customers end to end on the local runner with provider fakes and a clock the test moves: a customer's
//! profile and history, writing first after the auto-close, merging, export and erasure, and WhatsApp's
//! 24-hour window with templates through Infobip.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use omnichat::domain::Provider;
use omnichat::ports::clock::{Clock, ManualClock};
use omnichat::providers::infobip::InfobipClient;
use omnichat::usecases::scheduled;
use omnichat_tests::{TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
const START: i64 = 1_800_000_000;

struct Scene {
    app: TestApp,
    clock: Arc<ManualClock>,
    webhook: String,
    secret: String,
}

/// A Telegram channel closing dialogs after an hour idle, and a fake that takes messages.
async fn telegram_scene() -> Scene {
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(START).expect("valid")));
    let app = TestApp::spawn_with_clock(clock.clone()).await;
    app.fakes.telegram_accepts_bot(888_000_222, "acme_bot").await;
    Mock::given(path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"message_id": 7, "date": START, "chat": {"id": 1111111, "type": "private"}}}),
        ))
        .mount(&app.fakes.telegram)
        .await;
    let body = json!({"provider": "telegram", "name": "bot", "settings": {"auto_close": {"after": 1, "unit": "hours"}},
                      "credentials": {"token": "888000222:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}});
    let (status, channel) = app.post("/v1/channels", &body).await;
    assert_eq!(status, 201, "{channel}");
    let secret = app.fakes.telegram_webhook_secret().await;
    let webhook = format!("/webhooks/telegram/{}", channel["id"].as_str().expect("id"));
    Scene { app, clock, webhook, secret }
}

impl Scene {
    async fn at(&self, seconds_after_start: i64) {
        let target = Timestamp::from_second(START + seconds_after_start).expect("valid");
        self.clock.advance(target.duration_since(self.clock.now()));
        scheduled::run_local_tick(&self.app.running().context).await;
    }

    /// A text from Telegram user `user` (update ids must differ for each delivery).
    async fn customer_writes(&self, user: i64, update: i64, text: &str) {
        let body = json!({"update_id": update, "message": {"message_id": update, "date": START,
            "chat": {"id": user, "type": "private", "first_name": format!("User{user}")},
            "from": {"id": user, "is_bot": false, "first_name": format!("User{user}")}, "text": text}});
        let headers = [(SECRET_HEADER, self.secret.as_str())];
        assert_eq!(self.app.deliver(&self.webhook, &headers, body.to_string().into_bytes()).await, 200);
    }

    async fn dialogs(&self) -> Vec<Value> {
        let (status, body) = self.app.get("/v1/dialogs").await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    async fn customer(&self, id: &str) -> Value {
        let (status, body) = self.app.get(&format!("/v1/customers/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn texts(&self, dialog: &str) -> Vec<String> {
        let (_, body) = self.app.get(&format!("/v1/dialogs/{dialog}/messages")).await;
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn a_returning_customer_is_one_profile_and_writing_first_reopens_the_closed_dialog() {
    let s = telegram_scene().await;
    let headers = [(SECRET_HEADER, s.secret.as_str())];
    assert_eq!(s.app.deliver(&s.webhook, &headers, fixture("telegram_text.json")).await, 200);
    let first = s.dialogs().await;
    assert_eq!(first.len(), 1);
    let dialog_id = first[0]["id"].as_str().expect("id").to_owned();
    let customer_id = first[0]["customer"]["id"].as_str().expect("customer id").to_owned();
    assert_ne!(customer_id, "1111111", "the dialog names the profile, not the provider's id");
    let profile = s.customer(&customer_id).await;
    assert_eq!(profile["name"], "Test Firstname Test Lastname");
    assert_eq!(profile["identities"][0]["external_id"], "1111111");
    assert_eq!(profile["identities"][0]["provider"], "telegram");
    assert_eq!(profile["identities"][0]["handle"], "@Testusername");
    assert_eq!(profile["dialogs"], json!([dialog_id]));

    // Idle for an hour: closed. The employee writes first: the dialog reopens and the text goes out.
    s.at(3600).await;
    assert_eq!(s.app.get(&format!("/v1/dialogs/{dialog_id}")).await.1["status"], "closed");
    let (status, sent) = s
        .app
        .post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Your order is ready"}))
        .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["status"], "sent", "{sent}");
    let reopened = s.app.get(&format!("/v1/dialogs/{dialog_id}")).await.1;
    assert_ne!(reopened["status"], "closed", "{reopened}");
    assert_eq!(reopened["closed_at"], Value::Null);

    // The customer's answer joins the reopened dialog: still one dialog, one profile.
    s.customer_writes(1111111, 20_001, "Thanks, on my way").await;
    assert_eq!(s.dialogs().await.len(), 1);
    assert_eq!(s.texts(&dialog_id).await, ["/start", "Your order is ready", "Thanks, on my way"]);

    // Closed again, and this time the customer writes: a new dialog, the same customer, newest first.
    s.at(3600 + 7200).await;
    s.customer_writes(1111111, 20_002, "One more question").await;
    let all = s.dialogs().await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|d| d["customer"]["id"] == customer_id.as_str()), "{all:?}");
    let profile = s.customer(&customer_id).await;
    let listed = profile["dialogs"].as_array().expect("dialogs");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], dialog_id.as_str(), "newest first: {listed:?}");

    // Found by name, handle or id; a one-letter query is a 400; another customer is not found by it.
    s.customer_writes(2222222, 20_003, "hello").await;
    let (status, found) = s.app.get("/v1/customers?query=firstname").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["id"], customer_id.as_str());
    let (status, by_handle) = s.app.get("/v1/customers?query=@testuser").await;
    assert_eq!((status, &by_handle[0]["id"]), (200, &json!(customer_id)), "{by_handle}");
    let (status, found) = s.app.get("/v1/customers?query=2222").await;
    assert_eq!(status, 200);
    assert_eq!(found[0]["name"], "User2222222");
    let (status, error) = s.app.get("/v1/customers?query=a").await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = s.app.get("/v1/customers/0190a6a0-0000-7000-8000-000000000000").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_closed_dialog_does_not_reopen_over_a_newer_open_one() {
    let s = telegram_scene().await;
    s.customer_writes(3333333, 30_001, "first").await;
    let old = s.dialogs().await[0]["id"].as_str().expect("id").to_owned();
    s.at(3600).await;
    s.customer_writes(3333333, 30_002, "again").await;
    let (status, body) = s.app.post(&format!("/v1/dialogs/{old}/messages"), &json!({"text": "late"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(s.texts(&old).await, ["first"], "nothing was written");
    assert_eq!(s.app.get(&format!("/v1/dialogs/{old}")).await.1["status"], "closed");
}

#[tokio::test]
async fn merging_two_customers_makes_one_and_later_messages_land_on_it() {
    let s = telegram_scene().await;
    s.customer_writes(4444444, 40_001, "from my phone").await;
    s.customer_writes(5555555, 40_002, "from my laptop").await;
    let dialogs = s.dialogs().await;
    let customer_of = |user: &str| {
        dialogs.iter().find(|d| d["customer"]["external_id"] == user).expect(user)["customer"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let (one, other) = (customer_of("4444444"), customer_of("5555555"));
    assert_ne!(one, other);

    let (status, error) = s.app.post(&format!("/v1/customers/{one}/merge"), &json!({"other_id": one})).await;
    assert_eq!((status, &error["error"]["field"]), (422, &json!("other_id")), "{error}");
    let unknown = json!({"other_id": "0190a6a0-0000-7000-8000-000000000000"});
    let (status, _) = s.app.post(&format!("/v1/customers/{one}/merge"), &unknown).await;
    assert_eq!(status, 422);
    let (status, _) = s
        .app
        .post("/v1/customers/0190a6a0-0000-7000-8000-000000000000/merge", &json!({"other_id": other}))
        .await;
    assert_eq!(status, 404);

    let (status, merged) =
        s.app.post(&format!("/v1/customers/{one}/merge"), &json!({"other_id": other})).await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["identities"].as_array().map(Vec::len), Some(2), "{merged}");
    assert_eq!(merged["dialogs"].as_array().map(Vec::len), Some(2), "{merged}");
    // Repeating it changes nothing; the merged-away id reads as the merged customer.
    let (status, again) =
        s.app.post(&format!("/v1/customers/{one}/merge"), &json!({"other_id": other})).await;
    assert_eq!(status, 200);
    assert_eq!(again, merged);
    assert_eq!(s.customer(&other).await["id"], one.as_str());
    assert!(s.dialogs().await.iter().all(|d| d["customer"]["id"] == one.as_str()));

    // A new dialog on the merged-away identity belongs to the merged customer.
    s.at(3600).await;
    s.customer_writes(5555555, 40_003, "me again").await;
    let open: Vec<Value> = s.dialogs().await.into_iter().filter(|d| d["status"] == "open").collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["customer"]["id"], one.as_str());
    assert_eq!(s.customer(&one).await["dialogs"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn a_customer_is_exported_then_erased_and_comes_back_as_a_new_one() {
    let s = telegram_scene().await;
    s.customer_writes(6666666, 60_001, "my address is 1 Main St").await;
    let dialog = s.dialogs().await[0].clone();
    let dialog_id = dialog["id"].as_str().expect("id").to_owned();
    let customer = dialog["customer"]["id"].as_str().expect("customer").to_owned();
    let (status, _) =
        s.app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Noted"})).await;
    assert_eq!(status, 201);

    let (status, export) = s.app.get(&format!("/v1/customers/{customer}/export")).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["customer"]["id"], customer.as_str());
    assert_eq!(export["dialogs"][0]["dialog"]["id"], dialog_id.as_str());
    let texts: Vec<&str> = export["dialogs"][0]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["my address is 1 Main St", "Noted"]);

    let (status, _) = s.app.delete(&format!("/v1/customers/{customer}")).await;
    assert_eq!(status, 204);
    assert_eq!(s.app.get(&format!("/v1/customers/{customer}")).await.0, 404);
    assert_eq!(s.app.get(&format!("/v1/dialogs/{dialog_id}")).await.0, 404);
    assert_eq!(s.dialogs().await, Vec::<Value>::new());
    let (status, found) = s.app.get("/v1/customers?query=6666").await;
    assert_eq!((status, found), (200, json!([])));
    // Erasing again is done already.
    assert_eq!(s.app.delete(&format!("/v1/customers/{customer}")).await.0, 204);

    // The same person writing later is a new customer with nothing of the old one.
    s.customer_writes(6666666, 60_002, "hello again").await;
    let fresh = s.dialogs().await;
    assert_eq!(fresh.len(), 1);
    assert_ne!(fresh[0]["customer"]["id"], customer.as_str());
    assert_eq!(s.texts(fresh[0]["id"].as_str().expect("id")).await, ["hello again"]);
}

const IB_KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3c9a";

struct Infobip {
    app: TestApp,
    clock: Arc<ManualClock>,
    server: MockServer,
    channel_id: String,
    webhook: String,
}

/// An Infobip WhatsApp channel against a fake that lists two templates (one approved) and takes sends.
async fn infobip_scene() -> Infobip {
    let infobip = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/whatsapp/2/senders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"sender": "1234", "displayName": "Acme", "connectionStatus": "CONNECTED"}]})))
        .mount(&infobip)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp/2/senders/1234/templates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"templates": [
            {"id": "1", "name": "order_ready", "language": "en", "status": "APPROVED", "category": "UTILITY",
             "structure": {"body": {"text": "Hi {{1}}, order {{2}} is ready"}, "type": "TEXT"}},
            {"id": "2", "name": "promo", "language": "en", "status": "REJECTED", "category": "MARKETING",
             "structure": {"body": {"text": "Sale!"}, "type": "TEXT"}}]})))
        .mount(&infobip)
        .await;
    Mock::given(method("POST"))
        .and(path("/whatsapp/1/message/template"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"to": "385919998888",
            "messageCount": 1, "messageId": "ib-tpl-1", "status": {"groupName": "PENDING", "name": "PENDING_ENROUTE"}}]})))
        .mount(&infobip)
        .await;
    Mock::given(method("POST"))
        .and(path("/whatsapp/1/message/text"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"to": "385919998888", "messageCount": 1,
            "messageId": "ib-text-1", "status": {"groupName": "PENDING", "name": "PENDING_ENROUTE"}})),
        )
        .mount(&infobip)
        .await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(START).expect("valid")));
    let app = TestApp::spawn_with_clock_and(clock.clone(), |providers| {
        providers.with(
            Provider::WhatsappInfobip,
            Arc::new(InfobipClient::new(omnichat::providers::http_client()).allowing_loopback()),
        )
    })
    .await;
    let body = json!({"provider": "whatsapp", "whatsapp_provider": "infobip", "name": "WhatsApp",
                      "credentials": {"api_key": IB_KEY, "base_url": infobip.uri(), "sender": "1234"}});
    let (status, channel) = app.post("/v1/channels", &body).await;
    assert_eq!(status, 201, "{channel}");
    let channel_id = channel["id"].as_str().expect("id").to_owned();
    let webhook = channel["webhook_url"].as_str().expect("url").replace("https://omnichat.example.test", "");
    Infobip { app, clock, server: infobip, channel_id, webhook }
}

#[tokio::test]
async fn infobip_outside_the_window_refuses_free_text_and_sends_an_approved_template() {
    let Infobip { app, clock, server: infobip, channel_id, webhook } = infobip_scene().await;
    assert_eq!(app.deliver(&webhook, &[], fixture("infobip_text.json")).await, 200);
    let (_, dialogs) = app.get("/v1/dialogs").await;
    let dialog_id = dialogs["items"][0]["id"].as_str().expect("dialog").to_owned();
    let reply = format!("/v1/dialogs/{dialog_id}/messages");

    // Within 24 hours, free text goes.
    clock.advance(SignedDuration::from_hours(23));
    let (status, sent) = app.post(&reply, &json!({"text": "We are on it"})).await;
    assert_eq!(status, 201, "{sent}");

    // 24 hours after the customer's last message: free text is refused before anything is sent.
    clock.advance(SignedDuration::from_hours(1));
    let texts_before = texts_sent(&infobip).await;
    let (status, error) = app.post(&reply, &json!({"text": "Still there?"})).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "outside_customer_service_window");
    assert_eq!(texts_sent(&infobip).await, texts_before);

    let (status, templates) = app.get(&format!("/v1/channels/{channel_id}/templates")).await;
    assert_eq!(status, 200, "{templates}");
    assert_eq!(templates[0]["name"], "order_ready");
    assert_eq!(templates[0]["parameters"], 2);
    assert_eq!(templates[1]["status"], "rejected");

    let wrong = json!({"template": {"name": "order_ready", "language": "en", "parameters": ["Frank"]}});
    let (status, error) = app.post(&reply, &wrong).await;
    assert_eq!((status, &error["error"]["field"]), (422, &json!("template.parameters")), "{error}");
    let rejected = json!({"template": {"name": "promo", "language": "en", "parameters": []}});
    assert_eq!(app.post(&reply, &rejected).await.0, 422);
    let good =
        json!({"template": {"name": "order_ready", "language": "en", "parameters": ["Frank", "A-17"]}});
    let (status, sent) = app.post(&reply, &good).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["provider_message_id"], "ib-tpl-1", "{sent}");
    assert_eq!(sent["template"]["name"], "order_ready", "the reply shows what went: {sent}");
    let requests = infobip.received_requests().await.unwrap_or_default();
    let templates_sent: Vec<Value> = requests
        .iter()
        .filter(|r| r.url.path() == "/whatsapp/1/message/template")
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect();
    assert_eq!(templates_sent.len(), 1);
    let content = &templates_sent[0]["messages"][0]["content"];
    assert_eq!(content["templateName"], "order_ready");
    assert_eq!(content["templateData"]["body"]["placeholders"], json!(["Frank", "A-17"]));
    assert_eq!(templates_sent[0]["messages"][0]["to"], "385919998888");
}

async fn texts_sent(infobip: &MockServer) -> usize {
    let requests = infobip.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.url.path() == "/whatsapp/1/message/text").count()
}

#[tokio::test]
async fn writing_first_on_whatsapp_takes_a_template_and_the_answer_joins_the_dialog() {
    let s = infobip_scene().await;
    let start = |body: Value| {
        let app = &s.app;
        async move { app.post("/v1/dialogs", &body).await }
    };
    let to = json!({"phone": "+385 91 999 8888"});
    let (status, error) = start(json!({"channel_id": s.channel_id, "to": to, "text": "Hello"})).await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (422, &json!("outside_customer_service_window")),
        "{error}"
    );
    let (status, error) = start(json!({"channel_id": s.channel_id, "to": {"address": "a@example.org"},
        "template": {"name": "order_ready", "language": "en", "parameters": ["a", "b"]}}))
    .await;
    assert_eq!((status, &error["error"]["field"]), (422, &json!("to")), "{error}");
    let (status, error) = start(json!({"channel_id": s.channel_id, "to": {"phone": "12"},
        "template": {"name": "order_ready", "language": "en", "parameters": ["a", "b"]}}))
    .await;
    assert_eq!((status, &error["error"]["field"]), (422, &json!("to.phone")), "{error}");
    assert_eq!(s.app.get("/v1/dialogs").await.1["items"], json!([]), "nothing was written");

    let template = json!({"name": "order_ready", "language": "en", "parameters": ["Frank", "A-17"]});
    let (status, started) = start(json!({"channel_id": s.channel_id, "to": to, "template": template})).await;
    assert_eq!(status, 201, "{started}");
    let dialog_id = started["dialog"]["id"].as_str().expect("id").to_owned();
    assert_eq!(started["dialog"]["customer"]["external_id"], "385919998888");
    assert_eq!(started["message"]["provider_message_id"], "ib-tpl-1", "{started}");
    // A second start to the same number while the dialog is open: write there.
    let (status, _) = start(json!({"channel_id": s.channel_id, "to": to, "template": template})).await;
    assert_eq!(status, 409);

    // The customer answers (the fixture's sender is that number): the answer joins the dialog, and free
    // text may follow within the window.
    s.clock.advance(SignedDuration::from_mins(5));
    assert_eq!(s.app.deliver(&s.webhook, &[], fixture("infobip_text.json")).await, 200);
    let (_, dialogs) = s.app.get("/v1/dialogs").await;
    assert_eq!(dialogs["items"].as_array().map(Vec::len), Some(1), "{dialogs}");
    let (status, sent) =
        s.app.post(&format!("/v1/dialogs/{dialog_id}/messages"), &json!({"text": "Great, see you"})).await;
    assert_eq!(status, 201, "{sent}");
    let (_, messages) = s.app.get(&format!("/v1/dialogs/{dialog_id}/messages")).await;
    let directions: Vec<&str> =
        messages["items"].as_array().expect("items").iter().filter_map(|m| m["direction"].as_str()).collect();
    assert_eq!(directions, ["out", "in", "out"]);
    assert_eq!(texts_sent(&s.server).await, 1);
}

#[tokio::test]
async fn telegram_lets_no_business_write_first() {
    let s = telegram_scene().await;
    let (_, channels) = s.app.get("/v1/channels").await;
    let channel_id = channels["items"][0]["id"].clone();
    let (status, error) = s
        .app
        .post(
            "/v1/dialogs",
            &json!({"channel_id": channel_id, "to": {"phone": "+79165551234"}, "text": "Hi"}),
        )
        .await;
    assert_eq!((status, &error["error"]["code"]), (422, &json!("cannot_write_first")), "{error}");
}

#[tokio::test]
async fn one_person_on_whatsapp_and_telegram_merged_is_one_customer_with_both_histories() {
    let s = infobip_scene().await;
    let (telegram, secret) = s.app.connect_telegram(888_000_333, "acme_bot").await;
    let telegram_webhook = format!("/webhooks/telegram/{}", telegram["id"].as_str().expect("id"));
    let headers = [(SECRET_HEADER, secret.as_str())];
    assert_eq!(s.app.deliver(&telegram_webhook, &headers, fixture("telegram_text.json")).await, 200);
    assert_eq!(s.app.deliver(&s.webhook, &[], fixture("infobip_text.json")).await, 200);
    let (_, dialogs) = s.app.get("/v1/dialogs").await;
    let dialogs = dialogs["items"].as_array().cloned().expect("items");
    assert_eq!(dialogs.len(), 2);
    let on = |channel: &Value| {
        let found =
            dialogs.iter().find(|d| d["channel_id"] == channel["id"]).expect("a dialog on the channel");
        found["customer"]["id"].as_str().expect("customer").to_owned()
    };
    let (by_telegram, by_whatsapp) = (on(&telegram), on(&json!({"id": s.channel_id})));
    assert_ne!(by_telegram, by_whatsapp, "two channels, two strangers until merged");

    let (status, merged) =
        s.app.post(&format!("/v1/customers/{by_whatsapp}/merge"), &json!({"other_id": by_telegram})).await;
    assert_eq!(status, 200, "{merged}");
    let providers: Vec<&str> = merged["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["provider"].as_str())
        .collect();
    assert_eq!(providers, ["whatsapp-infobip", "telegram"]);
    assert_eq!(merged["identities"][0]["phone"], "385919998888");
    assert_eq!(merged["dialogs"].as_array().map(Vec::len), Some(2));
    assert_eq!(merged["name"], "Frank", "the name of the customer merged into");
    let (_, both) = s.app.get("/v1/dialogs").await;
    assert!(
        both["items"].as_array().expect("items").iter().all(|d| d["customer"]["id"] == by_whatsapp.as_str())
    );
    // Found by the Telegram name or the WhatsApp number alike.
    for query in ["firstname", "385919"] {
        let (_, found) = s.app.get(&format!("/v1/customers?query={query}")).await;
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{query}: {found}");
        assert_eq!(found[0]["id"], by_whatsapp.as_str());
    }
}
