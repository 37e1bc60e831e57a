//! `omnichat-admin` as the operator runs it: the built binary, its stdout, stderr and exit status, on a
//! local runner's data dir and (under `infra/moto/with-moto.sh`) on DynamoDB and Secrets Manager. With
//! `OMNICHAT_MOTO=1` and no moto the AWS test fails; with neither it passes without running and says so.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use omnichat::adapters::aws::{self, DynamoStore, SecretsManagerStore};
use omnichat::adapters::embedded::{DataDir, InProcessBus, open_data_dir};
use omnichat::domain::{ChannelSettings, Features, Provider, TenantId};
use omnichat::ports::clock::SystemClock;
use omnichat::providers::telegram::TelegramClient;
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::{Context, Providers, auth, tenants};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "730000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const FAILING_TOKEN: &str = "730000002:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

/// The CLI with a clean environment: none of the store or URL settings of the test's own.
fn admin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omnichat-admin"));
    for name in
        ["TABLE_NAME", "SECRET_PREFIX", "EVENT_BUS_NAME", "PUBLIC_BASE_URL", "OMNICHAT_DATA_DIR", "RUST_LOG"]
    {
        command.env_remove(name);
    }
    command.args(args).envs(env.iter().copied()).output().expect("the CLI runs")
}

fn stdout(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("stdout is one JSON value ({e}): {text}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn context(data: DataDir, providers: Providers) -> Context {
    Context::new(
        Arc::new(data.store),
        Arc::new(data.secrets),
        Arc::new(InProcessBus::new(8)),
        Arc::new(SystemClock),
        providers,
        "https://first.example.test",
    )
}

/// A local runner's data dir as its first start leaves it: the first tenant and its admin key.
async fn data_dir_with_first_tenant(dir: &Path) -> TenantId {
    let ctx = context(open_data_dir(dir).expect("data dir"), Providers::default());
    let (tenant, _) = tenants::bootstrap_first_tenant(&ctx, None).await.expect("store").expect("first start");
    tenant.id
}

/// Arguments, environment, the exit status expected and what stderr must say.
type Refusal<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);

fn data_env(dir: &Path) -> (String, String) {
    ("OMNICHAT_DATA_DIR".into(), dir.to_string_lossy().into_owned())
}

