//! The e-mail poller Lambda, on an EventBridge schedule (every minute): fetches the new mail of every
//! active e-mail channel over IMAP and ingests it (`usecases::email_poll`).

use std::sync::Arc;
use std::time::Instant;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use omnichat::usecases::{Context, scheduled};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = Arc::new(omnichat::bootstrap::aws_context().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        handle(Arc::clone(&ctx), omnichat::deadline::from_epoch_millis(event.context.deadline))
    }))
    .await
}

/// The job, stopped before the invocation's deadline (the rest stays due for the next run).
async fn handle(ctx: Arc<Context>, deadline: Option<Instant>) -> Result<(), Error> {
    let job = scheduled::poll_mailboxes(&ctx, scheduled::stop_taking_work_at(deadline));
    Ok(scheduled::within_invocation("email-poller", deadline, job).await?)
}
