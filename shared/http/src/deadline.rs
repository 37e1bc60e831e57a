//! On Lambda, every request is answered before the invocation's deadline: the work runs until shortly
//! before it (`omnichat::deadline`), then the answer is 503 `unavailable` with `Retry-After`, which
//! providers take as "deliver again" (ingest stores a repeat once) and API clients as "try again". Without
//! it Lambda would cut the invocation at its timeout and API Gateway answer a bare 503 / 504 after the
//! full wait.
//!
//! The deadline is the one the Lambda runtime gives the invocation (`lambda_http::Context::deadline`, in
//! the request's extensions); a request without one (the local runner) runs to its end.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omnichat::deadline;

use crate::error::ApiError;

/// What a request answered with too little time left says to wait before the next try, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// The middleware.
pub async fn answer_before_deadline(request: Request, next: Next) -> Response {
    let invocation_deadline = request
        .extensions()
        .get::<lambda_http::Context>()
        .and_then(|context| deadline::from_epoch_millis(context.deadline));
    match deadline::within(invocation_deadline, next.run(request)).await {
        Ok(response) => response,
        Err(gave_up) => {
            tracing::warn!(%gave_up, "answered 503: the invocation's time ran out");
            too_late()
        }
    }
}

fn too_late() -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the service could not complete the request in time; try again",
    )
    .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}
