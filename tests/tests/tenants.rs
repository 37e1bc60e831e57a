//! Tenants and keys over HTTP (docs/API.md "Tenants and keys"): the platform operator creates and lists
//! tenants and switches their services; admins list and revoke their tenant's keys; the keys of one role
//! open nothing of another's.

use std::time::Duration;

use omnichat::secret::Secret;
use omnichat_local::Config;
use omnichat_tests::{ADMIN_KEY, TestApp, read};
use reqwest::Method;
use serde_json::json;

async fn tenant_count(app: &TestApp) -> usize {
    let (status, list) = app.as_operator(Method::GET, "/v1/tenants?limit=500", None).await;
    assert_eq!(status, 200, "{list}");
    list["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn the_operator_creates_and_lists_tenants_and_only_the_operator_may() {
    let app = TestApp::spawn().await;
    let (status, list) = app.as_operator(Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["Default"], "the first tenant is listed");

    let body = json!({"name": "  Acme  ", "features": {"contact_center": false, "chatbots": true}});
    let (status, created) = app.as_operator(Method::POST, "/v1/tenants", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tenant"]["name"], "Acme");
    assert_eq!(created["tenant"]["features"], json!({"contact_center": false, "chatbots": true}));
    let key = created["admin_key"].as_str().expect("the admin key, shown once").to_owned();
    omnichat_tests::logs::register_secret(key.clone());
    assert!(key.len() >= 24, "{key}");
    // The new admin key works, in its own tenant.
    let (status, own) = app.with_key(&key, Method::GET, "/v1/tenant", None).await;
    assert_eq!((status, &own["id"]), (200, &created["tenant"]["id"]), "{own}");
    let (status, listed) = app.as_operator(Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][1]["id"], created["tenant"]["id"], "listed after the first: {listed}");
    let (status, got) = app
        .as_operator(
            Method::GET,
            &format!("/v1/tenants/{}", created["tenant"]["id"].as_str().unwrap_or("")),
            None,
        )
        .await;
    assert_eq!((status, &got["name"]), (200, &json!("Acme")));

    // A tenant's keys, no key or a wrong one: 401 on the operator's routes; nothing created.
    for key in [ADMIN_KEY, key.as_str(), "ock_not_a_key_at_all_0123456789abcdef"] {
        let (status, body) =
            app.with_key(key, Method::POST, "/v1/tenants", Some(&json!({"name": "Mallory"}))).await;
        assert_eq!((status, &body["error"]["code"]), (401, &json!("unauthorized")), "{body}");
        let (status, _) = app.with_key(key, Method::GET, "/v1/tenants", None).await;
        assert_eq!(status, 401);
    }
    let (status, _) = read(app.http.get(app.url("/v1/tenants")).send().await.expect("GET")).await;
    assert_eq!(status, 401);
    // The operator's key opens nothing inside a tenant.
    for path in ["/v1/tenant", "/v1/channels", "/v1/dialogs", "/v1/employees", "/v1/api-keys"] {
        let (status, body) = app.as_operator(Method::GET, path, None).await;
        assert_eq!(status, 401, "{path} with the operator key: {body}");
    }
    assert_eq!(tenant_count(&app).await, 2);

    // Bad input: a clear error, nothing created.
    for (body, status, field) in [
        (json!({"name": ""}), 422, Some("name")),
        (json!({"name": "x".repeat(101)}), 422, Some("name")),
        (json!({"name": "a\u{7}b"}), 422, Some("name")),
        (json!({"features": {"contact_center": true, "chatbots": true}}), 400, None),
        (json!({"name": "Acme", "plan": "gold"}), 400, None),
        (json!({"name": "Acme", "features": {"chatbots": true}}), 400, None),
    ] {
        let (got, answer) = app.as_operator(Method::POST, "/v1/tenants", Some(&body)).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["field"].as_str(), field, "{body}: {answer}");
    }
    assert_eq!(tenant_count(&app).await, 2, "no tenant was created by bad input");
}

#[tokio::test]
async fn only_the_operator_switches_a_tenants_services() {
    let app = TestApp::spawn().await;
    let (_, tenant) = app.get("/v1/tenant").await;
    let id = tenant["id"].as_str().expect("tenant id").to_owned();
    let off = json!({"features": {"contact_center": false, "chatbots": false}});

    let (status, refused) = app.http_put("/v1/tenant", &off).await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("operator_only")), "{refused}");
    let (_, unchanged) = app.get("/v1/tenant").await;
    assert_eq!(
        unchanged["features"],
        json!({"contact_center": true, "chatbots": true}),
        "an admin changed nothing"
    );
    // An admin key on the operator's route for its own tenant: 401, nothing changes.
    let (status, _) = app.with_key(ADMIN_KEY, Method::PUT, &format!("/v1/tenants/{id}"), Some(&off)).await;
    assert_eq!(status, 401);
    let (_, unchanged) = app.get("/v1/tenant").await;
    assert_eq!(unchanged["features"]["chatbots"], true);

    let (status, switched) = app.as_operator(Method::PUT, &format!("/v1/tenants/{id}"), Some(&off)).await;
    assert_eq!((status, &switched["features"]), (200, &off["features"]), "{switched}");
    let (_, read_back) = app.get("/v1/tenant").await;
    assert_eq!(read_back["features"], off["features"], "the admin reads what the operator set");

    // Unknown or malformed tenant ids: 404, nothing created.
    for path in ["/v1/tenants/0190f5c4-0000-7000-8000-000000000000", "/v1/tenants/not-a-uuid"] {
        let (status, body) = app.as_operator(Method::PUT, path, Some(&off)).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_eq!(tenant_count(&app).await, 1);
}

