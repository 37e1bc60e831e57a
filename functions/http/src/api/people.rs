//! `/v1/employees`, `/v1/groups`, `/v1/chatbots`: the contact center's people. A `PUT` changes the fields
//! its body names and keeps the others.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::{PageParams, Principal, json_body, page_response};
use crate::AppState;
use crate::error::ApiError;
use crate::openapi as doc;
use omnichat::domain::people::{Chatbot, ChatbotChanges, Employee, EmployeeChanges, Group, GroupChanges};
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

pub fn employee_json(employee: &Employee) -> Value {
    json!({
        "id": employee.id,
        "name": employee.name,
        "status": employee.status,
        "max_dialogs": employee.max_dialogs,
    })
}

pub fn group_json(group: &Group) -> Value {
    json!({
        "id": group.id,
        "name": group.name,
        "members": group.members,
        "distribution": group.distribution,
        "wait_seconds": group.wait_seconds,
    })
}

pub fn chatbot_json(chatbot: &Chatbot) -> Value {
    json!({
        "id": chatbot.id,
        "name": chatbot.name,
        "webhook_url": chatbot.webhook_url,
        "enabled": chatbot.enabled,
    })
}

/// The body as a JSON object: anything else is a malformed request (400), like bad JSON.
fn object_body(body: &Bytes) -> Result<Value, ApiError> {
    json_body::<Map<String, Value>>(body).map(Value::Object)
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

// ---- employees ----

#[utoipa::path(
    get,
    path = "/v1/employees",
    tag = "people",
    summary = "List the tenant's employees",
    params(doc::PageQuery),
    responses(
        (status = 200, description = "A page of employees", body = doc::EmployeePage),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_employees(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let (items, next) =
        people::list_employees(&ctx, &principal, params.limit()?, params.page.clone()).await?;
    Ok(page_response(items.iter().map(employee_json).collect(), next))
}

#[utoipa::path(
    post,
    path = "/v1/employees",
    tag = "people",
    summary = "Create an employee (admin)",
    request_body = doc::EmployeeInput,
    responses(
        (status = 201, description = "The new employee", body = doc::Employee),
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
    Ok(created(employee_json(&people::create_employee(&ctx, &principal, changes).await?)))
}

#[utoipa::path(
    get,
    path = "/v1/employees/{id}",
    tag = "people",
    summary = "Read an employee",
    params(doc::IdPath),
    responses(
        (status = 200, description = "The employee", body = doc::Employee),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_employee(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(employee_json(&people::read_employee(&ctx, &principal, &id).await?)))
}

#[utoipa::path(
    put,
    path = "/v1/employees/{id}",
    tag = "people",
    summary = "Change an employee (an employee key: its own status only)",
    params(doc::IdPath),
    request_body = doc::EmployeeInput,
    responses(
        (status = 200, description = "The employee as it is now", body = doc::Employee),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn update_employee(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let changes = EmployeeChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(Json(employee_json(&people::update_employee(&ctx, &principal, &id, changes).await?)))
}

#[utoipa::path(
    delete,
    path = "/v1/employees/{id}",
    tag = "people",
    summary = "Delete an employee no group or channel names (admin)",
    params(doc::IdPath),
    responses(
        (status = 204, description = "Deleted"),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unavailable
    )
)]
async fn delete_employee(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
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
    params(doc::PageQuery),
    responses(
        (status = 200, description = "A page of groups", body = doc::GroupPage),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_groups(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let (items, next) = people::list_groups(&ctx, &principal, params.limit()?, params.page.clone()).await?;
    Ok(page_response(items.iter().map(group_json).collect(), next))
}

#[utoipa::path(
    post,
    path = "/v1/groups",
    tag = "people",
    summary = "Create a group (admin)",
    request_body = doc::GroupInput,
    responses(
        (status = 201, description = "The new group", body = doc::Group),
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
    Ok(created(group_json(&people::create_group(&ctx, &principal, changes).await?)))
}

#[utoipa::path(
    get,
    path = "/v1/groups/{id}",
    tag = "people",
    summary = "Read a group",
    params(doc::IdPath),
    responses(
        (status = 200, description = "The group", body = doc::Group),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_group(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(group_json(&people::read_group(&ctx, &principal, &id).await?)))
}

#[utoipa::path(
    put,
    path = "/v1/groups/{id}",
    tag = "people",
    summary = "Change a group (admin)",
    params(doc::IdPath),
    request_body = doc::GroupInput,
    responses(
        (status = 200, description = "The group as it is now", body = doc::Group),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn update_group(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let changes = GroupChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(Json(group_json(&people::update_group(&ctx, &principal, &id, changes).await?)))
}

#[utoipa::path(
    delete,
    path = "/v1/groups/{id}",
    tag = "people",
    summary = "Delete a group no group or channel names (admin)",
    params(doc::IdPath),
    responses(
        (status = 204, description = "Deleted"),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unavailable
    )
)]
async fn delete_group(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
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
    params(doc::PageQuery),
    responses(
        (status = 200, description = "A page of chatbots", body = doc::ChatbotPage),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_chatbots(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let (items, next) = people::list_chatbots(&ctx, &principal, params.limit()?, params.page.clone()).await?;
    Ok(page_response(items.iter().map(chatbot_json).collect(), next))
}

#[utoipa::path(
    post,
    path = "/v1/chatbots",
    tag = "people",
    summary = "Create a chatbot (admin)",
    request_body = doc::ChatbotInput,
    responses(
        (status = 201, description = "The new chatbot", body = doc::Chatbot),
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
    Ok(created(chatbot_json(&people::create_chatbot(&ctx, &principal, changes).await?)))
}

#[utoipa::path(
    get,
    path = "/v1/chatbots/{id}",
    tag = "people",
    summary = "Read a chatbot",
    params(doc::IdPath),
    responses(
        (status = 200, description = "The chatbot", body = doc::Chatbot),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_chatbot(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(chatbot_json(&people::read_chatbot(&ctx, &principal, &id).await?)))
}

#[utoipa::path(
    put,
    path = "/v1/chatbots/{id}",
    tag = "people",
    summary = "Change a chatbot (admin)",
    params(doc::IdPath),
    request_body = doc::ChatbotInput,
    responses(
        (status = 200, description = "The chatbot as it is now", body = doc::Chatbot),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn update_chatbot(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let changes = ChatbotChanges::from_json(&object_body(&body)?).map_err(omnichat::Error::from)?;
    Ok(Json(chatbot_json(&people::update_chatbot(&ctx, &principal, &id, changes).await?)))
}

#[utoipa::path(
    delete,
    path = "/v1/chatbots/{id}",
    tag = "people",
    summary = "Delete a chatbot no group or channel names (admin)",
    params(doc::IdPath),
    responses(
        (status = 204, description = "Deleted"),
        doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unavailable
    )
)]
async fn delete_chatbot(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    people::delete_chatbot(&ctx, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
