//! The operator's webhook re-registration (`platform::reregister_webhooks`) on the embedded store, against
//! the fake Telegram and Infobip: after the public base URL changed, every Telegram channel's webhook is
//! set again at the new URL, Infobip's new URL is reported for the admin to paste, a channel the provider
//! refuses is reported while the others go on, and running it again is harmless.

use std::sync::Arc;

use omnichat::domain::{Provider, TenantId};
use omnichat::providers::infobip::InfobipClient;
use omnichat::usecases::platform::{self, Outcome, Reregistration};
use omnichat::usecases::{Context, auth};
use omnichat_tests::{ADMIN_KEY, TestApp};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

const NEW_BASE: &str = "https://moved.example.test";
const TOKEN_TAIL: &str = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const IB_KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3c9a";

/// The running bundle's context with another public base URL (what the operator's CLI builds).
fn moved(app: &TestApp, base: &str) -> Context {
    let ctx = &app.running().context;
    Context::new(
        Arc::clone(&ctx.store),
        Arc::clone(&ctx.secrets),
        Arc::clone(&ctx.bus),
        Arc::clone(&ctx.clock),
        ctx.providers.clone(),
        base,
    )
}

async fn telegram_accepts_webhooks(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/setWebhook$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(&app.fakes.telegram)
        .await;
}

/// A Telegram bot of its own id (getMe answers per token), connected through the API.
async fn connect_bot(app: &TestApp, bot_id: i64) -> Value {
    Mock::given(method("POST"))
        .and(path(format!("/bot{bot_id}:{TOKEN_TAIL}/getMe")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "result": {"id": bot_id, "is_bot": true, "first_name": "Bot", "username": format!("bot{bot_id}")}
        })))
        .mount(&app.fakes.telegram)
        .await;
    let (status, channel) = app
        .post(
            "/v1/channels",
            &json!({"provider": "telegram", "name": format!("Bot {bot_id}"),
                    "credentials": {"token": format!("{bot_id}:{TOKEN_TAIL}")}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    channel
}

async fn set_webhook_calls(app: &TestApp, bot_id: i64) -> Vec<Value> {
    let requests = app.fakes.telegram.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == format!("/bot{bot_id}:{TOKEN_TAIL}/setWebhook"))
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect()
}

async fn channel(app: &TestApp, id: &str) -> Value {
    let (status, channel) = app.get(&format!("/v1/channels/{id}")).await;
    assert_eq!(status, 200, "{channel}");
    channel
}

fn outcome_of<'a>(done: &'a [Reregistration], channel: &Value) -> &'a Reregistration {
    let id = channel["id"].as_str().expect("id");
    let mut found = done.iter().filter(|r| r.channel_id.to_string() == id);
    let one = found.next().unwrap_or_else(|| panic!("no outcome for {id}: {done:?}"));
    assert!(found.next().is_none(), "one outcome per channel");
    one
}

