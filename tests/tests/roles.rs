//! Admin-only work with an employee key: every admin-only route is refused as if it did not exist (404),
//! and nothing changes, neither in what the admin reads back nor at the provider. The role checks live in
//! the use cases (not in the HTTP handlers), so this also holds for any other entry point.
//!
//! Each request is then sent again with the admin key, which must not get a 404: the refusal comes from
//! the role, not from the request (a body the route cannot read, a path that names nothing).

use omnichat_tests::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

/// What an admin reads of the tenant: everything an admin-only write could change.
async fn admin_view(app: &TestApp, channel_id: &str) -> Vec<(String, Value)> {
    let mut view = Vec::new();
    for path in [
        "/v1/tenant".to_owned(),
        "/v1/api-keys".to_owned(),
        "/v1/channels".to_owned(),
        format!("/v1/channels/{channel_id}"),
        "/v1/employees".to_owned(),
        "/v1/groups".to_owned(),
        "/v1/chatbots".to_owned(),
        "/v1/working-hours".to_owned(),
    ] {
        let (status, mut body) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        // Using a key stamps when it was last used: that is the one write a refused request makes.
        if let Some(keys) = body.as_array_mut() {
            keys.iter_mut().filter_map(Value::as_object_mut).for_each(|key| {
                key.remove("last_used_at");
            });
        }
        view.push((path, body));
    }
    view
}

async fn provider_calls(app: &TestApp) -> usize {
    app.fakes.telegram.received_requests().await.unwrap_or_default().len()
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap_or_else(|| panic!("an id in {value}")).to_owned()
}

#[tokio::test]
async fn an_employee_key_is_refused_on_every_admin_only_route_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (channel, _) = app.connect_telegram(7_001, "support_bot").await;
    let channel = id(&channel);
    let (_, anna) = app.post("/v1/employees", &json!({"name": "Anna", "status": "online"})).await;
    let (_, boris) = app.post("/v1/employees", &json!({"name": "Boris"})).await;
    let (_, group) = app.post("/v1/groups", &json!({"name": "Sales", "members": [id(&boris)]})).await;
    let (_, bot) = app
        .post("/v1/chatbots", &json!({"name": "Night bot", "webhook_url": "https://bots.example/n"}))
        .await;
    let (status, key) =
        app.post("/v1/api-keys", &json!({"role": "employee", "employee_id": id(&anna)})).await;
    assert_eq!(status, 201, "{key}");
    let employee_key = key["key"].as_str().expect("the employee key").to_owned();
    let (status, spare) = app.post("/v1/api-keys", &json!({"role": "admin"})).await;
    assert_eq!(status, 201, "{spare}");
    let (boris, group, bot, spare) = (id(&boris), id(&group), id(&bot), id(&spare));

    let hours = json!({"time_zone": "Europe/Moscow", "weekly": {"mon": [{"from": "09:00", "to": "18:00"}]}});
    let redirect = "https%3A%2F%2Fadmin.example%2Fvk";
    // Deletes last, so that the admin's pass can run them after the changes.
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/tenant".into(), None),
        (Method::PUT, "/v1/tenant".into(), Some(json!({"features": {"chatbots": false}}))),
        (Method::GET, "/v1/api-keys".into(), None),
        (Method::POST, "/v1/api-keys".into(), Some(json!({"role": "admin"}))),
        (Method::PUT, "/v1/working-hours".into(), Some(hours)),
        (Method::POST, "/v1/employees".into(), Some(json!({"name": "Vera"}))),
        (Method::PUT, format!("/v1/employees/{boris}"), Some(json!({"name": "Boris K.", "max_dialogs": 9}))),
        (Method::POST, "/v1/groups".into(), Some(json!({"name": "Support"}))),
        (Method::PUT, format!("/v1/groups/{group}"), Some(json!({"name": "Sales 2"}))),
        (Method::GET, format!("/v1/chatbots/{bot}"), None),
        (
            Method::POST,
            "/v1/chatbots".into(),
            Some(json!({"name": "Bot 2", "webhook_url": "https://bots.example/2"})),
        ),
        (Method::PUT, format!("/v1/chatbots/{bot}"), Some(json!({"enabled": false}))),
        (Method::GET, "/v1/channels".into(), None),
        (Method::GET, format!("/v1/channels/{channel}"), None),
        (Method::PUT, format!("/v1/channels/{channel}"), Some(json!({"name": "Renamed"}))),
        (
            Method::POST,
            "/v1/channels".into(),
            Some(
                json!({"provider": "telegram", "name": "Second", "credentials": {"token": "7002:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}}),
            ),
        ),
        (
            Method::POST,
            "/v1/channels/accounts".into(),
            Some(
                json!({"provider": "telegram", "credentials": {"token": "7003:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"}}),
            ),
        ),
        (
            Method::POST,
            format!("/v1/channels/{channel}/provider"),
            Some(
                json!({"whatsapp_provider": "infobip", "credentials": {"api_key": "k", "base_url": "https://x.api.infobip.com", "sender": "79001234567"}}),
            ),
        ),
        (Method::GET, format!("/v1/channels/vk/authorize?client_id=51234567&redirect_uri={redirect}"), None),
        (
            Method::POST,
            "/v1/channels/vk/communities".into(),
            Some(
                json!({"client_id": "51234567", "client_secret": "vk-app-secret", "redirect_uri": "https://admin.example/vk", "code": "c"}),
            ),
        ),
        (
            Method::POST,
            "/v1/channels/vk/community-token".into(),
            Some(
                json!({"client_id": "51234567", "client_secret": "vk-app-secret", "redirect_uri": "https://admin.example/vk", "code": "c", "group_id": 1}),
            ),
        ),
        (Method::DELETE, format!("/v1/chatbots/{bot}"), None),
        (Method::DELETE, format!("/v1/groups/{group}"), None),
        (Method::DELETE, format!("/v1/employees/{boris}"), None),
        (Method::POST, format!("/v1/channels/{channel}/disconnect"), Some(json!({"confirm": true}))),
        (Method::DELETE, format!("/v1/api-keys/{spare}"), None),
    ];

    let before = admin_view(&app, &channel).await;
    let calls_before = provider_calls(&app).await;
    for (method, path, body) in &requests {
        let (status, answer) = app.with_key(&employee_key, method.clone(), path, body.as_ref()).await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (404, &json!("not_found")),
            "{method} {path}: {answer}"
        );
    }
    assert_eq!(admin_view(&app, &channel).await, before, "an employee key changed something");
    assert_eq!(provider_calls(&app).await, calls_before, "an employee key reached the provider");

    // The same requests with the admin key reach their use case: each answer is its own (200, 201, 204,
    // or a rule of the route), never the 404 of a refused role.
    app.fakes.telegram_accepts_bot(7_002, "second_bot").await;
    for (method, path, body) in &requests {
        let (status, answer) =
            app.with_key(omnichat_tests::ADMIN_KEY, method.clone(), path, body.as_ref()).await;
        assert_ne!(status, 404, "{method} {path} with the admin key: {answer}");
    }
    assert_ne!(admin_view(&app, &channel).await, before, "the admin's pass changed the tenant");
}