#[tokio::test]
async fn tenants_create_on_the_embedded_store_prints_a_key_that_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = data_dir_with_first_tenant(&data).await;
    let (name, value) = data_env(&data);
    let output = admin(&["tenants", "create", "--name", "Acme", "--feature", "chatbots"], &[(&name, &value)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let created = stdout(&output);
    let keys: Vec<&String> = created.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["admin_key", "tenant_id"], "{created}");
    let key = created["admin_key"].as_str().expect("admin_key").to_owned();
    assert!(key.starts_with("ock_") && key.len() >= 24);

    let ctx = context(open_data_dir(&data).expect("data dir, released by the CLI"), Providers::default());
    let principal = auth::authenticate(&ctx, Some(&key)).await.expect("the printed key works");
    assert_eq!(principal.tenant_id.to_string(), created["tenant_id"].as_str().expect("tenant_id"));
    assert_ne!(principal.tenant_id, first);
    assert_eq!(principal.role, auth::Role::Admin);
    let tenant = tenants::get_tenant(&ctx, &principal.tenant_id).await.expect("tenant");
    assert_eq!(tenant.name, "Acme");
    assert_eq!(tenant.features, Features { contact_center: false, chatbots: true });
    drop(ctx);

    // Its keys: listed without key material, revoked by id, refused from then on.
    let tenant = created["tenant_id"].as_str().expect("tenant_id");
    let listed = admin(&["keys", "list", "--tenant", tenant], &[(&name, &value)]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listed = stdout(&listed);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["role"], "admin");
    assert_eq!(listed[0]["last4"], &key[key.len() - 4..]);
    assert!(!listed.to_string().contains(&key), "no key material: {listed}");
    let key_id = listed[0]["id"].as_str().expect("id");
    let other_tenant = first.to_string();
    let elsewhere = admin(&["keys", "revoke", "--tenant", &other_tenant, key_id], &[(&name, &value)]);
    assert_eq!(elsewhere.status.code(), Some(1), "another tenant's key is not found");
    assert!(stderr(&elsewhere).contains("not found"), "{}", stderr(&elsewhere));
    let revoked = admin(&["keys", "revoke", "--tenant", tenant, key_id], &[(&name, &value)]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let ctx = context(open_data_dir(&data).expect("data dir"), Providers::default());
    assert!(auth::authenticate(&ctx, Some(&key)).await.is_err(), "the revoked key is refused");
    drop(ctx);
    let again = admin(&["keys", "revoke", "--tenant", tenant, key_id], &[(&name, &value)]);
    assert_eq!(again.status.code(), Some(1), "revoked already");

    for file in ["omnichat.redb", "secrets.json"] {
        let bytes = std::fs::read(data.join(file)).expect("data file");
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()), "the key is not stored in {file}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    data_dir_with_first_tenant(&data).await;
    let (name, value) = data_env(&data);
    let env = [(name.as_str(), value.as_str())];
    let refusals: [Refusal<'_>; 8] = [
        (&["tenants", "create"], &env, 2, "--name"),
        (&["tenants", "create", "--name", "  "], &env, 1, "name: 1 to 100 characters"),
        (&["tenants", "create", "--name", "A", "--feature", "sms"], &env, 2, "sms"),
        (
            &["tenants", "create", "--name", "A", "--feature", "chatbots", "--no-features"],
            &env,
            2,
            "--no-features",
        ),
        (&["keys", "list", "--tenant", "acme"], &env, 1, "--tenant \"acme\" is not a tenant id"),
        (&["webhooks", "reregister"], &env, 1, "PUBLIC_BASE_URL is not set"),
        (&["migrate", "chatbot-pointers", "--tenant", "x"], &env, 1, "--tenant \"x\" is not a tenant id"),
        (&["--store", "aws", "tenants", "list"], &env, 1, "--store aws needs TABLE_NAME"),
    ];
    for (args, env, code, message) in refusals {
        let output = admin(args, env);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(message), "{args:?}: {}", stderr(&output));
        assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    // A data dir that does not exist is not created.
    let missing = dir.path().join("typo");
    let output = admin(
        &["tenants", "create", "--name", "Acme"],
        &[("OMNICHAT_DATA_DIR", missing.to_str().expect("utf-8"))],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no omnichat data in"), "{}", stderr(&output));
    assert!(!missing.exists(), "nothing was created");
    // Nothing above made a tenant: the store lists the first one alone.
    let output = admin(&["tenants", "list"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).as_array().map(Vec::len), Some(1), "{}", stdout(&output));
    // The migration on a store with no chatbot dialog finds and changes nothing.
    let output = admin(&["migrate", "chatbot-pointers"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), serde_json::json!({"chatbot_dialogs": 0, "marked": 0}));

    let help = admin(&["--help"], &[]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for listed in ["tenants", "keys", "webhooks", "migrate", "--store", "TABLE_NAME", "OMNICHAT_DATA_DIR"] {
        assert!(text.contains(listed), "--help names {listed}: {text}");
    }
}

/// While omnichat-local runs on the data dir (holding the database), the CLI works through the runner's
/// HTTP API, with the operator key the runner keeps in the data dir (none set: a random one). Multi-thread:
/// the CLI runs blocking while the runner serves it from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_local_runner_is_reached_through_its_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let config = omnichat_local::Config {
        port: 0,
        data_dir: data.clone(),
        admin_key: None,
        operator_key: None,
        public_base_url: None,
        providers: Some(Providers::default()),
        tick: Duration::from_secs(60),
        max_concurrent_requests: 16,
        max_media_bytes: omnichat::ports::media::DEFAULT_MAX_MEDIA_BYTES,
        connections: omnichat_local::ConnectionLimits::default(),
    };
    let running =
        omnichat_local::start_with_system_clock(config, std::future::pending()).await.expect("starts");
    let (name, value) = data_env(&data);
    let env = [(name.as_str(), value.as_str())];

    let created = admin(&["tenants", "create", "--name", "Acme", "--feature", "chatbots"], &env);
    assert!(created.status.success(), "{}", stderr(&created));
    let created = stdout(&created);
    let key = created["admin_key"].as_str().expect("admin_key").to_owned();
    let tenant = created["tenant_id"].as_str().expect("tenant_id").to_owned();
    let http = reqwest::Client::new();
    let own = http
        .get(format!("http://{}/v1/tenant", running.address))
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET");
    assert_eq!(own.status().as_u16(), 200, "the printed key works at once");
    let own: Value = own.json().await.expect("json");
    assert_eq!(
        (own["id"].as_str(), &own["features"]),
        (Some(tenant.as_str()), &json!({"contact_center": false, "chatbots": true}))
    );

    let listed = admin(&["tenants", "list"], &env);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(stdout(&listed).as_array().map(Vec::len), Some(2), "{}", stdout(&listed));
    let keys = admin(&["keys", "list", "--tenant", &tenant], &env);
    assert!(keys.status.success(), "{}", stderr(&keys));
    let key_id = stdout(&keys)[0]["id"].as_str().expect("a key id").to_owned();
    assert!(!String::from_utf8_lossy(&keys.stdout).contains(&key), "no key material listed");
    let revoked = admin(&["keys", "revoke", "--tenant", &tenant, &key_id], &env);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let refused = http
        .get(format!("http://{}/v1/tenant", running.address))
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status().as_u16(), 401, "revoked through the runner");

    // Bad input through the runner: a clear error naming the field, nothing created.
    let bad = admin(&["tenants", "create", "--name", "   "], &env);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("name"), "{}", stderr(&bad));
    // Re-registering reads channel secrets: not through the API.
    let refused =
        admin(&["webhooks", "reregister"], &[env[0], ("PUBLIC_BASE_URL", "https://new.example.test")]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("stop the running omnichat-local"), "{}", stderr(&refused));
    let listed = admin(&["tenants", "list"], &env);
    assert_eq!(stdout(&listed).as_array().map(Vec::len), Some(2), "nothing was created by bad input");

    running.stop().await.expect("stops");
    assert!(!data.join("runner.json").exists(), "the runner file goes with the runner");
    // Stopped: the CLI opens the data dir itself.
    let listed = admin(&["tenants", "list"], &env);
    assert_eq!(stdout(&listed).as_array().map(Vec::len), Some(2), "{}", stderr(&listed));
}

