//! `POST /webhooks/{provider}/{channel_id}`: hands the raw request to the webhook use case.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use omnichat::domain::Provider;
use omnichat::usecases::webhooks::{self, WebhookRequest};

use crate::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/{provider}/{channel_id}", post(receive))
}

async fn receive(
    State(ctx): State<AppState>,
    Path((provider, channel_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = Provider::from_slug(&provider)
        .filter(|p| *p != Provider::Email)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such provider"))?;
    let request = WebhookRequest {
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let reply = webhooks::receive_webhook(&ctx, provider, &channel_id, &request).await?;
    tracing::debug!(provider = provider.slug(), outcome = ?reply.outcome, "webhook handled");
    Ok(([(header::CONTENT_TYPE, reply.content_type)], reply.body).into_response())
}
