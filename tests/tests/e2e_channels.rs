//! The admin's channel lifecycle over HTTP: every settings rule refused with the field named and nothing
//! saved, updates that keep the stored secret, "one account, one channel", and disconnecting.

use omnichat_tests::{TestApp, fixture};
use serde_json::{Value, json};

const TOKEN: &str = "555000111:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

fn telegram(settings: Value) -> Value {
    json!({"provider": "telegram", "name": "Support bot", "credentials": {"token": TOKEN}, "settings": settings})
}

async fn channel_count(app: &TestApp) -> usize {
    let (status, body) = app.get("/v1/channels").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().map(Vec::len).unwrap_or(0)
}

#[tokio::test]
async fn every_settings_rule_is_a_422_naming_the_field_and_saves_nothing() {
    let app = TestApp::spawn().await;
    app.fakes.telegram_accepts_bot(555_000_111, "acme_bot").await;
    let missing_employee = "0190a6a0-0000-7000-8000-000000000001";
    let missing_chatbot = "0190a6a0-0000-7000-8000-000000000002";
    // Each case names the one rule it reaches: the error code and the field together, so that a case
    // passing because an earlier rule fired shows up as a wrong code.
    let cases = [
        (json!({"auto_close": {"after": 0, "unit": "hours"}}), "auto_close_out_of_range", "auto_close.after"),
        (json!({"auto_close": {"after": -1, "unit": "days"}}), "auto_close_out_of_range", "auto_close.after"),
        (json!({"auto_close": {"after": 2, "unit": "weeks"}}), "invalid_type", "auto_close.unit"),
        (
            json!({"auto_replies": [{"text": "", "delay_seconds": 10}]}),
            "auto_reply_text_empty",
            "auto_replies[0].text",
        ),
        (
            json!({"auto_replies": [{"text": "Hi", "delay_seconds": 0}]}),
            "auto_reply_delay_not_positive",
            "auto_replies[0].delay_seconds",
        ),
        (
            json!({"off_hours": {"chatbot_id": missing_chatbot, "auto_replies": true}}),
            "off_hours_exclusive",
            "off_hours",
        ),
        // Auto-replies off: only the chatbot's existence is left to refuse.
        (
            json!({"off_hours": {"chatbot_id": missing_chatbot, "auto_replies": false}}),
            "not_found",
            "off_hours.chatbot_id",
        ),
        (json!({"handling": {"employee_id": missing_employee}}), "not_found", "handling.employee_id"),
        (json!({"handling": {"group_id": missing_employee}}), "not_found", "handling.group_id"),
        // Telegram dialogs cannot be handled by a chatbot at all, whether it exists or not.
        (
            json!({"handling": {"chatbot_id": missing_chatbot}}),
            "chatbot_handling_not_allowed",
            "handling.chatbot_id",
        ),
    ];
    for (settings, code, field) in cases {
        let (status, body) = app.post("/v1/channels", &telegram(settings.clone())).await;
        assert_eq!(status, 422, "{settings}: {body}");
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
            (Some(code), Some(field)),
            "{settings}: {body}"
        );
        assert!(!body["error"]["message"].as_str().unwrap_or_default().is_empty());
    }
    // Avito dialogs may be handled by a chatbot, so a missing one is refused for not existing. The refusal
    // comes before the provider is contacted (there is no Avito fake here).
    let avito = json!({"provider": "avito", "name": "Avito",
                       "credentials": {"client_id": "avito-client-id-0123", "client_secret": "avito-client-secret-0123456789"},
                       "settings": {"handling": {"chatbot_id": missing_chatbot}}});
    let (status, body) = app.post("/v1/channels", &avito).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (422, Some("not_found"), Some("handling.chatbot_id")),
        "{body}"
    );
    assert_eq!(channel_count(&app).await, 0);
    let (status, body) =
        app.post("/v1/channels", &json!({"provider": "telegram", "name": "x", "credentials": {}})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("credentials.token")));
    let (status, body) = app.post("/v1/channels", &json!({"provider": "icq", "credentials": {}})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("provider")));
    let (status, body) = app.post("/v1/channels", &json!({"provider": "whatsapp", "credentials": {}})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("whatsapp_provider")));
    assert_eq!(channel_count(&app).await, 0);
    // The control: the same off-hours setting naming a chatbot that exists is accepted, so the refusal
    // above was the chatbot's absence.
    let (status, bot) = app
        .post("/v1/chatbots", &json!({"name": "Night bot", "webhook_url": "https://bots.example/x"}))
        .await;
    assert_eq!(status, 201, "{bot}");
    let settings = json!({"off_hours": {"chatbot_id": bot["id"], "auto_replies": false}});
    let (status, body) = app.post("/v1/channels", &telegram(settings)).await;
    assert_eq!((status, &body["settings"]["off_hours"]["chatbot_id"]), (201, &bot["id"]), "{body}");
}

