//! End to end over HTTP: the VK OAuth connect flow against fakes of `oauth.vk.com` and the VK API. The
//! authorize URLs, the user code listing the communities the account administers, a refused code and an
//! account without communities (422), and a community-token code connecting the channel without ever
//! showing the key.

use std::sync::Arc;

use omnichat::providers::vk::VkClient;
use omnichat_tests::TestApp;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "51234567";
const CLIENT_SECRET: &str = "AppSecretValue0123456789";
const REDIRECT_URI: &str = "https://admin.example.com/vk/callback";
const USER_TOKEN: &str = "vk1.a.userTokenSecretValue_0123456789abcdef";
const COMMUNITY_TOKEN: &str = "vk1.a.communityKeyFromOAuth_0123456789abcdef";
const GROUP_ID: i64 = 214167102;

struct Fakes {
    oauth: MockServer,
    api: MockServer,
}

async fn fakes() -> Fakes {
    Fakes { oauth: MockServer::start().await, api: MockServer::start().await }
}

async fn spawn(fakes: &Fakes) -> TestApp {
    spawn_with_clock(fakes, Arc::new(omnichat::ports::clock::SystemClock)).await
}

async fn spawn_with_clock(fakes: &Fakes, clock: Arc<dyn omnichat::ports::clock::Clock>) -> TestApp {
    let (api, oauth) = (fakes.api.uri(), fakes.oauth.uri());
    TestApp::spawn_with_clock_and(clock, move |providers| {
        let client = VkClient::new(omnichat::providers::http_client(), api).with_oauth_base(oauth);
        providers.with_vk(Arc::new(client))
    })
    .await
}

/// The redirect URI as a query parameter.
fn encoded_redirect() -> String {
    let url = reqwest::Url::parse_with_params("http://x.invalid/", [("r", REDIRECT_URI)]).expect("url");
    url.query().and_then(|q| q.strip_prefix("r=")).expect("encoded").to_owned()
}

/// A `state` as the authorize step hands it out (the community-token flow with `group_id`).
async fn state(app: &TestApp, key: &str, group_id: Option<i64>) -> String {
    let group = group_id.map(|id| format!("&group_ids={id}")).unwrap_or_default();
    let path =
        format!("/v1/channels/vk/authorize?client_id={CLIENT_ID}&redirect_uri={}{group}", encoded_redirect());
    let (status, body) = app.with_key(key, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let state = body["state"].as_str().expect("a state").to_owned();
    let (_, query) = query_of(body["url"].as_str().expect("url"));
    assert_eq!(query["state"], state, "the answer's state is the URL's");
    state
}

/// A code VK sent back, with the state of a fresh authorization of the same flow.
async fn code_body(app: &TestApp, code: &str, group_id: Option<i64>) -> Value {
    let state = state(app, omnichat_tests::ADMIN_KEY, group_id).await;
    let mut body = plain_code_body(code);
    body["state"] = json!(state);
    body
}

/// The fake exchanges `code` for `answer` (with the application's id, secret and redirect URI).
async fn exchanges(fakes: &Fakes, code: &str, status: u16, answer: Value) {
    Mock::given(method("GET"))
        .and(path("/access_token"))
        .and(query_param("client_id", CLIENT_ID))
        .and(query_param("client_secret", CLIENT_SECRET))
        .and(query_param("redirect_uri", REDIRECT_URI))
        .and(query_param("code", code))
        .respond_with(ResponseTemplate::new(status).set_body_json(answer))
        .mount(&fakes.oauth)
        .await;
}

async fn answer(fakes: &Fakes, vk_method: &str, body: Value) {
    Mock::given(method("POST"))
        .and(path(format!("/method/{vk_method}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&fakes.api)
        .await;
}

fn plain_code_body(code: &str) -> Value {
    json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT_URI, "code": code})
}

fn query_of(url: &str) -> (reqwest::Url, std::collections::BTreeMap<String, String>) {
    let url = reqwest::Url::parse(url).expect("authorize URL");
    let pairs = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    (url, pairs)
}

#[tokio::test]
async fn the_authorize_urls_ask_for_the_user_then_the_community_token() {
    let fakes = fakes().await;
    let app = spawn(&fakes).await;
    let encoded = reqwest::Url::parse_with_params("http://x.invalid/", [("r", REDIRECT_URI)]).expect("url");
    let encoded = encoded.query().and_then(|q| q.strip_prefix("r=")).expect("encoded").to_owned();

    let (status, body) =
        app.get(&format!("/v1/channels/vk/authorize?client_id={CLIENT_ID}&redirect_uri={encoded}")).await;
    assert_eq!(status, 200, "{body}");
    let (url, query) = query_of(body["url"].as_str().expect("url"));
    assert_eq!(url.as_str().split('?').next(), Some(format!("{}/authorize", fakes.oauth.uri()).as_str()));
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT_URI);
    assert_eq!(query["scope"], "groups");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["v"], "5.199");
    assert!(query["state"].len() >= 16, "{query:?}");
    assert!(!query.contains_key("group_ids"));

    let (status, again) =
        app.get(&format!("/v1/channels/vk/authorize?client_id={CLIENT_ID}&redirect_uri={encoded}")).await;
    assert_eq!(status, 200, "{again}");
    assert_ne!(query_of(again["url"].as_str().expect("url")).1["state"], query["state"], "state is random");

    let (status, body) = app
        .get(&format!(
            "/v1/channels/vk/authorize?client_id={CLIENT_ID}&redirect_uri={encoded}&group_ids={GROUP_ID}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, query) = query_of(body["url"].as_str().expect("url"));
    assert_eq!(query["group_ids"], GROUP_ID.to_string());
    assert_eq!(query["scope"], "messages,manage");

    let (status, body) =
        app.get(&format!("/v1/channels/vk/authorize?client_id=abc&redirect_uri={encoded}")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "client_id");
}

#[tokio::test]
async fn a_user_code_lists_the_communities_the_account_administers() {
    let fakes = fakes().await;
    exchanges(
        &fakes,
        "user-code",
        200,
        json!({"access_token": USER_TOKEN, "expires_in": 86400, "user_id": 1}),
    )
    .await;
    answer(
        &fakes,
        "groups.get",
        json!({"response": {"count": 2, "items": [
            {"id": GROUP_ID, "name": "Acme Support", "screen_name": "acme", "is_admin": 1, "admin_level": 3},
            {"id": 7, "name": "Acme News", "screen_name": "acmenews", "is_admin": 1, "admin_level": 3}
        ]}}),
    )
    .await;
    let app = spawn(&fakes).await;

    let (status, body) =
        app.post("/v1/channels/vk/communities", &code_body(&app, "user-code", None).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"items": [{"group_id": GROUP_ID, "name": "Acme Support"}, {"group_id": 7, "name": "Acme News"}]})
    );
    assert!(!body.to_string().contains(USER_TOKEN));
    let requests = fakes.api.received_requests().await.expect("requests");
    let form = String::from_utf8_lossy(&requests[0].body).into_owned();
    assert!(form.contains("filter=admin") && form.contains("extended=1"), "{form}");
    assert!(form.contains(&format!("access_token={}", USER_TOKEN)), "{form}");
}

