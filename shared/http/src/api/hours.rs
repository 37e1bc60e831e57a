//! `GET|PUT /v1/working-hours`: the tenant's working hours (always open until they are set). `PUT`
//! replaces them as a whole and answers what is now in effect.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};

use super::wire::WorkingHours;
use super::{Principal, json_body};
use crate::AppState;
use crate::error::ApiError;
use crate::responses as doc;
use omnichat::domain::hours;
use omnichat::usecases::hours as usecase;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/v1/working-hours", get(get_working_hours).put(put_working_hours))
}

/// The documentation of the routes above (merged into the document by `crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_working_hours, put_working_hours))]
pub(crate) struct Docs;

#[utoipa::path(
    get,
    path = "/v1/working-hours",
    tag = "hours",
    summary = "The tenant's working hours",
    description = "Until they are set the tenant is always open: every day 00:00-24:00 in UTC.",
    responses(
        (status = 200, description = "The working hours in effect", body = WorkingHours),
        doc::Unauthorized, doc::NotFound, doc::Unavailable
    )
)]
async fn get_working_hours(
    State(ctx): State<AppState>,
    principal: Principal,
) -> Result<Json<WorkingHours>, ApiError> {
    Ok(Json(WorkingHours::try_from(&usecase::read_working_hours(&ctx, &principal).await?)?))
}

#[utoipa::path(
    put,
    path = "/v1/working-hours",
    tag = "hours",
    summary = "Replace the tenant's working hours (admin)",
    request_body = WorkingHours,
    responses(
        (status = 200, description = "The working hours now in effect", body = WorkingHours),
        doc::BadRequest, doc::Unauthorized, doc::NotFound, doc::Conflict, doc::Unprocessable, doc::Unavailable
    )
)]
async fn put_working_hours(
    State(ctx): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<WorkingHours>, ApiError> {
    // Anything but a JSON object is a malformed request (400); a broken rule is 422 naming the field, which
    // is why the domain reads the body rather than serde.
    let body = Value::Object(json_body::<Map<String, Value>>(&body)?);
    let working_hours = hours::WorkingHours::from_json(&body).map_err(omnichat::Error::from)?;
    Ok(Json(WorkingHours::try_from(&usecase::put_working_hours(&ctx, &principal, working_hours).await?)?))
}