#[tokio::test]
async fn whatsapp_needs_the_contact_center_service() {
    let app = TestApp::spawn().await;
    let (_, tenant) = app.get("/v1/tenant").await;
    let path = format!("/v1/tenants/{}", tenant["id"].as_str().expect("tenant id"));
    let features = json!({"features": {"contact_center": false, "chatbots": true}});
    let (status, body) = app.as_operator(reqwest::Method::PUT, &path, Some(&features)).await;
    assert_eq!((status, &body["features"]["contact_center"]), (200, &json!(false)), "{body}");
    let body = json!({"provider": "whatsapp", "whatsapp_provider": "edna", "name": "WA",
                      "credentials": {"subject": "acme", "api_key": "k"}});
    let (status, body) = app.post("/v1/channels", &body).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("provider")), "{body}");
    assert_eq!(channel_count(&app).await, 0);
}

#[tokio::test]
async fn updating_settings_keeps_the_stored_credentials_and_rules_still_apply() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(555_000_111, "acme_bot").await;
    let id = channel["id"].as_str().expect("id");
    let settings = json!({"auto_replies": [{"text": "We are on it", "delay_seconds": 60}],
                          "auto_close": {"after": 2, "unit": "days"}});
    let (status, updated) = app.http_put(&format!("/v1/channels/{id}"), &json!({"settings": settings})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["settings"]["auto_close"], json!({"after": 2, "unit": "days"}));
    assert_eq!(updated["settings"]["auto_replies"][0]["text"], "We are on it");
    assert_eq!(updated["credentials"], channel["credentials"]);
    // The webhook still verifies with the secret registered at connect time.
    let path = format!("/webhooks/telegram/{id}");
    let headers = [("X-Telegram-Bot-Api-Secret-Token", secret.as_str())];
    assert_eq!(app.deliver(&path, &headers, fixture("telegram_text.json")).await, 200);
    // A bad update changes nothing.
    let bad = json!({"settings": {"auto_close": {"after": 0, "unit": "days"}}});
    let (status, body) = app.http_put(&format!("/v1/channels/{id}"), &bad).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("auto_close.after")));
    let (_, current) = app.get(&format!("/v1/channels/{id}")).await;
    assert_eq!(current["settings"]["auto_close"], json!({"after": 2, "unit": "days"}));
}

