//! End to end over HTTP: an Avito account connected by its owner's consent (OAuth authorization code)
//! against a local fake of Avito's authorize page, token endpoint and messenger API. The fake's token
//! endpoint rotates refresh tokens the way Avito does: each refresh token works once. The whole flow from
//! `authorize` to a stored customer message and replies; an access token that expires between replies is
//! renewed once for two concurrent sends; a refused access token is renewed; a refused renewal marks the
//! channel `reauthorization_required`, and authorizing again displaces it; a wrong, expired or reused
//! `state` and a refused code create nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use omnichat::ports::clock::{Clock, ManualClock, SystemClock};
use omnichat::providers::avito::AvitoClient;
use omnichat::secret::Secret;
use omnichat_tests::{TestApp, fixture};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PUBLIC_BASE: &str = "https://omnichat.example.test";
const APP_ID: &str = "platform-avito-app-0123";
const APP_SECRET: &str = "platform-avito-app-secret-0123456789";
const REDIRECT_URI: &str = "https://admin.example.test/avito/callback";
const ACCOUNT: i64 = 375811020;
const CHAT: &str = "u2i-5u1BZROboeSAFX7u00euug";

/// What the fake Avito remembers: the codes it handed out, the tokens it granted and which still work.
#[derive(Default)]
struct Grants {
    issued: u32,
    consents: u32,
    codes: BTreeSet<String>,
    live_access: BTreeSet<String>,
    live_refresh: BTreeSet<String>,
    refreshes: u32,
    /// Every refresh is refused (the owner withdrew the consent).
    withdrawn: bool,
}

impl Grants {
    fn grant(&mut self) -> Value {
        self.issued += 1;
        let (access, refresh) = (access_token(self.issued), refresh_token(self.issued));
        omnichat_tests::logs::register_secret(access.clone());
        omnichat_tests::logs::register_secret(refresh.clone());
        self.live_access.insert(access.clone());
        self.live_refresh.insert(refresh.clone());
        json!({"access_token": access, "refresh_token": refresh, "expires_in": 3600, "token_type": "Bearer",
               "scope": "messenger:read,messenger:write,user:read"})
    }
}

fn access_token(n: u32) -> String {
    format!("avito-access-token-{n}-0123456789abcdef")
}

fn refresh_token(n: u32) -> String {
    format!("avito-refresh-token-{n}-0123456789abcdef")
}

#[derive(Clone, Default)]
struct FakeAvito(Arc<Mutex<Grants>>);

impl FakeAvito {
    fn grants(&self) -> std::sync::MutexGuard<'_, Grants> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn form(request: &Request) -> BTreeMap<String, String> {
    let body = String::from_utf8_lossy(&request.body);
    let url = reqwest::Url::parse(&format!("http://form.invalid/?{body}")).expect("a form");
    url.query_pairs().into_owned().collect()
}

fn refused(error: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": error, "error_description": error}))
}

/// The consent page: the owner allows, and the browser is sent back with a new code and the state.
struct AuthorizePage(FakeAvito);

impl Respond for AuthorizePage {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let (Some(redirect), Some(state)) = (query.get("redirect_uri"), query.get("state")) else {
            return ResponseTemplate::new(400);
        };
        if query.get("client_id").map(String::as_str) != Some(APP_ID) {
            return ResponseTemplate::new(400);
        }
        let code = {
            let mut grants = self.0.grants();
            grants.consents += 1;
            let code = format!("consent-code-{}", grants.consents);
            grants.codes.insert(code.clone());
            code
        };
        let mut back = reqwest::Url::parse(redirect).expect("redirect_uri");
        back.query_pairs_mut().append_pair("code", &code).append_pair("state", state);
        ResponseTemplate::new(302).insert_header("location", back.as_str())
    }
}

