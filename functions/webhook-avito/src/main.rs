//! The Avito webhook Lambda: stores the buyers' messages that arrive at the channel's secret URL
//! (`/webhooks/avito/{channel_id}/{secret}`; GET answers URL checks).

use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = omnichat::bootstrap::aws_context().await?;
    lambda_http::run(omnichat_http::webhooks_app(Arc::new(ctx))).await
}
