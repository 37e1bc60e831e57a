//! The platform operator's routes, `/v1/tenants`: create tenants (each with its first admin key, shown
//! once), list them, and switch their services. Only the operator's key opens them; a tenant's keys get
//! 401, and the operator's key opens nothing inside a tenant.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use omnichat::domain::TenantId;
use omnichat::usecases::{auth, tenants};
use serde::Deserialize;

use super::wire::{ApiKeyInfo, CreatedTenant, Features, Page, Tenant};
use super::{IdPath, Operator, PageParams, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tenants/{id}", get(get_tenant).put(update_tenant))
        .route("/v1/tenants/{id}/api-keys", get(list_tenant_keys))
        .route("/v1/tenants/{id}/api-keys/{key_id}", delete(revoke_tenant_key))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_tenants,
    create_tenant,
    get_tenant,
    update_tenant,
    list_tenant_keys,
    revoke_tenant_key
))]
pub(crate) struct Docs;

/// A new tenant: its name, and its services (both on when not given).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewTenant)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    features: Option<Features>,
}

#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "operator",
    summary = "Create a tenant with its first admin key (platform operator)",
    request_body = NewTenantBody,
    responses(
        (status = 201, description = "The tenant and its admin key, shown this once", body = CreatedTenant),
        doc::BadRequest, doc::Unauthorized, doc::Unprocessable, doc::Unavailable
    )
)]
async fn create_tenant(
    State(ctx): State<AppState>,
    _operator: Operator,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    let body: NewTenantBody = json_body(&body)?;
    let features = body.features.map(Into::into).unwrap_or_default();
    let (tenant, key) = tenants::create_tenant(&ctx, &body.name, features).await?;
    let created = CreatedTenant { tenant: tenant.into(), admin_key: key.expose().to_owned() };
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "operator",
    summary = "The deployment's tenants, oldest first (platform operator)",
    params(PageParams),
    responses(
        (status = 200, description = "A page of tenants", body = Page<Tenant>),
        doc::BadRequest, doc::Unauthorized, doc::Unavailable
    )
)]
async fn list_tenants(
    State(ctx): State<AppState>,
    Query(params): Query<PageParams>,
    _operator: Operator,
) -> Result<Json<Page<Tenant>>, ApiError> {
    let (items, next) = tenants::list_tenants(&ctx, params.limit()?, params.page).await?;
    Ok(Json(Page::of(items, next)))
}

fn tenant_id(id: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(id).ok_or_else(|| ApiError::from(omnichat::Error::NotFound { what: "tenant" }))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}",
    tag = "operator",
    summary = "A tenant and its services (platform operator)",
    params(IdPath),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_tenant(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    _operator: Operator,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(tenants::get_tenant(&ctx, &tenant_id(&id)?).await?.into()))
}

/// A tenant's services, switched on or off.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TenantUpdate)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    features: Features,
}

#[utoipa::path(
    put,
    path = "/v1/tenants/{id}",
    tag = "operator",
    summary = "Switch a tenant's services on or off (platform operator)",
    params(IdPath),
    request_body = TenantBody,
    responses(
        (status = 200, description = "The tenant as it is now", body = Tenant),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn update_tenant(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    _operator: Operator,
    body: Bytes,
) -> Result<Json<Tenant>, ApiError> {
    let tenant = tenant_id(&id)?;
    let body: TenantBody = json_body(&body)?;
    Ok(Json(tenants::set_features(&ctx, &tenant, body.features.into()).await?.into()))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/api-keys",
    tag = "operator",
    summary = "A tenant's API keys, never the keys themselves (platform operator)",
    params(IdPath),
    responses(
        (status = 200, description = "Every key of the tenant, oldest first", body = Vec<ApiKeyInfo>),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn list_tenant_keys(
    State(ctx): State<AppState>,
    Path(IdPath { id }): Path<IdPath>,
    _operator: Operator,
) -> Result<Json<Vec<ApiKeyInfo>>, ApiError> {
    let tenant = tenants::get_tenant(&ctx, &tenant_id(&id)?).await?;
    let keys = auth::list_api_keys(&ctx, &auth::Principal::admin_of(tenant.id)).await?;
    Ok(Json(keys.into_iter().map(ApiKeyInfo::from).collect()))
}

/// `{id}` of a tenant and `{key_id}` of one of its keys.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantKeyPath {
    /// The tenant's id.
    #[param(format = "uuid")]
    pub id: String,
    /// The key's id (not the key).
    #[param(format = "uuid")]
    pub key_id: String,
}

/// For a tenant locked out of its own keys (a leaked admin key): from the next request on, refused.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{id}/api-keys/{key_id}",
    tag = "operator",
    summary = "Revoke one of a tenant's API keys (platform operator)",
    params(TenantKeyPath),
    responses((status = 204, description = "Revoked"), doc::Unauthorized, doc::NotFound, doc::Unavailable)
)]
async fn revoke_tenant_key(
    State(ctx): State<AppState>,
    Path(TenantKeyPath { id, key_id }): Path<TenantKeyPath>,
    _operator: Operator,
) -> Result<StatusCode, ApiError> {
    auth::revoke_api_key(&ctx, &auth::Principal::admin_of(tenant_id(&id)?), &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
