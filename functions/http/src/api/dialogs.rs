//! `/v1/dialogs`: the dialogs and their messages.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageParams, Principal, json_body, page_response};
use crate::AppState;
use crate::error::ApiError;
use crate::openapi as doc;
use omnichat::domain::{DialogStatus, EmployeeId};
use omnichat::usecases::dialogs::{self, DialogFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/dialogs", get(list_dialogs))
        .route("/v1/dialogs/{id}", get(get_dialog))
        .route("/v1/dialogs/{id}/messages", get(list_messages).post(reply))
        .route("/v1/dialogs/{id}/close", post(close_dialog))
}

/// The documentation of the routes above (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_dialogs, get_dialog, list_messages, reply, close_dialog))]
pub(crate) struct Docs;

#[derive(Debug, Deserialize)]
struct DialogParams {
    status: Option<String>,
    assignee: Option<String>,
    #[serde(flatten)]
    page: PageParams,
}

#[utoipa::path(
    get,
    path = "/v1/dialogs",
    tag = "dialogs",
    summary = "List dialogs, by status and assignee",
    params(doc::DialogQuery, doc::PageQuery),
    responses(
        (status = 200, description = "A page of dialogs", body = doc::DialogPage),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_dialogs(
    State(ctx): State<AppState>,
    Query(params): Query<DialogParams>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some("open") => Some(DialogStatus::Open),
        Some("assigned") => Some(DialogStatus::Assigned),
        Some("closed") => Some(DialogStatus::Closed),
        Some(_) => {
            return Err(ApiError {
                field: Some("status".into()),
                ..ApiError::bad_request("invalid_status", "status is open, assigned or closed")
            });
        }
    };
    let assignee = match params.assignee.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(EmployeeId::parse(raw).ok_or_else(|| ApiError {
            field: Some("assignee".into()),
            ..ApiError::bad_request("invalid_assignee", "assignee is an employee id")
        })?),
    };
    let filter = DialogFilter { status, assignee };
    let (items, next) =
        dialogs::list_dialogs(&ctx, &principal, &filter, params.page.limit()?, params.page.page.clone())
            .await?;
    Ok(page_response(items, next))
}

#[utoipa::path(
    get,
    path = "/v1/dialogs/{id}",
    tag = "dialogs",
    summary = "Read a dialog",
    params(doc::IdPath),
    responses(
        (status = 200, description = "The dialog", body = doc::Dialog),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_dialog(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(dialogs::get_dialog(&ctx, &principal, &id).await?)))
}

#[utoipa::path(
    get,
    path = "/v1/dialogs/{id}/messages",
    tag = "dialogs",
    summary = "List a dialog's messages, oldest first",
    params(doc::IdPath, doc::PageQuery),
    responses(
        (status = 200, description = "A page of messages", body = doc::MessagePage),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_messages(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let (items, next) =
        dialogs::list_messages(&ctx, &principal, &id, params.limit()?, params.page.clone()).await?;
    Ok(page_response(items, next))
}

#[utoipa::path(
    post,
    path = "/v1/dialogs/{id}/close",
    tag = "dialogs",
    summary = "Close a dialog",
    params(doc::IdPath),
    responses(
        (status = 200, description = "The closed dialog", body = doc::Dialog),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn close_dialog(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(dialogs::close_dialog(&ctx, &principal, &id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    text: String,
    #[serde(default)]
    buttons: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/v1/dialogs/{id}/messages",
    tag = "dialogs",
    summary = "Reply to the customer through the channel's provider",
    params(doc::IdPath),
    request_body = doc::NewReply,
    responses(
        (status = 201, description = "The outgoing message", body = doc::Message),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::BadGateway,
        doc::Unavailable
    )
)]
async fn reply(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: ReplyBody = json_body(&body)?;
    let message = dialogs::reply(&ctx, &principal, &id, &body.text, body.buttons).await?;
    Ok((StatusCode::CREATED, Json(json!(message))))
}