#[tokio::test]
async fn reregistering_sets_every_telegram_webhook_anew_reports_infobip_and_goes_on_past_a_failure() {
    let infobip = wiremock::MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/whatsapp/2/senders"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"sender": "1234", "displayName": "Acme", "connectionStatus": "CONNECTED"}]})))
        .mount(&infobip)
        .await;
    let app = TestApp::spawn_with(|providers| {
        providers.with(
            Provider::WhatsappInfobip,
            Arc::new(InfobipClient::new(omnichat::providers::http_client()).allowing_loopback()),
        )
    })
    .await;
    telegram_accepts_webhooks(&app).await;
    let first = connect_bot(&app, 710_000_001).await;
    let second = connect_bot(&app, 710_000_002).await;
    let refused = connect_bot(&app, 710_000_003).await;
    let (status, whatsapp) = app
        .post(
            "/v1/channels",
            &json!({"provider": "whatsapp", "whatsapp_provider": "infobip", "name": "WhatsApp",
                    "credentials": {"api_key": IB_KEY, "base_url": infobip.uri(), "sender": "1234"}}),
        )
        .await;
    assert_eq!(status, 201, "{whatsapp}");
    let old_secrets: Vec<String> = futures::future::join_all(
        [710_000_001_i64, 710_000_002, 710_000_003].map(|bot| set_webhook_calls(&app, bot)),
    )
    .await
    .into_iter()
    .map(|calls| calls[0]["secret_token"].as_str().expect("secret_token").to_owned())
    .collect();
    for secret in &old_secrets {
        omnichat_tests::logs::register_secret(secret.clone());
    }
    // Telegram now refuses the third bot's webhook (a more specific mock wins).
    Mock::given(method("POST"))
        .and(path(format!("/bot710000003:{TOKEN_TAIL}/setWebhook")))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"ok": false, "error_code": 400, "description": "Bad Request: bad webhook: Failed to resolve host"}),
        ))
        .with_priority(1)
        .mount(&app.fakes.telegram)
        .await;

    // The running bundle receives on the first channel, so it remembers that channel from before the change.
    let first_path = format!("/webhooks/telegram/{}", first["id"].as_str().expect("id"));
    let first_headers = [("X-Telegram-Bot-Api-Secret-Token", old_secrets[0].as_str())];
    let deliver_first =
        || app.deliver(&first_path, &first_headers, omnichat_tests::fixture("telegram_text.json"));
    assert_eq!(deliver_first().await, 200);

    let tenant: TenantId =
        auth::authenticate(&app.running().context, Some(ADMIN_KEY)).await.expect("admin").tenant_id;
    let ctx = moved(&app, NEW_BASE);
    let done = platform::reregister_webhooks(&ctx, Some(&tenant)).await.expect("the run completes");
    assert_eq!(done.len(), 4, "{done:?}");

    for (bot, channel, secret) in
        [(710_000_001_i64, &first, &old_secrets[0]), (710_000_002, &second, &old_secrets[1])]
    {
        let id = channel["id"].as_str().expect("id");
        assert!(matches!(outcome_of(&done, channel).outcome, Outcome::Registered), "{done:?}");
        let calls = set_webhook_calls(&app, bot).await;
        assert_eq!(calls.len(), 2, "connect, then the re-registration");
        assert_eq!(calls[1]["url"], format!("{NEW_BASE}/webhooks/telegram/{id}"));
        assert_eq!(calls[1]["secret_token"], secret.as_str(), "the channel keeps its webhook secret");
        assert_eq!(channel_now(&app, id).await, format!("{NEW_BASE}/webhooks/telegram/{id}"));
    }
    let failed = outcome_of(&done, &refused);
    let Outcome::Failed { reason } = &failed.outcome else { panic!("a failure: {failed:?}") };
    assert!(reason.contains("bad webhook"), "the provider's reason: {reason}");
    let refused_id = refused["id"].as_str().expect("id");
    assert_eq!(
        channel_now(&app, refused_id).await,
        refused["webhook_url"].as_str().expect("url"),
        "unchanged"
    );

    let manual = outcome_of(&done, &whatsapp);
    let Outcome::Manual { url } = &manual.outcome else { panic!("manual: {manual:?}") };
    let whatsapp_id = whatsapp["id"].as_str().expect("id");
    assert!(url.expose().starts_with(&format!("{NEW_BASE}/webhooks/whatsapp-infobip/{whatsapp_id}/")));
    let old_path =
        whatsapp["webhook_url"].as_str().expect("url").rsplit('/').next().expect("secret").to_owned();
    assert!(url.expose().ends_with(&format!("/{old_path}")), "the same secret segment under the new base");
    assert_eq!(channel_now(&app, whatsapp_id).await, url.expose(), "the stored URL follows");
    let report = manual.to_report();
    assert_eq!(report["outcome"], "manual");
    assert_eq!(report["url"], url.expose(), "the operator is shown the URL to paste");
    assert_eq!(failed.to_report()["outcome"], "failed");
    assert!(!format!("{done:?}").contains(&old_path), "the Debug form hides the URL's secret");

    // The channel still receives after its record changed under the running bundle.
    assert_eq!(deliver_first().await, 200);

    // Again, once Telegram accepts the third bot: everyone is registered, nothing else changes.
    app.fakes.telegram.reset().await;
    telegram_accepts_webhooks(&app).await;
    let again = platform::reregister_webhooks(&ctx, Some(&tenant)).await.expect("the run completes");
    assert_eq!(again.len(), 4);
    assert!(!again.iter().any(Reregistration::failed), "{again:?}");
    for (bot, channel) in [(710_000_001_i64, &first), (710_000_002, &second), (710_000_003, &refused)] {
        let id = channel["id"].as_str().expect("id");
        let calls = set_webhook_calls(&app, bot).await;
        assert_eq!(calls.len(), 1, "one call per run");
        assert_eq!(calls[0]["url"], format!("{NEW_BASE}/webhooks/telegram/{id}"));
        assert_eq!(channel_now(&app, id).await, format!("{NEW_BASE}/webhooks/telegram/{id}"));
    }
}

async fn channel_now(app: &TestApp, id: &str) -> String {
    channel(app, id).await["webhook_url"].as_str().expect("webhook_url").to_owned()
}

#[tokio::test]
async fn without_a_public_base_url_nothing_is_touched() {
    let app = TestApp::spawn().await;
    telegram_accepts_webhooks(&app).await;
    let channel = connect_bot(&app, 720_000_001).await;
    let tenant = auth::authenticate(&app.running().context, Some(ADMIN_KEY)).await.expect("admin").tenant_id;
    for base in ["", "not a url", "ftp://moved.example.test"] {
        let error =
            platform::reregister_webhooks(&moved(&app, base), Some(&tenant)).await.expect_err("refused");
        assert!(error.to_string().contains("PUBLIC_BASE_URL"), "{error}");
    }
    let id = channel["id"].as_str().expect("id");
    assert_eq!(channel_now(&app, id).await, channel["webhook_url"].as_str().expect("url"));
    let unknown = TenantId::generate();
    let error = platform::reregister_webhooks(&moved(&app, NEW_BASE), Some(&unknown)).await.expect_err("404");
    assert!(error.to_string().contains("not found"), "{error}");
}
