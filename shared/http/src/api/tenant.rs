//! A tenant's own: `GET /v1/tenant` (its services, which admins read and only the operator switches) and
//! `/v1/api-keys` (keys for admins and employees: create, list, revoke).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use omnichat::domain::EmployeeId;
use omnichat::usecases::{auth, tenants};
use serde::Deserialize;

use super::wire::{ApiKey, ApiKeyInfo, Role, Tenant};
use super::{Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/tenant", get(get_tenant).put(update_tenant))
        .route("/v1/api-keys", get(list_api_keys).post(create_api_key))
        .route("/v1/api-keys/{id}", delete(revoke_api_key))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_tenant, update_tenant, list_api_keys, create_api_key, revoke_api_key))]
pub(crate) struct Docs;

#[utoipa::path(
    get,
    path = "/v1/tenant",
    tag = "tenant",
    summary = "The tenant and its services (admin)",
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_tenant(State(ctx): State<AppState>, principal: Principal) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(tenants::read_tenant(&ctx, &principal).await?.into()))
}

/// Only the platform operator switches a tenant's services (`PUT /v1/tenants/{id}`); a tenant's admin is
/// told so, and nothing changes.
#[utoipa::path(
    put,
    path = "/v1/tenant",
    tag = "tenant",
    summary = "Refused: only the platform operator switches the tenant's services",
    responses(doc::Unauthorized, doc::Forbidden, doc::NotFound, doc::Unavailable)
)]
async fn update_tenant(principal: Principal) -> Result<StatusCode, ApiError> {
    tenants::refuse_features_change(&principal)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "tenant",
    summary = "The tenant's API keys, never the keys themselves (admin)",
    responses(
        (status = 200, description = "Every key of the tenant, oldest first", body = Vec<ApiKeyInfo>),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_api_keys(
    State(ctx): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<ApiKeyInfo>>, ApiError> {
    let keys = auth::list_api_keys(&ctx, &principal).await?;
    Ok(Json(keys.into_iter().map(ApiKeyInfo::from).collect()))
}

/// A key for an admin, or for an employee of the tenant.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewApiKey)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyBody {
    role: Role,
    /// For an employee key: the employee it belongs to.
    #[schema(format = "uuid")]
    employee_id: Option<String>,
}

/// The clear key is in this response only; the store keeps its hash.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "tenant",
    summary = "Create an API key for an admin or an employee (admin)",
    request_body = ApiKeyBody,
    responses(
        (status = 201, description = "The key, shown this once", body = ApiKey),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn create_api_key(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<ApiKey>), ApiError> {
    let body: ApiKeyBody = json_body(&body)?;
    let employee = match body.employee_id.as_deref() {
        None => None,
        Some(raw) => Some(EmployeeId::parse(raw).ok_or_else(|| {
            ApiError::from(omnichat::Error::rule(
                "not_found",
                "employee_id",
                "no such employee in this tenant",
            ))
        })?),
    };
    let (key, info) = auth::create_api_key(&ctx, &principal, body.role.into(), employee.clone()).await?;
    let key = ApiKey { id: info.id, key: key.expose().to_owned(), role: body.role, employee_id: employee };
    Ok((StatusCode::CREATED, Json(key)))
}

/// `{id}` of a key: the `id` its listing shows.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The key's id (not the key).
    #[param(format = "uuid")]
    pub id: String,
}

/// From the next request on, the key is refused (401). There is no key cache, on AWS either.
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "tenant",
    summary = "Revoke an API key (admin)",
    params(KeyPath),
    responses(
        (status = 204, description = "Revoked"),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn revoke_api_key(
    State(ctx): State<AppState>,
    Path(KeyPath { id }): Path<KeyPath>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    auth::revoke_api_key(&ctx, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
