//! The REST API Lambda: the same axum router as the local runner, behind API Gateway's HTTP API.

use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    omnichat::bootstrap::init_lambda_logging();
    let ctx = omnichat::bootstrap::aws_context().await?;
    lambda_http::run(omnichat_http::app(Arc::new(ctx))).await
}
