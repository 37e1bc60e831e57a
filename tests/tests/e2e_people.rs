//! End to end over HTTP against the local runner: employees, groups, chatbots and working hours. Every
//! rule answers 422 naming the field and saves nothing; employee keys see only what they may; another
//! tenant's ids are "not found".

use omnichat::domain::people::{Group, GroupChanges};
use omnichat::domain::{EmployeeId, Features, TenantId};
use omnichat::ports::store::{Condition, Write};
use omnichat::repo;
use omnichat::usecases::auth::{self, Role};
use omnichat::usecases::{hours, people, tenants};
use omnichat_tests::{ADMIN_KEY, TestApp, read};
use reqwest::Method;
use serde_json::{Value, json};

/// A request with any key (`None`: no Authorization header) and an optional JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    read(request.send().await.expect("request")).await
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    call(app, method, path, Some(ADMIN_KEY), body).await
}

async fn raw_post(app: &TestApp, path: &str, body: &'static str) -> (u16, Value) {
    let request =
        app.http.post(app.url(path)).bearer_auth(ADMIN_KEY).header("content-type", "application/json");
    read(request.body(body).send().await.expect("POST")).await
}

async fn items(app: &TestApp, path: &str) -> Vec<Value> {
    let (status, body) = admin(app, Method::GET, path, None).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().expect("items")
}

/// Creates, and answers what was created as a read shows it: a chatbot's signing secret, shown only in the
/// 201, is checked and taken out (and registered for the logs check).
async fn create(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, mut created) = admin(app, Method::POST, path, Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    if let Some(object) = created.as_object_mut()
        && let Some(secret) = object.remove("signing_secret")
    {
        let secret = secret.as_str().expect("a string").to_owned();
        assert!(path == "/v1/chatbots" && secret.starts_with("whsec_"), "{path}: {secret}");
        omnichat_tests::logs::register_secret(secret);
    }
    assert_eq!(path == "/v1/chatbots", created.get("webhook_url").is_some(), "{created}");
    created
}