/// `/token`: codes work once, refresh tokens work once (rotated), the platform's application only.
struct TokenEndpoint(FakeAvito);

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form = form(request);
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        if field("client_id") != APP_ID || field("client_secret") != APP_SECRET {
            return refused("invalid_client");
        }
        let mut grants = self.0.grants();
        match field("grant_type") {
            "authorization_code" => {
                if field("redirect_uri") != REDIRECT_URI || !grants.codes.remove(field("code")) {
                    return refused("invalid_grant");
                }
                ResponseTemplate::new(200).set_body_json(grants.grant())
            }
            "refresh_token" => {
                grants.refreshes += 1;
                let presented = field("refresh_token").to_owned();
                if grants.withdrawn || !grants.live_refresh.remove(&presented) {
                    return refused("invalid_grant");
                }
                ResponseTemplate::new(200).set_body_json(grants.grant())
            }
            _ => refused("invalid_grant"),
        }
    }
}

/// A messenger call: only a live access token is accepted.
struct Messenger(FakeAvito, Value);

impl Respond for Messenger {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let bearer = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !self.0.grants().live_access.contains(bearer) {
            return ResponseTemplate::new(401).set_body_json(json!({"code": 401, "message": "Unauthorized"}));
        }
        ResponseTemplate::new(200).set_body_json(self.1.clone())
    }
}

struct Fake {
    server: MockServer,
    avito: FakeAvito,
}

