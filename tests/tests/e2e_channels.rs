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
    let cases = [
        (json!({"auto_close": {"after": 0, "unit": "hours"}}), "auto_close.after"),
        (json!({"auto_close": {"after": -1, "unit": "days"}}), "auto_close.after"),
        (json!({"auto_close": {"after": 2, "unit": "weeks"}}), "auto_close.unit"),
        (json!({"auto_replies": [{"text": "", "delay_seconds": 10}]}), "auto_replies[0].text"),
        (json!({"auto_replies": [{"text": "Hi", "delay_seconds": 0}]}), "auto_replies[0].delay_seconds"),
        (
            json!({"off_hours": {"chatbot_id": "0190a6a0-0000-7000-8000-000000000002", "auto_replies": true}}),
            "off_hours",
        ),
        (json!({"handling": {"employee_id": missing_employee}}), "handling.employee_id"),
        (json!({"handling": {"group_id": missing_employee}}), "handling.group_id"),
        (json!({"handling": {"chatbot_id": missing_employee}}), "handling.chatbot_id"),
    ];
    for (settings, field) in cases {
        let (status, body) = app.post("/v1/channels", &telegram(settings.clone())).await;
        assert_eq!(status, 422, "{settings}: {body}");
        assert_eq!(body["error"]["field"], field, "{settings}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap_or_default().is_empty());
    }
    assert_eq!(channel_count(&app).await, 0);
    let (status, body) =
        app.post("/v1/channels", &json!({"provider": "telegram", "name": "x", "credentials": {}})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("credentials.token")));
    let (status, body) = app.post("/v1/channels", &json!({"provider": "icq", "credentials": {}})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("provider")));
    let (status, body) = app.post("/v1/channels", &json!({"provider": "whatsapp", "credentials": {}})).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("whatsapp_provider")));
    assert_eq!(channel_count(&app).await, 0);
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
    let (first, _) = app.connect_telegram(555_000_111, "acme_bot").await;
    let (second, secret) = app.connect_telegram(555_000_111, "acme_bot").await;
    assert_eq!(second["displaced"], first["id"]);
    let (_, old) = app.get(&format!("/v1/channels/{}", first["id"].as_str().unwrap())).await;
    assert_eq!(old["status"], "displaced");
    assert_eq!(old["displaced_by"], second["id"]);
    // The displaced channel stores nothing, even when a request reaches it.
    let old_path = format!("/webhooks/telegram/{}", first["id"].as_str().unwrap());
    let old_secret_header = [("X-Telegram-Bot-Api-Secret-Token", secret.as_str())];
    let status = app.deliver(&old_path, &old_secret_header, fixture("telegram_text.json")).await;
    assert_eq!(status, 401, "the old channel's secret differs from the new one");
    let (_, dialogs) = app.get("/v1/dialogs").await;
    assert_eq!(dialogs["items"], json!([]));
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
