//! `GET|PUT /v1/tenant` (the tenant's services) and `POST /v1/api-keys` (keys for admins and employees).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use omnichat::domain::EmployeeId;
use omnichat::usecases::{auth, tenants};
use serde::Deserialize;

use super::wire::{ApiKey, Features, Role, Tenant};
use super::{Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenant", get(get_tenant).put(update_tenant))
        .route("/v1/api-keys", post(create_api_key))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_tenant, update_tenant, create_api_key))]
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
    principal.require_admin()?;
    Ok(Json(tenants::get_tenant(&ctx, &principal.tenant_id).await?.into()))
}

/// The tenant's services, switched on or off.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TenantUpdate)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    features: Features,
}

#[utoipa::path(
    put,
    path = "/v1/tenant",
    tag = "tenant",
    summary = "Switch the tenant's services on or off (admin)",
    request_body = TenantBody,
    responses(
        (status = 200, description = "The tenant as it is now", body = Tenant),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn update_tenant(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Tenant>, ApiError> {
    let body: TenantBody = json_body(&body)?;
    Ok(Json(tenants::update_features(&ctx, &principal, body.features.into()).await?.into()))
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
    principal.require_admin()?;
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
    let key = auth::create_api_key(&ctx, &principal.tenant_id, body.role.into(), employee.clone()).await?;
    let key = ApiKey { key: key.expose().to_owned(), role: body.role, employee_id: employee };
    Ok((StatusCode::CREATED, Json(key)))
}
