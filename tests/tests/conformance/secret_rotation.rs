//! Secrets Manager under the e-mail poller's role, and the sending functions' (the router, auto-replies),
//! which may update a channel's secret but not create one (no `secretsmanager:CreateSecret`): saving a
//! rotated OAuth refresh token must take `PutSecretValue` alone. Against moto; the role is a client whose interceptor records every call and refuses
//! `CreateSecret` before it is sent, as IAM would (moto enforces no IAM policies by default).

use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use jiff::Timestamp;
use omnichat::adapters::aws::{SdkConfig, SecretsManagerStore};
use omnichat::domain::{Account, Channel, ChannelId, ChannelSettings, ChannelStatus, Provider, TenantId};
use omnichat::ports::clock::SystemClock;
use omnichat::ports::{Condition, SecretStore, Store, Write};
use omnichat::providers::ChannelSecrets;
use omnichat::providers::avito::{self, AvitoClient};
use omnichat::providers::email::{EmailProvider, Mailbox};
use omnichat::secret::Secret;
use omnichat::usecases::context::channel_secret_name;
use omnichat::usecases::tokens::{self, Renewal};
use omnichat::usecases::{Context, Providers, email_poll};
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{embedded_bus, embedded_store, unique_name};

const DENIED: &str = "AccessDeniedException: this role may not call secretsmanager:CreateSecret";

/// The operations a client sent (`X-Amz-Target` without the service), each attempt once; `CreateSecret`
/// refused before it leaves.
#[derive(Debug, Clone, Default)]
struct PollerRole {
    calls: Arc<Mutex<Vec<String>>>,
}

impl PollerRole {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }
}

impl Intercept for PollerRole {
    fn name(&self) -> &'static str {
        "PollerRole"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        let operation = target.strip_prefix("secretsmanager.").unwrap_or(target).to_owned();
        self.calls.lock().expect("calls").push(operation.clone());
        if operation == "CreateSecret" {
            return Err(DENIED.into());
        }
        Ok(())
    }
}

/// The API's adapter (may create) and the poller's (may not) on one secret prefix, and the raw client.
fn adapters(config: &SdkConfig) -> (SecretsManagerStore, SecretsManagerStore, PollerRole, String) {
    let prefix = format!("{}/", unique_name("rotation"));
    let api = SecretsManagerStore::from_config(config, prefix.clone());
    let role = PollerRole::default();
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(config).interceptor(role.clone()).build(),
    );
    (api, SecretsManagerStore::new(client, prefix.clone()), role, prefix)
}

async fn versions(config: &SdkConfig, id: &str) -> usize {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let listed = client.list_secret_version_ids().secret_id(id).send().await.expect("list versions");
    listed.versions().len()
}

/// Replacing an existing secret's value is one `PutSecretValue`, a new version; only a missing secret
/// needs `CreateSecret`, which the role is refused (so the refusal is real, and is reported).
pub async fn an_update_needs_no_create_secret(config: SdkConfig) {
    let (api, poller, role, prefix) = adapters(&config);
    api.put("channel/t/c", &Secret::new("first")).await.expect("the API creates the secret");

    poller.put("channel/t/c", &Secret::new("second")).await.expect("the poller updates it");
    assert_eq!(role.calls(), ["PutSecretValue"], "one update, no CreateSecret");
    assert_eq!(api.get("channel/t/c").await.expect("get").expect("there").expose(), "second");
    assert_eq!(versions(&config, &format!("{prefix}channel/t/c")).await, 2, "a new version");

    let missing = poller.put("channel/t/missing", &Secret::new("x")).await.expect_err("may not create");
    assert!(missing.to_string().contains("CreateSecret"), "{missing}");
    assert_eq!(role.calls()[1..2], ["PutSecretValue".to_owned()], "the update is tried first");
    assert!(role.calls().contains(&"CreateSecret".to_owned()), "{:?}", role.calls());
    assert_eq!(api.get("channel/t/missing").await, Ok(None), "nothing was written");
}