async fn fake() -> Fake {
    let server = MockServer::start().await;
    let avito = FakeAvito::default();
    Mock::given(method("GET"))
        .and(path("/oauth"))
        .respond_with(AuthorizePage(avito.clone()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(TokenEndpoint(avito.clone()))
        .mount(&server)
        .await;
    let account = json!({"id": ACCOUNT, "name": "Велосипеды у дома"});
    Mock::given(method("GET"))
        .and(path("/core/v1/accounts/self"))
        .respond_with(Messenger(avito.clone(), account))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/messenger/v3/webhook"))
        .respond_with(Messenger(avito.clone(), json!({"ok": true})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/messenger/v1/subscriptions"))
        .respond_with(Messenger(avito.clone(), json!({"subscriptions": []})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/messenger/v1/accounts/{ACCOUNT}/chats/{CHAT}/messages")))
        .respond_with(Messenger(
            avito.clone(),
            json!({"id": "sent-1", "created": 1712220300, "direction": "out", "type": "text"}),
        ))
        .mount(&server)
        .await;
    Fake { server, avito }
}

async fn spawn(fake: &Fake, clock: Arc<dyn Clock>) -> TestApp {
    omnichat_tests::logs::register_secret(APP_SECRET);
    let base = fake.server.uri();
    TestApp::spawn_with_clock_and(clock, move |providers| {
        let client = AvitoClient::new(omnichat::providers::http_client(), base.clone())
            .with_oauth_base(base)
            .with_app(Secret::new(APP_ID), Secret::new(APP_SECRET));
        providers.with_avito(Arc::new(client))
    })
    .await
}

fn encoded_redirect() -> String {
    let url = reqwest::Url::parse_with_params("http://x.invalid/", [("r", REDIRECT_URI)]).expect("url");
    url.query().and_then(|q| q.strip_prefix("r=")).expect("encoded").to_owned()
}

/// `GET /v1/channels/avito/authorize` with `key`: the authorize URL and its state.
async fn authorize(app: &TestApp, key: &str) -> (String, String) {
    let path = format!("/v1/channels/avito/authorize?redirect_uri={}", encoded_redirect());
    let (status, body) = app.with_key(key, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().expect("url").to_owned();
    let state = body["state"].as_str().expect("state").to_owned();
    (url, state)
}

/// The owner consents on the fake's page: the code and state it sends the browser back with.
async fn consent(url: &str) -> (String, String) {
    let browser =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let answer = browser.get(url).send().await.expect("authorize page");
    assert_eq!(answer.status().as_u16(), 302);
    let location = answer.headers().get("location").and_then(|v| v.to_str().ok()).expect("location");
    let back = reqwest::Url::parse(location).expect("redirect");
    assert_eq!(back.as_str().split('?').next(), Some(REDIRECT_URI));
    let query: BTreeMap<String, String> = back.query_pairs().into_owned().collect();
    (query["code"].clone(), query["state"].clone())
}

async fn connect_by_consent(app: &TestApp, name: &str) -> Value {
    let (url, _) = authorize(app, omnichat_tests::ADMIN_KEY).await;
    let (code, state) = consent(&url).await;
    let body = json!({"code": code, "state": state, "redirect_uri": REDIRECT_URI, "name": name});
    let (status, created) = app.post("/v1/channels/avito/connect", &body).await;
    assert_eq!(status, 201, "{created}");
    created
}

fn webhook_path(channel: &Value) -> String {
    let url = channel["webhook_url"].as_str().expect("webhook_url");
    url.strip_prefix(PUBLIC_BASE).expect("under the public base").to_owned()
}

/// The channel's credentials as the local secret store keeps them.
fn kept_credentials(app: &TestApp, channel_id: &str) -> BTreeMap<String, String> {
    let bytes = std::fs::read(app.data_dir().join("secrets.json")).expect("secrets file");
    let kept: BTreeMap<String, String> = serde_json::from_slice(&bytes).expect("secrets");
    let (_, credentials) = kept
        .iter()
        .find(|(name, _)| name.ends_with(&format!("/{channel_id}")))
        .expect("the channel's secret");
    serde_json::from_str(credentials).expect("credentials")
}

async fn a_customer_writes(app: &TestApp, channel: &Value) -> String {
    let status = app.deliver(&webhook_path(channel), &[], fixture("avito_text.json")).await;
    assert_eq!(status, 200);
    let (status, dialogs) = app.get("/v1/dialogs").await;
    assert_eq!(status, 200, "{dialogs}");
    let items = dialogs["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{dialogs}");
    items[0]["id"].as_str().expect("dialog id").to_owned()
}

async fn reply(app: &TestApp, dialog: &str, text: &str) -> Value {
    let (status, sent) = app.post(&format!("/v1/dialogs/{dialog}/messages"), &json!({"text": text})).await;
    assert_eq!(status, 201, "{sent}");
    sent
}

/// The bearer tokens of the replies the fake received, in order.
async fn reply_tokens(fake: &Fake) -> Vec<String> {
    let requests = fake.server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with(&format!("/chats/{CHAT}/messages")))
        .filter_map(|r| r.headers.get("authorization").and_then(|v| v.to_str().ok()))
        .map(|v| v.trim_start_matches("Bearer ").to_owned())
        .collect()
}

#[tokio::test]
async fn an_account_connected_by_consent_receives_replies_and_renews_its_tokens_once() {
    let fake = fake().await;
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let app = spawn(&fake, clock.clone()).await;

    let (url, state) = authorize(&app, omnichat_tests::ADMIN_KEY).await;
    let parsed = reqwest::Url::parse(&url).expect("url");
    assert_eq!(url.split('?').next(), Some(format!("{}/oauth", fake.server.uri()).as_str()));
    let query: BTreeMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], APP_ID);
    assert_eq!(query["scope"], "messenger:read,messenger:write,user:read");
    assert_eq!(query["redirect_uri"], REDIRECT_URI);
    assert_eq!(query["state"], state);
    assert!(!url.contains(APP_SECRET));

    let (code, back_state) = consent(&url).await;
    assert_eq!(back_state, state);
    let body = json!({"code": code, "state": state, "redirect_uri": REDIRECT_URI, "name": "Avito shop"});
    let (status, created) = app.post("/v1/channels/avito/connect", &body).await;
    assert_eq!(status, 201, "{created}");
    let channel = created.clone();
    assert_eq!(channel["displaced"], Value::Null);
    assert_eq!(channel["provider"], "avito");
    assert_eq!(channel["status"], "active");
    assert_eq!(channel["name"], "Avito shop");
    assert_eq!(channel["account"], json!({"id": ACCOUNT.to_string(), "name": "Велосипеды у дома"}));
    let channel_id = channel["id"].as_str().expect("id").to_owned();
    let (_, read) = app.get(&format!("/v1/channels/{channel_id}")).await;
    for shown in [created.to_string(), read.to_string()] {
        assert!(!shown.contains("avito-access-token") && !shown.contains("avito-refresh-token"), "{shown}");
    }
    let subscribed: Vec<Value> = fake
        .server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/messenger/v3/webhook")
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    assert_eq!(subscribed, vec![json!({"url": channel["webhook_url"]})]);
    assert_eq!(kept_credentials(&app, &channel_id)["refresh_token"], refresh_token(1));

    // A buyer writes; the first reply goes with the granted token.
    let dialog = a_customer_writes(&app, &channel).await;
    let (_, messages) = app.get(&format!("/v1/dialogs/{dialog}/messages")).await;
    assert_eq!(messages["items"][0]["text"], "есть в наличии?", "{messages}");
    assert_eq!(reply(&app, &dialog, "Да, есть").await["status"], "sent");
    assert_eq!(reply_tokens(&fake).await, vec![access_token(1)]);

    // An hour later the token has expired (the fake's live an hour): two replies at once renew it once,
    // and both go with the new token.
    clock.advance(jiff::SignedDuration::from_hours(1));
    let (first, second) = tokio::join!(reply(&app, &dialog, "Первый"), reply(&app, &dialog, "Второй"));
    assert_eq!((&first["status"], &second["status"]), (&json!("sent"), &json!("sent")), "{first} {second}");
    assert_eq!(fake.avito.grants().refreshes, 1, "one renewal for two concurrent sends");
    assert_eq!(reply_tokens(&fake).await[1..], [access_token(2), access_token(2)]);
    // The rotated refresh token was kept at once.
    assert_eq!(kept_credentials(&app, &channel_id)["refresh_token"], refresh_token(2));

    // Avito refuses the access token before its time (revoked): renewed on the 401, and the reply sent.
    fake.avito.grants().live_access.clear();
    assert_eq!(reply(&app, &dialog, "Третий").await["status"], "sent");
    assert_eq!(fake.avito.grants().refreshes, 2);
    assert_eq!(reply_tokens(&fake).await[3..], [access_token(2), access_token(3)]);
    assert_eq!(kept_credentials(&app, &channel_id)["refresh_token"], refresh_token(3));

    // Disconnecting forgets the tokens.
    let (status, gone) =
        app.post(&format!("/v1/channels/{channel_id}/disconnect"), &json!({"confirm": true})).await;
    assert_eq!(status, 200, "{gone}");
    let bytes = std::fs::read(app.data_dir().join("secrets.json")).expect("secrets file");
    assert!(!String::from_utf8_lossy(&bytes).contains("avito-refresh-token"), "the tokens were forgotten");
}

#[tokio::test]
async fn a_refused_renewal_marks_the_channel_for_reauthorization_and_consent_again_replaces_it() {
    let fake = fake().await;
    let app = spawn(&fake, Arc::new(SystemClock)).await;
    let channel = connect_by_consent(&app, "Avito shop").await;
    let channel_id = channel["id"].as_str().expect("id").to_owned();
    let dialog = a_customer_writes(&app, &channel).await;

    // The owner withdrew the consent: the token is refused and so is its renewal.
    {
        let mut grants = fake.avito.grants();
        grants.withdrawn = true;
        grants.live_access.clear();
    }
    let failed = reply(&app, &dialog, "Да").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(fake.avito.grants().refreshes, 1);
    let (_, read) = app.get(&format!("/v1/channels/{channel_id}")).await;
    assert_eq!(read["status"], "reauthorization_required", "{read}");
    // What the customer writes meanwhile is still stored: nobody's message is lost while the owner acts.
    let mut later: Value = serde_json::from_slice(&fixture("avito_text.json")).expect("fixture");
    later["payload"]["value"]["id"] = json!("written-while-reauthorization-is-required");
    later["payload"]["value"]["content"]["text"] = json!("Вы тут?");
    let body = serde_json::to_vec(&later).expect("json");
    assert_eq!(app.deliver(&webhook_path(&channel), &[], body).await, 200);
    let (_, messages) = app.get(&format!("/v1/dialogs/{dialog}/messages")).await;
    let texts: Vec<&str> =
        messages["items"].as_array().into_iter().flatten().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"Вы тут?"), "{messages}");
    // Nothing more is sent or renewed through it.
    let (_, more) = app.post(&format!("/v1/dialogs/{dialog}/messages"), &json!({"text": "Ещё"})).await;
    assert_ne!(more["status"], "sent", "{more}");
    assert_eq!(fake.avito.grants().refreshes, 1);

    // Authorizing again connects the account anew and displaces the channel that needed it.
    fake.avito.grants().withdrawn = false;
    let again = connect_by_consent(&app, "Avito shop").await;
    assert_eq!(again["displaced"], json!(channel_id), "{again}");
    let (_, old) = app.get(&format!("/v1/channels/{channel_id}")).await;
    assert_eq!(old["status"], "displaced", "{old}");
    assert_eq!(again["status"], "active");
}

#[tokio::test]
async fn a_code_needs_its_own_fresh_unused_state_and_a_refused_code_creates_nothing() {
    let fake = fake().await;
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let app = spawn(&fake, clock.clone()).await;
    let exchanged = async || {
        let requests = fake.server.received_requests().await.unwrap_or_default();
        requests.iter().filter(|r| r.url.path() == "/token").count()
    };
    let refused = async |body: &Value, what: &str| {
        let (status, answer) = app.post("/v1/channels/avito/connect", body).await;
        assert_eq!(
            (status, &answer["error"]["code"], &answer["error"]["field"]),
            (422, &json!("invalid_state"), &json!("state")),
            "{what}: {answer}"
        );
    };
    let with = |code: &str, state: &str| json!({"code": code, "state": state, "redirect_uri": REDIRECT_URI});

    let (url, _) = authorize(&app, omnichat_tests::ADMIN_KEY).await;
    let (code, _) = consent(&url).await;
    refused(&json!({"code": code, "redirect_uri": REDIRECT_URI}), "no state").await;
    refused(&with(&code, "a-state-nobody-handed-out-0123456789"), "a made-up state").await;

    // Another redirect URI than the state's.
    let (_, state) = authorize(&app, omnichat_tests::ADMIN_KEY).await;
    let mut other = with(&code, &state);
    other["redirect_uri"] = json!("https://admin.example.test/other");
    refused(&other, "another redirect URI").await;

    // Another tenant's admin cannot use this tenant's state.
    let (status, tenant) =
        app.as_operator(reqwest::Method::POST, "/v1/tenants", Some(&json!({"name": "Other shop"}))).await;
    assert_eq!(status, 201, "{tenant}");
    let other_key = tenant["admin_key"].as_str().expect("admin key").to_owned();
    omnichat_tests::logs::register_secret(other_key.clone());
    let (_, theirs) = authorize(&app, &other_key).await;
    refused(&with(&code, &theirs), "another tenant's state").await;

    // Too late: a state lives 15 minutes.
    let (_, late) = authorize(&app, omnichat_tests::ADMIN_KEY).await;
    clock.advance(jiff::SignedDuration::from_mins(16));
    refused(&with(&code, &late), "a state older than 15 minutes").await;
    assert_eq!(exchanged().await, 0, "no code was exchanged");

    // A code Avito refuses: 422 naming the code, nothing created.
    let (_, state) = authorize(&app, omnichat_tests::ADMIN_KEY).await;
    let (status, answer) =
        app.post("/v1/channels/avito/connect", &with("a-code-avito-never-gave", &state)).await;
    assert_eq!(
        (status, &answer["error"]["code"], &answer["error"]["field"]),
        (422, &json!("code_rejected"), &json!("code")),
        "{answer}"
    );
    assert!(!answer.to_string().contains(APP_SECRET), "{answer}");
    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"], json!([]));

    // Its own fresh state: accepted once.
    let (_, state) = authorize(&app, omnichat_tests::ADMIN_KEY).await;
    let (status, created) = app.post("/v1/channels/avito/connect", &with(&code, &state)).await;
    assert_eq!(status, 201, "{created}");
    refused(&with(&code, &state), "the same state again").await;
    let (_, listed) = app.get("/v1/channels").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    // An unknown key gets no authorize URL.
    let (status, _) = app
        .with_key(
            "not-a-key-0123456789012345678901",
            reqwest::Method::GET,
            &format!("/v1/channels/avito/authorize?redirect_uri={}", encoded_redirect()),
            None,
        )
        .await;
    assert_eq!(status, 401);
}
