//! The VK webhook Lambda: answers the Callback API's confirmation with the community's code, then
//! verifies, normalizes and stores its events (`POST /webhooks/vk/{channel_id}`).

use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = omnichat::bootstrap::aws_context().await?;
    lambda_http::run(omnichat_http::webhooks_app(Arc::new(ctx))).await
}