/// `GET /v1/me`: the workspace learns the caller's role (and an employee's own record) without probing.
#[tokio::test]
async fn me_tells_the_caller_their_role_and_an_employee_their_record() {
    let app = TestApp::spawn().await;
    let (status, admin) = app.get("/v1/me").await;
    assert_eq!(status, 200, "{admin}");
    assert_eq!((admin["role"].as_str(), &admin["employee"]), (Some("admin"), &Value::Null), "{admin}");
    let (_, employee) =
        app.post("/v1/employees", &json!({"name": "Anna", "status": "away", "max_dialogs": 3})).await;
    let id = employee["id"].as_str().expect("id");
    let (_, key) = app.post("/v1/api-keys", &json!({"role": "employee", "employee_id": id})).await;
    let key = key["key"].as_str().expect("key");
    let (status, me) = app.with_key(key, Method::GET, "/v1/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "employee");
    assert_eq!(me["tenant_id"], admin["tenant_id"]);
    assert_eq!((me["employee"]["id"].as_str(), me["employee"]["status"].as_str()), (Some(id), Some("away")));
    let (status, _) = app.with_key("not-a-key", Method::GET, "/v1/me", None).await;
    assert_eq!(status, 401);
    // Which channel a dialog came in on, by name: no settings, no credentials, no webhook.
    let (channel, _) = app.connect_telegram(700_200_300, "acme_roles_bot").await;
    let (status, names) = app.with_key(key, Method::GET, "/v1/me/channels", None).await;
    assert_eq!(status, 200, "{names}");
    assert_eq!(names["items"][0]["id"], channel["id"]);
    assert_eq!(
        (names["items"][0]["name"].as_str(), names["items"][0]["provider"].as_str()),
        (Some("Support bot"), Some("telegram"))
    );
    let keys: Vec<&String> = names["items"][0].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["id", "name", "provider", "status"], "{names}");
}