fn id(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

fn assert_rule(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

async fn tenant_id(app: &TestApp) -> TenantId {
    let (status, tenant) = admin(app, Method::GET, "/v1/tenant", None).await;
    assert_eq!(status, 200, "{tenant}");
    TenantId::parse(tenant["id"].as_str().expect("tenant id")).expect("a tenant id")
}

async fn employee_key(app: &TestApp, employee: &Value) -> String {
    let tenant = tenant_id(app).await;
    let employee = EmployeeId::parse(id(employee)).expect("an employee id");
    let (key, _) = auth::create_api_key(
        &app.running().context,
        &auth::Principal::admin_of(tenant),
        Role::Employee,
        Some(employee),
    )
    .await
    .expect("an employee key");
    omnichat_tests::logs::register_secret(key.expose());
    key.expose().to_owned()
}

#[tokio::test]
async fn employees_are_created_listed_read_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let anna =
        create(&app, "/v1/employees", json!({"name": "Anna", "status": "online", "max_dialogs": 3})).await;
    assert_eq!(anna, json!({"id": id(&anna), "name": "Anna", "status": "online", "max_dialogs": 3}));
    let boris = create(&app, "/v1/employees", json!({"name": "Boris"})).await;
    assert_eq!((&boris["status"], &boris["max_dialogs"]), (&json!("offline"), &json!(5)), "defaults");

    let listed = items(&app, "/v1/employees").await;
    assert_eq!(listed.iter().map(id).collect::<Vec<_>>(), vec![id(&anna), id(&boris)]);
    let (status, read) = admin(&app, Method::GET, &format!("/v1/employees/{}", id(&anna)), None).await;
    assert_eq!((status, &read), (200, &anna));

    let path = format!("/v1/employees/{}", id(&boris));
    let (status, changed) = admin(
        &app,
        Method::PUT,
        &path,
        Some(&json!({"name": "Boris K.", "status": "away", "max_dialogs": 8})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed, json!({"id": id(&boris), "name": "Boris K.", "status": "away", "max_dialogs": 8}));
    let (status, changed) = admin(&app, Method::PUT, &path, Some(&json!({"status": "online"}))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (&changed["name"], &changed["status"], &changed["max_dialogs"]),
        (&json!("Boris K."), &json!("online"), &json!(8))
    );
    let (_, read) = admin(&app, Method::GET, &path, None).await;
    assert_eq!(read, changed);

    let (status, body) = admin(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = admin(&app, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = admin(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = admin(&app, Method::PUT, &path, Some(&json!({"status": "away"}))).await;
    assert_eq!(status, 404);
    assert_eq!(items(&app, "/v1/employees").await, vec![anna]);

    for unknown in [format!("/v1/employees/{}", EmployeeId::generate()), "/v1/employees/not-an-id".to_owned()]
    {
        let (status, body) = admin(&app, Method::GET, &unknown, None).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn lists_page_with_limit_and_page() {
    let app = TestApp::spawn().await;
    for name in ["A", "B", "C"] {
        create(&app, "/v1/employees", json!({ "name": name })).await;
    }
    let (status, first) = admin(&app, Method::GET, "/v1/employees?limit=2", None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let next = first["next"].as_str().expect("a next page");
    let encoded: String = next
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let (status, second) =
        admin(&app, Method::GET, &format!("/v1/employees?limit=2&page={encoded}"), None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["items"][0]["name"], "C");
    assert_eq!(second["next"], Value::Null);
    let (status, body) = admin(&app, Method::GET, "/v1/employees?limit=0", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin(&app, Method::GET, "/v1/groups?page=garbage", None).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn every_employee_rule_is_422_with_its_field_and_saves_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": "A", "status": "busy"}), "status"),
        (json!({"name": "A", "max_dialogs": 0}), "max_dialogs"),
        (json!({"name": "A", "max_dialogs": 101}), "max_dialogs"),
        (json!({"name": "A", "max_dialogs": "3"}), "max_dialogs"),
        (json!({"name": "A", "role": "admin"}), "role"),
    ];
    for (body, field) in &cases {
        let (status, answer) = admin(&app, Method::POST, "/v1/employees", Some(body)).await;
        assert_rule(status, &answer, field);
    }
    assert_eq!(items(&app, "/v1/employees").await, Vec::<Value>::new());
    for malformed in ["{\"name\": ", "[]", "\"Anna\""] {
        let (status, body) = raw_post(&app, "/v1/employees", malformed).await;
        assert_eq!(status, 400, "{malformed}: {body}");
    }
    assert_eq!(items(&app, "/v1/employees").await, Vec::<Value>::new());

    let anna = create(&app, "/v1/employees", json!({"name": "Anna"})).await;
    let path = format!("/v1/employees/{}", id(&anna));
    for (body, field) in cases.iter().skip(1) {
        let (status, answer) = admin(&app, Method::PUT, &path, Some(body)).await;
        assert_rule(status, &answer, field);
    }
    let (_, read) = admin(&app, Method::GET, &path, None).await;
    assert_eq!(read, anna, "nothing changed");
}

#[tokio::test]
async fn groups_keep_members_in_order_and_name_only_employees_of_the_tenant() {
    let app = TestApp::spawn().await;
    let anna = create(&app, "/v1/employees", json!({"name": "Anna"})).await;
    let boris = create(&app, "/v1/employees", json!({"name": "Boris"})).await;
    let group = create(
        &app,
        "/v1/groups",
        json!({"name": "Sales", "members": [id(&boris), id(&anna)], "distribution": "least_busy", "wait_seconds": 90}),
    )
    .await;
    assert_eq!(
        group,
        json!({"id": id(&group), "name": "Sales", "members": [id(&boris), id(&anna)], "distribution": "least_busy", "wait_seconds": 90})
    );
    let plain = create(&app, "/v1/groups", json!({"name": "Support"})).await;
    assert_eq!(
        (&plain["members"], &plain["distribution"], &plain["wait_seconds"]),
        (&json!([]), &json!("round_robin"), &json!(60))
    );
    assert_eq!(items(&app, "/v1/groups").await, vec![group.clone(), plain.clone()]);

    let path = format!("/v1/groups/{}", id(&group));
    let (status, changed) = admin(
        &app,
        Method::PUT,
        &path,
        Some(&json!({"members": [id(&anna)], "distribution": "all_at_once"})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (&changed["name"], &changed["members"], &changed["wait_seconds"]),
        (&json!("Sales"), &json!([id(&anna)]), &json!(90))
    );
    let (_, read) = admin(&app, Method::GET, &path, None).await;
    assert_eq!(read, changed);

    let stranger = EmployeeId::generate().to_string();
    let cases = [
        (json!({"members": []}), "name"),
        (json!({"name": "G", "members": [id(&anna), id(&boris), id(&anna)]}), "members[2]"),
        (json!({"name": "G", "members": [id(&anna), stranger]}), "members[1]"),
        (json!({"name": "G", "members": ["nobody"]}), "members[0]"),
        (json!({"name": "G", "members": id(&anna)}), "members"),
        (json!({"name": "G", "distribution": "random"}), "distribution"),
        (json!({"name": "G", "wait_seconds": 0}), "wait_seconds"),
        (json!({"name": "G", "wait_seconds": 86_401}), "wait_seconds"),
    ];
    for (body, field) in &cases {
        let (status, answer) = admin(&app, Method::POST, "/v1/groups", Some(body)).await;
        assert_rule(status, &answer, field);
    }
    let (status, answer) = admin(
        &app,
        Method::POST,
        "/v1/groups",
        Some(&json!({"name": "G", "members": [EmployeeId::generate()]})),
    )
    .await;
    assert_rule(status, &answer, "members[0]");
    assert_eq!(answer["error"]["code"], "unknown_employee");
    for (body, field) in cases.iter().skip(1) {
        let (status, answer) = admin(&app, Method::PUT, &path, Some(body)).await;
        assert_rule(status, &answer, field);
    }
    assert_eq!(items(&app, "/v1/groups").await, vec![changed.clone(), plain.clone()], "nothing saved");

    let (status, body) = admin(&app, Method::DELETE, &format!("/v1/groups/{}", id(&plain)), None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(items(&app, "/v1/groups").await, vec![changed]);
}

#[tokio::test]
async fn an_employee_in_a_group_or_a_channel_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let anna = create(&app, "/v1/employees", json!({"name": "Anna"})).await;
    let boris = create(&app, "/v1/employees", json!({"name": "Boris"})).await;
    let group = create(&app, "/v1/groups", json!({"name": "Sales", "members": [id(&anna)]})).await;
    let anna_path = format!("/v1/employees/{}", id(&anna));

    let (status, body) = admin(&app, Method::DELETE, &anna_path, None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().expect("message").contains("Sales"), "{body}");
    let (status, _) = admin(&app, Method::GET, &anna_path, None).await;
    assert_eq!(status, 200, "still there");

    let (status, _) =
        admin(&app, Method::PUT, &format!("/v1/groups/{}", id(&group)), Some(&json!({"members": []}))).await;
    assert_eq!(status, 200);
    let (status, body) = admin(&app, Method::DELETE, &anna_path, None).await;
    assert_eq!(status, 204, "{body}");

    // A channel whose handling names Boris, and one whose handling names the group.
    app.fakes.telegram_accepts_bot(777_000_333, "acme_people_bot").await;
    let token = "777000333:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
    let (status, channel) = admin(
        &app,
        Method::POST,
        "/v1/channels",
        Some(&json!({"provider": "telegram", "name": "Support bot", "credentials": {"token": token},
                     "settings": {"handling": {"employee_id": id(&boris)}}})),
    )
    .await;
    assert_eq!(status, 201, "{channel}");
    let (status, body) = admin(&app, Method::DELETE, &format!("/v1/employees/{}", id(&boris)), None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().expect("message").contains(id(&channel)), "{body}");
    assert_eq!(items(&app, "/v1/employees").await.len(), 1);
}

#[tokio::test]
async fn chatbots_are_managed_by_admins_and_their_webhook_is_https_or_local() {
    let app = TestApp::spawn().await;
    let bot = create(
        &app,
        "/v1/chatbots",
        json!({"name": "Night bot", "webhook_url": "https://bots.example/night"}),
    )
    .await;
    assert_eq!(
        bot,
        json!({"id": id(&bot), "name": "Night bot", "webhook_url": "https://bots.example/night", "enabled": true})
    );
    let local = create(
        &app,
        "/v1/chatbots",
        json!({"name": "Local bot", "webhook_url": "http://127.0.0.1:9000/hook", "enabled": false}),
    )
    .await;
    assert_eq!(local["enabled"], false);
    let path = format!("/v1/chatbots/{}", id(&bot));
    let (status, changed) =
        admin(&app, Method::PUT, &path, Some(&json!({"enabled": false, "name": "Bot"}))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (&changed["name"], &changed["enabled"], &changed["webhook_url"]),
        (&json!("Bot"), &json!(false), &bot["webhook_url"])
    );

    let cases = [
        (json!({"webhook_url": "https://bots.example/x"}), "name"),
        (json!({"name": "B"}), "webhook_url"),
        (json!({"name": "B", "webhook_url": "http://bots.example/x"}), "webhook_url"),
        (json!({"name": "B", "webhook_url": "https://user:secret@bots.example/x"}), "webhook_url"),
        (json!({"name": "B", "webhook_url": "not a url"}), "webhook_url"),
        (json!({"name": "B", "webhook_url": "https://bots.example/x", "enabled": "yes"}), "enabled"),
    ];
    for (body, field) in &cases {
        let (status, answer) = admin(&app, Method::POST, "/v1/chatbots", Some(body)).await;
        assert_rule(status, &answer, field);
    }
    let (status, answer) =
        admin(&app, Method::PUT, &path, Some(&json!({"webhook_url": "http://10.0.0.1/hook"}))).await;
    assert_rule(status, &answer, "webhook_url");
    assert_eq!(items(&app, "/v1/chatbots").await, vec![changed.clone(), local.clone()], "nothing saved");

    // Without the chatbot service, no new chatbots.
    let tenant = tenant_id(&app).await;
    tenants::set_features(
        &app.running().context,
        &tenant,
        Features { contact_center: true, chatbots: false },
    )
    .await
    .expect("features updated");
    let (status, answer) = admin(
        &app,
        Method::POST,
        "/v1/chatbots",
        Some(&json!({"name": "B", "webhook_url": "https://b.example"})),
    )
    .await;
    assert_rule(status, &answer, "features.chatbots");
    assert_eq!(items(&app, "/v1/chatbots").await.len(), 2);

    let (status, body) = admin(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(items(&app, "/v1/chatbots").await, vec![local]);
}

#[tokio::test]
async fn working_hours_are_always_open_until_set_and_every_rule_names_its_field() {
    let app = TestApp::spawn().await;
    let (status, initial) = admin(&app, Method::GET, "/v1/working-hours", None).await;
    assert_eq!(status, 200, "{initial}");
    assert_eq!(initial["time_zone"], "UTC");
    assert_eq!(initial["weekly"]["sat"], json!([{"from": "00:00", "to": "24:00"}]));
    let ctx = &app.running().context;
    let tenant = tenant_id(&app).await;
    let monday_night: jiff::Timestamp = "2026-01-05T23:30:00Z".parse().expect("timestamp");
    assert!(hours::is_open(ctx, &tenant, monday_night).await.expect("read"), "always open until set");

    let sent = json!({
        "time_zone": "Europe/Moscow",
        "weekly": {"mon": [{"from": "09:00", "to": "18:00"}], "fri": [{"from": "22:00", "to": "02:00"}]},
        "holidays": ["2026-01-01"],
        "extra_days": [{"date": "2026-01-10", "intervals": [{"from": "10:00", "to": "15:00"}]}]
    });
    let (status, saved) = admin(&app, Method::PUT, "/v1/working-hours", Some(&sent)).await;
    assert_eq!(status, 200, "{saved}");
    let expected = json!({
        "time_zone": "Europe/Moscow",
        "weekly": {"mon": [{"from": "09:00", "to": "18:00"}], "tue": [], "wed": [], "thu": [],
                   "fri": [{"from": "22:00", "to": "02:00"}], "sat": [], "sun": []},
        "holidays": ["2026-01-01"],
        "extra_days": [{"date": "2026-01-10", "intervals": [{"from": "10:00", "to": "15:00"}]}]
    });
    assert_eq!(saved, expected);
    let (_, shown) = admin(&app, Method::GET, "/v1/working-hours", None).await;
    assert_eq!(shown, expected);
    assert!(!hours::is_open(ctx, &tenant, monday_night).await.expect("read"), "02:30 Tuesday in Moscow");
    let monday_noon: jiff::Timestamp = "2026-01-05T09:00:00Z".parse().expect("timestamp");
    assert!(hours::is_open(ctx, &tenant, monday_noon).await.expect("read"));

    let cases = [
        (json!({"weekly": {}}), "time_zone"),
        (json!({"time_zone": "Europe/Atlantis", "weekly": {}}), "time_zone"),
        (json!({"time_zone": "UTC"}), "weekly"),
        (
            json!({"time_zone": "UTC", "weekly": {"mon": [{"from": "9am", "to": "18:00"}]}}),
            "weekly.mon[0].from",
        ),
        (
            json!({"time_zone": "UTC", "weekly": {"tue": [{"from": "09:00", "to": "25:00"}]}}),
            "weekly.tue[0].to",
        ),
        (
            json!({"time_zone": "UTC", "weekly": {"wed": [{"from": "09:00", "to": "13:00"}, {"from": "12:00", "to": "18:00"}]}}),
            "weekly.wed[1].from",
        ),
        (json!({"time_zone": "UTC", "weekly": {"someday": []}}), "weekly.someday"),
        (json!({"time_zone": "UTC", "weekly": {}, "holidays": ["2026-01-01", "2026-13-01"]}), "holidays[1]"),
        (
            json!({"time_zone": "UTC", "weekly": {}, "extra_days": [{"date": "2026-01-10", "intervals": []}]}),
            "extra_days[0].intervals",
        ),
        (
            json!({"time_zone": "UTC", "weekly": {}, "holidays": ["2026-01-10"], "extra_days": [{"date": "2026-01-10", "intervals": [{"from": "10:00", "to": "11:00"}]}]}),
            "extra_days[0].date",
        ),
    ];
    for (body, field) in &cases {
        let (status, answer) = admin(&app, Method::PUT, "/v1/working-hours", Some(body)).await;
        assert_rule(status, &answer, field);
    }
    let request = app
        .http
        .put(app.url("/v1/working-hours"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json");
    let (status, body) = read(request.body("{\"time_zone\":").send().await.expect("PUT")).await;
    assert_eq!(status, 400, "{body}");
    let (_, read_back) = admin(&app, Method::GET, "/v1/working-hours", None).await;
    assert_eq!(read_back, expected, "nothing saved");
}

#[tokio::test]
async fn an_employee_key_reads_colleagues_and_changes_only_its_own_status() {
    let app = TestApp::spawn().await;
    let anna = create(&app, "/v1/employees", json!({"name": "Anna"})).await;
    let boris = create(&app, "/v1/employees", json!({"name": "Boris"})).await;
    let group =
        create(&app, "/v1/groups", json!({"name": "Sales", "members": [id(&anna), id(&boris)]})).await;
    let bot =
        create(&app, "/v1/chatbots", json!({"name": "Bot", "webhook_url": "https://bots.example/x"})).await;
    let key = employee_key(&app, &anna).await;
    let as_anna = |method: Method, path: String, body: Option<Value>| {
        let app = &app;
        let key = key.clone();
        async move { call(app, method, &path, Some(&key), body.as_ref()).await }
    };

    let (status, listed) = as_anna(Method::GET, "/v1/employees".into(), None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
    let (status, listed) = as_anna(Method::GET, "/v1/groups".into(), None).await;
    assert_eq!((status, &listed["items"]), (200, &json!([group.clone()])));
    let (status, read) = as_anna(Method::GET, format!("/v1/employees/{}", id(&boris)), None).await;
    assert_eq!((status, &read), (200, &boris));

    let own = format!("/v1/employees/{}", id(&anna));
    let (status, changed) = as_anna(Method::PUT, own.clone(), Some(json!({"status": "online"}))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["status"], "online");
    let (status, answer) =
        as_anna(Method::PUT, own.clone(), Some(json!({"status": "away", "name": "Queen Anna"}))).await;
    assert_rule(status, &answer, "name");
    let (status, answer) = as_anna(Method::PUT, own.clone(), Some(json!({"max_dialogs": 50}))).await;
    assert_rule(status, &answer, "max_dialogs");
    let (_, read) = admin(&app, Method::GET, &own, None).await;
    assert_eq!(
        (&read["name"], &read["status"], &read["max_dialogs"]),
        (&json!("Anna"), &json!("online"), &json!(5))
    );

    let boris_path = format!("/v1/employees/{}", id(&boris));
    let group_path = format!("/v1/groups/{}", id(&group));
    let bot_path = format!("/v1/chatbots/{}", id(&bot));
    let forbidden = [
        (Method::PUT, boris_path.clone(), Some(json!({"status": "offline"}))),
        (Method::POST, "/v1/employees".to_owned(), Some(json!({"name": "Eve"}))),
        (Method::DELETE, own.clone(), None),
        (Method::DELETE, boris_path.clone(), None),
        (Method::POST, "/v1/groups".to_owned(), Some(json!({"name": "Mine"}))),
        (Method::PUT, group_path.clone(), Some(json!({"members": []}))),
        (Method::DELETE, group_path.clone(), None),
        (Method::GET, "/v1/chatbots".to_owned(), None),
        (
            Method::POST,
            "/v1/chatbots".to_owned(),
            Some(json!({"name": "B", "webhook_url": "https://b.example"})),
        ),
        (Method::GET, bot_path.clone(), None),
        (Method::PUT, bot_path.clone(), Some(json!({"enabled": false}))),
        (Method::POST, format!("{bot_path}/rotate-secret"), None),
        (Method::DELETE, bot_path.clone(), None),
        (Method::GET, "/v1/working-hours".to_owned(), None),
        (Method::PUT, "/v1/working-hours".to_owned(), Some(json!({"time_zone": "UTC", "weekly": {}}))),
    ];
    for (method, path, body) in forbidden {
        let (status, answer) = as_anna(method.clone(), path.clone(), body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let (_, read) = admin(&app, Method::GET, &boris_path, None).await;
    assert_eq!(read, boris, "nothing changed");
    assert_eq!(items(&app, "/v1/employees").await.len(), 2);
    assert_eq!(items(&app, "/v1/groups").await, vec![group]);
    assert_eq!(items(&app, "/v1/chatbots").await, vec![bot]);

    for path in ["/v1/employees", "/v1/groups", "/v1/chatbots", "/v1/working-hours"] {
        let (status, _) = call(&app, Method::GET, path, None, None).await;
        assert_eq!(status, 401, "{path}");
        let (status, _) = call(&app, Method::GET, path, Some("ock_not_a_key"), None).await;
        assert_eq!(status, 401, "{path}");
    }
}

#[tokio::test]
async fn another_tenant_sees_none_of_it() {
    let app = TestApp::spawn().await;
    let anna = create(&app, "/v1/employees", json!({"name": "Anna"})).await;
    let group = create(&app, "/v1/groups", json!({"name": "Sales", "members": [id(&anna)]})).await;
    let bot =
        create(&app, "/v1/chatbots", json!({"name": "Bot", "webhook_url": "https://bots.example/x"})).await;
    let hours = json!({"time_zone": "Asia/Tokyo", "weekly": {"mon": [{"from": "09:00", "to": "18:00"}]}});
    let (status, _) = admin(&app, Method::PUT, "/v1/working-hours", Some(&hours)).await;
    assert_eq!(status, 200);

    let (_, other_key) = tenants::create_tenant(&app.running().context, "Other", Features::default())
        .await
        .expect("another tenant");
    let other = other_key.expose().to_owned();
    let as_other = |method: Method, path: String, body: Option<Value>| {
        let app = &app;
        let other = other.clone();
        async move { call(app, method, &path, Some(&other), body.as_ref()).await }
    };
    for path in ["/v1/employees", "/v1/groups", "/v1/chatbots"] {
        let (status, listed) = as_other(Method::GET, path.into(), None).await;
        assert_eq!((status, &listed["items"]), (200, &json!([])), "{path}");
    }
    let (_, their_hours) = as_other(Method::GET, "/v1/working-hours".into(), None).await;
    assert_eq!(their_hours["time_zone"], "UTC", "their own, still always open");
    for (path, body) in [
        (format!("/v1/employees/{}", id(&anna)), json!({"name": "Mallory"})),
        (format!("/v1/groups/{}", id(&group)), json!({"name": "Mallory"})),
        (format!("/v1/chatbots/{}", id(&bot)), json!({"name": "Mallory"})),
    ] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let (status, answer) = as_other(method.clone(), path.clone(), Some(body.clone())).await;
            assert_eq!(status, 404, "{method} {path}: {answer}");
        }
    }
    let rotate = format!("/v1/chatbots/{}/rotate-secret", id(&bot));
    let (status, answer) = as_other(Method::POST, rotate.clone(), None).await;
    assert_eq!(status, 404, "POST {rotate}: {answer}");
    let (status, answer) =
        as_other(Method::POST, "/v1/groups".into(), Some(json!({"name": "G", "members": [id(&anna)]}))).await;
    assert_rule(status, &answer, "members[0]");
    assert_eq!(items(&app, "/v1/employees").await, vec![anna]);
    assert_eq!(items(&app, "/v1/groups").await, vec![group]);
    assert_eq!(items(&app, "/v1/chatbots").await, vec![bot]);
}

#[tokio::test]
async fn a_group_checked_before_a_delete_cannot_be_saved_after_it() {
    let app = TestApp::spawn().await;
    let ctx = &app.running().context;
    let tenant = tenant_id(&app).await;
    let anna = create(&app, "/v1/employees", json!({"name": "Anna"})).await;
    // A group write that checked its members (and read the guard) before the delete...
    let guard = people::PeopleGuard::read(ctx, &tenant).await.expect("guard");
    let (status, body) = admin(&app, Method::DELETE, &format!("/v1/employees/{}", id(&anna)), None).await;
    assert_eq!(status, 204, "{body}");
    // ...loses: its transaction carries the guard, which the delete moved on.
    let changes = GroupChanges::from_json(&json!({"name": "G", "members": [id(&anna)]})).expect("valid");
    let group = Group::create(tenant.clone(), changes, jiff::Timestamp::now()).expect("valid");
    let item = repo::to_item(&group, &repo::group_key(&tenant, &group.id), &[]).expect("item");
    let writes = vec![Write::Put { item, condition: Condition::NotExists }, guard.write()];
    let error = ctx.store.transact(writes).await.expect_err("the guard moved");
    assert!(error.failed_at(1), "{error:?}");
    assert_eq!(items(&app, "/v1/groups").await, Vec::<Value>::new());
}

#[tokio::test]
async fn racing_group_saves_and_employee_deletes_never_leave_a_group_naming_nobody() {
    let app = TestApp::spawn().await;
    for round in 0..10 {
        let employee = create(&app, "/v1/employees", json!({ "name": format!("E{round}") })).await;
        let group_body = json!({"name": format!("G{round}"), "members": [id(&employee)]});
        let path = format!("/v1/employees/{}", id(&employee));
        let ((group_status, group), (delete_status, _)) = tokio::join!(
            admin(&app, Method::POST, "/v1/groups", Some(&group_body)),
            admin(&app, Method::DELETE, &path, None),
        );
        match (group_status, delete_status) {
            // The group first: the delete sees the member (409).
            (201, 409) => assert_eq!(admin(&app, Method::GET, &path, None).await.0, 200),
            // The delete first: the group names an unknown employee (422)...
            (422, 204) => assert_eq!(group["error"]["field"], "members[0]", "{group}"),
            // ...or kept losing the race and gave up (409, try again).
            (409, 204) => assert_eq!(group["error"]["code"], "conflict", "{group}"),
            other => panic!("round {round}: {other:?} {group}"),
        }
    }
    let employees: Vec<String> =
        items(&app, "/v1/employees").await.iter().map(|e| id(e).to_owned()).collect();
    for group in items(&app, "/v1/groups").await {
        for member in group["members"].as_array().expect("members") {
            assert!(
                employees.iter().any(|e| e == member.as_str().expect("id")),
                "{group} names a deleted employee"
            );
        }
    }
}

#[tokio::test]
async fn deleting_an_employee_revokes_their_api_keys() {
    let app = TestApp::spawn().await;
    let anna = create(&app, "/v1/employees", json!({"name": "Anna"})).await;
    let key = employee_key(&app, &anna).await;
    let (status, _) = call(&app, Method::GET, "/v1/employees", Some(&key), None).await;
    assert_eq!(status, 200);
    let (status, _) = admin(&app, Method::DELETE, &format!("/v1/employees/{}", id(&anna)), None).await;
    assert_eq!(status, 204);
    let (status, body) = call(&app, Method::GET, "/v1/employees", Some(&key), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    // The admin's own key is untouched.
    let (status, _) = admin(&app, Method::GET, "/v1/employees", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_api_key_for_an_employee_is_created_once_and_works() {
    let app = TestApp::spawn().await;
    let anna = create(&app, "/v1/employees", json!({"name": "Anna"})).await;
    let body = json!({"role": "employee", "employee_id": id(&anna)});
    let (status, created) = admin(&app, Method::POST, "/v1/api-keys", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().expect("the clear key, once").to_owned();
    let (status, _) = call(&app, Method::GET, "/v1/employees", Some(&key), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&app, Method::GET, "/v1/channels", Some(&key), None).await;
    assert_eq!(status, 404, "an employee key does not see admin resources");
    let bad = json!({"role": "employee"});
    let (status, answer) = admin(&app, Method::POST, "/v1/api-keys", Some(&bad)).await;
    assert_rule(status, &answer, "employee_id");
}
