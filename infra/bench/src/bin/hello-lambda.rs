//! The baseline of the cold-start and package-size benchmarks: the hello world of `lambda_http` (what
//! `cargo lambda new` generates for an HTTP function), built with the workspace's release profile and the
//! workspace's `lambda_http` features, so that the only difference to a function is omnichat itself.
//!
//! `main` is what `#[tokio::main]` expands to (the multi-threaded runtime `cargo lambda new` writes), unless
//! `HELLO_LAMBDA_RUNTIME=current_thread`: then it runs on the current-thread runtime the functions use, the
//! like-for-like baseline of their init (infra/bench/lambdas.py starts it as `hello-lambda-current-thread`).

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    let response = Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::from("Hello world"))
        .map_err(Box::new)?;
    Ok(response)
}

fn main() -> Result<(), Error> {
    let mut runtime = match std::env::var("HELLO_LAMBDA_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(async {
        lambda_http::tracing::init_default_subscriber();
        run(service_fn(hello)).await
    })
}
