//! `POST /v1/stream/tickets`: a one-time ticket for the workspace's live connection (`usecases::live`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use jiff::Timestamp;
use serde::Serialize;

use super::Principal;
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;
use omnichat::usecases::live;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/v1/stream/tickets", post(create_ticket))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create_ticket))]
pub(crate) struct Docs;

/// Where and how to open the live connection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveTicket {
    /// Good once, until `expires_at`: open the WebSocket at `url` with `?ticket=<this>`.
    ticket: String,
    /// The WebSocket to open: the API Gateway WebSocket API on AWS; `null` locally, meaning `/v1/stream` of
    /// this origin (`ws:` or `wss:` as the page's own scheme).
    #[schema(nullable = true)]
    url: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
}

/// The live WebSocket's address when it is not this origin's `/v1/stream` (`OMNICHAT_LIVE_URL`, set by the
/// stack to the WebSocket API's stage URL); read once.
pub fn live_url() -> Option<&'static str> {
    static URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("OMNICHAT_LIVE_URL")
            .ok()
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| url.starts_with("wss://") || url.starts_with("ws://"))
    })
    .as_deref()
}

#[utoipa::path(
    post,
    path = "/v1/stream/tickets",
    tag = "workspace",
    summary = "A ticket for live updates",
    description = "A one-time ticket, good for 60 seconds, to open the workspace's live WebSocket (the API key never \
        goes into a URL). Pushes name what changed (`{\"type\", \"dialog_id\", \"message_id\"?, \"employee_id\"?}`); \
        the page reads it through the API. An employee is told only of the dialogs they may see.",
    responses(
        (status = 201, description = "The ticket", body = LiveTicket),
        doc::Unauthorized, doc::Unavailable
    )
)]
async fn create_ticket(
    State(ctx): State<AppState>,
    principal: Principal,
) -> Result<(StatusCode, Json<LiveTicket>), ApiError> {
    let ticket = live::issue_ticket(&ctx, &principal).await?;
    Ok((
        StatusCode::CREATED,
        Json(LiveTicket {
            ticket: ticket.ticket,
            url: live_url().map(str::to_owned),
            expires_at: ticket.expires_at,
        }),
    ))
}