#[tokio::test]
async fn admins_list_and_revoke_keys_and_a_revoked_key_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let (_, employee) = app.post("/v1/employees", &json!({"name": "Anna"})).await;
    let (status, minted) =
        app.post("/v1/api-keys", &json!({"role": "employee", "employee_id": employee["id"]})).await;
    assert_eq!(status, 201, "{minted}");
    let employee_key = minted["key"].as_str().expect("key").to_owned();
    omnichat_tests::logs::register_secret(employee_key.clone());
    // The employee key works (and so its use is stamped).
    let (status, _) = app.with_key(&employee_key, Method::GET, "/v1/me/dialogs", None).await;
    assert_eq!(status, 200);

    let (status, keys) = app.get("/v1/api-keys").await;
    assert_eq!(status, 200, "{keys}");
    let keys = keys.as_array().expect("a list").clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let listed = keys.iter().find(|k| k["id"] == minted["id"]).expect("the new key is listed");
    assert_eq!(listed["role"], "employee");
    assert_eq!(listed["employee_id"], employee["id"]);
    assert_eq!(listed["last4"].as_str(), Some(&employee_key[employee_key.len() - 4..]));
    assert!(listed["last_used_at"].is_string(), "stamped when used: {listed}");
    let admin = keys.iter().find(|k| k["role"] == "admin").expect("the admin key");
    assert_eq!(admin["last4"].as_str(), Some(&ADMIN_KEY[ADMIN_KEY.len() - 4..]));
    let text = serde_json::to_string(&keys).expect("json");
    assert!(!text.contains(&employee_key) && !text.contains(ADMIN_KEY), "no key material is listed");

    // An employee key may not list or revoke keys: as if the routes held nothing.
    let (status, _) = app.with_key(&employee_key, Method::GET, "/v1/api-keys", None).await;
    assert_eq!(status, 404);
    let admin_path = format!("/v1/api-keys/{}", admin["id"].as_str().expect("id"));
    let (status, _) = app.with_key(&employee_key, Method::DELETE, &admin_path, None).await;
    assert_eq!(status, 404);

    // Another tenant's admin cannot revoke this tenant's key.
    let (_, other) = app.as_operator(Method::POST, "/v1/tenants", Some(&json!({"name": "Other"}))).await;
    let other_key = other["admin_key"].as_str().expect("key").to_owned();
    omnichat_tests::logs::register_secret(other_key.clone());
    let employee_path = format!("/v1/api-keys/{}", minted["id"].as_str().expect("id"));
    let (status, _) = app.with_key(&other_key, Method::DELETE, &employee_path, None).await;
    assert_eq!(status, 404);
    let (status, _) = app.with_key(&employee_key, Method::GET, "/v1/me/dialogs", None).await;
    assert_eq!(status, 200, "still valid");

    // Revoked: refused from the next request on; revoking again is 404.
    let response =
        app.http.delete(app.url(&employee_path)).bearer_auth(ADMIN_KEY).send().await.expect("DELETE");
    assert_eq!(response.status().as_u16(), 204);
    let (status, body) = app.with_key(&employee_key, Method::GET, "/v1/me/dialogs", None).await;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("unauthorized")));
    let (status, _) = app.get("/v1/api-keys").await;
    assert_eq!(status, 200);
    let (_, keys) = app.get("/v1/api-keys").await;
    assert_eq!(keys.as_array().map(Vec::len), Some(1));
    let response =
        app.http.delete(app.url(&employee_path)).bearer_auth(ADMIN_KEY).send().await.expect("DELETE");
    assert_eq!(response.status().as_u16(), 404);
}

/// `OMNICHAT_ADMIN_KEY` and `OMNICHAT_OPERATOR_KEY` shorter than 24 characters are refused at start, with
/// the reason, and nothing is created.
#[tokio::test]
async fn a_short_preset_key_is_refused_at_start() {
    for (admin, operator, named, reason) in [
        (Some("x"), None, "admin key", "at least 24 characters"),
        (Some("ock_23_chars_long_12345"), None, "admin key", "at least 24 characters"),
        (None, Some("short-operator-key"), "operator key", "at least 24 characters"),
        (Some("has a space in it 0123456789"), None, "admin key", "without spaces"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            port: 0,
            data_dir: dir.path().join("data"),
            admin_key: admin.map(Secret::new),
            operator_key: operator.map(Secret::new),
            public_base_url: None,
            providers: Some(omnichat::usecases::Providers::default()),
            tick: Duration::from_secs(60),
            max_concurrent_requests: 4,
            max_media_bytes: omnichat::ports::media::DEFAULT_MAX_MEDIA_BYTES,
            connections: omnichat_local::ConnectionLimits::default(),
        };
        let refused = omnichat_local::start_with_system_clock(config, std::future::pending())
            .await
            .err()
            .unwrap_or_else(|| panic!("{admin:?} / {operator:?} was accepted"));
        assert!(refused.contains(named) && refused.contains(reason), "{refused}");
        let key = admin.or(operator).unwrap_or_default();
        assert!(key.len() < 10 || !refused.contains(key), "the key is not echoed: {refused}");
        assert!(!dir.path().join("data").exists(), "refused before anything was created");
    }
}
