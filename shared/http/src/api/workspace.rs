//! The employee's workspace: `GET /v1/me/dialogs`, `GET /v1/me/queue`, `PUT /v1/me/status`,
//! `POST /v1/dialogs/{id}/accept`, `POST /v1/dialogs/{id}/transfer`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Map, Value};

use super::wire::{self, Dialog, Employee, Page};
use super::{IdPath, PageParams, Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;
use omnichat::domain::{EmployeeId, GroupId};
use omnichat::usecases::routing::{self, TransferTarget};
use omnichat::usecases::workspace;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/me", get(me))
        .route("/v1/me/channels", get(channel_names))
        .route("/v1/me/dialogs", get(my_dialogs))
        .route("/v1/me/queue", get(my_queue))
        .route("/v1/me/status", put(set_my_status))
        .route("/v1/dialogs/{id}/accept", post(accept))
        .route("/v1/dialogs/{id}/transfer", post(transfer))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(me, channel_names, my_dialogs, my_queue, set_my_status, accept, transfer))]
pub(crate) struct Docs;

/// The caller's new status.
// A schema only: the use case validates the body by hand, naming the field at fault (serde would answer 400
// without one).
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only, for the reason above
struct StatusInput {
    status: wire::EmployeeStatus,
}

/// Where the dialog goes: exactly one of the two.
// A schema only: `transfer_target` validates the body by hand, naming the field at fault.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only, for the reason above
struct TransferInput {
    /// An employee of the tenant: assigned if online with room, else waiting in their queue.
    #[schema(format = "uuid", nullable = false)]
    employee_id: Option<String>,
    /// A group of the tenant: routed by its distribution, not back to whoever transferred it.
    #[schema(format = "uuid", nullable = false)]
    group_id: Option<String>,
}

/// Who the caller is.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Me {
    #[schema(value_type = String, format = "uuid")]
    tenant_id: String,
    /// `admin` or `employee`.
    #[schema(example = "employee")]
    role: String,
    /// The employee an employee key belongs to (`null` for an admin key).
    #[schema(nullable = true)]
    employee: Option<Employee>,
}

#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "workspace",
    summary = "Who I am: my key's role and, for an employee key, my employee (status included)",
    responses(
        (status = 200, description = "The caller", body = Me),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn me(State(ctx): State<AppState>, principal: Principal) -> Result<Json<Me>, ApiError> {
    let employee = workspace::me(&ctx, &principal).await?;
    let role = match principal.role {
        omnichat::usecases::auth::Role::Admin => "admin",
        omnichat::usecases::auth::Role::Employee => "employee",
    };
    Ok(Json(Me {
        tenant_id: principal.tenant_id.to_string(),
        role: role.to_owned(),
        employee: employee.map(Employee::from),
    }))
}

/// A channel as the workspace names it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ChannelName {
    #[schema(value_type = String, format = "uuid")]
    id: String,
    name: String,
    provider: wire::ChannelKind,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    whatsapp_provider: Option<wire::WhatsappProvider>,
    status: wire::ChannelStatus,
}

