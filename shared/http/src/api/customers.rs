//! `/v1/customers`: one person across channels and over time (API.md, "Customers and history").

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::wire::{CustomerProfile, Dialog, Message};
use super::{IdPath, Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;
use omnichat::usecases::customers;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/customers", get(search))
        .route("/v1/customers/{id}", get(get_customer).delete(erase))
        .route("/v1/customers/{id}/merge", post(merge))
        .route("/v1/customers/{id}/export", get(export))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(search, get_customer, merge, export, erase))]
pub(crate) struct Docs;

/// The most customers one search answers.
const MAX_RESULTS: usize = 50;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// Part of a name, handle, phone number or e-mail address; at least 2 characters.
    #[param(min_length = 2)]
    query: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/customers",
    tag = "customers",
    summary = "Find customers by name, handle, phone or address",
    params(SearchParams),
    responses(
        (status = 200, description = "Up to 50 customers, newest first", body = Vec<CustomerProfile>),
        doc::BadRequest, doc::Unauthorized, doc::Unavailable
    )
)]
async fn search(
    State(ctx): State<AppState>,
    Query(params): Query<SearchParams>,
    principal: Principal,
) -> Result<Json<Vec<CustomerProfile>>, ApiError> {
    let query = params.query.unwrap_or_default();
    let found = customers::search(&ctx, &principal, &query, MAX_RESULTS).await?;
    Ok(Json(found.iter().map(|profile| CustomerProfile::of(profile, None)).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/customers/{id}",
    tag = "customers",
    summary = "Read a customer with identities and dialogs, newest first",
    params(IdPath),
    responses(
        (status = 200, description = "The customer", body = CustomerProfile),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_customer(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<CustomerProfile>, ApiError> {
    let view = customers::get(&ctx, &principal, &id).await?;
    Ok(Json(CustomerProfile::of(&view.profile, Some(view.dialogs))))
}

/// The customer to merge into this one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    #[schema(format = "uuid")]
    other_id: String,
}

#[utoipa::path(
    post,
    path = "/v1/customers/{id}/merge",
    tag = "customers",
    summary = "Merge another customer into this one (identities and dialogs); admins only",
    params(IdPath),
    request_body = MergeBody,
    responses(
        (status = 200, description = "The merged customer", body = CustomerProfile),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn merge(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<CustomerProfile>, ApiError> {
    let body: MergeBody = json_body(&body)?;
    let view = customers::merge(&ctx, &principal, &id, &body.other_id).await?;
    Ok(Json(CustomerProfile::of(&view.profile, Some(view.dialogs))))
}

/// Everything stored about a customer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Export {
    customer: CustomerProfile,
    dialogs: Vec<ExportedDialog>,
    #[schema(value_type = String, format = DateTime)]
    exported_at: jiff::Timestamp,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ExportedDialog {
    dialog: Dialog,
    /// Oldest first; attachments with time-limited links.
    messages: Vec<Message>,
}

#[utoipa::path(
    get,
    path = "/v1/customers/{id}/export",
    tag = "customers",
    summary = "Export everything stored about a customer as one document; admins only",
    params(IdPath),
    responses(
        (status = 200, description = "Profile, identities, dialogs and messages", body = Export),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn export(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Export>, ApiError> {
    let export = customers::export(&ctx, &principal, &id).await?;
    let dialogs = export
        .dialogs
        .into_iter()
        .map(|d| ExportedDialog {
            dialog: d.dialog.into(),
            messages: d.messages.into_iter().map(Message::from).collect(),
        })
        .collect();
    let customer = CustomerProfile::of(&export.customer, None);
    Ok(Json(Export { customer, dialogs, exported_at: export.exported_at }))
}

#[utoipa::path(
    delete,
    path = "/v1/customers/{id}",
    tag = "customers",
    summary = "Erase a customer: profile, identities, dialogs, messages and files; admins only",
    params(IdPath),
    responses(
        (status = 204, description = "Erased (also when it was erased before)"),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unavailable
    )
)]
async fn erase(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    customers::erase(&ctx, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
