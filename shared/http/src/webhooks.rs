//! `/webhooks/{provider}/{channel_id}[/{secret}]`: hands the raw request to the webhook use case. POST
//! carries events; GET and HEAD answer the URL checks some providers make before they send anything.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use omnichat::domain::Provider;
use omnichat::providers::WebhookRequest;
use omnichat::usecases::webhooks;
use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/webhooks/{provider}/{channel_id}", post(receive))
        .route("/webhooks/{provider}/{channel_id}/{secret}", post(receive_with_secret).get(url_check))
}

/// The documentation of the routes above (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(receive, receive_with_secret, url_check))]
pub struct Docs;

/// `{provider}/{channel_id}` of a webhook route. The provider is matched by hand (an unknown one is 404).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct WebhookPath {
    #[param(value_type = WebhookProvider, inline)]
    provider: String,
    /// The channel's id.
    #[param(format = "uuid")]
    channel_id: String,
}

/// `{provider}/{channel_id}/{secret}` of the routes of providers that sign nothing.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct WebhookSecretPath {
    #[param(value_type = WebhookProvider, inline)]
    provider: String,
    /// The channel's id.
    #[param(format = "uuid")]
    channel_id: String,
    /// The channel's secret path segment (part of its `webhook_url`).
    secret: String,
}

/// The providers that call webhooks, by their route segment: every provider but e-mail (fetched, not
/// pushed), read from the domain's list.
struct WebhookProvider;

impl utoipa::PartialSchema for WebhookProvider {
    fn schema() -> RefOr<Schema> {
        let slugs = Provider::ALL.into_iter().filter(|p| *p != Provider::Email).map(Provider::slug);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The providers that call webhooks (e-mail is fetched, not pushed)."))
            .enum_values(Some(slugs))
            .into()
    }
}

impl utoipa::ToSchema for WebhookProvider {}

/// The provider's own payload, exactly as it sends it (opaque here: each provider module parses its own).
struct WebhookPayload;

impl utoipa::PartialSchema for WebhookPayload {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("The provider's own payload, exactly as the provider sends it"))
            .into()
    }
}

impl utoipa::ToSchema for WebhookPayload {}

/// Providers that sign nothing check that the URL answers before they use it.
#[utoipa::path(
    get,
    path = "/webhooks/{provider}/{channel_id}/{secret}",
    tag = "webhooks",
    summary = "URL check of providers that sign nothing",
    security(()),
    params(WebhookSecretPath),
    responses((status = 200, description = "The URL answers"))
)]
async fn url_check() -> StatusCode {
    StatusCode::OK
}

#[utoipa::path(
    post,
    path = "/webhooks/{provider}/{channel_id}/{secret}",
    tag = "webhooks",
    summary = "An event from a provider that signs nothing (the secret path segment authenticates it)",
    security(()),
    params(WebhookSecretPath),
    request_body(content = WebhookPayload, description = "The provider's payload"),
    responses(
        (status = 200, description = "Acknowledged in the provider's way (empty, `ok`, or a JSON reply)"),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn receive_with_secret(
    State(ctx): State<AppState>,
    Path(WebhookSecretPath { provider, channel_id, secret }): Path<WebhookSecretPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    handle(&ctx, &provider, &channel_id, Some(secret), &headers, body).await
}

#[utoipa::path(
    post,
    path = "/webhooks/{provider}/{channel_id}",
    tag = "webhooks",
    summary = "An event from a provider that signs its requests",
    description = "Verified with the channel's credentials: an unverifiable request gets 401 and writes \
        nothing, a body that is not the provider's format 400; an event type the product does not use is \
        acknowledged and ignored.",
    security(()),
    params(WebhookPath),
    request_body(content = WebhookPayload, description = "The provider's payload"),
    responses(
        (status = 200, description = "Acknowledged in the provider's way (empty, `ok`, or a JSON reply)"),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn receive(
    State(ctx): State<AppState>,
    Path(WebhookPath { provider, channel_id }): Path<WebhookPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    handle(&ctx, &provider, &channel_id, None, &headers, body).await
}

async fn handle(
    ctx: &AppState,
    provider: &str,
    channel_id: &str,
    path_secret: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = Provider::from_slug(provider)
        .filter(|p| *p != Provider::Email)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such provider"))?;
    let request = WebhookRequest {
        method: "POST".into(),
        path_secret,
        webhook_url: String::new(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let handled = webhooks::receive_webhook(ctx, provider, channel_id, request).await?;
    tracing::info!(provider = provider.slug(), outcomes = ?handled.outcomes, "webhook handled");
    let reply = handled.reply;
    if reply.body.is_empty() {
        return Ok(StatusCode::OK.into_response());
    }
    Ok(([(header::CONTENT_TYPE, reply.content_type)], reply.body).into_response())
}
