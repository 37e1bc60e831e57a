//! Invariants 6 and 7 over HTTP: secrets never reach the table, the logs or an API response; no route of
//! the API lets one tenant read or change another's data.

use omnichat_tests::{TestApp, fixture, read};
use reqwest::Method;
use serde_json::{Value, json};

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn tokens_and_webhook_secrets_appear_in_no_table_item_log_line_or_response() {
    // The shared capture of every log line of this binary (omnichat_tests::logs), at debug level and below.
    omnichat_tests::logs::install();
    let app = TestApp::spawn().await;
    let mut secrets = Vec::new();
    let mut responses = Vec::new();
    for (bot, name) in [(600_000_001_i64, "first_bot"), (600_000_002, "second_bot")] {
        let (channel, webhook_secret) = app.connect_telegram(bot, name).await;
        secrets.push(format!("{bot}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));
        secrets.push(webhook_secret.clone());
        responses.push(channel.to_string());
        let id = channel["id"].as_str().expect("id").to_owned();
        let headers = [("X-Telegram-Bot-Api-Secret-Token", webhook_secret.as_str())];
        assert_eq!(
            app.deliver(&format!("/webhooks/telegram/{id}"), &headers, fixture("telegram_text.json")).await,
            200
        );
        // A wrong secret is logged as a refusal, never with the secret it was compared to.
        let wrong = [("X-Telegram-Bot-Api-Secret-Token", "wrong-secret")];
        assert_eq!(
            app.deliver(&format!("/webhooks/telegram/{id}"), &wrong, fixture("telegram_text.json")).await,
            401
        );
        let (_, updated) = app.http_put(&format!("/v1/channels/{id}"), &json!({"name": "renamed"})).await;
        responses.push(updated.to_string());
        let (_, got) = app.get(&format!("/v1/channels/{id}")).await;
        responses.push(got.to_string());
    }
    for path in ["/v1/channels", "/v1/dialogs", "/v1/tenant"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 200);
        responses.push(body.to_string());
    }
    let (_, dialogs) = app.get("/v1/dialogs").await;
    for dialog in dialogs["items"].as_array().cloned().unwrap_or_default() {
        let (_, messages) =
            app.get(&format!("/v1/dialogs/{}/messages", dialog["id"].as_str().unwrap_or(""))).await;
        responses.push(messages.to_string());
    }
    // The table: the raw bytes of the embedded database file, every item and index included.
    let database = std::fs::read(app.data_dir().join("omnichat.redb")).expect("database file");
    // The secret store does hold them: the check above would be vacuous if the names were wrong.
    let secret_file = std::fs::read(app.data_dir().join("secrets.json")).expect("secrets file");
    let logged = omnichat_tests::logs::captured().into_bytes();
    assert!(!logged.is_empty(), "the log capture saw nothing");
    for secret in &secrets {
        assert!(contains(&secret_file, secret), "the secret store lacks a secret: the test is looking wrong");
        assert!(!contains(&database, secret), "a secret is in the table");
        assert!(!contains(&logged, secret), "a secret is in the logs");
        for response in &responses {
            assert!(!response.contains(secret.as_str()), "a secret is in a response: {response}");
        }
    }
}

/// The dialog and its messages as the owner's admin reads them.
async fn owner_view(app: &TestApp, dialog_id: &str) -> (Value, Value) {
    let (status, dialog) = app.get(&format!("/v1/dialogs/{dialog_id}")).await;
    assert_eq!(status, 200, "{dialog}");
    let (status, messages) = app.get(&format!("/v1/dialogs/{dialog_id}/messages")).await;
    assert_eq!(status, 200, "{messages}");
    (dialog, messages)
}

/// The requests the Telegram fake got to send something.
async fn sends(app: &TestApp) -> usize {
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.url.path().ends_with("/sendMessage")).count()
}

