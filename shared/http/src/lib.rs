//! HTTP glue shared by the Lambdas and the local runner: the axum routers of the provider webhooks and
//! of the REST API, and the one mapping of domain errors to HTTP responses. No business rule lives here.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Router, middleware};
use omnichat::usecases::Context;

pub mod api;
pub mod app;
pub mod deadline;
pub mod error;
pub mod openapi;
pub mod request_id;
pub mod responses;
pub mod webhooks;

/// Request bodies larger than this are refused with 413 before parsing (providers send far less), unless
/// `OMNICHAT_MAX_BODY_BYTES` says otherwise.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The body limit in force: `OMNICHAT_MAX_BODY_BYTES` (bytes, > 0) or [`MAX_BODY_BYTES`]; read once.
pub fn max_body_bytes() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| match std::env::var("OMNICHAT_MAX_BODY_BYTES") {
        Err(_) => MAX_BODY_BYTES,
        Ok(raw) => match raw.trim().parse::<usize>() {
            Ok(bytes) if bytes > 0 => bytes,
            _ => {
                tracing::warn!(value = %raw, "OMNICHAT_MAX_BODY_BYTES is not a positive number; using 1 MiB");
                MAX_BODY_BYTES
            }
        },
    })
}

pub type AppState = Arc<Context>;

/// Everything: webhooks, the REST API and its OpenAPI document (the local runner and the API Lambda mount
/// this).
pub fn app(ctx: AppState) -> Router {
    app::routes(api::routes(webhooks::routes(Router::new())))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes()))
        .layer(middleware::map_response(error::json_refusals))
        .layer(middleware::from_fn(deadline::answer_before_deadline))
        .layer(middleware::from_fn(request_id::trace_request))
        .with_state(ctx)
}

/// Only the webhook routes (the webhook Lambdas mount this).
pub fn webhooks_app(ctx: AppState) -> Router {
    webhooks::routes(Router::new())
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes()))
        .layer(middleware::map_response(error::json_refusals))
        .layer(middleware::from_fn(deadline::answer_before_deadline))
        .layer(middleware::from_fn(request_id::trace_request))
        .with_state(ctx)
}
