//! Seeds moto for the Lambda benchmarks (infra/bench/run.sh): the table and the event bus, the first tenant
//! with its admin key, and one Telegram channel connected through the use case (against a fake Bot API at
//! `TELEGRAM_API_BASE`, which sees getMe and setWebhook). The same environment as a function
//! (`TABLE_NAME`, `EVENT_BUS_NAME`, `SECRET_PREFIX`, `PUBLIC_BASE_URL`, `AWS_ENDPOINT_URL`, credentials),
//! plus `BENCH_ADMIN_KEY` and `BENCH_TELEGRAM_TOKEN`. Prints one JSON object: tenant, channel, webhook URL.
//! Re-runnable: an existing table or bus is kept; the tenant is created once.

use omnichat::adapters::aws::{self, DynamoStore, EventBridgeBus};
use omnichat::domain::Provider;
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
    let new = NewChannel {
        provider: Provider::Telegram,
        name: "Bench bot".into(),
        credentials: json!({ "token": token }).as_object().cloned().unwrap_or_default(),
        settings: Default::default(),
    };
    let channel = channels::create_channel(&ctx, &admin, new)
        .await
        .map_err(|e| format!("connect Telegram: {e:?}"))?
        .channel;
    Ok(json!({
        "tenant_id": admin.tenant_id.to_string(),
        "channel_id": channel.id.to_string(),
        "webhook_url": channel.webhook_url,
    }))
}

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
