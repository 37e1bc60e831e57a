//! `/v1/dialogs`: the dialogs and their messages.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageParams, caller, page_response};
use crate::AppState;
use crate::error::ApiError;
use omnichat::domain::{DialogStatus, EmployeeId};
use omnichat::usecases::dialogs::{self, DialogFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/dialogs", get(list_dialogs))
        .route("/v1/dialogs/{id}", get(get_dialog))
        .route("/v1/dialogs/{id}/messages", get(list_messages))
}

#[derive(Debug, Deserialize)]
struct DialogParams {
    status: Option<String>,
    assignee: Option<String>,
    #[serde(flatten)]
    page: PageParams,
}

async fn list_dialogs(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<DialogParams>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
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

async fn get_dialog(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    Ok(Json(json!(dialogs::get_dialog(&ctx, &principal, &id).await?)))
}

async fn list_messages(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    let (items, next) =
        dialogs::list_messages(&ctx, &principal, &id, params.limit()?, params.page.clone()).await?;
    Ok(page_response(items, next))
}
