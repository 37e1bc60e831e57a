//! `/v1/employees`, `/v1/groups`, `/v1/chatbots`: the contact center's people. A `PUT` changes the fields
//! its body names and keeps the others.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};

use super::wire::{Chatbot, Distribution, Employee, EmployeeStatus, Group, Page};
use super::{IdPath, PageParams, Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::openapi as doc;
use omnichat::domain::people::{ChatbotChanges, EmployeeChanges, GroupChanges};
use omnichat::usecases::people;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/employees", get(list_employees).post(create_employee))
        .route("/v1/employees/{id}", get(get_employee).put(update_employee).delete(delete_employee))
        .route("/v1/groups", get(list_groups).post(create_group))
        .route("/v1/groups/{id}", get(get_group).put(update_group).delete(delete_group))
        .route("/v1/chatbots", get(list_chatbots).post(create_chatbot))
        .route("/v1/chatbots/{id}", get(get_chatbot).put(update_chatbot).delete(delete_chatbot))
}

/// The documentation of the routes above (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_employees,
    create_employee,
    get_employee,
    update_employee,
    delete_employee,
    list_groups,
    create_group,
    get_group,
    update_group,
    delete_group,
    list_chatbots,
    create_chatbot,
    get_chatbot,
    update_chatbot,
    delete_chatbot,
))]
pub(crate) struct Docs;

/// The body as a JSON object: anything else is a malformed request (400), like bad JSON.
fn object_body(body: &Bytes) -> Result<Value, ApiError> {
    json_body::<Map<String, Value>>(body).map(Value::Object)
}

fn created<T: serde::Serialize>(body: T) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

// ---- employees ----

