//! The Telegram webhook Lambda: verifies, normalizes and stores updates (`POST /webhooks/telegram/{channel_id}`).

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(false)
        .without_time()
        .init();
    let ctx = omnichat::bootstrap::aws_context().await?;
    lambda_http::run(omnichat_http::webhooks_app(Arc::new(ctx))).await
}