#[tokio::test]
async fn connecting_the_same_bot_again_displaces_the_older_channel() {
    let app = TestApp::spawn().await;
    let (first, first_secret) = app.connect_telegram(555_000_111, "acme_bot").await;
    let (second, secret) = app.connect_telegram(555_000_111, "acme_bot").await;
    assert_ne!(first_secret, secret, "each channel registers its own webhook secret");
    assert_eq!(second["displaced"], first["id"]);
    let (_, old) = app.get(&format!("/v1/channels/{}", first["id"].as_str().unwrap())).await;
    assert_eq!(old["status"], "displaced");
    assert_eq!(old["displaced_by"], second["id"]);
    // The displaced channel stores nothing, even for a request that carries its own valid secret: it is
    // acknowledged (so that the provider stops retrying) and dropped.
    let old_path = format!("/webhooks/telegram/{}", first["id"].as_str().unwrap());
    let own_secret = [("X-Telegram-Bot-Api-Secret-Token", first_secret.as_str())];
    assert_eq!(app.deliver(&old_path, &own_secret, fixture("telegram_text.json")).await, 200);
    let (_, dialogs) = app.get("/v1/dialogs").await;
    assert_eq!(dialogs["items"], json!([]), "the displaced channel stored a message");
    // Another channel's secret is not its own.
    let new_secret = [("X-Telegram-Bot-Api-Secret-Token", secret.as_str())];
    assert_eq!(app.deliver(&old_path, &new_secret, fixture("telegram_text.json")).await, 401);
    // The same update on the channel that took the bot over is stored: the drop above was displacement.
    let new_path = format!("/webhooks/telegram/{}", second["id"].as_str().unwrap());
    assert_eq!(app.deliver(&new_path, &new_secret, fixture("telegram_text.json")).await, 200);
    let (_, dialogs) = app.get("/v1/dialogs").await;
    assert_eq!(dialogs["items"].as_array().map(Vec::len), Some(1), "{dialogs}");
    assert_eq!(dialogs["items"][0]["channel_id"], second["id"]);
}

/// New credentials for the same account (a revoked and reissued bot token): the webhook is registered
/// again with the new token and the channel's own secret, and replies go out with the new token. Another
/// bot's token is refused and changes nothing.
#[tokio::test]
async fn new_credentials_for_the_same_account_rotate_the_token_and_another_account_is_refused() {
    const NEW_TOKEN: &str = "555000111:BBNewTokenNewTokenNewTokenNewToken1x";
    const OTHER_BOT: &str = "999000999:AAOtherBotOtherBotOtherBotOtherBotz";
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(555_000_111, "acme_bot").await;
    omnichat_tests::logs::register_secret(NEW_TOKEN);
    omnichat_tests::logs::register_secret(OTHER_BOT);
    let id = channel["id"].as_str().expect("id");
    wiremock::Mock::given(wiremock::matchers::path_regex(r"^/bot[^/]+/sendMessage$"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"message_id": 77, "date": 1700000000, "chat": {"id": 1, "type": "private"}}}),
        ))
        .mount(&app.fakes.telegram)
        .await;
    wiremock::Mock::given(wiremock::matchers::path(format!("/bot{OTHER_BOT}/getMe")))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "result": {"id": 999_000_999, "is_bot": true, "first_name": "Other", "username": "other_bot"}
        })))
        .with_priority(1)
        .mount(&app.fakes.telegram)
        .await;
    let (_, before) = app.get(&format!("/v1/channels/{id}")).await;
    let paths = |requests: Vec<wiremock::Request>, call: &str| -> Vec<String> {
        requests.iter().map(|r| r.url.path().to_owned()).filter(|p| p.ends_with(call)).collect()
    };

    let (status, body) =
        app.http_put(&format!("/v1/channels/{id}"), &json!({"credentials": {"token": OTHER_BOT}})).await;
    assert_eq!(
        (status, &body["error"]["code"], &body["error"]["field"]),
        (422, &json!("account_mismatch"), &json!("credentials")),
        "{body}"
    );
    let (_, unchanged) = app.get(&format!("/v1/channels/{id}")).await;
    assert_eq!(unchanged, before, "a refused rotation changed the channel");

    let webhooks_before =
        paths(app.fakes.telegram.received_requests().await.unwrap_or_default(), "/setWebhook");
    let (status, rotated) =
        app.http_put(&format!("/v1/channels/{id}"), &json!({"credentials": {"token": NEW_TOKEN}})).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["credentials"]["token"], "****en1x");
    assert_eq!(rotated["account"], channel["account"]);
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    let webhooks = paths(requests.clone(), "/setWebhook");
    assert_eq!(webhooks.len(), webhooks_before.len() + 1, "the webhook is registered again");
    assert_eq!(webhooks.last().map(String::as_str), Some(format!("/bot{NEW_TOKEN}/setWebhook").as_str()));
    let registered: Value = serde_json::from_slice(
        &requests.iter().rev().find(|r| r.url.path().ends_with("/setWebhook")).expect("setWebhook").body,
    )
    .expect("json");
    assert_eq!(
        (registered["url"].as_str(), registered["secret_token"].as_str()),
        (channel["webhook_url"].as_str(), Some(secret.as_str()))
    );

    // The webhook still verifies with the channel's secret, and a reply goes out with the new token.
    let headers = [("X-Telegram-Bot-Api-Secret-Token", secret.as_str())];
    assert_eq!(
        app.deliver(&format!("/webhooks/telegram/{id}"), &headers, fixture("telegram_text.json")).await,
        200
    );
    let (_, dialogs) = app.get("/v1/dialogs").await;
    let dialog = dialogs["items"][0]["id"].as_str().expect("a dialog");
    let (status, reply) = app.post(&format!("/v1/dialogs/{dialog}/messages"), &json!({"text": "Hi!"})).await;
    assert_eq!(status, 201, "{reply}");
    let sends = paths(app.fakes.telegram.received_requests().await.unwrap_or_default(), "/sendMessage");
    assert_eq!(sends, vec![format!("/bot{NEW_TOKEN}/sendMessage")]);
}

