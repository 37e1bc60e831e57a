//! HTTP glue shared by the Lambdas and the local runner: the axum routers of the provider webhooks and
//! of the REST API, and the one mapping of domain errors to HTTP responses. No business rule lives here.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Router, middleware};
use omnichat::usecases::Context;

pub mod api;
pub mod error;
pub mod openapi;
pub mod webhooks;

/// Request bodies larger than this are refused before parsing (providers send far less).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub type AppState = Arc<Context>;

/// Everything: webhooks, the REST API and its OpenAPI document (the local runner and the API Lambda mount
/// this).
pub fn app(ctx: AppState) -> Router {
    Router::new()
        .merge(webhooks::router())
        .merge(api::router())
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(error::json_refusals))
        .with_state(ctx)
}

/// Only the webhook routes (the webhook Lambdas mount this).
pub fn webhooks_app(ctx: AppState) -> Router {
    webhooks::router()
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(error::json_refusals))
        .with_state(ctx)
}
