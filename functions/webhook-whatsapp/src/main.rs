//! The WhatsApp webhook Lambda, for the three providers a WhatsApp channel can go through:
//! `/webhooks/whatsapp-edna|whatsapp-messagebird|whatsapp-infobip/{channel_id}/{secret}`. POST carries
//! messages and delivery reports (MessageBird's also signed); GET and HEAD answer the providers' URL checks.

use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = omnichat::bootstrap::aws_context().await?;
    lambda_http::run(omnichat_http::webhooks_app(Arc::new(ctx))).await
}