#[tokio::test]
async fn disconnect_needs_confirmation_then_removes_the_webhook_and_stops_receiving() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(555_000_111, "acme_bot").await;
    let id = channel["id"].as_str().expect("id");
    let (status, body) = app.post(&format!("/v1/channels/{id}/disconnect"), &json!({})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("confirm")));
    let (_, still) = app.get(&format!("/v1/channels/{id}")).await;
    assert_eq!(still["status"], "active");

    let (status, body) = app.post(&format!("/v1/channels/{id}/disconnect"), &json!({"confirm": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "disconnected");
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    assert!(requests.iter().any(|r| r.url.path().ends_with("/deleteWebhook")), "deleteWebhook not called");
    let path = format!("/webhooks/telegram/{id}");
    let headers = [("X-Telegram-Bot-Api-Secret-Token", secret.as_str())];
    assert_eq!(app.deliver(&path, &headers, fixture("telegram_text.json")).await, 401);
    let (_, dialogs) = app.get("/v1/dialogs").await;
    assert_eq!(dialogs["items"], json!([]));
    // Its settings can no longer change, and the bot can be connected again as a fresh channel.
    let (status, _) = app.http_put(&format!("/v1/channels/{id}"), &json!({"name": "again"})).await;
    assert_eq!(status, 422);
    let (again, _) = app.connect_telegram(555_000_111, "acme_bot").await;
    assert_eq!(again["displaced"], Value::Null);
}

/// One account, one channel, deployment-wide (the seed's last-wins rule): a second tenant connecting the
/// same bot takes it over; the first tenant's channel shows `displaced` and stores nothing more, and
/// neither tenant learns anything of the other (no ids, no names).
#[tokio::test]
async fn a_bot_connected_by_another_tenant_displaces_the_first_without_naming_either() {
    let app = TestApp::spawn().await;
    let (first, first_secret) = app.connect_telegram(555_000_111, "acme_bot").await;
    let (status, tenant) =
        app.as_operator(reqwest::Method::POST, "/v1/tenants", Some(&json!({"name": "Other shop"}))).await;
    assert_eq!(status, 201, "{tenant}");
    let other_key = tenant["admin_key"].as_str().expect("admin key").to_owned();
    omnichat_tests::logs::register_secret(other_key.clone());
    let (status, second) =
        app.with_key(&other_key, reqwest::Method::POST, "/v1/channels", Some(&telegram(json!({})))).await;
    assert_eq!(status, 201, "{second}");
    let second_secret = app.fakes.telegram_webhook_secret().await;
    assert_eq!(second["displaced"], Value::Null, "the other tenant's channel is not named: {second}");
    let first_id = first["id"].as_str().expect("id");
    assert!(!second.to_string().contains(first_id), "{second}");

    let (_, old) = app.get(&format!("/v1/channels/{first_id}")).await;
    assert_eq!((&old["status"], &old["displaced_by"]), (&json!("displaced"), &Value::Null), "{old}");
    let second_id = second["id"].as_str().expect("id");
    let (_, listed) = app.get("/v1/channels").await;
    assert!(!listed.to_string().contains(second_id), "the first tenant sees the other's channel: {listed}");
    assert!(!listed.to_string().contains("Other shop"), "{listed}");

    // The first channel stores nothing more, even with its own secret; the new one does.
    let header = "X-Telegram-Bot-Api-Secret-Token";
    let old_path = format!("/webhooks/telegram/{first_id}");
    assert_eq!(app.deliver(&old_path, &[(header, &first_secret)], fixture("telegram_text.json")).await, 200);
    let (_, dialogs) = app.get("/v1/dialogs").await;
    assert_eq!(dialogs["items"], json!([]));
    let new_path = format!("/webhooks/telegram/{second_id}");
    assert_eq!(app.deliver(&new_path, &[(header, &second_secret)], fixture("telegram_text.json")).await, 200);
    let (_, theirs) = app.with_key(&other_key, reqwest::Method::GET, "/v1/dialogs", None).await;
    assert_eq!(theirs["items"].as_array().map(Vec::len), Some(1), "{theirs}");

    // Taking it back works the same way, and names nothing either.
    let (status, back) = app.post("/v1/channels", &telegram(json!({}))).await;
    assert_eq!((status, &back["displaced"]), (201, &Value::Null), "{back}");
    let (_, theirs) =
        app.with_key(&other_key, reqwest::Method::GET, &format!("/v1/channels/{second_id}"), None).await;
    assert_eq!((&theirs["status"], &theirs["displaced_by"]), (&json!("displaced"), &Value::Null), "{theirs}");
}

/// A claim kept per tenant by an earlier version still counts: connecting the account again displaces
/// its channel (naming it, same tenant) and moves the claim to the deployment-wide one.
#[tokio::test]
async fn an_earlier_versions_claim_is_honoured_and_moved() {
    use omnichat::ports::store::{Condition, Key, Write};
    let app = TestApp::spawn().await;
    let (first, _) = app.connect_telegram(555_000_111, "acme_bot").await;
    let (_, tenant) = app.get("/v1/tenant").await;
    let tenant = tenant["id"].as_str().expect("tenant id");
    let store = &app.running().context.store;
    let global = Key::new("ACCT#telegram#555000111", "ACCOUNT");
    let earlier = format!("T#{tenant}#ACCT#telegram#555000111");
    // As an earlier version left it: only the per-tenant claim.
    let item = json!({"pk": earlier, "sk": "ACCOUNT", "channel_id": first["id"]});
    store
        .transact(vec![
            Write::Delete { key: global.clone(), condition: Condition::Exists },
            Write::Put { item: item.as_object().expect("item").clone(), condition: Condition::NotExists },
        ])
        .await
        .expect("an earlier version's claim");
    let (second, _) = app.connect_telegram(555_000_111, "acme_bot").await;
    assert_eq!(second["displaced"], first["id"]);
    let (_, old) = app.get(&format!("/v1/channels/{}", first["id"].as_str().expect("id"))).await;
    assert_eq!((&old["status"], &old["displaced_by"]), (&json!("displaced"), &second["id"]));
    assert!(store.get(&Key::new(earlier, "ACCOUNT")).await.expect("read").is_none(), "the old claim moved");
    let claim = store.get(&global).await.expect("read").expect("the deployment-wide claim");
    assert_eq!(claim["channel_id"], second["id"]);
}