#[tokio::test]
async fn a_code_vk_refuses_is_422_naming_code() {
    let fakes = fakes().await;
    exchanges(
        &fakes,
        "stale-code",
        401,
        json!({"error": "invalid_grant", "error_description": "Code is invalid or expired."}),
    )
    .await;
    let app = spawn(&fakes).await;

    let (status, body) =
        app.post("/v1/channels/vk/communities", &code_body(&app, "stale-code", None).await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "code_rejected");
    assert_eq!(body["error"]["field"], "code");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Code is invalid or expired")));
    assert!(fakes.api.received_requests().await.expect("requests").is_empty());
}

#[tokio::test]
async fn an_account_without_communities_is_422_not_community_admin() {
    let fakes = fakes().await;
    exchanges(&fakes, "user-code", 200, json!({"access_token": USER_TOKEN, "user_id": 1})).await;
    answer(&fakes, "groups.get", json!({"response": {"count": 0, "items": []}})).await;
    let app = spawn(&fakes).await;

    let (status, body) =
        app.post("/v1/channels/vk/communities", &code_body(&app, "user-code", None).await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "not_community_admin");
    assert_eq!(body["error"]["field"], "code");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("administers no community") && message.contains("администратором"), "{message}");
}

#[tokio::test]
async fn a_community_token_code_connects_the_channel_without_showing_the_key() {
    let fakes = fakes().await;
    exchanges(
        &fakes,
        "community-code",
        200,
        json!({format!("access_token_{GROUP_ID}"): COMMUNITY_TOKEN, "expires_in": 0}),
    )
    .await;
    answer(
        &fakes,
        "groups.getById",
        json!({"response": {"groups": [{"id": GROUP_ID, "name": "Acme Support", "can_message": 1}]}}),
    )
    .await;
    answer(&fakes, "groups.getCallbackConfirmationCode", json!({"response": {"code": "693d0ba9"}})).await;
    answer(&fakes, "groups.getCallbackServers", json!({"response": {"count": 0, "items": []}})).await;
    answer(&fakes, "groups.addCallbackServer", json!({"response": {"server_id": 3}})).await;
    answer(&fakes, "groups.setCallbackSettings", json!({"response": 1})).await;
    let app = spawn(&fakes).await;

    let mut request = code_body(&app, "community-code", Some(GROUP_ID)).await;
    request["group_id"] = json!(GROUP_ID);
    request["name"] = json!("VK community");
    let (status, channel) = app.post("/v1/channels/vk/community-token", &request).await;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["provider"], "vk");
    assert_eq!(channel["name"], "VK community");
    assert_eq!(channel["account"]["id"], GROUP_ID.to_string());
    assert!(!channel.to_string().contains(COMMUNITY_TOKEN), "{channel}");
    // The channel works with the key from the exchange.
    let requests = fakes.api.received_requests().await.expect("requests");
    let added = requests.iter().find(|r| r.url.path() == "/method/groups.addCallbackServer").expect("added");
    assert!(String::from_utf8_lossy(&added.body).contains("communityKeyFromOAuth"));

    // A code for another community carries no key for this one.
    exchanges(&fakes, "other-code", 200, json!({"access_token_7": COMMUNITY_TOKEN})).await;
    let mut request = code_body(&app, "other-code", Some(GROUP_ID)).await;
    request["group_id"] = json!(GROUP_ID);
    let (status, body) = app.post("/v1/channels/vk/community-token", &request).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "not_community_admin");
}

