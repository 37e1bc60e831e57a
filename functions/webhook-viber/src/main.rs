//! The Viber webhook Lambda: verifies the `X-Viber-Content-Signature`, normalizes and stores messages and
//! delivery receipts (`POST /webhooks/viber/{channel_id}`).

use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = omnichat::bootstrap::aws_context().await?;
    lambda_http::run(omnichat_http::webhooks_app(Arc::new(ctx))).await
}