#[utoipa::path(
    get,
    path = "/v1/me/channels",
    tag = "workspace",
    summary = "The tenant's channels by name, for any key (which channel a dialog came in on)",
    params(PageParams),
    responses(
        (status = 200, description = "A page of channels: id, name, provider, status", body = Page<ChannelName>),
        doc::BadRequest, doc::Unauthorized, doc::Unprocessable, doc::Unavailable
    )
)]
async fn channel_names(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<ChannelName>>, ApiError> {
    let (channels, next) =
        omnichat::usecases::channels::channel_names(&ctx, &principal, params.limit()?, params.page).await?;
    let items = channels
        .into_iter()
        .map(|channel| {
            let (provider, whatsapp_provider) = wire::kind_of(channel.provider);
            ChannelName {
                id: channel.id.to_string(),
                name: channel.name,
                provider,
                whatsapp_provider,
                status: channel.status.into(),
            }
        })
        .collect();
    Ok(Json(Page::of(items, next)))
}

#[utoipa::path(
    get,
    path = "/v1/me/dialogs",
    tag = "workspace",
    summary = "My open dialogs (employee keys)",
    params(PageParams),
    responses(
        (status = 200, description = "A page of the dialogs assigned to the caller", body = Page<Dialog>),
        doc::BadRequest, doc::Unauthorized, doc::Unprocessable, doc::Unavailable
    )
)]
async fn my_dialogs(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<Dialog>>, ApiError> {
    let (items, next) = workspace::my_dialogs(&ctx, &principal, params.limit()?, params.page).await?;
    Ok(Json(Page::of(items, next)))
}

#[utoipa::path(
    get,
    path = "/v1/me/queue",
    tag = "workspace",
    summary = "Dialogs waiting in my queue and my groups' queues (employee keys)",
    params(PageParams),
    responses(
        (status = 200, description = "A page of waiting dialogs, each can be accepted", body = Page<Dialog>),
        doc::BadRequest, doc::Unauthorized, doc::Unprocessable, doc::Unavailable
    )
)]
async fn my_queue(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<Dialog>>, ApiError> {
    let (items, next) = workspace::my_queue(&ctx, &principal, params.limit()?, params.page).await?;
    Ok(Json(Page::of(items, next)))
}

/// `{"status": "online" | "away" | "offline"}`.
#[utoipa::path(
    put,
    path = "/v1/me/status",
    tag = "workspace",
    summary = "Set my status; coming online assigns waiting dialogs at once (employee keys)",
    request_body = StatusInput,
    responses(
        (status = 200, description = "The caller's employee", body = Employee),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unprocessable, doc::Unavailable
    )
)]
async fn set_my_status(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Employee>, ApiError> {
    let body = Value::Object(json_body::<Map<String, Value>>(&body)?);
    Ok(Json(workspace::set_my_status(&ctx, &principal, &body).await?.into()))
}

#[utoipa::path(
    post,
    path = "/v1/dialogs/{id}/accept",
    tag = "workspace",
    summary = "Take a waiting dialog, or confirm one assigned to me (employee keys); the first to accept has it",
    params(IdPath),
    responses(
        (status = 200, description = "The dialog, assigned to the caller", body = Dialog),
        doc::Unauthorized, doc::NotFound,
        (status = 409, description = "Someone else took it first, or the caller is at capacity", body = crate::error::ErrorBody),
        doc::Unprocessable, doc::Unavailable
    )
)]
async fn accept(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Dialog>, ApiError> {
    Ok(Json(routing::accept(&ctx, &principal, &id).await?.into()))
}

/// `{"employee_id": "..."}` or `{"group_id": "..."}`, exactly one.
#[utoipa::path(
    post,
    path = "/v1/dialogs/{id}/transfer",
    tag = "workspace",
    summary = "Transfer a dialog to an employee or a group (admins: any open dialog; employees: their own)",
    params(IdPath),
    request_body = TransferInput,
    responses(
        (status = 200, description = "The dialog after routing", body = Dialog),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn transfer(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Dialog>, ApiError> {
    let body = json_body::<Map<String, Value>>(&body)?;
    let target = transfer_target(&body)?;
    Ok(Json(routing::transfer(&ctx, &principal, &id, target).await?.into()))
}

#[doc(hidden)]
pub fn transfer_target(body: &Map<String, Value>) -> Result<TransferTarget, ApiError> {
    let rule = |code: &'static str, field: &str, message: &str| {
        ApiError::from(omnichat::Error::rule(code, field, message))
    };
    if let Some(unknown) = body.keys().find(|k| !matches!(k.as_str(), "employee_id" | "group_id")) {
        return Err(rule("unknown_field", unknown, "is not a field of a transfer"));
    }
    let present = |key: &str| body.get(key).filter(|v| !v.is_null());
    match (present("employee_id"), present("group_id")) {
        (Some(id), None) => id
            .as_str()
            .and_then(EmployeeId::parse)
            .map(TransferTarget::Employee)
            .ok_or_else(|| rule("not_found", "employee_id", "no such employee in this tenant")),
        (None, Some(id)) => id
            .as_str()
            .and_then(GroupId::parse)
            .map(TransferTarget::Group)
            .ok_or_else(|| rule("not_found", "group_id", "no such group in this tenant")),
        _ => Err(rule("transfer_target", "body", "name exactly one of employee_id, group_id")),
    }
}