#[utoipa::path(
    get,
    path = "/v1/employees",
    tag = "people",
    summary = "List the tenant's employees",
    params(PageParams),
    responses(
        (status = 200, description = "A page of employees", body = Page<Employee>),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_employees(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<Employee>>, ApiError> {
    let (items, next) =
        people::list_employees(&ctx, &principal, params.limit()?, params.page.clone()).await?;
    Ok(Json(Page::<Employee>::of(items, next)))
}

#[utoipa::path(
    post,
    path = "/v1/employees",
    tag = "people",
    summary = "Create an employee (admin)",
    request_body = EmployeeInput,
    responses(
        (status = 201, description = "The new employee", body = Employee),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn create_employee(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let changes = EmployeeChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(created(Employee::from(people::create_employee(&ctx, &principal, changes).await?)))
}

#[utoipa::path(
    get,
    path = "/v1/employees/{id}",
    tag = "people",
    summary = "Read an employee",
    params(IdPath),
    responses(
        (status = 200, description = "The employee", body = Employee),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_employee(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Employee>, ApiError> {
    Ok(Json(people::read_employee(&ctx, &principal, &id).await?.into()))
}

#[utoipa::path(
    put,
    path = "/v1/employees/{id}",
    tag = "people",
    summary = "Change an employee (an employee key: its own status only)",
    params(IdPath),
    request_body = EmployeeInput,
    responses(
        (status = 200, description = "The employee as it is now", body = Employee),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn update_employee(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Employee>, ApiError> {
    let changes = EmployeeChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(Json(people::update_employee(&ctx, &principal, &id, changes).await?.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/employees/{id}",
    tag = "people",
    summary = "Delete an employee no group or channel names (admin)",
    params(IdPath),
    responses(
        (status = 204, description = "Deleted"),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unavailable
    )
)]
async fn delete_employee(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    people::delete_employee(&ctx, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- groups ----

#[utoipa::path(
    get,
    path = "/v1/groups",
    tag = "people",
    summary = "List the tenant's groups",
    params(PageParams),
    responses(
        (status = 200, description = "A page of groups", body = Page<Group>),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_groups(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<Group>>, ApiError> {
    let (items, next) = people::list_groups(&ctx, &principal, params.limit()?, params.page.clone()).await?;
    Ok(Json(Page::<Group>::of(items, next)))
}

#[utoipa::path(
    post,
    path = "/v1/groups",
    tag = "people",
    summary = "Create a group (admin)",
    request_body = GroupInput,
    responses(
        (status = 201, description = "The new group", body = Group),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn create_group(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let changes = GroupChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(created(Group::from(people::create_group(&ctx, &principal, changes).await?)))
}

#[utoipa::path(
    get,
    path = "/v1/groups/{id}",
    tag = "people",
    summary = "Read a group",
    params(IdPath),
    responses(
        (status = 200, description = "The group", body = Group),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_group(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Group>, ApiError> {
    Ok(Json(people::read_group(&ctx, &principal, &id).await?.into()))
}

#[utoipa::path(
    put,
    path = "/v1/groups/{id}",
    tag = "people",
    summary = "Change a group (admin)",
    params(IdPath),
    request_body = GroupInput,
    responses(
        (status = 200, description = "The group as it is now", body = Group),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn update_group(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Group>, ApiError> {
    principal.require_admin()?;
    let changes = GroupChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(Json(people::update_group(&ctx, &principal, &id, changes).await?.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/groups/{id}",
    tag = "people",
    summary = "Delete a group no group or channel names (admin)",
    params(IdPath),
    responses(
        (status = 204, description = "Deleted"),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unavailable
    )
)]
async fn delete_group(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    people::delete_group(&ctx, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- chatbots ----

#[utoipa::path(
    get,
    path = "/v1/chatbots",
    tag = "people",
    summary = "List the tenant's chatbots",
    params(PageParams),
    responses(
        (status = 200, description = "A page of chatbots", body = Page<Chatbot>),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_chatbots(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Page<Chatbot>>, ApiError> {
    let (items, next) = people::list_chatbots(&ctx, &principal, params.limit()?, params.page.clone()).await?;
    Ok(Json(Page::<Chatbot>::of(items, next)))
}

#[utoipa::path(
    post,
    path = "/v1/chatbots",
    tag = "people",
    summary = "Create a chatbot (admin)",
    request_body = ChatbotInput,
    responses(
        (status = 201, description = "The new chatbot", body = Chatbot),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn create_chatbot(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require_admin()?;
    let changes = ChatbotChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(created(Chatbot::from(people::create_chatbot(&ctx, &principal, changes).await?)))
}

#[utoipa::path(
    get,
    path = "/v1/chatbots/{id}",
    tag = "people",
    summary = "Read a chatbot",
    params(IdPath),
    responses(
        (status = 200, description = "The chatbot", body = Chatbot),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_chatbot(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<Json<Chatbot>, ApiError> {
    Ok(Json(people::read_chatbot(&ctx, &principal, &id).await?.into()))
}

#[utoipa::path(
    put,
    path = "/v1/chatbots/{id}",
    tag = "people",
    summary = "Change a chatbot (admin)",
    params(IdPath),
    request_body = ChatbotInput,
    responses(
        (status = 200, description = "The chatbot as it is now", body = Chatbot),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn update_chatbot(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Chatbot>, ApiError> {
    principal.require_admin()?;
    let changes = ChatbotChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(Json(people::update_chatbot(&ctx, &principal, &id, changes).await?.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/chatbots/{id}",
    tag = "people",
    summary = "Delete a chatbot no group or channel names (admin)",
    params(IdPath),
    responses(
        (status = 204, description = "Deleted"),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unavailable
    )
)]
async fn delete_chatbot(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    people::delete_chatbot(&ctx, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- the bodies, read by the domain (`*Changes::from_json`) so that a broken rule names its field ----
//
// They are schemas only: serde would answer a wrong type or an unknown field with a 400 naming nothing.
// Their bounds are the domain's constants (the `openapi` tests hold them to it).

/// An employee as sent: `POST` needs `name`; `PUT` changes the fields sent (an employee key may change
/// only its own `status`). `id` is ignored, so what `GET` answers can be sent back.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only, for the reason above
struct EmployeeInput {
    /// Ignored.
    id: Option<String>,
    /// 1 to 100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// Default `offline`.
    status: Option<EmployeeStatus>,
    /// Default 5.
    #[schema(minimum = 1, maximum = 100)]
    max_dialogs: Option<u32>,
}

/// A group as sent: `POST` needs `name`; `PUT` changes the fields sent (`members` replaces the list).
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only, for the reason above
struct GroupInput {
    /// Ignored.
    id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// Employees of the tenant, each once.
    #[schema(max_items = 200, format = "uuid")]
    members: Option<Vec<String>>,
    /// Default `round_robin`.
    distribution: Option<Distribution>,
    /// Default 60.
    #[schema(minimum = 1, maximum = 86400)]
    wait_seconds: Option<u32>,
}

/// A chatbot as sent: `POST` needs `name` and `webhook_url`; `PUT` changes the fields sent.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema only, for the reason above
struct ChatbotInput {
    /// Ignored.
    id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    name: Option<String>,
    /// https:// (plain http only to localhost, 127.0.0.0/8 and ::1), no credentials in it.
    #[schema(max_length = 2048, format = "uri", pattern = r"^(https://|http://(localhost|127\.|\[::1\]))")]
    webhook_url: Option<String>,
    /// Default true.
    enabled: Option<bool>,
}