/// The `state` is what ties a code to the authorization this tenant started: without it, with another's,
/// twice, for the other flow or too late, the code is refused (422 naming `state`) before it is exchanged.
#[tokio::test]
async fn a_code_needs_its_own_fresh_unused_state() {
    let fakes = fakes().await;
    exchanges(&fakes, "user-code", 200, json!({"access_token": USER_TOKEN, "user_id": 1})).await;
    answer(
        &fakes,
        "groups.get",
        json!({"response": {"count": 1, "items": [{"id": GROUP_ID, "name": "Acme Support", "is_admin": 1}]}}),
    )
    .await;
    let clock = Arc::new(omnichat::ports::clock::ManualClock::new(jiff::Timestamp::now()));
    let app = spawn_with_clock(&fakes, clock.clone()).await;
    let exchanged = async || {
        let requests = fakes.oauth.received_requests().await.unwrap_or_default();
        requests.iter().filter(|r| r.url.path() == "/access_token").count()
    };
    let refused = async |body: &Value, what: &str| {
        let (status, answer) = app.post("/v1/channels/vk/communities", body).await;
        assert_eq!(
            (status, &answer["error"]["code"], &answer["error"]["field"]),
            (422, &json!("invalid_state"), &json!("state")),
            "{what}: {answer}"
        );
    };

    let mut body = plain_code_body("user-code");
    refused(&body, "no state at all").await;
    body["state"] = json!("a-state-nobody-handed-out-0123456789");
    refused(&body, "a made-up state").await;
    body["state"] = json!(state(&app, omnichat_tests::ADMIN_KEY, Some(GROUP_ID)).await);
    refused(&body, "the community flow's state").await;
    let mut other_app = plain_code_body("user-code");
    other_app["state"] = json!(state(&app, omnichat_tests::ADMIN_KEY, None).await);
    other_app["redirect_uri"] = json!("https://admin.example.com/other/callback");
    refused(&other_app, "another redirect URI").await;

    // Another tenant's admin cannot use this tenant's state.
    let (status, tenant) =
        app.as_operator(reqwest::Method::POST, "/v1/tenants", Some(&json!({"name": "Other shop"}))).await;
    assert_eq!(status, 201, "{tenant}");
    let other_key = tenant["admin_key"].as_str().expect("admin key").to_owned();
    omnichat_tests::logs::register_secret(other_key.clone());
    let mut theirs = plain_code_body("user-code");
    theirs["state"] = json!(state(&app, &other_key, None).await);
    refused(&theirs, "another tenant's state").await;

    // Too late: a state lives 15 minutes.
    let mut late = plain_code_body("user-code");
    late["state"] = json!(state(&app, omnichat_tests::ADMIN_KEY, None).await);
    clock.advance(jiff::SignedDuration::from_mins(16));
    refused(&late, "a state older than 15 minutes").await;
    assert_eq!(exchanged().await, 0, "no refused code was exchanged");

    // Its own fresh state: accepted once.
    let mut fresh = plain_code_body("user-code");
    fresh["state"] = json!(state(&app, omnichat_tests::ADMIN_KEY, None).await);
    let (status, listed) = app.post("/v1/channels/vk/communities", &fresh).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(exchanged().await, 1);
    refused(&fresh, "the same state again").await;
    assert_eq!(exchanged().await, 1);
}
