//! HTTP glue shared by the Lambdas and the local runner: the axum routers of the provider webhooks and
//! of the REST API, and the one mapping of domain errors to HTTP responses. No business rule lives here.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use omnichat::usecases::Context;

pub mod api;
pub mod error;
pub mod webhooks;

/// Request bodies larger than this are refused before parsing (providers send far less).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub type AppState = Arc<Context>;

/// Everything: webhooks and the REST API (the local runner and the API Lambda mount this).
pub fn app(ctx: AppState) -> Router {
    Router::new()
        .merge(webhooks::router())
        .merge(api::router())
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ctx)
}

/// Only the webhook routes (the webhook Lambdas mount this).
pub fn webhooks_app(ctx: AppState) -> Router {
    webhooks::router().fallback(error::not_found).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).with_state(ctx)
}
