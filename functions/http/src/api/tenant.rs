//! `GET|PUT /v1/tenant`: the tenant's services.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::caller;
use crate::AppState;
use crate::error::ApiError;
use omnichat::usecases::auth;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tenant", get(get_tenant))
}

async fn get_tenant(State(ctx): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let principal = caller(&ctx, &headers).await?;
    principal.require_admin()?;
    let tenant = auth::get_tenant(&ctx, &principal.tenant_id).await?;
    Ok(Json(json!({"id": tenant.id, "name": tenant.name, "features": tenant.features})))
}