/// Every route that names a tenant's resource by id, with a body valid for it.
fn routes() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("GET", "/v1/channels/{channel}", Value::Null),
        ("PUT", "/v1/channels/{channel}", json!({"name": "taken over"})),
        ("POST", "/v1/channels/{channel}/disconnect", json!({"confirm": true})),
        ("GET", "/v1/dialogs/{dialog}", Value::Null),
        ("GET", "/v1/dialogs/{dialog}/messages", Value::Null),
        ("POST", "/v1/dialogs/{dialog}/messages", json!({"text": "hijack"})),
        ("POST", "/v1/dialogs/{dialog}/close", Value::Null),
        ("POST", "/v1/dialogs/{dialog}/accept", Value::Null),
        ("POST", "/v1/dialogs/{dialog}/transfer", json!({"employee_id": "{employee}"})),
        ("GET", "/v1/employees/{employee}", Value::Null),
        ("PUT", "/v1/employees/{employee}", json!({"name": "taken over"})),
        ("DELETE", "/v1/employees/{employee}", Value::Null),
        ("GET", "/v1/groups/{group}", Value::Null),
        ("PUT", "/v1/groups/{group}", json!({"name": "taken over"})),
        ("DELETE", "/v1/groups/{group}", Value::Null),
        ("GET", "/v1/chatbots/{chatbot}", Value::Null),
        ("PUT", "/v1/chatbots/{chatbot}", json!({"name": "taken over"})),
        ("DELETE", "/v1/chatbots/{chatbot}", Value::Null),
        ("DELETE", "/v1/api-keys/{api_key}", Value::Null),
    ]
}

