//! Building the `Context` of a Lambda from its environment: AWS adapters, provider clients, public URL.
//! Done once per container, before the first invocation.

use std::sync::Arc;

use crate::adapters::aws::dynamodb::DynamoStore;
use crate::adapters::aws::eventbridge::EventBridgeBus;
use crate::adapters::aws::load_sdk_config;
use crate::adapters::aws::secrets_manager::SecretsManagerStore;
use crate::clock::SystemClock;
use crate::usecases::{Context, Providers};

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set"))
}

/// `TABLE_NAME`, `EVENT_BUS_NAME`, `SECRET_PREFIX` and `PUBLIC_BASE_URL` from the environment (set by
/// template.yaml); AWS endpoint and credentials the SDK's usual way (`AWS_ENDPOINT_URL` for moto).
pub async fn aws_context() -> Result<Context, String> {
    let table = required("TABLE_NAME")?;
    let bus = required("EVENT_BUS_NAME")?;
    let secret_prefix = std::env::var("SECRET_PREFIX").unwrap_or_else(|_| "omnichat/".into());
    let public_base_url = required("PUBLIC_BASE_URL")?;
    let sdk = load_sdk_config().await;
    Ok(Context::new(
        Arc::new(DynamoStore::from_config(&sdk, table)),
        Arc::new(SecretsManagerStore::from_config(&sdk, secret_prefix)),
        Arc::new(EventBridgeBus::from_config(&sdk, bus)),
        Arc::new(SystemClock),
        Providers::from_env(),
        public_base_url,
    ))
}
