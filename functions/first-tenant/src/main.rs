//! The first-tenant custom resource: CloudFormation invokes it on Create, Update and Delete of the
//! stack's `FirstTenant` resource; it answers through the request's ResponseURL, also on failure
//! (`omnichat::custom_resource`). A Lambda error means the answer itself could not be delivered.

use lambda_runtime::{LambdaEvent, service_fn};
use omnichat::custom_resource;
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    omnichat::bootstrap::init_lambda_logging();
    // A missing setting must not keep the stack waiting: it becomes the FAILED answer's reason.
    let ctx = omnichat::bootstrap::aws_platform_context().await;
    let http = custom_resource::http_client()?;
    let (ctx, http) = (&ctx, &http);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        custom_resource::answer(http, event.payload, |request| {
            custom_resource::first_tenant(ctx.as_ref().map_err(String::as_str), request)
        })
        .await
        .map_err(|error| error.to_string())
    }))
    .await
}
