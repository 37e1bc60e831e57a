//! The baseline of the cold-start and package-size benchmarks: the hello world of `lambda_http` (what
//! `cargo lambda new` generates for an HTTP function), built with the workspace's release profile and the
//! workspace's `lambda_http` features, so that the only difference to a function is omnichat itself.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    let response = Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::from("Hello world"))
        .map_err(Box::new)?;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    run(service_fn(hello)).await
}
