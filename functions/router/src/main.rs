//! The router Lambda: EventBridge rule targets (`DialogOpened`, `DialogClosed`, `MessageReceived` on the
//! omnichat bus) and the routing sweep's schedule. See the library for what each event does.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = omnichat::bootstrap::aws_context().await?;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = omnichat::deadline::from_epoch_millis(event.context.deadline);
        router::handle(ctx, event.payload, deadline).await
    }))
    .await
}
