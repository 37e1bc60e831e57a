//! Seeds moto for the Lambda benchmarks (infra/bench/run.sh): the table and the event bus, the first tenant
//! with its admin key, and one channel of each webhook function's providers, connected through the use case
//! against the fakes of infra/api/provider_stub.py (at `TELEGRAM_API_BASE`, `VK_API_BASE`, ...; they accept
//! only credentials containing `bench`). The same environment as a function (`TABLE_NAME`,
//! `EVENT_BUS_NAME`, `SECRET_PREFIX`, `PUBLIC_BASE_URL`, `AWS_ENDPOINT_URL`, credentials), plus
//! `BENCH_ADMIN_KEY` and `BENCH_TELEGRAM_TOKEN`.
//!
//! Prints one JSON object: the tenant, the Telegram channel and its webhook URL, and under `channels` each
//! provider's channel with what a sender needs to sign its webhooks the way the provider does (VK's secret,
//! Viber's token, the secret path segment of edna and Avito). Fake credentials only: this is a benchmark's
//! seed, never a deployment's. Re-runnable: an existing table or bus is kept; the tenant is created once.

use omnichat::adapters::aws::{self, DynamoStore, EventBridgeBus};
use omnichat::domain::Provider;
use omnichat::providers::ChannelSecrets;
use omnichat::secret::Secret;
use omnichat::usecases::channels::{self, NewChannel};
use omnichat::usecases::{auth, tenants};
use serde_json::json;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// An error, unless it says the resource is there already.
fn created_or_existing(result: Result<(), String>) -> Result<(), String> {
    match result {
        Err(error) if !error.contains("already exist") && !error.contains("ResourceInUse") => Err(error),
        _ => Ok(()),
    }
}

async fn seed() -> Result<serde_json::Value, String> {
    let table = env("TABLE_NAME", "omnichat");
    let bus = env("EVENT_BUS_NAME", "omnichat");
    let admin_key = env("BENCH_ADMIN_KEY", "ock_bench_admin_key_0000000000000000");
    let token = env("BENCH_TELEGRAM_TOKEN", "4242:benchBenchBenchBenchBench0123");

    let sdk = aws::load_sdk_config().await;
    let store = DynamoStore::from_config(&sdk, table);
    created_or_existing(
        aws::create_table(store.client(), store.table()).await.map_err(|e| format!("create table: {e:?}")),
    )?;
    let events = EventBridgeBus::from_config(&sdk, bus);
    created_or_existing(
        aws::create_event_bus(events.client(), events.bus_name())
            .await
            .map_err(|e| format!("create bus: {e:?}")),
    )?;

    let ctx = omnichat::bootstrap::aws_context().await?;
    tenants::bootstrap_first_tenant(&ctx, Some(Secret::new(admin_key.clone())))
        .await
        .map_err(|e| format!("tenant: {e:?}"))?;
    let admin = auth::authenticate(&ctx, Some(&admin_key)).await.map_err(|e| format!("admin key: {e:?}"))?;
    let connect = |provider: Provider, credentials: serde_json::Value| {
        let (ctx, admin) = (&ctx, &admin);
        async move {
            let new = NewChannel {
                provider,
                name: format!("Bench {}", provider.slug()),
                credentials: credentials.as_object().cloned().unwrap_or_default(),
                settings: Default::default(),
            };
            channels::create_channel(ctx, admin, new)
                .await
                .map(|created| created.channel)
                .map_err(|e| format!("connect {}: {e:?}", provider.slug()))
        }
    };
    let telegram = connect(Provider::Telegram, json!({ "token": token })).await?;
    let vk = connect(Provider::Vk, json!({"access_token": VK_TOKEN, "group_id": VK_GROUP})).await?;
    let vk_secrets = ctx
        .channel_secrets(&admin.tenant_id, &vk.id)
        .await
        .map_err(|e| format!("VK secrets: {e:?}"))?
        .ok_or("the VK channel has no secrets")?;
    let vk_secret = vk_secrets.require(ChannelSecrets::WEBHOOK_SECRET).map_err(|e| format!("{e:?}"))?;
    let viber = connect(Provider::Viber, json!({ "token": VIBER_TOKEN })).await?;
    let edna = connect(Provider::WhatsappEdna, json!({"subject": EDNA_SUBJECT, "api_key": EDNA_KEY})).await?;
    let avito =
        connect(Provider::Avito, json!({"client_id": "bench-client", "client_secret": AVITO_SECRET})).await?;
    // edna and Avito sign nothing: the secret is the last segment of the URL they are given.
    let path_secret = |url: &str| url.rsplit('/').next().unwrap_or_default().to_owned();
    Ok(json!({
        "tenant_id": admin.tenant_id.to_string(),
        "channel_id": telegram.id.to_string(),
        "webhook_url": telegram.webhook_url,
        "channels": {
            "vk": {"channel_id": vk.id.to_string(), "secret": vk_secret.expose(), "group_id": VK_GROUP},
            "viber": {"channel_id": viber.id.to_string(), "token": VIBER_TOKEN},
            "whatsapp": {"channel_id": edna.id.to_string(), "secret": path_secret(&edna.webhook_url)},
            "avito": {"channel_id": avito.id.to_string(), "secret": path_secret(&avito.webhook_url)},
        },
    }))
}

/// The fakes' credentials (infra/api/provider_stub.py accepts these because they contain `bench`) and the
/// community and subject of the fixtures the benchmark sends.
const VK_TOKEN: &str = "vk1.a.bench-community-key-0123456789";
const VK_GROUP: i64 = 214_167_102;
const VIBER_TOKEN: &str = "4a1e0f3c5d7b9a21-bench-3d1c0b9a8f7e6d5c";
const EDNA_SUBJECT: &str = "test_subject_WA";
const EDNA_KEY: &str = "bench-edna-api-key-0123456789";
const AVITO_SECRET: &str = "bench-avito-client-secret-0123456789";

#[tokio::main]
async fn main() {
    match seed().await {
        Ok(seeded) => println!("{seeded}"),
        Err(error) => {
            eprintln!("seed: {error}");
            std::process::exit(1);
        }
    }
}