/// The whole path: an Outlook-like token endpoint rotates the refresh token when the poller refreshes its
/// access token; the poller keeps the new one in the channel's secret with its own role, even though the
/// IMAP server then cannot be reached; the next read of the secret has it.
pub async fn the_pollers_rotated_refresh_token_lands_as_a_new_version(config: SdkConfig) {
    let (api, poller, role, prefix) = adapters(&config);
    let tokens = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=M.R3_BAY.original"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "EwB.access", "expires_in": 3600, "refresh_token": "M.R3_BAY.rotated"}),
        ))
        .expect(1)
        .mount(&tokens)
        .await;
    // A loopback port nothing listens on: the IMAP login fails after the token refresh.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let credentials = json!({
        "address": "desk@example.com",
        "imap": {"host": "127.0.0.1", "port": closed, "tls": "none"},
        "smtp": {"host": "127.0.0.1", "port": closed, "tls": "none"},
        "oauth": {"client_id": "app", "refresh_token": "M.R3_BAY.original",
                  "token_url": format!("{}/token", tokens.uri())},
    });
    let mailbox = Mailbox::from_credentials(credentials.as_object().expect("object"), true).expect("mailbox");

    let store = embedded_store();
    let channel =
        stored_channel(store.as_ref(), Provider::Email, "desk", "desk@example.com", "desk@example.com").await;
    let name = channel_secret_name(&channel.tenant_id, &channel.id);
    api.put(&name, &mailbox.to_secrets().encode().expect("encode")).await.expect("the API creates it");

    let email = Arc::new(EmailProvider::new(reqwest::Client::new()).allowing_loopback());
    let ctx = Context::new(
        store,
        Arc::new(poller),
        embedded_bus(),
        Arc::new(SystemClock),
        Providers::default().with_email(email.clone()),
        "https://x.test",
    );
    let polled = email_poll::poll_channel(&ctx, email.as_ref(), &channel.id).await;
    assert!(polled.is_err(), "the IMAP server is unreachable: {polled:?}");

    let kept = ChannelSecrets::decode(&api.get(&name).await.expect("get").expect("there")).expect("decode");
    assert_eq!(kept.get("oauth_refresh_token").map(Secret::expose), Some("M.R3_BAY.rotated"));
    assert_eq!(kept.get("address").map(Secret::expose), Some("desk@example.com"), "the rest is kept");
    assert_eq!(versions(&config, &format!("{prefix}{name}")).await, 2, "a new version of the secret");
    assert_eq!(role.calls(), ["GetSecretValue", "PutSecretValue"], "read once, updated once");
}

/// An Avito channel connected by consent: a send finds its access token expired, renews it, and keeps the
/// rotated refresh token in the channel's secret with the sending function's role (one `PutSecretValue`,
/// An active channel of the provider, stored as a connect stores it.
async fn stored_channel(
    store: &dyn Store,
    provider: Provider,
    name: &str,
    id: &str,
    account: &str,
) -> Channel {
    let now = Timestamp::now();
    let channel = Channel {
        id: ChannelId::generate(),
        tenant_id: TenantId::generate(),
        provider,
        name: name.into(),
        account: Account { id: id.into(), name: account.into() },
        status: ChannelStatus::Active,
        settings: ChannelSettings::default(),
        webhook_url: String::new(),
        credentials_masked: Default::default(),
        displaced_by: None,
        created_at: now,
        updated_at: now,
    };
    let item = omnichat::repo::channel_item(&channel).expect("channel item");
    store.transact(vec![Write::Put { item, condition: Condition::NotExists }]).await.expect("store channel");
    channel
}

/// no `CreateSecret`); the next read has it.
pub async fn a_senders_renewed_avito_tokens_land_as_a_new_version(config: SdkConfig) {
    let (api, sender, role, prefix) = adapters(&config);
    let avito_api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=avito-refresh-original"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "avito-access-renewed", "expires_in": 86400,
            "refresh_token": "avito-refresh-rotated"})))
        .expect(1)
        .mount(&avito_api)
        .await;

    let store = embedded_store();
    let channel = stored_channel(store.as_ref(), Provider::Avito, "avito", "375811020", "shop").await;
    let now = channel.created_at;
    let name = channel_secret_name(&channel.tenant_id, &channel.id);
    let expired = ChannelSecrets::default()
        .with(avito::ACCESS_TOKEN, Secret::new("avito-access-expired"))
        .with(avito::REFRESH_TOKEN, Secret::new("avito-refresh-original"))
        .with(avito::ACCESS_EXPIRES_AT, Secret::new((now.as_second() - 10).to_string()))
        .with(avito::USER_ID, Secret::new("375811020"));
    api.put(&name, &expired.encode().expect("encode")).await.expect("the API creates it");

    let client = Arc::new(
        AvitoClient::new(reqwest::Client::new(), avito_api.uri())
            .with_app(Secret::new("platform-app"), Secret::new("platform-app-secret")),
    );
    let ctx = Context::new(
        store,
        Arc::new(sender),
        embedded_bus(),
        Arc::new(SystemClock),
        Providers::default().with_avito(client.clone()),
        "https://x.test",
    );
    let secrets = ctx.channel_secrets(&channel.tenant_id, &channel.id).await.expect("read").expect("there");
    let usable = tokens::usable_secrets(&ctx, &channel, client.as_ref(), secrets, Renewal::IfDue)
        .await
        .expect("renewed");
    assert_eq!(usable.get(avito::ACCESS_TOKEN).map(Secret::expose), Some("avito-access-renewed"));

    let kept = ChannelSecrets::decode(&api.get(&name).await.expect("get").expect("there")).expect("decode");
    assert_eq!(kept.get(avito::REFRESH_TOKEN).map(Secret::expose), Some("avito-refresh-rotated"));
    assert_eq!(kept.get(avito::ACCESS_TOKEN).map(Secret::expose), Some("avito-access-renewed"));
    assert_eq!(kept.get(avito::USER_ID).map(Secret::expose), Some("375811020"), "the rest is kept");
    assert_eq!(versions(&config, &format!("{prefix}{name}")).await, 2, "a new version of the secret");
    assert_eq!(
        role.calls(),
        ["GetSecretValue", "GetSecretValue", "PutSecretValue"],
        "read (then read again under the renewal lock), updated once"
    );
}
