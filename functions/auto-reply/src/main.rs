//! The auto-reply Lambda, on an EventBridge schedule (every minute): sends the due auto-replies, then
//! retries the due outgoing messages of the outbox.

use std::sync::Arc;
use std::time::Instant;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use omnichat::usecases::{Context, due, scheduled};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = Arc::new(omnichat::bootstrap::aws_context().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        handle(Arc::clone(&ctx), omnichat::deadline::from_epoch_millis(event.context.deadline))
    }))
    .await
}

/// The job: it drains what is due, takes no new work shortly before the invocation's deadline and is
/// stopped before it (the rest stays due for the next run).
async fn handle(ctx: Arc<Context>, deadline: Option<Instant>) -> Result<(), Error> {
    let job = scheduled::send_auto_replies_and_retries(
        &ctx,
        due::Run::until(scheduled::stop_taking_work_at(deadline)),
    );
    Ok(scheduled::within_invocation("auto-reply", deadline, job).await?)
}
