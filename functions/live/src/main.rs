//! The live Lambda: the WebSocket API's authorizer and routes, and the push of the bus's events to the open
//! workspace pages. See the library for what each event does.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = omnichat::bootstrap::aws_context().await?;
    let connections = omnichat::bootstrap::live_connections_from_env().await?;
    let (ctx, connections) = (&ctx, &connections);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        live::handle(ctx, connections, event.payload).await
    }))
    .await
}