/// A data dir held by a process that left no `runner.json` (not a local runner): a clear refusal.
#[tokio::test]
async fn a_data_dir_held_by_something_else_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    data_dir_with_first_tenant(&data).await;
    let held = open_data_dir(&data).expect("held");
    let (name, value) = data_env(&data);
    let output = admin(&["tenants", "create", "--name", "Acme"], &[(&name, &value)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is in use by a running omnichat-local, which left no runner.json"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());
    drop(held);
    let output = admin(&["tenants", "list"], &[(&name, &value)]);
    assert_eq!(stdout(&output).as_array().map(Vec::len), Some(1), "no tenant was made");
}

#[tokio::test]
async fn webhooks_reregister_prints_each_channels_outcome_and_fails_if_one_failed() {
    let telegram = MockServer::start().await;
    for (token, bot_id) in [(TOKEN, 730_000_001_i64), (FAILING_TOKEN, 730_000_002)] {
        Mock::given(method("POST"))
            .and(path(format!("/bot{token}/getMe")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": true, "result": {"id": bot_id, "is_bot": true, "first_name": "Bot", "username": format!("bot{bot_id}")}
            })))
            .mount(&telegram)
            .await;
    }
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/setWebhook$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(&telegram)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let tenant = data_dir_with_first_tenant(&data).await;
    let mut channel_ids = Vec::new();
    {
        let http = omnichat::providers::http_client();
        let providers = Providers::default()
            .with(Provider::Telegram, Arc::new(TelegramClient::new(http, telegram.uri())));
        let ctx = context(open_data_dir(&data).expect("data dir"), providers);
        let principal =
            auth::Principal { tenant_id: tenant.clone(), role: auth::Role::Admin, employee_id: None };
        for token in [TOKEN, FAILING_TOKEN] {
            let new = NewChannel {
                provider: Provider::Telegram,
                name: "Support".into(),
                credentials: json!({"token": token}).as_object().cloned().expect("object"),
                settings: ChannelSettings::default(),
            };
            let created = channels::create_channel(&ctx, &principal, new).await.expect("connected");
            channel_ids.push(created.channel.id.to_string());
        }
    }
    Mock::given(method("POST"))
        .and(path(format!("/bot{FAILING_TOKEN}/setWebhook")))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"ok": false, "error_code": 400, "description": "Bad Request: bad webhook: HTTPS url must be provided for webhook"}),
        ))
        .with_priority(1)
        .mount(&telegram)
        .await;

    let (name, value) = data_env(&data);
    let base = telegram.uri();
    let env = [
        (name.as_str(), value.as_str()),
        ("PUBLIC_BASE_URL", "https://moved.example.test"),
        ("TELEGRAM_API_BASE", base.as_str()),
    ];
    let output = admin(&["webhooks", "reregister", "--tenant", &tenant.to_string()], &env);
    assert_eq!(output.status.code(), Some(1), "one channel failed: {}", stderr(&output));
    let report = stdout(&output);
    let lines = report.as_array().expect("an array");
    assert_eq!(lines.len(), 2, "{report}");
    let line = |id: &str| lines.iter().find(|l| l["channel_id"] == id).cloned().expect("a line per channel");
    let ok = line(&channel_ids[0]);
    assert_eq!(
        ok,
        json!({"tenant_id": tenant.to_string(), "channel_id": channel_ids[0], "provider": "telegram", "outcome": "registered"})
    );
    let failed = line(&channel_ids[1]);
    assert_eq!(failed["outcome"], "failed");
    assert!(failed["reason"].as_str().expect("reason").contains("HTTPS url must be provided"), "{failed}");
    assert!(!report.to_string().contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"), "no token in the output");

    let requests = telegram.received_requests().await.unwrap_or_default();
    let last_set: Value = requests
        .iter()
        .rev()
        .find(|r| r.url.path() == format!("/bot{TOKEN}/setWebhook"))
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .expect("setWebhook");
    assert_eq!(last_set["url"], format!("https://moved.example.test/webhooks/telegram/{}", channel_ids[0]));

    // Every tenant when none is named: the same two channels, now both fine.
    telegram.reset().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/setWebhook$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(&telegram)
        .await;
    let output = admin(&["webhooks", "reregister"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout(&output);
    assert_eq!(report.as_array().map(Vec::len), Some(2), "{report}");
    assert!(report.as_array().into_iter().flatten().all(|l| l["outcome"] == "registered"), "{report}");
}

/// moto's endpoint, or `None` (the AWS test then passes without running, and says so) unless
/// `OMNICHAT_MOTO=1` promises moto.
async fn moto() -> Option<String> {
    let required = std::env::var("OMNICHAT_MOTO").is_ok_and(|v| v == "1");
    let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.trim().is_empty()) else {
        assert!(
            !required,
            "OMNICHAT_MOTO=1 but AWS_ENDPOINT_URL is not set: run through infra/moto/with-moto.sh"
        );
        eprintln!(
            "skipped: moto not running (AWS_ENDPOINT_URL unset): run `infra/moto/with-moto.sh cargo test -p omnichat-admin`"
        );
        return None;
    };
    let probe = reqwest::Client::new()
        .get(format!("{}/moto-api/", endpoint.trim_end_matches('/')))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(probe.is_ok(), "AWS_ENDPOINT_URL={endpoint} does not answer: is moto running? ({probe:?})");
    Some(endpoint)
}

#[tokio::test]
async fn tenants_create_on_aws_prints_a_key_that_works() {
    if moto().await.is_none() {
        return;
    }
    let config = aws::load_sdk_config().await;
    let table = format!("omnichat-test-admin-{}", uuid::Uuid::now_v7().simple());
    let prefix = format!("omnichat-test-admin-{}/", uuid::Uuid::now_v7().simple());
    let store = DynamoStore::from_config(&config, table.clone());
    aws::create_table(store.client(), store.table()).await.expect("create the table on moto");

    let env = [("TABLE_NAME", table.as_str()), ("SECRET_PREFIX", prefix.as_str())];
    let output = admin(&["tenants", "create", "--name", "Acme on AWS"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let created = stdout(&output);
    let key = created["admin_key"].as_str().expect("admin_key");
    let ctx = Context::new(
        Arc::new(store),
        Arc::new(SecretsManagerStore::from_config(&config, prefix.clone())),
        Arc::new(InProcessBus::new(8)),
        Arc::new(SystemClock),
        Providers::default(),
        "",
    );
    let principal = auth::authenticate(&ctx, Some(key)).await.expect("the printed key works on DynamoDB");
    assert_eq!(principal.tenant_id.to_string(), created["tenant_id"].as_str().expect("tenant_id"));
    let tenant = tenants::get_tenant(&ctx, &principal.tenant_id).await.expect("tenant");
    assert_eq!((tenant.name.as_str(), tenant.features), ("Acme on AWS", Features::default()));

    let listed = admin(&["tenants", "list"], &env);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listed = stdout(&listed);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "the one tenant of this table: {listed}");
    assert_eq!(listed[0]["id"], created["tenant_id"], "{listed}");

    // A table that does not exist: a clear error, status 1.
    let missing = format!("omnichat-test-admin-missing-{}", uuid::Uuid::now_v7().simple());
    let output = admin(
        &["tenants", "create", "--name", "Nope"],
        &[("TABLE_NAME", missing.as_str()), ("SECRET_PREFIX", prefix.as_str())],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("omnichat-admin: error: store unavailable"), "{}", stderr(&output));
}
