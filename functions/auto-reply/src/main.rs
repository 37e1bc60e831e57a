//! The auto-reply Lambda, on an EventBridge schedule (every minute): sends the due auto-replies, then
//! retries the due outgoing messages of the outbox.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use omnichat::usecases::{Context, scheduled};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = Arc::new(omnichat::bootstrap::aws_context().await?);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| handle(Arc::clone(&ctx)))).await
}

async fn handle(ctx: Arc<Context>) -> Result<(), Error> {
    Ok(scheduled::send_auto_replies_and_retries(&ctx).await?)
}