#[tokio::test]
async fn another_tenant_gets_404_on_every_route_and_sees_nothing_in_lists() {
    let app = TestApp::spawn().await;
    let (channel, secret) = app.connect_telegram(600_000_003, "third_bot").await;
    let channel_id = channel["id"].as_str().expect("id").to_owned();
    let headers = [("X-Telegram-Bot-Api-Secret-Token", secret.as_str())];
    assert_eq!(
        app.deliver(&format!("/webhooks/telegram/{channel_id}"), &headers, fixture("telegram_text.json"))
            .await,
        200
    );
    let (_, dialogs) = app.get("/v1/dialogs").await;
    let dialog_id = dialogs["items"][0]["id"].as_str().expect("a dialog").to_owned();

    let created = |path: &'static str, body: Value| {
        let app = &app;
        async move {
            let (status, item) = app.post(path, &body).await;
            assert_eq!(status, 201, "{path}: {item}");
            item["id"].as_str().expect("id").to_owned()
        }
    };
    let employee = created("/v1/employees", json!({"name": "Anna"})).await;
    let group = created("/v1/groups", json!({"name": "Sales"})).await;
    let chatbot =
        created("/v1/chatbots", json!({"name": "Bot", "webhook_url": "https://bots.example/x"})).await;

    // The other tenant, made as a deployment makes it: by the platform operator, over HTTP.
    let (status, other) = app.as_operator(Method::POST, "/v1/tenants", Some(&json!({"name": "Other"}))).await;
    assert_eq!(status, 201, "{other}");
    let other_key = other["admin_key"].as_str().expect("the other tenant's admin key").to_owned();
    omnichat_tests::logs::register_secret(other_key.clone());
    let (_, own_keys) = app.get("/v1/api-keys").await;
    let own_key_id = own_keys[0]["id"].as_str().expect("the owner's key id").to_owned();
    // An employee of the other tenant, for the routes only employees may call.
    let as_other = |path: &str, body: Value| {
        let (app, key) = (&app, other_key.clone());
        let path = path.to_owned();
        async move {
            read(app.http.post(app.url(&path)).bearer_auth(key).json(&body).send().await.expect("POST")).await
        }
    };
    let (_, other_employee) = as_other("/v1/employees", json!({"name": "Mallory"})).await;
    let (status, other_employee_key) =
        as_other("/v1/api-keys", json!({"role": "employee", "employee_id": other_employee["id"]})).await;
    assert_eq!(status, 201, "{other_employee_key}");
    let other_employee_key = other_employee_key["key"].as_str().expect("key").to_owned();
    let fill = |text: &str| {
        text.replace("{channel}", &channel_id)
            .replace("{dialog}", &dialog_id)
            .replace("{employee}", &employee)
            .replace("{group}", &group)
            .replace("{chatbot}", &chatbot)
            .replace("{api_key}", &own_key_id)
    };
    // What the owner's admin sees of the dialog, and what the provider was sent, before any attempt: each
    // attempt below must leave both as they are, whatever status it answered.
    let before = owner_view(&app, &dialog_id).await;
    assert_eq!(before.1["items"].as_array().map(Vec::len), Some(1), "the customer's message: {}", before.1);
    let sends_before = sends(&app).await;
    for (method, template, body) in routes() {
        let path = fill(template);
        let body: Value = serde_json::from_str(&fill(&body.to_string())).expect("json");
        let request = |key: &str| {
            let builder = match method {
                "GET" => app.http.get(app.url(&path)),
                "PUT" => app.http.put(app.url(&path)).json(&body),
                "DELETE" => app.http.delete(app.url(&path)),
                _ => app.http.post(app.url(&path)).json(&body),
            };
            builder.bearer_auth(key.to_owned())
        };
        for key in [&other_key, &other_employee_key] {
            let (status, response) = read(request(key).send().await.expect("request")).await;
            let employee_only = response["error"]["code"] == "employee_key_required";
            if key == &other_key && employee_only {
                continue;
            }
            assert_eq!(status, 404, "{method} {path} as another tenant: {response}");
            assert_eq!(response["error"]["code"], "not_found");
            let after = owner_view(&app, &dialog_id).await;
            assert_eq!(after, before, "{method} {path} as another tenant changed the dialog or its messages");
            assert_eq!(sends(&app).await, sends_before, "{method} {path} as another tenant sent a message");
        }
        // And the route does exist for the owner (so the 404 above is isolation, not a missing route).
        if method == "GET" {
            let (status, _) = read(request(omnichat_tests::ADMIN_KEY).send().await.expect("request")).await;
            assert_eq!(status, 200, "{method} {path} as the owner");
        }
    }
    for list in ["/v1/channels", "/v1/dialogs", "/v1/employees", "/v1/groups", "/v1/chatbots", "/v1/api-keys"]
    {
        let response = app.http.get(app.url(list)).bearer_auth(&other_key).send().await.expect("GET");
        let (status, body): (u16, Value) = read(response).await;
        assert_eq!(status, 200);
        let owned = [&channel_id, &dialog_id, &employee, &group, &chatbot, &own_key_id];
        // Lists are pages (`items`), except the keys' (an array).
        let leaked: Vec<&Value> = body["items"]
            .as_array()
            .or(body.as_array())
            .into_iter()
            .flatten()
            .filter(|item| owned.iter().any(|id| item["id"] == id.as_str()))
            .collect();
        assert!(leaked.is_empty(), "{list} leaks another tenant's data: {leaked:?}");
    }
    // Nothing changed for the owner: its key still works.
    let (status, _) = app.get("/v1/api-keys").await;
    assert_eq!(status, 200, "the owner's key was not revoked by the other tenant");
    // Nothing changed for the owner.
    let (_, still) = app.get(&format!("/v1/channels/{channel_id}")).await;
    assert_eq!((still["status"].as_str(), still["name"].as_str()), (Some("active"), Some("Support bot")));
    for path in [
        format!("/v1/employees/{employee}"),
        format!("/v1/groups/{group}"),
        format!("/v1/chatbots/{chatbot}"),
    ] {
        let (status, item) = app.get(&path).await;
        assert_eq!((status, item["name"].as_str().is_some_and(|n| n != "taken over")), (200, true), "{path}");
    }
}
